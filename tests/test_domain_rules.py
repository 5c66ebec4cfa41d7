"""The domain's rules hold for events from anywhere: each fold accepts only what a command could
have written (an event another clone commits is ignored otherwise, the same after a rebuild),
and `emit` refuses what the commands refuse, in one line with a hint, writing nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode
from tests.conftest import git, plant, signed
from tests.test_crew import projection_snapshot
from tests.test_projections import assert_folds_like_a_rebuild


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


def register(cli: Any, repo: Path, *names: str) -> None:
    for name in names:
        assert cli(repo, "pilot", "register", name).code == 0


def committed(repo: Path) -> None:
    """Commit what was planted, as another clone's commit would bring it."""
    git(repo, "add", ".fleet")
    git(repo, "commit", "-q", "-m", "fleet events from another clone")


def same_after_rebuild(repo: Path, cli: Any) -> None:
    before = projection_snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert projection_snapshot(repo) == before


def reservation_of(cli: Any, repo: Path, who: str, pattern: str) -> str:
    res = as_(cli, repo, who, "reserve", pattern, "--json")
    assert res.code == 0, res.err
    return str(res.items()[0]["id"])


def holders(cli: Any, repo: Path) -> dict[str, str]:
    return {r["pattern"]: r["holder"] for r in cli(repo, "reservations", "--json").items()}


# -- folds: what another clone commits ------------------------------------------------------


