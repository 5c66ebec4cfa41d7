"""What another clone can put under `.fleet/` (links, FIFOs, directories, huge files and lines)
neither blinds, hangs nor misleads this one, nor makes it write outside the repository.

Real git: a bare remote, a victim clone with the hooks installed and a live reservation, an
attacker clone that commits crafted `.fleet/` content and pushes, the victim pulling or only
fetching. Every fleetgit command runs as a real process under a memory cap and a hang guard.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.ledger.codec import Event, encode
from fleetgit.ledger.segments import parse, parse_stream
from tests.conftest import git, make_repo
from tests.hostile import capped

ATTACKER_WRITER = "badwriter0000001"


def fleetgit(cwd: Path, *args: str, who: str | None = None) -> subprocess.CompletedProcess[str]:
    """A fleetgit command as a real process, capped (as `who`, else as nobody)."""
    env = {k: v for k, v in os.environ.items() if k != "FLEET_CALLSIGN"}
    argv = [sys.executable, "-m", "fleetgit", *(("--as", who) if who else ()), *args]
    return capped(argv, cwd, env)


def as_pilot(repo: Path, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A git command as pilot `who`, its hooks firing."""
    return capped(["git", *args], repo, {**os.environ, "FLEET_CALLSIGN": who})


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


class Fleet:
    """The remote, the victim (viper-1 holds src/app.py) and the attacker's clone."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        seed = make_repo(tmp / "seed")
        (seed / "src").mkdir()
        (seed / "src/app.py").write_text("app\n")
        git(seed, "add", "src/app.py")
        git(seed, "commit", "-q", "-m", "app")
        ok(fleetgit(seed, "init"))
        ok(fleetgit(seed, "commit", "-m", "fleet: init"))
        self.origin = tmp / "origin.git"
        git(tmp, "clone", "-q", "--bare", str(seed), str(self.origin))
        self.victim = tmp / "victim"
        git(tmp, "clone", "-q", str(self.origin), str(self.victim))
        ok(fleetgit(self.victim, "hooks", "install"))
        ok(fleetgit(self.victim, "pilot", "register", "viper-1"))
        ok(fleetgit(self.victim, "reserve", "src/app.py", "--ttl", "1d", who="viper-1"))
        ok(fleetgit(self.victim, "commit", "-m", "fleet: viper-1 holds src/app.py"))
        git(self.victim, "push", "-q", "origin", "main")
        git(self.victim, "branch", "keep")  # the reservation stays on a ref whatever main does
        self.victim_writer = (self.victim / ".git/fleet/writer").read_text().split()[0]
        self.attacker = tmp / "attacker"
        git(tmp, "clone", "-q", str(self.origin), str(self.attacker))
        self.outside = tmp / "outside"
        self.outside.mkdir()

    def elsewhere_lines(self) -> bytes:
        """A segment of another repository's ledger: valid events that are not this fleet's."""
        other = make_repo(self.tmp / "elsewhere")
        ok(fleetgit(other, "init"))
        ok(fleetgit(other, "pilot", "register", "goose"))
        ok(fleetgit(other, "reserve", "docs/**", who="goose"))
        writer = (other / ".git/fleet/writer").read_text().split()[0]
        return (other / ".fleet/events" / writer / "00000001.jsonl").read_bytes()

    def attack(self, craft: Callable[[Path], None], route: str) -> None:
        """The attacker commits what `craft` makes and pushes; the victim pulls or fetches."""
        craft(self.attacker)
        git(self.attacker, "add", "-A", ".fleet")
        git(self.attacker, "commit", "-q", "-m", "fleet: crafted")
        git(self.attacker, "push", "-q", "origin", "main")
        if route == "pull":
            res = as_pilot(self.victim, "viper-1", "pull", "-q", "--no-rebase", "origin", "main")
            assert res.returncode == 0, res.stderr
        else:
            git(self.victim, "fetch", "-q", "origin")


def state(repo: Path) -> dict[str, list[Any]]:
    """The index's events and projections (not its bookkeeping of files, blobs and refs)."""
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if name not in ("meta", "files", "blobs", "trees", "refs", "cursors")
            and "_fts" not in name
        ]
        out = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
        # a rebuild keeps a portion's signatures in one row, a catch-up a row per append: the
        # same (writer, id, value) kept either way
        out["signatures"] = sorted(map(repr, _signatures(conn)))
        return out
    finally:
        conn.close()


