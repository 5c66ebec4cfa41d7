"""`fleetgit status`: me, the active pilots, claimed sorties, my reservations (a lost one
marked), ready sorties and my unread messages, on one screen and as one JSON object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import CREW
from tests.test_reservations import clash


def test_status_shows_the_fleet_from_my_side(repo: Path, tmp_path: Path, cli: Any) -> None:
    clash(repo, tmp_path, cli)  # goose's src/ lost to viper-1's src/app.py after a merge
    mission = cli(repo, "--as", "viper-1", "mission", "create", "Ship it").out.strip()
    claimed = cli(repo, "--as", "viper-1", "sortie", "create", "A", "--mission", mission)
    ready = cli(repo, "--as", "viper-1", "sortie", "create", "B", "--mission", mission)
    sid, rid = claimed.out.strip(), ready.out.strip()
    assert cli(repo, "--as", "ice", "sortie", "claim", sid).code == 0
    sent = cli(repo, "--as", "viper-1", "squawk", "send", "--to", "goose", "--subject", "Lexer")
    assert sent.code == 0

    res = cli(repo, "--as", "goose", "status", "--json")
    assert res.code == 0, res.err
    out: Any = res.json()
    assert out["me"]["callsign"] == "goose" and out["me"]["registered"]
    assert {p["callsign"] for p in out["pilots"]} == set(CREW)
    assert [(s["sortie_id"], s["assignee"]) for s in out["claimed"]] == [(sid, "ice")]
    (mine,) = out["reservations"]
    assert mine["holder"] == "goose" and mine["lost_to"]["holder"] == "viper-1"
    assert [s["sortie_id"] for s in out["ready"]] == [rid]
    assert [m["subject"] for m in out["unread"]] == ["Lexer"]
    assert out["more"] == dict.fromkeys(out["more"], 0)

    human = cli(repo, "--as", "goose", "status").out
    assert "me: goose, active" in human
    assert (
        f"lost to {mine['lost_to']['id']} (viper-1, 'src/app.py')" in human
    )  # as `reservations` says it
    assert sid in human and rid in human and "Lexer" in human

    limited: Any = cli(repo, "--as", "goose", "status", "--limit", "1", "--json").json()
    assert len(limited["pilots"]) == 1 and limited["more"]["pilots"] == len(CREW) - 1


def test_status_of_an_unregistered_or_unknown_pilot(repo: Path, cli: Any) -> None:
    res = cli(repo, "--as", "nobody", "status", "--json")
    assert res.code == 0, res.err
    out: Any = res.json()
    assert out["me"] == {
        "callsign": "nobody",
        "registered": False,
        "active": False,
        "status": None,
        "last_seen": None,
    }
    assert out["reservations"] == [] and out["unread"] == []
    assert (
        "not registered (fleetgit pilot register nobody)"
        in cli(repo, "--as", "nobody", "status").out
    )
    anonymous: Any = cli(repo, "status", "--json").json()
    assert anonymous["me"]["callsign"] is None
    assert "me: no identity" in cli(repo, "status").out
