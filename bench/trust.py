"""Signed events (issue 17): what signing adds to a durable append, and what checking the
signatures adds to a rebuild. Ratios against a run without them in the same process,
interleaved, so that the machine's load falls on both alike. `python -m bench.trust [N]`.

Not a test: nothing here asserts a time. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.fleet import EventSpec, Fleet, init
from fleetgit.index import trust
from fleetgit.ledger import clock, keys, sigs
from fleetgit.ledger.codec import Event, encode

PILOTS = ("viper-1", "goose", "ice", "maverick")


def _repo(root: Path, name: str) -> Path:
    repo = root / name
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    init(repo)
    with Fleet.open(repo) as fleet:
        fleet.emit_batch(
            [EventSpec("pilot_registered", f"pilot/{p}", {"callsign": p}, actor=p) for p in PILOTS]
        )
    return repo


def _with_trust(fleet: Fleet, policy: str) -> None:
    fleet.config = fleet.config._replace(trust=policy)
    fleet.index.config = fleet.config


def append_cost(
    root: Path, runs: int = 200, cpu: list[float] | None = None
) -> tuple[float, float, float]:
    """Median ms of one durable (fsync) single-event append, trust off vs require (two
    ledgers, appended to in turn), and the median ms of the signing step alone (Fleet._sign).
    `cpu`, when given, receives the same three in CPU time of this thread (the fsync's wait
    and the other processes of a loaded machine left out)."""
    off: list[float] = []
    on: list[float] = []
    sign: list[float] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    cpu_sign: list[float] = []
    fleets = []
    for policy in ("off", "require"):
        fleet = Fleet.open(_repo(root, f"append-{policy}"), actor="viper-1")
        _with_trust(fleet, policy)
        fleets.append(fleet)
    real = fleets[1]._sign

    def timed(*args: Any) -> list[bytes]:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = real(*args)
        cpu_sign.append((time.thread_time() - c0) * 1000)
        sign.append((time.perf_counter() - t0) * 1000)
        return out

    fleets[1]._sign = timed  # type: ignore[method-assign,assignment]
    try:
        for i in range(runs):
            for fleet, out, out_cpu in zip(fleets, (off, on), (cpu_off, cpu_on), strict=True):
                spec = EventSpec("pilot_active", "pilot/viper-1", {"current_task": f"t{i}"})
                t0, c0 = time.perf_counter(), time.thread_time()
                fleet.emit_batch([spec])
                out_cpu.append((time.thread_time() - c0) * 1000)
                out.append((time.perf_counter() - t0) * 1000)
    finally:
        for fleet in fleets:
            fleet.close()
    if cpu is not None:
        cpu[:] = [statistics.median(x) for x in (cpu_off, cpu_on, cpu_sign)]
    return statistics.median(off), statistics.median(on), statistics.median(sign)


def sign_floor(runs: int = 2000) -> float:
    """Median CPU µs of one Ed25519 signature of 32 bytes: the floor of the signing step."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key, msg, out = Ed25519PrivateKey.generate(), bytes(32), []
    for _ in range(runs):
        c0 = time.thread_time()
        key.sign(msg)
        out.append((time.thread_time() - c0) * 1e6)
    return statistics.median(out)


