"""Where events come from: segment files in every worktree, and segments committed on refs.

Shared by the index's catch-up and by `verify`, so both read exactly the same sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from fleetgit.git import fingerprint
from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import GitRepo, TooLarge
from fleetgit.ledger.names import is_writer, segment_number


class WorktreeFile(NamedTuple):
    worktree: str
    relpath: str  # .fleet/events/<writer>/<segment>.jsonl
    writer: str
    number: int
    size: int
    mtime_ns: int
    ino: int

    @property
    def path(self) -> Path:
        return Path(self.worktree) / self.relpath


def worktree_git_dirs(paths: RepoPaths) -> list[Path]:
    """The git dir of every worktree (for their HEAD files)."""
    return [Path(d) for d in fingerprint.git_dirs(str(paths.common_dir))]


def scan_worktrees(
    paths: RepoPaths, skipped: list[tuple[str, str, str]] | None = None
) -> Iterator[WorktreeFile]:
    """Every segment file in every worktree of the clone, with its stat (read by the light
    fingerprint module, so the hook and catch-up see the same files); what is not a regular
    file in real directories is left out, and added to `skipped` when given."""
    for found in fingerprint.segment_files(str(paths.common_dir), skipped):
        yield WorktreeFile._make(found)


class CommittedSegment(NamedTuple):
    writer: str
    number: int
    blob: str
    writer_tree: str


def committed_segments(
    git: GitRepo,
    events_tree: str,
    skipped_trees: set[str],
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[CommittedSegment]:
    """Segments in one `.fleet/events` tree, skipping writer trees already fully read. Only
    trees are writer directories and only regular blobs segments: a committed symbolic link
    (mode 120000), submodule (160000) or file where a writer directory or a segment should be
    is not read, and is added to `skipped` as (path under .fleet/events, what) when given."""
    for writer, tree_id, kind, mode in _listing(git, events_tree, "", skipped) or ():
        if not is_writer(writer) or tree_id in skipped_trees:
            continue
        if kind != "tree":
            if skipped is not None:
                skipped.append((writer, committed_kind(kind, mode)))
            continue
        for name, blob_id, bkind, bmode in _listing(git, tree_id, writer, skipped) or ():
            number = segment_number(name)
            if number is None:
                continue
            if bkind != "blob" or bmode not in REGULAR_MODES:
                if skipped is not None:
                    skipped.append((f"{writer}/{name}", committed_kind(bkind, bmode)))
                continue
            yield CommittedSegment(writer, number, blob_id, tree_id)


def _listing(
    git: GitRepo, tree_id: str, where: str, skipped: list[tuple[str, str]] | None
) -> list[tuple[str, str, str, int]] | None:
    """The entries of `tree_id` (at `where` under .fleet/events), or None when its listing is
    too large to be fleetgit's: never read, and added to `skipped` when given."""
    try:
        return list(git.tree_entries(tree_id))
    except TooLarge as exc:
        if skipped is not None:
            skipped.append((where, f"a directory whose listing has {exc.size} bytes"))
        return None


REGULAR_MODES = (0o100644, 0o100755)


def committed_kind(kind: str, mode: int) -> str:
    """What a tree entry is, in words."""
    if mode == 0o120000:
        return "a symbolic link"
    if mode == 0o160000 or kind == "commit":
        return "a submodule"
    if kind == "tree":
        return "a directory"
    return "a regular file" if mode in REGULAR_MODES else f"an entry of mode {mode:o}"
