"""The reservation rule, shared by the commands and the git hooks.

Pure and light on purpose: the pre-commit hook imports it, so no dataclasses, typing, orjson or
pathlib at run time (on this kind of machine each costs ~10 ms of the hook's 30-50 ms budget).
"""

from __future__ import annotations

from fleetgit.guard import patterns
from fleetgit.ledger import clock
from fleetgit.ledger.durations import format_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Collection, Iterable, Sequence
    from typing import Any

_COLUMNS = (
    "reservation_id",
    "holder",
    "pattern",
    "exclusive",
    "reason",
    "granted_hlc",
    "granted_writer",
    "granted_wseq",
    "expires_ms",
    "released",
    "is_file",
    "released_ms",
)
_R, _W = (", ".join(f"{t}.{c}" for c in _COLUMNS) for t in "rw")
# each reservation with the one it lost a clash to, if any: index.clashes decides, from the
# events alone, so this is a lookup and the hook does no overlap work for it
LIVE_SQL = (
    f"SELECT {_R}, l.winner_id, l.pattern, {_W} FROM reservations r"
    " LEFT JOIN reservation_lost l ON l.reservation_id = r.reservation_id"
    " LEFT JOIN reservations w ON w.reservation_id = l.winner_id AND w.pattern = l.winner_pattern"
)


def time_left(expires_ms: int, now_ms: int) -> str:
    """How long until `expires_ms`, as every listing and refusal shows it (`1h59m`)."""
    return format_duration((expires_ms - now_ms) / 1000)


class Reservation:
    """One pattern of one reservation, as the index's projection holds it."""

    __slots__ = (
        "exclusive",
        "expires_ms",
        "granted",
        "holder",
        "is_file",
        "lost_pattern",
        "lost_to",
        "pattern",
        "reason",
        "released",
        "released_ms",
        "reservation_id",
    )

    def __init__(
        self,
        reservation_id: str,
        holder: str,
        pattern: str,
        exclusive: bool,
        reason: str | None,
        granted: tuple[int, str, int],  # total-order key of the grant
        expires_ms: int,
        released: bool,
        is_file: bool = False,  # its grant recorded that the pattern names a file
        released_ms: int | None = None,
    ) -> None:
        self.reservation_id, self.holder, self.pattern = reservation_id, holder, pattern
        self.exclusive, self.reason, self.granted = exclusive, reason, granted
        self.expires_ms, self.released, self.is_file = expires_ms, released, is_file
        self.released_ms = released_ms
        self.lost_to: Reservation | None = None  # the clash it lost: it no longer counts
        self.lost_pattern: str | None = None  # its pattern that clashed (the reservation's)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Reservation:
        rid, holder, pattern, excl, reason, hlc, writer, wseq, expires, released, is_file, gone = (
            row
        )
        granted, is_released = (hlc, writer, wseq), bool(released)
        return cls(
            rid,
            holder,
            pattern,
            bool(excl),
            reason,
            granted,
            expires,
            is_released,
            bool(is_file),
            gone,
        )

    @classmethod
    def from_joined(cls, row: Sequence[Any]) -> Reservation:
        """A row of LIVE_SQL: the reservation, then the one it lost to (all None if none)."""
        n = len(_COLUMNS)
        found = cls.from_row(row[:n])
        winner_id, found.lost_pattern = row[n], row[n + 1]
        if winner_id is not None:  # the winner's row, or what is known of it
            found.lost_to = (
                cls.from_row(row[n + 2 :])
                if row[n + 2] is not None
                else cls(winner_id, "?", "?", True, None, (0, "", 0), 0, True)
            )
        return found

    @property
    def mode(self) -> str:
        return "exclusive" if self.exclusive else "shared"

    def live(self, now_ms: int) -> bool:
        """Neither released nor expired (it may still have lost a clash)."""
        return not self.released and self.expires_ms > now_ms

    def active(self, now_ms: int) -> bool:
        return self.live(now_ms) and self.lost_to is None

    def label(self) -> str:
        return f"{self.reservation_id} ({self.holder}, {patterns.shown(self.pattern)})"

    def to_json(self, now_ms: int) -> dict[str, Any]:
        lost = self.lost_to
        return {
            "id": self.reservation_id,
            "holder": self.holder,
            "pattern": self.pattern,
            "mode": self.mode,
            "reason": self.reason,
            "expires_at": clock.iso_ms(self.expires_ms),
            "seconds_left": max(0, (self.expires_ms - now_ms) // 1000),
            "active": self.active(now_ms),
            "released": self.released,
            "lost_to": None
            if lost is None
            else {"id": lost.reservation_id, "holder": lost.holder, "pattern": lost.pattern},
        }


class Conflict:
    """A requested pattern against a reservation it clashes with."""

    __slots__ = ("expires_ms", "holder", "mode", "pattern", "requested", "reservation_id")

    def __init__(
        self,
        requested: str,
        holder: str,
        pattern: str,
        mode: str,
        expires_ms: int,
        reservation_id: str,
    ) -> None:
        self.requested, self.holder, self.pattern, self.mode = requested, holder, pattern, mode
        self.expires_ms, self.reservation_id = expires_ms, reservation_id

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "holder": self.holder,
            "pattern": self.pattern,
            "mode": self.mode,
            "expires_at": clock.iso_ms(self.expires_ms),
            "reservation_id": self.reservation_id,
        }

    def describe(self, now_ms: int) -> str:
        return (
            f"{patterns.shown(self.requested)}: held by {self.holder}"
            f" ({self.mode} {patterns.shown(self.pattern)},"
            f" {time_left(self.expires_ms, now_ms)} left, {self.reservation_id})"
        )


