"""A read-only SQL session over the history: `events` and every projection table.

The connection is DuckDB's, in memory, and locked before any text of the user's is even parsed:
no file system access but the cache's own directory (`enable_external_access` off,
`allowed_directories`: no read_csv of another file, no COPY TO elsewhere, no ATTACH of another
database), no extension installed or loaded (`autoinstall_known_extensions`,
`autoload_known_extensions`), the configuration locked (`lock_configuration`). On top of that
each statement's type comes from DuckDB's own parser (`extract_statements`): only queries
(SELECT, and what DuckDB turns into one: FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT)
run; anything else is refused in one line. Then the columnar copy (`cache`) is brought up to
date, attached READ_ONLY, and `events` is a view of it; the projection tables the query names
are copied from the SQLite index into memory (they are current state, refolded in place by every
catch-up, so they are not cached).
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from fleetgit.analytics import cache
from fleetgit.git.paths import RepoPaths
from fleetgit.index import projections
from fleetgit.ledger.errors import ValidationError

# every projection of the index, under its own name, and the clone's consumer cursors
PROJECTIONS: tuple[str, ...] = (*projections.TABLES, "cursors")
TABLES: tuple[str, ...] = ("events", *PROJECTIONS)
_ALLOWED = {"SELECT"}
_REFUSED_WHY = {
    "INSERT": "it writes",
    "UPDATE": "it writes",
    "DELETE": "it writes",
    "CREATE": "it creates",
    "DROP": "it drops",
    "ALTER": "it alters",
    "COPY": "it copies to or from a file",
    "EXPORT": "it writes files",
    "ATTACH": "it attaches a database",
    "DETACH": "it detaches a database",
    "LOAD": "it installs or loads an extension",
    "PRAGMA": "a PRAGMA can change settings or write",
    "SET": "it changes settings",
    "VARIABLE_SET": "it changes settings",
    "CALL": "a CALL can write (CHECKPOINT is one)",
    "TRANSACTION": "there is nothing to commit",
    "VACUUM": "it writes",
    "EXPLAIN": "EXPLAIN ANALYZE runs what it explains",
}


_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class Result(NamedTuple):
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def refusal(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse `sql` unless each of its statements is a query, by DuckDB's own parse."""
    try:
        statements = conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise _error(exc, sql) from None
    if not statements:
        raise ValidationError("the query is empty", hint='fleetgit sql "SELECT ..."')
    for statement in statements:
        kind = str(statement.type).rpartition(".")[2]
        if kind not in _ALLOWED:
            why = _REFUSED_WHY.get(kind, "only queries run")
            raise ValidationError(
                f"refused: {kind} ({why}); fleetgit sql is read-only",
                hint="only queries run: SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE; export"
                " writes files: fleetgit export --help",
            )


def _position(sql: str, message: str) -> str:
    """`line L, column C` of DuckDB's caret under `LINE L: text` in an error message."""
    lines = message.splitlines()
    for at, text in enumerate(lines):
        found = re.match(r"LINE (\d+): (.*)$", text)
        if not found or at + 1 >= len(lines) or "^" not in lines[at + 1]:
            continue
        number, shown = int(found.group(1)), found.group(2)
        caret = lines[at + 1].index("^") - (len(text) - len(shown))
        source = sql.splitlines()[number - 1] if number <= len(sql.splitlines()) else ""
        snippet = shown.removeprefix("...").removesuffix("...")
        start = source.find(snippet) if snippet else -1
        offset = len(shown) - len(shown.removeprefix("..."))
        column = (start + caret - offset if start >= 0 else caret) + 1
        return f"line {number}, column {max(column, 1)}"
    return ""


def _error(exc: duckdb.Error, sql: str) -> ValidationError:
    """DuckDB's message as one line (with the position of a syntax error), and a hint."""
    message = str(exc)
    first = message.splitlines()[0] if message else type(exc).__name__
    missing = re.match(r"Catalog Error: Table with name (\S+) does not exist", first)
    if missing:
        return ValidationError(
            f"no table {missing.group(1)}: the tables are {', '.join(TABLES)}",
            hint="fleetgit sql --schema lists them with their columns",
        )
    first = re.sub(r"\s*Did you mean .*$", "", first)
    where = _position(sql, message)
    candidates = re.search(r"Candidate bindings: (.*)", message)
    hint = "fleetgit sql --schema lists the tables and their columns"
    if candidates:
        hint = f"columns with a close name: {candidates.group(1)}; {hint}"
    return ValidationError(f"{first}{f' (at {where})' if where else ''}", hint=hint)


