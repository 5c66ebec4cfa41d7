"""Pre-commit hook timing: the installed shim run as git runs it, with N reservations x N paths."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fleetgit.fleet import EventSpec, Fleet, init
from fleetgit.git.paths import locate
from fleetgit.guard.install import install


def _repo(root: Path, name: str, env: dict[str, str]) -> Path:
    repo = root / name
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    init(repo)
    install(locate(repo))
    return repo


def hook_pattern(i: int) -> str:
    """One in ten starts with a wildcard, like `**/gen7.lock`."""
    return f"**/gen{i}.lock" if i % 10 == 0 else f"area{i % 50}/mod{i}/**"


def glob_pattern(i: int) -> str:
    """A glob per module, the way pilots reserve a module's sources: `src/mod7/*.py`."""
    return f"src/mod{i}/*.py"


def reserve(repo: Path, n: int, released: int, pattern_of: Callable[[int], str]) -> None:
    """n live exclusive reservations of other pilots, with the patterns `pattern_of(i)`, plus
    `released` reservations that were granted and released (history only)."""
    # the holder registers first: a pilot acts only once registered
    specs = [
        EventSpec("pilot_registered", "pilot/pilot-0", {"callsign": "pilot-0"}, actor="pilot-0")
    ]
    for i in range(n + released):
        rid = f"res-bench{i:07d}"
        pattern = pattern_of(i)
        data = {
            "reservation_id": rid,
            "holder": "pilot-0",  # one holder: `**/gen0.lock` overlaps `area1/mod1/**`
            "patterns": [pattern],
            "exclusive": True,
            "ttl_seconds": 86400,
        }
        holder = str(data["holder"])  # in its own name: emit refuses a grant in another's
        specs.append(EventSpec("file_reserved", f"reservation/{rid}", data, actor=holder))
        if i >= n:
            released_data = {"reservation_id": rid}
            specs.append(
                EventSpec("file_released", f"reservation/{rid}", released_data, actor=holder)
            )
    with Fleet.open(repo, actor="bench", register=True) as fleet:
        for start in range(0, len(specs), 5000):
            fleet.emit_batch(specs[start : start + 5000])


def _stage(repo: Path, n: int, env: dict[str, str]) -> None:
    for i in range(n):
        path = repo / f"src/pkg{i % 20}/file{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    subprocess.run(["git", "add", "-A", "src"], cwd=repo, check=True, env=env)


def time_hook(
    repo: Path,
    env: dict[str, str],
    runs: int = 21,
    name: str = "pre-commit",
    args: tuple[str, ...] = (),
    stdin: bytes = b"",
) -> float:
    hook = repo / ".git/hooks" / name
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [str(hook), *args], cwd=repo, env=env, input=stdin, capture_output=True, check=False
        )
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _other_hooks(root: Path, env: dict[str, str], py: float) -> list[tuple[str, str, str, str]]:
    """The hooks a commit and a push add: the trailer, a customised config, a push's rule."""
    floor = f"`python -c pass` {py:.1f} ms"
    repo = _repo(root, "hook-other", env)
    reserve(repo, 1000, 0, hook_pattern)
    _stage(repo, 10, env)
    message = repo / "MSG"
    message.write_text("a change\n")
    ms = time_hook(repo, env, name="prepare-commit-msg", args=(str(message), "message"))
    rows = [
        (
            "prepare-commit-msg hook (writes the Fleet-Pilot trailer)",
            f"{ms:.1f} ms median",
            "",
            floor,
        )
    ]
    config = repo / ".fleet/config.toml"
    config.write_text(config.read_text().replace("= 3600", "= 7200"))
    ms = time_hook(repo, env)
    rows.append(
        (
            "pre-commit hook, 1000 reservations x 10 staged paths, a customised config.toml",
            f"{ms:.1f} ms median",
            "≤ 50 ms",
            floor,
        )
    )
    # 100 commits of 10 paths each, every one refused (so none is remembered as clean)
    committed = {**env, "FLEET_CALLSIGN": "pusher"}
    for i in range(100):
        for j in range(10):
            path = repo / f"area{j}/mod{j}/f{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{i}\n")
        areas = [f"area{j}" for j in range(10)]
        subprocess.run(["git", "add", "-A", *areas], cwd=repo, check=True, env=env)
        subprocess.run(
            ["git", "-c", "core.hooksPath=/dev/null", "commit", "-qm", f"c{i}"],
            cwd=repo,
            check=True,
            env=committed,
        )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env, capture_output=True, text=True
    ).stdout.strip()
    line = f"refs/heads/main {head} refs/heads/main {'0' * 40}\n".encode()
    ms = time_hook(repo, env, name="pre-push", args=("origin", "/nowhere"), stdin=line)
    rows.append(
        (
            "pre-push hook, 100 new commits x 10 paths, 1000 reservations (all refused)",
            f"{ms:.1f} ms median",
            "",
            floor,
        )
    )
    for row in rows:
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def run(root: Path) -> list[tuple[str, str, str, str]]:
    env = {
        **os.environ,
        "FLEET_CALLSIGN": "committer",
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    rows = []
    py = statistics.median(
        _timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
        for _ in range(21)
    )
    cases = (
        (10, 0, hook_pattern, "≤ 30 ms"),
        (1000, 0, hook_pattern, "≤ 50 ms"),
        (1000, 20000, hook_pattern, "≤ 50 ms"),
        (1000, 0, glob_pattern, "≤ 50 ms"),
    )
    for n, released, pattern_of, target in cases:
        repo = _repo(root, f"hook-{n}-{released}-{pattern_of.__name__}", env)
        reserve(repo, n, released, pattern_of)
        _stage(repo, n, env)
        ms = time_hook(repo, env)
        label = f"pre-commit hook, {n} reservations x {n} staged paths"
        if released:
            label += f", {released:,} released in history"
        if pattern_of is glob_pattern:
            label += ", each a glob like `src/mod7/*.py`"
        rows.append((label, f"{ms:.1f} ms median", target, f"`python -c pass` {py:.1f} ms"))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows + _other_hooks(root, env, py)


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fleetgit-hookbench-") as tmp:
        for row in run(Path(tmp)):
            print("| " + " | ".join(row) + " |")
