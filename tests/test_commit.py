"""`fleetgit commit`: only .fleet/ and the fleet line, the index left alone, git identity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleetgit.fleet import MAX_ATTRIBUTES_BYTES, Fleet, init
from tests.conftest import git, make_repo, run_fleetgit

FLEET_LINE = ".fleet/events/** -text merge=union"


def repo_with_attributes(tmp_path: Path) -> Path:
    """A repository whose committed .gitattributes lacks the fleet line."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitattributes").write_text("*.png binary\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def emit_one(repo: Path) -> None:
    with Fleet.open(repo, actor="viper-1", register=True) as fleet:  # registers it if need be
        fleet.emit("context_compacted", "pilot/viper-1", {"summary": "busy"})


def test_init_says_updated_for_an_existing_gitattributes(tmp_path: Path, cli: Any) -> None:
    repo = repo_with_attributes(tmp_path)
    res = cli(repo, "init")
    assert "updated .gitattributes" in res.out and "created .gitattributes" not in res.out
    again = make_repo(tmp_path / "fresh")
    assert ".gitattributes" in cli(again, "init", "--json").json()["created"]


def test_a_staged_gitattributes_change_survives_the_first_fleet_commit(
    tmp_path: Path, cli: Any
) -> None:
    repo = repo_with_attributes(tmp_path)
    init(repo)
    with (repo / ".gitattributes").open("a") as fh:
        fh.write("*.jpg binary\n")
    git(repo, "add", ".gitattributes")
    staged = git(repo, "rev-parse", ":.gitattributes")
    emit_one(repo)
    res = cli(repo, "commit", "--json")
    assert res.code == 0, res.err
    assert ".gitattributes" in res.json()["paths"]
    # the commit holds HEAD's .gitattributes plus the fleet line, and nothing of the user's
    assert git(repo, "show", "HEAD:.gitattributes") == f"*.png binary\n{FLEET_LINE}\n"
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert all(f.startswith(".fleet/") or f == ".gitattributes" for f in files)
    # the user's staged entry is exactly as it was, and still a staged change
    assert git(repo, "rev-parse", ":.gitattributes") == staged
    assert "+*.jpg binary" in git(repo, "diff", "--cached")
    assert git(repo, "status", "--porcelain") == "M  .gitattributes\n"


def test_an_unstaged_gitattributes_follows_the_commit(tmp_path: Path, cli: Any) -> None:
    repo = repo_with_attributes(tmp_path)
    init(repo)  # adds the fleet line to the work tree, stages nothing
    emit_one(repo)
    assert cli(repo, "commit").code == 0
    assert git(repo, "status", "--porcelain") == ""


def test_commit_honours_git_identity_variables(repo: Path) -> None:
    emit_one(repo)
    env = {
        "GIT_AUTHOR_NAME": "Ada Author",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_AUTHOR_DATE": "2020-01-02T03:04:05+0130",
        "GIT_COMMITTER_NAME": "Cy Committer",
        "GIT_COMMITTER_EMAIL": "cy@example.com",
    }
    res = run_fleetgit(repo, "commit", env=env)
    assert res.code == 0, res.err
    shown = git(repo, "log", "-1", "--format=%an|%ae|%ad|%cn|%ce", "--date=iso-strict")
    assert shown.split("|") == [
        "Ada Author",
        "ada@example.com",
        "2020-01-02T03:04:05+01:30",
        "Cy Committer",
        "cy@example.com\n",
    ]


def test_commit_without_an_identity_is_refused_and_writes_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emit_one(repo)
    git(repo, "config", "user.useConfigOnly", "true")  # no guessing from the host name
    for role in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{part}")
    monkeypatch.delenv("EMAIL", raising=False)
    head = git(repo, "rev-parse", "HEAD")
    res = run_fleetgit(repo, "commit")
    assert res.code == 1
    assert "git does not know who you are" in res.err and "hint: git config user.name" in res.err
    assert "Traceback" not in res.err
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_locked_git_index_undoes_the_commit(repo: Path) -> None:
    emit_one(repo)
    head = git(repo, "rev-parse", "HEAD")
    status = git(repo, "status", "--porcelain")
    lock = repo / ".git/index.lock"
    lock.write_text("")
    try:
        res = run_fleetgit(repo, "commit")
    finally:
        os.unlink(lock)
    assert res.code == 1 and "commit was undone" in res.err and "index.lock" in res.err
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == status
    assert run_fleetgit(repo, "commit").code == 0
    assert git(repo, "status", "--porcelain") == ""


def _commit_hostile_attributes(repo: Path, kind: str) -> None:
    """Commit, as another clone could, a `.gitattributes` that is no small regular file."""
    attrs = repo / ".gitattributes"
    attrs.unlink(missing_ok=True)
    if kind == "link":
        attrs.symlink_to("/etc/passwd")
    elif kind == "submodule":  # a gitlink: git needs no such commit here
        head = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},.gitattributes")
        git(repo, "commit", "-q", "-m", "a submodule as .gitattributes")
        return
    elif kind == "directory":
        (attrs / "inner").mkdir(parents=True)
        (attrs / "inner" / "x").write_text("x\n")
    else:
        attrs.write_bytes(b"# pad\n" * ((MAX_ATTRIBUTES_BYTES // 6) + 1))
    git(repo, "add", "-A", ".gitattributes")
    git(repo, "commit", "-q", "-m", f"a {kind} as .gitattributes")


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("link", "a symbolic link"),
        ("directory", "a directory"),
        ("submodule", "a submodule"),
        ("huge", f"over the limit of {MAX_ATTRIBUTES_BYTES}"),
    ],
)
def test_a_hostile_committed_gitattributes_is_left_alone_in_one_line(
    repo: Path, kind: str, said: str
) -> None:
    _commit_hostile_attributes(repo, kind)
    before = git(repo, "rev-parse", "HEAD:.gitattributes")
    emit_one(repo)
    res = run_fleetgit(repo, "commit", "--json")
    assert res.code == 0, res.err
    assert "Traceback" not in res.err
    (line,) = res.err.splitlines()
    assert line.startswith("warning: .gitattributes in HEAD is ") and said in line
    assert ".gitattributes" not in res.json()["paths"]  # type: ignore[index]
    assert git(repo, "rev-parse", "HEAD:.gitattributes") == before  # untouched
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files and all(f.startswith(".fleet/") for f in files)
