"""Pilots, missions and sorties through the CLI, as three pilots would drive them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from fleetgit.fleet import Fleet
from fleetgit.index.projections import TABLES
from tests import conftest
from tests.conftest import CREW, CREW_EVENTS


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
from fleetgit.domain.sorties import commands as sorties
from fleetgit.ledger.errors import ConflictError
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
    ready = cli(repo, "sortie", "list", "--ready", "--json").items()
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
    res = as_(cli, repo, "viper", "mission", "start", mission)  # its first sortie's start did
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
    assert cli(repo, "events", "--type", "message_read", "--json").items() == []

    # lock contention: the second pilot gives up after its wait
    assert as_(cli, repo, winner, "lock", "acquire", "release-train", "--ttl", "10m").code == 0
    res = as_(cli, repo, loser, "lock", "acquire", "release-train", "--wait", "1s")
    assert res.code == 1 and f"held by {winner}" in res.err
    assert len(cli(repo, "events", "--type", "lock_timeout", "--json").items()) == 1

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
    held = cli(repo, "reservations", "--holder", "viper", "--json").items()
    assert [r["pattern"] for r in held] == ["src/parser.py"]
    as_(cli, repo, "viper", "reserve", "docs/parser.md")  # not the sortie's: stays
    assert as_(cli, repo, "viper", "sortie", "start", sid).code == 0
    assert as_(cli, repo, "viper", "sortie", "complete", sid).code == 0
    held = cli(repo, "reservations", "--holder", "viper", "--json").items()
    assert [r["pattern"] for r in held] == ["docs/parser.md"]  # the claim's files are freed


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
        for e in cli(repo, "events", "--type", "sortie_assigned", "--json").items()
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
    pos = cli(repo, "events", "--json").items()[-1]["pos"]
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
    assert cli(repo, "mission", "list", "--as-of", "0", "--json").items() == []


def test_pilots(bare_repo: Path, cli: Any) -> None:
    repo = bare_repo
    assert cli(repo, "pilot", "register", "viper", "--model", "opus", "--task", "parser").code == 0
    assert (
        as_(cli, repo, "viper", "pilot", "heartbeat", "--status", "busy", "--task", "lexer").code
        == 0
    )
    shown = cli(repo, "pilot", "show", "viper", "--json").json()
    assert shown["active"] and shown["status"] == "busy" and shown["current_task"] == "lexer"
    assert [p["callsign"] for p in cli(repo, "pilot", "list", "--active", "--json").items()] == [
        "viper"
    ]
    assert as_(cli, repo, "viper", "pilot", "deregister", "--reason", "done").code == 0
    assert cli(repo, "pilot", "list", "--active", "--json").items() == []
    res = cli(repo, "pilot", "show", "vipr")
    assert res.code == 1 and "did you mean viper" in res.err
    assert cli(repo, "pilot", "register", "has space").code == 1


def test_every_group_and_command_has_help_with_an_example(repo: Path, cli: Any) -> None:
    from fleetgit.cli import make_app

    app = make_app()
    assert make_app() is not app and len(make_app().registered_groups) == len(app.registered_groups)
    seen = 0
    for group in app.registered_groups:
        assert group.typer_instance is not None
        res = cli(repo, group.name or "", "--help")
        assert res.code == 0 and "Example: fleetgit" in res.out, group.name  # the group's own
        names = [c.name for c in group.typer_instance.registered_commands]
        assert len(names) == len(set(names)), group.name  # no duplicates, however often built
        for name in names:
            res = cli(repo, group.name or "", name or "", "--help")
            assert res.code == 0 and "Example: fleetgit" in res.out, (group.name, name)
            seen += 1
    assert seen >= 40


def plant(repo: Path, etype: str, stream: str, seq: int, data: dict[str, Any]) -> None:
    """An event as another clone wrote it, unchecked (by an older fleetgit, say)."""
    conftest.plant(repo, etype, stream, data, "old-clone", seq=seq)


def test_updates_are_checked_like_creates_and_bad_stored_values_are_ignored(
    repo: Path, cli: Any
) -> None:
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "S", "--mission", mid).out.strip()
    for args in (("mission", "update", mid), ("sortie", "update", sid)):
        res = as_(cli, repo, "viper", *args, "--priority", "nope")
        assert res.code == 1
        assert "data.changes.priority: expected one of low|medium|high|critical, got 'nope'" in (
            res.err
        )
        assert "hint: use one of: low, medium, high, critical" in res.err
    bad = [
        ("mission_updated", f"mission/{mid}", {"mission_id": mid, "changes": {"priority": "x"}}),
        ("sortie_updated", f"sortie/{sid}", {"sortie_id": sid, "changes": {"files": 7}}),
    ]
    for etype, stream, data in bad:
        res = as_(
            cli,
            repo,
            "viper",
            "emit",
            etype,
            "--stream",
            stream,
            "--data",
            orjson.dumps(data).decode(),
        )
        assert res.code == 1 and "data.changes." in res.err
    assert len(cli(repo, "events", "--json").items()) == 2 + CREW_EVENTS  # nothing written

    # what an older version let through is in the ledger for good: intake refuses it whole
    plant(
        repo,
        "mission_updated",
        f"mission/{mid}",
        2,
        {"mission_id": mid, "changes": {"priority": "urgent", "title": 5, "description": "d"}},
    )
    plant(
        repo,
        "sortie_updated",
        f"sortie/{sid}",
        2,
        {"sortie_id": sid, "changes": {"depends_on": "x", "files": 7, "title": "T2"}},
    )
    plant(repo, "mission_created", "mission/msn-future", 1,
          {"mission_id": "msn-future", "title": "F", "priority": "urgent"})  # fmt: skip
    for _ in range(2):
        listed = cli(repo, "mission", "list", "--json")
        assert listed.code == 0, listed.err
        rows = {m["mission_id"]: m for m in listed.items()}
        assert (rows[mid]["priority"], rows[mid]["title"], rows[mid]["description"]) == (
            "medium", "M", None,
        )  # fmt: skip
        assert "msn-future" not in rows
        assert cli(repo, "mission", "list").code == 0
        shown = cli(repo, "sortie", "show", sid)
        assert shown.code == 0 and "T2" not in shown.out
        s = cli(repo, "sortie", "show", sid, "--json").json()
        assert (s["title"], s["files"], s["depends_on"]) == ("S", [], [])
        assert cli(repo, "index", "rebuild").code == 0
    found = cli(repo, "verify")
    assert found.code == 1 and found.out.count("refused line") == 3


def test_blank_titles_are_refused(repo: Path, cli: Any) -> None:
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    cli(repo, "pilot", "register", "goose")
    for args in (
        ("mission", "create", ""),
        ("mission", "create", "   "),
        ("sortie", "create", "\t"),
        ("sortie", "update", sid, "--title", ""),
        ("workorder", "create", " ", "--sortie", sid),
        ("squawk", "send", "--to", "goose", "--subject", ""),
    ):
        res = as_(cli, repo, "viper", *args)
        assert res.code == 1 and "must not be empty or blank" in res.err, args
        assert "hint:" in res.err
    assert len(cli(repo, "events", "--json").items()) == 2 + CREW_EVENTS


def test_unknown_status_filters_are_refused(repo: Path, cli: Any) -> None:
    for group, closest in (("mission", "planned"), ("sortie", "open"), ("workorder", "open")):
        res = cli(repo, group, "list", "--status", "opne" if group != "mission" else "planed")
        assert res.code == 1 and "expected one of" in res.err, group
        assert f"hint: fleetgit {group} list --status {closest}" in res.err


def test_writes_need_an_identity(repo: Path, cli: Any) -> None:
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    before = len(cli(repo, "events", "--json").items())
    for args in (
        ("mission", "create", "X"),
        ("mission", "cancel", mid),
        ("mission", "update", mid, "--title", "Y"),
        ("sortie", "create", "X"),
        ("sortie", "cancel", sid),
        ("workorder", "create", "X", "--sortie", sid),
    ):
        res = cli(repo, *args)
        assert res.code == 1 and "no pilot identity" in res.err, args
        assert "hint: pass --as CALLSIGN" in res.err
    assert len(cli(repo, "events", "--json").items()) == before


def test_mission_progress_leaves_cancelled_sorties_out(repo: Path, cli: Any) -> None:
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    done, going, _, _, dropped = (
        as_(cli, repo, "viper", "sortie", "create", f"s{i}", "--mission", mid).out.strip()
        for i in range(5)
    )
    for sid in (done, going):
        as_(cli, repo, "viper", "sortie", "claim", sid)
        as_(cli, repo, "viper", "sortie", "start", sid)
    as_(cli, repo, "viper", "sortie", "complete", done)
    as_(cli, repo, "viper", "sortie", "progress", going, "--percent", "40")
    as_(cli, repo, "viper", "sortie", "cancel", dropped)
    shown = cli(repo, "mission", "show", mid, "--json").json()
    assert shown["progress"] == 35 and shown["sorties"] == 5  # 140 / 4, not 140 / 5
    (listed,) = cli(repo, "mission", "list", "--json").items()
    assert listed["progress"] == 35


def test_a_deregistered_pilot_must_register_again_and_its_claims_can_be_taken(
    repo: Path, cli: Any
) -> None:
    for who in ("maverick", "ice"):
        cli(repo, "pilot", "register", who)
    sid = as_(cli, repo, "maverick", "sortie", "create", "S").out.strip()
    assert as_(cli, repo, "maverick", "sortie", "claim", sid).code == 0
    assert as_(cli, repo, "maverick", "pilot", "deregister").code == 0
    shown = cli(repo, "sortie", "show", sid, "--json").json()  # handed back as it left
    assert (shown["status"], shown["assignee"]) == ("open", None)
    for args in (("pilot", "heartbeat"), ("sortie", "claim", sid), ("lock", "acquire", "k")):
        res = as_(cli, repo, "maverick", *args)
        assert res.code == 1 and "maverick is deregistered" in res.err, args
        assert "hint: fleetgit pilot register maverick" in res.err
    res = as_(cli, repo, "maverick", "pilot", "deregister")
    assert (
        res.code == 1 and "hint: to rejoin the fleet: fleetgit pilot register maverick" in res.err
    )
    shown = cli(repo, "pilot", "show", "maverick", "--json").json()
    assert (shown["active"], shown["deregistered"], shown["status"]) == (
        False, True, "deregistered",
    )  # fmt: skip
    res = as_(cli, repo, "ice", "sortie", "claim", sid)
    assert res.code == 0, res.err
    assert cli(repo, "sortie", "show", sid, "--json").json()["assignee"] == "ice"
    assert cli(repo, "pilot", "register", "maverick").code == 0
    assert as_(cli, repo, "maverick", "pilot", "heartbeat").code == 0
    shown = cli(repo, "pilot", "show", "maverick", "--json").json()
    assert (shown["active"], shown["deregistered"], shown["status"]) == (True, False, "active")


def test_registering_again_keeps_what_is_not_given(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "ice", "--program", "codex", "--model", "m1", "--task", "t1")
    assert cli(repo, "pilot", "register", "ice").code == 0
    shown = cli(repo, "pilot", "show", "ice", "--json").json()
    assert (shown["program"], shown["model"], shown["task"]) == ("codex", "m1", "t1")
    cli(repo, "pilot", "register", "ice", "--model", "m2")
    shown = cli(repo, "pilot", "show", "ice", "--json").json()
    assert (shown["program"], shown["model"], shown["task"]) == ("codex", "m2", "t1")


def test_as_of_judges_activity_at_that_position(bare_repo: Path, cli: Any) -> None:
    repo = bare_repo
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "pilot_active_window_seconds = 900", "pilot_active_window_seconds = 1"
        )
    )
    cli(repo, "pilot", "register", "viper")
    import time

    time.sleep(1.2)
    cli(repo, "pilot", "register", "goose")
    then = {p["callsign"]: p for p in cli(repo, "pilot", "list", "--as-of", "1", "--json").items()}
    assert list(then) == ["viper"] and then["viper"]["active"]
    now = {p["callsign"]: p for p in cli(repo, "pilot", "list", "--json").items()}
    assert not now["viper"]["active"] and now["goose"]["active"]
    as_(cli, repo, "viper", "pilot", "heartbeat")
    old = cli(repo, "pilot", "show", "viper", "--as-of", "2", "--json").json()
    new = cli(repo, "pilot", "show", "viper", "--json").json()
    assert old["last_seen"] < new["last_seen"] and not old["active"] and new["active"]
    res = cli(repo, "pilot", "list", "--as-of", "4")
    assert res.code == 1 and "positions here run from 0 to 3" in res.err and "hint:" in res.err


def test_human_output_is_readable(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "viper", "--program", "claude-code")
    shown = cli(repo, "pilot", "show", "viper").out
    assert "registered_ms" not in shown and "False" not in shown and "True" not in shown
    assert "deregistered     no" in shown and "active           yes" in shown
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    wid = as_(cli, repo, "viper", "workorder", "create", "W", "--sortie", sid).out.strip()
    shown = cli(repo, "workorder", "show", wid).out
    assert "None" not in shown and "assignee         -" in shown and "last_pos" not in shown
    assert "created          20" in shown  # an ISO time, not an HLC
    chk = as_(cli, repo, "viper", "checkpoint", "create").out.strip()
    assert "?%" not in cli(repo, "checkpoint", "show", chk).out
    assert "progress -" in cli(repo, "checkpoint", "show", chk).out
    as_(cli, repo, "viper", "lock", "acquire", "db", "--ttl", "10m")
    listed = cli(repo, "lock", "list").out
    assert "9m5" in listed and "59" not in listed.replace("9m5", "")


def test_errors_say_how_to_fix_them(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "viper")
    a = as_(cli, repo, "viper", "sortie", "create", "A").out.strip()
    b = as_(cli, repo, "viper", "sortie", "create", "B", "--depends-on", a).out.strip()
    as_(cli, repo, "viper", "sortie", "claim", a)
    sid = as_(cli, repo, "viper", "sortie", "create", "W").out.strip()
    wid = as_(cli, repo, "viper", "workorder", "create", "W", "--sortie", sid).out.strip()
    as_(cli, repo, "viper", "workorder", "complete", wid)
    cases = {
        ("mission", "create", "X", "--priority", "urgent"): "use one of: low, medium, high",
        ("mission", "create", "x" * 10_001): "shorten it to 10000 characters",
        ("sortie", "update", a, "--depends-on", b): f"drop {b} from --depends-on",
        ("sortie", "claim", a): f"start it: fleetgit sortie start {a}",
        ("sortie", "complete", a): f"next for it: fleetgit sortie start {a}",
        ("workorder", "assign", wid, "viper"): f"fleetgit workorder create TITLE --sortie {sid}",
        ("resume",): "fleetgit resume --latest",
        ("lock", "acquire", "x y"): "fleetgit lock acquire x-y",
        ("cursor", "advance", "x", "--to", "9999"): "fleetgit cursor advance x --to",
        ("mission", "show", "msn-nope"): "list them: fleetgit mission list",
    }
    for args, hint in cases.items():
        res = as_(cli, repo, "viper", *args)
        assert res.code == 1 and hint in res.err.partition("\nhint: ")[2], (args, res.err)
    res = as_(cli, repo, "viper", "cursor", "advance", "x", "--to", "9999", "--json")
    assert "fleetgit cursor advance x --to" in orjson.loads(res.err)["error"]["hint"]


def test_every_hint_names_a_real_command(repo: Path, cli: Any) -> None:
    """Each `fleetgit GROUP COMMAND` written in the fleet's sources exists."""
    import re

    from fleetgit.cli import make_app

    app = make_app()
    commands = {
        (g.name, c.name)
        for g in app.registered_groups
        for c in g.typer_instance.registered_commands
    }  # type: ignore[union-attr]
    tops = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    root = Path(__file__).parent.parent / "fleetgit"
    files = [
        # root.py (the app and its help table: prose such as "fleetgit in this repository")
        # is left out, as cli/__init__.py was before it moved there
        *(p for p in (root / "cli").glob("[cqrs]*.py") if p.name != "root.py"),
        *(root / "domain").rglob("*.py"),
        *(root / "ledger" / n for n in ("ids.py", "schema.py")),
    ]
    named = re.compile(r"(?<!from )fleetgit (?:--as \S+ )?([a-z]+(?:-[a-z]+)*)(?: ([a-z]+))?")
    seen = 0
    for path in files:
        for top, sub in named.findall(path.read_text()):
            if top == "event":  # "fleetgit event catalogue", the JSON Schema's title
                continue
            assert top in tops, (path.name, top)
            if any(g == top for g, _ in commands) and sub:
                assert (top, sub) in commands, (path.name, top, sub)
            seen += 1
    assert seen > 30


