"""`fleetgit compact`: pack this writer's sealed segments into fewer, larger files.

Only this writer ever writes its directory, and only its sealed segments (committed in HEAD and
unchanged in the work tree) are packed: consecutive ones are concatenated byte for byte, up to
`segment_max_bytes`, into a new segment numbered past every number the writer has used, and the
old files are deleted in the same commit. Every line keeps its bytes, so each event keeps its id
and line hash: the index, keyed by event id, holds each event once whether it reads the old files
(a branch that still has them, or the history), the new one, or both. A merge of a branch that
still holds the old files is clean: one side deleted files the other did not change, and the new
name is one no other branch has.

The steps, each safe to be killed after: (1) each pack is written under a temporary name, synced
and renamed into place (a reader sees all of it or nothing; the old files are still there, so its
events are copies); (2) the old files are unlinked; (3) one commit records the new files and the
deletions. A run after an interrupted one finishes it: step 3 deletes from HEAD only segments of
this writer that are gone from the work tree and whose every event id is in the writer's files
that remain, so no event ever leaves the branch's tip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from fleetgit.git.repo import GitRepo, TooLarge, identity, refuse_during_operation
from fleetgit.ledger import safefs
from fleetgit.ledger.errors import GitError
from fleetgit.ledger.names import segment_number
from fleetgit.ledger.schema import Catalogue
from fleetgit.ledger.segments import RESTORED_SEGMENTS, parse, read_limit, segment_name

TMP_PREFIX = ".compacting-"


class Compacted(NamedTuple):
    commit: str | None  # None: nothing to do
    packed: tuple[str, ...]  # the old segment files, deleted
    written: tuple[str, ...]  # the new ones

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def compact(
    git: GitRepo,
    writer: str,
    *,
    max_bytes: int,
    max_line: int,
    types: Catalogue,
    next_number: int,
    message: str | None = None,
) -> Compacted:
    """Run under the writer's lock. `next_number`: the first segment number free for this writer
    (past every number it or the index has seen); `max_bytes`: the size a pack stays within."""
    paths = git.paths
    refuse_during_operation(paths)
    top = str(paths.worktree)
    reldir = f".fleet/events/{writer}"
    try:
        dfd = safefs.open_dir(top, reldir)
    except FileNotFoundError:
        return Compacted(None, (), ())
    except safefs.NotRegular as exc:
        raise safefs.refusal(exc) from None
    try:
        _sweep(dfd)
        head = _head_segments(git, reldir)
        sealed = []
        for name, blob in sorted(head.items()):
            number = segment_number(name)
            if number is None or number >= RESTORED_SEGMENTS:
                continue
            data = _file(top, f"{reldir}/{name}", max_bytes * 2)
            if data is None or _blob(git, blob, len(data)) != data:
                continue  # changed or gone in the work tree: not sealed as it is
            parsed = parse(data, 0, writer, types=types, max_line=max_line)
            if parsed.problems or parsed.torn_tail or parsed.good_end != len(data):
                continue  # anything intake skips stays where it is, for verify to show
            sealed.append((name, data))
        _drop_copies(top, reldir, dfd, head, sealed, writer, types, max_line, max_bytes)
        packs = _packs(sealed, max_bytes)
        packed: list[str] = []
        written: list[str] = []
        number = next_number
        for pack in packs:
            name = segment_name(number)
            number += 1
            _write_new(dfd, name, b"".join(data for _, data in pack))
            written.append(f"{reldir}/{name}")
            packed += [f"{reldir}/{n}" for n, _ in pack]
        for relpath in packed:
            os.unlink(relpath.rsplit("/", 1)[1], dir_fd=dfd)
        commit = _commit(
            git, writer, reldir, dfd, head, types, max_line, max_bytes, message, bool(packed)
        )
    finally:
        os.close(dfd)
    return Compacted(commit, tuple(packed), tuple(written))


def _drop_copies(
    top: str,
    reldir: str,
    dfd: int,
    head: dict[str, str],
    sealed: list[tuple[str, bytes]],
    writer: str,
    types: Catalogue,
    max_line: int,
    max_bytes: int,
) -> None:
    """Unlink what a killed run packed but did not commit: an uncommitted file of this writer
    whose every event is in the sealed segments (which are packed again now)."""
    sealed_ids = {
        e.id
        for _, data in sealed
        for e, _ in parse(data, 0, writer, types=types, max_line=max_line).events
    }
    for name in sorted(os.listdir(dfd)):
        if name in head or segment_number(name) is None:
            continue
        data = _file(top, f"{reldir}/{name}", max_bytes * 2)
        if not data:
            continue
        parsed = parse(data, 0, writer, types=types, max_line=max_line)
        ids = {e.id for e, _ in parsed.events}
        if ids and ids <= sealed_ids and not parsed.problems and parsed.good_end == len(data):
            os.unlink(name, dir_fd=dfd)


def _packs(sealed: list[tuple[str, bytes]], max_bytes: int) -> list[list[tuple[str, bytes]]]:
    """Runs of consecutive sealed segments, each at most `max_bytes`; only runs of two or more
    make a pack (one file repacked is no fewer files)."""
    packs: list[list[tuple[str, bytes]]] = []
    run: list[tuple[str, bytes]] = []
    size = 0
    previous = None
    for name, data in sealed:
        number = segment_number(name)
        consecutive = previous is not None and number == previous + 1
        if run and (not consecutive or size + len(data) > max_bytes):
            packs.append(run)
            run, size = [], 0
        if len(data) <= max_bytes:
            run.append((name, data))
            size += len(data)
        previous = number
    if run:
        packs.append(run)
    return [p for p in packs if len(p) > 1]


def _sweep(dfd: int) -> None:
    """Remove what a killed run left under a temporary name (never a segment name)."""
    for name in os.listdir(dfd):
        if name.startswith(TMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dfd)


def _write_new(dfd: int, name: str, payload: bytes) -> None:
    tmp = f"{TMP_PREFIX}{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    # never over an existing name: link fails if another file took it; then drop the temp name
    os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    os.unlink(tmp, dir_fd=dfd)
    os.fsync(dfd)


def _file(top: str, relpath: str, limit: int) -> bytes | None:
    try:
        return safefs.read_small(top, relpath, limit)
    except (safefs.NotRegular, ValueError):
        return None


def _head_segments(git: GitRepo, reldir: str) -> dict[str, str]:
    """name -> blob id of this writer's regular files in HEAD."""
    repo = git.repo
    if repo.head_is_unborn:
        return {}
    try:
        tree = repo.head.peel(_commit_type()).tree / reldir
    except KeyError:
        return {}
    if tree.type_str != "tree":
        return {}
    return {
        e.name: str(e.id)
        for e in repo[tree.id]
        if e.type_str == "blob" and e.filemode in (0o100644, 0o100755)
    }


