"""Sorties' event types: creation, claims, progress, blocking, the end."""

from __future__ import annotations

from fleetgit.domain.missions.events import RESULTS, priority
from fleetgit.ledger.schema import (
    EventType,
    Field,
    changes,
    define,
    names,
    opt,
    pct,
    req,
    strs,
    title,
)

SORTIE_CREATED = define(
    "sortie_created",
    "sortie",
    "sortie_id",
    "A sortie (a unit of a mission) was created.",
    req("sortie_id", "name"),
    opt("mission_id", "name"),
    title(),
    opt("description", "text"),
    priority(),
    strs("files"),
    names("depends_on"),
)
TYPES: tuple[EventType, ...] = (
    SORTIE_CREATED,
    define(
        "sortie_assigned",
        "sortie",
        "sortie_id",
        "A sortie was assigned (claimed); previous_assignee makes it a compare-and-swap.",
        req("sortie_id", "name"),
        req("assignee", "name"),
        opt("previous_assignee", "name"),
    ),
    define(
        "sortie_started", "sortie", "sortie_id", "Work on a sortie began.", req("sortie_id", "name")
    ),
    define(
        "sortie_progress",
        "sortie",
        "sortie_id",
        "Progress on a sortie.",
        req("sortie_id", "name"),
        pct("percent", True),
        opt("note"),
    ),
    define(
        "sortie_blocked",
        "sortie",
        "sortie_id",
        "A sortie cannot go on.",
        req("sortie_id", "name"),
        Field("reason", required=True, nonblank=True),
    ),
    define(
        "sortie_resumed",
        "sortie",
        "sortie_id",
        "A blocked sortie goes on.",
        req("sortie_id", "name"),
    ),
    define(
        "sortie_updated",
        "sortie",
        "sortie_id",
        "A sortie's fields changed.",
        req("sortie_id", "name"),
        changes(
            SORTIE_CREATED,
            ("title", "description", "priority", "files", "depends_on", "mission_id"),
        ),
    ),
    define(
        "sortie_completed",
        "sortie",
        "sortie_id",
        "A sortie ended.",
        req("sortie_id", "name"),
        opt("result", "enum", choices=RESULTS),
        opt("summary", "text"),
    ),
    define(
        "sortie_cancelled",
        "sortie",
        "sortie_id",
        "A sortie was called off.",
        req("sortie_id", "name"),
        opt("reason"),
    ),
    define(
        "sortie_unclaimed",
        "sortie",
        "sortie_id",
        "A pilot handed a claimed sortie back: open again, nobody's.",
        req("sortie_id", "name"),
        opt("reason"),
    ),
)
