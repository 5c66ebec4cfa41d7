"""The projection engine: refold the streams that changed, with each concept's pure fold.

A stream is always refolded whole, in total order, so a late event that sorts earlier is handled
like any other and an incremental index equals a rebuilt one by construction. One step crosses
streams: which releases by another pilot than the holder count (index.forcing, judged before
the reservation streams are folded with the verdicts), which claims and starts of sorties count
(index.claims: a takeover of a pilot still active, a claim after the mission ended), then which
reservations are void (index.clashes), judged again from the earliest point of total order that
a change to a reservation stream touched. Time travel
(`--as-of POS`) folds the same way into TEMP tables of the same names, which SQLite resolves
before the main ones, so every query answers from that state unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby, islice
from operator import itemgetter
from types import ModuleType
from typing import Any

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.domain.checkpoints import fold as checkpoints
from fleetgit.domain.fold import Ev, Key, has_withdrawal, honour_withdrawals
from fleetgit.domain.locks import fold as locks
from fleetgit.domain.missions import fold as missions
from fleetgit.domain.pilots import fold as pilots
from fleetgit.domain.reservations import fold as reservations
from fleetgit.domain.sorties import fold as sorties
from fleetgit.domain.squawk import fold as messages
from fleetgit.domain.withdrawals.events import WITHDRAWN
from fleetgit.domain.workorders import fold as workorders
from fleetgit.index import claims, clashes, forcing, streams
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event

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
DDL = "".join(m.DDL for m in MODULES) + clashes.DDL + forcing.DDL + claims.DDL
TABLES: tuple[str, ...] = (
    tuple(t for m in MODULES for t in m.TABLES) + clashes.TABLES + forcing.TABLES + claims.TABLES
)
settle = clashes.settle

_SELECT = streams.SELECT
_ORDER = " ORDER BY stream, hlc, writer, wseq"


def _kind_filter(kinds: Iterable[str]) -> tuple[str, list[str]]:
    """A range condition per kind, so SQLite can use the (stream, ...) index."""
    clauses, params = [], []
    for kind in kinds:
        clauses.append("(stream >= ? AND stream < ?)")
        params += [f"{kind}/", f"{kind}0"]  # '0' sorts right after '/'
    return "(" + " OR ".join(clauses) + ")", params


def _grouped(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, list[Ev]]]:
    for stream, items in groupby(rows, key=itemgetter(0)):
        yield stream, [streams.ev(r) for r in items]


def _fold_into(
    conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]], *, replace: bool = True
) -> None:
    """Fold each stream of `rows` (sorted by stream, then total order) and replace its rows."""
    _fold_groups(conn, ((stream, events, None) for stream, events in _grouped(rows)), replace)


Group = tuple[str, list[Ev], dict[str, Any] | None]  # stream, events, what to fold them onto


def _fold_groups(conn: sqlite3.Connection, groups: Iterable[Group], replace: bool = True) -> None:
    """Write the folded rows of each stream; `replace=False` when the tables start empty."""
    for chunk in _chunks(groups, 5000):  # bounded memory, whatever the number of streams
        names: dict[ModuleType, list[tuple[str]]] = {}
        inserts: dict[str, list[dict[str, Any]]] = {}
        held = [s.partition("/")[2] for s, _, _ in chunk if s.startswith("reservation/")]
        forced = forcing.accepted(conn, held) if held else {}
        sids = [s.partition("/")[2] for s, _, _ in chunk if s.startswith("sortie/")]
        taken = claims.accepted(conn, sids) if sids else {}
        ends = claims.Ends(conn)
        for stream, events, start in chunk:
            kind, _, name = stream.partition("/")
            module = BY_KIND.get(kind)
            if module is None:
                continue
            names.setdefault(module, []).append((name,))
            events = honour_withdrawals(events)
            if not events:  # everything in it withdrawn: no rows
                continue
            if module is reservations:
                rows = module.fold(events, forced.get(name, ()))
            elif module is sorties:
                rows = module.fold(events, start, sorties.Judged(taken.get(name, ()), ends.of))
            else:
                rows = module.fold(events, start) if start else module.fold(events)
            if module is missions:  # its sorties, later in the chunk, see its end as folded
                ends.folded(name, rows.get("mission_ends", []))
            for table, items in rows.items():
                inserts.setdefault(table, []).extend(items)
        for module, keys in names.items() if replace else ():
            for table in module.TABLES:
                conn.executemany(f"DELETE FROM {table} WHERE {module.KEY} = ?", keys)
        for table, items in inserts.items():
            if items:
                columns = list(items[0])
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                conn.executemany(sql, map(_values(columns), items))
        if reservations in names:  # a verdict on a release that is no longer another's
            conn.executemany(forcing.FORGET, names[reservations])
        if sorties in names:  # a verdict on a takeover it no longer lists
            conn.executemany(claims.FORGET, names[sorties])


def _values(columns: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row's values in the order of `columns`, as a tuple (picked in C)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return itemgetter(*columns)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _fold_new(conn: sqlite3.Connection, new: Iterable[tuple[str, list[Ev]]], before: int) -> None:
    """Fold the streams that received events after position `before`, given those events in
    total order. A stream whose new events all sort after its older ones (what an append
    writes) is folded onto the rows its last fold stored, when its module resumes: an append
    costs the new events, not the stream's whole history. Any other stream is refolded whole."""
    for chunk in _chunks(new, 500):
        old_last = _last_keys(conn, [stream for stream, _ in chunk], before)
        resumed = [
            (stream, events)
            for stream, events in chunk
            if stream in old_last
            and BY_KIND[stream.partition("/")[0]].RESUMES
            and events[0].order > old_last[stream]
            and not has_withdrawal(events)  # a tombstone names an older event: fold all
        ]
        stored = _stored(conn, [stream for stream, _ in resumed])
        groups: list[Group] = [(s, events, stored.get(s, {})) for s, events in resumed]
        groups += [(s, events, None) for s, events in chunk if s not in old_last]
        _fold_groups(conn, groups)
        whole = [s for s, _ in chunk if s in old_last and s not in stored]
        if whole:
            marks = ",".join("?" * len(whole))
            _fold_into(conn, conn.execute(f"{_SELECT} WHERE stream IN ({marks}){_ORDER}", whole))


