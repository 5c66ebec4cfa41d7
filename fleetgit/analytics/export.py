"""`fleetgit export`: the events and every projection table as files other tools read."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from fleetgit.analytics.session import TABLES, Session
from fleetgit.ledger import clock

FORMATS = {
    "parquet": ("parquet", "FORMAT parquet"),
    "jsonl": ("jsonl", "FORMAT json"),
    "csv": ("csv", "FORMAT csv, HEADER true"),
}


class Exported(NamedTuple):
    table: str
    path: str
    rows: int


def export(session: Session, fmt: str, directory: Path, since_ms: int | None) -> list[Exported]:
    """Write each table to DIRECTORY/TABLE.EXT (events from `since_ms` on, when given)."""
    suffix, options = FORMATS[fmt]
    out = []
    for table in TABLES:
        path = directory / f"{table}.{suffix}"
        where = ""
        if table == "events" and since_ms is not None:
            where = f" WHERE hlc >= {clock.make_hlc(int(since_ms))}"  # an int: nothing to quote
        select = f"SELECT * FROM {table}{where}"
        if table == "events":
            select += " ORDER BY hlc, writer, wseq"  # total order
        session.conn.execute(f"COPY ({select}) TO '{_quoted(path)}' ({options})")
        ((rows,),) = session.conn.execute(f"SELECT count(*) FROM {table}{where}").fetchall()
        out.append(Exported(table, str(path), rows))
    return out


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
