"""Clashes that merges bring in: void is decided at each grant, in total order, from the events
alone (index.clashes); the same in every clone, after a rebuild, and final. Real clones with
real hooks, and hypothesis against a direct reading of the rule."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from fleetgit.guard.patterns import can_name_file, overlaps
from fleetgit.index import IngestResult
from fleetgit.index.clashes import area
from fleetgit.index.projections import rebuild
from fleetgit.index.store import IndexDB
from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode
from tests.conftest import git
from tests.test_patterns import RICH_SEGMENTS
from tests.test_projections import fresh_db, tables

T0 = 10**12  # ms
WRITERS = ("a" * 16, "b" * 16)

# -- the rule, read directly ---------------------------------------------------------------


def _order(e: Event) -> tuple[int, str, int]:
    return (e.hlc, e.writer, e.wseq)


def _live(history: list[Event], ms: int) -> bool:
    """Granted, not released, not expired at `ms`, as of the events in `history` (its own,
    from its grant on, all before the moment judged)."""
    expiry = 0
    for e in history:
        if e.type == "file_released":
            return False
        expiry = max(expiry, clock.hlc_ms(e.hlc) + e.data["ttl_seconds"] * 1000)
    return expiry > ms


def _is_file(data: dict[str, Any], pattern: str) -> bool:
    """The grant says `pattern` names a file (only a literal path can)."""
    return pattern in data.get("file_patterns", []) and can_name_file(pattern)


def _clash(a: Event, b: Event) -> bool:
    da, db = a.data, b.data
    return (
        da["holder"] != db["holder"]
        and (da["exclusive"] or db["exclusive"])
        and any(
            overlaps(p, q, a_file=_is_file(da, p), b_file=_is_file(db, q))
            for p in da["patterns"]
            for q in db["patterns"]
        )
    )


def oracle(events: list[Event]) -> dict[str, str]:
    """{void reservation: the one it lost to}: at each grant in total order, the earliest
    earlier reservation of another pilot, live then and not void, that it clashes with."""
    grants: dict[str, Event] = {}
    history: dict[str, list[Event]] = {}
    void: dict[str, str] = {}
    for e in sorted(events, key=_order):
        rid = e.data["reservation_id"]
        if e.type == "file_reserved" and rid not in grants:
            ms = clock.hlc_ms(e.hlc)
            for other in sorted(grants.values(), key=_order):
                orid = other.data["reservation_id"]
                if orid not in void and _live(history[orid], ms) and _clash(other, e):
                    void[rid] = orid
                    break
            grants[rid] = e
        if rid in grants and (e.type != "file_reserved" or e is grants[rid]):
            history.setdefault(rid, []).append(e)  # a second grant of one stream is ignored
    return void


# -- events ----------------------------------------------------------------------------------

Step = tuple[str, str, dict[str, Any], int, int]  # type, reservation, data, gap ms, writer


def grant(rid: str, holder: str, *pats: str, shared: bool = False, ttl: int = 60) -> Step:
    data = {"holder": holder, "patterns": list(pats), "exclusive": not shared, "ttl_seconds": ttl}
    return ("file_reserved", rid, data, 10, 0)


def renew(rid: str, ttl: int) -> Step:
    return ("file_renewed", rid, {"ttl_seconds": ttl}, 10, 0)


def release(rid: str) -> Step:
    return ("file_released", rid, {}, 10, 0)


def later(step: Step, gap_ms: int, writer: int = 0) -> Step:
    return (*step[:3], gap_ms, writer)


def build(steps: list[Step]) -> list[tuple[Event, bytes]]:
    """Events in total order of the steps: each `gap` ms after the one before."""
    out = []
    ms = T0
    wseq = dict.fromkeys(WRITERS, 0)
    seq: dict[str, int] = {}
    holders: dict[str, str] = {}  # renewals and releases by the holder, as the commands write
    for _, rid, data, *_ in steps:
        if "holder" in data:
            holders.setdefault(rid, data["holder"])
    for i, (etype, rid, data, gap, w) in enumerate(steps):
        ms += gap
        writer = WRITERS[w]
        wseq[writer] += 1
        seq[rid] = seq.get(rid, 0) + 1
        e = Event(
            id=f"e{i:04d}",
            type=etype,
            v=1,
            stream=f"reservation/{rid}",
            seq=seq[rid],
            hlc=clock.make_hlc(ms),
            writer=writer,
            wseq=wseq[writer],
            actor=data.get("holder", holders.get(rid, "x")),
            ts="",
            tx=f"e{i:04d}",
            txn=1,
            data={"reservation_id": rid, **data},
        )
        out.append((e, encode(e)))
    return out


def lost(db: IndexDB) -> dict[str, str]:
    return dict(db.conn.execute("SELECT reservation_id, winner_id FROM reservation_lost"))


def ingest(db: IndexDB, events: list[tuple[Event, bytes]]) -> None:
    with db.transaction():
        db.ingest(events, IngestResult())


def judged(tmp_path: Path, steps: list[Step], name: str = "x") -> dict[str, str]:
    """{void: winner} in an index fed the steps' events; checked against the oracle."""
    events = build(steps)
    db = fresh_db(tmp_path, name)
    ingest(db, events)
    assert lost(db) == oracle([e for e, _ in events])
    return lost(db)


