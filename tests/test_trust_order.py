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
