"""What the app, the routes and the event stream share: settings, the JSON response, the
refusals made here, and who a request acts as (its token)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from fleetgit.fleet import Fleet
from fleetgit.git.paths import RepoPaths
from fleetgit.index.catchup import Index
from fleetgit.ledger import errors
from fleetgit.web import trace
from fleetgit.web.auth import Principal, TokenBook
from fleetgit.web.stats import HourCounts

API = "/api/v1"
MAX_BODY = 1 << 20  # 1 MiB: far over any event (max_event_bytes), far under what hurts
REOPEN_S = 60.0  # how long a worker thread keeps an open ledger at most
KEEP_PER_THREAD = 64  # pilots' Fleets a worker thread keeps over its one open index
STATUS = {  # the CLI's error codes -> HTTP
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.AmbiguousError: 409,
    errors.UsageError: 400,
    errors.ValidationError: 422,
    errors.SystemRefusedError: 503,  # the server's disk refused the write: not the request's fault
}
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
CODES |= {405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


class Settings(NamedTuple):
    paths: RepoPaths
    host: str = "127.0.0.1"
    max_body: int = MAX_BODY
    cors: tuple[str, ...] = ()
    poll_s: float = 0.05  # how often the event stream looks for new events
    threads: int = int(os.environ.get("FLEETGIT_WEB_THREADS", "8"))  # worker threads


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":  # DNS names are case-blind
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(HTTPException):
    """A refusal made here (not by the domain): status, code, message, hint."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(status, message)
        self.code, self.message, self.hint = code, message, hint


def error(status: int, code: str, message: str, hint: str | None = None, **extra: Any) -> JSON:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint, **extra}
    return JSON({"error": body}, status_code=status)


