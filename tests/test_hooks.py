"""The hooks, fired by real `git commit` and `git push` in temporary repositories."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fleetgit.errors import ConflictError
from fleetgit.fleet import Fleet
from fleetgit.hooks_install import install, status, uninstall
from fleetgit.paths import locate
from tests.conftest import git, make_repo


def commit(
    repo: Path, who: str | None, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("FLEET_CALLSIGN", None)
    if who:
        full["FLEET_CALLSIGN"] = who
    return subprocess.run(
        ["git", "commit", "-q", "-m", "change", *extra],
        cwd=repo,
        capture_output=True,
        text=True,
        env=full,
        check=False,
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
    res = commit(hooked, "goose", env={"FLEET_HOOK_MODE": "warn"})
    assert res.returncode == 0 and "src/app.py" in res.stderr


def test_warn_mode_from_config(hooked: Path) -> None:
    cfg = hooked / ".fleet/config.toml"
    cfg.write_text(cfg.read_text().replace('hook_mode = "enforce"', 'hook_mode = "warn"'))
    stage(hooked, "src/app.py", "warned\n")
    assert commit(hooked, "goose").returncode == 0


def test_no_verify_bypasses(hooked: Path) -> None:
    stage(hooked, "src/app.py", "bypass\n")
    assert commit(hooked, "goose", "--no-verify").returncode == 0


def test_more_than_twenty_paths_are_counted(repo: Path) -> None:
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["gen/"])
    for i in range(25):
        stage(repo, f"gen/f{i:02d}.txt")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "... and 5 more" in res.stderr


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
    assert (repo / ".git/hooks/pre-commit.fleetgit-chained").read_text() == original
    stage(repo, "a.txt")
    assert commit(repo, "goose").returncode == 0
    assert (repo / ".git/chained.log").read_text() == "chained-ran\n"
    (repo / "BLOCK").write_text("")
    stage(repo, "b.txt")
    assert commit(repo, "goose").returncode != 0  # its failure still fails the commit
    uninstall(locate(repo))
    assert hook.read_text() == original and os.access(hook, os.X_OK)
    assert not (repo / ".git/hooks/pre-commit.fleetgit-chained").exists()
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
    assert (hooks / "pre-commit.fleetgit-chained").read_text() == "#!/bin/sh\necho replaced\n"


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
    env["FLEET_CALLSIGN"] = "viper-1"
    res = subprocess.run(
        ["git", "push", "-q", "origin", "main"],
        cwd=hooked,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr


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
