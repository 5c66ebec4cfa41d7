"""Projections: whatever order events arrive in, the index equals a rebuild (hypothesis)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.git.paths import RepoPaths
from fleetgit.index import IngestResult
from fleetgit.index.projections import TABLES, rebuild
from fleetgit.index.store import IndexDB
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode
from fleetgit.ledger.config import Config

PILOTS = ["viper", "goose", "ice"]
SORTIES = ["s1", "s2", "s3"]


Item = tuple[str, str, dict[str, Any]] | tuple[str, str, dict[str, Any], str]


def sortie_event(kind: str, sid: str, who: str, other: str | None) -> Item:
    """One sortie event by `who` (the assignee-only ones count only from the assignee);
    `other`: a claim's previous assignee (None: an open sortie's first claim), or whom an
    update makes it depend on (None: no dependencies), so merges can close a cycle."""
    data: dict[str, Any] = {"sortie_id": sid}
    if kind == "sortie_created":
        data.update(title=f"t-{sid}", depends_on=[x for x in SORTIES if x < sid])
    elif kind == "sortie_assigned":
        data.update(assignee=who, previous_assignee=other)
    elif kind == "sortie_progress":
        data.update(percent=len(who) * 10)
    elif kind == "sortie_blocked":
        data.update(reason="stuck")
    elif kind == "sortie_updated" and other is None:
        data.update(changes={"priority": "high", "depends_on": []})
    elif kind == "sortie_updated":
        data.update(changes={"depends_on": [SORTIES[PILOTS.index(other) % len(SORTIES)]]})
    return kind, f"sortie/{sid}", data, who


KINDS = [
    "sortie_created",
    "sortie_assigned",
    "sortie_started",
    "sortie_progress",
    "sortie_blocked",
    "sortie_resumed",
    "sortie_updated",
    "sortie_completed",
    "sortie_cancelled",
    "sortie_unclaimed",
]
OTHER = [
    ("mission_created", "mission/m1", {"mission_id": "m1", "title": "m"}),
    ("mission_started", "mission/m1", {"mission_id": "m1"}),
    ("mission_completed", "mission/m1", {"mission_id": "m1", "result": "partial"}),
    ("pilot_registered", "pilot/viper", {"callsign": "viper"}),
    ("pilot_registered", "pilot/viper", {"callsign": "viper", "model": "m2"}),
    ("pilot_active", "pilot/viper", {"status": "busy"}),
    ("pilot_deregistered", "pilot/viper", {"reason": "done"}),
    # a bad value that an older version let into the ledger: ignored the same way everywhere
    (
        "mission_updated",
        "mission/m1",
        {"mission_id": "m1", "changes": {"priority": "x", "title": "u"}},
    ),
    (
        "file_reserved",
        "reservation/r1",
        {
            "reservation_id": "r1",
            "holder": "viper",
            "patterns": ["a/", "b"],
            "exclusive": True,
            "ttl_seconds": 60,
        },
    ),
    ("file_renewed", "reservation/r1", {"reservation_id": "r1", "ttl_seconds": 600}),
    ("file_released", "reservation/r1", {"reservation_id": "r1"}),
    # clashes a merge can bring in (index.clashes): r2 with r1, r3 with both, a chain
    (
        "file_reserved",
        "reservation/r2",
        {
            "reservation_id": "r2",
            "holder": "goose",
            "patterns": ["a/x"],
            "exclusive": False,
            "ttl_seconds": 60,
        },
    ),
    (
        "file_reserved",
        "reservation/r3",
        {"reservation_id": "r3", "holder": "ice", "patterns": ["a/*/y"], "exclusive": True},
    ),
    ("file_renewed", "reservation/r2", {"reservation_id": "r2", "ttl_seconds": 0}),
    ("file_released", "reservation/r2", {"reservation_id": "r2"}),
    (
        "message_sent",
        "message/q1",
        {"message_id": "q1", "to": ["goose"], "cc": ["ice"], "subject": "s", "body": "b"},
    ),
    ("message_sent", "message/q2", {"message_id": "q2", "to": ["ice"], "subject": "t"}),
    ("message_read", "message/q1", {"message_id": "q1", "reader": "goose"}),
    ("message_acknowledged", "message/q1", {"message_id": "q1", "by": "ice", "notes": "ok"}),
    ("message_archived", "message/q1", {"message_id": "q1", "by": "goose"}),
    ("lock_acquired", "lock/db", {"lock_key": "db", "holder": "viper", "ttl_seconds": 60}),
    ("lock_released", "lock/db", {"lock_key": "db", "holder": "viper"}),
    (
        "work_order_created",
        "workorder/w1",
        {"work_order_id": "w1", "sortie_id": "s1", "title": "w"},
    ),
    ("work_order_status_changed", "workorder/w1", {"work_order_id": "w1", "status": "blocked"}),
    ("work_order_assigned", "workorder/w1", {"work_order_id": "w1", "assignee": "goose"}),
    ("lock_acquired", "lock/db", {"lock_key": "db", "holder": "goose", "ttl_seconds": 0}),
    ("lock_timeout", "lock/db", {"lock_key": "db", "holder": "goose"}),
    ("checkpoint_created", "checkpoint/c1", {"checkpoint_id": "c1", "next_steps": ["x"]}),
    ("checkpoint_restored", "checkpoint/c1", {"checkpoint_id": "c1"}),
    ("checkpoint_deleted", "checkpoint/c1", {"checkpoint_id": "c1"}),
]

steps = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(KINDS),
            st.sampled_from(SORTIES),
            st.sampled_from(PILOTS),
            st.sampled_from([None, *PILOTS]),
        ).map(lambda t: sortie_event(*t)),
        st.sampled_from(OTHER),
    ),
    min_size=1,
    max_size=30,
)


def build_events(items: list[Item]) -> list[tuple[Event, bytes]]:
    """Events in this order of HLC, each by its item's actor (or by one of PILOTS in turn)."""
    out = []
    for i, (etype, stream, data, *actor) in enumerate(items, 1):
        e = Event(
            id=f"e{i:04d}",
            type=etype,
            v=1,
            stream=stream,
            seq=i,
            hlc=clock.make_hlc(10**12 + i),
            writer="w" * 16,
            wseq=i,
            actor=actor[0] if actor else PILOTS[i % 3],
            ts="",
            tx=f"e{i:04d}",
            txn=1,
            data=data,
        )
        out.append((e, encode(e)))
    return out


