"""Cursors: how far a consumer has read, as a position of this clone.

Positions are local (the order this clone first saw events), so cursors live in the index and
not in git; `index rebuild` keeps them, because it keeps every event's position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit import clock
from fleetgit.catalogue import NAME_RE
from fleetgit.errors import ValidationError

if TYPE_CHECKING:
    from fleetgit.codec import Event
    from fleetgit.fleet import Fleet


def _check(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValidationError(f"cursor name {name!r}: use letters, digits and . _ : @ -")
    return name


def show(fleet: Fleet, name: str) -> dict[str, Any]:
    row = fleet.index.conn.execute(
        "SELECT pos, updated_ms FROM cursors WHERE name = ?", (_check(name),)
    ).fetchone()
    pos, updated = row if row else (0, None)
    pending = fleet.index.conn.execute(
        "SELECT count(*) FROM events WHERE pos > ?", (pos,)
    ).fetchone()[0]
    return {
        "name": name,
        "pos": pos,
        "pending": pending,
        "updated_at": clock.iso_ms(updated) if updated else None,
    }


def advance(fleet: Fleet, name: str, to: int) -> dict[str, Any]:
    last = fleet.index.max_pos()
    if to < 0 or to > last:
        raise ValidationError(f"--to {to}: positions here run from 0 to {last}")
    with fleet.index.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (_check(name), to, clock.now_ms())
        )
    return show(fleet, name)


def reset(fleet: Fleet, name: str) -> dict[str, Any]:
    with fleet.index.transaction() as conn:
        conn.execute("DELETE FROM cursors WHERE name = ?", (_check(name),))
    return show(fleet, name)


def unread(fleet: Fleet, name: str, *, limit: int | None = None) -> list[Event]:
    """Events after the cursor, in position order: an event that arrives late by a merge gets a
    new position, so a consumer reading by position never misses it."""
    from fleetgit.index.reads import _SELECT, row_to_event

    pos = show(fleet, name)["pos"]
    sql = _SELECT + " WHERE pos > ? ORDER BY pos" + (" LIMIT ?" if limit else "")
    params = (pos, limit) if limit else (pos,)
    return [row_to_event(r) for r in fleet.index.conn.execute(sql, params)]
