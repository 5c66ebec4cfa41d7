"""What the server's worker threads share (web/common.State), in process over a real temp
repository: each thread's one index under every pilot's Fleet, the catch-up that waits behind
an append on the writer's lock, and one catch-up shared by the requests that came before it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.git.paths import locate
from fleetgit.index.catchup import Index
from fleetgit.ledger.errors import FleetError
from fleetgit.ledger.segments import Writer
from fleetgit.web.auth import Principal
from fleetgit.web.common import Freshness, Settings, State
from fleetgit.web.sse import Hub, Link, keep, links

NOBODY = Principal(None, "anonymous")


def _as(pilot: str) -> Principal:
    return Principal(pilot, "write")


def _read(web: State, who: Principal = NOBODY) -> int:
    with web.fleet(who) as fleet:
        return len(fleet.events())


def _append_unindexed(repo: Path, pilot: str, tmp: Path) -> None:
    """Events written to this worktree's segments by a Fleet whose index is elsewhere: on disk,
    not yet in the clone's index (as segments a merge or a checkout bring are)."""
    paths = locate(repo)
    with Fleet(paths, actor=pilot) as probe:
        config = probe.config
    other = Index(paths, config, tmp / "elsewhere.sqlite")
    with Fleet(paths, actor=pilot, index=other) as fleet:
        fleet.emit("pilot_active", f"pilot/{pilot}", {"status": "busy"})


def test_a_thread_keeps_one_index_under_every_pilots_fleet(repo: Path) -> None:
    web = State(Settings(locate(repo)))
    with ThreadPoolExecutor(1) as one:

        def both() -> tuple[Fleet, Fleet]:
            with web.fleet(_as("viper-1")) as a:
                a.emit("pilot_active", "pilot/viper-1", {"status": "busy"})
            with web.fleet(_as("goose")) as b:
                b.emit("pilot_active", "pilot/goose", {"status": "busy"})
            return a, b

        a, b = one.submit(both).result()
        assert a is not b and a.index is b.index  # one connection, two actors
        again = one.submit(lambda: web.fleet(_as("viper-1")).__enter__()).result()
        assert again is a  # kept for the next request of the same pilot
    with Fleet(locate(repo)) as fleet:
        actors = [e.actor for e in fleet.events()[-2:]]
    assert actors == ["viper-1", "goose"]


def test_a_read_behind_an_append_waits_on_the_writers_lock(repo: Path, tmp_path: Path) -> None:
    """The index is behind the segments while an append holds the writer's lock: the read's
    catch-up waits for the lock (woken when it is let go) rather than read a half-written
    segment or spin in SQLite's busy handler."""
    web = State(Settings(locate(repo)))
    with ThreadPoolExecutor(1) as one:
        before = one.submit(_read, web).result()  # the thread's ledger is open now
        _append_unindexed(repo, "viper-1", tmp_path)
        paths = locate(repo)
        with Writer(paths.local_dir, paths.events_dir).locked():
            pending = one.submit(_read, web)
            time.sleep(0.3)
            assert not pending.done()  # it waits for the lock...
        assert pending.result(10) == before + 1  # ...and then sees the event


def test_a_read_sees_what_reached_the_disk_before_it_came(repo: Path, tmp_path: Path) -> None:
    web = State(Settings(locate(repo)))
    with ThreadPoolExecutor(2) as two:
        before = two.submit(_read, web).result()
        _append_unindexed(repo, "goose", tmp_path)
        assert two.submit(_read, web).result() == before + 1
        _append_unindexed(repo, "ice", tmp_path)
        assert {f.result() for f in [two.submit(_read, web) for _ in range(4)]} == {before + 2}


