"""pre-push: each pushed commit is judged by the pilot that made it, against what was held then.

Which commits: those no remote-tracking ref and no tip the remote has now reaches, and that no
earlier pre-push here passed (remembered by id in the common git dir). Who made one: its
`Fleet-Pilot` trailer (written by the hooks in hookstamp.py), else the
pilot registered with its committer email (`pilot register --email`, when exactly one pilot has
it), else whoever pushes. When: the second of its committer date, or of its latest parent's when
that is later (a commit is not made before its parents: a backdated one is judged no earlier
than what it was made on). The rule itself is `rules.judge`, pure, for the server-side check to
reuse. The hook path: light.
"""

from __future__ import annotations

import os

from fleetgit.guard.hookgit import HookFailure, Where, run_git
from fleetgit.guard.hookstamp import TRAILER
from fleetgit.guard.rules import Commit, judge, load

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence
    from typing import Any

    from fleetgit.guard.hookindex import IndexView
    from fleetgit.guard.rules import Block, Reservation

# \x01 before each commit, \x02 between its header and its trailer values; --raw -z follows
# and \x03 before its parents' ids
LOG_FORMAT = f"--format=%x01%H %ct %ce%x03%P%x02%(trailers:key={TRAILER},valueonly,separator=%x2C)"


def new_commits(paths: Where, lines: Sequence[str], diff_options: Sequence[str]) -> str:
    """`git log` of the commits being pushed that no remote has yet, with their paths: not
    reachable from any remote-tracking ref nor from what the remote has now (skipped when
    unknown here, as after someone else's push). Roots count whole; a merge, its paths that
    differ from every parent."""
    tips, known = [], []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or not parts[1].strip("0"):
            continue  # a deletion pushes no content
        tips.append(parts[1])
        if parts[3].strip("0"):
            known.append(parts[3])
    if not tips:
        return ""
    return run_git(
        paths,
        "log",
        LOG_FORMAT,
        *diff_options,
        "--root",
        "--cc",
        "--no-relative",
        "--no-show-signature",
        "--ignore-missing",
        *tips,
        "--not",
        "--remotes",
        *known,
    )


def parse_log(paths: Where, out: str) -> list[tuple[str, int, str, str, str]]:
    """(oid, time in ms it is judged at, committer email, last Fleet-Pilot value, its --raw -z
    records) per commit of `new_commits`' output. The time: its committer date, or its latest
    parent's when that is later (`not_before_parents`)."""
    found, parents = [], {}
    for chunk in out.split("\x01")[1:]:
        head, sep, rest = chunk.partition("\x02")
        head, _, parent_ids = head.partition("\x03")
        oid, _, when_email = head.partition(" ")
        when, _, email = when_email.partition(" ")
        trailers, _, raw = rest.partition("\0")
        if not sep or not when.isdigit():
            raise HookFailure(f"unexpected output from git log: {chunk[:200]!r}")
        pilot = trailers.split(",")[-1].strip()
        found.append((oid, int(when) * 1000, email, pilot, raw.lstrip("\n")))
        parents[oid] = parent_ids.split()
    times = not_before_parents(paths, {c[0]: c[1] for c in found}, parents)
    return [(oid, times[oid], email, pilot, raw) for oid, _, email, pilot, raw in found]


def not_before_parents(
    paths: Where, own: dict[str, int], parents: dict[str, list[str]]
) -> dict[str, int]:
    """Each commit's time (ms), raised to its parents' where theirs is later: the parents among
    these commits by the same rule, the others by their committer dates (one `git log`; one
    this clone lacks sets no bound)."""
    outside = sorted({p for ps in parents.values() for p in ps if p not in own})
    known: dict[str, int] = {}
    if outside:
        out = run_git(paths, "log", "--no-walk=unsorted", "--ignore-missing", "--format=%H %ct",
                      *outside)  # fmt: skip
        for line in out.splitlines():
            oid, _, when = line.partition(" ")
            if when.isdigit():
                known[oid] = int(when) * 1000
    for start in own:  # depth first, parents before children, without recursion
        stack = [start]
        while stack:
            oid = stack[-1]
            if oid in known:
                stack.pop()
                continue
            waiting = [p for p in parents.get(oid, ()) if p in own and p not in known]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            bound = [known[p] for p in parents.get(oid, ()) if p in known]
            known[oid] = max([own[oid], *bound])
    return {oid: known[oid] for oid in own}


