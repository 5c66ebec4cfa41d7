"""The README's first command runs `fleetgit demo`: it must work from a clean environment, and
tell one story a newcomer can follow and retype."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import run_fleetgit


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    res = run_fleetgit(tmp_path, "demo")
    assert res.code == 0, res.out[-3000:] + res.err
    assert "commit refused" in res.out and "verify: ok" in res.out
    assert "Traceback" not in res.out + res.err
    # the second machine: one sync brings ice's reservation, and it is enforced here
    machine = res.out.split("## A second machine")[1]
    assert "$ fleetgit -C ../laptop sync" in machine and "$ fleetgit --as goose sync" in machine
    assert "src/parser.py  ice" in machine.split("check src/parser.py")[1]
    for shown in ("workorder complete", "--as-of", "events --consumer ci-bot", "cursor show"):
        assert f"$ fleetgit {shown}" in res.out or shown in res.out, shown
    # the cursor's position is explained where it is shown, by a comment a shell would ignore
    before_cursor = res.out.split("\n$ fleetgit cursor show ci-bot")[0].splitlines()[-1]
    assert before_cursor.startswith("# --advance moves the cursor"), before_cursor


def demo_steps(tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    """Run `fleetgit demo --keep --json` with its repository under tmp_path."""
    res = run_fleetgit(tmp_path, "demo", "--keep", "--json", env={"TMPDIR": str(tmp_path)})
    assert res.code == 0, res.err
    result: Any = res.json()
    repo = Path(result["root"])
    assert repo.is_relative_to(tmp_path)
    return result["steps"], repo


def argv(step: dict[str, Any]) -> list[str]:
    return shlex.split(step["command"])


def index_of(steps: list[dict[str, Any]], command: str) -> int:
    return next(i for i, s in enumerate(steps) if s["command"] == command)


def test_demo_tells_one_story(tmp_path: Path) -> None:
    steps, repo = demo_steps(tmp_path)
    ok = [s for s in steps if s["exit_code"] == 0]
    # every file git sees changed was written by a command the reader saw, before git saw it
    for i, step in enumerate(steps):
        if step["command"].startswith("git add "):
            path = argv(step)[-1]
            assert any(f"> {path}" in s["command"] for s in steps[:i]), path
    # fleetgit commit leaves the user's own edit alone: before and after, app.py is unstaged
    first = index_of(steps, "fleetgit commit -m 'fleet: viper-1 plans the parser'")
    assert steps[first - 2]["command"] == "echo \"print('work in progress')\" >> app.py"
    assert " M app.py" in steps[first - 1]["output"].splitlines()
    assert ".fleet/" in steps[first - 1]["output"]
    assert steps[first + 1]["output"] == " M app.py"
    # ... and so does every later commit, to the end: app.py never left the worktree
    kept = subprocess.run(["git", "status", "--short"], cwd=repo, capture_output=True, text=True)
    assert kept.stdout == " M app.py\n"
    log = subprocess.run(
        ["git", "log", "--format=%s", "--", "app.py"], cwd=repo, capture_output=True, text=True
    )
    assert log.stdout == "initial commit\n"
    # one mission: every command that succeeded names the same one
    missions = {m for s in ok for m in re.findall(r"msn-[0-9a-z]+", s["command"])}
    assert len(missions) == 1, missions
    (mission,) = missions
    assert sum(" mission create " in s["command"] for s in ok) == 1
    # the mission starts before any sortie is claimed or started
    start = index_of(steps, f"fleetgit --as viper-1 mission start {mission}")
    work = [i for i, s in enumerate(steps) if re.search(r" sortie (claim|start) ", s["command"])]
    assert work and start < min(work)
    # the lexer is claimed once, by maverick, in the second worktree
    claims = [s["command"] for s in ok if "sortie claim srt-lexer" in s["command"]]
    assert claims == [
        "fleetgit -C ../hangar-feature --as maverick sortie claim srt-lexer --reserve"
    ]


def test_demo_numbers_agree(tmp_path: Path) -> None:
    steps, _ = demo_steps(tmp_path)
    # the checkpoint records the progress its sortie was at, and the brief shows one number
    chk = next(i for i, s in enumerate(steps) if " checkpoint create " in s["command"])
    words = argv(steps[chk])
    sortie, progress = words[words.index("--sortie") + 1], words[words.index("--progress") + 1]
    recorded = [argv(s) for s in steps[:chk] if f"sortie progress {sortie} " in s["command"]]
    assert recorded[-1][recorded[-1].index("--percent") + 1] == progress
    brief = next(s["output"] for s in steps[chk:] if "resume --latest" in s["command"])
    assert f"in_progress, {progress}%" in brief and f"Progress: {progress}%" in brief
    # and its "what changed since" has something another pilot did
    assert "message_sent" in brief.split("## What changed since")[1]
    # --as-of takes a position a listing printed just before, in its POS column
    as_of = next(i for i, s in enumerate(steps) if "--as-of" in s["command"])
    pos = argv(steps[as_of])[-1]
    listing = steps[as_of - 1]
    assert listing["command"].startswith("fleetgit events ")
    assert any(line.split()[1] == pos for line in listing["output"].splitlines()[1:])
    # no listing is printed twice
    shown = [(s["command"], s["output"]) for s in steps if s["output"]]
    assert len(shown) == len(set(shown))
    # completing a sortie frees what its claim reserved, as the narration says
    done = next(i for i, s in enumerate(steps) if " sortie complete " in s["command"])
    assert "frees" in steps[done]["section"]
    after = next(s for s in steps[done:] if s["command"] == "fleetgit reservations")
    assert after["output"] == "no reservations"
