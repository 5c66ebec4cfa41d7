"""The columnar copy of the events: a DuckDB database beside the SQLite index, a cache like it.

Positions (`pos`) are the index's append order: an event gets the next one when this clone first
sees it, and a committed row never changes afterwards, however early it sorts in total order (a
merge brings such events at new, higher positions). So the copy is kept by position: bringing it
up to date appends the rows after the last position it holds, and a copy built from scratch holds
the same rows. It is built again from scratch when it is missing, unreadable, of another version,
or when the index was created or rebuilt since (the index's `generation`), or its last row is
not the index's row at that position any more.

The copy's rows are the index's `events` columns, with `data` as JSON and `time`: the event's
time in total order (its HLC's milliseconds, what `events --since` filters on) as a TIMESTAMP.
Rows travel as JSON lines that SQLite writes (`json_object`, in C) into a scratch file that
DuckDB's built-in JSON reader loads: no Python object per value, no extension.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from fleetgit.git.paths import RepoPaths
from fleetgit.index.schema import SCHEMA_VERSION

CACHE_VERSION = 1
CACHE_DIR = "analytics"  # beside the index; the one directory a session may touch
CACHE_FILE = "events.duckdb"
LOCK_FILE = "lock"

# the events table of the copy: (column, DuckDB type) as read from the index
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pos", "BIGINT"),
    ("id", "VARCHAR"),
    ("type", "VARCHAR"),
    ("v", "INTEGER"),
    ("stream", "VARCHAR"),
    ("seq", "BIGINT"),
    ("hlc", "BIGINT"),
    ("writer", "VARCHAR"),
    ("wseq", "BIGINT"),
    ("actor", "VARCHAR"),
    ("ts", "VARCHAR"),
    ("causation_id", "VARCHAR"),
    ("correlation_id", "VARCHAR"),
    ("tx", "VARCHAR"),
    ("txn", "BIGINT"),
    ("data", "JSON"),
)
EVENTS_DDL = (
    "CREATE TABLE events ("
    + ", ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS)
    + ", time TIMESTAMP)"
)
# the time in total order: an HLC is milliseconds << 16 | a counter
TIME_OF_HLC = "make_timestamp((hlc >> 16) * 1000)"
_BATCH = 50_000  # rows fetched from SQLite at a time


class SyncResult(NamedTuple):
    added: int  # rows appended to the copy
    rebuilt: bool  # the copy was built from scratch
    pos: int  # the last position the copy holds


def cache_dir(paths: RepoPaths) -> Path:
    path = paths.index_file.parent / CACHE_DIR
    path.mkdir(exist_ok=True)
    return path


def cache_path(paths: RepoPaths) -> Path:
    return cache_dir(paths) / CACHE_FILE


@contextlib.contextmanager
def locked(paths: RepoPaths, exclusive: bool) -> Iterator[None]:
    """An flock on the copy: exclusive to bring it up to date, shared while a query reads it
    (DuckDB lets one process write a database file, or several read it, not both)."""
    path = cache_dir(paths) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def json_select(
    table: str, columns: list[str], where: str = "", as_json: tuple[str, ...] = ()
) -> str:
    """A SELECT that makes SQLite write each row of `table` as one JSON object (the columns of
    `as_json` hold JSON text, written as the value it is rather than as a string)."""
    pairs = ", ".join(
        f"'{c}', json(\"{c}\")" if c in as_json else f"'{c}', \"{c}\"" for c in columns
    )
    return f"SELECT json_object({pairs}) FROM {table}{where}"


def load_json_rows(
    duck: duckdb.DuckDBPyConnection,
    rows: sqlite3.Cursor,
    scratch: Path,
    target: str,
    columns: tuple[tuple[str, str], ...],
    extra: str = "",
) -> int:
    """INSERT INTO `target` the rows (one JSON object each) of `rows`, through a scratch JSONL
    file that DuckDB reads. `extra`: more expressions to select after the columns."""
    count = 0
    with open(scratch, "w", encoding="utf-8") as out:
        while batch := rows.fetchmany(_BATCH):
            out.write("\n".join(r[0] for r in batch))
            out.write("\n")
            count += len(batch)
    try:
        if count:
            spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns)
            duck.execute(
                f"INSERT INTO {target} SELECT *{extra} FROM read_json(?, format ="
                f" 'newline_delimited', columns = {{{spec}}}, maximum_object_size = 268435456)",
                [str(scratch)],
            )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    return count


def scratch_file(paths: RepoPaths, name: str) -> Path:
    return cache_dir(paths) / f"{name}-{os.getpid()}.jsonl"


def _meta(duck: duckdb.DuckDBPyConnection) -> dict[str, str]:
    try:
        return dict(duck.execute("SELECT key, value FROM cache.meta").fetchall())
    except duckdb.Error:
        return {}


def _index_facts(index: sqlite3.Connection) -> dict[str, str]:
    rows = index.execute(
        "SELECT key, value FROM meta WHERE key IN ('generation', 'schema_version')"
    ).fetchall()
    facts = {str(k): str(v) for k, v in rows}
    (top,) = index.execute("SELECT max(pos) FROM events").fetchone()
    facts["max_pos"] = str(top or 0)
    return facts


def _attach(duck: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        duck.execute("ATTACH ? AS cache", [str(path)])
    except duckdb.Error:  # not a database DuckDB can open: a cache, so start again
        for suffix in ("", ".wal", ".wal.checkpoint"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        duck.execute("ATTACH ? AS cache", [str(path)])


def sync(
    paths: RepoPaths,
    index: sqlite3.Connection,
    duck: duckdb.DuckDBPyConnection,
    tables: Sequence[str] = (),
) -> SyncResult:
    """Bring the copy up to date with the index (call under `locked(paths, True)`): append the
    rows after the last position it holds, or build it from scratch (see the module's doc);
    and the snapshots of the projection `tables` (`snapshot`). `duck` is attached to it
    read-write as `cache` during the call, and detached after."""
    path = cache_path(paths)
    _attach(duck, path)
    index.execute("BEGIN")  # one snapshot of the index for the checks and the rows
    try:
        result = _sync(paths, index, duck)
        if tables:
            snapshot(paths, index, duck, tables)
        return result
    finally:
        index.execute("COMMIT")
        duck.execute("DETACH cache")


def _fresh(index: sqlite3.Connection, meta: dict[str, str], facts: dict[str, str]) -> bool:
    """Do the copy's rows stand (it needs at most the rows after its last position)?"""
    pos = int(meta.get("pos", "0") or 0)
    return (
        meta.get("version") == str(CACHE_VERSION)
        and meta.get("generation") == facts.get("generation", "")
        and meta.get("schema") == str(SCHEMA_VERSION)
        and pos <= int(facts["max_pos"])
        and (pos == 0 or _id_at(index, pos) == meta.get("last_id"))
    )


def current(
    index: sqlite3.Connection, duck: duckdb.DuckDBPyConnection, tables: Sequence[str]
) -> bool:
    """Is the copy attached (read-only, as `cache`) up to date with the index, the snapshots
    of `tables` included? Then a reader needs no exclusive lock: nothing to write."""
    meta = _meta(duck)
    facts = _index_facts(index)
    if meta.get("pos") != facts["max_pos"] or not _fresh(index, meta, facts):
        return False
    if not tables:
        return True
    try:
        have = dict(duck.execute("SELECT name, stamp FROM cache.snapshots").fetchall())
    except duckdb.Error:
        return False
    stamp = _stamp(index)
    return all(have.get(t) == stamp for t in tables)


def _sync(
    paths: RepoPaths, index: sqlite3.Connection, duck: duckdb.DuckDBPyConnection
) -> SyncResult:
    facts = _index_facts(index)
    meta = _meta(duck)
    pos = int(meta.get("pos", "0") or 0)
    fresh = _fresh(index, meta, facts)
    top = int(facts["max_pos"])
    if fresh and top == pos:
        return SyncResult(0, False, pos)
    duck.execute("BEGIN")
    try:
        if not fresh:
            duck.execute("DROP TABLE IF EXISTS cache.meta")
            duck.execute("DROP TABLE IF EXISTS cache.events")
            duck.execute("CREATE TABLE cache.meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            duck.execute(EVENTS_DDL.replace("TABLE events", "TABLE cache.events"))
            pos = 0
        names = [name for name, _ in EVENT_COLUMNS]
        rows = index.execute(
            json_select("events", names, " WHERE pos > ? AND pos <= ?", ("data",)), (pos, top)
        )
        added = load_json_rows(
            duck, rows, scratch_file(paths, "events"), "cache.events", EVENT_COLUMNS,
            f", {TIME_OF_HLC}",
        )  # fmt: skip
        values = {
            "version": str(CACHE_VERSION),
            "generation": facts.get("generation", ""),
            "schema": str(SCHEMA_VERSION),
            "pos": str(top),
            "last_id": _id_at(index, top) or "",
        }
        duck.execute("DELETE FROM cache.meta")
        duck.executemany("INSERT INTO cache.meta VALUES (?, ?)", list(values.items()))
        duck.execute("COMMIT")
    except BaseException:
        duck.execute("ROLLBACK")
        raise
    return SyncResult(added, not fresh, top)


# Projection tables holding JSON text: typed JSON in DuckDB.
JSON_COLUMNS = {("sorties", "files"), ("checkpoints", "details")}
_SQLITE_TYPES = {"INTEGER": "BIGINT", "TEXT": "VARCHAR", "REAL": "DOUBLE", "BLOB": "BLOB"}


def sqlite_columns(index: sqlite3.Connection, table: str) -> tuple[tuple[str, str], ...]:
    """A projection table's columns with their DuckDB types."""
    rows = index.execute(f"PRAGMA table_info({table})").fetchall()
    out = []
    for _, name, kind, *_ in rows:
        duck = "JSON" if (table, name) in JSON_COLUMNS else _SQLITE_TYPES.get(kind, "VARCHAR")
        out.append((str(name), duck))
    return tuple(out)


def copy_table(
    paths: RepoPaths, index: sqlite3.Connection, duck: duckdb.DuckDBPyConnection, table: str,
    target: str,
) -> None:  # fmt: skip
    """Create `target` in DuckDB as a copy of the index's `table`."""
    columns = sqlite_columns(index, table)
    ddl = ", ".join(f'"{name}" {kind}' for name, kind in columns)
    duck.execute(f"CREATE TABLE {target} ({ddl})")
    as_json = tuple(name for name, kind in columns if kind == "JSON")
    rows = index.execute(json_select(table, [name for name, _ in columns], "", as_json))
    load_json_rows(duck, rows, scratch_file(paths, table), target, columns)


def _stamp(index: sqlite3.Connection) -> str:
    """What the projections are a function of: the events (the index's generation and last
    position) and its meta (the force rule's limit, the files read, the held batches...):
    a projection changes only in a write that changes one of them."""
    (meta,) = index.execute(
        "SELECT group_concat(key || '=' || value, ';') FROM (SELECT * FROM meta ORDER BY key)"
    ).fetchone()
    (top,) = index.execute("SELECT max(pos) FROM events").fetchone()
    return f"{CACHE_VERSION};{top};{meta}"


def snapshot(
    paths: RepoPaths, index: sqlite3.Connection, duck: duckdb.DuckDBPyConnection,
    tables: Sequence[str],
) -> None:  # fmt: skip
    """Copy each of the projection `tables` into the cache as `p_TABLE`, unless the copy there
    was taken at the same `_stamp`: a query that reads a projection of 100,000 rows again
    does not copy it again."""
    stamp = _stamp(index)
    duck.execute("CREATE TABLE IF NOT EXISTS cache.snapshots (name VARCHAR PRIMARY KEY,"
                 " stamp VARCHAR)")  # fmt: skip
    have = dict(duck.execute("SELECT name, stamp FROM cache.snapshots").fetchall())
    for table in tables:
        if have.get(table) == stamp:
            continue
        duck.execute("BEGIN")
        try:
            duck.execute(f"DROP TABLE IF EXISTS cache.p_{table}")
            copy_table(paths, index, duck, table, f"cache.p_{table}")
            duck.execute("INSERT OR REPLACE INTO cache.snapshots VALUES (?, ?)", [table, stamp])
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise


def _id_at(index: sqlite3.Connection, pos: int) -> str | None:
    row: Any = index.execute("SELECT id FROM events WHERE pos = ?", (pos,)).fetchone()
    return None if row is None else str(row[0])
