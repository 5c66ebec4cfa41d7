"""Signed events (issue 17): under trust = "require", an event no valid signature of its actor
covers is never believed: not by a projection, the hooks, `check` or the reservation checks.
Real git, a bare remote, an attacker's clone that pushes crafted segments."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.index import trust
from fleetgit.ledger import clock, keys, sigs
from fleetgit.ledger.codec import decode
from tests.conftest import git, make_repo, run_fleetgit
from tests.hostile import ATTACKER_WRITER, Scenario, fleetgit, grant, line, projections


def _own_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def signed_by(
    key: Any, lines: list[bytes], writer: str = ATTACKER_WRITER, number: int = 1
) -> bytes:
    """`lines` as one segment of `writer`, each a batch signed with `key` (whoever it is)."""
    out: list[bytes] = []
    for raw in lines:
        event = decode(raw)
        base = sigs.chain(sigs.genesis(writer, number), out)
        out += trust.sign_batch([raw], [event], number, base, lambda _actor: key)
    return b"".join(out)


def victim_lines(s: Scenario) -> tuple[str, list[bytes]]:
    """The victim's writer and the lines of its segment 1 (registrations, the reservation)."""
    (path,) = (s.victim / ".fleet/events").glob("*/00000001.jsonl")
    return path.parent.name, path.read_bytes().splitlines(keepends=True)


def reservation(s: Scenario) -> tuple[str, bytes]:
    writer, lines = victim_lines(s)
    (raw,) = [x for x in lines if b'"file_reserved"' in x]
    return writer, raw


def quarantine(repo: Path) -> list[dict[str, Any]]:
    res = fleetgit(repo, "quarantine", "--json")
    assert res.code == 0, res.err
    return list(orjson.loads(res.out)["quarantine"])


@pytest.fixture
def s(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path, trust="require")


def test_a_forged_release_of_another_pilot_is_quarantined(s: Scenario) -> None:
    _, raw = reservation(s)
    rid = decode(raw).data["reservation_id"]
    forged = line("file_released", f"reservation/{rid}", {"reservation_id": rid}, actor="viper-1")
    before = projections(s.victim)
    s.push_lines(signed_by(_own_key(), [forged]))  # signed, by a key that is not viper-1's
    s.receive("fetch")
    s.check_victim("unverified")
    assert projections(s.victim) == before
    (q,) = quarantine(s.victim)
    assert (q["writer"], q["segment"], q["line"], q["actor"]) == (ATTACKER_WRITER, 1, 1, "viper-1")
    assert "bad signature" in q["reason"]
    verify = fleetgit(s.victim, "verify").out
    assert f"{ATTACKER_WRITER}/00000001 line 1" in verify and "file_released" in verify


def test_an_unsigned_event_is_quarantined_and_named(s: Scenario) -> None:
    before = projections(s.victim)
    s.push_lines(grant("**", holder="goose"))  # goose is registered, but this is unsigned
    s.receive("pull")
    s.check_victim("unsigned")
    assert projections(s.victim) == before
    blocked = fleetgit(s.victim, "--as", "viper-1", "check", "README.md")
    assert blocked.code == 0, blocked.out  # the forged `**` of goose blocks nothing


def test_an_altered_copy_of_a_real_signed_line_is_quarantined(s: Scenario) -> None:
    writer, raw = reservation(s)
    (eid,) = clock.uuid7s(1)
    old_id = decode(raw).id
    altered = raw.replace(b"src/app.py", b"docs/**").replace(old_id.encode(), eid.encode())
    assert altered != raw and altered.startswith(sigs.PREFIX)  # the real signature kept
    before = projections(s.victim)
    s.push(f".fleet/events/{writer}/00000077.jsonl", altered)
    s.receive("fetch")
    s.check_victim("unverified")
    assert projections(s.victim) == before
    (q,) = quarantine(s.victim)
    assert (q["writer"], q["segment"], q["id"]) == (writer, 77, eid)


def test_a_line_moved_into_another_writers_segment_counts_nowhere(s: Scenario) -> None:
    writer, raw = reservation(s)
    event = decode(raw)
    moved = raw.replace(writer.encode(), ATTACKER_WRITER.encode())  # its writer field follows
    before = projections(s.victim)
    s.push_lines(moved, raw)  # the other, verbatim, is refused by intake (not its writer's)
    s.receive("fetch")
    s.check_victim("unverified")
    assert projections(s.victim) == before
    reasons = {q["id"]: q["reason"] for q in quarantine(s.victim)}
    assert "bad signature" in reasons[event.id]
    assert "refused line" in fleetgit(s.victim, "verify").out


