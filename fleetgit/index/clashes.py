"""Clashes that merges bring in, settled by total order: which reservations are void.

Within a clone a clashing request is refused; across clones nothing can stop two overlapping
grants. When both reach one index, the rule is judged at each grant, in total order
`(hlc, writer, wseq)`: a reservation is void when one of its patterns clashes with a pattern of an
earlier reservation of another pilot that, at the grant, was granted, not released, not expired
(its expiry as extended by the renewals before the grant) and not itself void. Exclusive clashes
with anything, shared only with exclusive; overlap is judged case-sensitively (the ledger's paths,
whatever a clone's core.ignorecase); a pattern its grant records as naming a file
(`file_patterns`) covers that one path, nothing below it. A later release, expiry or renewal of
the winner changes nothing: once void, always void.

A cross-stream step after the per-stream folds: it reads the `reservations` and
`reservation_terms` projections and writes `reservation_lost`. When events at or after `since`
in total order arrive, only the grants from `since` on are judged again, against what was live at
`since`: an append costs one pass over the live reservations, not over the history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import Any

from fleetgit.domain.fold import Key
from fleetgit.guard import patterns
from fleetgit.ledger import clock

TABLES = ("reservation_lost",)
DDL = """
-- Void reservations (index.clashes): derived from the reservation projections
CREATE TABLE IF NOT EXISTS reservation_lost (
    reservation_id TEXT PRIMARY KEY,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    pattern TEXT NOT NULL,
    winner_id TEXT NOT NULL,
    winner_pattern TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservation_lost_order ON reservation_lost (hlc, writer, wseq);
"""

# the event types that can change which reservations are void (file_conflict cannot)
CHANGES = ("file_reserved", "file_renewed", "file_released")

_FROM = "(hlc, writer, wseq) >= (:hlc, :writer, :wseq)"
_LIVE_AT = f"""
SELECT r.reservation_id, r.granted_hlc, r.granted_writer, r.granted_wseq, r.holder,
    r.exclusive, r.pattern,
    (SELECT t.until_ms FROM reservation_terms t WHERE t.reservation_id = r.reservation_id
        AND (t.hlc, t.writer, t.wseq) < (:hlc, :writer, :wseq)
        ORDER BY t.hlc DESC, t.writer DESC, t.wseq DESC LIMIT 1),
    r.is_file
FROM reservations r
WHERE r.reservation_id IN (
        SELECT reservation_id FROM reservations WHERE released = 0 AND expires_ms > :ms
        UNION SELECT reservation_id FROM reservation_terms WHERE {_FROM})
    AND (r.granted_hlc, r.granted_writer, r.granted_wseq) < (:hlc, :writer, :wseq)
    AND NOT EXISTS (SELECT 1 FROM reservation_lost l WHERE l.reservation_id = r.reservation_id)
ORDER BY r.reservation_id, r.pattern
"""
_GRANTS_FROM = f"SELECT 1 FROM reservation_terms WHERE {_FROM} AND is_grant = 1 LIMIT 1"
_TERMS = """
SELECT t.reservation_id, t.hlc, t.writer, t.wseq, t.is_grant, t.until_ms, r.holder, r.exclusive,
    r.pattern, r.is_file
FROM (SELECT * FROM reservation_terms {where}) t
LEFT JOIN reservations r ON t.is_grant = 1 AND r.reservation_id = t.reservation_id
ORDER BY t.hlc, t.writer, t.wseq, r.pattern
"""
_ONE = """
SELECT reservation_id, granted_hlc, granted_writer, granted_wseq, holder, exclusive, pattern, ?,
    is_file
FROM reservations r WHERE reservation_id = ?
    AND NOT EXISTS (SELECT 1 FROM reservation_lost l WHERE l.reservation_id = r.reservation_id)
ORDER BY pattern
"""


def area(pattern: str) -> str:
    """The literal directories that begin every path `pattern` covers ('' when none): two
    patterns can overlap only when one's area begins the other's."""
    cut = min((i for i in map(pattern.find, "*?[\\") if i >= 0), default=len(pattern))
    return pattern[: pattern.rfind("/", 0, cut) + 1]


class Holding:
    """One reservation as the walk sees it: its patterns (sorted, each with its area and
    whether its grant says it names a file) and how long it counts as of the walk's point."""

    __slots__ = ("exclusive", "holder", "key", "patterns", "rid", "until")

    def __init__(
        self,
        rid: str,
        key: Key,
        holder: str,
        exclusive: bool,
        found: Iterable[tuple[str, bool]],
        until: int,
    ) -> None:
        self.rid, self.key, self.holder, self.exclusive = rid, key, holder, exclusive
        self.patterns = [(p, area(p), bool(f)) for p, f in sorted(found)]
        self.until = until

    def clash(self, other: Holding) -> tuple[str, str] | None:
        """(my pattern, its pattern) of the first overlap, when the two clash at all."""
        if self.holder == other.holder or not (self.exclusive or other.exclusive):
            return None
        for mine, my_area, my_file in self.patterns:
            for theirs, their_area, their_file in other.patterns:
                if not (my_area.startswith(their_area) or their_area.startswith(my_area)):
                    continue
                if patterns.overlaps(mine, theirs, a_file=my_file, b_file=their_file):
                    return mine, theirs
        return None


class _Node:
    """One directory of the tree of areas: the reservations with a pattern whose area it is."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.members: dict[str, Holding] = {}


class Live:
    """The reservations that count at the walk's point, in a tree of their areas: what a grant
    can clash with is found along its area's path and below it, not among all of them."""

    def __init__(self) -> None:
        self.by_id: dict[str, Holding] = {}
        self.root = _Node()

    def add(self, h: Holding) -> None:
        self.by_id[h.rid] = h
        for _, a, _ in h.patterns:
            node = self.root
            for name in a.split("/")[:-1]:
                node = node.children.setdefault(name, _Node())
            node.members[h.rid] = h

    def remove(self, h: Holding) -> None:
        del self.by_id[h.rid]
        for _, a, _ in h.patterns:
            names = a.split("/")[:-1]
            path = [self.root]
            for name in names:
                nxt = path[-1].children.get(name)
                if nxt is None:
                    break  # gone with another of its patterns, of the same area
                path.append(nxt)
            if len(path) <= len(names):
                continue
            path[-1].members.pop(h.rid, None)
            for depth in range(len(names), 0, -1):  # no empty directories left to search
                if path[depth].members or path[depth].children:
                    break
                del path[depth - 1].children[names[depth - 1]]

    def _near(self, area_: str, found: dict[str, Holding]) -> None:
        """Add to `found` the members whose area begins `area_` or lies below it."""
        node = self.root
        found.update(node.members)
        for name in area_.split("/")[:-1]:
            nxt = node.children.get(name)
            if nxt is None:
                return
            node = nxt
            found.update(node.members)
        below = list(node.children.values())
        while below:
            node = below.pop()
            found.update(node.members)
            below.extend(node.children.values())

    def winner(self, grant: Holding, ms: int) -> tuple[Holding, str, str] | None:
        """The earliest live reservation that `grant` clashes with, and the two patterns."""
        found: dict[str, Holding] = {}
        for _, a, _ in grant.patterns:
            self._near(a, found)
        for other in sorted(found.values(), key=lambda h: h.key):
            if other.until <= ms:
                self.remove(other)  # expired: a renewal brings it back (see `settle`)
                continue
            pair = grant.clash(other)
            if pair is not None:
                return other, *pair
        return None


def _holdings(rows: Iterable[tuple[Any, ...]]) -> Iterator[Holding]:
    """Rows of (id, hlc, writer, wseq, holder, exclusive, pattern, until, is_file), one per
    pattern."""
    for (rid, hlc, writer, wseq, holder, excl, until), group in groupby(
        rows, key=lambda r: (*r[:6], r[7])
    ):
        found = ((r[6], bool(r[8])) for r in group)
        yield Holding(rid, (hlc, writer, wseq), holder, bool(excl), found, until)


def settle(conn: sqlite3.Connection, since: Key | None) -> None:
    """Judge every grant at or after `since` in total order again (None: every grant)."""
    live = Live()
    at: dict[str, Any] = {}
    if since is None:
        conn.execute("DELETE FROM reservation_lost")
    else:
        at = {"hlc": since[0], "writer": since[1], "wseq": since[2]}
        conn.execute(f"DELETE FROM reservation_lost WHERE {_FROM}", at)
        if conn.execute(_GRANTS_FROM, at).fetchone() is None:
            return  # a renewal or a release after every grant: no verdict can change
        ms = clock.hlc_ms(since[0])
        for h in _holdings(conn.execute(_LIVE_AT, {**at, "ms": ms})):
            if h.until is not None and h.until > ms:
                live.add(h)
    lost: list[tuple[Any, ...]] = []
    void: set[str] = set()
    where = "" if since is None else f"WHERE {_FROM}"
    terms = conn.execute(_TERMS.format(where=where), at)
    for (rid, hlc, writer, wseq, is_grant, until), rows in groupby(terms, key=lambda r: r[:6]):
        ms = clock.hlc_ms(hlc)
        if is_grant:
            group = [r for r in rows if r[6] is not None]
            if not group:
                continue  # a grant with no usable pattern holds nothing
            holder, exclusive = group[0][6], bool(group[0][7])
            found = ((r[8], bool(r[9])) for r in group)
            grant = Holding(rid, (hlc, writer, wseq), holder, exclusive, found, until)
            won = live.winner(grant, ms)
            if won is not None:
                winner, mine, theirs = won
                void.add(rid)
                lost.append((rid, hlc, writer, wseq, mine, winner.rid, theirs))
            elif until > ms:
                live.add(grant)
            continue
        held = live.by_id.get(rid)
        if held is not None:
            held.until = until
            if until <= ms:
                live.remove(held)
        elif until > ms and rid not in void:  # renewed after it had expired: it counts again
            for h in _holdings(conn.execute(_ONE, (until, rid))):
                live.add(h)
    conn.executemany("INSERT INTO reservation_lost VALUES (?, ?, ?, ?, ?, ?, ?)", lost)
