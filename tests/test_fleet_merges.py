"""The fleet across clones: what two clones did apart, every clone folds the same way after a
merge, and a rebuild agrees. Real clones, real `git pull`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import git

FIELDS = ("status", "assignee", "percent", "note", "blocked_reason", "result", "summary")


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    res = cli(repo, "--as", who, *args)
    return res


def ok(cli: Any, repo: Path, who: str, *args: str) -> str:
    res = as_(cli, repo, who, *args)
    assert res.code == 0, (args, res.err)
    return str(res.out.strip())


def two_clones(repo: Path, tmp_path: Path, cli: Any) -> tuple[Path, Path]:
    """Two clones of `repo` (whose fleet is committed first), each with fleetgit set up."""
    assert cli(repo, "commit", "-m", "fleet: plan").code == 0
    out = []
    for name in ("one", "two"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        assert cli(clone, "init").code == 0
        out.append(clone)
    return out[0], out[1]


def exchange(cli: Any, one: Path, two: Path) -> None:
    """Each clone commits its fleet and pulls the other's: both then hold both histories."""
    for clone in (one, two):
        assert cli(clone, "commit", "-m", "fleet").code == 0
    git(one, "pull", "-q", "--no-rebase", "--no-edit", str(two), "main")
    git(two, "pull", "-q", "--no-rebase", "--no-edit", str(one), "main")


def sortie_state(cli: Any, repo: Path, sid: str) -> dict[str, Any]:
    shown = cli(repo, "sortie", "show", sid, "--json").json()
    return {k: shown[k] for k in (*FIELDS, "depends_on")}


def test_the_loser_of_a_claim_race_cannot_work_the_winners_sortie(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    for who in ("goose", "ice"):
        assert cli(repo, "pilot", "register", who).code == 0
    sid = ok(cli, repo, "goose", "sortie", "create", "Parser")
    one, two = two_clones(repo, tmp_path, cli)
    ok(cli, one, "goose", "sortie", "claim", sid)  # first in total order: goose wins
    time.sleep(0.01)
    ok(cli, two, "ice", "sortie", "claim", sid)  # ice does not know yet, and works on
    for args in (
        ("start", sid),
        ("progress", sid, "--percent", "40", "--note", "ice was here"),
        ("block", sid, "--reason", "ice blocked"),
        ("resume", sid),
        ("complete", sid, "--summary", "ice's work"),
    ):
        ok(cli, two, "ice", "sortie", *args)
    exchange(cli, one, two)
    expected = {
        "status": "assigned",
        "assignee": "goose",
        "percent": 0,
        "note": None,
        "blocked_reason": None,
        "result": None,
        "summary": None,
        "depends_on": [],
    }
    for clone in (one, two):
        assert sortie_state(cli, clone, sid) == expected, clone.name
        assert cli(clone, "index", "rebuild").code == 0
        assert sortie_state(cli, clone, sid) == expected, clone.name
    # the winner's sortie goes on as if ice had never touched it
    ok(cli, one, "goose", "sortie", "start", sid)
    ok(cli, one, "goose", "sortie", "progress", sid, "--percent", "10")
    shown = sortie_state(cli, one, sid)
    assert (shown["status"], shown["percent"], shown["note"]) == ("in_progress", 10, None)
    res = as_(cli, two, "ice", "sortie", "progress", sid, "--percent", "90")
    assert res.code == 1 and f"sortie {sid} is assigned to goose, not ice" in res.err


def test_a_cycle_closed_by_two_clones_is_broken_at_the_later_update(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    a = ok(cli, repo, "viper", "sortie", "create", "A")
    b = ok(cli, repo, "viper", "sortie", "create", "B")
    one, two = two_clones(repo, tmp_path, cli)
    ok(cli, one, "viper", "sortie", "update", a, "--depends-on", b)  # earlier: counts
    time.sleep(0.01)
    ok(cli, two, "goose", "sortie", "update", b, "--depends-on", a)  # later: closes the cycle
    exchange(cli, one, two)
    for clone in (one, two):
        for _ in range(2):  # incremental, then rebuilt
            ready = [
                r["sortie_id"] for r in cli(clone, "sortie", "list", "--ready", "--json").items()
            ]
            assert ready == [b], clone.name  # a waits for b; b's dependency on a is ignored
            deps = cli(clone, "sortie", "show", b, "--json").json()["depends_on"]
            assert deps == [{"sortie_id": a, "status": "open", "cycle": [b, a, b]}]
            assert (
                cli(clone, "sortie", "show", a, "--json").json()["depends_on"][0]["cycle"] is None
            )
            assert f"ignored: it closes {b} -> {a} -> {b}" in cli(clone, "sortie", "show", b).out
            res = cli(clone, "verify")
            assert res.code == 1 and "dependency_cycle" in res.out, res.out
            assert f"{b} -> {a} -> {b}: {b} depending on {a}" in res.out
            assert cli(clone, "index", "rebuild").code == 0
    # b can be worked on; a waits for it as before
    ok(cli, one, "ice", "sortie", "claim", b)
    ok(cli, one, "ice", "sortie", "start", b)
    ok(cli, one, "goose", "sortie", "claim", a)
    res = as_(cli, one, "goose", "sortie", "start", a)
    assert res.code == 1 and f"waits for {b}" in res.err
    # re-declaring the ignored edge's reverse is refused (the raw graph still has the cycle)
    res = as_(cli, one, "viper", "sortie", "update", a, "--depends-on", b)
    assert res.code == 1 and "dependency cycle" in res.err
    ok(cli, one, "viper", "sortie", "update", b, "--no-depends")  # the way out verify names
    res = cli(one, "verify", "--json")
    assert res.code == 0, res.out


def test_resume_reports_a_reservation_that_lost_a_clash_as_lost(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    for who in ("goose", "ice"):
        assert cli(repo, "pilot", "register", who).code == 0
    one, two = two_clones(repo, tmp_path, cli)
    ok(cli, two, "ice", "reserve", "src/parser.py")  # earlier in total order: ice wins
    time.sleep(0.01)
    ok(cli, one, "goose", "reserve", "src/parser.py")
    ok(cli, one, "goose", "checkpoint", "create", "--summary", "parsing")
    exchange(cli, one, two)
    (lost,) = cli(one, "reservations", "--holder", "goose", "--json").items()
    assert lost["lost_to"]["holder"] == "ice"
    brief = as_(cli, one, "goose", "resume", "--latest", "--json").json()["reservations"]
    assert brief["kept"] == [] and brief["reacquired"] == []
    assert [(x["pattern"], x["holder"]) for x in brief["lost"]] == [("src/parser.py", "ice")]
    text = ok(cli, one, "goose", "resume", "--latest")
    assert "`src/parser.py`: LOST, now held by ice" in text and "still yours" not in text
    (recovered, _) = [
        e["data"] for e in cli(one, "events", "--type", "fleet_recovered", "--json").items()
    ]
    assert recovered["lost"] == ["src/parser.py"] and recovered["reacquired"] == []
