"""One sync: publish this writer's segments, push its ref, fetch every writer ref, ingest.

Order and failure: the publish is local and complete before the network is touched (a commit
on refs/fleet/writers/<writer>, under the writer's lock, so no append runs meanwhile); a push
or fetch that fails stops the sync there with git's own message, and the next sync starts
again from whatever is not yet on the remote. Nothing of the user's (HEAD, index, work tree,
stash, branches) is read for writing or changed. Syncs of one clone take turns on a lock in
the common git dir: a second one waits for the first, then runs.
"""

from __future__ import annotations

import fcntl
import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.git import fleetrefs
from fleetgit.git.paths import RepoPaths
from fleetgit.git.sources import scan_worktrees
from fleetgit.ledger import safefs
from fleetgit.ledger.errors import GitError, ValidationError
from fleetgit.ledger.names import segment_number
from fleetgit.ledger.segments import read_limit
from fleetgit.sync import prefetch

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


@dataclass
class Sent:
    events: int = 0
    segments: list[str] = field(default_factory=list)
    bytes: int = 0
    commit: str | None = None  # the new tip of refs/fleet/writers/<writer>, when one was made
    pushed: bool = False  # the remote's copy of this writer's ref moved
    refused: list[str] = field(default_factory=list)  # segments that are not extensions


@dataclass
class Received:
    writers: list[str] = field(default_factory=list)  # writer refs that moved (or appeared)
    events: int = 0  # events new to this clone's index
    gone: list[str] = field(default_factory=list)  # writer refs the remote no longer has


@dataclass
class SyncReport:
    remote: str
    writer: str
    dry_run: bool = False
    refspec_added: bool = False
    sent: Sent = field(default_factory=Sent)
    received: Received = field(default_factory=Received)
    concerns: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SNAPSHOTS_REFSPEC = "+refs/fleet/snapshots/*:refs/fleet/snapshots/*"


def fetch_snapshots_first(paths: RepoPaths, remote: str | None, timeout: float | None) -> None:
    """Before a clone's first index is made (no index file yet: a fresh clone whose first
    command is this sync), fetch the remote's index snapshots, so that opening the ledger
    loads one (index/snapshots.py) instead of reading every segment. A clone that has an index
    never fetches them again (a snapshot is the size of the index). A remote that fails here
    fails again in the sync's own fetch, which says so."""
    if paths.index_file.exists() or os.environ.get("FLEETGIT_NO_SNAPSHOT"):
        return
    try:
        name, _ = resolve_remote(paths, remote)
        fleetrefs.fetch_snapshots(paths, name, SNAPSHOTS_REFSPEC, timeout)
    except (GitError, ValidationError):
        return


def resolve_remote(
    paths: RepoPaths,
    remote: str | None,
    fleet: Fleet | None = None,
    config: fleetrefs.RemoteConfig | None = None,
) -> tuple[str, list[str]]:
    """The remote to sync with (the one named, else the current branch's upstream remote, else
    `origin`) and its fetch refspecs; refused in one line when this clone has no such remote.
    `fleet`: told the git config fleet.callsign read with them, for its `actor`. `config`: the
    settings, when read already (by prefetch.start)."""
    config = config or fleetrefs.remote_config(paths)
    if fleet is not None:
        fleet.configured_callsign(config.callsign)
    chosen = remote or config.upstream or "origin"
    if chosen not in config.remotes:
        shown = ", ".join(config.remotes) if config.remotes else "none"
        raise ValidationError(
            f"no git remote named {chosen!r} (remotes here: {shown})",
            hint="fleetgit sync REMOTE, or add one: git remote add origin URL",
        )
    return chosen, config.fetch.get(chosen, [])


@contextmanager
def sync_lock(
    paths: RepoPaths, timeout: float | None = None, held: int | None = None
) -> Iterator[None]:
    """One sync at a time per clone (all its worktrees): a second one waits its turn (at most
    `timeout` seconds when given). `held`: the lock file, open and locked already (by
    prefetch.start): released at the end like one taken here."""
    if held is not None:
        try:
            yield
        finally:
            os.close(held)
        return
    fd = prefetch.lock_file(paths)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GitError(
                            f"another sync of this clone ran longer than {timeout:g} s"
                        ) from None
                    time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases it


