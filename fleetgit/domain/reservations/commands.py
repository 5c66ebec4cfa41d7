"""File reservations: grant all patterns or none, renew, release, list, check.

Every decision that refuses or grants is made inside `Fleet.transact`, i.e. inside the index's
write transaction after catch-up, so two pilots racing for one path in one clone cannot both win.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.pilots.identity import check_callsign
from fleetgit.guard import patterns
from fleetgit.guard.rules import Block, Conflict, Reservation, blocking, conflicts_for, load
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.durations import format_duration, parse_duration
from fleetgit.ledger.errors import ConflictError, GitError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet
    from fleetgit.git.paths import RepoPaths


class ReservationConflict(ConflictError):
    """Refused: the request overlaps reservations of other pilots. Nothing was granted."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        now = clock.now_ms()
        lines = "; ".join(c.describe(now) for c in conflicts)
        super().__init__(
            f"reservation refused, nothing granted: {lines}",
            hint=f"see when it frees: fleetgit reservations --holder {conflicts[0].holder};"
            " or ask the holder to release it, or reserve other paths",
        )
        self.conflicts = conflicts


class ReservationLost(ConflictError):
    """Refused: these reservations lost a clash that a merge brought in. Nothing was renewed."""

    def __init__(self, lost: list[Reservation]) -> None:
        super().__init__(f"cannot renew, nothing renewed: {lost_text(lost)}", hint=lost_hint(lost))
        self.lost = lost


def lost_text(lost: Sequence[Reservation]) -> str:
    """`res-… (holder, pattern) lost to res-… (holder, pattern)`, for each one."""
    return "; ".join(f"{r.label()} lost to {r.lost_to.label()}" for r in lost if r.lost_to)


def lost_hint(lost: Sequence[Reservation]) -> str:
    """Renewing cannot revive a lost reservation: release it, and reserve again once free."""
    again = []
    for exclusive, flag in ((True, ""), (False, " --shared")):
        names = _quoted(r for r in lost if r.exclusive == exclusive)
        if names:
            again.append(f"fleetgit reserve{flag} {names}")
    return (
        f"fleetgit release {_quoted(lost)}, then once free (see fleetgit reservations):"
        f" {' and '.join(again)}"
    )


def _quoted(found: Iterable[Reservation]) -> str:
    return " ".join(shlex.quote(r.pattern) for r in found)


def from_cwd(fleet: Fleet, requested: Sequence[str], cwd: str | None) -> list[str]:
    """Patterns as typed in the directory `cwd`, as patterns from the top of the work tree
    (`patterns.from_cwd`; None: they are from the top already). An absolute path inside the
    work tree names what it names, as git takes it."""
    if cwd is None:
        return list(requested)
    top = os.path.realpath(fleet.paths.worktree)
    here = os.path.relpath(os.path.realpath(cwd), top).replace(os.sep, "/")
    prefix = "" if here == "." or here == ".." or here.startswith("../") else here
    found = []
    for pattern in requested:
        if os.path.isabs(pattern):
            pattern = _from_top(pattern, top)
        found.append(patterns.from_cwd(pattern, prefix))
    return found


def _from_top(absolute: str, top: str) -> str:
    """An absolute path inside the work tree as `:/PATH`; outside it, refused."""
    joined = os.path.normpath(absolute)
    full = os.path.join(os.path.realpath(os.path.dirname(joined)), os.path.basename(joined))
    rel = os.path.relpath(full, top).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        raise ValidationError(
            f"pattern {patterns.shown(absolute)} is outside the repository ({top})",
            hint="name a path inside the work tree, relative to the current directory"
            " (:/ starts from its top)",
        )
    return patterns.TOP + ("" if rel == "." else rel) + ("/" if absolute.endswith("/") else "")


