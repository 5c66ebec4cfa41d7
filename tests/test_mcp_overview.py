"""The MCP overview: rows cut to what an agent acts on, still matching the declared schema; and
the memoised ISO times its rows are written with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleetgit.agents.tools import TOOLS, Session
from fleetgit.domain.squawk import commands as squawk
from fleetgit.fleet import Fleet
from fleetgit.ledger import clock


def test_the_overview_rows_carry_what_an_agent_acts_on(repo: Path) -> None:
    with Fleet.open(repo, actor="goose") as fleet:
        squawk.send(fleet, ["viper"], "lexer?", "a long body " * 50, ack_required=True)
    session = Session.open(str(repo), "viper")
    try:
        out, _ = session.call("overview", {})
    finally:
        session.close()
    from jsonschema.validators import Draft202012Validator

    Draft202012Validator(TOOLS["overview"].output).validate(out)
    (message,) = out["unread"]
    assert message["sender"] == "goose" and message["subject"] == "lexer?"
    assert message["ack_required"] is True and "body" not in message
    assert {"goose", "viper"} <= {p["callsign"] for p in out["pilots"]}
    for row in out["pilots"]:
        assert None not in row.values() and set(row) <= {
            "callsign",
            "status",
            "current_task",
            "last_seen",
        }


@given(st.integers(min_value=-(10**12), max_value=10**14))
def test_iso_ms_is_the_iso_time_of_any_millisecond(ms: int) -> None:
    sec, frac = divmod(ms, 1000)
    expected = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:03d}Z"
    assert clock.iso_ms(ms) == expected
    assert clock.iso_ms(ms) == expected  # memoised: the same again


def test_the_unread_count_follows_what_other_processes_write(repo: Path) -> None:
    """The count is remembered until the index changes, whoever changes it."""
    with Fleet.open(repo, actor="goose") as fleet:
        first = squawk.send(fleet, ["viper"], "one", "")
    session = Session.open(str(repo), "viper")
    try:
        assert session.call("overview", {})[0]["more"]["unread"] == 0
        assert len(session.call("overview", {})[0]["unread"]) == 1
        with Fleet.open(repo, actor="goose") as fleet:
            squawk.send(fleet, ["viper"], "two", "")
        assert len(session.call("overview", {"limit": 1})[0]["unread"]) == 1
        assert session.call("overview", {"limit": 1})[0]["more"]["unread"] == 1
        with Fleet.open(repo, actor="viper") as fleet:
            squawk.mark(fleet, first, "message_read")
        assert session.call("inbox", {"unread": True})[0]["more"] == 0
        assert session.call("overview", {"limit": 1})[0]["more"]["unread"] == 0
    finally:
        session.close()
