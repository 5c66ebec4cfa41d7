"""The figures of `fleetgit stats` (see docs/analytics.md).

The scope (`--since`, `--pilot`, `--mission`) narrows the events: since a time in total order
(the HLC's milliseconds, as `events --since`), written by a pilot (`actor`), of a mission (its
own stream, its sorties' and their work orders'). Figures from the projections (current state)
take the same scope by their own columns: sorties by mission, assignee and an event in the scope;
reservations and clashes by holder and grant time; acknowledgements awaited by recipient and send
time. Times are in seconds; percentiles interpolate linearly (DuckDB's quantile_cont, Python's
statistics.quantiles(method="inclusive")).

What the events say is asked of DuckDB (the columnar copy); what the projections say, of the
SQLite index directly (GROUP BYs on its indexes): copying a projection of 100,000 rows into
DuckDB would cost more than the whole summary.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from fleetgit.analytics.session import Session
from fleetgit.domain.sorties.fold import UNBLOCKING
from fleetgit.ledger import clock

TABLES: tuple[str, ...] = ()  # no projection is copied: see the module's doc
TOP = 10


class Scope(NamedTuple):
    since_ms: int | None = None
    pilot: str | None = None
    mission: str | None = None


def _condition(session: Session, scope: Scope) -> tuple[str, list[Any]]:
    """The events in the scope, as a condition on the columns of `events`."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if scope.since_ms is not None:
        where.append("hlc >= ?")
        params.append(clock.make_hlc(scope.since_ms))
    if scope.pilot is not None:
        where.append("actor = ?")
        params.append(scope.pilot)
    if scope.mission is not None:
        assert session.index is not None
        streams = [f"mission/{scope.mission}"] + [
            f"{kind}/{name}"
            for kind, name in session.index.execute(
                "SELECT 'sortie', sortie_id FROM sorties WHERE mission_id = ?1 UNION ALL"
                " SELECT 'workorder', w.work_order_id FROM work_orders w JOIN sorties s"
                " ON s.sortie_id = w.sortie_id WHERE s.mission_id = ?1",
                (scope.mission,),
            )
        ]
        where.append("list_contains(?, stream)")
        params.append(streams)
    return " AND ".join(where), params