def test_last_seen_probes_each_actor_and_agrees_with_a_full_scan(repo: Path) -> None:
    from fleetgit.domain.pilots import commands as pilots
    from fleetgit.fleet import EventSpec

    def scan(upto: int) -> dict[str, int]:
        rows = fleet.index.conn.execute(
            "SELECT actor, max(hlc) >> 16 FROM events WHERE actor IS NOT NULL AND pos <= ?"
            " GROUP BY actor",
            (upto,),
        )
        return dict(rows.fetchall())

    with Fleet.open(repo) as fleet:  # no identity: these events have no actor
        fleet.emit("mission_created", "mission/m0", {"mission_id": "m0", "title": "zero"})
    for i, who in enumerate(["ice", "viper", "goose", "ice", "viper", "ice"], 1):
        with Fleet.open(repo, actor=who) as fleet:
            fleet.emit_batch(
                [
                    EventSpec(
                        "mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "x"}
                    )
                ]
            )
    with Fleet.open(repo) as fleet:
        last = fleet.index.max_pos()
        assert pilots.last_seen(fleet) == scan(last) and set(scan(last)) == set(CREW)
        with fleet.as_of(2):  # the first two registrations
            assert pilots.last_seen(fleet) == scan(2) and set(scan(2)) == set(CREW[:2])
        with fleet.as_of(3 + CREW_EVENTS):
            assert pilots.last_seen(fleet) == scan(3 + CREW_EVENTS)
        for _ in range(2):  # a rebuild drops the events indexes and must make this one again
            plan = fleet.index.conn.execute(
                "EXPLAIN QUERY PLAN SELECT max(hlc) FROM events WHERE actor = ?", ("ice",)
            ).fetchall()
            assert "events_actor" in str(plan)  # a probe, not a scan of the history
            fleet.rebuild()


