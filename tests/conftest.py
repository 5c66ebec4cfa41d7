"""Fixtures: real git repositories in temp dirs, with a pinned identity and no global config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fleetgit.cli import app
from fleetgit.fleet import init

ENV = {
    "GIT_AUTHOR_NAME": "Test Pilot",
    "GIT_AUTHOR_EMAIL": "pilot@example.com",
    "GIT_COMMITTER_NAME": "Test Pilot",
    "GIT_COMMITTER_EMAIL": "pilot@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "NO_COLOR": "1",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's git config or writes outside its temp dirs."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FLEET_CALLSIGN", raising=False)
    monkeypatch.delenv("FLEET_HOOK_MODE", raising=False)
    # the clones of one test are one machine: its pilots' keys serve them all (ledger/keys.py)
    monkeypatch.setenv("FLEETGIT_KEY_DIR", str(home / "fleet-keys"))


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n", encoding="utf-8")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


# the callsigns tests act as: a pilot acts only once registered (`enlist`); the `repo` fixture
# registers them, so its first CREW_EVENTS positions are theirs
CREW = ("viper-1", "viper", "goose", "ice", "maverick")
CREW_EVENTS = len(CREW)


def enlist(path: Path, *callsigns: str) -> None:
    """Register `callsigns` (default: the CREW) in one batch, as each would itself."""
    from fleetgit.fleet import EventSpec, Fleet

    specs = [
        EventSpec("pilot_registered", f"pilot/{name}", {"callsign": name}, actor=name)
        for name in callsigns or CREW
    ]
    with Fleet.open(path) as fleet:
        fleet.emit_batch(specs)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit, fleetgit initialised and the CREW registered."""
    path = make_repo(tmp_path / "repo")
    init(path)
    enlist(path)
    return path


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """A git repository with one commit and fleetgit initialised: no pilot registered."""
    path = make_repo(tmp_path / "repo")
    init(path)
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return orjson.loads(self.out)

    def items(self) -> list[Any]:
        """The list of a listing's JSON envelope, `{"<things>": [...], "more": N}`."""
        value: Any = self.json()
        (key,) = [k for k in value if k != "more"]
        return list(value[key])


@pytest.fixture
def cli() -> Iterator[object]:
    """Run the CLI in-process: cli(repo, 'events', '--json')."""
    runner = CliRunner()

    def run(cwd: Path, *args: str, input: str | None = None) -> Result:
        old = os.getcwd()
        os.chdir(cwd)
        try:
            res = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        finally:
            os.chdir(old)
        return Result(res.exit_code, res.stdout, res.stderr)

    yield run


def run_fleetgit(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "fleetgit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def flood(repo: Path, to: str, count: int, sender: str = "goose") -> list[str]:
    """Send `count` messages to `to` in one batch through the Python API; ids, oldest first."""
    from fleetgit.fleet import EventSpec, Fleet

    ids = [f"msg-{i:05d}" for i in range(count)]
    specs = [
        EventSpec("message_sent", f"message/{mid}", {"message_id": mid, "to": [to], "subject": mid})
        for mid in ids
    ]
    with Fleet.open(repo, actor=sender) as fleet:
        fleet.emit_batch(specs)
    return ids


def plant(
    repo: Path,
    etype: str,
    stream: str,
    data: dict[str, object],
    actor: str | None,
    seq: int | None = None,
    *,
    sign: bool = True,
) -> None:
    """An event as another clone could commit it, past every check of `emit` (a crafted line,
        an older or buggy fleetgit): the canonical line, appended to a segment of a writer of its
        own. A command that reads the ledger next ingests it as any segment git brought. Signed with
    the actor's key when this repository holds it (`sign=False`: unsigned)."""
    from fleetgit.ledger import clock
    from fleetgit.ledger.codec import Event, encode

    wdir = repo / ".fleet/events/zzzzzzzzzzzzzzzz"
    wdir.mkdir(parents=True, exist_ok=True)
    segment = wdir / "00000001.jsonl"
    wseq = len(segment.read_bytes().splitlines()) + 1 if segment.exists() else 1
    (eid,) = clock.uuid7s(1)
    now = clock.now_ms()
    event = Event(
        id=eid, type=etype, v=1, stream=stream, seq=seq or wseq, hlc=clock.make_hlc(now),
        writer="z" * 16, wseq=wseq, actor=actor, ts=clock.iso_ms(now), tx=eid, txn=1, data=data,
    )  # fmt: skip
    line = encode(event)
    if sign and actor is not None:
        line = signed(repo, segment, event, line)
    with open(segment, "ab") as fh:
        fh.write(line)


def signed(repo: Path, segment: Path, event: object, line: bytes) -> bytes:
    """`line` (one batch, appended to `segment`) signed with the repository's key of its actor,
    when the repository holds one (ledger/sigs.py): a crafted line of a pilot whose key is
    here, as its own clone would sign it."""
    from fleetgit.index import trust
    from fleetgit.ledger import keys, sigs
    from fleetgit.ledger.codec import Event
    from fleetgit.ledger.names import segment_number

    assert isinstance(event, Event)
    number = segment_number(segment.name) or 1
    before = segment.read_bytes().splitlines(keepends=True) if segment.exists() else []
    base = sigs.chain(sigs.genesis(event.writer, number), before)
    common = repo / ".git"  # FLEETGIT_KEY_DIR (isolated_env) wins over it
    (out,) = trust.sign_batch([line], [event], number, base, lambda a: keys.load(common, a))
    return out


def signed_segment(repo: Path, number: int, events: list[Any]) -> bytes:
    """The bytes of segment `number` holding `events` (batches by tx, from the segment's start),
    each batch signed with the repository's keys of its actors (ledger/sigs.py)."""
    from fleetgit.index import trust
    from fleetgit.ledger import keys, sigs
    from fleetgit.ledger.codec import encode

    common = repo / ".git"
    out: list[bytes] = []
    i = 0
    while i < len(events):
        batch = events[i : i + events[i].txn]
        base = sigs.chain(sigs.genesis(events[i].writer, number), out)
        lines = [encode(e) for e in batch]
        out += trust.sign_batch(lines, batch, number, base, lambda a: keys.load(common, a))
        i += len(batch)
    return b"".join(out)


@contextmanager
def read_only_fleet(repo: Path) -> Iterator[list[str]]:
    """`.fleet/` read-only for the commands run inside: the prefix to run them with. A plain
    chmod for a user (no prefix); for root, whom permissions do not stop, a read-only bind mount
    in a mount namespace of its own (the prefix runs the command in it)."""
    if os.geteuid() != 0:
        for folder in [repo / ".fleet", *(repo / ".fleet").rglob("*")]:
            folder.chmod(folder.stat().st_mode & ~0o222)
        try:
            yield []
        finally:
            for folder in [repo / ".fleet", *(repo / ".fleet").rglob("*")]:
                folder.chmod(folder.stat().st_mode | 0o200)
        return
    if subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode:
        pytest.skip("root without a mount namespace of its own: .fleet/ cannot be read-only")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    yield ["unshare", "-m", "sh", "-c", script, "sh", str(repo / ".fleet")]
