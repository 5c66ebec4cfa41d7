"""The HTTP API under load (issue 16): `python -m bench.web [--quick] [--paced-only]
[--workers N] [--trace] [--costs] [--ledger DIR]`.

A ledger of 100,000 events (heartbeats mostly, some sorties and messages, as a fleet makes them),
`fleetgit serve` on loopback in its own process(es), and in this process (asyncio, raw HTTP/1.1
with keep-alive, so the client costs little) readers, writers and one SSE subscriber, 30 s per
run. Three runs: one reader and one writer, closed loop (what a request costs); 50 readers and
8 writers, closed loop (each sends its next request as soon as the last is answered: the
server's saturation); and paced (each reader 4 requests/s, each writer 2/s, their starts spread
over the period: a busy fleet). Afterwards every acknowledged write must be in the ledger and
`fleetgit verify` clean. Prints Markdown; nothing is asserted (results go in
docs/benchmarks.md). `--trace`: the server times each request's stages (web/trace.py) and the
split over the runs is printed: where a slow request waited.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.fleet import fleetgit_command
from fleetgit.fleet import EventSpec, Fleet, init
from fleetgit.git.paths import locate
from fleetgit.web import auth
from fleetgit.web.app import processes

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
PILOTS = [f"p{i:02d}" for i in range(20)]
WRITERS = [f"w{i}" for i in range(8)]
READS = [
    "/api/v1/pilots?limit=20",
    "/api/v1/sorties?status=open&limit=20",
    "/api/v1/events?limit=20&reverse=true",
    "/api/v1/reservations",
    "/api/v1/events?after={pos}&limit=20",
    "/api/v1/messages/search?q=subject&limit=10",
    "/api/v1/events/{eid}",
]


def build(repo: Path, count: int) -> list[str]:
    """`count` events: 97 % heartbeats, 1 % sorties, 2 % messages. Returns some event ids."""
    specs = [
        EventSpec("pilot_registered", f"pilot/{p}", {"callsign": p}, actor=p)
        for p in PILOTS + WRITERS
    ]
    rng = random.Random(16)
    while len(specs) < count:
        i = len(specs)
        who = rng.choice(PILOTS)
        roll = rng.random()
        if roll < 0.01:
            sid = f"srt-bench{i}"
            data: dict[str, Any] = {"sortie_id": sid, "title": f"sortie {i}"}
            specs.append(EventSpec("sortie_created", f"sortie/{sid}", data, actor=who))
        elif roll < 0.03:
            mid = f"msg-bench{i}"
            data = {"message_id": mid, "to": [rng.choice(PILOTS)], "subject": f"subject {i}"}
            specs.append(EventSpec("message_sent", f"message/{mid}", data, actor=who))
        else:
            data = {"status": "busy", "current_task": f"task {i % 97}"}
            specs.append(EventSpec("pilot_active", f"pilot/{who}", data, actor=who))
    with Fleet.open(repo) as fleet:
        for start in range(0, len(specs), 5000):
            fleet.emit_batch(specs[start : start + 5000])
        return [e.id for e in fleet.events(limit=2000)]


def ready(repo: Path, events: int, kept: Path | None) -> list[str]:
    """A repository with the ledger in `repo`, built there, or copied from `kept`/built (built
    first when it is missing; `repo` is then always the same path, which the index records).
    Returns some event ids."""
    if kept is not None and (kept / "ids").exists():
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(kept / "built", repo, symlinks=True)
        return orjson.loads((kept / "ids").read_bytes())  # type: ignore[no-any-return]
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=ENV)
    init(repo)
    ids = build(repo, events)
    if kept is not None:
        shutil.rmtree(kept / "built", ignore_errors=True)
        shutil.copytree(repo, kept / "built", symlinks=True)
        (kept / "ids").write_bytes(orjson.dumps(ids))
    return ids


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        data = b""
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            data = orjson.dumps(body)
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


class Run:
    def __init__(
        self, port: int, tokens: dict[str, str], ids: list[str], paced: bool, name: str
    ) -> None:
        self.port, self.tokens, self.ids, self.paced = port, tokens, ids, paced
        self.name = name
        self.reads: list[float] = []
        self.by_route: dict[str, list[float]] = {}
        self.writes: list[float] = []
        self.errors: list[str] = []
        self.acked: dict[str, float] = {}  # title -> when its write was acknowledged
        self.sent: dict[str, float] = {}  # title -> when its write was sent
        self.seen: dict[str, float] = {}  # title -> when the SSE subscriber got its event
        self.stop = 0.0
        self.cpu = (0.0, 0.0)  # the server's and this client's CPU time over the run, in ms

    async def reader(self, n: int) -> None:
        conn, rng = Conn(self.port), random.Random(n)
        if self.paced:  # spread over the period: 50 readers in step would arrive as one burst
            await asyncio.sleep(rng.uniform(0, 0.25))
        while time.monotonic() < self.stop:
            route = rng.choice(READS)
            path = route.format(pos=rng.randrange(100_000), eid=rng.choice(self.ids))
            t0 = time.perf_counter()
            status, body = await conn.request("GET", path)
            took = (time.perf_counter() - t0) * 1000
            self.reads.append(took)
            self.by_route.setdefault(route, []).append(took)
            if status != 200:
                self.errors.append(f"GET {path}: {status} {body[:200]!r}")
            if self.paced:
                await asyncio.sleep(max(0.0, 0.25 - (time.perf_counter() - t0)))

    async def writer(self, who: str) -> None:
        conn, n = Conn(self.port), 0
        if self.paced:
            await asyncio.sleep(random.Random(who).uniform(0, 0.5))
        while time.monotonic() < self.stop:
            n += 1
            title = f"load {self.name} {who} {n}"
            t0 = time.perf_counter()
            self.sent[title] = time.monotonic()
            status, body = await conn.request(
                "POST", "/api/v1/missions", {"title": title}, self.tokens[who]
            )
            self.writes.append((time.perf_counter() - t0) * 1000)
            if status == 201:
                self.acked[title] = time.monotonic()
            else:
                self.errors.append(f"POST /missions: {status} {body[:200]!r}")
            if self.paced:
                await asyncio.sleep(max(0.0, 0.5 - (time.perf_counter() - t0)))

    async def subscriber(self, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
        )
        await writer.drain()
        ready.set()
        while True:
            line = await reader.readline()
            if not line:
                return
            start = line.find(b"data: ")  # chunked framing: data lines stay whole
            if start < 0:
                continue
            event = orjson.loads(line[start + 6 :])
            if event["type"] == "mission_created":
                self.seen.setdefault(event["data"]["title"], time.monotonic())

    async def go(self, readers: int, writers: int, seconds: float) -> None:
        ready = asyncio.Event()
        sse = asyncio.create_task(self.subscriber(ready))
        await ready.wait()
        await asyncio.sleep(0.5)
        self.stop = time.monotonic() + seconds
        tasks = [self.reader(n) for n in range(readers)]
        tasks += [self.writer(w) for w in WRITERS[:writers]]
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # the stream's last deliveries
        sse.cancel()


def cpu_ms(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used, in ms: a cost the load does not blur."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total * 1000 / os.sysconf("SC_CLK_TCK")


async def costs(
    port: int, ids: list[str], pids: list[int], rounds: int, tokens: dict[str, str]
) -> None:
    """One client, one request at a time: each read route `rounds` times, beside `/me` (the
    HTTP stack and the token check only) as the floor, then `rounds` writes by the 8 writers
    in turn; the server's CPU per request."""
    conn, rng = Conn(port), random.Random(7)
    print("| route | server CPU per request | latency min / p50 |\n|---|---|---|")
    for route in ["/api/v1/me", *READS, "/api/v1/board?events=0", "/api/v1/board"]:
        took = []
        before = cpu_ms(pids)
        for _ in range(rounds):
            path = route.format(pos=rng.randrange(100_000), eid=rng.choice(ids))
            t0 = time.perf_counter()
            status, body = await conn.request("GET", path)
            took.append((time.perf_counter() - t0) * 1000)
            assert status == 200, (path, status, body[:200])
        cpu = (cpu_ms(pids) - before) / rounds
        print(f"| `{route}` | {cpu:.2f} ms | {min(took):.2f} / {pct(took, 50):.2f} ms |")
    took, before = [], cpu_ms(pids)
    for n in range(rounds):
        who = WRITERS[n % len(WRITERS)]
        t0 = time.perf_counter()
        status, body = await conn.request(
            "POST", "/api/v1/missions", {"title": f"cost {n}"}, tokens[who]
        )
        took.append((time.perf_counter() - t0) * 1000)
        assert status == 201, (status, body[:200])
    cpu = (cpu_ms(pids) - before) / rounds
    route = "POST /api/v1/missions` (8 pilots in turn)"
    print(f"| `{route} | {cpu:.2f} ms | {min(took):.2f} / {pct(took, 50):.2f} ms |")


