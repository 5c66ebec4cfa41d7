"""Index snapshots: a fresh clone starts from one and catches up, equal to a rebuild; a tampered,
stale, wrong-schema or foreign snapshot is refused in one line and the segments are read."""

from __future__ import annotations

import contextlib
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.fleet import Fleet, init
from fleetgit.index import snapshots, trust
from fleetgit.index.projections import TABLES
from tests.conftest import enlist, git, make_repo, run_fleetgit

FETCH = "remote.origin.fetch=+refs/fleet/snapshots/*:refs/fleet/snapshots/*"


def _work(repo: Path, tag: str, actor: str = "viper", n: int = 4) -> None:
    """Missions, a sortie claimed and a reservation: state that folds and judges across."""
    with Fleet.open(repo, actor=actor) as fleet:
        for i in range(n):
            mid = f"{tag}{i}"
            fleet.emit("mission_created", f"mission/{mid}", {"mission_id": mid, "title": tag})
        fleet.emit(
            "mission_updated",
            f"mission/{tag}0",
            {"mission_id": f"{tag}0", "changes": {"title": actor}},
        )
        fleet.reserve([f"src/{tag}/**"], reason=tag)
        fleet.commit()


def _projections(repo: Path) -> dict[str, Any]:
    with Fleet.open(repo) as fleet:
        conn = fleet.index.conn
        out: dict[str, Any] = {
            "events": sorted(conn.execute("SELECT * FROM events").fetchall()),
            "streams": sorted(conn.execute("SELECT * FROM streams").fetchall()),
        }
        for t in TABLES:
            out[t] = sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
        # the `_sig` values restore-lost writes back: the same kept, in whatever rows
        out["signatures"] = sorted(trust.signature_rows(conn)[0])
    return out


def _rebuilt(repo: Path) -> dict[str, Any]:
    with Fleet.open(repo) as fleet:
        fleet.rebuild()
    return _projections(repo)


def _clone(origin: Path, dest: Path) -> Path:
    git(origin.parent, "clone", "-q", "-c", FETCH, str(origin), str(dest))
    return dest


@pytest.fixture
def origin(repo: Path) -> Path:
    _work(repo, "a")
    _work(repo, "b", actor="goose")
    return repo


def test_fresh_clone_loads_the_snapshot_and_equals_a_rebuild(
    origin: Path, tmp_path: Path, cli: Any
) -> None:
    res = cli(origin, "--as", "viper", "snapshot", "--json")
    assert res.code == 0, res.err
    built = res.json()
    assert built["ref"].startswith("refs/fleet/snapshots/") and built["parts"] == 1
    _work(origin, "c")  # after the snapshot: the clone catches up from it
    clone = _clone(origin, tmp_path / "clone")
    first = run_fleetgit(clone, "mission", "list", "--json")
    assert first.code == 0, first.err
    assert "loaded the index snapshot" in first.err and first.err.count("\n") == 1
    assert len(orjson.loads(first.out)["missions"]) == 12
    loaded = _projections(clone)
    assert _rebuilt(clone) == loaded
    assert run_fleetgit(clone, "verify", "--deep").code == 0
    # and the same events and state as a clone that read every segment
    plain = tmp_path / "plain"
    git(tmp_path, "clone", "-q", str(origin), str(plain))
    assert "snapshot" not in run_fleetgit(plain, "status").err
    theirs = _projections(plain)
    assert {r[1] for r in theirs["events"]} == {r[1] for r in loaded["events"]}
    assert theirs["missions"] == loaded["missions"]


def test_events_that_sort_before_the_snapshot_arrive_by_a_merge(
    origin: Path, tmp_path: Path
) -> None:
    # another clone works first (earlier clocks), its branch is merged only after the snapshot
    early = _clone(origin, tmp_path / "early")
    with Fleet.open(early, actor="ice") as fleet:
        fleet.reserve(["src/shared/**"], reason="first")  # earlier: wins the clash
        fleet.emit(
            "mission_updated", "mission/a1", {"mission_id": "a1", "changes": {"title": "ice"}}
        )
        fleet.commit()
    with Fleet.open(origin, actor="maverick") as fleet:
        fleet.reserve(["src/shared/x.py"], reason="later")  # a clash it loses once ice's arrives
        fleet.commit()
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    git(early, "push", "-q", "origin", "HEAD:refs/heads/early")
    git(origin, "merge", "-q", "--no-edit", "early")
    clone = _clone(origin, tmp_path / "clone")
    res = run_fleetgit(clone, "reservations", "--json")
    assert "loaded the index snapshot" in res.err
    loaded = _projections(clone)
    assert loaded["reservation_lost"]  # the merge's earlier grant voided the later one
    assert _rebuilt(clone) == loaded
    assert run_fleetgit(clone, "verify", "--deep").code == 0


