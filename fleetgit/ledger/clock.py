"""Time: a hybrid logical clock and time-sortable random ids.

An HLC value is one integer: wall milliseconds shifted left by 16 bits plus a logical counter.
It sorts like (ms, counter), fits in 63 bits until the year 6429, and is cheap to compare in SQL.
"""

from __future__ import annotations

import os
import time

COUNTER_BITS = 16

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hlc_ms(hlc: int) -> int:
    return hlc >> COUNTER_BITS


def make_hlc(ms: int, counter: int = 0) -> int:
    return (ms << COUNTER_BITS) | counter


def tick(last: int, wall_ms: int) -> int:
    """The next HLC after `last` (which already includes every witnessed value)."""
    if wall_ms > hlc_ms(last):
        return make_hlc(wall_ms)
    # Counter overflow borrows a millisecond rather than wrapping: order must never go back.
    return last + 1


def uuid7s(n: int) -> list[str]:
    """`n` UUIDv7 strings (48 bits of milliseconds, 74 random bits: unique by construction)
    sharing one timestamp, from one read of the random source, in ascending order: the index's
    unique id b-tree then grows at its right edge instead of splitting pages at random, which
    makes a batch's SQL work about twice as fast (docs/benchmarks.md, 2026-11-30)."""
    stamp = (now_ms() & 0xFFFFFFFFFFFF).to_bytes(6, "big").hex()
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    r = os.urandom(10 * n).hex()
    ids = []
    for i in range(0, 20 * n, 20):
        variant = "89ab"[int(r[i + 3], 16) & 3]  # the variant bits are 0b10
        ids.append(f"{head}{r[i : i + 3]}-{variant}{r[i + 4 : i + 7]}-{r[i + 7 : i + 19]}")
    ids.sort()
    return ids


def short_id(prefix: str, bits: int = 80) -> str:
    """A prefixed, human-facing id with `bits` random bits in Crockford base32 (`srt-7k3m9q2x…`)."""
    value = int.from_bytes(os.urandom((bits + 7) // 8), "big")
    chars = []
    for _ in range((bits + 4) // 5):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}-{''.join(chars)}"


def writer_id() -> str:
    """A writer id: 80 random bits, so two clones or worktrees never pick the same one."""
    return short_id("w")[2:]


_seconds: dict[int, str] = {}  # a second's ISO text, memoised: appends, listings' rows


def iso_ms(ms: int) -> str:
    """Wall time as ISO 8601 UTC with milliseconds; memoised per second (batch appends, and the
    same registration and last-seen times in every listing of the pilots)."""
    sec, frac = divmod(ms, 1000)
    text = _seconds.get(sec)
    if text is None:
        from datetime import UTC, datetime  # lazily: the hook path does not need it

        if len(_seconds) >= 4096:
            _seconds.clear()
        text = _seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:03d}Z"


# How far back a relative time (`-400d`) may reach: 100 years (36525 days).
PAST_LIMIT_SECONDS = 36525 * 86400


def parse_time(text: str) -> int:
    """Milliseconds for an ISO 8601 time (`2026-11-22`, `2026-11-22T10:00:00Z`) or `-2h`/`-30m`."""
    from datetime import UTC, datetime

    from fleetgit.ledger.durations import parse_duration

    if text.startswith("-"):
        return now_ms() - parse_duration(text[1:], limit=PAST_LIMIT_SECONDS) * 1000
    value = text.replace("Z", "+00:00")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
