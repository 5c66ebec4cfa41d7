"""pre-push judges each commit by the pilot that made it, against what was held when it was made.

Real `git commit`, `cherry-pick`, `revert`, `am` and `push` firing the installed hooks, against a
bare remote.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from fleetgit.guard.rules import Commit, Reservation, judge
from tests.conftest import git, make_repo
from tests.test_hook_sources import two_clones, viper_reserves_and_pushes  # noqa: F401
from tests.test_hooks import as_pilot


def write(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)


def register(repo: Path, *names: str, email: str | None = None) -> None:
    with Fleet.open(repo) as fleet:
        for name in names:
            pilots.register(fleet, name, email=email)


def reserve(repo: Path, who: str, *patterns: str) -> None:
    with Fleet.open(repo, actor=who) as fleet:
        fleet.reserve(list(patterns))


def bare(tmp_path: Path, name: str = "remote.git") -> Path:
    path = tmp_path / name
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


def message(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "log", "-1", "--format=%B", rev)


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    """A repository with hooks whose history (committed an hour ago, before any reservation)
    touches src/app.py; viper-1 and goose registered, viper-1 holding src/app.py now."""
    repo = make_repo(tmp_path / "repo")
    from fleetgit.fleet import init

    init(repo)
    hour_ago = f"@{int(subprocess.check_output(['date', '+%s'])) - 3600} +0000"
    old = {"GIT_COMMITTER_DATE": hour_ago, "GIT_AUTHOR_DATE": hour_ago}
    # the whole history is from an hour ago: a commit is judged no earlier than its parents
    amend = ["git", "commit", "--amend", "-q", "--no-edit"]
    subprocess.run(amend, cwd=repo, env={**os.environ, **old}, check=True)
    for text in ("v1\n", "v2\n"):
        write(repo, "src/app.py", text)
        subprocess.run(
            ["git", "commit", "-q", "-m", f"app {text.strip()}"],
            cwd=repo,
            env={**os.environ, **old},
            check=True,
        )
    install(locate(repo))
    register(repo, "viper-1", "goose")
    reserve(repo, "viper-1", "src/app.py")
    return repo


def test_the_first_push_to_an_empty_remote_judges_commits_by_their_time(
    fleet_repo: Path, tmp_path: Path
) -> None:
    """History from before any reservation existed is not refused (it was: the pusher was
    blamed for every new commit against what is reserved now)."""
    remote = bare(tmp_path)
    git(fleet_repo, "remote", "add", "origin", str(remote))
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 0, res.stderr
    write(fleet_repo, "src/app.py", "goose, unchecked\n")
    assert as_pilot(fleet_repo, "goose", "commit", "-qm", "sneak", "--no-verify").returncode == 0
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 1 and "push refused: 1 path(s)" in res.stderr
    assert "not goose, who made commit" in res.stderr and "Fleet-Pilot trailer" in res.stderr


def test_a_push_carrying_the_holders_own_commit_is_not_refused(
    fleet_repo: Path, tmp_path: Path
) -> None:
    remote = bare(tmp_path)
    git(fleet_repo, "remote", "add", "origin", str(remote))
    git(fleet_repo, "checkout", "-q", "-b", "viper")
    write(fleet_repo, "src/app.py", "viper-1's own change\n")
    assert as_pilot(fleet_repo, "viper-1", "commit", "-qm", "viper: app").returncode == 0
    assert message(fleet_repo).rstrip().endswith("Fleet-Pilot: viper-1")
    git(fleet_repo, "checkout", "-q", "main")
    assert as_pilot(fleet_repo, "goose", "merge", "-q", "--ff-only", "viper").returncode == 0
    write(fleet_repo, "docs/goose.md", "goose's\n")
    assert as_pilot(fleet_repo, "goose", "commit", "-qm", "goose: docs").returncode == 0
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 0, res.stderr


def test_a_commit_without_a_trailer_is_its_registered_committers(
    fleet_repo: Path, tmp_path: Path, cli: Any
) -> None:
    remote = bare(tmp_path)
    git(fleet_repo, "remote", "add", "origin", str(remote))
    git(fleet_repo, "push", "-q", "--no-verify", "origin", "main")
    write(fleet_repo, "src/app.py", "made without the hooks\n")
    viper_identity = {"GIT_COMMITTER_EMAIL": "Viper@Example.com"}
    res = as_pilot(
        fleet_repo, "viper-1", "-c", "core.hooksPath=/dev/null", "commit", "-qm", "v",
        env=viper_identity,
    )  # fmt: skip
    assert res.returncode == 0 and "Fleet-Pilot" not in message(fleet_repo)
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 1 and "you push it" in res.stderr  # no pilot known: the pusher
    res = cli(fleet_repo, "pilot", "register", "viper-1", "--email", "viper@example.com")
    assert res.code == 0
    listed = cli(fleet_repo, "pilot", "list")
    assert "viper@example.com" in listed.out and "EMAIL" in listed.out
    assert cli(fleet_repo, "pilot", "list", "--json").items()[1]["email"] == "viper@example.com"
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 0, res.stderr
    bad = cli(fleet_repo, "pilot", "register", "goose", "--email", "goose at home")
    assert bad.code == 1 and "not an email address" in bad.err and "hint:" in bad.err


def test_an_email_two_pilots_share_names_neither(fleet_repo: Path, tmp_path: Path) -> None:
    register(fleet_repo, "viper-1", "goose", email="shared@example.com")
    git(fleet_repo, "remote", "add", "origin", str(bare(tmp_path)))
    git(fleet_repo, "push", "-q", "--no-verify", "origin", "main")
    write(fleet_repo, "src/app.py", "who?\n")
    identity = {"GIT_COMMITTER_EMAIL": "shared@example.com"}
    git_args = ("-c", "core.hooksPath=/dev/null", "commit", "-qm", "anon")
    assert as_pilot(fleet_repo, None, *git_args, env=identity).returncode == 0
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 1 and "you push it" in res.stderr


def test_a_commit_found_clean_is_not_judged_again(fleet_repo: Path, tmp_path: Path) -> None:
    """Pushed to a URL (no remote-tracking ref remembers it): the second push of it, by another
    pilot, to another remote, does not judge it again."""
    write(fleet_repo, "src/app.py", "no pilot in it\n")
    git_args = ("-c", "core.hooksPath=/dev/null", "commit", "-qm", "x")
    assert as_pilot(fleet_repo, None, *git_args).returncode == 0
    first, second = bare(tmp_path, "a.git"), bare(tmp_path, "b.git")
    res = as_pilot(fleet_repo, "viper-1", "push", str(first), "main")  # judged as viper-1
    assert res.returncode == 0, res.stderr
    oid = git(fleet_repo, "rev-parse", "HEAD").strip()
    assert oid in (fleet_repo / ".git/fleet/pushed-checked").read_text().split()
    res = as_pilot(fleet_repo, "goose", "push", str(second), "main")
    assert res.returncode == 0, res.stderr


@pytest.fixture
def vipers_commit(fleet_repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """viper-1's own commit of src/app.py on branch `viper` (allowed: it holds the file), and a
    remote holding main."""
    git(fleet_repo, "remote", "add", "origin", str(bare(tmp_path)))
    git(fleet_repo, "push", "-q", "--no-verify", "origin", "main")
    git(fleet_repo, "checkout", "-q", "-b", "viper")
    write(fleet_repo, "src/app.py", "viper-1's\n")
    assert as_pilot(fleet_repo, "viper-1", "commit", "-qm", "viper: app").returncode == 0
    oid = git(fleet_repo, "rev-parse", "HEAD").strip()
    git(fleet_repo, "checkout", "-q", "main")
    return fleet_repo, oid


@pytest.mark.parametrize("how", ["cherry-pick", "revert", "am"])
def test_cherry_pick_revert_and_am_are_caught_by_pre_push(
    vipers_commit: tuple[Path, str], how: str, tmp_path: Path
) -> None:
    """None of these runs pre-commit (am runs pre-applypatch, which checks like pre-commit).
    The commit they make is stamped with the pilot making it (prepare-commit-msg,
    applypatch-msg: the trailer of viper-1's commit is replaced), so pre-push refuses it,
    whoever pushes it."""
    repo, oid = vipers_commit
    if how == "revert":
        git(repo, "merge", "-q", "--ff-only", "viper")  # on main, viper-1's change to revert
        git(repo, "push", "-q", "--no-verify", "origin", "main")
        res = as_pilot(repo, "goose", "revert", "--no-edit", oid)
    elif how == "cherry-pick":
        res = as_pilot(repo, "goose", "cherry-pick", oid)
    else:
        patch = tmp_path / "viper.patch"
        patch.write_text(git(repo, "format-patch", "-1", "--stdout", oid))
        assert "Fleet-Pilot: viper-1" in patch.read_text()
        res = as_pilot(repo, "goose", "am", "-q", str(patch))  # pre-applypatch checks it
        assert res.returncode != 0 and "am refused: 1 path(s)" in res.stderr, res.stderr
        assert "FLEET_HOOK_MODE=warn git am --continue (or git am --abort)" in res.stderr
        warn = {"FLEET_HOOK_MODE": "warn"}
        res = as_pilot(repo, "goose", "am", "-q", "--continue", env=warn)
    assert res.returncode == 0, res.stderr  # made: no pre-commit ran
    assert message(repo).rstrip().endswith("Fleet-Pilot: goose")
    assert "viper-1" not in message(repo).split("Fleet-Pilot:")[-1]
    for pusher in ("goose", "viper-1"):
        res = as_pilot(repo, pusher, "push", "origin", "main")
        assert res.returncode == 1, res.stderr
        assert "push refused: 1 path(s) reserved by other pilots, not goose" in res.stderr
        assert "src/app.py  <- viper-1 holds 'src/app.py'" in res.stderr


def test_a_rebase_keeps_the_pilot_its_commits_name(vipers_commit: tuple[Path, str]) -> None:
    repo, _ = vipers_commit
    write(repo, "docs/main.md", "moves main on\n")
    assert as_pilot(repo, "goose", "commit", "-qm", "goose: docs").returncode == 0
    git(repo, "checkout", "-q", "viper")
    assert as_pilot(repo, "goose", "rebase", "-q", "main").returncode == 0
    assert message(repo).rstrip().endswith("Fleet-Pilot: viper-1")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "viper")
    res = as_pilot(repo, "goose", "push", "origin", "main")
    assert res.returncode == 0, res.stderr


def test_without_an_identity_a_carried_trailer_is_removed(vipers_commit: tuple[Path, str]) -> None:
    repo, oid = vipers_commit
    assert as_pilot(repo, None, "cherry-pick", oid).returncode == 0
    assert "Fleet-Pilot" not in message(repo)
    res = as_pilot(repo, "viper-1", "push", "origin", "main")
    assert res.returncode == 0, res.stderr  # no pilot recorded: judged as its pusher


# -- the rule itself, pure ------------------------------------------------------------------


def _res(
    rid: str, holder: str, granted_ms: int, expires_ms: int, released_ms: int | None = None
) -> Reservation:
    return Reservation(
        rid,
        holder,
        "src/app.py",
        True,
        None,
        (granted_ms << 16, "w", 1),
        expires_ms,
        released_ms is not None,
        released_ms=released_ms,
    )


def test_judge_uses_what_was_held_during_the_commits_second() -> None:
    held = [_res("res-a", "viper-1", 9_500, 20_000, released_ms=15_000)]
    verdict = {
        at: bool(judge([Commit("c", at, "goose", ["src/app.py"])], held, False))
        for at in (8_000, 9_000, 10_000, 14_000, 15_000, 20_000)
    }
    # granted at 9.5 s: the second from 9.0 s overlaps it; released at 15.0 s: gone from then
    assert verdict == {
        8_000: False, 9_000: True, 10_000: True, 14_000: True, 15_000: False, 20_000: False
    }  # fmt: skip
    assert not judge([Commit("c", 12_000, "viper-1", ["src/app.py"])], held, False)
    assert judge([Commit("c", 12_000, None, ["src/app.py"])], held, False)


def test_the_trailer_after_an_editor_and_an_empty_message_still_aborting(
    fleet_repo: Path, tmp_path: Path
) -> None:
    """With an editor, prepare-commit-msg sees no text yet and leaves the message alone (a
    trailer alone would make an empty message non-empty, and git would commit it); commit-msg
    writes the trailer once there is text."""
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "written in the editor\\n" > "$1"\n')
    editor.chmod(0o755)
    write(fleet_repo, "docs/a.md", "a\n")
    res = as_pilot(fleet_repo, "goose", "commit", "-q", env={"GIT_EDITOR": str(editor)})
    assert res.returncode == 0, res.stderr
    assert message(fleet_repo).rstrip() == "written in the editor\n\nFleet-Pilot: goose"
    head = git(fleet_repo, "rev-parse", "HEAD")
    write(fleet_repo, "docs/b.md", "b\n")
    for how in ({"GIT_EDITOR": "true"}, {}):  # the template left as it is; -m ""
        args = ("commit", "-q") if how else ("commit", "-q", "-m", "")
        res = as_pilot(fleet_repo, "goose", *args, env=how)
        assert res.returncode == 1 and "empty commit message" in res.stderr
    assert git(fleet_repo, "rev-parse", "HEAD") == head


_moments = st.integers(min_value=0, max_value=6_000)


@settings(max_examples=200, deadline=None)
@given(
    grants=st.lists(
        st.tuples(_moments, _moments, st.one_of(st.none(), _moments), st.sampled_from("vg")),
        max_size=4,
    ),
    second=st.integers(min_value=0, max_value=5),
)
def test_judge_agrees_with_a_reading_of_the_rule_at_every_millisecond(
    grants: list[tuple[int, int, int | None, str]], second: int
) -> None:
    """Refused exactly when, at some millisecond of the commit's second, another pilot's
    reservation was granted, not yet expired and not yet released."""
    who = {"v": "viper-1", "g": "goose"}
    held = [
        _res(f"res-{i}", who[h], granted, granted + ttl, released)
        for i, (granted, ttl, released, h) in enumerate(grants)
    ]
    start = second * 1000
    expected = any(
        r.holder != "goose"
        and r.granted[0] >> 16 <= ms < r.expires_ms
        and (r.released_ms is None or ms < r.released_ms)
        for r in held
        for ms in range(start, start + 1000)
    )
    refused = judge([Commit("c", start, "goose", ["src/app.py"])], held, False)
    assert bool(refused) == expected


def test_a_push_of_many_refused_commits_reports_ten_in_full(
    fleet_repo: Path, tmp_path: Path
) -> None:
    git(fleet_repo, "remote", "add", "origin", str(bare(tmp_path)))
    git(fleet_repo, "push", "-q", "--no-verify", "origin", "main")
    for i in range(12):
        write(fleet_repo, "src/app.py", f"goose {i}\n")
        assert (
            as_pilot(fleet_repo, "goose", "commit", "-qm", f"g{i}", "--no-verify").returncode == 0
        )
    res = as_pilot(fleet_repo, "goose", "push", "origin", "main")
    assert res.returncode == 1 and res.stderr.count("who made commit") == 10
    assert "... and 2 more commit(s) like these" in res.stderr


def test_a_holders_commit_pulled_from_its_clone_is_pushed_by_another(
    two_clones: tuple[Path, Path],  # noqa: F811
) -> None:
    """Across clones: viper-1 commits the file it holds in its own clone (the trailer records
    it); goose pulls that straight from viper's clone and pushes it to origin, where it is new.
    It is viper-1's commit, allowed; goose's own commit of the file is refused."""
    viper, goose = two_clones
    viper_reserves_and_pushes(viper)
    install(locate(viper))
    git(viper, "checkout", "-q", "-b", "work")
    write(viper, "src/app.py", "viper-1's own\n")
    assert as_pilot(viper, "viper-1", "commit", "-qm", "viper: app").returncode == 0
    git(goose, "pull", "-q", "--no-rebase", "origin", "main")
    assert as_pilot(goose, "goose", "pull", "-q", "--no-rebase", str(viper), "work").returncode == 0
    res = as_pilot(goose, "goose", "push", "origin", "main")
    assert res.returncode == 0, res.stderr
    write(goose, "src/app.py", "goose's\n")
    assert as_pilot(goose, "goose", "commit", "-qm", "goose: app", "--no-verify").returncode == 0
    res = as_pilot(goose, "goose", "push", "origin", "main")
    assert res.returncode == 1 and "not goose, who made commit" in res.stderr
