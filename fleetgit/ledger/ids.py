"""What people type: prefixed ids (a unique prefix is enough; a miss suggests the closest ids)
and choices such as a status filter (a miss names the allowed values)."""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Sequence

from fleetgit.ledger.errors import AmbiguousError, NotFoundError, ValidationError


def resolve(
    conn: sqlite3.Connection,
    table: str,
    column: str,
    ref: str,
    noun: str,
    prefix: str,
    listing: str | None = None,
) -> str:
    """The full id in `table.column` that `ref` names: exact, or a unique prefix, with or
    without the `prefix-` part (`srt-7k3m`, `7k3m`). `listing` is the command that lists them
    (`fleetgit NOUN list` by default), for the hint of a miss."""
    ref = ref.strip()
    listing = listing or f"fleetgit {noun} list"
    if not ref:  # a prefix of every id: never what was meant
        raise ValidationError(f"empty {noun} id", hint=f"list them: {listing}")
    starts = [ref] if ref.startswith(f"{prefix}-") else [ref, f"{prefix}-{ref}"]
    found: list[str] = []
    for start in starts:
        found += [
            r[0]
            for r in conn.execute(
                f"SELECT {column} FROM {table} WHERE {column} >= ? AND {column} < ? LIMIT 8",
                (start, start + "\U0010ffff"),
            )
        ]
    found = sorted(set(found))
    if ref in found:
        return ref
    if len(found) == 1:
        return found[0]
    if found:
        ranges = " OR ".join([f"({column} >= ? AND {column} < ?)"] * len(starts))
        bounds = [b for start in starts for b in (start, start + "\U0010ffff")]
        total = conn.execute(f"SELECT count(*) FROM {table} WHERE {ranges}", bounds).fetchone()[0]
        raise _ambiguous(ref, found, total, noun)
    every = [r[0] for r in conn.execute(f"SELECT {column} FROM {table}")]
    raise _missing(ref, every, noun, listing)


def among(ref: str, ids: Sequence[str], noun: str, prefix: str, listing: str) -> str:
    """`resolve` over ids already in hand (such as the live ones only), with the same rules and
    the same messages."""
    ref = ref.strip()
    if not ref:
        raise ValidationError(f"empty {noun} id", hint=f"list them: {listing}")
    if ref in ids:
        return ref
    starts = (ref,) if ref.startswith(f"{prefix}-") else (ref, f"{prefix}-{ref}")
    found = sorted({i for i in ids if i.startswith(starts)})
    if len(found) == 1:
        return found[0]
    if found:
        raise _ambiguous(ref, found, len(found), noun)
    raise _missing(ref, ids, noun, listing)


def _ambiguous(ref: str, found: Sequence[str], total: int, noun: str) -> AmbiguousError:
    more = f" and {total - 6} more" if total > 6 else ""
    return AmbiguousError(
        f"{noun} id {ref!r} is ambiguous: it matches {total}: {', '.join(found[:6])}{more}",
        hint="give more characters of the id",
    )


def _missing(ref: str, ids: Sequence[str], noun: str, listing: str) -> NotFoundError:
    close = difflib.get_close_matches(ref, ids, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"list them: {listing}"
    return NotFoundError(f"no {noun} {ref!r}", hint=hint)


def choice(value: str, allowed: Sequence[str], flag: str, command: str) -> str:
    """`value` if it is one of `allowed`; else refused, suggesting the closest (for filters such
    as `--status`, where a typo would otherwise list nothing)."""
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.4) or list(allowed)
    raise ValidationError(
        f"{flag} {value!r}: expected one of {'|'.join(allowed)}",
        hint=f"fleetgit {command} {flag} {close[0]}",
    )
