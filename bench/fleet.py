"""Fleet benchmarks, end to end as processes: mission show, sortie list --ready, squawk inbox,
resume. Ledgers are generated through the Python API."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fleetgit.fleet import EventSpec, Fleet, init


def fleetgit_command() -> list[str]:
    """The `fleetgit` console script users run, beside this interpreter."""
    script = Path(sys.executable).with_name("fleetgit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fleetgit"]


def _repo(root: Path, name: str) -> Path:
    repo = root / name
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    init(repo)
    return repo


def _emit(repo: Path, specs: list[EventSpec], actor: str = "bench") -> None:
    with Fleet.open(repo, actor=actor, register=True) as fleet:
        for start in range(0, len(specs), 5000):
            fleet.emit_batch(specs[start : start + 5000])


def _sortie(sid: str, mission: str | None, deps: list[str], priority: str) -> EventSpec:
    data = {
        "sortie_id": sid,
        "mission_id": mission,
        "title": f"sortie {sid}",
        "priority": priority,
        "files": [f"src/{sid}.py"],
        "depends_on": deps,
    }
    return EventSpec("sortie_created", f"sortie/{sid}", data)


def _time(cmd: list[str], runs: int = 11) -> float:
    env = {**os.environ, "FLEET_CALLSIGN": "pilot-0"}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(root: Path) -> list[tuple[str, str, str, str]]:
    cli = fleetgit_command()
    rows = []
    repo = _repo(root, "mission")
    specs = [
        EventSpec("mission_created", "mission/msn-big", {"mission_id": "msn-big", "title": "big"})
    ]
    specs += [_sortie(f"srt-{i:05d}", "msn-big", [], "medium") for i in range(1000)]
    _emit(repo, specs)
    ms = _time([*cli, "-C", str(repo), "mission", "show", "msn-big"])
    rows.append(("`mission show` with 1,000 sorties", f"{ms:.0f} ms median", "≤ 100 ms", ""))

    repo = _repo(root, "ready")
    prios = ("low", "medium", "high", "critical")
    specs = [
        _sortie(f"srt-{i:05d}", None, [f"srt-{i - 1:05d}"] if i % 3 else [], prios[i % 4])
        for i in range(10_000)
    ]
    _emit(repo, specs)
    ms = _time([*cli, "-C", str(repo), "sortie", "list", "--ready"])
    rows.append(
        (
            "`sortie list --ready` over 10,000 sorties with dependencies",
            f"{ms:.0f} ms median",
            "≤ 150 ms",
            "",
        )
    )

    repo = _repo(root, "inbox")
    pilots = [f"pilot-{i}" for i in range(20)]
    specs = [EventSpec("pilot_registered", f"pilot/{p}", {"callsign": p}) for p in pilots]
    for i in range(100_000):
        mid = f"msg-{i:06d}"
        specs.append(
            EventSpec(
                "message_sent",
                f"message/{mid}",
                {
                    "message_id": mid,
                    "to": [pilots[i % 20]],
                    "subject": f"subject {i}",
                    "body": f"body of message {i}",
                    "thread_id": mid,
                },
            )
        )
    _emit(repo, specs)
    ms = _time([*cli, "-C", str(repo), "squawk", "inbox", "--unread"])
    rows.append(
        (
            "`squawk inbox` with 100,000 messages in the ledger",
            f"{ms:.0f} ms median",
            "≤ 100 ms",
            "5,000 of them in this inbox",
        )
    )

    with Fleet.open(repo, actor="pilot-0") as fleet:
        from fleetgit.domain.checkpoints import commands as checkpoints

        fleet.reserve(["src/parser/"])
        checkpoints.create(fleet, summary="benchmark", next_steps=["go on"])
    ms = _time([*cli, "-C", str(repo), "resume", "--latest"])
    rows.append(("`resume --latest` (same ledger)", f"{ms:.0f} ms median", "≤ 200 ms", ""))
    for row in rows:
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fleetgit-fleetbench-") as tmp:
        for row in run(Path(tmp)):
            print("| " + " | ".join(row) + " |")
