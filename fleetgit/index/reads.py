"""Reading events back from the index, in total order, with upcasting."""

from __future__ import annotations

import sqlite3
from itertools import pairwise
from typing import Any, NamedTuple

import orjson

from fleetgit import catalogue
from fleetgit.catalogue import CATALOGUE
from fleetgit.codec import Event
from fleetgit.errors import AmbiguousError, NotFoundError
from fleetgit.index.store import IndexDB

# Columns in Event's field order, so a row becomes an Event with no renaming.
_SELECT = (
    "SELECT id, type, v, stream, seq, hlc, writer, wseq, actor, ts, tx, txn, data, causation_id,"
    " correlation_id, pos FROM events"
)
_ORDER = "hlc, writer, wseq"


class EventFilter(NamedTuple):
    types: tuple[str, ...] = ()
    stream: str | None = None
    actor: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    after_pos: int | None = None
    limit: int | None = None
    reverse: bool = False


def row_to_event(row: Any) -> Event:
    data = orjson.loads(row[12])
    known = CATALOGUE.get(row[1])
    if known is not None and row[2] < known.version:  # written by an older schema: lift it
        version, data = catalogue.upcast(row[1], row[2], data)
        return Event._make((row[0], row[1], version, *row[3:12], data, *row[13:]))
    return Event._make((*row[:12], data, *row[13:]))


def where_clause(f: EventFilter) -> tuple[str, list[object]]:
    """The filter's conditions (not its order or limit) as SQL, " WHERE ..." or ""."""
    where: list[str] = []
    params: list[object] = []
    if f.types:
        where.append(f"type IN ({','.join('?' * len(f.types))})")
        params.extend(f.types)
    for column, value in (("stream", f.stream), ("actor", f.actor)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if f.since_ms is not None:
        where.append("hlc >= ?")
        params.append(f.since_ms << 16)
    if f.until_ms is not None:
        where.append("hlc < ?")
        params.append(f.until_ms << 16)
    if f.after_pos is not None:
        where.append("pos > ?")
        params.append(f.after_pos)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def select_events(db: IndexDB, f: EventFilter) -> list[Event]:
    where, params = where_clause(f)
    sql = _SELECT + where
    direction = " DESC" if f.reverse else ""
    sql += " ORDER BY " + ", ".join(c + direction for c in _ORDER.split(", "))
    if f.limit is not None:
        sql += " LIMIT ?"
        params.append(f.limit)
    return [row_to_event(r) for r in db.conn.execute(sql, params)]


def select_stream(
    db: IndexDB, stream: str, from_seq: int | None, to_seq: int | None
) -> list[Event]:
    # Read in the (stream, hlc, writer, wseq) index's order, which is seq order unless two clones
    # forked the stream; only then sort (by seq, then total order), saving SQLite a sort.
    sql = _SELECT + " WHERE stream = ? AND seq >= ? AND seq <= ? ORDER BY " + _ORDER
    rows = db.conn.execute(sql, (stream, from_seq or 1, to_seq if to_seq is not None else 2**62))
    events = [row_to_event(r) for r in rows]
    if any(a.seq > b.seq for a, b in pairwise(events)):
        events.sort(key=lambda e: (e.seq, *e.order_key()))
    return events


def find_event(db: IndexDB, ref: str) -> Event:
    """An event by id or unambiguous id prefix."""
    ref = ref.strip().lower()
    rows = db.conn.execute(_SELECT + " WHERE id = ?", (ref,)).fetchall()
    if not rows and len(ref) >= 4:
        rows = db.conn.execute(
            _SELECT + " WHERE id >= ? AND id < ? LIMIT 6", (ref, ref + "\U0010ffff")
        ).fetchall()
    if not rows:
        raise NotFoundError(f"no event with id {ref!r}", hint="list ids with: fleetgit events")
    if len(rows) > 1:
        ids = ", ".join(str(r[0]) for r in rows[:5])
        raise AmbiguousError(f"event id {ref!r} is ambiguous: {ids}", hint="give more characters")
    return row_to_event(rows[0])


def count(db: IndexDB, sql: str) -> int:
    try:
        return int(db.conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.Error:
        return 0
