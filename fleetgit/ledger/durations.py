"""Durations as people type them: `90s`, `30m`, `2h`, `1d`, or plain seconds."""

from __future__ import annotations

from fleetgit.ledger.errors import ValidationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# The longest duration anything takes (a TTL, a wait, a setting): 366 days. Longer ones are
# mistakes, and unbounded ones overflow the index's 64-bit integers once in milliseconds.
MAX_SECONDS = 366 * 86400


def parse_duration(text: str, *, limit: int = MAX_SECONDS) -> int:
    """Seconds in `text`: ASCII digits and one unit s, m, h or d (either case; none: seconds),
    nothing else, so no spaces around it and no other scripts' digits (`５m`). Refuses zero,
    negatives, unknown units and more than `limit` seconds (a whole number of days)."""
    last = text[-1:]
    unit = last.lower() if last and last in "smhdSMHD" else ""
    digits = text[: len(text) - len(unit)]
    if not (digits.isascii() and digits.isdigit()):  # isdigit alone takes '５' and '²'
        raise ValidationError(
            f"duration {text!r}: expected digits 0-9 and a unit s, m, h or d, nothing else",
            hint="for example 90s, 30m, 2h or 1d",
        )
    digits = digits.lstrip("0")
    if not digits:
        raise ValidationError(
            f"duration {text!r}: must be longer than zero", hint="for example 30m"
        )
    seconds = _UNITS[unit or "s"]
    # no int() of a huge string: more digits than the limit has is over it
    if len(digits) > len(str(limit)) or int(digits) * seconds > limit:
        most = f"{limit // 86400}d"
        raise ValidationError(
            f"duration {text!r}: longer than the limit of {most}", hint=f"use at most {most}"
        )
    return int(digits) * seconds


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