class Block:
    """A path, and the reservations of other pilots that cover it (a directory: overlap it)."""

    __slots__ = ("path", "reservations")

    def __init__(self, path: str, reservations: list[Reservation]) -> None:
        self.path, self.reservations = path, reservations


def load(
    conn: sqlite3.Connection, *, live_only: bool, now_ms: int, since_ms: int | None = None
) -> list[Reservation]:
    """Reservations from the index; live ones come from a partial index, so released or expired
    history does not slow this down. `since_ms`: those that had not expired by then (released
    or not), for judging commits made since (`judge`)."""
    if since_ms is not None:
        rows = conn.execute(LIVE_SQL + " WHERE r.expires_ms > ?", (since_ms,))
    elif live_only:
        rows = conn.execute(LIVE_SQL + " WHERE r.released = 0 AND r.expires_ms > ?", (now_ms,))
    else:
        rows = conn.execute(LIVE_SQL)
    return [Reservation.from_joined(r) for r in rows]


def conflicts_for(
    requests: Iterable[str],
    exclusive: bool,
    me: str,
    live: list[Reservation],
    ignorecase: bool,
    files: Collection[str] = (),
) -> list[Conflict]:
    """What a request clashes with: exclusive against anything, shared against exclusive.
    `files`: the requested patterns that name files (nothing below them), as their grants will
    record; a reservation's own `is_file` is what its grant recorded."""
    conflicts = []
    for pattern in requests:
        is_file = pattern in files
        for r in live:
            if r.holder == me or not (exclusive or r.exclusive):
                continue
            if patterns.overlaps(
                pattern, r.pattern, ignorecase=ignorecase, a_file=is_file, b_file=r.is_file
            ):
                conflicts.append(
                    Conflict(pattern, r.holder, r.pattern, r.mode, r.expires_ms, r.reservation_id)
                )
    return conflicts


def blocking(
    live: list[Reservation], paths: Sequence[str], me: str | None, ignorecase: bool
) -> list[Block]:
    """The paths that other pilots' exclusive reservations cover, each with its holders. A path
    ending in `/` is a directory (`./` the whole work tree): a reservation overlapping it blocks.
    No identity: every exclusive reservation blocks. One that lost a clash blocks no one."""
    return _Check(live, me, ignorecase).blocks(paths)