def status_of(exc: errors.FleetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class Freshness:
    """One catch-up at a time for the whole process, shared by every request that arrived
    before it began: it saw the disk as it was when they arrived, or later, and the index they
    read is the one it brought level. Each check is a few stat calls and three small queries,
    each of which lets go of the GIL; with a dozen threads waiting for it, every one of those
    was a wait of up to a switch interval (5 ms), and 200 requests a second made 200 checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.began = -1.0  # when the last catch-up that has ended began (time.monotonic)

    def catch_up(self, fleet: Fleet, arrived: float) -> None:
        """`fleet`'s index level with the disk as it was at `arrived` (time.monotonic) at least."""
        if self.began >= arrived:
            fleet.index.follow()  # level, but maybe on a file a rebuild retired
            return
        with self._lock:
            if self.began >= arrived:  # one began after this request came, and has ended
                fleet.index.follow()
                return
            began = time.monotonic()
            fleet.catch_up()
            self.began = began


class State:
    """What every request shares: where the ledger is, the tokens, the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.loopback = is_loopback(settings.host)
        self.tokens = TokenBook(settings.paths)
        self.hours = HourCounts()  # the dashboard's events per hour, counted as they come
        self.fresh = Freshness()
        self._local = threading.local()
        # every thread's index -> whether a request runs in it now; `close` closes the idle
        # ones, a request running at the stop closes its own as it ends
        self._open: dict[Index, bool] = {}
        self._open_lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def fleet(self, who: Principal) -> Iterator[Fleet]:
        """The ledger, acting as `who`'s pilot (nobody for an anonymous read), caught up.

        Opening the index costs a few ms (its connection, its git view, the config, the check
        of this worktree's segment tail), so each worker thread keeps one open, with a Fleet
        per pilot acting over it (a Fleet differs by its actor alone: the writer and the index
        are the worktree's). It opens it again when the config file or the clone's list of
        worktrees changed (two `stat` calls a request: what an open index does not see by
        itself, a new CLI process would), and after REOPEN_S in any case. Reopening every
        2 s made a thread pay an open (up to ~50 ms of CPU under load) 115 times in 30 s.
        The catch-up goes through `Fleet.catch_up`: behind an append in progress it waits on
        the writer's lock, woken when the append ends, not in SQLite's busy handler. Anything
        but a refusal closes the thread's ledger, so a request never inherits a half-done
        state. A stop's `close` closes the thread's index once its request has ended."""
        trace.mark("thread")
        began = time.thread_time()
        local = self._local
        fleets: OrderedDict[str | None, Fleet] | None = getattr(local, "fleets", None)
        now = arrived = time.monotonic()
        stamp = self._stamp()
        if (
            fleets is not None
            and now - local.opened < REOPEN_S
            and stamp == local.stamp
            and self._hold(local.index)
        ):
            fleet = fleets.pop(who.pilot, None)
            try:
                if fleet is None:
                    fleet = Fleet(
                        self.paths,
                        actor=who.pilot,
                        index=local.index,
                        config=local.config,
                        repair=False,  # the worktree's tail was checked when the index opened
                        catch_up=False,
                    )
                self.fresh.catch_up(fleet, arrived)
            except BaseException:
                self._drop()
                raise
        else:
            trace.mark("open")
            self._drop()
            fleet = Fleet(self.paths, actor=who.pilot)
            fleets = local.fleets = OrderedDict()
            local.index, local.config, local.opened = fleet.index, fleet.config, now
            local.stamp = stamp
            with self._open_lock:
                self._open[fleet.index] = True
        trace.mark("caught")
        try:
            yield fleet
        except errors.FleetError:
            fleets[who.pilot] = fleet
            self._let_go(fleet.index)
            raise
        except BaseException:
            self._drop()
            raise
        fleets[who.pilot] = fleet
        self._let_go(fleet.index)
        trace.mark("query")
        trace.cpu(began)
        while len(fleets) > KEEP_PER_THREAD:
            fleets.popitem(last=False)

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What says the thread's ledger is out of date: the config file and the clone's list
        of linked worktrees (its directory's entries), as stat sees them."""
        out = []
        for path in (self.paths.config_file, self.paths.common_dir / "worktrees"):
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def _hold(self, index: Index) -> bool:
        """Mark `index` in use by this thread's request; False if `close` closed it."""
        with self._open_lock:
            if index not in self._open:
                return False
            self._open[index] = True
            return True

    def _let_go(self, index: Index) -> None:
        """The request using `index` has ended: after a stop, its thread closes it."""
        with self._open_lock:
            if index in self._open:
                self._open[index] = False
            closed = self._closed
        if closed:
            self._drop()

    def _drop(self) -> None:
        """Close this thread's ledger (the one index under every pilot's Fleet)."""
        index: Index | None = getattr(self._local, "index", None)
        self._local.fleets = self._local.index = None
        if index is not None:
            with self._open_lock:
                if index not in self._open:
                    return  # `close` closed it already
                del self._open[index]
            index.close()

    def close(self) -> None:
        """Close every request thread's index: SQLite folds the WAL back and removes it only
        once the last connection to the file closes, and the next open finds a clean file.
        The app's lifespan ends after uvicorn has waited 1 s for the requests, then cancelled
        those left; a cancelled request's thread runs on, so an index in use is left to its
        thread, which closes it as its request ends (`_let_go`)."""
        with self._open_lock:
            self._closed = True
            found = [index for index, busy in self._open.items() if not busy]
            for index in found:
                del self._open[index]
        for index in found:
            with contextlib.suppress(Exception):  # one that fails leaves the others to close
                index.close()


def state(request: Request) -> State:
    found: State = request.app.state.web
    return found


def _known_query(request: Request) -> None:
    """A query parameter the route does not take is refused: a typo in a filter
    (`?holdr=goose`) would otherwise answer as if there were no filter."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    allowed = {q.alias for q in dependant.query_params}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError(
            422,
            "invalid",
            f"unknown query parameter(s): {', '.join(unknown)}",
            f"this route takes: {', '.join(sorted(allowed)) or 'none'}",
        )


async def principal(request: Request) -> Principal:
    """Who is asking. A token, when given, must be valid; without one, only a read on loopback.
    Async: a header and a stat are not worth a worker thread."""
    web = state(request)
    _known_query(request)
    header = request.headers.get("authorization")
    token: str | None = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "unauthorized",
                "the Authorization header is not 'Bearer TOKEN'",
                "fleetgit token create --as CALLSIGN prints a token",
            )
        token = value.strip()
    elif request.url.path == f"{API}/events/stream":  # EventSource cannot set headers
        token = request.query_params.get("access_token")
    if token is None:
        if web.loopback and request.method in ("GET", "HEAD"):
            return Principal(None, "anonymous")
        if request.method in ("GET", "HEAD"):
            raise ApiError(
                401,
                "unauthorized",
                "reading needs a token: this server listens beyond loopback",
                "fleetgit token create --read-only (or --as CALLSIGN); send it as"
                " 'Authorization: Bearer TOKEN'",
            )
        raise ApiError(
            401,
            "unauthorized",
            "writing needs a token bound to a pilot",
            "fleetgit token create --as CALLSIGN; send it as 'Authorization: Bearer TOKEN'",
        )
    found = web.tokens.check(token)
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is not valid: unknown, revoked or mistyped",
            "fleetgit token list shows the tokens; fleetgit token create --as CALLSIGN makes one",
        )
    return found


async def registrar(request: Request) -> Principal:
    """Who registers a pilot: a write token (its own pilot, rejoining), an admin token, or on
    loopback nobody at all (a newcomer has no identity yet; the registration then accepts only a
    callsign never registered, so it joins and never takes over)."""
    web = state(request)
    if web.loopback and "authorization" not in request.headers:
        _known_query(request)
        return Principal(None, "anonymous")
    who = await principal(request)
    if who.scope == "read":
        raise ApiError(
            403,
            "forbidden",
            "this token is read-only: it cannot register a pilot",
            "an admin token registers new pilots (fleetgit token create --admin); on loopback"
            " no token is needed",
        )
    return who


async def no_body(request: Request) -> None:
    """A route that takes no body refuses one, rather than ignore what the client meant."""
    length = request.headers.get("content-length", "0")
    if length != "0" or "transfer-encoding" in request.headers:
        raise ApiError(
            422,
            "invalid",
            f"{request.method} {request.url.path} takes no body",
            f"send it without one; the routes' bodies are in {API}/openapi.json",
        )


async def writer(request: Request) -> Principal:
    """A write: a token that may act as its pilot."""
    who = await principal(request)
    if who.scope != "write" or not who.pilot:
        kind = (
            "an admin token: it only registers new pilots"
            if who.scope == "admin"
            else ("read-only: it cannot change anything")
        )
        raise ApiError(
            403,
            "forbidden",
            f"this token is {kind}",
            "fleetgit token create --as CALLSIGN makes a token that acts as that pilot",
        )
    return who
