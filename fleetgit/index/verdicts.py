"""What the cross-stream judging steps (index/forcing.py, index/claims.py) share: the setting
each judged with, kept in `meta`, and the verdicts that count, read back for a fold."""

from __future__ import annotations

import sqlite3

from fleetgit.domain.fold import Key


def table(name: str, entity: str, what: str) -> str:
    """The DDL of a verdicts table: one row per judged event of an `entity`, ok or not."""
    return f"""
-- {what}
CREATE TABLE IF NOT EXISTS {name} (
    {entity} TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    PRIMARY KEY ({entity}, hlc, writer, wseq)
);
"""


def forget(name: str, entity: str, listed: str) -> str:
    """After an entity is folded again: its verdicts on events its fold no longer lists (in
    the table `listed`) are forgotten. One parameter: the entity's id."""
    return f"""
DELETE FROM {name} WHERE {entity} = ? AND NOT EXISTS (
    SELECT 1 FROM {listed} l WHERE l.{entity} = {name}.{entity}
    AND l.hlc = {name}.hlc AND l.writer = {name}.writer AND l.wseq = {name}.wseq)
"""


class Before:
    """The verdicts of `name` as they were before a judging pass, to tell which changed. A full
    pass (`full`) reads them all and clears the table (every event is judged again); an
    incremental one looks up each judged event's."""

    def __init__(self, conn: sqlite3.Connection, name: str, entity: str, full: bool) -> None:
        self.conn, self.name, self.entity = conn, name, entity
        self.all: dict[tuple[str, int, str, int], int] | None = None
        if full:
            self.all = {
                (eid, hlc, writer, wseq): ok
                for eid, hlc, writer, wseq, ok in conn.execute(
                    f"SELECT {entity}, hlc, writer, wseq, ok FROM {name}"
                )
            }
            conn.execute(f"DELETE FROM {name}")

    def ok(self, eid: str, key: Key) -> int:
        if self.all is not None:
            return self.all.get((eid, *key), 0)
        row = self.conn.execute(
            f"SELECT ok FROM {self.name} WHERE {self.entity} = ? AND hlc = ? AND writer = ?"
            " AND wseq = ?",
            (eid, *key),
        ).fetchone()
        return int(row[0]) if row else 0


def setting(conn: sqlite3.Connection, key: str) -> int | None:
    """The value a Fleet set under `key` (`projections.configure`), if any."""
    row = conn.execute("SELECT value FROM main.meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else None


def accepted(
    conn: sqlite3.Connection, table: str, column: str, ids: list[str]
) -> dict[str, set[Key]]:
    """The events `table` judged to count (ok = 1), by the entity `column` names, of `ids`."""
    out: dict[str, set[Key]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for entity, hlc, writer, wseq in conn.execute(
            f"SELECT {column}, hlc, writer, wseq FROM {table} WHERE ok = 1"
            f" AND {column} IN ({marks})",
            chunk,
        ):
            out.setdefault(entity, set()).add((hlc, writer, wseq))
    return out