class Counting:
    """Stands in for a Fleet: counts catch-ups, each held until `go` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.go = threading.Event()
        self.index = self

    def follow(self) -> None:
        pass

    def catch_up(self) -> None:
        self.calls += 1
        self.started.set()
        assert self.go.wait(10)


def test_one_catch_up_serves_the_requests_that_came_before_it_began() -> None:
    fresh, fleet = Freshness(), Counting()
    fleet.go.set()
    came = time.monotonic()
    fresh.catch_up(fleet, came)  # type: ignore[arg-type]
    fresh.catch_up(fleet, came)  # type: ignore[arg-type]
    assert fleet.calls == 1
    fresh.catch_up(fleet, time.monotonic())  # type: ignore[arg-type]
    assert fleet.calls == 2
    # one in progress began before the next request came: that request waits, then checks again
    fleet.go.clear()
    fleet.started.clear()
    first = threading.Thread(target=fresh.catch_up, args=(fleet, time.monotonic()))
    first.start()
    assert fleet.started.wait(10)
    late = threading.Thread(target=fresh.catch_up, args=(fleet, time.monotonic()))
    late.start()
    fleet.go.set()
    first.join(10)
    late.join(10)
    assert fleet.calls == 4


def test_a_request_whose_catch_up_another_thread_did_reads_the_rebuilt_index(repo: Path) -> None:
    """Two threads' Fleets open across another process's rebuild and a later append: the
    first request's catch-up opens the rebuilt file; the second, skipping its own catch-up
    (one began after it came), still leaves the retired file for the new one."""
    with Fleet.open(repo) as first, Fleet.open(repo) as second:
        fresh = Freshness()
        fleetgit = Path(sys.executable).with_name("fleetgit")
        subprocess.run([fleetgit, "index", "rebuild"], cwd=repo, check=True, capture_output=True)
        with Fleet.open(repo, actor="viper") as writer:
            writer.emit_batch(
                [EventSpec("pilot_registered", "pilot/tom", {"callsign": "tom"}, actor="tom")]
            )
            n = writer.index.max_pos()
        came = time.monotonic()
        fresh.catch_up(first, came)
        fresh.catch_up(second, came)
        assert second.index.file == first.index.file != second.index.path
        assert first.index.max_pos() == second.index.max_pos() == n


def test_the_stream_looks_at_once_when_this_server_writes(repo: Path) -> None:
    """A write of this server wakes the event stream's poller: its subscribers get the event
    without waiting for the next poll (60 s here)."""
    web = State(Settings(locate(repo), poll_s=60.0))
    hub = Hub(web)

    async def scenario() -> str:
        async with hub.running():
            queue = hub.subscribe()
            await asyncio.sleep(0.1)  # the poller is waiting for its next poll now

            def write() -> None:
                with Fleet(locate(repo), actor="goose") as fleet:
                    fleet.emit(
                        "pilot_active", "pilot/goose", {"status": "idle", "current_task": "woken"}
                    )

            await asyncio.get_running_loop().run_in_executor(None, write)
            hub.wake()
            event = await asyncio.wait_for(queue.get(), 30)
            assert event is not None
            return str(event.data["current_task"])

    assert asyncio.run(scenario()) == "woken"


def test_a_write_in_one_process_wakes_the_streams_of_the_others(repo: Path) -> None:
    """`serve --workers N`: each process's Hub tells the others' through a pipe, so a write's
    event reaches a subscriber of another process at once, not at its next poll (60 s here)."""
    every = links(2)
    hubs = [Hub(State(Settings(locate(repo), poll_s=60.0))) for _ in every]
    for hub, link in zip(hubs, every, strict=True):
        hub.link = link

    async def scenario() -> str:
        async with hubs[0].running(), hubs[1].running():
            queue = hubs[1].subscribe()
            await asyncio.sleep(0.1)  # both pollers wait for their next poll now

            def write() -> None:
                with Fleet(locate(repo), actor="goose") as fleet:
                    fleet.emit(
                        "pilot_active", "pilot/goose", {"status": "idle", "current_task": "told"}
                    )

            await asyncio.get_running_loop().run_in_executor(None, write)
            hubs[0].wake()  # as the write's route does, in the other process
            event = await asyncio.wait_for(queue.get(), 30)
            assert event is not None
            return str(event.data["current_task"])

    try:
        assert asyncio.run(scenario()) == "told"
    finally:
        keep(every, Link())  # none of them kept: all closed


def test_a_process_keeps_only_the_pipe_ends_of_its_own_link() -> None:
    every = links(3)
    mine = every[1]
    keep(every, mine)
    ends = {fd for link in every for fd in (link.hear, *link.tell) if fd is not None}
    assert len(ends) == 6  # a pipe each: a read end and a write end
    for fd in ends:
        if fd == mine.hear or fd in mine.tell:
            os.fstat(fd)  # open
        else:
            with pytest.raises(OSError):
                os.fstat(fd)
    keep([mine], Link())


def test_a_thread_opens_its_ledger_again_when_the_config_or_the_worktrees_change(
    repo: Path, tmp_path: Path
) -> None:
    """What an open index does not see by itself: the config it was opened with, and the HEADs
    of worktrees added since. Both are noticed at the next request, not after a while."""
    import subprocess

    web = State(Settings(locate(repo)))
    with ThreadPoolExecutor(1) as one:

        def current() -> tuple[Fleet, int]:
            with web.fleet(NOBODY) as fleet:
                return fleet, fleet.config.pilot_active_window_seconds

        first, window = one.submit(current).result()
        assert one.submit(current).result()[0] is first  # nothing changed: kept
        config = repo / ".fleet/config.toml"
        text = config.read_text()
        assert f"pilot_active_window_seconds = {window}" in text
        key = "pilot_active_window_seconds"
        config.write_text(text.replace(f"{key} = {window}", f"{key} = {window + 1}"))
        second, now = one.submit(current).result()
        assert second is not first and now == window + 1
        subprocess.run(
            ["git", "worktree", "add", "-q", str(tmp_path / "wt2")], cwd=repo, check=True
        )
        third, _ = one.submit(current).result()
        assert third is not second
        assert one.submit(current).result()[0] is third


def test_a_stop_leaves_a_request_still_running_its_index(repo: Path) -> None:
    """uvicorn cancels a request still running 1 s into a stop, but its worker thread runs on:
    the stop's `close` must not close that thread's index under it. The request finishes on
    it, and its thread closes it as the request ends (no `-wal` left); an idle one is closed
    at once."""
    paths = locate(repo)
    web = State(Settings(paths))
    inside, stopped = threading.Event(), threading.Event()

    def slow() -> int:
        with web.fleet(_as("viper-1")) as fleet:
            inside.set()
            assert stopped.wait(10)
            fleet.emit("pilot_active", "pilot/viper-1", {"status": "busy"})
            return len(fleet.events())

    def read() -> tuple[int, Index]:
        with web.fleet(NOBODY) as fleet:
            return len(fleet.events()), fleet.index

    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(1) as other:
        seen, idle = one.submit(read).result()  # one thread's index, idle
        running = other.submit(slow)
        assert inside.wait(10)
        web.close()
        with pytest.raises(sqlite3.ProgrammingError):  # the idle one is closed at once
            idle.conn.execute("SELECT 1")
        stopped.set()
        assert running.result(10) == seen + 1
    assert not Path(f"{paths.index_file}-wal").exists()  # every connection closed
    with Fleet(paths) as fleet:
        assert fleet.events()[-1].actor == "viper-1"


def test_a_worker_opens_the_stream_s_ledger_once_and_its_start_uses_it(repo: Path) -> None:
    """`serve`'s worker opens the event stream's ledger before the app starts (a ledger that
    does not open is then one line, web/app.py); the app's start goes on with that one, not a
    second open. A bad config is the domain's one-line error there."""
    hub = Hub(State(Settings(locate(repo))))
    hub.open()
    opened = hub._fleet

    async def start() -> object:
        async with hub.running():
            return hub._fleet

    assert opened is not None and asyncio.run(start()) is opened
    config = repo / ".fleet" / "config.toml"
    config.write_text(config.read_text() + "bogus = 1\n")
    with pytest.raises(FleetError, match="unknown setting 'bogus'"):
        Hub(State(Settings(locate(repo)))).open()


