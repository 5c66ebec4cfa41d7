"""Missions: planned -> in_progress -> completed | cancelled."""

from __future__ import annotations

from fleetgit.folds import Ev, Rows, changes, stored_row

KIND = "mission"
KEY = "mission_id"
TABLES = ("missions",)
RESUMES = True
DDL = """
CREATE TABLE IF NOT EXISTS missions (
    mission_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT,
    created_ms INTEGER NOT NULL,
    created_hlc INTEGER NOT NULL,
    result TEXT,
    summary TEXT,
    last_pos INTEGER NOT NULL
);
"""

STATUSES = ("planned", "in_progress", "completed", "cancelled")
CLOSED = ("completed", "cancelled")
# event type -> (states it may follow, state it leads to); shared with the commands
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "mission_started": (("planned",), "in_progress"),
    "mission_updated": (("planned", "in_progress"), None),
    "mission_completed": (("planned", "in_progress"), "completed"),
    "mission_cancelled": (("planned", "in_progress"), "cancelled"),
}


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "missions")
    for e in events:
        d = e.data
        if e.type == "mission_created":
            if row is None:
                row = {
                    "mission_id": d["mission_id"],
                    "title": d["title"],
                    "description": d.get("description"),
                    "priority": d.get("priority") or "medium",
                    "status": "planned",
                    "created_by": d.get("created_by") or e.actor,
                    "created_ms": e.ms,
                    "created_hlc": e.hlc,
                    "result": None,
                    "summary": None,
                    "last_pos": e.pos,
                }
            continue
        if row is None or e.type not in TRANSITIONS:
            continue
        allowed, target = TRANSITIONS[e.type]
        if row["status"] not in allowed:
            continue  # a transition that lost a race in another clone: total order decides
        if e.type == "mission_updated":
            row.update(changes(e))
        if e.type == "mission_completed":
            row.update(result=d.get("result") or "success", summary=d.get("summary"))
        if target:
            row["status"] = target
        row["last_pos"] = e.pos
    return {"missions": [row]} if row else {}
