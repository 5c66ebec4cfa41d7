"""The SQLite index: a disposable cache derived from the segments.

Only this package sees sqlite3 errors. Every write happens inside `transaction()` (BEGIN
IMMEDIATE), so a catch-up, an append or a rebuild never interleave within a clone.

The projection engine (and with it every fold) is imported where it is used: a command that finds
nothing new to fold never needs it, and importing it costs ~6 ms of every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.git.paths import RepoPaths
from fleetgit.index.schema import DDL, DERIVED_TABLES, SCHEMA_VERSION
from fleetgit.ledger import boot, clock, indexlink
from fleetgit.ledger.codec import Event
from fleetgit.ledger.config import Config
from fleetgit.ledger.digest import digest8, digest16
from fleetgit.ledger.errors import IntegrityError
from fleetgit.ledger.segments import RESTORED_SEGMENTS, line_hash

_COLUMNS = (
    "id, type, v, stream, seq, hlc, writer, wseq, actor, ts, causation_id, correlation_id,"
    " tx, txn, data, hash"
)
_ASSIGN = ", ".join(f"{column} = ?" for column in _COLUMNS.split(", "))
_TAIL = 256  # bytes before a file's ingested offset that must still match to resume from it

# sqlite3 binds None without help, but only after asking NoneType for `__adapt__` and
# `__conform__`: two AttributeErrors formatted and dropped per NULL bound (~4 % of a rebuild's
# instructions, callgrind). An adapter found at once skips that; `{}.get` returns None for
# None, in C. Process-wide, and what is bound stays NULL.
_NO_ADAPTATION: dict[None, None] = {}
_as_null: Callable[[None], None] = _NO_ADAPTATION.get
sqlite3.register_adapter(type(None), _as_null)


def split_statements(script: str) -> list[str]:
    """Split a script into statements (a trigger body holds semicolons of its own)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s.rstrip(";").strip()]


def new_generation(conn: sqlite3.Connection) -> None:
    """Mark the index as new: a fresh file or a rebuild may number events otherwise, so a copy
    kept by position (the analytics cache) starts again when this changes."""
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (os.urandom(8).hex(),))


def tail_hash(data: bytes) -> bytes:
    return digest16(data)


class IngestResult:
    """What one catch-up or rebuild did (what it skipped is in the `refused` table)."""

    __slots__ = ("blobs_read", "files_read", "new_events")

    def __init__(self) -> None:
        self.new_events = 0
        self.files_read = 0
        self.blobs_read = 0


# an Event's envelope in the order of _COLUMNS (its causation and correlation ids come last in
# the tuple), picked in C: a rebuild builds a million of these rows
_ENVELOPE = itemgetter(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 10, 11)


def _row(e: Event, line: bytes) -> tuple[Any, ...]:
    """An event as the events table's columns (_COLUMNS), without its position. `data` as
    canonical JSON: cut out of the line when the line is canonical (intake checked it; keys
    sorted, so `data` comes right before the top-level `hlc`, and nothing after it can hold an
    unescaped `,"hlc":`), else encoded."""
    envelope: tuple[Any, ...] = _ENVELOPE(e)
    start = line.find(b',"data":')
    end = line.rfind(b',"hlc":')
    if start < 0 or end < start:
        data = orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode()
    else:
        data = line[start + 8 : end].decode()
    return (*envelope, data, line_hash(line))


# A rebuild inserts the events of a portion in one statement run on a thread of its own
# (`BulkInserts`): SQLite takes each field out of the lines with `json_extract`, in C, and
# sqlite3 lets go of the GIL for the whole statement, so the insert, its unique index and the
# lookup of the position each event had run on the other core while Python reads and checks the
# next portion. The lines go as their bytes joined by commas (SQLite makes them text and a JSON
# array), their hashes (computed here, as `_row` computes them) as fixed-width decimals a row
# reads by its place in the array.
# `data` is what SQLite renders of the line's `data` object: for a canonical line (intake
# refuses any other) its bytes as they are in the line, what `_row` cuts (`renders_as_is`
# checks this SQLite's rendering before a rebuild relies on it).
_BULK_FIELDS = (
    "id", "type", "v", "stream", "seq", "hlc", "writer", "wseq", "actor", "ts", "causation_id",
    "correlation_id", "tx", "txn", "data",
)  # fmt: skip
SWITCH_INTERVAL = 0.0005  # seconds: sys.setswitchinterval while a rebuild inserts on a thread
_HASH_WIDTH = 21  # "%+021d" of a signed 64-bit integer
_BULK_INSERT = (
    f"WITH j (line, k) AS MATERIALIZED"
    f" (SELECT value, key FROM json_each('[' || CAST(?1 AS TEXT) || ']'))"
    f" INSERT INTO events (pos, {_COLUMNS}) SELECT (SELECT pos FROM prior_pos WHERE id ="
    f" json_extract(line, '$.id')), "
    + ", ".join(f"json_extract(line, '$.{f}')" for f in _BULK_FIELDS)
    + f", CAST(substr(?2, k * {_HASH_WIDTH} + 1, {_HASH_WIDTH}) AS INTEGER) FROM j"
)
# a canonical line (orjson, sorted keys) whose data holds what a rendering could change: escapes,
# non-ASCII text, numbers of every form, nesting, empty containers, the top-level keys' names
_PROBE = orjson.dumps(
    {"actor": None, "id": "x", "hlc": 1, "data": {
        "a": "q\"\\\n\t\u0001/\u2028é😀", "b": [1.5, -0.0, 1e300, -1234567890123456789, 0,
        True, False, None, {}, []], "c": {"hlc": {"data": ","}}, "": ""}},
    option=orjson.OPT_SORT_KEYS,
)  # fmt: skip


