"""The figures of `fleetgit stats`, each one SQL query over a session (see docs/analytics.md).

The scope (`--since`, `--pilot`, `--mission`) narrows the events: since a time in total order
(the HLC's milliseconds, as `events --since`), written by a pilot (`actor`), of a mission (its
own stream, its sorties' and their work orders'). Figures from the projections (current state)
take the same scope by their own columns: sorties by mission, assignee and an event in the scope;
reservations and clashes by holder and grant time; acknowledgements awaited by recipient and send
time. Times are in seconds; percentiles interpolate linearly (DuckDB's quantile_cont, Python's
statistics.quantiles(method="inclusive")).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fleetgit.analytics.session import Session
from fleetgit.ledger import clock

TABLES = ("sorties", "work_orders", "reservations", "reservation_lost", "messages", "recipients")
TOP = 10
ENDS_BLOCK = ("sortie_resumed", "sortie_completed", "sortie_cancelled", "sortie_unclaimed")


class Scope(NamedTuple):
    since_ms: int | None = None
    pilot: str | None = None
    mission: str | None = None


def _scoped(scope: Scope) -> tuple[str, list[Any]]:
    """A CTE `scoped`: the events in the scope."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if scope.since_ms is not None:
        where.append("hlc >= ?")
        params.append(scope.since_ms << 16)
    if scope.pilot is not None:
        where.append("actor = ?")
        params.append(scope.pilot)
    if scope.mission is not None:
        where.append(
            "(stream = 'mission/' || ? OR stream IN (SELECT 'sortie/' || sortie_id FROM sorties"
            " WHERE mission_id = ?) OR stream IN (SELECT 'workorder/' || w.work_order_id FROM"
            " work_orders w JOIN sorties s USING (sortie_id) WHERE s.mission_id = ?))"
        )
        params += [scope.mission] * 3
    return f"WITH scoped AS (SELECT * FROM events WHERE {' AND '.join(where)}) ", params


