"""The index's WAL is checkpointed off the append's path (index/store.py, Checkpointer), stays
bounded under appends back to back, and other processes never see a torn index for it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.missions import commands as missions
from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from fleetgit.index import store
from fleetgit.ledger import boot
from tests.conftest import git
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


# -- written without syncs, trusted across a reboot only when closed (ledger/boot.py) ------------


def _generation(repo: Path) -> str:
    with Fleet.open(repo) as fleet:
        return fleet.index.meta("generation")


def _left_open(repo: Path, name: str) -> None:
    """Append in a process that ends without closing the index (a crash, or a machine that
    went down with it open): its WAL stays."""
    code = (
        "import os, sys\n"
        "from fleetgit.fleet import Fleet\n"
        "f = Fleet.open(sys.argv[1], actor='viper-1')\n"
        "n = sys.argv[2]\n"
        "f.emit('mission_created', f'mission/{n}', {'mission_id': n, 'title': n})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(repo), name], check=True)


INDEX = ".git/fleet/index.sqlite"


def _reboot(repo: Path) -> None:
    """As if the machine had booted again since the index was last opened."""
    assert boot.opened_this_boot(repo / INDEX)
    Path(boot.marker(repo / INDEX)).write_bytes(b"an-earlier-boot".ljust(boot.WIDTH))


needs_boot_id = pytest.mark.skipif(boot.boot_id() is None, reason="no boot id on this system")


@needs_boot_id
def test_the_index_is_written_without_syncs_within_a_boot(repo: Path) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        assert fleet.index.unsynced
        assert fleet.index.conn.execute("PRAGMA synchronous").fetchone() == (0,)  # OFF
        assert (
            Path(boot.marker(fleet.index.path)).read_bytes().strip() == str(boot.boot_id()).encode()
        )
        index = fleet.index.path
    assert not Path(f"{index}-wal").exists()  # the last to close copied it in (with syncs)


@needs_boot_id
def test_an_index_left_open_when_the_machine_went_down_is_rebuilt(repo: Path, cli: Any) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(3):
            _emit(fleet, i)
    _left_open(repo, "left-1")
    generation = _generation(repo)
    _left_open(repo, "left-2")  # the WAL is there again after the read above closed it
    assert Path(f"{repo / INDEX}-wal").exists()
    _reboot(repo)
    assert not boot.opened_this_boot(repo / INDEX)  # the hooks take it as behind
    with Fleet.open(repo) as fleet:  # the first process of the new boot drops it, then rebuilds
        assert fleet.index.meta("generation") != generation
        assert len(missions.listing(fleet)) == 3 + 2
    assert boot.opened_this_boot(repo / INDEX)
    before = snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert snapshot(repo) == before
    assert cli(repo, "verify").code == 0


@needs_boot_id
def test_a_rebuilt_index_left_open_when_the_machine_went_down_is_rebuilt(repo: Path) -> None:
    """A rebuild's file is put in place with its -wal named on disk, and written without
    syncs: after a crash of the machine the first process of the next boot drops it (the
    file and the link naming it) and builds the index again."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(3):
            _emit(fleet, i)
        fleet.rebuild()
        rebuilt = fleet.index.file
    assert (repo / INDEX).is_symlink() and rebuilt != repo / INDEX
    _left_open(repo, "left-1")
    generation = _generation(repo)
    _left_open(repo, "left-2")
    assert Path(f"{rebuilt}-wal").exists()
    _reboot(repo)
    with Fleet.open(repo) as fleet:
        assert fleet.index.meta("generation") != generation
        assert len(missions.listing(fleet)) == 3 + 2
    assert not rebuilt.exists() and not Path(f"{rebuilt}-wal").exists()
    assert boot.opened_this_boot(repo / INDEX)


@needs_boot_id
def test_an_index_closed_before_the_reboot_is_kept(repo: Path) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        _emit(fleet, 1)
    generation = _generation(repo)
    _reboot(repo)
    assert _generation(repo) == generation


@needs_boot_id
def test_an_index_from_before_the_marker_is_kept(repo: Path) -> None:
    """An index written with syncs (an earlier fleetgit: no marker) stays, WAL or not."""
    _left_open(repo, "left-1")
    generation = _generation(repo)
    _left_open(repo, "left-2")
    Path(boot.marker(repo / INDEX)).unlink()
    assert Path(f"{repo / INDEX}-wal").exists()
    assert _generation(repo) == generation


@needs_boot_id
def test_the_hook_checks_an_index_left_open_before_a_reboot(repo: Path) -> None:
    """The pre-commit hook reads the index without the package: one not yet opened in this
    boot is taken as behind, so the full package checks it (and drops it) before the hook
    reads it; the reservation, which the segments hold, still blocks."""
    from tests.test_hooks import commit, stage

    stage(repo, "src/app.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/app.py"])
    _left_open(repo, "left-1")
    generation = _generation(repo)
    _left_open(repo, "left-2")
    _reboot(repo)
    stage(repo, "src/app.py", "goose was here\n")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr
    assert boot.opened_this_boot(repo / INDEX)
    assert _generation(repo) != generation


