"""Signatures checked again from the segments alone, independent of what an index believed
(issue 17): for `fleetgit verify`, and for the trust tables of an index snapshot.

The keys are derived from the key events of every segment read, batch by batch in total order
(each key batch checked by its own signatures, as index/trust.py checks a batch read alone),
so the read order of writers decides nothing. Then each segment copy is checked as ingest
checks a segment read whole: one signature per actor where the chain allows (index/trust.py,
`Segment`), batch by batch where it does not, so each uncovered line is named with its reason.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fleetgit.index import trust
from fleetgit.ledger.codec import Event
from fleetgit.ledger.segments import line_hash

Item = tuple[Event, bytes]
KeyRow = tuple[str, str, int, str, int, int | None, str | None, int | None]

_KEYS_TABLE = """
CREATE TABLE pilot_keys (
    callsign TEXT NOT NULL, key TEXT NOT NULL,
    added_hlc INTEGER NOT NULL, added_writer TEXT NOT NULL, added_wseq INTEGER NOT NULL,
    revoked_hlc INTEGER, revoked_writer TEXT, revoked_wseq INTEGER,
    PRIMARY KEY (callsign, key)
)"""


class _Scratch:
    """What index/trust.py's key bookkeeping needs of an index: a `pilot_keys` table, here in
    memory and empty at first."""

    def __init__(self, config: Any = None) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(_KEYS_TABLE)
        self.config = config  # its admin keys (index/trust.py `admin_keys`)


class Keys:
    """The pilots' keys as the key events of some segments establish them."""

    def __init__(self, config: Any = None) -> None:
        self._db = _Scratch(config)
        self.keys = trust.Keys(self._db)  # type: ignore[arg-type]
        self._seen: set[tuple[str, int]] = set()
        self._batches: list[tuple[trust.Order, str, int, list[Item]]] = []

    def collect(self, writer: str, segment: int, items: list[Item]) -> None:
        """Keep the key batches of one segment copy (a batch seen in another copy once)."""
        if not any(e.type in trust.KEY_TYPES for e, _ in items):
            return
        for batch in trust.batch_ranges(items):
            if not any(items[i][0].type in trust.KEY_TYPES for i in batch):
                continue
            first, line = items[batch.start]
            mark = (first.id, line_hash(line))
            if mark in self._seen:
                continue
            self._seen.add(mark)
            order = (first.hlc, first.writer, first.wseq)
            self._batches.append((order, writer, segment, [items[i] for i in batch]))

    def derive(self) -> None:
        """Learn the collected key batches in total order."""
        for _, writer, segment, batch in sorted(self._batches, key=lambda b: b[0]):
            seg = trust.Segment(batch, writer, segment, self.keys)
            trust.learn_keys(seg, [range(len(batch))])
        self._batches.clear()

    def rows(self) -> set[KeyRow]:
        return set(self._db.conn.execute("SELECT * FROM pilot_keys"))


def uncovered(writer: str, segment: int, items: list[Item], keys: Keys) -> dict[int, str]:
    """The lines (indexes into `items`, a segment read from its start) that no valid signature
    of their actor covers, with the reason, batch neighbours included (ingest keeps a batch
    whole or not at all)."""
    actors = {e.actor for e, _ in items if e.actor is not None}
    if not actors:
        return {}
    seg = trust.Segment(items, writer, segment, keys.keys)
    return {} if seg.whole_fast(actors) else seg.uncovered(whole=True)


def index_keys(conn: Any) -> set[KeyRow]:
    return set(conn.execute("SELECT * FROM pilot_keys"))


class Summary:
    """What deciding a segment copy's one-signature-per-actor check needs once the keys are
    known (index/trust.py `Segment.whole_fast`, split in two): per actor, the message and
    signature of its newest signed line, whose stated chain is the segment's real one, and the
    first and last place of its lines in total order. None from `summarize` when the copy
    cannot take that path (an actor's last line unsigned, a chain that does not match)."""

    __slots__ = ("checks",)

    def __init__(self) -> None:
        self.checks: list[tuple[str, bytes, bytes, trust.Order, trust.Order]] = []


def summarize(writer: str, segment: int, items: list[Item]) -> Summary | None:
    from fleetgit.ledger import sigs

    # the keys are not known yet: newest and span read the lines alone
    seg = trust.Segment(items, writer, segment, None)  # type: ignore[arg-type]
    newest = seg.newest({e.actor for e, _ in items if e.actor is not None})
    if newest is None:
        return None
    out = Summary()
    for actor, k, b, base in newest:
        body, field = sigs.split(items[k][1])
        packed = sigs.unpack(field or b"")
        if packed is None or packed[0] != base:
            return None
        msg = sigs.message(writer, base, [items[j][1] for j in range(b, k)], body)
        out.checks.append((actor, msg, packed[1], *seg.span(actor)))
    return out


def summary_holds(summary: Summary, keys: Keys) -> bool:
    """Is every line of the summarized copy covered, by the keys as derived?"""
    from fleetgit.ledger import keys as crypto

    for actor, msg, signature, first, last in summary.checks:
        if not any(
            k.valid_at(first) and k.valid_at(last) and crypto.verify(k.raw, signature, msg)
            for k in keys.keys.of(actor)
        ):
            return False
    return True
