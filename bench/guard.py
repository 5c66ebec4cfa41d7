"""`fleetgit guard` timing: 100 commits x 10 paths judged against 1,000 reservations, in a clone
(`guard RANGE`) and in a bare repository (`guard --pre-receive`, as its hook runs it)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.fleet import fleetgit_command
from bench.hook import hook_pattern, reserve
from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet, init

COMMITS, PATHS, RESERVATIONS = 100, 10, 1000


def _git(repo: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, env=env, capture_output=True, text=True
    ).stdout.strip()


def _clone(root: Path, env: dict[str, str]) -> Path:
    """1,000 live reservations committed in `.fleet/`, then 100 commits of 10 paths each, every
    one touching reserved paths (all refused: the whole range is judged and reported)."""
    repo = root / "guard-clone"
    repo.mkdir()
    _git(repo, env, "init", "-q", "-b", "main")
    init(repo)
    with Fleet.open(repo) as fleet:
        pilots.register(fleet, "pilot-0")  # the holder registers before it acts
    reserve(repo, RESERVATIONS, 0, hook_pattern)
    with Fleet.open(repo) as fleet:
        fleet.commit("fleet: 1000 reservations")
    for i in range(COMMITS):
        for j in range(PATHS):
            path = repo / f"area{j}/mod{j}/f{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{i}\n")
        _git(repo, env, "add", "-A", *(f"area{j}" for j in range(PATHS)))
        _git(repo, env, "commit", "-qm", f"c{i}")
    return repo


def _time(
    cmd: list[str], cwd: Path, env: dict[str, str], stdin: str = "", runs: int = 11
) -> tuple[float, float]:
    """Median wall and CPU (user + system, of the process and its git children) ms. On a loaded
    machine the wall time is mostly waiting for a core; the CPU time says what the work costs."""
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False
        )
        times.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
        if proc.returncode != 1 or "refused" not in proc.stderr:
            raise SystemExit(f"guard did not refuse: {proc.returncode} {proc.stderr[-500:]}")
    return statistics.median(times), statistics.median(cpus)


def run(root: Path) -> list[tuple[str, str, str, str]]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    env.pop("FLEET_CALLSIGN", None)
    py = statistics.median(
        _time_plain([sys.executable, "-c", "pass"], root, env) for _ in range(11)
    )
    floor = f"`python -c pass` {py:.1f} ms"
    fleetgit = fleetgit_command()
    clone = _clone(root, env)
    rows = []
    label = f"{COMMITS} commits x {PATHS} paths, {RESERVATIONS:,} reservations (all refused)"
    ms, cpu = _time([*fleetgit, "guard", f"main~{COMMITS}..main"], clone, env)
    rows.append(
        (
            f"guard RANGE in a clone, {label}",
            f"{ms:.1f} ms median ({cpu:.0f} ms CPU)",
            "≤ 1 s",
            floor,
        )
    )
    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    # a bare repository that has the commits' objects but not yet a ref to them: as in
    # pre-receive (git's quarantine aside), `old new ref` on stdin
    server = root / "guard-server.git"
    _git(root, env, "clone", "-q", "--bare", str(clone), str(server))
    new = _git(server, env, "rev-parse", "main")
    old = _git(server, env, "rev-parse", f"main~{COMMITS}")
    _git(server, env, "update-ref", "refs/heads/main", old)
    line = f"{old} {new} refs/heads/main\n"
    cold, _ = _time([*fleetgit, "guard", "--pre-receive"], server, env, line, runs=1)
    ms, cpu = _time([*fleetgit, "guard", "--pre-receive"], server, env, line)
    rows.append(
        (
            f"guard --pre-receive in a bare repository, {label}",
            f"{ms:.1f} ms median ({cpu:.0f} ms CPU; the first run, building its index:"
            f" {cold:.1f} ms)",
            "≤ 1 s",
            floor,
        )
    )
    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _time_plain(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True)
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fleetgit-guardbench-") as tmp:
        for row in run(Path(tmp)):
            print("| " + " | ".join(row) + " |")
