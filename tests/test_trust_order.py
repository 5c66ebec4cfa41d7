"""Keys decided by total order, never by read order, and the fleet admin key (issue 17).

A callsign's owner is its earliest registration in total order; a revocation counts from its
place in total order even when it arrives after the events it invalidates; a key event signed
by a fleet admin key named in .fleet/config.toml counts for any pilot. Real git, real
processes, a bare remote and clones that sync."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from fleetgit.fleet import init
from tests.conftest import git, make_repo, run_fleetgit


class Net:
    """A bare remote and clones of it, each with a key folder of its own (another machine)."""

    def __init__(self, tmp: Path, n: int = 3) -> None:
        self.tmp = tmp
        self.remote = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.remote))
        first = make_repo(tmp / "c0")
        init(first)
        git(first, "add", ".fleet", ".gitattributes")
        git(first, "commit", "-q", "-m", "fleet")
        git(first, "remote", "add", "origin", str(self.remote))
        git(first, "push", "-q", "-u", "origin", "main")
        self.clones = [first]
        for i in range(1, n):
            git(tmp, "clone", "-q", str(self.remote), str(tmp / f"c{i}"))
            self.clones.append(tmp / f"c{i}")

    def env(self, i: int) -> dict[str, str]:
        return {"FLEETGIT_KEY_DIR": str(self.tmp / f"keys{i}")}

    def fg(self, i: int, *args: str, ok: bool = True, stdin: str | None = None) -> Any:
        if stdin is not None:
            import subprocess
            import sys

            proc = subprocess.run(
                [sys.executable, "-m", "fleetgit", *args],
                cwd=self.clones[i],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **self.env(i)},
            )
            assert proc.returncode == 0 or not ok, proc.stderr
            return proc
        res = run_fleetgit(self.clones[i], *args, env={**os.environ, **self.env(i)})
        if ok:
            assert res.code == 0, f"fleetgit {' '.join(args)}: {res.err}"
        return res

    def json(self, i: int, *args: str) -> Any:
        return orjson.loads(self.fg(i, *args, "--json").out)

    def sync(self, *which: int) -> None:
        for i in which:
            self.fg(i, "sync")


def missions(net: Net, i: int) -> list[str]:
    return sorted(m["title"] for m in net.json(i, "mission", "list", "--limit", "0")["missions"])


def quarantined(net: Net, i: int) -> list[tuple[str, str]]:
    rows = net.json(i, "quarantine")["quarantine"]
    return sorted((q["actor"], q["type"]) for q in rows)


def test_an_admin_revocation_quarantines_what_the_revoked_key_signs_after_it_everywhere(
    tmp_path: Path,
) -> None:
    """goose's key is compromised: the fleet admin (clone 0) revokes it; goose's clone, not yet
    synced, goes on signing with it. After the syncs every clone, goose's own included (where
    the revocation arrives after the events it invalidates), quarantines exactly those events
    and keeps what the key signed before. Then the admin gives goose a new key, which counts."""
    net = Net(tmp_path)
    for i, pilot in enumerate(("viper", "goose", "ice")):
        net.fg(i, "pilot", "register", pilot)
    made = net.json(0, "pilot", "key", "admin-create")
    assert made["made"] and not made["listed"]
    config = net.clones[0] / ".fleet/config.toml"
    config.write_text(config.read_text(encoding="utf-8") + made["config_line"] + "\n", "utf-8")
    git(net.clones[0], "commit", "-q", "-am", "fleet admin key")
    git(net.clones[0], "push", "-q", "origin", "main")
    for i in (1, 2):
        git(net.clones[i], "pull", "-q", "origin", "main")
    net.sync(0, 1, 2, 0)
    net.fg(1, "--as", "goose", "mission", "create", "before the revocation")
    net.sync(1, 0)
    revoked = net.json(0, "pilot", "key", "revoke", "goose", "--admin")
    assert len(revoked["revoked"]) == 1
    net.fg(1, "--as", "goose", "mission", "create", "after the revocation")  # not synced yet
    assert "after the revocation" in missions(net, 1)
    net.sync(1, 0, 2, 1)
    for i in range(3):
        assert missions(net, i) == ["before the revocation"], i
        assert quarantined(net, i) == [("goose", "mission_created")], i
    # the admin gives goose a new key, made in its clone; goose imports it and acts again
    added = net.json(0, "pilot", "key", "add", "goose", "--admin")
    exported = net.fg(0, "--as", "goose", "pilot", "key", "export").out
    net.sync(0, 1)
    (tmp_path / "keys1" / "goose.key").unlink()
    net.fg(1, "--as", "goose", "pilot", "key", "import", stdin=exported)
    net.fg(1, "--as", "goose", "mission", "create", "with the new key")
    net.sync(1, 0, 2)
    for i in range(3):
        assert missions(net, i) == ["before the revocation", "with the new key"], i
        assert quarantined(net, i) == [("goose", "mission_created")], i
    assert added["key"] in {
        k for (k,) in _rows(net.clones[2], "SELECT key FROM pilot_keys WHERE callsign = 'goose'")
    }


def _rows(clone: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(clone / ".git/fleet/index.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- read orders (in process) ---------------------------------------------------------------

_WRITERS: dict[str, Any] = {}  # built once: each writer's segment, cut into batches


def _mission(n: int) -> Any:
    from fleetgit.ledger.codec import EventSpec

    return EventSpec("mission_created", f"mission/m{n}", {"mission_id": f"m{n}", "title": f"t{n}"})


def _with_keys(folder: Path) -> Any:
    import contextlib

    @contextlib.contextmanager
    def scope() -> Any:
        old = os.environ.get("FLEETGIT_KEY_DIR")
        os.environ["FLEETGIT_KEY_DIR"] = str(folder)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("FLEETGIT_KEY_DIR", None)
            else:
                os.environ["FLEETGIT_KEY_DIR"] = old

    return scope()


def _batches(segment: bytes) -> list[bytes]:
    """A segment's bytes cut after each whole batch (as an append leaves the file)."""
    from fleetgit.ledger.codec import decode

    out, lines = [], segment.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        n = max(1, decode(lines[i]).txn)
        out.append(b"".join(lines[: i + n]))
        i += n
    return out