def _rows(session: Session, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    return session.conn.execute(sql, params).fetchall()


def gather(session: Session, scope: Scope, now_ms: int | None = None) -> dict[str, Any]:
    now = clock.now_ms() if now_ms is None else now_ms
    cte, p = _scoped(scope)
    out: dict[str, Any] = {
        "scope": {
            "since": None if scope.since_ms is None else clock.iso_ms(scope.since_ms),
            "pilot": scope.pilot,
            "mission": scope.mission,
        },
        "now": clock.iso_ms(now),
    }
    ((total,),) = _rows(session, cte + "SELECT count(*) FROM scoped", p)
    per_hour = _rows(
        session,
        cte + "SELECT date_trunc('hour', time) AS h, count(*) FROM scoped GROUP BY h ORDER BY h",
        p,
    )
    per_type = _rows(
        session,
        cte + "SELECT type, count(*) AS n FROM scoped GROUP BY type ORDER BY n DESC, type",
        p,
    )
    per_pilot = _rows(
        session,
        cte + "SELECT actor, count(*) AS n FROM scoped GROUP BY actor ORDER BY n DESC, actor",
        p,
    )
    out["events"] = {
        "total": total,
        "per_hour": [{"hour": h.strftime("%Y-%m-%dT%H:00Z"), "events": n} for h, n in per_hour],
        "per_type": [{"type": t, "events": n} for t, n in per_type],
        "per_pilot": [{"pilot": a, "events": n} for a, n in per_pilot],
    }
    out["sorties"] = {
        "by_status": _by_status(session, scope, cte, p),
        "claim_to_completion": _claim_to_completion(session, cte, p),
        "blocked": _blocked(session, cte, p, now),
    }
    out["reservations"] = _reservations(session, scope)
    out["messages"] = _awaiting(session, scope)
    return out


def _by_status(session: Session, scope: Scope, cte: str, p: list[Any]) -> dict[str, int]:
    where, params = ["TRUE"], list(p)
    if scope.mission is not None:
        where.append("mission_id = ?")
        params.append(scope.mission)
    if scope.pilot is not None:
        where.append("assignee = ?")
        params.append(scope.pilot)
    if scope.since_ms is not None:
        where.append("'sortie/' || sortie_id IN (SELECT stream FROM scoped)")
    rows = _rows(
        session,
        cte + f"SELECT status, count(*) FROM sorties WHERE {' AND '.join(where)}"
        " GROUP BY status ORDER BY status",
        params,
    )
    return {status: n for status, n in rows}


_CLAIMS = """
, marks AS (
    SELECT stream, hlc, writer, wseq, type,
        last_value(CASE WHEN type = 'sortie_assigned' THEN hlc END IGNORE NULLS) OVER w AS claimed,
        last_value(CASE WHEN type = 'sortie_assigned' THEN data ->> 'assignee' END IGNORE NULLS)
            OVER w AS assignee
    FROM events WHERE type IN ('sortie_assigned', 'sortie_completed')
    WINDOW w AS (PARTITION BY stream ORDER BY hlc, writer, wseq
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), spans AS (
    SELECT m.stream, ((m.hlc >> 16) - (m.claimed >> 16)) / 1000.0 AS seconds, m.assignee
    FROM marks m SEMI JOIN scoped s ON s.stream = m.stream AND s.hlc = m.hlc
        AND s.writer = m.writer AND s.wseq = m.wseq
    WHERE m.type = 'sortie_completed' AND m.claimed IS NOT NULL
)
"""


def _claim_to_completion(session: Session, cte: str, p: list[Any]) -> dict[str, Any]:
    """From the last claim (sortie_assigned) before each completion in the scope."""
    ((n, median, p90),) = _rows(
        session,
        cte + _CLAIMS + "SELECT count(*), quantile_cont(seconds, 0.5),"
        " quantile_cont(seconds, 0.9) FROM spans",
        p,
    )
    by_pilot = _rows(
        session,
        cte + _CLAIMS + "SELECT assignee, count(*), quantile_cont(seconds, 0.5) AS m FROM spans"
        " GROUP BY assignee ORDER BY m, assignee",
        p,
    )
    return {
        "completed": n,
        "median_seconds": median,
        "p90_seconds": p90,
        "by_pilot": [{"pilot": who, "completed": k, "median_seconds": m} for who, k, m in by_pilot],
    }


def _blocked(session: Session, cte: str, p: list[Any], now_ms: int) -> dict[str, Any]:
    """Each time a sortie was blocked (a sortie_blocked that is not already blocked), until the
    next sortie_resumed, _completed, _cancelled or _unclaimed, or now when none came yet."""
    marks = ", ".join(f"'{t}'" for t in ENDS_BLOCK)
    sql = (
        cte
        + f"""
, marks AS (
    SELECT stream, hlc, writer, wseq, type,
        lag(type) OVER w AS before,
        min(CASE WHEN type != 'sortie_blocked' THEN hlc END) OVER (w ROWS BETWEEN 1 FOLLOWING
            AND UNBOUNDED FOLLOWING) AS ended
    FROM events WHERE type IN ('sortie_blocked', {marks})
    WINDOW w AS (PARTITION BY stream ORDER BY hlc, writer, wseq)
), spans AS (
    SELECT m.stream, m.ended IS NULL AS open,
        ((coalesce(m.ended >> 16, ?)) - (m.hlc >> 16)) / 1000.0 AS seconds
    FROM marks m SEMI JOIN scoped s ON s.stream = m.stream AND s.hlc = m.hlc
        AND s.writer = m.writer AND s.wseq = m.wseq
    WHERE m.type = 'sortie_blocked' AND m.before IS DISTINCT FROM 'sortie_blocked'
)
SELECT count(*), count(DISTINCT stream), coalesce(sum(seconds), 0),
    count(*) FILTER (WHERE open), quantile_cont(seconds, 0.5) FROM spans
"""
    )
    ((times, sorties, seconds, still, median),) = _rows(session, sql, [*p, now_ms])
    return {
        "times": times,
        "sorties": sorties,
        "total_seconds": float(seconds),
        "median_seconds": median,
        "still_blocked": still,
    }


def _reservations(session: Session, scope: Scope) -> dict[str, Any]:
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if scope.pilot is not None:
        where.append("holder = ?")
        params.append(scope.pilot)
    if scope.since_ms is not None:
        where.append("granted_hlc >= ?")
        params.append(scope.since_ms << 16)
    cond = " AND ".join(where)
    top = _rows(
        session,
        f"SELECT pattern, count(*) AS n, count(DISTINCT holder) FROM reservations WHERE {cond}"
        f" GROUP BY pattern ORDER BY n DESC, pattern LIMIT {TOP}",
        params,
    )
    ((count,),) = _rows(session, f"SELECT count(DISTINCT reservation_id) FROM reservations"
                        f" WHERE {cond}", params)  # fmt: skip
    lost_where = ["TRUE"]
    lost_params: list[Any] = []
    if scope.pilot is not None:
        lost_where.append("(r.holder = ? OR w.holder = ?)")
        lost_params += [scope.pilot, scope.pilot]
    if scope.since_ms is not None:
        lost_where.append("l.hlc >= ?")
        lost_params.append(scope.since_ms << 16)
    clashes = _rows(
        session,
        "SELECT l.reservation_id, any_value(r.holder), l.pattern, l.winner_id,"
        " any_value(w.holder), l.winner_pattern, l.hlc FROM reservation_lost l"
        " LEFT JOIN reservations r ON r.reservation_id = l.reservation_id"
        " LEFT JOIN reservations w ON w.reservation_id = l.winner_id"
        f" WHERE {' AND '.join(lost_where)} GROUP BY ALL ORDER BY l.hlc, l.reservation_id",
        lost_params,
    )
    return {
        "reservations": count,
        "top_patterns": [{"pattern": pat, "reservations": n, "holders": h} for pat, n, h in top],
        "clashes": [
            {
                "lost": rid,
                "holder": holder,
                "pattern": pat,
                "winner": wid,
                "winner_holder": wholder,
                "winner_pattern": wpat,
            }
            for rid, holder, pat, wid, wholder, wpat, _ in clashes
        ],
    }


def _awaiting(session: Session, scope: Scope) -> dict[str, Any]:
    """Recipients of a message that asks for an acknowledgement, who have not given it."""
    where = ["m.ack_required = 1", "r.acked_ms IS NULL"]
    params: list[Any] = []
    if scope.pilot is not None:
        where.append("r.callsign = ?")
        params.append(scope.pilot)
    if scope.since_ms is not None:
        where.append("m.sent_hlc >= ?")
        params.append(scope.since_ms << 16)
    rows = _rows(
        session,
        "SELECT r.callsign, count(*) AS n, min(m.sent_hlc) FROM recipients r JOIN messages m"
        f" USING (message_id) WHERE {' AND '.join(where)} GROUP BY r.callsign"
        " ORDER BY n DESC, r.callsign",
        params,
    )
    return {
        "awaiting_ack": sum(n for _, n, _ in rows),
        "by_recipient": [
            {"pilot": who, "messages": n, "oldest": clock.iso_ms(clock.hlc_ms(first))}
            for who, n, first in rows
        ],
    }


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, v * len(SPARKS) // (top + 1))] if v else " "
                   for v in values)  # fmt: skip


def bar(value: float, top: float, width: int = 24) -> str:
    if top <= 0:
        return ""
    cells = value * width / top
    return "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