def own_segments(fleet: Fleet) -> dict[str, tuple[int, Callable[[], bytes]]]:
    """This writer's segment files: name -> (size, read). Those in this worktree, and those
    only a branch, remote-tracking branch or tag still holds (a reset took them from the work
    tree before a sync published them), in their longest version."""
    top, writer = str(fleet.paths.worktree), fleet.writer.id
    limit = read_limit(fleet.config.segment_max_bytes)
    found: dict[str, tuple[int, Callable[[], bytes]]] = {}
    for f in scan_worktrees(fleet.paths):
        if f.worktree != top or f.writer != writer:
            continue

        def read(relpath: str = f.relpath) -> bytes:
            try:
                data = safefs.read_small(top, relpath, limit)
            except (safefs.NotRegular, ValueError):
                data = None
            return data or b""

        found[f.relpath.rsplit("/", 1)[-1]] = (f.size, read)
    if not _ever_committed(fleet):
        return found  # no branch, remote-tracking branch or HEAD ever held one: no git to ask
    git = fleet.index.git
    for name, (blob, size) in fleetrefs.committed_segments(git, writer, limit).items():
        if segment_number(name) is not None and size > found.get(name, (-1, None))[0]:
            found[name] = (size, functools.partial(git.blob, blob, limit))
    return found


def _ever_committed(fleet: Fleet) -> bool:
    """Has a commit of a branch, a remote-tracking branch or a HEAD held a segment of this
    writer? The index marks each segment it finds in such a tree (catch-up reads every one of
    them, and Fleet.open caught up); a clone that only syncs has none, and the scan of every
    code ref's tree (`committed_segments`, three git processes and more) is not needed."""
    row = fleet.index.conn.execute(
        "SELECT 1 FROM segments WHERE writer = ? AND committed = 1 LIMIT 1", (fleet.writer.id,)
    ).fetchone()
    return row is not None


def publish(fleet: Fleet, sent: Sent, *, dry_run: bool = False) -> None:
    """Put this writer's new and grown segments on its ref (or, dry, count what would go)."""
    git, writer = fleet.index.git, fleet.writer
    with writer.locked() as state:
        if not dry_run and not fleet.index.segment_committed(writer.id, state.segment):
            size = writer.repair(max(state.segment, 1), fleet.config.max_event_bytes, CATALOGUE)
            if size is not None:  # only complete batches are published
                state.size = size
        files = own_segments(fleet)
        if dry_run:
            _tip, changes, lines, size, refused = fleetrefs.plan(git, writer.id, files)
            sent.events, sent.bytes, sent.segments = lines, size, sorted(changes)
            sent.refused = refused
            return
        published = fleetrefs.publish(git, writer.id, files)
    sent.commit = published.commit
    sent.events, sent.bytes = published.events, published.bytes
    sent.segments, sent.refused = list(published.segments), list(published.refused)


def run(
    fleet: Fleet,
    remote: str | None = None,
    *,
    push: bool = True,
    fetch: bool = True,
    dry_run: bool = False,
    timeout: float | None = None,
) -> SyncReport:
    paths = fleet.paths
    # the fetch the command started as it started (sync/prefetch.py), with the lock it took
    early = prefetch.take(paths) if fetch and not dry_run else None
    name, specs = resolve_remote(paths, remote, fleet, early.config if early else None)
    report = SyncReport(name, fleet.writer.id, dry_run)
    held = early.lock_fd if early is not None else None  # the sync lock, taken already
    if early is not None and early.remote != name:
        prefetch.stop(early)  # another remote than this sync's: not this sync's fetch
        early = None
    with sync_lock(paths, held=held):
        if not dry_run:
            report.refspec_added = fleetrefs.ensure_fetch_refspec(paths, name, specs)
        refs = fleetrefs.refs_under(paths, "refs/fleet/")  # as they were: one git call for both
        if push:
            _push(fleet, name, report, dry_run, timeout, refs)
        if fetch:
            _fetch(fleet, name, report, dry_run, timeout, refs, early)
    return report