def test_a_chain_resolves_in_total_order(tmp_path: Path) -> None:
    """goose lost to viper, so maverick, which clashes only with goose, holds src/b."""
    steps = [
        grant("v", "viper", "src/a/**"),
        grant("g", "goose", "src/**"),
        grant("m", "maverick", "src/b/**"),
    ]
    assert judged(tmp_path, steps) == {"g": "v"}


def test_void_is_final_whatever_the_winner_does_later(tmp_path: Path) -> None:
    base = [grant("v", "viper", "src/a/**", ttl=1), grant("g", "goose", "src/**")]
    assert judged(tmp_path, [*base, release("v")], "released") == {"g": "v"}
    expired = [*base, later(grant("i", "ice", "docs/"), 5000)]  # v expired meanwhile
    assert judged(tmp_path, expired, "expired") == {"g": "v"}


def test_only_what_was_live_at_the_grant_wins(tmp_path: Path) -> None:
    released = [grant("v", "viper", "src/"), release("v"), grant("g", "goose", "src/x")]
    assert judged(tmp_path, released, "released") == {}
    expired = [grant("v", "viper", "src/", ttl=1), later(grant("g", "goose", "src/x"), 1000)]
    assert judged(tmp_path, expired, "expired") == {}  # expiry at exactly the grant's ms
    renewed = [
        grant("v", "viper", "src/", ttl=1),
        renew("v", 60),
        later(grant("g", "goose", "src/x"), 5000),
    ]
    assert judged(tmp_path, renewed, "renewed") == {"g": "v"}  # renewals before it count
    renewed_late = [
        grant("v", "viper", "src/", ttl=1),
        later(grant("g", "goose", "src/x"), 5000),
        renew("v", 60),  # after goose's grant: it does not reach back
    ]
    assert judged(tmp_path, renewed_late, "late") == {}
    shared = [grant("v", "viper", "src/", shared=True), grant("g", "goose", "src/x", shared=True)]
    assert judged(tmp_path, shared, "shared") == {}
    mine = [grant("v", "viper", "src/"), grant("w", "viper", "src/x")]
    assert judged(tmp_path, mine, "mine") == {}


def test_a_grant_that_names_a_file_has_nothing_below_it(tmp_path: Path) -> None:
    """What the grant recorded decides, in every clone alike: a file covers itself only."""
    file = grant("v", "viper", "src/a.py")
    file[2]["file_patterns"] = ["src/a.py"]
    below = [  # shared: they clash with viper's, not with each other
        grant("g", "goose", "src/a.py/x", shared=True),
        grant("h", "hawk", "src/**/x", shared=True),
    ]
    assert judged(tmp_path, [file, *below], "file") == {}
    maybe_dir = grant("v", "viper", "src/a.py")
    assert judged(tmp_path, [maybe_dir, *below], "dir") == {"g": "v", "h": "v"}
    itself = [file, grant("g", "goose", "src/*.py", shared=True), grant("h", "hawk", "src/")]
    assert judged(tmp_path, itself, "itself") == {"g": "v", "h": "v"}
    glob = grant("v", "viper", "src/*")
    glob[2]["file_patterns"] = ["src/*"]  # only a literal path can name a file
    assert judged(tmp_path, [glob, *below], "glob") == {"g": "v", "h": "v"}


