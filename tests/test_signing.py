"""The signing path of an append (issue 17): the key kept per process while its file stays, the
segment's chain carried in the writer's state. Real files, real processes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.ledger import keys, sigs
from tests.conftest import run_fleetgit


def test_a_key_another_process_replaced_is_loaded_again(tmp_path: Path) -> None:
    common = tmp_path / "git"
    first = keys.create(common, "viper-1")
    assert keys.load(common, "viper-1") is first  # kept: no second read
    path = keys.key_path(common, "viper-1")
    other = keys.generate_raw()  # what `pilot key rotate` in another process writes
    tmp = path.with_suffix(".other")
    tmp.write_text(f"fleetgit-ed25519:{sigs.encode_key(other)}\n", encoding="ascii")
    os.replace(tmp, path)  # a new inode: this process's copy is stale
    got = keys.load_pair(common, "viper-1")
    assert got is not None and got[1] == keys.public_of_raw(other) != keys.public(first)
    path.unlink()
    assert keys.load(common, "viper-1") is None


def test_appends_from_two_processes_chain_through_the_writer_state(repo: Path) -> None:
    """The chain before a batch comes from the writer's state when it matches the segment's
    size, else from the segment: whoever appended last, every signature checks on rebuild."""
    spec = EventSpec("pilot_active", "pilot/viper-1", {"current_task": "a"})
    with Fleet.open(repo, actor="viper-1") as fleet:
        for _ in range(3):
            fleet.emit_batch([spec])
        for n in range(2):  # another process appends between ours: the state moved with it
            res = run_fleetgit(repo, "--as", "goose", "reserve", f"docs/{n}/")
            assert res.code == 0, res.err
            fleet.emit_batch([spec])
    state = (repo / ".git/fleet/writer.lock").read_bytes()
    assert b'"chain":"1 ' in state  # carried in the writer's state, no file of its own
    assert run_fleetgit(repo, "index", "rebuild").code == 0
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM events WHERE type = 'pilot_active'").fetchone() == (
        5,
    )