def tables(db: IndexDB, *, positions: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row; without the positions, which are local to each index, unless
    the indexes being compared got the events in the same order."""
    out = {}
    for t in TABLES:
        cols = [
            r[1]
            for r in db.conn.execute(f"PRAGMA table_info({t})")
            if positions or not (r[1] == "rid" or r[1].endswith("_pos"))
        ]
        out[t] = sorted(db.conn.execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall(), key=repr)
    return out


def fresh_db(root: Path, name: str) -> IndexDB:
    common = root / name
    common.mkdir(parents=True)
    return IndexDB(RepoPaths(root, common, common), Config())


def assert_folds_like_a_rebuild(
    root: Path, arrival: list[tuple[Event, bytes]], chunk: int, *, positions: bool
) -> None:
    """Ingest `arrival` in its order, `chunk` per catch-up, and compare every table with a
    rebuild from the events in total order; positions too when they arrived in that order."""
    incremental = fresh_db(root, "a")
    for start in range(0, len(arrival), chunk):
        with incremental.transaction():
            incremental.ingest(arrival[start : start + chunk], IngestResult())
    rebuilt = fresh_db(root, "b")
    with rebuilt.transaction():
        rebuilt.ingest(sorted(arrival, key=lambda item: item[0].order_key()), IngestResult())
        rebuild(rebuilt.conn)  # refold everything from scratch
    assert tables(incremental, positions=positions) == tables(rebuilt, positions=positions)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps, st.randoms(), st.integers(1, 5))
def test_any_arrival_order_folds_like_a_rebuild(
    tmp_path_factory: Any, items: list[Any], rnd: Any, chunk: int
) -> None:
    arrival = build_events(items)
    rnd.shuffle(arrival)
    assert_folds_like_a_rebuild(tmp_path_factory.mktemp("proj"), arrival, chunk, positions=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps, st.integers(1, 5))
def test_appends_in_total_order_fold_onto_the_stored_rows_like_a_rebuild(
    tmp_path_factory: Any, items: list[Any], chunk: int
) -> None:
    """Each chunk sorts after everything before it, as appends do: every stream that already
    had events is folded onto its stored rows (the resumable modules), never from scratch."""
    root = tmp_path_factory.mktemp("resume")
    events = build_events(items)
    assert_folds_like_a_rebuild(root, events, chunk, positions=True)


def test_each_resumable_fold_continues_from_its_stored_rows(tmp_path: Path) -> None:
    """Every kind of stream, one event per append, in total order: each append folds the new
    event onto what the last fold stored, and the result equals a rebuild, positions too."""
    lifecycle = [
        sortie_event("sortie_created", "s2", "viper", None),
        sortie_event("sortie_updated", "s2", "viper", "goose"),
        sortie_event("sortie_assigned", "s2", "goose", None),
        sortie_event("sortie_started", "s2", "goose", None),
        sortie_event("sortie_progress", "s2", "goose", None),
        sortie_event("sortie_blocked", "s2", "goose", None),
        sortie_event("sortie_resumed", "s2", "goose", None),
        sortie_event("sortie_completed", "s2", "goose", None),
    ]
    events = build_events(lifecycle + [item for item in OTHER if item[0] != "pilot_deregistered"])
    assert_folds_like_a_rebuild(tmp_path, events, 1, positions=True)


@pytest.mark.parametrize(
    "items",
    [
        [
            ("lock_acquired", "lock/k", {"lock_key": "k", "holder": 7, "ttl_seconds": 600}),
            ("lock_acquired", "lock/k", {"lock_key": "k", "holder": "ice", "ttl_seconds": "9"}),
            ("lock_released", "lock/k", {"lock_key": "k", "holder": 7}),
        ],
        [
            ("message_sent", "message/q", {"message_id": "q", "to": [7, "ice"], "subject": "s"}),
            ("message_read", "message/q", {"message_id": "q", "reader": 7}),
            ("message_read", "message/q", {"message_id": "q", "reader": ["ice"]}),
        ],
        [
            ("message_sent", "message/r", {"message_id": "r", "to": "ice", "subject": "s"}),
            ("message_read", "message/r", {"message_id": "r", "reader": "i"}),
        ],
        [
            ("sortie_created", "sortie/s", {"sortie_id": "s", "title": "t"}),
            ("sortie_assigned", "sortie/s", {"sortie_id": "s", "assignee": 7}),
            ("sortie_assigned", "sortie/s", {"sortie_id": "s", "assignee": "goose"}),
        ],
    ],
)
def test_malformed_names_fold_alike_whole_and_resumed(tmp_path: Path, items: list[Item]) -> None:
    """Catch-up checks the envelope only, so a clone can bring data the catalogue would refuse.
    A resumed fold reads names back from the index as text (7 becomes '7'): a name that is not
    a string must count for nothing on both paths, never crash either."""
    events = build_events(items)
    assert_folds_like_a_rebuild(tmp_path, events, 1, positions=True)


def test_a_claim_race_across_clones_is_won_by_the_first_in_total_order(tmp_path: Path) -> None:
    items = [
        ("sortie_created", "sortie/s1", {"sortie_id": "s1", "title": "t"}),
        ("sortie_assigned", "sortie/s1", {"sortie_id": "s1", "assignee": "goose"}, "goose"),
        ("sortie_assigned", "sortie/s1", {"sortie_id": "s1", "assignee": "viper"}, "viper"),
    ]
    events = build_events(items)
    db = fresh_db(tmp_path, "x")
    with db.transaction():
        db.ingest([events[0], events[2]], IngestResult())  # viper's claim arrives first here
    assert db.conn.execute("SELECT assignee FROM sorties").fetchone() == ("viper",)
    with db.transaction():
        db.ingest([events[1]], IngestResult())  # goose's earlier claim arrives by a merge
    assert db.conn.execute("SELECT assignee FROM sorties").fetchone() == ("goose",)


def test_a_forked_stream_reads_in_seq_order_then_total_order(tmp_path: Path) -> None:
    """Two clones both appended seq 1 to one stream; one also seq 2, earlier in total order."""
    from fleetgit.index.reads import select_stream

    def ev(eid: str, seq: int, ms: int, writer: str) -> tuple[Event, bytes]:
        e = Event(
            id=eid,
            type="mission_updated",
            v=1,
            stream="mission/m1",
            seq=seq,
            hlc=clock.make_hlc(10**12 + ms),
            writer=writer * 16,
            wseq=seq,
            actor="viper",
            ts="",
            tx=eid,
            txn=1,
            data={"mission_id": "m1", "changes": {"title": eid}},
        )
        return e, encode(e)

    db = fresh_db(tmp_path, "fork")
    with db.transaction():
        db.ingest([ev("a1", 1, 10, "a"), ev("b1", 1, 5, "b"), ev("b2", 2, 6, "b")], IngestResult())
    assert [e.id for e in select_stream(db, "mission/m1", None, None)] == ["b1", "a1", "b2"]
    assert [e.id for e in select_stream(db, "mission/m1", 2, None)] == ["b2"]


def fold_sortie(items: list[Item]) -> dict[str, Any]:
    from fleetgit.domain.fold import Ev
    from fleetgit.domain.sorties import fold as sorties

    events = [
        Ev(e.type, e.data, e.hlc, e.writer, e.wseq, e.actor, e.wseq) for e, _ in build_events(items)
    ]
    (row,) = sorties.fold(events)["sorties"]
    return row


def test_only_the_assignee_of_the_moment_works_a_sortie() -> None:
    """A claim lost in another clone (its CAS failed) leaves its pilot's later events without
    effect; so does a takeover for the pilot taken over from. Of two takeovers of one holder,
    the first in total order wins (compare-and-swap)."""
    s = "sortie/s1"
    base: list[Item] = [
        ("sortie_created", s, {"sortie_id": "s1", "title": "t"}, "viper"),
        ("sortie_assigned", s, {"sortie_id": "s1", "assignee": "goose"}, "goose"),
        ("sortie_assigned", s, {"sortie_id": "s1", "assignee": "ice"}, "ice"),  # lost the race
        ("sortie_started", s, {"sortie_id": "s1"}, "ice"),
        ("sortie_progress", s, {"sortie_id": "s1", "percent": 80, "note": "ice"}, "ice"),
        ("sortie_completed", s, {"sortie_id": "s1"}, "ice"),
    ]
    row = fold_sortie(base)
    assert (row["status"], row["assignee"], row["percent"], row["note"]) == (
        "assigned", "goose", 0, None,
    )  # fmt: skip
    taken: list[Item] = [
        ("sortie_started", s, {"sortie_id": "s1"}, "goose"),
        ("sortie_blocked", s, {"sortie_id": "s1", "reason": "stuck"}, "goose"),
        (
            "sortie_assigned",
            s,
            {"sortie_id": "s1", "assignee": "ice", "previous_assignee": "goose"},
            "ice",
        ),
        (
            "sortie_assigned",
            s,
            {"sortie_id": "s1", "assignee": "viper", "previous_assignee": "goose"},
            "viper",
        ),
        ("sortie_resumed", s, {"sortie_id": "s1"}, "goose"),  # no longer theirs
        ("sortie_started", s, {"sortie_id": "s1"}, "viper"),  # lost the takeover race
    ]
    row = fold_sortie(base + taken)
    assert (row["status"], row["assignee"], row["blocked_reason"]) == ("assigned", "ice", None)
    row = fold_sortie([*base, *taken, ("sortie_started", s, {"sortie_id": "s1"}, "ice")])
    assert (row["status"], row["assignee"]) == ("in_progress", "ice")


edges = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.sampled_from("abcdef"), st.integers(0, 6)),
    max_size=16,
)


@given(edges, st.randoms())
def test_cycle_breaks_keep_an_acyclic_graph_whatever_the_order_given(
    items: list[tuple[str, str, int]], rnd: Any
) -> None:
    from fleetgit.domain.sorties.fold import _path, cycle_breaks, cyclic_edges

    # one set of dependencies per sortie, as the fold writes them; set by events in some order
    latest: dict[str, int] = {}
    for a, _, order in items:
        latest.setdefault(a, order)
    listed = list({(a, b): (a, b, (latest[a], a, 0)) for a, b, _ in items}.values())
    broken = cycle_breaks(listed)
    rnd.shuffle(listed)
    assert cycle_breaks(listed) == broken  # the order they are read in does not matter
    kept: dict[str, list[str]] = {}
    for a, b, _ in listed:
        if (a, b) not in broken:
            kept.setdefault(a, []).append(b)
    for a, targets in kept.items():  # what is kept has no cycle
        assert all(t != a and _path(kept, t, a) is None for t in targets)
    for (a, b), cycle in broken.items():  # each broken edge closes a cycle of kept edges
        assert cycle[0] == cycle[-1] == a and cycle[1] == b
        assert all(y in kept.get(x, []) for x, y in pairwise(cycle[1:]))
    raw: dict[str, list[str]] = {}
    for a, b, _ in listed:
        raw.setdefault(a, []).append(b)
    on_cycle = {(a, b) for a, b, _ in listed if a == b or _path(raw, b, a) is not None}
    assert cyclic_edges((a, b) for a, b, _ in listed) == on_cycle
    if not on_cycle:
        assert broken == {}  # no cycle: everything counts


# Mission streams that `rebuild` folds in SQL (one mission_created event, plain fields) and
# their neighbours that it must leave to the Python fold: the rows must be the same either way.
MISSION_SHAPES: list[Item] = [
    ("mission_created", "mission/a", {"mission_id": "a", "title": "t"}),
    ("mission_created", "mission/b", {"mission_id": "b", "title": 'é "q" \\n', "priority": "high"}),
    ("mission_created", "mission/c", {"mission_id": "c", "title": "t", "description": "d"}),
    ("mission_created", "mission/d", {"mission_id": "d", "title": "t", "created_by": "ice"}),
    ("mission_created", "mission/e", {"mission_id": "e", "title": "t", "priority": ""}),
    ("mission_created", "mission/f", {"mission_id": "f", "title": "t", "created_by": ""}),
    ("mission_created", "mission/g", {"mission_id": "g", "title": "t", "description": None}),
    ("mission_created", "mission/h", {"mission_id": "h", "title": "t"}, "goose"),
    ("mission_created", "mission/j", {"mission_id": "j", "title": "t", "priority": 3}),
    ("mission_created", "mission/k", {"mission_id": "k", "title": 7}),
    ("mission_started", "mission/l", {"mission_id": "l"}),  # no creation
    ("mission_created", "mission/m", {"mission_id": "m", "title": "t"}),
    ("mission_started", "mission/m", {"mission_id": "m"}),  # two events
    ("mission_created", "mission/n", {"mission_id": "n", "title": "t"}),
    ("mission_created", "mission/n", {"mission_id": "n", "title": "again"}),  # created twice
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(MISSION_SHAPES), min_size=1, max_size=20), st.randoms())
def test_missions_folded_in_sql_by_a_rebuild_equal_the_python_fold(
    tmp_path_factory: Any, items: list[Item], rnd: Any
) -> None:
    arrival = build_events(items)
    rnd.shuffle(arrival)
    assert_folds_like_a_rebuild(tmp_path_factory.mktemp("sql"), arrival, 3, positions=False)
    in_order = build_events(items)
    assert_folds_like_a_rebuild(tmp_path_factory.mktemp("sql"), in_order, 1, positions=True)
