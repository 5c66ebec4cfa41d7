"""Real processes: concurrent appends lose nothing, SIGKILL loses no acknowledged event."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetgit.fleet import Fleet
from tests.test_merge import snapshot

APPENDER = """
import sys
from fleetgit.fleet import EventSpec, Fleet
repo, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Fleet.open(repo, actor=name, register=True) as fleet:  # its first write registers it
    for i in range(count):
        if i % 3 == 2:
            specs = [EventSpec("mission_created", f"mission/{name}-{i}-{k}",
                               {"mission_id": f"{name}-{i}-{k}", "title": "t"}) for k in range(3)]
            events = fleet.emit_batch(specs)
        else:
            events = [fleet.emit("mission_created", f"mission/{name}-{i}",
                                 {"mission_id": f"{name}-{i}", "title": "t"})]
        for e in events:
            print(e.id, flush=True)
"""


def spawn(repo: Path, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(repo), name, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_writer_sequences(repo: Path) -> None:
    with Fleet.open(repo) as fleet:
        events = fleet.events()
    by_writer: dict[str, list[int]] = {}
    for e in events:
        by_writer.setdefault(e.writer, []).append(e.wseq)
    for wseqs in by_writer.values():
        assert sorted(wseqs) == list(range(1, len(wseqs) + 1))


def test_eight_processes_append_at_once(repo: Path, cli: Any) -> None:
    procs = [spawn(repo, f"pilot-{n}", 30) for n in range(8)]
    acked: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        acked.extend(out.split())
    assert len(acked) == 8 * (20 + 10 * 3)
    with Fleet.open(repo) as fleet:
        ids = [e.id for e in fleet.events(types=("mission_created",))]
    assert len(ids) == len(set(ids)) == len(acked)
    assert set(ids) == set(acked)
    check_writer_sequences(repo)
    assert cli(repo, "verify").code == 0


def read_acks(procs: list[subprocess.Popen[str]], more: int) -> list[bytes]:
    """Read the children's acknowledgements until every child has printed at least one and
    `more` further lines have come: evidence that each is appending, not a guessed time (a
    loaded machine may take seconds to start a child). A child that ends first fails here."""
    got = [b""] * len(procs)
    fds = {p.stdout.fileno(): n for n, p in enumerate(procs) if p.stdout is not None}
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        while min(g.count(b"\n") for g in got) < 1 or sum(g.count(b"\n") for g in got) < more:
            ready = sel.select(timeout=120)
            assert ready, "no child printed an event in 120 s"
            for key, _ in ready:
                n = fds[key.fd]
                chunk = os.read(key.fd, 65536)
                assert chunk, procs[n].communicate()[1]  # it ended: say why
                got[n] += chunk
    return got


def test_sigkill_loses_no_acknowledged_event(repo: Path, cli: Any) -> None:
    rng = random.Random(7)
    acked: set[str] = set()
    for _round in range(6):
        procs = [spawn(repo, f"k{_round}-{n}", 10_000) for n in range(3)]
        early = read_acks(procs, rng.randrange(3, 40))  # then killed at a random point
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
        for p, seen in zip(procs, early, strict=True):
            out, _ = p.communicate(timeout=60)
            acked.update((seen.decode() + out).split())  # each was acknowledged by emit
    assert len(acked) >= 6 * 3
    with Fleet.open(repo) as fleet:  # the next open repairs a torn tail
        ids = {e.id for e in fleet.events(types=("mission_created",))}
    assert acked <= ids
    assert cli(repo, "verify").code == 0, cli(repo, "verify").out
    check_writer_sequences(repo)
    before = snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert snapshot(repo) == before


def test_processes_in_two_worktrees(repo: Path, tmp_path: Path, cli: Any) -> None:
    from tests.conftest import git

    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(wt))
    Fleet.open(wt).close()
    procs = [spawn(repo if n % 2 else wt, f"p{n}", 20) for n in range(4)]
    total = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        total += len(out.split())
    with Fleet.open(repo) as fleet:
        events = fleet.events(types=("mission_created",))
    assert len(events) == total and len({e.writer for e in events}) == 2
    check_writer_sequences(repo)
