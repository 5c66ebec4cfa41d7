"""Missions: planned -> in_progress -> completed | cancelled. Where in total order a mission
ended (`mission_ends`) is what index.claims needs to judge a claim or start of one of its
sorties: one after the end counts for nothing."""

from __future__ import annotations

from typing import Any

from fleetgit.domain.fold import Ev, Rows, changes, stored_row
from fleetgit.domain.missions.events import PRIORITIES

KIND = "mission"
KEY = "mission_id"
TABLES = ("missions", "mission_ends")
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
-- The event that ended the mission (completed or cancelled; final), in total order
CREATE TABLE IF NOT EXISTS mission_ends (
    mission_id TEXT PRIMARY KEY,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL
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


def priority_rank(column: str) -> str:
    """SQL ranking `column` critical first; a value no version knows (a ledger is forever) last."""
    ranks = " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(reversed(PRIORITIES)))
    return f"CASE {column} {ranks} ELSE {len(PRIORITIES)} END"


def refusal(row: dict[str, Any] | None, event_type: str) -> str | None:
    """Why `event_type` cannot apply to the mission `row` (None: it applies). The one rule for
    the commands and emit, which refuse it, and the fold, which ignores it: `exists` (a mission
    is created once), `unknown` (none to change), `state` (not from its state: `TRANSITIONS`)."""
    if event_type == "mission_created":
        return "exists" if row is not None else None
    if event_type not in TRANSITIONS:
        return None
    if row is None:
        return "unknown"
    return "state" if row["status"] not in TRANSITIONS[event_type][0] else None


def refuses(rows: Rows, e: Ev) -> str | None:
    """`refusal` of `e` after the folded `rows` of its stream."""
    return refusal(stored_row(rows, "missions"), e.type)


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "missions")
    end = stored_row(start, "mission_ends")
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
        if row is None or e.type not in TRANSITIONS or refusal(row, e.type) is not None:
            continue  # e.g. a transition that lost a race in another clone: total order decides
        target = TRANSITIONS[e.type][1]
        if e.type == "mission_updated":
            row.update(changes(e))
        if e.type == "mission_completed":
            row.update(result=d.get("result") or "success", summary=d.get("summary"))
        if target:
            row["status"] = target
        if target in CLOSED:
            end = {"mission_id": row["mission_id"], "hlc": e.hlc, "writer": e.writer,
                   "wseq": e.wseq}  # fmt: skip
        row["last_pos"] = e.pos
    if row is None:
        return {}
    return {"missions": [row], "mission_ends": [end] if end else []}