def _writers(root: Path) -> dict[str, list[bytes]]:
    """Four writers, each in a clone of its own with its own key folder:

    - B registers goose (first in total order), then A registers goose with another key
      (later: no owner; what only its key signs never counts); both act as goose;
    - C registers viper, acts, rotates its key, acts; D holds viper's old key (imported before
      the rotation) and acts with it before and after the rotation (after: not valid).
    Returns each writer's growing segment, batch by batch."""
    import shutil

    from fleetgit.fleet import Fleet

    if _WRITERS:
        return _WRITERS["segments"]  # type: ignore[no-any-return]
    segments: dict[str, list[bytes]] = {}
    clones = {name: root / name for name in "ABCD"}
    for path in clones.values():
        make_repo(path)
        init(path)

    def act(name: str, actor: str, specs: list[Any], keys: str | None = None) -> str:
        with (
            _with_keys(root / f"keys-{keys or name}"),
            Fleet.open(clones[name], actor=actor, register=True) as fleet,
        ):
            if specs:
                fleet.emit_batch(specs)
            return fleet.writer.id

    act("B", "goose", [_mission(1)])
    act("A", "goose", [_mission(2)])
    act("A", "goose", [_mission(3)])
    act("B", "goose", [_mission(4)])
    c = act("C", "viper", [_mission(5)])
    shutil.copytree(root / "keys-C", root / "keys-D")  # viper's key, on a second machine
    shutil.copytree(clones["C"] / ".fleet/events" / c, clones["D"] / ".fleet/events" / c)
    act("D", "viper", [_mission(6)])
    from fleetgit.domain.pilots import keying

    with _with_keys(root / "keys-C"), Fleet.open(clones["C"], actor="viper") as fleet:
        keying.rotate(fleet)
    act("C", "viper", [_mission(7)])
    act("D", "viper", [_mission(8)])  # after the rotation in total order: the old key is revoked
    for name, path in clones.items():
        for writer_dir in (path / ".fleet/events").iterdir():
            if name == "D" and writer_dir.name == c:
                continue  # C's own copy
            (segment,) = writer_dir.glob("*.jsonl")
            segments[writer_dir.name] = _batches(segment.read_bytes())
    _WRITERS["segments"] = segments
    return segments


def _state(index: Path) -> dict[str, Any]:
    """What must not depend on the order of reading: the events taken, the quarantine and the
    pilots' keys (positions are this clone's order of arrival: compared by a rebuild alone)."""
    conn = sqlite3.connect(index)
    try:
        return {
            "events": sorted(conn.execute("SELECT id, hash FROM events").fetchall()),
            "quarantine": sorted(
                conn.execute("SELECT id, hash, writer, actor, kept FROM quarantine").fetchall()
            ),
            "keys": sorted(conn.execute("SELECT * FROM pilot_keys").fetchall()),
            "missions": sorted(conn.execute("SELECT mission_id FROM missions").fetchall()),
        }
    finally:
        conn.close()


def _full(index: Path) -> dict[str, Any]:
    conn = sqlite3.connect(index)
    try:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("events", "streams", "quarantine", "pilot_keys", "missions", "key_events")
        }
    finally:
        conn.close()


