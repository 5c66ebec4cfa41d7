"""How many git processes a reservation runs (issue 15: `reserve` spent 15 ms in three), and that
the answers it no longer asks git for are still right. The git on PATH is a wrapper that logs
each call and runs the real git."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetgit.domain.reservations import commands as rsv
from fleetgit.fleet import Fleet
from tests.conftest import git
from tests.test_reservation_paths import tracked


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that appends its arguments to the returned file, then runs git."""
    real = next(
        Path(d) / "git"
        for d in os.environ["PATH"].split(os.pathsep)
        if (Path(d) / "git").is_file() and os.access(Path(d) / "git", os.X_OK)
    )
    bin_dir = tmp_path / "logged-bin"
    bin_dir.mkdir()
    log = tmp_path / "git-calls.log"
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def ls_files_calls(log: Path) -> list[str]:
    """The reservation's own questions (the append asks which segments git tracks, once per
    change of git's index: not counted here)."""
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [c for c in calls if " ls-files " in c and ("--stage" in c or "--others" in c)]


def test_reserving_a_file_in_the_work_tree_runs_no_git(repo: Path, git_log: Path) -> None:
    tracked(repo, "src/app.py")
    (repo / "notes.txt").write_text("untracked\n")
    with Fleet.open(repo, actor="viper") as fleet:
        ls_files_calls(git_log)
        granted = fleet.reserve(["src/app.py", "notes.txt"])
        assert rsv.unmatched(fleet, [r.pattern for r in granted]) == []
        assert ls_files_calls(git_log) == []
        assert rsv.file_patterns(fleet, ["src/app.py", "notes.txt"]) == {"src/app.py", "notes.txt"}


def test_a_path_not_in_the_work_tree_asks_git_once_per_index_change(
    repo: Path, git_log: Path
) -> None:
    tracked(repo, "src/app.py")
    with Fleet.open(repo, actor="viper") as fleet:
        ls_files_calls(git_log)
        fleet.reserve(["src/new.py"])
        assert rsv.unmatched(fleet, ["src/new.py"]) == ["src/new.py"]
        # the tracked list once (kept while git's index file is the same); the untracked
        # listing of an absent literal path is empty (git lists nothing for it): not asked
        assert len(ls_files_calls(git_log)) == 1
        fleet.reserve(["src/new.py"])
        assert rsv.unmatched(fleet, ["src/new.py"]) == ["src/new.py"]
        assert [c for c in ls_files_calls(git_log) if "--stage" in c] == []
        # git's index changes: the file is tracked (and then gone from the work tree)
        tracked(repo, "src/new.py")
        (repo / "src" / "new.py").unlink()
        assert rsv.file_patterns(fleet, ["src/new.py"]) == {"src/new.py"}
        assert rsv.unmatched(fleet, ["src/new.py"]) == []


def test_what_git_does_not_list_is_still_asked(repo: Path, git_log: Path) -> None:
    """A path inside a repository of its own, or under .git, is not taken from lstat alone."""
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "x.py").write_text("x\n")
    with Fleet.open(repo, actor="viper") as fleet:
        view = rsv.RepoView(fleet, ["vendor/lib/x.py", ".git/config"])
        assert not view.in_worktree("vendor/lib/x.py")
        assert not view.in_worktree(".git/config")
        # git's answer, as before: it lists nothing inside another repository
        assert view.matches_nothing("vendor/lib/x.py")


CASES = [
    ["src/new/module.py"],  # absent, in an untracked directory
    ["lib/x.py"],  # absent, and its directory too
    ["t/zzz.py"],  # absent, in a tracked directory
    ["top.py/x"],  # below a file
    ["src/new", "src/new/module.py"],  # another pattern names an untracked directory above
    ["src/*.py", "src/new/module.py"],  # not all literal: the listing covers more
    ["src/new/other.py", "lib/x.py", "top.py"],
]


@pytest.mark.parametrize("wanted", CASES)
def test_what_is_not_asked_is_what_git_would_answer(repo: Path, wanted: list[str]) -> None:
    tracked(repo, "top.py", "t/a.py")
    (repo / "src" / "new").mkdir(parents=True)
    (repo / "src" / "new" / "other.py").write_text("untracked\n")
    (repo / "t" / "u.py").write_text("untracked\n")
    with Fleet.open(repo, actor="viper") as fleet:
        fast = rsv.RepoView(fleet, wanted)
        asked = rsv.RepoView(fleet, wanted)
        asked.literal = False  # no shortcut: git's listings decide, as before
        assert [fast.matches_nothing(p) for p in wanted] == [
            asked.matches_nothing(p) for p in wanted
        ]