def release_with_the_rotated_key(s: Scenario) -> list[bytes]:
    """viper-1 rotates its key and publishes that; the attacker, holding the old key, signs a
    release of viper-1's reservation (to come after the revocation in total order)."""
    stolen = keys.load(s.victim / ".git", "viper-1")  # the key as it was before the rotation
    assert stolen is not None
    rotated = fleetgit(s.victim, "--as", "viper-1", "pilot", "key", "rotate", "--json")
    assert rotated.code == 0, rotated.err
    assert orjson.loads(rotated.out)["revoked"] == keys.public(stolen)
    fleetgit(s.victim, "commit", "-m", "fleet: rotate")
    git(s.victim, "push", "-q")
    git(s.attacker, "pull", "-q", "--no-rebase", "--no-edit")
    _, raw = reservation(s)
    rid = decode(raw).data["reservation_id"]
    forged = line("file_released", f"reservation/{rid}", {"reservation_id": rid}, actor="viper-1")
    return signed_by(stolen, [forged])


def test_an_event_signed_by_a_revoked_key_is_quarantined_and_rotation_keeps_the_past(
    s: Scenario,
) -> None:
    forged = release_with_the_rotated_key(s)
    before = projections(s.victim)
    s.push_lines(forged)
    s.receive("fetch")
    s.check_victim("unverified")
    assert projections(s.victim) == before  # the reservation the old key signed still holds
    (q,) = quarantine(s.victim)
    assert q["type"] == "file_released" and "valid at its time" in q["reason"]
    # the rotated pilot still acts, with its new key, and its past stays valid on rebuild
    assert fleetgit(s.victim, "--as", "viper-1", "renew", "--json").code == 0
    assert fleetgit(s.victim, "index", "rebuild").code == 0
    assert [q["type"] for q in quarantine(s.victim)] == ["file_released"]


def test_a_clone_without_the_key_cannot_act_as_or_register_the_pilot(
    s: Scenario, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    victims = {"FLEETGIT_KEY_DIR": os.environ["FLEETGIT_KEY_DIR"]}  # the victim's machine
    monkeypatch.setenv("FLEETGIT_KEY_DIR", str(tmp_path / "other-machine"))
    git(s.attacker, "pull", "-q", "--no-rebase", "--no-edit")
    acted = run_fleetgit(s.attacker, "--as", "viper-1", "reserve", "docs/")
    assert acted.code == 1 and "holds no key of pilot viper-1" in acted.err, acted.err
    again = run_fleetgit(s.attacker, "pilot", "register", "viper-1")
    assert again.code == 1 and "holds no key of pilot viper-1" in again.err
    typo = run_fleetgit(s.attacker, "--as", "viper1", "reserve", "docs/")
    assert typo.code == 1 and "viper-1" in typo.err  # the closest registered callsign
    # the pilot's key, exported on its machine and imported here, lets it act
    exported = run_fleetgit(s.victim, "--as", "viper-1", "pilot", "key", "export", env=victims)
    assert exported.code == 0 and exported.out.startswith("fleetgit-ed25519:"), exported.err
    wrong = run_fleetgit_input(s.attacker, exported.out, "--as", "goose", "pilot", "key", "import")
    assert wrong.code == 1 and "not one of pilot goose's keys" in wrong.err
    imported = run_fleetgit_input(
        s.attacker, exported.out, "--as", "viper-1", "pilot", "key", "import"
    )
    assert imported.code == 0, imported.err
    assert run_fleetgit(s.attacker, "--as", "viper-1", "reserve", "docs/").code == 0


def run_fleetgit_input(cwd: Path, text: str, *args: str) -> Any:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "fleetgit", *args],
        cwd=cwd, input=text, capture_output=True, text=True, check=False, env=dict(os.environ),
    )  # fmt: skip
    return type("R", (), {"code": proc.returncode, "out": proc.stdout, "err": proc.stderr})


