"""What the cross-stream judging steps (index/forcing.py, index/claims.py) share: the setting
each judged with, kept in `meta`, and the verdicts that count, read back for a fold."""

from __future__ import annotations

import sqlite3

from fleetgit.domain.fold import Key


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
