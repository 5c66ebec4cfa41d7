"""`fleetgit verify` checks the signatures again from the segments themselves, independent of
what the index believed, and names backdated events (issue 17). Real git, a bare remote, an
attacker's clone that pushes crafted segments (tests/hostile.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, decode, encode
from tests.conftest import git, signed
from tests.hostile import ATTACKER_WRITER, Scenario, fleetgit, grant, line, projections
from tests.test_trust import _own_key, release_with_the_rotated_key, reservation, signed_by


@pytest.fixture
def s(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path, trust="require")


def verify_json(repo: Path) -> dict[str, Any]:
    res = fleetgit(repo, "verify", "--json")
    assert res.code in (0, 1), res.err
    return dict(orjson.loads(res.out))


def problems(repo: Path, kind: str) -> list[dict[str, Any]]:
    return [p for p in verify_json(repo)["problems"] if p["kind"] == kind]


def test_verify_names_each_hostile_line_from_the_segments_not_the_index(s: Scenario) -> None:
    """A forged release, an unsigned grant, an altered copy of a real signed line and a line
    moved into another writer's segment: each named by writer, segment and line with its
    reason, and still named when the index's quarantine is wiped (it is not what verify
    reads); the index then disagrees with the segments, which verify says too."""
    writer, raw = reservation(s)
    rid = decode(raw).data["reservation_id"]
    forged = line("file_released", f"reservation/{rid}", {"reservation_id": rid}, actor="viper-1")
    (eid,) = clock.uuid7s(1)
    altered = raw.replace(b"src/app.py", b"docs/**").replace(decode(raw).id.encode(), eid.encode())
    moved = raw.replace(writer.encode(), ATTACKER_WRITER.encode())
    s.push_lines(
        signed_by(_own_key(), [forged]),  # line 1: signed, by a key that is not viper-1's
        grant("**", holder="goose", wseq=2),  # line 2: unsigned
        moved,  # line 3: another writer's signed line, its writer field changed to follow
    )
    s.push(f".fleet/events/{writer}/00000077.jsonl", altered)
    s.receive("fetch")
    assert fleetgit(s.victim, "reservations").code == 0  # the index catches up, quarantines
    found = {p["where"]: p["detail"] for p in problems(s.victim, "unverified")}
    assert "bad signature" in found[f"{ATTACKER_WRITER}/00000001 line 1"]
    assert "file_released by viper-1" in found[f"{ATTACKER_WRITER}/00000001 line 1"]
    assert "unsigned" in found[f"{ATTACKER_WRITER}/00000001 line 2"]
    assert "bad signature" in found[f"{ATTACKER_WRITER}/00000001 line 3"]
    assert "bad signature" in found[f"{writer}/00000077 line 1"]
    assert problems(s.victim, "index_trust") == []  # the index agrees
    conn = sqlite3.connect(s.victim / ".git/fleet/index.sqlite")
    quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    conn.execute("DELETE FROM quarantine")
    conn.commit()
    again = {p["where"]: p["detail"] for p in problems(s.victim, "unverified")}
    assert again == found and quarantined >= 3


def test_verify_reports_an_index_that_believed_an_unsigned_event(s: Scenario) -> None:
    """An index built while the fleet trusted everything (trust = off), then required: verify
    re-checks from the segments, names the event, and says the index was wrong; a rebuild
    makes them agree."""
    config = s.victim / ".fleet/config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('trust = "require"', 'trust = "off"'), encoding="utf-8")
    s.push_lines(grant("lib/", holder="goose"))
    s.receive("fetch")
    assert fleetgit(s.victim, "reservations").code == 0  # ingested, believed
    config.write_text(text, encoding="utf-8")
    (wrong,) = problems(s.victim, "index_trust")
    assert wrong["where"] == f"{ATTACKER_WRITER}/00000001 line 1"
    assert "holds it as valid" in wrong["detail"] and "rebuild" in wrong["hint"]
    assert fleetgit(s.victim, "index", "rebuild").code == 0
    assert problems(s.victim, "index_trust") == []
    assert len(problems(s.victim, "unverified")) == 1
    # and an honest event the index quarantined is a disagreement the other way
    conn = sqlite3.connect(s.victim / ".git/fleet/index.sqlite")
    _, raw = reservation(s)
    honest = decode(raw)
    conn.execute(
        "INSERT INTO quarantine SELECT id, 0, tx, writer, 1, 1, wseq, hlc, actor, type, 'x',"
        " x'00', 0 FROM events WHERE id = ?",
        (honest.id,),
    )
    conn.commit()
    (wrong,) = problems(s.victim, "index_trust")
    assert honest.id in wrong["detail"] and "quarantined it" in wrong["detail"]


def _append_signed(clone: Path, event: Event) -> None:
    """Append `event` (one batch) to its writer's segment 1 in `clone`, signed with the key of
    its actor that this machine holds, as a modified fleetgit would write it."""
    segment = clone / ".fleet/events" / event.writer / "00000001.jsonl"
    data = signed(clone, segment, event, encode(event))
    with open(segment, "ab") as fh:
        fh.write(data)


def test_a_grant_backdated_to_win_a_clash_is_named_by_verify(s: Scenario) -> None:
    """goose's clone (it holds goose's key) has ingested viper-1's reservation of src/app.py,
    and its own later events show it; it then writes a grant of the same file stamped 1 ms
    before viper-1's, signed, so that it sorts first and wins the clash. The signature holds;
    verify names the event as backdated, with its writer, segment, line and by how much."""
    a = s.attacker
    assert fleetgit(a, "--as", "goose", "reserve", "docs/").code == 0  # after viper-1's grant
    writer = (a / ".git/fleet/writer").read_text(encoding="utf-8").split()[0]
    _, raw = reservation(s)
    victim = decode(raw)
    segment = a / ".fleet/events" / writer / "00000001.jsonl"
    last = decode(segment.read_bytes().splitlines(keepends=True)[-1])
    rid = "res-" + clock.short_id("", 40)
    early = victim.hlc - (1 << 16)  # 1 ms before viper-1's grant
    (eid,) = clock.uuid7s(1)
    data = {"reservation_id": rid, "patterns": ["src/app.py"], "holder": "goose",
            "exclusive": True, "ttl_seconds": 7200}  # fmt: skip
    backdated = Event(
        eid, "file_reserved", 1, f"reservation/{rid}", 1, early, writer, last.wseq + 1, "goose",
        clock.iso_ms(clock.hlc_ms(early)), eid, 1, data,
    )  # fmt: skip
    _append_signed(a, backdated)
    git(a, "add", "-f", ".fleet")
    git(a, "commit", "-q", "--no-verify", "-m", "goose reserves, early")
    git(a, "push", "-q")
    s.receive("fetch")
    assert fleetgit(s.victim, "reservations").code == 0
    assert problems(s.victim, "unverified") == []  # goose's key signed it: it is goose's
    (found,) = problems(s.victim, "backdated")
    lineno = len(segment.read_bytes().splitlines())
    assert found["where"] == f"{writer}/00000001 line {lineno}"
    assert eid in found["detail"] and "ms before an earlier event of its writer" in found["detail"]
    ms = int(found["detail"].split("stamped ")[1].split(" ms")[0])
    assert ms >= 1
    assert fleetgit(s.victim, "verify").code == 1
    assert projections(s.victim)  # the index still reads


def test_verify_names_an_event_signed_by_a_revoked_key_and_agrees_with_the_index(
    s: Scenario,
) -> None:
    """The revoked-key case of tests/test_trust.py, seen by verify from the segments: the key
    is valid for what it signed before its revocation, not after, in total order."""
    s.push_lines(release_with_the_rotated_key(s))
    s.receive("fetch")
    assert fleetgit(s.victim, "reservations").code == 0
    (found,) = problems(s.victim, "unverified")
    assert found["where"] == f"{ATTACKER_WRITER}/00000001 line 1"
    assert "valid at its time" in found["detail"]
    assert problems(s.victim, "index_trust") == []
