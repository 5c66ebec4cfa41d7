"""Event <-> line: one canonical JSON object per line (orjson, sorted keys, UTF-8, `\\n`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    v: int
    stream: str
    seq: int
    hlc: int
    writer: str
    wseq: int
    actor: str | None
    ts: str
    tx: str
    txn: int
    data: dict[str, Any] = field(default_factory=dict)
    causation_id: str | None = None
    correlation_id: str | None = None
    pos: int | None = None  # local position in this clone's index; never written to a segment

    def order_key(self) -> tuple[int, str, int]:
        """The total order: (hlc, writer, wseq). Independent of how git delivered the segments."""
        return (self.hlc, self.writer, self.wseq)

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "v": self.v,
            "stream": self.stream,
            "seq": self.seq,
            "hlc": self.hlc,
            "writer": self.writer,
            "wseq": self.wseq,
            "actor": self.actor,
            "ts": self.ts,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "tx": self.tx,
            "txn": self.txn,
            "data": self.data,
        }

    def to_json(self) -> dict[str, Any]:
        """The stored fields plus `pos`, as the CLI and API show them."""
        out = self.envelope()
        out["pos"] = self.pos
        return out


def encode(event: Event) -> bytes:
    return orjson.dumps(event.envelope(), option=_OPTS) + b"\n"


class DecodeError(ValueError):
    """A line that is not a well-formed event; the message says what is wrong."""


_STR = (str,)
_REQUIRED: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("id", _STR),
    ("type", _STR),
    ("v", (int,)),
    ("stream", _STR),
    ("seq", (int,)),
    ("hlc", (int,)),
    ("writer", _STR),
    ("wseq", (int,)),
    ("ts", _STR),
    ("tx", _STR),
    ("txn", (int,)),
    ("data", (dict,)),
)
_OPTIONAL = ("actor", "causation_id", "correlation_id")


def decode(line: bytes | str) -> Event:
    """Parse one line (with or without its newline) into an Event, checking the envelope."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("not a JSON object")
    for name, types in _REQUIRED:
        value = obj.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise DecodeError(f"field {name!r} is missing or has the wrong type")
    for name in _OPTIONAL:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise DecodeError(f"field {name!r} must be a string or null")
    if obj["seq"] < 1 or obj["wseq"] < 1 or obj["txn"] < 1 or obj["hlc"] < 0:
        raise DecodeError("seq, wseq and txn must be positive and hlc not negative")
    return Event(
        id=obj["id"],
        type=obj["type"],
        v=obj["v"],
        stream=obj["stream"],
        seq=obj["seq"],
        hlc=obj["hlc"],
        writer=obj["writer"],
        wseq=obj["wseq"],
        actor=obj.get("actor"),
        ts=obj["ts"],
        tx=obj["tx"],
        txn=obj["txn"],
        data=obj["data"],
        causation_id=obj.get("causation_id"),
        correlation_id=obj.get("correlation_id"),
    )


def is_canonical(line: bytes) -> bool:
    """True when `line` is exactly the canonical encoding of the event it holds."""
    try:
        return encode(decode(line)) == line
    except DecodeError:
        return False
