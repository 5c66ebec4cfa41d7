"""Reservations' event types: grants of path patterns, renewals, releases, settled clashes."""

from __future__ import annotations

from fleetgit.guard.patterns import PLAIN_STORED, check_stored
from fleetgit.ledger.durations import MAX_SECONDS
from fleetgit.ledger.schema import EventType, Field, define, opt, req, strs

TYPES: tuple[EventType, ...] = (
    define(
        "file_reserved",
        "reservation",
        "reservation_id",
        "A pilot reserved file patterns.",
        req("reservation_id", "name"),
        req("holder", "name"),
        Field(
            "patterns",
            "list",
            required=True,
            items="pattern",
            check=check_stored,
            fast=PLAIN_STORED,
            min_items=1,
        ),
        req("exclusive", "bool"),
        req("ttl_seconds", "int", minimum=1, maximum=MAX_SECONDS),
        opt("reason"),
        Field(
            "file_patterns",
            "list",
            items="pattern",
            check=check_stored,
            fast=PLAIN_STORED,
            description="Those of patterns that name a file (a literal path the repository showed"
            " as a file at the grant): nothing below them is taken to clash.",
        ),
    ),
    define(
        "file_renewed",
        "reservation",
        "reservation_id",
        "A reservation's TTL was extended.",
        req("reservation_id", "name"),
        req("ttl_seconds", "int", minimum=1, maximum=MAX_SECONDS),
    ),
    define(
        "file_released",
        "reservation",
        "reservation_id",
        "A reservation was released.",
        req("reservation_id", "name"),
        opt("forced", "bool"),
        opt("forced_by", "name"),
        opt("reason"),
    ),
    define(
        "file_conflict",
        "reservation",
        "reservation_id",
        "Two exclusive reservations overlap after a merge; settled by total order.",
        req("reservation_id", "name"),
        req("other_reservation_id", "name"),
        req("holder", "name"),
        req("other_holder", "name"),
        strs("patterns"),
        req("winner", "name"),
    ),
)