def test_an_earlier_release_arriving_late_clears_the_clash(tmp_path: Path) -> None:
    """Clone X released viper's reservation before goose's grant in total order, but the
    release reaches this index after both grants did: goose turns out not void after all."""
    events = build(
        [grant("v", "viper", "src/"), later(release("v"), 10, 1), grant("g", "goose", "src/x")]
    )
    db = fresh_db(tmp_path, "x")
    ingest(db, [events[0], events[2]])
    assert lost(db) == {"g": "v"}
    ingest(db, [events[1]])
    assert lost(db) == {}


def test_judging_starts_from_what_changed(tmp_path: Path) -> None:
    """Appends after the history judge only the new grants, against what is live then."""
    steps = [grant(f"r{i}", f"p{i}", f"area{i}/**") for i in range(50)]
    steps += [release(f"r{i}") for i in range(0, 50, 2)]
    steps += [grant("g", "goose", "area1/x"), grant("h", "hawk", "area2/x")]
    events = build(steps)
    db = fresh_db(tmp_path, "x")
    ingest(db, events[:-2])
    ingest(db, events[-2:-1])
    ingest(db, events[-1:])
    assert lost(db) == {"g": "r1"}  # r2 was released, r1 was not
    assert lost(db) == oracle([e for e, _ in events])


PATTERNS = [
    "src/a/",
    "**",
    "src/",
    "src/a/**",
    "src/b/**",
    "src/a/f",
    "**/f",
    "src/*",
    "docs/*.md",
    "docs/",
    "src/a",
    "src/a/f/x.md",
]
# what a grant may say names a file (the fold ignores the wildcard ones)
FILES = ["src/a/f", "src/a", "docs/x.md", "src/*"]
step = st.one_of(
    st.tuples(
        st.just("file_reserved"),
        st.sampled_from("rstuv"),
        st.fixed_dictionaries(
            {
                "holder": st.sampled_from(["viper", "goose", "ice"]),
                "patterns": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
                "exclusive": st.booleans(),
                "ttl_seconds": st.sampled_from([0, 1, 2, 60]),
            },
            optional={"file_patterns": st.lists(st.sampled_from(FILES), max_size=2)},
        ),
        st.sampled_from([0, 10, 700, 1500]),
        st.integers(0, 1),
    ),
    st.tuples(
        st.just("file_renewed"),
        st.sampled_from("rstuv"),
        st.fixed_dictionaries({"ttl_seconds": st.sampled_from([1, 60])}),
        st.sampled_from([0, 700]),
        st.integers(0, 1),
    ),
    st.tuples(
        st.just("file_released"),
        st.sampled_from("rstuv"),
        st.just({}),
        st.sampled_from([0, 700]),
        st.integers(0, 1),
    ),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(step, min_size=1, max_size=24), st.randoms(), st.integers(1, 5))
def test_any_arrival_order_judges_as_the_rule_says(
    tmp_path_factory: Any, steps: list[Step], rnd: Any, chunk: int
) -> None:
    root = tmp_path_factory.mktemp("clash")
    events = build(steps)
    arrival = list(events)
    rnd.shuffle(arrival)
    incremental = fresh_db(root, "a")
    for start in range(0, len(arrival), chunk):
        ingest(incremental, arrival[start : start + chunk])
    rebuilt = fresh_db(root, "b")
    ingest(rebuilt, events)
    with rebuilt.transaction():
        rebuild(rebuilt.conn)
    assert tables(incremental) == tables(rebuilt)
    assert lost(incremental) == oracle([e for e, _ in events])


