"""What a sync reads: a published segment that grew since the last sync is parsed only past
what was read of it, its signatures checked as a whole segment's are, and a copy whose earlier
bytes changed is read whole (real clones, a bare remote, real git)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.fleet import Fleet
from fleetgit.index import catchup
from fleetgit.ledger import keys
from fleetgit.sync import engine
from tests.conftest import run_fleetgit
from tests.test_sync import fg, make_net, sync, views


def _reserve(clone: Path, pilot: str, *names: str) -> None:
    for name in names:  # one batch each, as agents append
        fg(clone, "--as", pilot, "reserve", name)


def _sync_in_process(clone: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Sync `clone` in this process, noting each segment parse (writer, start, events) and each
    signature checked."""
    seen: dict[str, Any] = {"parses": [], "verified": 0}
    parse, verify = catchup.parse, keys.verify

    def counting_parse(data: bytes, start: int = 0, writer: str | None = None, **kw: Any) -> Any:
        parsed = parse(data, start, writer, **kw)
        seen["parses"].append((writer, start, len(parsed.events)))
        return parsed

    def counting_verify(*args: Any) -> bool:
        seen["verified"] += 1
        return verify(*args)

    monkeypatch.setattr(catchup, "parse", counting_parse)
    monkeypatch.setattr(keys, "verify", counting_verify)
    with Fleet.open(clone) as fleet:
        report = engine.run(fleet)
    monkeypatch.setattr(catchup, "parse", parse)
    monkeypatch.setattr(keys, "verify", verify)
    seen["report"] = report.to_json()
    return seen


def _git(
    cwd: Path, *args: str, given: bytes | None = None, env: dict[str, str] | None = None
) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, input=given, capture_output=True, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return proc.stdout.decode().strip()


def _writer(clone: Path) -> str:
    return (clone / ".git" / "fleet" / "writer").read_text(encoding="utf-8").split()[0]


def test_a_grown_published_segment_is_parsed_only_past_what_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _reserve(a, "viper", "one.py", "two.py")
    sync(a)
    sync(b)  # B has read A's segment once, whole
    _reserve(a, "viper", "three.py", "four.py", "five.py")
    sync(a)
    _reserve(a, "viper", "six.py")
    assert sync(a)["sent"]["segments"] == ["00000001.jsonl"]  # the ref moved by two commits
    seen = _sync_in_process(b, monkeypatch)
    assert seen["report"]["received"]["events"] == 4
    mine = [(start, n) for w, start, n in seen["parses"] if w == _writer(a)]
    assert mine and all(start > 0 for start, _ in mine)  # never from the segment's start
    assert sum(n for _, n in mine) == 4  # each new line parsed once
    assert seen["verified"] <= 2  # one signature per portion, not one per batch (4 batches)
    assert fg(b, "quarantine", "--json").out.count('"id"') == 0
    assert views(b) == views(a)
    before = views(b)
    fg(b, "verify", "--strict")
    assert fg(b, "verify", "--deep").code == 0  # the index is what a replay of the segments says
    fg(b, "index", "rebuild")
    assert views(b) == before


def test_a_published_copy_whose_earlier_bytes_changed_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes before where the last read ended are compared, not assumed: a copy that
    rewrote one is parsed from its start, and the rewrite is found as it always was."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _reserve(a, "viper", "one.py", "two.py")
    sync(a)
    sync(b)
    writer = _writer(a)
    ref = f"refs/fleet/writers/{writer}"
    relpath = f".fleet/events/{writer}/00000001.jsonl"
    data = (a / relpath).read_bytes()
    forged = data.replace(b"one.py", b"ONE.py", 1)
    assert forged != data
    _reserve(a, "viper", "three.py")
    grown = forged + (a / relpath).read_bytes()[len(data) :]
    # a commit on top of A's ref whose segment rewrote a line B has read, and grew
    blob = _git(a, "hash-object", "-w", "--stdin", given=grown)
    tip = _git(a, "rev-parse", ref)
    _git(a, "read-tree", "--index-output=.git/forged-index", tip)
    env = {"GIT_INDEX_FILE": str(a / ".git" / "forged-index")}
    _git(a, "update-index", "--add", "--cacheinfo", f"100644,{blob},{relpath}", env=env)
    tree = _git(a, "write-tree", env=env)
    commit = _git(a, "commit-tree", tree, "-p", tip, "-m", "forged")
    _git(a, "push", "-q", "--no-verify", "origin", f"{commit}:{ref}")
    seen = _sync_in_process(b, monkeypatch)
    assert (writer, 0, 4) in seen["parses"]  # read whole: a pilot registration + 3 reservations
    problems = orjson.loads(fg(b, "verify", "--json", ok=False).out)["problems"]
    assert any(p["kind"] == "id_conflict" for p in problems), problems
    assert "three.py" in fg(b, "reservations").out


