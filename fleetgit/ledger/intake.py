"""Intake: every line read from a source is checked here before the index takes it.

Segments come from other clones, other versions and anyone who can push, so a line is held to
what an append would have written: the envelope and its bounds, the type's schema at a version
this fleetgit knows, the stream the type belongs to, and the canonical bytes (sorted keys, no
duplicate keys, no whitespace). A line that fails is refused with the reason; the caller skips
its batch whole and reports it (`fleetgit verify`), and no projection ever sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from fleetgit.ledger import schema
from fleetgit.ledger.codec import ENVELOPE_KEYS, DecodeError, Event, decode_object
from fleetgit.ledger.errors import ValidationError
from fleetgit.ledger.names import is_writer
from fleetgit.ledger.schema import Catalogue, EventType
from fleetgit.ledger.sigs import PREFIX, split

MAX_INT = (1 << 63) - 1  # SQLite's integers: anything larger would overflow the index
MAX_BATCH = 100_000  # a batch larger than this was not written by an append
_TS_MAX = 40  # `2026-12-01T19:43:02.123Z`, with room for an offset
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE  # what codec.encode writes

# Values that repeat line after line (a batch's tx, the segment's writer, its actors), once
# found well-formed: each is checked once, not on every line. Bounded: cleared when full.
_FINE: set[tuple[str, str]] = set()
_FINE_MAX = 4096


# The fast path: per event type, one regular expression that matches exactly the canonical lines
# (sorted keys, no spaces, as codec.encode writes them) of that type at its current version whose
# envelope passes every check below, in a subset of their forms (integers below 10^18, a plain
# `ts`), and whose data its type's pattern takes (schema.fast_data_pattern). A line it does not
# match is checked field by field below, which says what is wrong: the fast path changes no
# verdict and no reason, only the cost of a good line (one match in C, not ~40 Python calls).
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = schema.NAME_RE.pattern[1:-1]
_COUNT = "[1-9][0-9]{0,17}"  # positive, below 2^63
_TXN = "[1-9][0-9]{0,4}|100000"  # 1 to MAX_BATCH
_LINE = (
    r'\{{"actor":(?:"({name})"|null),"causation_id":(?:"({uuid})"|null),'
    r'"correlation_id":(?:"({name})"|null),"data":({data}),"hlc":(0|{count}),'
    r'"id":"({uuid})","seq":({count}),"stream":"((?:{kinds})/({name}))",'
    r'"ts":"([\x20\x21\x23-\x5b\x5d-\x7e]{{0,{ts}}})","tx":"({uuid})","txn":({txn}),'
    r'"type":"{type}","v":{v},"writer":"([0-9a-z]{{8,64}})","wseq":({count})\}}\n'
)


def _line_pattern(types: Catalogue, name: str) -> tuple[re.Pattern[str], EventType] | None:
    """The fast path's pattern of lines of type `name` with the type, or None (an unknown type,
    or data always checked in Python); built once per catalogue (`Catalogue.fast_lines`)."""
    et = types.types.get(name)
    data = None if et is None else schema.fast_data_pattern(et)
    if et is None or data is None:
        found = None
    else:
        found = re.compile(_LINE.format(
            name=_NAME, uuid=_UUID, data=data, count=_COUNT, ts=_TS_MAX, txn=_TXN,
            kinds="|".join(map(re.escape, et.stream_kinds)), type=name, v=et.version,
        )), et  # fmt: skip
    if len(types.fast_lines) < 1024:  # a type's name is read from the line: bounded
        types.fast_lines[name] = found
    return found


class Refused(DecodeError):
    """A well-formed JSON line that an append would not have written."""


def check(line: bytes, writer: str | None, types: Catalogue) -> Event:
    """The event in `line` (newline included), or Refused/DecodeError saying what is wrong.
    `writer`: the writer directory the line was found in; a line must be in its own writer's.
    `types`: the event types this fleetgit knows (domain/catalogue.py)."""
    # a signature is checked on ingest (index/trust.py), not here
    body = split(line)[0] if line.startswith(PREFIX) else line
    fast = _fast(body, writer, types)
    if fast is not None:
        return fast
    obj, event = decode_object(body)
    _check_envelope(event, writer)
    et = types.types.get(event.type)
    if et is None:
        raise Refused(f"unknown event type {_short(event.type)} (from a newer fleetgit?)")
    if event.v > et.version:
        raise Refused(
            f"{event.type} version {event.v} is newer than this fleetgit knows ({et.version}):"
            " upgrade fleetgit to read it"
        )
    version, data = types.upcast(event.type, event.v, event.data)
    if version != et.version:
        raise Refused(
            f"{event.type} v{event.v} is older than v{et.version} and no upcaster lifts it"
        )
    try:
        types.validate(event.type, event.stream, data, stored=True)
        schema.check_links(event.causation_id, event.correlation_id)
    except ValidationError as exc:
        raise Refused(f"{event.type}: {exc.message}") from None
    if not _canonical(obj, body):
        raise Refused("not in canonical form (sorted keys, no duplicates, no spaces)")
    return event


def _fast(body: bytes, writer: str | None, types: Catalogue) -> Event | None:
    """The event of a line the fast path takes (see _LINE), or None: check it field by field."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    at = text.rfind(',"type":"') + 9
    found = types.fast_lines.get(text[at : text.find('"', at)], False)
    if found is False:
        found = _line_pattern(types, text[at : text.find('"', at)])
    m = None if found is None else found[0].fullmatch(text)
    if m is None:
        return None
    actor, cause, corr, data, hlc, eid, seq, stream, key, ts, tx, txn, own, wseq = m.groups()
    if writer is not None and own != writer:
        return None
    et = found[1]
    obj = orjson.loads(data)
    if et.stream_key is not None and obj.get(et.stream_key) != key:
        return None
    # the type's own name and version (the pattern matched them): one string for every line;
    # built by tuple.__new__ (in C) rather than the NamedTuple's own __new__ (a Python call)
    return _EVENT(Event, (eid, et.name, et.version, stream, int(seq), int(hlc), own, int(wseq),
                          actor, ts, tx, int(txn), obj, cause, corr, None))  # fmt: skip


