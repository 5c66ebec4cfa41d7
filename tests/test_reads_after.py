"""`events --after POS` reads the positions after POS in total order, whichever way the index
reads them (by position for a short tail, by the total-order index otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.index import reads
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode


def _old_event(repo: Path, n: int) -> None:
    """An event another clone wrote a minute ago: it takes a new position but sorts earlier."""
    wdir = repo / ".fleet/events/zzzzzzzzzzzzzzzz"
    wdir.mkdir(parents=True, exist_ok=True)
    (eid,) = clock.uuid7s(1)
    then = clock.now_ms() - 60_000 + n
    event = Event(
        id=eid, type="pilot_active", v=1, stream="pilot/goose", seq=100 + n,
        hlc=clock.make_hlc(then), writer="z" * 16, wseq=n, actor="goose",
        ts=clock.iso_ms(then), tx=eid, txn=1, data={"status": "busy"},
    )  # fmt: skip
    with open(wdir / "00000001.jsonl", "ab") as fh:
        fh.write(encode(event))


def test_after_a_position_in_total_order_either_way(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch([EventSpec("pilot_active", "pilot/viper-1", {}) for _ in range(30)])
    for n in range(1, 6):
        _old_event(repo, n)
    with Fleet.open(repo) as fleet:
        last = fleet.index.max_pos()
        for after in range(0, last + 1):
            for reverse in (False, True):
                flt = reads.EventFilter(after_pos=after, limit=7, reverse=reverse)
                answers = []
                for tail in (0, 10**9):  # by the order index; by position
                    monkeypatch.setattr(reads, "TAIL_BY_POSITION", tail)
                    answers.append([e.id for e in fleet.events(flt)])
                expected = sorted(
                    (e for e in fleet.events(reads.EventFilter()) if (e.pos or 0) > after),
                    key=Event.order_key,
                    reverse=reverse,
                )[:7]
                assert answers[0] == answers[1] == [e.id for e in expected], (after, reverse)