def _signatures(conn: sqlite3.Connection) -> set[tuple[str, str, bytes]]:
    kept = set()
    for writer, ids, values in conn.execute("SELECT writer, ids, sigs FROM signatures"):
        n = len(ids) // 36
        for i in range(n):
            kept.add((writer, ids[i * 36 : (i + 1) * 36], bytes(values[i * 128 : (i + 1) * 128])))
    return kept


def survives(fleet: Fleet, names: str, what: str, *, not_ingested: bytes = b"") -> None:
    """Every command exits 0 or 1 with a clear line, under the cap and without hanging; the
    reservation still blocks goose's commit of src/app.py while an unrelated one passes;
    verify names `names` and says `what`; a rebuild equals the incremental index; nothing of
    `not_ingested` is in it."""
    victim = fleet.victim
    for args, who in [
        (("reservations",), None),
        (("events", "--json"), None),
        (("index", "status"), None),
        (("check", "src/app.py"), "goose"),
        (("reserve", "docs/notes.md"), "viper-1"),
        (("pilot", "list"), None),
    ]:
        res = fleetgit(victim, *args, who=who)
        assert res.returncode in (0, 1), (args, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr, res.stderr
        if res.returncode == 1:
            assert (res.stdout + res.stderr).strip(), args
    held = fleetgit(victim, "check", "src/app.py", who="goose")
    assert held.returncode == 1 and "viper-1" in held.stdout + held.stderr

    (victim / "src/app.py").write_text("goose was here\n")
    git(victim, "add", "src/app.py")
    blocked = as_pilot(victim, "goose", "commit", "-q", "-m", "goose: app")
    assert blocked.returncode == 1 and "viper-1" in blocked.stderr, blocked.stderr
    git(victim, "reset", "-q", "HEAD", "--", "src/app.py")
    git(victim, "checkout", "--", "src/app.py")
    (victim / "free.md").write_text("free\n")
    git(victim, "add", "free.md")
    unrelated = as_pilot(victim, "goose", "commit", "-q", "-m", "goose: free")
    assert unrelated.returncode == 0, unrelated.stderr

    report = fleetgit(victim, "verify")
    assert report.returncode == 1, report.stdout + report.stderr
    assert names in report.stdout, report.stdout
    report_json = orjson.loads(fleetgit(victim, "verify", "--json").stdout)
    assert any(names in p["where"] and what in p["detail"] for p in report_json["problems"]), (
        report_json
    )

    ok(fleetgit(victim, "reservations"))  # level with every source
    incremental = state(victim)
    ok(fleetgit(victim, "index", "rebuild"))
    assert state(victim) == incremental
    for line in not_ingested.splitlines():
        event_id = orjson.loads(line)["id"]
        assert event_id not in repr(incremental["events"])


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


ROUTES = ["pull", "fetch"]


def segment(repo: Path, writer: str = ATTACKER_WRITER, number: int = 1) -> Path:
    path = repo / ".fleet/events" / writer / f"{number:08d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("route", ROUTES)
def test_a_committed_link_to_dev_zero_is_not_read(fleet: Fleet, route: str) -> None:
    fleet.attack(lambda repo: segment(repo).symlink_to("/dev/zero"), route)
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "a symbolic link")


@pytest.mark.parametrize("route", ROUTES)
def test_a_committed_link_to_a_file_outside_is_not_ingested(fleet: Fleet, route: str) -> None:
    """The file outside holds valid events: followed, they would count."""
    lines = fleet.elsewhere_lines()
    (fleet.outside / "events.jsonl").write_bytes(lines)
    fleet.attack(lambda repo: segment(repo).symlink_to(fleet.outside / "events.jsonl"), route)
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "a symbolic link", not_ingested=lines)


@pytest.mark.parametrize("route", ROUTES)
def test_a_committed_link_to_another_ledger_is_not_ingested(fleet: Fleet, route: str) -> None:
    lines = fleet.elsewhere_lines()
    theirs = next((fleet.tmp / "elsewhere/.fleet/events").iterdir())

    def craft(repo: Path) -> None:
        (repo / ".fleet/events" / theirs.name).symlink_to(theirs)

    fleet.attack(craft, route)
    survives(fleet, f".fleet/events/{theirs.name}", "a symbolic link", not_ingested=lines)