def test_a_release_of_another_pilots_reservation_is_ignored(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    plant(repo, "file_released", f"reservation/{rid}", {"reservation_id": rid}, "goose")
    committed(repo)
    assert holders(cli, repo) == {"src/a.py": "viper"}
    assert as_(cli, repo, "goose", "check", "src/a.py").code == 1  # still blocks goose
    same_after_rebuild(repo, cli)


def test_a_deregistration_in_another_pilots_name_is_ignored(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    plant(repo, "pilot_deregistered", "pilot/viper", {"reason": "gone"}, "goose")
    committed(repo)
    assert cli(repo, "pilot", "show", "viper", "--json").json()["deregistered"] is False
    res = as_(cli, repo, "goose", "release", "--force", rid)
    assert res.code == 1 and "needs" in res.err  # viper did not leave: no force
    assert holders(cli, repo) == {"src/a.py": "viper"}
    same_after_rebuild(repo, cli)


def test_an_acknowledgement_in_a_recipients_name_is_ignored(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose", "ice")
    sent = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "s", "--json")
    mid = sent.json()["message_id"]
    for etype, key in (("message_acknowledged", "by"), ("message_read", "reader")):
        plant(repo, etype, f"message/{mid}", {"message_id": mid, key: "goose"}, "ice")
    committed(repo)
    shown = as_(cli, repo, "goose", "squawk", "inbox", "--json").json()["messages"][0]
    assert (shown["read"], shown["acked"]) == (False, False)
    same_after_rebuild(repo, cli)


def test_a_grant_naming_another_holder_is_ignored(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    data = {"reservation_id": "res-x", "holder": "viper", "patterns": ["src/"],
            "exclusive": True, "ttl_seconds": 3600}  # fmt: skip
    plant(repo, "file_reserved", "reservation/res-x", data, "goose")
    committed(repo)
    assert holders(cli, repo) == {}
    assert as_(cli, repo, "ice", "check", "src/a.py").code == 0
    same_after_rebuild(repo, cli)


def test_a_second_creation_and_a_completion_of_an_open_sortie_are_ignored(
    repo: Path, cli: Any
) -> None:
    register(cli, repo, "viper")
    mid = as_(cli, repo, "viper", "mission", "create", "First").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    data = {"mission_id": mid, "title": "Second"}
    plant(repo, "mission_created", f"mission/{mid}", data, "viper")
    plant(repo, "sortie_completed", f"sortie/{sid}", {"sortie_id": sid}, "viper")
    committed(repo)
    assert cli(repo, "mission", "show", mid, "--json").json()["title"] == "First"
    assert cli(repo, "sortie", "show", sid, "--json").json()["status"] == "open"
    same_after_rebuild(repo, cli)


def test_a_lock_in_another_pilots_name_is_ignored_and_no_ttl_is_for_ever(
    repo: Path, cli: Any
) -> None:
    register(cli, repo, "viper", "goose")
    assert as_(cli, repo, "viper", "lock", "acquire", "db").code == 0
    plant(repo, "lock_released", "lock/db", {"lock_key": "db", "holder": "viper"}, "goose")
    long = {"lock_key": "big", "holder": "goose", "ttl_seconds": 99999999999}
    plant(repo, "lock_acquired", "lock/big", long, "goose")
    committed(repo)
    held = {r["lock_key"]: r for r in cli(repo, "lock", "list", "--json").items()}
    assert held["db"]["holder"] == "viper"
    # refused on ingest as the catalogue bounds it (and held to the limit by the fold if not)
    assert "big" not in held or held["big"]["seconds_left"] <= 366 * 86400
    same_after_rebuild(repo, cli)


def _limit(repo: Path, seconds: int) -> None:
    cfg = repo / ".fleet/config.toml"
    text = cfg.read_text()
    for key in ("force_release_after_seconds", "pilot_active_window_seconds"):
        text = "\n".join(
            f"{key} = {seconds}" if line.startswith(key) else line for line in text.split("\n")
        )
    cfg.write_text(text)


def _ahead(repo: Path, etype: str, stream: str, data: dict[str, Any], actor: str, ms: int) -> None:
    """Like `plant`, stamped `ms` ahead of now (within the clock skew that is followed)."""
    wdir = repo / ".fleet/events/yyyyyyyyyyyyyyyy"
    wdir.mkdir(parents=True, exist_ok=True)
    segment = wdir / "00000001.jsonl"
    wseq = len(segment.read_bytes().splitlines()) + 1 if segment.exists() else 1
    (eid,) = clock.uuid7s(1)
    at = clock.now_ms() + ms
    event = Event(
        id=eid, type=etype, v=1, stream=stream, seq=wseq, hlc=clock.make_hlc(at),
        writer="y" * 16, wseq=wseq, actor=actor, ts=clock.iso_ms(at), tx=eid, txn=1, data=data,
    )  # fmt: skip
    line = signed(repo, segment, event, encode(event))
    with open(segment, "ab") as fh:
        fh.write(line)


def test_a_forced_release_counts_once_the_holder_was_silent_for_the_limit(
    repo: Path, cli: Any
) -> None:
    """Judged at the release's point in total order from the events alone: a sign of life of
    the holder that arrives later, sorting before the release, undoes it, in every clone."""
    _limit(repo, 60)
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    data = {"reservation_id": rid, "forced": True, "forced_by": "goose"}
    _ahead(repo, "file_released", f"reservation/{rid}", data, "goose", 120_000)
    committed(repo)
    assert holders(cli, repo) == {}  # viper silent for 120 s at the release: it counts
    same_after_rebuild(repo, cli)
    plant(repo, "context_compacted", "pilot/viper", {"summary": "alive"}, "viper")
    _ahead(repo, "context_compacted", "pilot/viper", {"summary": "alive"}, "viper", 90_000)
    committed(repo)
    assert holders(cli, repo) == {"src/a.py": "viper"}  # seen 30 s before it: it does not
    same_after_rebuild(repo, cli)


def test_a_forced_release_stops_counting_when_the_limit_is_raised(repo: Path, cli: Any) -> None:
    """A release forcible under the old limit is not under a longer one: every verdict is
    judged again, and the reservation it had released is held again (as a rebuild has it)."""
    _limit(repo, 60)
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    data = {"reservation_id": rid, "forced": True, "forced_by": "goose"}
    _ahead(repo, "file_released", f"reservation/{rid}", data, "goose", 120_000)
    committed(repo)
    assert holders(cli, repo) == {}  # silent 120 s, over the limit of 60 s
    _limit(repo, 600)
    committed(repo)
    assert holders(cli, repo) == {"src/a.py": "viper"}  # not over 600 s: it does not count
    same_after_rebuild(repo, cli)


def test_a_forced_release_counts_once_the_holder_deregistered(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    plant(repo, "file_released", f"reservation/{rid}", {"reservation_id": rid}, "goose")
    committed(repo)
    assert holders(cli, repo) == {"src/a.py": "viper"}
    # viper left without letting go (`pilot deregister` releases; another clone's older one did not)
    plant(repo, "pilot_deregistered", "pilot/viper", {}, "viper")
    plant(repo, "file_released", f"reservation/{rid}", {"reservation_id": rid}, "goose")
    committed(repo)
    assert holders(cli, repo) == {}
    (row,) = projection_snapshot(repo)["reservations"]
    assert row[9:13] == (1, row[10], "goose", 1)  # released, when, by whom, forced
    same_after_rebuild(repo, cli)


def test_a_withdrawn_deregistration_makes_no_release_forcible(repo: Path, cli: Any) -> None:
    """The judging steps read a pilot's stream as the projections do: viper withdraws the
    deregistration another clone wrote in its name, and the release it allowed no longer
    counts (here and after a rebuild)."""
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    plant(repo, "pilot_deregistered", "pilot/viper", {}, "viper")
    plant(repo, "file_released", f"reservation/{rid}", {"reservation_id": rid}, "goose")
    committed(repo)
    assert holders(cli, repo) == {}
    out = cli(repo, "events", "--type", "pilot_deregistered", "--json").items()
    gone = {"event_id": out[-1]["id"]}
    plant(repo, "event_withdrawn", "pilot/viper", gone, "viper")
    committed(repo)
    assert holders(cli, repo) == {"src/a.py": "viper"}
    same_after_rebuild(repo, cli)


# -- emit refuses what the commands refuse --------------------------------------------------


def _events(cli: Any, repo: Path) -> int:
    return len(cli(repo, "events", "--limit", "0", "--json").items())


def _refused(cli: Any, repo: Path, who: str, etype: str, stream: str, data: Any) -> str:
    before = _events(cli, repo)
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    res = as_(cli, repo, who, "emit", etype, "--stream", stream, "--data", payload)
    assert res.code == 1, res.out
    line, hint = res.err.splitlines()
    assert hint.startswith("hint: ")
    assert _events(cli, repo) == before
    return line


def test_emit_refuses_what_the_commands_refuse(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose", "ice")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    sent = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "s", "--json")
    mid_msg = sent.json()["message_id"]
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    line = _refused(
        cli, repo, "goose", "file_released", f"reservation/{rid}", {"reservation_id": rid}
    )
    assert "its holder viper is active" in line
    line = _refused(cli, repo, "goose", "pilot_deregistered", "pilot/viper", {})
    assert "a pilot acts in its own name only" in line
    ack = {"message_id": mid_msg, "by": "goose"}
    assert "own name" in _refused(
        cli, repo, "ice", "message_acknowledged", f"message/{mid_msg}", ack
    )
    ack = {"message_id": mid_msg, "by": "ice"}
    line = _refused(cli, repo, "ice", "message_acknowledged", f"message/{mid_msg}", ack)
    assert "only a recipient" in line
    grant = {"reservation_id": "res-y", "holder": "viper", "patterns": ["docs/"],
             "exclusive": True, "ttl_seconds": 60}  # fmt: skip
    assert "only its holder" in _refused(
        cli, repo, "goose", "file_reserved", "reservation/res-y", grant
    )
    grant |= {"holder": "goose", "patterns": ["src/"]}
    line = _refused(cli, repo, "goose", "file_reserved", "reservation/res-y", grant)
    assert f"src/ overlaps src/a.py of {rid} held by viper" in line
    assert "the clash rule would void it" in line
    line = _refused(
        cli, repo, "viper", "mission_created", f"mission/{mid}", {"mission_id": mid, "title": "T"}
    )
    assert "created once" in line
    line = _refused(cli, repo, "viper", "sortie_completed", f"sortie/{sid}", {"sortie_id": sid})
    assert "it is open: not allowed from that state" in line
    line = _refused(
        cli, repo, "viper", "mission_created", "mission/msn-new",
        '{"mission_id": "msn-new", "title": "a", "title": "b"}',
    )  # fmt: skip
    assert 'the key "title" appears twice' in line
    same_after_rebuild(repo, cli)


def test_emit_writes_what_a_command_could(repo: Path, cli: Any) -> None:
    """The same rules let through what the commands write: one's own release, a recipient's
    acknowledgement, a forced release once the holder left."""
    register(cli, repo, "viper", "goose")
    rid = reservation_of(cli, repo, "viper", "src/a.py")
    sent = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "s", "--json")
    mid = sent.json()["message_id"]
    ack = {"message_id": mid, "by": "goose"}
    res = as_(cli, repo, "goose", "emit", "message_acknowledged", "--stream", f"message/{mid}",
              "--data", orjson.dumps(ack).decode())  # fmt: skip
    assert res.code == 0, res.err
    plant(repo, "pilot_deregistered", "pilot/viper", {}, "viper")  # left, holding it
    committed(repo)
    res = as_(cli, repo, "goose", "emit", "file_released", "--stream", f"reservation/{rid}",
              "--data", orjson.dumps({"reservation_id": rid}).decode())  # fmt: skip
    assert res.code == 0, res.err
    assert holders(cli, repo) == {}


# -- the whole-repository guard, lock TTLs ---------------------------------------------------


def test_sortie_files_covering_everything_need_allow_broad(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    for pattern in ("**", "?*"):
        res = as_(cli, repo, "viper", "sortie", "create", "S", "--file", pattern)
        assert res.code == 1 and "covers the whole repository" in res.err
    sid = as_(cli, repo, "viper", "sortie", "create", "S", "--file", "src/").out.strip()
    res = as_(cli, repo, "viper", "sortie", "update", sid, "--file", "**")
    assert res.code == 1 and "--allow-broad" in res.err
    ok = as_(cli, repo, "viper", "sortie", "update", sid, "--file", "**", "--allow-broad")
    assert ok.code == 0, ok.err
    res = as_(cli, repo, "goose", "sortie", "claim", sid, "--reserve")
    assert res.code == 1 and "covers the whole repository" in res.err
    assert "--reserve --allow-broad" in res.err
    assert holders(cli, repo) == {}
    ok = as_(cli, repo, "goose", "sortie", "claim", sid, "--reserve", "--allow-broad")
    assert ok.code == 0, ok.err
    assert holders(cli, repo) == {"**": "goose"}


def test_lock_ttls_are_capped_like_file_ttls(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper")
    data = {"lock_key": "db", "holder": "viper", "ttl_seconds": 99999999999}
    res = as_(cli, repo, "viper", "emit", "lock_acquired", "--stream", "lock/db",
              "--data", orjson.dumps(data).decode())  # fmt: skip
    assert res.code == 1 and "data.ttl_seconds" in res.err
    res = as_(cli, repo, "viper", "lock", "acquire", "db", "--ttl", "367d")
    assert res.code == 1 and "longer than the limit of 366d" in res.err
    last = cli(repo, "events", "--reverse", "--limit", "1", "--json").items()
    assert last[0]["type"] == "pilot_registered"


# -- the mission state machine -----------------------------------------------------------------


def test_a_mission_completes_only_with_its_sorties_or_by_force(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper")
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    done = as_(cli, repo, "viper", "sortie", "create", "A", "--mission", mid).out.strip()
    left = as_(cli, repo, "viper", "sortie", "create", "B", "--mission", mid).out.strip()
    for step in ("claim", "start"):
        assert as_(cli, repo, "viper", "sortie", step, done).code == 0
    assert cli(repo, "mission", "show", mid, "--json").json()["status"] == "in_progress"
    assert as_(cli, repo, "viper", "sortie", "complete", done).code == 0
    before = _events(cli, repo)
    res = as_(cli, repo, "viper", "mission", "complete", mid)
    assert res.code == 1 and f"mission {mid} has 1 open sortie(s): {left}" in res.err
    assert f"fleetgit mission complete {mid} --force" in res.err
    assert _events(cli, repo) == before
    res = as_(cli, repo, "viper", "mission", "complete", mid, "--force", "--json")
    assert res.code == 0, res.err
    assert res.json()["status"] == "completed"
    assert cli(repo, "sortie", "show", left, "--json").json()["status"] == "cancelled"
    batch = cli(repo, "events", "--limit", "0", "--json").items()[before:]
    assert [e["type"] for e in batch] == ["sortie_cancelled", "mission_completed"]
    assert len({e["tx"] for e in batch}) == 1
    same_after_rebuild(repo, cli)


def test_no_claim_or_start_in_a_mission_that_is_over(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    assert as_(cli, repo, "viper", "mission", "cancel", mid).code == 0
    # a sortie another clone created in it before the cancellation reached it
    data = {"sortie_id": "srt-late", "mission_id": mid, "title": "late"}
    plant(repo, "sortie_created", "sortie/srt-late", data, "goose")
    committed(repo)
    assert cli(repo, "sortie", "list", "--ready", "--json").items() == []  # nothing to claim
    res = as_(cli, repo, "goose", "sortie", "claim", "srt-late")
    assert res.code == 1 and f"mission {mid}, which is cancelled: cannot claim it" in res.err
    claim = {"sortie_id": "srt-late", "assignee": "goose", "previous_assignee": None}
    line = _refused(cli, repo, "goose", "sortie_assigned", "sortie/srt-late", claim)
    assert f"its mission {mid} is cancelled" in line
    line = _refused(cli, repo, "viper", "mission_completed", f"mission/{mid}", {"mission_id": mid})
    assert "it is cancelled" in line
    more = {"sortie_id": "srt-more", "mission_id": mid, "title": "more"}
    line = _refused(cli, repo, "viper", "sortie_created", "sortie/srt-more", more)
    assert f"its mission {mid} is cancelled" in line


def test_emit_takes_a_sortie_over_only_from_a_pilot_no_longer_active(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    assert as_(cli, repo, "viper", "sortie", "claim", sid).code == 0
    claim = {"sortie_id": sid, "assignee": "goose", "previous_assignee": "viper"}
    line = _refused(cli, repo, "goose", "sortie_assigned", f"sortie/{sid}", claim)
    assert "its assignee viper is active" in line
    _limit(repo, 1)  # viper falls silent (a deregistration would hand the sortie back)
    time.sleep(1.2)
    res = as_(cli, repo, "goose", "emit", "sortie_assigned", "--stream", f"sortie/{sid}",
              "--data", orjson.dumps(claim).decode())  # fmt: skip
    assert res.code == 0, res.err


# -- sorties: the rules that cross streams, judged by index.claims --------------------------


def _sortie(cli: Any, repo: Path) -> tuple[str, str]:
    """A sortie viper claimed with `--reserve` (src/s.py), and that reservation's id."""
    sid = as_(cli, repo, "viper", "sortie", "create", "S", "--file", "src/s.py").out.strip()
    assert as_(cli, repo, "viper", "sortie", "claim", sid, "--reserve").code == 0
    (res,) = cli(repo, "reservations", "--json").items()
    return sid, str(res["id"])


def _takeover(sid: str, rid: str, ahead_ms: int | None = None) -> list[tuple[Any, ...]]:
    """What `sortie claim` by goose writes to take viper's sortie over: the claim, the forced
    release of what viper's claim reserved; and goose starting it."""
    claim = {"sortie_id": sid, "assignee": "goose", "previous_assignee": "viper"}
    release = {"reservation_id": rid, "forced": True, "forced_by": "goose"}
    return [
        ("sortie_assigned", f"sortie/{sid}", claim, "goose", ahead_ms),
        ("file_released", f"reservation/{rid}", release, "goose", ahead_ms),
        ("sortie_started", f"sortie/{sid}", {"sortie_id": sid}, "goose", ahead_ms),
    ]


def _plant_all(repo: Path, items: list[tuple[Any, ...]]) -> None:
    for etype, stream, data, actor, ahead_ms in items:
        if ahead_ms is None:
            plant(repo, etype, stream, data, actor)
        else:
            _ahead(repo, etype, stream, data, actor, ahead_ms)


def _held(cli: Any, repo: Path, sid: str) -> tuple[str, str]:
    shown = cli(repo, "sortie", "show", sid, "--json").json()
    return shown["assignee"], shown["status"]


def test_a_takeover_of_an_active_pilots_sortie_changes_nothing(repo: Path, cli: Any) -> None:
    """Another clone takes viper's sortie over while viper is active (`claim` and `emit` refuse
    it): the claim, the start and the forced release count for nothing, in every clone."""
    register(cli, repo, "viper", "goose")
    sid, rid = _sortie(cli, repo)
    _plant_all(repo, _takeover(sid, rid))
    committed(repo)
    assert _held(cli, repo, sid) == ("viper", "assigned")
    assert holders(cli, repo) == {"src/s.py": "viper"}
    assert as_(cli, repo, "goose", "check", "src/s.py").code == 1  # still blocks goose
    assert as_(cli, repo, "viper", "sortie", "start", sid).code == 0  # still viper's to work
    assert _held(cli, repo, sid) == ("viper", "in_progress")
    same_after_rebuild(repo, cli)


def test_a_takeover_counts_once_the_pilot_was_silent_for_the_window(repo: Path, cli: Any) -> None:
    """Judged at the claim's point in total order from the events alone: a sign of life of the
    previous assignee that arrives later, sorting before the claim, undoes the takeover (and the
    forced release with it), in every clone."""
    _limit(repo, 60)
    register(cli, repo, "viper", "goose")
    sid, rid = _sortie(cli, repo)
    _plant_all(repo, _takeover(sid, rid, 120_000))
    committed(repo)
    assert _held(cli, repo, sid) == ("goose", "in_progress")  # viper silent for 120 s
    assert holders(cli, repo) == {}
    same_after_rebuild(repo, cli)
    pos = str(cli(repo, "events", "--reverse", "--limit", "1", "--json").items()[0]["pos"])
    _ahead(repo, "context_compacted", "pilot/viper", {"summary": "alive"}, "viper", 90_000)
    committed(repo)
    assert _held(cli, repo, sid) == ("viper", "assigned")  # seen 30 s before the claim
    assert holders(cli, repo) == {"src/s.py": "viper"}
    same_after_rebuild(repo, cli)
    then = cli(repo, "sortie", "show", sid, "--as-of", pos, "--json").json()
    assert then["assignee"] == "goose"  # as of before that sign of life arrived


def test_a_takeover_of_a_deregistered_pilots_sortie_counts(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper", "goose")
    sid, rid = _sortie(cli, repo)
    # viper left without handing it back (`pilot deregister` does; another clone's older one not)
    plant(repo, "pilot_deregistered", "pilot/viper", {}, "viper")
    _plant_all(repo, _takeover(sid, rid))
    committed(repo)
    assert _held(cli, repo, sid) == ("goose", "in_progress")
    assert holders(cli, repo) == {}
    same_after_rebuild(repo, cli)


@pytest.mark.parametrize("how", ["pull", "fetch"])
def test_a_takeover_pushed_by_another_clone_changes_nothing_in_the_victim(
    tmp_path: Path, how: str
) -> None:
    """For real: the victim's viper-1 claimed a sortie with --reserve; an attacker clone pushes
    goose's takeover of it (viper-1 active), the forced release of its files and a start."""
    from tests.hostile import COMMANDS, Scenario, fleetgit, line, projections

    s = Scenario(tmp_path)
    v = s.victim
    sid = s.ok(v, "--as", "viper-1", "sortie", "create", "S", "--file", "src/s.py").out.strip()
    s.ok(v, "--as", "viper-1", "sortie", "claim", sid, "--reserve")
    rid = next(
        r["id"] for r in s.ok(v, "reservations", "--json").items() if r["pattern"] == "src/s.py"
    )
    s.ok(v, "commit", "-m", "fleet: viper-1 claims S")
    git(v, "push", "-q")
    git(s.attacker, "pull", "-q")
    claim = {"sortie_id": sid, "assignee": "goose", "previous_assignee": "viper-1"}
    release = {"reservation_id": rid, "forced": True, "forced_by": "goose"}
    s.push_lines(
        line("sortie_assigned", f"sortie/{sid}", claim, actor="goose", wseq=1, seq=3),
        line("file_released", f"reservation/{rid}", release, actor="goose", wseq=2, seq=2),
        line("sortie_started", f"sortie/{sid}", {"sortie_id": sid}, actor="goose", wseq=3, seq=4),
    )
    s.receive(how)
    for args in COMMANDS:
        res = fleetgit(v, *args)
        assert res.code in (0, 1), f"{args}: exit {res.code}: {res.err}"
    shown = fleetgit(v, "sortie", "show", sid, "--json")
    assert (shown.json()["assignee"], shown.json()["status"]) == ("viper-1", "assigned")
    assert fleetgit(v, "--as", "goose", "check", "src/s.py").code == 1  # still blocks goose
    s.assert_blocks_and_passes()
    before = projections(v)
    assert fleetgit(v, "index", "rebuild").code == 0
    assert projections(v) == before


def test_a_claim_or_start_after_the_mission_ended_changes_nothing(repo: Path, cli: Any) -> None:
    """Another clone ended the mission (its sorties still open there) before these reached it:
    what sorts after the end counts for nothing; what sorts before it stays."""
    register(cli, repo, "viper", "goose")
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "A", "--mission", mid).out.strip()
    late = as_(cli, repo, "viper", "sortie", "create", "B", "--mission", mid).out.strip()
    assert as_(cli, repo, "goose", "sortie", "claim", sid).code == 0  # before the end: counts
    _ahead(repo, "mission_cancelled", f"mission/{mid}", {"mission_id": mid}, "viper", 60_000)
    _ahead(repo, "sortie_started", f"sortie/{sid}", {"sortie_id": sid}, "goose", 90_000)
    claim = {"sortie_id": late, "assignee": "goose", "previous_assignee": None}
    _ahead(repo, "sortie_assigned", f"sortie/{late}", claim, "goose", 90_000)
    committed(repo)
    assert cli(repo, "mission", "show", mid, "--json").json()["status"] == "cancelled"
    assert _held(cli, repo, sid) == ("goose", "assigned")
    assert _held(cli, repo, late) == (None, "open")
    same_after_rebuild(repo, cli)
    # a claim that sorts before the end (another clone's, arriving late): it counts
    early = {"sortie_id": late, "assignee": "viper", "previous_assignee": None}
    plant(repo, "sortie_assigned", f"sortie/{late}", early, "viper")
    committed(repo)
    assert _held(cli, repo, late) == ("viper", "assigned")
    same_after_rebuild(repo, cli)


def test_emit_of_a_mission_end_with_open_sorties_is_refused(repo: Path, cli: Any) -> None:
    register(cli, repo, "viper")
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "A", "--mission", mid).out.strip()
    line = _refused(cli, repo, "viper", "mission_completed", f"mission/{mid}", {"mission_id": mid})
    assert f"sorties of it are still open ({sid})" in line


# -- incremental == rebuild, with the force rule's time gaps ---------------------------------

HOLDERS = ("viper", "goose")
GAPS = [0, 1, 600, 2000]  # seconds: around the default limit (900 s)
KINDS = st.sampled_from(["grant", "release", "renew", "seen", "deregister", "register"])


def _item(kind: str, rid: str, who: str, gap_s: int) -> tuple[str, str, dict[str, Any], str, int]:
    if kind == "grant":
        data = {"reservation_id": rid, "holder": who, "patterns": [f"src/{rid}"],
                "exclusive": True, "ttl_seconds": 7200}  # fmt: skip
        return "file_reserved", f"reservation/{rid}", data, who, gap_s
    if kind == "release":
        return "file_released", f"reservation/{rid}", {"reservation_id": rid}, who, gap_s
    if kind == "renew":
        data = {"reservation_id": rid, "ttl_seconds": 60}
        return "file_renewed", f"reservation/{rid}", data, who, gap_s
    if kind == "seen":
        return "context_compacted", f"pilot/{who}", {"summary": "x"}, who, gap_s
    if kind == "deregister":
        return "pilot_deregistered", f"pilot/{who}", {}, who, gap_s
    return "pilot_registered", f"pilot/{who}", {"callsign": who}, who, gap_s


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            KINDS,
            st.sampled_from(["r1", "r2"]),
            st.sampled_from(HOLDERS),
            st.sampled_from(GAPS),
        ),
        min_size=1,
        max_size=25,
    ),
    st.randoms(),
    st.integers(1, 4),
)
def test_forced_releases_fold_alike_in_any_arrival_order(
    tmp_path_factory: Any, steps: list[tuple[str, str, str, int]], rnd: Any, chunk: int
) -> None:
    """Releases by other pilots, holders seen or deregistering at random gaps of time: the
    verdicts, and so the reservations, are the same whatever order the events arrive in."""
    out = []
    ms = 10**12
    for i, step in enumerate(steps, 1):
        etype, stream, data, actor, gap_s = _item(*step)
        ms += gap_s * 1000
        e = Event(
            id=f"e{i:04d}", type=etype, v=1, stream=stream, seq=i, hlc=clock.make_hlc(ms),
            writer="w" * 16, wseq=i, actor=actor, ts="", tx=f"e{i:04d}", txn=1, data=data,
        )  # fmt: skip
        out.append((e, encode(e)))
    rnd.shuffle(out)
    assert_folds_like_a_rebuild(tmp_path_factory.mktemp("force"), out, chunk, positions=False)


CLAIM_KINDS = st.sampled_from(
    ["claim", "takeover", "takeover", "start", "seen", "deregister", "end"]
)


def _claim_item(kind: str, sid: str, who: str, gap_s: int) -> tuple[Any, ...]:
    """One event of a sortie's claims and of what they are judged by (its previous assignee's
    signs of life, its mission's end), `gap_s` after the one before."""
    other = HOLDERS[1 - HOLDERS.index(who)]
    stream = f"sortie/{sid}"
    if kind == "create":
        data = {"sortie_id": sid, "title": sid, "mission_id": "msn-1"}
        return "sortie_created", stream, data, who, gap_s
    if kind in ("claim", "takeover"):
        previous = other if kind == "takeover" else None
        data = {"sortie_id": sid, "assignee": who, "previous_assignee": previous}
        return "sortie_assigned", stream, data, who, gap_s
    if kind == "start":
        return "sortie_started", stream, {"sortie_id": sid}, who, gap_s
    if kind == "mission":
        data = {"mission_id": "msn-1", "title": "M"}
        return "mission_created", "mission/msn-1", data, who, gap_s
    if kind == "end":
        return "mission_cancelled", "mission/msn-1", {"mission_id": "msn-1"}, who, gap_s
    return _item(kind, "r1", who, gap_s)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            CLAIM_KINDS,
            st.sampled_from(["s1", "s2"]),
            st.sampled_from(HOLDERS),
            st.sampled_from(GAPS),
        ),
        min_size=1,
        max_size=25,
    ),
    st.randoms(),
    st.integers(1, 4),
)
def test_takeovers_and_claims_after_a_mission_end_fold_alike_in_any_arrival_order(
    tmp_path_factory: Any, steps: list[tuple[str, str, str, int]], rnd: Any, chunk: int
) -> None:
    """Takeovers, previous assignees seen or deregistering, a mission ending, at random gaps of
    time around the activity window: the verdicts, the mission ends the sortie folds saw, and
    so the sorties, are the same whatever order the events arrive in (and as a rebuild)."""
    out = []
    ms = 10**12
    first = [
        ("mission", "s1", "viper", 0),
        ("create", "s1", "viper", 0),
        ("create", "s2", "viper", 0),
    ]
    for i, step in enumerate(first + steps, 1):
        etype, stream, data, actor, gap_s = _claim_item(*step)
        ms += gap_s * 1000
        e = Event(
            id=f"e{i:04d}", type=etype, v=1, stream=stream, seq=i, hlc=clock.make_hlc(ms),
            writer="w" * 16, wseq=i, actor=actor, ts="", tx=f"e{i:04d}", txn=1, data=data,
        )  # fmt: skip
        out.append((e, encode(e)))
    rnd.shuffle(out)
    assert_folds_like_a_rebuild(tmp_path_factory.mktemp("claims"), out, chunk, positions=False)


@pytest.mark.parametrize("who", ["goose"])
def test_a_cancel_by_another_pilot_leaves_an_active_holders_files(
    repo: Path, cli: Any, who: str
) -> None:
    """`sortie cancel` frees what the claim reserved only when the folds would count it."""
    register(cli, repo, "viper", who)
    sid = as_(cli, repo, "viper", "sortie", "create", "S", "--file", "src/s.py").out.strip()
    assert as_(cli, repo, "viper", "sortie", "claim", sid, "--reserve").code == 0
    assert as_(cli, repo, who, "sortie", "cancel", sid).code == 0
    assert holders(cli, repo) == {"src/s.py": "viper"}
    assert cli(repo, "events", "--type", "file_released", "--json").items() == []


def test_the_lock_fold_holds_a_ttl_to_the_limit() -> None:
    """Whatever reached the ledger: a TTL past 366 days holds the lock 366 days, not for ever."""
    from fleetgit.domain.fold import Ev
    from fleetgit.domain.locks import fold as locks
    from fleetgit.ledger.durations import MAX_SECONDS

    ms = 10**12
    data = {"lock_key": "k", "holder": "viper", "ttl_seconds": 99999999999}
    ev = Ev("lock_acquired", data, clock.make_hlc(ms), "w" * 16, 1, "viper", 1)
    (row,) = locks.fold([ev])["locks"]
    assert row["expires_ms"] == ms + MAX_SECONDS * 1000
