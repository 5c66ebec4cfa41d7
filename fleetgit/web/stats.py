"""The dashboard's figures: read-only queries over the index's projections and events (no rule
is decided here). The charts: events per hour over the last day, sorties completed per pilot,
and the time each sortie spent blocked."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from fleetgit.domain.sorties.fold import UNBLOCKING
from fleetgit.domain.squawk import commands as squawk
from fleetgit.ledger import clock

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet

HOUR_MS = 3_600_000


def messages(fleet: Fleet, limit: int) -> list[dict[str, Any]]:
    """The newest messages of everybody, each with its recipients' read and ack state."""
    return squawk.newest(fleet, limit)


class HourCounts:
    """Events per hour, kept up to date by position: each read counts only the events that
    arrived since the last one (a busy day is 100,000 events, 10-20 ms to count again at every
    refresh of every dashboard). Positions never change, so the events after the last position
    counted are exactly the new ones, whatever hour they belong to; should the index be rebuilt
    under a different numbering (the event at that position is another), it counts again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pos = 0
        self._anchor: str | None = None  # the id of the event at _pos
        self._hours: dict[int, int] = {}

    def since(self, conn: sqlite3.Connection, first_hour: int) -> dict[int, int]:
        with self._lock:
            if self._pos:
                row = conn.execute("SELECT id FROM events WHERE pos = ?", (self._pos,)).fetchone()
                if row is None or row[0] != self._anchor:
                    self._pos, self._anchor, self._hours = 0, None, {}
            top = conn.execute("SELECT pos, id FROM events ORDER BY pos DESC LIMIT 1").fetchone()
            if top is not None and top[0] > self._pos:
                for hour, count in conn.execute(
                    "SELECT (hlc >> 16) / ? AS h, count(*) FROM events"
                    " WHERE pos > ? AND pos <= ? GROUP BY h",
                    (HOUR_MS, self._pos, top[0]),
                ):
                    self._hours[hour] = self._hours.get(hour, 0) + count
                self._pos, self._anchor = top
            for hour in [h for h in self._hours if h < first_hour]:
                del self._hours[hour]
            return dict(self._hours)


def charts(fleet: Fleet, now: int, hours: HourCounts | None = None) -> dict[str, Any]:
    conn = fleet.index.conn
    first_hour = now // HOUR_MS - 23
    per_hour = (hours or HourCounts()).since(conn, first_hour)
    completed = conn.execute(
        "SELECT coalesce(assignee, '-'), count(*) FROM sorties WHERE status = 'completed'"
        " GROUP BY assignee ORDER BY count(*) DESC, assignee LIMIT 20"
    ).fetchall()
    blocked_since: dict[str, int] = {}
    blocked_ms: dict[str, int] = {}
    types = ("sortie_blocked", *UNBLOCKING)
    marks = ",".join("?" * len(types))
    for stream, etype, hlc in conn.execute(
        f"SELECT stream, type, hlc FROM events WHERE type IN ({marks}) ORDER BY hlc, writer, wseq",
        types,
    ):
        at = clock.hlc_ms(hlc)
        if etype == "sortie_blocked":
            blocked_since.setdefault(stream, at)
        elif stream in blocked_since:
            blocked_ms[stream] = blocked_ms.get(stream, 0) + at - blocked_since.pop(stream)
    for stream, since in blocked_since.items():  # still blocked
        blocked_ms[stream] = blocked_ms.get(stream, 0) + max(0, now - since)
    top = sorted(blocked_ms.items(), key=lambda kv: -kv[1])[:10]
    return {
        "events_per_hour": [
            {"hour": clock.iso_ms(h * HOUR_MS), "events": per_hour.get(h, 0)}
            for h in range(first_hour, first_hour + 24)
        ],
        "completed_per_pilot": [{"pilot": p, "sorties": n} for p, n in completed],
        "blocked_seconds": [
            {"sortie_id": stream.removeprefix("sortie/"), "seconds": ms // 1000}
            for stream, ms in top
        ],
    }
