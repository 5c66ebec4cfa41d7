"""Cursors: how far a consumer has read, as a position of this clone.

Positions are local (the order this clone first saw events), so cursors live in the index and
not in git; `index rebuild` keeps them, because it keeps every event's position. A cursor is
clone-local state, not a projection of events: nothing records its past values, so it has no
`--as-of` (to read what a consumer had not seen at a position, `cursor advance NAME --to POS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.index.reads import EventFilter
from fleetgit.ledger import clock
from fleetgit.ledger.errors import ValidationError
from fleetgit.ledger.schema import check_name, name_like

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet
    from fleetgit.ledger.codec import Event


def _check(name: str) -> str:
    return check_name(name, "cursor name", f"fleetgit cursor show {name_like(name)}")


def _read(fleet: Fleet, name: str) -> tuple[int, int | None]:
    """(position, when it was last moved): (0, None) for a cursor never moved."""
    row = fleet.index.conn.execute(
        "SELECT pos, updated_ms FROM cursors WHERE name = ?", (_check(name),)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, None)


def show(fleet: Fleet, name: str) -> dict[str, Any]:
    pos, updated = _read(fleet, name)
    pending = fleet.index.conn.execute(
        "SELECT count(*) FROM events WHERE pos > ?", (pos,)
    ).fetchone()[0]
    return {
        "name": name,
        "pos": pos,
        "pending": pending,
        "updated_at": clock.iso_ms(updated) if updated else None,
    }


def _store(fleet: Fleet, name: str, pos: int) -> None:
    with fleet.index.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (_check(name), pos, clock.now_ms())
        )


def advance(fleet: Fleet, name: str, to: int) -> dict[str, Any]:
    last = fleet.index.max_pos()
    if to < 0 or to > last:
        raise ValidationError(
            f"--to {to}: positions here run from 0 to {last}",
            hint=f"fleetgit cursor advance {name} --to {last}",
        )
    _store(fleet, name, to)
    return show(fleet, name)


def reset(fleet: Fleet, name: str) -> dict[str, Any]:
    with fleet.index.transaction() as conn:
        conn.execute("DELETE FROM cursors WHERE name = ?", (_check(name),))
    return show(fleet, name)


def consume(
    fleet: Fleet, name: str, flt: EventFilter | None = None, *, advance: bool = False
) -> list[Event]:
    """The events after the cursor that match `flt` (types, stream, actor, time), by position:
    an event that arrives late by a merge gets a new position, so a consumer never misses it.

    With `advance` the cursor moves to the last position examined: the last event returned when
    `flt.limit` cut the list short, else the newest position, so events the filters skipped are
    passed over for good."""
    from fleetgit.index.reads import _SELECT, row_to_event, where_clause

    flt = flt or EventFilter()
    if flt.after_pos is not None or flt.reverse:
        raise ValidationError(
            "--consumer reads forward from its cursor: --after and --reverse do not apply",
            hint=f"fleetgit cursor advance {name} --to POS moves the cursor",
        )
    cursor, last = _read(fleet, name)[0], fleet.index.max_pos()
    where, params = where_clause(flt._replace(after_pos=cursor))
    sql = _SELECT + where + " AND pos <= ? ORDER BY pos" + (" LIMIT ?" if flt.limit else "")
    params += [last, flt.limit] if flt.limit else [last]
    found = [row_to_event(r) for r in fleet.index.conn.execute(sql, params)]
    if advance:
        cut = bool(flt.limit) and len(found) == flt.limit
        upto = (found[-1].pos or cursor) if cut else last
        if upto > cursor:
            _store(fleet, name, upto)
    return found