def _ledger(repo: Path, events: int, per_batch: int = 2, per_segment: int = 10_000) -> None:
    """`events` signed events in batches of `per_batch` by the PILOTS in turn, written as a
    writer would (segments of `per_segment` events)."""
    common = repo / ".git"
    writer = "benchwriter00001"
    folder = repo / ".fleet/events" / writer
    folder.mkdir(parents=True)
    ms = clock.now_ms()  # after the registrations: a key counts from its addition on
    hlc = clock.make_hlc(ms)
    wseq = 0
    for number in range(1, events // per_segment + 1):
        base = sigs.genesis(writer, number)
        out: list[bytes] = []
        for b in range(per_segment // per_batch):
            actor = PILOTS[b % len(PILOTS)]
            ids = clock.uuid7s(per_batch)
            batch: list[Event] = []
            for eid in ids:
                hlc, wseq = hlc + 1, wseq + 1
                data = {"current_task": f"task {wseq}", "status": None}
                batch.append(
                    Event(
                        eid, "pilot_active", 1, f"pilot/{actor}", wseq, hlc, writer, wseq, actor,
                        clock.iso_ms(ms), ids[0], per_batch, data,
                    )
                )  # fmt: skip
            lines = [encode(e) for e in batch]
            signed = trust.sign_batch(lines, batch, number, base, lambda a: keys.load(common, a))
            base = sigs.chain(base, signed)
            out += signed
        (folder / f"{number:08d}.jsonl").write_bytes(b"".join(out))


def rebuild_cost(root: Path, events: int, runs: int = 3) -> tuple[float, float, float, float]:
    """Median seconds of `index rebuild` of `events` signed events, trust off vs require:
    wall time, then CPU time of the process (every thread: the rebuild's sorter included)."""
    repo = _repo(root, "rebuild")
    _ledger(repo, events)
    off: list[float] = []
    on: list[float] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    with Fleet.open(repo) as fleet:
        for _ in range(runs):
            for policy, out, cpu in (("off", off, cpu_off), ("require", on, cpu_on)):
                _with_trust(fleet, policy)
                t0, c0 = time.perf_counter(), time.process_time()
                result = fleet.rebuild()
                out.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                assert result.new_events >= events, (policy, result.new_events)
        bad = fleet.index.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        assert bad == 0, f"{bad} events quarantined"
    med = statistics.median
    return med(off), med(on), med(cpu_off), med(cpu_on)


def verify_cost(root: Path, events: int, runs: int = 3) -> tuple[float, float]:
    """Best CPU seconds of `verify` (in process) over `events` signed events, trust off vs
    require: what checking every signature again from the segments adds (index/recheck.py)."""
    from fleetgit.index.verify import verify

    repo = _repo(root, "verify")
    _ledger(repo, events)
    off: list[float] = []
    on: list[float] = []
    with Fleet.open(repo) as fleet:
        for _ in range(runs):
            for policy, out in (("off", off), ("require", on)):
                config = fleet.config._replace(trust=policy)
                c0 = time.process_time()
                report = verify(fleet.paths, config)
                out.append(time.process_time() - c0)
                assert report.events >= events and not report.failed(), report.summary()
    return min(off), min(on)


def run(root: Path, quick: bool = False) -> list[tuple[str, str, str, str]]:
    """Rows for `make bench` (bench/__main__.py)."""
    events = 10_000 if quick else 40_000
    off, on, sign = append_cost(root, runs=50 if quick else 200)
    r_off, r_on, c_off, c_on = rebuild_cost(root, events)
    v_off, v_on = verify_cost(root, events)
    return [
        (
            "signing, per durable append (median)",
            f"{sign:.3f} ms (append {off:.2f} → {on:.2f} ms)",
            "≤ 0.2 ms",
            "trust off vs require, two ledgers in turn",
        ),
        (
            f"rebuild of {events:,} signed events, checked",
            f"{100 * (c_on / c_off - 1):+.1f} % CPU ({c_off:.2f} → {c_on:.2f} s; wall"
            f" {r_off:.2f} → {r_on:.2f} s)",
            "≤ +15 %",
            "trust off vs require, interleaved",
        ),
        (
            f"verify of {events:,} signed events, signatures checked again",
            f"{100 * (v_on / v_off - 1):+.1f} % ({v_off:.2f} → {v_on:.2f} s CPU)",
            "(keep it fast)",
            "trust off vs require, in process, best of 3",
        ),
    ]


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    assert CATALOGUE
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cpu: list[float] = []
        off, on, sign = append_cost(root, cpu=cpu)
        c_off, c_on, c_sign = cpu
        print("| what | trust off | trust require | added |")
        print("|---|---|---|---|")
        print(f"| durable append, 1 event (median ms) | {off:.3f} | {on:.3f} | {on - off:+.3f} |")
        print(
            f"| durable append, 1 event (median CPU ms) | {c_off:.3f} | {c_on:.3f} |"
            f" {c_on - c_off:+.3f} (×{c_on / c_off:.2f}) |"
        )
        print(f"| the signing step alone (median ms; CPU ms) | | {sign:.3f}; {c_sign:.3f} | |")
        print(f"| floor: one Ed25519 signature (median CPU µs) | | {sign_floor():.1f} | |")
        v_off, v_on = verify_cost(root, events)
        print(
            f"| verify of {events} signed events (CPU s, best of 3) | {v_off:.2f} | {v_on:.2f} |"
            f" {100 * (v_on / v_off - 1):+.1f} % |"
        )
        runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
        r_off, r_on, c_off, c_on = rebuild_cost(root, events, runs)
        for what, a, b in (("wall", r_off, r_on), ("CPU", c_off, c_on)):
            print(
                f"| rebuild of {events} signed events, batches of 2, {what} (s, µs/event) |"
                f" {a:.2f} ({a / events * 1e6:.1f}) | {b:.2f} ({b / events * 1e6:.1f}) |"
                f" {100 * (b / a - 1):+.1f} % |"
            )


if __name__ == "__main__":
    main()