class RepoView:
    """What the repository shows where some patterns point: the paths git tracks, with their
    modes, and the untracked ones in the work tree (an untracked directory as `dir/`, not
    read further). One `git ls-files` each, narrowed to the patterns' literal directories, run
    only when a question needs it: a literal path that is in the work tree (not a directory)
    answers both questions with a few lstat calls, which is what a reservation usually names."""

    def __init__(self, fleet: Fleet, wanted: Sequence[str], *, untracked: bool = True) -> None:
        self.paths = fleet.paths
        self.top = str(fleet.paths.worktree)
        self.ignorecase = fleet.ignorecase
        specs = [_area(p) for p in wanted]
        self.pathspecs = [] if "" in specs else [f":(literal){a}" for a in dict.fromkeys(specs)]
        self.untracked = untracked
        self.literal = all(patterns.can_name_file(p) for p in wanted)
        self.wanted = list(wanted)
        self._tracked: dict[str, str] | None = None  # path: mode
        self._others: list[str] | None = None
        self.known = True  # git answered: without it, nothing is said to match nothing

    def _ls(self, args: list[str]) -> list[str]:
        from fleetgit.git.repo import ls_files

        if self.known:
            try:
                return ls_files(self.paths, args, self.pathspecs)
            except GitError:
                self.known = False
        return []

    @property
    def tracked(self) -> dict[str, str]:
        if self._tracked is None:
            key = _index_stamp(self.paths, self.pathspecs)
            cached = _TRACKED.get(key) if key is not None else None
            if cached is None and key is not None and key[1] is None:
                cached = {}  # no index file: git would list nothing
            if cached is not None:
                self._tracked = cached
                return cached
            self._tracked = {}
            for record in self._ls(["--stage"]):
                info, _, path = record.partition("\t")
                self._tracked[path] = info.split(" ", 1)[0]
            if key is not None and self.known:
                if len(_TRACKED) >= 64:
                    _TRACKED.clear()
                _TRACKED[key] = self._tracked
        return self._tracked

    @property
    def others(self) -> list[str]:
        if self._others is None:
            self._others = self._ls(["--others", "--directory"]) if self.untracked else []
        return self._others

    def in_worktree(self, pattern: str) -> bool:
        """Is `pattern` a literal path to something in the work tree that is not a directory,
        below real directories that are no repository of their own: a path git lists, tracked
        or untracked (`ls-files --others` lists ignored files too)?"""
        if not patterns.can_name_file(pattern):
            return False
        parts = pattern.split("/")
        if ".git" in parts or "" in parts:
            return False
        path = self.top
        try:
            for part in parts[:-1]:
                path = os.path.join(path, part)
                if not stat.S_ISDIR(os.lstat(path).st_mode) or os.path.lexists(
                    os.path.join(path, ".git")
                ):
                    return False
            return not stat.S_ISDIR(os.lstat(os.path.join(path, parts[-1])).st_mode)
        except OSError:
            return False

    def is_file(self, pattern: str) -> bool:
        """Does the repository show `pattern` (a literal path) as a file: in the work tree, a
        file or a link (as git sees one); absent there, tracked as a file with nothing below."""
        if not patterns.can_name_file(pattern):
            return False
        try:
            return not stat.S_ISDIR(os.lstat(os.path.join(self.top, pattern)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            return False
        below = pattern + "/"
        return self.tracked.get(pattern, GITLINK) != GITLINK and not any(
            p.startswith(below) for p in self.tracked
        )

    def absent_alone(self, pattern: str) -> bool:
        """Would git's untracked listing show nothing `pattern` covers, without asking it? So
        when every pattern asked about is a literal path (the listing is narrowed to those
        paths), this one is not in the work tree (git lists nothing for an absent path, even
        inside an untracked directory), and no other pattern names a directory above it (with
        core.ignorecase git may list what lstat does not find: asked)."""
        if not self.literal or self.ignorecase:
            return False
        try:
            os.lstat(os.path.join(self.top, pattern))
            return False
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            return False
        return not any(pattern.startswith(q + "/") for q in self.wanted)

    def matches_nothing(self, pattern: str) -> bool:
        """Does `pattern` cover no tracked path and nothing in the work tree?"""
        if self.in_worktree(pattern):
            return False
        icase = self.ignorecase
        tracked = self.tracked
        if not self.known:
            return False
        if any(patterns.matches(pattern, p, ignorecase=icase) for p in tracked):
            return False
        if self.absent_alone(pattern):
            return True
        others = self.others
        if not self.known:
            return False
        for p in others:
            if p.endswith("/"):  # an untracked directory: anything may be below it
                if patterns.overlaps(pattern, patterns.escape(p), ignorecase=icase):
                    return False
            elif patterns.matches(pattern, p, ignorecase=icase):
                return False
        return True


GITLINK = "160000"  # a submodule: a directory

# `git ls-files --stage` answers from git's index file alone: its answers are kept while that
# file's stat (git replaces it whole on every change) and the pathspecs are the same
_TRACKED: dict[tuple[object, ...], dict[str, str]] = {}


def _index_stamp(paths: RepoPaths, pathspecs: list[str]) -> tuple[object, ...] | None:
    if "GIT_INDEX_FILE" in os.environ:
        return None
    try:
        st = os.stat(paths.git_dir / "index")
    except FileNotFoundError:  # nothing tracked yet (and nothing for git to read)
        return (str(paths.git_dir), None, *pathspecs)
    except OSError:
        return None
    return (str(paths.git_dir), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, *pathspecs)


def _area(pattern: str) -> str:
    """The literal directories before a pattern's first wildcard (the path itself for a
    literal one): every path it covers is there or below. '' for the whole tree."""
    if patterns.can_name_file(pattern.rstrip("/")):
        return pattern.rstrip("/")
    first = min((i for i in map(pattern.find, "*?[\\") if i >= 0), default=len(pattern))
    return pattern[: pattern.rfind("/", 0, first) + 1].rstrip("/")


def file_patterns(fleet: Fleet, wanted: Sequence[str]) -> set[str]:
    """Those of `wanted` that the repository shows as files (`RepoView.is_file`): recorded in
    their grant, so that nothing below them is taken to clash, in every clone alike."""
    literal = [p for p in wanted if patterns.can_name_file(p)]
    if not literal:
        return set()
    view = RepoView(fleet, literal, untracked=False)
    return {p for p in literal if view.is_file(p)}


def unmatched(fleet: Fleet, wanted: Sequence[str]) -> list[str]:
    """Those of `wanted` that cover nothing git tracks and nothing in the work tree (a typo,
    or a path relative to another directory than meant)."""
    if not wanted:
        return []
    view = RepoView(fleet, wanted)
    return [p for p in wanted if view.matches_nothing(p)]


def _ttl(fleet: Fleet, ttl: str | int | None) -> int:
    if ttl is None:
        return fleet.config.reservation_ttl_seconds
    return ttl if isinstance(ttl, int) else parse_duration(ttl)


def _spec(type_: str, rid: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"reservation/{rid}", {"reservation_id": rid, **data})


def reserve(
    fleet: Fleet,
    requested: Sequence[str],
    *,
    shared: bool = False,
    ttl: str | int | None = None,
    reason: str | None = None,
    allow_broad: bool = False,
) -> list[Reservation]:
    """Grant every pattern or none. Re-reserving one's own pattern extends it."""
    me = pilots.acting(fleet)
    if not requested:
        raise ValidationError("nothing to reserve", hint="fleetgit reserve 'src/parser/**'")
    wanted = list(dict.fromkeys(patterns.normalize(p, allow_broad=allow_broad) for p in requested))
    seconds = _ttl(fleet, ttl)
    files = file_patterns(fleet, wanted)

    def plan() -> list[EventSpec]:
        return reserve_specs(
            fleet, me, wanted, shared=shared, seconds=seconds, reason=reason, files=files
        )

    events = fleet.transact(plan)
    granted = {e.data["reservation_id"] for e in events if e.type != "file_released"}
    return [r for r in mine_now(fleet, me) if r.reservation_id in granted]


def release_specs(
    reservation_ids: Sequence[str], reason: str, *, forced_by: str | None = None
) -> list[EventSpec]:
    """Releases; `forced_by` when the pilot releasing is not the holder."""
    data: dict[str, Any] = {"reason": reason}
    if forced_by:
        data |= {"forced": True, "forced_by": forced_by}
    return [_spec("file_released", rid, data) for rid in reservation_ids]


def reserve_specs(
    fleet: Fleet,
    me: str,
    wanted: Sequence[str],
    *,
    shared: bool,
    seconds: int,
    reason: str | None,
    freeing: Collection[str] = (),
    files: Collection[str] | None = None,
) -> list[EventSpec]:
    """The events that grant `wanted` to `me`, or ReservationConflict. Call inside a transact
    plan, so that nothing can change between this check and the write; `freeing`: ids the same
    batch releases first; `files`: those of `wanted` that name files (`file_patterns`, found
    here when not given), recorded in their grants."""
    ignorecase = fleet.ignorecase
    files = file_patterns(fleet, wanted) if files is None else files
    live = load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
    live = [r for r in live if r.reservation_id not in freeing]
    standing = [r for r in live if r.lost_to is None]  # one that lost a clash counts for no one
    clashes = conflicts_for(wanted, not shared, me, standing, ignorecase, files)
    if clashes:
        raise ReservationConflict(clashes)
    mine = {(r.pattern, r.exclusive): r for r in standing if r.holder == me}
    lost = {r.pattern: r for r in live if r.holder == me and r.lost_to is not None}
    specs = []
    for pattern in wanted:
        if pattern in lost:  # renewing it would not revive it: a new grant replaces it
            why = "replaced by a new grant: it had lost a clash"
            specs.append(_spec("file_released", lost[pattern].reservation_id, {"reason": why}))
        same = mine.get((pattern, not shared))
        if same is not None:
            specs.append(_spec("file_renewed", same.reservation_id, {"ttl_seconds": seconds}))
            continue
        other_mode = mine.get((pattern, shared))
        if other_mode is not None:  # switching shared <-> exclusive: replace it
            why = f"replaced by a {'shared' if shared else 'exclusive'} one"
            specs.append(_spec("file_released", other_mode.reservation_id, {"reason": why}))
        rid = clock.short_id("res")
        data = {
            "holder": me,
            "patterns": [pattern],
            "exclusive": not shared,
            "ttl_seconds": seconds,
            "reason": reason,
        }
        if pattern in files:  # nothing is below it: every clone judges its clashes so
            data["file_patterns"] = [pattern]
        specs.append(_spec("file_reserved", rid, data))
    return specs


def mine_now(fleet: Fleet, me: str) -> list[Reservation]:
    return [r for r in _marked(fleet) if r.holder == me]


def _select_mine(live: list[Reservation], me: str, wanted: Sequence[str]) -> list[Reservation]:
    mine = [r for r in live if r.holder == me]
    if not wanted:
        return mine
    chosen = [r for r in mine if r.pattern in wanted]
    missing = set(wanted) - {r.pattern for r in chosen}
    if missing:
        held = ", ".join(patterns.shown(p) for p in sorted(r.pattern for r in mine)) or "none"
        raise NotFoundError(
            "you hold no active reservation for"
            f" {', '.join(patterns.shown(p) for p in sorted(missing))}",
            hint=f"your reservations: {held}",
        )
    return chosen


def renew(
    fleet: Fleet, requested: Sequence[str], *, ttl: str | int | None = None
) -> list[Reservation]:
    """Extend my reservations named in `requested`, or all of mine. A reservation that lost a
    clash cannot be renewed: named, it is refused and nothing is renewed; among all of mine, the
    others are renewed and it is returned after them, `lost_to` set (refused if none is left)."""
    me = pilots.acting(fleet)
    wanted = [patterns.normalize(p, allow_broad=True) for p in requested]
    seconds = _ttl(fleet, ttl)
    lost: list[Reservation] = []

    def plan() -> list[EventSpec]:
        chosen = _select_mine(_marked(fleet), me, wanted)
        lost[:] = [r for r in chosen if r.lost_to is not None]
        if lost and (wanted or len(lost) == len(chosen)):
            raise ReservationLost(lost)
        if not chosen:
            raise NotFoundError(
                "you hold no active reservations to renew", hint="fleetgit reserve PATTERN"
            )
        return [
            _spec("file_renewed", r.reservation_id, {"ttl_seconds": seconds})
            for r in chosen
            if r.lost_to is None
        ]

    events = fleet.transact(plan)
    renewed = {e.data["reservation_id"] for e in events}
    return [r for r in mine_now(fleet, me) if r.reservation_id in renewed] + lost


def _marked(fleet: Fleet, *, include_expired: bool = False) -> list[Reservation]:
    """The live reservations (or all), those that lost a clash marked (`lost_to`): every
    reservation shown or acted on goes through here, so `active` means the same everywhere.
    Inside `Fleet.as_of`, expiry is judged at that position's time."""
    return load(fleet.index.conn, live_only=not include_expired, now_ms=fleet.now_ms())


def release(fleet: Fleet, requested: Sequence[str], *, everything: bool = False) -> list[str]:
    """Release my reservations for these patterns (or all of them); returns the ids released."""
    me = pilots.acting(fleet)
    if not requested and not everything:
        raise ValidationError(
            "name the patterns to release, or pass --all", hint="fleetgit release --all"
        )
    if requested and everything:
        raise ValidationError(
            "name the patterns to release or pass --all, not both",
            hint=f"fleetgit release {' '.join(patterns.shown(p) for p in requested)}"
            " (or fleetgit release --all)",
        )
    wanted = [patterns.normalize(p, allow_broad=True) for p in requested]

    def plan() -> list[EventSpec]:
        live = load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
        chosen = _select_mine(live, me, [] if everything else wanted)
        return [_spec("file_released", r.reservation_id, {"forced": False}) for r in chosen]

    return [e.data["reservation_id"] for e in fleet.transact(plan)]


def may_force(fleet: Fleet, holder: str) -> bool:
    """Whether another pilot may release `holder`'s reservations now: the force rule the folds
    apply (domain.reservations.fold.forcible), with this configuration's limit."""
    from fleetgit.domain.reservations.fold import forcible
    from fleetgit.index.forcing import limit_of

    last = pilots.seen_ms(fleet, holder)
    return forcible(
        last, pilots.deregistered(fleet, holder), clock.now_ms(), limit_of(fleet.config)
    )


def force_release(fleet: Fleet, ref: str, *, reason: str | None = None) -> Reservation:
    """Release another pilot's reservation when its holder has been silent past the limit."""
    me = pilots.acting(fleet)
    limit_s = fleet.config.force_release_after_seconds

    def plan() -> list[EventSpec]:
        now = clock.now_ms()
        target = find(load(fleet.index.conn, live_only=True, now_ms=now), ref)
        silent_s = (now - (pilots.seen_ms(fleet, target.holder) or 0)) / 1000
        gone = pilots.deregistered(fleet, target.holder)  # it left the fleet: no need to wait
        if target.holder != me and not gone and silent_s < limit_s:
            raise ConflictError(
                f"{target.holder} was active {format_duration(silent_s)} ago; --force needs"
                f" {format_duration(limit_s)} of silence",
                hint=f"ask {target.holder} to release it, or wait",
            )
        why = reason or (
            f"holder {'deregistered' if gone else 'silent'} for {format_duration(silent_s)}"
        )
        return [
            _spec(
                "file_released",
                target.reservation_id,
                {"forced": True, "forced_by": me, "reason": why},
            )
        ]

    events = fleet.transact(plan)
    rid = events[0].data["reservation_id"]
    return next(
        r for r in load(fleet.index.conn, live_only=False, now_ms=0) if r.reservation_id == rid
    )


def find(live: list[Reservation], ref: str) -> Reservation:
    """The live reservation `ref` names, as ids are named everywhere (`ids.among`). `live`
    holds one entry per pattern: a reservation of several patterns is one reservation."""
    if not ref.strip():  # an empty id names no reservation, live or not
        raise ValidationError(
            "empty reservation id", hint="list them with their ids: fleetgit reservations"
        )
    by_id = {r.reservation_id: r for r in live}
    return by_id[ids.among(ref, list(by_id), "active reservation", "res", "fleetgit reservations")]


def listing(
    fleet: Fleet, *, holder: str | None = None, include_expired: bool = False
) -> list[Reservation]:
    """Reservations, the ones that lost a clash marked (`lost_to`): they no longer count.
    Inside `Fleet.as_of`, expiry is judged at that position's time."""
    if holder is not None:
        check_callsign(holder)
    found = _marked(fleet, include_expired=include_expired)
    if holder is not None:
        found = [r for r in found if r.holder.lower() == holder.lower()]
    return sorted(found, key=lambda r: (r.holder, r.pattern, r.granted))


def check(
    fleet: Fleet, paths: Sequence[str], me: str | None, *, cwd: str | None = None
) -> list[Block]:
    """Which of `paths` are blocked for `me` by other pilots' exclusive reservations, one Block
    per path. Paths are repo-relative, or relative to `cwd` when given (as git takes them); a
    directory is checked as a directory: anything reserved in it or over it blocks."""
    wanted = [_repo_path(fleet, p, cwd) for p in paths]
    live = load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
    return blocking(live, list(dict.fromkeys(wanted)), me, fleet.ignorecase)


def _repo_path(fleet: Fleet, path: str, cwd: str | None) -> str:
    """`path` relative to the work tree, `/`-terminated when it is a directory (`./`: all)."""
    if not path:
        raise ValidationError("empty path", hint="name a file or a directory ('.' for this one)")
    patterns.check_utf8("path", path)
    top = os.path.realpath(fleet.paths.worktree)
    if path.startswith(patterns.TOP):  # from the top, wherever the command runs
        path, cwd = path[len(patterns.TOP) :] or ".", None
    joined = os.path.normpath(os.path.join(cwd or top, path))
    # resolve links in the directories (a repository reached through a symlink), not in the
    # last part: a symlink in the work tree is a path of its own, as git sees it
    full = os.path.join(os.path.realpath(os.path.dirname(joined)), os.path.basename(joined))
    rel = os.path.relpath(full, top)
    if rel == ".." or rel.startswith("../"):
        raise ValidationError(
            f"path {patterns.shown(path)} is outside the repository ({top})",
            hint="name a path inside the work tree",
        )
    return rel + "/" if path.endswith("/") or os.path.isdir(full) else rel


def settle_conflicts(fleet: Fleet) -> list[tuple[Reservation, Reservation]]:
    """Announce as `file_conflict` events the clashes that made live reservations void (see
    index.clashes), once per pair; returns the new (loser, winner) pairs."""
    settled: list[tuple[Reservation, Reservation]] = []

    def plan() -> list[EventSpec]:
        live = load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
        lost = {
            r.reservation_id: (r, r.lost_to)
            for r in live
            if r.lost_to is not None and r.pattern == r.lost_pattern
        }
        known = _announced(fleet, list(lost))
        settled[:] = [
            pair for rid, pair in sorted(lost.items()) if (rid, pair[1].reservation_id) not in known
        ]
        return [_conflict_spec(loser, winner) for loser, winner in settled]

    fleet.transact(plan)
    return settled


def _announced(fleet: Fleet, losers: list[str]) -> set[tuple[str, str]]:
    """The (loser, winner) pairs already announced for these losers."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(losers), 500):
        chunk = losers[start : start + 500]
        found.update(
            fleet.index.conn.execute(
                "SELECT reservation_id, other_reservation_id FROM reservation_conflicts"
                f" WHERE reservation_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    return found


def _conflict_spec(loser: Reservation, winner: Reservation) -> EventSpec:
    return _spec(
        "file_conflict",
        loser.reservation_id,
        {
            "other_reservation_id": winner.reservation_id,
            "holder": loser.holder,
            "other_holder": winner.holder,
            "patterns": [loser.pattern, winner.pattern],
            "winner": winner.holder,
        },
    )
