"""`fleetgit serve`'s processes: a supervisor that serves nothing, and a worker per socket.

The supervisor forks one worker per listening socket and keeps every socket and every event
stream pipe (`sse.links`) open, so a worker that ends while the server runs is started again on
the same socket: connections that arrive meanwhile wait in its queue, none is refused. SIGTERM or
SIGINT (Ctrl-C signals the whole process group) stops it: each worker gets SIGTERM and runs its
clean-up (uvicorn's graceful shutdown, then the app's lifespan: the event stream's poller and its
ledger closed, FLEETGIT_WEB_TRACE's records written) and exits 0; then the supervisor exits 0. A
worker that does not end within STOP_S is killed.

A worker that ends before it has started (its app's lifespan entered, its socket served), or
within MIN_LIFE_S of it, counts as a failed start; MAX_START_FAILURES of them in a row
(STARTS_SPACED_S apart, doubling) end the server with one line (exit 1) rather than start it
again for ever. One that ends later is started again at once, and its count begins anew. A
worker tells the supervisor through a pipe that it has started, or why it could not (`Voice`):
the supervisor says each reason once, not once a try.

Linux and macOS: the signals reach the supervisor's loop through `signal.set_wakeup_fd` and a
`select`, no thread; a worker ends with its supervisor (PR_SET_PDEATHSIG, Linux) however that
ends.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from fleetgit.ledger import errors

MAX_START_FAILURES = 5
MIN_LIFE_S = 2.0  # a worker that ends sooner after its start failed to start
STARTS_SPACED_S = 0.1  # the wait before starting again after a failed start; doubles each time
MAX_SPACING_S = 2.0
STOP_S = 10.0  # how long a stopping worker may take (uvicorn's own grace is 1 s) before SIGKILL
_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_BLOCKED = {*_STOPS, signal.SIGCHLD}


@dataclass
class Slot:
    """One worker's place: its socket (the supervisor's, shared), and the process in it."""

    number: int
    sock: socket.socket
    pid: int | None = None
    ready: int | None = None  # the read end of the pipe its Voice speaks on
    started: float | None = None  # when it said it started (time.monotonic)
    failed: errors.FleetError | None = None  # why it said it could not start
    failures: int = 0  # failed starts in a row
    due: float = 0.0  # when to start it (again)


class Voice:
    """What a worker tells its supervisor, once: that it serves, or why it cannot start."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def started(self) -> None:
        self._say(b"s")

    def failed(self, exc: errors.FleetError) -> None:
        # under PIPE_BUF (4 KiB): written whole, read whole
        why = {"code": exc.code, "message": exc.message[:1500], "hint": (exc.hint or "")[:1500]}
        self._say(b"e" + orjson.dumps(why))

    def _say(self, data: bytes) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, data)
            os.close(self.fd)
        self.fd = None


def _heard(slot: Slot, now: float) -> None:
    """Read what a worker said (or nothing, when it ended without a word)."""
    assert slot.ready is not None
    data = os.read(slot.ready, 8192)
    os.close(slot.ready)  # said, or ended: nothing more comes
    slot.ready = None
    if data[:1] == b"s":
        slot.started = now
    elif data[:1] == b"e":
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            why = orjson.loads(data[1:])
            failed = errors.FleetError(str(why["message"]), hint=str(why["hint"]) or None)
            failed.code = str(why["code"])
            slot.failed = failed


Worker = Callable[[int, socket.socket, Voice], int]