rich = st.lists(st.sampled_from(RICH_SEGMENTS), min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(rich, st.booleans(), rich, st.booleans())
def test_patterns_overlap_only_where_their_areas_do(a: str, sa: bool, b: str, sb: bool) -> None:
    a, b = a + "/" * sa, b + "/" * sb
    if overlaps(a, b):
        x, y = area(a), area(b)
        assert x.startswith(y) or y.startswith(x)


# -- real clones, real hooks -----------------------------------------------------------------


def run_git(repo: Path, who: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """git with the installed hooks firing, as pilot `who`."""
    env = {k: v for k, v in os.environ.items() if k != "FLEET_CALLSIGN"}
    if who:
        env["FLEET_CALLSIGN"] = who
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )


def change(repo: Path, who: str, path: str) -> subprocess.CompletedProcess[str]:
    """`who` edits `path` and runs a real `git commit` (the pre-commit hook decides)."""
    (repo / path).write_text(f"{who} was here {time.time()}\n")
    git(repo, "add", path)
    res = run_git(repo, who, "commit", "-q", "-m", f"{who}: {path}")
    if res.returncode != 0:
        git(repo, "reset", "-q", "HEAD", path)
        git(repo, "checkout", "--", path)
    return res


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


def standing(cli: Any, repo: Path) -> dict[str, Any]:
    """{holder: (pattern, active, who it lost to)} from `reservations --json`."""
    return {
        r["holder"]: (r["pattern"], r["active"], r["lost_to"] and r["lost_to"]["holder"])
        for r in cli(repo, "reservations", "--json").items()
    }


def chain(repo: Path, tmp_path: Path, cli: Any) -> list[Path]:
    """viper src/a/** in clone X (first), goose src/** in Y, maverick src/b/** in Z; Z pulls
    X and Y with its hooks installed. Returns [X, Y, Z]."""
    for path in ("src/a/f", "src/b/g"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("x\n")
        git(repo, "add", path)
    git(repo, "commit", "-q", "-m", "files")
    assert cli(repo, "commit", "-m", "fleet: init").code == 0
    clones = []
    for name, who, pattern in (
        ("x", "viper", "src/a/**"),
        ("y", "goose", "src/**"),
        ("z", "maverick", "src/b/**"),
    ):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        install(locate(clone))
        res = as_(cli, clone, who, "reserve", pattern)  # each granted offline: nothing to clash
        assert res.code == 0, res.err
        assert cli(clone, "commit", "-m", f"fleet: {who}").code == 0
        clones.append(clone)
        time.sleep(0.01)  # the next grant is later in total order
    z = clones[2]
    for other in clones[:2]:
        res = run_git(z, None, "pull", "-q", "--no-rebase", "--no-edit", str(other), "main")
        assert res.returncode == 0, res.stderr
    return clones


def test_a_chain_across_three_clones_leaves_src_b_to_maverick(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    x, y, z = chain(repo, tmp_path, cli)
    held = standing(cli, z)
    assert held == {
        "viper": ("src/a/**", True, None),
        "goose": ("src/**", False, "viper"),
        "maverick": ("src/b/**", True, None),
    }
    announced = cli(z, "events", "--type", "file_conflict", "--json").items()
    assert [(c["data"]["holder"], c["data"]["winner"]) for c in announced] == [("goose", "viper")]
    assert as_(cli, z, "viper", "check", "src/b/g").code == 1  # maverick holds it
    assert as_(cli, z, "goose", "check", "src/a/f").code == 1  # viper holds it
    assert as_(cli, z, "viper", "check", "src/a/f").code == 0
    refused = change(z, "viper", "src/b/g")
    assert refused.returncode == 1 and "maverick holds 'src/b/**'" in refused.stderr
    assert change(z, "maverick", "src/b/g").returncode == 0
    assert change(z, "viper", "src/a/f").returncode == 0
    assert change(z, "goose", "src/a/f").returncode == 1
    # every clone that has all three grants judges the same way, and so does a rebuild
    assert cli(z, "commit", "-m", "fleet: settled").code == 0
    for clone in (x, y):
        res = run_git(clone, None, "pull", "-q", "--no-rebase", "--no-edit", str(z), "main")
        assert res.returncode == 0, res.stderr
        assert standing(cli, clone) == held
    assert cli(z, "index", "rebuild").code == 0
    assert standing(cli, z) == held
    assert len(cli(x, "events", "--type", "file_conflict", "--json").items()) == 1


def test_a_lost_reservation_stays_lost_when_the_winner_releases(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    _, _, z = chain(repo, tmp_path, cli)
    assert as_(cli, z, "viper", "release", "src/a/**").code == 0
    assert standing(cli, z)["goose"] == ("src/**", False, "viper")
    assert as_(cli, z, "viper", "check", "src/a/f").code == 0  # goose's lost src/** is no block
    assert change(z, "viper", "src/a/f").returncode == 0
    assert change(z, "ice", "src/a/f").returncode == 0  # nobody holds src/a now
    assert change(z, "ice", "src/b/g").returncode == 1  # maverick still does
    assert as_(cli, z, "goose", "renew", "src/**").code == 1  # lost: it cannot be revived
    res = as_(cli, z, "goose", "reserve", "src/a/**", "--json")  # but it is free to take again
    assert res.code == 0, res.err
    assert change(z, "viper", "src/a/f").returncode == 1
    assert cli(z, "index", "rebuild").code == 0
    assert standing(cli, z)["maverick"] == ("src/b/**", True, None)


def test_a_lost_reservation_stays_lost_when_the_winner_expires(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    cli(repo, "commit", "-m", "fleet: init")
    (repo / "src").mkdir()
    (repo / "src/a.py").write_text("x\n")
    git(repo, "add", "src/a.py")
    git(repo, "commit", "-q", "-m", "files")
    one, two = tmp_path / "one", tmp_path / "two"
    for clone in (one, two):
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        install(locate(clone))
    assert as_(cli, one, "viper", "reserve", "src/a.py", "--ttl", "2s").code == 0
    time.sleep(0.01)
    assert as_(cli, two, "goose", "reserve", "src/").code == 0
    for clone in (one, two):
        assert cli(clone, "commit", "-m", "fleet").code == 0
    pulled = run_git(two, None, "pull", "--no-rebase", "--no-edit", str(one), "main")
    assert pulled.returncode == 0, pulled.stderr
    assert "goose" in pulled.stderr and "lost to" in pulled.stderr  # the post-merge hook says so
    assert change(two, "viper", "src/a.py").returncode == 0
    time.sleep(2.1)  # viper's reservation runs out
    assert cli(two, "reservations", "--json").items()[0]["lost_to"]["holder"] == "viper"
    assert as_(cli, two, "viper", "check", "src/a.py").code == 0
    assert change(two, "viper", "src/a.py").returncode == 0  # as the hook said: no block
    assert as_(cli, two, "goose", "reserve", "src/").code == 0  # a new grant replaces the lost one
    (held,) = cli(two, "reservations", "--json").items()
    assert held["holder"] == "goose" and held["active"]
    assert change(two, "viper", "src/a.py").returncode == 1


def test_the_hook_rebuilds_an_index_left_by_an_older_version(repo: Path) -> None:
    """An index of another schema (here: before reservation_lost) is caught up, not a failure."""
    import sqlite3

    from fleetgit.fleet import Fleet
    from fleetgit.index.schema import SCHEMA_VERSION

    (repo / "src").mkdir()
    (repo / "src/app.py").write_text("x\n")
    git(repo, "add", "src/app.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper") as fleet:
        fleet.reserve(["src/app.py"])
    index = repo / ".git/fleet/index.sqlite"
    conn = sqlite3.connect(index)
    with conn:
        conn.execute("DROP TABLE reservation_lost")
        conn.execute("UPDATE meta SET value = '12' WHERE key = 'schema_version'")
    conn.close()
    assert change(repo, "viper", "src/app.py").returncode == 0
    refused = change(repo, "goose", "src/app.py")
    assert refused.returncode == 1 and "viper holds 'src/app.py'" in refused.stderr
    conn = sqlite3.connect(index)
    (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version == str(SCHEMA_VERSION)
