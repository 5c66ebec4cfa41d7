"""Fingerprints of the index's sources from file stats alone, and the refs git holds, read from
the ref files: what catch-up's fast path compares, light enough for the git hooks.

Catch-up (index/catchup.py) and the pre-commit hook compute freshness with these functions on the
same strings, so they cannot disagree about it. Like rules.py this is the hook path: no pathlib,
re or typing at run time (each costs milliseconds of the hook's budget), paths are plain strings.

- The files fingerprint XORs a 64-bit digest of each work-tree segment file's
  `(worktree, relpath, size, mtime_ns, inode)`, over every worktree of the clone.
- The refs fingerprint digests the stats of `packed-refs`, the loose refs under `refs/heads`,
  `refs/remotes` and `refs/fleet`, and each worktree's `HEAD`.
"""

from __future__ import annotations

import os
import stat

from fleetgit.ledger import safefs
from fleetgit.ledger.digest import blake2b, hash64
from fleetgit.ledger.names import is_writer, segment_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    # (worktree, relpath, writer, number, size, mtime_ns, ino): sources.WorktreeFile's fields
    SegmentFile = tuple[str, str, str, int, int, int, int]
    # (worktree, relpath, what): a name under .fleet/events that is not read, and why
    Skipped = tuple[str, str, str]

EVENTS_DIR = ".fleet/events"
REF_DIRS = ("refs/heads", "refs/remotes", "refs/fleet")
REF_PREFIXES = ("refs/heads/", "refs/remotes/", "refs/fleet/")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def worktree_tops(common_dir: str) -> list[str]:
    """Every worktree of the clone, the main one first; missing ones are skipped."""
    found: list[str] = []
    if os.path.basename(common_dir) == ".git" and os.path.exists(os.path.join(common_dir, "HEAD")):
        found.append(os.path.dirname(common_dir))
    linked = os.path.join(common_dir, "worktrees")
    for name in _sorted_names(linked):
        try:
            with open(os.path.join(linked, name, "gitdir"), encoding="utf-8") as fh:
                dotgit = fh.read().strip()
        except OSError:
            continue
        dotgit = os.path.normpath(os.path.join(linked, name, dotgit))  # relative: to its dir
        if os.path.exists(dotgit):
            found.append(os.path.dirname(dotgit))
    return found


def git_dirs(common_dir: str) -> list[str]:
    """The git dir of every worktree (for their HEAD files), the common dir first."""
    linked = os.path.join(common_dir, "worktrees")
    return [common_dir] + [
        os.path.join(linked, name)
        for name in _sorted_names(linked)
        if os.path.isdir(os.path.join(linked, name))
    ]