@pytest.mark.parametrize("route", ROUTES)
def test_a_directory_named_like_a_segment_is_not_opened(fleet: Fleet, route: str) -> None:
    def craft(repo: Path) -> None:
        inside = segment(repo)
        inside.mkdir()
        (inside / "x").write_text("x\n")

    fleet.attack(craft, route)
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "a directory")


@pytest.mark.parametrize("route", ROUTES)
def test_a_100_mb_line_is_skipped_in_bounded_memory(fleet: Fleet, route: str) -> None:
    """Over max_event_bytes: skipped and reported from the file (pulled); as a blob (fetched)
    the segment is over the read limit and not read at all."""

    def craft(repo: Path) -> None:
        with segment(repo).open("wb") as fh:
            fh.write(b'{"pad": "' + b"a" * (100 << 20) + b'"}\n')

    fleet.attack(craft, route)
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "over the limit")


def test_a_2_gb_sparse_segment_is_streamed_in_bounded_memory(fleet: Fleet) -> None:
    with segment(fleet.victim).open("wb") as fh:
        fh.truncate(2 << 30)
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "torn tail")


def test_a_fifo_in_the_work_tree_hangs_nothing(fleet: Fleet) -> None:
    """Nobody writes to it: opened for reading without O_NONBLOCK, it would block forever."""
    os.mkfifo(segment(fleet.victim))
    survives(fleet, f"{ATTACKER_WRITER}/00000001", "a FIFO")
    res = as_pilot(fleet.victim, "viper-1", "checkout", "-q", "-b", "elsewhere")  # post-checkout
    assert res.returncode == 0, res.stderr


def test_a_link_in_place_of_the_own_writer_directory_is_not_written_through(
    fleet: Fleet,
) -> None:
    """A merge replaces viper-1's committed writer directory by a link to a directory outside:
    appends are refused with one line naming the link and how to remove it; nothing is
    written outside; reads and the hook go on from what the index holds."""
    mine = fleet.victim_writer

    def craft(repo: Path) -> None:
        git(repo, "rm", "-q", "-r", f".fleet/events/{mine}")
        (repo / ".fleet/events").mkdir(exist_ok=True)
        (repo / ".fleet/events" / mine).symlink_to(fleet.outside)

    fleet.attack(craft, "pull")
    assert (fleet.victim / ".fleet/events" / mine).is_symlink()
    res = fleetgit(fleet.victim, "reserve", "docs/x.md", who="viper-1")
    assert res.returncode == 1, res.stderr
    assert f".fleet/events/{mine} is a symbolic link" in res.stderr
    assert f"rm .fleet/events/{mine}" in res.stderr
    survives(fleet, f".fleet/events/{mine}", "a symbolic link")
    assert list(fleet.outside.iterdir()) == []


def test_a_link_in_place_of_the_events_directory_is_not_written_through(fleet: Fleet) -> None:
    def craft(repo: Path) -> None:
        git(repo, "rm", "-q", "-r", ".fleet/events")
        (repo / ".fleet").mkdir(exist_ok=True)
        (repo / ".fleet/events").symlink_to(fleet.outside)

    fleet.attack(craft, "pull")
    res = fleetgit(fleet.victim, "reserve", "docs/x.md", who="viper-1")
    assert res.returncode == 1 and ".fleet/events is a symbolic link" in res.stderr
    survives(fleet, ".fleet/events", "a symbolic link")
    assert list(fleet.outside.iterdir()) == []


def test_a_config_that_is_a_fifo_is_refused(fleet: Fleet) -> None:
    config = fleet.victim / ".fleet/config.toml"
    config.unlink()
    os.mkfifo(config)
    res = fleetgit(fleet.victim, "reservations")
    assert res.returncode == 1 and "config.toml is a FIFO" in res.stderr
    (fleet.victim / "free.md").write_text("free\n")
    git(fleet.victim, "add", "free.md")
    hooked = as_pilot(fleet.victim, "goose", "commit", "-q", "-m", "goose: free")
    assert hooked.returncode == 1 and "config.toml is a FIFO" in hooked.stderr


# -- the streaming parser ----------------------------------------------------------------------


