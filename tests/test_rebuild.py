"""`index rebuild` builds a fresh file and copies it over the index in one transaction: a
SIGKILL at any stage leaves the previous index whole, readers see the old index until the copy
commits, and what is clone-local (positions, cursors, settings) survives it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.domain.cursors import commands as cursors
from fleetgit.fleet import EventSpec, Fleet, init
from fleetgit.git.paths import locate
from fleetgit.index.catchup import Index
from fleetgit.index.projections import TABLES
from fleetgit.index.store import REBUILD_SUFFIX
from fleetgit.ledger import boot
from fleetgit.ledger.config import load as load_config
from fleetgit.ledger.errors import ValidationError
from tests.conftest import make_repo


def _killed_rebuilding(repo: Path, stage: str, said: str) -> tuple[Path, dict[str, Any]]:
    """300 missions and a cursor, then a rebuild in a child process SIGKILLed once it says
    `said` (it waits there, `stage` telling it where): the index's path and its dump before."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 300))
        index = fleet.index.path
        cursors.advance(fleet, "reader", 40)
    before = _dump(index)
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(repo), stage], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == said  # it got that far, and waits there
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    return index, before


def _only_current_left(index: Path, current: Path) -> None:
    """Beside the boot marker, only the index's name (a link) and the file it names are left."""
    left = sorted(
        p.name
        for p in index.parent.glob(f"{index.name}*")
        if p.suffix not in (".sqlite-boot", ".link-lock")
    )
    assert left == sorted([index.name, current.name]), left


def _missions(first: int, count: int) -> list[EventSpec]:
    return [
        EventSpec("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": f"t{i}"})
        for i in range(first, first + count)
    ]


def _dump(index: Path) -> dict[str, Any]:
    """Everything a rebuild could change, read straight from the file."""
    conn = sqlite3.connect(index)
    try:
        out: dict[str, Any] = {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("events", "streams", "files", "segments", "cursors", "meta", *TABLES)
        }
        out["check"] = conn.execute("PRAGMA integrity_check").fetchall()
        return out
    finally:
        conn.close()


def _foreign_segment(repo: Path, other: Path) -> None:
    """Another clone's writer's segment appears in the work tree, unread (as a merge brings
    one in): 20 missions made in a repository of its own."""
    make_repo(other)
    init(other)
    with Fleet.open(other, actor="goose", register=True) as fleet:
        fleet.emit_batch(_missions(1000, 20))
        shutil.copytree(fleet.writer.dir, repo / ".fleet/events" / fleet.writer.id)


_CHILD = """
import os, sys, time
from fleetgit.fleet import Fleet
stage = sys.argv[2]
def progress(name, done, total):
    if name == stage or f"{name}:{done}" == stage:
        print(name, flush=True)
        time.sleep(600)
with Fleet.open(sys.argv[1], catch_up=False) as fleet:
    fleet.rebuild(progress)
"""


@pytest.mark.parametrize(
    "stage", ["reading segments", "building indexes", "folding projections", "putting it in place"]
)
def test_a_rebuild_killed_at_any_stage_leaves_the_previous_index_whole(
    repo: Path, stage: str
) -> None:
    index, before = _killed_rebuilding(repo, stage, stage)
    assert _dump(index) == before  # the previous index, whole
    with Fleet.open(repo) as fleet:  # usable as it was; the next rebuild clears the leftover
        assert len(fleet.events(limit=1000)) == len(before["events"])
        fleet.rebuild()
        assert not fleet.verify().failed(strict=True)
    assert not index.with_name(index.name + REBUILD_SUFFIX).exists()
    after = _dump(index)
    for table in ("events", "cursors", "streams", *TABLES):
        assert after[table] == before[table], table


def test_a_rebuild_killed_once_its_file_is_in_place_leaves_it_usable(repo: Path) -> None:
    """Killed after the rename, before it closed anything: the new file is the index (its
    -wal and -shm left as a crash leaves them), the retired one is swept by the next rebuild."""
    index, before = _killed_rebuilding(repo, "putting it in place:1", "putting it in place")
    assert index.is_symlink()
    after = _dump(index)
    for table in ("events", "cursors", "streams", *TABLES):
        assert after[table] == before[table], table
    assert after["check"] == [("ok",)]
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(300, 1))
        fleet.rebuild()
        assert not fleet.verify().failed(strict=True)
        current = fleet.index.file
    _only_current_left(index, current)