_EVENT = tuple.__new__  # an Event of all its fields (pos None), as Event(...) would build it


def _canonical(obj: dict[str, Any], line: bytes) -> bool:
    """Is `line` exactly what an append writes for it (codec.encode)? With exactly the
    envelope's keys, the parsed object holds the same values encode would write: encoding it
    again, rather than the Event, saves building the envelope."""
    try:
        return obj.keys() == ENVELOPE_KEYS and orjson.dumps(obj, option=_CANONICAL) == line
    except TypeError:  # orjson refuses to encode it (nested too deep)
        return False


def _check_envelope(e: Event, writer: str | None) -> None:
    if max(e.seq, e.wseq, e.hlc, e.txn, e.v) > MAX_INT:
        raise Refused("an integer field is larger than 2^63-1")
    if e.v < 0 or e.txn > MAX_BATCH:
        raise Refused(f"v must not be negative and txn at most {MAX_BATCH}")
    if not schema.is_event_id(e.id) or not _fine("tx", e.tx, schema.is_event_id):
        raise Refused("id and tx must be event ids (lower-case UUIDs)")
    if writer is not None and e.writer != writer:
        raise Refused(f"writer {_short(e.writer)} found in writer {writer}'s segment")
    if not _fine("writer", e.writer, is_writer):
        raise Refused("writer must be 8 to 64 of [0-9a-z]")
    if e.actor is not None and not _fine("actor", e.actor, _is_callsign):
        raise Refused(f"actor {_short(e.actor)} is not a callsign")
    if len(e.ts) > _TS_MAX or not e.ts.isascii() or not e.ts.isprintable():
        raise Refused("ts must be a short ISO-8601 time")


def _fine(field: str, value: str, test: Callable[[str], bool]) -> bool:
    """`test(value)`, remembered when true (see _FINE)."""
    key = (field, value)
    if key in _FINE:
        return True
    if not test(value):
        return False
    if len(_FINE) >= _FINE_MAX:
        _FINE.clear()
    _FINE.add(key)
    return True


def _is_callsign(value: str) -> bool:
    return schema.NAME_RE.fullmatch(value) is not None


def _short(text: str) -> str:
    """A value from the line, shown safely in one short line."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."