def short_window(repo: Path) -> None:
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "pilot_active_window_seconds = 900", "pilot_active_window_seconds = 1"
        )
    )


def test_a_started_or_blocked_sortie_can_be_taken_over_from_a_silent_pilot(
    repo: Path, cli: Any
) -> None:
    import time

    short_window(repo)
    started = as_(cli, repo, "viper", "sortie", "create", "Started").out.strip()
    blocked = as_(cli, repo, "viper", "sortie", "create", "Blocked").out.strip()
    for sid in (started, blocked):
        for args in (("claim", sid), ("start", sid), ("progress", sid, "--percent", "30")):
            assert as_(cli, repo, "viper", "sortie", *args).code == 0
    assert as_(cli, repo, "viper", "sortie", "block", blocked, "--reason", "stuck").code == 0
    res = as_(cli, repo, "goose", "sortie", "claim", started)  # viper is active
    assert res.code == 1 and "is held by viper (active" in res.err
    assert "hint: ask them (fleetgit squawk send --to viper" in res.err
    time.sleep(1.2)
    for sid in (started, blocked):
        res = as_(cli, repo, "goose", "sortie", "claim", sid)
        assert res.code == 0, res.err
        assert f"taken over from viper; next: fleetgit sortie start {sid}" in res.out
        shown = cli(repo, "sortie", "show", sid, "--json").json()
        assert (shown["status"], shown["assignee"], shown["percent"]) == ("assigned", "goose", 30)
        assert shown["blocked_reason"] is None
        res = as_(cli, repo, "viper", "sortie", "progress", sid, "--percent", "90")
        assert res.code == 1 and f"sortie {sid} is assigned to goose, not viper" in res.err
        assert as_(cli, repo, "goose", "sortie", "start", sid).code == 0
        res = as_(cli, repo, "goose", "sortie", "claim", sid)
        assert res.code == 1 and f"sortie {sid} is already yours (in_progress)" in res.err
        assert f"hint: fleetgit sortie progress {sid} --percent N" in res.err
    assigned = cli(repo, "events", "--type", "sortie_assigned", "--actor", "goose", "--json")
    assert [e["data"]["previous_assignee"] for e in assigned.items()] == ["viper", "viper"]
    before = projection_snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert projection_snapshot(repo) == before