def test_a_reader_open_across_a_rebuild_reads_the_new_index_from_its_next_catch_up(
    repo: Path,
) -> None:
    """A Fleet kept open (a server's) reads on the old file until its next freshness check,
    which finds another file at the index's name (one stat) and opens it, even when the old
    one looks level with every source: the retired file's disk space is let go."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 10))
        fleet.rebuild()  # the index a link to a rebuilt file, which the next one retires
    with Fleet.open(repo) as reader:
        before = reader.events(limit=1000)
        old = reader.index.file
        with Fleet.open(repo, catch_up=False) as rebuilder:
            rebuilder.rebuild()
            new = rebuilder.index.file
        assert reader.index.replaced() and not old.exists()
        reader.index.catch_up()
        assert reader.index.file == new and not reader.index.replaced()
        assert reader.events(limit=1000) == before
        assert not reader.verify().failed()


def test_a_link_to_a_deleted_index_file_is_a_deleted_index(repo: Path) -> None:
    """The rebuilt file deleted by hand under its link: the next open starts a new index and
    catches it up from the segments, as for a deleted index."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 30))
        fleet.rebuild()
        n = fleet.index.max_pos()
        rebuilt = fleet.index.file
    for suffix in ("", "-wal", "-shm"):
        Path(f"{rebuilt}{suffix}").unlink(missing_ok=True)
    with Fleet.open(repo) as fleet:
        assert fleet.index.max_pos() == n
        assert fleet.index.path.is_symlink() and fleet.index.file != rebuilt  # a new file
        assert not fleet.verify().failed()


def test_readers_see_the_old_index_until_the_rebuilt_one_is_in_place(repo: Path) -> None:
    """A rebuild that finds more than the index knew (a segment that arrived unread): a
    reader during the rebuild sees the old index, one after it the new; the events known before
    keep their positions, the new ones come after them all; cursors and settings stay."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 50))
        index = fleet.index.path
        cursors.advance(fleet, "reader", 30)
    conn = sqlite3.connect(index)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('some_setting', 'kept')")
    conn.commit()
    known = dict(conn.execute("SELECT id, pos FROM events").fetchall())
    _foreign_segment(repo, repo.parent / "other")
    seen: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done == 0 and stage not in seen:
            (seen[stage],) = conn.execute("SELECT count(*) FROM events").fetchone()

    with Fleet.open(repo, catch_up=False) as fleet:
        result = fleet.rebuild(progress)
    assert set(seen.values()) == {len(known)}, seen  # the old index at every stage
    assert result.new_events > len(known)
    # a connection opened before goes on reading the file it opened; a new one reads the new
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (len(known),)
    conn.close()
    conn = sqlite3.connect(index)
    after = dict(conn.execute("SELECT id, pos FROM events").fetchall())
    assert len(after) == result.new_events
    assert {eid: after[eid] for eid in known} == known
    assert min(pos for eid, pos in after.items() if eid not in known) > max(known.values())
    assert conn.execute("SELECT value FROM meta WHERE key = 'some_setting'").fetchone() == ("kept",)
    conn.close()
    with Fleet.open(repo, actor="viper-1") as fleet:
        assert cursors.show(fleet, "reader")["pos"] == 30
        assert not fleet.verify().failed()


_APPENDER = """
import sys
from fleetgit.fleet import EventSpec, Fleet
with Fleet.open(sys.argv[1], actor="viper-1") as fleet:
    print(len(fleet.events(limit=100000)), flush=True)
    for line in sys.stdin:  # one append per line, on the index this process opened first
        (e,) = fleet.emit_batch([EventSpec("mission_created", f"mission/{line.strip()}",
                                           {"mission_id": line.strip(), "title": "t"})])
        print(e.pos, len(fleet.events(limit=100000)), flush=True)
