"""The core ledger end to end: init, emit, read, expected versions, bad input, commit, sealing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.fleet import EventSpec, Fleet
from fleetgit.ledger.errors import ValidationError
from fleetgit.ledger.sigs import split
from tests.conftest import CREW_EVENTS, git, make_repo

MISSION = {"mission_id": "msn-1", "title": "Ship it", "priority": "high"}


def segment_bytes(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes() for p in (repo / ".fleet/events").rglob("*.jsonl")
    }


def emit_mission(cli: Any, repo: Path, *extra: str) -> Any:
    return cli(
        repo,
        "--as",
        "viper-1",
        "emit",
        "mission_created",
        "--stream",
        "mission/msn-1",
        "--data",
        orjson.dumps(MISSION).decode(),
        "--json",
        *extra,
    )


def test_init_is_idempotent_and_creates_its_files(tmp_path: Path, cli: Any) -> None:
    repo = make_repo(tmp_path / "r")
    first = cli(repo, "init", "--json")
    assert first.code == 0
    assert set(first.json()["created"]) >= {".fleet/config.toml", ".gitattributes"}
    assert (repo / ".fleet/events").is_dir()
    assert ".fleet/events/** -text merge=union" in (repo / ".gitattributes").read_text()
    assert (repo / ".git/fleet/index.sqlite").exists()
    again = cli(repo, "init", "--json")
    assert again.code == 0 and again.json()["created"] == []
    assert (repo / ".gitattributes").read_text().count("merge=union") == 1


def test_init_outside_git_is_refused_with_a_hint(tmp_path: Path, cli: Any) -> None:
    res = cli(tmp_path, "init")
    assert res.code == 1
    assert "not a git repository" in res.err and "hint: git init" in res.err
    assert not (tmp_path / ".fleet").exists()


def test_commands_need_init(tmp_path: Path, cli: Any) -> None:
    repo = make_repo(tmp_path / "r")
    res = cli(repo, "events")
    assert res.code == 1 and "fleetgit init" in res.err


def test_emit_then_read_back(repo: Path, cli: Any) -> None:
    res = emit_mission(cli, repo)
    assert res.code == 0, res.err
    stored = res.json()
    assert stored["pos"] == 1 + CREW_EVENTS and stored["seq"] == 1
    assert stored["actor"] == "viper-1" and stored["data"]["title"] == "Ship it"
    listed = cli(repo, "events", "--type", "mission_created", "--json").items()
    assert [e["id"] for e in listed] == [stored["id"]]
    shown = cli(repo, "show", stored["id"][:13], "--json").json()
    assert shown == stored
    in_stream = cli(repo, "stream", "mission/msn-1", "--json").items()
    assert [e["seq"] for e in in_stream] == [1]
    line = next(iter(segment_bytes(repo).values())).splitlines(keepends=True)[-1]
    stored.pop("pos")
    body, signature = split(line)  # the line as stored, with its pilot's signature first
    assert (
        signature is not None and body == orjson.dumps(stored, option=orjson.OPT_SORT_KEYS) + b"\n"
    )


def test_expect_version_refuses_and_writes_nothing(repo: Path, cli: Any) -> None:
    assert emit_mission(cli, repo, "--expect-version", "0").code == 0
    before = segment_bytes(repo)
    res = emit_mission(cli, repo, "--expect-version", "0")
    assert res.code == 1
    assert orjson.loads(res.err)["error"]["code"] == "conflict"
    assert "at version 1, expected 0" in res.err
    assert segment_bytes(repo) == before
    ok = cli(
        repo,
        "emit",
        "mission_started",
        "--stream",
        "mission/msn-1",
        "--data",
        '{"mission_id": "msn-1"}',
        "--expect-version",
        "1",
        "--json",
    )
    assert ok.code == 0 and ok.json()["seq"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mission_created", "--stream", "mission/msn-1", "--data", "{not json"], "not valid JSON"),
        (
            ["mission_created", "--stream", "mission/msn-1", "--data", "[1, 2]"],
            "expected a JSON object",
        ),
        (["mission_kreated", "--stream", "mission/msn-1", "--data", "{}"], "unknown event type"),
        (
            [
                "mission_created",
                "--stream",
                "mission/msn-1",
                "--data",
                '{"mission_id": "msn-1", "title": "x", "colour": "red"}',
            ],
            "unknown field 'colour'",
        ),
        (
            [
                "mission_created",
                "--stream",
                "mission/msn-1",
                "--data",
                '{"mission_id": "msn-1", "title": 7}',
            ],
            "data.title",
        ),
        (
            [
                "mission_created",
                "--stream",
                "mission/msn-1",
                "--data",
                '{"mission_id": "msn-1", "title": "x", "priority": "urgent"}',
            ],
            "data.priority: expected one of low|medium|high|critical, got 'urgent'",
        ),
        (
            [
                "mission_created",
                "--stream",
                "not a stream",
                "--data",
                '{"mission_id": "m", "title": "t"}',
            ],
            "stream",
        ),
        (
            [
                "mission_created",
                "--stream",
                "mission/msn-1",
                "--data",
                '{"mission_id": "msn-1", "title": "a\\u0000b"}',
            ],
            "NUL",
        ),
        (
            [
                "mission_created",
                "--stream",
                "mission/msn-1",
                "--data",
                '{"mission_id": "msn-1", "title": "' + "x" * 300_000 + '"}',
            ],
            "data.title",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    bare_repo: Path, cli: Any, args: list[str], message: str
) -> None:
    repo = bare_repo
    res = cli(repo, "--as", "viper-1", "emit", *args)
    assert res.code == 1, res.out
    assert message in res.err
    assert len(res.err.strip().splitlines()) <= 2  # one line, and maybe a hint
    assert segment_bytes(repo) == {}
    assert cli(repo, "events", "--json").items() == []


def test_binary_data_on_stdin_is_refused(bare_repo: Path, cli: Any) -> None:
    repo = bare_repo
    res = cli(
        repo,
        "emit",
        "mission_created",
        "--stream",
        "mission/m",
        "--data",
        "-",
        input=b'{"mission_id": "m", "title": "\xff\xfe"}',
    )
    assert res.code == 1
    assert segment_bytes(repo) == {}


def test_event_size_limit(bare_repo: Path) -> None:
    repo = bare_repo
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(cfg.read_text().replace("max_event_bytes = 262144", "max_event_bytes = 10000"))
    with Fleet.open(repo) as fleet:
        specs = [
            EventSpec(
                "mission_created",
                "mission/m",
                {"mission_id": "m", "title": "t", "description": "x" * 20_000},
            )
        ]
        with pytest.raises(Exception, match="over the limit"):
            fleet.emit_batch(specs)
    assert segment_bytes(repo) == {}


def test_json_errors_go_to_stderr_as_json(repo: Path, cli: Any) -> None:
    res = cli(repo, "show", "nope-nope", "--json")
    assert res.code == 1 and res.out == ""
    err = orjson.loads(res.err)["error"]
    assert err["code"] == "not_found" and "nope-nope" in err["message"]
    emit_mission(cli, repo)
    empty = cli(repo, "show", " ")  # not "ambiguous, matches everything"
    assert empty.code == 1 and "empty event id" in empty.err and "hint:" in empty.err


def test_usage_errors_exit_2(repo: Path, cli: Any) -> None:
    assert cli(repo, "events", "--limit", "zero").code == 2
    assert cli(repo, "no-such-command").code == 2


def test_batch_is_atomic_and_numbered(repo: Path) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        specs = [
            EventSpec("mission_created", "mission/m1", {"mission_id": "m1", "title": "a"}),
            EventSpec("mission_started", "mission/m1", {"mission_id": "m1"}),
            EventSpec("mission_created", "mission/m2", {"mission_id": "m2", "title": "b"}),
        ]
        events = fleet.emit_batch(specs)
        assert [e.seq for e in events] == [1, 2, 1]
        assert [e.wseq - CREW_EVENTS for e in events] == [1, 2, 3]
        assert len({e.tx for e in events}) == 1 and all(e.txn == 3 for e in events)
        assert [e.pos - CREW_EVENTS for e in events] == [1, 2, 3]
        assert events[0].hlc < events[1].hlc < events[2].hlc
        bad = [*specs, EventSpec("mission_created", "mission/m3", {"mission_id": "m3"})]
        with pytest.raises(Exception, match="title"):
            fleet.emit_batch(bad)
        assert len(fleet.events()) == 3 + CREW_EVENTS


def test_events_filters(repo: Path, cli: Any) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(5):
            fleet.emit("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
    with Fleet.open(repo, actor="maverick") as fleet:
        fleet.emit("mission_started", "mission/m0", {"mission_id": "m0"})
    c = CREW_EVENTS  # the fixture's registrations come first
    all_events = cli(repo, "events", "--json").items()
    assert [e["pos"] for e in all_events] == list(range(1, c + 7))
    assert len(cli(repo, "events", "--actor", "maverick", "--json").items()) == 2  # registered
    assert len(cli(repo, "events", "--type", "mission_started", "--json").items()) == 1
    after = cli(repo, "events", "--after", str(c + 4), "--json").items()
    assert [e["pos"] for e in after] == [c + 5, c + 6]
    newest = cli(repo, "events", "--limit", "2", "--reverse", "--json").json()
    assert [e["pos"] for e in newest["events"]] == [c + 6, c + 5] and newest["more"] == c + 4
    assert len(cli(repo, "events", "--since", "-1h", "--json").items()) == c + 6
    assert cli(repo, "events", "--until", "2000-01-01", "--json").json() == {
        "events": [],
        "more": 0,
    }
    assert cli(repo, "events", "--since", "yesterday").code == 1
    human = cli(repo, "events", "--stream", "mission/m0")
    assert "mission_started" in human.out and "maverick" in human.out


def test_commit_takes_only_fleet_paths(repo: Path, cli: Any) -> None:
    emit_mission(cli, repo)
    (repo / "README.md").write_text("changed, unstaged\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    res = cli(repo, "commit", "-m", "fleet: plan", "--json")
    assert res.code == 0, res.err
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files and all(f.startswith(".fleet/") or f == ".gitattributes" for f in files)
    assert git(repo, "log", "-1", "--format=%s") == "fleet: plan\n"
    status = git(repo, "status", "--porcelain")
    assert "A  staged.txt" in status and " M README.md" in status
    assert ".fleet" not in status
    assert cli(repo, "commit", "--json").json() == {"commit": None, "paths": [], "warnings": []}


def test_commit_is_refused_while_a_merge_is_in_progress(repo: Path, cli: Any) -> None:
    cli(repo, "commit")
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "README.md").write_text("side\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("main\n")
    git(repo, "commit", "-qam", "main")
    assert "CONFLICT" in git(repo, "merge", "side", check=False)
    emit_mission(cli, repo)
    head = git(repo, "rev-parse", "HEAD")
    res = cli(repo, "commit")
    assert res.code == 1
    assert "a merge is in progress" in res.err and "hint: finish it first" in res.err
    assert git(repo, "rev-parse", "HEAD") == head  # nothing committed
    git(repo, "merge", "--abort")
    assert cli(repo, "commit").code == 0


def test_a_committed_segment_is_sealed_and_the_writer_rolls(repo: Path, cli: Any) -> None:
    emit_mission(cli, repo)
    cli(repo, "commit")
    committed = segment_bytes(repo)
    cli(
        repo,
        "emit",
        "mission_started",
        "--stream",
        "mission/msn-1",
        "--data",
        '{"mission_id": "msn-1"}',
    )
    after = segment_bytes(repo)
    for path, content in committed.items():
        assert after[path] == content
    assert len(after) == len(committed) + 1


def test_positions_stay_dense_when_a_commit_brings_back_known_events(repo: Path, cli: Any) -> None:
    """After a commit the index reads the committed blobs too: copies of events it has. They
    take no position, so the next new event comes right after the last one."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(
            [EventSpec("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
             for i in range(5)]
        )  # fmt: skip
    assert cli(repo, "commit").code == 0
    with Fleet.open(repo, actor="viper-1") as fleet:
        event = fleet.emit("mission_started", "mission/m0", {"mission_id": "m0"})
    assert event.pos == 6 + CREW_EVENTS
    positions = [e["pos"] for e in cli(repo, "events", "--json").items()]
    assert positions == list(range(1, 7 + CREW_EVENTS))