def _sorted_names(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:  # missing, or not a directory
        return []


def segment_files(common_dir: str, skipped: list[Skipped] | None = None) -> Iterator[SegmentFile]:
    """Every segment file in every worktree of the clone, with its stat. Only regular files in
    real directories count: a link, FIFO, device, socket or directory where a segment, a writer
    directory, `.fleet` or `.fleet/events` should be is never followed nor opened, and is added
    to `skipped` as (worktree, relpath, what) when a list is given (`verify` reports them)."""
    for top in worktree_tops(common_dir):
        try:
            base = safefs.open_dir(top, EVENTS_DIR)
        except FileNotFoundError:
            continue
        except safefs.NotRegular as exc:
            if skipped is not None:
                skipped.append((top, exc.relpath, exc.what))
            continue
        try:
            yield from _writer_dirs(top, base, skipped)
        finally:
            os.close(base)


def _writer_dirs(top: str, base: int, skipped: list[Skipped] | None) -> Iterator[SegmentFile]:
    for wdir in sorted(os.scandir(base), key=lambda e: e.name):
        if not is_writer(wdir.name):
            continue
        where = f"{EVENTS_DIR}/{wdir.name}"
        try:
            wfd = os.open(wdir.name, _DIR_FLAGS, dir_fd=base)
        except FileNotFoundError:
            continue
        except OSError:  # a link or not a directory
            if skipped is not None:
                skipped.append((top, where, _kind_of(wdir)))
            continue
        try:  # the entries stat through `wfd`: it stays open until they are done
            for entry in sorted(os.scandir(wfd), key=lambda e: e.name):
                number = segment_number(entry.name)
                if number is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                relpath = f"{where}/{entry.name}"
                if not stat.S_ISREG(st.st_mode):
                    if skipped is not None:
                        skipped.append((top, relpath, safefs.kind(st.st_mode)))
                    continue
                yield (top, relpath, wdir.name, number, st.st_size, st.st_mtime_ns, st.st_ino)
        finally:
            os.close(wfd)


def _kind_of(entry: os.DirEntry[str]) -> str:
    try:
        return safefs.kind(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return "not a directory"


def file_stamp(worktree: str, relpath: str, size: int, mtime_ns: int, ino: int) -> int:
    """A stable 64-bit digest of one file's stat; XOR-ed together into the files fingerprint.
    Kept per process: each catch-up digests every segment file again, most of them unchanged
    (a write's critical section: ~2 us a file digested, a lookup a fraction of that)."""
    key = (worktree, relpath, size, mtime_ns, ino)
    stamp = _stamps.get(key)
    if stamp is None:
        if len(_stamps) >= _STAMPS_KEPT:
            _stamps.clear()
        stamp = _stamps[key] = hash64(f"{worktree}\0{relpath}\0{size}\0{mtime_ns}\0{ino}".encode())
    return stamp


_stamps: dict[tuple[str, str, int, int, int], int] = {}
_STAMPS_KEPT = 1 << 14


def files_fingerprint(files: Iterable[SegmentFile]) -> str:
    fp = 0
    for f in files:
        fp ^= file_stamp(f[0], f[1], f[4], f[5], f[6])
    return str(fp)


def refs_fingerprint(common_dir: str, worktree_git_dirs: Sequence[str]) -> str:
    """A cheap digest of every ref the index reads, from file stats alone (no git call)."""
    h = blake2b(digest_size=16)
    _stat_into(h, os.path.join(common_dir, "packed-refs"))
    for prefix in REF_DIRS:
        for dirpath, _dirs, files in os.walk(os.path.join(common_dir, prefix)):
            for fname in sorted(files):
                _stat_into(h, os.path.join(dirpath, fname))
    for git_dir in worktree_git_dirs:
        _stat_into(h, os.path.join(git_dir, "HEAD"))
    return h.hexdigest()


def _stat_into(h: blake2b, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())


def fingerprints(common_dir: str) -> tuple[str, str]:
    """(files fingerprint, refs fingerprint) of the clone, as catch-up records them."""
    return (
        files_fingerprint(segment_files(common_dir)),
        refs_fingerprint(common_dir, git_dirs(common_dir)),
    )


def ref_targets(common_dir: str, worktree_git_dirs: Sequence[str]) -> dict[str, str]:
    """What `GitRepo.ref_targets` reads with pygit2, from the ref files: the commit ids of
    local and remote-tracking branches and refs/fleet/* (loose refs over packed ones, symbolic
    refs resolved, `*/HEAD` left out), and each worktree's detached HEAD as `HEAD@<git dir>`."""
    refs = _packed_refs(common_dir)
    for prefix in REF_DIRS:
        for dirpath, _dirs, files in os.walk(os.path.join(common_dir, prefix)):
            for fname in files:
                if fname.endswith(".lock"):  # a ref being written: not a ref (yet)
                    continue
                full = os.path.join(dirpath, fname)
                value = _read_text(full)
                if value is not None:
                    refs[full[len(common_dir) + 1 :].replace(os.sep, "/")] = value
    out = {}
    for name in refs:
        if name.startswith(REF_PREFIXES) and not name.endswith("/HEAD"):
            target = _resolve(refs, name)
            if target is not None:
                out[name] = target
    for git_dir in worktree_git_dirs:
        head = _read_text(os.path.join(git_dir, "HEAD"))
        if head is not None and not head.startswith("ref:") and len(head) >= 40:
            out[f"HEAD@{git_dir}"] = head
    return out


def _packed_refs(common_dir: str) -> dict[str, str]:
    text = _read_text(os.path.join(common_dir, "packed-refs")) or ""
    refs = {}
    for line in text.splitlines():
        if line and line[0] not in "#^":
            oid, _, name = line.partition(" ")
            refs[name.strip()] = oid
    return refs


def _resolve(refs: dict[str, str], name: str) -> str | None:
    """A ref's commit id, following symbolic refs (`ref: <name>`) a few levels, as git does."""
    value: str | None = refs[name]
    for _ in range(5):
        if value is None or not value.startswith("ref:"):
            break
        value = refs.get(value[4:].strip())
    if value is None or value.startswith("ref:"):
        return None
    return value


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None
