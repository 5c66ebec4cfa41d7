"""`index rebuild` in CPU time, with its floors in the same run (issue 18):
`python -m bench.rebuild [N ...] [--before PYTHON] [--mixed]` (default 300,000 and 1,000,000
events).

A ledger of N `mission_created` events in batches of 10,000 (as `make bench`'s rebuild row
builds it), or with `--mixed` a fleet's ledger of N events (bench.analytics's: 12 pilots
working sorties of 20 missions, with claims, progress, reservations and messages), then
`Fleet.rebuild()` in a child process: its wall time, its CPU seconds (user + system, the
insert and sorter threads included), the CPU seconds of its main thread alone (the rebuild's
critical path: the other threads run SQLite beside it, on the other core) and its peak memory
(VmHWM, the child's own). `--before PYTHON` times
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
if f.index.max_pos() == 0:  # an index of another schema was reset: the rebuild would run in place
    sys.exit("the index is empty before the rebuild: open it with this tree first")
w0, c0 = time.perf_counter(), time.process_time()
t0 = time.thread_time()
f.rebuild()
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
main = time.thread_time() - t0
status = open('/proc/self/status').read()
print(wall, cpu, main, re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))
"""

_OPEN = "import sys; from fleetgit.fleet import Fleet; Fleet.open(sys.argv[1]).close()"


def ledger(root: Path, n: int, mixed: bool = False) -> Path:
    repo = root / f"rebuild-{n}{'-mixed' if mixed else ''}"
    if mixed:
        from bench.analytics import generate

        generate(repo, n)
        return repo
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    init(repo)
    with Fleet.open(repo, actor="bench", register=True) as fleet:
        for start in range(0, n, 10_000):
            fleet.emit_batch(missions(range(start, start + 10_000)))
    return repo


def rebuild(repo: Path, python: str) -> tuple[float, float, float, int]:
    """(wall s, CPU s, main thread's CPU s, peak RSS MB) of `Fleet.rebuild()` in a child run
    by `python`. The index is first opened and caught up by that tree untimed: a tree of another
    index schema resets it, and a rebuild of an empty index runs in place, row by row, which is
    not the rebuild being measured."""
    tree = Path(python).parents[2]  # the tree whose .venv it is: its fleetgit is imported
    subprocess.run([python, "-c", _OPEN, str(repo)], check=True, cwd=tree)
    out = subprocess.run(
        [python, "-c", _CHILD, str(repo)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    wall, cpu, main, rss_kb = out.stdout.split()
    return float(wall), float(cpu), float(main), int(rss_kb) // 1024


def run(root: Path, n: int, before: str | None, mixed: bool = False) -> list[str]:
    repo = ledger(root, n, mixed)
    n = _events(repo)  # a mixed ledger stops at the round that passes N
    lines = []
    runs = [("before", before), ("after", sys.executable)] if before else [("", sys.executable)]
    what = f"{n:,} events{' (mixed)' if mixed else ''}"
    for label, python in runs:
        wall, cpu, main, rss = rebuild(repo, python)
        lines.append(
            f"| `index rebuild` of {what}{' ' + label if label else ''} | {wall:.1f} s"
            f" ({n / wall:,.0f} events/s) | {cpu:.1f} s (**{n / cpu:,.0f} events per CPU-second**)"
            f" | {main:.1f} s ({n / main:,.0f} events per main-thread CPU-second)"
            f" | {rss} MB | load {os.getloadavg()[0]:.1f} |"
        )
    cpu_s: list[float] = []
    index = repo / ".git" / "fleet" / "index.sqlite"
    rebuild_floor(index, root / f"floor-{n}.sqlite", cpu_s)
    if not mixed:  # it folds missions only
        python_rebuild_floor(repo, root / f"python-floor-{n}.sqlite", cpu_s)
    json_floors(repo, root / f"json-floor-{n}.sqlite", cpu_s)
    copy, *least, in_c, parse = cpu_s
    lines.append(
        f"| floors, same ledger, CPU time | SQLite alone copying every table, indexes after:"
        f" {n / copy:,.0f} events per CPU-second"
        + (f" | the least a rebuild in Python can do: {n / least[0]:,.0f}" if least else "")
        + f" | SQLite parsing the JSON in C, journal off: {n / in_c:,.0f};"
        f" orjson parsing alone: {n / parse:,.0f} | load {os.getloadavg()[0]:.1f} |"
    )
    for scratch in root.glob(f"*floor-{n}.sqlite*"):
        scratch.unlink()
    return lines


def _events(repo: Path) -> int:
    with Fleet.open(repo, catch_up=False) as fleet:
        return fleet.index.max_pos()


def main() -> None:
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        at = args.index("--before")
        before = args[at + 1]
        del args[at : at + 2]
    mixed = "--mixed" in args
    sizes = [int(a) for a in args if a != "--mixed"] or [300_000, 1_000_000]
    print(
        "| run | wall | CPU | main thread's CPU | peak RSS (VmHWM) | load |"
        "\n|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory(prefix="fleetgit-bench-rebuild-") as tmp:
        for n in sizes:
            for line in run(Path(tmp), n, before, mixed):
                print(line, flush=True)


if __name__ == "__main__":
    main()
