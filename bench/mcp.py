"""MCP benchmarks (`python -m bench.mcp`): tool calls through the MCP SDK's own client over stdio,
each against a real `fleetgit mcp` process, on a ledger of 100,000 events (fsync on, the default).

The ledger: 20 pilots, 2,000 open sorties, 40,000 messages (half of them read) and heartbeats up
to 100,000 events. Read tools and write tools are timed one call at a time (median of N); then 8
clients, each with its own server process and pilot, write at once (report_progress on a sortie
of their own, and send_message in turn) and the total writes per second is taken.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from bench.fleet import _repo, _sortie
from fleetgit.domain.sorties import commands as sorties
from fleetgit.fleet import EventSpec, Fleet

EVENTS = 100_000
PILOTS = [f"pilot-{i}" for i in range(20)]
CLIENTS = 8


def build(root: Path, events: int = EVENTS) -> Path:
    repo = _repo(root, "mcp")
    specs = [EventSpec("pilot_registered", f"pilot/{p}", {"callsign": p}, actor=p) for p in PILOTS]
    specs += [_sortie(f"srt-{i:05d}", None, [], "medium") for i in range(2_000)]
    for i in range(events * 2 // 5 // 2):
        mid, sender, to = f"msg-{i:06d}", PILOTS[i % 20], PILOTS[(i + 1) % 20]
        data = {"message_id": mid, "to": [to], "subject": f"subject {i}", "body": f"body {i}"}
        specs.append(EventSpec("message_sent", f"message/{mid}", data, actor=sender))
        if i % 2:
            specs.append(
                EventSpec(
                    "message_read", f"message/{mid}", {"message_id": mid, "reader": to}, actor=to
                )
            )
    while len(specs) < events:
        p = PILOTS[len(specs) % 20]
        specs.append(EventSpec("pilot_active", f"pilot/{p}", {"status": "active"}, actor=p))
    with Fleet.open(repo, actor="bench", register=True) as fleet:
        for start in range(0, len(specs), 5000):
            fleet.emit_batch(specs[start : start + 5000])
        total = fleet.index.max_pos()
    print(f"  ledger: {total:,} events", file=sys.stderr, flush=True)
    return repo


def server(repo: Path, callsign: str) -> StdioServerParameters:
    script = Path(sys.executable).with_name("fleetgit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fleetgit"]
    return StdioServerParameters(
        command=command[0], args=[*command[1:], "--as", callsign, "mcp"], cwd=str(repo)
    )


async def _median(
    client: Client, tool: str, args: dict[str, Any], runs: int, refused: bool = False
) -> str:
    """`p50 ms p50 (min M)`: on a loaded machine the minimum says what a quiet one would."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await client.call_tool(tool, args)
        times.append((time.perf_counter() - t0) * 1000)
        if result.is_error != refused:
            raise RuntimeError(f"{tool}: {result.content}")
    return f"{statistics.median(times):.2f} ms p50 (min {min(times):.2f})"


def in_process(repo: Path, calls: list[tuple[str, dict[str, Any]]], runs: int) -> dict[str, float]:
    """The same calls through `Session.call` in this process: fleetgit's share of a tool call."""
    from fleetgit.agents.tools import Session

    session = Session.open(str(repo), "pilot-0")
    out = {}
    try:
        for tool, args in calls:
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                session.call(tool, args)
                times.append((time.perf_counter() - t0) * 1000)
            out[tool] = statistics.median(times)
    finally:
        session.close()
    return out


def set_fsync(repo: Path, value: str) -> None:
    config = repo / ".fleet" / "config.toml"
    lines = config.read_text().splitlines(keepends=True)
    config.write_text(
        "".join(f'fsync = "{value}"\n' if ln.startswith("fsync ") else ln for ln in lines)
    )


