"""How an event type is described and checked: fields, validation, JSON Schema, upcasting.

Each concept declares its own event types with these (domain/<concept>/events.py); a Catalogue
gathers them (domain/catalogue.py). Validation runs before anything is written, on every append
and on every line read: per-type lookups are built once.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from fleetgit.ledger.errors import ValidationError

# matched with fullmatch: `$` alone also matches before a trailing newline ("goose\n")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# What a one-line field (kind str) must not hold: control characters (line breaks, tabs, escapes,
# C1 controls) and the Unicode line and paragraph separators. In JSON Schema's regex syntax.
_CONTROL = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
ONE_LINE = f"^[^{_CONTROL}]*$"
ONE_LINE_NONBLANK = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
# What multi-line text (kind text) must not hold: control characters other than tab, line feed
# and carriage return. An escape sequence in a message body would drive the terminal of whoever
# reads it (clear the screen, rewrite what was shown, set the window title).
_TEXT_CONTROL = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
TEXT = f"^[^{_TEXT_CONTROL}]*$"
TEXT_NONBLANK = f"^[^{_TEXT_CONTROL}]*[^\\s{_TEXT_CONTROL}][^{_TEXT_CONTROL}]*$"
_TEXT_CONTROL_RE = re.compile(f"[{_TEXT_CONTROL}]")

MAX_STR = 10_000
MAX_TEXT = 100_000
MAX_LIST = 1_000


class Field(NamedTuple):
    """One data field. kind: str | text | name | int | number | bool | enum | list | object."""

    name: str
    kind: str = "str"
    required: bool = False
    choices: tuple[str, ...] = ()
    items: str = "str"  # for lists: str | name | pattern (a reservation pattern)
    minimum: int | None = None
    maximum: int | None = None
    min_items: int = 0  # for lists: items; for objects with keys: entries
    keys: tuple[Field, ...] = ()  # for objects with known keys (changes), each value checked
    nonblank: bool = False  # for strings: some text besides whitespace
    description: str = ""
    check: Callable[[str, str], None] | None = None  # strings, list items: more rules (path, value)
    # a regular expression of string values (list items) every rule of the field, `check`
    # included, accepts: intake's fast path takes them without calling `check` (None: it
    # leaves the field to the checks above)
    fast: str | None = None


class EventType(NamedTuple):
    name: str
    version: int
    stream_kinds: tuple[str, ...]
    stream_key: str | None
    fields: tuple[Field, ...]
    description: str


def req(name: str, kind: str = "str", **kw: Any) -> Field:
    return Field(name, kind, required=True, **kw)


def opt(name: str, kind: str = "str", **kw: Any) -> Field:
    return Field(name, kind, **kw)


def pct(name: str, required: bool = False) -> Field:
    return Field(name, "int", required=required, minimum=0, maximum=100)


def title(name: str = "title") -> Field:
    return Field(name, "str", required=True, nonblank=True)


def names(name: str, required: bool = False, min_items: int = 0) -> Field:
    return Field(name, "list", required=required, items="name", min_items=min_items)


def strs(name: str) -> Field:
    return Field(name, "list")


def define(name: str, kinds: str, key: str | None, description: str, *fields: Field) -> EventType:
    """An event type at version 1: `kinds` its stream kinds (`fleet|mission`), `key` the data
    field naming its stream (None: the stream's name is free)."""
    return EventType(name, 1, tuple(kinds.split("|")), key, tuple(fields), description)


def changes(created: EventType, names: tuple[str, ...]) -> Field:
    """An update's `changes`: some of `names`, each value checked like the same field of the
    `created` event (all optional; null means "unchanged")."""
    fields = {f.name: f for f in created.fields}
    keys = tuple(fields[n]._replace(required=False) for n in names)
    return Field("changes", "object", required=True, min_items=1, keys=keys)


STREAM_HINT = "a stream is KIND/NAME, e.g. mission/msn-1; NAME uses letters, digits and . _ : @ -"
HEX_DIGITS = frozenset("0123456789abcdef")


EVENT_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_event_id(text: str) -> bool:
    """A full event id: a UUID in lower-case hex, 8-4-4-4-12 (intake checks two per line of
    every rebuild: one compiled regex)."""
    return EVENT_ID_RE.fullmatch(text) is not None


def check_links(causation_id: str | None, correlation_id: str | None) -> None:
    """An event's causation id is another event's id; its correlation id may be any name."""
    if causation_id is not None and not is_event_id(causation_id):
        raise ValidationError(
            f"causation id {causation_id!r}: expected the id of the event that caused this one",
            hint="a full event id (a UUID), as `fleetgit show` or `fleetgit events --json` print",
        )
    if correlation_id is not None:
        check_name(
            correlation_id,
            "correlation id",
            "for example a job id, or the id of the event that started the work",
        )


def _check_entries(
    fields: dict[str, Field], path: str, data: dict[str, Any], stored: bool = False
) -> None:
    """Check each entry of `data` against its field; null is allowed for optional ones.
    `stored`: data read from a ledger, where free text may hold terminal control codes that
    older versions let through (they are shown escaped); NUL is refused either way."""
    for key, value in data.items():
        spec = fields.get(key)
        if spec is None:
            what = "field" if path == "data" else "key"
            raise ValidationError(
                f"{path}: unknown {what} {key!r}", hint=f"use one of: {', '.join(fields)}"
            )
        if value is not None or spec.required:
            _check(spec, f"{path}.{key}", value, stored)


def _check(spec: Field, path: str, value: Any, stored: bool = False) -> None:
    kind = spec.kind
    if kind in ("str", "text", "name"):
        _check_str(spec, path, value, MAX_TEXT if kind == "text" else MAX_STR, stored)
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not _in_range(spec, value):
            raise ValidationError(
                f"{path}: expected {_int_desc(spec)}, got {_show(value)}",
                hint=f"give {_int_desc(spec)}",
            )
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"{path}: expected true or false, got {_show(value)}")
    elif kind == "enum":
        if value not in spec.choices or not isinstance(value, str):
            raise ValidationError(
                f"{path}: expected one of {'|'.join(spec.choices)}, got {_show(value)}",
                hint=f"use one of: {', '.join(spec.choices)}",
            )
    elif kind == "list":
        _check_list(spec, path, value)
    elif kind == "object":
        _check_object(spec, path, value, stored)


