"""Reservations at scale, as index.clashes keeps them: `python -m bench.clashes`.

N live exclusive reservations of other pilots that do not clash (`areaK/modI/**`, one in ten
`libI/*.lock`) plus R granted and released ones (history). Timed: `fleetgit reserve`, `fleetgit
reservations`, `fleetgit check` on a reserved path (real processes, median of 11), the pre-commit
hook with N staged paths that all hit a reservation (median of 5), and judging void reservations
in-process: from the newest event (what an append does) and from the start (what a rebuild does).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hook import reserve, time_hook
from fleetgit.fleet import init
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from fleetgit.index import clashes

ENV = {
    **os.environ,
    "FLEET_CALLSIGN": "committer",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _pattern(i: int) -> str:
    return f"lib{i}/*.lock" if i % 10 == 0 else f"area{i % 50}/mod{i}/**"


def setup(root: Path, n: int, released: int) -> Path:
    repo = root / f"clashes-{n}-{released}"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=ENV)
    init(repo)
    reserve(repo, n, released, _pattern)
    return repo


def command_ms(repo: Path, *args: str, runs: int = 11) -> float:
    """Median wall time of `fleetgit ARGS` ({i}: the run's number), exit 0 or 1 (refused)."""
    times = []
    for i in range(runs):
        argv = [a.replace("{i}", str(i)) for a in args]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fleetgit", *argv], cwd=repo, capture_output=True, env=ENV
        )
        times.append((time.perf_counter() - t0) * 1000)
        if proc.returncode not in (0, 1):
            raise RuntimeError(proc.stderr.decode())
    return statistics.median(times)


def hook_blocked_ms(repo: Path, n: int) -> float:
    install(locate(repo))
    for i in range(n):
        path = repo / (f"lib{i}/x.lock" if i % 10 == 0 else f"area{i % 50}/mod{i}/x.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    subprocess.run(["git", "add", "-A", "."], cwd=repo, check=True, env=ENV)
    ms = time_hook(repo, ENV, runs=5)
    subprocess.run(["git", "reset", "-q"], cwd=repo, check=True, env=ENV)
    return ms


def judging_ms(repo: Path) -> tuple[float, float]:
    """(from the newest event, from the start), in a transaction rolled back."""
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite", isolation_level=None)
    try:
        conn.execute("BEGIN")
        newest = conn.execute(
            "SELECT hlc, writer, wseq FROM reservation_terms"
            " ORDER BY hlc DESC, writer DESC, wseq DESC LIMIT 1"
        ).fetchone()
        t0 = time.perf_counter()
        clashes.settle(conn, (newest[0], newest[1], newest[2]))
        tail = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        clashes.settle(conn, None)
        full = (time.perf_counter() - t0) * 1000
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return tail, full


def run(root: Path) -> list[str]:
    rows = []
    py = statistics.median(_python_ms() for _ in range(11))
    for n, released, commands in ((1000, 0, True), (1000, 20000, True), (10000, 100000, False)):
        repo = setup(root, n, released)
        label = f"{n:,} live, {released:,} released"
        if commands:
            reserve = command_ms(repo, "--as", "bencher", "reserve", "zone/f{i}.py")
            listing = command_ms(repo, "--as", "bencher", "reservations", "--json")
            check = command_ms(repo, "--as", "bencher", "check", "area1/mod1/x.py")
            hook = hook_blocked_ms(repo, n)
            rows.append(
                f"| {label} | reserve {reserve:.0f} ms, reservations {listing:.0f} ms,"
                f" check {check:.0f} ms | hook, {n:,} staged paths all reserved: {hook:.1f} ms |"
                f" `python -c pass` {py:.1f} ms |"
            )
        tail, full = judging_ms(repo)
        rows.append(
            f"| {label} | judging from the newest event {tail:.1f} ms | from the start"
            f" {full:.0f} ms | |"
        )
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _python_ms() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fleetgit-clashbench-") as tmp:
        for row in run(Path(tmp)):
            print(row)
