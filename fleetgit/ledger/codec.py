"""Event <-> line: one canonical JSON object per line (orjson, sorted keys, UTF-8, `\\n`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

_OPTS = orjson.OPT_SORT_KEYS


class EventSpec(NamedTuple):
    """One event to append: what the caller decides; the envelope is filled in by the ledger."""

    type: str
    stream: str
    data: dict[str, Any]
    expect_version: int | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    actor: str | None = None  # who caused it, when not the acting pilot (pilot register X)


class Event(NamedTuple):
    """One stored event. A NamedTuple, not a dataclass: immutable, and built several times faster,
    which matters when a rebuild decodes a million of them (and costs 1 ms less at every start)."""

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
    data: dict[str, Any]
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


_ENVELOPE = ("id", "type", "v", "stream", "seq", "hlc", "writer", "wseq", "ts", "tx", "txn", "data")
_TYPES = (str, str, int, str, int, int, str, int, str, str, int, dict)
_OPTIONAL = ("actor", "causation_id", "correlation_id")
_NULLABLE_STR = {str, type(None)}


def decode(line: bytes | str) -> Event:
    """Parse one line (with or without its newline) into an Event, checking the envelope."""
    return decode_object(line)[1]


ENVELOPE_KEYS = frozenset((*_ENVELOPE, *_OPTIONAL))  # every key a line holds, and no other


def decode_object(line: bytes | str) -> tuple[dict[str, Any], Event]:
    """`decode`, also returning the parsed JSON object (intake compares it with the line)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("not a JSON object")
    get = obj.get
    # exact types: one comparison for the common case (and a bool is not an int here)
    if tuple(map(type, map(get, _ENVELOPE))) != _TYPES:
        for name, kind in zip(_ENVELOPE, _TYPES, strict=True):
            if type(get(name)) is not kind:
                raise DecodeError(f"field {name!r} is missing or has the wrong type")
    optional = (get("actor"), get("causation_id"), get("correlation_id"))
    if not {type(value) for value in optional} <= _NULLABLE_STR:
        for name, value in zip(_OPTIONAL, optional, strict=True):
            if type(value) not in _NULLABLE_STR:
                raise DecodeError(f"field {name!r} must be a string or null")
    if obj["seq"] < 1 or obj["wseq"] < 1 or obj["txn"] < 1 or obj["hlc"] < 0:
        raise DecodeError("seq, wseq and txn must be positive and hlc not negative")
    return obj, Event(
        obj["id"],
        obj["type"],
        obj["v"],
        obj["stream"],
        obj["seq"],
        obj["hlc"],
        obj["writer"],
        obj["wseq"],
        optional[0],
        obj["ts"],
        obj["tx"],
        obj["txn"],
        obj["data"],
        optional[1],
        optional[2],
    )
