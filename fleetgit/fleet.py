"""The Python API. The CLI is a thin layer over this; it never sees typer.

fleet = Fleet.open("path/to/repo", actor="viper-1")
event = fleet.emit("mission_created", "mission/msn-1", {...}, expect_version=0)
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fleetgit.domain import catalogue
from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.domain.pilots.identity import check_callsign, git_config_entries, resolve_callsign
from fleetgit.domain.reservations import commands as rsv
from fleetgit.git import gitconfig
from fleetgit.git import repo as gitrepo
from fleetgit.git.paths import RepoPaths, locate
from fleetgit.git.repo import FLEET_ATTRIBUTES
from fleetgit.git.sources import WorktreeFile
from fleetgit.guard import rules
from fleetgit.index import Index, IngestResult, trust
from fleetgit.index.catchup import Progress
from fleetgit.index.reads import (
    EventFilter,
    count,
    find_event,
    select_events,
    select_stream,
    short_ids,
)
from fleetgit.index.schema import SCHEMA_VERSION
from fleetgit.index.store import WriterFacts, tail_hash
from fleetgit.ledger import clock, keys, safefs, schema, sigs
from fleetgit.ledger.codec import Event, encode
from fleetgit.ledger.codec import EventSpec as EventSpec  # the API takes it: emit_batch
from fleetgit.ledger.config import DEFAULT_TOML, Config, load
from fleetgit.ledger.errors import ConflictError, ValidationError
from fleetgit.ledger.names import segment_number
from fleetgit.ledger.segments import Writer, WriterState, durable, read_limit

if TYPE_CHECKING:
    from fleetgit.git.compaction import Compacted
    from fleetgit.index.gitviews import GitView
    from fleetgit.index.snapshotting import Built
    from fleetgit.index.verify import Report

_UNSET = object()


class InitResult(NamedTuple):
    worktree: str
    created: tuple[str, ...]
    updated: tuple[str, ...] = ()


class CommitResult(NamedTuple):
    commit: str | None  # None: there was nothing to commit
    paths: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # what was left alone, one line each


def init(path: str | os.PathLike[str] | None = None) -> InitResult:
    """Create `.fleet/config.toml`, `.fleet/events/`, the `.gitattributes` line and the index."""
    paths = locate(path)
    created: list[str] = []
    updated: list[str] = []
    top = str(paths.worktree)
    try:  # nothing is written through a link (see safefs)
        os.close(safefs.open_dir(top, ".fleet/events", create=True))
        if _create(top, ".fleet/config.toml", DEFAULT_TOML.encode()):
            created.append(".fleet/config.toml")
        before = safefs.read_small(top, ".gitattributes", MAX_ATTRIBUTES_BYTES)
        text = gitrepo.with_fleet_line(before or b"")
        if text is not None:
            fd = safefs.open_file(top, ".gitattributes", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with os.fdopen(fd, "wb") as fh:
                fh.write(text)
            (updated if before is not None else created).append(".gitattributes")
    except safefs.NotRegular as exc:
        raise safefs.refusal(exc) from None
    except ValueError as exc:  # a .gitattributes over the limit
        raise ValidationError(str(exc), hint="add the line yourself: " + FLEET_ATTRIBUTES) from None
    if not paths.index_file.exists():
        created.append(str(paths.index_file))
    Fleet(paths).close()
    return InitResult(str(paths.worktree), tuple(created), tuple(updated))


MAX_ATTRIBUTES_BYTES = 16 << 20  # a `.gitattributes` read to add the fleet line (init, commit)


def _create(top: str, relpath: str, content: bytes) -> bool:
    """Write a new regular file; False when something is there already (a link included)."""
    try:
        fd = safefs.open_file(top, relpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return True


class Fleet:
    """One repository's ledger: append, read, verify, commit.

    One thread at a time: a Fleet and its Index are not guarded against two threads using
    them at once (an append of one could interleave with a catch-up of another). Each thread
    that needs the ledger opens its own Fleet (or Index), as a process would: the writer's
    lock and SQLite's keep them apart. docs/design.md ("Threads") says where fleetgit does."""

    def __init__(
        self,
        paths: RepoPaths,
        *,
        actor: str | object | None = _UNSET,
        catch_up: bool = True,
        repair: bool = True,
        register: bool = False,
        index: Index | None = None,
        config: Config | None = None,
    ) -> None:
        self.paths = paths.require_initialized()
        self.config: Config = load(paths.config_file) if config is None else config
        self.writer = Writer(paths.local_dir, paths.events_dir)
        self.index = Index(paths, self.config) if index is None else index
        self._actor = actor
        self.register = register  # register the acting pilot with its first write, if need be
        self._as_of: tuple[int, int] | None = None
        self.rev: str | None = None  # at_rev: the commit whose tree alone is read; no writes
        self._rev_dir: str | None = None
        self._clock_ms: int | None = None  # at_rev: the commit's time stands for now
        self.appended = 0  # events this Fleet wrote
        self._written = -1  # inside an append: the fd of the segment written, not yet fsynced
        self._new_keys: dict[str, str] = {}  # callsign -> public key made for this batch
        self._admin_signer: Any = None  # the fleet admin key signing instead (signing_as_admin)
        self._append_size = 0  # the size of the segment an append writes to, before it
        self._git_index = str(paths.git_dir / "index")  # stat'ed by every append (_tracked_max)
        self._worktree = str(paths.worktree)
        # run by `close` while the index is still open (the CLI's on-write sync: cli/common.py)
        self.before_close: list[Callable[[], None]] = []
        if repair:
            self._repair_own_tail()
        if catch_up:
            self._configure_index()
            self.catch_up()

    def catch_up(self) -> IngestResult:
        """Bring the index level with every source. When there is something to read, the writer
        lock is taken first, as an append takes it: the catch-up then waits behind an append of
        this worktree in the kernel, woken the moment it ends, instead of in SQLite's busy
        handler, which sleeps 1, 2, 5, 10 ms... between tries (and holds up the next append)."""
        if self.rev is not None or self.writer.held:
            return self.index.catch_up()
        if self.index.is_fresh():  # once: index.catch_up would check it again
            return IngestResult()
        with self.writer.locked():
            return self.index.catch_up()

    def _configure_index(self) -> None:
        configure_index(self.index, self.config)

    def _repair_own_tail(self) -> None:
        """Cut a torn tail (a crash mid-append) off this writer's uncommitted segment; and when
        the index holds more of this writer's newest segment than the file does (a power loss
        took back bytes written but not yet fsynced: see `_append`), rebuild the index from
        the segments, which are the truth."""
        with self.writer.locked() as state:
            st = self.writer.stat(max(state.segment, 1))  # None: missing, or not a regular file
            if st is not None and (
                st.st_size != state.size
                and not self.index.segment_committed(self.writer.id, state.segment)
            ):
                size = self.writer.repair(
                    max(state.segment, 1), self.config.max_event_bytes, CATALOGUE
                )
                state.size = size if size is not None else -1
            if self._index_ahead():
                self.index.rebuild()
                # the lost batch's wseqs are free again: the counter stays contiguous
                state.wseq = self.index.writer_facts(self.writer.id).max_wseq

    def _index_ahead(self) -> bool:
        """Does the index hold bytes of this writer's newest segment that the file lacks?"""
        worktree = str(self.paths.worktree)
        row = self.index.conn.execute(
            "SELECT relpath, offset FROM files WHERE worktree = ? AND relpath > ?"
            " AND relpath < ? ORDER BY relpath DESC LIMIT 1",
            (worktree, f".fleet/events/{self.writer.id}/", f".fleet/events/{self.writer.id}0"),
        ).fetchone()
        if row is None or not row[1]:
            return False
        try:
            return bool(os.stat(os.path.join(worktree, row[0])).st_size < row[1])
        except FileNotFoundError:
            return False  # gone (a checkout, a clean): its events stay, as catch-up keeps them

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        actor: str | None = None,
        catch_up: bool = True,
        repair: bool = True,
        register: bool = False,
    ) -> Fleet:
        """Open the ledger of the repository containing `path`.

        By default it cuts a torn tail off this writer's own segment and catches the index up;
        `verify` opens with neither, so that it changes nothing. `actor` must be a registered
        pilot to write; with `register`, its first write registers it in the same batch.
        An empty `actor` is refused (None means: FLEET_CALLSIGN, else git config).
        """
        paths = locate(path)
        who = _UNSET if actor is None else check_callsign(actor)
        return cls(paths, actor=who, catch_up=catch_up, repair=repair, register=register)

    @classmethod
    def at_rev(
        cls, path: str | os.PathLike[str] | None, rev: str, *, actor: str | None = None
    ) -> Fleet:
        """The ledger as recorded in commit `rev`, to read: only the segments in that commit's
        `.fleet/events` tree, folded in a throwaway index (deleted by `close`) by the catch-up's
        own code, with the commit's `.fleet/config.toml`; its committer time stands for now (what
        had expired then). Writing through it is refused."""
        import shutil
        import tempfile

        from fleetgit.index.gitviews import TreeIndex

        paths = locate(path)
        git = gitrepo.GitRepo(paths)
        found = git.resolve_commit(rev) if rev and not rev.startswith("-") else None
        if found is None:
            raise ValidationError(
                f"--rev {rev}: names no commit here",
                hint="give a commit, branch or tag (git log --oneline lists commits)",
            )
        commit, seconds = found
        config = config_at(git, commit)
        tmp = tempfile.mkdtemp(prefix="fleetgit-rev-")
        try:
            index = TreeIndex(paths, config, commit, Path(tmp) / "index.sqlite")
            who = _UNSET if actor is None else check_callsign(actor)
            fleet = cls(paths, actor=who, catch_up=False, repair=False, index=index, config=config)
            fleet._configure_index()
            index.rebuild()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fleet.rev, fleet._rev_dir, fleet._clock_ms = commit, tmp, seconds * 1000
        return fleet

    def close(self) -> None:
        hooks, self.before_close = self.before_close, []
        try:
            for hook in hooks:
                hook()
        finally:
            self.index.close()
            if self._rev_dir is not None:
                import shutil

                shutil.rmtree(self._rev_dir, ignore_errors=True)
                self._rev_dir = None

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def actor(self) -> str | None:
        """The acting callsign, resolved once: --as, FLEET_CALLSIGN, git config fleet.callsign."""
        if self._actor is _UNSET:
            self._actor = resolve_callsign(None, self.paths)
        return self._actor  # type: ignore[return-value]

    def configured_callsign(self, value: str | None) -> None:
        """git config fleet.callsign, read by a caller with other settings (sync): `actor`
        then asks git for it no more."""
        if self._actor is _UNSET:
            self._actor = resolve_callsign(None, self.paths, configured=value)

    def me(self) -> str:
        """The acting callsign, for commands that act as a pilot; refused when there is none."""
        if not self.actor:
            raise ValidationError(
                "no pilot identity",
                hint="pass --as CALLSIGN, set FLEET_CALLSIGN or git config fleet.callsign",
            )
        return self.actor

    @functools.cached_property
    def ignorecase(self) -> bool:
        """Pattern case sensitivity follows git's core.ignorecase."""
        return gitconfig.ignorecase(git_config_entries(self.paths, r"^core\.ignorecase$"))

    # -- append -----------------------------------------------------------------------------

    def emit(
        self,
        type: str,
        stream: str,
        data: dict[str, Any],
        *,
        expect_version: int | None = None,
        causation_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Event:
        spec = EventSpec(type, stream, data, expect_version, causation_id, correlation_id)
        return self.emit_batch([spec])[0]

    def emit_batch(self, specs: Sequence[EventSpec]) -> list[Event]:
        """Append all of `specs` or none: validate, lock, catch up, check, write, ingest."""
        if not specs:
            raise ValidationError("nothing to append: the batch is empty")
        datas = self._validate(specs)
        return self._append(lambda: specs, datas, domain_rules=True)

    def transact(self, plan: Callable[[], Sequence[EventSpec]]) -> list[Event]:
        """Decide and append atomically: `plan` runs inside the writer lock and the index's
        write transaction, after catch-up, so what it reads cannot change before the write.
        It may raise to refuse (nothing is written) or return no specs to append nothing."""
        return self._append(plan, None)

    def _validate(self, specs: Sequence[EventSpec]) -> list[dict[str, Any]]:
        datas = [catalogue.validate(s.type, s.stream, s.data) for s in specs]
        for s in specs:
            schema.check_links(s.causation_id, s.correlation_id)
            if s.expect_version is not None and s.expect_version < 0:
                raise ValidationError(f"expected version {s.expect_version}: must be 0 or more")
        return datas

    def _append(
        self,
        plan: Callable[[], Sequence[EventSpec]],
        datas: list[dict[str, Any]] | None,
        *,
        domain_rules: bool = False,
    ) -> list[Event]:
        if self.rev is not None:
            raise ValidationError(
                f"the ledger as recorded in commit {self.rev[:12]} is read-only",
                hint="leave out --rev to write",
            )
        actor = self.actor
        acknowledged = False
        refs_fp = self.index.refs_stamp()  # before the lock: what refs git holds (catchup.py)
        try:
            with self.writer.locked() as state, self.index.transaction():
                events, joining = self._append_locked(
                    plan, datas, domain_rules, actor, state, refs_fp
                )
            acknowledged = True  # in the index, the lock released: fsync, then return
        finally:
            if self._written >= 0:
                fd, self._written = self._written, -1
                durable(fd, acknowledged and self.config.fsync == "always")
        self.appended += len(events)
        if self.index.trust_redo:  # its catch-up changed keys behind taken events (trust.py)
            self.index.trust_redo = False
            self.index.rebuild()
        return events[len(joining) :]  # the caller's, without a registration `register` added

    def _append_locked(
        self,
        plan: Callable[[], Sequence[EventSpec]],
        datas: list[dict[str, Any]] | None,
        domain_rules: bool,
        actor: str | None,
        state: WriterState,
        refs_fp: str,
    ) -> tuple[list[Event], list[EventSpec]]:
        """Inside the writer lock and the index's transaction: catch up, decide, check, write,
        ingest. The segment's fd is left in `self._written` for `_append` to fsync."""
        self.index.catch_up_locked(refs_fp=refs_fp)
        specs = plan()
        if not specs:
            return [], []
        if datas is None:
            datas = self._validate(specs)
        joining = self._check_registered(specs, actor)
        if joining:
            specs, datas = [*joining, *specs], [*self._validate(joining), *datas]
        if self.config.trust != "off":
            datas = self._with_keys(specs, datas, actor)
        seqs = self._assign_seqs(specs)
        if domain_rules:  # emit: the domain's rules, as the commands apply them
            from fleetgit.domain import emitcheck

            emitcheck.check(self, specs, datas, seqs, actor)
        facts = self.index.writer_facts(self.writer.id)
        wdir = self.writer.open_dir()  # one walk to the writer's directory for the stat and write
        try:
            number = self._segment_for_append(state, facts.max_segment, wdir)
            events, lines = self._build(specs, datas, seqs, state, actor, facts)
            lines = self._sign(number, events, lines, state)
            payload = b"".join(lines)
            st, tail, self._written = self.writer.write(number, payload, wdir)
        finally:
            if wdir >= 0:
                os.close(wdir)
        self._ingest_own(number, st, events, lines, tail)
        state.segment, state.size = number, st.st_size
        return events, joining

    def _check_registered(self, specs: Sequence[EventSpec], actor: str | None) -> list[EventSpec]:
        """Refuse a batch with an event whose actor is not a registered pilot (a typo in --as
        would create a phantom pilot that holds files), or one that left the fleet. A pilot
        registering itself is the exception; with `self.register` the acting pilot is
        registered by the batch: the specs to put first are returned."""
        actors = {s.actor or actor for s in specs} | ({actor} if self.register else set())
        actors.discard(None)
        if not actors:
            return []
        marks = ",".join("?" * len(actors))
        rows = self.index.conn.execute(
            f"SELECT callsign, deregistered FROM pilots WHERE callsign IN ({marks})", tuple(actors)
        )
        here = {name for name, gone in rows if not gone}
        left: set[str] = set()  # deregistered by this very batch
        joining: list[EventSpec] = []
        if self.register and actor is not None and actor not in here:
            data = {"callsign": actor}
            joining.append(EventSpec("pilot_registered", f"pilot/{actor}", data, actor=actor))
            here.add(actor)
        for s in specs:
            who = s.actor or actor
            if who is None:
                continue
            if s.type == "pilot_registered" and s.data.get("callsign") == who:
                here.add(who)  # registering itself
            if who not in here:
                self._refuse_unregistered(who, who in left)
            if s.type in ("pilot_registered", "pilot_spawned"):
                here.add(s.data["callsign"])
            elif s.type == "pilot_deregistered" and s.stream == f"pilot/{who}":
                here.discard(who)  # it left: its later events in the batch are refused
                left.add(who)
        return joining

    def _refuse_unregistered(self, callsign: str, left: bool = False) -> None:
        from fleetgit.domain.pilots import commands as pilots  # a cycle at import time

        if left or pilots.deregistered(self, callsign):
            raise ValidationError(
                f"pilot {callsign} is deregistered: register again to act",
                hint=f"fleetgit pilot register {callsign}, or add --register to this command",
            )
        close = pilots.closest_registered(self, callsign)
        guess = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValidationError(
            f"no pilot {callsign!r} is registered: register it before it acts",
            hint=f"{guess}a new pilot registers first: fleetgit pilot register {callsign}"
            " (or add --register to this command)",
        )

    def _assign_seqs(self, specs: Sequence[EventSpec]) -> list[int]:
        versions = self.index.stream_versions({s.stream for s in specs})
        seqs = []
        for s in specs:
            current = versions.get(s.stream, 0)
            if s.expect_version is not None and s.expect_version != current:
                raise ConflictError(
                    f"stream {s.stream} is at version {current}, expected {s.expect_version}",
                    hint="read the stream again (fleetgit stream STREAM) and retry",
                )
            versions[s.stream] = current + 1
            seqs.append(current + 1)
        return seqs

    def _build(
        self,
        specs: Sequence[EventSpec],
        datas: list[dict[str, Any]],
        seqs: list[int],
        state: WriterState,
        actor: str | None,
        facts: WriterFacts,
    ) -> tuple[list[Event], list[bytes]]:
        now = clock.now_ms()
        ts = clock.iso_ms(now)
        hlc = max(state.hlc, facts.witnessed_hlc)
        # the index knows every write that reached a file, even one whose process died before
        # saving the state (say, right after rolling to a new segment)
        wseq = max(state.wseq, facts.max_wseq)
        ids = clock.uuid7s(len(specs))
        tx, txn, writer, limit = ids[0], len(specs), self.writer.id, self.config.max_event_bytes
        pos = facts.next_pos  # fresh ids: they take consecutive positions
        events: list[Event] = []
        lines: list[bytes] = []
        for s, data, seq, event_id in zip(specs, datas, seqs, ids, strict=True):
            hlc = clock.tick(hlc, now)
            wseq += 1
            version = catalogue.event_type(s.type).version
            event = Event(
                event_id, s.type, version, s.stream, seq, hlc, writer, wseq, s.actor or actor,
                ts, tx, txn, data, s.causation_id, s.correlation_id, pos,
            )  # fmt: skip
            pos += 1
            line = encode(event)
            if len(line) > limit:
                raise ValidationError(
                    f"event {len(events) + 1} ({s.type}) is {len(line)} bytes, over the limit of"
                    f" {limit}",
                    hint="store large content in a file and reference its path",
                )
            events.append(event)
            lines.append(line)
        state.hlc, state.wseq = hlc, wseq
        return events, lines

    def _with_keys(
        self, specs: Sequence[EventSpec], datas: list[dict[str, Any]], actor: str | None
    ) -> list[dict[str, Any]]:
        """A pilot registering a new name gets a key (made in this clone's git dir, kept
        there) whose public half goes into its registration; a name that has keys already can
        be registered again only by a clone holding one of them (no clone takes over a name)."""
        out = list(datas)
        self._new_keys.clear()
        for i, s in enumerate(specs):
            who = s.actor or actor
            if s.type == "pilot_key_added" and who and not self._pilot_keys(who):
                self._new_keys[who] = out[i]["key"]  # a pilot's first key signs its own event
            if s.type not in ("pilot_registered", "pilot_spawned") or "key" in out[i]:
                continue
            callsign = out[i]["callsign"]
            if self._pilot_keys(callsign):
                if s.type == "pilot_registered":
                    self._key_of(callsign)  # refuses when this clone holds none of its keys
                continue
            out[i] = {**out[i], "key": keys.public(keys.create(self.paths.common_dir, callsign))}
            self._new_keys[callsign] = out[i]["key"]
        return out

    def _pilot_keys(self, callsign: str) -> set[str]:
        rows = self.index.conn.execute(
            "SELECT key FROM pilot_keys WHERE callsign = ? AND revoked_hlc IS NULL", (callsign,)
        )
        return {k for (k,) in rows} | (
            {self._new_keys[callsign]} if callsign in self._new_keys else set()
        )

    def _key_of(self, callsign: str) -> Any:
        """This clone's private key of `callsign`, which must be one of its keys in the
        ledger. None for a pilot with no key (one registered before keys existed) unless the
        fleet requires signatures."""
        held = keys.load_pair(self.paths.common_dir, callsign)
        known = self._pilot_keys(callsign)
        if held is not None and held[1] in known:
            return held[0]
        if known or self.config.trust == "require":
            raise ValidationError(
                f"this clone holds no key of pilot {callsign}: it cannot act as {callsign}",
                hint=f"on a machine that holds it: fleetgit --as {callsign} pilot key export,"
                f" then here: fleetgit --as {callsign} pilot key import"
                if known
                else f"fleetgit --as {callsign} pilot key add (a key for a pilot that has none)",
            )
        return None

    @contextlib.contextmanager
    def signing_as_admin(self, key: Any) -> Iterator[None]:
        """Appends inside sign with the fleet admin key `key`, whoever their actor (key events
        a fleet admin writes for a pilot: domain/pilots/keying.py)."""
        self._admin_signer = key
        try:
            yield
        finally:
            self._admin_signer = None

    def _sign(
        self, number: int, events: list[Event], lines: list[bytes], state: WriterState
    ) -> list[bytes]:
        """Sign the batch about to be written (index/trust.py, ledger/sigs.py). The segment's
        chain before it comes from the writer's state (the last signed append's), else from the
        segment itself; the chain after it goes back into the state, saved with it."""
        if self.config.trust == "off" or not any(e.actor for e in events):
            return lines
        size = self._append_size  # `_segment_for_append` stat'ed it, under the writer lock
        at = f"{number} {size} "
        if size and state.chain.startswith(at):
            base = bytes.fromhex(state.chain[len(at) :])
        else:
            path = self.paths.worktree / self.writer.relpath(number)
            base = trust.append_base(path, self.writer.id, number, size)
        admin = self._admin_signer
        key_of = self._key_of if admin is None else (lambda _actor: admin)
        signed = trust.sign_batch(lines, events, number, base, key_of)
        after = sigs.chain(base, signed)
        state.chain = f"{number} {size + sum(map(len, signed))} {after.hex()}"
        self._new_keys.clear()
        return signed

    def _segment_for_append(self, state: WriterState, max_segment: int, wdir: int = -1) -> int:
        """The segment to append to: the current one unless committed, staged, gone or full.
        `wdir`: the writer's directory, if open (`Writer.open_dir`)."""
        number = max(state.segment, max_segment, 1)
        adopted = number != state.segment
        if adopted:
            state.segment, state.size = number, -1  # another process rolled; it may have died
        # the stat this transaction's catch-up took of it, under the writer lock, is still its
        # stat (no other appender can write it); else (a new segment, not a regular file) now
        scanned = self.index.scanned
        seen = scanned and scanned[1].get((self._worktree, self.writer.relpath(number)))
        if seen is not None:
            size = seen.size
        else:
            st = self.writer.stat(number, wdir)  # None also when not a regular file: write refuses
            size = st.st_size if st is not None else -1
        sealed = self.index.segment_committed(self.writer.id, number)
        sealed = sealed or number <= self._tracked_max(state)
        if not sealed and size > 0 and size != state.size:
            # a crash after a write: keep only complete batches
            repaired = self.writer.repair(number, self.config.max_event_bytes, CATALOGUE)
            size = repaired if repaired is not None else -1
        # a segment the index knows (another process wrote it, or a sync brought it: see
        # sync/lost.py) that is not here: never started again with other bytes
        gone = size == -1 and (state.size > 0 or (adopted and number == max_segment))
        if sealed or gone or size >= self.config.segment_max_bytes:
            if self.config.fsync == "always" and not gone:
                self.writer.sync(number)  # its last append may still be fsyncing, unlocked
            number = max(number, state.staged_max) + 1
            state.size = size = 0
        self._append_size = max(size, 0)
        return number

    def _tracked_max(self, state: WriterState) -> int:
        """Highest segment number of this writer that git tracks or has staged (cached by stat)."""
        try:
            st = os.stat(self._git_index)
            stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        except FileNotFoundError:
            stamp = "none"
        if stamp != state.index_stamp:
            tracked = gitrepo.staged_paths(self.paths, f".fleet/events/{self.writer.id}/")
            numbers = (segment_number(Path(p).name) or 0 for p in tracked)
            state.staged_max = max(numbers, default=0)
            state.index_stamp = stamp
        return state.staged_max

    def _ingest_own(
        self,
        number: int,
        st: os.stat_result,
        events: list[Event],
        lines: list[bytes],
        tail: bytes,
    ) -> None:
        """Ingest what we just wrote without reading it back, and move the fingerprint along."""
        relpath = self.writer.relpath(number)
        worktree = str(self.paths.worktree)
        result = IngestResult()
        self.index.ingest_own(list(zip(events, lines, strict=True)), result)
        trust.learn_own(self.index, events, lines, number)
        self.index.replace_file_stamp(
            WorktreeFile(
                worktree, relpath, self.writer.id, number, st.st_size, st.st_mtime_ns, st.st_ino
            ),
            st.st_size,
            tail_hash(tail),
        )

    @contextlib.contextmanager
    def as_of(self, pos: int | None) -> Iterator[None]:
        """Answer reads from the state after position `pos` (None: the current state).

        Inside, `now_ms()` is the time of that position, so what depends on the clock (activity,
        expiry) is judged as it was then."""
        if pos is None:
            yield
            return
        last = self.index.max_pos()
        if pos < 0 or pos > last:
            raise ValidationError(
                f"--as-of {pos}: positions here run from 0 to {last}",
                hint=f"fleetgit events --reverse --limit 5 shows the newest (up to {last})",
            )
        from fleetgit.index import projections  # only when folding (see index/store.py)

        projections.materialize_as_of(self.index.conn, pos)
        row = self.index.conn.execute("SELECT max(hlc) FROM events WHERE pos <= ?", (pos,))
        self._as_of = (pos, clock.hlc_ms(row.fetchone()[0] or 0))
        try:
            yield
        finally:
            self._as_of = None
            projections.drop_as_of(self.index.conn)

    @property
    def as_of_pos(self) -> int | None:
        """The position reads answer from inside `as_of`, else None (the current state)."""
        return self._as_of[0] if self._as_of else None

    def now_ms(self) -> int:
        """The wall clock, or inside `as_of(pos)` the newest HLC time among positions <= pos."""
        if self._as_of:
            return self._as_of[1]
        return clock.now_ms() if self._clock_ms is None else self._clock_ms

    # -- reads ------------------------------------------------------------------------------

    def events(self, flt: EventFilter | None = None, **kwargs: Any) -> list[Event]:
        self.catch_up()
        return select_events(self.index, flt or EventFilter(**kwargs))

    def stream(
        self, stream: str, *, from_seq: int | None = None, to_seq: int | None = None
    ) -> list[Event]:
        catalogue.check_stream(stream)
        self.catch_up()
        return select_stream(self.index, stream, from_seq, to_seq)

    def show(self, ref: str) -> Event:
        self.catch_up()
        return find_event(self.index, ref)

    def short_ids(self, ids: Sequence[str]) -> list[str]:
        """Short forms of `ids` for a listing, each still unique in this index (see `show`)."""
        return short_ids(self.index, ids)

    def stream_version(self, stream: str) -> int:
        self.catch_up()
        return self.index.stream_version(stream)

    def verify(self) -> Report:
        """Check every segment of every source; changes nothing."""
        from fleetgit.index.verify import verify  # only this command needs it

        return verify(self.paths, self.config, self.index.conn)

    def rebuild(self, progress: Progress | None = None) -> IngestResult:
        return self.index.rebuild(progress)

    def verify_deep(self) -> list[str]:
        """Prove the index by replay: catch it up, rebuild a copy from the segments and compare
        (index/snapshotting.py); one line per table that differs."""
        from fleetgit.index.snapshotting import deep_verify

        self.index.catch_up()
        return deep_verify(self.index)

    def snapshot(self, rev: str = "HEAD", progress: Progress | None = None) -> Built:
        """Fold the history of `rev` into an index snapshot on refs/fleet/snapshots/<writer>."""
        from fleetgit.index.snapshotting import build

        return build(self.paths, self.config, self.writer.id, rev, progress, self._snapshot_signer)

    def _snapshot_signer(self) -> tuple[str, Any] | None:
        """Who signs a snapshot made here (index/snapshots.py `check_signature`): this clone's
        fleet admin key when the configuration lists it; else, in a fleet without admin keys,
        the acting pilot's key; unsigned only where trust is not "require"."""
        from fleetgit.index.trust import admin_keys

        admins = admin_keys(self.config)
        admin = keys.load_admin(self.paths.common_dir)
        if admin is not None and keys.public(admin) in admins:
            return ("admin", admin)
        if admins:
            raise ValidationError(
                "this fleet lists admin keys, and clones take only a snapshot one of them signed",
                hint="make the snapshot in the clone that holds a listed admin key",
            )
        held = keys.load_pair(self.paths.common_dir, self.actor) if self.actor else None
        if held is not None:
            return (str(self.actor), held[0])
        if self.config.trust == "require":
            raise ValidationError(
                "under trust = require clones take only a signed snapshot; no key here signs it",
                hint="fleetgit --as CALLSIGN snapshot (a pilot whose key this clone holds),"
                " or a fleet admin key (docs/trust.md)",
            )
        return None

    def compact(self, message: str | None = None) -> Compacted:
        """Pack this writer's sealed segments into fewer files, in one commit on HEAD."""
        from fleetgit.git.compaction import compact

        # under the writer's lock, so no append runs meanwhile; the next one rolls past the new
        # numbers, which the index has seen committed by then
        with self.writer.locked() as state:
            with self.index.transaction():
                self.index.catch_up_locked()
            facts = self.index.writer_facts(self.writer.id)
            result = compact(
                self.index.git,
                self.writer.id,
                max_bytes=self.config.segment_max_bytes,
                max_line=self.config.max_event_bytes,
                types=CATALOGUE,
                next_number=max(state.segment, facts.max_segment) + 1,
                message=message,
            )
        self.index.catch_up()
        return result

    def index_status(self) -> dict[str, Any]:
        idx = self.index
        fresh = idx.is_fresh()
        return {
            "path": str(idx.path),
            "schema_version": SCHEMA_VERSION,
            "events": count(idx, "SELECT count(*) FROM events"),
            "segments": count(idx, "SELECT count(*) FROM segments"),
            "streams": count(idx, "SELECT count(*) FROM streams"),
            "last_pos": idx.max_pos(),
            "anomalies": count(idx, "SELECT count(*) FROM anomalies"),
            "refused": count(idx, "SELECT count(*) FROM refused"),
            "held": count(idx, "SELECT count(*) FROM held"),
            "stale": not fresh,
            "writer": self.writer.id,
        }

    # -- reservations (the rules live in rsv.py) ----------------------------------

    def reserve(
        self,
        patterns: Sequence[str],
        *,
        shared: bool = False,
        ttl: str | int | None = None,
        reason: str | None = None,
        allow_broad: bool = False,
        cwd: str | None = None,
    ) -> list[rules.Reservation]:
        """Grant every pattern (from the top, or relative to `cwd` when given) or none."""
        return rsv.reserve(
            self,
            rsv.from_cwd(self, patterns, cwd),
            shared=shared,
            ttl=ttl,
            reason=reason,
            allow_broad=allow_broad,
        )

    def renew(
        self, patterns: Sequence[str] = (), *, ttl: str | int | None = None, cwd: str | None = None
    ) -> list[rules.Reservation]:
        return rsv.renew(self, rsv.from_cwd(self, patterns, cwd), ttl=ttl)

    def release(
        self, patterns: Sequence[str] = (), *, everything: bool = False, cwd: str | None = None
    ) -> list[str]:
        return rsv.release(self, rsv.from_cwd(self, patterns, cwd), everything=everything)

    def reservations(
        self, *, holder: str | None = None, include_expired: bool = False
    ) -> list[rules.Reservation]:
        return rsv.listing(self, holder=holder, include_expired=include_expired)

    def check(self, paths: Sequence[str], *, cwd: str | None = None) -> list[rules.Block]:
        """Which of `paths` (repo-relative, or relative to `cwd`) are blocked for the actor."""
        return rsv.check(self, paths, self.actor, cwd=cwd)

    # -- git --------------------------------------------------------------------------------

    def commit(self, message: str | None = None) -> CommitResult:
        """Commit the pending `.fleet/` files, and only them (plus the fleet line, when HEAD's
        `.gitattributes` lacks it); `commit` is None when there is nothing to commit."""
        git = self.index.git
        gitrepo.refuse_during_operation(self.paths)
        with self.writer.locked() as state:
            current = max(state.segment, 1)
            if not self.index.segment_committed(self.writer.id, state.segment):
                size = self.writer.repair(current, self.config.max_event_bytes, CATALOGUE)
                if size is not None:
                    state.size = size
            pending = gitrepo.changed_fleet_paths(self.paths)
            extra, warnings = _attributes_change(git)
            if not pending and not extra:
                return CommitResult(None, (), warnings)
            segments = [p for p in pending if p.startswith(".fleet/events/")]
            message = message or f"fleet: {len(segments)} segment(s) from writer {self.writer.id}"
            commit_id = git.commit_paths(
                pending, message, extra, max_bytes=read_limit(self.config.segment_max_bytes)
            )
        self.index.catch_up()
        return CommitResult(commit_id, tuple(pending) + tuple(extra), warnings)


def _attributes_change(git: gitrepo.GitRepo) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """HEAD's `.gitattributes` with the fleet line added, when it lacks it. Another clone may
    have committed a link, a directory or a huge file there: that is left as it is, said in one
    line, and the commit goes on without it."""
    try:
        text = git.head_file(".gitattributes", MAX_ATTRIBUTES_BYTES) or b""
    except gitrepo.NotAFile as exc:
        return {}, (f"{exc}; add the line {gitrepo.FLEET_ATTRIBUTES!r} to a regular one",)
    attributes = gitrepo.with_fleet_line(text)
    return ({} if attributes is None else {".gitattributes": attributes}), ()


def configure_index(index: Index, config: Config) -> None:
    """The force rule's limit and the activity window come from the configuration: when one
    changed, the releases by other pilots than the holders (index.forcing) or the takeovers of
    sorties (index.claims) are judged again."""
    from fleetgit.index import claims, forcing, projections

    limit, window = forcing.limit_of(config), claims.window_of(config)
    if forcing.configured(index.conn) != limit or claims.configured(index.conn) != window:
        with index.transaction() as conn:
            index.note_clashes(projections.configure(conn, limit, window))


def config_at(git: gitrepo.GitRepo, commit: str | None) -> Config:
    """The `.fleet/config.toml` a commit holds, checked as the file is; none: the defaults."""
    from fleetgit.ledger.config import MAX_CONFIG_BYTES, parse

    data = None if commit is None else git.file_at(commit, ".fleet/config.toml", MAX_CONFIG_BYTES)
    if data is None:
        return Config()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{commit[:12] if commit else ''}:.fleet/config.toml: not UTF-8 text",
            hint="save the file as UTF-8",
        ) from None
    return parse(text, f"{commit[:12] if commit else ''}:.fleet/config.toml")


def guard_view(path: str | os.PathLike[str] | None, tips: Sequence[str] = ()) -> GitView:
    """What `fleetgit guard` reads reservations and pilots from. In a clone (a CI checkout that
    has only fetched): its index, caught up as any command does. In a bare repository: an index
    of its own under its git dir, read from its refs alone (no work tree, no `.fleet/` there),
    with the config of HEAD's `.fleet/config.toml`. `tips`: the commits being judged, whose
    history is added for the read only (a push not yet in any ref)."""
    from fleetgit.git.paths import locate_repository
    from fleetgit.index.gitviews import GitView

    paths = locate_repository(path)
    if paths.worktree == paths.git_dir:  # bare
        git = gitrepo.GitRepo(paths)
        head = git.resolve_commit("HEAD")
        config = config_at(git, head[0] if head else None)
    else:
        config = load(paths.config_file)
    index = Index(paths, config)
    try:
        configure_index(index, config)
    except BaseException:
        index.close()
        raise
    return GitView(index, tips)