def supervise(
    sockets: list[socket.socket],
    worker: Worker,
    *,
    note: Callable[[str], None],
    complain: Callable[[errors.FleetError], None],
) -> None:
    """Run `worker(number, sock, voice)` in a process of its own for each socket until
    SIGTERM, SIGINT or SIGHUP, restarting one that ends (see the module). `worker` returns the
    process's exit code and calls `voice.started()` once its app serves, or `voice.failed()`;
    it inherits every file the supervisor has open but the other workers' sockets and the
    supervisor's pipes. `note` tells of a worker started again, `complain` of a reason a worker
    gave (each once). Raises a FleetError when a worker keeps failing to start; returns when
    stopped."""
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    stops: list[int] = []

    def on_stop(sig: int, frame: object) -> None:
        stops.append(sig)

    slots = [Slot(n, sock) for n, sock in enumerate(sockets)]
    old_wakeup = signal.set_wakeup_fd(wake_w)
    old = {sig: signal.signal(sig, on_stop) for sig in _STOPS}
    old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda sig, frame: None)
    mine = os.getpid()

    def start(slot: Slot) -> None:
        ready_r, ready_w = os.pipe()
        signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)  # none lands between fork and reset
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover (a worker)
                code = 1
                try:
                    for fd in (wake_r, wake_w, ready_r, *(s.ready for s in slots if s.ready)):
                        os.close(fd)
                    for other in slots:
                        if other is not slot:
                            other.sock.close()
                    code = _in_worker(mine, slot, ready_w, worker)
                finally:
                    _exit(code)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
        os.close(ready_w)
        slot.pid, slot.ready, slot.started, slot.failed = pid, ready_r, None, None

    failed: errors.FleetError | None = None
    said: set[str] = set()  # the reasons the workers gave, said once each
    try:
        while not stops:
            now = time.monotonic()
            for slot in slots:
                if slot.pid is None and slot.due <= now:
                    start(slot)
            waiting = [s.due - now for s in slots if s.pid is None]
            heard = [wake_r, *(s.ready for s in slots if s.ready is not None)]
            readable, _, _ = select.select(heard, [], [], max(0.0, min(waiting, default=60.0)))
            _drain(wake_r)
            for slot in slots:
                if slot.ready is not None and slot.ready in readable:
                    _heard(slot, time.monotonic())
            for slot, status in _reap(slots):
                if slot.ready is not None:  # what it said just before it ended
                    _heard(slot, time.monotonic())
                if slot.failed is not None and slot.failed.message not in said:
                    said.add(slot.failed.message)
                    complain(slot.failed)
                # every reaped worker is seen to (its pid let go) before the server may stop
                ended = _ended(slot, status, note)
                failed = failed or ended
            if failed is not None:
                break
    finally:
        _stop(slots, wake_r)
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for fd in (wake_r, wake_w):
            os.close(fd)
    if failed is not None:
        raise failed


def _in_worker(supervisor: int, slot: Slot, voice: int, worker: Worker) -> int:
    """In a new worker process: the supervisor's signal handling undone, then the worker."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    for sig in (signal.SIGTERM, signal.SIGINT):
        # uvicorn replaces these while it serves, and raises the signal it stopped on again
        # after its graceful shutdown, under these: the process then exits 0, its clean-up done
        signal.signal(sig, _stop_now)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
    _end_with_parent()
    if os.getppid() != supervisor:  # it ended before this process could ask
        return 0

    said = Voice(voice)
    try:
        return worker(slot.number, slot.sock, said)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except Exception as exc:  # said in one line by the supervisor, never a traceback
        why = f"a server process failed: {type(exc).__name__}: {exc}"
        said.failed(errors.FleetError(why, hint="please report it"))
        return 1


def _stop_now(sig: int, frame: object) -> None:
    raise SystemExit(0)


def _exit(code: int) -> None:  # pragma: no cover (a worker)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _end_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent ends, however it ends."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass


def _reap(slots: list[Slot]) -> list[tuple[Slot, int]]:
    """The workers that have ended, with their wait statuses."""
    ended = []
    for slot in slots:
        if slot.pid is None:
            continue
        pid, status = os.waitpid(slot.pid, os.WNOHANG)
        if pid:
            ended.append((slot, status))
    return ended


def _ended(slot: Slot, status: int, note: Callable[[str], None]) -> errors.FleetError | None:
    """A worker ended while the server runs: when to start it again, or the error that ends the
    server when it keeps failing to start."""
    pid, slot.pid = slot.pid, None
    now = time.monotonic()
    how = describe(status)
    if slot.started is not None and now - slot.started >= MIN_LIFE_S:
        slot.failures, slot.due = 0, now
        note(f"server process {pid} ended ({how}); starting another")
        return None
    slot.failures += 1
    if slot.failures >= MAX_START_FAILURES:
        return errors.FleetError(
            f"a server process ended before it started, or just after, {slot.failures} times"
            f" in a row (the last: {how}): stopping the server",
            hint="the reason it gave is above; mend that and run fleetgit serve again"
            if slot.failed is not None
            else "its own lines above say why; mend that and run fleetgit serve again",
        )
    slot.due = now + min(MAX_SPACING_S, STARTS_SPACED_S * 2 ** (slot.failures - 1))
    when = "before it started" if slot.started is None else "just after it started"
    note(f"server process {pid} ended {when} ({how}); starting another")
    return None


def describe(status: int) -> str:
    """A wait status in words: `exit code 3`, `killed by SIGKILL`."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _stop(slots: list[Slot], wake: int) -> None:
    """SIGTERM to every worker, and wait for each to end (SIGKILL after STOP_S)."""
    for slot in slots:
        if slot.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGTERM)
        if slot.ready is not None:
            os.close(slot.ready)
            slot.ready = None
    deadline = time.monotonic() + STOP_S
    while any(s.pid is not None for s in slots):
        for slot, _status in _reap(slots):
            slot.pid = None
        left = deadline - time.monotonic()
        if left <= 0:
            for slot in slots:
                if slot.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                    slot.pid = None
            break
        if any(s.pid is not None for s in slots):
            with contextlib.suppress(InterruptedError):
                select.select([wake], [], [], min(left, 0.1))
            _drain(wake)
