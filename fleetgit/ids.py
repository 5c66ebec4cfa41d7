"""Prefixed ids people can type: a unique prefix is enough; a miss suggests the closest ids."""

from __future__ import annotations

import difflib
import sqlite3

from fleetgit.errors import AmbiguousError, NotFoundError


def resolve(
    conn: sqlite3.Connection, table: str, column: str, ref: str, noun: str, prefix: str
) -> str:
    """The full id in `table.column` that `ref` names: exact, or a unique prefix, with or
    without the `prefix-` part (`srt-7k3m`, `7k3m`)."""
    ref = ref.strip()
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
        raise AmbiguousError(
            f"{noun} id {ref!r} is ambiguous: {', '.join(found[:6])}", hint="give more characters"
        )
    every = [r[0] for r in conn.execute(f"SELECT {column} FROM {table}")]
    close = difflib.get_close_matches(ref, every, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"list them: fleetgit {noun} list"
    raise NotFoundError(f"no {noun} {ref!r}", hint=hint)
