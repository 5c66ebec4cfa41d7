"""Indexes read from git objects alone: no work tree, no `.fleet/` checkout.

- `TreeIndex`: the ledger as recorded in one commit (`--rev`): only the segments in that commit's
  `.fleet/events` tree, in a throwaway file, built by the catch-up's own reading and folds.
- `GitView`: what `fleetgit guard` reads: an index caught up from the refs (a clone's own, or a
  bare repository's), plus the history of commits no ref holds yet (a push being received), added
  for the read only and rolled back, so a refused push leaves nothing behind.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from fleetgit.git.paths import RepoPaths
from fleetgit.index.catchup import Index, Progress
from fleetgit.index.store import IngestResult
from fleetgit.ledger.config import Config
from fleetgit.ledger.errors import IntegrityError

T = TypeVar("T")


class TreeIndex(Index):
    """The index of one commit's `.fleet/events` tree, at `path` (a throwaway file); empty
    until `rebuild()` reads the tree (Fleet.at_rev configures it first, then rebuilds once)."""

    def __init__(self, paths: RepoPaths, config: Config, commit: str, path: Path) -> None:
        super().__init__(paths, config, path)
        self.commit = commit

    def is_fresh(self) -> bool:
        return True  # nothing but the commit's tree is a source, and it never changes

    def catch_up_locked(
        self, progress: Progress | None = None, refs_fp: str | None = None
    ) -> IngestResult:
        del refs_fp  # no ref is a source here
        result = IngestResult()
        self.settled_pos = self.max_pos()
        tree = self.git.events_tree(self.commit)
        if tree is not None:
            self._read_tree(tree, set(), result)
        self.settle_clashes()
        return result


def see_quarantine(index: Index) -> None:
    """In a pre-receive hook the pushed objects wait in a quarantine directory that git names in
    GIT_QUARANTINE_PATH; git's own processes see it, pygit2 must be told."""
    quarantine = os.environ.get("GIT_QUARANTINE_PATH")
    if quarantine and os.path.isdir(quarantine):
        index.git.repo.odb.add_disk_alternate(quarantine)


class GitView:
    """An index caught up from its refs, read with the history of `tips` added (then rolled
    back): the same `read(query)` as the hook's IndexView, for guard/ranges.py."""

    def __init__(self, index: Index, tips: Sequence[str] = ()) -> None:
        self.index, self.tips = index, list(tips)

    def read(self, query: Callable[..., T]) -> T:
        index = self.index
        index.catch_up()
        see_quarantine(index)
        conn = index.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IntegrityError(f"the index is busy or unwritable: {exc}") from None
        try:
            index.settled_pos = index.max_pos()
            index.read_history(self.tips, IngestResult())
            index.settle_clashes()
            return query(conn)
        finally:
            index.clashes_from = None
            conn.execute("ROLLBACK")

    def close(self) -> None:
        self.index.close()
