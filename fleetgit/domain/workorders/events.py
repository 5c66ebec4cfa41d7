"""Work orders' event types."""

from __future__ import annotations

from fleetgit.domain.missions.events import RESULTS, priority
from fleetgit.ledger.schema import EventType, define, opt, req, title

WORK_ORDER_STATUSES = ("open", "assigned", "in_progress", "blocked", "completed", "cancelled")
TYPES: tuple[EventType, ...] = (
    define(
        "work_order_created",
        "workorder",
        "work_order_id",
        "A work order under a sortie.",
        req("work_order_id", "name"),
        req("sortie_id", "name"),
        title(),
        opt("description", "text"),
        priority(),
    ),
    define(
        "work_order_assigned",
        "workorder",
        "work_order_id",
        "A work order was assigned.",
        req("work_order_id", "name"),
        req("assignee", "name"),
    ),
    define(
        "work_order_status_changed",
        "workorder",
        "work_order_id",
        "A work order's status changed.",
        req("work_order_id", "name"),
        req("status", "enum", choices=WORK_ORDER_STATUSES),
        opt("note"),
    ),
    define(
        "work_order_completed",
        "workorder",
        "work_order_id",
        "A work order was done.",
        req("work_order_id", "name"),
        opt("result", "enum", choices=RESULTS),
        opt("summary", "text"),
    ),
)
