"""Sync benchmarks (issue 13), end to end as processes against a local bare remote:
`fleetgit sync` with nothing new, and a sync that brings 10,000 new events (fetch + ingest).
`python -m bench.sync` runs them alone."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import missions
from bench.fleet import fleetgit_command
from fleetgit.fleet import Fleet, init

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=ENV, capture_output=True)


def _clone(remote: Path, path: Path) -> Path:
    _git(remote.parent, "clone", "-q", str(remote), str(path))
    return path


def _net(root: Path) -> tuple[Path, Path]:
    """A bare remote and a first clone with fleetgit committed on main."""
    remote = root / "remote.git"
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    first = root / "first"
    first.mkdir()
    _git(first, "init", "-q", "-b", "main")
    init(first)
    _git(first, "add", ".fleet", ".gitattributes")
    _git(first, "commit", "-q", "-m", "fleet")
    _git(first, "remote", "add", "origin", str(remote))
    _git(first, "push", "-q", "-u", "origin", "main")
    return remote, first


def _emit(repo: Path, n: int, actor: str) -> None:
    with Fleet.open(repo, actor=actor, register=True) as fleet:
        for start in range(0, n, 5000):
            fleet.emit_batch(missions(range(start, min(n, start + 5000)), f"{actor}-"))


def _timed(cmd: list[str], cwd: Path) -> float:
    return _timed_cpu(cmd, cwd)[0]


def _timed_cpu(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU milliseconds of a command, the CPU (user + system) of the process and
    everything it waited for (its git processes): steadier than wall time on a loaded machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, env=ENV, capture_output=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def run(root: Path, quick: bool = False) -> list[tuple[str, str, str, str]]:
    root = root / "sync"
    root.mkdir()
    cli = fleetgit_command()
    remote, first = _net(root)
    other = _clone(remote, root / "other")
    for repo, who in ((first, "viper"), (other, "goose")):
        _emit(repo, 100, who)
        subprocess.run([*cli, "sync"], cwd=repo, check=True, env=ENV, capture_output=True)
    subprocess.run([*cli, "sync"], cwd=first, check=True, env=ENV, capture_output=True)
    idle = statistics.median(_timed([*cli, "sync"], first) for _ in range(5 if quick else 11))
    floor = statistics.median(
        _timed(["git", "fetch", "-q", "origin"], first) for _ in range(5 if quick else 11)
    )
    py = statistics.median(
        _timed([sys.executable, "-c", "pass"], first) for _ in range(5 if quick else 11)
    )
    rows = [
        (
            "`fleetgit sync` with nothing new (local bare remote, 2 writers)",
            f"{idle:.0f} ms median",
            "≤ 300 ms",
            f"a plain `git fetch` {floor:.0f} ms; `python -c pass` {py:.0f} ms",
        )
    ]
    n = 10_000
    sender = _clone(remote, root / "sender")
    _emit(sender, n, "ice")
    subprocess.run([*cli, "sync"], cwd=sender, check=True, env=ENV, capture_output=True)
    times, cpus, fetches, rebuilds = [], [], [], []
    for run_no in range(2 if quick else 3):  # a fresh receiver each time, already synced once
        receiver = root / f"receiver{run_no}"
        _clone(remote, receiver)
        subprocess.run(
            [*cli, "sync", "--fetch-only"], cwd=receiver, check=True, env=ENV, capture_output=True
        )
        _emit(sender, n, f"ice{run_no}")  # new events the receiver has not seen
        subprocess.run(
            [*cli, "sync", "--push-only"], cwd=sender, check=True, env=ENV, capture_output=True
        )
        # floor 1: the same fetch by git alone, in a copy of the receiver
        copy = root / f"copy{run_no}"
        subprocess.run(["cp", "-a", str(receiver), str(copy)], check=True)
        fetch = ["git", "fetch", "-q", "--no-tags", "--prune", "--no-write-fetch-head", "origin"]
        fetches.append(
            _timed_cpu([*fetch, "+refs/fleet/writers/*:refs/fleet/remotes/origin/*"], copy)[1]
        )
        wall, cpu = _timed_cpu([*cli, "sync"], receiver)
        times.append(wall)
        cpus.append(cpu)
        # floor 2: ingesting the same number of events at `index rebuild`'s speed per event
        with Fleet.open(receiver) as fleet:
            total = fleet.index.max_pos()
        rebuilds.append(_timed_cpu([*cli, "index", "rebuild"], receiver)[1] * n / total)
    rows.append(
        (
            f"`fleetgit sync` bringing {n:,} new events (fetch + ingest)",
            f"{statistics.median(times):.0f} ms median",
            "≤ 1 s",
            f"CPU {statistics.median(cpus):.0f} ms (the process and its git children);"
            f" floors in the same run: the same `git fetch` alone {statistics.median(fetches):.0f}"
            f" ms CPU, {n:,} events at `index rebuild`'s CPU per event"
            f" {statistics.median(rebuilds):.0f} ms; `python -c pass` {py:.0f} ms",
        )
    )
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fleetgit-bench-") as tmp:
        for row in run(Path(tmp), "--quick" in sys.argv):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
