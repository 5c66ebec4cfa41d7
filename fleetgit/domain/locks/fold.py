"""Locks: named, with a TTL. An acquisition counts only if the lock was free at that moment of
the total order (released, expired by the event's own time, or never taken), so two clones that
both took a free lock agree that the first in total order holds it. Its holder taking it again
extends it to that TTL from then, and never shortens it (like renewing a reservation).

Only the pilot named as holder takes or releases it (the actor of the event is the holder, as the
commands write it), and a TTL is held to the limit of every duration (366 days): an event from
another clone or a hand edit cannot take a lock for someone else or for ever."""

from __future__ import annotations

from fleetgit.domain.fold import Ev, Rows, stored_row
from fleetgit.ledger.durations import MAX_SECONDS

KIND = "lock"
KEY = "lock_key"
TABLES = ("locks",)
RESUMES = True
DDL = """
CREATE TABLE IF NOT EXISTS locks (
    lock_key TEXT PRIMARY KEY,
    holder TEXT,
    acquired_ms INTEGER,
    expires_ms INTEGER,
    released INTEGER NOT NULL DEFAULT 1,
    timeouts INTEGER NOT NULL DEFAULT 0,
    last_pos INTEGER NOT NULL
);
"""


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    row = stored_row(start, "locks")
    for e in events:
        d = e.data
        if e.type in ("lock_acquired", "lock_released") and not _well_formed(e):
            continue  # only another clone or version could write it: it changes nothing
        if row is None:
            row = {
                "lock_key": d["lock_key"],
                "holder": None,
                "acquired_ms": None,
                "expires_ms": None,
                "released": 1,
                "timeouts": 0,
                "last_pos": e.pos,
            }
        free = row["released"] or (row["expires_ms"] or 0) <= e.ms
        ttl = min(max(d.get("ttl_seconds", 0), 0), MAX_SECONDS) if e.type == "lock_acquired" else 0
        expires = e.ms + ttl * 1000
        if e.type == "lock_acquired" and free:
            row.update(holder=d["holder"], acquired_ms=e.ms, released=0, expires_ms=expires)
        elif e.type == "lock_acquired" and row["holder"] == d["holder"]:
            row["expires_ms"] = max(row["expires_ms"], expires)  # extends, never shortens
        elif e.type == "lock_released" and not row["released"] and row["holder"] == d["holder"]:
            row["released"] = 1
        elif e.type == "lock_timeout":
            row["timeouts"] += 1
        row["last_pos"] = e.pos
    return {"locks": [row]} if row else {}


def refuses(rows: Rows, e: Ev) -> str | None:
    """Why `e` cannot apply after the folded `rows` of its stream (None: it applies), the rule
    the fold applies: `not_holder` (in another's name, or releasing a lock someone else holds),
    `held` (taken while another pilot holds it), `not_held` (nothing to release)."""
    if e.type not in ("lock_acquired", "lock_released"):
        return None
    if not _well_formed(e):
        return "not_holder"
    row = stored_row(rows, "locks")
    held = row is not None and not row["released"] and (row["expires_ms"] or 0) > e.ms
    if e.type == "lock_acquired":
        return "held" if held and row is not None and row["holder"] != e.data["holder"] else None
    if row is None or not held:
        return "not_held"
    return "not_holder" if row["holder"] != e.data["holder"] else None


def _well_formed(e: Ev) -> bool:
    """A holder that is a name (and a whole number of seconds to hold it), as the catalogue
    requires, and the event's own actor: nobody takes or releases a lock in another's name.
    What a fold compares must be a string: a resumed fold reads the holder back from the
    index, where a number would come back as text."""
    ttl = e.data.get("ttl_seconds")
    ttl_ok = e.type != "lock_acquired" or (isinstance(ttl, int) and not isinstance(ttl, bool))
    return isinstance(e.data.get("holder"), str) and ttl_ok and e.data["holder"] == e.actor