"""


def test_a_process_open_across_rebuilds_reads_and_writes_the_new_index(repo: Path) -> None:
    """Another process's Fleet, opened before two rebuilds (as a server's or an MCP server's
    is), appends into the file in place after each: its write transaction sees the index
    replaced (one stat) and opens the new one first. Positions go on from the new file's, and
    only the current file is left beside the link, with no retired -wal or -shm."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 40))
        index = fleet.index.path
    with subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        (first,) = map(int, proc.stdout.readline().split())
        assert first >= 40
        for round_ in range(2):
            _foreign_segment(repo, repo.parent / f"other{round_}")
            with Fleet.open(repo, catch_up=False) as fleet:
                fleet.rebuild()
                n = fleet.index.max_pos()
            assert index.is_symlink()
            proc.stdin.write(f"late{round_}\n")
            proc.stdin.flush()
            pos, seen = map(int, proc.stdout.readline().split())
            assert (pos, seen) == (n + 1, n + 1)  # the new file's next position, its events
        proc.stdin.close()
        assert proc.wait() == 0
    with Fleet.open(repo) as fleet:
        assert fleet.index.max_pos() == n + 1  # the last rebuild's and the late append
        assert not fleet.verify().failed()
        current = fleet.index.file
    _only_current_left(index, current)


def test_a_rebuild_equals_the_incremental_index_and_a_second_one_changes_nothing(
    repo: Path,
) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 40))
        fleet.emit("mission_started", "mission/m3", {"mission_id": "m3"})
        fleet.emit("mission_completed", "mission/m3", {"mission_id": "m3"})
        index = fleet.index.path
    incremental = _dump(index)
    with Fleet.open(repo, catch_up=False) as fleet:
        fleet.rebuild()
    once = _dump(index)
    with Fleet.open(repo, catch_up=False) as fleet:
        fleet.rebuild()
    twice = _dump(index)
    for table in ("events", "streams", "files", "segments", "cursors", *TABLES):
        assert once[table] == incremental[table] == twice[table], table
    generations = [dict(d["meta"])["generation"] for d in (incremental, once, twice)]
    assert len(set(generations)) == 3  # a rebuilt index is a new generation each time


_MISSION_STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                ("mission_created", {"title": "t"}),
                ("mission_started", {}),
                ("mission_updated", {"changes": {"priority": "high"}}),
                ("mission_completed", {"result": "partial"}),
                ("mission_cancelled", {}),
            ]
        ),
        st.integers(0, 4),  # which mission
        st.booleans(),  # which writer: this clone's, or another's segment arriving later
        st.booleans(),  # a catch-up right after it
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_MISSION_STEPS)
def test_the_rebuilt_file_equals_the_incremental_index(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Any]
) -> None:
    """Events of two writers arriving in any interleaving, caught up now and then: the index
    rebuilt in a fresh file equals the one caught up step by step, positions included."""
    root = tmp_path_factory.mktemp("rebuild")
    repo, other = root / "repo", root / "other"
    make_repo(repo)
    init(repo)
    make_repo(other)
    init(other)
    with (
        Fleet.open(repo, actor="viper", register=True) as here,
        Fleet.open(other, actor="goose", register=True) as there,
    ):
        theirs = repo / ".fleet/events" / there.writer.id
        for (etype, extra), mission, foreign, catch_up in steps:
            fleet = there if foreign else here
            data = {"mission_id": f"m{mission}", **extra}
            try:
                fleet.emit(etype, f"mission/m{mission}", data)
            except ValidationError:  # a transition its writer's index refuses: not written
                continue
            if foreign:  # their segment, as a merge would bring it: grown, read from where it was
                shutil.copytree(there.writer.dir, theirs, dirs_exist_ok=True)
            if catch_up:
                here.index.catch_up()
        here.index.catch_up()
        index = here.index.path
    incremental = _dump(index)
    with Fleet.open(repo, catch_up=False) as fleet:
        fleet.rebuild()
    rebuilt = _dump(index)
    for table in ("events", "streams", "files", "segments", *TABLES):
        assert rebuilt[table] == incremental[table], table