def test_a_ledger_from_before_keys_opens_under_warn_with_nothing_lost(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "old")
    assert run_fleetgit(repo, "init").code == 0
    config = repo / ".fleet/config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('trust = "require"', 'trust = "off"'), encoding="utf-8")
    for args in (("pilot", "register", "viper-1"), ("--as", "viper-1", "reserve", "src/")):
        assert run_fleetgit(repo, *args).code == 0  # written with no key, no signature
    lines = b"".join(p.read_bytes() for p in (repo / ".fleet/events").glob("*/*.jsonl"))
    assert sigs.PREFIX not in lines
    # the config as it was before issue 17: no `trust` line at all
    config.write_text(text.replace('trust = "require"', ""), encoding="utf-8")
    assert run_fleetgit(repo, "index", "rebuild").code == 0
    held = orjson.loads(run_fleetgit(repo, "reservations", "--json").out)["reservations"]
    assert [r["holder"] for r in held] == ["viper-1"]
    listed = orjson.loads(run_fleetgit(repo, "quarantine", "--json").out)
    assert listed["trust"] == "warn" and all(q["kept"] for q in listed["quarantine"])
    verify = run_fleetgit(repo, "verify")
    assert verify.code == 0 and "trust = warn" in verify.out, verify.out
    # the old pilot still acts; `pilot key add` gives it a key from then on
    assert run_fleetgit(repo, "--as", "viper-1", "renew").code == 0
    assert run_fleetgit(repo, "--as", "viper-1", "pilot", "key", "add").code == 0
    assert run_fleetgit(repo, "--as", "viper-1", "renew").code == 0
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    assert conn.execute("SELECT count(*) FROM pilot_keys").fetchone() == (1,)
    # signed by the new key, so a rebuild (as any other clone) learns it too
    assert run_fleetgit(repo, "index", "rebuild").code == 0
    assert conn.execute("SELECT count(*) FROM pilot_keys").fetchone() == (1,)
    listed = orjson.loads(run_fleetgit(repo, "quarantine", "--json").out)["quarantine"]
    assert [q["type"] for q in listed] == ["pilot_registered", "file_reserved", "file_renewed"]


def test_rebuild_equals_incremental_with_quarantined_events(s: Scenario) -> None:
    s.push_lines(
        grant("docs/", holder="goose"),
        signed_by(_own_key(), [grant("lib/", holder="viper-1", wseq=2)]),
    )
    s.receive("fetch")
    fleetgit(s.victim, "reservations")
    before = projections(s.victim), sorted(q["id"] for q in quarantine(s.victim))
    assert len(before[1]) == 2
    assert fleetgit(s.victim, "index", "rebuild").code == 0
    after = projections(s.victim), sorted(q["id"] for q in quarantine(s.victim))
    assert after == before


def test_a_key_that_arrives_after_its_pilots_events_lets_them_in(repo: Path, cli: Any) -> None:
    """Sources come in any order: events of a pilot whose registration another source brings
    later wait in the quarantine, then count (as a rebuild, which may read them first, does)."""
    from fleetgit.ledger.codec import Event
    from tests.conftest import signed_segment

    assert cli(repo, "pilot", "register", "jester").code == 0
    (eid,) = clock.uuid7s(1)
    now = clock.now_ms()
    event = Event(
        eid, "pilot_active", 1, "pilot/jester", 2, clock.make_hlc(now + 5), "w" * 16, 1, "jester",
        clock.iso_ms(now), eid, 1, {"status": "busy"},
    )  # fmt: skip
    folder = repo / ".fleet/events" / ("w" * 16)
    folder.mkdir()
    (folder / "00000001.jsonl").write_bytes(signed_segment(repo, 1, [event]))
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    conn.execute("DELETE FROM pilot_keys WHERE callsign = 'jester'")  # as if not seen yet
    conn.commit()
    assert cli(repo, "events", "--json").code == 0
    assert [q["id"] for q in cli(repo, "quarantine", "--json").json()["quarantine"]] == [eid]
    assert cli(repo, "index", "rebuild").code == 0  # the registration is read: it counts
    assert cli(repo, "quarantine", "--json").json()["quarantine"] == []
    assert cli(repo, "show", eid).code == 0


