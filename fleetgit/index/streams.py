"""A stream's events read back from the index as the folds take them: upcast, in total order,
with its withdrawals honoured. The fold engine, the judging steps and emit's checks all read
through here, so none of them sees what the projections do not."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from fleetgit.domain import catalogue
from fleetgit.domain.fold import Ev, Key, honour_withdrawals
from fleetgit.domain.withdrawals.events import WITHDRAWN

SELECT = "SELECT stream, type, v, data, hlc, writer, wseq, actor, pos, id FROM events"


def ev(row: tuple[Any, ...]) -> Ev:
    """One row of SELECT as the folds take it (its data upcast to the current version)."""
    _, etype, v, data, hlc, writer, wseq, actor, pos, eid = row
    _, payload = catalogue.upcast(etype, v, orjson.loads(data))
    return Ev(etype, payload, hlc, writer, wseq, actor, pos, eid)


def stream_events(
    conn: sqlite3.Connection,
    stream: str,
    upto_pos: int | None = None,
    before: Key | None = None,
) -> list[Ev]:
    """Every event of `stream` (with `upto_pos`, up to that position; with `before`, those
    sorting before that place in total order), withdrawals honoured: a tombstone withdraws its
    event wherever it sorts, so every tombstone of the stream is read."""
    cond = ""
    params: list[object] = [stream]
    if before is not None:
        cond += " AND ((hlc, writer, wseq) < (?, ?, ?) OR type = ?)"
        params += [*before, WITHDRAWN]
    if upto_pos is not None:
        cond += " AND pos <= ?"
        params.append(upto_pos)
    rows = conn.execute(f"{SELECT} WHERE stream = ?{cond} ORDER BY hlc, writer, wseq", params)
    return honour_withdrawals([ev(r) for r in rows])
