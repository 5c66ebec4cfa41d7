"""Reading events back from the index, in total order, with upcasting."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

import orjson

from fleetgit.domain import catalogue
from fleetgit.domain.catalogue import TYPES as CATALOGUE
from fleetgit.index.store import IndexDB
from fleetgit.ledger.codec import Event
from fleetgit.ledger.errors import AmbiguousError, NotFoundError, ValidationError
from fleetgit.ledger.schema import HEX_DIGITS

# Columns in Event's field order, so a row becomes an Event with no renaming.
_SELECT = (
    "SELECT id, type, v, stream, seq, hlc, writer, wseq, actor, ts, tx, txn, data, causation_id,"
    " correlation_id, pos FROM events"
)
_ORDER = "hlc, writer, wseq"
# The largest integer SQLite holds (positions, sequence numbers and limits are bound as one): the
# API refuses a larger one in one line, as the command line does (its options use this bound too)
INT_MAX = 2**63 - 1
_MS_MAX = INT_MAX >> 16  # a time in ms becomes an HLC, 16 bits to the left (before 1970: < 0)


def whole(name: str, value: object, *, low: int = 0, high: int = INT_MAX) -> int:
    """`value` when it is a whole number from `low` to `high`, else refused naming `name`."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(f"{name} {value!r}: expected a whole number from {low} to {high}")
    return value


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
    if f.stream is not None:
        catalogue.check_stream(f.stream)  # a typo would match nothing, and look like "no events"
    if f.types:
        where.append(f"type IN ({','.join('?' * len(f.types))})")
        params.extend(f.types)
    for column, value in (("stream", f.stream), ("actor", f.actor)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if f.since_ms is not None:
        where.append("hlc >= ?")
        params.append(whole("since_ms", f.since_ms, low=-_MS_MAX, high=_MS_MAX) << 16)
    if f.until_ms is not None:
        where.append("hlc < ?")
        params.append(whole("until_ms", f.until_ms, low=-_MS_MAX, high=_MS_MAX) << 16)
    if f.after_pos is not None:
        where.append("pos > ?")
        params.append(whole("after_pos", f.after_pos))
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def select_events(
    db: IndexDB, f: EventFilter, also: str = "", also_params: Sequence[object] = ()
) -> list[Event]:
    """The events `f` selects; `also`: one more SQL condition on the events table, ANDed.

    In total order, except after a position (`f.after_pos`): then by position, the order this
    clone took them in, which never changes. A reader that pages on with the last position it
    got never skips an event a merge brought in late (sorting earlier) nor sees one twice, and
    the page is read from the rowid range, not by walking or sorting the whole history."""
    where, params = where_clause(f)
    if also:
        where = f"{where} AND ({also})" if where else f" WHERE ({also})"
        params.extend(also_params)
    direction = " DESC" if f.reverse else ""
    order = ["pos"] if f.after_pos is not None else _ORDER.split(", ")
    sql = _SELECT + where + " ORDER BY " + ", ".join(c + direction for c in order)
    if f.limit is not None:
        sql += " LIMIT ?"
        params.append(whole("limit", f.limit))
    return [row_to_event(r) for r in db.conn.execute(sql, params)]


def select_after(db: IndexDB, pos: int, limit: int) -> list[Event]:
    """Up to `limit` events after position `pos`, in position order (the order this clone first
    saw them, which never changes): what a consumer that remembers a position reads next, with
    no gap even when a merge brings in events that sort earlier."""
    sql = _SELECT + " WHERE pos > ? ORDER BY pos LIMIT ?"
    rows = db.conn.execute(sql, (whole("pos", pos), whole("limit", limit)))
    return [row_to_event(r) for r in rows]


def select_stream(
    db: IndexDB, stream: str, from_seq: int | None, to_seq: int | None
) -> list[Event]:
    # Read in the (stream, hlc, writer, wseq) index's order, which is seq order unless two clones
    # forked the stream; only then sort (by seq, then total order), saving SQLite a sort.
    low = 1 if from_seq is None else whole("from_seq", from_seq)
    high = INT_MAX if to_seq is None else whole("to_seq", to_seq)
    sql = _SELECT + " WHERE stream = ? AND seq >= ? AND seq <= ? ORDER BY " + _ORDER
    rows = db.conn.execute(sql, (stream, low, high))
    events = [row_to_event(r) for r in rows]
    if any(a.seq > b.seq for a, b in pairwise(events)):
        events.sort(key=lambda e: (e.seq, *e.order_key()))
    return events


def find_event(db: IndexDB, ref: str) -> Event:
    """An event by id, or by a unique prefix of it, typed with or without the hyphens."""
    ref = ref.strip().lower()
    if not ref:
        raise ValidationError("empty event id", hint="fleetgit events lists ids to show")
    rows: list[Any] = []
    for start in dict.fromkeys((ref, _uuid_prefix(ref))):
        rows = db.conn.execute(
            _SELECT + " WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (start, start + "\U0010ffff")
        ).fetchall()
        if rows:
            break
    if not rows:
        raise NotFoundError(f"no event with id {ref!r}", hint="list ids with: fleetgit events")
    if len(rows) > 1 and rows[0][0] != start:
        total = db.conn.execute(_PREFIX_COUNT, (start, start + "\U0010ffff")).fetchone()[0]
        ids = ", ".join(str(r[0]) for r in rows[:5]) + (
            f" and {total - 5} more" if total > 5 else ""
        )
        raise AmbiguousError(
            f"event id {ref!r} is ambiguous: it matches {total}: {ids}",
            hint="give more characters",
        )
    return row_to_event(rows[0])


_PREFIX_COUNT = "SELECT count(*) FROM events WHERE id >= ? AND id < ?"
_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
# hex digits shown at least: a UUIDv7's whole millisecond, so that an id shown once stays unique
# as later events arrive (they are in later milliseconds); a batch shares one and needs more
SHORT_ID_MIN = 12


def _digits(event_id: str) -> str:
    """A UUID without its hyphens; any other id as it is."""
    digits = event_id.replace("-", "")
    return digits if digits and set(digits) <= HEX_DIGITS else event_id


def _uuid_prefix(ref: str) -> str:
    """A hex prefix typed with or without hyphens, hyphenated where a UUID has them."""
    digits = ref.replace("-", "")
    if not digits or len(digits) > 32 or not set(digits) <= HEX_DIGITS:
        return ref
    return "-".join(digits[a:b] for a, b in _UUID_GROUPS if digits[a:b])


def short_ids(db: IndexDB, ids: Sequence[str]) -> list[str]:
    """`ids` without hyphens, cut to one length at which each still names only itself in the
    index: one more than the longest prefix any of them shares with its neighbour in id order."""
    length = SHORT_ID_MIN
    for a, b in _neighbours(db, set(ids)):
        if a[:length] == b[:length]:  # else they share fewer than `length` digits: no longer
            length = max(length, _shared_digits(a, b) + 1)
    return [_digits(event_id)[:length] for event_id in ids]


def _neighbours(db: IndexDB, listed: set[str]) -> Iterator[tuple[str, str]]:
    """Each listed id paired with the ids next to it in the index's id order: one ordered scan
    of the listing's id range when the listing fills most of it, else two lookups per id."""
    if not listed:
        return
    low, high = min(listed), max(listed)
    span = db.conn.execute(_SPAN_COUNT, (low, high, 4 * len(listed) + 1)).fetchone()[0]
    if span > 4 * len(listed):
        for event_id in listed:
            for sql in (_BEFORE, _AFTER):
                other = db.conn.execute(sql, (event_id,)).fetchone()[0]
                if other is not None:
                    yield event_id, other
        return
    run = [db.conn.execute(_BEFORE, (low,)).fetchone()[0]]
    run += [r[0] for r in db.conn.execute(_SPAN, (low, high))]
    run.append(db.conn.execute(_AFTER, (high,)).fetchone()[0])
    for a, b in pairwise(run):
        if a is not None and b is not None and (a in listed or b in listed):
            yield a, b


def _shared_digits(a: str, b: str) -> int:
    """How many leading characters, hyphens not counted, `a` and `b` have in common."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # a binary search: slices compare at C speed
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low - a.count("-", 0, low)


_BEFORE = "SELECT max(id) FROM events WHERE id < ?"
_AFTER = "SELECT min(id) FROM events WHERE id > ?"
_SPAN = "SELECT id FROM events WHERE id >= ? AND id <= ? ORDER BY id"
# bounded: only whether the range holds more than a few times the listed ids matters
_SPAN_COUNT = "SELECT count(*) FROM (SELECT 1 FROM events WHERE id >= ? AND id <= ? LIMIT ?)"


def count(db: IndexDB, sql: str) -> int:
    try:
        return int(db.conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.Error:
        return 0