def test_a_silent_pilots_started_sortie_can_be_claimed(repo: Path, cli: Any) -> None:
    import time

    short_window(repo)
    sid = as_(cli, repo, "maverick", "sortie", "create", "S").out.strip()
    for args in (("claim", sid), ("start", sid)):
        assert as_(cli, repo, "maverick", "sortie", *args).code == 0
    time.sleep(1.2)
    res = as_(cli, repo, "ice", "sortie", "claim", sid, "--json")
    assert res.code == 0, res.err
    assert (res.json()["status"], res.json()["taken_from"]) == ("assigned", "maverick")
    done = as_(cli, repo, "ice", "sortie", "complete", sid)
    assert done.code == 1 and f"next for it: fleetgit sortie start {sid}" in done.err
    res = as_(cli, repo, "ice", "sortie", "claim", sid)
    assert res.code == 1 and f"hint: start it: fleetgit sortie start {sid}" in res.err
    for args in (("start", sid), ("complete", sid)):
        assert as_(cli, repo, "ice", "sortie", *args).code == 0
    res = as_(cli, repo, "ice", "sortie", "claim", sid)
    assert res.code == 1 and "a completed sortie is final" in res.err


def test_a_takeover_moves_the_claimed_files_to_the_new_pilot(repo: Path, cli: Any) -> None:
    import time

    short_window(repo)
    sid = as_(cli, repo, "maverick", "sortie", "create", "S", "--file", "src/s.py").out.strip()
    as_(cli, repo, "maverick", "reserve", "docs/notes.md")  # by hand: not the claim's, stays
    for args in (("claim", sid, "--reserve"), ("start", sid)):
        assert as_(cli, repo, "maverick", "sortie", *args).code == 0
    time.sleep(1.2)  # maverick falls silent
    res = as_(cli, repo, "ice", "sortie", "claim", sid, "--reserve", "--json")
    assert res.code == 0, res.err
    held = {r["pattern"]: r["holder"] for r in cli(repo, "reservations", "--json").items()}
    assert held == {"src/s.py": "ice", "docs/notes.md": "maverick"}
    (freed,) = cli(repo, "events", "--type", "file_released", "--json").items()
    assert freed["data"] | {"reason": ""} == {
        "reservation_id": freed["data"]["reservation_id"], "reason": "", "forced": True,
        "forced_by": "ice",
    }  # fmt: skip
    before = projection_snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert projection_snapshot(repo) == before