def _rewrite(
    repo: Path,
    ref: str,
    manifest_fn: Callable[[dict[str, Any]], None] = lambda m: None,
    db_fn: Callable[[Path], None] | None = None,
    sign_as: tuple[str, Any] | None = ("viper", None),
) -> None:
    """Replace the snapshot at `ref` by one with its manifest and/or index file changed, signed
    again by `sign_as` (who, private key; None: viper's key in `repo`), as a registered pilot
    forging it would; `sign_as=None` keeps the old signature."""
    import sqlite3

    import zstandard

    from fleetgit.ledger import keys

    manifest = orjson.loads(git(repo, "show", f"{ref}:{snapshots.MANIFEST}"))
    entries = {snapshots.MANIFEST: b""}
    if db_fn is not None:
        raw = b"".join(
            zstandard.ZstdDecompressor()
            .decompressobj()
            .decompress(_show(repo, f"{ref}:{part['name']}"))
            for part in manifest["parts"]
        )
        db = repo.parent / "tampered.sqlite"
        db.write_bytes(raw)
        db_fn(db)
        conn = sqlite3.connect(db)
        conn.execute("VACUUM")
        conn.close()
        data = db.read_bytes()
        packed = zstandard.ZstdCompressor(write_checksum=True).compress(data)
        manifest["db"] = {"bytes": len(data), "crc32": zlib.crc32(data)}
        manifest["parts"] = [
            {
                "name": "index.sqlite.zst000",
                "bytes": len(packed),
                "crc32": zlib.crc32(packed),
                "blob": _store(repo, packed),
            }
        ]
        entries["index.sqlite.zst000"] = packed
    else:
        for part in manifest["parts"]:
            entries[part["name"]] = _show(repo, f"{ref}:{part['name']}")
    manifest_fn(manifest)
    if sign_as is not None:
        who, key = sign_as
        snapshots.sign(manifest, who, key or keys.load(repo / ".git", who))
    entries[snapshots.MANIFEST] = orjson.dumps(manifest)
    lines = [f"100644 blob {_store(repo, content)}\t{name}\n" for name, content in entries.items()]
    tree = (
        subprocess.run(
            ["git", "mktree"], cwd=repo, input="".join(lines).encode(), capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    commit = git(repo, "commit-tree", tree, "-m", "tampered").strip()
    git(repo, "update-ref", ref, commit)


def _store(repo: Path, content: bytes) -> str:
    proc = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=content, capture_output=True
    )
    return proc.stdout.decode().strip()


def _show(repo: Path, what: str) -> bytes:
    return subprocess.run(["git", "show", what], cwd=repo, capture_output=True, check=True).stdout


def _edit_event(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE missions SET title = 'forged' WHERE mission_id = 'a0'")
    conn.commit()
    conn.close()


def _drop_event(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM events WHERE pos = (SELECT max(pos) FROM events)")
    conn.commit()
    conn.close()


def _forge_key(db: Path) -> None:
    """viper's key replaced by another (counts and everything else consistent)."""
    import sqlite3

    from fleetgit.ledger import keys

    conn = sqlite3.connect(db)
    forged = keys.public_of_raw(keys.generate_raw())
    conn.execute("UPDATE pilot_keys SET key = ? WHERE callsign = 'viper'", (forged,))
    assert conn.total_changes == 1
    conn.commit()
    conn.close()


def _forge_signature(db: Path) -> None:
    """A line's kept `_sig` value (what restore-lost writes back) replaced by another."""
    import sqlite3

    conn = sqlite3.connect(db)
    (rowid, values) = conn.execute("SELECT rowid, sigs FROM signatures LIMIT 1").fetchone()
    conn.execute(
        "UPDATE signatures SET sigs = ? WHERE rowid = ?", (b"A" * 128 + values[128:], rowid)
    )
    conn.commit()
    conn.close()


def _drop_signature(db: Path) -> None:
    """The kept `_sig` values of a portion dropped: restore-lost could not write those lines."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM signatures WHERE rowid = (SELECT max(rowid) FROM signatures)")
    assert conn.total_changes == 1
    conn.commit()
    conn.close()


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], Callable[[Path], None] | None, str]] = {
    # the index file changed, the manifest not: the digest
    "tampered file": (lambda m: m["db"].update(bytes=m["db"]["bytes"] + 1), None, "size"),
    "tampered part": (lambda m: m["parts"][0].update(crc32=0), None, "checksum"),
    # the file edited and the manifest's digest made to match: the counts against the segments
    "dropped event": (lambda m: None, _drop_event, "events per writer"),
    # a key the segments' key events do not establish (issue 17): re-derived and compared
    "forged key": (lambda m: None, _forge_key, "pilot keys"),
    # the line signatures restore-lost writes back, against the segments' signed lines
    "forged signature": (lambda m: None, _forge_signature, "none of its segments holds"),
    "dropped signature": (lambda m: None, _drop_signature, "lacks the line signature"),
    "wrong schema": (lambda m: m.update(schema_version=1), None, "index schema 1"),
    "other catalogue": (lambda m: m.update(catalogue="00"), None, "event catalogue"),
    "other intake": (
        lambda m: m["intake"].update(max_event_bytes=1),
        None,
        "intake settings",
    ),
    "foreign commit": (lambda m: m.update(commit="1" * 40), None, "no branch"),
    "missing segment": (lambda m: m["segments"].append(["2" * 40, 5]), None, "not here"),
    "segment size": (
        lambda m: m["segments"][0].__setitem__(1, m["segments"][0][1] + 1),
        None,
        "not here with its size",
    ),
    "not json": (lambda m: m.clear(), None, "format"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_snapshot_is_refused_in_one_line_and_never_trusted(
    origin: Path, tmp_path: Path, case: str
) -> None:
    manifest_fn, db_fn, why = CASES[case]
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    (ref,) = git(origin, "for-each-ref", "--format=%(refname)", snapshots.PREFIX).split()
    _rewrite(origin, ref, manifest_fn, db_fn)
    clone = _clone(origin, tmp_path / "clone")
    res = run_fleetgit(clone, "mission", "list", "--json")
    assert res.code == 0, res.err
    (line,) = res.err.splitlines()
    assert "not used" in line and why in line, line
    assert "reading the segments" in line
    plain = tmp_path / "plain"
    git(tmp_path, "clone", "-q", str(origin), str(plain))
    assert _projections(clone)["missions"] == _projections(plain)["missions"]
    assert run_fleetgit(clone, "verify", "--deep").code == 0


def test_a_consistent_forgery_is_caught_by_verify_deep(origin: Path, tmp_path: Path) -> None:
    """What the load checks cannot see (a projection forged, file and counts consistent) the
    replay does: the limit of checking by counts and hashes, documented in docs/design.md."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    (ref,) = git(origin, "for-each-ref", "--format=%(refname)", snapshots.PREFIX).split()
    _rewrite(origin, ref, db_fn=_edit_event)
    clone = _clone(origin, tmp_path / "clone")
    assert "loaded the index snapshot" in run_fleetgit(clone, "status").err
    deep = run_fleetgit(clone, "verify", "--deep")
    assert deep.code == 1 and "missions: 2 row(s) differ" in deep.out, deep.out
    assert run_fleetgit(clone, "index", "rebuild").code == 0
    assert run_fleetgit(clone, "verify", "--deep").code == 0


def _forge_quarantine(db: Path) -> None:
    """An honest event moved from the events into the quarantine (counts fixed to match)."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO quarantine SELECT id, 0, tx, writer, 1, 1, wseq, hlc, actor, type, 'forged',"
        " x'00', 0 FROM events WHERE type = 'mission_updated' AND actor = 'goose'"
    )
    conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM quarantine)")
    conn.commit()
    conn.close()


def test_a_forged_quarantine_is_refused_unless_an_admin_signed_it(
    origin: Path, tmp_path: Path
) -> None:
    """A snapshot no admin key signed may keep no event out (proving the quarantine would cost
    a rebuild): a pilot-signed one holding an honest event in its quarantine is refused on load.
    An admin-signed one is taken as the admin built it; `verify` (not only --deep) still checks
    the signatures again from the segments and names the event the index wrongly holds out."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    (ref,) = git(origin, "for-each-ref", "--format=%(refname)", snapshots.PREFIX).split()

    def recount(m: dict[str, Any]) -> None:
        for counts in m["writers"].values():
            counts[0] -= 1

    _rewrite(origin, ref, recount, _forge_quarantine)
    clone = _clone(origin, tmp_path / "clone")
    res = run_fleetgit(clone, "status")
    assert "keeps 1 event(s) out" in res.err and "reading the segments" in res.err, res.err
    assert run_fleetgit(clone, "verify").code == 0
    # the same forgery signed by a listed admin key (a careless admin): loaded; verify names it
    admin = _admin(origin)
    made = run_fleetgit(origin, "snapshot", "--json")  # signed by the admin key, no --as
    assert made.code == 0 and orjson.loads(made.out)["signed_by"] == "admin", made.err
    _rewrite(origin, ref, recount, _forge_quarantine, sign_as=("admin", admin))
    clone = _clone(origin, tmp_path / "admin-clone")
    assert "loaded the index snapshot" in run_fleetgit(clone, "status").err
    res = run_fleetgit(clone, "verify", "--json")
    assert res.code == 1
    (wrong,) = [p for p in orjson.loads(res.out)["problems"] if p["kind"] == "index_trust"]
    assert "quarantined it" in wrong["detail"] and "rebuild" in wrong["hint"]
    assert run_fleetgit(clone, "index", "rebuild").code == 0
    assert run_fleetgit(clone, "verify").code == 0


def _admin(repo: Path) -> Any:
    """A fleet admin key made in `repo` and listed in its committed configuration."""
    from fleetgit.ledger import keys

    key, _ = keys.create_admin(repo / ".git")
    config = repo / ".fleet" / "config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f'admin_keys = ["ed25519:{keys.public(key)}"]\n', encoding="utf-8")
    git(repo, "commit", "-q", "-am", "fleet admin key")
    return key


def test_a_snapshot_of_an_unshared_commit_is_stale_elsewhere(origin: Path, tmp_path: Path) -> None:
    git(origin, "checkout", "-q", "-b", "local")
    _work(origin, "d")
    assert (
        run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    )  # of `local`, which the clone lacks
    git(origin, "checkout", "-q", "main")
    git(origin, "branch", "-D", "local")
    clone = _clone(origin, tmp_path / "clone")
    res = run_fleetgit(clone, "status")
    assert "no branch or remote-tracking branch here holds" in res.err


def test_an_existing_index_is_never_replaced(origin: Path, tmp_path: Path) -> None:
    clone = _clone(origin, tmp_path / "clone")
    assert run_fleetgit(clone, "status").code == 0  # no snapshot yet: the segments are read
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    git(clone, "fetch", "-q", "origin")
    res = run_fleetgit(clone, "status")
    assert "snapshot" not in res.err


def test_snapshot_parts_stay_under_the_limit(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "PART_BYTES", 8 << 10)
    with Fleet.open(origin, actor="viper") as fleet:
        built = fleet.snapshot()
    assert built.parts > 1
    sizes = git(origin, "ls-tree", "-l", built.commit).split("\n")
    parts = [int(line.split()[3]) for line in sizes if ".zst" in line]
    assert len(parts) == built.parts and max(parts) <= 8 << 10
    clone = _clone(origin, tmp_path / "clone")
    monkeypatch.setenv("FLEETGIT_NO_SNAPSHOT", "")
    with Fleet.open(clone) as fleet:
        assert fleet.index.snapshot_note is not None and "loaded" in fleet.index.snapshot_note
    assert _rebuilt(clone) == _projections(clone)


def test_snapshot_needs_a_shared_commit(bare_repo: Path, cli: Any) -> None:
    res = cli(bare_repo, "snapshot", "--rev", "nope")
    assert res.code == 1 and "names no commit" in res.err


def test_a_killed_load_or_build_leaves_nothing_behind(origin: Path, tmp_path: Path) -> None:
    """SIGKILL while a snapshot is built or loaded: no index is put in place half-made, and the
    next run removes the dead process's scratch files."""
    import os
    import signal
    import sys

    code = (
        "import os, signal, sys\n"
        "from fleetgit.index import snapshots, snapshotting\n"
        "from fleetgit.fleet import Fleet\n"
        "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
        "if sys.argv[1] == 'build':\n"
        "    snapshotting._compress = die\n"
        "    Fleet.open('.', catch_up=False, actor='viper').snapshot()\n"
        "else:\n"
        "    snapshots.prepare = die\n"
        "    Fleet.open('.')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "build"], cwd=origin, check=False)
    assert proc.returncode == -signal.SIGKILL
    fleet_dir = origin / ".git" / "fleet"
    assert [n for n in os.listdir(fleet_dir) if n.startswith("snapshot-")]
    assert git(origin, "for-each-ref", snapshots.PREFIX) == ""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    assert not [n for n in os.listdir(fleet_dir) if n.startswith("snapshot-")]
    clone = _clone(origin, tmp_path / "clone")
    proc = subprocess.run([sys.executable, "-c", code, "load"], cwd=clone, check=False)
    assert proc.returncode == -signal.SIGKILL
    clone_dir = clone / ".git" / "fleet"
    assert not (clone_dir / "index.sqlite").exists()
    assert [n for n in os.listdir(clone_dir) if ".snapshot-" in n]
    res = run_fleetgit(clone, "status")
    assert "loaded the index snapshot" in res.err
    assert not [n for n in os.listdir(clone_dir) if ".snapshot-" in n]
    assert _rebuilt(clone) == _projections(clone)


# one step of two clones working apart: (who, what) with what in reserve / release / update /
# commit / merge (the other clone's branch into origin's main) / snapshot (origin's HEAD)
STEP = st.tuples(
    st.sampled_from(["origin", "other"]),
    st.sampled_from(["reserve", "release", "update", "commit", "merge", "snapshot"]),
    st.sampled_from(["src/a.py", "src/**", "docs/", "src/a.py"]),
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(STEP, min_size=4, max_size=14))
def test_any_history_loaded_from_a_snapshot_and_caught_up_equals_a_rebuild(
    tmp_path_factory: Any, steps: list[tuple[str, str, str]]
) -> None:
    """Two clones reserve, release and update apart; origin merges the other's branch and takes
    snapshots at random points; the other's events sort before later snapshots' points. A fresh
    clone that starts from the newest snapshot and catches up equals its own rebuild."""
    from fleetgit.domain.reservations.commands import ReservationConflict

    root = tmp_path_factory.mktemp("story")
    origin = make_repo(root / "origin")
    init(origin)
    enlist(origin)
    with Fleet.open(origin, actor="viper") as fleet:
        fleet.emit("mission_created", "mission/m", {"mission_id": "m", "title": "start"})
        fleet.commit()
    other = _clone(origin, root / "other")
    actors = {"origin": "viper", "other": "goose"}
    snapshots_made = 0
    for who, what, pattern in [*steps, ("other", "commit", ""), ("origin", "merge", "")]:
        here = origin if who == "origin" else other
        if what == "snapshot":
            snapshots_made += run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
            continue
        if what == "merge":
            with Fleet.open(other) as fleet:
                fleet.commit()
            git(other, "push", "-q", "-f", "origin", "HEAD:refs/heads/other")
            git(origin, "merge", "-q", "--no-edit", "other")
            continue
        with Fleet.open(here, actor=actors[who]) as fleet:
            if what == "reserve":
                with contextlib.suppress(ReservationConflict):
                    fleet.reserve([pattern], reason=who)
            elif what == "release":
                fleet.release(everything=True)
            elif what == "update":
                fleet.emit(
                    "mission_updated", "mission/m", {"mission_id": "m", "changes": {"title": who}}
                )
            else:
                fleet.commit()
    clone = _clone(origin, root / "clone")
    with Fleet.open(clone) as fleet:
        note = fleet.index.snapshot_note
    assert (note is not None and "loaded" in note) == bool(snapshots_made), note
    assert _rebuilt(clone) == _projections(clone)


def test_checked_out_segments_are_not_read_again(origin: Path, tmp_path: Path) -> None:
    """The files git checked out from covered blobs are recorded as read when the snapshot is
    loaded (before any catch-up), so the first catch-up parses none of them."""
    from fleetgit.git.paths import locate
    from fleetgit.index.catchup import Index
    from fleetgit.ledger.config import load

    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    clone = _clone(origin, tmp_path / "clone")
    paths = locate(clone)
    index = Index(paths, load(paths.config_file))
    try:
        assert index.snapshot_note and "loaded" in index.snapshot_note
        rows = index.conn.execute("SELECT relpath, size, offset FROM files").fetchall()
        on_disk = sorted(
            str(p.relative_to(clone)) for p in (clone / ".fleet" / "events").rglob("*.jsonl")
        )
        assert sorted(r[0] for r in rows) == on_disk
        assert all(size == offset for _, size, offset in rows)
        result = index.catch_up()
        assert (result.files_read, result.blobs_read, result.new_events) == (0, 0, 0)
    finally:
        index.close()


# -- signatures (issue 18): who vouches for a snapshot ------------------------------------------


def _ref(repo: Path) -> str:
    (ref,) = git(repo, "for-each-ref", "--format=%(refname)", snapshots.PREFIX).split()
    return ref


def _loads(clone: Path) -> str:
    res = run_fleetgit(clone, "status")
    assert res.code == 0, res.err
    return res.err


def test_a_consistent_forgery_keeping_the_old_signature_is_refused_on_load(
    origin: Path, tmp_path: Path
) -> None:
    """Manifest and file rewritten together (a projection forged, every count and checksum made
    to match): the signature, over the parts' blob ids, no longer checks."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    _rewrite(origin, _ref(origin), db_fn=_edit_event, sign_as=None)
    err = _loads(_clone(origin, tmp_path / "clone"))
    assert "signature (by viper) does not check" in err and "reading the segments" in err, err
    # a part swapped for another blob, the manifest untouched: the blob id it names
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    _rewrite(origin, _ref(origin), sign_as=None)
    snap = git(origin, "rev-parse", _ref(origin)).strip()
    tree = git(origin, "ls-tree", snap)
    other = _store(origin, b"not the part")
    lines = [
        line if ".zst" not in line else line.split()[0] + " blob " + other + "\t" + line.split()[3]
        for line in tree.strip().split("\n")
    ]
    swapped = subprocess.run(
        ["git", "mktree"], cwd=origin, input=("\n".join(lines) + "\n").encode(), capture_output=True
    ).stdout.decode()
    commit = git(origin, "commit-tree", swapped.strip(), "-m", "swapped").strip()
    git(origin, "update-ref", _ref(origin), commit)
    err = _loads(_clone(origin, tmp_path / "clone2"))
    assert "is not the blob the manifest names" in err, err


def test_an_unsigned_snapshot_is_refused_under_require_and_taken_under_warn(
    origin: Path, tmp_path: Path, cli: Any
) -> None:
    res = cli(origin, "snapshot")  # no pilot acts, no admin key: nothing here would sign it
    assert res.code == 1 and "only a signed snapshot" in res.err and "hint:" in res.err
    assert git(origin, "for-each-ref", snapshots.PREFIX) == ""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    _rewrite(origin, _ref(origin), lambda m: m.pop("signature"), sign_as=None)
    err = _loads(_clone(origin, tmp_path / "clone"))
    assert "not signed, and trust = require takes only signed ones" in err, err
    # under warn (a ledger from before issue 17) an unsigned one loads, as before
    config = origin / ".fleet" / "config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('trust = "require"', 'trust = "warn"'), encoding="utf-8")
    git(origin, "commit", "-q", "-am", "trust warn")
    built = cli(origin, "snapshot", "--json")
    assert built.code == 0 and built.json()["signed_by"] is None, built.err
    assert "loaded the index snapshot" in _loads(_clone(origin, tmp_path / "warn"))


def test_a_fleet_with_admin_keys_takes_only_admin_signed_snapshots(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed by a listed admin key: loaded without re-deriving the keys from the segments (no
    segment blob is read). Signed by a pilot, unsigned, or by an admin key the configuration no
    longer lists: refused."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0  # before the admin key
    _admin(origin)
    err = _loads(_clone(origin, tmp_path / "pilot"))
    assert "signed by pilot viper, and this fleet takes only admin-signed" in err, err
    made = run_fleetgit(origin, "--as", "viper", "snapshot", "--json")
    assert made.code == 0 and orjson.loads(made.out)["signed_by"] == "admin", made.err
    clone = _clone(origin, tmp_path / "admin")

    def no_blob_read(*args: Any) -> None:
        raise AssertionError("an admin-signed snapshot read the segment blobs")

    monkeypatch.setattr(snapshots, "_check_segments", no_blob_read)
    monkeypatch.setenv("FLEETGIT_NO_SNAPSHOT", "")
    with Fleet.open(clone) as fleet:
        assert fleet.index.snapshot_note and "loaded" in fleet.index.snapshot_note
    monkeypatch.undo()
    assert _rebuilt(clone) == _projections(clone)
    assert run_fleetgit(clone, "verify", "--deep").code == 0
    # the admin key dropped from the configuration: what it signed counts no more
    config = origin / ".fleet" / "config.toml"
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    config.write_text("".join(x for x in lines if "admin_keys" not in x), encoding="utf-8")
    git(origin, "commit", "-q", "-am", "no admin key")
    err = _loads(_clone(origin, tmp_path / "dropped"))
    assert "signed by an admin key this fleet does not list" in err, err


def test_a_snapshot_signed_with_a_revoked_key_is_refused(origin: Path, tmp_path: Path) -> None:
    """viper's key rotated (the old one revoked in the covered history); a snapshot of that
    history signed with the old key (a thief's): its signature checks, its key does not count."""
    from fleetgit.ledger import keys

    old = keys.load(origin / ".git", "viper")
    assert run_fleetgit(origin, "--as", "viper", "pilot", "key", "rotate").code == 0
    with Fleet.open(origin, actor="viper") as fleet:
        fleet.commit()
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    assert "loaded the index snapshot" in _loads(_clone(origin, tmp_path / "honest"))
    _rewrite(origin, _ref(origin), sign_as=("viper", old))
    err = _loads(_clone(origin, tmp_path / "clone"))
    assert "signed by viper with a key the segments do not give viper" in err, err
    # and a pilot whose key is not in the covered history (registered, not committed) signs none
    with Fleet.open(origin, actor="viper-2", register=True) as fleet:
        fleet.emit("mission_created", "mission/v2", {"mission_id": "v2", "title": "v2"})
    res = run_fleetgit(origin, "--as", "viper-2", "snapshot")
    assert res.code == 1 and "gives pilot viper-2 no key" in res.err, res.err


def test_a_clone_whose_first_command_is_sync_starts_from_the_remote_snapshot(
    origin: Path, tmp_path: Path
) -> None:
    """A plain `git clone` (no snapshot refspec) whose first command is `fleetgit sync`: the
    sync fetches the remote's snapshots before the index is made, and the ledger loads one."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    _work(origin, "c")  # after the snapshot: caught up from it
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(origin, "push", "-q", str(remote), "main", f"+{snapshots.PREFIX}*:{snapshots.PREFIX}*")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    trace = tmp_path / "trace.json"
    res = run_fleetgit(clone, "sync", env={"GIT_TRACE2_EVENT": str(trace)})
    assert res.code == 0, res.err
    assert "loaded the index snapshot" in res.err, res.err
    assert _rebuilt(clone) == _projections(clone)
    # its fetches, the snapshots' included, run no `git maintenance run --auto` after them
    runs = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    argv = [r["argv"] for r in runs if r["event"] == "start"]
    assert [cmd for cmd in argv if snapshots.PREFIX in " ".join(cmd)], argv
    assert not [cmd for cmd in argv if "maintenance" in cmd or "gc" in cmd], argv
    # a clone with an index fetches no snapshot again
    had = git(clone, "for-each-ref", snapshots.PREFIX)
    assert run_fleetgit(origin, "--as", "goose", "snapshot").code == 0
    git(origin, "push", "-q", str(remote), f"+{snapshots.PREFIX}*:{snapshots.PREFIX}*")
    assert git(remote, "for-each-ref", snapshots.PREFIX) != had
    assert run_fleetgit(clone, "sync").code == 0
    assert git(clone, "for-each-ref", snapshots.PREFIX) == had


def test_a_fresh_clone_s_snapshot_fetch_and_early_fetch_share_no_ref_lock(
    origin: Path, tmp_path: Path
) -> None:
    """A fresh clone's `fleetgit sync` fetches the snapshots (engine.fetch_snapshots_first)
    while its early fetch (sync/prefetch.py) runs: real git processes, at once, with
    packed-refs.lock held by someone else all along. Both succeed, so neither takes that lock
    (no deletion on a fresh clone; an update of a packed ref writes a loose one) and each locks
    only refs of its own namespace: they cannot collide."""
    from fleetgit.git import fleetrefs
    from fleetgit.git.paths import locate
    from fleetgit.sync import engine

    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    writers = [f"main:refs/fleet/writers/w{i:03d}" for i in range(50)]
    git(
        origin,
        "push",
        "-q",
        str(remote),
        "main",
        *writers,
        f"+{snapshots.PREFIX}*:{snapshots.PREFIX}*",
    )
    clone = _clone(remote, tmp_path / "clone")  # its snapshot refs packed by the clone
    git(origin, "commit", "-q", "--allow-empty", "-m", "later")
    git(origin, "push", "-q", "-f", str(remote), f"main:{_ref(origin)}")  # a packed one moves
    paths = locate(clone)
    lock = paths.common_dir / "packed-refs.lock"
    lock.write_bytes(b"")
    try:
        early = fleetrefs.start_fetch(paths, "origin")
        fleetrefs.fetch_snapshots(paths, "origin", engine.SNAPSHOTS_REFSPEC, 60)
        fleetrefs.finish_fetch(early, 60)
    finally:
        lock.unlink()
    staged = git(clone, "for-each-ref", "--format=%(refname)", fleetrefs.prefetch_prefix("origin"))
    assert len(staged.split()) == 50
    assert git(clone, "rev-parse", _ref(origin)) == git(origin, "rev-parse", "main")


def test_a_fresh_clone_loads_without_pygit2_and_its_first_catch_up_is_a_few_stats(
    origin: Path, tmp_path: Path
) -> None:
    """The load asks git processes (cat-file, ls-files, diff-files), not pygit2; when every ref
    is at the covered commit and every file was checked out from a covered blob, the loaded
    index records what the first catch-up would, fingerprints included: it is fresh at once."""
    import sys

    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    clone = _clone(origin, tmp_path / "clone")
    code = (
        "import sys\n"
        "from fleetgit.fleet import Fleet\n"
        "fleet = Fleet.open('.', catch_up=False)\n"
        "print(fleet.index.snapshot_note is not None, fleet.index.is_fresh(),"
        " 'pygit2' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True)
    assert proc.stdout.split() == ["True", "True", "False"], (proc.stdout, proc.stderr)
    assert _rebuilt(clone) == _projections(clone)
    # a ref elsewhere (a branch past the covered commit): the first catch-up walks it
    _work(origin, "late")
    git(origin, "push", "-q", str(clone), "main:refs/heads/later")
    other = _clone(clone, tmp_path / "other")
    git(other, "fetch", "-q", "origin", "refs/heads/later:refs/remotes/origin/later")
    with Fleet.open(other) as fleet:
        assert fleet.index.snapshot_note and "loaded" in fleet.index.snapshot_note
        assert len(fleet.index.conn.execute("SELECT * FROM missions").fetchall()) == 12
    assert _rebuilt(other) == _projections(other)


def _snapshot_holding(origin: Path, entry: str, clone: Path) -> Path:
    """A snapshot of `origin` whose own commit also holds `entry` (mode, type and id) as
    `.fleet` (made by hand: fleetgit's never do), cloned to `clone`."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    ref = _ref(origin)
    tree = git(origin, "ls-tree", ref).strip().split("\n")
    lines = "\n".join([*tree, f"{entry}\t.fleet"]) + "\n"
    made = subprocess.run(["git", "mktree"], cwd=origin, input=lines.encode(), capture_output=True)
    commit = git(origin, "commit-tree", made.stdout.decode().strip(), "-m", "with .fleet").strip()
    git(origin, "update-ref", ref, commit)
    return _clone(origin, clone)


def test_a_snapshot_commit_holding_segments_is_walked_not_taken_as_read(
    origin: Path, tmp_path: Path
) -> None:
    """A snapshot ref whose commit also holds a `.fleet` tree (made by hand: fleetgit's never
    do): the load does not record that ref as read, so the first catch-up walks it."""
    import sys

    fleet = git(origin, "rev-parse", "HEAD:.fleet").strip()
    clone = _snapshot_holding(origin, f"040000 tree {fleet}", tmp_path / "clone")
    code = (
        "from fleetgit.fleet import Fleet\n"
        "fleet = Fleet.open('.', catch_up=False)\n"
        "print(fleet.index.snapshot_note is not None, fleet.index.is_fresh())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True)
    assert proc.stdout.split() == ["True", "False"], (proc.stdout, proc.stderr)
    assert _rebuilt(clone) == _projections(clone)


def test_a_snapshot_commit_s_own_fleet_is_looked_at_not_read(origin: Path, tmp_path: Path) -> None:
    """Whether the snapshot's own commit holds a `.fleet` is asked of git's header for it: a
    large one (a 15 MiB blob here, under every read limit) is never read into memory."""
    import sys

    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * (15 << 12))  # 15 MiB
    blob = git(origin, "hash-object", "-w", str(big)).strip()
    clone = _snapshot_holding(origin, f"100644 blob {blob}", tmp_path / "clone")
    code = (
        "import tracemalloc\n"
        "from fleetgit.fleet import Fleet\n"
        "tracemalloc.start()\n"
        "fleet = Fleet.open('.', catch_up=False)\n"
        "print(fleet.index.snapshot_note, tracemalloc.get_traced_memory()[1] >> 20)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True)
    note, peak = proc.stdout.rsplit(" ", 1)
    assert note.startswith("loaded the index snapshot"), (proc.stdout, proc.stderr)
    assert int(peak) < 8, proc.stdout  # MiB at most at any time: the blob's 15 never held


def _drop_history(origin: Path) -> None:
    """`origin`'s main rewritten (as by a force-push) to a commit holding the fleet's files but
    no segment: every event of the history is then in no commit of any ref."""
    first = git(origin, "rev-list", "--max-parents=0", "HEAD").split()[0]
    tip = git(origin, "rev-parse", "HEAD").strip()
    git(origin, "checkout", "-q", "-B", "main", first)
    git(origin, "checkout", "-q", tip, "--", ".")
    git(origin, "rm", "-r", "-q", "-f", ".fleet/events")
    git(origin, "commit", "-q", "-m", "the fleet's history dropped")


def _restorable(clone: Path) -> tuple[int, int]:
    """`clone` following its origin's rewritten main: how many events `verify` reports lost,
    and how many of them `restore-lost` could write back."""
    git(clone, "fetch", "-q")
    git(clone, "reset", "-q", "--hard", "origin/main")
    report = orjson.loads(run_fleetgit(clone, "verify", "--json").out)
    (lost,) = [p for p in report["problems"] if p["kind"] == "lost"]
    res = run_fleetgit(clone, "restore-lost", "--dry-run", "--json")
    assert res.code == 0, res.err
    return int(lost["detail"].split(" event")[0]), len(orjson.loads(res.out)["events"])


def test_restore_lost_writes_back_every_line_of_a_clone_that_started_from_a_snapshot(
    origin: Path, tmp_path: Path
) -> None:
    """The line signatures a snapshot keeps are what `restore-lost` writes back (a later read of
    a line the index holds adds none): from an honest snapshot every lost event can be written
    back; one with a signature row dropped is refused on load (the segments read instead), so
    that clone can write back every one too (loaded, it could not write back that portion)."""
    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    honest = _clone(origin, tmp_path / "honest")
    assert "loaded the index snapshot" in _loads(honest)
    _rewrite(origin, _ref(origin), db_fn=_drop_signature)
    dropped = _clone(origin, tmp_path / "dropped")
    assert "lacks the line signature" in _loads(dropped)
    _drop_history(origin)
    lost, restorable = _restorable(honest)
    assert lost > 0 and restorable == lost
    assert _restorable(dropped) == (lost, lost)


# -- the `signatures` rows of a snapshot: untrusted input, checked before anything is converted --

_VALUE = b"Z" * 128  # a `_sig` value's length


def _rows(*rows: tuple[Any, Any, Any]) -> Callable[[Path], None]:
    def add(db: Path) -> None:
        import sqlite3

        conn = sqlite3.connect(db)
        conn.executemany("INSERT INTO signatures VALUES (?, ?, ?)", rows)
        conn.commit()
        conn.close()

    return add


MALFORMED: dict[str, Callable[[Path], None]] = {
    # 3 GB each if converted to bytes (a few KB of snapshot): under the test's memory cap
    "integer values": _rows(*((f"w{i}", "x", 3 * 10**9) for i in range(40))),
    "text values": _rows(("w", "1" * 36, "Z" * 128)),
    "blob ids": _rows(("w", b"1" * 36, _VALUE)),
    "an empty id": _rows(("w", "", _VALUE)),
    "an empty row": _rows(("w" * 10**6, "", b"")),
    "ids and values disagree": _rows(("w", "1" * 72, _VALUE)),
    "non-ascii ids": _rows(("w", "é" * 36, _VALUE)),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_signature_row_is_refused_before_it_is_read(
    origin: Path, tmp_path: Path, case: str
) -> None:
    """A `signatures` row `remember` could not have written (another type in a loosely typed
    column, ids and values of other lengths) refuses the snapshot before a value is converted
    (the types in SQL): an integer value was once turned into that many zero bytes (3 GB a
    row)."""
    from tests.hostile import fleetgit

    assert run_fleetgit(origin, "--as", "viper", "snapshot").code == 0
    _rewrite(origin, _ref(origin), db_fn=MALFORMED[case])
    clone = _clone(origin, tmp_path / "clone")
    res = fleetgit(clone, "status")  # under a memory cap and a timeout
    assert res.code == 0, res.err
    (line,) = res.err.splitlines()
    assert "not used" in line and "malformed line-signature row" in line, line
    assert "reading the segments" in line


def test_a_malformed_signature_row_cannot_hide_a_writer_s_signatures(
    repo: Path, tmp_path: Path
) -> None:
    """A listed blob holding a signed line that intake refuses, whose last `"id":"` ends the
    line, once matched a malformed row (writer, empty id, value) of a tampered snapshot; with
    one row copied, the rewrite of the copies merged that row into the writer's (its ids one
    short of its values) and restore-lost then found none of that writer's signatures."""
    import sqlite3

    _work(repo, "a")
    honest = sorted(p.name for p in (repo / ".fleet/events").iterdir())[0]
    segment = sorted((repo / ".fleet/events" / honest).glob("*.jsonl"))[-1]
    with open(segment, "ab") as fh:
        fh.write(b'{"_sig":"' + _VALUE + b'","x":1,"writer":"' + honest.encode() + b'","id":"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a refused signed line")
    assert run_fleetgit(repo, "--as", "viper", "snapshot").code == 0

    def tamper(db: Path) -> None:
        conn = sqlite3.connect(db)
        conn.execute("INSERT INTO signatures VALUES (?, '', ?)", (honest, _VALUE))
        conn.execute("INSERT INTO signatures SELECT * FROM signatures WHERE ids != '' LIMIT 1")
        conn.commit()
        conn.close()

    _rewrite(repo, _ref(repo), db_fn=tamper)
    clone = _clone(repo, tmp_path / "clone")
    assert "malformed line-signature row" in _loads(clone)
    with Fleet.open(clone, catch_up=False) as fleet:
        conn = fleet.index.conn
        ids = [r[0] for r in conn.execute("SELECT id FROM events WHERE writer = ?", (honest,))]
        assert len(trust.signatures_of(conn, dict.fromkeys(ids, honest))) == len(ids) > 0


def _signatures_table() -> Any:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE signatures (writer TEXT NOT NULL, ids TEXT NOT NULL, sigs BLOB)")
    return conn


def test_a_signed_line_without_a_whole_id_gives_no_signature() -> None:
    """`_Signed.read` keeps (writer, id, value) only for a line with an id of 36 bytes and a
    writer after the value: a line that ends in `"id":"`, or has no id or writer (refused at
    intake, held by a blob), matches no row, empty or not."""
    conn = _signatures_table()
    signed = snapshots._Signed(conn)
    eid = "0" * 36
    signed.read(
        b'{"_sig":"' + _VALUE + b'","x":1,"writer":"w","id":"\n'
        + b'{"_sig":"' + _VALUE + b'","id":"' + eid.encode() + b'","writer":"w"}\n'
        + b'{"_sig":"' + _VALUE + b'","x":1,"writer":"w","id":"12"}\n'
        + b'{"_sig":"' + _VALUE + b'","x":1,"writer":"w"}\n'
        + b'{"_sig":"' + _VALUE + b'","id":"' + eid.encode() + b'"}\n'
        + b'{"_sig":"' + _VALUE + b'","id":"' + eid.encode() + b'","writer":"w}\n'
    )  # fmt: skip
    assert signed.found == {(b"w", eid.encode(), _VALUE)}


def test_rewritten_signatures_are_whole_rows_of_at_most_10000_ids() -> None:
    """`rewrite_signatures` writes only (id, value) pairs of the right lengths, so a row's ids
    and values always agree, and at most 10,000 a row (a writer's one row would pass SQLite's
    1 GB value limit at ~7.8 M signed lines); the readers take every row of a writer."""
    import uuid

    conn = _signatures_table()
    ids = [str(uuid.UUID(int=i)) for i in range(25_001)]
    rows: set[tuple[Any, Any, bytes]] = {("w", eid, b"%0128d" % i) for i, eid in enumerate(ids)}
    bad = {
        ("w", "", _VALUE),
        ("w", "1" * 35, _VALUE),
        ("w", "2" * 36, b"short"),
        ("v", "é" * 36, _VALUE),
    }
    trust.rewrite_signatures(conn, rows | bad)
    lengths = conn.execute(
        "SELECT writer, length(ids) / 36, length(sigs) / 128, length(ids) % 36 FROM signatures"
        " ORDER BY rowid"
    ).fetchall()
    assert lengths == [("w", 10_000, 10_000, 0), ("w", 10_000, 10_000, 0), ("w", 5_001, 5_001, 0)]
    got, copies = trust.signature_rows(conn)
    assert got == rows and not copies
    wanted = dict.fromkeys(ids, "w")
    assert trust.signatures_of(conn, wanted) == {eid: [b"%0128d" % i] for i, eid in enumerate(ids)}
    # as a snapshot's check rewrites them: writers and ids as bytes
    encoded = {(w.encode(), eid.encode(), v) for w, eid, v in rows}
    trust.rewrite_signatures(conn, encoded | {(b"w", b"", _VALUE), (b"w", b"\xc3" * 36, _VALUE)})
    assert trust.signature_rows(conn, encoded=True) == (encoded, False)
