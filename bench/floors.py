"""Floors: the same work as a benchmark with everything optional taken away, measured in the same
run, so that a target can be judged against what this machine can do at all."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson


def sqlite_floor(index_path: Path, scratch: Path, batches: int) -> float:
    """Events/s of the SQL work alone: the rows an append run stored (events, streams,
    projections), inserted again into an empty copy of the schema in as many transactions.
    No validation, encoding, hashing or folding: the ceiling for any append through the index."""
    src = sqlite3.connect(index_path)
    tables = src.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE TABLE %'"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%fts%'"
    ).fetchall()
    rows = {name: src.execute(f"SELECT * FROM {name}").fetchall() for name, _ in tables}
    rows = {name: table_rows for name, table_rows in rows.items() if table_rows}
    dst = sqlite3.connect(scratch, isolation_level=None)
    dst.execute("PRAGMA journal_mode = WAL")
    dst.execute("PRAGMA synchronous = NORMAL")
    for name, sql in tables:
        if name in rows:
            dst.execute(sql)
    for (sql,) in src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({','.join('?' * len(rows))})",
        list(rows),
    ):
        dst.execute(sql)
    src.close()
    t0 = time.perf_counter()
    for b in range(batches):
        dst.execute("BEGIN IMMEDIATE")
        for name, table_rows in rows.items():
            part = table_rows[b * len(table_rows) // batches : (b + 1) * len(table_rows) // batches]
            if part:
                marks = ",".join("?" * len(part[0]))
                dst.executemany(f"INSERT INTO {name} VALUES ({marks})", part)
        dst.execute("COMMIT")
    seconds = time.perf_counter() - t0
    dst.close()
    return len(rows["events"]) / seconds


def rebuild_floor(index_path: Path, scratch: Path, cpu: list[float] | None = None) -> float:
    """Seconds SQLite alone takes to write what a rebuild writes: every table's rows copied
    from the rebuilt index into an empty copy of its schema in one transaction (no Python per
    row at all), then the secondary indexes built, as the rebuild does. No rebuild that
    produces this index can be faster."""
    dst = sqlite3.connect(scratch, isolation_level=None)
    dst.execute("PRAGMA journal_mode = WAL")
    dst.execute("PRAGMA synchronous = NORMAL")
    dst.execute("PRAGMA cache_size = -32768")  # what the rebuild uses (index/catchup.py)
    dst.execute("PRAGMA threads = 1")
    dst.execute("ATTACH ? AS src", (str(index_path),))
    tables = dst.execute(
        "SELECT name, sql FROM src.sqlite_master WHERE type = 'table'"
        " AND sql LIKE 'CREATE TABLE %' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%fts%'"
    ).fetchall()
    indexes = dst.execute(
        "SELECT sql FROM src.sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name NOT LIKE '%fts%'"
    ).fetchall()
    for _, sql in tables:
        dst.execute(sql)
    t0, c0 = time.perf_counter(), time.process_time()
    dst.execute("BEGIN IMMEDIATE")
    for name, _ in tables:
        dst.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name}")
    dst.execute("PRAGMA cache_size = -16384")  # and while it sorts
    for (sql,) in indexes:
        dst.execute(sql)
    dst.execute("COMMIT")
    seconds = time.perf_counter() - t0
    _note_cpu(cpu, c0)
    dst.close()
    return seconds


def python_rebuild_floor(repo: Path, scratch: Path, cpu: list[float] | None = None) -> float:
    """Seconds the least a rebuild in Python can do takes: read every segment, parse each line
    once with orjson, insert the events rows, build the indexes and the streams, and fold the
    missions inline into their rows (the bench's ledger holds only `mission_created`). No
    envelope or schema checks, no line hashes, no dedup, no upcasting, no fold engine: what
    fleetgit's rebuild does on top of this is what makes it correct."""
    dst = sqlite3.connect(scratch, isolation_level=None)
    dst.execute("PRAGMA journal_mode = WAL")
    dst.execute("PRAGMA synchronous = NORMAL")
    dst.execute("PRAGMA cache_size = -32768")
    dst.execute("PRAGMA threads = 1")
    src = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    for table in ("events", "streams", "missions"):
        (sql,) = src.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        dst.execute(sql)
    indexes = src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        " AND sql IS NOT NULL"
    ).fetchall()
    src.close()
    columns = (
        "id, type, v, stream, seq, hlc, writer, wseq, actor, ts, causation_id, correlation_id,"
        " tx, txn, data, hash"
    )
    insert = f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * 16)})"
    t0, c0 = time.perf_counter(), time.process_time()
    dst.execute("BEGIN IMMEDIATE")
    for segment in sorted(repo.glob(".fleet/events/*/*.jsonl")):
        rows = []
        for line in segment.read_bytes().splitlines():
            o = orjson.loads(line)
            rows.append(
                (o["id"], o["type"], o["v"], o["stream"], o["seq"], o["hlc"], o["writer"],
                 o["wseq"], o["actor"], o["ts"], o["causation_id"], o["correlation_id"], o["tx"],
                 o["txn"], orjson.dumps(o["data"]).decode(), 0)
            )  # fmt: skip
        dst.executemany(insert, rows)
    dst.execute("PRAGMA cache_size = -16384")
    for (sql,) in indexes:
        dst.execute(sql)
    dst.execute("INSERT INTO streams SELECT stream, max(seq), max(pos) FROM events GROUP BY stream")
    dst.execute("PRAGMA cache_size = -32768")
    missions = []
    for data, hlc, actor, pos in dst.execute(
        "SELECT data, hlc, actor, pos FROM events WHERE stream >= 'mission/'"
        " AND stream < 'mission0' ORDER BY stream, hlc, writer, wseq"
    ):
        d = orjson.loads(data)
        missions.append(
            (d["mission_id"], d["title"], d.get("description"), d.get("priority") or "medium",
             "planned", d.get("created_by") or actor, hlc >> 16, hlc, None, None, pos)
        )  # fmt: skip
    dst.executemany(f"INSERT INTO missions VALUES ({', '.join('?' * 11)})", missions)
    dst.execute("COMMIT")
    seconds = time.perf_counter() - t0
    _note_cpu(cpu, c0)
    dst.close()
    return seconds