def test_staging_a_segment_seals_it(repo: Path, cli: Any) -> None:
    emit_mission(cli, repo)
    git(repo, "add", ".fleet")
    staged = segment_bytes(repo)
    cli(
        repo,
        "emit",
        "mission_started",
        "--stream",
        "mission/msn-1",
        "--data",
        '{"mission_id": "msn-1"}',
    )
    after = segment_bytes(repo)
    assert all(after[p] == c for p, c in staged.items()) and len(after) == 2


def test_segments_rotate_by_size(repo: Path) -> None:
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(
        cfg.read_text().replace("segment_max_bytes = 4194304", "segment_max_bytes = 2000")
    )
    with Fleet.open(repo, actor="viper-1") as fleet:
        for i in range(40):
            fleet.emit(
                "mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t" * 50}
            )
        assert len(fleet.events()) == 40 + CREW_EVENTS
    sizes = [len(b) for b in segment_bytes(repo).values()]
    # the first holds the crew's registrations: one batch of five keyed, signed lines
    assert len(sizes) > 5 and max(sizes) < 2000 + 800


def test_torn_tail_is_reported_then_repaired(repo: Path, cli: Any) -> None:
    emit_mission(cli, repo)
    (seg,) = (repo / ".fleet/events").rglob("*.jsonl")
    good = seg.read_bytes()
    with open(seg, "ab") as fh:
        fh.write(b'{"id": "torn-by-a-crash", "type": "missi')
    res = cli(repo, "verify", "--json")
    assert res.code == 1
    (problem,) = res.json()["problems"]
    assert problem["kind"] == "torn" and "index status" in problem["hint"]  # how to repair it
    human = cli(repo, "verify")
    assert f"hint: any fleetgit command in that worktree cuts it off (fleetgit -C {repo}" in (
        human.out
    )
    assert len(cli(repo, "events", "--json").items()) == 1 + CREW_EVENTS
    ok = cli(
        repo,
        "emit",
        "mission_started",
        "--stream",
        "mission/msn-1",
        "--data",
        '{"mission_id": "msn-1"}',
    )
    assert ok.code == 0
    assert seg.read_bytes().startswith(good) and b"torn-by-a-crash" not in seg.read_bytes()
    assert cli(repo, "verify").code == 0
    assert len(cli(repo, "events", "--json").items()) == 2 + CREW_EVENTS


