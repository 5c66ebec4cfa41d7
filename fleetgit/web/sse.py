"""`GET /api/v1/events/stream`: Server-Sent Events of every event this clone's index takes in,
whoever appended it (this server, a CLI process, a hook, a merge or a sync), each with its
position as the SSE id, so a client resumes with `Last-Event-ID` without a gap or a duplicate.

One poller (the Hub) looks for new events every `poll_s`: a catch-up, which is a few stat calls
when nothing changed on disk (Index.is_fresh), then the positions after the last one it saw
(the server's own appends move the fingerprint along without changing the files' stamps, so
it looks at the positions too). Each subscriber first reads what it missed from the index,
then takes the hub's broadcasts, skipping positions it already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import anyio.to_thread
import orjson
from fastapi import Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from fleetgit.domain import catalogue
from fleetgit.fleet import Fleet
from fleetgit.index.reads import EventFilter, select_after, select_events
from fleetgit.ledger.codec import Event
from fleetgit.web.auth import Principal
from fleetgit.web.common import ApiError, principal

if TYPE_CHECKING:
    from fleetgit.web.common import State

BATCH = 500  # events read at a time
QUEUE = 10_000  # a subscriber this far behind is dropped: it reconnects with Last-Event-ID
KEEPALIVE_S = 15.0
T = TypeVar("T")
REOPEN_S = 5.0  # the poller opens the ledger again now and then (new worktrees, config)


class Hub:
    def __init__(self, web: State) -> None:
        self.web = web
        self.poll_s = web.settings.poll_s
        self.subscribers: set[asyncio.Queue[Event | None]] = set()
        self.last_pos = 0
        self._fleet: Fleet | None = None  # used by the poller's own thread alone
        self._opened = 0.0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="fleetgit-events")
        self._woken = asyncio.Event()
        self.link: Link = Link()  # the other processes of this server (see `links`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ending = False  # the server stops: every stream ends, and a new one at once

    def wake(self) -> None:
        """Look now, not at the next poll: this server has just written (the event loop's own
        thread only); and tell this server's other processes to look too. Appends by anyone
        else are found by the poll, every `poll_s`."""
        self._woken.set()
        for fd in self.link.tell:
            # full: it has a wake-up waiting already; gone: it has ended
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(fd, b"w")

    def _heard(self) -> None:
        """Another process of this server wrote: look now."""
        assert self.link.hear is not None
        with contextlib.suppress(OSError):
            while os.read(self.link.hear, 4096):
                pass
        self._woken.set()

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def end_streams(self) -> None:
        """End every event stream now, so the connections close within uvicorn's graceful
        shutdown instead of being cancelled at its end (any thread, a signal handler too)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        self.ending = True
        for queue in list(self.subscribers):
            self._end(queue)

    @staticmethod
    def _end(queue: asyncio.Queue[Event | None]) -> None:
        with contextlib.suppress(asyncio.QueueFull, asyncio.QueueEmpty):
            queue.put_nowait(None)
            return
        with contextlib.suppress(asyncio.QueueFull, asyncio.QueueEmpty):
            queue.get_nowait()  # full: what it has not sent yet is read again on resuming
            queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self.last_pos = await self._in_thread(self._max_pos)
        task = asyncio.create_task(self._run())
        loop = asyncio.get_running_loop()
        if self.link.hear is not None:
            loop.add_reader(self.link.hear, self._heard)
        try:
            yield
        finally:
            if self.link.hear is not None:
                loop.remove_reader(self.link.hear)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._end_all()
            await self._in_thread(self._close)
            self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()
        self._fleet = None

    def open(self) -> None:
        """Open the poller's ledger now, before the app starts (`serve`'s worker): a ledger
        that does not open is then one line from the worker, not a traceback of the app's
        start; `running` goes on with this one."""
        self._ledger()

    def _ledger(self) -> Fleet:
        if self._fleet is None or time.monotonic() - self._opened > REOPEN_S:
            if self._fleet is not None:
                self._fleet.close()
            self._fleet = Fleet(self.web.paths, actor=None, repair=False, catch_up=False)
            self._opened = time.monotonic()
        return self._fleet

    def _max_pos(self) -> int:
        fleet = self._ledger()
        fleet.catch_up()
        return fleet.index.max_pos()

    def _poll(self) -> list[Event]:
        fleet = self._ledger()
        self.web.fresh.catch_up(fleet, time.monotonic())  # shared with the requests
        if fleet.index.max_pos() <= self.last_pos:
            return []
        return select_after(fleet.index, self.last_pos, BATCH)

    async def _run(self) -> None:
        while True:
            try:
                found = await self._in_thread(self._poll)
            except Exception:  # a busy index, a file replaced mid-read: next time
                await self._in_thread(self._close)
                found = []
            for event in found:
                self._publish(event)
                self.last_pos = max(self.last_pos, event.pos or 0)
            if len(found) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self.poll_s)
            self._woken.clear()

    def _publish(self, event: Event) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # too slow: end its stream; it resumes from its id
                self.subscribers.discard(queue)
                self._end(queue)

    def backlog(self, after: int, only: Only) -> list[Event]:
        """Events after position `after` already in the index, those `only` selects, in
        position order (a thread of its own: SQLite connections stay in the thread that opened
        them)."""
        with Fleet(self.web.paths, actor=None, repair=False, catch_up=False) as fleet:
            if not only:
                return select_after(fleet.index, after, BATCH)
            flt = EventFilter(types=only.types, stream=only.stream, after_pos=after, limit=BATCH)
            return select_events(fleet.index, flt)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE)
        self.subscribers.add(queue)
        if self.ending:
            queue.put_nowait(None)
        return queue


