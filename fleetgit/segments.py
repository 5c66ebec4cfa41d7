"""Segments: the append-only JSONL files under `.fleet/events/<writer>/`.

One writer per worktree. Processes of the worktree share it and serialise on a file lock.
A writer appends only to a segment that has never been committed; the caller decides sealing
(it needs git and the index) and this module rolls, writes, parses and repairs.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from fleetgit import clock
from fleetgit.codec import DecodeError, Event
from fleetgit.digest import hash64
from fleetgit.intake import Refused, check

SEGMENT_RE = re.compile(r"^(\d{8})\.jsonl$")
_STATE_SIZE = 256  # bytes of the state record at the start of writer.lock
WRITER_RE = re.compile(r"^[0-9a-z]{8,64}$")


def segment_name(number: int) -> str:
    return f"{number:08d}.jsonl"


def segment_number(name: str) -> int | None:
    match = SEGMENT_RE.match(name)
    return int(match.group(1)) if match else None


def line_hash(line: bytes) -> int:
    """A signed 64-bit digest of a line: tells 'same id, other bytes' from a plain duplicate."""
    return hash64(line, signed=True)


class WriterState:
    """What the writer remembers between processes (untracked, in the git dir)."""

    def __init__(
        self,
        segment: int = 1,
        size: int = 0,
        wseq: int = 0,
        hlc: int = 0,
        index_stamp: str = "",
        staged_max: int = 0,
    ) -> None:
        self.segment = segment
        self.size = size  # bytes of `segment` as this writer last left it
        self.wseq = wseq
        self.hlc = hlc
        self.index_stamp = index_stamp  # stat of the git index file when `staged_max` was read
        self.staged_max = staged_max  # highest segment number of this writer staged in git

    def __repr__(self) -> str:
        return f"WriterState({self.__dict__})"


class Writer:
    """This worktree's writer: its id, its lock and its state file."""

    def __init__(self, local_dir: Path, events_dir: Path) -> None:
        self.local_dir = local_dir
        self.events_dir = events_dir
        self._lock_path = str(local_dir / "writer.lock")
        self.id = self._load_or_create_id()
        self._dir = str(events_dir / self.id)

    @property
    def dir(self) -> Path:
        return self.events_dir / self.id

    def segment_path(self, number: int) -> Path:
        return self.dir / segment_name(number)

    def relpath(self, number: int) -> str:
        return f".fleet/events/{self.id}/{segment_name(number)}"

    def _load_or_create_id(self) -> str:
        """The writer id, minted on first use and again when the file holding it is not in the
        git dir it was minted in: a copied repository must not write as the original."""
        path = self.local_dir / "writer"
        here = _place(self.local_dir.parent)
        found = _read_id(path, here)
        if found is not None:
            return found
        self.local_dir.mkdir(parents=True, exist_ok=True)
        fd = self._lock()  # one process mints; the others wait, then read its id
        try:
            found = _read_id(path, here)
            if found is None:
                found = clock.writer_id()
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(f"{found}\n{here}\n", encoding="utf-8")
                os.replace(tmp, path)
        finally:
            os.close(fd)
        return found

    def _lock(self) -> int:
        """Open the lock file and wait for the writer lock; closing the fd releases it."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @contextmanager
    def locked(self) -> Iterator[WriterState]:
        """Hold the worktree's writer lock; yields the state, saved again on a clean exit.

        The state lives in the lock file itself, rewritten in place as one fixed-size record:
        no extra open or rename per append. It is only a hint (the index can rebuild every
        value), so a torn record after a crash costs nothing but a re-derivation.
        """
        self.local_dir.mkdir(parents=True, exist_ok=True)
        fd = self._lock()
        try:
            state = self._read_state(fd)
            yield state
            record = orjson.dumps({"writer": self.id, **state.__dict__})
            os.pwrite(fd, record.ljust(max(_STATE_SIZE, len(record) + 1)), 0)
        finally:
            os.close(fd)  # closing releases the lock

    def _read_state(self, fd: int) -> WriterState:
        try:
            raw = orjson.loads(os.pread(fd, 4096, 0).rstrip(b" \0") or b"null")
            if raw["writer"] != self.id:  # another writer's (a copied repository's): start over
                return WriterState()
            ints = {k: int(raw[k]) for k in ("segment", "size", "wseq", "hlc", "staged_max")}
            return WriterState(index_stamp=str(raw["index_stamp"]), **ints)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return WriterState()

    def write(self, number: int, payload: bytes, *, fsync: bool) -> int:
        """Append `payload` to segment `number` with one write; returns the new size."""
        path = f"{self._dir}/{segment_name(number)}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(self._dir, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(payload)
            while view:  # one write in practice; loop only for a short write
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)


def _place(git_dir: Path) -> str:
    """Where a writer id lives: the git dir's device, inode and path."""
    st = os.stat(git_dir)
    return f"{st.st_dev} {st.st_ino} {git_dir}"


