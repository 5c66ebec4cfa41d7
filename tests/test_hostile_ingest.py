"""Nothing another clone commits can break, blind or mislead this one: malformed events, far
clocks, and the ledger's past rewritten or deleted, each pushed by a real attacker clone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.ledger import clock
from tests.conftest import git
from tests.hostile import ATTACKER_WRITER, Scenario, fleetgit, grant, projections


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _malformed() -> dict[str, bytes]:
    """Lines an append would never write, each a `**` grant if it were followed."""
    good = orjson.loads(grant("**"))
    data = good["data"]

    def variant(**changes: Any) -> bytes:  # json, not orjson: it writes integers of any size
        obj = {**good, **changes}
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    deep = orjson.dumps({**good, "data": {**data, "reason": "x"}}, option=orjson.OPT_SORT_KEYS)
    return {
        "missing field": variant(data={k: v for k, v in data.items() if k != "holder"}),
        "wrong type": variant(data={**data, "ttl_seconds": "2h"}),
        "empty data": variant(data={}),
        "nested 1000 deep": deep.replace(b'"x"', _nested(1000)) + b"\n",
        "hlc of 2^63": variant(hlc=1 << 63),
        "seq of 2^64": variant(seq=1 << 64),
        "wseq of 2^63": variant(wseq=(1 << 63) + 5),
        "unknown v": variant(v=2),
        "unknown type": variant(type="file_reserved_v9"),
        "duplicate keys": variant()[:-2] + b',"v":1}\n',
        "keys unsorted": orjson.dumps(dict(reversed(good.items()))) + b"\n",
        "spaces": orjson.dumps(good, option=orjson.OPT_SORT_KEYS).replace(b",", b", ") + b"\n",
        "ttl past 366 days": variant(data={**data, "ttl_seconds": 10**12}),
        "writer not its dir": variant(writer="zzzzzzzzzzzzzzzz"),
    }


MALFORMED = _malformed()


@pytest.mark.parametrize("how", ["pull", "fetch"])
def test_malformed_events_from_another_clone_are_refused_and_reported(
    tmp_path: Path, how: str
) -> None:
    s = Scenario(tmp_path)
    ok = grant("docs/attacker.md", wseq=2)  # a valid batch among the bad ones still counts
    bad = [MALFORMED[case] for case in sorted(MALFORMED)]
    s.push_lines(*bad[:5], ok, *bad[5:])
    s.receive(how)
    first = fleetgit(s.victim, "reservations")  # after a pull, the post-merge hook read them
    assert ("line(s) in the ledger were skipped" in first.err) == (how == "fetch"), first.err
    assert "skipped" not in fleetgit(s.victim, "reservations").err  # said once
    status = orjson.loads(fleetgit(s.victim, "index", "status", "--json").out)
    assert status["refused"] == len(bad)
    s.check_victim("refused line")
    verify = fleetgit(s.victim, "verify").out
    offset = 0
    for content in [*bad[:5], ok, *bad[5:]]:  # each bad line named where it is
        if content is not ok:
            assert f"{ATTACKER_WRITER}/00000001@{offset}:" in verify, (content[:80], verify)
        offset += len(content)
    held = fleetgit(s.victim, "reservations", "--json")
    assert {r["pattern"] for r in orjson.loads(held.out)["reservations"]} == {
        "src/app.py",
        "docs/attacker.md",
    }


@pytest.mark.parametrize("how", ["pull", "fetch"])
def test_a_grant_stamped_in_2100_is_held_back_not_followed(tmp_path: Path, how: str) -> None:
    s = Scenario(tmp_path)
    ms_2100 = 4_102_444_800_000
    s.push_lines(grant("**", hlc=clock.make_hlc(ms_2100)))
    s.receive(how)
    s.check_victim("held back")
    listed = orjson.loads(fleetgit(s.victim, "reservations", "--json").out)["reservations"]
    assert [r["holder"] for r in listed] == ["viper-1"]
    # the holder's own events order after it: nothing it stamped can be undone by a release
    release = fleetgit(s.victim, "--as", "viper-1", "release", "--all")
    assert release.code == 0
    assert orjson.loads(fleetgit(s.victim, "reservations", "--json").out)["reservations"] == []


def test_a_held_batch_is_ingested_once_this_clock_comes_near(tmp_path: Path) -> None:
    s = Scenario(tmp_path)
    config = s.victim / ".fleet/config.toml"
    config.write_text(config.read_text().replace("= 300", "= 1"), encoding="utf-8")
    soon = clock.now_ms() + 3000
    s.push_lines(grant("docs/later.md", hlc=clock.make_hlc(soon)))
    s.receive("fetch")
    held = fleetgit(s.victim, "reservations", "--json")
    assert "docs/later.md" not in held.out
    while clock.now_ms() < soon:  # no timing assertion: wait until it is due, then look
        pass
    held = fleetgit(s.victim, "reservations", "--json")
    assert "docs/later.md" in held.out
    before = projections(s.victim)
    assert fleetgit(s.victim, "index", "rebuild").code == 0
    assert projections(s.victim) == before


@pytest.mark.parametrize("how", ["pull", "fetch"])
def test_a_rewritten_committed_segment_changes_nothing_this_clone_has_seen(
    tmp_path: Path, how: str
) -> None:
    s = Scenario(tmp_path)
    segment = s.victim_segment()
    text = (s.attacker / segment).read_bytes()
    assert b'"ttl_seconds":7200' in text
    s.push(segment, text.replace(b'"ttl_seconds":7200', b'"ttl_seconds":1'))
    s.receive(how)
    s.check_victim("id_conflict")
    verify = fleetgit(s.victim, "verify").out
    assert "segment_rewritten" in verify or how == "fetch" or "id_conflict" in verify
    # fresh clones decide alike, whatever order they read in
    fresh = []
    for name in ("fresh-1", "fresh-2"):
        git(tmp_path, "clone", "-q", str(s.bare), str(tmp_path / name))
        assert fleetgit(tmp_path / name, "index", "status").code == 0
        fresh.append(projections(tmp_path / name))
    assert fresh[0] == fresh[1]


@pytest.mark.parametrize("how", ["pull", "fetch"])
def test_a_deleted_segment_is_kept_and_reported(tmp_path: Path, how: str) -> None:
    s = Scenario(tmp_path)
    s.push(s.victim_segment(), None, "delete the victim's ledger")
    s.receive(how)
    if how == "pull":
        s.check_victim("segment_deleted")
    else:  # the victim still has the file: nothing to report, and nothing lost
        s.assert_blocks_and_passes()
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(s.bare), str(fresh))
    listed = fleetgit(fresh, "reservations", "--json")
    assert [r["pattern"] for r in orjson.loads(listed.out)["reservations"]] == ["src/app.py"]
    assert "segment_deleted" in fleetgit(fresh, "verify").out


def test_a_copy_of_an_id_in_another_writers_directory_is_refused(tmp_path: Path) -> None:
    s = Scenario(tmp_path)
    original = (s.attacker / s.victim_segment()).read_bytes().splitlines(keepends=True)[-1]
    forged = original.replace(b'"ttl_seconds":7200', b'"ttl_seconds":1')
    s.push(".fleet/events/00000000aaaaaaaa/00000001.jsonl", forged)  # sorts before any writer
    s.receive("pull")
    s.check_victim("found in writer 00000000aaaaaaaa")