def _event(i: int, tx: str, txn: int) -> bytes:
    event_id = f"0190a0b0-0000-7000-8000-{i:012d}"
    return encode(
        Event(
            event_id,
            "note_added",
            1,
            f"pilot/p{i}",
            1,
            i << 16,
            "abcdefgh",
            i,
            "p",
            "t",
            tx,
            txn,
            {"n": "x" * (i % 50)},
            None,
            None,
            0,
        )
    )


def _segment() -> bytes:
    """Twelve events in batches of one and of three."""
    lines = []
    for i in range(1, 13):
        first, txn = (i, 1) if i <= 6 else (i - (i - 7) % 3, 3)
        lines.append(_event(i, f"0190a0b0-0000-7000-8000-{first:012d}", txn))
    return b"".join(lines)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=64) | st.sampled_from([b"", b"\n", b"{}\n", b"x" * 300 + b"\n"]),
    at=st.integers(min_value=0, max_value=2000),
    chunk=st.integers(min_value=1, max_value=97),
    limit=st.sampled_from([None, 100, 300, 400]),
)
def test_streaming_in_chunks_parses_as_whole(data: bytes, at: int, chunk: int, limit: Any) -> None:
    """Whatever the bytes and however they are cut into chunks, the streaming parser finds the
    same events, problems and offsets as one read of the whole buffer."""
    base = _segment()
    buf = base[:at] + data + base[at:]
    whole = parse(buf, max_line=limit, types=CATALOGUE)
    pieces = iter([buf[i : i + chunk] for i in range(0, len(buf), chunk)])
    streamed = parse_stream(lambda _n: next(pieces, b""), types=CATALOGUE, max_line=limit)
    assert [line for _, line in streamed.events] == [line for _, line in whole.events]
    assert streamed.problems == whole.problems
    assert (streamed.good_end, streamed.torn_tail, streamed.end) == (
        whole.good_end,
        whole.torn_tail,
        whole.end,
    )
    for _, line in whole.events:
        assert limit is None or len(line) <= limit


def test_init_writes_through_no_link(tmp_path: Path) -> None:
    """`.fleet` or `.gitattributes` as links to elsewhere (a clone of a hostile repository
    before `fleetgit init`): refused in one line, nothing written there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "attributes").write_text("mine\n")
    repo = make_repo(tmp_path / "repo")
    (repo / ".fleet").symlink_to(outside)
    res = fleetgit(repo, "init")
    assert res.returncode == 1 and ".fleet is a symbolic link" in res.stderr, res.stderr
    (repo / ".fleet").unlink()
    (repo / ".gitattributes").symlink_to(outside / "attributes")
    res = fleetgit(repo, "init")
    assert res.returncode == 1 and ".gitattributes is a symbolic link" in res.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["attributes"]
    assert (outside / "attributes").read_text() == "mine\n"


def test_fleetgit_commit_refuses_a_pending_link(fleet: Fleet) -> None:
    """A link git would list as a new `.fleet/` file: committing what it points to would
    publish a file from outside the repository."""
    (fleet.outside / "secret").write_text("secret\n")
    segment(fleet.victim).symlink_to(fleet.outside / "secret")
    res = fleetgit(fleet.victim, "commit", "-m", "fleet: more")
    assert res.returncode == 1 and "00000001.jsonl is a symbolic link" in res.stderr, res.stderr
    assert "secret" not in git(fleet.victim, "log", "-p", "--all")


def test_the_offset_moves_past_a_long_line_but_not_past_a_torn_tail(tmp_path: Path) -> None:
    """A complete line over max_event_bytes is skipped once: the file's recorded offset moves
    past it. A line with no newline yet, however long, may still be completed by its writer:
    the offset stays before it."""
    from fleetgit.fleet import Fleet, init

    repo = make_repo(tmp_path / "repo")
    init(repo)
    path = segment(repo)
    long_line = b"x" * (300 << 10) + b"\n"
    path.write_bytes(long_line)

    def offset() -> int:
        with Fleet.open(repo) as fleet:
            rows = fleet.index.query("SELECT relpath, offset FROM files")
        return dict((r["relpath"], r["offset"]) for r in rows)[
            f".fleet/events/{ATTACKER_WRITER}/00000001.jsonl"
        ]

    assert offset() == len(long_line)
    with path.open("ab") as fh:
        fh.write(b"y" * (300 << 10))
    assert offset() == len(long_line)
    with path.open("ab") as fh:
        fh.write(b"\n")
    assert offset() == len(long_line) + (300 << 10) + 1