def _check_str(spec: Field, path: str, value: Any, limit: int, stored: bool = False) -> None:
    if not isinstance(value, str):
        what = "a callsign or id" if spec.kind == "name" else "a string"
        raise ValidationError(f"{path}: expected {what}, got {_show(value)}")
    if len(value) > limit:
        raise ValidationError(
            f"{path}: longer than {limit} characters ({len(value)})",
            hint=f"shorten it to {limit} characters; keep long content in a file and name it",
        )
    if "\x00" in value:
        raise ValidationError(f"{path}: contains a NUL character", hint="remove the NUL character")
    if not value.isascii():
        try:  # bytes that are not UTF-8 (from argv or git) arrive as lone surrogates
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"{path}: not valid UTF-8 text (the ledger stores UTF-8)",
                hint="give it as UTF-8 text",
            ) from None
    if spec.nonblank and not value.strip():
        raise ValidationError(
            f"{path}: must not be empty or blank", hint=f"give the {spec.name} some words"
        )
    control = _control(value) if spec.kind == "str" else None
    if control is not None:
        raise ValidationError(
            f"{path}: contains a control character ({control!r}): it is one line of text"
            " (multi-line text goes in fields such as description, body or summary)"
        )
    if spec.kind == "text" and not stored and not value.isprintable():
        found = _TEXT_CONTROL_RE.search(value)
        if found is not None:
            raise ValidationError(
                f"{path}: contains a control character ({found.group()!r}): text may hold line"
                " breaks and tabs, not terminal control codes",
                hint="remove it; an escape sequence would drive the terminal of whoever reads it",
            )
    if spec.kind == "name" and not NAME_RE.fullmatch(value):
        raise ValidationError(
            f"{path}: {value!r} is not a valid name (letters, digits and . _ : @ -, no spaces)",
            hint=f"for example {name_like(value)!r}",
        )
    if spec.check is not None:
        spec.check(path, value)


