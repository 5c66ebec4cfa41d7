"""What the pre-commit hook checks against: an index level with every source, on every branch,
and submodules as the directories they are. Real clones, real `git` commands firing the hooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet, init
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from tests.conftest import enlist, git, make_repo, run_fleetgit
from tests.test_hooks import stage


def as_pilot(repo: Path, who: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """A git command as pilot `who` (None: no identity), its hooks firing."""
    env = {**os.environ}
    env.pop("FLEET_CALLSIGN", None)
    if who:
        env["FLEET_CALLSIGN"] = who
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )


@pytest.fixture
def two_clones(tmp_path: Path) -> tuple[Path, Path]:
    """viper (fleet initialised, committed, pushed to origin) and goose, a clone of origin with
    the hooks installed and an index caught up to what it fetched."""
    viper = make_repo(tmp_path / "viper")
    stage(viper, "src/app.py")
    git(viper, "commit", "-q", "-m", "app")
    init(viper)
    enlist(viper)
    with Fleet.open(viper, actor="viper-1") as fleet:
        fleet.commit("fleet: init")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(viper), str(origin))
    git(viper, "remote", "add", "origin", str(origin))
    git(viper, "fetch", "-q", "origin")
    goose = tmp_path / "goose"
    git(tmp_path, "clone", "-q", str(origin), str(goose))
    install(locate(goose))
    Fleet.open(goose).close()  # the index, level with everything goose has
    return viper, goose


def viper_reserves_and_pushes(viper: Path, pattern: str = "src/app.py") -> None:
    with Fleet.open(viper, actor="viper-1") as fleet:
        pilots.register(fleet, "viper-1")  # pilots register before they act
        fleet.reserve([pattern])
        fleet.commit("fleet: viper-1 reserves")
    git(viper, "push", "-q", "origin", "main")


@pytest.mark.parametrize("route", ["fetch", "reset --hard", "cherry-pick", "read-tree"])
def test_a_reservation_that_came_in_without_a_post_hook_blocks(
    two_clones: tuple[Path, Path], route: str
) -> None:
    """None of these routes runs a post-* hook; the pre-commit hook notices the sources moved
    (the fingerprints catch-up keeps) and catches up before it checks, as `fleetgit check`."""
    viper, goose = two_clones
    viper_reserves_and_pushes(viper)
    git(goose, "fetch", "-q", "origin")
    if route == "reset --hard":
        git(goose, "reset", "-q", "--hard", "origin/main")
    elif route == "cherry-pick":
        git(goose, "cherry-pick", "origin/main")
    elif route == "read-tree":
        git(goose, "read-tree", "-u", "-m", "HEAD", "origin/main")
    stage(goose, "src/app.py", "goose was here\n")
    res = as_pilot(goose, "goose", "commit", "-q", "-m", "goose: app")
    assert res.returncode == 1, res.stderr
    assert "src/app.py" in res.stderr and "viper-1" in res.stderr
    assert run_fleetgit(goose, "--as", "goose", "check", "src/app.py").code == 1  # agrees


def test_a_catch_up_that_fails_refuses_the_commit(two_clones: tuple[Path, Path]) -> None:
    """Behind and unable to catch up (here: a config the commands refuse), the hook cannot know
    what is reserved: it fails closed, with the reason and the ways out. (The hook reads the
    config as the commands do, so it refuses for the config first; in warn mode it goes on,
    and reports the catch-up that failed too.)"""
    viper, goose = two_clones
    viper_reserves_and_pushes(viper)
    git(goose, "fetch", "-q", "origin")
    with (goose / ".fleet/config.toml").open("a") as fh:
        fh.write("no_such_setting = 1\n")
    stage(goose, "docs/free.md")
    res = as_pilot(goose, "goose", "commit", "-q", "-m", "goose: docs")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "commit refused: the commands refuse the config" in res.stderr
    assert "no_such_setting" in res.stderr
    assert "--no-verify" in res.stderr and "FLEET_HOOK_MODE=warn" in res.stderr
    os.environ["FLEET_HOOK_MODE"] = "warn"  # the isolated_env fixture restores it
    res = as_pilot(goose, "goose", "commit", "-q", "-m", "goose: docs")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "warning, commit not blocked: the reservation check failed" in res.stderr
    assert "could not be caught up" in res.stderr and "no_such_setting" in res.stderr


def test_a_fresh_index_is_not_caught_up_by_the_hook(two_clones: tuple[Path, Path]) -> None:
    """The fast path: with nothing new, the hook reads the index as it is and imports nothing
    heavy (a catch-up sets up site-packages, which the shim's -S skipped, and the package)."""
    _, goose = two_clones
    root = Path(__file__).resolve().parent.parent
    probe = (
        f"import sys; sys.path.insert(0, {str(root)!r}); from fleetgit.guard import hook\n"
        "code = hook.main(['pre-commit'])\n"
        "print(code, sorted(m for m in ('site', 'fleetgit.fleet', 'pygit2') if m in sys.modules))"
    )
    for _ in range(2):  # the first run may catch up (the clone's refs moved since)
        proc = subprocess.run(
            [sys.executable, "-S", "-c", probe],
            cwd=goose,
            capture_output=True,
            text=True,
            check=True,
        )
    assert proc.stdout.split(None, 1) == ["0", "[]\n"], proc.stderr


def test_a_branch_from_before_init_still_enforces(repo: Path, cli: Any, tmp_path: Path) -> None:
    """A checkout without `.fleet/` (a branch older than `fleetgit init`, or an orphan one)
    still has the clone's reservations: the index is in the common git dir."""
    cli(repo, "commit", "-m", "fleet: init")  # main: .fleet/ committed
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/app.py"])
    old = tmp_path / "old"
    git(repo, "worktree", "add", "-q", "-b", "before-init", str(old), "HEAD~1")
    assert not (old / ".fleet").exists()
    stage(old, "src/app.py", "goose was here\n")
    res = as_pilot(old, "goose", "commit", "-q", "-m", "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr, res.stderr
    assert "--no-verify" in res.stderr
    git(old, "checkout", "-q", "--orphan", "fresh")
    res = as_pilot(old, "goose", "commit", "-q", "-m", "orphan")
    assert res.returncode == 1 and "viper-1" in res.stderr
    assert as_pilot(old, "viper-1", "commit", "-q", "-m", "orphan").returncode == 0
    assert not (old / ".fleet").exists()  # the hook wrote nothing into the work tree


def test_no_fleet_anywhere_passes_silently(tmp_path: Path) -> None:
    """The hooks installed in a clone that never ran `fleetgit init` (no .fleet/, no index)."""
    plain = make_repo(tmp_path / "plain")
    install(locate(plain))
    stage(plain, "x.txt")
    res = as_pilot(plain, None, "commit", "-q", "-m", "x")
    assert res.returncode == 0 and res.stderr == ""
    assert not (plain / ".git/fleet/index.sqlite").exists()


FILE_OK = ("-c", "protocol.file.allow=always")  # git >= 2.38.1 asks for it to clone a path


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A repository to add as the submodule `sub`: `initial` on main, and two more commits on
    the diverging branches x and y."""
    path = make_repo(tmp_path / "lib")
    for branch in ("x", "y"):
        git(path, "checkout", "-q", "-b", branch, "main")
        git(path, "commit", "-q", "--allow-empty", "-m", branch)
    git(path, "checkout", "-q", "main")
    return path


def move_sub(repo: Path, to: str) -> None:
    git(repo / "sub", "checkout", "-q", "--detach", to)
    git(repo, "add", "sub")


@pytest.mark.parametrize("pattern", ["sub/**", "sub/", "sub", "sub/deep/file.c"])
def test_a_submodule_is_checked_as_a_directory(
    repo: Path, lib: Path, cli: Any, pattern: str
) -> None:
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve([pattern])
    res = as_pilot(repo, "goose", *FILE_OK, "submodule", "add", "-q", str(lib), "sub")
    assert res.returncode == 0, res.stderr
    assert cli(repo, "--as", "goose", "check", "sub").code == 1
    res = as_pilot(repo, "goose", "commit", "-q", "-m", "add sub")
    assert res.returncode == 1 and "  sub/  <- viper-1 holds" in res.stderr, res.stderr
    assert as_pilot(repo, "viper-1", "commit", "-q", "-m", "add sub").returncode == 0
    git(repo, "config", "submodule.sub.ignore", "all")  # hides it from diff, not from the hook
    move_sub(repo, "origin/x")  # a bump
    res = as_pilot(repo, "goose", "commit", "-q", "-m", "bump sub")
    assert res.returncode == 1 and "  sub/  <- viper-1 holds" in res.stderr
    git(repo, "rm", "-q", "-f", "sub")  # and a removal
    res = as_pilot(repo, "goose", "commit", "-q", "-m", "drop sub")
    assert res.returncode == 1 and "  sub/  <- viper-1 holds" in res.stderr


def test_a_submodule_in_a_merge_and_a_push(repo: Path, lib: Path, tmp_path: Path) -> None:
    """A merge that leaves `sub` at neither parent's commit (pre-commit concluding it), and a
    push of that merge alone (pre-push, git's combined --cc format) and of a plain bump."""
    git(repo, *FILE_OK, "submodule", "add", "-q", str(lib), "sub")
    git(repo, "commit", "-q", "-m", "add sub")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    for branch, to in (("x", "origin/x"), ("y", "origin/y")):
        git(repo, "checkout", "-q", "-b", branch, "main")
        move_sub(repo, to)
        git(repo, "commit", "-q", "-m", f"sub at {branch}")
    git(repo, "push", "-q", "origin", "main", "x", "y")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["sub/**"])
    assert as_pilot(repo, "goose", "merge", "x").returncode != 0  # sub conflicts
    move_sub(repo, "origin/main")  # resolved to a third commit
    res = as_pilot(repo, "goose", "commit", "-q", "--no-edit")
    assert res.returncode == 1 and "commit refused" in res.stderr and "  sub/  <-" in res.stderr
    assert as_pilot(repo, "goose", "commit", "-q", "--no-edit", "--no-verify").returncode == 0
    res = as_pilot(repo, "goose", "push", "origin", "y")  # only the merge is new
    assert res.returncode == 1 and "push refused" in res.stderr and "  sub/  <-" in res.stderr
    git(repo, "checkout", "-q", "-b", "z", "main")
    move_sub(repo, "origin/x")
    git(repo, "commit", "-q", "--no-verify", "-m", "bump")
    res = as_pilot(repo, "goose", "push", "origin", "z")
    assert res.returncode == 1 and "  sub/  <-" in res.stderr
    # the bump names no pilot: judged as its pusher; the merge is goose's whoever pushes it
    assert as_pilot(repo, "viper-1", "push", "-q", "origin", "z").returncode == 0
    res = as_pilot(repo, "viper-1", "push", "-q", "origin", "y")
    assert res.returncode == 1 and "not goose, who made commit" in res.stderr


def test_the_hook_reads_the_refs_as_catch_up_does(repo: Path, tmp_path: Path) -> None:
    """fingerprint.ref_targets (file reads, for the hook) against GitRepo.ref_targets (pygit2):
    packed and loose refs, a loose one over a packed one, remote-tracking refs, a symbolic ref
    (origin/HEAD, left out), refs/fleet/*, and a detached HEAD in a second worktree."""
    from fleetgit.git import fingerprint
    from fleetgit.git.repo import GitRepo
    from fleetgit.git.sources import worktree_git_dirs

    git(repo, "branch", "packed")
    git(repo, "update-ref", "refs/fleet/sync", "HEAD")
    git(repo, "pack-refs", "--all")
    git(repo, "commit", "-q", "--allow-empty", "-m", "loose")
    git(repo, "branch", "nested/loose")
    git(repo, "update-ref", "refs/heads/packed", "HEAD")  # loose over packed
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD~1")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"), "HEAD~1")
    paths = locate(repo)
    dirs = worktree_git_dirs(paths)
    expected = GitRepo(paths).ref_targets(dirs)
    found = fingerprint.ref_targets(str(paths.common_dir), [str(d) for d in dirs])
    assert found == expected
    assert len(expected) == 6  # main, packed, nested/loose, origin/main, fleet/sync, the HEAD
