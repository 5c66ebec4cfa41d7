"""Analytics benchmarks (issue 14): `python -m bench.analytics [--events N]`.

A ledger of N events (1,000,000 by default) is generated once through the Python API, by 12
pilots working sorties of 20 missions (create, claim, start, progress, some blocked and resumed,
complete; a reservation of each sortie's file, granted and released; a message asking for an
acknowledgement, acknowledged by its recipient; heartbeats), and kept under
/tmp/fleetgit-bench-analytics-N for later runs: generating it takes minutes.

Timed end to end as processes (median of 5): `fleetgit sql` with a GROUP BY over the events, a
join of the events with the sorties, `fleetgit stats`; in process: bringing the columnar copy up
to date after 1,000 new events, and building it from scratch. The baseline: the same GROUP BY
with DuckDB's read_json over the raw JSONL segments, as a process too.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.fleet import fleetgit_command
from fleetgit.fleet import EventSpec, Fleet, init

PILOTS = [f"pilot-{i}" for i in range(12)]
MISSIONS = [f"msn-{i:02d}" for i in range(20)]
GROUP_BY = "select type, count(*) from events group by 1"
JOIN = (
    "select s.status, count(*), count(distinct e.actor) from events e"
    " join sorties s on e.stream = 'sortie/' || s.sortie_id group by 1"
)
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _round(pilot: str, n: int, start: int, to: str, acks: list[str]) -> list[EventSpec]:
    """One pilot's batch: `n` sorties from number `start`, the acknowledgements it owes."""
    specs = [EventSpec("pilot_active", f"pilot/{pilot}", {"status": "busy"})]
    for mid in acks:
        ack = {"message_id": mid, "by": pilot}
        specs.append(EventSpec("message_acknowledged", f"message/{mid}", ack))
    for i in range(start, start + n):
        sid = f"srt-{i:07d}"
        stream = f"sortie/{sid}"
        rid = f"rsv-{i:07d}"
        mid = f"msg-{i:07d}"
        specs += [
            EventSpec(
                "sortie_created",
                stream,
                {
                    "sortie_id": sid,
                    "mission_id": MISSIONS[i % len(MISSIONS)],
                    "title": f"sortie {i}",
                    "files": [f"src/m{i % 20}/f{i}.py"],
                },
            ),
            EventSpec("sortie_assigned", stream, {"sortie_id": sid, "assignee": pilot}),
            EventSpec(
                "file_reserved",
                f"reservation/{rid}",
                {
                    "reservation_id": rid,
                    "holder": pilot,
                    "patterns": [f"src/m{i % 20}/f{i}.py"],
                    "exclusive": True,
                    "ttl_seconds": 3600,
                },
            ),
            EventSpec("sortie_started", stream, {"sortie_id": sid}),
            EventSpec("sortie_progress", stream, {"sortie_id": sid, "percent": 50}),
        ]
        if i % 5 == 0:
            specs += [
                EventSpec("sortie_blocked", stream, {"sortie_id": sid, "reason": "waiting"}),
                EventSpec("sortie_resumed", stream, {"sortie_id": sid}),
            ]
        specs += [
            EventSpec("sortie_completed", stream, {"sortie_id": sid, "result": "success"}),
            EventSpec("file_released", f"reservation/{rid}", {"reservation_id": rid}),
            EventSpec(
                "message_sent",
                f"message/{mid}",
                {"message_id": mid, "to": [to], "subject": f"done {sid}", "ack_required": True},
            ),
        ]
    return specs