def test_a_cancelled_dependency_no_longer_blocks(repo: Path, cli: Any) -> None:
    a = as_(cli, repo, "viper", "sortie", "create", "A").out.strip()
    b = as_(cli, repo, "viper", "sortie", "create", "B", "--depends-on", a).out.strip()

    def ready() -> list[str]:
        return [r["sortie_id"] for r in cli(repo, "sortie", "list", "--ready", "--json").items()]

    assert ready() == [a]
    assert as_(cli, repo, "viper", "sortie", "cancel", a, "--reason", "not needed").code == 0
    assert ready() == [b]
    assert as_(cli, repo, "goose", "sortie", "claim", b).code == 0
    assert as_(cli, repo, "goose", "sortie", "start", b).code == 0


def test_empty_ids_are_refused_and_dependencies_can_be_cleared(repo: Path, cli: Any) -> None:
    a = as_(cli, repo, "viper", "sortie", "create", "A").out.strip()
    b = as_(cli, repo, "viper", "sortie", "create", "B", "--depends-on", a).out.strip()
    as_(cli, repo, "viper", "mission", "create", "M")
    events = len(cli(repo, "events", "--json").items())
    cases = {
        ("sortie", "update", b, "--depends-on", ""): "list them: fleetgit sortie list",
        ("sortie", "update", b, "--depends-on", " "): "list them: fleetgit sortie list",
        ("sortie", "show", ""): "list them: fleetgit sortie list",
        ("sortie", "create", "C", "--mission", ""): "list them: fleetgit mission list",
        ("sortie", "create", "C", "--depends-on", ""): "list them: fleetgit sortie list",
        ("sortie", "list", "--mission", ""): "list them: fleetgit mission list",
        ("mission", "show", ""): "list them: fleetgit mission list",
        ("checkpoint", "show", ""): "list them: fleetgit checkpoint list",
        ("resume", "--checkpoint", ""): "list them: fleetgit checkpoint list",
        ("workorder", "create", "W", "--sortie", ""): "list them: fleetgit sortie list",
        ("workorder", "list", "--sortie", ""): "list them: fleetgit sortie list",
        ("sortie", "update", b, "--no-depends", "--depends-on", a): (
            f"fleetgit sortie update {b} --no-depends"
        ),
    }
    for args, hint in cases.items():
        res = as_(cli, repo, "viper", *args)
        assert res.code == 1, (args, res.out)
        assert res.err.count("\n") == 2 and res.err.partition("\nhint: ")[2].startswith(hint), (
            args,
            res.err,
        )
        assert "ambiguous" not in res.err
    assert len(cli(repo, "events", "--json").items()) == events  # nothing written
    res = as_(cli, repo, "viper", "sortie", "update", b, "--no-depends", "--json")
    assert res.code == 0 and res.json()["depends_on"] == []
    assert "--no-depends" in cli(repo, "sortie", "update", "--help").out


def test_sorties_cannot_move_into_a_mission_that_is_over(repo: Path, cli: Any) -> None:
    sid = as_(cli, repo, "viper", "sortie", "create", "S").out.strip()
    for end in ("complete", "cancel"):
        mid = as_(cli, repo, "viper", "mission", "create", f"M {end}").out.strip()
        assert as_(cli, repo, "viper", "mission", end, mid).code == 0
        status = "completed" if end == "complete" else "cancelled"
        for args in (("create", "T", "--mission", mid), ("update", sid, "--mission", mid)):
            res = as_(cli, repo, "viper", "sortie", *args)
            assert res.code == 1, (args, res.out)
            assert f"mission {mid} is {status}: cannot add sorties to it" in res.err
            assert "hint: plan the work in a new mission: fleetgit mission create TITLE" in res.err
    assert cli(repo, "sortie", "show", sid, "--json").json()["mission_id"] is None
    live = as_(cli, repo, "viper", "mission", "create", "Live").out.strip()
    assert as_(cli, repo, "viper", "sortie", "update", sid, "--mission", live).code == 0
