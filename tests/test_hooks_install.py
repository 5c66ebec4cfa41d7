"""`fleetgit hooks install|uninstall|status` against what is really in a hooks dir: hooks that
look at their own name, links (dangling ones too), shims git cannot execute, and paths that need
quoting. Fired by real `git commit`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.guard import install as hooks_install
from fleetgit.guard.install import MARKER, install, status, uninstall
from fleetgit.ledger.errors import ConflictError
from tests.conftest import git


def commit(repo: Path, who: str, message: str = "change") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEET_CALLSIGN": who}
    return subprocess.run(
        ["git", "commit", "-q", "-m", message],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def stage(repo: Path, path: str, text: str = "x\n") -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)


def state_of(repo: Path, name: str = "pre-commit") -> hooks_install.HookState:
    return next(s for s in status(locate(repo)) if s.name == name)


def snapshot(path: Path) -> tuple[str, bytes | str, int]:
    """What uninstall must restore: a link's text, or a file's bytes and mode."""
    if path.is_symlink():
        return ("link", os.readlink(path), 0)
    return ("file", path.read_bytes(), stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def reserved(repo: Path) -> Path:
    """`repo` where viper-1 holds src/app.py."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        pilots.register(fleet, "viper-1")  # pilots register before they act
        fleet.reserve(["src/app.py"])
    return repo


# -- a chained hook runs under its own name -----------------------------------------------------

DISPATCHER = (  # like husky v4: one script, linked or copied under every hook's name
    "#!/bin/sh\n"
    'hookName=`basename "$0"`\n'
    'echo "$hookName" >> "$(git rev-parse --git-dir)/dispatched.log"\n'
    'case "$hookName" in pre-commit) exit 0 ;; *) echo "no hook $hookName" >&2; exit 1 ;; esac\n'
)


def test_a_chained_hook_sees_its_own_name(reserved: Path) -> None:
    hook = reserved / ".git/hooks/pre-commit"
    hook.write_text(DISPATCHER)
    hook.chmod(0o750)
    before = snapshot(hook)
    install(locate(reserved))
    stage(reserved, "docs/a.md")
    res = commit(reserved, "goose")
    assert res.returncode == 0, res.stderr
    assert (reserved / ".git/dispatched.log").read_text() == "pre-commit\n"
    stage(reserved, "src/app.py", "goose\n")
    res = commit(reserved, "goose")  # the chained hook passes; fleetgit's check still refuses
    assert res.returncode == 1 and "viper-1" in res.stderr
    uninstall(locate(reserved))
    assert snapshot(hook) == before
    assert sorted(p.name for p in hook.parent.iterdir() if "fleetgit" in p.name) == []


def old_layout(repo: Path, kept: str, mode: int) -> Path:
    """A clone installed by the fleetgit before: NAME.fleetgit-chained next to an old shim."""
    hooks = repo / ".git/hooks"
    (hooks / "pre-commit.fleetgit-chained").write_text(kept)
    (hooks / "pre-commit.fleetgit-chained").chmod(mode)
    old_shim = hooks / "pre-commit"
    old_shim.write_text(
        f'#!/bin/sh\n{MARKER} pre-commit\n"$(dirname "$0")/pre-commit.fleetgit-chained" "$@"\n'
    )
    old_shim.chmod(0o755)
    return hooks


def test_the_layout_before_is_moved_on_install_and_restored_on_uninstall(reserved: Path) -> None:
    hooks = old_layout(reserved, DISPATCHER, 0o700)
    install(locate(reserved))
    assert not os.path.lexists(hooks / "pre-commit.fleetgit-chained")
    assert snapshot(hooks / "fleetgit-chained/pre-commit") == ("file", DISPATCHER.encode(), 0o700)
    assert state_of(reserved).state == "installed" and state_of(reserved).chained
    stage(reserved, "docs/a.md")
    res = commit(reserved, "goose")
    assert res.returncode == 0, res.stderr
    assert (reserved / ".git/dispatched.log").read_text() == "pre-commit\n"
    uninstall(locate(reserved))
    assert snapshot(hooks / "pre-commit") == ("file", DISPATCHER.encode(), 0o700)
    assert not any("fleetgit" in p.name for p in hooks.iterdir())


def test_uninstall_restores_a_hook_kept_in_the_layout_before(reserved: Path) -> None:
    hooks = old_layout(reserved, "#!/bin/sh\nexit 0\n", 0o711)
    uninstall(locate(reserved))
    assert snapshot(hooks / "pre-commit") == ("file", b"#!/bin/sh\nexit 0\n", 0o711)
    assert not os.path.lexists(hooks / "pre-commit.fleetgit-chained")


# -- a shim git cannot execute ------------------------------------------------------------------


