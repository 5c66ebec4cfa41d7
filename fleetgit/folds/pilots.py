"""Pilots: who registered, what they said they are doing. Activity comes from the events table
(a pilot's last event of any kind), so it is not folded here."""

from __future__ import annotations

from typing import Any

from fleetgit.folds import Ev, Rows, stored_row

KIND = "pilot"
KEY = "callsign"
TABLES = ("pilots",)
RESUMES = True
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
"""


def _registered(row: dict[str, Any] | None, e: Ev) -> dict[str, Any]:
    """A (re-)registration: what it does not say is kept from before; after a deregistration
    it starts a new life (registered again, from this event's time)."""
    d = e.data
    old = row or {}
    new_life = not old or bool(old["deregistered"])
    return {
        "callsign": d["callsign"],
        "program": d.get("program") or old.get("program"),
        "model": d.get("model") or old.get("model"),
        "task": d.get("task_description") or old.get("task"),
        "parent": d.get("parent") or old.get("parent"),
        "status": "registered",
        "current_task": None if new_life else old["current_task"],
        "registered_ms": e.ms if new_life else old["registered_ms"],
        "deregistered": 0,
        "reason": None,
        "last_pos": e.pos,
    }


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "pilots")
    for e in events:
        if e.type in ("pilot_registered", "pilot_spawned"):
            row = _registered(row, e)
            continue
        if row is None or row["deregistered"]:
            continue  # a sign of life after leaving (another clone raced) changes nothing
        if e.type == "pilot_active":
            row["status"] = e.data.get("status") or "active"
            row["current_task"] = e.data.get("current_task", row["current_task"])
        elif e.type in ("pilot_deregistered", "pilot_terminated"):
            row.update(deregistered=1, status="deregistered", reason=e.data.get("reason"))
        row["last_pos"] = e.pos
    return {"pilots": [row]} if row else {}
