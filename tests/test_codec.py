"""Codec, clock and order: round trips, canonical bytes, a total order independent of delivery."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.ledger import clock
from fleetgit.ledger.codec import DecodeError, Event, decode, encode
from fleetgit.ledger.segments import parse

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text(alphabet="0123456789abcdef-", min_size=8, max_size=36)

events = st.builds(
    Event,
    id=ids,
    type=st.sampled_from(["mission_created", "sortie_progress", "message_sent"]),
    v=st.integers(1, 5),
    stream=st.from_regex(r"\A(mission|sortie)/[a-z0-9-]{1,12}\Z"),
    seq=st.integers(1, 10**9),
    hlc=st.integers(0, 2**62),
    writer=st.from_regex(r"\A[0-9a-z]{16}\Z"),
    wseq=st.integers(1, 10**9),
    actor=st.none() | st.text(min_size=1, max_size=20),
    ts=st.text(max_size=30),
    tx=ids,
    txn=st.just(1),
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    causation_id=st.none() | ids,
    correlation_id=st.none() | ids,
    pos=st.none(),  # local to an index: never encoded
)


@given(events)
def test_round_trip_is_exact_and_canonical(event: Event) -> None:
    line = encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == event
    assert encode(decode(line)) == line


@given(events)
def test_encoding_sorts_keys_at_every_level(event: Event) -> None:
    line = encode(event)
    assert line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) + b"\n"


@given(st.binary(max_size=200))
def test_decode_rejects_garbage_with_a_reason(raw: bytes) -> None:
    try:
        decode(raw)
    except DecodeError as exc:
        assert str(exc)


@given(st.lists(events, min_size=1, max_size=30, unique_by=lambda e: e.id), st.randoms())
def test_total_order_does_not_depend_on_delivery(batch: list[Event], rnd: object) -> None:
    shuffled = list(batch)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sorted(batch, key=Event.order_key) == sorted(shuffled, key=Event.order_key)


@given(st.integers(0, 2**40), st.integers(0, 2**40))
def test_hlc_ticks_never_go_back(last_ms: int, wall: int) -> None:
    last = clock.make_hlc(last_ms, 65535)
    nxt = clock.tick(last, wall)
    assert nxt > last
    assert clock.hlc_ms(nxt) >= wall or clock.hlc_ms(nxt) >= last_ms


def test_uuid7_is_unique_and_time_sortable() -> None:
    made = [u for _ in range(1000) for u in clock.uuid7s(1)] + clock.uuid7s(1000)
    assert len(set(made)) == 2000
    parsed = [uuid.UUID(u) for u in made]
    assert all(str(p) == u for p, u in zip(parsed, made, strict=True))
    assert {(p.version, p.variant) for p in parsed} == {(7, uuid.RFC_4122)}
    assert [u[:13] for u in made] == sorted(u[:13] for u in made)
    # 74 random bits: across a batch every variant nibble and random position varies
    assert {u[19] for u in made} == set("89ab")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(events, min_size=1, max_size=5), min_size=1, max_size=4), st.randoms())
def test_index_order_is_the_same_whatever_order_segments_arrive(
    files: list[list[Event]], rnd: object
) -> None:
    """Two SQLite tables filled from the same segments in different orders list the same order."""
    seen: set[str] = set()
    segs = []
    for f in files:
        uniq = [e for e in f if e.id not in seen and not seen.add(e.id)]  # type: ignore[func-returns-value]
        segs.append(b"".join(encode(e) for e in uniq))
    order = list(range(len(segs)))
    rnd.shuffle(order)  # type: ignore[attr-defined]

    def listing(sequence: list[int]) -> list[str]:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE e (id TEXT PRIMARY KEY, hlc INT, writer TEXT, wseq INT)")
        for i in sequence:
            for ev, _ in parse(segs[i], types=CATALOGUE).events:
                conn.execute(
                    "INSERT OR IGNORE INTO e VALUES (?,?,?,?)", (ev.id, ev.hlc, ev.writer, ev.wseq)
                )
        return [r[0] for r in conn.execute("SELECT id FROM e ORDER BY hlc, writer, wseq")]

    assert listing(list(range(len(segs)))) == listing(order)


def test_parse_keeps_only_complete_batches(tmp_path: Path) -> None:
    ids = {name: str(uuid.UUID(int=i + 1)) for i, name in enumerate("abcdz")}

    def ev(i: int, tx: str, txn: int) -> Event:
        return Event(
            id=str(uuid.UUID(int=1000 + i)),
            type="pilot_active",
            v=1,
            stream="pilot/p",
            seq=i,
            hlc=i,
            writer="w" * 16,
            wseq=i,
            actor=None,
            ts="",
            tx=ids[tx],
            txn=txn,
            data={},
        )

    full = encode(ev(1, "a", 1)) + encode(ev(2, "b", 2)) + encode(ev(3, "b", 2))
    partial = encode(ev(4, "c", 3)) + encode(ev(5, "c", 3))
    parsed = parse(full + partial, types=CATALOGUE)
    assert [e.wseq for e, _ in parsed.events] == [1, 2, 3]
    assert parsed.good_end == len(full) and parsed.torn_tail
    broken_mid = encode(ev(1, "a", 2)) + encode(ev(6, "z", 1))
    parsed = parse(broken_mid, types=CATALOGUE)
    assert [e.wseq for e, _ in parsed.events] == [6]
    assert any("incomplete batch" in what for _, what in parsed.problems)
    no_newline = full + encode(ev(7, "d", 1))[:-1]
    assert parse(no_newline, types=CATALOGUE).good_end == len(full)