STAGES = {  # web/trace.py's marks -> the stage each pair of them times
    "before the handler (loop, dependencies, a free thread, the GIL)": ("t0", "thread"),
    "catch-up (and opening the ledger)": ("thread", "caught"),
    "the handler's work": ("caught", "query"),
    "back to the loop, the response started": ("query", "resp"),
    "sent": ("resp", "sent"),
    "whole": ("t0", "sent"),
}


def trace_split(files: list[bytes]) -> None:
    """Each stage's p50 / p99 / max for the reads and the writes, from the trace files."""
    records = [orjson.loads(line) for f in files for line in f.splitlines()]
    each = [sum(b'"m":' in line for line in f.splitlines()) for f in files]
    print(f"\nrequests per server process: {', '.join(map(str, each))}")
    lags = [r["lag"] for r in records if "lag" in r]
    done = [r for r in records if "sent" in r and "query" in r and "resp" in r]
    print("\nwhere the time went, from the server's trace (ms):\n")
    print("| stage | reads p50 / p99 / max | writes p50 / p99 / max |\n|---|---|---|")
    rows: dict[str, list[str]] = {}
    for method in ("GET", "POST"):
        mine = [r for r in done if r["m"] == method]
        for name, (a, b) in STAGES.items():
            took = [r[b] - (r[a] if a != "t0" else 0.0) for r in mine]
            rows.setdefault(name, []).append(
                f"{pct(took, 50):.1f} / {pct(took, 99):.1f} / {max(took, default=0):.1f}"
            )
        cpu = [r.get("cpu", 0.0) for r in mine]
        rows.setdefault("of which the thread's own CPU (catch-up and work)", []).append(
            f"{pct(cpu, 50):.1f} / {pct(cpu, 99):.1f} / {max(cpu, default=0):.1f}"
        )
        opened = sum("open" in r for r in mine)
        rows.setdefault("requests that opened a ledger", []).append(f"{opened} of {len(mine)}")
    for name, cells in rows.items():
        print(f"| {name} | {' | '.join(cells)} |")
    print(
        f"\nthe event loop late by over 2 ms: {len(lags)} times (every 10 ms sampled),"
        f" p50 {pct(lags, 50):.0f} ms, max {max(lags, default=0):.0f} ms"
    )