class Session:
    """Open it with `open_session`; `run` a query; `schema`."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, index: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.index = index

    def load(self, paths: RepoPaths, tables: Sequence[str]) -> None:
        """Make the projection `tables` visible under their names: views of their snapshots in
        the cache (`cache.snapshot`), and the clone's cursors (a few rows, changed without an
        event) copied from the index as they are now."""
        for table in tables:
            if table == "cursors":
                assert self.index is not None
                cache.copy_table(paths, self.index, self.conn, table, f"memory.main.{table}")
            elif table in PROJECTIONS:
                self.conn.execute(
                    f"CREATE VIEW memory.main.{table} AS SELECT * FROM cache.p_{table}"
                )

    def run(self, sql: str, timeout: float | None = None) -> Result:
        """Run a query (refused unless read-only, see `refusal`), interrupted after `timeout`
        seconds, or by Ctrl-C (KeyboardInterrupt: exit 130)."""
        refusal(self.conn, sql)
        timer = None
        fired = threading.Event()
        stopped = threading.Event()

        def stop() -> None:
            fired.set()
            self.conn.interrupt()

        def on_sigint(signum: int, frame: Any) -> None:
            stopped.set()
            self.conn.interrupt()

        if timeout:
            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_sigint) if main else None
        try:
            cur = self.conn.execute(sql)
            rows = cur.fetchall()
        except (duckdb.InterruptException, RuntimeError, duckdb.Error) as exc:
            if stopped.is_set():
                raise KeyboardInterrupt from None
            if fired.is_set():
                raise ValidationError(
                    f"the query was interrupted after {timeout:g} s (--timeout)",
                    hint="give it longer with --timeout SECONDS, or narrow it (WHERE, LIMIT)",
                ) from None
            if not isinstance(exc, duckdb.Error):
                raise
            raise _error(exc, sql) from None
        finally:
            if timer is not None:
                timer.cancel()
            if main:
                signal.signal(signal.SIGINT, previous)
        description = cur.description or []
        return Result([d[0] for d in description], [str(d[1]) for d in description], rows)

    def schema(self) -> list[dict[str, Any]]:
        """Every table with its columns and their types."""
        out = []
        for table in TABLES:
            rows = self.conn.execute(f"DESCRIBE {table}").fetchall()
            columns = [{"name": r[0], "type": r[1]} for r in rows]
            out.append({"table": table, "columns": columns})
        return out


def connect(paths: RepoPaths, directories: Sequence[Path] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection locked to the cache's directory (and `directories`)."""
    # a query too big for memory spills to the cache's own folder (DuckDB's default is `.tmp`
    # in the current directory: the user's work tree, readable and committable)
    spill = str(cache.cache_dir(paths) / "spill")
    conn = duckdb.connect(":memory:", config={**_CONFIG, "temp_directory": spill})
    allowed = [f"{d}/" for d in (cache.cache_dir(paths), *directories)]
    conn.execute("SET allowed_directories = ?", [allowed])
    for setting in ("enable_external_access", "allow_community_extensions"):
        conn.execute(f"SET {setting} = false")
    conn.execute("SET lock_configuration = true")
    return conn


def _attach_current(
    paths: RepoPaths,
    index: sqlite3.Connection,
    conn: duckdb.DuckDBPyConnection,
    tables: Sequence[str],
    stack: ExitStack,
) -> bool:
    """Attach the copy read-only under a shared lock, kept in `stack`, when it is up to date:
    a query then never waits for another's to end. False (nothing held) when it is not."""
    path = cache.cache_path(paths)
    if not path.exists():
        return False
    inner = ExitStack()
    inner.enter_context(cache.locked(paths, exclusive=False))
    try:
        conn.execute("ATTACH ? AS cache (READ_ONLY)", [str(path)])
    except duckdb.Error:  # damaged: the sync starts it again
        inner.close()
        return False
    if cache.current(index, conn, tables):
        stack.push(inner)
        return True
    conn.execute("DETACH cache")
    inner.close()
    return False


def tables_named(conn: duckdb.DuckDBPyConnection, sql: str) -> Sequence[str]:
    """The tables a query reads, or all of them when DuckDB cannot tell; refused first when it
    is not a query (see `refusal`). Finding the names binds the statement (binding an EXPORT
    creates its directory): only in a locked connection, only once it is known to be a query."""
    refusal(conn, sql)
    try:
        return sorted(duckdb.get_table_names(sql, connection=conn))
    except duckdb.Error:
        return PROJECTIONS


@contextmanager
def open_session(
    paths: RepoPaths,
    index: sqlite3.Connection,
    tables: Sequence[str] = PROJECTIONS,
    *,
    query: str | None = None,
    directories: Sequence[Path] = (),
) -> Iterator[Session]:
    """A locked session (see the module's doc) over the columnar copy, brought up to date, with
    `tables` (the projections among them), or those `query` reads, loaded. The copy is read
    under a shared lock until the end. `directories`: more the session may write to (export)."""
    conn = connect(paths, directories)
    with ExitStack() as stack:
        stack.callback(conn.close)
        if query is not None:
            tables = tables_named(conn, query)
        wanted = [t for t in tables if t in PROJECTIONS and t != "cursors"]
        if not _attach_current(paths, index, conn, wanted, stack):
            with cache.locked(paths, exclusive=True):  # waits for the readers
                cache.sync(paths, index, conn, wanted)
            stack.enter_context(cache.locked(paths, exclusive=False))
            conn.execute("ATTACH ? AS cache (READ_ONLY)", [str(cache.cache_path(paths))])
        conn.execute("CREATE VIEW memory.main.events AS SELECT * FROM cache.events")
        session = Session(conn, index)
        session.load(paths, tables)
        yield session
