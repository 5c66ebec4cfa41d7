"""The append's own work (fleet.py `_append`): what its catch-up sees, and what it records.

Each append catches up under the writer lock with a stat scan of the sources, then moves the
stored files fingerprint by its own file alone. These tests hold it to the fingerprint a full scan
computes, and show that what lands just before an append (another process's bytes, a checkout, a
held batch coming due) is seen by it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetgit.fleet import Fleet
from fleetgit.git import fingerprint
from fleetgit.index import store
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode
from fleetgit.ledger.errors import FleetError
from tests.conftest import git, plant, signed


def _mission(fleet: Fleet, name: str) -> None:
    fleet.emit("mission_created", f"mission/{name}", {"mission_id": name, "title": name})


def _level(fleet: Fleet) -> None:
    """The index's stored fingerprints are those a full scan computes now: fresh, no read."""
    files_fp, refs_fp = fingerprint.fingerprints(str(fleet.paths.common_dir))
    assert fleet.index.metas("files_fp", "refs_fp") == {"files_fp": files_fp, "refs_fp": refs_fp}
    assert fleet.index.is_fresh()


def test_the_fingerprint_an_append_moves_is_the_one_a_scan_computes(repo: Path) -> None:
    """Through appends, a roll to a new segment (a commit seals the old one), another
    worktree's appends and a torn tail cut off: the fingerprint never needs a re-read."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fleetgit")  # the other worktree has the same config
    other = repo.parent / "other"
    git(repo, "worktree", "add", "-q", str(other), "-b", "other")
    with Fleet.open(repo, actor="viper") as fleet, Fleet.open(other, actor="goose") as there:
        for i in range(3):
            _mission(fleet, f"m{i}")
            _level(fleet)
        before = sorted(fleet.writer.dir.iterdir())
        git(repo, "add", ".fleet")
        git(repo, "commit", "-q", "-m", "seal")
        _mission(fleet, "after-the-seal")  # a new segment: no stamp of it before
        _level(fleet)
        newest = max(fleet.writer.dir.iterdir())
        assert newest not in before and len(list(fleet.writer.dir.iterdir())) == len(before) + 1
        _mission(there, "elsewhere")
        _mission(fleet, "here")
        _level(fleet)
        with open(newest, "ab") as fh:
            fh.write(b'{"torn": ')  # a crash mid-write: cut off by the next append
        _mission(fleet, "after-the-tear")
        _level(fleet)
        ids = {e.stream for e in fleet.events()}
    assert {"mission/elsewhere", "mission/here", "mission/after-the-tear"} <= ids


def test_an_append_sees_bytes_written_just_before_it_without_the_index(repo: Path) -> None:
    """Another process's write that never reached the index (it died between its write and
    its ingest), and a checkout's: the next append's own catch-up reads them, so its stream
    versions are checked against them."""
    with Fleet.open(repo, actor="viper") as fleet:
        _mission(fleet, "first")
        plant(repo, "mission_created", "mission/planted", {"mission_id": "planted", "title": "p"},
              "goose")  # fmt: skip
        # the planted event is version 1 of its stream: an append expecting 0 is refused
        spec = ("mission_started", "mission/planted", {"mission_id": "planted"})
        with pytest.raises(FleetError, match="at version 1, expected 0"):
            fleet.emit(*spec, expect_version=0)
        fleet.emit(*spec, expect_version=1)
        _level(fleet)
        git(repo, "add", ".fleet")
        git(repo, "commit", "-q", "-m", "ledger")
        git(repo, "checkout", "-q", "-b", "side", "HEAD~1")  # the ledger's files go away
        _mission(fleet, "on-side")
        _level(fleet)
        git(repo, "checkout", "-q", "main")  # and come back: nothing read twice or lost
        _mission(fleet, "back")
        _level(fleet)
        streams = [e.stream for e in fleet.events()]
    assert streams.count("mission/planted") == 2 and "mission/on-side" in streams


def _ahead(repo: Path, ms: int) -> None:
    """A mission created by goose, stamped `ms` ahead of this clock (as `plant` writes)."""
    wdir = repo / ".fleet/events/yyyyyyyyyyyyyyyy"
    wdir.mkdir(parents=True, exist_ok=True)
    segment = wdir / "00000001.jsonl"
    (eid,) = clock.uuid7s(1)
    at = clock.now_ms() + ms
    data: dict[str, Any] = {"mission_id": "ahead", "title": "from the future"}
    event = Event(
        id=eid, type="mission_created", v=1, stream="mission/ahead", seq=1, hlc=clock.make_hlc(at),
        writer="y" * 16, wseq=1, actor="goose", ts=clock.iso_ms(at), tx=eid, txn=1, data=data,
    )  # fmt: skip
    segment.write_bytes(signed(repo, segment, event, encode(event)))


def test_a_held_batch_is_taken_by_the_first_append_once_it_is_due(repo: Path) -> None:
    config = repo / ".fleet/config.toml"
    config.write_text(config.read_text().replace("= 300", "= 1"), encoding="utf-8")
    with Fleet.open(repo, actor="viper") as fleet:
        assert fleet.config.max_clock_skew_seconds == 1
        _ahead(repo, 2500)
        _mission(fleet, "now")  # its catch-up holds the batch back
        (held,) = fleet.index.conn.execute("SELECT count(*) FROM held").fetchone()
        assert held == 1 and "mission/ahead" not in {e.stream for e in fleet.events()}
        due = clock.hlc_ms(fleet.index.conn.execute("SELECT hlc FROM held").fetchone()[0]) - 1000
        while clock.now_ms() <= due:  # no timing assertion: wait until it is due, then look
            pass
        _mission(fleet, "later")
        assert fleet.index.conn.execute("SELECT count(*) FROM held").fetchone()[0] == 0
        streams = [e.stream for e in fleet.events()]
        assert "mission/ahead" in streams
        before = [tuple(r) for r in fleet.index.query("SELECT * FROM missions ORDER BY 1")]
        fleet.rebuild()
        assert [tuple(r) for r in fleet.index.query("SELECT * FROM missions ORDER BY 1")] == before


def test_a_link_put_in_place_of_the_writer_directory_between_appends_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    """The append opens the writer's directory once, without following a link, and uses that
    fd for its stat and its write: a link put there after the last append is refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    with Fleet.open(repo, actor="viper") as fleet:
        _mission(fleet, "first")
        mine = fleet.writer.dir
        mine.rename(tmp_path / "moved")
        mine.symlink_to(outside)
        with pytest.raises(FleetError, match="is a symbolic link"):
            _mission(fleet, "second")
    assert list(outside.iterdir()) == []


