"""The hooks, fired by real `git commit` and `git push` in temporary repositories."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.guard.install import install, status, uninstall
from fleetgit.ledger.errors import ConflictError
from tests.conftest import git, make_repo


def as_pilot(
    repo: Path, who: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A git command as pilot `who` (None: no identity), its hooks firing."""
    full = {**os.environ, **(env or {})}
    full.pop("FLEET_CALLSIGN", None)
    if who:
        full["FLEET_CALLSIGN"] = who
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=full, check=False
    )


def commit(
    repo: Path, who: str | None, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return as_pilot(repo, who, "commit", "-q", "-m", "change", *extra, env=env)


def run_git(repo: Path, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A git command as pilot `who`, its hooks firing; returns instead of raising."""
    env = {**os.environ, "FLEET_CALLSIGN": who}
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )


def stage(repo: Path, path: str, text: str = "x\n") -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)


@pytest.fixture
def hooked(repo: Path) -> Path:
    stage(repo, "src/app.py")
    stage(repo, "src/old.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        pilots.register(fleet, "viper-1")  # pilots register before they act
        fleet.reserve(["src/app.py", "src/old.py"])
    return repo


def test_blocked_with_path_pattern_holder_and_ways_out(hooked: Path) -> None:
    stage(hooked, "src/app.py", "goose was here\n")
    res = commit(hooked, "goose")
    assert res.returncode == 1
    assert "src/app.py" in res.stderr and "viper-1" in res.stderr and "left" in res.stderr
    assert "--no-verify" in res.stderr and "FLEET_HOOK_MODE=warn" in res.stderr
    assert git(hooked, "log", "-1", "--format=%s") == "files\n"


def test_own_reservation_allows(hooked: Path) -> None:
    stage(hooked, "src/app.py", "mine\n")
    assert commit(hooked, "viper-1").returncode == 0


def test_no_identity_is_blocked_by_every_exclusive(hooked: Path) -> None:
    stage(hooked, "src/app.py", "who?\n")
    res = commit(hooked, None)
    assert res.returncode == 1 and "no identity" in res.stderr


def test_identity_from_git_config(hooked: Path) -> None:
    git(hooked, "config", "fleet.callsign", "viper-1")
    stage(hooked, "src/app.py", "mine via config\n")
    assert commit(hooked, None).returncode == 0


def test_unreserved_paths_pass(hooked: Path) -> None:
    stage(hooked, "docs/readme.md")
    assert commit(hooked, "goose").returncode == 0


def test_shared_does_not_block(repo: Path) -> None:
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["docs/"], shared=True)
    stage(repo, "docs/a.md")
    assert commit(repo, "goose").returncode == 0


def test_expired_does_not_block(repo: Path) -> None:
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["a.txt"], ttl="1s")
    time.sleep(1.2)
    stage(repo, "a.txt")
    assert commit(repo, "goose").returncode == 0


def test_released_does_not_block(hooked: Path) -> None:
    with Fleet.open(hooked, actor="viper-1") as fleet:
        fleet.release(everything=True)
    stage(hooked, "src/app.py", "free now\n")
    assert commit(hooked, "goose").returncode == 0


def test_rename_source_is_blocked(hooked: Path) -> None:
    (hooked / "lib").mkdir()
    git(hooked, "mv", "src/old.py", "lib/new.py")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "src/old.py" in res.stderr


def test_deletion_is_blocked(hooked: Path) -> None:
    git(hooked, "rm", "-q", "src/old.py")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "src/old.py" in res.stderr


def test_warn_mode_reports_and_passes(hooked: Path) -> None:
    stage(hooked, "src/app.py", "warned\n")
    res = commit(hooked, "goose", env={"FLEET_HOOK_MODE": "WARN"})  # any case
    assert res.returncode == 0 and "src/app.py" in res.stderr
    assert "refused" not in res.stderr and "warning" in res.stderr
    assert "the commit goes ahead: warn mode (FLEET_HOOK_MODE=WARN)" in res.stderr


def test_warn_mode_from_config(hooked: Path, cli: Any) -> None:
    cfg = hooked / ".fleet/config.toml"
    cfg.write_text(cfg.read_text().replace('hook_mode = "enforce"', 'hook_mode = "Warn"'))
    assert cli(hooked, "reservations").code == 0  # the commands read it the same way
    stage(hooked, "src/app.py", "warned\n")
    res = commit(hooked, "goose")
    assert res.returncode == 0 and "refused" not in res.stderr
    assert 'warn mode (hook_mode = "warn" in .fleet/config.toml)' in res.stderr
    assert "FLEET_HOOK_MODE=" not in res.stderr.split("goes ahead")[1]


def test_a_config_that_is_not_utf8_fails_closed_without_a_traceback(hooked: Path, cli: Any) -> None:
    cfg = hooked / ".fleet/config.toml"
    cfg.write_bytes(cfg.read_bytes() + b"# caf\xe9\n")
    stage(hooked, "docs/free.md")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "config.toml: not UTF-8 text" in res.stderr and "--no-verify" in res.stderr
    listed = cli(hooked, "reservations")
    assert (
        listed.code == 1 and "not UTF-8 text" in listed.err and "hint: save the file" in listed.err
    )


@pytest.mark.parametrize("value", ["loud", "warning", "off"])
def test_an_unknown_hook_mode_fails_closed(hooked: Path, value: str) -> None:
    stage(hooked, "docs/free.md")  # nothing reserved: refused for the setting alone
    res = commit(hooked, "goose", env={"FLEET_HOOK_MODE": value})
    assert res.returncode == 1
    assert f"FLEET_HOOK_MODE={value} is not a hook mode: expected enforce or warn" in res.stderr
    cfg = hooked / ".fleet/config.toml"
    cfg.write_text(cfg.read_text().replace('hook_mode = "enforce"', f'hook_mode = "{value}"'))
    res = commit(hooked, "goose")
    assert (
        res.returncode == 1 and f"hook_mode: expected enforce or warn, got '{value}'" in res.stderr
    )


def test_no_verify_bypasses(hooked: Path) -> None:
    stage(hooked, "src/app.py", "bypass\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0


def test_more_than_twenty_paths_are_counted(repo: Path) -> None:
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["gen/", "gen/*.txt"])  # two reservations cover each path
    for i in range(25):
        stage(repo, f"gen/f{i:02d}.txt")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "25 path(s) reserved" in res.stderr
    assert "... and 5 more path(s)" in res.stderr
    listed = [ln for ln in res.stderr.splitlines() if ln.startswith("  gen/")]
    assert len(listed) == 20 and all(ln.count("viper-1 holds") == 2 for ln in listed)


def test_one_path_under_three_reservations_is_one_line(hooked: Path) -> None:
    with Fleet.open(hooked, actor="viper-1") as fleet:
        fleet.reserve(["src/", "src/*.py"])  # with src/app.py: three cover it
    stage(hooked, "src/app.py", "goose\n")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "1 path(s) reserved" in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if "src/app.py  <-" in ln]
    assert line.count("viper-1 holds") == 3


def test_fails_closed_on_a_corrupt_index(hooked: Path) -> None:
    index = hooked / ".git/fleet/index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    stage(hooked, "README.md", "anything\n")
    res = commit(hooked, "viper-1")
    assert res.returncode == 1
    assert "check failed" in res.stderr and "--no-verify" in res.stderr


def test_non_fleet_repository_passes_silently(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "plain")
    fleet_repo = make_repo(tmp_path / "fleet")
    # the hooks dir is shared through core.hooksPath: installed from one, fired in both
    hooks = tmp_path / "shared-hooks"
    for r in (repo, fleet_repo):
        git(r, "config", "core.hooksPath", str(hooks))
    from fleetgit.fleet import init

    init(fleet_repo)
    install(locate(fleet_repo))
    assert (hooks / "pre-commit").exists()
    stage(repo, "x.txt")
    res = commit(repo, None)
    assert res.returncode == 0 and res.stderr == ""


def test_chained_hook_still_runs_and_can_fail(repo: Path) -> None:
    hook = repo / ".git/hooks/pre-commit"
    original = (
        '#!/bin/sh\necho chained-ran >> "$(git rev-parse --git-dir)/chained.log"\n'
        'test ! -e "$(git rev-parse --show-toplevel)/BLOCK"\n'
    )
    hook.write_text(original)
    hook.chmod(0o755)
    install(locate(repo))
    install(locate(repo))  # twice changes nothing
    assert (repo / ".git/hooks/fleetgit-chained/pre-commit").read_text() == original
    stage(repo, "a.txt")
    assert commit(repo, "goose").returncode == 0
    assert (repo / ".git/chained.log").read_text() == "chained-ran\n"
    (repo / "BLOCK").write_text("")
    stage(repo, "b.txt")
    assert commit(repo, "goose").returncode != 0  # its failure still fails the commit
    uninstall(locate(repo))
    assert hook.read_text() == original and os.access(hook, os.X_OK)
    assert not (repo / ".git/hooks/fleetgit-chained").exists()
    assert all(s.state != "installed" for s in status(locate(repo)))


def test_install_is_idempotent_and_uninstall_is_clean(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    install(locate(repo))
    first = {p.name: p.read_bytes() for p in hooks.iterdir()}
    install(locate(repo))
    assert {p.name: p.read_bytes() for p in hooks.iterdir()} == first
    uninstall(locate(repo))
    assert not any(p.exists() for p in (hooks / "pre-commit", hooks / "post-merge"))


def test_a_foreign_hook_with_a_kept_one_needs_force(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    install(locate(repo))
    (hooks / "pre-commit").write_text("#!/bin/sh\necho replaced\n")
    with pytest.raises(ConflictError, match="already kept") as refused:
        install(locate(repo))
    assert "fleetgit hooks install --force" in (refused.value.hint or "")
    install(locate(repo), force=True)
    assert (hooks / "fleetgit-chained/pre-commit").read_text() == "#!/bin/sh\necho replaced\n"


def test_two_worktrees_block_each_other_at_once(hooked: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(hooked, "worktree", "add", "-q", "-b", "side", str(wt))
    with Fleet.open(wt, actor="goose") as fleet:
        fleet.reserve(["lib/"])
    stage(hooked, "lib/x.py")
    res = commit(hooked, "viper-1")  # no git operation in between
    assert res.returncode == 1 and "goose" in res.stderr
    stage(wt, "src/app.py", "from the worktree\n")
    assert commit(wt, "goose").returncode == 1


def test_pre_push_checks_the_pushed_commits(hooked: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(hooked, "remote", "add", "origin", str(remote))
    git(hooked, "push", "-q", "--no-verify", "origin", "main")
    stage(hooked, "src/app.py", "sneaked in\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0
    env = {**os.environ, "FLEET_CALLSIGN": "goose"}
    res = subprocess.run(
        ["git", "push", "origin", "main"],
        cwd=hooked,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode != 0 and "push refused" in res.stderr and "src/app.py" in res.stderr
    assert "git push --no-verify" in res.stderr
    env["FLEET_CALLSIGN"] = "viper-1"  # the holder pushing it: still goose's commit
    res = subprocess.run(
        ["git", "push", "-q", "origin", "main"],
        cwd=hooked,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 1 and "not goose, who made commit" in res.stderr


def test_post_merge_catches_the_index_up(repo: Path, tmp_path: Path, cli: Any) -> None:
    cli(repo, "commit", "-m", "fleet: init")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    install(locate(clone))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/"])
        fleet.commit()
    git(clone, "pull", "-q", "--no-rebase")  # post-merge fires
    stage(clone, "src/x.py")
    res = commit(clone, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr


def test_pre_commit_framework_manifest() -> None:
    manifest = (Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text()
    assert "id: fleetgit-reservations" in manifest and "entry: fleetgit-hook pre-commit" in manifest


def test_case_follows_core_ignorecase(hooked: Path) -> None:
    with Fleet.open(hooked, actor="viper-1") as fleet:
        fleet.reserve(["Lib/"])
    git(hooked, "config", "core.ignorecase", "true")
    stage(hooked, "lib/x.py")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr
    git(hooked, "config", "core.ignorecase", "false")
    assert commit(hooked, "goose").returncode == 0


@pytest.fixture
def remote(hooked: Path, tmp_path: Path) -> Path:
    """A bare origin holding main; viper-1 works in a second clone of it (no hooks there)."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(hooked, "remote", "add", "origin", str(bare))
    git(hooked, "push", "-q", "--no-verify", "origin", "main")
    git(hooked, "fetch", "-q", "origin")
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "viper"))
    return bare