def _git_commands(clone: Path, tmp: Path) -> list[list[str]]:
    """The git commands a `fleetgit sync` of `clone` runs (git's own trace2 log)."""
    trace = tmp / "trace.json"
    trace.unlink(missing_ok=True)
    res = run_fleetgit(clone, "sync", env={"GIT_TRACE2_EVENT": str(trace)})
    assert res.code == 0, res.err
    runs = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    return [r["argv"] for r in runs if r["event"] == "start"]


def test_a_sync_fetches_once_and_scans_no_code_ref_in_a_clone_that_never_committed_segments(
    tmp_path: Path,
) -> None:
    _remote, (a, b, _c, reader) = make_net(tmp_path, 4)  # the fourth clone never writes
    sync(a)
    sync(b)
    sync(reader)
    _reserve(b, "goose", "one.py")  # something to send
    _reserve(a, "viper", "two.py")
    sync(a)  # and something to receive
    for clone in (b, reader):
        argv = _git_commands(clone, tmp_path)
        fetches = [cmd for cmd in argv if cmd[:1] == ["git"] and "fetch" in cmd]
        assert len(fetches) == 1, fetches  # a reader does not ask for a ref it never pushed
        assert not [cmd for cmd in argv if "refs/heads/" in cmd], argv  # no code ref scanned
        assert "two.py" in fg(clone, "reservations").out
    sync(a)
    assert "one.py" in fg(a, "reservations").out


def test_a_clone_that_committed_segments_still_scans_the_code_refs(tmp_path: Path) -> None:
    _remote, (a, _b, _c) = make_net(tmp_path)
    _reserve(a, "viper", "one.py")
    fg(a, "commit")
    argv = _git_commands(a, tmp_path)
    assert [a for a in argv if "refs/heads/" in a], argv


def test_a_sync_runs_no_maintenance_after_its_fetch(tmp_path: Path) -> None:
    """A fetch ends with `git maintenance run --auto` unless told not to: one process more on
    every sync, for the fleet's few objects."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _reserve(b, "goose", "one.py")
    sync(b)
    argv = _git_commands(a, tmp_path)
    assert [cmd for cmd in argv if "fetch" in cmd], argv
    assert not [cmd for cmd in argv if "maintenance" in cmd or "gc" in cmd], argv
    assert "one.py" in fg(a, "reservations").out


def _modules_of_a_sync(clone: Path) -> set[str]:
    """The top-level modules a `fleetgit sync` of `clone` loaded (run as the command runs)."""
    code = (
        "import sys, runpy; sys.argv = ['fleetgit', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('fleetgit', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "sync"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split("MODULES", 1)[1].split())


def test_a_sync_that_only_receives_loads_no_pygit2(tmp_path: Path) -> None:
    """Catch-up reads refs and objects with git (`cat-file --batch`): pygit2's import (~80 ms)
    is for writing objects, and a clone with nothing to publish writes none."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _reserve(b, "goose", "one.py")
    sync(b)
    assert "pygit2" not in _modules_of_a_sync(a)
    assert "one.py" in fg(a, "reservations").out
    assert orjson.loads(fg(a, "verify", "--json").out)["ok"]


