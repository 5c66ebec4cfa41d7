"""Durable single appends (`python -m bench.append [--quick]`): latency percentiles, not only the
median, because what issue 18 is about sits in the tail (a WAL checkpoint falling on an append).

One event per append through the Python API, fsync on (the default), on a fresh ledger that
grows as it runs; the index's WAL is checkpointed as this tree does it. Self-contained (imports
only fleetgit), so the same file can time another tree: `cd OTHER && OTHER/.venv/bin/python
THIS/bench/append.py`.

Prints p50, p90, p99, p99.9 and max, and how many appends took over 2 ms; then the same with the
config's fsync off, which leaves the index's own work (and its checkpoints, on their own thread;
the index is written without syncs within a boot: docs/design.md); and a floor measured in the
same run: a line appended to a file and fsynced, with no index at all. On a shared machine the
fsync's own tail can exceed the target by itself.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    slow = sum(t > 2.0 for t in ordered)
    return (
        f"p50 {statistics.median(ordered):.3f} ms, p90 {at(0.90):.3f}, p99 {at(0.99):.3f},"
        f" p99.9 {at(0.999):.3f}, max {ordered[-1]:.3f}; {slow} of {len(ordered)} over 2 ms"
    )


def fsync_floor(root: Path, runs: int, line: bytes) -> list[float]:
    """The least a durable append can cost here: one write and one fsync of a growing file."""
    path = root / "floor.jsonl"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            os.write(fd, line)
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
    return times


def appends(
    root: Path, runs: int, fsync: str = "always", cpu: list[float] | None = None
) -> tuple[list[float], int]:
    from fleetgit.fleet import Fleet, init

    repo = root / f"append-{fsync}"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    init(repo)
    config = repo / ".fleet" / "config.toml"
    config.write_text(config.read_text().replace('fsync = "always"', f'fsync = "{fsync}"'))
    times = []
    with Fleet.open(repo, actor="bench", register=True) as fleet:
        fleet.emit("mission_created", "mission/m0", {"mission_id": "m0", "title": "warm up"})
        for i in range(1, runs + 1):
            data = {"mission_id": f"m{i}", "title": f"mission {i}"}
            c0, t0 = time.thread_time(), time.perf_counter()
            fleet.emit("mission_created", f"mission/m{i}", data)
            times.append((time.perf_counter() - t0) * 1000)
            if cpu is not None:
                cpu.append((time.thread_time() - c0) * 1000)
        wal = Path(f"{fleet.index.path}-wal")
        size = wal.stat().st_size if wal.exists() else 0
    return times, size


def run(root: Path, quick: bool = False) -> list[tuple[str, str, str, str]]:
    runs = 1000 if quick else 5000
    load = os.getloadavg()[0]
    times, wal = appends(root, runs)
    cpu: list[float] = []
    unsynced, _ = appends(root, runs, "never", cpu)
    floor = fsync_floor(root, runs, b"x" * 400 + b"\n")
    rows = [
        (
            f"durable append, one event (API, fsync), {runs:,} in a row",
            percentiles(times),
            "p99 ≤ 2 ms, median no worse",
            f"WAL file {wal / 1e6:.1f} MB at the end; load average {load:.1f}",
        ),
        (
            "… the same with fsync off (the index's own work and its WAL checkpoints)",
            percentiles(unsynced),
            "",
            "",
        ),
        (
            "… CPU time of the appending thread, fsync off (what the machine's load moves least)",
            percentiles(cpu),
            "",
            "",
        ),
        ("… the floor: write + fsync of a growing file, no index", percentiles(floor), "", ""),
    ]
    for row in rows:
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fleetgit-appendbench-") as tmp:
        for row in run(Path(tmp), "--quick" in sys.argv):
            print("| " + " | ".join(row) + " |")
