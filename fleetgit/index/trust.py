"""Who wrote an event: the signatures of a segment's lines, checked on ingest (issue 17).

`screen` is called once per segment portion that ingest takes (index/store.py `ingest`). Every
event must be covered by a signature of its actor's key, valid at the event's place in total
order (ledger/sigs.py says what a signature covers). Policy (`trust` in .fleet/config.toml):
`off` checks nothing; `warn` ingests everything and records what is not covered in
`quarantine` (kept = 1); `require` keeps such a batch out of the events (so out of every
projection, the hooks and the checks) and records it in `quarantine` (kept = 0) with the reason,
for `fleetgit quarantine` and `verify`. A batch held back for want of a key is screened again
when a key of its actor arrives (a registration another source brings later).

Keys come from the events themselves, in total order: a pilot's first registration carrying a
key (signed by that key), `pilot_spawned` (signed by the parent), `pilot_key_added` (signed by a
key the pilot already had) and `pilot_key_revoked` (signed by any of its keys, the revoked one
included; the key stops counting for events that sort after the revocation).

Speed: a whole segment (a rebuild, a committed blob) checks ONE signature per actor, its newest,
when the chain value it states is the segment's real one: it vouches for every byte before it.
Anything else (a catch-up in the middle of a file, a failure) is checked batch by batch, so a bad
line is named exactly and the good batches before it still count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from itertools import compress, repeat
from operator import attrgetter, getitem, itemgetter
from typing import TYPE_CHECKING, Any

from fleetgit.ledger import sigs
from fleetgit.ledger.codec import Event
from fleetgit.ledger.segments import line_hash

if TYPE_CHECKING:
    from fleetgit.index.store import IndexDB

Order = tuple[int, str, int]
Item = tuple[Event, bytes]
KEY_TYPES = ("pilot_registered", "pilot_spawned", "pilot_key_added", "pilot_key_revoked")
_KEY_TYPES = frozenset(KEY_TYPES)
ADMIN_TYPES = ("pilot_key_added", "pilot_key_revoked")  # what a fleet admin key may sign
_NEVER: Order = ((1 << 63) - 1, "", 0)  # after every event


class _Key:
    __slots__ = ("added", "raw", "revoked", "text")

    def __init__(self, text: str, raw: bytes, added: Order, revoked: Order | None) -> None:
        self.text, self.raw, self.added, self.revoked = text, raw, added, revoked

    def valid_at(self, order: Order) -> bool:
        return self.added <= order and (self.revoked is None or order <= self.revoked)


class Keys:
    """The keys of the pilots a screen meets (the index's `pilot_keys`, derived by `derive`),
    and the fleet's admin keys (`admin_keys` in .fleet/config.toml)."""

    cache = False  # remember signature checks (`derive` checks the same batches again)

    def __init__(self, db: IndexDB) -> None:
        self.db = db
        self.by_pilot: dict[str, list[_Key]] = {}
        self.changed: set[str] = set()
        self.admins = admin_keys(getattr(db, "config", None))

    def of(self, callsign: str) -> list[_Key]:
        got = self.by_pilot.get(callsign)
        if got is None:
            got = []
            for row in self.db.conn.execute(
                "SELECT key, added_hlc, added_writer, added_wseq, revoked_hlc, revoked_writer,"
                " revoked_wseq FROM pilot_keys WHERE callsign = ?",
                (callsign,),
            ):
                raw = sigs.decode_key(row[0])
                if raw is not None:
                    revoked = None if row[4] is None else (row[4], row[5], row[6])
                    got.append(_Key(row[0], raw, (row[1], row[2], row[3]), revoked))
            self.by_pilot[callsign] = got
        return got

    def missing(self, actors: Iterable[str | None]) -> bool:
        """Has one of `actors` no key at all (yet)?"""
        return any(not self.of(a) for a in actors if a is not None)


class _Trial(Keys):
    """The keys `derive` tries a key event's batch with: fixed lists, no index."""

    cache = True

    def __init__(self, admins: dict[str, bytes], keys: dict[str, list[_Key]]) -> None:
        self.by_pilot, self.admins, self.changed = keys, admins, set()

    def of(self, callsign: str) -> list[_Key]:
        return self.by_pilot.get(callsign, [])


ADMIN_PREFIX = "ed25519:"


def admin_keys(config: Any) -> dict[str, bytes]:
    """The fleet's admin public keys (`admin_keys` in .fleet/config.toml, as
    `ed25519:<base64url>`), by their text as events name them (without the prefix)."""
    out: dict[str, bytes] = {}
    for item in str(getattr(config, "admin_keys", "") or "").split(","):
        text = item.strip().removeprefix(ADMIN_PREFIX)
        raw = sigs.decode_key(text) if text else None
        if raw is not None:
            out[text] = raw
    return out


def settings(config: Any) -> str:
    """What of the configuration the trust verdicts depend on: when it changes (another
    policy, another admin list), the index is rebuilt (see catchup.Index.catch_up)."""
    return f"{config.trust} {','.join(sorted(admin_keys(config)))}"


def _order(e: Event) -> Order:
    return (e.hlc, e.writer, e.wseq)


_EVENT, _LINE = itemgetter(0), itemgetter(1)
_HLC, _TYPE, _ACTOR = attrgetter("hlc"), attrgetter("type"), attrgetter("actor")
_ID, _WRITER = attrgetter("id"), attrgetter("writer")
_PREFIXES = repeat(sigs.PREFIX)  # with map(bytes.startswith, lines, _PREFIXES)
_FIELD = slice(len(sigs.PREFIX), len(sigs.PREFIX) + sigs.SIG_CHARS)  # a signed line's value
_ID_CHARS = 36  # an event id: a lower-case UUID (intake)


def batch_ranges(items: list[Item]) -> list[range]:
    """The batches, as the parse made them (complete: `txn` lines of one `tx`)."""
    out: list[range] = []
    start = 0
    while start < len(items):
        end = start + max(1, items[start][0].txn)
        out.append(range(start, min(end, len(items))))
        start = end
    return out


class Segment:
    """One portion of a segment being screened."""

    def __init__(
        self, items: list[Item], writer: str, segment: int, keys: Keys, base: bytes | None = None
    ) -> None:
        self.items, self.writer, self.segment, self.keys = items, writer, segment, keys
        self.base = base or sigs.genesis(writer, segment)  # the chain before items[0]
        self._fields: list[bytes | None] | None = None
        self._covered: list[bool] | None = None
        self.reason: dict[int, str] = {}

    @property
    def fields(self) -> list[bytes | None]:
        """The `_sig` value of each line (None: unsigned); `split` checks its form when used."""
        if self._fields is None:
            self._fields = [self.field(i) for i in range(len(self.items))]
        return self._fields

    def field(self, i: int) -> bytes | None:
        line = self.items[i][1]
        return line[9 : 9 + sigs.SIG_CHARS] if line[:9] == sigs.PREFIX else None

    @property
    def covered(self) -> list[bool]:
        if self._covered is None:
            self._covered = [e.actor is None for e, _ in self.items]
        return self._covered

    def body(self, k: int) -> bytes:
        return sigs.split(self.items[k][1])[0]

    def whole_fast(self, actors: set[str]) -> bool:
        """A segment read from its start, the common case: for each actor, its newest signed
        line, if the chain value it states is the segment's real one and its key was valid
        over the whole segment, covers every line of that actor before it. True when every
        line is covered so (nothing else to check)."""
        newest = self.newest(actors)
        if newest is None:
            return False
        hlcs: list[int] | None = None
        for actor, k, b, base in newest:
            key = self._signature_ok(range(b, k + 1), k, base, [])
            if key is None:
                return False
            # its key must be valid at each line of its actor: at the first and the last in
            # order. Tried first with the portion's lowest and highest clock (every actor's
            # lines lie within them; two passes in C), which decides unless the key was added
            # or revoked at or inside them; then the actor's own lines decide
            hlcs = hlcs or list(map(_HLC, map(_EVENT, self.items)))
            if key.added[0] < min(hlcs) and (key.revoked is None or key.revoked[0] > max(hlcs)):
                continue
            first, last = self.span(actor)
            if not (key.valid_at(first) and key.valid_at(last)):
                return False
        return True  # each actor's last line is its newest signed one: all are before it

    def newest(self, actors: set[str]) -> list[tuple[str, int, int, bytes]] | None:
        """Per actor: its newest line `k`, the start `b` of k's batch and the segment's real
        chain value there, or None when an actor's newest line is unsigned (no signature
        covers it). What a whole segment's one check per actor needs (`whole_fast`)."""
        items, prefix = self.items, sigs.PREFIX
        newest: dict[str, int] = {}
        for i in range(len(items) - 1, -1, -1):
            e, line = items[i]
            if e.actor is not None and e.actor not in newest:
                if line[:9] != prefix:
                    return None  # the actor's last line is unsigned: no signature covers it
                newest[e.actor] = i
                if len(newest) == len(actors):
                    break
        starts = {}
        for actor, k in newest.items():
            b, tx = k, items[k][0].tx
            while b > 0 and items[b - 1][0].tx == tx:
                b -= 1
            starts[actor] = b
        chain, done = self.base, 0
        base_at: dict[int, bytes] = {}
        for b in sorted(set(starts.values())):
            chain = sigs.chain(chain, list(map(_LINE, items[done:b])))
            done, base_at[b] = b, chain
        return [(actor, k, starts[actor], base_at[starts[actor]]) for actor, k in newest.items()]

    def span(self, actor: str) -> tuple[Order, Order]:
        """The first and the last place in total order of the lines of `actor`."""
        mine = [_order(e) for e, _ in self.items if e.actor == actor]
        return min(mine), max(mine)

    def _signature_ok(self, batch: range, k: int, base: bytes, order_of: list[int]) -> _Key | None:
        """The key of k's actor that made k's signature and is valid at every line of
        `order_of` (indexes), or None."""
        packed = sigs.unpack(self.field(k) or b"")
        if packed is None:
            return None
        stated, signature = packed
        if stated != base:
            return None
        before = [self.items[j][1] for j in range(batch.start, k)]
        msg = sigs.message(self.writer, base, before, self.body(k))
        actor = self.items[k][0].actor
        assert actor is not None
        from fleetgit.ledger import keys

        check = _verify_cached if self.keys.cache else keys.verify
        for key in self.keys.of(actor):
            if all(key.valid_at(_order(self.items[j][0])) for j in order_of) and check(
                key.raw, signature, msg
            ):
                return key
        # a fleet admin key signs key events only: a batch of them, each naming that key
        admin = self.items[k][0].data.get("admin")
        raw = self.keys.admins.get(admin) if isinstance(admin, str) else None
        if raw is not None and order_of and k in order_of:
            lines = [self.items[j][0] for j in order_of]
            only_keys = all(e.type in ADMIN_TYPES and e.data.get("admin") == admin for e in lines)
            if only_keys and check(raw, signature, msg):
                return _Key(str(admin), raw, (0, "", 0), None)
        return None

    def check_batch(self, batch: range) -> None:
        """Cover the lines of one batch by the batch's own signatures (the chain value each
        states stands for what came before: it cannot be checked here)."""
        items = self.items
        for actor in {a for i in batch if (a := items[i][0].actor) is not None}:
            mine = [i for i in batch if items[i][0].actor == actor and not self.covered[i]]
            if not mine:
                continue
            signed = [i for i in batch if items[i][0].actor == actor and self.fields[i]]
            if not signed:
                for i in mine:
                    self.reason[i] = f"unsigned: no signature of {actor} covers it"
                continue
            last = signed[-1]
            packed = sigs.unpack(self.fields[last] or b"")
            base = packed[0] if packed else b""
            todo = [i for i in mine if i <= last]
            if not self.keys.of(actor) and not self.keys.admins:
                why = f"no key of pilot {actor} is known (not registered with a key)"
            elif self._signature_ok(batch, last, base, todo) is not None:
                for i in todo:
                    self.covered[i] = True
                why = f"after the last signature of {actor} in its batch"
            else:
                why = f"bad signature: not made by a key of {actor} valid at its time"
            for i in mine:
                if not self.covered[i]:
                    self.reason[i] = why

    def uncovered(self, whole: bool) -> dict[int, str]:
        """The lines (indexes) no valid signature covers, with the reason, their batch's other
        lines included (a batch is taken whole or not at all): each batch checked by its own
        signatures, after the newest signature of each actor (`whole`: a portion read from the
        segment's start, or from a place whose chain value is known)."""
        batches = batch_ranges(self.items)
        if whole:
            self.check_whole(batches)
        out: dict[int, str] = {}
        for batch in batches:
            if not all(self.covered[i] for i in batch):
                self.check_batch(batch)
            if all(self.covered[i] for i in batch):
                continue
            first = next(self.reason[i] for i in batch if i in self.reason)
            for i in batch:
                out[i] = self.reason.get(i) or f"in a batch with a quarantined event ({first})"
        return out

    def check_whole(self, batches: list[range]) -> None:
        """A segment read from its start: the newest signature of each actor, when the chain
        value it states is right, covers every line of that actor before it."""
        items = self.items
        newest: dict[str, tuple[int, range]] = {}
        starts: dict[int, range] = {}
        for batch in batches:
            for i in batch:
                actor = items[i][0].actor
                if actor is not None and self.fields[i] is not None:
                    newest[actor] = (i, batch)
                    starts[batch.start] = batch
        if not newest:
            return
        wanted = {b.start for _, b in newest.values()}
        chain = self.base
        base_at: dict[int, bytes] = {}
        done = 0
        for start in sorted(wanted):
            chain = sigs.chain(chain, [line for _, line in items[done:start]])
            done = start
            base_at[start] = chain
        for actor, (k, batch) in newest.items():
            mine = [i for i in range(k + 1) if items[i][0].actor == actor]
            key = self._signature_ok(batch, k, base_at[batch.start], [])
            if key is None:
                continue
            for i in mine:
                if key.valid_at(_order(items[i][0])):
                    self.covered[i] = True


def flush(db: IndexDB, result: Any) -> None:
    """End of a catch-up: screen and ingest the portions deferred for want of a key."""
    deferred, db.trust_deferred = db.trust_deferred or [], None
    for items, writer, segment, start, base, blob in deferred:
        db.reading_blob = blob  # as when it was read: a blob's lines keep their numbers
        try:
            taken = screen(db, items, writer, segment, start, defer=False, base=base)
        finally:
            db.reading_blob = False
        db.ingest(taken, result)


def screen(
    db: IndexDB,
    items: list[Item],
    writer: str,
    segment: int,
    start: int,
    *,
    defer: bool = True,
    base: bytes | None = None,
) -> list[Item]:
    """The items ingest may take from one portion of `writer`'s `segment` read from byte `start`
    (all of them under `warn`; under `require`, not the batches with an uncovered event),
    plus quarantined batches that a key arriving now lets in. `base`: the chain's value at
    `start` when the caller knows it (it read every line before: a published segment grown
    since, index/catchup.py), so the portion is checked as a whole segment is."""
    policy = db.config.trust
    if policy == "off" or not items:
        return items
    changed: set[str] = set()
    events = list(map(_EVENT, items))  # the passes over every line below run in C
    with_keys = not _KEY_TYPES.isdisjoint(map(_TYPE, events))
    if with_keys:
        changed = derive(db, _record(db, items, writer, segment))
    # a rebuild's screens share the keys read (a query waits for the insert under way on the
    # other core: store.BulkInserts); `derive`, the one writer of `pilot_keys`, drops them
    keys = db.screen_keys if db.bulk_inserts is not None else None
    if keys is None:
        keys = Keys(db)
        if db.bulk_inserts is not None:
            db.screen_keys = keys
    keys.changed = changed
    # `derive` just checked each key batch's signature (remembered): the checks below of the
    # same batches find it there, not verify it a second time
    keys.cache = with_keys
    # quarantined batches of the pilots whose keys just changed, now covered
    released = _released(db, keys) if changed else []
    seg = Segment(items, writer, segment, keys, base)
    actors = set(map(_ACTOR, events))
    actors.discard(None)
    if defer and db.trust_deferred is not None and keys.missing(actors):
        # a pilot with no key yet: its registration may be in a source read later in this
        # catch-up (a rebuild reads writers in name order); checked whole at its end (`flush`)
        db.trust_deferred.append((items, writer, segment, start, base, db.reading_blob))
        remember(db, released)
        return released
    whole = start == 0 or base is not None
    if whole and seg.whole_fast(actors):
        items = items + released
        remember(db, items)
        return items
    uncovered = seg.uncovered(whole)
    keep = items if policy == "warn" else [x for i, x in enumerate(items) if i not in uncovered]
    # with its line number, for a committed blob read whole (a work-tree file is searched when
    # listed: `quarantined`), so that the row is the same whatever was read when
    number = start == 0 and db.reading_blob
    bad = [(items[i], why, i + 1 if number else None) for i, why in sorted(uncovered.items())]
    if bad:
        _quarantine(db, bad, segment, kept=policy == "warn")
    keep = keep + released
    remember(db, keep)
    return keep


def remember(db: IndexDB, items: list[Item]) -> None:
    """Keep the `_sig` value of each signed line taken, so that a line rebuilt from the index
    (`restore-lost`, sync/lost.py) has its exact bytes again: one row per writer of `items`
    (`signatures`, read back by `signatures_of`), built by passes in C, not a row per line.
    A line the index holds already, the same bytes, is not kept again: a copy read once more
    (another worktree's checkout, a blob, a batch `warn` took before it was released) had its
    value kept when it was taken (every line taken is kept, here or by `learn_own`; a change
    of policy rebuilds). Not asked in a rebuild: its events are being inserted on a thread."""
    lines = list(map(_LINE, items))
    flags = list(map(bytes.startswith, lines, _PREFIXES))
    if not any(flags):
        return
    if not db.rebuilding:
        known = db._known([e.id for e, f in zip(map(_EVENT, items), flags, strict=True) if f])
        if known:
            flags = [
                f and known.get(e.id, (None,))[0] != line_hash(line)
                for (e, line), f in zip(items, flags, strict=True)
            ]
            if not any(flags):
                return
    keep_signatures(db, items, lines, flags)


def keep_signatures(db: IndexDB, items: list[Item], lines: list[Any], flags: list[bool]) -> None:
    """`remember`'s rows: those of the items whose flag is set (their lines signed)."""
    events = list(compress(map(_EVENT, items), flags))
    values: list[bytes] = list(compress(map(getitem, lines, repeat(_FIELD)), flags))
    writers = set(map(_WRITER, events))
    if len(writers) == 1:
        rows = [(events[0].writer, "".join(map(_ID, events)), b"".join(values))]
    else:  # quarantined batches of other writers, let in with this portion (`_released`)
        rows = [
            (
                w,
                "".join(e.id for e in events if e.writer == w),
                b"".join(v for e, v in zip(events, values, strict=True) if e.writer == w),
            )
            for w in sorted(writers)
        ]
    for row in rows:  # in a rebuild, after the insert under way (the caller goes on)
        db.later("INSERT INTO signatures VALUES (?, ?, ?)", row)


def signatures_of(conn: Any, wanted: dict[str, str]) -> dict[str, list[bytes]]:
    """The `_sig` values kept for the events `wanted` (id -> writer), each id with every value
    a copy of its line had (the caller keeps the one whose line hashes right). A writer's rows
    are all read (`remember` and `rewrite_signatures` write several); a row `remember` could
    not have written (another type, other lengths) is skipped, nothing in it converted."""
    out: dict[str, list[bytes]] = {}
    for writer in sorted(set(wanted.values())):
        for ids, values in conn.execute(
            "SELECT ids, sigs FROM signatures WHERE writer = ?", (writer,)
        ):
            if not _row_ok(ids, values):
                continue
            for i in range(len(ids) // _ID_CHARS):
                eid = ids[i * _ID_CHARS : (i + 1) * _ID_CHARS]
                if eid in wanted:
                    out.setdefault(eid, []).append(
                        values[i * sigs.SIG_CHARS : (i + 1) * sigs.SIG_CHARS]
                    )
    return out


def _row_ok(ids: Any, values: Any) -> bool:
    """Is this a `signatures` row `remember` writes: ids (ASCII text) and values (bytes) of
    the same count, at least one? Types are checked first: SQLite columns are loosely typed,
    and a conversion could cost anything (`bytes(n)` of an integer is n bytes)."""
    if not (isinstance(ids, str) and isinstance(values, bytes) and ids.isascii()):
        return False
    n = len(ids) // _ID_CHARS
    return n > 0 and len(ids) == n * _ID_CHARS and len(values) == n * sigs.SIG_CHARS


def signature_rows(
    conn: Any, *, encoded: bool = False, strict: bool = False
) -> tuple[set[Any], bool]:
    """Every (writer, id, value) the `signatures` table keeps (writer and id as bytes when
    `encoded`), and whether one is kept twice (a copy read again in a rebuild,
    `dedupe_signatures`). A row `remember` could not have written raises ValueError when
    `strict` (a snapshot's: snapshots.py `_Signed`, which checked the types in SQL first), else
    gives a (writer, "", value) entry (value b"" unless bytes: nothing is converted) no segment
    line can match."""
    out: set[Any] = set()
    total = 0
    for writer, ids, values in conn.execute("SELECT writer, ids, sigs FROM signatures"):
        w = writer if isinstance(writer, str) else ""
        who: Any = w.encode() if encoded else w
        if not _row_ok(ids, values):
            if strict:
                raise ValueError("its ids and values do not pair up")
            value = values if isinstance(values, bytes) else b""
            out.add((who, b"" if encoded else "", value))
            total += 1
            continue
        n = len(ids) // _ID_CHARS
        each: Any = ids.encode() if encoded else ids
        out.update(
            (
                who,
                each[i * _ID_CHARS : (i + 1) * _ID_CHARS],
                values[i * sigs.SIG_CHARS : (i + 1) * sigs.SIG_CHARS],
            )
            for i in range(n)
        )
        total += n
    return out, total != len(out)


REWRITE_ROW_IDS = 10_000  # ids a row `rewrite_signatures` writes: 1.6 MB, far under SQLite's 1 GB


def rewrite_signatures(conn: Any, rows: set[tuple[Any, Any, bytes]]) -> None:
    """The `signatures` table as `rows` (writer, id, value; str or bytes), each once, in rows
    of at most `REWRITE_ROW_IDS` ids per writer (one row per writer would pass SQLite's value
    length limit at ~7.8 M signed lines). Only an id of 36 ASCII characters with a value of
    `sigs.SIG_CHARS` bytes is written (anything else, such as the (writer, "", value) entry of
    a malformed row, is left out): a row's ids and values always agree."""
    per: dict[str, set[tuple[str, bytes]]] = {}
    for writer, eid, value in rows:
        if isinstance(eid, bytes):
            eid = eid.decode() if eid.isascii() else ""
        w = writer.decode(errors="replace") if isinstance(writer, bytes) else writer
        ok = isinstance(eid, str) and len(eid) == _ID_CHARS and eid.isascii()
        if ok and isinstance(value, bytes) and len(value) == sigs.SIG_CHARS and isinstance(w, str):
            per.setdefault(w, set()).add((eid, value))
    conn.execute("DELETE FROM signatures")
    for w, kept in sorted(per.items()):
        pairs = sorted(kept)
        conn.executemany(
            "INSERT INTO signatures VALUES (?, ?, ?)",
            (
                (
                    w,
                    "".join(e for e, _ in pairs[at : at + REWRITE_ROW_IDS]),
                    b"".join(v for _, v in pairs[at : at + REWRITE_ROW_IDS]),
                )
                for at in range(0, len(pairs), REWRITE_ROW_IDS)
            ),
        )


def dedupe_signatures(conn: Any) -> None:
    """Keep each (writer, id, value) once: a rebuild keeps every signed line it takes without
    asking the index (its inserts run on another thread), so a line read twice (a blob and a
    work-tree copy that grew past it) would be kept twice. Only the ids are compared first (a
    pass in C per writer): the rows are rewritten only when an id comes twice."""
    seen: dict[str, list[str]] = {}
    for writer, ids in conn.execute("SELECT writer, ids FROM signatures"):
        seen.setdefault(str(writer), []).append(str(ids))
    for joined in map("".join, seen.values()):
        each = [joined[i : i + _ID_CHARS] for i in range(0, len(joined), _ID_CHARS)]
        if len(set(each)) != len(each):
            break
    else:
        return
    rows, copies = signature_rows(conn)
    if copies:
        rewrite_signatures(conn, {r for r in rows if r[1]})


def _record(db: IndexDB, items: list[Item], writer: str, segment: int) -> set[str]:
    """Keep the key events of a portion with their batches (`key_events`), whatever their
    verdict; the pilots whose key events are new here."""
    rows = []
    for batch in batch_ranges(items):
        if not any(items[i][0].type in KEY_TYPES for i in batch):
            continue
        lines = b"".join(items[i][1] for i in batch)
        for i in batch:
            e, line = items[i]
            if e.type not in KEY_TYPES or e.actor is None or not isinstance(e.data.get("key"), str):
                continue
            pilot = str(e.data.get("callsign")) if e.type == "pilot_spawned" else e.actor
            rows.append(
                (pilot, e.hlc, e.writer, e.wseq, line_hash(line), e.actor, segment,
                 i - batch.start, lines)
            )  # fmt: skip
    new: set[str] = set()
    for row in rows:
        before = db.conn.total_changes
        db.conn.execute("INSERT OR IGNORE INTO key_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        if db.conn.total_changes != before:
            new.add(row[0])
    return new


def derive(db: IndexDB, pilots: set[str]) -> set[str]:
    """Decide the keys of `pilots` from all their key events in total order (never in the order
    they were read), into `pilot_keys`; then those of the pilots they spawned, when theirs
    changed. Returns the pilots whose keys changed. A change that takes validity away from
    events the index has taken (an earlier registration with another key, a revocation
    arriving after events it invalidates) sets `db.trust_redo`: the catch-up then rebuilds
    (see catchup.Index), the one way every clone ends with the same verdicts."""
    if not pilots:
        return set()
    db.screen_keys = None  # what screens read of `pilot_keys` (see `screen`)
    state = Keys(db)
    changed: set[str] = set()
    todo = sorted(pilots, reverse=True)
    rounds = 0
    while todo and rounds < 64 * (len(pilots) + 8):
        rounds += 1
        pilot = todo.pop()
        new = _derive_one(db, pilot, state)
        old = state.of(pilot)
        if [(k.text, k.added, k.revoked) for k in old] == [
            (k.text, k.added, k.revoked) for k in new
        ]:
            continue
        if _accepted_in(db, pilot, _lost(old, new)):
            db.trust_redo = True
        db.conn.execute("DELETE FROM pilot_keys WHERE callsign = ?", (pilot,))
        db.conn.executemany(
            "INSERT INTO pilot_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(pilot, k.text, *k.added, *(k.revoked or (None, None, None))) for k in new],
        )
        state.by_pilot[pilot] = new
        changed.add(pilot)
        todo.extend(
            child
            for (child,) in db.conn.execute(
                "SELECT DISTINCT pilot FROM key_events WHERE actor = ? AND pilot != ?",
                (pilot, pilot),
            )
            if child not in todo
        )
    return changed


def _derive_one(db: IndexDB, pilot: str, state: Keys) -> list[_Key]:
    """One pilot's keys from its key events, in total order:

    - its first registration carrying a key (signed by that key), or its spawn with a key
      (signed by a key of its parent valid then), whichever sorts first: a later
      registration with another key is no owner, and what only its key signs never counts;
    - `pilot_key_added`: signed by a key of the pilot valid then, or by a fleet admin key
      (a pilot with no key yet, one from before keys, signs its first one itself);
    - `pilot_key_revoked`: signed likewise (the revoked key included); the key stops counting
      for what sorts after it."""
    from fleetgit.domain.catalogue import CATALOGUE
    from fleetgit.ledger.codec import decode
    from fleetgit.ledger.intake import check

    mine: list[_Key] = []
    rows = db.conn.execute(
        "SELECT hlc, writer, wseq, actor, segment, at, batch FROM key_events WHERE pilot = ?"
        " ORDER BY hlc, writer, wseq, hash",
        (pilot,),
    ).fetchall()
    for hlc, writer, wseq, actor, segment, at, batch in rows:
        # the key event passes intake again; the other lines of its batch (all of them passed
        # intake when the batch was recorded: thousands, for a registration sent with a batch
        # of work) are only decoded, as snapshots._key_batches does: only their bytes and
        # actors matter to the signature
        lines = _lines(batch)
        try:
            items = [(decode(sigs.split(line)[0]), line) for line in lines]
            items[at] = (check(lines[at], writer, CATALOGUE), lines[at])
        except (ValueError, IndexError):
            continue
        e = items[at][0]
        at_order: Order = (hlc, writer, wseq)
        text = e.data["key"]
        raw = sigs.decode_key(text)
        if raw is None:
            continue
        new = _Key(text, raw, at_order, None)
        if e.type in ("pilot_registered", "pilot_spawned"):
            if mine or (e.type == "pilot_registered" and e.data.get("callsign") != actor):
                continue  # owned already (the same key: nothing new), or not its own name
            signers = {actor: [new]} if e.type == "pilot_registered" else {actor: state.of(actor)}
            if _signed(items, at, writer, segment, signers, state.admins):
                mine.append(new)
        elif e.type == "pilot_key_added":
            if any(k.text == text for k in mine):
                continue
            if _signed(items, at, writer, segment, {actor: mine or [new]}, state.admins):
                mine.append(new)
        elif _signed(items, at, writer, segment, {actor: mine}, state.admins):  # revoked
            for k in mine:
                if k.text == text and (k.revoked is None or at_order < k.revoked):
                    k.revoked = at_order
    return mine


def _lines(batch: bytes) -> list[bytes]:
    return batch.splitlines(keepends=True)


def _signed(
    items: list[Item],
    at: int,
    writer: str,
    segment: int,
    signers: dict[str, list[_Key]],
    admins: dict[str, bytes],
) -> bool:
    """Is the key event `items[at]` covered by its batch's signature, tried with `signers`?"""
    seg = Segment(items, writer, segment, _Trial(admins, signers))
    seg.check_batch(range(len(items)))
    return seg.covered[at]


_verified: dict[tuple[bytes, bytes, bytes], bool] = {}


def _verify_cached(raw: bytes, signature: bytes, message: bytes) -> bool:
    """`keys.verify`, remembered: `derive` checks a pilot's key events again each time one
    more arrives."""
    from fleetgit.ledger import keys

    got = _verified.get((raw, signature, message))
    if got is None:
        if len(_verified) > 4096:
            _verified.clear()
        got = _verified[(raw, signature, message)] = keys.verify(raw, signature, message)
    return got


def _lost(old: list[_Key], new: list[_Key]) -> list[tuple[Order, Order]]:
    """The spans of total order where a key of `old` counted and counts no more in `new`."""
    spans: list[tuple[Order, Order]] = []
    now = {k.text: k for k in new}
    for k in old:
        end = k.revoked or _NEVER
        got = now.get(k.text)
        if got is None:
            spans.append((k.added, end))
            continue
        if got.added > k.added:
            spans.append((k.added, got.added))
        if got.revoked is not None and got.revoked < end:
            spans.append((got.revoked, end))
    return spans


def _accepted_in(db: IndexDB, pilot: str, spans: list[tuple[Order, Order]]) -> bool:
    """Has the index taken an event of `pilot` inside one of `spans`? (None without events:
    a scratch database of keys, see `learn_keys`.)"""
    if not db.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone():
        return False
    for lo, hi in spans:
        if db.conn.execute(
            "SELECT 1 FROM events WHERE actor = ? AND (hlc, writer, wseq) >= (?, ?, ?)"
            " AND (hlc, writer, wseq) <= (?, ?, ?) LIMIT 1",
            (pilot, *lo, *hi),
        ).fetchone():
            return True
    return False


def learn_keys(seg: Segment, batches: list[range]) -> None:
    """For a caller that derives keys in a scratch database of its own (a `pilot_keys` table;
    `seg.keys` bound to it): keep the key events of `batches` of `seg` and derive the keys of
    the pilots they name from all kept so far, in total order (`derive`)."""
    from fleetgit.index.schema import KEY_EVENTS

    db = seg.keys.db
    for statement in KEY_EVENTS.split(";\n"):  # not executescript: it would commit
        if statement.strip():
            db.conn.execute(statement)
    items = [seg.items[i] for batch in batches for i in batch]
    derive(db, _record(db, items, seg.writer, seg.segment))
    seg.keys.by_pilot.clear()


def learn_own(db: IndexDB, events: list[Event], lines: list[bytes], segment: int) -> None:
    """The keys this clone's own append brings, and its signatures (`remember`)."""
    if db.config.trust == "off":
        return
    items = list(zip(events, lines, strict=True))
    flags = list(map(bytes.startswith, lines, _PREFIXES))
    if any(flags):  # new lines, just inserted: nothing to ask of the index (`remember`)
        keep_signatures(db, items, lines, flags)
    if not _KEY_TYPES.isdisjoint(map(_TYPE, events)):
        derive(db, _record(db, items, events[0].writer, segment))


def _quarantine(
    db: IndexDB, bad: list[tuple[Item, str, int | None]], segment: int, *, kept: bool
) -> None:
    db.conn.executemany(
        "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.id, line_hash(line), e.tx, e.writer, segment, number, e.wseq, e.hlc, e.actor,
             e.type, why, line, int(kept))
            for (e, line), why, number in bad
        ],
    )  # fmt: skip


def _released(db: IndexDB, keys: Keys) -> list[Item]:
    """Quarantined batches of the pilots whose keys just changed, now covered: out of the
    quarantine and into the index."""
    from fleetgit.domain.catalogue import CATALOGUE
    from fleetgit.ledger.intake import check

    marks = ",".join("?" * len(keys.changed))
    rows = db.conn.execute(
        "SELECT writer, segment, line FROM quarantine WHERE tx IN"
        f" (SELECT tx FROM quarantine WHERE actor IN ({marks})) ORDER BY writer, segment, rowid",
        sorted(keys.changed),
    ).fetchall()
    groups: dict[tuple[str, int], list[Item]] = {}
    for writer, segment, line in rows:
        groups.setdefault((writer, segment), []).append((check(line, writer, CATALOGUE), line))
    out: list[Item] = []
    for (writer, segment), items in groups.items():
        seg = Segment(items, writer, segment, keys)
        for batch in batch_ranges(items):
            seg.check_batch(batch)
            if all(seg.covered[i] for i in batch):
                db.conn.executemany(
                    "DELETE FROM quarantine WHERE id = ? AND hash = ?",
                    [(items[i][0].id, line_hash(items[i][1])) for i in batch],
                )
                out.extend(items[i] for i in batch)
                continue
            # still quarantined: the reason as the keys now stand (as a rebuild would say it)
            first = next(seg.reason[i] for i in batch if i in seg.reason)
            db.conn.executemany(
                "UPDATE quarantine SET reason = ? WHERE id = ? AND hash = ?",
                [
                    (
                        seg.reason.get(i) or f"in a batch with a quarantined event ({first})",
                        items[i][0].id,
                        line_hash(items[i][1]),
                    )
                    for i in batch
                ],
            )
    return out


def quarantined(conn: Any, worktree: Any = None) -> list[dict[str, Any]]:
    """The quarantined events in total order, for `fleetgit quarantine` and `verify`: where
    each is (writer, segment, line number when its file is in `worktree`), and why."""
    from fleetgit.ledger.segments import segment_name

    rows = conn.execute(
        "SELECT id, writer, segment, wseq, actor, type, reason, kept, line, lineno"
        " FROM quarantine"
        " ORDER BY hlc, writer, wseq"
    ).fetchall()
    files: dict[tuple[str, int], bytes | None] = {}
    out = []
    for r in rows:
        where = (r[1], r[2])
        if where not in files:
            files[where] = None
            if worktree is not None:
                path = worktree / ".fleet/events" / r[1] / segment_name(r[2])
                with contextlib.suppress(OSError):
                    files[where] = path.read_bytes() if path.is_file() else None
        data = files[where]
        at = -1 if data is None else data.find(r[8])
        # the line in the work-tree file, else its number among the lines read from the blob
        line = r[9] if at < 0 or data is None else data.count(b"\n", 0, at) + 1
        out.append(
            {
                "id": r[0], "writer": r[1], "segment": r[2], "line": line, "wseq": r[3],
                "actor": r[4], "type": r[5], "reason": r[6], "kept": bool(r[7]),
            }
        )  # fmt: skip
    return out


def sign_batch(
    lines: list[bytes], events: list[Event], segment: int, base: bytes, key_of: Any
) -> list[bytes]:
    """Sign a batch about to be appended: for each actor, its last line in the batch carries
    the signature (ledger/sigs.py). `base`: the segment's chain before the batch. `key_of`:
    callsign -> private key (or None: the line stays unsigned)."""
    from fleetgit.ledger import keys

    last: dict[str, int] = {}
    for i, e in enumerate(events):
        if e.actor is not None:
            last[e.actor] = i
    out = list(lines)
    for actor, k in sorted(last.items(), key=lambda kv: kv[1]):
        key = key_of(actor)
        if key is None:
            continue
        writer = events[k].writer
        msg = sigs.message(writer, base, out[:k], lines[k])
        out[k] = sigs.join(lines[k], base, keys.sign(key, msg))
    return out


def append_base(path: Any, writer: str, number: int, size: int) -> bytes:
    """The chain of this writer's segment `number` (at `path`, `size` bytes long) before the
    next batch, read from the segment: when the writer's state does not say it (another
    process appended unsigned, or the state is from before a roll)."""
    if size <= 0:
        return sigs.genesis(writer, number)
    with open(path, "rb") as fh:
        data = fh.read(size)
    return sigs.chain(sigs.genesis(writer, number), data.splitlines(keepends=True))
