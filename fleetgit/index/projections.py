"""Projections: current state folded from events in total order, kept in index tables.

Each projection refolds a whole stream when any of its events arrives, reading the stream in
total order. A late event that sorts earlier is therefore handled like any other, and an
incremental index equals a rebuilt one by construction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from fleetgit import clock

DDL = """
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT NOT NULL,
    pattern TEXT NOT NULL,
    holder TEXT NOT NULL,
    exclusive INTEGER NOT NULL,
    reason TEXT,
    granted_hlc INTEGER NOT NULL,
    granted_writer TEXT NOT NULL,
    granted_wseq INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    released INTEGER NOT NULL DEFAULT 0,
    released_ms INTEGER,
    released_by TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    last_pos INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, pattern)
);
CREATE INDEX IF NOT EXISTS reservations_live ON reservations (expires_ms) WHERE released = 0;
CREATE INDEX IF NOT EXISTS reservations_holder ON reservations (holder);
CREATE TABLE IF NOT EXISTS reservation_conflicts (
    reservation_id TEXT NOT NULL,
    other_reservation_id TEXT NOT NULL,
    PRIMARY KEY (reservation_id, other_reservation_id)
);
"""

TABLES = ("reservations", "reservation_conflicts")

_STREAM_EVENTS = (
    "SELECT type, data, hlc, writer, wseq, actor, pos FROM events WHERE stream = ?"
    " ORDER BY hlc, writer, wseq"
)


def fold_reservation(events: Iterable[tuple[Any, ...]]) -> dict[str, Any] | None:
    """Pure fold of one reservation stream (rows of _STREAM_EVENTS) into its current state."""
    row: dict[str, Any] | None = None
    for etype, raw, hlc, writer, wseq, actor, pos in events:
        data = orjson.loads(raw)
        at_ms = clock.hlc_ms(hlc)
        if etype == "file_reserved" and row is None:
            row = {
                "reservation_id": data["reservation_id"],
                "holder": data["holder"],
                "patterns": data["patterns"],
                "exclusive": int(bool(data["exclusive"])),
                "reason": data.get("reason"),
                "granted_hlc": hlc,
                "granted_writer": writer,
                "granted_wseq": wseq,
                "expires_ms": at_ms + data["ttl_seconds"] * 1000,
                "released": 0,
                "released_ms": None,
                "released_by": None,
                "forced": 0,
                "last_pos": pos,
            }
        elif row is None:
            continue  # a renewal or release whose grant has not arrived yet
        elif etype == "file_renewed" and not row["released"]:
            row["expires_ms"] = max(row["expires_ms"], at_ms + data["ttl_seconds"] * 1000)
        elif etype == "file_released" and not row["released"]:
            row.update(released=1, released_ms=at_ms, released_by=actor)
            row["forced"] = int(bool(data.get("forced")))
        if etype == "file_conflict":
            continue
        row["last_pos"] = max(row["last_pos"], pos)
    return row


def _refold_reservations(conn: sqlite3.Connection, streams: Iterable[str]) -> None:
    """One row per (reservation, pattern): the hooks then need no JSON at all."""
    for stream in streams:
        row = fold_reservation(conn.execute(_STREAM_EVENTS, (stream,)))
        if row is None:
            continue
        conn.execute("DELETE FROM reservations WHERE reservation_id = ?", (row["reservation_id"],))
        for pattern in dict.fromkeys(row.pop("patterns")):
            values = {**row, "pattern": pattern}
            columns = ", ".join(values)
            marks = ", ".join("?" * len(values))
            conn.execute(
                f"INSERT INTO reservations ({columns}) VALUES ({marks})", list(values.values())
            )


def _record_conflicts(conn: sqlite3.Connection, after_pos: int) -> None:
    for (raw,) in conn.execute(
        "SELECT data FROM events WHERE type = 'file_conflict' AND pos > ?", (after_pos,)
    ).fetchall():
        data = orjson.loads(raw)
        pair = sorted((data["reservation_id"], data["other_reservation_id"]))
        conn.execute("INSERT OR IGNORE INTO reservation_conflicts VALUES (?, ?)", pair)


def apply(conn: sqlite3.Connection, after_pos: int) -> None:
    """Fold the events ingested after `after_pos` into every projection."""
    streams = [
        s
        for (s,) in conn.execute(
            "SELECT DISTINCT stream FROM events WHERE pos > ? AND stream LIKE 'reservation/%'",
            (after_pos,),
        )
    ]
    _refold_reservations(conn, streams)
    _record_conflicts(conn, after_pos)


def rebuild(conn: sqlite3.Connection) -> None:
    """Refold every projection from all events."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table}")
    streams = [
        s
        for (s,) in conn.execute(
            "SELECT DISTINCT stream FROM events WHERE stream LIKE 'reservation/%'"
        )
    ]
    _refold_reservations(conn, streams)
    _record_conflicts(conn, 0)
