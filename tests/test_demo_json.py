"""`fleetgit demo --json`: the steps as data, each command as a reader would type it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import run_fleetgit


def test_demo_json_lists_steps_and_names_the_second_worktree(tmp_path: Path) -> None:
    res = run_fleetgit(tmp_path, "demo", "--json")
    assert res.code == 0, res.err
    result: Any = res.json()
    assert result["kept"] is False and result["root"].endswith("hangar")
    steps = result["steps"]
    assert steps and all(set(s) == {"section", "command", "exit_code", "output"} for s in steps)
    assert "verify: ok" in " ".join(s["output"] for s in steps)
    worktree = [s for s in steps if "second worktree" in s["section"]]
    assert worktree[0]["command"] == "git worktree add -q -b feature ../hangar-feature"
    by_maverick = [s["command"] for s in steps if "sortie/srt-lexer" in s["command"]]
    assert by_maverick and all(c.startswith("fleetgit -C ../hangar-feature ") for c in by_maverick)
    lexer_commit = [s["command"] for s in steps if "maverick takes the lexer" in s["command"]]
    assert lexer_commit == [
        "fleetgit -C ../hangar-feature commit -m 'fleet: maverick takes the lexer'"
    ]
