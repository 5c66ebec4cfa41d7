"""Pure folds: the events of one stream, in total order, become that entity's table rows.

Each module here owns the tables of one stream kind: `KIND`, `KEY` (the column holding the
stream's name), `DDL`, `TABLES` and `fold(events) -> {table: [row, ...]}`. Folds decide nothing
about time ("now"): what they produce depends on the events alone, so an incremental index and a
rebuilt one agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fleetgit import catalogue, clock

Rows = dict[str, list[dict[str, Any]]]


class Ev(NamedTuple):
    """An event as a fold sees it."""

    type: str
    data: dict[str, Any]
    hlc: int
    writer: str
    wseq: int
    actor: str | None
    pos: int

    @property
    def ms(self) -> int:
        return clock.hlc_ms(self.hlc)

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.hlc, self.writer, self.wseq)


def changes(e: Ev, *, keep_null: bool = False) -> dict[str, Any]:
    """An update event's changes that the catalogue accepts (a bad value stored before it was
    checked is ignored, the same way in every clone); null means unchanged unless `keep_null`."""
    valid = catalogue.valid_changes(e.type, e.data.get("changes"))
    return valid if keep_null else {k: v for k, v in valid.items() if v is not None}
