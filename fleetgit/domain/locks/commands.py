"""Named locks: acquire (maybe waiting), release, list; decided inside the write transaction."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots import commands as pilots
from fleetgit.ledger import clock
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.durations import format_duration, parse_duration
from fleetgit.ledger.errors import ConflictError, NotFoundError
from fleetgit.ledger.schema import check_name, name_like

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


class LockBusy(ConflictError):
    pass


def _spec(type_: str, key: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"lock/{key}", {"lock_key": key, **data})


def _check_key(key: str, verb: str) -> str:
    return check_name(key, "lock key", f"fleetgit lock {verb} {name_like(key)}")


def current(fleet: Fleet, key: str) -> dict[str, Any] | None:
    cur = fleet.index.conn.execute("SELECT * FROM locks WHERE lock_key = ?", (key,))
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found, strict=True)) if found else None


def _held(row: dict[str, Any] | None, now: int) -> bool:
    return bool(row and not row["released"] and row["expires_ms"] > now)


def _left(row: dict[str, Any], now: int) -> float:
    return max(0.0, float(row["expires_ms"] - now) / 1000)


def _outlast(seconds: float) -> str:
    """A --wait value just longer than `seconds`: `45s`, `5m`."""
    return f"{math.ceil(seconds) + 1}s" if seconds < 59 else f"{math.ceil(seconds / 60) + 1}m"


def _wait_for(key: str, row: dict[str, Any], now: int) -> str:
    return f"fleetgit lock acquire {key} --wait {_outlast(_left(row, now))}"


def acquire(
    fleet: Fleet, key: str, *, ttl: str | None = None, wait: str | None = None
) -> dict[str, Any]:
    """Take the lock now, or retry until `wait` runs out; then record lock_timeout and refuse."""
    key = _check_key(key, "acquire")
    me = pilots.acting(fleet)
    seconds = parse_duration(ttl) if ttl else 300
    deadline = time.monotonic() + (parse_duration(wait) if wait else 0)
    started = time.monotonic()

    def plan() -> list[EventSpec]:
        row = current(fleet, key)
        now = clock.now_ms()
        if _held(row, now) and row is not None and row["holder"] != me:
            raise LockBusy(
                f"lock {key} is held by {row['holder']} ({format_duration(_left(row, now))} left)",
                hint=f"wait until it expires: {_wait_for(key, row, now)}",
            )
        return [_spec("lock_acquired", key, {"holder": me, "ttl_seconds": seconds})]

    while True:
        try:
            fleet.transact(plan)
            return status(fleet, key)
        except LockBusy as busy:
            if time.monotonic() >= deadline:
                if wait:
                    waited = int((time.monotonic() - started) * 1000)
                    _record_timeout(fleet, key, me, waited)
                    busy.message += f"; waited {format_duration(waited / 1000)} and gave up"
                raise
            time.sleep(0.1)


def _record_timeout(fleet: Fleet, key: str, me: str, waited_ms: int) -> None:
    spec = _spec("lock_timeout", key, {"waiter": me, "waited_ms": waited_ms})
    fleet.transact(lambda: [spec])


def release(fleet: Fleet, key: str) -> dict[str, Any]:
    key = _check_key(key, "release")
    me = pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        row = current(fleet, key)
        now = clock.now_ms()
        if not _held(row, now) or row is None:
            raise NotFoundError(
                f"lock {key} is not held: nothing to release", hint="fleetgit lock list"
            )
        if row["holder"] != me:
            raise ConflictError(
                f"lock {key} is held by {row['holder']}, not {me}: only the holder releases it",
                hint=f"it expires by itself; to take it then: {_wait_for(key, row, now)}",
            )
        return [_spec("lock_released", key, {"holder": me})]

    fleet.transact(plan)
    return status(fleet, key)


def held_by(fleet: Fleet, callsign: str) -> list[str]:
    """The keys of the locks `callsign` holds now."""
    now = clock.now_ms()
    found = fleet.index.conn.execute(
        "SELECT lock_key FROM locks WHERE holder = ? AND NOT released AND expires_ms > ?"
        " ORDER BY lock_key",
        (callsign, now),
    )
    return [key for (key,) in found]


def release_spec(key: str, holder: str) -> EventSpec:
    return _spec("lock_released", key, {"holder": holder})


def _status(row: dict[str, Any], now: int) -> dict[str, Any]:
    held = _held(row, now)
    return {
        "lock_key": row["lock_key"],
        "held": held,
        "holder": row["holder"] if held else None,
        "expires_at": clock.iso_ms(row["expires_ms"]) if held else None,
        "seconds_left": int(_left(row, now)) if held else 0,
        "timeouts": row["timeouts"],
    }


def status(fleet: Fleet, key: str) -> dict[str, Any]:
    """A lock's state; inside `Fleet.as_of` as it was at that position's time."""
    row = current(fleet, key)
    if row is None:
        raise NotFoundError(f"no lock {key!r}", hint="fleetgit lock list")
    return _status(row, fleet.now_ms())


def listing(fleet: Fleet) -> list[dict[str, Any]]:
    """The held locks; inside `Fleet.as_of` those held at that position's time."""
    cur = fleet.index.conn.execute(
        "SELECT * FROM locks WHERE released = 0 AND expires_ms > ? ORDER BY lock_key",
        (fleet.now_ms(),),
    )
    names, now = [c[0] for c in cur.description], fleet.now_ms()
    return [_status(dict(zip(names, r, strict=True)), now) for r in cur]
