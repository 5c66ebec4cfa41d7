"""`fleetgit verify` on hand-written segments: schema versions, wseq gaps and writer collisions."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain import catalogue
from fleetgit.fleet import Fleet
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event
from fleetgit.ledger.segments import line_hash
from tests.conftest import CREW_EVENTS, git, signed_segment

WRITER = "handwritten00001"


def event(wseq: int, *, v: int = 1, data: dict[str, Any] | None = None) -> Event:
    """One event of the hand-written writer, in a batch of its own."""
    (eid,) = clock.uuid7s(1)
    ms = clock.now_ms()
    return Event(
        id=eid,
        type="pilot_active",
        v=v,
        stream=f"pilot/p{wseq}-{eid[-6:]}",
        seq=1,
        hlc=clock.make_hlc(ms, wseq),
        writer=WRITER,
        wseq=wseq,
        actor="viper-1",
        ts=clock.iso_ms(ms),
        tx=eid,
        txn=1,
        data={"status": "busy"} if data is None else data,
    )


def handwrite(repo: Path, *events: Event) -> None:
    folder = repo / ".fleet/events" / WRITER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "00000001.jsonl").write_bytes(signed_segment(repo, 1, list(events)))


def problems(repo: Path) -> list[tuple[str, str]]:
    with Fleet.open(repo, catch_up=False, repair=False) as fleet:
        return [(p.kind, p.detail) for p in fleet.verify().problems]


def test_an_event_from_a_newer_fleetgit_is_reported(repo: Path) -> None:
    newer = event(1, v=99)
    handwrite(repo, newer)
    assert problems(repo) == [
        (
            "refused",
            "refused line: pilot_active version 99 is newer than this fleetgit knows (1):"
            " upgrade fleetgit to read it",
        )
    ]


def test_an_older_event_without_an_upcaster_is_a_schema_violation(repo: Path) -> None:
    older = event(1, v=0)
    handwrite(repo, older)
    [(kind, detail)] = problems(repo)
    assert kind == "refused" and "pilot_active v0 is older than v1 and no upcaster" in detail


def test_older_events_are_upcast_then_validated(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename_state(data: dict[str, Any]) -> dict[str, Any]:
        return {"status": data["state"]} if "state" in data else data

    monkeypatch.setitem(catalogue.CATALOGUE.upcasters, ("pilot_active", 0), rename_state)
    lifted = event(1, v=0, data={"state": "busy"})
    still_bad = event(2, v=0, data={"state": 42})
    broken = event(3, v=0, data={"mood": "busy"})
    handwrite(repo, lifted, still_bad, broken)
    found = problems(repo)
    assert [kind for kind, _ in found] == ["refused", "refused"]
    assert "pilot_active: data.status" in found[0][1] + found[1][1]
    assert "pilot_active: data: unknown field 'mood'" in found[0][1] + found[1][1]


def test_a_duplicate_wseq_is_a_collision_not_a_gap(repo: Path) -> None:
    first, second, third, twin = event(1), event(2), event(3), event(3)
    handwrite(repo, first, second, third, twin)
    a, b = sorted((third.id, twin.id))  # same hlc: in id order
    assert problems(repo) == [
        (
            "writer_collision",
            f"duplicate wseq 3 (events {a} and {b}): two repositories write as"
            " this writer (a copied repository?)",
        )
    ]


def test_gaps_name_exactly_what_is_missing(repo: Path) -> None:
    handwrite(repo, event(1), event(2), event(4), event(7))
    assert problems(repo) == [("wseq_gap", "wseq 3 missing"), ("wseq_gap", "wseq 5..6 missing")]


def emit(repo: Path, pilot: str) -> Event:
    with Fleet.open(repo, actor=pilot) as fleet:
        return fleet.emit("context_compacted", f"pilot/{pilot}", {"summary": "busy"})


def test_a_copied_repository_mints_its_own_writer(repo: Path, tmp_path: Path, cli: Any) -> None:
    original = emit(repo, "viper-1")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)
    mine = emit(copy, "maverick")
    assert mine.writer != original.writer and mine.wseq == 1
    assert emit(repo, "viper-1").writer == original.writer  # the original keeps its id
    moved = tmp_path / "moved"
    copy.rename(moved)
    assert emit(moved, "maverick").writer == mine.writer  # a move is not a copy
    assert cli(moved, "verify").code == 0
    # both commit and meet: no collision
    cli(repo, "commit")
    cli(moved, "commit")
    git(repo, "fetch", "-q", str(moved), "main:refs/remotes/copy/main")
    assert cli(repo, "verify").code == 0, cli(repo, "verify").out
    # the copy committed the original writer's uncommitted segment as it was then, a prefix of
    # what the original committed later: the union merge takes the longer one, no conflict
    assert "CONFLICT" not in git(repo, "merge", "--no-edit", "copy/main")
    assert git(repo, "status", "--porcelain") == ""
    assert cli(repo, "verify").code == 0


def test_verify_reports_two_repositories_writing_as_one(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    emit(repo, "viper-1")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)
    # what a copy made before writer ids recorded their place did: keep the original's id
    writer = (repo / ".git/fleet/writer").read_text().splitlines()[0]
    st = (copy / ".git").stat()
    (copy / ".git/fleet/writer").write_text(f"{writer}\n{st.st_dev} {st.st_ino} {copy}/.git\n")
    ours, theirs = emit(repo, "viper-1"), emit(copy, "maverick")
    assert ours.writer == theirs.writer and ours.wseq == theirs.wseq == 2 + CREW_EVENTS
    cli(copy, "commit")
    git(repo, "fetch", "-q", str(copy), "main:refs/remotes/copy/main")
    res = cli(repo, "verify", "--json")
    assert res.code == 1
    collisions = [p for p in res.json()["problems"] if p["kind"] == "writer_collision"]
    assert len(collisions) == 1
    assert (
        f"duplicate wseq {2 + CREW_EVENTS} (events {min(ours.id, theirs.id)}"
        in collisions[0]["detail"]
    )


@pytest.mark.parametrize("altered_first", [False, True])
def test_of_two_copies_of_an_id_the_lower_hash_counts_and_a_far_clock_is_held(
    repo: Path, altered_first: bool
) -> None:
    first = event(1)
    altered = first._replace(data={"status": "idle"})  # same id, other bytes
    ahead_ms = clock.now_ms() + 10 * 24 * 3600 * 1000
    future = event(2)._replace(hlc=clock.make_hlc(ahead_ms), ts=clock.iso_ms(ahead_ms))
    handwrite(repo, first, altered, future)  # each line signed where it is written...
    segment = repo / ".fleet/events" / WRITER / "00000001.jsonl"
    one, two, three = segment.read_bytes().splitlines(True)
    # ...then a plain copy of the first line (same bytes), a conflict, a far clock
    segment.write_bytes(
        b"".join((one, two, one, three) if altered_first else (one, one, two, three))
    )
    winner = first if line_hash(one) < line_hash(two) else altered
    with Fleet.open(repo) as fleet:
        status = fleet.index_status()
        assert status["events"] == 1 + CREW_EVENTS  # copies add nothing; the far clock waits
        assert fleet.show(first.id).data == winner.data  # whatever the order of the sources
        kinds = fleet.index.conn.execute("SELECT kind, event_id FROM anomalies ORDER BY kind")
        assert kinds.fetchall() == [("id_conflict", first.id)] * 2  # both copies recorded
        held = fleet.index.conn.execute("SELECT id FROM held").fetchall()
        assert held == [(future.id,)]
        rows = fleet.index.conn.execute("SELECT * FROM pilots ORDER BY callsign").fetchall()
        fleet.rebuild()
        assert fleet.show(first.id).data == winner.data
        assert fleet.index.conn.execute("SELECT * FROM pilots ORDER BY callsign").fetchall() == rows
    found = dict(problems(repo))  # verify reads the segments and reports both as well
    assert first.id in found["id_conflict"] and future.id in found["clock"]


# what a ledger written before the rule may hold: a color, a title change, C1 CSI, DEL, a
# right-to-left override, a line separator
HOSTILE = "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J\x7f \u202eevil \u2028x"
HOSTILE_SHOWN = r"\x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J\x7f \u202eevil \u2028x"


def test_control_codes_an_older_ledger_holds_are_shown_escaped(repo: Path, cli: Any) -> None:
    """Free text refuses terminal control codes when written; a ledger written before that rule
    may still hold some. Folds keep them and every command prints them escaped."""
    created = event(1)._replace(
        type="mission_created",
        stream="mission/m1",
        data={"mission_id": "m1", "title": "t", "description": "\x1b[2Jgone\rfake"},
    )
    update = event(2)._replace(
        type="mission_updated",
        stream="mission/m1",
        seq=2,
        hlc=created.hlc + 8,  # after the creation, whatever millisecond each was made in
        data={"mission_id": "m1", "changes": {"description": f"new {HOSTILE} text\r\n"}},
    )
    handwrite(repo, created, update)
    shown = cli(repo, "mission", "show", "m1")  # not a terminal: nothing may be dropped either
    assert shown.code == 0 and not any(c in shown.out for c in "\x1b\x07\x9b\u202e\u2028")
    assert f"new {HOSTILE_SHOWN} text" in shown.out  # the update applied, shown escaped
    raw = cli(repo, "mission", "show", "m1", "--json")
    assert not any(c in raw.out for c in "\x7f\x9b\u202e\u2028")  # escaped the JSON way
    assert raw.json()["description"] == f"new {HOSTILE} text\r\n"  # and read back exactly
    before = cli(repo, "mission", "show", "m1", "--json").out
    assert cli(repo, "index", "rebuild").code == 0  # a rebuilt index folds it the same way
    assert cli(repo, "mission", "show", "m1", "--json").out == before
    events = cli(repo, "events")
    assert "\x1b" not in events.out


def test_a_fork_the_rules_settle_is_shown_not_failed_unless_strict(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    """Two clones claim one sortie and take one lock apart: every clone agrees on the winners,
    so verify shows the forks as settled and exits 0; --strict fails on them."""
    from tests.test_fleet_merges import exchange, ok, two_clones

    for who in ("goose", "ice"):
        assert cli(repo, "pilot", "register", who).code == 0
    sid = ok(cli, repo, "goose", "sortie", "create", "Parser")
    one, two = two_clones(repo, tmp_path, cli)
    ok(cli, one, "goose", "sortie", "claim", sid)
    ok(cli, one, "goose", "lock", "acquire", "db")
    ok(cli, two, "ice", "sortie", "claim", sid)
    ok(cli, two, "ice", "lock", "acquire", "db")
    exchange(cli, one, two)
    for clone in (one, two):
        res = cli(clone, "verify")
        assert res.code == 0, res.out
        assert "verify: ok:" in res.out and "2 fork(s) settled by the rules" in res.out
        assert "fork (settled)" in res.out and "compare-and-swap" in res.out
        report = cli(clone, "verify", "--json").json()
        assert report["ok"] is True
        assert [p["settled"] for p in report["problems"]] == [True, True]
        strict = cli(clone, "verify", "--strict", "--json")
        assert strict.code == 1 and strict.json()["ok"] is False


def test_a_fork_of_two_updates_is_a_lost_update_and_fails(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    from tests.test_fleet_merges import exchange, ok, two_clones

    for who in ("goose", "ice"):
        assert cli(repo, "pilot", "register", who).code == 0
    sid = ok(cli, repo, "goose", "sortie", "create", "Parser")
    one, two = two_clones(repo, tmp_path, cli)
    ok(cli, one, "goose", "sortie", "update", sid, "--title", "Parser v2")
    ok(cli, two, "ice", "sortie", "update", sid, "--title", "Lexer")
    exchange(cli, one, two)
    res = cli(one, "verify")
    assert res.code == 1 and "1 problem(s)" in res.out and "(settled)" not in res.out
    (fork,) = cli(one, "verify", "--json").json()["problems"]
    assert fork["kind"] == "fork" and fork["settled"] is False


def test_the_summary_counts_in_words_that_agree(repo: Path) -> None:
    """`verify: ok: 17 events in 2 segments from 1 writers`: one writer is singular."""
    with Fleet.open(repo) as fleet:
        report = fleet.verify()
    assert report.writers == 1, report.summary()
    assert report.summary().endswith(" from 1 writer"), report.summary()
