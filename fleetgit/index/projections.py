"""The projection engine: refold the streams that changed, with the pure folds of fleetgit.folds.

A stream is always refolded whole, in total order, so a late event that sorts earlier is handled
like any other and an incremental index equals a rebuilt one by construction. One step crosses
streams: which reservations are void (index.clashes), judged again from the earliest point of
total order that a change to a reservation stream touched. Time travel
(`--as-of POS`) folds the same way into TEMP tables of the same names, which SQLite resolves
before the main ones, so every query answers from that state unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby, islice
from types import ModuleType
from typing import Any

import orjson

from fleetgit import catalogue
from fleetgit.codec import Event
from fleetgit.folds import (
    Ev,
    checkpoints,
    locks,
    messages,
    missions,
    pilots,
    reservations,
    sorties,
    workorders,
)
from fleetgit.index import clashes

MODULES: tuple[ModuleType, ...] = (
    reservations,
    pilots,
    missions,
    sorties,
    workorders,
    locks,
    messages,
    checkpoints,
)
BY_KIND: dict[str, ModuleType] = {m.KIND: m for m in MODULES}
DDL = "".join(m.DDL for m in MODULES) + clashes.DDL
TABLES: tuple[str, ...] = tuple(t for m in MODULES for t in m.TABLES) + clashes.TABLES
Key = clashes.Key
settle = clashes.settle

_SELECT = "SELECT stream, type, v, data, hlc, writer, wseq, actor, pos FROM events"
_ORDER = " ORDER BY stream, hlc, writer, wseq"


def _kind_filter(kinds: Iterable[str]) -> tuple[str, list[str]]:
    """A range condition per kind, so SQLite can use the (stream, ...) index."""
    clauses, params = [], []
    for kind in kinds:
        clauses.append("(stream >= ? AND stream < ?)")
        params += [f"{kind}/", f"{kind}0"]  # '0' sorts right after '/'
    return "(" + " OR ".join(clauses) + ")", params


def _grouped(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, list[Ev]]]:
    for stream, items in groupby(rows, key=lambda r: r[0]):
        events = []
        for _, etype, v, data, hlc, writer, wseq, actor, pos in items:
            _, payload = catalogue.upcast(etype, v, orjson.loads(data))
            events.append(Ev(etype, payload, hlc, writer, wseq, actor, pos))
        yield stream, events


def _fold_into(
    conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]], *, replace: bool = True
) -> None:
    """Fold each stream of `rows` (sorted by stream, then total order) and replace its rows."""
    _fold_groups(conn, _grouped(rows), replace=replace)


def _fold_groups(
    conn: sqlite3.Connection, groups: Iterable[tuple[str, list[Ev]]], *, replace: bool = True
) -> None:
    """Write the folded rows of each stream; `replace=False` when the tables start empty."""
    for chunk in _chunks(groups, 5000):  # bounded memory, whatever the number of streams
        names: dict[ModuleType, list[tuple[str]]] = {}
        inserts: dict[str, list[dict[str, Any]]] = {}
        for stream, events in chunk:
            kind, _, name = stream.partition("/")
            module = BY_KIND.get(kind)
            if module is None:
                continue
            names.setdefault(module, []).append((name,))
            for table, items in module.fold(events).items():
                inserts.setdefault(table, []).extend(items)
        for module, keys in names.items() if replace else ():
            for table in module.TABLES:
                conn.executemany(f"DELETE FROM {table} WHERE {module.KEY} = ?", keys)
        for table, items in inserts.items():
            if items:
                columns = list(items[0])
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                conn.executemany(sql, [[row[c] for c in columns] for row in items])


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def apply_own(conn: sqlite3.Connection, events: Sequence[Event]) -> Key | None:
    """Fold a batch this process just appended. A stream whose events here start at seq 1 had
    none before (versions are checked inside the same transaction), so it folds from memory;
    the others are read back in total order. Returns where the void reservations must be
    judged again from (`settle`), if anywhere."""
    by_stream: dict[str, list[Event]] = {}
    for e in events:
        if e.stream.partition("/")[0] in BY_KIND:
            by_stream.setdefault(e.stream, []).append(e)
    fresh = {s: evs for s, evs in by_stream.items() if evs[0].seq == 1}
    _fold_groups(
        conn,
        (
            (s, [Ev(e.type, e.data, e.hlc, e.writer, e.wseq, e.actor, e.pos or 0) for e in evs])
            for s, evs in fresh.items()
        ),
        replace=False,  # no events before, so no rows to replace
    )
    rest = [s for s in by_stream if s not in fresh]
    for start in range(0, len(rest), 500):
        chunk = rest[start : start + 500]
        marks = ",".join("?" * len(chunk))
        _fold_into(conn, conn.execute(f"{_SELECT} WHERE stream IN ({marks}){_ORDER}", chunk))
    changed = [
        (e.hlc, e.writer, e.wseq)
        for e in events
        if e.type in clashes.CHANGES and e.stream.startswith("reservation/")
    ]
    return min(changed, default=None)


def apply(conn: sqlite3.Connection, after_pos: int) -> Key | None:
    """Refold every stream that received events after `after_pos`. Returns where the void
    reservations must be judged again from (`settle`), if anywhere."""
    where, params = _kind_filter(BY_KIND)
    rows = conn.execute(
        f"{_SELECT} WHERE stream IN (SELECT DISTINCT stream FROM events NOT INDEXED WHERE pos > ?)"
        f" AND {where}{_ORDER}",
        [after_pos, *params],
    )
    _fold_into(conn, rows)
    marks = ", ".join("?" * len(clashes.CHANGES))
    first = conn.execute(
        "SELECT hlc, writer, wseq FROM events NOT INDEXED WHERE pos > ?"
        " AND stream >= 'reservation/'"
        f" AND stream < 'reservation0' AND type IN ({marks}) ORDER BY hlc, writer, wseq LIMIT 1",
        [after_pos, *clashes.CHANGES],
    ).fetchone()
    return None if first is None else (first[0], first[1], first[2])


def rebuild(conn: sqlite3.Connection) -> None:
    """Refold every projection from all events."""
    for table in TABLES:
        conn.execute(f"DELETE FROM main.{table}")
    where, params = _kind_filter(BY_KIND)
    _fold_into(conn, conn.execute(f"{_SELECT} WHERE {where}{_ORDER}", params), replace=False)
    clashes.settle(conn, None)


def materialize_as_of(conn: sqlite3.Connection, pos: int) -> None:
    """Shadow every projection table with a TEMP table holding the state after position `pos`."""
    drop_as_of(conn)
    for table in TABLES:
        conn.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM main.{table} WHERE 0")
    where, params = _kind_filter(BY_KIND)
    _fold_into(conn, conn.execute(f"{_SELECT} WHERE pos <= ? AND {where}{_ORDER}", [pos, *params]))
    clashes.settle(conn, None)


def drop_as_of(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
