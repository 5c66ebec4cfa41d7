"""`fleetgit verify`: read every segment from every source and report what is wrong.

It reads the work-tree files and the committed blobs directly (not the index) and never writes.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shlex
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetgit.domain import catalogue
from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.domain.fold import Ev
from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import GitRepo
from fleetgit.git.sources import (
    committed_kind,
    committed_segments,
    scan_worktrees,
    worktree_git_dirs,
)
from fleetgit.index import recheck
from fleetgit.ledger import clock, safefs
from fleetgit.ledger.codec import Event
from fleetgit.ledger.config import Config
from fleetgit.ledger.segments import Parsed, line_hash, parse, parse_fd, read_limit


@dataclass(frozen=True)
class Problem:
    # torn | bad_line | refused | incomplete_batch | id_conflict | wseq_gap | writer_collision
    # | clock | fork | dependency_cycle | not_read | lost | unverified | index_trust (signatures
    # checked again: index/recheck.py) | backdated
    kind: str
    where: str
    detail: str
    # a fork the domain's rules settled, the same in every clone (see `_SETTLING`): shown, but
    # not a failure unless --strict
    settled: bool = False
    hint: str = ""  # how to repair it, when there is a way

    def to_json(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "where": self.where,
            "detail": self.detail,
            "settled": self.settled,
        }
        return {**out, "hint": self.hint} if self.hint else out


@dataclass
class Report:
    events: int = 0
    segments: int = 0
    writers: int = 0
    problems: list[Problem] = field(default_factory=list)
    # ids of events the index holds that no source reaches any more (see `lost_events`)
    lost: list[str] = field(default_factory=list)

    def failed(self, *, strict: bool = False) -> bool:
        """Anything wrong: a problem the rules did not settle (with `strict`, any at all)."""
        return any(strict or not p.settled for p in self.problems)

    def to_json(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "ok": not self.failed(strict=strict),
            "events": self.events,
            "segments": self.segments,
            "writers": self.writers,
            "problems": [p.to_json() for p in self.problems],
        }

    def summary(self) -> str:
        settled = sum(p.settled and p.kind == "fork" for p in self.problems)
        warned = sum(p.settled and p.kind != "fork" for p in self.problems)
        open_ = len(self.problems) - settled - warned
        verdict = "ok" if not open_ else f"{open_} problem(s)"
        note = f" ({settled} fork(s) settled by the rules)" if settled else ""
        note += f" ({warned} warning(s))" if warned else ""
        events, segments, writers = (
            f"{n} {word}{'s' * (n != 1)}"
            for n, word in (
                (self.events, "event"),
                (self.segments, "segment"),
                (self.writers, "writer"),
            )
        )
        return f"verify: {verdict}: {events} in {segments} from {writers}{note}"


# Forks: two clones appended to one stream at one seq. The event types whose fold judges each
# event against the state it meets in total order, or whose effect does not depend on the
# order, with the rule that settles them: every clone folds a fork of these alike, and nothing
# either clone wrote is overwritten unseen. Any other type (a create, an update, an assignment
# or a registration) overwrites what was there whatever came before it: a fork with two
# different such events is a lost update, a problem.
_SETTLING = {
    "sortie_assigned": "a claim is a compare-and-swap: the first in total order wins",
    "sortie_started": "only the sortie's assignee of the moment works it",
    "sortie_progress": "only the sortie's assignee of the moment works it",
    "sortie_blocked": "only the sortie's assignee of the moment works it",
    "sortie_resumed": "only the sortie's assignee of the moment works it",
    "sortie_completed": "only the sortie's assignee of the moment works it",
    "sortie_unclaimed": "only the sortie's assignee of the moment works it",
    "sortie_cancelled": "a transition applies only from a state that allows it",
    "mission_started": "a transition applies only from a state that allows it",
    "mission_completed": "a transition applies only from a state that allows it",
    "mission_cancelled": "a transition applies only from a state that allows it",
    "work_order_completed": "a transition applies only from a state that allows it",
    "lock_acquired": "a lock is taken only when it is free at that point of total order",
    "lock_released": "only the lock's holder releases it",
    "lock_timeout": "a give-up is counted, whatever the order",
    "file_renewed": "a renewal extends and never shortens, whatever the order",
    "file_released": "the first release ends the reservation",
    "file_conflict": "a clash already settled is recorded",
    "message_read": "each recipient marks its own copy",
    "message_acknowledged": "each recipient marks its own copy",
    "message_archived": "each recipient marks its own copy",
    "pilot_active": "a sign of life: the latest counts",
    "pilot_deregistered": "a pilot that left ignores later signs of life",
    "pilot_terminated": "a pilot that left ignores later signs of life",
    "checkpoint_restored": "restorations are counted, whatever the order",
    "checkpoint_deleted": "a withdrawal is final",
    "context_compacted": "a record, kept whatever the order",
    "fleet_recovered": "a record, kept whatever the order",
    "coordinator_decision": "a record, kept whatever the order",
}


def _fork_rules(types: list[str], overwrites: set[int]) -> list[str] | None:
    """The rules that settle a fork of events of these types (one stream, one seq), or None
    when they do not: two of them overwrite, differently (`overwrites`: a digest of each
    overwriting event's type and data; equal overwrites do not disagree)."""
    if len(overwrites) > 1:
        return None
    return sorted({_SETTLING[t] for t in types if t in _SETTLING})


def _overwrite_key(event: Event) -> int | None:
    """For an event of a type that does not settle forks, a digest of its type and data."""
    if event.type in _SETTLING:
        return None
    return line_hash(orjson.dumps([event.type, event.data], option=orjson.OPT_SORT_KEYS))


def _torn_hint(worktree: str | None) -> str:
    """How a torn tail goes away: its writer's next command cuts it off an uncommitted segment
    (only complete batches stay); a committed one is never rewritten, its tail stays skipped."""
    if worktree is None:
        return (
            "committed segments are never rewritten: the events before the tear count and the"
            " torn bytes are skipped everywhere; nothing to repair"
        )
    return (
        f"any fleetgit command in that worktree cuts it off (fleetgit -C {shlex.quote(worktree)}"
        " index status), unless the segment is committed by then"
    )


class _Checker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.report = Report()
        self.hashes: dict[str, tuple[int, str]] = {}
        self.by_writer: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        # each (stream, seq): its events' (id, type, `_overwrite_key`, where found)
        self.by_stream_seq: dict[tuple[str, int], list[tuple[str, str, int | None, str]]] = {}
        self.segment_names: set[str] = set()
        self.current: set[str] = set()  # segments in a work tree or at a ref's tip
        self.copies: dict[str, dict[tuple[str, ...], str]] = defaultdict(dict)  # ids -> where
        self.sortie_events: dict[str, list[Ev]] = defaultdict(list)
        # signatures checked again from the segments (index/recheck.py), unless trust = "off"
        self.signed = config.trust != "off"
        self.keys = recheck.Keys(config)
        self.sig_copies: dict[tuple[str, bytes], _Copy] = {}
        # where each event was first found: (writer, segment, index among the copy's events)
        self.place: dict[str, tuple[str, int, int, _Copy]] = {}
        # (stream, seq) -> the lowest hlc of its events (several: a fork)
        self.seq_hlc: dict[tuple[str, int], int] = {}
        self.streams_of: dict[str, tuple[str, int]] = {}  # id -> (stream, seq)

    def add_segment(
        self,
        name: str,
        where: str,
        parsed: Parsed,
        worktree: str | None = None,
        load: Callable[[], bytes] | None = None,
    ) -> None:
        """Check one copy of segment `name` (`<writer>/<number>`), found at `where`: in the work
        tree `worktree`, or committed (None). `load` reads its bytes again (to re-check its
        signatures line by line, and name lines, when one signature per actor does not do)."""
        writer, number = name.split("/")[0], int(name.split("/")[1])
        copy = _Copy(writer, number, where, load, self.config.max_event_bytes)
        if self.signed and parsed.events:
            self._add_signed(copy, parsed)
        for i, (event, _) in enumerate(parsed.events):
            self.place.setdefault(event.id, (writer, number, i, copy))
        self.segment_names.add(name)
        self.report.segments = len(self.segment_names)
        for offset, what in parsed.problems:
            kind = "incomplete_batch" if "batch" in what else "bad_line"
            kind = "refused" if what.startswith("refused") else kind
            self.report.problems.append(Problem(kind, f"{where}@{offset}", what))
        if parsed.torn_tail:
            self.report.problems.append(
                Problem(
                    "torn",
                    f"{where}@{parsed.good_end}",
                    "torn tail (an incomplete last write)",
                    hint=_torn_hint(worktree),
                )
            )
        for event, line in parsed.events:
            self.add_event(where, event, line)
        self.copies[name].setdefault(tuple(e.id for e, _ in parsed.events), where)

    def _add_signed(self, copy: _Copy, parsed: Parsed) -> None:
        items = parsed.events
        digest = hashlib.blake2b(b"".join(line for _, line in items), digest_size=16).digest()
        key = (f"{copy.writer}/{copy.number}", digest)
        if key in self.sig_copies:
            return  # the same bytes elsewhere (a work-tree file and its committed blob)
        self.sig_copies[key] = copy
        self.keys.collect(copy.writer, copy.number, items)
        copy.summary = recheck.summarize(copy.writer, copy.number, items)

    def add_event(self, where: str, event: Event, line: bytes) -> None:
        digest = line_hash(line)
        seen = self.hashes.get(event.id)
        if seen is not None:
            if seen[0] != digest:
                self.report.problems.append(
                    Problem("id_conflict", where, f"event {event.id} differs from {seen[1]}")
                )
            return
        self.hashes[event.id] = (digest, where)
        self.streams_of[event.id] = (event.stream, event.seq)
        at = (event.stream, event.seq)
        low = self.seq_hlc.get(at)
        if low is None or event.hlc < low:
            self.seq_hlc[at] = event.hlc
        self.report.events += 1
        self.by_writer[event.writer].append((event.wseq, event.hlc, event.id))
        self._check_fork(where, event)
        if event.stream.startswith("sortie/"):
            self._keep_sortie_event(event)
        limit = clock.now_ms() + self.config.max_clock_skew_seconds * 1000
        if clock.hlc_ms(event.hlc) > limit:
            self.report.problems.append(
                Problem(
                    "clock",
                    where,
                    f"event {event.id}: its clock (hlc) says"
                    f" {clock.iso_ms(clock.hlc_ms(event.hlc))}, more than"
                    f" {self.config.max_clock_skew_seconds} s ahead of this clock: held back"
                    " (it orders and grants nothing) until this clock comes within that",
                )
            )

    def _check_fork(self, where: str, event: Event) -> None:
        found = (event.id, event.type, _overwrite_key(event), where)
        self.by_stream_seq.setdefault((event.stream, event.seq), []).append(found)

    def _forks(self) -> list[Problem]:
        """A fork: two events at one stream and seq (two clones appended apart). One problem per
        event after the first, settled when the domain's rules settle them (`_fork_rules`)."""
        problems = []
        for (stream, seq), found in self.by_stream_seq.items():
            if len(found) < 2:
                continue
            overwrites = {k for _, _, k, _ in found if k is not None}
            rules = _fork_rules([t for _, t, _, _ in found], overwrites)
            first_id, first_type, _, _ = found[0]
            settled = f"; settled: {'; '.join(rules)}" if rules is not None else ""
            for eid, etype, _, where in found[1:]:
                detail = f"{stream} seq {seq}: {first_id} ({first_type}) and {eid} ({etype})"
                problems.append(Problem("fork", where, detail + settled, rules is not None))
        return problems

    def _keep_sortie_event(self, event: Event) -> None:
        try:
            _, data = catalogue.upcast(event.type, event.v, event.data)
        except Exception:  # reported by the schema check
            return
        ev = Ev(event.type, data, event.hlc, event.writer, event.wseq, event.actor, 0)
        self.sortie_events[event.stream].append(ev)

    def _history_problems(self) -> list[Problem]:
        """Committed segments that a later commit deleted or rewrote: their events still count
        (the index keeps what any commit held), but someone changed the ledger's past."""
        out = []
        # `fleetgit compact` deletes segments whose lines it moved, bytes unchanged, into a new
        # segment of the same writer: a deleted segment whose every event is in a current one
        # of its writer lost nothing from the ledger's present
        current: dict[str, set[str]] = defaultdict(set)
        for name in self.current:
            for ids in self.copies[name]:
                current[name.split("/")[0]].update(ids)
        for name in sorted(self.segment_names - self.current):
            held = current[name.split("/")[0]]
            if all(held.issuperset(ids) for ids in self.copies[name]):
                continue
            where = next(iter(self.copies[name].values()))
            out.append(
                Problem(
                    "segment_deleted",
                    where,
                    f"segment {name} was deleted by a later commit; its events still count",
                )
            )
        for name, copies in sorted(self.copies.items()):
            lists = sorted(copies, key=len)
            for shorter, longer in itertools.pairwise(lists):
                if longer[: len(shorter)] != shorter:
                    out.append(
                        Problem(
                            "segment_rewritten",
                            copies[longer],
                            f"segment {name} differs from its copy at {copies[shorter]}:"
                            " a commit rewrote it; the events of every copy count",
                        )
                    )
        return out

    def finish(self) -> Report:
        self.report.problems += self._history_problems()
        self.report.problems += self._forks()
        self.report.problems += _dependency_cycles(self.sortie_events)
        self.report.writers = len(self.by_writer)
        for writer, items in sorted(self.by_writer.items()):
            items.sort()
            self.report.problems += _writer_problems(f"writer {writer}", items)
            self.report.problems += self._backdated(writer, items)
        self.report.problems.sort(key=lambda p: (p.kind, p.where))
        return self.report

    def _backdated(self, writer: str, items: list[tuple[int, int, str]]) -> list[Problem]:
        """Events stamped before what their writer had demonstrably witnessed when it appended
        them: its own earlier events (in wseq order), and the event before each of them in its
        stream (an append takes the stream's next seq, so it had ingested the one before, and
        a writer's clock never runs behind what it ingested: fleet.py `_build`). The lowest
        of a forked seq counts; an event stamped beyond the skew bound is not followed."""
        limit = clock.make_hlc(clock.now_ms() + self.config.max_clock_skew_seconds * 1000)
        out: list[Problem] = []
        seen, why = -1, ""  # the highest hlc witnessed so far, and what it was
        last_wseq = 0
        for wseq, hlc, eid in items:
            if wseq == last_wseq:
                continue  # two repositories writing as one writer: a writer_collision
            last_wseq = wseq
            stream, seq = self.streams_of[eid]
            before = self.seq_hlc.get((stream, seq - 1)) if seq > 1 else None
            if before is not None and before < limit and before > seen:
                seen, why = before, f"the event before it in {stream} (seq {seq - 1})"
            if hlc <= seen:
                ms = clock.hlc_ms(seen) - clock.hlc_ms(hlc)
                early = f"{ms} ms before" if ms else "no later than"
                out.append(
                    Problem(
                        "backdated",
                        self._where(eid),
                        f"event {eid}: stamped {early} {why}, which its writer"
                        f" {writer} had already witnessed when it appended it",
                        hint=f"fleetgit show {eid}: its pilot's clone stamped it early (a clock"
                        " set back, or on purpose to sort first)",
                    )
                )
            if hlc > seen:
                seen, why = hlc, "an earlier event of its writer"
        return out

    def _where(self, eid: str) -> str:
        """`<writer>/<segment> line N` of an event, as found first."""
        got = self.place.get(eid)
        if got is None:
            return eid
        writer, number, index, copy = got
        return f"{writer}/{number:08d} line {copy.line_of(index)}"

    def trust_problems(self, index: sqlite3.Connection | None) -> list[Problem]:
        """The events no valid signature of their actor covers, found from the segments alone,
        each named where it is; under trust = "warn" (kept, a warning) counted per segment. With
        the clone's `index`, where it disagrees: an event it holds as valid that is not
        covered, or one it quarantined that is (the index was wrong: rebuild it)."""
        if not self.signed:
            return []
        self.keys.derive()
        found: dict[str, tuple[str, str, Event, str]] = {}  # id -> where, reason, event, source
        warned: dict[str, int] = defaultdict(int)
        for copy in self.sig_copies.values():
            if copy.summary is not None and recheck.summary_holds(copy.summary, self.keys):
                continue
            events = copy.events()
            for i, why in sorted(
                recheck.uncovered(copy.writer, copy.number, events, self.keys).items()
            ):
                event = events[i][0]
                if event.id not in found:
                    where = f"{copy.writer}/{copy.number:08d} line {copy.line_of(i)}"
                    found[event.id] = (where, why, event, copy.where)
        problems: list[Problem] = []
        for eid, (where, why, event, source) in found.items():
            if self.config.trust == "warn":
                warned[where.split(" ")[0]] += 1
                continue
            seen = "" if source.startswith(".fleet/") else f" (in {source})"
            what = f"{event.type} by {event.actor} ({eid}): {why}{seen}"
            problems.append(Problem("unverified", where, what, hint="fleetgit quarantine"))
        problems += [
            Problem(
                "unverified",
                where,
                f"{n} event(s) no valid signature of their pilot covers, counted (trust = warn)",
                settled=True,
                hint='fleetgit quarantine; trust = "require" in .fleet/config.toml keeps them out',
            )
            for where, n in sorted(warned.items())
        ]
        if index is not None:
            problems += self._disagreements(index, set(found))
        return problems

    def _disagreements(self, index: sqlite3.Connection, bad: set[str]) -> list[Problem]:
        held = {eid for (eid,) in index.execute("SELECT id FROM quarantine")}
        out = []
        hint = "fleetgit index rebuild (the index is re-derived from the segments)"
        require = self.config.trust == "require"
        for eid in sorted(bad - held):
            if not require or index.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone():
                what = "the index holds it as valid, but no valid signature of its pilot covers it"
                out.append(
                    Problem("index_trust", self._where(eid), f"event {eid}: {what}", hint=hint)
                )
        for eid in sorted(held - bad):
            if eid in self.place:  # read here, and covered
                what = "the index quarantined it, but a valid signature of its pilot covers it"
                out.append(
                    Problem("index_trust", self._where(eid), f"event {eid}: {what}", hint=hint)
                )
        return out


class _Copy:
    """One copy of a segment as verify read it, for the signature re-check."""

    __slots__ = ("_data", "_events", "load", "max_line", "number", "summary", "where", "writer")

    def __init__(
        self, writer: str, number: int, where: str, load: Callable[[], bytes] | None, max_line: int
    ) -> None:
        self.writer, self.number, self.where, self.load = writer, number, where, load
        self.max_line = max_line
        self.summary: recheck.Summary | None = None
        self._data: bytes | None = None
        self._events: list[tuple[Event, bytes]] | None = None

    def data(self) -> bytes:
        if self._data is None:
            self._data = self.load() if self.load is not None else b""
        return self._data

    def events(self) -> list[tuple[Event, bytes]]:
        """Its events, read again as the first read parsed them (same indexes)."""
        if self._events is None:
            parsed = parse(self.data(), 0, self.writer, types=CATALOGUE, max_line=self.max_line)
            self._events = parsed.events
        return self._events

    def line_of(self, index: int) -> int:
        """The line number (from 1) in the file of its `index`th event."""
        events = self.events()
        data, line = self.data(), events[index][1] if index < len(events) else b""
        at = data.find(line) if line else -1
        return index + 1 if at < 0 else data.count(b"\n", 0, at) + 1


def _dependency_cycles(streams: dict[str, list[Ev]]) -> list[Problem]:
    """Cycles that clones closed between them, folded as the index folds them: each is broken
    at its latest dependency in total order (`domain.sorties.fold.cycle_breaks`), and reported."""
    from fleetgit.domain.sorties import fold as sorties

    edges = []
    for events in streams.values():
        events.sort(key=lambda e: e.order)
        try:
            rows = sorties.fold(events).get("sortie_deps", [])
        except Exception:  # data the catalogue refuses: reported by the schema check
            continue
        edges += [
            (r["sortie_id"], r["depends_on"], (r["set_hlc"], r["set_writer"], r["set_wseq"]))
            for r in rows
        ]
    return [
        Problem(
            "dependency_cycle",
            f"sortie/{a}",
            f"{' -> '.join(cycle)}: {a} depending on {b}, the later in total order, is ignored"
            f" (fleetgit sortie update {a} --no-depends, or --depends-on without {b})",
        )
        for (a, b), cycle in sorted(sorties.cycle_breaks(edges).items())
    ]


def _writer_problems(where: str, items: list[tuple[int, int, str]]) -> list[Problem]:
    """A writer's (wseq, hlc, id), sorted: its wseq must run 1, 2, 3... (its hlc must increase
    too: `_Checker._backdated`)."""
    problems = []
    previous: tuple[int, int, str] = (0, -1, "")
    for wseq, hlc, eid in items:
        if wseq == previous[0]:
            problems.append(
                Problem(
                    "writer_collision",
                    where,
                    f"duplicate wseq {wseq} (events {previous[2]} and {eid}): two repositories"
                    " write as this writer (a copied repository?)",
                )
            )
            continue
        if wseq > previous[0] + 1:
            missing = range(previous[0] + 1, wseq)
            span = f"{missing[0]}" if len(missing) == 1 else f"{missing[0]}..{missing[-1]}"
            problems.append(Problem("wseq_gap", where, f"wseq {span} missing"))
        previous = (wseq, hlc, eid)
    return problems


def verify(paths: RepoPaths, config: Config, index: sqlite3.Connection | None = None) -> Report:
    """Check every source; with the clone's `index`, also report the events it holds that no
    source reaches any more (a warning: they still count; fleetgit restore-lost)."""
    checker = _Checker(config)
    problems = checker.report.problems
    max_line, max_blob = config.max_event_bytes, read_limit(config.segment_max_bytes)
    skipped: list[tuple[str, str, str]] = []
    here = str(paths.worktree)
    for f in scan_worktrees(paths, skipped):
        try:
            fd = safefs.open_file(f.worktree, f.relpath)
        except FileNotFoundError:
            continue
        except safefs.NotRegular as exc:  # replaced since the scan
            skipped.append((f.worktree, exc.relpath, exc.what))
            continue
        try:
            parsed = parse_fd(fd, 0, f.writer, types=CATALOGUE, max_line=max_line)
        finally:
            os.close(fd)
        where = f.relpath if f.worktree == here else str(f.path)
        name = f"{f.writer}/{f.number:08d}"
        checker.current.add(name)
        checker.add_segment(name, where, parsed, f.worktree, _file_loader(f.worktree, f.relpath))
    for worktree, relpath, what in skipped:
        where = relpath if worktree == here else f"{worktree}/{relpath}"
        hint = f"remove it (git rm -r {where} and commit, or rm -r {where} if untracked)"
        problems.append(
            Problem("not_read", where, f"{what}: only regular files are read", hint=hint)
        )
    git = GitRepo(paths)
    seen_blobs: set[str] = set()
    seen_trees: set[str] = set()
    read: set[str] = set()
    reported: set[tuple[str, str]] = set()
    targets = sorted(git.ref_targets(worktree_git_dirs(paths)).items())
    for name, target in targets:
        for path, kind, mode in git.fleet_entries(target):
            if kind != "tree":
                what = committed_kind(kind, mode)
                problems.append(Problem("not_read", f"{name}:{path}", f"{what}: not read"))
        tip = git.events_tree(target)
        for seg in committed_segments(git, tip, set()) if tip else ():
            checker.current.add(f"{seg.writer}/{seg.number:08d}")
    for name, target in targets:  # every commit of their history, as the index reads them
        for tree in git.events_trees(target, hide=read):
            if tree in seen_trees:
                continue
            seen_trees.add(tree)
            bad: list[tuple[str, str]] = []
            for seg in committed_segments(git, tree, set(), bad):
                if seg.blob in seen_blobs:
                    continue
                seen_blobs.add(seg.blob)
                segment = f"{seg.writer}/{seg.number:08d}"
                size = git.blob_size(seg.blob)
                if size > max_blob:
                    problems.append(
                        Problem(
                            "not_read",
                            f"{name}:{segment}",
                            f"a committed segment of {size} bytes, over the limit of {max_blob}"
                            " (twice segment_max_bytes, at least 64 MiB): not read",
                        )
                    )
                    continue
                parsed = parse(
                    git.blob(seg.blob, max_blob), 0, seg.writer, types=CATALOGUE, max_line=max_line
                )
                load = functools.partial(git.blob, seg.blob, max_blob)
                checker.add_segment(segment, f"{name}:{segment}", parsed, load=load)
            for path, what in bad:  # once each, however many commits hold it
                where = f"{name}:.fleet/events/{path}"
                if (where, what) not in reported:
                    reported.add((where, what))
                    problems.append(Problem("not_read", where, f"{what}: not read"))
        read.add(target)
    report = checker.finish()
    if index is not None:
        report.lost = lost_events(index, set(checker.hashes))
        report.problems += _lost_problems(index, report.lost)
    report.problems += checker.trust_problems(index)
    return report


def _file_loader(worktree: str, relpath: str) -> Callable[[], bytes]:
    def load() -> bytes:
        try:
            fd = safefs.open_file(worktree, relpath)
        except (OSError, safefs.NotRegular):
            return b""
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    return load


def lost_events(index: sqlite3.Connection, reachable: set[str]) -> list[str]:
    """Ids of the events `index` holds that are in none of the `reachable` ids: a force-push,
    a deleted branch or a filter-repo took the last commit (and work-tree file) holding them."""
    return [
        eid
        for (eid,) in index.execute("SELECT id FROM events ORDER BY pos")
        if eid not in reachable
    ]


def _lost_problems(index: sqlite3.Connection, lost: list[str]) -> list[Problem]:
    by_writer: dict[str, int] = defaultdict(int)
    for start in range(0, len(lost), 500):
        chunk = lost[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for (writer,) in index.execute(f"SELECT writer FROM events WHERE id IN ({marks})", chunk):
            by_writer[writer] += 1
    return [
        Problem(
            "lost",
            f"writer {writer}",
            f"{n} event(s) this clone ingested are in no commit of any ref nor in any work tree"
            " (a force-push, a deleted branch?): the index keeps them",
            settled=True,  # a warning: a failure only with --strict
            hint="fleetgit restore-lost publishes them again (same ids and bytes)",
        )
        for writer, n in sorted(by_writer.items())
    ]