class Link(NamedTuple):
    """One server process's pipes to the others: the one it hears on, those it tells."""

    hear: int | None = None
    tell: tuple[int, ...] = ()


def links(count: int) -> list[Link]:
    """For `count` processes of one server, each one's Link (non-blocking pipes): a write in one
    wakes every other one's event stream at once, not at its next poll. Each process closes the
    pipe ends that are not in its own Link (`keep`)."""
    pipes = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in range(count)]
    return [
        Link(pipes[i][0], tuple(w for j, (_, w) in enumerate(pipes) if j != i))
        for i in range(count)
    ]


def keep(every: list[Link], mine: Link) -> None:
    """Close the pipe ends of `every` Link that `mine` does not use."""
    used = {mine.hear, *mine.tell}
    for link in every:
        for fd in (link.hear, *link.tell):
            if fd is not None and fd not in used:
                used.add(fd)  # each end once
                os.close(fd)


class Only(NamedTuple):
    """The stream's filter: event types (any of them), one stream; empty: everything."""

    types: tuple[str, ...] = ()
    stream: str | None = None

    def __bool__(self) -> bool:
        return bool(self.types) or self.stream is not None

    def takes(self, event: Event) -> bool:
        return (not self.types or event.type in self.types) and (
            self.stream is None or event.stream == self.stream
        )


def only(types: list[str] | None, stream: str | None) -> Only:
    """The filter of `?type=&stream=`, checked: an unknown type or a malformed stream would
    match nothing, and a stream that never sends looks like a quiet fleet."""
    for name in types or ():
        if name not in catalogue.TYPES:
            close = difflib.get_close_matches(name, list(catalogue.TYPES), n=3)
            raise ApiError(
                422,
                "invalid",
                f"query field 'type': no event type {name!r}",
                f"did you mean {', '.join(close)}?" if close else "fleetgit catalogue lists them",
            )
    if stream is not None:
        catalogue.check_stream(stream)  # refused as /events?stream= refuses it
    return Only(tuple(dict.fromkeys(types or ())), stream)


def frame(event: Event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.pos or 0, orjson.dumps(event.to_json()))


def _start(last_event_id: str | None, after: str | None, hub: Hub) -> int:
    """Where to start: after the position `Last-Event-ID` (or `?after=`) names; else now."""
    given = last_event_id if last_event_id is not None else after
    if given is None or given == "":
        return hub.last_pos
    if not given.isdigit() or len(given) > 18:
        raise ApiError(
            400,
            "bad_request",
            f"Last-Event-ID {given!r} is not a position",
            "send the id of the last event received (a whole number), or none to start now",
        )
    return int(given)


def endpoint(hub: Hub) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def event_stream(
        request: Request,
        who: Principal = Depends(principal),  # noqa: B008 (FastAPI's way)
        after: str | None = None,
        access_token: str | None = None,
        type: Annotated[list[str] | None, Query(max_length=50)] = None,
        stream: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Response:
        """Server-Sent Events of new events, each with its position as id. Resume with the
        Last-Event-ID header (or `?after=POS`); EventSource may pass `?access_token=`.
        `type` (repeat it: any of them) and `stream` keep only those events; an id is still
        the event's position, so a resume under the same filter has no gap and no duplicate."""
        want = only(type, stream)
        sent = _start(request.headers.get("last-event-id"), after, hub)
        queue = hub.subscribe()

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            try:
                yield b"retry: 1000\n: stream of fleetgit events\n\n"
                while True:  # what it missed, from the index
                    batch = await anyio.to_thread.run_sync(hub.backlog, sent, want)
                    for event in batch:
                        yield frame(event)
                        sent = event.pos or sent
                    if len(batch) < BATCH:
                        break
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if item is None:
                        return
                    if (item.pos or 0) <= sent:
                        continue
                    sent = item.pos or sent  # taken or not: it is behind this subscriber
                    if want.takes(item):
                        yield frame(item)
            finally:
                hub.subscribers.discard(queue)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    return event_stream