def _last_keys(conn: sqlite3.Connection, streams: list[str], before: int) -> dict[str, Key]:
    """The last of the events at positions up to `before` of each stream, in total order (a
    backward walk of the (stream, hlc, writer, wseq) index that stops at the first old one)."""
    if before <= 0:
        return {}
    out: dict[str, Key] = {}
    for start in range(0, len(streams), 500):  # one statement per 500 streams, not one each
        chunk = streams[start : start + 500]
        values = ", ".join("(?)" for _ in chunk)
        out.update(
            (stream, (hlc, writer, wseq))
            for stream, hlc, writer, wseq in conn.execute(
                f"WITH asked (stream) AS (VALUES {values})"
                " SELECT asked.stream, e.hlc, e.writer, e.wseq FROM asked JOIN events e"
                " ON e.pos = (SELECT pos FROM events WHERE stream = asked.stream AND pos <= ?"
                " ORDER BY hlc DESC, writer DESC, wseq DESC LIMIT 1)",
                [*chunk, before],
            )
        )
    return out


def _stored(conn: sqlite3.Connection, streams: list[str]) -> dict[str, dict[str, Any]]:
    """What the last fold stored for each of `streams` (every one of them is a key of the
    result, even with no rows), table by table, in the order it was stored."""
    out: dict[str, dict[str, Any]] = {stream: {} for stream in streams}
    by_kind: dict[str, list[str]] = {}
    for stream in streams:
        kind, _, name = stream.partition("/")
        by_kind.setdefault(kind, []).append(name)
    for kind, keys in by_kind.items():
        module = BY_KIND[kind]
        marks = ",".join("?" * len(keys))
        for table in module.TABLES:
            cur = conn.execute(
                f"SELECT * FROM {table} WHERE {module.KEY} IN ({marks}) ORDER BY rowid", keys
            )
            columns = [c[0] for c in cur.description]
            for values in cur:
                row = dict(zip(columns, values, strict=True))
                out[f"{kind}/{row[module.KEY]}"].setdefault(table, []).append(row)
    return out