def ended(pids: list[int], within: float = 10.0) -> None:
    """Wait until the processes have ended (the first one may end before the others)."""
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def check(repo: Path, titles: set[str]) -> tuple[int, int]:
    """How many acknowledged writes are missing from the ledger, and verify's exit code."""
    with Fleet.open(repo) as fleet:
        found = {
            row[0] for row in fleet.index.conn.execute("SELECT title FROM missions").fetchall()
        }
    verify = subprocess.run(
        [*fleetgit_command(), "verify"], cwd=repo, capture_output=True, env=ENV, check=False
    )
    return len(titles - found), verify.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 events, 5 s runs")
    parser.add_argument("--paced-only", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=0, help="fleetgit serve --workers N (0: its default)"
    )
    parser.add_argument(
        "--costs", action="store_true", help="each read route's server CPU and latency, alone"
    )
    parser.add_argument("--trace", action="store_true", help="each request's stages, timed")
    parser.add_argument(
        "--ledger",
        type=Path,
        help="keep the built repository in this directory and copy it from there next time"
        " (a faster start when comparing servers; the runs then differ only by their writes)",
    )
    args = parser.parse_args()
    events, seconds = (10_000, 5.0) if args.quick else (100_000, 30.0)
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.ledger / "repo" if args.ledger else Path(tmp) / "repo"
        t0 = time.perf_counter()
        ids = ready(repo, events, args.ledger)
        built = time.perf_counter() - t0
        tokens = {w: auth.create(locate(repo), w)[0] for w in WRITERS}
        trace = Path(tmp) / "trace"
        env = {**ENV, "FLEETGIT_WEB_TRACE": str(trace)} if args.trace else ENV
        proc = subprocess.Popen(
            [*fleetgit_command(), "serve", "--port", "0", "--workers", str(args.workers)],
            cwd=repo,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[1].strip(" /\n"))
        time.sleep(1.0)
        rows = []
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pids = [proc.pid, *map(int, kids)]  # the server's processes
        if args.costs:
            try:
                asyncio.run(costs(port, ids, pids, 300, tokens))
            finally:
                proc.terminate()
                proc.wait()
            return
        try:
            plan = [
                ("one reader and one writer, closed loop", False, 1, 1),
                ("50 readers and 8 writers, closed loop", False, 50, 8),
                ("50 readers (4/s each) and 8 writers (2/s each)", True, 50, 8),
            ]
            for name, paced, readers, writers in plan[2:] if args.paced_only else plan:
                run = Run(port, tokens, ids, paced, name)
                server, client = cpu_ms(pids), time.process_time()
                asyncio.run(run.go(readers, writers, seconds))
                run.cpu = (cpu_ms(pids) - server, (time.process_time() - client) * 1000)
                rows.append(run)
        finally:
            proc.terminate()
            proc.wait()
            ended(pids)  # the other processes write their traces as they end
        titles = {t for run in rows for t in run.acked}
        missing, verify = check(repo, titles)
        traced = [f.read_bytes() for f in sorted(Path(tmp).glob("trace.*"))]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    node, cores, python = platform.node(), os.cpu_count(), platform.python_version()
    print(f"### {when} — {node}, {cores} cores, Python {python}")
    print(
        f"\nledger: {events:,} events, built in {built:.1f} s; {seconds:.0f} s per run;"
        f" serve --workers {args.workers} ({processes(args.workers)} processes)\n"
    )
    print(
        "| run | reads | read p50 / p99 | writes | write p50 / p99 | errors |"
        " SSE after ack p50 / p99 / max |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in rows:
        lag = [max(0.0, run.seen[t] - run.acked[t]) * 1000 for t in run.acked if t in run.seen]
        unseen = len([t for t in run.acked if t not in run.seen])
        print(
            f"| {run.name} | {len(run.reads)} ({len(run.reads) / seconds:.0f}/s)"
            f" | {pct(run.reads, 50):.1f} / {pct(run.reads, 99):.1f} ms"
            f" | {len(run.writes)} ({len(run.writes) / seconds:.0f}/s)"
            f" | {pct(run.writes, 50):.1f} / {pct(run.writes, 99):.1f} ms"
            f" | {len(run.errors)}"
            f" | {pct(lag, 50):.0f} / {pct(lag, 99):.0f} / {max(lag, default=float('nan')):.0f} ms"
            + (f" ({unseen} never seen)" if unseen else "")
            + " |"
        )
        for err in run.errors[:3]:
            print(f"\n    {err}", file=sys.stderr)
    print("\nCPU time over each run (the run, the stream's start and its last deliveries):\n")
    for run in rows:
        wall = (seconds + 1.5) * 1000
        print(
            f"- {run.name}: the server {run.cpu[0] / wall:.0%} of one core,"
            f" the load generator {run.cpu[1] / wall:.0%}"
        )
    print("\nreads by route, p50 / p99 (the last run):\n")
    print("| route | p50 / p99 |\n|---|---|")
    for route, took in sorted(rows[-1].by_route.items()):
        print(f"| `{route}` | {pct(took, 50):.1f} / {pct(took, 99):.1f} ms |")
    print(
        f"\nacknowledged writes missing afterwards: {missing} of {len(titles)};"
        f" `fleetgit verify` exit {verify}"
    )
    if traced:
        trace_split(traced)


if __name__ == "__main__":
    main()
