"""Named locks: acquire (maybe waiting), release, list; decided inside the write transaction."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fleetgit import clock
from fleetgit.catalogue import NAME_RE
from fleetgit.durations import format_duration, parse_duration
from fleetgit.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import EventSpec, Fleet


class LockBusy(ConflictError):
    pass


def _spec(type_: str, key: str, data: dict[str, Any]) -> EventSpec:
    from fleetgit.fleet import EventSpec

    return EventSpec(type_, f"lock/{key}", {"lock_key": key, **data})


def _check_key(key: str) -> str:
    if not NAME_RE.match(key):
        raise ValidationError(
            f"lock key {key!r}: use letters, digits and . _ : @ - (no spaces or slashes)",
            hint="for example: fleetgit lock acquire db-migrations",
        )
    return key


def current(fleet: Fleet, key: str) -> dict[str, Any] | None:
    cur = fleet.index.conn.execute("SELECT * FROM locks WHERE lock_key = ?", (key,))
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found, strict=True)) if found else None


def _held(row: dict[str, Any] | None, now: int) -> bool:
    return bool(row and not row["released"] and row["expires_ms"] > now)


def acquire(
    fleet: Fleet, key: str, *, ttl: str | None = None, wait: str | None = None
) -> dict[str, Any]:
    """Take the lock now, or retry until `wait` runs out; then record lock_timeout and refuse."""
    me = fleet.me()
    key = _check_key(key)
    seconds = parse_duration(ttl) if ttl else 300
    deadline = time.monotonic() + (parse_duration(wait) if wait else 0)
    started = time.monotonic()

    def plan() -> list[EventSpec]:
        row = current(fleet, key)
        now = clock.now_ms()
        if _held(row, now) and row is not None and row["holder"] != me:
            left = format_duration((row["expires_ms"] - now) / 1000)
            raise LockBusy(
                f"lock {key} is held by {row['holder']} ({left} left)",
                hint="retry with --wait 30s, or ask the holder to release it",
            )
        return [_spec("lock_acquired", key, {"holder": me, "ttl_seconds": seconds})]

    while True:
        try:
            fleet.transact(plan)
            return status(fleet, key)
        except LockBusy:
            if time.monotonic() >= deadline:
                if wait:
                    _record_timeout(fleet, key, me, int((time.monotonic() - started) * 1000))
                raise
            time.sleep(0.1)


def _record_timeout(fleet: Fleet, key: str, me: str, waited_ms: int) -> None:
    spec = _spec("lock_timeout", key, {"waiter": me, "waited_ms": waited_ms})
    fleet.transact(lambda: [spec])


def release(fleet: Fleet, key: str) -> dict[str, Any]:
    me = fleet.me()
    key = _check_key(key)

    def plan() -> list[EventSpec]:
        row = current(fleet, key)
        if not _held(row, clock.now_ms()) or row is None:
            raise NotFoundError(f"lock {key} is not held", hint="fleetgit lock list")
        if row["holder"] != me:
            raise ConflictError(
                f"lock {key} is held by {row['holder']}, not {me}",
                hint="only the holder releases a lock; it expires on its own",
            )
        return [_spec("lock_released", key, {"holder": me})]

    fleet.transact(plan)
    return status(fleet, key)


def status(fleet: Fleet, key: str) -> dict[str, Any]:
    row = current(fleet, key)
    if row is None:
        raise NotFoundError(f"no lock {key!r}", hint="fleetgit lock list")
    now = clock.now_ms()
    held = _held(row, now)
    return {
        "lock_key": key,
        "held": held,
        "holder": row["holder"] if held else None,
        "expires_at": clock.iso_ms(row["expires_ms"]) if held else None,
        "seconds_left": max(0, (row["expires_ms"] - now) // 1000) if held else 0,
        "timeouts": row["timeouts"],
    }


def listing(fleet: Fleet) -> list[dict[str, Any]]:
    keys = [
        r[0]
        for r in fleet.index.conn.execute(
            "SELECT lock_key FROM locks WHERE released = 0 AND expires_ms > ? ORDER BY lock_key",
            (clock.now_ms(),),
        )
    ]
    return [status(fleet, k) for k in keys]
