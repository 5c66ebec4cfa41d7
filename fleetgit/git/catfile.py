"""`git cat-file --batch` (contents) and `--batch-check` (headers): one long-lived process each,
so reading an object costs a round trip on a pipe, not a process (a few ms) nor pygit2 (~80 ms to
import). What catch-up, verify and sync read (GitRepo) and what a snapshot load reads
(index/snapshots.py) both go through `CatFile`.

Every read is bounded: an object's size comes first (its header), and its content is read only
when the caller's limit allows it, whole (`read`) or in chunks of at most `CHUNK` bytes
(`chunks`, for parts too big to hold). An object over the limit is never read: the process is
stopped instead (what is left on its pipe is of no use), and the next question starts another.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from fleetgit.ledger.errors import GitError

CHUNK = 1 << 20  # bytes read from git at a time by `chunks`
HEADERS_A_ROUND = 256  # --batch-check questions written before their answers are read


class Header(NamedTuple):
    """What git says of an object before its content."""

    id: str
    type: str
    size: int


class Found(NamedTuple):
    """An object and its content: None when it is over the limit asked with (never read)."""

    id: str
    type: str
    size: int
    data: bytes | None


class CatFile:
    """One `git cat-file --batch` (`contents`) or `--batch-check` process in `worktree`,
    started on first use, stopped by `close` (or when collected, or at exit). `pipesize`: its
    output pipe's size where the system allows (how far git may run ahead of a reader).

    `read` and `headers` take one question at a time (a web server's threads may share a
    repository); `header` with `chunks` streams one object, and is its one caller's alone."""

    def __init__(self, worktree: Path, *, contents: bool, pipesize: int = -1) -> None:
        self.worktree, self.contents, self.pipesize = worktree, contents, pipesize
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop: weakref.finalize[..., CatFile] | None = None
        self._lock = threading.Lock()

    # -- whole objects and headers, under the lock ---------------------------------------------

    def read(self, spec: str, limit: int) -> Found | None:
        """The object `spec` names (an id, or `REV:PATH`) with its content when it has at most
        `limit` bytes (a --batch-check process never has any); None when it names none."""
        with self._lock:
            found = self.header(spec)
            if found is None or not self.contents:
                return None if found is None else Found(*found, None)
            if found.size > limit:
                self._close()  # not worth reading through: the next question starts git again
                return Found(*found, None)
            return Found(*found, self._content(found.size))

    def headers(self, specs: list[str]) -> list[Header | None]:
        """The header of each of `specs` (--batch-check), in rounds of HEADERS_A_ROUND questions:
        small enough that neither pipe fills while the other waits."""
        assert not self.contents, "a --batch process answers with contents: ask one at a time"
        out: list[Header | None] = []
        with self._lock:
            for at in range(0, len(specs), HEADERS_A_ROUND):
                out += self._round(specs[at : at + HEADERS_A_ROUND])
        return out

    def _round(self, specs: list[str]) -> list[Header | None]:
        asked = [s for s in specs if _askable(s)]
        ask, answer = self._pipes()
        found: dict[str, Header | None] = {}
        try:
            if asked:
                ask.write("".join(f"{s}\n" for s in asked).encode("utf-8", "surrogateescape"))
                ask.flush()
            for spec in asked:
                found[spec] = _header(answer.readline())
        except (OSError, ValueError):
            self._close()
            raise GitError("git cat-file stopped while reading objects") from None
        return [found.get(s) for s in specs]

    # -- one object, streamed --------------------------------------------------------------

    def header(self, spec: str) -> Header | None:
        """Ask for `spec`: its header, or None when it names no object. With --batch, its
        content follows on the pipe: `chunks` must read it, or `close` end the process."""
        if not _askable(spec):
            return None
        ask, answer = self._pipes()
        try:
            ask.write(spec.encode("utf-8", "surrogateescape") + b"\n")
            ask.flush()
            return _header(answer.readline())
        except (OSError, ValueError):
            self._close()
            raise GitError("git cat-file stopped while reading objects") from None

    def chunks(self, size: int) -> Iterator[bytes]:
        """The `size` bytes of content after a header, at most CHUNK at a time, as they come."""
        _, answer = self._pipes()
        left = size
        try:
            while left:
                chunk = answer.read(min(left, CHUNK))
                if not chunk:
                    raise ValueError("cut short")
                left -= len(chunk)
                yield chunk
            if answer.read(1) != b"\n":
                raise ValueError("no newline after the content")
        except (OSError, ValueError):
            self._close()
            raise GitError("git cat-file stopped while reading objects") from None

    def _content(self, size: int) -> bytes:
        _, answer = self._pipes()
        try:
            data = answer.read(size)
            if len(data) != size or answer.read(1) != b"\n":
                raise ValueError("cut short")
        except (OSError, ValueError):
            self._close()
            raise GitError("git cat-file stopped while reading objects") from None
        return data

    # -- the process -----------------------------------------------------------------------

    def start(self) -> None:
        """Start git now (a few ms), ahead of the first question: on the other core while
        this process does something else."""
        with self._lock:
            self._pipes()

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        proc = self._proc or self._start()
        assert proc.stdin is not None and proc.stdout is not None
        return proc.stdin, proc.stdout

    def _start(self) -> subprocess.Popen[bytes]:
        mode = "--batch" if self.contents else "--batch-check"
        args = ["git", "-C", str(self.worktree), "cat-file", mode]
        pipes = subprocess.PIPE
        try:
            try:
                proc = subprocess.Popen(
                    args,
                    stdin=pipes,
                    stdout=pipes,
                    stderr=subprocess.DEVNULL,
                    pipesize=self.pipesize,
                )
            except PermissionError:  # fs.pipe-max-size is lower here: the system's own size
                if self.pipesize < 0:
                    raise
                self.pipesize = -1
                proc = subprocess.Popen(args, stdin=pipes, stdout=pipes, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from None
        self._proc, self._stop = proc, weakref.finalize(self, _stop_process, proc)
        return proc

    def _close(self) -> None:
        if self._stop is not None:
            self._stop()
        self._proc = self._stop = None

    def close(self) -> None:
        """Stop the process (a later question starts another)."""
        with self._lock:
            self._close()


def _askable(spec: str) -> bool:
    return bool(spec) and "\n" not in spec


def _header(line: bytes) -> Header | None:
    """`<id> <type> <size>`, or None for `<spec> missing` and `<spec> ambiguous`."""
    fields = line.split()
    if len(fields) == 3 and fields[2].isdigit():
        return Header(fields[0].decode(), fields[1].decode(), int(fields[2]))
    if fields[-1:] in ([b"missing"], [b"ambiguous"]):
        return None
    raise ValueError(line)


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a cat-file process: closing its input ends it; unread content is dropped with it."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    proc.kill()  # what is left unread (an object over a limit) is of no use
    proc.wait()
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()
