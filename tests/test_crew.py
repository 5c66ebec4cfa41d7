"""Pilots, missions and sorties through the CLI, as three pilots would drive them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetgit.fleet import Fleet
from fleetgit.index.projections import TABLES


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


def projection_snapshot(repo: Path) -> dict[str, list[Any]]:
    import sqlite3

    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


RACE = """
import sys
from fleetgit import sorties
from fleetgit.errors import ConflictError
from fleetgit.fleet import Fleet
with Fleet.open(sys.argv[1], actor=sys.argv[2]) as fleet:
    try:
        sorties.claim(fleet, sys.argv[3])
        print("won")
    except ConflictError:
        print("lost")
"""


def test_three_pilots_fly_a_mission(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose", "ice"):
        assert cli(repo, "pilot", "register", who, "--program", "claude-code").code == 0
    mission = as_(
        cli, repo, "viper", "mission", "create", "Ship the parser", "--priority", "high"
    ).out.strip()
    grammar = as_(
        cli,
        repo,
        "viper",
        "sortie",
        "create",
        "Grammar",
        "--mission",
        mission,
        "--file",
        "src/grammar.py",
    ).out.strip()
    lexer = as_(
        cli,
        repo,
        "viper",
        "sortie",
        "create",
        "Lexer",
        "--mission",
        mission,
        "--depends-on",
        grammar,
        "--priority",
        "critical",
        "--file",
        "src/lexer.py",
    ).out.strip()
    ready = cli(repo, "sortie", "list", "--ready", "--json").json()
    assert [s["sortie_id"] for s in ready] == [grammar]

    # three pilots race for the grammar sortie: exactly one wins
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(repo), who, grammar], stdout=subprocess.PIPE, text=True
        )
        for who in ("viper", "goose", "ice")
    ]
    outcomes = {
        who: p.communicate(timeout=120)[0].strip()
        for who, p in zip(("viper", "goose", "ice"), procs, strict=True)
    }
    assert sorted(outcomes.values()) == ["lost", "lost", "won"]
    winner = next(w for w, o in outcomes.items() if o == "won")
    loser = next(w for w, o in outcomes.items() if o == "lost")
    res = as_(cli, repo, loser, "sortie", "claim", grammar)
    assert res.code == 1 and f"held by {winner}" in res.err

    assert as_(cli, repo, loser, "sortie", "start", grammar).code == 1  # not theirs
    res = as_(cli, repo, winner, "sortie", "complete", grammar)
    assert res.code == 1 and "is assigned: cannot record it as completed" in res.err
    assert as_(cli, repo, winner, "sortie", "start", grammar).code == 0
    assert as_(cli, repo, winner, "sortie", "progress", grammar, "--percent", "40").code == 0
    assert as_(cli, repo, winner, "sortie", "block", grammar, "--reason", "spec unclear").code == 0
    assert as_(cli, repo, winner, "sortie", "progress", grammar, "--percent", "50").code == 1
    assert as_(cli, repo, winner, "sortie", "resume", grammar).code == 0
    shown = cli(repo, "mission", "show", mission, "--json").json()
    assert shown["progress"] == 20 and shown["by_status"] == {"in_progress": 1, "open": 1}

    # the lexer waits for the grammar
    assert as_(cli, repo, loser, "sortie", "claim", lexer).code == 0
    res = as_(cli, repo, loser, "sortie", "start", lexer)
    assert res.code == 1 and f"waits for {grammar}" in res.err
    assert as_(cli, repo, winner, "sortie", "complete", grammar, "--summary", "done").code == 0
    assert as_(cli, repo, loser, "sortie", "start", lexer).code == 0
    assert as_(cli, repo, "viper", "mission", "start", mission).code == 0
    res = as_(cli, repo, "viper", "mission", "start", mission)
    assert res.code == 1 and "is in_progress" in res.err

    # a question and its acknowledgement
    mid = as_(
        cli, repo, loser, "squawk", "send", "--to", winner, "--cc", "ice", "--subject",
        "grammar tokens final?", "--ack-required",
    ).out.strip()  # fmt: skip
    res = as_(cli, repo, "maverick", "squawk", "ack", mid)
    assert res.code == 1 and "not addressed to maverick" in res.err
    assert as_(cli, repo, winner, "squawk", "ack", mid, "--notes", "yes").code == 0
    shown = as_(cli, repo, loser, "squawk", "read", mid, "--json").json()
    assert [r["acked"] for r in shown["recipients"] if r["callsign"] == winner] == [True]
    # the sender's look recorded nothing (the ack alone marks it read for the winner)
    assert cli(repo, "events", "--type", "message_read", "--json").json() == []

    # lock contention: the second pilot gives up after its wait
    assert as_(cli, repo, winner, "lock", "acquire", "release-train", "--ttl", "10m").code == 0
    res = as_(cli, repo, loser, "lock", "acquire", "release-train", "--wait", "1s")
    assert res.code == 1 and f"held by {winner}" in res.err
    assert len(cli(repo, "events", "--type", "lock_timeout", "--json").json()) == 1

    # the lexer pilot checkpoints, loses its context, and resumes from the brief
    chk = as_(
        cli, repo, loser, "checkpoint", "create", "--sortie", lexer, "--progress", "70",
        "--summary", "keywords left", "--next-step", "keywords", "--json",
    ).json()  # fmt: skip
    assert chk["mission_id"] == mission
    as_(cli, repo, "ice", "squawk", "send", "--to", loser, "--subject", "ping me when done")
    brief = as_(cli, repo, loser, "resume", "--latest")
    assert brief.code == 0 and "keywords left" in brief.out and "ping me when done" in brief.out
    assert as_(cli, repo, loser, "sortie", "complete", lexer).code == 0
    assert as_(cli, repo, winner, "lock", "release", "release-train").code == 0
    assert (
        as_(cli, repo, "viper", "mission", "complete", mission, "--summary", "parser shipped").code
        == 0
    )
    done = cli(repo, "mission", "show", mission, "--json").json()
    assert done["status"] == "completed" and done["progress"] == 100

    before = projection_snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert projection_snapshot(repo) == before


def test_claim_with_reserve_is_all_or_nothing(repo: Path, cli: Any) -> None:
    sid = as_(
        cli, repo, "viper", "sortie", "create", "Parser", "--file", "src/parser.py"
    ).out.strip()
    assert as_(cli, repo, "ice", "reserve", "src/").code == 0
    res = as_(cli, repo, "viper", "sortie", "claim", sid, "--reserve")
    assert res.code == 1 and "held by ice" in res.err
    assert cli(repo, "sortie", "show", sid, "--json").json()["assignee"] is None
    as_(cli, repo, "ice", "release", "--all")
    assert as_(cli, repo, "viper", "sortie", "claim", sid, "--reserve").code == 0
    held = cli(repo, "reservations", "--holder", "viper", "--json").json()
    assert [r["pattern"] for r in held] == ["src/parser.py"]


def test_an_inactive_holder_can_be_replaced(repo: Path, cli: Any) -> None:
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "pilot_active_window_seconds = 900", "pilot_active_window_seconds = 1"
        )
    )
    sid = as_(cli, repo, "viper", "sortie", "create", "Docs").out.strip()
    assert as_(cli, repo, "viper", "sortie", "claim", sid).code == 0
    import time

    time.sleep(1.2)
    assert as_(cli, repo, "goose", "sortie", "claim", sid).code == 0
    (taken,) = [
        e
        for e in cli(repo, "events", "--type", "sortie_assigned", "--json").json()
        if e["actor"] == "goose"
    ]
    assert taken["data"]["previous_assignee"] == "viper"


def test_dependency_cycles_are_refused(repo: Path, cli: Any) -> None:
    a = as_(cli, repo, "viper", "sortie", "create", "A").out.strip()
    b = as_(cli, repo, "viper", "sortie", "create", "B", "--depends-on", a).out.strip()
    c = as_(cli, repo, "viper", "sortie", "create", "C", "--depends-on", b).out.strip()
    res = as_(cli, repo, "viper", "sortie", "update", a, "--depends-on", c)
    assert res.code == 1 and "dependency cycle" in res.err and a in res.err
    assert as_(cli, repo, "viper", "sortie", "update", a, "--depends-on", a).code == 1
    assert cli(repo, "sortie", "show", a, "--json").json()["depends_on"] == []


def test_ids_unknown_and_ambiguous(repo: Path, cli: Any) -> None:
    first = as_(cli, repo, "viper", "mission", "create", "One").out.strip()
    res = cli(repo, "mission", "show", first[:-1] + "?")
    assert res.code == 1 and f"did you mean {first}" in res.err
    assert cli(repo, "mission", "show", first[4:10], "--json").json()["mission_id"] == first
    with Fleet.open(repo) as fleet:  # two ids with a common prefix
        for mid in ("msn-aaaa1", "msn-aaaa2"):
            fleet.emit("mission_created", f"mission/{mid}", {"mission_id": mid, "title": mid})
    res = cli(repo, "mission", "show", "aaaa")
    assert res.code == 1 and "ambiguous" in res.err and "msn-aaaa1" in res.err
    res = as_(cli, repo, "viper", "sortie", "create", "x", "--mission", "nope")
    assert res.code == 1 and "no mission 'nope'" in res.err


def test_as_of_answers_from_an_earlier_state(repo: Path, cli: Any) -> None:
    mid = as_(cli, repo, "viper", "mission", "create", "Old title").out.strip()
    pos = cli(repo, "events", "--json").json()[-1]["pos"]
    as_(
        cli,
        repo,
        "viper",
        "mission",
        "update",
        mid,
        "--title",
        "New title",
        "--priority",
        "critical",
    )
    as_(cli, repo, "viper", "mission", "start", mid)
    then = cli(repo, "mission", "show", mid, "--as-of", str(pos), "--json").json()
    now = cli(repo, "mission", "show", mid, "--json").json()
    assert (then["title"], then["status"]) == ("Old title", "planned")
    assert (now["title"], now["status"], now["priority"]) == (
        "New title",
        "in_progress",
        "critical",
    )
    assert cli(repo, "mission", "list", "--as-of", "0", "--json").json() == []


def test_pilots(repo: Path, cli: Any) -> None:
    assert cli(repo, "pilot", "register", "viper", "--model", "opus", "--task", "parser").code == 0
    assert (
        as_(cli, repo, "viper", "pilot", "heartbeat", "--status", "busy", "--task", "lexer").code
        == 0
    )
    shown = cli(repo, "pilot", "show", "viper", "--json").json()
    assert shown["active"] and shown["status"] == "busy" and shown["current_task"] == "lexer"
    assert [p["callsign"] for p in cli(repo, "pilot", "list", "--active", "--json").json()] == [
        "viper"
    ]
    assert as_(cli, repo, "viper", "pilot", "deregister", "--reason", "done").code == 0
    assert cli(repo, "pilot", "list", "--active", "--json").json() == []
    res = cli(repo, "pilot", "show", "vipr")
    assert res.code == 1 and "did you mean viper" in res.err
    assert cli(repo, "pilot", "register", "has space").code == 1


def test_every_command_of_every_group_has_help_with_an_example(repo: Path, cli: Any) -> None:
    from fleetgit.cli import make_app

    app = make_app()
    assert make_app() is not app and len(make_app().registered_groups) == len(app.registered_groups)
    seen = 0
    for group in app.registered_groups:
        assert group.typer_instance is not None
        names = [c.name for c in group.typer_instance.registered_commands]
        assert len(names) == len(set(names)), group.name  # no duplicates, however often built
        for name in names:
            res = cli(repo, group.name or "", name or "", "--help")
            assert res.code == 0 and "Example: fleetgit" in res.out, (group.name, name)
            seen += 1
    assert seen >= 40