def run(root: Path, quick: bool = False) -> list[tuple[str, str, str, str]]:
    repo = build(root, 20_000 if quick else EVENTS)
    n = "20,000" if quick else "100,000"
    runs = 50 if quick else 300
    with Fleet.open(repo, actor="pilot-0") as fleet:
        sids = [sorties.create(fleet, f"bench {p}", files=[f"src/{p}.py"]) for p in PILOTS]
    rows: list[tuple[str, str, str, str]] = []
    reads = [
        ("check_paths", {"paths": ["src/pilot-1.py", "README.md"]}),
        ("inbox", {"unread": True, "limit": 20}),
        ("ready_sorties", {"limit": 20}),
        ("overview", {}),
    ]
    writes = [
        ("report_progress", {"sortie": sids[0], "percent": 50}),
        ("send_message", {"to": ["pilot-1"], "subject": "bench"}),
        ("reserve", {"patterns": ["src/pilot-0.py"]}),
    ]
    load = os.getloadavg()[0]

    async def one_client() -> None:
        async with Client(server(repo, "pilot-0")) as c:
            await c.list_tools()  # the SDK validates results against the listed schemas
            await c.call_tool("claim_sortie", {"sortie": sids[0]})
            await c.call_tool("start_sortie", {"sortie": sids[0]})
            floor = await _median(c, "no_such_tool", {}, runs, refused=True)
            rows.append(
                (
                    "MCP round trip floor (a call refused at once: SDK client + server, stdio)",
                    floor,
                    "",
                    f"load average {load:.1f} on {os.cpu_count()} cores",
                )
            )
            for tool, args in reads:
                ms = await _median(c, tool, args, runs)
                rows.append((f"MCP read tool `{tool}` ({n} events)", ms, "≤ 3 ms", ""))
            for tool, args in writes:
                ms = await _median(c, tool, args, runs)
                rows.append(
                    (
                        f"MCP write tool `{tool}` ({n} events, fsync on)",
                        ms,
                        "≤ 5 ms",
                        "",
                    )
                )

    anyio.run(one_client)
    inside = in_process(repo, reads + writes, runs // 2)
    set_fsync(repo, "never")
    unsynced = in_process(repo, writes, runs // 2)
    set_fsync(repo, "always")

    def share(what: str) -> str:
        tool = what.split("`")[1]
        text = f"{inside[tool]:.2f} ms of it in fleetgit (in process)"
        return text + (f"; {unsynced[tool]:.2f} ms with fsync off" if tool in unsynced else "")

    rows = [
        (what, value, target, share(what)) if "`" in what else (what, value, target, extra)
        for what, value, target, extra in rows
    ]
    for fsync in ("always", "never"):
        set_fsync(repo, fsync)
        rows.append(concurrent(repo, sids, 50 if quick else 250, fsync))
    set_fsync(repo, "always")
    for row in rows:
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def concurrent(
    repo: Path, sids: list[str], per_client: int, fsync: str
) -> tuple[str, str, str, str]:
    """CLIENTS agents at once, each a process of its own (an MCP client) with its own server
    process and pilot, on one clone: all writes over the time from the first start to the last
    end."""
    go = repo / ".git" / "bench-go"
    go.unlink(missing_ok=True)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.mcp",
                "--client",
                str(repo),
                PILOTS[i + 1],
                sids[i + 1],
                str(per_client),
                str(go),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for i in range(CLIENTS)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    spans = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"a client failed: {out}")
        spans.append(tuple(map(float, out.split())))
    go.unlink()
    elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
    writes = CLIENTS * per_client
    return (
        f"{CLIENTS} concurrent MCP clients (processes, a server each, one clone), fsync {fsync}",
        f"{writes / elapsed:,.0f} writes/s",
        "≥ 500 writes/s",
        f"{writes:,} writes in {elapsed:.2f} s",
    )


def client(repo: str, name: str, sid: str, count: int, go: str) -> None:
    """One agent of `concurrent`: claims and starts its sortie (a second round finds them so:
    refused, ignored), says ready, waits for `go`, then writes: progress and messages in turn.
    Prints when its writes began and ended (wall clock)."""

    async def main() -> None:
        async with Client(server(Path(repo), name)) as c:
            await c.call_tool("claim_sortie", {"sortie": sid})
            await c.call_tool("start_sortie", {"sortie": sid})
            print("ready", flush=True)
            while not os.path.exists(go):
                await anyio.sleep(0.002)
            begin = time.time()
            for k in range(count):
                if k % 2:
                    r = await c.call_tool("send_message", {"to": ["pilot-0"], "subject": "x"})
                else:
                    r = await c.call_tool("report_progress", {"sortie": sid, "percent": k % 100})
                if r.is_error:
                    raise RuntimeError(r.content)
            print(begin, time.time(), flush=True)

    anyio.run(main)


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:2] == ["--client"]:
        _, _, repo_, name_, sid_, count_, go_ = sys.argv
        client(repo_, name_, sid_, int(count_), go_)
        sys.exit(0)
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory(prefix="fleetgit-mcpbench-") as tmp:
        for row in run(Path(tmp), quick):
            print("| " + " | ".join(row) + " |")
