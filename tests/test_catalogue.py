"""The event catalogue: validation messages, streams, JSON Schema, upcasting."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.domain import catalogue
from fleetgit.domain.catalogue import TYPES as CATALOGUE
from fleetgit.domain.missions import events as mission_events
from fleetgit.ledger import schema
from fleetgit.ledger.errors import ValidationError
from fleetgit.ledger.schema import Field

NAME = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,15}\Z")


def value_for(f: Field) -> st.SearchStrategy[Any]:
    if f.kind == "name":
        return NAME
    if f.kind in ("str", "text"):
        # one line (kind str): no control characters, line or paragraph separators
        one_line = st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs"))
        # free text (kind text): lines and tabs, but no other control characters
        text = st.text(max_size=30).filter(lambda s: not schema._TEXT_CONTROL_RE.search(s))
        text = st.text(one_line, max_size=30) if f.kind == "str" else text
        return text.filter(str.strip) if f.nonblank else text
    if f.kind == "int":
        return st.integers(f.minimum if f.minimum is not None else -(10**6), f.maximum or 10**6)
    if f.kind == "bool":
        return st.booleans()
    if f.kind == "enum":
        return st.sampled_from(f.choices)
    if f.kind == "list":
        item = value_for(Field(f.name)) if f.items == "str" else NAME  # a name is a pattern too
        return st.lists(item, min_size=max(f.min_items, 0), max_size=4)
    if f.keys:  # an update's changes: some of its keys, each a valid value
        entries = st.fixed_dictionaries({}, optional={k.name: value_for(k) for k in f.keys})
        return entries.filter(lambda d: len(d) >= f.min_items)
    keys = st.text(min_size=1, max_size=5)
    text = st.text(max_size=5).filter(lambda t: "\x00" not in t)
    return st.dictionaries(keys, text, max_size=3)


@st.composite
def valid_event(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    et = draw(st.sampled_from(list(CATALOGUE.values())))
    data = {}
    for f in et.fields:
        if f.required or draw(st.booleans()):
            data[f.name] = draw(value_for(f))
    kind = et.stream_kinds[0]
    name = data[et.stream_key] if et.stream_key else draw(NAME)
    return et.name, f"{kind}/{name}", data


@settings(max_examples=300)
@given(valid_event())
def test_generated_valid_data_validates(item: tuple[str, str, dict[str, Any]]) -> None:
    type_name, stream, data = item
    assert catalogue.validate(type_name, stream, data) == data


@settings(max_examples=200)
@given(valid_event(), st.data())
def test_breaking_one_field_is_refused(item: tuple[str, str, dict[str, Any]], draw: Any) -> None:
    type_name, _stream, data = item
    fields = [f for f in CATALOGUE[type_name].fields if f.name in data]
    if not fields:
        return
    f = draw.draw(st.sampled_from(fields))
    wrong = {
        "name": 7,
        "str": 7,
        "text": [],
        "int": "7",
        "bool": 1,
        "enum": "nope",
        "list": "x",
        "object": [1],
    }[f.kind]
    with pytest.raises(ValidationError, match=f"data.{f.name}"):
        catalogue.validate_data(type_name, {**data, f.name: wrong})


@pytest.mark.parametrize(
    ("type_name", "data", "message"),
    [
        (
            "mission_created",
            {"mission_id": "m", "title": "t", "priority": "urgent"},
            "data.priority: expected one of low|medium|high|critical, got 'urgent'",
        ),
        (
            "sortie_progress",
            {"sortie_id": "s", "percent": 150},
            "data.percent: expected an integer from 0 to 100, got 150",
        ),
        (
            "sortie_created",
            {"sortie_id": "s", "title": "t", "files": ["a", "b", 7]},
            "data.files[2]: expected a string, got 7",
        ),
        (
            "mission_created",
            {"mission_id": "m", "title": "t", "colour": "red"},
            "data: unknown field 'colour'",
        ),
        ("mission_created", {"mission_id": "m"}, "data.title: required field is missing"),
        (
            "sortie_progress",
            {"sortie_id": "s", "percent": True},
            "data.percent: expected an integer from 0 to 100, got true",
        ),
        (
            "message_sent",
            {"message_id": "m", "to": [], "subject": "s"},
            "data.to: expected at least 1 item(s)",
        ),
        ("mission_created", {"mission_id": "m", "title": "a\x00b"}, "data.title: contains a NUL"),
        ("mission_created", {"mission_id": "m", "title": "x" * 10_001}, "data.title: longer than"),
        (
            "sortie_created",
            {"sortie_id": "s", "title": "t", "files": ["a"] * 1001},
            "data.files: more than 1000 items",
        ),
        (
            "checkpoint_created",
            {"checkpoint_id": "c", "context": {"x": math.nan}},
            "data.context.x: expected a finite number",
        ),
        (
            "mission_updated",
            {"mission_id": "m", "changes": {"owner": "x"}},
            "data.changes: unknown key 'owner'",
        ),
        ("pilot_registered", {"callsign": "has space"}, "is not a valid name"),
        (
            "mission_updated",
            {"mission_id": "m", "changes": {"priority": "urgent", "title": 5}},
            "data.changes.priority: expected one of low|medium|high|critical, got 'urgent'",
        ),
        (
            "mission_updated",
            {"mission_id": "m", "changes": {"title": 5}},
            "data.changes.title: expected a string, got 5",
        ),
        (
            "sortie_updated",
            {"sortie_id": "s", "changes": {"depends_on": "x"}},
            "data.changes.depends_on: expected a list, got 'x'",
        ),
        (
            "sortie_updated",
            {"sortie_id": "s", "changes": {"files": 7}},
            "data.changes.files: expected a list, got 7",
        ),
        ("sortie_updated", {"sortie_id": "s", "changes": {}}, "data.changes: expected at least 1"),
        ("mission_created", {"mission_id": "m", "title": ""}, "data.title: must not be empty"),
        ("sortie_created", {"sortie_id": "s", "title": " \t"}, "data.title: must not be empty"),
        (
            "sortie_updated",
            {"sortie_id": "s", "changes": {"title": "  "}},
            "data.changes.title: must not be empty",
        ),
        (
            "message_sent",
            {"message_id": "m", "to": ["x"], "subject": ""},
            "data.subject: must not be empty",
        ),
        ("work_order_created", {"work_order_id": "w", "sortie_id": "s", "title": ""}, "blank"),
    ],
)
def test_error_messages_name_the_field_and_the_expected_type(
    type_name: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        catalogue.validate_data(type_name, data)
    assert message in refused.value.message
    assert refused.value.hint  # and says how to put it right


def test_folds_apply_only_the_changes_the_schema_accepts() -> None:
    stored = {"priority": "urgent", "title": 5, "description": "kept", "owner": "x"}
    assert catalogue.valid_changes("mission_updated", stored) == {"description": "kept"}
    assert catalogue.valid_changes("sortie_updated", {"files": 7, "depends_on": None}) == {
        "depends_on": None
    }
    assert catalogue.valid_changes("sortie_updated", "not an object") == {}


def test_data_must_be_an_object() -> None:
    with pytest.raises(ValidationError, match="data: expected a JSON object, got list"):
        catalogue.validate_data("mission_started", [1])


def test_unknown_type_suggests_close_names() -> None:
    with pytest.raises(ValidationError) as refused:
        catalogue.event_type("mision_created")
    assert "unknown event type 'mision_created'" in refused.value.message
    assert "mission_created" in (refused.value.hint or "")


@pytest.mark.parametrize(
    ("type_name", "stream", "data", "ok"),
    [
        ("mission_created", "mission/m1", {"mission_id": "m1", "title": "t"}, True),
        ("mission_created", "pilot/m1", {"mission_id": "m1", "title": "t"}, False),
        ("mission_created", "mission/m2", {"mission_id": "m1", "title": "t"}, False),
        ("mission_created", "mission/", {"mission_id": "m1", "title": "t"}, False),
        ("mission_created", "mission", {"mission_id": "m1", "title": "t"}, False),
        ("pilot_active", "pilot/viper-1", {}, True),
        ("coordinator_decision", "fleet/main", {"decision": "go"}, True),
        ("coordinator_decision", "mission/m1", {"decision": "go"}, True),
        ("coordinator_decision", "sortie/s1", {"decision": "go"}, False),
    ],
)
def test_streams(type_name: str, stream: str, data: dict[str, Any], ok: bool) -> None:
    if ok:
        catalogue.validate(type_name, stream, data)
    else:
        with pytest.raises(ValidationError, match="stream"):
            catalogue.validate(type_name, stream, data)


def test_every_type_of_the_issue_is_in_the_catalogue() -> None:
    expected = set(
        """
        pilot_registered pilot_active pilot_deregistered pilot_spawned pilot_terminated
        mission_created mission_started mission_updated mission_completed mission_cancelled
        sortie_created sortie_assigned sortie_started sortie_progress sortie_blocked
        sortie_resumed sortie_updated sortie_completed sortie_cancelled sortie_unclaimed
        work_order_created
        work_order_assigned work_order_status_changed work_order_completed message_sent
        message_read message_acknowledged message_archived file_reserved file_renewed
        file_released file_conflict lock_acquired lock_released lock_timeout checkpoint_created
        checkpoint_restored checkpoint_deleted context_compacted fleet_recovered
        coordinator_decision event_withdrawn pilot_key_added pilot_key_revoked
        """.split()  # noqa: SIM905
    )
    assert expected == set(CATALOGUE)


def test_json_schema_of_one_type_and_of_all() -> None:
    one = catalogue.json_schema("sortie_progress")
    assert one["$schema"].endswith("2020-12/schema")
    assert one["properties"]["percent"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 100,
    }
    assert one["required"] == ["sortie_id", "percent"] and one["additionalProperties"] is False
    changes = catalogue.json_schema("mission_updated")["properties"]["changes"]
    assert changes["additionalProperties"] is False and changes["minProperties"] == 1
    assert changes["properties"]["priority"]["anyOf"][0] == {
        "enum": list(mission_events.PRIORITIES)
    }
    title = catalogue.json_schema("mission_created")["properties"]["title"]
    # JSON Schema's `$` is the end (Python's also matches before a last newline: fullmatch)
    for text, ok in (("Ship it", True), ("  x ", True), (" ", False), ("a\nb", False)):
        assert bool(re.fullmatch(title["pattern"], text)) is ok, text
    description = catalogue.json_schema("mission_created")["properties"]["description"]
    for text, ok in (("line 1\n\tline 2\r\n", True), ("red \x1b[31m", False), ("\x9b2J", False)):
        assert bool(re.fullmatch(description["anyOf"][0]["pattern"], text)) is ok, text
    files = catalogue.json_schema("sortie_created")["properties"]["files"]["anyOf"][0]
    assert not re.fullmatch(files["items"]["pattern"], "a\tb")
    everything = catalogue.json_schema()
    assert set(everything["$defs"]) == set(CATALOGUE)
    orjson.dumps(everything)


@pytest.fixture
def upcaster() -> Iterator[None]:
    """A temporary v2 of mission_started whose data gained a `reason` field."""
    original = CATALOGUE["mission_started"]
    CATALOGUE["mission_started"] = original._replace(version=2)
    catalogue.register_upcaster("mission_started", 1, lambda d: {**d, "reason": "unknown"})
    try:
        yield
    finally:
        CATALOGUE["mission_started"] = original
        catalogue.CATALOGUE.upcasters.pop(("mission_started", 1), None)


def test_upcasting_lifts_old_data_and_leaves_current_alone(upcaster: None) -> None:
    assert catalogue.upcast("mission_started", 1, {"mission_id": "m"}) == (
        2,
        {"mission_id": "m", "reason": "unknown"},
    )
    assert catalogue.upcast("mission_started", 2, {"mission_id": "m", "reason": "x"}) == (
        2,
        {"mission_id": "m", "reason": "x"},
    )
    assert catalogue.upcast("no_such_type", 5, {"a": 1}) == (5, {"a": 1})


def test_old_events_read_upcast_through_the_index(repo: Any, upcaster: None) -> None:
    from fleetgit.fleet import Fleet

    CATALOGUE["mission_started"] = CATALOGUE["mission_started"]._replace(version=1)
    with Fleet.open(repo) as fleet:
        fleet.emit("mission_created", "mission/m", {"mission_id": "m", "title": "M"})
        fleet.emit("mission_started", "mission/m", {"mission_id": "m"})
    CATALOGUE["mission_started"] = CATALOGUE["mission_started"]._replace(version=2)
    with Fleet.open(repo) as fleet:
        (event,) = fleet.events(types=("mission_started",))
    assert event.v == 2 and event.data == {"mission_id": "m", "reason": "unknown"}


@pytest.mark.parametrize(
    ("type_name", "data", "where"),
    [
        ("mission_created", {"mission_id": "m", "title": "Ship\nit"}, "data.title"),
        ("mission_created", {"mission_id": "m", "title": "a\rb"}, "data.title"),
        ("sortie_created", {"sortie_id": "s", "title": "t\tx"}, "data.title"),
        ("message_sent", {"message_id": "m", "to": ["a"], "subject": "hi\x1b[2J"}, "data.subject"),
        ("sortie_blocked", {"sortie_id": "s", "reason": "a\u2028b"}, "data.reason"),
        ("sortie_created", {"sortie_id": "s", "title": "t", "files": ["a\nb"]}, "data.files[0]"),
        ("mission_updated", {"mission_id": "m", "changes": {"title": "a\x85b"}}, "changes.title"),
    ],
)
def test_one_line_fields_refuse_control_characters(
    type_name: str, data: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError, match=f"{re.escape(where)}: contains a control character"):
        catalogue.validate_data(type_name, data)


@pytest.mark.parametrize(
    ("type_name", "data", "where"),
    [
        (
            "message_sent",
            {"message_id": "m", "to": ["a"], "subject": "s", "body": "\x1b[2J"},
            "body",
        ),
        (
            "mission_created",
            {"mission_id": "m", "title": "t", "description": "a\x9b31m"},
            "description",
        ),
        ("sortie_completed", {"sortie_id": "s", "summary": "ok\x07"}, "summary"),
        (
            "mission_updated",
            {"mission_id": "m", "changes": {"description": "\x1b]0;x\x07"}},
            "description",
        ),
    ],
)
def test_free_text_refuses_terminal_control_codes(
    type_name: str, data: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError, match="not terminal control codes") as raised:
        catalogue.validate_data(type_name, data)
    assert where in raised.value.message


def test_free_text_keeps_its_lines_and_names_refuse_a_trailing_newline() -> None:
    body = {"message_id": "m", "to": ["a"], "subject": "Ünïcode ✓ — fine", "body": "one\ntwo\n"}
    assert catalogue.validate_data("message_sent", body) == body
    description = {"mission_id": "m", "title": "T", "description": "line 1\n\tline 2"}
    assert catalogue.validate_data("mission_created", description) == description
    with pytest.raises(ValidationError, match="is not a valid name"):
        catalogue.validate_data("pilot_registered", {"callsign": "goose\n"})
    with pytest.raises(ValidationError, match="expected"):
        catalogue.check_stream("pilot/goose\n")
    assert schema.name_like("a\nb") == "a-b"