def _read_in_order(root: Path, steps: list[tuple[str, bool]]) -> tuple[dict[str, Any], Path]:
    """A fresh clone that sees the writers' segments grow in the order of `steps` (a writer's
    next batch; catch up after it or not)."""
    from fleetgit.fleet import Fleet

    segments = _writers(root.parent / "writers")
    repo = make_repo(root)
    init(repo)
    shown = dict.fromkeys(segments, 0)
    with Fleet.open(repo) as fleet:
        for writer, catch_up in steps:
            shown[writer] += 1
            folder = repo / ".fleet/events" / writer
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "00000001.jsonl").write_bytes(segments[writer][shown[writer] - 1])
            if catch_up:
                fleet.index.catch_up()
        fleet.index.catch_up()
        index = fleet.index.path
    return _state(index), index


def test_keys_and_verdicts_follow_total_order_whatever_the_order_of_reading(
    tmp_path_factory: Any,
) -> None:
    """Four writers' segments (two registrations of goose with different keys, viper's key
    rotated while a second machine goes on with the old one) read in many interleavings, caught
    up now and then: the events taken, the quarantine and the keys are the same every time, and
    a rebuild equals the incremental index (positions included)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from fleetgit.fleet import Fleet

    base = tmp_path_factory.mktemp("orders")
    segments = _writers(base / "writers")
    names = sorted(segments)
    reference, _ = _read_in_order(
        base / "reference", [(w, True) for w in names for _ in segments[w]]
    )
    # the rules, checked once on the reference: goose is B's, viper's old key stops at the
    # rotation; A's goose events and D's viper event after the rotation are quarantined
    assert len(reference["quarantine"]) >= 3
    assert {m for (m,) in reference["missions"]} == {"m1", "m4", "m5", "m6", "m7"}
    pool = [w for w in names for _ in segments[w]]
    counter = iter(range(10**6))

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.permutations(pool), st.lists(st.booleans(), min_size=len(pool), max_size=len(pool)))
    def check(order: list[str], catch_ups: list[bool]) -> None:
        steps = list(zip(order, catch_ups, strict=True))
        got, index = _read_in_order(base / f"r{next(counter)}", steps)
        assert got == reference
        incremental = _full(index)
        with Fleet.open(index.parent.parent.parent, catch_up=False) as fleet:
            fleet.rebuild()
        rebuilt = _full(index)
        for table, rows in incremental.items():
            assert rebuilt[table] == rows, (table, set(rows) ^ set(rebuilt[table]))

    check()


def test_a_revocation_read_after_what_it_invalidates_quarantines_it_at_the_next_catch_up(
    tmp_path_factory: Any,
) -> None:
    """viper's second machine (D) signed m8 with the old key after C rotated it; this clone
    reads D's segment whole, and C's rotation only later: the catch-up that brings the
    rotation takes m8 out of the events and every projection at once (m6, signed before,
    stays)."""
    from fleetgit.fleet import Fleet

    base = tmp_path_factory.mktemp("late")
    segments = _writers(base / "writers")
    c = next(w for w, b in segments.items() if len(b) == 3)
    d = next(w for w, b in segments.items() if b[0].count(b"\n") == 1 and b"viper" in b[0])
    repo = make_repo(base / "repo")
    init(repo)
    with Fleet.open(repo) as fleet:
        for writer, upto in ((c, 1), (d, 2)):
            folder = repo / ".fleet/events" / writer
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "00000001.jsonl").write_bytes(segments[writer][upto - 1])
        fleet.index.catch_up()
        missions = "SELECT mission_id FROM missions ORDER BY 1"
        assert [m for (m,) in fleet.index.conn.execute(missions)] == ["m5", "m6", "m8"]
        (repo / ".fleet/events" / c / "00000001.jsonl").write_bytes(segments[c][2])
        fleet.index.catch_up()
        assert [m for (m,) in fleet.index.conn.execute(missions)] == ["m5", "m6", "m7"]
        (quarantined,) = fleet.index.conn.execute(
            "SELECT writer, actor, type, kept FROM quarantine"
        ).fetchall()
        assert quarantined == (d, "viper", "mission_created", 0)
        assert not fleet.index.conn.execute(
            "SELECT 1 FROM events WHERE data LIKE '%\"m8\"%'"
        ).fetchone()


def test_the_verdicts_follow_the_admin_keys_the_config_names(repo: Path) -> None:
    """An admin revocation counts while .fleet/config.toml names the admin key; with the key
    taken out of the list it is quarantined (signed by no key the fleet knows) and the key
    counts again; put back, it counts again. The index follows each change by itself."""
    from fleetgit.domain.pilots import keying
    from fleetgit.fleet import Fleet

    config = repo / ".fleet/config.toml"
    plain = config.read_text(encoding="utf-8")
    with Fleet.open(repo) as fleet:
        made = keying.admin_create(fleet)
    listed = plain + made["config_line"] + "\n"
    config.write_text(listed, encoding="utf-8")
    with Fleet.open(repo) as fleet:
        revoked = keying.admin_revoke(fleet, "goose")["revoked"]

    def state() -> tuple[list[Any], list[Any]]:
        with Fleet.open(repo) as fleet:
            fleet.catch_up()
            conn = fleet.index.conn
            keys = conn.execute(
                "SELECT key, revoked_hlc IS NOT NULL FROM pilot_keys WHERE callsign = 'goose'"
            ).fetchall()
            quarantined = conn.execute("SELECT actor, type FROM quarantine").fetchall()
            return keys, quarantined

    assert state() == ([(revoked[0], 1)], [])
    config.write_text(plain, encoding="utf-8")
    assert state() == ([(revoked[0], 0)], [("goose", "pilot_key_revoked")])
    config.write_text(listed, encoding="utf-8")
    assert state() == ([(revoked[0], 1)], [])


def test_keys_derived_in_a_scratch_database_equal_the_index_s(tmp_path_factory: Any) -> None:
    """`trust.learn_keys` (for a caller deriving keys from segments alone, in a database of
    its own with a `pilot_keys` table) gives the keys the index derives."""
    from fleetgit.domain.catalogue import CATALOGUE
    from fleetgit.index import trust
    from fleetgit.ledger.segments import parse

    base = tmp_path_factory.mktemp("scratch")
    segments = _writers(base / "writers")
    every = [(w, True) for w in sorted(segments) for _ in segments[w]]
    reference, _ = _read_in_order(base / "ref", every)

    class Scratch:
        def __init__(self) -> None:
            self.conn = sqlite3.connect(":memory:")
            self.conn.execute(
                "CREATE TABLE pilot_keys (callsign TEXT NOT NULL, key TEXT NOT NULL,"
                " added_hlc INTEGER NOT NULL, added_writer TEXT NOT NULL,"
                " added_wseq INTEGER NOT NULL, revoked_hlc INTEGER, revoked_writer TEXT,"
                " revoked_wseq INTEGER, PRIMARY KEY (callsign, key))"
            )

    db = Scratch()
    keys = trust.Keys(db)  # type: ignore[arg-type]
    for writer, batches in sorted(segments.items(), reverse=True):
        items = parse(batches[-1], 0, writer, types=CATALOGUE).events
        seg = trust.Segment(items, writer, 1, keys)
        trust.learn_keys(seg, trust.batch_ranges(items))
    assert sorted(db.conn.execute("SELECT * FROM pilot_keys").fetchall()) == reference["keys"]


def test_admin_commands_refuse_bad_input_in_one_line_and_write_nothing(
    repo: Path, cli: Any
) -> None:
    def refused(*args: str, says: str, code: int = 1) -> None:
        """Refused (exit 1; a usage error exits 2), one line and a hint, nothing written."""
        before = cli(repo, "index", "status", "--json").json()["events"]
        res = cli(repo, *args)
        assert res.code == code, (args, res.out, res.err)
        assert says in res.err and "hint:" in res.err and "Traceback" not in res.err, res.err
        assert cli(repo, "index", "status", "--json").json()["events"] == before

    refused("pilot", "key", "revoke", "goose", "--admin", says="no fleet admin key")
    made = cli(repo, "pilot", "key", "admin-create", "--json").json()
    refused("pilot", "key", "revoke", "goose", "--admin", says="not in admin_keys")
    config = repo / ".fleet/config.toml"
    plain = config.read_text(encoding="utf-8")
    config.write_text(plain + made["config_line"] + "\n", encoding="utf-8")
    refused("pilot", "key", "revoke", "nobody", "--admin", says="no such key")
    refused("pilot", "key", "revoke", "goose", "--admin", "--key", "AAAA", says="no such key")
    refused("pilot", "key", "add", "goose", "--admin", "--key", "not-a-key", says="public key")
    refused("--as", "goose", "pilot", "key", "revoke", says="--key", code=2)
    refused("pilot", "key", "rotate", "goose", "--admin", says="takes no CALLSIGN", code=2)
    refused("pilot", "key", "revoke", "--admin", says="CALLSIGN", code=2)
    config.write_text(plain + 'admin_keys = ["ed25519:short"]\n', encoding="utf-8")
    res = cli(repo, "pilot", "list")
    assert res.code == 1 and "admin_keys: not an admin public key" in res.err, res.err
    assert "hint:" in res.err and "Traceback" not in res.err