def _goose_elsewhere(repo: Path, their_keys: Path | None = None) -> Path:
    """goose registered in another clone too (later than the repo fixture's registration), and
    the two writers' segments brought together (as a merge brings them) in whichever of the
    two clones reads them in an order a rebuild does not: where the writer that sorts first is
    the one read second. Returns that clone."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        mine, my_dir = fleet.writer.id, fleet.writer.dir
        fleet.emit_batch(_missions(0, 5))
    other = repo.parent / "other"
    make_repo(other)
    init(other)
    ours = os.environ["FLEETGIT_KEY_DIR"]
    os.environ["FLEETGIT_KEY_DIR"] = str(their_keys or ours)
    try:
        with Fleet.open(other, actor="goose", register=True) as fleet:
            fleet.emit_batch(_missions(1000, 2))  # registers goose first
            theirs, their_dir = fleet.writer.id, fleet.writer.dir
    finally:
        os.environ["FLEETGIT_KEY_DIR"] = ours
    if theirs < mine:  # here ours was read first; a rebuild reads theirs first
        shutil.copytree(their_dir, repo / ".fleet/events" / theirs)
        return repo
    shutil.copytree(my_dir, other / ".fleet/events" / mine)  # there the other way round
    return other


def _incremental_and_rebuilt(repo: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with Fleet.open(repo) as fleet:
        incremental = _dump(fleet.index.path)
        fleet.rebuild()
        return incremental, _dump(fleet.index.path)


def test_the_same_key_registered_in_two_clones_counts_from_its_earliest_registration(
    repo: Path,
) -> None:
    """goose registered here (the repo fixture) and again in another clone of this machine,
    with the same key (one key folder), the other clone's registration later in total order
    but read first by a rebuild: the key counts from the earlier one either way, so nothing is
    quarantined and a rebuild equals the incremental index (it quarantined our registration
    batch when read the other way round)."""
    where = _goose_elsewhere(repo)
    incremental, rebuilt = _incremental_and_rebuilt(where)
    assert rebuilt["events"] == incremental["events"]
    with Fleet.open(where) as fleet:
        assert not fleet.index.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]


def test_a_callsign_registered_with_two_keys_is_owned_alike_whatever_the_read_order(
    repo: Path, tmp_path: Path
) -> None:
    where = _goose_elsewhere(repo, tmp_path / "another-machine-keys")
    incremental, rebuilt = _incremental_and_rebuilt(where)
    assert rebuilt["events"] == incremental["events"]


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=8))
def test_a_rebuild_stores_each_line_s_data_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, texts: list[tuple[str, str]]
) -> None:
    """A rebuild takes the events' fields out of the lines in SQLite (store.BulkInserts):
    `data` with escapes, quotes, controls, non-ASCII text and keys named like the envelope's
    is stored as the appends stored it, the line's own bytes."""
    repo = tmp_path_factory.mktemp("data") / "repo"
    make_repo(repo)
    init(repo)
    specs = []
    for i, (title, description) in enumerate(texts):
        title = "".join(c for c in title if c.isprintable()).strip() or "t"
        description = "".join(c for c in description if c.isprintable() or c in '\n\t"\\')
        data = {"mission_id": f"m{i}", "title": title, "description": description or None}
        specs.append(EventSpec("mission_created", f"mission/m{i}", data))
    with Fleet.open(repo, actor="viper", register=True) as fleet:
        fleet.emit_batch(specs)
        fleet.emit("mission_updated", "mission/m0", {"mission_id": "m0", "changes": {
            "description": ',"hlc":1,"data":{"x":"\\u0000"}'}})  # fmt: skip
        index = fleet.index.path
    incremental = _dump(index)
    with Fleet.open(repo, catch_up=False) as fleet:
        fleet.rebuild()
    rebuilt = _dump(index)
    for table in ("events", "streams", *TABLES):
        assert rebuilt[table] == incremental[table], table