def _commit(
    git: GitRepo,
    writer: str,
    reldir: str,
    dfd: int,
    head: dict[str, str],
    types: Catalogue,
    max_line: int,
    max_bytes: int,
    message: str | None,
    packed: bool,
) -> str | None:
    """Commit this writer's new or grown files and the deletions of its HEAD segments that are
    gone from the work tree, when every event id they hold is still in the files there; only
    when this run packed something or finishes a killed one (there are such deletions)."""
    import pygit2

    top = str(git.paths.worktree)
    present = {n for n in os.listdir(dfd) if segment_number(n) is not None}
    repo = git.repo
    added: dict[str, Any] = {}
    ids_here: set[str] = set()
    for name in sorted(present):
        data = _file(top, f"{reldir}/{name}", max_bytes * 2)
        if data is None:
            continue
        parsed = parse(data, 0, writer, types=types, max_line=max_line)
        ids_here.update(e.id for e, _ in parsed.events)
        if head.get(name) is None or str(pygit2.hash(data)) != head[name]:
            added[f"{reldir}/{name}"] = repo.create_blob(data)
    removed = []
    for name, blob in sorted(head.items()):
        if name in present or segment_number(name) is None:
            continue
        data = _blob(git, blob, read_limit(max_bytes))
        if data is None:
            continue  # not fleetgit's (too large to read): never removed
        parsed = parse(data, 0, writer, types=types, max_line=max_line)
        if {e.id for e, _ in parsed.events} <= ids_here:
            removed.append(f"{reldir}/{name}")
    if not removed and not (packed and added):
        return None
    text = message or (
        f"fleet: compact writer {writer}: {len(removed)} segment(s) into {len(added)}"
    )
    return commit_changes(git, added, removed, text)


def commit_changes(
    git: GitRepo, added: dict[str, Any], removed: Sequence[str], message: str
) -> str:
    """Commit on HEAD: `added` (path -> blob id) put in, `removed` taken out; the git index
    entries of those paths follow (the work tree already holds the same)."""
    import pygit2

    repo = git.repo
    author, committer = identity(git.paths, "AUTHOR"), identity(git.paths, "COMMITTER")
    head = repo.head.peel(pygit2.Commit)
    staging = pygit2.Index()
    staging.read_tree(head.tree)
    for rel in removed:
        with contextlib.suppress(KeyError, OSError):
            staging.remove(rel)
    for rel, oid in added.items():
        staging.add(pygit2.IndexEntry(rel, oid, pygit2.enums.FileMode.BLOB))
    tree = staging.write_tree(repo)
    try:
        commit_id = repo.create_commit("HEAD", author, committer, message, tree, [head.id])
    except pygit2.GitError as exc:
        raise GitError(f"commit failed: {exc}") from None
    index = repo.index
    index.read()
    for rel in removed:
        with contextlib.suppress(KeyError, OSError):
            index.remove(rel)
    for rel in added:
        index.add(rel)
    git.write_index_or_undo(index, head, commit_id)
    return str(commit_id)


def _commit_type() -> Any:
    import pygit2

    return pygit2.Commit


def _blob(git: GitRepo, blob: str, limit: int) -> bytes | None:
    """A committed segment's bytes, or None when it has more than `limit` (never read)."""
    try:
        return git.blob(blob, limit)
    except TooLarge:
        return None