def test_a_restarted_wal_is_written_over_not_cut_back(repo: Path) -> None:
    """Past its window the WAL starts over from its beginning: the file keeps its length (no
    pages dropped, no blocks freed and allocated again), unless it is past the limit."""
    assert store.JOURNAL_SIZE_LIMIT >= 2 * store.RESTART_FRAMES * 4096
    with Fleet.open(repo, actor="viper") as fleet:
        (limit,) = fleet.index.conn.execute("PRAGMA journal_size_limit").fetchone()
        assert limit == store.JOURNAL_SIZE_LIMIT
        wal = f"{fleet.index.path}-wal"
        for i in range(60):
            _mission(fleet, f"m{i}")
        grown = os.stat(wal).st_size
        fleet.index.conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        _mission(fleet, "after-the-restart")  # writes from the WAL's beginning
        frames, _ = store.wal_frames(store.held_fd(f"{fleet.index.path}-shm"))
        assert frames * 4120 < grown <= os.stat(wal).st_size


def test_the_streams_an_append_records_are_those_its_events_group_to(repo: Path) -> None:
    """A batch with several events of one stream, and of several streams: versions and last
    positions as a GROUP BY of the events gives them."""
    from fleetgit.fleet import EventSpec

    with Fleet.open(repo, actor="viper") as fleet:
        data: dict[str, Any] = {"mission_id": "a", "title": "a"}
        fleet.emit_batch(
            [
                EventSpec("mission_created", "mission/a", data),
                EventSpec("mission_created", "mission/b", {"mission_id": "b", "title": "b"}),
                EventSpec("mission_started", "mission/a", {"mission_id": "a"}),
            ]
        )
        fleet.emit("mission_started", "mission/b", {"mission_id": "b"}, expect_version=1)
        recorded = fleet.index.query("SELECT stream, version, last_pos FROM streams ORDER BY 1")
        grouped = fleet.index.query(
            "SELECT stream, max(seq), max(pos) FROM events GROUP BY stream ORDER BY 1"
        )
    assert [tuple(r) for r in recorded] == [tuple(r) for r in grouped]
    assert ("mission/a", 2) in [(r[0], r[1]) for r in recorded]


def test_an_appends_takeovers_to_judge_are_those_the_catch_up_query_finds(
    repo: Path, cli: Any
) -> None:
    """`claims.judge` of an append's own batch without sortie or mission events looks up the
    takeovers of its pilots by index (`_touched_by`) instead of the catch-up's query: on a
    takeover that a later-arriving sign of life of its previous assignee sorts before, both find
    the same."""
    from fleetgit.index import claims
    from tests.test_domain_rules import (
        _ahead as ahead,
    )
    from tests.test_domain_rules import (
        _limit,
        _plant_all,
        _sortie,
        _takeover,
        committed,
        register,
    )

    _limit(repo, 60)
    register(cli, repo, "viper", "goose")
    sid, rid = _sortie(cli, repo)
    _plant_all(repo, _takeover(sid, rid, 120_000))
    committed(repo)
    with Fleet.open(repo) as fleet:
        pos = fleet.index.max_pos()
    ahead(repo, "context_compacted", "pilot/viper", {"summary": "alive"}, "viper", 90_000)
    committed(repo)
    with Fleet.open(repo) as fleet:
        conn = fleet.index.conn
        new = fleet.events(after_pos=pos)
        assert new and not any(e.stream.startswith(("sortie/", "mission/")) for e in new)
        by_query = conn.execute(claims._TOUCHED, {"pos": pos}).fetchall()
        assert by_query  # the takeover, sorting after that sign of life
        assert sorted(claims._touched_by(conn, new)) == sorted(set(by_query))
        assert claims._touched_by(conn, fleet.events(after_pos=fleet.index.max_pos())) == []


