"""The fleet index as the guarding hooks read it: level with every source, or caught up first.

A fetch, a `reset --hard`, a cherry-pick or a read-tree brings in events without running any
post-* hook, so the index may be behind. The hook checks it the way catch-up's fast path does
(the files and refs fingerprints, from file stats) and catches up with the full package when it
is behind. One common case stays light: refs that moved (every commit moves one) to commits whose
`.fleet/events` tree the index has already read, or that have none, bring nothing new; one
`git cat-file` call, run alongside the diff, tells.

The hook path: no typing, re, subprocess or pathlib at run time.
"""

from __future__ import annotations

import os

from fleetgit.git import fingerprint
from fleetgit.guard.hookgit import STDIN_MAX, HookFailure, Process, Where
from fleetgit.guard.rules import Reservation, load
from fleetgit.ledger import boot, clock, indexlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from typing import TypeVar

    _T = TypeVar("_T")
else:
    try:  # the C module alone: `sqlite3` adds datetime adapters this hook never uses (~2 ms)
        import _sqlite3 as sqlite3
    except ImportError:  # pragma: no cover - a Python without it
        import sqlite3

EVENTS_TREE = ".fleet/events"
MAX_MOVED = 200  # moved refs the hook looks into itself; more (a large fetch): catch up


class IndexView:
    """Open it before asking git for the paths: the git call freshness may need runs meanwhile;
    then `live()` returns the live reservations from an index level with every source."""

    __slots__ = ("conn", "linked", "paths", "probe", "stale")

    def __init__(self, paths: Where) -> None:
        self.paths = paths
        self.conn: sqlite3.Connection | None = None
        self.linked: str | None = None  # what the index's link named when connected
        self.probe: Process | None = None
        self.stale = True  # no index yet, or not yet checked since a reboot: build or check it
        index = paths.index_file  # a link to no rebuild's file (foreign): caught up, replaced
        if indexlink.target(index) and os.path.isfile(index) and boot.opened_this_boot(index):
            try:
                self._connect()
                try:
                    self.stale = self._behind()
                except sqlite3.Error:
                    if not self._moved():
                        raise
                    self._connect()  # a rebuild put another file in place meanwhile
                    self.stale = self._behind()
            except sqlite3.Error as exc:
                self.close()
                raise HookFailure(f"cannot read the fleet index ({exc})") from None

    def _connect(self) -> None:
        self.close()
        self.linked = _linked(self.paths.index_file)
        self.conn = _connect(self.paths)

    def _moved(self) -> bool:
        """Has a rebuild put another file in place since `_connect`? Its retired file is then
        deleted, and a connection made just before may fail on it: the index read again."""
        return _linked(self.paths.index_file) != self.linked

    def _behind(self) -> bool:
        """Is the index behind its sources? Starts `self.probe` when git must tell."""
        assert self.conn is not None
        stored = dict(
            self.conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('files_fp', 'refs_fp', 'held_due_ms')"
            )
        )
        due = stored.get("held_due_ms")
        if due and int(due) <= clock.now_ms():
            return True  # a batch held back for its clock has come due (Index.held_due)
        common = self.paths.common_dir
        files_fp = fingerprint.files_fingerprint(fingerprint.segment_files(common))
        if stored.get("files_fp") != files_fp:
            return True  # segment files changed, not by fleetgit (a checkout, a reset)
        git_dirs = fingerprint.git_dirs(common)
        if stored.get("refs_fp") == fingerprint.refs_fingerprint(common, git_dirs):
            return False
        known = dict(self.conn.execute("SELECT name, target FROM refs"))
        moved = {
            target
            for name, target in fingerprint.ref_targets(common, git_dirs).items()
            if known.get(name) != target
        }
        if not moved:
            return False  # the ref files were rewritten (pack-refs), or refs deleted
        query = "".join(f"{target}:{EVENTS_TREE}\n" for target in sorted(moved)).encode()
        if len(moved) > MAX_MOVED or len(query) > STDIN_MAX:
            return True
        self.probe = Process(
            self.paths, "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin=query
        )
        return False

    def _new_trees(self, probe: Process) -> bool:
        """Does a moved ref lead to an events tree the index has not read?"""
        assert self.conn is not None
        code, out, _ = probe.result()
        if code != 0:
            return True  # cannot tell: the catch-up will say what is wrong
        trees = set()
        for line in out.splitlines():
            oid, _, kind = line.partition(" ")
            if kind == "tree":
                trees.add(oid)
            # `missing` (no .fleet/events there) or not a tree: nothing for catch-up to read
        if not trees:
            return False
        marks = ",".join("?" * len(trees))
        (found,) = self.conn.execute(
            f"SELECT count(*) FROM trees WHERE oid IN ({marks})", sorted(trees)
        ).fetchone()
        return int(found) != len(trees)

    def live(self) -> list[Reservation]:
        """The live reservations, caught up first when the index is behind or missing."""
        return self.read(lambda conn: load(conn, live_only=True, now_ms=clock.now_ms()))

    def read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        """`query` run on the index, caught up first when it is behind or missing; then closed.
        A rebuild that put another file in place meanwhile: checked and read again there."""
        try:
            try:
                return self._read(query)
            except sqlite3.Error:
                if not self._moved():
                    raise
            self._connect()
            self.probe = None
            self.stale = self._behind()
            return self._read(query)
        except sqlite3.Error as exc:
            raise HookFailure(f"cannot read the fleet index ({exc})") from None
        finally:
            self.close()

    def _read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        if self.probe is not None and self._new_trees(self.probe):
            self.stale = True
        if self.stale:
            self._catch_up()
        assert self.conn is not None
        try:
            return query(self.conn)
        except sqlite3.OperationalError:
            if self.stale or self._moved():
                raise
            self._catch_up()  # an index of another schema version: opening rebuilds it
            return query(self.conn)

    def _catch_up(self) -> None:
        self.close()
        catch_up_index(self.paths)
        self._connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _linked(index: str) -> str | None:
    """What the index's link names (None: no link)."""
    try:
        return os.readlink(index)
    except OSError:
        return None


def _connect(paths: Where) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{_uri_path(paths.index_file)}?mode=ro", uri=True, timeout=10)


def _uri_path(path: str) -> str:
    """`path` for a SQLite `file:` URI: `%`, `?` and `#` escaped (urllib's `quote` imports
    `re`). Unescaped, a clone under a directory named `a#b` opened `a` read-write instead
    (the rest taken for a fragment, `mode=ro` with it): an empty file made outside the
    clone, and every commit refused."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def full_python() -> None:
    """The shim starts Python with -S; the slow paths need site-packages (orjson, pygit2)."""
    import site

    site.main()


def catch_up_index(paths: Where) -> None:
    """The slow path: build or catch up the index with the full package, as any command does.
    A failure is the check's failure: the guarding hooks refuse."""
    full_python()
    try:
        from fleetgit.fleet import Fleet

        Fleet.open(paths.worktree).close()
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        hint = getattr(exc, "hint", None)
        if hint:
            reason += f" (hint: {hint})"
        raise HookFailure(
            f"the fleet index is behind its sources and could not be caught up: {reason}"
        ) from None
