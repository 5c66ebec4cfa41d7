"""Pilots: who registered, what they said they are doing. Activity comes from the events table
(a pilot's last event of any kind), so it is not folded here."""

from __future__ import annotations

from typing import Any

from fleetgit.folds import Ev, Rows

KIND = "pilot"
KEY = "callsign"
TABLES = ("pilots",)
DDL = """
CREATE TABLE IF NOT EXISTS pilots (
    callsign TEXT PRIMARY KEY,
    program TEXT,
    model TEXT,
    task TEXT,
    parent TEXT,
    status TEXT NOT NULL,
    current_task TEXT,
    registered_ms INTEGER NOT NULL,
    deregistered INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_actor ON events (actor, hlc);
"""


def fold(events: list[Ev]) -> Rows:
    row: dict[str, Any] | None = None
    for e in events:
        d = e.data
        if e.type in ("pilot_registered", "pilot_spawned"):
            row = {
                "callsign": d["callsign"],
                "program": d.get("program"),
                "model": d.get("model"),
                "task": d.get("task_description"),
                "parent": d.get("parent"),
                "status": "registered",
                "current_task": None,
                "registered_ms": e.ms,
                "deregistered": 0,
                "reason": None,
                "last_pos": e.pos,
            }  # registering again after deregistering starts a new life
            continue
        if row is None:
            continue
        if e.type == "pilot_active":
            row["status"] = d.get("status") or "active"
            row["current_task"] = d.get("current_task", row["current_task"])
        elif e.type in ("pilot_deregistered", "pilot_terminated"):
            row.update(deregistered=1, status="deregistered", reason=d.get("reason"))
        row["last_pos"] = e.pos
    return {"pilots": [row]} if row else {}
