"""Sorties: open -> assigned -> in_progress <-> blocked -> completed | cancelled, with
dependencies. A claim is a compare-and-swap on the assignee, so of two claims made in two clones
the first in total order wins, the same in every clone."""

from __future__ import annotations

from typing import Any

from fleetgit.folds import Ev, Rows, changes

KIND = "sortie"
KEY = "sortie_id"
TABLES = ("sorties", "sortie_deps")
DDL = """
CREATE TABLE IF NOT EXISTS sorties (
    sortie_id TEXT PRIMARY KEY,
    mission_id TEXT,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT NOT NULL,
    files TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    percent INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    blocked_reason TEXT,
    result TEXT,
    summary TEXT,
    created_hlc INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sorties_mission ON sorties (mission_id);
CREATE INDEX IF NOT EXISTS sorties_status ON sorties (status);
CREATE TABLE IF NOT EXISTS sortie_deps (
    sortie_id TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (sortie_id, depends_on)
);
CREATE INDEX IF NOT EXISTS sortie_deps_on ON sortie_deps (depends_on);
"""

LIVE = ("open", "assigned", "in_progress", "blocked")
CLOSED = ("completed", "cancelled")
STATUSES = (*LIVE, *CLOSED)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "sortie_assigned": (("open", "assigned"), "assigned"),
    "sortie_started": (("assigned",), "in_progress"),
    "sortie_progress": (("in_progress",), None),
    "sortie_blocked": (("in_progress",), "blocked"),
    "sortie_resumed": (("blocked",), "in_progress"),
    "sortie_updated": (LIVE, None),
    "sortie_completed": (("in_progress",), "completed"),
    "sortie_cancelled": (LIVE, "cancelled"),
}


def fold(events: list[Ev]) -> Rows:
    import orjson

    row: dict[str, Any] | None = None
    deps: list[str] = []
    for e in events:
        d = e.data
        if e.type == "sortie_created":
            if row is None:
                row = {
                    "sortie_id": d["sortie_id"],
                    "mission_id": d.get("mission_id"),
                    "title": d["title"],
                    "description": d.get("description"),
                    "priority": d.get("priority") or "medium",
                    "files": list(d.get("files") or []),
                    "status": "open",
                    "assignee": None,
                    "percent": 0,
                    "note": None,
                    "blocked_reason": None,
                    "result": None,
                    "summary": None,
                    "created_hlc": e.hlc,
                    "updated_ms": e.ms,
                    "last_pos": e.pos,
                }
                deps = list(dict.fromkeys(d.get("depends_on") or []))
            continue
        update = changes(e, keep_null=True) if e.type == "sortie_updated" else {}
        if row is None or e.type not in TRANSITIONS or not _apply(row, e, update):
            continue
        if "depends_on" in update:
            deps = list(dict.fromkeys(update["depends_on"] or []))
        row["updated_ms"], row["last_pos"] = e.ms, e.pos
    if row is None:
        return {}
    row["files"] = orjson.dumps(row["files"]).decode()
    sid = row["sortie_id"]
    return {"sorties": [row], "sortie_deps": [{"sortie_id": sid, "depends_on": x} for x in deps]}


def _apply(row: dict[str, Any], e: Ev, update: dict[str, Any]) -> bool:
    """Apply one transition if it is legal from the current state; illegal ones (a race lost in
    another clone) are ignored, so every clone folds the same state. `update`: an update's
    accepted changes (its dependencies are the caller's)."""
    allowed, target = TRANSITIONS[e.type]
    d = e.data
    if row["status"] not in allowed:
        return False
    if e.type == "sortie_assigned" and d.get("previous_assignee") != row["assignee"]:
        return False  # compare-and-swap: someone else claimed it first
    if e.type == "sortie_assigned":
        row["assignee"] = d["assignee"]
    elif e.type == "sortie_progress":
        row["percent"], row["note"] = d["percent"], d.get("note") or row["note"]
    elif e.type == "sortie_blocked":
        row["blocked_reason"] = d["reason"]
    elif e.type == "sortie_resumed":
        row["blocked_reason"] = None
    elif e.type == "sortie_updated":
        row.update({k: v for k, v in update.items() if k != "depends_on" and v is not None})
    elif e.type == "sortie_completed":
        row.update(result=d.get("result") or "success", summary=d.get("summary"), percent=100)
    if target:
        row["status"] = target
    return True
