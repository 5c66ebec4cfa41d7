"""`fleetgit log`: the fleet's history as a compact timeline, newest first."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def made(cli: Any, repo: Path, *args: str) -> str:
    res = cli(repo, *args)
    assert res.code == 0, res.err
    return str(res.out.split()[0])


@pytest.fixture
def history(repo: Path, cli: Any) -> dict[str, str]:
    parser = made(cli, repo, "--as", "viper-1", "mission", "create", "Ship the parser")
    other = made(cli, repo, "--as", "ice", "mission", "create", "Docs")
    lexer = made(cli, repo, "--as", "viper-1", "sortie", "create", "Lexer", "--mission", parser)
    assert cli(repo, "--as", "goose", "sortie", "claim", lexer).code == 0
    assert cli(repo, "--as", "goose", "reserve", "lexer.py").code == 0
    return {"parser": parser, "other": other, "lexer": lexer}


def test_newest_first_one_line_each_with_what_happened(
    repo: Path, cli: Any, history: dict[str, str]
) -> None:
    res = cli(repo, "log")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert "file reserved" in lines[0] and "goose" in lines[0] and "lexer.py" in lines[0]
    assert "sortie assigned" in lines[1] and history["lexer"] in lines[1]
    assert "mission created" in lines[3] and "'Docs'" in lines[3]
    assert "\x1b" not in res.out  # no colour when not on a terminal
    listing = cli(repo, "log", "--json").json()
    events = listing["events"]
    assert [e["hlc"] for e in events] == sorted((e["hlc"] for e in events), reverse=True)
    assert events[0]["summary"].startswith("file reserved")
    assert listing["more"] == 0


def test_by_pilot_mission_time_and_limit(repo: Path, cli: Any, history: dict[str, str]) -> None:
    mine = cli(repo, "log", "--pilot", "goose", "--json").json()["events"]
    assert {e["actor"] for e in mine} == {"goose"} and len(mine) >= 2
    parser = cli(repo, "log", "--mission", history["parser"][:8], "--json").json()["events"]
    assert [e["type"] for e in parser] == ["sortie_assigned", "sortie_created", "mission_created"]
    assert cli(repo, "log", "--since", "2999-01-01T00:00:00Z", "--json").json()["events"] == []
    limited = cli(repo, "log", "--limit", "1", "--json").json()
    total = len(cli(repo, "log", "--limit", "0", "--json").json()["events"])
    assert len(limited["events"]) == 1 and limited["more"] == total - 1
    res = cli(repo, "log", "--limit", "1")
    assert f"{total - 1} older; --limit 0 shows all {total}" in res.out


def test_what_log_refuses(repo: Path, cli: Any) -> None:
    res = cli(repo, "log", "--since", "yesterday")
    assert res.code == 1 and "--since 'yesterday'" in res.err and "hint:" in res.err
    res = cli(repo, "log", "--mission", "msn-nosuch")
    assert res.code == 1 and "hint:" in res.err
    res = cli(repo, "log", "--pilot", "nobody")
    assert res.code == 0 and "no events" in res.out and "nobody" in res.err


def test_colour_on_a_terminal_only(repo: Path, history: dict[str, str]) -> None:
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.run(
        [sys.executable, "-m", "fleetgit", "log", "--limit", "1"],
        cwd=repo,
        stdout=child,
        stderr=subprocess.PIPE,
        env={**env, "TERM": "xterm"},
        check=False,
    )
    os.close(child)
    out = os.read(main, 65536).decode()
    os.close(main)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" in out and "file reserved" in out
