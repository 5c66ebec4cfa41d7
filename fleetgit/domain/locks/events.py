"""Locks' event types."""

from __future__ import annotations

from fleetgit.ledger.durations import MAX_SECONDS
from fleetgit.ledger.schema import EventType, define, opt, req

TYPES: tuple[EventType, ...] = (
    define(
        "lock_acquired",
        "lock",
        "lock_key",
        "A named lock was taken.",
        req("lock_key", "name"),
        req("holder", "name"),
        req("ttl_seconds", "int", minimum=1, maximum=MAX_SECONDS),
    ),
    define(
        "lock_released",
        "lock",
        "lock_key",
        "A named lock was released.",
        req("lock_key", "name"),
        req("holder", "name"),
    ),
    define(
        "lock_timeout",
        "lock",
        "lock_key",
        "A pilot gave up waiting for a lock.",
        req("lock_key", "name"),
        req("waiter", "name"),
        opt("waited_ms", "int", minimum=0),
    ),
)
