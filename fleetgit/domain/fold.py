"""Pure folds: the events of one stream, in total order, become that entity's table rows.

Each module here owns the tables of one stream kind: `KIND`, `KEY` (the column holding the
stream's name), `DDL`, `TABLES` and `fold(events) -> {table: [row, ...]}`. Folds decide nothing
about time ("now"): what they produce depends on the events alone, so an incremental index and a
rebuilt one agree.

A module whose rows are its whole state sets `RESUMES = True` and takes `fold(events, start)`:
`start` is what it stored for the stream before (read back from the index, in the order it was
stored), and `fold(later, fold(earlier))` equals `fold(earlier + later)`. An append to a stream
then folds only the new events onto the stored rows instead of the stream's whole history, when
they sort after every older event of the stream (tests/test_projections.py checks the equality).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fleetgit.domain import catalogue
from fleetgit.domain.withdrawals.events import WITHDRAWN
from fleetgit.ledger import clock

Rows = dict[str, list[dict[str, Any]]]
Key = tuple[int, str, int]  # (hlc, writer, wseq): an event's place in total order


class Ev(NamedTuple):
    """An event as a fold sees it."""

    type: str
    data: dict[str, Any]
    hlc: int
    writer: str
    wseq: int
    actor: str | None
    pos: int
    id: str = ""  # the event's id: what a tombstone names (honour_withdrawals)

    @property
    def ms(self) -> int:
        return clock.hlc_ms(self.hlc)

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.hlc, self.writer, self.wseq)


def has_withdrawal(events: list[Ev]) -> bool:
    for e in events:  # noqa: SIM110 (a loop, not any(genexpr): asked of every stream folded)
        if e.type == WITHDRAWN:
            return True
    return False


def honour_withdrawals(events: list[Ev]) -> list[Ev]:
    """The events of one stream without its tombstones and the events they withdraw: those
    by the withdrawn event's own actor (any other tombstone counts for nothing)."""
    if not has_withdrawal(events):
        return events
    actors = {e.id: e.actor for e in events if e.id}
    gone = {
        e.data.get("event_id")
        for e in events
        if e.type == WITHDRAWN and e.data.get("event_id") in actors
        and actors[e.data["event_id"]] == e.actor
    }  # fmt: skip
    return [e for e in events if e.type != WITHDRAWN and e.id not in gone]


def stored_row(start: Rows | None, table: str) -> dict[str, Any] | None:
    """The one row a resumable fold stored in `table` for its stream (a copy), if any."""
    rows = start.get(table) if start else None
    return dict(rows[0]) if rows else None


def changes(e: Ev, *, keep_null: bool = False) -> dict[str, Any]:
    """An update event's changes that the catalogue accepts (a bad value stored before it was
    checked is ignored, the same way in every clone); null means unchanged unless `keep_null`."""
    valid = catalogue.valid_changes(e.type, e.data.get("changes"))
    return valid if keep_null else {k: v for k, v in valid.items() if v is not None}
