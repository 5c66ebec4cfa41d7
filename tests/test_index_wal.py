"""The index's WAL is checkpointed off the append's path (index/store.py, Checkpointer), stays
bounded under appends back to back, and other processes never see a torn index for it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.missions import commands as missions
from fleetgit.fleet import Fleet
from fleetgit.index import store
from tests.test_concurrency import check_writer_sequences
from tests.test_merge import snapshot


def _emit(fleet: Fleet, i: int) -> None:
    fleet.emit("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": f"m {i}"})


def test_checkpoints_run_on_their_own_thread(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHECKPOINT_PAGES", 40)
    monkeypatch.setattr(store, "RESTART_FRAMES", 1 << 30)  # never on the path in this test
    with Fleet.open(repo, actor="viper-1") as fleet:
        conn = fleet.index.conn
        (window,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert window == store.WAL_AUTOCHECKPOINT
        for i in range(60):
            _emit(fleet, i)
        checkpointer = fleet.index.checkpointer
        assert checkpointer._thread is not None  # started by a full window, not by the append
        fleet.index.close()  # waits for the checkpoint under way
        assert checkpointer.done > 0 and checkpointer._thread is None
    with Fleet.open(repo) as fleet:
        assert len(missions.listing(fleet)) == 60


def test_the_wal_starts_over_under_appends_back_to_back(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "CHECKPOINT_PAGES", 40)
    monkeypatch.setattr(store, "RESTART_FRAMES", 200)
    with Fleet.open(repo, actor="viper-1") as fleet:
        fd = os.open(f"{fleet.index.path}-shm", os.O_RDONLY)
        try:
            most = 0
            for i in range(150):
                _emit(fleet, i)
                frames, _pending = store.wal_frames(fd)
                most = max(most, frames)
        finally:
            os.close(fd)
        # restarted near RESTART_FRAMES each time, never grown without bound
        assert 0 < most < 200 + 100
    with Fleet.open(repo) as fleet:
        assert len(missions.listing(fleet)) == 150


def test_wal_frames_reads_the_header_sqlite_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    for i in range(20):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        frames, pending = store.wal_frames(fd)
        _busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (frames, pending) == (log, log) and copied == log > 0
        assert store.wal_frames(fd) == (log, 0)
    finally:
        os.close(fd)
        conn.close()
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert store.wal_frames(fd) == (0, 0)  # not a WAL index: no opinion
    finally:
        os.close(fd)


def test_bytes_a_power_loss_took_back_leave_no_event_in_the_index(repo: Path, cli: Any) -> None:
    """An append fsyncs its segment after the index has the batch and the lock is released
    (fleet.py, _append): a power loss in between can take back bytes the index holds. The next
    open finds the index ahead of the file and rebuilds it; the writer's counter stays
    contiguous."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(3):
            _emit(fleet, i)
        last = fleet.events(types=("mission_created",))[-1]
        segment = max(fleet.writer.dir.glob("*.jsonl"))  # the newest
    size = segment.stat().st_size
    line = segment.read_bytes().splitlines(keepends=True)[-1]
    assert last.id.encode() in line
    with open(segment, "r+b") as fh:  # as if the last write never reached the disk
        fh.truncate(size - len(line))
    with Fleet.open(repo, actor="viper-1") as fleet:
        ids = [e.id for e in fleet.events(types=("mission_created",))]
        assert last.id not in ids and len(ids) == 2
        _emit(fleet, 3)
    before = snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert snapshot(repo) == before
    assert cli(repo, "verify").code == 0
    check_writer_sequences(repo)