def renders_as_is(conn: sqlite3.Connection) -> bool:
    """Does this SQLite's `json_extract` give a canonical line's `data` back byte for byte?"""
    start = _PROBE.find(b',"data":') + 8
    end = _PROBE.rfind(b',"hlc":')
    (got,) = conn.execute("SELECT json_extract(?, '$.data')", (_PROBE.decode(),)).fetchone()
    return isinstance(got, str) and got.encode() == _PROBE[start:end]


class BulkInserts:
    """A rebuild's inserts of events on a thread, one portion at a time (see _BULK_INSERT).
    While one runs, the index's `conn` is a `_Waiting` connection: every use of it waits for
    the insert first, so statements still run one after another in program order, and only
    Python work overlaps the insert. A part holding an id already inserted (a copy read from
    another source) fails whole, as a statement does, and it and the rest of its portion go
    through `_insert_new`, which sorts the copies out; so does a part SQLite fails on for any
    other reason (the error, if it was not the lines', comes again from there)."""

    PART = 2000  # lines a statement: what SQLite holds of the JSON at a time stays small

    def __init__(self, db: IndexDB) -> None:
        self.db = db
        self.conn = db.conn
        self._thread: Any = None
        self._lines: list[bytes] = []  # of the portion under way, for `_insert_new` if need be
        self._result: IngestResult | None = None
        self._done = 0  # its lines inserted
        self._error: BaseException | None = None
        self._queued: list[tuple[str, tuple[Any, ...]]] = []  # `later`'s, not yet handed on
        self._after: list[tuple[str, tuple[Any, ...]]] = []  # run by the thread after its inserts
        self._interval = 0.005

    def __enter__(self) -> BulkInserts:
        self.db.conn = _Waiting(self.conn, self)  # type: ignore[assignment]
        # the thread takes the GIL back after each part: without a shorter wait for it, each
        # part would end waiting up to 5 ms (the default) for this thread's Python to yield
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self.db.conn = self.conn
            sys.setswitchinterval(self._interval)

    def submit(self, items: list[tuple[Event, bytes]], result: IngestResult) -> None:
        """Insert the events of `items` on the thread (after the portion under way)."""
        self.wait()
        lines = [line for _, line in items]
        # line_hash of each line: its digest8 bytes, all unpacked in one call
        digests = b"".join(map(digest8, lines))
        hashes = list(map(b"%+021d".__mod__, struct.unpack(f">{len(lines)}q", digests)))
        # the lines joined by commas: SQLite makes the array of them (and text of the bytes)
        parts = [
            (b",".join(lines[i : i + self.PART]), b"".join(hashes[i : i + self.PART]))
            for i in range(0, len(lines), self.PART)
        ]
        result.new_events += len(lines)
        self._lines, self._result, self._done = lines, result, 0
        self._after, self._queued = self._queued, []
        self._thread = threading.Thread(target=self._run, args=(parts,))
        self._thread.start()

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run a statement whose result nobody reads after the inserts under way (or when
        the connection is next used): the caller's thread goes on meanwhile."""
        self._queued.append((sql, params))

    def _run(self, parts: list[tuple[bytes, bytes]]) -> None:
        try:
            for text, hashes in parts:
                self.conn.execute(_BULK_INSERT, (text, hashes))
                self._done += self.PART
            for sql, params in self._after:
                self.conn.execute(sql, params)
            self._after = []
        except BaseException as exc:  # handed to the caller's thread by `wait`
            self._error = exc

    def wait(self) -> None:
        """Wait for the inserts under way, then run what `later` queued."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            error, self._error = self._error, None
            rest, self._lines = self._lines[self._done :], []
            if error is not None:
                # a copy of an event (IntegrityError), or whatever else SQLite would not take
                # from the lines as they are: inserted row by row as a catch-up inserts them
                if not isinstance(error, sqlite3.Error):
                    raise error
                assert self._result is not None
                self._result.new_events -= len(rest)
                # the lines were checked when read: checked again, they give the same events
                from fleetgit.ledger.intake import check

                # the statements queued before this portion first, then those queued since
                # (insert_rows goes through the waiting connection, which runs them)
                self._queued[:0], self._after = self._after, []
                self.db.insert_rows([(check(ln, None, CATALOGUE), ln) for ln in rest], self._result)
        queued, self._queued = self._queued, []
        for sql, params in queued:
            self.conn.execute(sql, params)


class _Waiting:
    """A connection whose every use first waits for the bulk insert under way."""

    def __init__(self, conn: sqlite3.Connection, bulk: BulkInserts) -> None:
        self._conn = conn
        self._bulk = bulk

    def __getattr__(self, name: str) -> Any:
        self._bulk.wait()
        return getattr(self._conn, name)


# WAL checkpoints happen off the append's path (docs/design.md, The index's WAL). SQLite's own
# autocheckpoint copies the WAL into the database (and fsyncs both) inside the COMMIT that pushed
# the WAL past its window: with ~18 pages per append, one durable append in ~55 paid for all the
# others. Here a `Checkpointer` thread with a connection of its own runs PASSIVE checkpoints (they
# never wait for, nor block, readers or the writer) once the WAL holds CHECKPOINT_PAGES frames not
# yet copied, as SQLite's default would. The WAL starts over from its beginning only when a write
# begins with every frame copied, which appends back to back never leave time for: once it holds
# RESTART_FRAMES, a commit that finds little left to copy copies it and restarts the WAL.
BUSY_TIMEOUT_MS = 120_000
CHECKPOINT_PAGES = 1000  # SQLite's default window
RESTART_FRAMES = 8192  # 32 MiB of WAL at 4 KiB pages
RESTART_PENDING = 256  # what a restart on the path may have to copy (1 MiB), unless far behind
WAL_AUTOCHECKPOINT = 4 * RESTART_FRAMES  # SQLite's own, a backstop that should never fire
# A restarted WAL is written over in place, not cut back: truncating it to a smaller limit dropped
# its cached pages and gave its blocks back (3-8 ms of CPU on the append that restarted it, and its
# next growth allocated them again). Only a WAL longer than three restart windows (96 MiB) is cut
# back to this: a commit restarts it past two (`_after_commit`), so appends leave it shorter unless
# a reader holds the restart off for long; a rebuild's copy is what gets past it.
JOURNAL_SIZE_LIMIT = 3 * RESTART_FRAMES * 4096
# frames appended while a checkpoint runs are left over: it goes round again for them
RESIDUE_PASSES = 3


REBUILD_SUFFIX = ".rebuild"  # what a rebuild makes beside the index (links on their way, swept)
LINK_LOCK = ".link-lock"  # beside the index: who changes what its link names (`link_lock`)


@contextmanager
def link_lock(link: Path) -> Iterator[None]:
    """Change what the index link names, or delete files it may name, one at a time: a
    rebuild's switch (catchup.py `_put_in_place`), a relink (`IndexDB._relink`), a sweep. An
    flock on `<link>.link-lock`, held for a few system calls, never while waiting for another
    lock (so no cycle with the SQLite write lock a rebuild holds around it, nor the boot
    marker's). flock is per open file: two threads of one process exclude each other too."""
    fd = os.open(f"{link}{LINK_LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def link_name(link: Path) -> str | None:
    """What the link at `link` names, as written (None: no link there)."""
    try:
        return os.readlink(link)
    except OSError:
        return None


def put_link(link: Path, name: str) -> None:
    """Make `link` a symbolic link to `name` (a file beside it) in one rename: never missing.
    Under `link_lock` (its temporary name is the process's)."""
    tmp = link.with_name(f"{link.name}{REBUILD_SUFFIX}-link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(name, tmp)
    os.replace(tmp, link)


def sweep(link: Path, keep: Path) -> None:
    """Delete the files of earlier rebuilds but the one `link` names (`keep`): what a killed
    rebuild left, and the retired files a reader killed before closing them kept (a reader
    still on one keeps its open files; none can open it by name any more). Under the index's
    write lock (a rebuild's), or by the first process of a boot (`IndexDB._claim_boot`); and
    under `link_lock`, so never a file a relink has just made and not yet linked, nor the
    one the link names by then (`keep` read before)."""
    with link_lock(link):
        now = indexlink.target(str(link))
        _sweep(link, keep, Path(now).name if now is not None else keep.name)


def _sweep(link: Path, keep: Path, named: str) -> None:
    for entry in os.scandir(link.parent):
        name = entry.name
        if name.startswith((link.name + indexlink.GEN_INFIX, link.name + REBUILD_SUFFIX)):
            if name in (keep.name, named) or name.startswith((f"{keep.name}-", f"{named}-")):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        elif keep != link and name in (f"{link.name}-wal", f"{link.name}-shm"):
            with contextlib.suppress(FileNotFoundError):  # of the file before the first link
                os.unlink(entry.path)


def _plain_ino(path: Path) -> int | None:
    """The inode of the regular file at `path` (not followed: None for a link, or nothing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_ino if stat.S_ISREG(st.st_mode) else None


_HELD: dict[str, int] = {}
_RETIRED: dict[str, list[int]] = {}  # fds `held_fd` kept of files no longer at their path
_USERS: dict[str, int] = {}  # an index file -> this process's open IndexDBs on it
# the three above are the process's: every thread's IndexDB (a web server's) counts and holds
# there, so each change is made under this lock (a count updated by two threads at once lost
# one, and an fd could be closed while a connection of this process was on its file)
_FDS = threading.Lock()


def _use(file: str, by: int) -> None:
    with _FDS:
        left = _USERS.get(file, 0) + by
        if left > 0:
            _USERS[file] = left
        else:
            _USERS.pop(file, None)


def held_fd(path: str) -> int:
    """A read-only fd of `path` (the index or its -shm file) kept for the life of the process:
    closing any fd of a file drops every POSIX lock the process holds on it, SQLite's own
    included (those of its other connections to the index too), so none of these is closed
    while a connection of this process is on the file. A file replaced since (another inode
    at `path`) gets a new one; the old one is closed by `let_go_if_gone`."""
    with _FDS:
        return _held_fd(path)


def _held_fd(path: str) -> int:
    old = _HELD.pop(path, -1)  # never left there closed: its number may be reused
    if old >= 0:
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(old).st_ino == os.stat(path).st_ino:
                _HELD[path] = old
                return old
        _RETIRED.setdefault(path, []).append(old)
    fd = _HELD[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return fd


def let_go_if_gone(path: str) -> None:
    """Close the fds `held_fd` keeps of `path` whose file is deleted, once no connection of
    this process is on it: a rebuild deletes the file it retires while other threads'
    connections may still hold SQLite's locks there (until their next check moves them)."""
    with _FDS:
        _let_go_if_gone(path)


def _let_go_if_gone(path: str) -> None:
    if _USERS.get(path.removesuffix("-shm"), 0) > 0:
        return
    for fd in _RETIRED.pop(path, ()):
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)
        else:  # replaced at its path, not deleted: a connection may yet come to it
            _RETIRED.setdefault(path, []).append(fd)
    fd = _HELD.get(path, -1)
    if fd >= 0 and os.fstat(fd).st_nlink == 0:
        os.close(fd)
        del _HELD[path]


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its name."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wal_frames(shm_fd: int) -> tuple[int, int]:
    """The WAL's frames, and those not yet copied into the database, from the WAL-index header
    in the -shm file (the documented format, https://www.sqlite.org/walformat.html: mxFrame at
    byte 16 of the header, nBackfill at byte 96 in the checkpoint info, native byte order);
    (0, 0) when the file is not one this reader knows (SQLite's backstop checkpoints then)."""
    head = os.pread(shm_fd, 100, 0)
    if len(head) < 100 or struct.unpack_from("=I", head, 0)[0] != 3007000:
        return 0, 0
    (mx_frame,) = struct.unpack_from("=I", head, 16)
    (backfilled,) = struct.unpack_from("=I", head, 96)
    return int(mx_frame), max(0, int(mx_frame) - int(backfilled))


class Checkpointer:
    """A daemon thread that checkpoints the index's WAL (PASSIVE) when `poke`d; started on the
    first poke, stopped (after the checkpoint under way) by `close`. sqlite3 releases the GIL
    while it works, so the checkpoint's copying and fsyncs overlap the next append."""

    def __init__(self, path: Path, synced: bool = True) -> None:
        self.path = path
        self.synced = synced  # False: the index is written without syncs (IndexDB._claim_boot)
        self._thread: Any = None
        self._wake: Any = None
        self._stop = False
        self.done = 0  # checkpoints run (for tests and benchmarks)

    def poke(self) -> None:
        if self._thread is None:
            self._wake = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="fleetgit-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous = {'NORMAL' if self.synced else 'OFF'}")
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                for _ in range(RESIDUE_PASSES):
                    try:
                        busy, log, copied = conn.execute(
                            "PRAGMA wal_checkpoint(PASSIVE)"
                        ).fetchone()
                    except sqlite3.Error:  # busy or gone: the next poke retries
                        break
                    self.done += 1
                    if busy or log == copied:
                        break  # all of it copied: the next write starts the WAL over
        finally:
            conn.close()

    def close(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join()
            self._thread = None


class WriterFacts(NamedTuple):
    max_segment: int  # highest segment number of the writer the index has seen
    max_wseq: int  # the writer's last wseq: it knows every write that reached a file
    witnessed_hlc: int  # the largest HLC seen, ignoring ones too far ahead (flagged, not followed)
    next_pos: int  # the position AUTOINCREMENT gives the next new event


class IndexDB:
    """The connection and the low-level operations; the catch-up logic lives in catchup.py."""

    def __init__(
        self, paths: RepoPaths, config: Config, path: Path | None = None, *, bulk: bool = False
    ) -> None:
        """`path`: another file than the clone's index (a throwaway one, index/gitviews.py).
        `bulk`: a file being built by a rebuild, written with the journal and syncs off (a
        crash leaves a file nobody reads; see Index.rebuild)."""
        self.bulk = bulk
        self.paths = paths
        self.config = config
        # the name it is opened by (`path`) and the file it is (`file`): the clone's index, once
        # rebuilt, is a link to a file of that rebuild's own (`indexlink`, see Index.rebuild)
        self.path = paths.index_file if path is None else path
        self.is_the_clones = self.path == paths.index_file  # not a throwaway file
        self.file = self.path
        self.ino = 0  # the inode of `file` when opened: another at `path` means it was replaced
        self.rebuilding = False
        self.settled_pos = 0  # events up to here were kept by an earlier catch-up
        self.refused_new = 0  # problems this process's catch-ups recorded for the first time
        # during a catch-up: segment portions whose pilots' keys may come from a later source
        self.trust_deferred: list[Any] | None = None
        # a key change took validity from events already taken: rebuild (index/trust.py)
        self.trust_redo = False
        self.reading_blob = False  # ingesting a committed blob read whole (trust.py: lineno)
        self.ingested = 0  # events handed to `ingest` (a rebuild compares them with the new ones)
        # the earliest point of total order a change to reservations touched, not yet settled
        self.clashes_from: tuple[int, str, int] | None = None
        self.bulk_inserts: BulkInserts | None = None  # a rebuild's, while it reads
        # the files fingerprint and the files (by worktree and relpath) of this transaction's
        # catch-up (catchup.Index.catch_up_locked), for the append that follows it
        self.scanned: tuple[int, dict[tuple[str, str], Any]] | None = None
        self.screen_keys: Any = None  # the pilots' keys a rebuild's screens read (trust.py)
        self.unsynced = False  # written without syncs (set by `_open`, see `_claim_boot`)
        self.conn = self._open()
        self._on = str(self.file)  # the file counted in _USERS, "" once closed
        _use(self._on, 1)
        self.checkpointer = Checkpointer(self.file, synced=not self.unsynced)
        self._shm_fd = -1
        self._memo: dict[Any, Any] = {}
        self._memo_state: tuple[int, int] = (-1, -1)

    # -- connection -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.unsynced = not self.bulk and self._claim_boot()
        try:
            conn = self._connect_current()
            version = self._schema_version(conn)
        except sqlite3.DatabaseError:
            # A corrupt cache is deleted and rebuilt from the segments; nothing is lost.
            self._remove_files()
            conn = self._connect_current()
            version = None
        if version != SCHEMA_VERSION:
            self._reset_schema(conn, version)
        if self.unsynced and self.is_the_clones:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(f"{self.file}-wal").st_size == 0:
                    # a WAL made since the last close: its name on disk before any checkpoint
                    # copies from it into the database (see `_claim_boot`)
                    fsync_path(self.file.parent)
        return conn

    def _connect_current(self) -> sqlite3.Connection:
        """Connect to the file `path` names now: a rebuild's file (never created here, where a
        rebuild may just have retired and deleted it: then the link names a newer one). A link
        to no file (its file deleted by hand) goes: a new index, as for a deleted one."""
        missing = None
        for _ in range(100):
            named = link_name(self.path)
            target = indexlink.target(str(self.path))
            if target is None:  # a link fleetgit did not make: never followed
                self._relink(named, foreign=True)
                continue
            self.file = Path(target)
            if self.file == self.path:
                # its inode before and after connecting: a rebuild's rename in between (a link
                # now) leaves the connection on the retired file, or on the new one by the link
                before = _plain_ino(self.path)
                conn = self._connect()
                if before is None or before != _plain_ino(self.path):
                    conn.close()
                    continue
                self.ino = before
                return conn
            try:
                conn = self._connect(must_exist=True)
            except sqlite3.OperationalError:
                if os.path.exists(self.file):
                    raise
                if missing == self.file:  # twice the same: not a rebuild's switch
                    self._relink(named)
                missing = self.file
                continue  # retired meanwhile: the link names its successor
            try:
                self.ino = os.stat(self.file).st_ino
            except FileNotFoundError:
                conn.close()
                continue
            return conn
        raise IntegrityError(f"the index at {self.path} keeps being replaced")

    def _relink(self, seen: str | None, foreign: bool = False) -> None:
        """Drop the link at `path` (to a file deleted by hand, or `foreign`: one fleetgit did not
        make, said in one line) for one to a new, empty file of its own: a new index, caught up
        from the segments. Never the plain name again: a process still on the file it named
        before the first rebuild may hold its `-wal` and `-shm`, which a new file of that name
        would share; those go. Compare and swap under `link_lock`: only while the link still
        names `seen`, what this process judged; else another process changed it meanwhile (a
        rebuild's switch, another relink) and the caller reads the link again."""
        with link_lock(self.path):
            if seen is None or link_name(self.path) != seen:
                return
            if foreign:
                print(
                    f"fleetgit: warning: {self.path} was a link fleetgit did not make (to"
                    f" {seen!r}): replaced by a new index, caught up from the segments",
                    file=sys.stderr,
                )
            tail = os.urandom(indexlink.GEN_HEX // 2).hex()
            name = f"{self.path.name}{indexlink.GEN_INFIX}{tail}"
            fd = os.open(self.path.with_name(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            put_link(self.path, name)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")

    def replaced(self) -> bool:
        """Has a rebuild put another file in place of the one this connection reads? One stat."""
        try:
            return self.is_the_clones and os.stat(self.path).st_ino != self.ino
        except FileNotFoundError:
            return False  # deleted under it (the clone gone): read on as before

    def follow(self) -> None:
        """Open the file a rebuild put in place of this one, if one did (one stat), unless a
        transaction is open on this one. Called by every freshness check, and by whoever
        skips its own check because another thread's catch-up, on its own connection, did it
        (web/common.py `Freshness`): skipped, this connection would go on reading the retired
        file."""
        if self.replaced() and not self.conn.in_transaction:
            self.reopen()

    def reopen(self) -> None:
        """Let go of a replaced index and open the one in its place (outside a transaction)."""
        self.checkpointer.close()
        self._shm_fd = -1
        old = str(self.file)
        self.conn.close()  # the retired file: nothing of it needs syncing
        _use(self._on, -1)
        self._on = ""
        let_go_if_gone(f"{old}-shm")
        let_go_if_gone(old)
        self._memo.clear()
        self._memo_state = (-1, -1)
        self.conn = self._open()
        self._on = str(self.file)
        _use(self._on, 1)
        self.checkpointer = Checkpointer(self.file, synced=not self.unsynced)

    def _claim_boot(self) -> bool:
        """May this index be written without syncs? Once a process of this boot has checked it:
        the first one drops an index that another boot's processes left open (its WAL still
        there: the last connection to close deletes it after copying it in with syncs), as an
        OS crash or a power loss may have torn it; catch-up rebuilds it from the segments.
        False where the boot is not known: SQLite's syncs then (NORMAL), as before."""
        this = boot.boot_id()
        if this is None:
            return False
        if not self.is_the_clones:  # a throwaway file (gitviews, snapshotting): never reopened
            return True
        fd = os.open(boot.marker(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if boot.named(fd) == this:
                return True
            fcntl.flock(fd, fcntl.LOCK_EX)  # the first process of this boot decides; others wait
            seen = boot.named(fd)
            if seen == this:
                return True
            target = indexlink.target(str(self.path))
            if seen and target is not None and os.path.lexists(f"{target}-wal"):
                self.file = Path(target)
                self._remove_files()
            if target is not None:  # no process of this boot is on any other file yet
                sweep(self.path, keep=Path(target))
            os.pwrite(fd, this.encode().ljust(boot.WIDTH), 0)  # in place: never read half-empty
            if not seen:  # a new marker (an index written with syncs, or none): on disk first
                os.fsync(fd)
                fsync_path(self.path.parent)
        finally:
            os.close(fd)  # releases the lock
        return True

    def _connect(self, must_exist: bool = False) -> sqlite3.Connection:
        # a rebuild's file: inserts run on a thread of their own too (BulkInserts); URIs, to
        # attach the index it replaces read-only (catchup.Index.keep_from). One thread uses a
        # connection at a time; any may close it (a web server's stop closes every request
        # thread's: SQLite folds the WAL back only when the last connection closes)
        where: str | Path = f"file:{quote(str(self.file))}?mode=rw" if must_exist else self.file
        conn = sqlite3.connect(
            where, isolation_level=None, timeout=120, check_same_thread=False,
            uri=self.bulk or must_exist,
        )  # fmt: skip
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.bulk:  # a file being built by a rebuild: nobody reads it before it is whole
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            return conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'OFF' if self.unsynced else 'NORMAL'}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        return conn

    def _after_commit(self) -> None:
        """Hand the WAL to the checkpointer once its window is full, and start it over once it
        is long (see RESTART_FRAMES); a pread of 100 bytes otherwise."""
        if self._shm_fd >= 0 and os.fstat(self._shm_fd).st_nlink == 0:  # the index was replaced
            self._shm_fd = -1
        if self._shm_fd < 0:
            try:
                self._shm_fd = held_fd(f"{self.file}-shm")
            except OSError:
                return
        frames, pending = wal_frames(self._shm_fd)
        # restart when little is left to copy (the thread just went through), or regardless
        # once the WAL is twice as long (the thread cannot keep up)
        if frames >= RESTART_FRAMES and (pending < RESTART_PENDING or frames >= 2 * RESTART_FRAMES):
            # never waits: a reader still on the WAL (busy) leaves it to a later commit
            self.conn.execute("PRAGMA busy_timeout = 0")
            try:
                self.conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            except sqlite3.Error:
                pass
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        elif pending >= CHECKPOINT_PAGES:
            self.checkpointer.poke()

    def _remove_files(self) -> None:
        """Delete the index's file (a rebuilt one: its link, left to no file, is then replaced,
        `_relink`)."""
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.file}{suffix}")

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    def _reset_schema(self, conn: sqlite3.Connection, old: int | None) -> None:
        """Create the schema; an index of another version is dropped (and rebuilt on catch-up)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if old is not None and self._schema_version(conn) == old:
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master"
                    " WHERE type = 'table' AND name != 'sqlite_sequence'"
                ).fetchall():
                    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            from fleetgit.index import projections

            for statement in split_statements(DDL + projections.DDL):
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            new_generation(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.checkpointer.close()
        self._shm_fd = -1
        if self.unsynced and self.is_the_clones:
            # The last connection to close copies in what is left of the WAL, with syncs, then
            # deletes the WAL (see `_claim_boot`): the pages checkpoints copied in without syncs
            # must be on disk first, as that close syncs the database only when it copies.
            with contextlib.suppress(OSError, sqlite3.Error):
                self.conn.execute("PRAGMA synchronous = NORMAL")
                os.fsync(held_fd(str(self.file)))
        self.conn.close()
        _use(self._on, -1)
        self._on = ""
        let_go_if_gone(f"{self.file}-shm")  # the last to close deletes it
        let_go_if_gone(str(self.file))  # deleted under it (a corrupt index dropped, a clone gone)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: the one writer of this clone's index until COMMIT."""
        self.scanned = None  # another transaction's
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            while self.replaced():  # a rebuild put a new file in place (checked under its lock)
                self.conn.execute("ROLLBACK")
                self.reopen()
                self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IntegrityError(f"the index is busy or unwritable: {exc}") from None
        try:
            yield self.conn
            self.settle_clashes()
        except BaseException:
            self.clashes_from = None
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self._after_commit()

    def note_clashes(self, since: tuple[int, str, int] | None) -> None:
        """Judge void reservations again from `since` on, at the next `settle_clashes`: once
        per catch-up rather than once per file or blob it reads."""
        if since is not None and (self.clashes_from is None or since < self.clashes_from):
            self.clashes_from = since

    def settle_clashes(self) -> None:
        if self.clashes_from is None:
            return
        from fleetgit.index import projections

        projections.settle(self.conn, self.clashes_from)
        self.clashes_from = None

    # -- meta -------------------------------------------------------------------------------

    def meta(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def metas(self, *keys: str) -> dict[str, str]:
        """The settings of `keys` that are set, in one query."""
        rows = self.conn.execute(
            f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})", keys
        ).fetchall()
        return {str(k): str(v) for k, v in rows}

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- ingest -----------------------------------------------------------------------------

    def ingest_own(self, items: list[tuple[Event, bytes]], result: IngestResult) -> None:
        """Add what this process just appended inside the write transaction: fresh random ids
        with positions assigned at build, so there is nothing to deduplicate or compare."""
        self.conn.executemany(
            f"INSERT INTO events (pos, {_COLUMNS}) VALUES ({','.join('?' * 17)})",
            [(e.pos, *_row(e, line)) for e, line in items],
        )
        result.new_events += len(items)
        # the streams' versions and last positions from the batch itself, as `_fold_streams`
        # would group them out of the rows just inserted (an append's seqs and positions rise)
        tops: dict[str, tuple[int, int]] = {}
        for e, _ in items:
            seq, pos = tops.get(e.stream, (0, 0))
            tops[e.stream] = (max(seq, e.seq), max(pos, int(e.pos or 0)))
        self.conn.executemany(
            "INSERT INTO streams (stream, version, last_pos) VALUES (?, ?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET version = max(version, excluded.version),"
            " last_pos = max(last_pos, excluded.last_pos)",
            [(stream, seq, pos) for stream, (seq, pos) in tops.items()],
        )
        from fleetgit.index import projections

        self.note_clashes(projections.apply_own(self.conn, [e for e, _ in items]))
        self.settle_clashes()

    def ingest(
        self,
        items: list[tuple[Event, bytes]],
        result: IngestResult,
        source: tuple[str, int, int] | None = None,
        chain: bytes | None = None,
    ) -> None:
        """Add events not seen before, in the order given. Only new events reach the INSERT, so
        a copy (a committed blob of a segment already read from the work tree) never takes a
        position: positions stay dense. A batch stamped too far ahead is held back (`hold`).
        The same id with other bytes is recorded, and decided by `_insert_new`.
        `source`: (writer, segment, offset read from) of the lines: their signatures are
        checked (index/trust.py) and what the policy refuses is quarantined. `chain`: the
        signature chain's value at that offset, when the caller knows it (see trust.screen)."""
        if source is not None:
            from fleetgit.index import trust

            items = trust.screen(self, items, *source, base=chain)
        items = self.hold(items)
        if not items:
            return
        self.ingested += len(items)  # more than the events new to the index: copies were read
        if self.bulk_inserts is not None:  # a rebuild: folded at its end
            self.bulk_inserts.submit(items, result)
            return
        before = self.max_pos()
        fresh, moved = self.insert_rows(items, result)
        if (fresh or moved) and not self.rebuilding:
            c = self.conn
            self._fold_streams(before)
            from fleetgit.index import projections

            self.note_clashes(projections.apply(c, before))
            if moved:
                self._restream(moved)
                self.note_clashes(projections.refold(c, moved))

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Execute `sql`, whose result nobody reads: while a rebuild inserts on its thread,
        after that insert, the caller going on meanwhile (`BulkInserts.later`)."""
        if self.bulk_inserts is not None:
            self.bulk_inserts.later(sql, params)
        else:
            self.conn.execute(sql, params)

    def insert_rows(
        self, items: list[tuple[Event, bytes]], result: IngestResult
    ) -> tuple[list[tuple[Any, ...]], set[str]]:
        """Insert the events of `items` the index lacks (`_insert_new`), recording conflicts;
        the rows inserted and the streams a conflict moved."""
        fresh, conflicts, moved = self._insert_new([_row(e, line) for e, line in items])
        if conflicts:
            self.conn.executemany(
                "INSERT OR IGNORE INTO anomalies VALUES ('id_conflict', ?, ?, ?)",
                [(eid, "the same event id with different bytes", h) for eid, h in conflicts],
            )
        result.new_events += len(fresh)
        return fresh, moved

    def record_problems(self, source: str, base: int, problems: list[tuple[int, str]]) -> None:
        """Keep what intake refused or could not read (`source` at `base` + offset), once; the
        lines are skipped, and `refused_new` tells the command to say so."""
        if not problems:
            return
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO refused VALUES (?, ?, ?)",
            [(source, base + offset, what) for offset, what in problems],
        )
        self.refused_new += self.conn.total_changes - before

    def hold(self, items: list[tuple[Event, bytes]]) -> list[tuple[Event, bytes]]:
        """Hold back whole batches stamped further ahead of this clock than the allowed skew:
        such a clock is flagged, not followed (it would order after, and outlive, everything
        honest). They wait in `held` until this clock comes within the skew of them."""
        bound = self._skew_bound()
        if all(e.hlc < bound for e, _ in items):
            return items
        late = {e.tx for e, _ in items if e.hlc >= bound}
        self.conn.executemany(
            "INSERT OR IGNORE INTO held VALUES (?, ?, ?, ?, ?, ?)",
            [(e.id, line_hash(line), e.tx, e.writer, e.hlc, line) for e, line in items
             if e.tx in late],
        )  # fmt: skip
        self._note_held()
        return [(e, line) for e, line in items if e.tx not in late]

    def release_held(self, result: IngestResult) -> None:
        """Ingest the held batches this clock has come close enough to."""
        from fleetgit.ledger.intake import check

        rows = self.conn.execute(
            "SELECT line, writer FROM held WHERE tx IN"
            " (SELECT tx FROM held GROUP BY tx HAVING max(hlc) < ?) ORDER BY hlc, writer",
            (self._skew_bound(),),
        ).fetchall()
        if not rows:
            return
        items = [(check(bytes(line), writer, CATALOGUE), bytes(line)) for line, writer in rows]
        self.conn.executemany("DELETE FROM held WHERE id = ?", [(e.id,) for e, _ in items])
        self._note_held()
        self.ingest(items, result)

    def _skew_bound(self) -> int:
        """The first HLC too far ahead of this clock to be followed."""
        return clock.make_hlc(clock.now_ms() + self.config.max_clock_skew_seconds * 1000 + 1)

    def _note_held(self) -> None:
        """When the earliest held batch comes due, so that freshness checks notice."""
        (first,) = self.conn.execute("SELECT min(hlc) FROM held").fetchone()
        if first is None:
            self.conn.execute("DELETE FROM meta WHERE key = 'held_due_ms'")
        else:
            due = clock.hlc_ms(first) - self.config.max_clock_skew_seconds * 1000
            self.set_meta("held_due_ms", str(due))

    def held_due(self, got: dict[str, str] | None = None) -> bool:
        """Has a held batch come due (so the index is behind until it is ingested)? `got`: the
        meta settings, when the caller read them already."""
        due = self.meta("held_due_ms") if got is None else got.get("held_due_ms", "")
        return bool(due) and int(due) <= clock.now_ms()

    def _insert_new(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[str, int]], set[str]]:
        """Insert the first copy of each id the index lacks, in order. Returns the rows
        inserted, the (id, hash) of every copy in a conflict (the same id, other bytes) and the
        streams whose events changed by one.

        Of copies that conflict (tampering: never silently, every copy is recorded), the one an
        earlier catch-up kept stays: what this clone has seen, an attacker's later rewrite
        cannot take back. Copies new to this catch-up are ranked, whatever order its sources
        came in: the one a rebuild's index had kept first, then the lowest line hash. So a
        rebuild keeps what the index kept, and a fresh clone decides the same way whatever
        order it reads in."""
        c = self.conn
        # a rebuild gives each event back the position it had; new ones come after them all
        pos = "(SELECT pos FROM prior_pos WHERE id = ?1)" if self.rebuilding else "NULL"
        values = ", ".join(f"?{i}" for i in range(1, 17))
        sql = f"INSERT INTO events (pos, {_COLUMNS}) VALUES ({pos}, {values})"
        c.execute("SAVEPOINT ingest")
        try:
            c.executemany(sql, rows)  # the usual case: every id is new, no lookup needed
            return rows, [], set()
        except sqlite3.IntegrityError:
            c.execute("ROLLBACK TO ingest")  # some are copies: find them first
        finally:
            c.execute("RELEASE ingest")
        ids = [r[0] for r in rows]
        known = self._known(ids)
        prior = self._known(ids, "prior_pos") if self.rebuilding else {}
        fresh: dict[str, tuple[Any, ...]] = {}  # insertion order is first-seen order
        winners: dict[str, tuple[Any, ...]] = {}  # stored ids whose better copy came
        conflicts: list[tuple[str, int]] = []
        for r in rows:
            eid, digest = r[0], r[15]
            got = known.get(eid)
            if got is None:
                known[eid] = (digest, None)
                fresh[eid] = r
                continue
            first, first_pos = got
            if first == digest:
                continue
            conflicts += [(eid, first), (eid, digest)]
            # what an earlier catch-up kept stays; copies new to this one are ranked
            undecided = self.rebuilding or first_pos is None or first_pos > self.settled_pos
            kept = prior.get(eid, (None, None))[0]
            if undecided and (digest != kept, digest) < (first != kept, first):
                known[eid] = (digest, first_pos)
                (fresh if eid in fresh else winners)[eid] = r
        if fresh:
            c.executemany(sql, list(fresh.values()))
        moved: set[str] = set()
        for r in winners.values():
            (old_stream,) = c.execute("SELECT stream FROM events WHERE id = ?", (r[0],)).fetchone()
            moved |= {old_stream, r[3]}
            c.execute(f"UPDATE events SET {_ASSIGN} WHERE id = ?", (*r, r[0]))
        return list(fresh.values()), conflicts, moved

    def _restream(self, streams: set[str]) -> None:
        """Recount the version and last position of streams an id conflict changed."""
        names = sorted(streams)
        marks = ",".join("?" * len(names))
        self.conn.execute(f"DELETE FROM streams WHERE stream IN ({marks})", names)
        self.conn.execute(
            "INSERT INTO streams (stream, version, last_pos) SELECT stream, max(seq), max(pos)"
            f" FROM events WHERE stream IN ({marks}) GROUP BY stream",
            names,
        )

    def _known(self, ids: list[str], table: str = "events") -> dict[str, tuple[int, int | None]]:
        """(line hash, position) of each of `ids` that `table` holds (the copy that counts)."""
        known: dict[str, tuple[int, int | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found = self.conn.execute(
                f"SELECT id, hash, pos FROM {table} WHERE id IN ({marks})", chunk
            )
            known.update((eid, (digest, pos)) for eid, digest, pos in found)
        return known

    def _fold_streams(self, after_pos: int) -> None:
        self.conn.execute(
            "INSERT INTO streams (stream, version, last_pos)"
            " SELECT stream, max(seq), max(pos) FROM events NOT INDEXED WHERE pos > ?"
            " GROUP BY stream"
            " ON CONFLICT (stream) DO UPDATE SET version = max(version, excluded.version),"
            " last_pos = max(last_pos, excluded.last_pos)",
            (after_pos,),
        )

    def fold_all_streams(self) -> None:
        self.conn.execute("DELETE FROM streams")
        self._fold_streams(0)

    # -- reads ------------------------------------------------------------------------------

    def max_pos(self) -> int:
        row = self.conn.execute("SELECT max(pos) FROM events").fetchone()
        return int(row[0] or 0)

    def stream_versions(self, streams: set[str]) -> dict[str, int]:
        """Current versions of many streams, in a few queries (absent streams are at 0)."""
        names = list(streams)
        out: dict[str, int] = {}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT stream, version FROM streams WHERE stream IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def stream_version(self, stream: str) -> int:
        row = self.conn.execute(
            "SELECT version FROM streams WHERE stream = ?", (stream,)
        ).fetchone()
        return int(row[0]) if row else 0

    def writer_facts(self, writer: str) -> WriterFacts:
        """What an append needs from the index, in one query."""
        bound = clock.make_hlc(clock.now_ms() + self.config.max_clock_skew_seconds * 1000)
        row = self.conn.execute(
            "SELECT (SELECT max(number) FROM segments WHERE writer = :w AND number < :restored),"
            " (SELECT max(wseq) FROM events WHERE writer = :w),"
            " (SELECT max(hlc) FROM events WHERE hlc <= :bound),"
            " max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
            " coalesce((SELECT max(pos) FROM events), 0)) + 1",
            {"w": writer, "bound": bound, "restored": RESTORED_SEGMENTS},
        ).fetchone()
        return WriterFacts(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3]))

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()`, remembered until the index changes: another connection commits (SQLite's
        `data_version`) or this one writes (`total_changes`, temp tables included). For answers
        that depend on the index alone, never on the clock: a listing's count, say."""
        (version,) = self.conn.execute("PRAGMA data_version").fetchone()
        state = (version, self.conn.total_changes)
        if state != self._memo_state:
            self._memo.clear()
            self._memo_state = state
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def segment_committed(self, writer: str, number: int) -> bool:
        row = self.conn.execute(
            "SELECT committed FROM segments WHERE writer = ? AND number = ?", (writer, number)
        ).fetchone()
        return bool(row and row[0])

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        cur = self.conn.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return cur.fetchall()

    def derived_tables(self) -> tuple[str, ...]:
        return DERIVED_TABLES
