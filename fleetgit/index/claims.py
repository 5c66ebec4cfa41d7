"""Claims and starts of sorties, judged across streams: which takeovers count, and which
claims or starts came after their mission ended.

`sortie claim` takes a sortie over only from a pilot that is no longer active (silent for
`pilot_active_window_seconds`, or deregistered), and refuses a sortie whose mission is over;
`emit` refuses the same. Another clone can commit such a claim anyway, so the sortie fold applies
both rules with what this step judged (`domain.sorties.fold.Judged`), from the events alone, up
to the claim's point in total order, the same in every clone and every rebuild:

- a takeover (listed by the fold in `sortie_takeovers`, whatever the state) counts when, just
  before it, its previous assignee had deregistered or its newest event was more than the window
  older (`domain.pilots.fold.active`, as the commands judge it at now). The verdicts go to
  `sortie_taken`; like index.forcing's, one is judged again only when an event by that pilot or
  on its pilot stream arrives, or the window changes (`configure`);
- a claim or start counts unless the sortie's mission ended (`mission_ends`) before it. The fold
  records, per mission, the last such event it kept and the first it ignored
  (`sortie_missions`); a sortie is folded again when its mission's end moves across one of
  them (a mission that ends after its sortie's work, the usual case, refolds nothing).

The sorties whose verdicts or mission ends changed are folded again, whole, by the engine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from fleetgit.domain.fold import Key
from fleetgit.domain.pilots.fold import active
from fleetgit.index import verdicts as stored
from fleetgit.index.forcing import holder_state
from fleetgit.ledger import clock
from fleetgit.ledger.config import Config

TABLES = ("sortie_taken",)
DDL = stored.table(
    "sortie_taken",
    "sortie_id",
    "Verdicts on takeovers of sorties (index.claims): ok = the previous assignee was not active",
)

WINDOW_KEY = "takeover_window_ms"
# after a sortie is folded again: its verdicts on takeovers it no longer lists are forgotten
FORGET = stored.forget("sortie_taken", "sortie_id", "sortie_takeovers")


def window_of(config: Config) -> int:
    """The activity window, in ms: a pilot seen within it is active."""
    return config.pilot_active_window_seconds * 1000


def configured(conn: sqlite3.Connection) -> int | None:
    """The window a Fleet set (`projections.configure`), if any."""
    return stored.setting(conn, WINDOW_KEY)


def stored_window(conn: sqlite3.Connection) -> int:
    """The window the verdicts were judged with (the defaults' until a Fleet sets it)."""
    found = configured(conn)
    return window_of(Config()) if found is None else found


def accepted(conn: sqlite3.Connection, sids: list[str]) -> dict[str, set[Key]]:
    """The takeovers that count, of each of these sorties."""
    return stored.accepted(conn, "sortie_taken", "sortie_id", sids)


class Ends:
    """Each mission's end in total order, looked up once; `folded` holds those of the missions
    folded in the same chunk, not yet written (the engine fills it)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[str, Key | None] = {}

    def folded(self, mission_id: str, rows: list[dict[str, Any]]) -> None:
        end = rows[0] if rows else None
        self.known[mission_id] = None if end is None else (end["hlc"], end["writer"], end["wseq"])

    def of(self, mission_id: str) -> Key | None:
        if mission_id not in self.known:
            row = self.conn.execute(
                "SELECT hlc, writer, wseq FROM mission_ends WHERE mission_id = ?", (mission_id,)
            ).fetchone()
            self.known[mission_id] = None if row is None else (row[0], row[1], row[2])
        return self.known[mission_id]


_ALL = "SELECT sortie_id, hlc, writer, wseq, previous FROM sortie_takeovers"
# What events after :pos can have changed: the takeovers of the sorties folded since that have no
# verdict yet, and those whose previous assignee has a new event (by it, or on its pilot stream)
# that sorts before them (an append sorts after them all: it judges nothing again). NOT INDEXED:
# the new events are a range of positions, not of streams or actors
_TOUCHED = """
WITH fresh (who, first) AS (
    SELECT actor, min(hlc) FROM events NOT INDEXED
        WHERE pos > :pos AND actor IS NOT NULL GROUP BY actor
    UNION ALL SELECT substr(stream, 7), min(hlc) FROM events NOT INDEXED
        WHERE pos > :pos AND stream >= 'pilot/' AND stream < 'pilot0' GROUP BY stream)
SELECT t.sortie_id, t.hlc, t.writer, t.wseq, t.previous FROM sortie_takeovers t
    WHERE t.sortie_id IN (SELECT substr(stream, 8) FROM events NOT INDEXED
        WHERE pos > :pos AND stream >= 'sortie/' AND stream < 'sortie0')
    AND NOT EXISTS (SELECT 1 FROM sortie_taken v WHERE v.sortie_id = t.sortie_id
        AND v.hlc = t.hlc AND v.writer = t.writer AND v.wseq = t.wseq)
UNION
SELECT t.sortie_id, t.hlc, t.writer, t.wseq, t.previous FROM fresh f
    JOIN sortie_takeovers t ON t.previous = f.who AND t.hlc >= f.first
"""
# the sorties whose claims and starts in a mission were judged with an end that has moved since:
# to before the last one kept, or away from before the first one ignored
_MOVED = """
SELECT DISTINCT s.sortie_id FROM sortie_missions s
    LEFT JOIN mission_ends m ON m.mission_id = s.mission_id
    WHERE ((m.hlc IS NOT NULL AND s.kept_hlc IS NOT NULL
        AND (m.hlc, m.writer, m.wseq) < (s.kept_hlc, s.kept_writer, s.kept_wseq))
    OR (s.ignored_hlc IS NOT NULL AND (m.hlc IS NULL
        OR (m.hlc, m.writer, m.wseq) > (s.ignored_hlc, s.ignored_writer, s.ignored_wseq))))
"""
_MISSIONS_AFTER = """
    AND s.mission_id IN (SELECT substr(stream, 9) FROM events NOT INDEXED
        WHERE pos > :pos AND stream >= 'mission/' AND stream < 'mission0')
"""


# _TOUCHED's second half for one pilot: its takeovers from a point of total order on
_BY_PREVIOUS = (
    "SELECT sortie_id, hlc, writer, wseq, previous FROM sortie_takeovers"
    " WHERE previous = ? AND hlc >= ?"
)


def _touched_by(conn: sqlite3.Connection, events: Sequence[Any]) -> list[Any]:
    """What _TOUCHED finds for `events` (the events after its position, given: a batch this
    process just appended) when none of them is on a sortie stream (its first half then finds
    nothing): the takeovers of a previous assignee that is an actor of them, or whose pilot
    stream they are on, from the first of them on; one indexed lookup per pilot."""
    first: dict[str, int] = {}
    for e in events:
        pilot = e.stream[6:] if e.stream.startswith("pilot/") else None
        for who in (e.actor, pilot):
            if who is not None and e.hlc < first.get(who, e.hlc + 1):
                first[who] = e.hlc
    found: dict[tuple[Any, ...], None] = {}  # the UNION's: each takeover once, in order
    for who, hlc in first.items():
        found.update(dict.fromkeys(conn.execute(_BY_PREVIOUS, (who, hlc)).fetchall()))
    return list(found)


def judge(
    conn: sqlite3.Connection,
    after_pos: int | None,
    upto_pos: int | None = None,
    new: Sequence[Any] | None = None,
) -> list[str]:
    """Judge the takeovers that events after `after_pos` can have changed (None: all of them),
    and find the sorties that saw a mission's end that has moved since. Returns the sorties to
    fold again (their takeovers' verdicts changed, or an end they saw moved), sorted. `new`:
    the events after `after_pos` (an append's own batch), to ask only what they can change."""
    kinds = None if new is None else {e.stream.partition("/")[0] for e in new}
    if after_pos is None:
        found = conn.execute(_ALL).fetchall()
        moved = conn.execute(_MOVED).fetchall()
    else:
        if kinds is not None and "sortie" not in kinds:  # no sortie of theirs to judge
            found = _touched_by(conn, new or ())
        else:
            found = conn.execute(_TOUCHED, {"pos": after_pos}).fetchall()
        if kinds is not None and "mission" not in kinds:  # no mission whose end they move
            moved = []
        else:
            moved = conn.execute(_MOVED + _MISSIONS_AFTER, {"pos": after_pos}).fetchall()
    if not found and not moved and after_pos is not None:  # a full pass clears (Before)
        return []
    window = stored_window(conn)
    before = stored.Before(conn, "sortie_taken", "sortie_id", after_pos is None)
    changed = {sid for (sid,) in moved}
    verdicts: list[tuple[Any, ...]] = []
    for sid, hlc, writer, wseq, previous in found:
        key = (hlc, writer, wseq)
        last, gone = holder_state(conn, previous, key, upto_pos)
        ok = int(not active(last, gone, clock.hlc_ms(hlc), window))
        if ok != before.ok(sid, key):
            changed.add(sid)
        verdicts.append((sid, hlc, writer, wseq, ok))
    conn.executemany("INSERT OR REPLACE INTO sortie_taken VALUES (?, ?, ?, ?, ?)", verdicts)
    return sorted(changed)