def test_the_hook_reads_a_rebuilt_index_through_its_link(repo: Path) -> None:
    """The pre-commit hook opens `index.sqlite` read-only without the package: once a rebuild
    made it a link, SQLite reads the file it names (with that file's -wal), and a reservation
    made after the rebuild, by a process that opened the new file, still blocks."""
    from tests.test_hooks import commit, stage

    stage(repo, "src/app.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        _emit(fleet, 1)
        fleet.rebuild()
        fleet.reserve(["src/app.py"])
    assert (repo / INDEX).is_symlink()
    stage(repo, "src/app.py", "goose was here\n")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr


def test_the_hook_never_reads_through_a_link_fleetgit_did_not_make(
    repo: Path, tmp_path: Path
) -> None:
    """`index.sqlite` made a link to a copy of the index with the reservations taken out (its
    fingerprints current, so the hook would trust it): the hook catches up instead, which
    replaces the link with an index of its own, and the commit is refused as it should be."""
    from tests.test_hooks import commit, stage

    stage(repo, "src/app.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/app.py"])
        outside = tmp_path / "copy.sqlite"
        copy = sqlite3.connect(outside)
        fleet.index.conn.backup(copy)
        copy.execute("DELETE FROM reservations")
        copy.commit()
        copy.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{repo / INDEX}{suffix}").unlink(missing_ok=True)
    (repo / INDEX).symlink_to(outside)
    stage(repo, "src/app.py", "goose was here\n")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr, res.stderr
    assert (repo / INDEX).is_symlink() and os.readlink(repo / INDEX) != str(outside)


def test_the_hook_reads_again_when_a_rebuild_retires_its_file_as_it_reads(repo: Path) -> None:
    """The hook connected to a rebuilt file that another process's rebuild then retires and
    deletes before the hook's first query (which fails on it: "disk I/O error"): the link
    names another file, so the hook connects again and checks that one, never refusing a
    commit for it."""
    from fleetgit.guard.hookgit import Where
    from fleetgit.guard.hookindex import IndexView

    fleetgit = Path(sys.executable).with_name("fleetgit")

    class RebuiltAsItReads(IndexView):
        raced = False

        def _behind(self) -> bool:
            if not RebuiltAsItReads.raced:
                RebuiltAsItReads.raced = True
                subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True)
            return super()._behind()

    with Fleet.open(repo, actor="viper-1") as fleet:
        _emit(fleet, 1)
        fleet.rebuild()
        fleet.reserve(["src/app.py"])
        git_dir = str(repo / ".git")
        view = RebuiltAsItReads(Where(str(repo), git_dir, git_dir))  # while this one is open
        assert RebuiltAsItReads.raced
        live = view.live()
        assert [(r.pattern, r.holder) for r in live] == [("src/app.py", "viper-1")]


def _locks_held(path: str) -> int:
    """POSIX locks this process holds on `path` (/proc/locks: `... PID MAJ:MIN:INODE ...`)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as fh:
        rows = [line.split() for line in fh]
    return sum(
        1 for r in rows if "POSIX" in r and str(os.getpid()) in r and r[5].endswith(f":{ino}")
    )


def _locks_on(ino: int) -> int:
    with open("/proc/locks") as fh:
        rows = [line.split() for line in fh]
    return sum(
        1 for r in rows if "POSIX" in r and str(os.getpid()) in r and r[5].endswith(f":{ino}")
    )


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="no /proc/locks here")
def test_moving_one_fleet_off_a_retired_file_keeps_the_locks_of_another_on_it(repo: Path) -> None:
    """Two Fleets of this process on a rebuilt file that another process's rebuild retires
    (and deletes): one moves to the new file; the other, in a read transaction on the old one,
    keeps SQLite's locks there (the fd held of it is not closed while it is on it)."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        _emit(fleet, 1)
        fleet.rebuild()
    with Fleet.open(repo, actor="viper-1") as reading, Fleet.open(repo) as moving:
        _emit(reading, 2)  # its commit holds an fd of the -shm for the process
        shm = f"{reading.index.file}-shm"
        ino = os.stat(shm).st_ino
        reading.index.conn.execute("BEGIN")
        reading.index.conn.execute("SELECT count(*) FROM events").fetchone()
        held = _locks_on(ino)
        assert held > 0
        fleetgit = Path(sys.executable).with_name("fleetgit")
        subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True, capture_output=True)
        assert not os.path.exists(shm) and moving.index.replaced()
        moving.index.follow()
        assert moving.index.file != reading.index.file
        assert _locks_on(ino) == held
        reading.index.conn.execute("COMMIT")
        reading.index.follow()
        assert reading.index.file == moving.index.file


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="no /proc/locks here")
def test_closing_one_fleet_keeps_the_locks_of_another_in_the_process(repo: Path) -> None:
    """Closing any fd of a file drops every POSIX lock the process holds on it: the index's
    -shm file (SQLite's WAL locks) is read through an fd that is never closed."""
    with Fleet.open(repo, actor="viper-1") as first:
        _emit(first, 0)
        shm = f"{first.index.path}-shm"
        held = _locks_held(shm)
        assert held > 0
        with Fleet.open(repo, actor="viper-1") as second:
            _emit(second, 1)
        assert _locks_held(shm) == held
        _emit(first, 2)
    with Fleet.open(repo) as fleet:
        assert len(missions.listing(fleet)) == 3


def test_fleets_opened_and_closed_in_turn_keep_no_fd_of_a_deleted_file(repo: Path) -> None:
    """The -shm file the last close deletes is let go (a server opening a Fleet per request
    would run out of fds otherwise)."""
    for i in range(5):
        with Fleet.open(repo, actor="viper-1") as fleet:
            _emit(fleet, i)
    gone = [f for f in os.listdir("/proc/self/fd") if "(deleted)" in _link(f)]
    # this repository's: earlier tests in this process deleted index files after their close
    assert not [f for f in gone if f"{repo}/" in _link(f)]


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
