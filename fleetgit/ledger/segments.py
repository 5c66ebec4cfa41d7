"""Segments: the append-only JSONL files under `.fleet/events/<writer>/`.

One writer per worktree. Processes of the worktree share it and serialise on a file lock.
A writer appends only to a segment that has never been committed; the caller decides sealing
(it needs git and the index) and this module rolls, writes, parses and repairs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from fleetgit.ledger import clock, safefs
from fleetgit.ledger.codec import DecodeError, Event
from fleetgit.ledger.digest import hash64
from fleetgit.ledger.intake import Refused, check
from fleetgit.ledger.names import is_writer
from fleetgit.ledger.schema import Catalogue

_STATE_SIZE = 256  # bytes of the state record at the start of writer.lock
TAIL = 256  # bytes before the ingested offset whose hash a file's checkpoint keeps
# Segment numbers from here on hold events republished by `fleetgit restore-lost` (sync/lost.py)
# in another clone: their writer's own numbering never reaches them, nor follows them.
RESTORED_SEGMENTS = 90_000_000


def segment_name(number: int) -> str:
    return f"{number:08d}.jsonl"


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
        chain: str = "",
    ) -> None:
        self.segment = segment
        self.size = size  # bytes of `segment` as this writer last left it
        self.wseq = wseq
        self.hlc = hlc
        self.index_stamp = index_stamp  # stat of the git index file when `staged_max` was read
        self.staged_max = staged_max  # highest segment number of this writer staged in git
        # "<segment> <size> <hex>": the signature chain of `segment` at `size` bytes, as this
        # writer's last signed append left it (ledger/sigs.py); a hint, checked against both
        self.chain = chain

    def __repr__(self) -> str:
        return f"WriterState({self.__dict__})"


def durable(fd: int, fsync: bool) -> None:
    """Close a segment's fd from `Writer.write`, fsynced first if `fsync`. Appenders call it
    after releasing the writer lock: concurrent fsyncs of one file are committed together by
    the file system (the later ones find their bytes already on disk), so processes appending
    at once share the wait instead of queueing for one fsync each inside the lock."""
    try:
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """This worktree's writer: its id, its lock and its state file."""

    def __init__(self, local_dir: Path, events_dir: Path) -> None:
        self.local_dir = local_dir
        self.events_dir = events_dir
        self._lock_path = str(local_dir / "writer.lock")
        self.id = self._load_or_create_id()
        self.held = False  # this process holds the lock (inside `locked`)
        self._top = str(events_dir.parent.parent)  # the worktree: events_dir is .fleet/events

    @property
    def dir(self) -> Path:
        return self.events_dir / self.id

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
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # its directory is gone (made again: a mkdir per append cost)
            self.local_dir.mkdir(parents=True, exist_ok=True)
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
        fd = self._lock()
        self.held = True
        try:
            state = self._read_state(fd)
            yield state
            record = orjson.dumps({"writer": self.id, **state.__dict__})
            os.pwrite(fd, record.ljust(max(_STATE_SIZE, len(record) + 1)), 0)
        finally:
            self.held = False
            os.close(fd)  # closing releases the lock

    def _read_state(self, fd: int) -> WriterState:
        try:
            raw = orjson.loads(os.pread(fd, 4096, 0).rstrip(b" \0") or b"null")
            if raw["writer"] != self.id:  # another writer's (a copied repository's): start over
                return WriterState()
            ints = {k: int(raw[k]) for k in ("segment", "size", "wseq", "hlc", "staged_max")}
            chain = str(raw.get("chain", ""))
            return WriterState(index_stamp=str(raw["index_stamp"]), chain=chain, **ints)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return WriterState()

    def open_dir(self) -> int:
        """An fd of this writer's directory, walked as safefs walks (no link followed), for
        `stat` and `write` of one append to use instead of walking again; -1 when it is missing
        or not a real directory (they then walk, and say what is wrong). The caller closes it."""
        try:
            return safefs.open_dir(self._top, f".fleet/events/{self.id}")
        except (FileNotFoundError, safefs.NotRegular):
            return -1

    def write(
        self, number: int, payload: bytes, dir_fd: int = -1
    ) -> tuple[os.stat_result, bytes, int]:
        """Append `payload` to segment `number` with one write; returns the file's stat after
        it, its last TAIL bytes (read through the same fd) and the fd, still open: the caller
        fsyncs it (`durable`) once the index has the batch and the lock is released, or closes
        it. The bytes are in the page cache already, so a process killed after this loses none.

        Only into a regular file in real directories: a link (or anything else) in place of
        `.fleet`, `.fleet/events`, the writer's directory or the segment, which a merge can
        bring, is refused, never written through (it could point outside the repository).
        `dir_fd`: the writer's directory (`open_dir`), if open; if it has been removed since (a
        checkout), a new file cannot be made in it: the walk from the top makes it again."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        try:
            if dir_fd >= 0:
                try:
                    fd = safefs.open_in(dir_fd, segment_name(number), self.relpath(number), flags)
                except FileNotFoundError:  # the directory removed since it was opened
                    dir_fd = -1
            if dir_fd < 0:
                fd = safefs.open_file(self._top, self.relpath(number), flags)
        except safefs.NotRegular as exc:
            raise safefs.refusal(exc) from None
        try:
            view = memoryview(payload)
            while view:  # one write in practice; loop only for a short write
                written = os.write(fd, view)
                view = view[written:]
            st = os.fstat(fd)
            start = max(0, st.st_size - TAIL)
            return st, os.pread(fd, st.st_size - start, start), fd
        except BaseException:
            os.close(fd)
            raise

    def sync(self, number: int) -> None:
        """fsync segment `number` (before rolling past it: a durable event never follows one of
        this writer that a power loss could take back); nothing when it is not there."""
        try:
            fd = safefs.open_file(self._top, self.relpath(number), os.O_RDONLY)
        except (FileNotFoundError, safefs.NotRegular):
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def stat(self, number: int, dir_fd: int = -1) -> os.stat_result | None:
        """The stat of segment `number`, None when it is missing or not a regular file in real
        directories (an append then refuses, naming it). `dir_fd`: as for `write`."""
        try:
            if dir_fd >= 0:
                return safefs.stat_in(dir_fd, segment_name(number), self.relpath(number))
            return safefs.stat_file(self._top, self.relpath(number))
        except safefs.NotRegular:
            return None

    def repair(self, number: int, max_line: int, types: Catalogue) -> int | None:
        """Cut a torn tail off segment `number` (uncommitted: the caller checks); its size after,
        None when it is missing or not a regular file in real directories."""
        try:
            return repair(self._top, self.relpath(number), types=types, max_line=max_line)
        except safefs.NotRegular:
            return None


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
    if len(lines) < 2 or not is_writer(lines[0]) or not _same_place(lines[1], here):
        return None  # no place recorded (an older fleetgit) counts as a copy: the safe side
    return lines[0]


class Parsed:
    """Complete batches of a segment read from `start`, and what was wrong on the way."""

    __slots__ = ("end", "events", "good_end", "problems", "torn_tail")

    def __init__(self, good_end: int = 0) -> None:
        self.events: list[tuple[Event, bytes]] = []
        self.good_end = good_end  # offset just after the last complete batch
        self.problems: list[tuple[int, str]] = []  # (offset, what)
        self.torn_tail = False  # bytes after good_end that do not form a complete batch
        self.end = good_end  # offset of the end of what was read


CHUNK = 1 << 20  # a segment is read in pieces of this size: never whole


def parse(
    buf: bytes,
    start: int = 0,
    writer: str | None = None,
    *,
    types: Catalogue,
    max_line: int | None = None,
) -> Parsed:
    """Parse `buf[start:]` line by line, keeping only complete batches (all or nothing) of
    lines that pass intake (`writer`: the writer directory the segment is in)."""
    chunks = iter((buf[start:] if start else buf,))
    return parse_stream(
        lambda _size: next(chunks, b""), start, writer, types=types, max_line=max_line
    )


def parse_fd(
    fd: int,
    start: int = 0,
    writer: str | None = None,
    *,
    types: Catalogue,
    max_line: int | None = None,
) -> Parsed:
    """Parse an open file from offset `start` to its end, read in chunks of CHUNK bytes."""
    os.lseek(fd, start, os.SEEK_SET)
    return parse_stream(
        lambda size: os.read(fd, size), start, writer, types=types, max_line=max_line
    )


def parse_stream(
    read: Callable[[int], bytes],
    start: int = 0,
    writer: str | None = None,
    *,
    types: Catalogue,
    max_line: int | None = None,
) -> Parsed:
    """Parse what `read(n)` returns (the bytes from offset `start` on, piece by piece, b"" at
    the end), keeping only complete batches (all or nothing) of lines that pass intake
    (`writer`: the writer directory the segment is in).

    Memory stays bounded by `max_line` plus a chunk whatever the input: a line longer than
    `max_line` (newline included: the limit appends obey, `max_event_bytes`) is dropped as it
    is read, skipped and reported, and the offset moves past it as past any bad line. A line
    with no newline yet is a torn tail, however long: its writer may still complete it.
    """
    out = Parsed(good_end=start)
    limit = max_line if max_line is not None else 1 << 62
    batch: list[tuple[Event, bytes]] = []
    batch_start = start
    buf = b""
    base = start  # offset of buf[0]
    i = 0  # start of the current line in buf
    scan = 0  # where to look for the next newline in buf
    skipping = -1  # offset where a line over the limit began, while its rest is read
    bad_last: tuple[int, int] | None = None  # (good_end before, end) of an unparsable line
    while True:
        nl = buf.find(b"\n", scan)
        if nl < 0:
            if skipping < 0 and len(buf) - i > limit:
                skipping = base + i
            if skipping >= 0:  # drop what there is of a line too long to keep
                base += len(buf)
                buf, i = b"", 0
            chunk = read(CHUNK)
            if not chunk:
                break
            if i:
                base += i
                buf, i = buf[i:], 0
            scan = len(buf)
            buf = buf + chunk if buf else chunk
            continue
        pos = base + i
        line_end = base + nl + 1
        line = None
        if skipping >= 0:
            pos, skipping = skipping, -1
        elif nl + 1 - i <= limit:
            line = buf[i : nl + 1]
        i = scan = nl + 1
        bad_last = None
        if line is None:
            if batch:
                out.problems.append((batch_start, "incomplete batch (followed by a bad line)"))
                batch = []
            out.problems.append(
                (pos, f"line of {line_end - pos} bytes, over the limit of {limit}: skipped")
            )
            out.good_end = batch_start = line_end
            continue
        try:
            event = check(line, writer, types)
        except DecodeError as exc:
            if batch:
                out.problems.append((batch_start, "incomplete batch (followed by a bad line)"))
                batch = []
            what = "refused line" if isinstance(exc, Refused) else "unparsable line"
            out.problems.append((pos, f"{what}: {exc}"))
            if not isinstance(exc, Refused):  # garbage at the very end would be torn
                bad_last = (out.good_end, line_end)
            out.good_end = batch_start = line_end  # skip the bad line; later batches count
            continue
        if batch and batch[0][0].tx != event.tx:
            out.problems.append((batch_start, f"incomplete batch {batch[0][0].tx}"))
            batch = []
            batch_start = pos
        batch.append((event, line))
        if len(batch) == event.txn:
            out.events.extend(batch)
            batch = []
            out.good_end = batch_start = line_end
    out.end = base + len(buf)
    if bad_last is not None and bad_last[1] == out.end:
        out.good_end = bad_last[0]  # an unparsable last line: torn, maybe still being written
    out.torn_tail = out.good_end < out.end
    return out


def read_limit(segment_max_bytes: int) -> int:
    """The largest committed segment read (a blob is read whole): writers roll at
    `segment_max_bytes`, so a bigger one was not written by fleetgit; at least 64 MiB."""
    return max(64 << 20, 2 * segment_max_bytes)


def repair(top: str, relpath: str, *, types: Catalogue, max_line: int | None = None) -> int | None:
    """Cut a torn tail off a writer's own uncommitted segment; returns its size after, None
    when it does not exist. Raises NotRegular when it is not a regular file in real
    directories (nothing is cut then)."""
    try:
        fd = safefs.open_file(top, relpath, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        parsed = parse_fd(fd, 0, relpath.split("/")[-2], types=types, max_line=max_line)
        if parsed.torn_tail:
            os.ftruncate(fd, parsed.good_end)
            os.fsync(fd)
            return parsed.good_end
        return parsed.end
    finally:
        os.close(fd)