def _same_place(recorded: str, here: str) -> bool:
    """The same directory: the same inode, on the same device or (a device renumbered by a
    remount) at the same path. A copy is a new inode; a moved repository keeps its inode."""
    dev, ino, path = [*recorded.split(" ", 2), "", ""][:3]
    here_dev, here_ino, here_path = here.split(" ", 2)
    return ino == here_ino and (dev == here_dev or path == here_path)


def _read_id(path: Path, here: str) -> str | None:
    """The writer id stored at `path`, if it was minted in the git dir at `here`."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 2 or not WRITER_RE.match(lines[0]) or not _same_place(lines[1], here):
        return None  # no place recorded (an older fleetgit) counts as a copy: the safe side
    return lines[0]


class Parsed:
    """Complete batches of a segment read from `start`, and what was wrong on the way."""

    __slots__ = ("events", "good_end", "problems", "torn_tail")

    def __init__(self, good_end: int = 0) -> None:
        self.events: list[tuple[Event, bytes]] = []
        self.good_end = good_end  # offset just after the last complete batch
        self.problems: list[tuple[int, str]] = []  # (offset, what)
        self.torn_tail = False  # bytes after good_end that do not form a complete batch


def parse(buf: bytes, start: int = 0, writer: str | None = None) -> Parsed:
    """Parse `buf[start:]` line by line, keeping only complete batches (all or nothing) of
    lines that pass intake (`writer`: the writer directory the segment is in)."""
    out = Parsed(good_end=start)
    batch: list[tuple[Event, bytes]] = []
    batch_start = start
    pos = start
    end = len(buf)
    while pos < end:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            break  # no final newline: torn
        line = buf[pos : nl + 1]
        try:
            event = check(line, writer)
        except DecodeError as exc:
            if batch:
                out.problems.append((batch_start, "incomplete batch (followed by a bad line)"))
                batch = []
            what = "refused line" if isinstance(exc, Refused) else "unparsable line"
            out.problems.append((pos, f"{what}: {exc}"))
            pos = nl + 1
            batch_start = pos
            if nl + 1 >= end and not isinstance(exc, Refused):  # garbage at the end: torn
                out.torn_tail = True
                return out
            out.good_end = pos  # skip the bad line; later batches still count
            continue
        if batch and batch[0][0].tx != event.tx:
            out.problems.append((batch_start, f"incomplete batch {batch[0][0].tx}"))
            batch = []
            batch_start = pos
        batch.append((event, line))
        pos = nl + 1
        if len(batch) == event.txn:
            out.events.extend(batch)
            batch = []
            out.good_end = pos
            batch_start = pos
    out.torn_tail = out.good_end < end
    return out


def repair(path: Path) -> int:
    """Cut a torn tail off a writer's own uncommitted segment; returns the bytes cut."""
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        return 0
    parsed = parse(buf, writer=path.parent.name)
    if not parsed.torn_tail:
        return 0
    with open(path, "r+b") as fh:
        fh.truncate(parsed.good_end)
        fh.flush()
        os.fsync(fh.fileno())
    return len(buf) - parsed.good_end
