"""`events --after POS` reads the positions after POS by position."""

from __future__ import annotations

from pathlib import Path

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


def test_after_a_position_by_position_either_way(repo: Path) -> None:
    """Positions after POS, in position order (newest first with reverse), filters applied:
    what a reader that pages on with the last position it got needs, also when a merge brought
    events that sort earlier than ones it already has."""
    config = repo / ".fleet/config.toml"  # the other clone's lines are unsigned
    config.write_text(config.read_text().replace('trust = "require"', 'trust = "off"'))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch([EventSpec("pilot_active", "pilot/viper-1", {}) for _ in range(30)])
    for n in range(1, 6):
        _old_event(repo, n)
    with Fleet.open(repo) as fleet:
        everything = fleet.events(reads.EventFilter())
        assert [e.pos for e in everything] != sorted(e.pos or 0 for e in everything)  # merged
        last = fleet.index.max_pos()
        for after in range(0, last + 1):
            for reverse in (False, True):
                for actor in (None, "goose"):
                    flt = reads.EventFilter(after_pos=after, limit=7, reverse=reverse, actor=actor)
                    expected = sorted(
                        (e for e in everything if (e.pos or 0) > after)
                        if actor is None
                        else (e for e in everything if (e.pos or 0) > after and e.actor == actor),
                        key=lambda e: e.pos or 0,
                        reverse=reverse,
                    )[:7]
                    got = [e.id for e in fleet.events(flt)]
                    assert got == [e.id for e in expected], (after, reverse, actor)
        # paging on from the last position of each page lists every event exactly once
        seen, after = [], 0
        while page := fleet.events(reads.EventFilter(after_pos=after, limit=4)):
            seen += [e.id for e in page]
            after = page[-1].pos or 0
        assert sorted(seen) == sorted(e.id for e in everything) and len(set(seen)) == len(seen)