def test_a_registration_sent_with_a_batch_of_work_is_not_checked_again_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding a pilot's keys (trust.derive) checks its registration again, as intake does;
    the other lines of that batch, which intake has just taken, are only decoded."""
    from fleetgit.ledger import intake
    from fleetgit.ledger.codec import EventSpec

    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    work = [
        EventSpec("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
        for i in range(200)
    ]
    with Fleet.open(b, actor="ice", register=True) as fleet:
        fleet.emit_batch(work)  # the registration joins this batch
    sync(b)
    checked: list[str] = []
    check = intake.check

    def counting(line: bytes, writer: str | None, types: Any) -> Any:
        event = check(line, writer, types)
        checked.append(event.type)
        return event

    monkeypatch.setattr(intake, "check", counting)
    seen = _sync_in_process(a, monkeypatch)
    assert seen["report"]["received"]["events"] >= 201
    assert checked.count("mission_created") == 0, len(checked)
    assert "pilot_registered" in checked
    with Fleet.open(a) as fleet:
        assert fleet.index.conn.execute(
            "SELECT count(*) FROM events WHERE type = 'mission_created'"
        ).fetchone() == (200,)
        assert fleet.index.conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)


def test_a_plain_sync_starts_its_fetch_first_and_applies_it_at_the_fetch_step(
    tmp_path: Path,
) -> None:
    """`fleetgit sync` starts git's fetch as the process starts (sync/prefetch.py), before the
    command's modules load and the index opens: its first git processes are the remote's
    settings and the fetch. The fetch lands outside refs/fleet/ (no catch-up reads it before
    the sync's fetch step, so what arrived is reported as received); the tracking refs are the
    remote's writer refs afterwards, as a plain fetch leaves them."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _reserve(b, "goose", "one.py")
    sync(b)
    argv = _git_commands(a, tmp_path)
    first = [cmd[cmd.index("fetch") :] for cmd in argv[:3] if "fetch" in cmd]
    assert first and "--refmap=" in first[0], argv[:3]
    assert len([cmd for cmd in argv if "fetch" in cmd and cmd[:1] == ["git"]]) == 1, argv
    _reserve(b, "goose", "two.py")
    sync(b)
    report = sync(a)
    assert report["received"]["events"] == 1 and report["received"]["writers"] == [_writer(b)]
    assert "two.py" in fg(a, "reservations").out
    tracking = "--format=%(objectname) %(refname:lstrip=4)"
    there = _git(a, "ls-remote", "origin", "refs/fleet/writers/*").split()
    assert _git(a, "for-each-ref", tracking, "refs/fleet/remotes/origin/").split() == [
        w.removeprefix("refs/fleet/writers/") for w in there
    ]
    # --dry-run and --push-only fetch nothing early
    _reserve(b, "goose", "three.py")
    sync(b)
    for flag in ("--dry-run", "--push-only"):
        assert sync(a, flag)["received"]["events"] == 0
    assert "three.py" not in fg(a, "reservations").out


def test_a_sync_reads_the_callsign_with_the_remotes(tmp_path: Path) -> None:
    """git config fleet.callsign comes with the remotes' settings (one `git config` call), and
    what concerns that pilot is still reported."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    _git(a, "config", "fleet.callsign", "viper")
    sync(b)  # viper's registration
    fg(b, "--as", "goose", "squawk", "send", "--to", "viper", "--subject", "hello viper")
    sync(b)
    trace = tmp_path / "trace.json"
    res = run_fleetgit(a, "sync", "--json", env={"GIT_TRACE2_EVENT": str(trace)})
    assert res.code == 0, res.err
    runs = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    configs = [r["argv"] for r in runs if r["event"] == "start" and "config" in r["argv"]]
    assert len(configs) == 1, configs
    concerns = orjson.loads(res.out)["concerns"]
    assert [c["subject"] for c in concerns if c["kind"] == "message"] == ["hello viper"]