def emails(conn: sqlite3.Connection) -> dict[str, str]:
    """{committer email, lower case: the one pilot registered with it}. An email that several
    pilots gave (one git identity shared on a machine) tells nothing and is left out."""
    found: dict[str, str] = {}
    shared = set()
    for email, callsign in conn.execute("SELECT email, callsign FROM pilots WHERE email > ''"):
        key = email.lower()
        if key in found and found[key] != callsign:
            shared.add(key)
        found[key] = callsign
    for key in shared:
        del found[key]
    return found


def makers(
    found: Sequence[tuple[str, int, str, str, str]],
    by_email: dict[str, str],
    pusher: str | None,
    changes: Callable[[str], list[str]],
    server: bool = False,
) -> list[Commit]:
    """Each commit of `parse_log` with the pilot it is judged as: its Fleet-Pilot trailer, else
    the one pilot registered with its committer email, else `pusher`. `server`: the pusher is
    not known unless named (source "none" when it is not)."""
    commits = []
    for oid, ms, email, trailer, raw in found:
        pilot: str | None = trailer
        source = "trailer"
        if not pilot:
            pilot, source = by_email.get(email.lower()), "email"
        if not pilot:
            pilot, source = pusher, "none" if server and not pusher else "pusher"
        commits.append(Commit(oid, ms, pilot, changes(raw), source))
    return commits


def memo_file(paths: Where) -> str:
    return os.path.join(paths.common_dir, "fleet", "pushed-checked")


def checked(paths: Where) -> set[str]:
    """Ids of commits an earlier pre-push here found clean: they are not judged again."""
    try:
        with open(memo_file(paths), encoding="ascii") as fh:
            return set(fh.read().split())
    except (OSError, ValueError):
        return set()


def remember(paths: Where, oids: Sequence[str]) -> None:
    """Add to the commits found clean (one append; a lost write only costs a re-check)."""
    if not oids:
        return
    try:
        fd = os.open(memo_file(paths), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join(f"{oid}\n" for oid in oids).encode("ascii"))
        finally:
            os.close(fd)
    except OSError:
        pass


def judged(
    found: Sequence[tuple[str, int, str, str, str]],
    read: Callable[[Callable[[sqlite3.Connection], Any]], Any],
    pusher: str | None,
    changes: Callable[[str], list[str]],
    ignorecase: bool,
    server: bool = False,
) -> tuple[list[Commit], list[tuple[Commit, list[Block]]]]:
    """The commits of `parse_log` with their makers, and those the push rule refuses, against
    the reservations `read` (an index view's) finds held since the first of them: pre-push and
    the server-side check alike."""
    since = min(c[1] for c in found)

    def query(conn: sqlite3.Connection) -> tuple[list[Reservation], dict[str, str]]:
        return load(conn, live_only=False, now_ms=0, since_ms=since), emails(conn)

    held, by_email = read(query)
    commits = makers(found, by_email, pusher, changes, server)
    return commits, judge(commits, held, ignorecase)


def check(
    paths: Where,
    lines: Sequence[str],
    index: IndexView,
    pusher: str | None,
    ignorecase: bool,
    changes: Callable[[str], list[str]],
    diff_options: Sequence[str],
) -> list[tuple[Commit, list[Block]]]:
    """The commits of this push that the rule refuses; the others are remembered as clean."""
    done = checked(paths)
    found = parse_log(paths, new_commits(paths, lines, diff_options))
    found = [c for c in found if c[0] not in done]
    if not found:
        index.close()
        return []
    commits, refused = judged(found, index.read, pusher, changes, ignorecase)
    bad = {c.oid for c, _ in refused}
    remember(paths, [c.oid for c in commits if c.oid not in bad])
    return refused