def generate(repo: Path, events: int) -> None:
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=ENV)
    init(repo)
    for p in PILOTS[1:]:  # each with a key of this clone's, so that its events are signed
        with Fleet.open(repo, actor=p, register=True) as fleet:
            fleet.emit("pilot_active", f"pilot/{p}", {"status": "idle"})
    with Fleet.open(repo, actor=PILOTS[0], register=True) as fleet:
        fleet.emit_batch(
            [
                EventSpec("mission_created", f"mission/{m}", {"mission_id": m, "title": m})
                for m in MISSIONS
            ]
        )
    total, number, turn = 0, 0, 0
    owed: dict[str, list[str]] = {p: [] for p in PILOTS}
    t0 = time.perf_counter()
    while total < events:
        pilot = PILOTS[turn % len(PILOTS)]
        to = PILOTS[(turn + 1) % len(PILOTS)]
        specs = _round(pilot, 400, number, to, owed[pilot])
        owed[pilot] = []
        owed[to] += [f"msg-{i:07d}" for i in range(number, number + 400)]
        with Fleet.open(repo, actor=pilot) as fleet:
            fleet.emit_batch(specs)
        total += len(specs)
        number += 400
        turn += 1
        if turn % 20 == 0:
            rate = total / (time.perf_counter() - t0)
            print(f"  {total:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)


CPU: list[float] = []  # the CPU time (user + system) of the last `_median_ms`'s runs


def _median_ms(cmd: list[str], cwd: Path, runs: int = 5) -> float:
    """The median wall time of `runs` runs of `cmd`; their median CPU time goes to CPU (on a
    loaded machine the wall time is mostly waiting for a core)."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=True, env=ENV)
        times.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu.append(used * 1000)
    CPU[:] = [statistics.median(cpu)]
    return statistics.median(times)


def _cell(ms: float) -> str:
    return f"{ms:.0f} ms median (CPU {CPU[0]:.0f} ms)"


def _append(repo: Path, n: int, start: int) -> None:
    specs = [EventSpec("pilot_active", f"pilot/{PILOTS[0]}", {"status": "busy"}) for _ in range(n)]
    with Fleet.open(repo, actor=PILOTS[0]) as fleet:
        fleet.emit_batch(specs)


def _sync_ms(repo: Path) -> tuple[float, int]:
    import duckdb

    from fleetgit.analytics import cache

    with Fleet.open(repo) as fleet:
        conn = duckdb.connect(":memory:")
        t0 = time.perf_counter()
        with cache.locked(fleet.paths, exclusive=True):
            result = cache.sync(fleet.paths, fleet.index.conn, conn)
        return (time.perf_counter() - t0) * 1000, result.added


def run(events: int) -> list[tuple[str, str, str, str]]:
    root = Path(f"/tmp/fleetgit-bench-analytics-{events}")
    repo = root / "repo"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        generate(repo, events)
        (root / "done").write_text(f"{time.perf_counter() - t0:.0f} s\n")
    cli = fleetgit_command()
    floor = _median_ms([sys.executable, "-c", "pass"], repo)
    rows: list[tuple[str, str, str, str]] = []
    with Fleet.open(repo) as fleet:
        total = fleet.index.max_pos()
        cache_dir = fleet.paths.index_file.parent / "analytics"
    shutil.rmtree(cache_dir, ignore_errors=True)
    build, added = _sync_ms(repo)
    rows.append((f"columnar copy built from scratch ({added:,} events)", f"{build:.0f} ms", "",
                 "once; after `index rebuild` or a new version"))  # fmt: skip
    n = f"{total:,} events"
    floor_cpu = CPU[0]
    ms = _median_ms([*cli, "events", "--limit", "1"], repo)
    rows.append((f"`fleetgit events --limit 1`, {n} (a command's floor)", _cell(ms), "",
                 f"`python -c pass` {floor:.0f} ms (CPU {floor_cpu:.0f} ms)"))  # fmt: skip
    ms = _median_ms([*cli, "sql", GROUP_BY], repo)
    rows.append((f"`fleetgit sql` GROUP BY type, {n}", _cell(ms), "≤ 1 s", ""))
    ms = _median_ms([*cli, "sql", JOIN], repo, runs=1)
    rows.append((f"`fleetgit sql` events JOIN sorties, {n}, first (copies sorties)", _cell(ms),
                 "", ""))  # fmt: skip
    ms = _median_ms([*cli, "sql", JOIN], repo)
    rows.append((f"`fleetgit sql` events JOIN sorties, {n}", _cell(ms), "≤ 2 s", ""))
    syncs = []
    for i in range(5):
        _append(repo, 1000, i)
        syncs.append(_sync_ms(repo)[0])
    took = f"{statistics.median(syncs):.0f} ms median"
    rows.append(("columnar copy brought up to date after 1,000 new events", took, "≤ 200 ms",
                 "in process"))  # fmt: skip
    ms = _median_ms([*cli, "stats"], repo)
    rows.append((f"`fleetgit stats`, {n}", _cell(ms), "≤ 1.5 s",
                 ""))  # fmt: skip
    baseline = (
        "import duckdb; duckdb.sql(\"select type, count(*) from read_json('.fleet/events/**/*',"
        " format='newline_delimited', columns={'type': 'VARCHAR'}) group by 1\").fetchall()"
    )
    ms = _median_ms([sys.executable, "-c", baseline], repo, runs=3)
    rows.append((f"baseline: DuckDB read_json GROUP BY type over the raw JSONL, {n}", _cell(ms),
                 "", "a process, as `fleetgit sql`"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    print("| benchmark | result | target | note |\n|---|---|---|---|")
    for row in run(args.events):
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