def publish_on_write(fleet: Fleet, timeout: float) -> SyncReport:
    """`sync = "on-write"`: publish and push after a command's append, within `timeout`
    seconds; reads never reach the network."""
    deadline = time.monotonic() + timeout
    name, specs = resolve_remote(fleet.paths, None)
    report = SyncReport(name, fleet.writer.id)
    with sync_lock(fleet.paths, timeout):
        report.refspec_added = fleetrefs.ensure_fetch_refspec(fleet.paths, name, specs)
        _push(fleet, name, report, False, max(0.5, deadline - time.monotonic()))
    return report


# git's words when the remote's copy of this writer's ref is not an ancestor of the local one
_NOT_AHEAD = ("fast-forward", "fetch first", "needs force", "stale")


def _push(
    fleet: Fleet,
    remote: str,
    report: SyncReport,
    dry_run: bool,
    timeout: float | None,
    refs: dict[str, str] | None = None,
) -> None:
    """`refs`: the refs under refs/fleet/ as the sync found them, when it read them."""
    paths, writer = fleet.paths, fleet.writer.id
    mine = fleetrefs.writer_ref(writer)
    if refs is None:
        refs = fleetrefs.refs_under(paths, "refs/fleet/")
    there = refs.get(fleetrefs.remote_prefix(remote) + writer)
    if there is None and mine not in refs and not own_segments(fleet):
        return  # this writer has published nothing and has nothing to: no ref to push or ask
    if not dry_run and there is None:  # a first sync here, or the copy was lost: ask
        try:
            there = fleetrefs.fetch_own(paths, remote, writer, timeout)
        except GitError as exc:
            raise GitError(
                f"sync with {remote}: {exc.message}",
                hint="nothing changed here; run fleetgit sync again when the remote answers",
            ) from None
    garbage = None  # what the remote's copy names when it is no commit: a blob, a tree, a tag
    if (
        not dry_run
        and there not in (None, refs.get(mine))
        and not fleetrefs.is_commit(paths, there)
    ):
        garbage, there = there, None  # only this writer pushes it, and only commits: none of ours
    if not dry_run and there and mine not in refs:
        # the remote has this writer's history and this clone lost its ref: start from it
        fleetrefs.set_ref(paths, mine, there, None)
    publish(fleet, report.sent, dry_run=dry_run)
    local = fleetrefs.refs_under(paths, mine).get(mine)
    diverged = not dry_run and local and there and local != there
    if diverged and not fleetrefs.is_ancestor(paths, str(there), str(local)):
        with fleet.writer.locked():  # only the writer's holder moves its ref
            local = fleetrefs.join(fleet.index.git, writer, str(local), str(there))
    if dry_run:
        report.sent.pushed = bool(report.sent.segments) or (local is not None and local != there)
        return
    if local is not None and local != there:
        try:
            try:
                fleetrefs.push(paths, remote, writer, timeout, garbage)
            except GitError as exc:
                if not any(w in exc.message for w in _NOT_AHEAD):
                    raise
                # the remote's copy is not what this clone thought: fetch it, join, once more
                there = fleetrefs.fetch_own(paths, remote, writer, timeout)
                garbage = None
                if there and not fleetrefs.is_commit(paths, there):
                    garbage, there = there, None
                if there and not fleetrefs.is_ancestor(paths, there, local):
                    with fleet.writer.locked():
                        local = fleetrefs.join(fleet.index.git, writer, local, there)
                fleetrefs.push(paths, remote, writer, timeout, garbage)
        except GitError as exc:
            raise GitError(
                f"sync with {remote}: {exc.message}",
                hint=f"nothing is lost: your events wait on {fleetrefs.writer_ref(writer)}, and"
                f" the next fleetgit sync sends them",
            ) from None
        report.sent.pushed = True


