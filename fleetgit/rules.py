"""The reservation rule, shared by the commands and the git hooks.

Pure and light on purpose: the pre-commit hook imports it, so no dataclasses, typing, orjson or
pathlib at run time (on this kind of machine each costs ~10 ms of the hook's 30-50 ms budget).
"""

from __future__ import annotations

from fleetgit import clock, patterns
from fleetgit.durations import format_duration
from fleetgit.errors import ValidationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence
    from typing import Any

LIVE_SQL = (
    "SELECT reservation_id, holder, pattern, exclusive, reason, granted_hlc, granted_writer,"
    " granted_wseq, expires_ms, released FROM reservations"
)


# git's boolean words (any case); an integer is true unless it is 0
TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off", "")


def config_entries(text: str) -> dict[str, str | None]:
    """`git config --get-regexp` output as {key: value}: the last value wins, as in git, and a
    key written with no `=` (`[core] ignorecase`) has the value None."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" ")
        found[key.lower()] = value if sep else None
    return found


def config_bool(key: str, value: str | None) -> bool:
    """A git boolean by git's rules: no value at all, true, yes, on and nonzero integers are
    true; false, no, off, empty and 0 are false. Anything else is refused, as git refuses it."""
    if value is None:
        return True
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    digits = word.removeprefix("-")
    if digits.isascii() and digits.isdigit():
        return int(digits) != 0
    raise ValidationError(
        f"git config {key} = {value!r} is not a boolean (true/yes/on/1 or false/no/off/0)",
        hint=f"git config {key} true (or: git config {key} false)",
    )


def ignorecase(entries: dict[str, str | None]) -> bool:
    """core.ignorecase from `config_entries`, false when unset: patterns match case-blind."""
    return config_bool("core.ignorecase", entries.get("core.ignorecase", "false"))


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
        "lost_to",
        "pattern",
        "reason",
        "released",
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
    ) -> None:
        self.reservation_id, self.holder, self.pattern = reservation_id, holder, pattern
        self.exclusive, self.reason, self.granted = exclusive, reason, granted
        self.expires_ms, self.released = expires_ms, released
        self.lost_to: Reservation | None = None  # set by `mark_lost`: it no longer counts

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Reservation:
        rid, holder, pattern, excl, reason, hlc, writer, wseq, expires, released = row
        return cls(
            rid, holder, pattern, bool(excl), reason, (hlc, writer, wseq), expires, bool(released)
        )

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


def load(conn: sqlite3.Connection, *, live_only: bool, now_ms: int) -> list[Reservation]:
    """Reservations from the index; live ones come from a partial index, so released or expired
    history does not slow this down."""
    if live_only:
        rows = conn.execute(LIVE_SQL + " WHERE released = 0 AND expires_ms > ?", (now_ms,))
    else:
        rows = conn.execute(LIVE_SQL)
    return [Reservation.from_row(r) for r in rows]


def _clash(a: Reservation, b: Reservation, ignorecase: bool) -> bool:
    return (
        a.holder != b.holder
        and (a.exclusive or b.exclusive)
        and patterns.overlaps(a.pattern, b.pattern, ignorecase=ignorecase)
    )


def lost_clashes(
    live: list[Reservation], ignorecase: bool
) -> dict[str, tuple[Reservation, Reservation]]:
    """Reservations that lost a clash to an earlier one in total order: {loser id: (its
    clashing pattern, the winning one)}. Only a merge or fetch can bring such pairs together:
    within a clone a clash is refused."""
    ordered = sorted(live, key=lambda r: r.granted)
    lost: dict[str, tuple[Reservation, Reservation]] = {}
    for i, later in enumerate(ordered):
        for earlier in ordered[:i]:
            if _clash(earlier, later, ignorecase):
                lost[later.reservation_id] = (later, earlier)
                break
    return lost


def void_ids(live: list[Reservation], ignorecase: bool) -> dict[str, str]:
    """{loser id: winner id}, as `lost_clashes`."""
    return {k: won.reservation_id for k, (_, won) in lost_clashes(live, ignorecase).items()}


def mark_lost(found: list[Reservation], now_ms: int, ignorecase: bool) -> None:
    """Set `lost_to` on each reservation that lost a clash among the live ones."""
    lost = lost_clashes([r for r in found if r.live(now_ms)], ignorecase)
    for r in found:
        pair = lost.get(r.reservation_id)
        r.lost_to = pair[1] if pair else None


def conflicts_for(
    requests: Iterable[str], exclusive: bool, me: str, live: list[Reservation], ignorecase: bool
) -> list[Conflict]:
    """What a request clashes with: exclusive against anything, shared against exclusive."""
    conflicts = []
    for pattern in requests:
        for r in live:
            if r.holder == me or not (exclusive or r.exclusive):
                continue
            if patterns.overlaps(pattern, r.pattern, ignorecase=ignorecase):
                conflicts.append(
                    Conflict(pattern, r.holder, r.pattern, r.mode, r.expires_ms, r.reservation_id)
                )
    return conflicts


def blocking(
    live: list[Reservation], paths: Sequence[str], me: str | None, ignorecase: bool
) -> list[Block]:
    """The paths that other pilots' exclusive reservations cover, each with its holders. A path
    ending in `/` is a directory (`./` the whole work tree): a reservation overlapping it blocks.
    No identity: every exclusive reservation blocks."""
    candidates = [r for r in live if r.exclusive and r.holder != me]
    matcher = patterns.Matcher(((r.pattern, r) for r in candidates), ignorecase=ignorecase)
    blocks: list[Block] = []
    void: dict[str, str] | None = None
    for path in paths:
        hits = _covering(path, matcher, candidates, ignorecase)
        if not hits:
            continue
        if void is None:
            void = void_ids(live, ignorecase)
        held = [r for r in hits if r.reservation_id not in void]
        if held:
            blocks.append(Block(path, held))
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
    return [r for r in candidates if patterns.overlaps(directory, r.pattern, ignorecase=ignorecase)]
