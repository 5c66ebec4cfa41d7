"""A hostile collaborator, for real: a bare remote, a victim clone with hooks and a live
reservation, and an attacker clone that pushes crafted `.fleet/` content.

`Scenario.check_victim` asserts what must hold whatever was pushed: every command exits 0 or 1
(never 3, never a hang, memory under a cap), the victim's reservation still blocks another
pilot's commit of its file, an unrelated commit still passes, `verify` names the bad input, and a
rebuilt index equals the incremental one.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from fleetgit.ledger import clock
from fleetgit.ledger.codec import Event, encode
from tests.conftest import Result, git, make_repo

MEMORY_CAP = 512 << 20  # address space of each process (a command needs ~150 MB)
TIMEOUT = 120  # seconds; a hang fails the test instead of stalling the suite
ATTACKER_WRITER = "attacker00000001"
COMMANDS = (
    ("reservations",),
    ("events", "--limit", "5"),
    ("pilot", "list"),
    ("mission", "list"),
    ("sortie", "list"),
    ("workorder", "list"),
    ("lock", "list"),
    ("--as", "viper-1", "squawk", "inbox"),
    ("index", "status"),
    ("--as", "goose", "check", "src/app.py"),
)


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def capped(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A real process under the memory cap and the hang guard, stdin closed."""
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=TIMEOUT,
        preexec_fn=_cap_memory,
        stdin=subprocess.DEVNULL,
    )


def fleetgit(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI as a real process, with a memory cap and a timeout."""
    proc = capped([sys.executable, "-m", "fleetgit", *args], cwd, {**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_git(cwd: Path, *args: str, callsign: str | None = None) -> subprocess.CompletedProcess[str]:
    """git with its hooks firing, as `callsign` when given; capped and timed like commands."""
    env = {**os.environ, "FLEET_CALLSIGN": callsign} if callsign else None
    return capped(["git", *args], cwd, env)


def line(
    type: str,
    stream: str,
    data: Any,
    *,
    actor: str = "mallory",
    writer: str = ATTACKER_WRITER,
    wseq: int = 1,
    hlc: int | None = None,
    **envelope: Any,
) -> bytes:
    """One canonical event line (what an append would write, unless `envelope` says else)."""
    (eid,) = clock.uuid7s(1)
    ms = clock.now_ms() if hlc is None else clock.hlc_ms(hlc)
    event = Event(
        eid, type, 1, stream, 1, hlc or clock.make_hlc(ms), writer, wseq, actor,
        clock.iso_ms(ms), eid, 1, data,
    )  # fmt: skip
    if not envelope:
        return encode(event)
    obj = {**event.envelope(), **envelope}
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def grant(pattern: str, *, holder: str = "mallory", **kw: Any) -> bytes:
    """A `file_reserved` of `pattern`: if it were followed, it would block every pilot's commit
    of what it covers (the victim's unrelated commit included, for `**`)."""
    rid = "res-" + clock.short_id("", 40)
    data = {"reservation_id": rid, "patterns": [pattern], "holder": holder, "exclusive": True,
            "ttl_seconds": 7200}  # fmt: skip
    return line("file_reserved", f"reservation/{rid}", data, actor=holder, **kw)


class Scenario:
    """A victim clone and an attacker's clone of one bare remote. `trust`: the victim's policy
    (.fleet/config.toml). Most scenarios test what intake refuses whoever signed it, with
    an attacker (mallory) no key vouches for, so under `warn`; the signature scenarios
    (tests/test_trust.py) use `require`."""

    def __init__(self, tmp: Path, trust: str = "warn") -> None:
        self.tmp = tmp
        self.bare = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.bare))
        self.victim = make_repo(tmp / "victim")
        v = self.victim
        self.ok(v, "init")
        config = v / ".fleet/config.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('trust = "require"', f'trust = "{trust}"'), "utf-8")
        git(v, "add", ".fleet", ".gitattributes")
        git(v, "commit", "-q", "-m", "fleet")
        git(v, "remote", "add", "origin", str(self.bare))
        git(v, "push", "-q", "-u", "origin", "main")
        self.ok(v, "hooks", "install")
        for callsign in ("viper-1", "goose"):
            self.ok(v, "pilot", "register", callsign)
        self.ok(v, "--as", "viper-1", "reserve", "src/app.py", "--ttl", "2h")
        self.ok(v, "commit", "-m", "fleet: reserve")
        git(v, "push", "-q")
        self.attacker = tmp / "attacker"
        git(tmp, "clone", "-q", str(self.bare), str(self.attacker))

    @staticmethod
    def ok(cwd: Path, *args: str) -> Result:
        res = fleetgit(cwd, *args)
        assert res.code == 0, f"fleetgit {' '.join(args)}: {res.err}"
        return res

    def push(self, relpath: str, content: bytes | None, message: str = "crafted") -> None:
        """Commit `content` at `relpath` in the attacker's clone (None: delete it) and push."""
        path = self.attacker / relpath
        if content is None:
            git(self.attacker, "rm", "-q", relpath)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            git(self.attacker, "add", "-f", relpath)
        git(self.attacker, "commit", "-q", "--no-verify", "-m", message)
        git(self.attacker, "push", "-q")

    def push_lines(self, *lines: bytes, writer: str = ATTACKER_WRITER) -> None:
        self.push(f".fleet/events/{writer}/00000001.jsonl", b"".join(lines))

    def victim_segment(self) -> str:
        """The victim's committed segment (its reservation), as a path in the repository."""
        (path,) = (self.victim / ".fleet/events").glob("*/*.jsonl")
        return str(path.relative_to(self.victim))

    def receive(self, how: str) -> None:
        """The victim takes what was pushed: `pull` (merge, post-merge hook) or `fetch` only."""
        args = ("pull", "-q", "--no-rebase", "--no-edit") if how == "pull" else ("fetch", "-q")
        res = run_git(self.victim, *args)
        assert res.returncode == 0, res.stderr

    def check_victim(self, named: str) -> None:
        v = self.victim
        for args in COMMANDS:
            res = fleetgit(v, *args)
            assert res.code in (0, 1), f"{args}: exit {res.code}: {res.err}"
            assert "Traceback" not in res.err
        verify = fleetgit(v, "verify")
        assert verify.code == 1, verify.out
        assert named in verify.out, verify.out
        self.assert_blocks_and_passes()
        before = projections(v)
        rebuilt = fleetgit(v, "index", "rebuild")
        assert rebuilt.code == 0, rebuilt.err
        assert projections(v) == before

    def assert_blocks_and_passes(self) -> None:
        v = self.victim
        (v / "src").mkdir(exist_ok=True)
        (v / "src/app.py").write_text("goose was here\n", encoding="utf-8")
        git(v, "add", "src/app.py")
        refused = run_git(v, "commit", "-q", "-m", "goose edits viper's file", callsign="goose")
        assert refused.returncode != 0, "the victim's reservation no longer blocks"
        assert "src/app.py" in refused.stderr
        git(v, "reset", "-q", "src/app.py")
        (v / "src/app.py").unlink()
        (v / "notes.txt").write_text("unrelated\n", encoding="utf-8")
        git(v, "add", "notes.txt")
        passed = run_git(v, "commit", "-q", "-m", "an unrelated commit", callsign="goose")
        assert passed.returncode == 0, passed.stderr


def projections(repo: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table of the clone's index, rows sorted."""
    from fleetgit.index.projections import TABLES

    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()
