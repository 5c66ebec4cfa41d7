"""Durations as people type them: `90s`, `30m`, `2h`, `1d`, or plain seconds."""

from __future__ import annotations

from fleetgit.errors import ValidationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# The longest duration anything takes (a TTL, a wait, a setting): 366 days. Longer ones are
# mistakes, and unbounded ones overflow the index's 64-bit integers once in milliseconds.
MAX_SECONDS = 366 * 86400


def parse_duration(text: str, *, limit: int = MAX_SECONDS) -> int:
    """Seconds in `text`; refuses zero, negatives, unknown units and more than `limit` seconds
    (a whole number of days)."""
    import re  # lazily: the hook path imports this module for format_duration only

    match = re.match(r"^(\d+)([smhd]?)$", text.strip().lower())
    if match is None:
        raise ValidationError(
            f"duration {text!r}: expected a number with a unit s, m, h or d",
            hint="for example 90s, 30m, 2h or 1d",
        )
    digits, unit = match.group(1).lstrip("0"), _UNITS[match.group(2) or "s"]
    if not digits:
        raise ValidationError(
            f"duration {text!r}: must be longer than zero", hint="for example 30m"
        )
    # no int() of a huge string: more digits than the limit has is over it
    if len(digits) > len(str(limit)) or int(digits) * unit > limit:
        most = f"{limit // 86400}d"
        raise ValidationError(
            f"duration {text!r}: longer than the limit of {most}", hint=f"use at most {most}"
        )
    return int(digits) * unit


def format_duration(seconds: float) -> str:
    """`1h05m`, `4m10s`, `12s`: a short human form for time left."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
