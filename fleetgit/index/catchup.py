"""Catch-up: bring the index level with every source, cheaply when nothing changed.

Fast path: the stats of the work-tree segment files XOR-ed into one number, plus a digest of the
ref files' stats. When both match what the index recorded, there is nothing to read and no git
call is made at all.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.git.fingerprint import file_stamp, files_fingerprint
from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import GitRepo, blob_id_of_fd, refs_fingerprint
from fleetgit.git.sources import (
    CommittedSegment,
    WorktreeFile,
    committed_segments,
    scan_worktrees,
    worktree_git_dirs,
)
from fleetgit.index import trust
from fleetgit.index.schema import EVENT_INDEXES, KEPT_TABLES
from fleetgit.index.store import (
    _TAIL,
    REBUILD_SUFFIX,
    BulkInserts,
    IndexDB,
    IngestResult,
    fsync_path,
    link_lock,
    new_generation,
    put_link,
    renders_as_is,
    split_statements,
    sweep,
    tail_hash,
)
from fleetgit.ledger import safefs, sigs
from fleetgit.ledger.config import Config
from fleetgit.ledger.digest import blake2b
from fleetgit.ledger.indexlink import GEN_HEX, GEN_INFIX
from fleetgit.ledger.segments import Parsed, parse, parse_fd, read_limit, segment_name

# (stage, done, total): a rebuild reads the segments in the work trees, then those of the branches,
# then builds the indexes, then folds
Progress = Callable[[str, int, int], None]


# refs whose trees do not seal segments: the fleet's published histories (fleetgit/sync)
PUBLISHED_PREFIX = "refs/fleet/"

REBUILD_CACHE_KIB = -32768  # 32 MB of page cache while rebuilding (negative: KiB, as SQLite wants)
REBUILD_SORT_THREADS = 1  # a helper thread sorts on the other core while the indexes are built
REBUILD_SORT_CACHE_KIB = -16384  # 16 MB while sorting: the peak memory stays well under 200 MB


# the positions (and line hashes) of the events the index being replaced knew
_PRIOR_POS = (
    "CREATE TEMP TABLE IF NOT EXISTS prior_pos"
    " (id TEXT PRIMARY KEY, pos INTEGER NOT NULL, hash INT)"
)


_COMPARED = 1 << 20  # bytes of two files compared at a time


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _same_bytes(a: int, b: int, size: int) -> bool:
    """Do the first `size` bytes of the open files `a` and `b` match?"""
    for at in range(0, size, _COMPARED):
        part = os.pread(a, _COMPARED, at)
        if not part or part != os.pread(b, _COMPARED, at):
            return False
    return True


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _put_in_place(fresh: Path, link: Path) -> sqlite3.Connection | None:
    """Make the built file `fresh` the index: in WAL mode, its -wal named on disk first (so
    that after an OS crash the next boot drops it as written without syncs, IndexDB._claim_boot),
    then `link` replaced by a link to it in one rename. Returns the connection that keeps its
    -wal until the caller has opened its own; None where the filesystem makes no symbolic
    links (the caller copies it over the index instead)."""
    holder = sqlite3.connect(fresh, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("PRAGMA journal_mode = WAL")
        holder.execute("SELECT count(*) FROM meta").fetchone()  # opens the -wal
        fsync_path(link.parent)
        with link_lock(link):  # never between a relink's look at the link and its change
            put_link(link, fresh.name)
    except OSError as exc:
        holder.close()
        if _no_links(link, exc):
            return None
        raise
    except BaseException:
        holder.close()
        raise
    return holder


def _no_links(link: Path, exc: OSError) -> bool:
    """Did `put_link` fail because this filesystem makes no symbolic links (the index never
    one there)? Its temporary link, if any, goes."""
    if os.path.islink(link) or isinstance(exc, FileExistsError):
        return False
    for entry in os.scandir(link.parent):
        if entry.name.startswith(f"{link.name}{REBUILD_SUFFIX}-link-") and entry.is_symlink():
            return False
    return True


_FRESHNESS_KEYS = ("held_due_ms", "trust_rebuild", "trust_settings", "files_fp", "refs_fp")
# what a catch-up starts from: the last position, the stored fingerprints, and the earliest
# held batch's HLC (none held: nothing to release)
_LEVEL = (
    "SELECT (SELECT max(pos) FROM events), (SELECT value FROM meta WHERE key = 'files_fp'),"
    " (SELECT value FROM meta WHERE key = 'refs_fp'), (SELECT min(hlc) FROM held)"
)


class Index(IndexDB):
    """The index plus the logic that keeps it level with the segments."""

    def __init__(
        self, paths: RepoPaths, config: Config, path: Path | None = None, *, bulk: bool = False
    ) -> None:
        # a clone with no index yet starts from an index snapshot, if a usable one is here
        self.snapshot_note: str | None = None
        if path is None and not paths.index_file.exists():
            from fleetgit.index import snapshots

            self.snapshot_note = snapshots.install(paths, config)
        super().__init__(paths, config, path, bulk=bulk)
        self.git = GitRepo(paths)
        self.git_dirs = worktree_git_dirs(paths)

    def close(self) -> None:
        self.git.close()  # its git cat-file processes, if a read started them
        super().close()

    # -- freshness --------------------------------------------------------------------------

    def is_fresh(self) -> bool:
        # one query for every setting it reads: each statement lets go of the GIL, which a
        # server's other threads are waiting for
        self.follow()  # rebuilt by another process: the new file
        got = self.metas(*_FRESHNESS_KEYS)
        if self.held_due(got) or self.trust_stale(got):
            return False
        files = list(scan_worktrees(self.paths))
        return files_fingerprint(files) == got.get("files_fp", "") and refs_fingerprint(
            self.paths, self.git_dirs
        ) == got.get("refs_fp", "")

    def catch_up(self) -> IngestResult:
        """Ingest whatever is new; a few stat calls and no git call when nothing is."""
        if self.is_fresh():  # which is never so while the trust verdicts are stale
            return IngestResult()
        if self.trust_stale():
            return self.rebuild()
        with self.transaction():
            result = self.catch_up_locked()
        if self.trust_redo:
            self.trust_redo = False
            return self.rebuild()
        return result

    def trust_stale(self, got: dict[str, str] | None = None) -> bool:
        """Must the index be rebuilt for its signature verdicts (index/trust.py)? When a key
        change took validity from events it had taken (`derive`), or the configuration they
        follow (the policy, the admin keys) is not the one they were judged with. `got`: the
        meta settings, when the caller read them already."""
        if got is None:
            got = self.metas("trust_rebuild", "trust_settings")
        if "trust_rebuild" in got:
            return True
        return got.get("trust_settings", "") != trust.settings(self.config) and self.max_pos() > 0

    # -- the work ---------------------------------------------------------------------------

    def refs_stamp(self) -> str:
        """The refs fingerprint now: an appender takes it before the writer lock, so the
        critical section does not walk the refs (`catch_up_locked`'s `refs_fp`)."""
        return refs_fingerprint(self.paths, self.git_dirs)

    def catch_up_locked(
        self, progress: Progress | None = None, refs_fp: str | None = None
    ) -> IngestResult:
        """Catch up inside an open write transaction. `refs_fp`: the refs fingerprint, taken
        by the caller just before the transaction (`refs_stamp`), else taken here. Refs move
        under no lock of ours (git writes them), so one taken a moment earlier is as good: a
        ref moved since is read by the next catch-up, as one moved just after this scan is;
        and one that another process read in meanwhile only makes this one read again."""
        result = IngestResult()
        # what the fast path compares, in one statement (each one costs an append ~5 µs)
        max_pos, stored_files, stored_refs, first_held = self.conn.execute(_LEVEL).fetchone()
        self.settled_pos = int(max_pos or 0)
        if self.settled_pos == 0:  # read from nothing, as a rebuild reads
            self.set_meta("trust_settings", trust.settings(self.config))
        self.trust_deferred = []  # segments waiting for a key another source brings (trust.py)
        if first_held is not None and first_held < self._skew_bound():
            self.release_held(result)  # a held batch may have come close enough
        skipped: list[tuple[str, str, str]] = []
        files = list(scan_worktrees(self.paths, skipped))
        for _worktree, relpath, what in skipped:  # never opened: said once, as refused lines
            self.record_problems(relpath, 0, [(0, f"{what}: not read")])
        files_fp = files_fingerprint(files)
        if refs_fp is None:
            refs_fp = self.refs_stamp()
        if stored_files == files_fp and not self.rebuilding:
            pass  # nothing changed on disk: skip the per-file comparison
        else:
            self._catch_up_files(files, result, progress)
            self.set_meta("files_fp", files_fp)
        # the files as this transaction saw them, which `files_fp` now digests: an append moves
        # the fingerprint by its own file's stamp from here, without reading it back
        self.scanned = (int(files_fp), {(f.worktree, f.relpath): f for f in files})
        if refs_fp != stored_refs:
            self._read_refs(result, progress)
            self.set_meta("refs_fp", refs_fp)
        trust.flush(self, result)
        if self.trust_redo and not self.rebuilding:
            self.set_meta("trust_rebuild", "1")  # committed with this catch-up: see catch_up
        self.settle_clashes()
        return result

    def _catch_up_files(
        self, files: list[WorktreeFile], result: IngestResult, progress: Progress | None
    ) -> None:
        known = {(r["worktree"], r["relpath"]): r for r in self.query("SELECT * FROM files")}
        # the files read to their end, by path: a new worktree checks each of them out again
        whole: dict[str, list[WorktreeFile]] = {}
        for r in known.values():
            if r["offset"] == r["size"]:
                whole.setdefault(r["relpath"], []).append(
                    WorktreeFile(
                        r["worktree"], r["relpath"], "", 0, r["size"], r["mtime_ns"], r["ino"]
                    )
                )
        for done, f in enumerate(files, 1):
            row = known.pop((f.worktree, f.relpath), None)
            if row is None or (row["size"], row["mtime_ns"], row["ino"]) != (
                f.size,
                f.mtime_ns,
                f.ino,
            ):
                if row is None and self._copy_of_read(f, whole.get(f.relpath, [])):
                    pass  # the same bytes as a file read to its end: recorded, not parsed
                elif self._read_file(f, row, result) == f.size:
                    whole.setdefault(f.relpath, []).append(f)
            if progress:
                progress("reading segments", done, len(files))
        for worktree, relpath in known:  # gone from the work tree (checkout); events stay
            self.conn.execute(
                "DELETE FROM files WHERE worktree = ? AND relpath = ?", (worktree, relpath)
            )

    def _copy_of_read(self, f: WorktreeFile, read: list[WorktreeFile]) -> bool:
        """Is `f` (a file the index never read) byte for byte one of `read`, files at the same
        path in other worktrees that the index read to their end and that are as it read them?
        Then `f` is recorded as read, its events being in already: comparing the bytes costs a
        fraction of parsing and checking them again (each worktree `git worktree add` makes
        checks out every committed segment)."""
        alike = [o for o in read if o.size == f.size and o.worktree != f.worktree]
        if not alike:
            return False
        try:
            mine = safefs.open_file(f.worktree, f.relpath)
        except (OSError, safefs.NotRegular):
            return False
        try:
            if _stamp(os.fstat(mine)) != (f.size, f.mtime_ns, f.ino):
                return False  # changed since the scan: read as usual
            for other in alike:
                try:
                    theirs = safefs.open_file(other.worktree, other.relpath)
                except (OSError, safefs.NotRegular):
                    continue
                try:  # as the index read it (not changed since), and the same bytes
                    if _stamp(os.fstat(theirs)) == (other.size, other.mtime_ns, other.ino) and (
                        _same_bytes(mine, theirs, f.size)
                    ):
                        break
                finally:
                    os.close(theirs)
            else:
                return False
            start = max(0, f.size - _TAIL)
            tail = os.pread(mine, f.size - start, start)
        finally:
            os.close(mine)
        self.record_file(f, f.size, tail_hash(tail))
        return True

    def _read_file(self, f: WorktreeFile, row: Any, result: IngestResult) -> int | None:
        """Read a changed segment from where it was left, if the bytes before that still match.
        Only a regular file in real directories, streamed (see segments.parse_stream). Returns
        where the read ended (None: the file was gone)."""
        try:
            fd = safefs.open_file(f.worktree, f.relpath)
        except (FileNotFoundError, safefs.NotRegular):  # gone, or replaced since the scan
            return None
        try:
            offset = 0
            if row is not None and row["offset"] <= f.size:
                start = max(0, row["offset"] - _TAIL)
                if tail_hash(os.pread(fd, row["offset"] - start, start)) == row["tail_hash"]:
                    offset = row["offset"]
            parsed = parse_fd(
                fd, offset, f.writer, types=CATALOGUE, max_line=self.config.max_event_bytes
            )
            self.record_problems(f.relpath, 0, parsed.problems)  # offsets in the file
            self.ingest(parsed.events, result, (f.writer, f.number, offset))
            result.files_read += 1
            tail_start = max(0, parsed.good_end - _TAIL)
            tail = os.pread(fd, parsed.good_end - tail_start, tail_start)
        finally:
            os.close(fd)
        self.record_file(f, parsed.good_end, tail_hash(tail))
        return parsed.good_end

    def record_file(self, f: WorktreeFile, offset: int, tail: bytes) -> None:
        self.later(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.worktree, f.relpath, f.size, f.mtime_ns, f.ino, offset, tail),
        )
        self.later(
            "INSERT OR IGNORE INTO segments (writer, number, committed) VALUES (?, ?, 0)",
            (f.writer, f.number),
        )

    def _read_refs(self, result: IngestResult, progress: Progress | None) -> None:
        targets = self.git.ref_targets(self.git_dirs)
        known = {r["name"]: r["target"] for r in self.query("SELECT name, target FROM refs")}
        seen = {r["oid"] for r in self.query("SELECT oid FROM trees")}
        moved = [(n, t) for n, t in sorted(targets.items()) if known.get(n) != t]
        read = set(known.values())  # their history was read when they were
        for done, (name, target) in enumerate(moved, 1):
            seals = not name.startswith(PUBLISHED_PREFIX)
            trees = list(self.git.events_trees(target, hide=read))
            if not seals:  # oldest first: each grown copy of a segment is read past the last
                trees.reverse()
            for tree in trees:
                self._read_tree(tree, seen if seals else set(seen), result, seals=seals)
            read.add(target)
            self.conn.execute("INSERT OR REPLACE INTO refs VALUES (?, ?)", (name, target))
            if progress:
                progress("reading branches", done, len(moved))
        for name in set(known) - set(targets):
            self.conn.execute("DELETE FROM refs WHERE name = ?", (name,))

    def read_history(self, targets: Iterable[str], result: IngestResult) -> None:
        """Inside a write transaction: ingest the `.fleet/events` trees of the commits reachable
        from `targets` and from no ref read before (commits no ref holds yet: a push being
        judged, index/gitviews.py). The refs table is left as it is."""
        read = {r["target"] for r in self.query("SELECT target FROM refs")}
        seen = {r["oid"] for r in self.query("SELECT oid FROM trees")}
        first, *others = [*targets] or [""]
        if not first:
            return
        for tree in self.git.events_trees(first, hide=read, also=others):  # one walk
            self._read_tree(tree, seen, result)

    def _read_tree(
        self, events_tree: str, seen: set[str], result: IngestResult, *, seals: bool = True
    ) -> None:
        """Read one commit's `.fleet/events` tree: the blobs of writer trees not read before.

        A tree on a branch seals its segments (their writer rolls to a new one). A tree of a
        published fleet ref (refs/fleet/writers/*, refs/fleet/remotes/*: `fleetgit sync`) does
        not: it is never merged into a branch, and its next commit holds the segment grown.
        Its trees are not remembered either, so that a branch holding the same tree later
        still seals (`seen` is then the caller's copy)."""
        if events_tree in seen:
            return
        writer_trees: set[str] = set()
        bad: list[tuple[str, str]] = []
        for seg in committed_segments(self.git, events_tree, seen, bad):
            self.conn.execute(
                "INSERT INTO segments (writer, number, committed) VALUES (?, ?, 1)"
                " ON CONFLICT (writer, number) DO UPDATE SET committed = 1"
                if seals
                else "INSERT OR IGNORE INTO segments (writer, number, committed) VALUES (?, ?, 0)",
                (seg.writer, seg.number),
            )
            writer_trees.add(seg.writer_tree)
            if self.conn.execute("SELECT 1 FROM blobs WHERE oid = ?", (seg.blob,)).fetchone():
                continue
            size = self.git.blob_size(seg.blob)
            limit = read_limit(self.config.segment_max_bytes)
            where = f"blob {seg.blob[:12]} ({seg.writer}/{segment_name(seg.number)})"
            if size > limit:  # not fleetgit's: never read
                what = f"a committed segment of {size} bytes, over the read limit of {limit}"
                self.record_problems(where, 0, [(0, f"{what}: not read")])
            elif not self._checked_out(seg, size):  # else its events came in from the file
                data = self.git.blob(seg.blob, limit)
                start, chain, prefix = (0, None, None)
                if not seals:
                    start, chain, prefix = self._published_prefix(seg, data)
                parsed = parse(
                    data, start, seg.writer, types=CATALOGUE, max_line=self.config.max_event_bytes
                )
                self.record_problems(where, 0, parsed.problems)
                self.reading_blob = True
                try:
                    self.ingest(parsed.events, result, (seg.writer, seg.number, start), chain)
                finally:
                    self.reading_blob = False
                if not seals:
                    self._remember_published(seg, data, parsed, start, chain, prefix)
                del data
                result.blobs_read += 1
            self.conn.execute("INSERT OR IGNORE INTO blobs VALUES (?)", (seg.blob,))
        for path, what in bad:  # a link, a submodule, a file where a directory belongs
            self.record_problems(f"tree {events_tree[:12]} ({path})", 0, [(0, f"{what}: not read")])
        for oid in (*writer_trees, events_tree):
            if seals:
                self.conn.execute("INSERT OR IGNORE INTO trees VALUES (?)", (oid,))
            seen.add(oid)

    # A published segment (refs/fleet/*: `fleetgit sync`) grows from one fetch to the next, each
    # time in a new blob: its events up to where the last read of it ended are in the index
    # already, so only what follows is parsed (not the whole segment again), and the signature
    # chain goes on from the value it had there. Kept in `meta` per (writer, segment) with this
    # index's generation (a rebuild reads from the start), the end offset, a digest of the bytes
    # before it (a blob whose prefix differs is read whole) and the chain value.

    def _published_prefix(
        self, seg: CommittedSegment, data: bytes
    ) -> tuple[int, bytes | None, Any]:
        """(offset, chain value there, digest so far) to read a published blob from: past what
        an earlier read of a shorter copy of this segment took, else (0, None, None)."""
        if self.rebuilding:
            return 0, None, None
        kept = self.meta(f"published:{seg.writer}/{seg.number}").split()
        if len(kept) != 4 or kept[0] != self.meta("generation"):
            return 0, None, None
        end = int(kept[1])
        if not 0 < end < len(data):
            return 0, None, None
        prefix = blake2b(memoryview(data)[:end], digest_size=16)
        if prefix.hexdigest() != kept[2]:
            return 0, None, None
        return end, bytes.fromhex(kept[3]), prefix

    def _remember_published(
        self,
        seg: CommittedSegment,
        data: bytes,
        parsed: Parsed,
        start: int,
        chain: bytes | None,
        prefix: Any,
    ) -> None:
        """After reading `data` from `start` (with the chain value and the digest of the bytes
        before it, when not 0): keep where the read ended, the digest carried on to there
        (each byte hashed once) and the chain's value there."""
        if parsed.good_end <= 0:
            return
        value = sigs.chain(
            chain or sigs.genesis(seg.writer, seg.number), [line for _, line in parsed.events]
        )
        digest = prefix.copy() if prefix is not None else blake2b(digest_size=16)
        digest.update(memoryview(data)[start if prefix is not None else 0 : parsed.good_end])
        kept = (self.meta("generation"), parsed.good_end, digest.hexdigest())
        self.set_meta(
            f"published:{seg.writer}/{seg.number}", " ".join((*map(str, kept), value.hex()))
        )

    def _checked_out(self, seg: CommittedSegment, size: int) -> bool:
        """Does a work-tree segment the index has read hold exactly this blob's bytes? A
        committed segment usually is still checked out; its lines were ingested from the file
        (files come first), so parsing the blob again would only find copies: hashing the
        file is much cheaper than parsing it."""
        relpath = f".fleet/events/{seg.writer}/{segment_name(seg.number)}"
        for worktree, f_size, mtime_ns, ino, offset in self.conn.execute(
            "SELECT worktree, size, mtime_ns, ino, offset FROM files WHERE relpath = ?", (relpath,)
        ).fetchall():
            # the file as the index read it, every byte of it (no torn tail left for later)
            if (f_size, offset) != (size, size):
                continue
            try:
                fd = safefs.open_file(worktree, relpath)
            except (OSError, safefs.NotRegular):
                continue
            try:
                st = os.fstat(fd)
                same = (st.st_size, st.st_mtime_ns, st.st_ino) == (size, mtime_ns, ino)
                if same and blob_id_of_fd(fd, size, seg.blob) == seg.blob:
                    return True
            finally:
                os.close(fd)
        return False

    # -- rebuild ----------------------------------------------------------------------------

    def rebuild(self, progress: Progress | None = None) -> IngestResult:
        """Full replace from the segments. Positions of events already known are kept.

        Built in a fresh file of its own beside the index (`index.sqlite.gen-<hex>`) with the
        journal off (nothing to undo there, and no old rows to delete), while this index's
        write lock keeps every writer out, then put in place by one rename of the link
        `index.sqlite` that names it: readers see the old index until then, a SIGKILL at any
        point leaves it whole, and the next rebuild deletes what a killed one left. Every
        connection to the old file notices at its next write transaction or freshness check
        (one stat: `IndexDB.replaced`) and opens the new one; each file has its own -wal and
        -shm, so none is ever taken for another's. The fresh file is caught up and folded by
        the same code as any catch-up (`_build`). A throwaway index (another file than the
        clone's, as index/gitviews.py builds) and one with no events yet are built in place."""
        if not self.is_the_clones or self.max_pos() == 0:
            return self._rebuild_in_place(progress)
        link = self.path
        fresh_path = link.with_name(f"{link.name}{GEN_INFIX}{os.urandom(GEN_HEX // 2).hex()}")
        with self.transaction():  # the clone's one writer until the new file is in place
            old_path = self.file  # read here: `transaction` may have opened a newer file
            sweep(link, keep=self.file)  # what a killed rebuild left: none runs without this lock
            fresh = Index(self.paths, self.config, fresh_path, bulk=True)
            try:
                fresh.keep_from(self.path)
                with fresh.transaction():
                    result = fresh._build(progress)
                self.refused_new += fresh.refused_new
                fresh.close()
                if progress:
                    progress("putting it in place", 0, 1)
                holder = _put_in_place(fresh_path, link)
            except BaseException:
                fresh.close()
                _remove(fresh_path)  # never half a rebuild left behind when it can be helped
                raise
        if holder is None:
            return self._copy_in_place(fresh_path, result, progress)
        try:
            self.reopen()  # on the new file, whose -wal `holder` kept
        finally:
            holder.close()
        if old_path != link:  # the old file retired: its other readers keep what they hold
            _remove(old_path)
        if progress:
            progress("putting it in place", 1, 1)
        return result

    def _copy_in_place(
        self, fresh: Path, result: IngestResult, progress: Progress | None
    ) -> IngestResult:
        """Where the filesystem makes no symbolic links: the built file copied over the index in
        one write transaction through its own WAL (SQLite's backup), as before 2026-12-02, with
        the gap that had: the copy cannot start inside the rebuild's write transaction, so an
        append that slips in between is overwritten in the index (its segment keeps it)."""
        source = sqlite3.connect(fresh)
        try:
            source.backup(self.conn)
        finally:
            source.close()
            _remove(fresh)
        with contextlib.suppress(sqlite3.OperationalError):  # a reader may hold it: later then
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if progress:
            progress("putting it in place", 1, 1)
        return result

    def _rebuild_in_place(self, progress: Progress | None) -> IngestResult:
        """Rebuild inside this index's own write transaction (see `rebuild`)."""
        with self.transaction() as c:  # on the file in place (`transaction` may reopen)
            c.execute("DROP TABLE IF EXISTS temp.prior_pos")
            c.execute(_PRIOR_POS)  # the positions the events had, given back by `_build`
            c.execute("INSERT INTO prior_pos SELECT id, pos, hash FROM events")
            for table in self.derived_tables():
                c.execute(f"DELETE FROM {table}")
            c.execute("DELETE FROM meta WHERE key IN ('files_fp', 'refs_fp')")
            new_generation(c)
            return self._build(progress)

    def keep_from(self, old: Path) -> None:
        """Into a fresh index, from the one at `old` it replaces: the positions of the events
        it knows (`prior_pos`), its clone-local tables, its settings in `meta` and its highest
        position ever given (AUTOINCREMENT's, so no position is given twice). Outside a
        transaction: one would lock `old` too, whose write lock the rebuild holds."""
        c = self.conn
        # read-only: a write transaction here then takes no lock on it (it stays attached
        # while the fresh index is built); the positions are looked up in it, not copied
        c.execute("ATTACH ? AS old", (f"file:{quote(str(old))}?mode=ro",))
        c.execute("CREATE TEMP VIEW prior_pos AS SELECT id, pos, hash FROM old.events")
        for table in KEPT_TABLES:
            c.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}")
        c.execute(
            "INSERT OR REPLACE INTO main.meta SELECT key, value FROM old.meta WHERE key NOT IN"
            " ('files_fp', 'refs_fp', 'generation', 'schema_version')"
        )
        c.execute("DELETE FROM main.sqlite_sequence")
        c.execute("INSERT INTO main.sqlite_sequence SELECT * FROM old.sqlite_sequence")

    def _build(self, progress: Progress | None) -> IngestResult:
        """Catch up and fold an index whose derived tables are empty, inside its write
        transaction: the events inserted without their secondary indexes, which are then
        sorted once, and every projection folded from the start."""
        c = self.conn
        c.execute(_PRIOR_POS)
        bulk = self.bulk and renders_as_is(c)
        # Sorting each secondary index once at the end beats updating it per event; but the
        # inserts of a bulk build run on the other core, which has time to spare for them
        for (name,) in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            " AND sql IS NOT NULL"
        ).fetchall():
            if not bulk:
                c.execute(f"DROP INDEX {name}")
        # A bigger page cache while reading and folding; a sorter thread on the other core.
        c.execute(f"PRAGMA cache_size = {REBUILD_CACHE_KIB}")
        c.execute(f"PRAGMA threads = {REBUILD_SORT_THREADS}")
        self.rebuilding = True
        self.trust_redo = False
        (seq,) = c.execute(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'events'"
        ).fetchone()
        collecting = gc.isenabled()
        # No cycle collection while building: a rebuild allocates millions of tuples and dicts
        # (an Event and its data per line) that reference counting frees, and each collection
        # of the older generations walks every one still alive: ~15 % of the main thread's CPU
        # at 1,000,000 events (bench.rebuild). What it makes holds no cycles that matter:
        # collected once it ends, as usual (`finally` below).
        gc.disable()
        try:
            # the events inserted on the other core while the next portion is read and checked
            self.ingested = 0
            with BulkInserts(self) if bulk else contextlib.nullcontext() as self.bulk_inserts:
                result = self.catch_up_locked(progress)
                if self.trust_redo:
                    result = self._read_again(seq, progress)
            if self.ingested > result.new_events:  # copies read: their signatures kept twice
                trust.dedupe_signatures(c)
            if progress:
                progress("building indexes", 0, 1)
            # sorting (the indexes, the streams' GROUP BY) holds up to a cache's worth per
            # thread on top of the page cache: a smaller one keeps the peak down
            c.execute(f"PRAGMA cache_size = {REBUILD_SORT_CACHE_KIB}")
            for statement in split_statements(EVENT_INDEXES):
                c.execute(statement)
            self.fold_all_streams()
            c.execute(f"PRAGMA cache_size = {REBUILD_CACHE_KIB}")
            if progress:
                progress("building indexes", 1, 1)
            from fleetgit.index import projections  # only when folding (see store.py)

            if progress:
                progress("folding projections", 0, 1)
            projections.rebuild(c)
            if progress:
                progress("folding projections", 1, 1)
        finally:
            if collecting:
                gc.enable()
            self.rebuilding = False
            self.bulk_inserts = None
            c.execute("PRAGMA cache_size = -2000")  # SQLite's defaults: 2 MB, no threads
            c.execute("PRAGMA threads = 0")
        (kind,) = c.execute(
            "SELECT type FROM temp.sqlite_master WHERE name = 'prior_pos'"
        ).fetchone()
        c.execute(f"DROP {kind} temp.prior_pos")  # a view of the index replaced (`keep_from`)
        self.set_meta("trust_settings", trust.settings(self.config))
        c.execute("DELETE FROM meta WHERE key = 'trust_rebuild'")
        return result

    def _read_again(self, seq: int, progress: Progress | None) -> IngestResult:
        """A rebuild whose reading changed a pilot's keys after events of it were taken (two
        keys registered for one name, a revocation read after what it invalidates): read
        everything again with the keys decided from all key events in total order, from the
        start (`trust.derive`), so the verdicts do not depend on the order of reading. Rare:
        only such a conflict costs it."""
        c = self.conn
        self.trust_redo = False
        self.ingested = 0
        for table in self.derived_tables():
            if table != "key_events":
                c.execute(f"DELETE FROM {table}")
        c.execute("DELETE FROM meta WHERE key IN ('files_fp', 'refs_fp')")
        c.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (seq,))
        trust.derive(self, {p for (p,) in c.execute("SELECT DISTINCT pilot FROM key_events")})
        return self.catch_up_locked(progress)

    def replace_file_stamp(self, f: WorktreeFile, offset: int, tail: bytes) -> None:
        """After our own append: record the file and move the fingerprint by this file alone.
        Inside the append's transaction, after its catch-up: the fingerprint and the file's
        stamp before the append are the ones that catch-up's scan saw (`scanned`)."""
        scanned, self.scanned = self.scanned, None
        row: tuple[Any, ...]
        if scanned is not None:
            fp, files = scanned
            seen = files.get((f.worktree, f.relpath))
            row = (None,) * 3 if seen is None else (seen.size, seen.mtime_ns, seen.ino)
        else:  # not after a catch-up of this transaction: as the index recorded them
            stored_fp, *row = self.conn.execute(
                "SELECT (SELECT value FROM meta WHERE key = 'files_fp'), f.size, f.mtime_ns,"
                " f.ino FROM (SELECT 1) LEFT JOIN files f ON f.worktree = ? AND f.relpath = ?",
                (f.worktree, f.relpath),
            ).fetchone()
            fp = int(stored_fp or 0)
        known = row[0] is not None
        if known:
            fp ^= file_stamp(f.worktree, f.relpath, *row)
        self.conn.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.worktree, f.relpath, f.size, f.mtime_ns, f.ino, offset, tail),
        )
        if not known:  # a new segment file
            self.conn.execute(
                "INSERT OR IGNORE INTO segments (writer, number, committed) VALUES (?, ?, 0)",
                (f.writer, f.number),
            )
        fp ^= file_stamp(f.worktree, f.relpath, f.size, f.mtime_ns, f.ino)
        self.set_meta("files_fp", str(fp))
