"""Work orders: small tasks under a sortie. A work order is open while nobody holds it; assigned,
in_progress or blocked while its assignee does; completed or cancelled for good (`refusal`)."""

from __future__ import annotations

from typing import Any

from fleetgit.domain.fold import Ev, Rows, stored_row
from fleetgit.domain.workorders.events import WORK_ORDER_STATUSES

KIND = "workorder"
KEY = "work_order_id"
TABLES = ("work_orders",)
RESUMES = True
DDL = """
CREATE TABLE IF NOT EXISTS work_orders (
    work_order_id TEXT PRIMARY KEY,
    sortie_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    note TEXT,
    result TEXT,
    summary TEXT,
    created_hlc INTEGER NOT NULL,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS work_orders_sortie ON work_orders (sortie_id);
"""

STATUSES = WORK_ORDER_STATUSES
CLOSED = ("completed", "cancelled")
HELD = ("assigned", "in_progress", "blocked")  # someone holds it: these need an assignee


def refusal(row: dict[str, Any], event_type: str, data: dict[str, Any]) -> str | None:
    """Why `event_type` with `data` cannot apply to the work order `row` (None: it applies).
    The one rule for the commands, which refuse it, and the fold, which ignores it (only a race
    between clones can write it), so every clone folds the same state:

    - `closed`: a completed or cancelled work order changes no more;
    - `invalid`: no assignee, or a status the catalogue does not know;
    - `unchanged`: assigning it to its assignee, or setting the status it has, would change
      nothing (and record an event for nothing);
    - `unassigned`: assigned, in_progress and blocked say someone holds it: they need an
      assignee, given by `workorder assign`.

    Setting it `open` gives it back: the assignee is cleared."""
    if row["status"] in CLOSED:
        return "closed"
    if event_type == "work_order_assigned":
        assignee = data.get("assignee")
        if not isinstance(assignee, str):
            return "invalid"
        if assignee == row["assignee"]:
            return "unchanged"
    if event_type == "work_order_status_changed":
        status = data.get("status")
        if status not in STATUSES:
            return "invalid"
        if status == row["status"]:
            return "unchanged"
        if status in HELD and row["assignee"] is None:
            return "unassigned"
    return None


def refuses(rows: Rows, e: Ev) -> str | None:
    """Why `e` cannot apply after the folded `rows` of its stream: `exists` (created once),
    `unknown` (none to change), else `refusal`."""
    row = stored_row(rows, "work_orders")
    if e.type == "work_order_created":
        return "exists" if row is not None else None
    if e.type not in ("work_order_assigned", "work_order_status_changed", "work_order_completed"):
        return None
    return "unknown" if row is None else refusal(row, e.type, e.data)


def _apply(row: dict[str, Any], e: Ev) -> None:
    d = e.data
    if e.type == "work_order_assigned":
        row.update(assignee=d["assignee"], status="assigned")
    elif e.type == "work_order_status_changed":
        row.update(status=d["status"], note=d.get("note") or row["note"])
        if d["status"] == "open":
            row["assignee"] = None
    else:
        row.update(
            status="completed", result=d.get("result") or "success", summary=d.get("summary")
        )


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "work_orders")
    for e in events:
        d = e.data
        if e.type == "work_order_created":
            if row is None:
                row = {
                    "work_order_id": d["work_order_id"],
                    "sortie_id": d["sortie_id"],
                    "title": d["title"],
                    "description": d.get("description"),
                    "priority": d.get("priority") or "medium",
                    "status": "open",
                    "assignee": None,
                    "note": None,
                    "result": None,
                    "summary": None,
                    "created_hlc": e.hlc,
                    "last_pos": e.pos,
                }
            continue
        known = ("work_order_assigned", "work_order_status_changed", "work_order_completed")
        if row is None or e.type not in known or refusal(row, e.type, d) is not None:
            continue  # e.g. closed is final: a late change from another clone does not reopen it
        _apply(row, e)
        row["last_pos"] = e.pos
    return {"work_orders": [row]} if row else {}
