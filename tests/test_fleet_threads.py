"""Threads (docs/design.md, "Threads"): a `Fleet` and its `Index` are used by one thread at a
time; threads open their own, as processes do, and share only what the process keeps for
every index it opens (index/store.py: the fds held of each file and the count of connections on
it), which is changed under a lock."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.index import store


def test_the_process_s_counts_of_index_users_survive_threads_at_once(repo: Path) -> None:
    """Eight threads opening and closing their own Fleet on one index, with the GIL switching
    as often as it can: the count of connections on each file ends at zero (a lost update left
    it above, so the fds held of a retired file were never let go; below, they would be closed
    while a connection was on it, dropping its SQLite locks)."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.rebuild()
        file = str(fleet.index.file)
    before = dict(store._USERS)
    assert file not in before

    def churn() -> None:
        for _ in range(50000):
            store._use(file, 1)
            store._use(file, -1)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=churn) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert before == store._USERS


def test_threads_each_with_their_own_fleet_append_without_loss(repo: Path) -> None:
    """The rule fleetgit itself follows (web threads, the MCP server's event loop): each thread
    its own Fleet, the writer's lock between them: every event kept once, wseqs dense."""
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with Fleet.open(repo, actor="viper-1") as fleet:
                for i in range(10):
                    mid = f"t{k}-{i}"
                    fleet.emit_batch(
                        [
                            EventSpec(
                                "mission_created",
                                f"mission/{mid}",
                                {"mission_id": mid, "title": "t"},
                            )
                        ]
                    )
        except BaseException as exc:  # raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Fleet.open(repo) as fleet:
        conn = fleet.index.conn
        (n,) = conn.execute("SELECT count(*) FROM events WHERE type = 'mission_created'").fetchone()
        assert n == 40
        (lo, hi, m) = conn.execute(
            "SELECT min(wseq), max(wseq), count(*) FROM events GROUP BY writer"
            " ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        assert hi - lo + 1 == m
        assert not fleet.verify().failed()