def test_schema_command(repo: Path, cli: Any) -> None:
    one = cli(repo, "schema", "sortie_created", "--json")
    assert one.code == 0 and "properties" in orjson.dumps(one.json()).decode()
    whole = cli(repo, "schema", "--json")
    assert "checkpoint_created" in whole.out
    assert "mission_created" in cli(repo, "schema").out
    assert cli(repo, "schema", "nope").code == 1


def test_every_command_has_help_with_an_example(repo: Path, cli: Any) -> None:
    for command in (
        ["init"],
        ["emit"],
        ["events"],
        ["show"],
        ["stream"],
        ["commit"],
        ["verify"],
        ["schema"],
        ["index", "rebuild"],
        ["index", "status"],
        ["demo"],
    ):
        res = cli(repo, *command, "--help")
        assert res.code == 0 and "Example: fleetgit" in res.out, command


def test_internal_errors_exit_3_with_a_log(repo: Path, cli: Any, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other")
    assert cli(tmp_path, "-C", "other", "init").code == 0  # -C names no later command's repo
    index = repo / ".git/fleet/index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.mkdir()
    res = cli(repo, "events")
    assert res.code == 3
    assert "internal error" in res.err and "Traceback" not in res.err
    logs = list((repo / ".git/fleet/logs").glob("error-*.log"))
    assert logs and "Traceback" in logs[0].read_text()
    assert not (other / ".git/fleet/logs").exists()


def test_the_process_entry_point_builds_only_the_command_run(repo: Path) -> None:
    """`main` registers just the invoked command; help, typos and globals still behave."""
    from tests.conftest import run_fleetgit

    listed = run_fleetgit(repo, "--as", "viper-1", "mission", "list", "--json")
    assert listed.code == 0 and orjson.loads(listed.out) == {"missions": [], "more": 0}
    group_help = run_fleetgit(repo, "mission", "--help")
    assert group_help.code == 0
    assert all(c in group_help.out for c in ("create", "show", "update", "cancel"))
    typo = run_fleetgit(repo, "mission", "shwo", "x")
    assert typo.code == 2 and "Did you mean 'show'?" in typo.err
    top = run_fleetgit(repo, "--help")
    assert top.code == 0 and all(c in top.out for c in ("squawk", "reserve", "resume", "demo"))
    one = run_fleetgit(repo, "-C", str(repo), "mission", "show", "--help")
    assert one.code == 0 and "Example: fleetgit mission show" in one.out
    assert run_fleetgit(repo, "mision").code == 2


def test_config_defaults_and_strictness(tmp_path: Path) -> None:
    import tomllib

    from fleetgit.ledger.config import DEFAULT_TOML, INIT_CONFIG, Config, load
    from fleetgit.ledger.errors import ValidationError

    # the file `init` writes says exactly the built-in defaults (load skips parsing it), but
    # for `trust`: require for a new ledger, warn for one whose config predates the setting
    assert Config(**tomllib.loads(DEFAULT_TOML)) == INIT_CONFIG
    assert Config()._replace(trust="require") == INIT_CONFIG and Config().trust == "warn"
    cfg = tmp_path / "config.toml"
    cfg.write_text(DEFAULT_TOML + "reservation_ttl_seconds = 60\n")
    with pytest.raises(ValidationError):  # the same key twice is bad TOML
        load(cfg)
    cfg.write_text(DEFAULT_TOML.replace("= 3600", "= 60"))
    assert load(cfg).reservation_ttl_seconds == 60
    for bad, says in (
        ('hook_mode = "loud"\n', "expected enforce or warn"),
        ("colour = 1\n", "unknown setting 'colour'"),
        ("fsync = 1\n", "fsync must be str"),
        ("format = 99\n", "newer than this fleetgit understands"),
    ):
        cfg.write_text(bad)
        with pytest.raises(ValidationError, match=says):
            load(cfg)


def test_relative_times_reach_back_a_century_while_durations_stay_capped(
    repo: Path, cli: Any
) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit("mission_created", "mission/m1", {"mission_id": "m1", "title": "t"})
    for since in ("-400d", "-36525d", "-3000000000s", "-876000h"):
        res = cli(repo, "events", "--since", since, "--json")
        assert res.code == 0 and len(res.items()) == 1 + CREW_EVENTS, (since, res.err)
    for until in ("-36526d", "-" + "9" * 40 + "d"):
        res = cli(repo, "events", "--until", until)
        assert res.code == 1 and f"--until '{until}'" in res.err, res.err
        assert "limit of 36525d" in res.err and "hint: for example --until" in res.err
    for args in (
        ("reserve", "x", "--ttl", "367d"),
        ("lock", "acquire", "k", "--ttl", "400d"),
        ("lock", "acquire", "k", "--wait", "400d"),
    ):
        res = cli(repo, "--as", "viper-1", *args)
        assert res.code == 1 and "limit of 366d" in res.err and "hint:" in res.err, args
    assert len(cli(repo, "events", "--json").items()) == 1 + CREW_EVENTS


def test_rebuild_on_a_terminal_shows_each_stage(repo: Path) -> None:
    """On a terminal the rebuild shows a bar per stage: reading the work tree's segments and
    the branches', indexing, folding."""
    import pty

    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(
            [EventSpec("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
             for i in range(20)]
        )  # fmt: skip
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetgit", "-C", str(repo), "index", "rebuild"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait() == 0
    text = shown.decode()
    stages = ["reading segments", "reading branches", "building indexes", "folding projections"]
    assert all(stage in text for stage in stages), text
    assert [text.index(stage) for stage in stages] == sorted(text.index(s) for s in stages)
    for stage in stages:  # each runs to its end
        assert re.search(stage + r" +\[#+\] +100%", text), stage
    assert f"rebuilt the index: {20 + CREW_EVENTS} events from 1 segments" in text


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda f: f.events(limit=-1), "limit -1"),
        (lambda f: f.events(limit=2**70), "limit"),
        (lambda f: f.events(after_pos=True), "after_pos True"),
        (lambda f: f.events(since_ms=2**60), "since_ms"),
        (lambda f: f.stream("mission/m1", from_seq=-3), "from_seq -3"),
        (lambda f: f.stream("mission/m1", to_seq=2**64), "to_seq"),
    ],
)
def test_the_api_refuses_numbers_out_of_range_in_one_line(
    repo: Path, call: Any, named: str
) -> None:
    """As the command line does: a ValidationError naming the argument, never an OverflowError
    from SQLite or a silently empty answer."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit("mission_created", "mission/m1", {"mission_id": "m1", "title": "t"})
        with pytest.raises(ValidationError, match="expected a whole number from") as raised:
            call(fleet)
        assert raised.value.message.startswith(named)
        assert len(fleet.events(limit=2**63 - 1)) == 1 + CREW_EVENTS  # the largest bound works


def test_init_in_a_clone_without_the_hooks_says_to_install_them(tmp_path: Path, cli: Any) -> None:
    """A clone of an initialised repository is "already initialised", but git's hooks are not
    cloned: its commits went unchecked against reservations, and init said nothing of it."""
    repo = make_repo(tmp_path / "r")
    assert cli(repo, "init").err == ""  # a new fleet: hooks install comes next
    assert "hooks install" in cli(repo, "init").err  # again, and still no hooks: said
    assert cli(repo, "hooks", "install").code == 0
    assert cli(repo, "init").err == ""
    git(repo, "add", ".fleet", ".gitattributes")
    git(repo, "commit", "-q", "-m", "fleet")
    git(tmp_path, "clone", "-q", str(repo), "clone")
    for _ in range(2):  # the clone's index made, then already there
        res = cli(tmp_path / "clone", "init")
        assert res.code == 0 and "created .fleet" not in res.out
        assert "note:" in res.err and "hint: fleetgit hooks install" in res.err