def test_a_writer_directory_a_checkout_removes_during_an_append_is_made_again(
    repo: Path,
) -> None:
    """The append opens the writer's directory before it picks the segment, builds and signs
    (asking git what it tracks on the way): a checkout that removes the directory meanwhile
    leaves that fd on a dead directory, where no segment can be made. The write walks from the
    top again, making the directory anew, as an append that finds it missing does."""
    git(repo, "add", "-A")
    git(repo, "reset", "-q", "--", ".fleet/events")
    git(repo, "commit", "-q", "-m", "fleetgit, no events")
    git(repo, "branch", "before")
    with Fleet.open(repo, actor="viper") as fleet:
        _mission(fleet, "first")
        git(repo, "add", ".fleet")
        git(repo, "commit", "-q", "-m", "seal")  # every segment tracked: a checkout removes them
        mine, opened = fleet.writer.dir, fleet.writer.open_dir

        def open_then_checkout() -> int:
            fd = opened()
            git(repo, "checkout", "-q", "before")
            assert fd >= 0 and not mine.exists()
            return fd

        fleet.writer.open_dir = open_then_checkout  # type: ignore[method-assign]
        _mission(fleet, "second")
        fleet.writer.open_dir = opened  # type: ignore[method-assign]
        assert "mission/second" in {e.stream for e in fleet.events()}
    assert any(b'"mission/second"' in segment.read_bytes() for segment in mine.iterdir())


def _waiting_on(path: str) -> bool:
    """Is a `flock` request of this process waiting for `path`? (/proc/locks: `N: -> FLOCK
    ADVISORY WRITE PID MAJ:MIN:INODE START END`)"""
    ino, pid = os.stat(path).st_ino, str(os.getpid())
    with open("/proc/locks") as fh:
        rows = [line.split() for line in fh]
    return any(r[1:3] == ["->", "FLOCK"] and r[5] == pid and r[6].endswith(f":{ino}") for r in rows)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="no /proc/locks here")
def test_a_ref_moved_while_an_append_waits_for_the_lock_is_read_by_the_next_catch_up(
    repo: Path,
) -> None:
    """An append takes the refs fingerprint before it waits for the writer lock (the ref
    files' stats, out of the critical section): a ref that moves while it waits (here a branch
    with another clone's segment on it) is left to the next catch-up, which reads it, as it
    reads a ref moved just after an append."""
    import fcntl
    import threading

    # another clone's segment (signed with goose's key, held here), in git only
    plant(repo, "mission_created", "mission/side", {"mission_id": "side", "title": "s"}, "goose")
    segment = repo / ".fleet/events/zzzzzzzzzzzzzzzz/00000001.jsonl"
    blob = git(repo, "hash-object", "-w", str(segment)).strip()
    shutil.rmtree(segment.parent)

    def tree(entry: str) -> str:
        return subprocess.run(
            ["git", "mktree"], cwd=repo, input=entry + "\n", capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip

    top = tree(f"100644 blob {blob}\t00000001.jsonl")
    for name in ("zzzzzzzzzzzzzzzz", "events", ".fleet"):
        top = tree(f"040000 tree {top}\t{name}")
    with Fleet.open(repo, actor="viper") as fleet:
        _mission(fleet, "first")
        head = git(repo, "rev-parse", "HEAD").strip()
        commit = git(repo, "commit-tree", top, "-p", head, "-m", "side").strip()
        holder = os.open(fleet.writer._lock_path, os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # another appender holds the lock
        try:
            waiting = threading.Thread(target=_mission, args=(fleet, "waited"))
            waiting.start()
            while not _waiting_on(fleet.writer._lock_path):  # it has its refs stamp, and waits
                waiting.join(0.01)
            git(repo, "update-ref", "refs/heads/side", commit)  # the ref moves meanwhile
        finally:
            os.close(holder)
        waiting.join()
        side = "SELECT 1 FROM events WHERE stream = 'mission/side'"
        assert not fleet.index.conn.execute(side).fetchall()  # left to the next catch-up
        fleet.catch_up()
        streams = {e.stream for e in fleet.events()}
        _level(fleet)
    assert {"mission/first", "mission/waited", "mission/side"} <= streams
