"""The dashboard's figures: read-only queries over the index's projections and events (no rule
is decided here). The charts: events per hour over the last day, sorties completed per pilot,
and the time each sortie spent blocked."""

from __future__ import annotations

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


def charts(fleet: Fleet, now: int) -> dict[str, Any]:
    conn = fleet.index.conn
    first_hour = now // HOUR_MS - 23
    per_hour = dict(
        conn.execute(
            "SELECT (hlc >> 16) / ? AS h, count(*) FROM events WHERE hlc >= ? GROUP BY h",
            (HOUR_MS, (first_hour * HOUR_MS) << 16),
        ).fetchall()
    )
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
