"""Missions' event types, and the priority and result scales sorties and work orders share."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, Field, changes, define, opt, req, title

PRIORITIES = ("low", "medium", "high", "critical")
RESULTS = ("success", "partial", "failed")


def priority() -> Field:
    return Field("priority", "enum", choices=PRIORITIES)


MISSION_CREATED = define(
    "mission_created",
    "mission",
    "mission_id",
    "A mission was created.",
    req("mission_id", "name"),
    title(),
    opt("description", "text"),
    priority(),
    opt("created_by", "name"),
)
TYPES: tuple[EventType, ...] = (
    MISSION_CREATED,
    define(
        "mission_started",
        "mission",
        "mission_id",
        "Work on a mission began.",
        req("mission_id", "name"),
    ),
    define(
        "mission_updated",
        "mission",
        "mission_id",
        "A mission's title, description or priority changed.",
        req("mission_id", "name"),
        changes(MISSION_CREATED, ("title", "description", "priority")),
    ),
    define(
        "mission_completed",
        "mission",
        "mission_id",
        "A mission ended.",
        req("mission_id", "name"),
        opt("result", "enum", choices=RESULTS),
        opt("summary", "text"),
    ),
    define(
        "mission_cancelled",
        "mission",
        "mission_id",
        "A mission was called off.",
        req("mission_id", "name"),
        opt("reason"),
    ),
)
