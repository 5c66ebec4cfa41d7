"""MCP benchmarks (`python -m bench.mcp`): tool calls through the MCP SDK's own client over stdio,
each against a real `fleetgit mcp` process, on a ledger of 100,000 events (fsync on, the default).

The ledger: 20 pilots, 2,000 open sorties, 40,000 messages (half of them read) and heartbeats up
to 100,000 events, in a repository whose last commit holds one source file per pilot. Read tools
and write tools are timed one call at a time (median of N), with the CPU time the client and the
server processes spent per call (from /proc: what a loaded machine moves least); `reserve` is
timed alternating with `release` of the same path, so every call finds the same state. Then 8
clients, each with its own server process and pilot, write at once (report_progress on a sortie
of their own, and send_message in turn) and the total writes per second is taken.

Floors in the same run: the SDK's own round trip (`ping`: the SDK's client, the pipe and the
SDK's server, no fleetgit code), alone and from 8 clients at once (the most requests per second
the SDK itself allows on this machine).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

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
    (repo / "src").mkdir()
    for p in PILOTS:
        (repo / "src" / f"{p}.py").write_text(f"# {p}\n")
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "add", "src"], cwd=repo, check=True)
    subprocess.run(["git", *ident, "commit", "-q", "-m", "src"], cwd=repo, check=True)
    print(f"  ledger: {total:,} events", file=sys.stderr, flush=True)
    return repo


def server(repo: Path, callsign: str) -> StdioServerParameters:
    script = Path(sys.executable).with_name("fleetgit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fleetgit"]
    return StdioServerParameters(
        command=command[0], args=[*command[1:], "--as", callsign, "mcp"], cwd=str(repo)
    )


Call = tuple[str, dict[str, Any]]


async def _ping(client: Client) -> None:
    """One round trip through the SDK alone: the protocol the SDK speaks by default (2026-07-28)
    has no `ping`, so the SDK's server refuses it (method not found) before any of fleetgit."""
    with contextlib.suppress(MCPError):
        await client.send_ping()


# the SDK's client warns on every ping that the protocol has none (what the floor relies on)
warnings.filterwarnings("ignore", message="ping is removed")


def _children_cpu() -> float:
    """CPU seconds (user + system) spent so far by this process's children (the servers)."""
    me, tick, total = os.getpid(), os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _timed(client: Client, cycle: list[Call], runs: int) -> dict[str, str]:
    """Each call of `cycle` in turn, `runs` rounds: per tool `p50 ms p50 (min M)` (on a loaded
    machine the minimum says what a quiet one would) and the CPU per round of the client and
    the server processes."""
    times: dict[str, list[float]] = {tool: [] for tool, _ in cycle}
    cpu0, server0 = time.process_time(), _children_cpu()
    for _ in range(runs):
        for tool, args in cycle:
            t0 = time.perf_counter()
            if tool == "ping":
                await _ping(client)
            else:
                result = await client.call_tool(tool, args)
                if result.is_error:
                    raise RuntimeError(f"{tool}: {result.content}")
            times[tool].append((time.perf_counter() - t0) * 1000)
    mine = (time.process_time() - cpu0) * 1000 / runs / len(cycle)
    theirs = (_children_cpu() - server0) * 1000 / runs / len(cycle)
    cpu = f"; CPU per call {mine:.2f} ms client + {theirs:.2f} ms server"
    return {
        tool: f"{statistics.median(ts):.2f} ms p50 (min {min(ts):.2f})" + cpu
        for tool, ts in times.items()
    }