def _rows(session: Session, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    return session.conn.execute(sql, params).fetchall()


def _index(session: Session, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    assert session.index is not None
    return list(session.index.execute(sql, params).fetchall())


def gather(session: Session, scope: Scope, now_ms: int | None = None) -> dict[str, Any]:
    now = clock.now_ms() if now_ms is None else now_ms
    cond, p = _condition(session, scope)
    out: dict[str, Any] = {
        "scope": {
            "since": None if scope.since_ms is None else clock.iso_ms(scope.since_ms),
            "pilot": scope.pilot,
            "mission": scope.mission,
        },
        "now": clock.iso_ms(now),
    }
    # the whole history: a view (nothing copied); a narrower scope: its rows, once
    kind = "TABLE" if p else "VIEW"
    session.conn.execute(
        f"CREATE TEMP {kind} scoped AS SELECT stream, type, actor, time FROM events WHERE {cond}",
        p,
    )
    ((total,),) = _rows(session, "SELECT count(*) FROM scoped", [])
    per_hour = _rows(
        session,
        "SELECT date_trunc('hour', time) AS h, count(*) FROM scoped GROUP BY h ORDER BY h",
        [],
    )
    per_type = _rows(
        session, "SELECT type, count(*) AS n FROM scoped GROUP BY type ORDER BY n DESC, type", []
    )
    per_pilot = _rows(
        session, "SELECT actor, count(*) AS n FROM scoped GROUP BY actor ORDER BY n DESC, actor", []
    )
    out["events"] = {
        "total": total,
        "per_hour": [{"hour": h.strftime("%Y-%m-%dT%H:00Z"), "events": n} for h, n in per_hour],
        "per_type": [{"type": t, "events": n} for t, n in per_type],
        "per_pilot": [{"pilot": a, "events": n} for a, n in per_pilot],
    }
    _marks(session)
    out["sorties"] = {
        "by_status": _by_status(session, scope),
        "claim_to_completion": _claim_to_completion(session, cond, p),
        "blocked": _blocked(session, cond, p, now),
    }
    out["reservations"] = _reservations(session, scope)
    out["messages"] = _awaiting(session, scope)
    return out


def _by_status(session: Session, scope: Scope) -> dict[str, int]:
    where: list[str] = ["1"]
    params: list[Any] = []
    if scope.mission is not None:
        where.append("mission_id = ?")
        params.append(scope.mission)
    if scope.pilot is not None:
        where.append("assignee = ?")
        params.append(scope.pilot)
    if scope.since_ms is not None:  # the sorties with an event in the scope
        touched = _rows(
            session,
            "SELECT DISTINCT substr(stream, 8) FROM scoped WHERE starts_with(stream, 'sortie/')",
            [],
        )
        where.append("sortie_id IN (SELECT value FROM json_each(?))")
        params.append(orjson.dumps([s for (s,) in touched]).decode())
    rows = _index(
        session,
        f"SELECT status, count(*) FROM sorties WHERE {' AND '.join(where)}"
        " GROUP BY status ORDER BY status",
        params,
    )
    return {status: n for status, n in rows}


# One pass over the sorties' claims, completions, blocks and what ends a block, in total order
# per sortie: for each event, the last claim before it (time and assignee), the last block or
# block-ending event before it, and the first block-ending event after it.
_MARKS = """
CREATE TEMP TABLE marks AS
SELECT stream, hlc, writer, wseq, actor, type,
    last_value(CASE WHEN type = 'sortie_assigned' THEN hlc END IGNORE NULLS) OVER w AS claimed,
    last_value(CASE WHEN type = 'sortie_assigned' THEN data ->> 'assignee' END IGNORE NULLS)
        OVER w AS assignee,
    last_value(CASE WHEN type IN ('sortie_blocked', {ends}) THEN type END IGNORE NULLS)
        OVER w AS before,
    min(CASE WHEN type IN ({ends}) THEN hlc END) OVER (PARTITION BY stream
        ORDER BY hlc, writer, wseq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS ended
FROM events WHERE type IN ('sortie_assigned', 'sortie_completed', 'sortie_blocked', {ends})
WINDOW w AS (PARTITION BY stream ORDER BY hlc, writer, wseq
    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
"""


def _marks(session: Session) -> None:
    ends = ", ".join(f"'{t}'" for t in UNBLOCKING)
    session.conn.execute(_MARKS.format(ends=ends))


def _claim_to_completion(session: Session, cond: str, p: list[Any]) -> dict[str, Any]:
    """From the last claim (sortie_assigned) before each completion in the scope."""
    session.conn.execute(
        "CREATE TEMP TABLE spans AS SELECT ((hlc >> 16) - (claimed >> 16)) / 1000.0 AS seconds,"
        " assignee FROM marks WHERE type = 'sortie_completed' AND claimed IS NOT NULL"
        f" AND {cond}",
        p,
    )
    ((n, median, p90),) = _rows(
        session,
        "SELECT count(*), quantile_cont(seconds, 0.5), quantile_cont(seconds, 0.9) FROM spans",
        [],
    )
    by_pilot = _rows(
        session,
        "SELECT assignee, count(*), quantile_cont(seconds, 0.5) AS m FROM spans"
        " GROUP BY assignee ORDER BY m, assignee",
        [],
    )
    return {
        "completed": n,
        "median_seconds": median,
        "p90_seconds": p90,
        "by_pilot": [{"pilot": who, "completed": k, "median_seconds": m} for who, k, m in by_pilot],
    }


def _blocked(session: Session, cond: str, p: list[Any], now_ms: int) -> dict[str, Any]:
    """Each time a sortie was blocked (a sortie_blocked that is not already blocked), until the
    next sortie_resumed, _completed, _cancelled or _unclaimed, or now when none came yet."""
    sql = f"""
WITH spans AS (
    SELECT stream, ended IS NULL AS open,
        (coalesce(ended >> 16, ?) - (hlc >> 16)) / 1000.0 AS seconds
    FROM marks
    WHERE type = 'sortie_blocked' AND before IS DISTINCT FROM 'sortie_blocked' AND {cond}
)
SELECT count(*), count(DISTINCT stream), coalesce(sum(seconds), 0),
    count(*) FILTER (WHERE open), quantile_cont(seconds, 0.5) FROM spans
"""
    ((times, sorties, seconds, still, median),) = _rows(session, sql, [now_ms, *p])
    return {
        "times": times,
        "sorties": sorties,
        "total_seconds": float(seconds),
        "median_seconds": median,
        "still_blocked": still,
    }


def _reservations(session: Session, scope: Scope) -> dict[str, Any]:
    where: list[str] = ["1"]
    params: list[Any] = []
    if scope.pilot is not None:
        where.append("holder = ?")
        params.append(scope.pilot)
    if scope.since_ms is not None:
        where.append("granted_hlc >= ?")
        params.append(clock.make_hlc(scope.since_ms))
    cond = " AND ".join(where)
    top = _index(
        session,
        f"SELECT pattern, count(*) AS n, count(DISTINCT holder) FROM reservations WHERE {cond}"
        f" GROUP BY pattern ORDER BY n DESC, pattern LIMIT {TOP}",
        params,
    )
    ((count,),) = _index(
        session, f"SELECT count(DISTINCT reservation_id) FROM reservations WHERE {cond}", params
    )
    lost_where = ["1"]
    lost_params: list[Any] = []
    if scope.pilot is not None:
        lost_where.append("(r.holder = ? OR w.holder = ?)")
        lost_params += [scope.pilot, scope.pilot]
    if scope.since_ms is not None:
        lost_where.append("l.hlc >= ?")
        lost_params.append(clock.make_hlc(scope.since_ms))
    clashes = _index(
        session,
        "SELECT l.reservation_id, r.holder, l.pattern, l.winner_id, w.holder, l.winner_pattern"
        " FROM reservation_lost l"
        " LEFT JOIN (SELECT DISTINCT reservation_id, holder FROM reservations) r"
        " ON r.reservation_id = l.reservation_id"
        " LEFT JOIN (SELECT DISTINCT reservation_id, holder FROM reservations) w"
        " ON w.reservation_id = l.winner_id"
        f" WHERE {' AND '.join(lost_where)} ORDER BY l.hlc, l.writer, l.wseq",
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
            for rid, holder, pat, wid, wholder, wpat in clashes
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
        params.append(clock.make_hlc(scope.since_ms))
    rows = _index(
        session,
        "SELECT r.callsign, count(*) AS n, min(m.sent_hlc) FROM recipients r JOIN messages m"
        f" ON m.message_id = r.message_id WHERE {' AND '.join(where)} GROUP BY r.callsign"
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
