"""Checkpoints: where a pilot was, so it can resume after losing its context."""

from __future__ import annotations

import orjson

from fleetgit.domain.fold import Ev, Rows, stored_row

KIND = "checkpoint"
KEY = "checkpoint_id"
TABLES = ("checkpoints",)
RESUMES = True
DDL = """
CREATE TABLE IF NOT EXISTS checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    pilot TEXT,
    mission_id TEXT,
    sortie_id TEXT,
    trigger TEXT NOT NULL,
    progress INTEGER,
    summary TEXT,
    details TEXT NOT NULL,
    created_hlc INTEGER NOT NULL,
    created_pos INTEGER NOT NULL,
    restored INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_pilot ON checkpoints (pilot, created_hlc);
CREATE INDEX IF NOT EXISTS checkpoints_mission ON checkpoints (mission_id, created_hlc);
"""

LISTS = ("next_steps", "blockers", "files_modified", "reservations", "locks", "unread_messages")


def refuses(rows: Rows, e: Ev) -> str | None:
    """Why `e` cannot apply after the folded `rows` of its stream: `exists` (created once),
    `unknown` (none to restore or delete)."""
    row = stored_row(rows, "checkpoints")
    if e.type == "checkpoint_created":
        return "exists" if row is not None else None
    if e.type in ("checkpoint_restored", "checkpoint_deleted") and row is None:
        return "unknown"
    return None


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "checkpoints")
    for e in events:
        d = e.data
        if e.type == "checkpoint_created":
            if row is None:
                details = {k: d.get(k) or [] for k in LISTS}
                details["context"] = d.get("context") or {}
                row = {
                    "checkpoint_id": d["checkpoint_id"],
                    "pilot": e.actor,
                    "mission_id": d.get("mission_id"),
                    "sortie_id": d.get("sortie_id"),
                    "trigger": d.get("trigger") or "manual",
                    "progress": d.get("progress_percent"),
                    "summary": d.get("summary"),
                    "details": orjson.dumps(details).decode(),
                    "created_hlc": e.hlc,
                    "created_pos": e.pos,
                    "restored": 0,
                    "deleted": 0,
                    "last_pos": e.pos,
                }
            continue
        if row is None:
            continue
        if e.type == "checkpoint_restored":
            row["restored"] += 1
        elif e.type == "checkpoint_deleted":
            row["deleted"] = 1
        row["last_pos"] = e.pos
    return {"checkpoints": [row]} if row else {}
