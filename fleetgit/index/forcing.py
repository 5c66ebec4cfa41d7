"""Releases by another pilot than the holder, judged by the force rule: which ones count.

The reservations fold lists each release of a reservation written by someone other than its
holder (`reservation_forcings`). Whether it counts depends on other streams: at the release's
point in total order, had the holder deregistered (its pilot stream, folded up to there), or been
silent for the limit (its newest event of any kind before the release)? Both are read from the
events alone, up to that point, so the verdict is the same in every clone and every rebuild,
whatever order the events arrived in. The verdicts go to `reservation_forced`; the fold applies
the forcible ones, and a stream whose verdicts changed is folded again.

A verdict can change only when an event arrives by the holder or on its pilot stream (or the
release itself is new), so a catch-up judges only those; a change of the limit (the
configuration) judges them all again (`configure`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fleetgit.domain.fold import Key
from fleetgit.domain.pilots import fold as pilots
from fleetgit.domain.reservations.fold import forcible
from fleetgit.index import streams
from fleetgit.index import verdicts as stored
from fleetgit.ledger import clock
from fleetgit.ledger.config import Config

TABLES = ("reservation_forced",)
DDL = stored.table(
    "reservation_forced",
    "reservation_id",
    "Verdicts on releases by another pilot than the holder (index.forcing): ok = forcible",
)

LIMIT_KEY = "force_release_limit_ms"
# after a reservation is folded again: its verdicts on releases it no longer lists (an earlier
# grant arrived: the release is its holder's now) are forgotten
FORGET = stored.forget("reservation_forced", "reservation_id", "reservation_forcings")


def limit_of(config: Config) -> int:
    """The force rule's silence, in ms: see domain.reservations.fold.forcible."""
    seconds = min(config.force_release_after_seconds, config.pilot_active_window_seconds)
    return seconds * 1000


def configured(conn: sqlite3.Connection) -> int | None:
    """The limit a Fleet set (`projections.configure`), if any."""
    return stored.setting(conn, LIMIT_KEY)


def stored_limit(conn: sqlite3.Connection) -> int:
    """The limit the verdicts were judged with (the defaults' until a Fleet sets it)."""
    found = configured(conn)
    return limit_of(Config()) if found is None else found


def accepted(conn: sqlite3.Connection, rids: list[str]) -> dict[str, set[Key]]:
    """The forcible releases of each of these reservations."""
    return stored.accepted(conn, "reservation_forced", "reservation_id", rids)


def holder_state(
    conn: sqlite3.Connection, holder: str, at: Key, upto_pos: int | None = None
) -> tuple[int | None, bool]:
    """(the holder's last sign of life in ms, whether it had deregistered) just before `at` in
    total order; with `upto_pos`, among the events up to that position only. A withdrawn event
    still counts: only its own actor can withdraw it, so it proves that actor was alive then."""
    cond, extra = ("", ()) if upto_pos is None else (" AND pos <= ?", (upto_pos,))
    row = conn.execute(
        "SELECT max(hlc) FROM events WHERE actor = ? AND hlc <= ?"
        f" AND (hlc, writer, wseq) < (?, ?, ?){cond}",
        (holder, at[0], *at, *extra),
    ).fetchone()
    last = None if row[0] is None else clock.hlc_ms(row[0])
    evs = streams.stream_events(conn, f"pilot/{holder}", upto_pos, before=at)
    folded = pilots.fold(evs).get("pilots")
    return last, bool(folded and folded[0]["deregistered"])


_ALL = "SELECT reservation_id, hlc, writer, wseq, holder FROM reservation_forcings"
_TOUCHED = f"""
{_ALL} f WHERE NOT EXISTS (SELECT 1 FROM reservation_forced v WHERE v.reservation_id
        = f.reservation_id AND v.hlc = f.hlc AND v.writer = f.writer AND v.wseq = f.wseq)
    OR f.holder IN (SELECT actor FROM events WHERE pos > :pos
        UNION SELECT substr(stream, 7) FROM events
        WHERE pos > :pos AND stream >= 'pilot/' AND stream < 'pilot0')
"""


def judge(
    conn: sqlite3.Connection, after_pos: int | None, upto_pos: int | None = None
) -> tuple[list[str], Key | None]:
    """Judge the releases that events after `after_pos` can have changed (None: all of them).
    Returns the reservations whose forcible releases changed, and the earliest such release
    in total order (where the void reservations must be judged again from)."""
    # a full pass compares with the verdicts from before it (cleared first, they read as 0 and a
    # release that stopped being forcible went unnoticed: its reservation stayed released)
    before = stored.Before(conn, "reservation_forced", "reservation_id", after_pos is None)
    if after_pos is None:
        found = conn.execute(_ALL).fetchall()
    else:
        found = conn.execute(_TOUCHED, {"pos": after_pos}).fetchall()
    if not found:
        return [], None
    limit = stored_limit(conn)  # read only when there is something to judge (most appends: not)
    changed: dict[str, Key] = {}
    verdicts: list[tuple[Any, ...]] = []
    for rid, hlc, writer, wseq, holder in found:
        key = (hlc, writer, wseq)
        last, gone = holder_state(conn, holder, key, upto_pos)
        ok = int(forcible(last, gone, clock.hlc_ms(hlc), limit))
        if ok != before.ok(rid, key):
            changed[rid] = min(changed.get(rid, key), key)
        verdicts.append((rid, hlc, writer, wseq, ok))
    conn.executemany("INSERT OR REPLACE INTO reservation_forced VALUES (?, ?, ?, ?, ?)", verdicts)
    return sorted(changed), min(changed.values(), default=None)