def in_process(repo: Path, cycles: list[list[Call]], runs: int) -> dict[str, float]:
    """The same calls through `Session.call` in this process: fleetgit's share of a tool call."""
    from fleetgit.agents.tools import Session

    session = Session.open(str(repo), "pilot-0")
    out: dict[str, float] = {}
    try:
        for cycle in cycles:
            times: dict[str, list[float]] = {tool: [] for tool, _ in cycle}
            for _ in range(runs):
                for tool, args in cycle:
                    t0 = time.perf_counter()
                    session.call(tool, args)
                    times[tool].append((time.perf_counter() - t0) * 1000)
            out |= {tool: statistics.median(ts) for tool, ts in times.items()}
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
    reads: list[Call] = [
        ("check_paths", {"paths": ["src/pilot-1.py", "README.md"]}),
        ("inbox", {"unread": True, "limit": 20}),
        ("ready_sorties", {"limit": 20}),
        ("overview", {}),
    ]
    writes: list[list[Call]] = [
        [("report_progress", {"sortie": sids[0], "percent": 50})],
        [("send_message", {"to": ["pilot-1"], "subject": "bench"})],
        [  # a file in the work tree, as agents reserve: then released, so each call is alike
            ("reserve", {"patterns": ["src/pilot-0.py"]}),
            ("release", {"patterns": ["src/pilot-0.py"]}),
        ],
    ]
    absent: list[Call] = [  # a path not in the work tree yet: git is asked what is untracked
        ("reserve", {"patterns": ["src/new/module.py"]}),
        ("release", {"patterns": ["src/new/module.py"]}),
    ]
    load = os.getloadavg()[0]
    labels = {"reserve": "reserve` (a file in the work tree", "release": "release` (of it"}

    async def one_client() -> None:
        async with Client(server(repo, "pilot-0")) as c:
            await c.list_tools()  # the SDK validates results against the listed schemas
            await c.call_tool("claim_sortie", {"sortie": sids[0], "reserve": False})
            await c.call_tool("start_sortie", {"sortie": sids[0]})
            for tool, args in [*reads, *(call for cycle in writes for call in cycle), *absent]:
                await c.call_tool(tool, args)  # warm: every path imported once
            floor = (await _timed(c, [("ping", {})], runs))["ping"]
            rows.append(
                (
                    "MCP round trip floor (`ping`, refused by the SDK's server: the SDK alone)",
                    floor,
                    "",
                    f"load average {load:.1f} on {os.cpu_count()} cores",
                )
            )
            for call in reads:
                ms = (await _timed(c, [call], runs))[call[0]]
                rows.append((f"MCP read tool `{call[0]}` ({n} events)", ms, "≤ 3 ms", ""))
            for cycle in writes:
                for tool, ms in (await _timed(c, cycle, runs)).items():
                    what = labels.get(tool, f"{tool}`")
                    what += ", " if "(" in what else " ("
                    rows.append((f"MCP write tool `{what}{n} events, fsync on)", ms, "≤ 5 ms", ""))
            ms = (await _timed(c, absent, runs))["reserve"]
            rows.append(
                (
                    f"MCP write tool `reserve` (a path not in the work tree, {n} events, fsync on)",
                    ms,
                    "≤ 5 ms",
                    "",
                )
            )

    anyio.run(one_client)
    inside = in_process(repo, [[call] for call in reads] + writes, runs // 2)
    set_fsync(repo, "never")
    unsynced = in_process(repo, writes, runs // 2)
    set_fsync(repo, "always")

    def share(what: str) -> str:
        tool = what.split("`")[1]
        if tool not in inside or "not in the work tree" in what:
            return ""
        text = f"{inside[tool]:.2f} ms of it in fleetgit (in process)"
        return text + (f"; {unsynced[tool]:.2f} ms with fsync off" if tool in unsynced else "")

    rows = [
        (what, value, target, share(what)) if "`" in what else (what, value, target, extra)
        for what, value, target, extra in rows
    ]
    per_client = 50 if quick else 250
    rows.append(concurrent(repo, sids, per_client, "always", ping=True))
    for fsync in ("always", "never"):
        set_fsync(repo, fsync)
        rows.append(concurrent(repo, sids, per_client, fsync))
    set_fsync(repo, "always")
    for row in rows:
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def concurrent(
    repo: Path, sids: list[str], per_client: int, fsync: str, ping: bool = False
) -> tuple[str, str, str, str]:
    """CLIENTS agents at once, each a process of its own (an MCP client) with its own server
    process and pilot, on one clone: all writes over the time from the first start to the last
    end. `ping`: the floor, each client pinging its server instead of writing."""
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
                "ping" if ping else "write",
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
    if ping:
        return (
            f"{CLIENTS} concurrent MCP clients, `ping` (the SDK's floor for the row below)",
            f"{writes / elapsed:,.0f} requests/s",
            "",
            f"{writes:,} pings in {elapsed:.2f} s",
        )
    return (
        f"{CLIENTS} concurrent MCP clients (processes, a server each, one clone), fsync {fsync}",
        f"{writes / elapsed:,.0f} writes/s",
        "≥ 500 writes/s",
        f"{writes:,} writes in {elapsed:.2f} s",
    )


def client(repo: str, name: str, sid: str, count: int, go: str, what: str = "write") -> None:
    """One agent of `concurrent`: claims and starts its sortie (a second round finds them so:
    refused, ignored), lists the tools and writes once of each kind (as an agent's session
    starts, and as the single-call rows warm up: the server's first append loads the signing
    key and the modules a write needs, ~50 ms, which is not a write's cost), says ready, waits
    for `go`, then writes: progress and messages in turn. Prints when its writes began and
    ended (wall clock)."""

    async def main() -> None:
        async with Client(server(Path(repo), name)) as c:
            await c.call_tool("claim_sortie", {"sortie": sid})
            await c.call_tool("start_sortie", {"sortie": sid})
            await c.list_tools()  # the SDK validates results against the listed schemas
            if what != "ping":
                await c.call_tool("report_progress", {"sortie": sid, "percent": 0})
                await c.call_tool("send_message", {"to": ["pilot-0"], "subject": "warm"})
            print("ready", flush=True)
            while not os.path.exists(go):
                await anyio.sleep(0.002)
            begin = time.time()
            for k in range(count):
                if what == "ping":
                    await _ping(c)
                    continue
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
        _, _, repo_, name_, sid_, count_, go_, what_ = sys.argv
        client(repo_, name_, sid_, int(count_), go_, what_)
        sys.exit(0)
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory(prefix="fleetgit-mcpbench-") as tmp:
        for row in run(Path(tmp), quick):
            print("| " + " | ".join(row) + " |")
