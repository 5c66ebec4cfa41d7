"""Work orders: small tasks under a sortie."""

from __future__ import annotations

from typing import Any

from fleetgit.catalogue import WORK_ORDER_STATUSES
from fleetgit.folds import Ev, Rows

KIND = "workorder"
KEY = "work_order_id"
TABLES = ("work_orders",)
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


def fold(events: list[Ev]) -> Rows:
    row: dict[str, Any] | None = None
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
        if row is None or row["status"] in CLOSED:
            continue  # closed is final; a late change from another clone does not reopen it
        if e.type == "work_order_assigned":
            row.update(assignee=d["assignee"], status="assigned")
        elif e.type == "work_order_status_changed":
            row.update(status=d["status"], note=d.get("note") or row["note"])
        elif e.type == "work_order_completed":
            row.update(
                status="completed", result=d.get("result") or "success", summary=d.get("summary")
            )
        else:
            continue
        row["last_pos"] = e.pos
    return {"work_orders": [row]} if row else {}
