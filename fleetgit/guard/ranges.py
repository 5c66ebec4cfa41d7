"""The server-side check: `fleetgit guard RANGE` and `fleetgit guard --pre-receive`.

`git commit --no-verify` skips every client hook, so the same rule runs where code lands: each
commit of a range (or of a push being received) judged by the pilot that made it, against the
reservations held during the second of its committer date (hookpush.makers, rules.judge). Who
made a commit: its `Fleet-Pilot` trailer, else the pilot registered with its committer email,
else the pusher when one is named (`--as`), else no one (every exclusive reservation held then
blocks it). Unlike pre-push, nothing is remembered: a server judges every commit it receives.

Where the reservations come from is the caller's (fleet.guard_view: a clone's index, or one a
bare repository builds from its refs, with the commits being judged added).
"""

from __future__ import annotations

from fleetgit.guard.hook import DIFF_OPTIONS, changes, checked_paths
from fleetgit.guard.hookgit import HookFailure, Where, run_git
from fleetgit.guard.hookpush import LOG_FORMAT, judged, parse_log

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence
    from typing import Protocol, TypeVar

    from fleetgit.guard.rules import Block, Commit

    _T = TypeVar("_T")

    class View(Protocol):
        def read(self, query: Callable[[sqlite3.Connection], _T]) -> _T: ...

        def close(self) -> None: ...


HEX = frozenset("0123456789abcdef")
# what git log is asked for every commit: header, trailer, then its paths as --raw -z records
LOG_OPTIONS = (LOG_FORMAT, *DIFF_OPTIONS, "--root", "--cc", "--no-relative", "--no-show-signature")


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and set(text) <= HEX


def received(lines: Sequence[str]) -> list[str]:
    """The new tips of git's pre-receive input (`old new ref` per line): a deleted ref (new is
    all zeros) brings nothing; a new branch (old all zeros) brings what it holds."""
    tips = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not (_is_oid(parts[0]) and _is_oid(parts[1])):
            raise HookFailure(f"line {number} of the input is not `old new ref`: {line[:200]!r}")
        if parts[1].strip("0"):
            tips.append(parts[1])
    return tips


def range_args(revisions: Sequence[str]) -> list[str]:
    """`git log` arguments for revisions given by a user (`origin/main..HEAD`, `A ^B`): never
    an option, whatever they say."""
    for rev in revisions:
        if not rev or rev.startswith("-"):
            raise ValueError(f"{rev!r} is not a revision range")
    return ["--end-of-options", *revisions]


def receive_args(tips: Sequence[str]) -> list[str]:
    """The commits a push brings: reachable from its new tips and from no ref the repository has
    (in pre-receive, the refs are not moved yet)."""
    return [*tips, "--not", "--all"]


def check(
    paths: Where,
    log_args: Sequence[str],
    view_for: Callable[[Sequence[str]], View],
    pusher: str | None,
    ignorecase: bool,
) -> tuple[list[Commit], list[tuple[Commit, list[Block]]]]:
    """Every commit `git log log_args` lists, and those the push rule refuses, with the paths
    and the reservations that refuse each. `view_for(oids)`: the index to read, with the history
    of those commits added."""
    found = parse_log(paths, run_git(paths, "log", *LOG_OPTIONS, *log_args))
    if not found:
        return [], []
    view = view_for([c[0] for c in found])
    try:
        return judged(
            found, view.read, pusher, lambda raw: checked_paths(changes(raw)), ignorecase, True
        )
    finally:
        view.close()