def test_a_blob_screened_late_keeps_the_line_numbers_of_its_quarantined_events(
    s: Scenario,
) -> None:
    """A committed segment whose pilot has no key yet when it is read (its registration is in
    a writer read later in the same catch-up) is screened at the catch-up's end: its
    quarantined lines still carry their numbers in the blob, as when screened at once."""
    key = _own_key()
    late = "zzzzzzzz00000001"  # read after ATTACKER_WRITER: the tree lists writers by name
    data = {"callsign": "newbie", "key": keys.public(key)}
    registration = line("pilot_registered", "pilot/newbie", data, actor="newbie", writer=late)
    s.push(f".fleet/events/{late}/00000001.jsonl", signed_by(key, [registration], writer=late))
    active = {"current_task": "t", "status": None}
    first = line("pilot_active", "pilot/newbie", active, actor="newbie", wseq=1)
    unsigned = line("pilot_active", "pilot/newbie", active, actor="newbie", wseq=2)
    s.push_lines(signed_by(key, [first]), unsigned)
    s.receive("fetch")
    (q,) = quarantine(s.victim)
    assert (q["writer"], q["segment"], q["line"]) == (ATTACKER_WRITER, 1, 2)
    assert q["id"] == decode(unsigned).id and "unsigned" in q["reason"]


def _signature_rows(repo: Path) -> list[tuple[str, str]]:
    from fleetgit.fleet import Fleet

    with Fleet.open(repo) as fleet:
        rows = fleet.index.conn.execute("SELECT writer, ids FROM signatures ORDER BY rowid")
        return [(str(w), str(ids)) for w, ids in rows]


def test_a_copy_read_again_adds_no_signatures_row(repo: Path, tmp_path: Path) -> None:
    """Signed lines the index holds already with the same bytes (here: a linked worktree's
    checkout of the committed segments, read by the next catch-up) are not kept again: the
    signatures table grows only with a line it has no copy of."""
    from fleetgit.fleet import Fleet

    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(3):
            fleet.emit("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
        fleet.commit()
    before = _signature_rows(repo)
    assert before
    git(repo, "worktree", "add", "-q", "-b", "other", str(tmp_path / "other"))
    assert (tmp_path / "other" / ".fleet" / "events").is_dir()
    with Fleet.open(repo) as fleet:
        fleet.catch_up()
    assert _signature_rows(repo) == before


def test_a_key_batch_signature_is_verified_once(repo: Path, monkeypatch: Any) -> None:
    """Reading a key batch (here: the five registrations with their keys, in a rebuild),
    `derive` checks its signature to take the key and the screen then covers the same batch
    by the same signature: one ed25519 verification of each signed message, not two."""
    from fleetgit.fleet import Fleet

    messages: list[bytes] = []
    real = keys.verify

    def counting(raw: bytes, signature: bytes, message: bytes) -> bool:
        messages.append(message)
        return real(raw, signature, message)

    with Fleet.open(repo) as fleet:
        trust._verified.clear()  # earlier tests' checks, remembered
        monkeypatch.setattr(keys, "verify", counting)
        fleet.index.rebuild()
    assert len(messages) == 5
    assert len(set(messages)) == len(messages)


def _kept_twice(repo: Path) -> list[tuple[str, str]]:
    """(writer, id) of each line signature the index keeps more than once."""
    from collections import Counter

    from fleetgit.fleet import Fleet

    with Fleet.open(repo) as fleet:
        rows = fleet.index.conn.execute("SELECT writer, ids FROM signatures").fetchall()
    each = Counter((str(w), ids[i : i + 36]) for w, ids in rows for i in range(0, len(ids), 36))
    return sorted(k for k, n in each.items() if n > 1)


def test_a_rebuild_keeps_each_line_signature_once(repo: Path) -> None:
    """A rebuild keeps the signatures of the lines it takes without asking the index (its
    inserts run on another thread): a line it reads twice (here in a segment copied whole, as
    restore-lost writes lines again in a segment of their own) is kept once all the same, as
    a catch-up keeps it."""
    import shutil

    from fleetgit.fleet import Fleet
    from fleetgit.ledger.segments import RESTORED_SEGMENTS, segment_name

    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit("mission_created", "mission/m1", {"mission_id": "m1", "title": "t"})
        fleet.commit()
        writer = fleet.writer.id
    mine = repo / ".fleet" / "events" / writer
    (first,) = sorted(mine.glob("*.jsonl"))
    shutil.copyfile(first, mine / segment_name(RESTORED_SEGMENTS))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the same lines again")
    with Fleet.open(repo) as fleet:
        fleet.catch_up()
    assert _kept_twice(repo) == []
    with Fleet.open(repo) as fleet:
        fleet.rebuild()
    assert _kept_twice(repo) == []
