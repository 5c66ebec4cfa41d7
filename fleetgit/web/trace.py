"""Where a request's time goes, by timestamps (FLEETGIT_WEB_TRACE=FILE; off by default).

Each request gets a record in a context variable, which follows it into its worker thread
(anyio copies the context). Marks, in ms since the request reached the app: `thread` (its
handler began in a worker thread: the wait for a thread, the GIL, the body and the
dependencies before it), `caught` (the ledger was open and caught up), `done` (the handler
returned, its JSON encoded), `sent` (the last byte handed to the server); `cpu` is the worker
thread's own CPU time in the handler, so `done - thread - cpu` is time it waited (the GIL, a
lock, the disk). The event loop's own lateness is sampled every 10 ms as `lag` records. Lines
of JSON in FILE.PID, written when the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

TARGET = os.environ.get("FLEETGIT_WEB_TRACE") or None
current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fleetgit_web_trace", default=None
)
records: list[dict[str, Any]] = []


def start(method: str, path: str) -> dict[str, Any] | None:
    if TARGET is None:
        return None
    record: dict[str, Any] = {"m": method, "p": path, "t0": time.perf_counter()}
    current.set(record)
    records.append(record)
    return record


def mark(name: str) -> None:
    record = current.get()
    if record is not None:
        record[name] = round((time.perf_counter() - record["t0"]) * 1000, 3)


def cpu(since: float) -> None:
    record = current.get()
    if record is not None:
        record["cpu"] = round((time.thread_time() - since) * 1000, 3)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[None]:
    """The loop's lateness sampled while serving; every record written at the end."""
    if TARGET is None:
        yield
        return

    async def sample() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            late = (time.perf_counter() - t - 0.01) * 1000
            if late > 2:
                records.append({"lag": round(late, 3), "t0": t})

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with open(f"{TARGET}.{os.getpid()}", "ab") as out:
            for record in records:
                out.write(orjson.dumps(record) + b"\n")
