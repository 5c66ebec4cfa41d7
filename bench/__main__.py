"""Benchmarks: `make bench` (or `python -m bench [--quick]`). Prints a Markdown table.

Not tests: nothing here asserts a time. Results with machine and date go in docs/benchmarks.md.
The same work is timed with the `eventsourcing` library's SQLite recorder for a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.fleet import fleetgit_command
from bench.floors import json_floors, python_rebuild_floor, rebuild_floor, sqlite_floor
from fleetgit.fleet import EventSpec, Fleet, init

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def new_repo(root: Path, name: str) -> Path:
    repo = root / name
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=ENV)
    init(repo)
    return repo


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def spec(i: int) -> EventSpec:
    mid = f"m{i}"
    return EventSpec(
        "mission_created", f"mission/{mid}", {"mission_id": mid, "title": f"mission {i}"}
    )


class Bench:
    def __init__(self, root: Path, quick: bool) -> None:
        self.root = root
        self.quick = quick
        self.rows: list[tuple[str, str, str, str]] = []

    def row(self, what: str, value: str, target: str, baseline: str = "") -> None:
        self.rows.append((what, value, target, baseline))
        print(f"  {what}: {value} (target {target}) {baseline}", file=sys.stderr, flush=True)

    def append_one(self) -> None:
        repo = new_repo(self.root, "append")
        with Fleet.open(repo, actor="bench", register=True) as fleet:
            counter = iter(range(10**9))
            ms = median_ms(lambda: fleet.emit(*_one(next(counter))), 300 if self.quick else 2000)
        es = es_append_one(self.root, 300 if self.quick else 2000)
        self.row(
            "durable append, one event (API, fsync)",
            f"{ms:.3f} ms median",
            "≤ 1 ms",
            f"eventsourcing {es:.3f} ms (×{es / ms:.1f})",
        )

    def append_long_stream(self) -> None:
        """An append to a stream with a long history (a pilot's heartbeats, a busy lock): it
        folds the new event onto the stored rows, so it costs what an append to a new one does."""
        repo = new_repo(self.root, "long")
        n = 1_000 if self.quick else 10_000
        with Fleet.open(repo, actor="bench", register=True) as fleet:
            fleet.emit("mission_created", "mission/long", {"mission_id": "long", "title": "l"})
            fleet.emit_batch([_update("long", i) for i in range(n)])
            counter = iter(range(10**9))
            ms = median_ms(
                lambda: fleet.emit_batch([_update("long", next(counter))]),
                300 if self.quick else 1000,
            )
        self.row(
            f"durable append to a stream of {n:,} events",
            f"{ms:.3f} ms median",
            "≤ 1 ms (as to a new stream)",
        )

    def append_batch(self) -> None:
        repo = new_repo(self.root, "batch")
        n, size = (20_000, 1000) if self.quick else (200_000, 5000)
        with Fleet.open(repo, actor="bench", register=True) as fleet:
            t0 = time.perf_counter()
            for start in range(0, n, size):
                fleet.emit_batch([spec(i) for i in range(start, start + size)])
            rate = n / (time.perf_counter() - t0)
            index_path = fleet.index.path
        es = es_append_batch(self.root, n, size)
        floor = sqlite_floor(index_path, self.root / "floor.sqlite", n // size)
        self.row(
            "batch append",
            f"{rate:,.0f} events/s",
            "≥ 150k events/s",
            f"eventsourcing {es:,.0f} events/s (×{rate / es:.1f}); the same index rows"
            f" inserted by SQLite alone {floor:,.0f} events/s",
        )

    def rebuild(self) -> None:
        repo = new_repo(self.root, "rebuild")
        # 200,000 by default, so that `make bench` stays reasonable; FLEETGIT_BENCH_REBUILD=1000000
        # for the million (generating it takes minutes)
        n = 100_000 if self.quick else int(os.environ.get("FLEETGIT_BENCH_REBUILD", "200000"))
        with Fleet.open(repo, actor="bench", register=True) as fleet:
            for start in range(0, n, 10_000):
                fleet.emit_batch([spec(i) for i in range(start, start + 10_000)])
        # The peak is VmHWM, the process's own high-water mark: getrusage's ru_maxrss survives
        # exec, so it would report this (larger) benchmark process that started the child.
        code = (
            "import re, time\n"
            "from fleetgit.fleet import Fleet\n"
            f"f = Fleet.open({str(repo)!r}, catch_up=False)\n"
            "t0 = time.perf_counter(); r = f.rebuild(); dt = time.perf_counter() - t0\n"
            "status = open('/proc/self/status').read()\n"
            "print(dt, re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        seconds, rss_kb = out.stdout.split()
        with Fleet.open(repo, catch_up=False) as fleet:
            index_path = fleet.index.path
        floor = rebuild_floor(index_path, self.root / "rebuild-floor.sqlite")
        least = python_rebuild_floor(repo, self.root / "python-floor.sqlite")
        in_c, parse = json_floors(repo, self.root / "json-floor.sqlite")
        self.row(
            f"index rebuild of {n:,} events",
            f"{n / float(seconds):,.0f} events/s, peak RSS {int(rss_kb) / 1024:.0f} MB",
            "≥ 60k events/s, ≤ 200 MB",
            f"the same rows copied by SQLite alone, indexes built after: {n / floor:,.0f}"
            f" events/s; the least a rebuild in Python can do: {n / least:,.0f} events/s;"
            f" the events table filled by SQLite parsing the JSON in C (journal off):"
            f" {n / in_c:,.0f} events/s; orjson parsing alone: {n / parse:,.0f} events/s",
        )
        self.repo_with_history = repo

    def catch_up_and_reads(self) -> None:
        repo = new_repo(self.root, "reads")
        with Fleet.open(repo, actor="bench", register=True) as fleet:
            fleet.emit_batch(
                [EventSpec("mission_created", "mission/big", {"mission_id": "big", "title": "big"})]
                + [
                    EventSpec(
                        "mission_updated",
                        "mission/big",
                        {"mission_id": "big", "changes": {"title": f"t{i}"}},
                    )
                    for i in range(999)
                ]
            )
            fleet.emit_batch([spec(i) for i in range(10_000)])
            ms = median_ms(fleet.index.catch_up, 500)
            self.row("catch-up with nothing new", f"{ms:.3f} ms median", "≤ 3 ms")
            ms = median_ms(lambda: fleet.stream("mission/big"), 100)
            es = es_read_stream(self.root, 100)
            self.row(
                "read one stream of 1,000 events",
                f"{ms:.2f} ms median",
                "≤ 5 ms",
                f"eventsourcing {es:.2f} ms (×{es / ms:.1f})",
            )
        cmd = [*fleetgit_command(), "-C", str(repo), "events", "--limit", "10"]
        ms = median_ms(lambda: subprocess.run(cmd, capture_output=True, check=True), 15)
        py = median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 15)
        floor = [sys.executable, "-c", "import typer, orjson, sqlite3"]
        libs = median_ms(lambda: subprocess.run(floor, check=True), 15)
        self.row(
            "`fleetgit events --limit 10` end to end",
            f"{ms:.0f} ms median",
            "≤ 150 ms",
            f"`python -c pass` {py:.0f} ms; importing typer, orjson, sqlite3 {libs:.0f} ms",
        )


def _update(mission: str, i: int) -> EventSpec:
    data = {"mission_id": mission, "changes": {"title": f"title {i}"}}
    return EventSpec("mission_updated", f"mission/{mission}", data)


def _one(i: int) -> tuple[str, str, dict[str, object]]:
    s = spec(i)
    return s.type, s.stream, s.data


# -- the eventsourcing library's SQLite recorder, same work ---------------------------------


def _es_recorder(root: Path, name: str):  # type: ignore[no-untyped-def]
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(root / f"{name}.sqlite"))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def _es_event(originator: Any, version: int, i: int):  # type: ignore[no-untyped-def]
    from eventsourcing.persistence import StoredEvent

    state = f'{{"mission_id": "m{i}", "title": "mission {i}"}}'.encode()
    return StoredEvent(
        originator_id=originator, originator_version=version, topic="mission_created", state=state
    )


def es_append_one(root: Path, runs: int) -> float:
    import uuid

    rec = _es_recorder(root, "es_one")
    counter = iter(range(10**9))
    return median_ms(lambda: rec.insert_events([_es_event(uuid.uuid4(), 1, next(counter))]), runs)


def es_append_batch(root: Path, n: int, size: int) -> float:
    import uuid

    rec = _es_recorder(root, "es_batch")
    t0 = time.perf_counter()
    for start in range(0, n, size):
        rec.insert_events([_es_event(uuid.uuid4(), 1, i) for i in range(start, start + size)])
    return n / (time.perf_counter() - t0)


def es_read_stream(root: Path, runs: int) -> float:
    import uuid

    rec = _es_recorder(root, "es_read")
    oid = uuid.uuid4()
    rec.insert_events([_es_event(oid, v, v) for v in range(1, 1001)])
    return median_ms(lambda: rec.select_events(oid), runs)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetgit-bench-") as tmp:
        bench = Bench(Path(tmp), args.quick)
        for step in (
            bench.append_one,
            bench.append_long_stream,
            bench.append_batch,
            bench.catch_up_and_reads,
            bench.rebuild,
        ):
            step()
        from bench import append, fleet, guard, hook, snapshot, sync, trust

        bench.rows.extend(append.run(Path(tmp), args.quick))
        bench.rows.extend(hook.run(Path(tmp)))
        bench.rows.extend(fleet.run(Path(tmp)))
        bench.rows.extend(guard.run(Path(tmp)))
        bench.rows.extend(sync.run(Path(tmp), args.quick))
        bench.rows.extend(snapshot.run(Path(tmp), args.quick))
        bench.rows.extend(trust.run(Path(tmp), args.quick))
    cpu = platform.processor() or platform.machine()
    print(
        f"\n### {datetime.now(UTC):%Y-%m-%d} — {platform.node()}, {os.cpu_count()} cores, {cpu},"
        f" Python {platform.python_version()}{' (quick)' if args.quick else ''}\n"
    )
    print("| benchmark | result | target | comparison |\n|---|---|---|---|")
    for row in bench.rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
