"""`index rebuild` in CPU time, with its floors in the same run (issue 18):
`python -m bench.rebuild [N ...] [--before PYTHON]` (default 300,000 and 1,000,000 events).

A ledger of N `mission_created` events in batches of 10,000 (as `make bench`'s rebuild row
builds it), then `Fleet.rebuild()` in a child process: its CPU seconds (user + system, the
sorter thread included) and its peak memory (VmHWM, the child's own). `--before PYTHON` times
the same rebuild with another tree's interpreter first (its .venv/bin/python), on the same
ledger. Then, in this process and in CPU time too, the floors of bench/floors.py: SQLite alone
copying every table of the rebuilt index and building its indexes; the least a rebuild in
Python can do; SQLite filling the events table by parsing the JSON in C; orjson parsing alone.
CPU time, because on this shared 2-core machine the load stretches wall time ~3×.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import missions
from bench.floors import json_floors, python_rebuild_floor, rebuild_floor
from fleetgit.fleet import Fleet, init

_CHILD = """
import re, sys, time
from fleetgit.fleet import Fleet
f = Fleet.open(sys.argv[1], catch_up=False)
w0, c0 = time.perf_counter(), time.process_time()
f.rebuild()
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
status = open('/proc/self/status').read()
print(wall, cpu, re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))
"""


def ledger(root: Path, n: int) -> Path:
    repo = root / f"rebuild-{n}"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    init(repo)
    with Fleet.open(repo, actor="bench", register=True) as fleet:
        for start in range(0, n, 10_000):
            fleet.emit_batch(missions(range(start, start + 10_000)))
    return repo


def rebuild(repo: Path, python: str) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS MB) of `Fleet.rebuild()` in a child run by `python`."""
    out = subprocess.run(
        [python, "-c", _CHILD, str(repo)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(python).parents[2],  # the tree whose .venv it is: its fleetgit is imported
    )
    wall, cpu, rss_kb = out.stdout.split()
    return float(wall), float(cpu), int(rss_kb) // 1024


def run(root: Path, n: int, before: str | None) -> list[str]:
    repo = ledger(root, n)
    lines = []
    runs = [("before", before), ("after", sys.executable)] if before else [("", sys.executable)]
    for label, python in runs:
        wall, cpu, rss = rebuild(repo, python)
        lines.append(
            f"| `index rebuild` of {n:,} events{' ' + label if label else ''} | {wall:.1f} s"
            f" ({n / wall:,.0f} events/s) | {cpu:.1f} s (**{n / cpu:,.0f} events per CPU-second**)"
            f" | {rss} MB | load {os.getloadavg()[0]:.1f} |"
        )
    cpu_s: list[float] = []
    index = repo / ".git" / "fleet" / "index.sqlite"
    rebuild_floor(index, root / f"floor-{n}.sqlite", cpu_s)
    python_rebuild_floor(repo, root / f"python-floor-{n}.sqlite", cpu_s)
    json_floors(repo, root / f"json-floor-{n}.sqlite", cpu_s)
    copy, least, in_c, parse = cpu_s
    lines.append(
        f"| floors, same ledger, CPU time | SQLite alone copying every table, indexes after:"
        f" {n / copy:,.0f} events per CPU-second | the least a rebuild in Python can do:"
        f" {n / least:,.0f} | SQLite parsing the JSON in C, journal off: {n / in_c:,.0f};"
        f" orjson parsing alone: {n / parse:,.0f} | load {os.getloadavg()[0]:.1f} |"
    )
    for scratch in root.glob(f"*floor-{n}.sqlite*"):
        scratch.unlink()
    return lines


def main() -> None:
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        at = args.index("--before")
        before = args[at + 1]
        del args[at : at + 2]
    sizes = [int(a) for a in args] or [300_000, 1_000_000]
    print("| run | wall | CPU | peak RSS (VmHWM) | load |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="fleetgit-bench-rebuild-") as tmp:
        for n in sizes:
            for line in run(Path(tmp), n, before):
                print(line, flush=True)


if __name__ == "__main__":
    main()
