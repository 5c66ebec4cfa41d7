"""`fleetgit guard`: the push rule where code lands, in a CI-like clone and in a bare repository.

Real clones and a bare remote in temp dirs; the bare one runs the pre-receive hook that
docs/reservations.md shows, installed as written, and git pushes against it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet, init
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from tests.conftest import Result, git, make_repo
from tests.test_hooks import as_pilot

ROOT = Path(__file__).resolve().parent.parent
ZERO = "0" * 40


def pre_receive_script() -> str:
    """The pre-receive hook docs/reservations.md shows, as written."""
    text = (ROOT / "docs" / "reservations.md").read_text(encoding="utf-8")
    (script,) = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if b.startswith("#!")]
    return str(script)


def with_fleetgit() -> dict[str, str]:
    """The environment a hook finds this fleetgit in (the one under test, on PATH)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def push(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=with_fleetgit(),
        check=False,
    )


def run_fleetgit(
    cwd: Path, *args: str, input: str = "", env: dict[str, str] | None = None
) -> Result:
    """The CLI as a real process, `input` on its stdin."""
    proc = subprocess.run(
        [sys.executable, "-m", "fleetgit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)


def hour_ago() -> dict[str, str]:
    then = f"@{int(subprocess.check_output(['date', '+%s'])) - 3600} +0000"
    return {"GIT_COMMITTER_DATE": then, "GIT_AUTHOR_DATE": then}


@pytest.fixture
def fleet(tmp_path: Path) -> dict[str, Path]:
    """A bare `server` with the docs' pre-receive hook; `goose`'s clone, whose history (made an
    hour ago, before any reservation) touches src/app.py, with goose holding src/app.py now,
    committed and pushed to the server through the hook; `ice`, a plain clone of the server that
    has only fetched (no hooks, no index: a CI checkout)."""
    server = tmp_path / "server.git"
    git(tmp_path, "init", "-q", "--bare", str(server))
    hook = server / "hooks" / "pre-receive"
    hook.write_text(pre_receive_script(), encoding="utf-8")
    hook.chmod(0o755)
    goose = make_repo(tmp_path / "goose")
    # the whole history is from an hour ago: a commit is judged no earlier than its parents
    amend = ["git", "commit", "--amend", "-q", "--no-edit"]
    subprocess.run(amend, cwd=goose, env={**os.environ, **hour_ago()}, check=True)
    for text in ("v1\n", "v2\n"):
        write(goose, "src/app.py", text)
        as_pilot(goose, None, "commit", "-qm", f"app {text.strip()}", env=hour_ago())
    init(goose)
    install(locate(goose))
    with Fleet.open(goose) as f:
        pilots.register(f, "goose")
        pilots.register(f, "ice")
    with Fleet.open(goose, actor="goose") as f:
        f.reserve(["src/app.py"])
        f.commit("fleet: goose holds src/app.py")
    git(goose, "remote", "add", "origin", str(server))
    res = push(goose, "-q", "origin", "main")
    assert res.returncode == 0, res.stderr  # history from before the reservation passes
    ice = tmp_path / "ice"
    git(tmp_path, "clone", "-q", str(server), str(ice))
    return {"server": server, "goose": goose, "ice": ice}


def sneak(ice: Path) -> str:
    """ice changes goose's file with the hooks skipped (there are none in its clone)."""
    write(ice, "src/app.py", "ice was here\n")
    res = as_pilot(
        ice, "ice", "commit", "-qm", "ice: app", "--no-verify", "--trailer", "Fleet-Pilot: ice"
    )
    assert res.returncode == 0, res.stderr
    return git(ice, "rev-parse", "HEAD").strip()


def test_a_ci_clone_refuses_a_no_verify_commit_to_a_file_another_held(
    fleet: dict[str, Path],
) -> None:
    ice = fleet["ice"]
    oid = sneak(ice)
    res = run_fleetgit(ice, "guard", "origin/main..HEAD")
    assert res.code == 1, res.err
    assert f"not ice, who made commit {oid[:12]}" in res.err
    assert "src/app.py  <- goose holds 'src/app.py'" in res.err
    assert "1 of 1 commit(s) refused" in res.err
    res = run_fleetgit(ice, "guard", "--json", "origin/main..HEAD")
    assert res.code == 1
    out: Any = res.json()
    assert out["checked"] == 1
    (refused,) = out["refused"]
    assert (refused["commit"], refused["pilot"], refused["pilot_from"]) == (oid, "ice", "trailer")
    (path,) = refused["paths"]
    assert path["path"] == "src/app.py"
    assert [(h["holder"], h["pattern"]) for h in path["held_by"]] == [("goose", "src/app.py")]


def test_a_backdated_commit_is_judged_no_earlier_than_what_it_was_made_on(
    fleet: dict[str, Path],
) -> None:
    """ice dates its commit two hours back, before goose reserved the file; its parent (the
    fleet's commit that carries the reservation) is from after it: a commit is not made before
    its parents, so it is judged at its parent's time, and refused, in a clone and by the
    server."""
    server, ice = fleet["server"], fleet["ice"]
    then = f"@{int(subprocess.check_output(['date', '+%s'])) - 7200} +0000"
    write(ice, "src/app.py", "ice, backdated\n")
    env = {"GIT_COMMITTER_DATE": then, "GIT_AUTHOR_DATE": then}
    res = as_pilot(ice, "ice", "commit", "-qm", "ice: old", "--no-verify", env=env)
    assert res.returncode == 0, res.stderr
    res = run_fleetgit(ice, "guard", "origin/main..HEAD")
    assert res.code == 1 and "src/app.py  <- goose holds 'src/app.py'" in res.err, res.err
    before = git(server, "rev-parse", "main")
    res = push(ice, "-q", "origin", "HEAD:main")
    assert res.returncode != 0 and "goose holds" in res.stderr
    assert git(server, "rev-parse", "main") == before


def test_the_holders_own_commits_and_commits_from_before_the_reservation_pass(
    fleet: dict[str, Path],
) -> None:
    goose = fleet["goose"]
    write(goose, "src/app.py", "goose's own\n")
    assert as_pilot(goose, "goose", "commit", "-qm", "goose: app").returncode == 0
    res = run_fleetgit(goose, "guard", "HEAD")  # the whole history: old commits included
    assert res.code == 0, res.err
    assert "5 commit(s) checked" in res.out
    ice = fleet["ice"]
    git(ice, "fetch", "-q", "origin")
    assert run_fleetgit(ice, "guard", "origin/main").code == 0  # the fetched clone agrees


def test_the_bare_repositorys_pre_receive_refuses_the_push_and_keeps_nothing_of_it(
    fleet: dict[str, Path],
) -> None:
    server, ice = fleet["server"], fleet["ice"]
    before = git(server, "rev-parse", "main").strip()
    oid = sneak(ice)
    for target in ("main", "refs/heads/ice-branch"):
        res = push(ice, "origin", f"HEAD:{target}")
        assert res.returncode == 1, res.stderr
        assert "pre-receive hook declined" in res.stderr
        assert f"not ice, who made commit {oid[:12]}" in res.stderr
        assert "goose holds 'src/app.py'" in res.stderr
    assert git(server, "rev-parse", "main").strip() == before
    assert git(server, "branch", "--list", "ice-branch").strip() == ""
    # the server's index reads its refs only; nothing the refused push brought stays in it
    with sqlite3.connect(server / "fleet" / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM reservations").fetchone() == (1,)


def test_the_bare_repository_lets_the_holder_push_and_sees_what_a_push_brings(
    fleet: dict[str, Path],
) -> None:
    server, goose, ice = fleet["server"], fleet["goose"], fleet["ice"]
    write(goose, "src/app.py", "goose's own\n")
    assert as_pilot(goose, "goose", "commit", "-qm", "goose: app").returncode == 0
    res = push(goose, "origin", "main")
    assert res.returncode == 0, res.stderr
    assert "1 commit(s) checked" in res.stderr
    # ice reserves docs/ and pushes that with its change to docs; goose then sneaks into docs/
    git(ice, "pull", "-q", "--no-rebase", "origin", "main")
    with Fleet.open(ice, actor="ice") as f:
        f.reserve(["docs/"])
        f.commit("fleet: ice holds docs/")
    write(ice, "docs/guide.md", "ice's guide\n")
    as_pilot(ice, "ice", "commit", "-qm", "ice: docs", "--trailer", "Fleet-Pilot: ice")
    git(goose, "fetch", "-q", "origin")
    write(goose, "docs/guide.md", "goose's guide\n")
    res = as_pilot(goose, "goose", "commit", "-qm", "goose: docs", "--no-verify")
    assert res.returncode == 0
    # both in one push: the reservation arrives with it and counts for it
    git(ice, "fetch", "-q", str(goose), "main")
    git(ice, "merge", "-q", "--no-edit", "-X", "ours", "FETCH_HEAD")
    res = push(ice, "origin", "HEAD:main")
    assert res.returncode == 1, res.stderr
    assert "ice holds 'docs/'" in res.stderr and "not goose" in res.stderr
    assert git(server, "log", "-1", "--format=%s", "main").strip() == "goose: app"
    with sqlite3.connect(server / "fleet" / "index.sqlite") as conn:  # read for the check only
        assert conn.execute("SELECT holder FROM reservations").fetchall() == [("goose",)]


def test_deleting_a_branch_and_pushing_known_commits_bring_nothing_to_judge(
    fleet: dict[str, Path],
) -> None:
    goose = fleet["goose"]
    assert push(goose, "-q", "origin", "main:refs/heads/copy").returncode == 0
    assert push(goose, "-q", "origin", ":refs/heads/copy").returncode == 0
    res = run_fleetgit(
        fleet["server"], "guard", "--pre-receive", input=f"{ZERO} {ZERO} refs/heads/x\n"
    )
    assert res.code == 0, res.err


def test_what_guard_refuses_to_read(fleet: dict[str, Path]) -> None:
    goose = fleet["goose"]
    res = run_fleetgit(goose, "guard")
    assert res.code == 1 and "hint:" in res.err and "RANGE" in res.err
    res = run_fleetgit(goose, "guard", "nosuch..HEAD")
    assert res.code == 1 and "git log failed" in res.err and "hint:" in res.err
    assert "Traceback" not in res.err
    assert len(res.err.splitlines()) == 2, res.err  # one line and its hint, not git's five
    res = run_fleetgit(goose, "guard", "--pre-receive", input="not three fields\n")
    assert res.code == 1 and "line 1 of the input" in res.err
    assert "OLD NEW REF" in res.err, res.err  # the hint is about the input, not a range
    res = run_fleetgit(goose, "guard", "--", "--output=/tmp/x")
    assert res.code == 1 and "not a revision range" in res.err


def test_a_commit_without_a_trailer_is_judged_by_its_email_else_the_named_pusher(
    fleet: dict[str, Path],
) -> None:
    goose, ice = fleet["goose"], fleet["ice"]
    with Fleet.open(goose) as f:
        pilots.register(f, "ice", email="ice@example.com")
        f.commit("fleet: ice's email")
    assert push(goose, "-q", "origin", "main").returncode == 0
    git(ice, "pull", "-q", "--no-rebase", "origin", "main")
    write(ice, "src/app.py", "no trailer\n")
    as_pilot(ice, None, "commit", "-qm", "plain", env={"GIT_COMMITTER_EMAIL": "Ice@Example.com"})
    out: Any = run_fleetgit(ice, "guard", "--json", "origin/main..HEAD").json()
    (refused,) = out["refused"]
    assert (refused["pilot"], refused["pilot_from"]) == ("ice", "email")
    write(ice, "src/app.py", "no trailer, no known email\n")
    as_pilot(ice, None, "commit", "-qm", "plain")
    res = run_fleetgit(ice, "guard", "HEAD~1..HEAD")
    assert res.code == 1 and "names no pilot" in res.err  # judged by no one: blocked
    res = run_fleetgit(ice, "--as", "goose", "guard", "HEAD~1..HEAD")
    assert res.code == 0, res.err  # judged as the pusher --as names: the holder