def json_floors(repo: Path, scratch: Path, cpu: list[float] | None = None) -> tuple[float, float]:
    """Seconds of the two floors issue 18 names, on the ledger a rebuild reads: SQLite filling
    the events table by parsing each line's JSON in C (`json_extract`, no Python per line; a
    fresh file with the journal off, indexes built after), and orjson parsing every line in
    Python with nothing else done."""
    segments = sorted(repo.glob(".fleet/events/*/*.jsonl"))
    dst = sqlite3.connect(scratch, isolation_level=None)
    dst.execute("PRAGMA journal_mode = OFF")
    dst.execute("PRAGMA synchronous = OFF")
    dst.execute("PRAGMA cache_size = -32768")
    dst.execute("PRAGMA threads = 1")
    src = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    (sql,) = src.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    indexes = src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        " AND sql IS NOT NULL"
    ).fetchall()
    src.close()
    dst.execute(sql)
    dst.execute("CREATE TEMP TABLE lines (line TEXT)")
    fields: tuple[str, ...] = ("id", "type", "v", "stream", "seq", "hlc", "writer", "wseq")
    fields += ("actor", "ts", "causation_id", "correlation_id", "tx", "txn")
    picks = ", ".join(f"json_extract(line, '$.{f}')" for f in fields)
    t0, c0 = time.perf_counter(), time.process_time()
    dst.execute("BEGIN")
    for segment in segments:
        dst.executemany("INSERT INTO lines VALUES (?)", ((ln,) for ln in segment.open()))
        dst.execute(
            f"INSERT INTO events ({', '.join(fields)}, data, hash)"
            f" SELECT {picks}, json_extract(line, '$.data'), 0 FROM lines"
        )
        dst.execute("DELETE FROM lines")
    dst.execute("PRAGMA cache_size = -16384")
    for (index_sql,) in indexes:
        dst.execute(index_sql)
    dst.execute("COMMIT")
    in_c = time.perf_counter() - t0
    _note_cpu(cpu, c0)
    dst.close()
    t0, c0 = time.perf_counter(), time.process_time()
    for segment in segments:
        for line in segment.read_bytes().splitlines():
            orjson.loads(line)
    parse = time.perf_counter() - t0
    _note_cpu(cpu, c0)
    return in_c, parse


def _note_cpu(cpu: list[float] | None, since: float) -> None:
    """The CPU seconds of this process since `since` onto `cpu` (steadier than wall time on a
    shared machine: a floor compared in CPU time with a benchmark's CPU time)."""
    if cpu is not None:
        cpu.append(time.process_time() - since)