def test_a_shim_that_is_not_executable_is_reported_and_repaired(reserved: Path) -> None:
    install(locate(reserved))
    shim = reserved / ".git/hooks/pre-commit"
    shim.chmod(0o644)  # chmod -x: git skips the hook without a word
    assert state_of(reserved).state == "not executable"
    stage(reserved, "src/app.py", "goose\n")
    assert commit(reserved, "goose").returncode == 0  # what the state warns about
    git(reserved, "reset", "-q", "--soft", "HEAD~1")
    assert state_of(reserved, "pre-push").state == "installed"
    (state,) = [s for s in install(locate(reserved)) if s.name == "pre-commit"]
    assert state.state == "installed" and os.access(shim, os.X_OK)
    res = commit(reserved, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr


# -- links, dangling ones included --------------------------------------------------------------


def test_a_dangling_link_is_kept_chained_and_restored_as_a_link(reserved: Path) -> None:
    hooks = reserved / ".git/hooks"
    os.symlink("../../tools/precommit.sh", hooks / "pre-commit")  # tools/ not there yet
    install(locate(reserved))
    assert state_of(reserved).state == "installed" and state_of(reserved).chained
    stage(reserved, "docs/a.md")
    res = commit(reserved, "goose")  # a dangling hook does not run, as git would not run it
    assert res.returncode == 0, res.stderr
    tool = reserved / "tools/precommit.sh"  # the target appears: it runs, from where it was
    tool.parent.mkdir()
    tool.write_text(DISPATCHER)
    tool.chmod(0o755)
    stage(reserved, "docs/b.md")
    res = commit(reserved, "goose")
    assert res.returncode == 0, res.stderr
    assert (reserved / ".git/dispatched.log").read_text() == "pre-commit\n"
    install(locate(reserved))  # twice changes nothing
    uninstall(locate(reserved))
    assert snapshot(hooks / "pre-commit") == ("link", "../../tools/precommit.sh", 0)
    assert not os.path.lexists(hooks / "fleetgit-chained")


def test_an_absolute_link_is_kept_as_it_is(reserved: Path, tmp_path: Path) -> None:
    hooks = reserved / ".git/hooks"
    target = str(tmp_path / "nowhere/hook")
    os.symlink(target, hooks / "pre-push")
    install(locate(reserved))
    assert os.readlink(hooks / "fleetgit-chained/pre-push") == target
    uninstall(locate(reserved))
    assert snapshot(hooks / "pre-push") == ("link", target, 0)


# -- values baked into the shim -----------------------------------------------------------------


def test_paths_that_need_quoting_make_a_working_shim(
    reserved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / """it's "$HOME" \\ `here`"""
    odd.mkdir()
    python = odd / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    os.symlink(hooks_install.PACKAGE_ROOT, odd / "root")
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setattr(hooks_install, "PACKAGE_ROOT", str(odd / "root"))
    install(locate(reserved))
    assert state_of(reserved).interpreter == str(python)
    stage(reserved, "docs/a.md")
    res = commit(reserved, "goose")
    assert res.returncode == 0, res.stderr
    stage(reserved, "src/app.py", "goose\n")
    res = commit(reserved, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr
    assert "Syntax error" not in res.stderr


def test_a_hook_kept_in_both_layouts_is_a_conflict(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    (hooks / "fleetgit-chained").mkdir()
    for kept in ("fleetgit-chained/pre-push", "pre-push.fleetgit-chained"):
        (hooks / kept).write_text(f"#!/bin/sh\necho {kept}\n")
    before = {p.relative_to(hooks): p.read_bytes() for p in hooks.rglob("*") if p.is_file()}
    with pytest.raises(ConflictError, match="two hooks are kept for pre-push"):
        install(locate(repo), force=True)
    assert {p.relative_to(hooks): p.read_bytes() for p in hooks.rglob("*") if p.is_file()} == before


# -- a hooks dir in the work tree (husky's core.hooksPath=.husky) ------------------------------


def test_a_tracked_hooks_dir_is_refused_and_the_way_that_works_for_every_clone_does(
    reserved: Path, cli: Any
) -> None:
    """Shims there would carry this machine's interpreter path to every clone and move the
    tracked hooks into fleetgit-chained/: refused, nothing written. The README's way (the
    hook manager's hooks call `fleetgit-hook NAME`) guards and stamps commits."""
    husky = reserved / ".husky"
    husky.mkdir()
    (husky / "pre-commit").write_text("echo husky ran >&2\n")
    git(reserved, "add", ".husky")
    git(reserved, "commit", "-q", "-m", "husky")
    git(reserved, "config", "core.hooksPath", ".husky")
    before = sorted(p.name for p in husky.iterdir())
    res = cli(reserved, "hooks", "install")
    assert res.code == 1 and "core.hooksPath is .husky" in res.err
    assert "git tracks files in it" in res.err and "interpreter" in res.err
    assert 'hint: let each hook in .husky call fleetgit with a line `fleetgit-hook NAME "$@"`' in (
        res.err.replace("\n", " ")
    )
    assert sorted(p.name for p in husky.iterdir()) == before  # nothing written
    for name in ("pre-commit", "prepare-commit-msg", "pre-push"):  # as the README says
        with (husky / name).open("a") as fh:
            fh.write(f'fleetgit-hook {name} "$@"\n')
        (husky / name).chmod(0o755)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "FLEET_CALLSIGN": "goose"}
    stage(reserved, "src/app.py", "goose\n")
    run = subprocess.run(
        ["git", "commit", "-qm", "goose"], cwd=reserved, env=env, capture_output=True, text=True
    )
    assert run.returncode == 1 and "husky ran" in run.stderr and "viper-1" in run.stderr
    git(reserved, "reset", "-q", "src/app.py")
    stage(reserved, "docs/free.md")
    run = subprocess.run(
        ["git", "commit", "-qm", "goose"], cwd=reserved, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "Fleet-Pilot: goose" in git(reserved, "log", "-1", "--format=%B")


def test_a_hooks_dir_in_the_work_tree_installs_only_when_git_ignores_it(repo: Path) -> None:
    hooks = repo / "githooks"
    hooks.mkdir()
    git(repo, "config", "core.hooksPath", "githooks")
    with pytest.raises(ConflictError, match="would commit it \\(it is not ignored\\)"):
        install(locate(repo))
    assert list(hooks.iterdir()) == []
    (repo / ".gitignore").write_text("githooks/\n")
    install(locate(repo))
    assert state_of(repo).state == "installed"
