"""Where events come from: segment files in every worktree, and segments committed on refs.

Shared by the index's catch-up and by `verify`, so both read exactly the same sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from fleetgit import fingerprint
from fleetgit.gitrepo import GitRepo
from fleetgit.paths import RepoPaths
from fleetgit.segments import WRITER_RE, segment_number


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


def scan_worktrees(paths: RepoPaths) -> Iterator[WorktreeFile]:
    """Every segment file in every worktree of the clone, with its stat (read by the light
    fingerprint module, so the hook and catch-up see the same files)."""
    for found in fingerprint.segment_files(str(paths.common_dir)):
        yield WorktreeFile._make(found)


class CommittedSegment(NamedTuple):
    writer: str
    number: int
    blob: str
    writer_tree: str


def committed_segments(
    git: GitRepo, events_tree: str, skip_trees: set[str]
) -> Iterator[CommittedSegment]:
    """Segments in one `.fleet/events` tree, skipping writer trees already fully read."""
    for writer, tree_id, kind in git.tree_entries(events_tree):
        if kind != "tree" or not WRITER_RE.match(writer) or tree_id in skip_trees:
            continue
        for name, blob_id, bkind in git.tree_entries(tree_id):
            number = segment_number(name)
            if bkind == "blob" and number is not None:
                yield CommittedSegment(writer, number, blob_id, tree_id)
