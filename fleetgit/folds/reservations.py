"""Reservations: one row per (reservation, pattern)."""

from __future__ import annotations

from typing import Any

from fleetgit.durations import MAX_SECONDS
from fleetgit.folds import Ev, Rows
from fleetgit.patterns import can_name_file

KIND = "reservation"
KEY = "reservation_id"
TABLES = ("reservations", "reservation_conflicts", "reservation_terms")
# not resumable: the patterns, conflicts and terms are folded from the whole stream each time
# (a reservation's stream stays short: a grant, renewals, a release)
RESUMES = False
DDL = """
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT NOT NULL,
    pattern TEXT NOT NULL,
    holder TEXT NOT NULL,
    exclusive INTEGER NOT NULL,
    reason TEXT,
    granted_hlc INTEGER NOT NULL,
    granted_writer TEXT NOT NULL,
    granted_wseq INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    released INTEGER NOT NULL DEFAULT 0,
    released_ms INTEGER,
    released_by TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    last_pos INTEGER NOT NULL,
    is_file INTEGER NOT NULL DEFAULT 0, -- the grant says the pattern names a file: none below
    PRIMARY KEY (reservation_id, pattern)
);
CREATE INDEX IF NOT EXISTS reservations_live ON reservations (expires_ms) WHERE released = 0;
CREATE INDEX IF NOT EXISTS reservations_holder ON reservations (holder);
-- file_conflict events on a losing reservation's stream: announced once per pair
CREATE TABLE IF NOT EXISTS reservation_conflicts (
    reservation_id TEXT NOT NULL,
    other_reservation_id TEXT NOT NULL,
    PRIMARY KEY (reservation_id, other_reservation_id)
);
-- How long the reservation counts, as of each event that changed it (its grant, a renewal that
-- extended it, its release): what index.clashes needs to judge it at any point of total order
CREATE TABLE IF NOT EXISTS reservation_terms (
    reservation_id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    is_grant INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, hlc, writer, wseq)
);
CREATE INDEX IF NOT EXISTS reservation_terms_order ON reservation_terms (hlc, writer, wseq);
"""


def fold(events: list[Ev]) -> Rows:
    row: dict[str, Any] | None = None
    patterns: list[str] = []
    files: set[str] = set()
    conflicts: dict[str, dict[str, Any]] = {}
    terms: list[dict[str, Any]] = []
    for e in events:
        d = e.data
        if e.type == "file_conflict":
            other = d["other_reservation_id"]
            conflicts[other] = {
                "reservation_id": d["reservation_id"],
                "other_reservation_id": other,
            }
            continue
        if e.type == "file_reserved" and row is None:
            patterns = list(dict.fromkeys(p for p in d["patterns"] if isinstance(p, str) and p))
            named = d.get("file_patterns")
            files = {p for p in named if isinstance(p, str)} if isinstance(named, list) else set()
            row = {
                "reservation_id": d["reservation_id"],
                "holder": d["holder"],
                "exclusive": int(bool(d["exclusive"])),
                "reason": d.get("reason"),
                "granted_hlc": e.hlc,
                "granted_writer": e.writer,
                "granted_wseq": e.wseq,
                "expires_ms": _expiry(e),
                "released": 0,
                "released_ms": None,
                "released_by": None,
                "forced": 0,
                "last_pos": e.pos,
            }
            terms.append(_term(row, e, row["expires_ms"], grant=True))
            continue
        if row is None:
            continue  # a renewal or release whose grant has not arrived yet
        if e.type == "file_renewed" and not row["released"]:
            until = max(row["expires_ms"], _expiry(e))
            if until != row["expires_ms"]:
                terms.append(_term(row, e, until))
            row["expires_ms"] = until
        elif e.type == "file_released" and not row["released"]:
            row.update(
                released=1, released_ms=e.ms, released_by=e.actor, forced=int(bool(d.get("forced")))
            )
            terms.append(_term(row, e, min(row["expires_ms"], e.ms)))
        row["last_pos"] = max(row["last_pos"], e.pos)
    out: Rows = {"reservation_conflicts": list(conflicts.values()), "reservation_terms": terms}
    if row is not None:
        out["reservations"] = [
            {**row, "pattern": p, "is_file": int(p in files and can_name_file(p))} for p in patterns
        ]
    return out


def _term(row: dict[str, Any], e: Ev, until_ms: int, *, grant: bool = False) -> dict[str, Any]:
    """From event `e` on (in total order), the reservation counts until `until_ms`."""
    return {
        "reservation_id": row["reservation_id"],
        "hlc": e.hlc,
        "writer": e.writer,
        "wseq": e.wseq,
        "is_grant": int(grant),
        "until_ms": until_ms,
    }


def _expiry(e: Ev) -> int:
    """When a grant or renewal runs out. Appends are validated, but an event can reach a ledger
    some other way (an older fleetgit, a hand edit): a TTL past the limit is held to the limit
    (it still blocks, as its holder meant; `verify` reports it) rather than breaking the index,
    and fields from a newer version are never a reason to drop a grant."""
    ttl = e.data.get("ttl_seconds")
    seconds = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else MAX_SECONDS
    return e.ms + min(max(seconds, 0), MAX_SECONDS) * 1000