def apply_own(conn: sqlite3.Connection, events: Sequence[Event]) -> Key | None:
    """Fold a batch this process just appended (positions after the batch's first - 1).
    Returns where the void reservations must be judged again from (`settle`), if anywhere."""
    by_stream: dict[str, list[Ev]] = {}
    fresh: set[str] = set()  # streams that had no events before this batch
    for e in events:
        if e.stream.partition("/")[0] in BY_KIND:
            if e.seq == 1:
                fresh.add(e.stream)
            ev = Ev(e.type, e.data, e.hlc, e.writer, e.wseq, e.actor, e.pos or 0, e.id)
            by_stream.setdefault(e.stream, []).append(ev)
    new = [(s, by_stream[s], None) for s in by_stream if s in fresh]  # in the batch's order
    _fold_groups(conn, new, replace=False)
    rest = [(s, evs) for s, evs in by_stream.items() if s not in fresh]
    before = int(events[0].pos or 1) - 1
    _fold_new(conn, rest, before)
    changed = [
        (e.hlc, e.writer, e.wseq)
        for e in events
        if e.type in clashes.CHANGES and e.stream.startswith("reservation/")
    ]
    if any(e.type == WITHDRAWN and e.stream.startswith("reservation/") for e in events):
        changed.append(_START)  # a grant or release taken back: judge the clashes again
    since = judge_forced(conn, before)
    judge_claims(conn, before, new=events)
    return _earliest(min(changed, default=None), since)


def apply(conn: sqlite3.Connection, after_pos: int) -> Key | None:
    """Fold every stream that received events after `after_pos`. Returns where the void
    reservations must be judged again from (`settle`), if anywhere."""
    where, params = _kind_filter(BY_KIND)
    rows = conn.execute(
        f"{_SELECT} NOT INDEXED WHERE pos > ? AND {where}{_ORDER}", [after_pos, *params]
    )
    _fold_new(conn, _grouped(rows), after_pos)
    forced = judge_forced(conn, after_pos)
    judge_claims(conn, after_pos)
    marks = ", ".join("?" * len(clashes.CHANGES))
    first = conn.execute(
        "SELECT hlc, writer, wseq FROM events NOT INDEXED WHERE pos > ?"
        " AND stream >= 'reservation/'"
        f" AND stream < 'reservation0' AND type IN ({marks}) ORDER BY hlc, writer, wseq LIMIT 1",
        [after_pos, *clashes.CHANGES],
    ).fetchone()
    withdrawn = conn.execute(
        "SELECT 1 FROM events NOT INDEXED WHERE pos > ? AND stream >= 'reservation/'"
        " AND stream < 'reservation0' AND type = ? LIMIT 1",
        [after_pos, WITHDRAWN],
    ).fetchone()
    if withdrawn is not None:  # a grant or release taken back: judge the clashes again
        forced = _START
    return _earliest(None if first is None else (first[0], first[1], first[2]), forced)


_START: Key = (0, "", 0)  # judge the clashes from the start


def _earliest(a: Key | None, b: Key | None) -> Key | None:
    return b if a is None else a if b is None else min(a, b)


def _fold_streams(conn: sqlite3.Connection, streams: list[str], upto_pos: int | None) -> None:
    """Fold these streams again whole (with `upto_pos`, from the events up to it), by 500."""
    cond, extra = ("", []) if upto_pos is None else (" AND pos <= ?", [upto_pos])
    for start in range(0, len(streams), 500):
        chunk = streams[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"{_SELECT} WHERE stream IN ({marks}){cond}{_ORDER}", [*chunk, *extra])
        _fold_into(conn, rows)


def judge_forced(
    conn: sqlite3.Connection, after_pos: int | None, upto_pos: int | None = None
) -> Key | None:
    """Judge the releases by other pilots that events after `after_pos` can have changed
    (index.forcing), and fold again the reservations whose forcible releases changed.
    Returns the earliest of those releases, from where void reservations are judged again."""
    rids, since = forcing.judge(conn, after_pos, upto_pos)
    _fold_streams(conn, [f"reservation/{rid}" for rid in rids], upto_pos)
    return since


def judge_claims(
    conn: sqlite3.Connection,
    after_pos: int | None,
    upto_pos: int | None = None,
    new: Sequence[Event] | None = None,
) -> None:
    """Judge the takeovers of sorties that events after `after_pos` can have changed, and the
    claims and starts whose mission's end moved (index.claims); fold those sorties again.
    `new`: the events after `after_pos`, when the caller has them (an append's batch)."""
    sids = claims.judge(conn, after_pos, upto_pos, new)
    _fold_streams(conn, [f"sortie/{sid}" for sid in sids], upto_pos)