def _control(value: str) -> str | None:
    """The first control character, line or paragraph separator in `value`, or None."""
    if value.isprintable():  # the usual case, at C speed; it is stricter than needed
        return None
    import unicodedata  # lazily: only for text that is not all printable

    return next((c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)


def check_name(value: str, what: str, hint: str) -> str:
    """A name (callsign, lock key, cursor, correlation id): letters, digits and . _ : @ -."""
    if not NAME_RE.fullmatch(value):
        raise ValidationError(
            f"{what} {value!r}: use letters, digits and . _ : @ - (at most 128, no spaces)",
            hint=hint,
        )
    return value


def name_like(text: str) -> str:
    """A valid name close to `text` (spaces and other characters become '-'), for hints."""
    swapped = "".join(c if NAME_RE.fullmatch(f"a{c}") else "-" for c in text[:128])
    return swapped.strip("-._:@") or "name-1"


def _check_list(spec: Field, path: str, value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError(f"{path}: expected a list, got {_show(value)}")
    if len(value) > MAX_LIST:
        raise ValidationError(
            f"{path}: more than {MAX_LIST} items ({len(value)})",
            hint=f"split it: at most {MAX_LIST} per event",
        )
    if len(value) < spec.min_items:
        raise ValidationError(f"{path}: expected at least {spec.min_items} item(s)")
    item = Field(spec.name, spec.items, check=spec.check)
    for i, element in enumerate(value):
        _check_str(item, f"{path}[{i}]", element, MAX_STR)


def _check_object(spec: Field, path: str, value: Any, stored: bool = False) -> None:
    if not isinstance(value, dict):
        raise ValidationError(f"{path}: expected a JSON object, got {_show(value)}")
    if spec.keys:
        if len(value) < spec.min_items:
            raise ValidationError(
                f"{path}: expected at least {spec.min_items} entry",
                hint=f"change one of: {', '.join(f.name for f in spec.keys)}",
            )
        _check_entries({f.name: f for f in spec.keys}, path, value, stored)
    _check_json(path, value)


def _check_json(path: str, value: Any, depth: int = 0) -> None:
    """Free-form JSON: finite numbers, no NUL, bounded depth."""
    if depth > 32:
        raise ValidationError(f"{path}: nested deeper than 32 levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{path}: expected a finite number, got {value}")
    if isinstance(value, str) and "\x00" in value:
        raise ValidationError(f"{path}: contains a NUL character")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json(f"{path}.{k}", v, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(f"{path}[{i}]", v, depth + 1)


def _in_range(spec: Field, value: int) -> bool:
    low_ok = spec.minimum is None or value >= spec.minimum
    return low_ok and (spec.maximum is None or value <= spec.maximum)


def _int_desc(spec: Field) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f"an integer from {spec.minimum} to {spec.maximum}"
    if spec.minimum is not None:
        return f"an integer of at least {spec.minimum}"
    return "an integer"


def _kind_of(value: object) -> str:
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _json_repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _kind_of(value)
    return str(value)


# -- JSON Schema ----------------------------------------------------------------------------


def _field_schema(spec: Field) -> dict[str, Any]:
    kind = spec.kind
    out: dict[str, Any]
    if kind in ("str", "text", "name"):
        out = {"type": "string", "maxLength": MAX_TEXT if kind == "text" else MAX_STR}
        if kind == "name":
            out["pattern"] = NAME_RE.pattern
        elif kind == "str":
            out["pattern"] = ONE_LINE_NONBLANK if spec.nonblank else ONE_LINE
        else:
            out["pattern"] = TEXT_NONBLANK if spec.nonblank else TEXT
    elif kind == "int":
        out = {"type": "integer"}
        if spec.minimum is not None:
            out["minimum"] = spec.minimum
        if spec.maximum is not None:
            out["maximum"] = spec.maximum
    elif kind == "bool":
        out = {"type": "boolean"}
    elif kind == "enum":
        out = {"enum": list(spec.choices)}
    elif kind == "list":
        item: dict[str, Any] = {"type": "string", "maxLength": MAX_STR}
        if spec.items == "name":
            item["pattern"] = NAME_RE.pattern
        elif spec.items == "str":
            item["pattern"] = ONE_LINE
        out = {"type": "array", "items": item, "maxItems": MAX_LIST}
        if spec.min_items:
            out["minItems"] = spec.min_items
    else:
        out = {"type": "object"}
        if spec.keys:
            out["properties"] = {f.name: _field_schema(f) for f in spec.keys}
            out["additionalProperties"] = False
            out["minProperties"] = spec.min_items
    if not spec.required:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _type_schema(et: EventType) -> dict[str, Any]:
    return {
        "title": et.name,
        "description": et.description,
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in et.fields},
        "required": [f.name for f in et.fields if f.required],
        "additionalProperties": False,
        "x-fleetgit": {
            "version": et.version,
            "stream_kinds": list(et.stream_kinds),
            "stream_key": et.stream_key,
        },
    }


# -- the fast path of intake ----------------------------------------------------------------
# A regular expression per event type that matches exactly the canonical `data` (sorted keys, no
# spaces, as codec.encode writes it) of values every check above accepts, in a subset of their
# forms: strings with no escape, names, small integers, enums, lists of those, `changes`. A match
# means valid; anything else goes through the checks above, which say what is wrong. Matched on
# the line decoded as UTF-8 (strict: a lone surrogate never decodes), where a repetition counts
# characters as `len` does. Single-character repetitions only: the engine runs those in C.
_STR_CHAR = r'[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029]'  # kind str: one printable line
_TEXT_CHAR = r'[^"\\\x00-\x1f]'  # kind text, as stored (JSON escapes any line break)
_NONBLANK = r'(?=\s*+[^\s"])'  # some character that is not blank
_FAST_NAME = NAME_RE.pattern[1:-1]


def _fast_string(kind: str, nonblank: bool) -> str | None:
    if kind == "name":
        return f'"{_FAST_NAME}"'
    if kind not in ("str", "text"):
        return None
    char, limit = (_STR_CHAR, MAX_STR) if kind == "str" else (_TEXT_CHAR, MAX_TEXT)
    return f'"{_NONBLANK if nonblank else ""}{char}{{0,{limit}}}"'


def _fast_own(fast: str) -> str:
    """A string whose content `fast` matches (a field's own, see Field.fast), at most MAX_STR
    characters: it holds no quote, so the first one after it closes it."""
    return f'"(?=[^"]{{0,{MAX_STR}}}")(?:{fast})"'


def _fast_int(spec: Field) -> str | None:
    digits = 18  # below 2^63 whatever they are; anything longer is checked in Python
    if spec.maximum is not None:
        if spec.maximum < 10:
            return None
        digits = len(str(spec.maximum)) - 1  # fewer digits than the maximum: below it
    if spec.minimum is None:
        return f"0|-?[1-9][0-9]{{0,{digits - 1}}}"
    if spec.minimum in (0, 1):
        return f"{'0|' if spec.minimum == 0 else ''}[1-9][0-9]{{0,{digits - 1}}}"
    return None


def _fast_value(spec: Field) -> str | None:
    """The canonical JSON of the values of `spec` that the fast path takes, or None."""
    if spec.check is not None and (spec.fast is None or spec.kind != "list"):
        return None  # `fast` stands for `check` on list items alone
    kind = spec.kind
    out: str | None
    if kind in ("str", "text", "name"):
        out = _fast_string(kind, spec.nonblank)
    elif kind == "int":
        out = _fast_int(spec)
    elif kind == "bool":
        out = "true|false"
    elif kind == "enum":
        plain = all(re.fullmatch(r"[A-Za-z0-9_.:@ -]+", c) for c in spec.choices)
        quoted = "|".join(f'"{re.escape(choice)}"' for choice in spec.choices)
        out = quoted if plain and spec.choices else None
    elif kind == "list":
        item = _fast_string(spec.items, False) if spec.fast is None else _fast_own(spec.fast)
        if item is None or spec.min_items > MAX_LIST:
            return None
        items = f"{item}(?:,{item}){{{max(spec.min_items - 1, 0)},{MAX_LIST - 1}}}"
        out = rf"\[{items}\]" if spec.min_items else rf"\[(?:{items})?\]"
    elif kind == "object" and spec.keys and spec.min_items <= 1:
        entries = _fast_entries(spec.keys)
        out = None if entries is None else (r"(?!\{\})" if spec.min_items else "") + entries
    else:
        return None
    if out is not None and not spec.required:
        out = f"{out}|null"
    return None if out is None else f"(?:{out})"


def _fast_entries(fields: Iterable[Field]) -> str | None:
    """An object of `fields` in canonical form: sorted keys, each optional one may be absent;
    the first entry follows the brace, every other one a comma (values never end in `{`)."""
    parts = []
    for spec in sorted(fields, key=lambda f: f.name):
        if not re.fullmatch(r"[A-Za-z0-9_]+", spec.name):
            return None
        value = _fast_value(spec) or "(?!)"  # matches nothing: such values are checked above
        entry = f'(?:(?<=\\{{)|,)"{spec.name}":{value}'
        parts.append(entry if spec.required else f"(?:{entry})?")
    return r"\{" + "".join(parts) + r"\}"


def fast_data_pattern(et: EventType) -> str | None:
    """The fast path's pattern of `et`'s data (see above), or None when a required field
    always needs the checks above."""
    entries = _fast_entries(et.fields)
    if entries is None or any(f.required and _fast_value(f) is None for f in et.fields):
        return None
    return entries


_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Catalogue:
    """Every event type a fleet knows, by name: what appends are checked against, what intake
    checks every line read against, and what `fleetgit schema` shows."""

    def __init__(self, types: Iterable[EventType]) -> None:
        self.types: dict[str, EventType] = {}
        for et in types:
            if et.name in self.types:
                raise ValueError(f"event type {et.name} is declared twice")
            self.types[et.name] = et
        self.stream_kinds = frozenset(k for et in self.types.values() for k in et.stream_kinds)
        self._fields = {et.name: {f.name: f for f in et.fields} for et in self.types.values()}
        self._required = {
            et.name: tuple(f.name for f in et.fields if f.required) for et in self.types.values()
        }
        self.upcasters: dict[tuple[str, int], Upcaster] = {}
        # intake's fast path: per type name, its line pattern and type, or None (intake.py)
        self.fast_lines: dict[str, Any] = {}

    def event_type(self, name: str) -> EventType:
        found = self.types.get(name)
        if found is None:
            close = difflib.get_close_matches(name, self.types, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "list them: fleetgit schema"
            raise ValidationError(f"unknown event type {name!r}", hint=hint)
        return found

    def check_stream(self, stream: str) -> str:
        """A stream name of any type: KIND/NAME, with a known KIND."""
        kind, sep, name = stream.partition("/")
        if not sep or kind not in self.stream_kinds or not NAME_RE.fullmatch(name):
            kinds = "|".join(sorted(self.stream_kinds))
            raise ValidationError(f"stream {stream!r}: expected {kinds}/<name>", hint=STREAM_HINT)
        return stream

    def validate_stream(
        self, type_name: str, stream: str, data: dict[str, Any] | None = None
    ) -> None:
        et = self.event_type(type_name)
        kind, sep, name = stream.partition("/")
        expected = "|".join(et.stream_kinds)
        shape = f"{expected}/<{et.stream_key}>" if et.stream_key else f"{expected}/<name>"
        if not sep or kind not in et.stream_kinds or not NAME_RE.fullmatch(name):
            raise ValidationError(
                f"stream: {type_name} belongs to a {shape} stream, got {stream!r}",
                hint=STREAM_HINT,
            )
        key = et.stream_key
        if key and data is not None and data.get(key) != name:
            raise ValidationError(
                f"stream: {stream!r} does not match data.{key} {data.get(key)!r}",
                hint=f"use --stream {kind}/{data.get(key)}",
            )

    def validate_data(
        self, type_name: str, data: object, *, stored: bool = False
    ) -> dict[str, Any]:
        et = self.event_type(type_name)
        if not isinstance(data, dict):
            raise ValidationError(
                f"data: expected a JSON object, got {_kind_of(data)}",
                hint=f"fleetgit schema {type_name} shows its fields",
            )
        try:
            _check_entries(self._fields[et.name], "data", data, stored)
        except ValidationError as exc:
            exc.hint = exc.hint or f"fleetgit schema {type_name} shows every field and its type"
            raise
        for key in self._required[et.name]:
            if key not in data:
                raise ValidationError(
                    f"data.{key}: required field is missing",
                    hint=f"fleetgit schema {type_name} shows every field and its type",
                )
        return data

    def validate(
        self, type_name: str, stream: str, data: object, *, stored: bool = False
    ) -> dict[str, Any]:
        checked = self.validate_data(type_name, data, stored=stored)
        self.validate_stream(type_name, stream, checked)
        return checked

    def valid_changes(self, type_name: str, changes: Any) -> dict[str, Any]:
        """The entries of an update's `changes` that its schema accepts, as stored data (intake
        has refused any event with others; folds filter again so a fold is safe on any input)."""
        if not isinstance(changes, dict):
            return {}
        fields = {f.name: f for f in self._fields[type_name]["changes"].keys}
        out = {}
        for key, value in changes.items():
            try:
                _check_entries(fields, "changes", {key: value}, stored=True)
            except ValidationError:
                continue
            out[key] = value
        return out

    def json_schema(self, type_name: str | None = None) -> dict[str, Any]:
        """JSON Schema (2020-12) of one type's `data`, or of the whole catalogue."""
        if type_name is not None:
            return {"$schema": _DIALECT, **_type_schema(self.event_type(type_name))}
        defs = {name: _type_schema(et) for name, et in self.types.items()}
        return {
            "$schema": _DIALECT,
            "title": "fleetgit event catalogue",
            "$defs": defs,
            "oneOf": [{"$ref": f"#/$defs/{name}"} for name in defs],
        }

    def register_upcaster(self, type_name: str, from_version: int, fn: Upcaster) -> None:
        """Register how data of `from_version` becomes `from_version + 1`."""
        self.upcasters[(type_name, from_version)] = fn

    def upcast(
        self, type_name: str, version: int, data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Lift old data to the current version; unknown types and versions pass through."""
        et = self.types.get(type_name)
        if et is None:
            return version, data
        while version < et.version:
            fn = self.upcasters.get((type_name, version))
            if fn is None:
                break
            data = fn(data)
            version += 1
        return version, data