class _Check:
    """The exclusive reservations of pilots other than `me` that have not lost, matched."""

    __slots__ = ("candidates", "ignorecase", "matcher")

    def __init__(self, live: Iterable[Reservation], me: str | None, ignorecase: bool) -> None:
        self.candidates = [r for r in live if r.exclusive and r.holder != me and r.lost_to is None]
        self.matcher = patterns.Matcher(
            ((r.pattern, r) for r in self.candidates), ignorecase=ignorecase
        )
        self.ignorecase = ignorecase

    def blocks(self, paths: Sequence[str]) -> list[Block]:
        candidates, matcher, ignorecase = self.candidates, self.matcher, self.ignorecase
        blocks: list[Block] = []
        for path in paths:
            key = patterns.ascii_lower(path) if ignorecase else path
            hits = [
                r
                for r in _covering(path, matcher, candidates, ignorecase)
                # a pattern its grant recorded as a file covers that path only, as the clash
                # rule judges it: else a grant the rule let stand beside another's could block
                # its files
                if not r.is_file
                or key == (patterns.ascii_lower(r.pattern) if ignorecase else r.pattern)
            ]
            if hits:
                blocks.append(Block(path, hits))
        return blocks


def _covering(
    path: str,
    matcher: patterns.Matcher[Reservation],
    candidates: list[Reservation],
    ignorecase: bool,
) -> list[Reservation]:
    if not path.endswith("/"):
        return matcher.match(path)
    directory = patterns.normalize(patterns.escape(path), allow_broad=True)
    return [
        r
        for r in candidates
        if patterns.overlaps(directory, r.pattern, ignorecase=ignorecase, b_file=r.is_file)
    ]


# -- the push rule: each commit judged by its pilot, against what was held when it was made --


class Commit:
    """A commit to judge: its id, the second its committer date names (ms), the pilot that made
    it (None: unknown) and the paths it changes (a directory ends in `/`)."""

    __slots__ = ("oid", "paths", "pilot", "source", "time_ms")

    def __init__(
        self, oid: str, time_ms: int, pilot: str | None, paths: list[str], source: str = ""
    ) -> None:
        self.oid, self.time_ms, self.pilot, self.paths = oid, time_ms, pilot, paths
        self.source = source  # how the pilot is known: trailer, email, pusher (for messages)


def held_during(
    reservations: Iterable[Reservation], start_ms: int, end_ms: int
) -> list[Reservation]:
    """The reservations that counted at some moment of [start_ms, end_ms), and have not lost a
    clash: each was held from its grant until it expired (as last renewed) or was released."""
    found = []
    for r in reservations:
        if r.lost_to is not None:
            continue
        until = r.expires_ms
        if r.released:
            until = min(until, r.released_ms if r.released_ms is not None else 0)
        since = clock.hlc_ms(r.granted[0])
        if max(since, start_ms) < min(until, end_ms):
            found.append(r)
    return found


def judge(
    commits: Iterable[Commit], reservations: list[Reservation], ignorecase: bool
) -> list[tuple[Commit, list[Block]]]:
    """The push rule, for pre-push and the server-side check alike: a commit is refused for the
    paths that another pilot held exclusively during the second of its committer date (git
    dates have seconds), whoever pushes it. A commit with no known pilot is blocked by every
    exclusive reservation held then. Pure: what the commits and reservations are is the
    caller's business."""
    refused = []
    checks: dict[tuple[str | None, tuple[int, ...]], _Check] = {}  # one per (pilot, held)
    # what was held in each second commits name, and its key
    seconds: dict[int, tuple[list[Reservation], tuple[int, ...]]] = {}
    for c in commits:
        known = seconds.get(c.time_ms)
        if known is None:
            found = held_during(reservations, c.time_ms, c.time_ms + 1000)
            known = seconds[c.time_ms] = (found, tuple(id(r) for r in found))
        held, ids = known
        key = (c.pilot, ids)
        check = checks.get(key)
        if check is None:
            check = checks[key] = _Check(held, c.pilot, ignorecase)
        blocks = check.blocks(c.paths)
        if blocks:
            refused.append((c, blocks))
    return refused