def configure(conn: sqlite3.Connection, limit_ms: int, window_ms: int | None = None) -> Key | None:
    """Judge every release by another pilot again when the force rule's limit changed, and
    every takeover of a sortie when the activity window did (the configuration); returns where
    void reservations must be judged again from, if anywhere. Call inside the index's write
    transaction."""
    if window_ms is not None and claims.configured(conn) != window_ms:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (claims.WINDOW_KEY, str(window_ms))
        )
        judge_claims(conn, None)
    if forcing.configured(conn) == limit_ms:
        return None
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (forcing.LIMIT_KEY, str(limit_ms)))
    return judge_forced(conn, None)


def refold(conn: sqlite3.Connection, streams: Iterable[str]) -> Key | None:
    """Refold `streams` whole, after an id conflict changed one of their events or moved it
    to another stream (a stream left with no events loses its rows). Returns where the void
    reservations must be judged again from: the start, when a reservation stream changed."""
    names = sorted(s for s in streams if s.partition("/")[0] in BY_KIND)
    for stream in names:
        kind, _, key = stream.partition("/")
        module = BY_KIND[kind]
        for table in module.TABLES:
            conn.execute(f"DELETE FROM {table} WHERE {module.KEY} = ?", (key,))
    if not names:
        return None
    marks = ",".join("?" * len(names))
    _fold_into(
        conn, conn.execute(f"{_SELECT} WHERE stream IN ({marks}){_ORDER}", names), replace=False
    )
    judge_claims(conn, None)  # an event that changed can change any verdict: judged all again
    touched = any(s.startswith("reservation/") for s in names)
    return _START if touched else None


# Rebuild: a mission stream whose whole history is its mission_created event (of the current
# version) folds to one row that SQLite computes from the event's JSON, in one pass over the
# (stream, ...) index; `missions.fold` gives the same row for every event intake admits (its
# mission_id is its stream's name, its fields have their catalogue types), and the hypothesis
# tests of rebuild == incremental hold the two to it. Any other stream is folded in Python.
_FOLD_SINGLE_MISSIONS = f"""
INSERT INTO missions (mission_id, title, description, priority, status, created_by,
    created_ms, created_hlc, result, summary, last_pos)
SELECT substr(stream, 9), json_extract(data, '$.title'), json_extract(data, '$.description'),
    coalesce(nullif(json_extract(data, '$.priority'), ''), 'medium'), 'planned',
    coalesce(nullif(json_extract(data, '$.created_by'), ''), actor),
    hlc >> {clock.COUNTER_BITS}, hlc, NULL, NULL, pos
FROM (
    SELECT stream, count(*) AS n, type, v, data, actor, hlc, pos FROM events
    WHERE stream >= 'mission/' AND stream < 'mission0' GROUP BY stream
) WHERE n = 1 AND type = 'mission_created' AND v >= ?
"""


def _fold_in_sql(conn: sqlite3.Connection) -> str:
    """Fold the streams SQLite can fold alone (see _FOLD_SINGLE_MISSIONS) into the empty
    tables of a rebuild; the condition that leaves them out of the Python fold."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS set_folded (stream TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.set_folded")
    conn.execute(_FOLD_SINGLE_MISSIONS, (CATALOGUE.types["mission_created"].version,))
    conn.execute("INSERT INTO temp.set_folded SELECT 'mission/' || mission_id FROM missions")
    return " AND stream NOT IN (SELECT stream FROM temp.set_folded)"


def rebuild(conn: sqlite3.Connection) -> None:
    """Refold every projection from all events."""
    for table in TABLES:
        conn.execute(f"DELETE FROM main.{table}")
    where, params = _kind_filter(BY_KIND)
    where += _fold_in_sql(conn)
    _fold_into(conn, conn.execute(f"{_SELECT} WHERE {where}{_ORDER}", params), replace=False)
    conn.execute("DELETE FROM temp.set_folded")
    judge_forced(conn, None)
    judge_claims(conn, None)
    clashes.settle(conn, None)


def materialize_as_of(conn: sqlite3.Connection, pos: int) -> None:
    """Shadow every projection table with a TEMP table holding the state after position `pos`."""
    drop_as_of(conn)
    for table in TABLES:
        conn.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM main.{table} WHERE 0")
    where, params = _kind_filter(BY_KIND)
    _fold_into(conn, conn.execute(f"{_SELECT} WHERE pos <= ? AND {where}{_ORDER}", [pos, *params]))
    judge_forced(conn, None, pos)
    judge_claims(conn, None, pos)
    clashes.settle(conn, None)


def drop_as_of(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
