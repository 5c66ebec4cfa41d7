"""Reservations: one row per (reservation, pattern).

A reservation is its holder's (`refusal`): it is granted once, by the pilot it names as holder,
and renewed or released by that pilot. A release by another pilot counts only under the force
rule (`forcible`): at the release's point in total order its holder had been silent for the
limit, or had deregistered. That needs other streams (the holder's last event, its pilot
stream), so this fold lists such releases in `reservation_forcings` and applies the ones
index.forcing judged forcible (`accepted`), the same way in every clone and every rebuild.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fleetgit.domain.fold import Ev, Key, Rows
from fleetgit.guard.patterns import can_name_file
from fleetgit.ledger.durations import MAX_SECONDS

KIND = "reservation"
KEY = "reservation_id"
TABLES = ("reservations", "reservation_conflicts", "reservation_terms", "reservation_forcings")
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
-- Releases by a pilot other than the holder: they count only when index.forcing judges them
-- forcible (the holder silent for the limit, or deregistered, at that point of total order)
CREATE TABLE IF NOT EXISTS reservation_forcings (
    reservation_id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    holder TEXT NOT NULL,
    PRIMARY KEY (reservation_id, hlc, writer, wseq)
);
CREATE INDEX IF NOT EXISTS reservation_forcings_holder ON reservation_forcings (holder);
"""


def refusal(
    row: dict[str, Any] | None, event_type: str, data: dict[str, Any], actor: str | None
) -> str | None:
    """Why `event_type` by `actor` cannot apply to the reservation `row` (None: it applies).
    The one rule for emit, which refuses it, and the fold, which ignores it:

    - `exists`: a reservation is granted once;
    - `not_holder`: it is granted to, renewed and released by its holder only (a release by
      another pilot is `forced`);
    - `unknown`: no grant to renew or release;
    - `released`: released already: it is over.
    - `forced`: a release by another pilot: it counts only if `forcible` at its point."""
    if event_type == "file_reserved":
        if row is not None:
            return "exists"
        return None if isinstance(actor, str) and data.get("holder") == actor else "not_holder"
    if event_type not in ("file_renewed", "file_released"):
        return None
    if row is None:
        return "unknown"
    if row["released"]:
        return "released"
    if actor != row["holder"]:
        return "forced" if event_type == "file_released" else "not_holder"
    return None


def refuses(rows: Rows, e: Ev) -> str | None:
    """`refusal` of `e` after the folded `rows` of its stream."""
    found = rows.get("reservations")
    return refusal(found[0] if found else None, e.type, e.data, e.actor)


def forcible(last_seen_ms: int | None, deregistered: bool, at_ms: int, limit_ms: int) -> bool:
    """The force rule: another pilot may release a reservation at `at_ms` when its holder has
    deregistered, or was last seen (its newest event before then) at least `limit_ms` before.
    The limit is the smaller of force_release_after_seconds (`release --force`) and
    pilot_active_window_seconds (`sortie claim` taking a silent pilot's sortie over, with the
    files its claim reserved)."""
    return deregistered or last_seen_ms is None or at_ms - last_seen_ms >= limit_ms


def fold(events: list[Ev], accepted: Collection[Key] = ()) -> Rows:
    """`accepted`: the releases by other pilots that index.forcing judged forcible."""
    row: dict[str, Any] | None = None
    patterns: list[str] = []
    files: set[str] = set()
    conflicts: dict[str, dict[str, Any]] = {}
    terms: list[dict[str, Any]] = []
    forcings: list[dict[str, Any]] = []
    for e in events:
        d = e.data
        if e.type == "file_conflict":
            other = d["other_reservation_id"]
            conflicts[other] = {
                "reservation_id": d["reservation_id"],
                "other_reservation_id": other,
            }
            continue
        if e.type == "file_released" and row is not None and e.actor != row["holder"]:
            # listed whatever the state, so what index.forcing judges never depends on a verdict
            forcings.append({**_term(row, e, 0), "holder": row["holder"]})
        why = refusal(row, e.type, d, e.actor)
        if why == "forced" and e.order in accepted:
            why = None
        if why is not None:
            continue  # in another's name, or a race lost in another clone: it changes nothing
        if e.type == "file_reserved":
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
            continue  # not a type of this fold
        if e.type == "file_renewed":
            until = max(row["expires_ms"], _expiry(e))
            if until != row["expires_ms"]:
                terms.append(_term(row, e, until))
            row["expires_ms"] = until
        elif e.type == "file_released":
            forced = int(e.actor != row["holder"])
            row.update(released=1, released_ms=e.ms, released_by=e.actor, forced=forced)
            terms.append(_term(row, e, min(row["expires_ms"], e.ms)))
        row["last_pos"] = max(row["last_pos"], e.pos)
    out: Rows = {
        "reservation_conflicts": list(conflicts.values()),
        "reservation_terms": terms,
        "reservation_forcings": [
            {k: f[k] for k in ("reservation_id", "hlc", "writer", "wseq", "holder")}
            for f in forcings
        ],
    }
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
