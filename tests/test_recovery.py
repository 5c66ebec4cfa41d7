"""Checkpoints and resume: a pilot loses its context and comes back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import flood


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


TTL = 4  # seconds


def test_checkpoint_lose_context_and_resume(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose"):
        cli(repo, "pilot", "register", who)
    mid = as_(cli, repo, "viper", "mission", "create", "Parser").out.strip()
    sid = as_(
        cli, repo, "viper", "sortie", "create", "Lexer", "--mission", mid, "--file", "src/lexer.py"
    ).out.strip()
    # short leases, yet long enough that the checkpoint below still finds them on a loaded machine
    claim = ("sortie", "claim", sid, "--reserve", "--ttl", f"{TTL}s")
    assert as_(cli, repo, "viper", *claim).code == 0
    assert as_(cli, repo, "viper", "reserve", "docs/lexer.md", "--ttl", f"{TTL}s").code == 0
    assert as_(cli, repo, "viper", "lock", "acquire", "grammar", "--ttl", f"{TTL}s").code == 0
    expired = time.monotonic() + TTL + 0.3  # every lease above has ended by then
    as_(
        cli,
        repo,
        "goose",
        "squawk",
        "send",
        "--to",
        "viper",
        "--subject",
        "keywords?",
        "--body",
        "are 'let' and 'fn' reserved?",
        "--ack-required",
    )
    as_(cli, repo, "viper", "sortie", "start", sid)
    res = as_(
        cli,
        repo,
        "viper",
        "checkpoint",
        "create",
        "--sortie",
        sid,
        "--progress",
        "60",
        "--summary",
        "tokens done",
        "--next-step",
        "keywords",
        "--blocker",
        "spec gap",
        "--file",
        "src/lexer.py",
        "--json",
    )
    assert res.code == 0, res.err
    chk = res.json()
    assert chk["mission_id"] == mid and chk["reservations"] == ["docs/lexer.md", "src/lexer.py"]
    assert chk["locks"] == ["grammar"] and len(chk["unread_messages"]) == 1

    time.sleep(max(0.0, expired - time.monotonic()))  # viper's context is gone, and its leases
    assert as_(cli, repo, "goose", "reserve", "docs/").code == 0
    as_(cli, repo, "goose", "lock", "acquire", "grammar")

    brief = as_(cli, repo, "viper", "resume", "--latest")
    assert brief.code == 0, brief.err
    text = brief.out
    assert text.startswith("# Recovery brief for viper")
    assert "tokens done" in text and "- keywords" in text and "- spec gap" in text
    assert "`src/lexer.py`: re-acquired" in text
    assert "`docs/lexer.md`: LOST, now held by goose" in text
    assert "`grammar`: held by goose" in text
    assert "keywords? (ack required)" in text
    held = {r["pattern"]: r["holder"] for r in cli(repo, "reservations", "--json").items()}
    assert held == {"src/lexer.py": "viper", "docs/": "goose"}
    (recovered,) = cli(repo, "events", "--type", "fleet_recovered", "--json").items()
    assert recovered["data"]["reacquired"] == ["src/lexer.py"]
    assert recovered["data"]["lost"] == ["docs/lexer.md"]
    assert len(cli(repo, "events", "--type", "checkpoint_restored", "--json").items()) == 1

    data = as_(cli, repo, "viper", "resume", "--checkpoint", chk["checkpoint_id"], "--json").json()
    assert data["reservations"]["kept"] == ["src/lexer.py"]
    assert data["sortie"]["status"] == "in_progress"
    assert cli(repo, "checkpoint", "show", chk["checkpoint_id"], "--json").json()["restored"] == 2


def test_checkpoint_commands_and_errors(repo: Path, cli: Any) -> None:
    assert as_(cli, repo, "viper", "resume", "--latest").code == 1  # none yet
    mid = as_(cli, repo, "viper", "mission", "create", "M").out.strip()
    first = as_(
        cli, repo, "viper", "checkpoint", "create", "--mission", mid, "--trigger", "auto"
    ).out.strip()
    second = as_(cli, repo, "viper", "checkpoint", "create", "--summary", "later").out.strip()
    assert [c["checkpoint_id"] for c in cli(repo, "checkpoint", "list", "--json").items()] == [
        first,
        second,
    ]
    assert [
        c["checkpoint_id"]
        for c in cli(repo, "checkpoint", "list", "--mission", mid, "--json").items()
    ] == [first]
    assert (
        as_(cli, repo, "viper", "checkpoint", "latest", "--json").json()["checkpoint_id"] == second
    )
    assert (
        as_(cli, repo, "viper", "checkpoint", "latest", "--mission", mid, "--json").json()[
            "checkpoint_id"
        ]
        == first
    )
    assert as_(cli, repo, "viper", "checkpoint", "create", "--trigger", "panic").code == 1
    assert as_(cli, repo, "viper", "resume").code == 1
    assert as_(cli, repo, "viper", "resume", "--latest", "--mission", mid).code == 1
    assert (
        as_(cli, repo, "viper", "resume", "--mission", mid, "--json").json()["checkpoint"][
            "checkpoint_id"
        ]
        == first
    )


def test_checkpoint_with_more_unread_messages_than_a_list_holds(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "viper")
    flood(repo, "viper", 1005)
    chk = as_(cli, repo, "viper", "checkpoint", "create", "--summary", "busy", "--json").json()
    assert len(chk["unread_messages"]) == 1000 and chk["context"]["unread_total"] == 1005
    assert chk["unread_messages"][-1] == "msg-01004"  # the newest are kept
    brief = as_(cli, repo, "viper", "resume", "--latest")
    assert brief.code == 0 and "... and 955 more" in brief.out


def event_count(cli: Any, repo: Path) -> int:
    return len(cli(repo, "events", "--json").items())


def test_another_pilots_checkpoint_cannot_be_resumed(repo: Path, cli: Any) -> None:
    for who in ("goose", "ice"):
        cli(repo, "pilot", "register", who)
    as_(cli, repo, "goose", "reserve", "src/lexer.py")
    chk = as_(cli, repo, "goose", "checkpoint", "create", "--summary", "lexing").out.strip()
    as_(cli, repo, "goose", "release", "--all")  # free again: a resume would take it
    before = event_count(cli, repo)
    for args in (("--checkpoint", chk), ("--checkpoint", chk, "--json")):
        res = as_(cli, repo, "ice", "resume", *args)
        assert res.code == 1, res.out
        assert f"checkpoint {chk} is goose's, not ice's" in res.err
        assert f"fleetgit checkpoint show {chk}" in res.err
    assert event_count(cli, repo) == before  # nothing written
    assert cli(repo, "reservations", "--json").items() == []
    res = as_(cli, repo, "goose", "resume", "--checkpoint", chk, "--json")  # its own: fine
    assert res.code == 0 and res.json()["reservations"]["reacquired"] == ["src/lexer.py"]


def test_a_checkpoints_sortie_and_mission_must_agree(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "viper")
    m1 = as_(cli, repo, "viper", "mission", "create", "One").out.strip()
    m2 = as_(cli, repo, "viper", "mission", "create", "Two").out.strip()
    sid = as_(cli, repo, "viper", "sortie", "create", "S", "--mission", m1).out.strip()
    loose = as_(cli, repo, "viper", "sortie", "create", "Loose").out.strip()
    before = event_count(cli, repo)
    res = as_(cli, repo, "viper", "checkpoint", "create", "--sortie", sid, "--mission", m2)
    assert res.code == 1 and f"sortie {sid} belongs to mission {m1}, not {m2}" in res.err
    hint = "hint: leave out --mission (it comes from the sortie): fleetgit checkpoint create"
    assert f"{hint} --sortie {sid}" in res.err
    res = as_(cli, repo, "viper", "checkpoint", "create", "--sortie", loose, "--mission", m2)
    assert res.code == 1 and f"sortie {loose} is in no mission, not in {m2}" in res.err
    assert f"fleetgit sortie update {loose} --mission {m2}" in res.err
    for args in (("--sortie", ""), ("--mission", "")):
        res = as_(cli, repo, "viper", "checkpoint", "create", *args)
        assert res.code == 1 and "empty" in res.err and "hint: list them: fleetgit" in res.err
    assert event_count(cli, repo) == before
    for args in (("--sortie", sid), ("--sortie", sid, "--mission", m1)):
        made = as_(cli, repo, "viper", "checkpoint", "create", *args, "--json").json()
        assert (made["mission_id"], made["sortie_id"]) == (m1, sid)


def test_if_changed_saves_a_checkpoint_only_when_something_changed(repo: Path, cli: Any) -> None:
    """Claude Code's Stop hook fires every turn: an unchanged pilot keeps one checkpoint."""
    stop = ("checkpoint", "create", "--trigger", "auto", "--if-changed", "--summary", "stopped")
    first = as_(cli, repo, "goose", *stop).out.strip()
    assert as_(cli, repo, "goose", *stop).out.strip() == first
    assert as_(cli, repo, "viper", *stop).out.strip() != first  # another pilot's is not mine
    assert as_(cli, repo, "goose", "reserve", "src/a.py").code == 0
    second = as_(cli, repo, "goose", *stop).out.strip()
    assert second != first
    assert as_(cli, repo, "goose", *stop).out.strip() == second
    changed = as_(cli, repo, "goose", *stop[:-1], "other words").out.strip()
    assert changed not in (first, second)
    listed = as_(cli, repo, "goose", "checkpoint", "list", "--json").json()["checkpoints"]
    assert [c["checkpoint_id"] for c in listed if c["pilot"] == "goose"] == [first, second, changed]