def test_a_stop_closes_the_indexes_while_every_request_thread_is_busy(repo: Path) -> None:
    """The app's stop closes the request threads' indexes on a thread of its own: the request
    threads' limiter may be full of requests uvicorn cancelled whose threads run on, and the
    stop must not wait behind them (here: the one thread allowed, held until after the stop)."""
    import anyio
    import anyio.to_thread

    from fleetgit.web.app import create_app

    guard = create_app(Settings(locate(repo))._replace(threads=1))
    web, app = guard.web, guard.app
    release = threading.Event()

    def read() -> Index:
        with web.fleet(NOBODY) as fleet:
            fleet.events()
            return fleet.index

    async def hold() -> None:  # a request whose thread runs on
        await anyio.to_thread.run_sync(release.wait)

    async def main() -> tuple[Index, bool]:
        life = app.router.lifespan_context(app)  # type: ignore[attr-defined]
        await life.__aenter__()
        idle = await anyio.to_thread.run_sync(read)
        limiter = anyio.to_thread.current_default_thread_limiter()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            try:
                while limiter.borrowed_tokens < 1:  # the one request thread is taken
                    await anyio.sleep(0.01)
                with anyio.move_on_after(60):  # a guard against a hang, not a measure
                    await life.__aexit__(None, None, None)
                closed = web._closed
            finally:
                release.set()
        return idle, closed

    idle, closed = anyio.run(main)
    assert closed
    with pytest.raises(sqlite3.ProgrammingError):
        idle.conn.execute("SELECT 1")