def test_a_rebuild_whose_sql_insert_fails_inserts_row_by_row(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines SQLite's JSON would not take (here: every part, forced) go in one by one, as a
    catch-up inserts them: the same index, never a failed rebuild."""
    from fleetgit.index import store

    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 30))
        index = fleet.index.path
    incremental = _dump(index)
    failing = "INSERT INTO events (pos) SELECT json('[') WHERE ?1 IS NOT NULL AND ?2 IS NOT NULL"
    monkeypatch.setattr(store, "_BULK_INSERT", failing)
    with Fleet.open(repo, catch_up=False) as fleet:
        fleet.rebuild()
    rebuilt = _dump(index)
    for table in ("events", "streams", "files", "segments", *TABLES):
        assert rebuilt[table] == incremental[table], table


def test_the_cycle_collector_is_off_while_building_and_as_it_was_after(repo: Path) -> None:
    """A rebuild turns the cycle collector off while it builds (each collection walked every
    Event alive) and back to what it was after: on again, also when the rebuild fails; left
    off when its caller had turned it off."""
    import gc

    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 30))
    seen: list[bool] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage != "putting it in place":  # after the build
            seen.append(gc.isenabled())
        if stage == "folding projections" and fail:
            raise RuntimeError("stop")

    assert gc.isenabled()
    with Fleet.open(repo, catch_up=False) as fleet:
        fail = False
        fleet.index.rebuild(progress)
        assert seen and not any(seen)
        assert gc.isenabled()
        fail = True
        with pytest.raises(RuntimeError):
            fleet.index.rebuild(progress)
        assert gc.isenabled()
        gc.disable()
        try:
            fail = False
            fleet.index.rebuild(progress)
            assert not gc.isenabled()
        finally:
            gc.enable()


def test_each_events_hash_is_blake2b_8_of_its_line_whichever_path_stored_it(repo: Path) -> None:
    """An event's `hash` is the signed big-endian BLAKE2b-8 of its line (ledger/digest), as an
    append stores it (`_row`) and as a rebuild does (`BulkInserts`): the same number."""
    import hashlib

    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 12))
        index, folder = fleet.index.path, fleet.writer.dir
    segments = sorted(folder.glob("*.jsonl"))
    lines = [ln for seg in segments for ln in seg.read_bytes().splitlines(keepends=True)]
    want = {
        orjson.loads(ln)["id"]: int.from_bytes(
            hashlib.blake2b(ln, digest_size=8).digest(), "big", signed=True
        )
        for ln in lines
    }
    for _ in ("appended", "rebuilt"):
        with sqlite3.connect(index) as conn:
            stored = dict(conn.execute("SELECT id, hash FROM events WHERE writer = ?",
                                       (folder.name,)).fetchall())  # fmt: skip
        assert stored == want
        with Fleet.open(repo, catch_up=False) as fleet:
            fleet.rebuild()


class _RebuiltWhileConnecting(Index):
    """An index whose first connection is made just before another process's rebuild puts
    its file in place, before the name's inode is read (a real rebuild, in a real process)."""

    def _connect(self, must_exist: bool = False) -> sqlite3.Connection:
        conn = super()._connect(must_exist)
        if not getattr(self, "_raced", False):
            self._raced = True
            fleetgit = Path(sys.executable).with_name("fleetgit")
            subprocess.run([fleetgit, "index", "rebuild"], cwd=self.paths.worktree, check=True)
        return conn


def test_an_index_opened_as_a_rebuild_puts_its_file_in_place_is_the_new_one(repo: Path) -> None:
    """A plain index connected to, then replaced by a rebuild's link before its inode was
    read: the connection is on the retired file, so it is made again to the new one (never
    writing into the retired file with `replaced()` saying no)."""
    paths = locate(repo)
    index = _RebuiltWhileConnecting(paths, load_config(paths.config_file))
    assert index.path.is_symlink() and index.file != index.path and not index.replaced()
    with Fleet(paths, actor="viper", index=index) as fleet:
        fleet.emit_batch(
            [EventSpec("pilot_registered", "pilot/tom", {"callsign": "tom"}, actor="tom")]
        )
        n = fleet.index.max_pos()
    conn = sqlite3.connect(paths.index_file)
    assert conn.execute("SELECT max(pos) FROM events").fetchone() == (n,)
    conn.close()


@pytest.mark.parametrize("kind", ["to the writer's file", "to a file outside", "a gen link on"])
def test_a_link_fleetgit_did_not_make_is_never_followed(
    repo: Path, tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """`index.sqlite` a link made by hand (or a hostile one), or a rebuilt file's name that is
    itself a link: nothing is written through it nor deleted by it; it is replaced by a link
    to a new index of its own, caught up from the segments, with one warning line."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 5))
        n = fleet.index.max_pos()
        index = fleet.index.path
    writer = index.with_name("writer")
    outside = tmp_path / "outside.db"
    outside.write_bytes(b"")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    keep = {p: p.read_bytes() for p in index.parent.iterdir() if p.is_file()}
    if kind == "to the writer's file":
        index.symlink_to(writer.name)
    elif kind == "to a file outside":
        index.symlink_to(outside)
    else:
        gen = index.with_name(f"{index.name}.gen-{'0' * 16}")
        gen.symlink_to(outside)
        index.symlink_to(gen.name)
    capfd.readouterr()
    with Fleet.open(repo) as fleet:
        assert fleet.index.max_pos() == n
        assert not fleet.verify().failed()
        assert fleet.index.file.is_file() and not fleet.index.file.is_symlink()
    err = capfd.readouterr().err
    assert err.count("was a link fleetgit did not make") == 1, err
    assert outside.read_bytes() == b""
    for path, data in keep.items():
        if path.name != index.name + "-boot":
            assert path.read_bytes() == data, path
    assert writer.exists()


def test_an_index_dropped_once_linked_is_never_the_plain_name_again(repo: Path) -> None:
    """A process still on the plain index of before the first rebuild holds its -wal and -shm;
    the rebuilt file deleted by hand, the new index is another rebuilt file under the link, not
    a plain `index.sqlite` that would take that -wal and -shm for its own."""
    with Fleet.open(repo, actor="viper-1") as old:
        old.emit_batch(_missions(0, 5))
        index = old.index.path
        had = old.index.conn.execute("SELECT count(*) FROM events").fetchone()
        assert not index.is_symlink() and Path(f"{index}-shm").exists()
        fleetgit = Path(sys.executable).with_name("fleetgit")
        subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True, capture_output=True)
        for gen in index.parent.glob(f"{index.name}.gen-*"):
            gen.unlink()
        with Fleet.open(repo, actor="viper-1") as new:
            assert index.is_symlink() and new.index.file != index
            assert not Path(f"{index}-shm").exists() and not Path(f"{index}-wal").exists()
            new.emit_batch(_missions(5, 20))
            n = new.index.max_pos()
            assert old.index.conn.execute("SELECT count(*) FROM events").fetchone() == had
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT max(pos), count(*) FROM events").fetchone() == (n, n)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_a_rebuild_by_a_process_on_a_retired_file_leaves_only_its_own(repo: Path) -> None:
    """A Fleet opened on a rebuilt file, which another process's rebuild retired, rebuilds:
    its write transaction opens the file in place first, and that file (not the one it had
    opened) is the one its rebuild retires and deletes."""
    fleetgit = Path(sys.executable).with_name("fleetgit")
    subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True, capture_output=True)
    with Fleet.open(repo) as fleet:
        subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True, capture_output=True)
        fleet.rebuild()
        current = fleet.index.file
    left = sorted(p.name for p in current.parent.glob("index.sqlite.gen-*"))
    assert [n for n in left if not n.endswith(("-wal", "-shm"))] == [current.name], left


def test_the_first_process_of_a_boot_sweeps_retired_rebuilt_files(repo: Path) -> None:
    """Rebuilt files no link names (a reader killed on a retired one, a rebuild killed): no
    process of the new boot can be on them, so its first process deletes them."""
    if boot.boot_id() is None:
        pytest.skip("no boot id on this system")
    with Fleet.open(repo) as fleet:
        fleet.rebuild()
        index, current = fleet.index.path, fleet.index.file
    for name in ("0" * 16, "1" * 16):
        for suffix in ("", "-wal", "-shm"):
            index.with_name(f"{index.name}.gen-{name}{suffix}").write_bytes(b"left")
    Path(boot.marker(index)).write_bytes(b"an-earlier-boot".ljust(boot.WIDTH))
    with Fleet.open(repo) as fleet:
        assert not fleet.verify().failed()
        current = fleet.index.file
    left = sorted(p.name for p in index.parent.glob(f"{index.name}.gen-*"))
    assert [n for n in left if not n.endswith(("-wal", "-shm"))] == [current.name], left


def test_where_no_symbolic_link_can_be_made_the_rebuild_is_copied_over_the_index(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that makes no symbolic links (os.symlink fails as vfat's does, the one
    stand-in here: no such filesystem can be mounted in the tests): the rebuilt file is copied
    over the plain index, as before links, and nothing of it is left beside it."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(0, 30))
        cursors.advance(fleet, "reader", 12)
        index = fleet.index.path
    before = _dump(index)

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_links)
    with Fleet.open(repo, actor="viper-1", catch_up=False) as fleet:
        fleet.rebuild()
        assert fleet.index.file == index and not index.is_symlink()
    after = _dump(index)
    for table in ("events", "cursors", "streams", *TABLES):
        assert after[table] == before[table], table
    assert not list(index.parent.glob(f"{index.name}.gen-*"))
    assert not list(index.parent.glob(f"{index.name}{REBUILD_SUFFIX}*"))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(30, 1))
        assert not fleet.verify().failed(strict=True)