def _fetch(
    fleet: Fleet,
    remote: str,
    report: SyncReport,
    dry_run: bool,
    timeout: float | None,
    refs: dict[str, str],
    early: prefetch.Prefetch | None = None,
) -> None:
    """`refs`: the refs under refs/fleet/ before the sync (the push moves only this writer's,
    which is never counted as received). `early`: the fetch started as the command started
    (sync/prefetch.py): waited for here, and its refs taken, instead of fetching now."""
    paths, prefix = fleet.paths, fleetrefs.remote_prefix(remote)
    before = {n[len(prefix) :]: t for n, t in refs.items() if n.startswith(prefix)}
    try:
        if dry_run:
            after = fleetrefs.list_remote(paths, remote, timeout)
        elif early is not None:
            fleetrefs.finish_fetch(early.proc, timeout)
            keep = fleet.writer.id if report.sent.pushed else None
            after = fleetrefs.apply_prefetch(paths, remote, keep)
        else:
            fleetrefs.fetch(paths, remote, timeout)
            after = {n[len(prefix) :]: t for n, t in fleetrefs.refs_under(paths, prefix).items()}
    except GitError as exc:
        raise GitError(
            f"sync with {remote}: {exc.message}",
            hint="nothing changed here; run fleetgit sync again when the remote answers",
        ) from None
    mine = fleet.writer.id
    report.received.writers = sorted(
        w for w, t in after.items() if before.get(w) != t and w != mine
    )
    report.received.gone = sorted(set(before) - set(after))
    if dry_run:
        return
    start = fleet.index.max_pos()
    result = fleet.index.catch_up()
    report.received.events = result.new_events
    report.concerns = concerns(fleet, start)


def concerns(fleet: Fleet, after_pos: int) -> list[dict[str, Any]]:
    """What arrived that concerns the acting pilot: messages to it, reservations of others that
    overlap its own (and its own that lost a clash to one), claims on sorties it claimed."""
    me = fleet.actor
    if not me:
        return []
    rows = fleet.index.conn.execute(
        "SELECT type, stream, actor, data, hlc, writer, wseq FROM events"
        " WHERE pos > ? AND writer != ? AND (actor IS NULL OR actor != ?)"
        " AND type IN ('message_sent', 'file_reserved', 'sortie_assigned') ORDER BY pos",
        (after_pos, fleet.writer.id, me),
    ).fetchall()
    out: list[dict[str, Any]] = []
    granted = set()
    claimed = _claimed_by(fleet, me)
    for etype, stream, actor, data_text, hlc, writer, wseq in rows:
        data = orjson.loads(data_text)
        if etype == "message_sent" and me in (*data.get("to", ()), *data.get("cc", ())):
            out.append(
                {
                    "kind": "message",
                    "from": actor,
                    "message_id": data.get("message_id"),
                    "subject": data.get("subject"),
                }
            )
        elif etype == "file_reserved":
            granted.add((hlc, writer, wseq))
        elif etype == "sortie_assigned" and stream in claimed:
            out.append(
                {"kind": "claim", "sortie": stream.partition("/")[2], "by": actor,
                 "assignee": data.get("assignee")}
            )  # fmt: skip
    if granted:
        out += _reservation_concerns(fleet, me, granted)
    return out


def _claimed_by(fleet: Fleet, me: str) -> set[str]:
    rows = fleet.index.conn.execute(
        "SELECT DISTINCT stream FROM events WHERE type = 'sortie_assigned' AND actor = ?", (me,)
    )
    return {r[0] for r in rows}


def _reservation_concerns(
    fleet: Fleet, me: str, granted: set[tuple[int, str, int]]
) -> list[dict[str, Any]]:
    from fleetgit.guard.patterns import overlaps

    every = fleet.reservations()
    mine = [r for r in every if r.holder == me]
    out: list[dict[str, Any]] = []
    for r in every:
        if r.holder == me or r.granted not in granted:
            continue
        for m in mine:
            if not overlaps(
                r.pattern, m.pattern, ignorecase=fleet.ignorecase, a_file=r.is_file,
                b_file=m.is_file,
            ):  # fmt: skip
                continue
            if m.lost_to is not None and m.lost_to.reservation_id == r.reservation_id:
                kind = "lost"  # mine lost the clash: it no longer counts
            elif r.lost_to is not None:
                kind = "won"
            else:
                kind = "reservation"
            out.append(
                {"kind": kind, "holder": r.holder, "pattern": r.pattern, "mode": r.mode,
                 "mine": m.pattern}
            )  # fmt: skip
    return out
