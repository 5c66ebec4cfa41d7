"""The ledger's file names, checked without `re` (the hooks use them): a writer's directory and
a segment's file. segments.py writes these names."""

from __future__ import annotations

_WRITER_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")
_SEGMENT_SUFFIX = ".jsonl"


def is_writer(name: str) -> bool:
    """A writer directory's name: 8 to 64 of [0-9a-z] (a regex's `$` would let a trailing
    newline through)."""
    return 8 <= len(name) <= 64 and _WRITER_CHARS.issuperset(name)


def segment_number(name: str) -> int | None:
    """`00000012.jsonl` -> 12; None for any other name."""
    stem = name[: -len(_SEGMENT_SUFFIX)]
    if name.endswith(_SEGMENT_SUFFIX) and len(stem) == 8 and stem.isascii() and stem.isdigit():
        return int(stem)
    return None
