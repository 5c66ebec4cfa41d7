"""A pilot acts only once registered: checked once, in the write transaction (issue 11, item 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.ledger.errors import ValidationError
from tests.conftest import CREW_EVENTS


def written(cli: Any, repo: Path) -> list[Any]:
    """The events after the crew's registrations."""
    return cli(repo, "events", "--after", str(CREW_EVENTS), "--limit", "0", "--json").items()


def test_a_typo_in_as_is_refused_with_the_closest_callsigns(repo: Path, cli: Any) -> None:
    res = cli(repo, "--as", "vipr-1", "reserve", "src/a.py")
    assert res.code == 1 and "no pilot 'vipr-1' is registered" in res.err
    assert "hint: did you mean viper-1 or viper?" in res.err
    assert "fleetgit pilot register vipr-1" in res.err and "--register" in res.err
    assert written(cli, repo) == []  # no phantom pilot, no reservation
    assert "vipr-1" not in [p["callsign"] for p in cli(repo, "pilot", "list", "--json").items()]
    assert cli(repo, "--as", "viper-1", "reserve", "src/a.py").code == 0  # nothing blocks it
    # every command that writes goes through the same check
    for args in (
        ("sortie", "create", "S"),
        ("squawk", "send", "--to", "goose", "--subject", "hi"),
        ("lock", "acquire", "k"),
        ("emit", "mission_created", "--stream", "mission/m", "--data", '{"mission_id": "m",'
         ' "title": "t"}'),
    ):  # fmt: skip
        res = cli(repo, "--as", "vipr-1", *args)
        assert res.code == 1 and "no pilot 'vipr-1' is registered" in res.err, args
    assert [e["type"] for e in written(cli, repo)] == ["file_reserved"]


def test_an_empty_as_is_refused_not_replaced_by_fleet_callsign(
    repo: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_CALLSIGN", "goose")
    res = cli(repo, "--as", "", "reserve", "a.py")
    assert res.code == 1 and "--as '': the callsign is empty" in res.err and "hint:" in res.err
    assert written(cli, repo) == []
    with pytest.raises(ValidationError, match="callsign ''"):
        Fleet.open(repo, actor="")


def test_register_registers_and_acts_in_one_batch(bare_repo: Path, cli: Any) -> None:
    res = cli(bare_repo, "--as", "ice", "--register", "reserve", "a.py", "--json")
    assert res.code == 0, res.err
    events = cli(bare_repo, "events", "--json").items()
    assert [e["type"] for e in events] == ["pilot_registered", "file_reserved"]
    assert events[0]["tx"] == events[1]["tx"] and events[0]["actor"] == "ice"
    # once registered, --register adds nothing; given after the command, it is the same option
    assert cli(bare_repo, "reserve", "b.py", "--as", "ice", "--register").code == 0
    assert len(cli(bare_repo, "events", "--type", "pilot_registered", "--json").items()) == 1
    assert cli(bare_repo, "--as", "ice", "--register", "pilot", "register", "ace").code == 0
    assert len(cli(bare_repo, "events", "--type", "pilot_registered", "--json").items()) == 2


def test_the_api_checks_every_actor_of_a_batch(bare_repo: Path) -> None:
    mission = EventSpec("mission_created", "mission/m", {"mission_id": "m", "title": "t"})
    with Fleet.open(bare_repo, actor="viper") as fleet:
        with pytest.raises(ValidationError, match="no pilot 'viper' is registered"):
            fleet.emit_batch([mission])
        # a pilot registers itself, and may act in the same batch
        me = EventSpec("pilot_registered", "pilot/viper", {"callsign": "viper"})
        events = fleet.emit_batch([me, mission])
        assert [e.actor for e in events] == ["viper", "viper"]
        # but an unregistered pilot cannot register another, nor act after leaving
        other = EventSpec("pilot_registered", "pilot/ghost", {"callsign": "ghost"}, actor="x")
        with pytest.raises(ValidationError, match="no pilot 'x' is registered"):
            fleet.emit_batch([other])
        leave = EventSpec("pilot_deregistered", "pilot/viper", {})
        again = EventSpec("mission_started", "mission/m", {"mission_id": "m"})
        with pytest.raises(ValidationError, match="viper is deregistered"):
            fleet.emit_batch([leave, again])
    with Fleet.open(bare_repo) as fleet:  # no identity at all: an event without an actor
        assert fleet.emit("mission_started", "mission/m", {"mission_id": "m"}).actor is None
    with Fleet.open(bare_repo, actor="ice", register=True) as fleet:
        created = EventSpec("mission_created", "mission/m2", {"mission_id": "m2", "title": "t"})
        (started,) = fleet.emit_batch([created])
        assert [e.type for e in fleet.events(stream="pilot/ice")] == ["pilot_registered"]
        assert started.actor == "ice"


def test_deregister_lets_go_of_everything_in_the_same_batch(repo: Path, cli: Any) -> None:
    goose = ("--as", "goose")
    held = cli(repo, *goose, "sortie", "create", "Held", "--file", "src/held.py").out.strip()
    open_ = cli(repo, *goose, "sortie", "create", "Someone else's").out.strip()
    assert cli(repo, *goose, "sortie", "claim", held, "--reserve").code == 0
    assert cli(repo, *goose, "sortie", "start", held).code == 0
    assert cli(repo, *goose, "sortie", "progress", held, "--percent", "40").code == 0
    assert cli(repo, "--as", "ice", "sortie", "claim", open_).code == 0
    assert cli(repo, *goose, "reserve", "docs/").code == 0
    assert cli(repo, *goose, "lock", "acquire", "db").code == 0
    res = cli(repo, *goose, "pilot", "deregister", "--reason", "done")
    assert res.code == 0, res.err
    assert f"handed back (open again): {held}" in res.out and "unlocked: db" in res.out
    out = cli(repo, *goose, "pilot", "show", "goose", "--json").json()
    assert out["deregistered"] and out["sorties"] == []
    shown = cli(repo, "sortie", "show", held, "--json").json()
    assert (shown["status"], shown["assignee"], shown["percent"]) == ("open", None, 40)
    assert cli(repo, "sortie", "show", open_, "--json").json()["assignee"] == "ice"  # not its
    assert cli(repo, "reservations", "--holder", "goose", "--json").items() == []
    assert cli(repo, "lock", "list", "--json").items() == []
    last = cli(repo, "events", "--reverse", "--limit", "5", "--json").items()
    assert {e["type"] for e in last} == {
        "sortie_unclaimed", "file_released", "lock_released", "pilot_deregistered",
    }  # fmt: skip
    assert len({e["tx"] for e in last}) == 1  # one batch: all of it, or none
    before = cli(repo, "index", "status", "--json").json()["events"]
    assert cli(repo, "index", "rebuild").code == 0
    assert cli(repo, "sortie", "show", held, "--json").json()["status"] == "open"
    assert cli(repo, "index", "status", "--json").json()["events"] == before
