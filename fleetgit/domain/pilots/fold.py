"""Pilots: who registered, what they said they are doing. Activity comes from the events table
(a pilot's last event of any kind), so it is not folded here.

A pilot speaks for itself (`refusal`): its heartbeats and its deregistration count only from
the pilot itself (a termination also from the pilot that spawned it), as the commands write them,
so an event from another clone cannot make a pilot leave the fleet (which `release --force`
would then take as leave to take its files)."""

from __future__ import annotations

from typing import Any

from fleetgit.domain.fold import Ev, Rows, stored_row

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
    email TEXT,
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
        "email": d.get("email") or old.get("email"),
        "parent": d.get("parent") or old.get("parent"),
        "status": "registered",
        "current_task": None if new_life else old["current_task"],
        "registered_ms": e.ms if new_life else old["registered_ms"],
        "deregistered": 0,
        "reason": None,
        "last_pos": e.pos,
    }


def refusal(row: dict[str, Any] | None, event_type: str, actor: str | None) -> str | None:
    """Why `event_type` by `actor` cannot apply to the pilot `row` (None: it applies). The one
    rule for emit, which refuses it, and the fold, which ignores it:

    - `unknown`: no such pilot (it registers first);
    - `deregistered`: it has left the fleet (a sign of life after leaving changes nothing);
    - `not_self`: only the pilot itself reports its activity or leaves (a termination may
      also come from its parent)."""
    if event_type not in ("pilot_active", "pilot_deregistered", "pilot_terminated"):
        return None  # a registration, or what the fold keeps no state of
    if row is None:
        return "unknown"
    if row["deregistered"]:
        return "deregistered"
    allowed = {row["callsign"]}
    if event_type == "pilot_terminated" and row["parent"]:
        allowed.add(row["parent"])
    return None if actor in allowed else "not_self"


def refuses(rows: Rows, e: Ev) -> str | None:
    """`refusal` of `e` after the folded `rows` of its stream."""
    return refusal(stored_row(rows, "pilots"), e.type, e.actor)


def active(last_ms: int | None, deregistered: bool, at_ms: int, window_ms: int) -> bool:
    """Whether a pilot is active at `at_ms`: its last sign of life (its newest event before
    then) is at most `window_ms` old, and it has not deregistered. The one rule for the
    commands (at now) and for index.claims (at a takeover's point in total order): a sortie is
    taken over only from a pilot that is not active."""
    return last_ms is not None and at_ms - last_ms <= window_ms and not deregistered


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "pilots")
    for e in events:
        if e.type in ("pilot_registered", "pilot_spawned"):
            row = _registered(row, e)
            continue
        if row is None or refusal(row, e.type, e.actor) is not None:
            continue  # e.g. in another's name, or after leaving (another clone raced)
        if e.type == "pilot_active":
            row["status"] = e.data.get("status") or "active"
            row["current_task"] = e.data.get("current_task", row["current_task"])
        elif e.type in ("pilot_deregistered", "pilot_terminated"):
            row.update(deregistered=1, status="deregistered", reason=e.data.get("reason"))
        row["last_pos"] = e.pos
    return {"pilots": [row]} if row else {}