def viper_pushes(tmp_path: Path, path: str, text: str) -> None:
    """viper-1, who holds src/app.py, changes it in its clone and pushes to origin/main."""
    viper = tmp_path / "viper"
    git(viper, "pull", "-q", "--no-rebase", "origin", "main")
    (viper / path).write_text(text)
    git(viper, "commit", "-q", "-am", f"viper-1: {path}")
    git(viper, "push", "-q", "origin", "main")


def test_pre_push_skips_commits_already_on_the_remote(
    hooked: Path, remote: Path, tmp_path: Path
) -> None:
    git(hooked, "checkout", "-q", "-b", "feature")
    stage(hooked, "docs/goose.md")
    assert commit(hooked, "goose").returncode == 0
    assert run_git(hooked, "goose", "push", "-q", "origin", "feature").returncode == 0
    viper_pushes(tmp_path, "src/app.py", "viper-1's own change\n")
    git(hooked, "fetch", "-q", "origin")
    assert run_git(hooked, "goose", "merge", "-q", "--no-edit", "origin/main").returncode == 0
    res = run_git(hooked, "goose", "push", "origin", "feature")
    assert res.returncode == 0, res.stderr  # viper-1's upstream commit is not goose's to check


def test_pre_push_to_a_url_checks_only_what_no_remote_has(
    hooked: Path, remote: Path, tmp_path: Path
) -> None:
    git(hooked, "checkout", "-q", "-b", "newbranch")  # history touches src/app.py (on origin)
    stage(hooked, "docs/goose.md")
    assert commit(hooked, "goose").returncode == 0
    res = run_git(hooked, "goose", "push", str(remote), "newbranch")
    assert res.returncode == 0, res.stderr
    stage(hooked, "src/app.py", "goose, unchecked\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0
    res = run_git(hooked, "goose", "push", str(remote), "newbranch")
    assert res.returncode == 1 and "push refused: 1 path(s)" in res.stderr


def test_force_push_over_an_unfetched_remote_commit(
    hooked: Path, remote: Path, tmp_path: Path
) -> None:
    viper_pushes(tmp_path, "README.md", "viper-1 elsewhere\n")  # not fetched here
    stage(hooked, "docs/goose.md")
    assert commit(hooked, "goose").returncode == 0
    res = run_git(hooked, "goose", "push", "--force", "origin", "main")
    assert res.returncode == 0, res.stderr
    stage(hooked, "src/app.py", "goose, unchecked\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0
    viper_pushes(tmp_path, "README.md", "viper-1 again\n")
    res = run_git(hooked, "goose", "push", "--force", "origin", "main")
    assert res.returncode == 1 and "src/app.py" in res.stderr and "bad object" not in res.stderr


def test_case_follows_core_ignorecase_from_any_git_config(hooked: Path) -> None:
    with Fleet.open(hooked, actor="viper-1") as fleet:
        fleet.reserve(["Lib/"])
    stage(hooked, "lib/x.py")
    assert commit(hooked, "goose").returncode == 0  # case-sensitive: lib/ is not Lib/
    git(hooked, "reset", "-q", "--soft", "HEAD~1")
    res = run_git(hooked, "goose", "-c", "core.ignorecase=true", "commit", "-qm", "lib")
    assert res.returncode == 1 and "viper-1" in res.stderr
    git(hooked, "config", "--global", "core.ignorecase", "true")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr


def test_post_merge_names_the_holders_and_patterns_of_a_clash(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    cli(repo, "commit", "-m", "fleet: init")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        (won,) = fleet.reserve(["src/app.py"])
        fleet.commit()
    time.sleep(0.01)
    with Fleet.open(clone, actor="goose") as fleet:
        (lost,) = fleet.reserve(["src/"])
        fleet.commit()
    res = run_git(repo, "viper-1", "pull", "--no-rebase", "--no-edit", str(clone), "main")
    assert res.returncode == 0, res.stderr
    assert (
        f"reservation {lost.reservation_id} (goose, 'src/') lost to {won.reservation_id}"
        " (viper-1, 'src/app.py')"
    ) in res.stderr


def test_install_checks_every_hook_before_writing_any(repo: Path) -> None:
    hooks = repo / ".git/hooks"
    for name in ("post-rewrite", "post-rewrite.fleetgit-chained"):
        (hooks / name).write_text(f"#!/bin/sh\necho {name}\n")
    before = {p.name: p.read_bytes() for p in hooks.iterdir()}
    with pytest.raises(ConflictError, match="post-rewrite"):
        install(locate(repo))
    assert {p.name: p.read_bytes() for p in hooks.iterdir()} == before
    assert all(s.state != "installed" for s in status(locate(repo)))


def test_pre_merge_commit_is_installed_and_removed(repo: Path) -> None:
    assert "pre-merge-commit" in {s.name for s in install(locate(repo))}
    assert (repo / ".git/hooks/pre-merge-commit").exists()
    uninstall(locate(repo))
    assert not (repo / ".git/hooks/pre-merge-commit").exists()


def two_sides(hooked: Path) -> None:
    """src/app.py of three lines; goose's branch `side` changes its last line (unchecked), and
    main then its first (viper-1, the holder): a clean merge that changes it on both sides."""
    stage(hooked, "src/app.py", "one\ntwo\nthree\n")
    assert commit(hooked, "viper-1").returncode == 0
    git(hooked, "checkout", "-q", "-b", "side")
    stage(hooked, "src/app.py", "one\ntwo\nTHREE by goose\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0
    git(hooked, "checkout", "-q", "main")
    stage(hooked, "src/app.py", "ONE by viper-1\ntwo\nthree\n")
    assert commit(hooked, "viper-1").returncode == 0


def test_a_clean_merge_that_changes_a_reserved_file_is_refused(hooked: Path) -> None:
    two_sides(hooked)
    git(hooked, "checkout", "-q", "side")
    res = run_git(hooked, "goose", "merge", "--no-edit", "main")
    assert res.returncode == 1 and "merge refused" in res.stderr and "src/app.py" in res.stderr
    assert "git commit --no-verify" in res.stderr and "git merge --abort" in res.stderr
    assert git(hooked, "log", "-1", "--format=%s") == "change\n"  # no merge commit
    git(hooked, "merge", "--abort")
    assert run_git(hooked, "viper-1", "merge", "-q", "--no-edit", "main").returncode == 0


def test_a_merge_does_not_recheck_the_other_sides_commits(hooked: Path) -> None:
    """Merging in viper-1's change to its own file: the merge itself changes nothing reserved,
    whether git commits it at once (pre-merge-commit) or after a conflict (pre-commit)."""
    git(hooked, "checkout", "-q", "-b", "side")
    stage(hooked, "README.md", "goose's readme\n")
    assert commit(hooked, "goose").returncode == 0
    git(hooked, "checkout", "-q", "main")
    stage(hooked, "src/app.py", "viper-1's change\n")
    assert commit(hooked, "viper-1").returncode == 0
    git(hooked, "checkout", "-q", "-b", "side2", "side")
    res = run_git(hooked, "goose", "merge", "--no-edit", "main")
    assert res.returncode == 0, res.stderr
    git(hooked, "checkout", "-q", "main")
    stage(hooked, "README.md", "viper-1's readme\n")
    assert commit(hooked, "viper-1").returncode == 0
    git(hooked, "checkout", "-q", "side")
    assert run_git(hooked, "goose", "merge", "main").returncode == 1  # README conflicts
    stage(hooked, "README.md", "both\n")
    res = commit(hooked, "goose")  # concludes the merge; pre-commit sees MERGE_HEAD
    assert res.returncode == 0, res.stderr
    assert len(git(hooked, "log", "-1", "--format=%P").split()) == 2


@pytest.mark.parametrize(
    ("value", "blind"),
    [
        ("yes", True),
        ("On", True),
        ("1", True),
        (None, True),  # `[core] ignorecase` with no value: true, as in git
        ("TRUE", True),
        ("", False),
        ("off", False),
        ("No", False),
        ("0", False),
    ],
)
def test_core_ignorecase_follows_gits_booleans(
    hooked: Path, cli: Any, value: str | None, blind: bool
) -> None:
    """The hook (git commit) and the commands (check) read core.ignorecase alike, as git does."""
    with Fleet.open(hooked, actor="viper-1") as fleet:
        fleet.reserve(["Lib/"])
    if value is None:
        with (hooked / ".git/config").open("a") as fh:
            fh.write("[core]\n\tignorecase\n")
    else:
        git(hooked, "config", "core.ignorecase", value)
    stage(hooked, "lib/x.py")
    res = commit(hooked, "goose")
    assert (res.returncode == 1) is blind, res.stderr
    assert ("viper-1" in res.stderr) is blind
    assert (cli(hooked, "--as", "goose", "check", "lib/x.py").code == 1) is blind


def test_a_core_ignorecase_that_is_not_a_boolean_is_refused(hooked: Path, cli: Any) -> None:
    git(hooked, "config", "core.ignorecase", "maybe")
    res = cli(hooked, "--as", "goose", "check", "src/app.py")
    assert res.code == 1 and "core.ignorecase = 'maybe' is not a boolean" in res.err
    assert "hint: git config core.ignorecase true" in res.err


def test_the_hook_path_stays_light() -> None:
    """Importing the hook (and the rules it shares with the commands) loads none of the modules
    that cost it milliseconds; the shim starts Python with -S, as here."""
    heavy = ("typing", "re", "subprocess", "typer", "pygit2", "duckdb", "orjson", "pathlib")
    guard = ("hook", "hookpush", "hookstamp")
    modules = ", ".join([f"fleetgit.guard.{m}" for m in guard] + ["fleetgit.ledger.config"])
    probe = f"import sys, {modules}; print([m for m in {heavy!r} if m in sys.modules])"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_a_git_call_with_a_flood_on_stderr_does_not_hang_the_hook(repo: Path) -> None:
    """The hook reads git's stdout and stderr as they fill; reading one to its end first
    deadlocks once the other's pipe buffer (64 KiB) is full."""
    noisy = "alias.noisy=!sh -c 'head -c 300000 /dev/zero | tr \"\\\\0\" x >&2; echo done'"
    probe = (
        "import sys; from fleetgit.guard.hookgit import Process, where\n"
        f"code, out, err = Process(where(), '-c', {noisy!r}, 'noisy').result()\n"
        "print(code, out.strip(), len(err))"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r})\n{probe}"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.split() == ["0", "done", "300000"]
