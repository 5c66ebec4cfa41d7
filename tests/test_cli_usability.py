"""Help, options and everyday friction of the command line (issue 11, items 10, 11 and 13)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.ledger.errors import ValidationError
from tests.conftest import CREW_EVENTS, git, plant, read_only_fleet, run_fleetgit

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[list[str]]:
    """Every command of the app, as the words that name it."""
    from fleetgit.cli import make_app

    app = make_app()
    words = [[c.name or c.callback.__name__] for c in app.registered_commands]  # type: ignore[union-attr]
    for group in app.registered_groups:
        assert group.typer_instance is not None
        words += [
            [group.name or "", c.name or ""] for c in group.typer_instance.registered_commands
        ]
    return words


def help_of(repo: Path, words: list[str], columns: int) -> str:
    """The help of the command `words` on a terminal `columns` wide (in this process)."""
    from typer.testing import CliRunner

    from fleetgit.cli import app

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        res = CliRunner().invoke(app, [*words, "--help"], catch_exceptions=False)
    finally:
        os.environ.pop("COLUMNS") if old is None else os.environ.__setitem__("COLUMNS", old)
    assert res.exit_code == 0, (words, res.stderr)
    return res.stdout


# -- item 10: help and options --------------------------------------------------------------


def test_examples_in_help_are_never_rewrapped_and_prose_is_filled(repo: Path) -> None:
    for words in commands():
        for columns in (60, 200):
            text = help_of(repo, words, columns)
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if line.strip().startswith("Example:"):
                    following = lines[i + 1].strip() if i + 1 < len(lines) else ""
                    assert following == "" or following.startswith("Example:"), (words, line)
                    assert line.strip().split()[1] in ("fleetgit", "git"), (words, line)
    create = help_of(repo, ["sortie", "create"], 200)
    assert (
        '  Example: fleetgit --as viper-1 sortie create "Lexer" --mission msn-7k3m --file'
        " src/lexer.py --depends-on srt-4q2x\n" in create
    )


def test_prose_in_help_fills_its_lines(repo: Path) -> None:
    """No ragged lines: a line of prose ends early only where the next word would not fit."""
    for words, columns in ((["verify"], 80), (["squawk"], 80), (["verify"], 60)):
        text = help_of(repo, words, columns)
        prose = text.split("\n\n")[1:3]  # the paragraphs after the usage line
        for paragraph in prose:
            lines = paragraph.splitlines()
            for line, after in itertools.pairwise(lines):
                room = min(columns, 80) - 2 - len(line)
                assert len(after.split()[0]) >= room, (words, line, after)


def test_choices_are_listed_whole_in_a_narrow_terminal(repo: Path) -> None:
    text = " ".join(help_of(repo, ["sortie", "list"], 60).split())
    assert "One of: open, assigned, in_progress, blocked, completed, cancelled." in text


def test_global_options_are_taken_after_the_command_too(repo: Path, cli: Any) -> None:
    res = cli(repo, "reserve", "a.py", "--as", "viper-1", "--json")
    assert res.code == 0, res.err and res.items()[0]["holder"] == "viper-1"
    res = cli(repo, "sortie", "create", "S", "--as=goose")
    assert res.code == 0, res.err
    other = repo.parent / "elsewhere"
    other.mkdir()
    listed = cli(other, "reservations", "-C", str(repo), "--json")
    assert listed.code == 0 and [r["pattern"] for r in listed.items()] == ["a.py"]
    assert cli(repo, "--json", "mission", "list").json() == {"missions": [], "more": 0}
    # after --, nothing moves: the words are the command's
    assert "--as" not in cli(repo, "--as", "goose", "check", "--", "--as").err
    proc = run_fleetgit(repo, "pilot", "list", "--as", "viper-1")  # the process entry point too
    assert proc.code == 0, proc.err


def test_word_options_take_any_case(repo: Path, cli: Any) -> None:
    res = cli(repo, "--as", "viper", "sortie", "create", "S", "--priority", "HIGH", "--json")
    assert res.code == 0 and res.json()["priority"] == "high"
    sid = res.json()["sortie_id"]
    assert cli(repo, "sortie", "list", "--status", "OPEN", "--json").items()[0]["sortie_id"] == sid
    mid = cli(repo, "--as", "viper", "mission", "create", "M", "--priority", "Critical").out
    assert cli(repo, "mission", "show", mid.strip(), "--json").json()["priority"] == "critical"
    res = cli(repo, "--as", "viper", "squawk", "send", "--to", "goose", "--subject", "s",
              "--importance", "HIGH", "--json")  # fmt: skip
    assert res.code == 0 and res.json()["importance"] == "high"
    bad = cli(repo, "--as", "viper", "sortie", "create", "S", "--priority", "urgent")
    assert bad.code == 1 and "expected one of low|medium|high|critical" in bad.err


def test_depends_on_takes_several_values(repo: Path, cli: Any) -> None:
    viper = ("--as", "viper")
    a = cli(repo, *viper, "sortie", "create", "A").out.strip()
    b = cli(repo, *viper, "sortie", "create", "B").out.strip()
    res = cli(repo, *viper, "sortie", "create", "C", "--depends-on", a, b, "--json")
    assert res.code == 0, res.err
    assert sorted(d["sortie_id"] for d in res.json()["depends_on"]) == sorted([a, b])
    # the title may follow the list: what the command's arguments need is theirs
    res = cli(repo, *viper, "sortie", "create", "--depends-on", a, b, "D", "--json")
    assert res.code == 0 and res.json()["title"] == "D" and len(res.json()["depends_on"]) == 2
    res = cli(repo, *viper, "sortie", "update", b, "--depends-on", a, "--file", "x", "y")
    assert res.code == 0, res.err
    shown = cli(repo, "sortie", "show", b, "--json").json()
    assert shown["files"] == ["x", "y"] and [d["sortie_id"] for d in shown["depends_on"]] == [a]
    res = cli(repo, *viper, "squawk", "send", "--to", "goose", "ice", "--subject", "both")
    assert res.code == 0, res.err


# -- item 11: everyday friction ---------------------------------------------------------------


def test_listings_stop_at_50_and_say_how_many_more(repo: Path, cli: Any) -> None:
    from fleetgit.fleet import EventSpec, Fleet

    with Fleet.open(repo, actor="viper") as fleet:
        fleet.emit_batch(
            [EventSpec("mission_created", f"mission/m{i:03}", {"mission_id": f"m{i:03}",
             "title": f"mission {i}"}) for i in range(60)]
        )  # fmt: skip
    total = 60 + CREW_EVENTS
    shown = cli(repo, "events").out.splitlines()
    assert len(shown) == 1 + 50 + 1
    assert shown[-1] == f"... {total - 50} more; --limit 0 shows all {total}"
    page = cli(repo, "events", "--json").json()
    assert (len(page["events"]), page["more"]) == (50, total - 50)
    assert len(cli(repo, "events", "--limit", "0", "--json").items()) == total
    missions = cli(repo, "mission", "list", "--json").json()
    assert (len(missions["missions"]), missions["more"]) == (50, 10)
    assert cli(repo, "mission", "list", "--limit", "7").out.splitlines()[-1] == (
        "... 53 more; --limit 0 shows all 60"
    )


def test_every_listing_has_the_one_json_envelope(repo: Path, cli: Any) -> None:
    sid = cli(repo, "--as", "goose", "sortie", "create", "S").out.strip()
    cli(repo, "--as", "goose", "squawk", "send", "--to", "ice", "--subject", "s")
    listings = {
        ("events",): "events",
        ("stream", "pilot/goose"): "events",
        ("reservations",): "reservations",
        ("pilot", "list"): "pilots",
        ("mission", "list"): "missions",
        ("sortie", "list"): "sorties",
        ("workorder", "list"): "work_orders",
        ("lock", "list"): "locks",
        ("checkpoint", "list"): "checkpoints",
        ("--as", "ice", "squawk", "inbox"): "messages",
        ("--as", "goose", "squawk", "sent"): "messages",
        ("squawk", "search", "s"): "messages",
        ("--as", "goose", "reserve", "a.py"): "reservations",
        ("--as", "goose", "renew"): "reservations",
        ("--as", "ice", "check", "a.py"): "blocked",  # a list of paths was the whole output
        ("hooks", "status"): "hooks",
    }
    for words, key in listings.items():
        res = cli(repo, *words, "--json")
        assert res.code == (1 if "check" in words else 0), (words, res.err)
        value = res.json()
        assert set(value) == {key, "more"} and isinstance(value[key], list), words
    thread = cli(repo, "squawk", "thread", cli(repo, "--as", "ice", "squawk", "inbox",
                 "--json").json()["messages"][0]["message_id"], "--json").json()  # fmt: skip
    assert set(thread) == {"messages", "more"}
    assert sid


def test_squawk_send_reads_the_body_from_a_file_or_stdin(repo: Path, cli: Any) -> None:
    body = repo.parent / "body.md"
    body.write_text("line one\nline two\n", encoding="utf-8")
    send = ("--as", "viper", "squawk", "send", "--to", "goose", "--subject", "s", "--json")
    res = cli(repo, *send, "--body-file", str(body))
    assert res.code == 0 and res.json()["body"] == "line one\nline two\n"
    res = cli(repo, *send, "--body", "-", input="from stdin\n")
    assert res.code == 0 and res.json()["body"] == "from stdin\n"
    res = cli(repo, *send, "--body-file", str(repo.parent / "missing.md"))
    assert res.code == 1 and "--body-file" in res.err and "No such file" in res.err
    res = cli(repo, *send, "--body", "x", "--body-file", str(body))
    assert res.code == 2 and "give one" in res.err
    (repo.parent / "latin1.txt").write_bytes(b"caf\xe9")
    res = cli(repo, *send, "--body-file", str(repo.parent / "latin1.txt"))
    assert res.code == 1 and "not UTF-8" in res.err
    for source in ("/dev/zero", str(repo.parent / "big.md")):  # read bounded, refused whole
        (repo.parent / "big.md").write_bytes(b"x" * 500_000)
        res = cli(repo, *send, "--body-file", source)
        assert res.code == 1 and "longer than 100000 characters" in res.err, res.err


def test_unclaim_hands_a_sortie_back(repo: Path, cli: Any) -> None:
    goose = ("--as", "goose")
    sid = cli(repo, *goose, "sortie", "create", "S", "--file", "src/s.py").out.strip()
    assert cli(repo, *goose, "sortie", "claim", sid, "--reserve").code == 0
    assert cli(repo, *goose, "sortie", "start", sid).code == 0
    res = cli(repo, "--as", "ice", "sortie", "unclaim", sid)
    assert res.code == 1 and "assigned to goose, not ice" in res.err and "hint:" in res.err
    res = cli(repo, *goose, "sortie", "unclaim", sid, "--reason", "out of time", "--json")
    assert res.code == 0, res.err
    assert (res.json()["status"], res.json()["assignee"]) == ("open", None)
    assert cli(repo, "reservations", "--json").items() == []  # what claim --reserve took
    last = cli(repo, "events", "--reverse", "--limit", "2", "--json").items()
    assert {e["type"] for e in last} == {"sortie_unclaimed", "file_released"}
    assert last[0]["tx"] == last[1]["tx"]
    res = cli(repo, *goose, "sortie", "unclaim", sid)
    assert res.code == 1 and "nobody holds it" in res.err
    assert cli(repo, "--as", "ice", "sortie", "claim", sid).code == 0  # anyone may take it now
    assert "unclaim" in cli(repo, "sortie", "--help").out


def test_an_unclaim_counts_only_from_the_assignee(repo: Path, cli: Any) -> None:
    from fleetgit.fleet import EventSpec, Fleet

    sid = cli(repo, "--as", "goose", "sortie", "create", "S").out.strip()
    assert cli(repo, "--as", "goose", "sortie", "claim", sid).code == 0
    spec = EventSpec("sortie_unclaimed", f"sortie/{sid}", {"sortie_id": sid})
    with Fleet.open(repo, actor="ice") as fleet, pytest.raises(ValidationError):
        fleet.emit_batch([spec])  # emit applies the fold's rule
    plant(repo, "sortie_unclaimed", f"sortie/{sid}", {"sortie_id": sid}, "ice")  # another clone
    shown = cli(repo, "sortie", "show", sid, "--json").json()
    assert (shown["status"], shown["assignee"]) == ("assigned", "goose")


def test_colour_on_a_terminal_only(repo: Path, cli: Any) -> None:
    cli(repo, "--as", "goose", "sortie", "create", "S")

    def on_a_terminal(*args: str, env: dict[str, str]) -> str:
        leader, follower = os.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetgit", *args], cwd=repo, stdin=follower,
            stdout=follower, stderr=follower, close_fds=True, env={**os.environ, **env},
        )  # fmt: skip
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        proc.wait()
        return shown.decode()

    coloured = on_a_terminal("sortie", "list", env={"NO_COLOR": ""})
    assert "\x1b[1mID" in coloured
    refused = on_a_terminal("--as", "nobody", "reserve", "x", env={"NO_COLOR": ""})
    assert "\x1b[1;31mfleetgit:\x1b[0m" in refused and "\x1b[36mhint:\x1b[0m" in refused
    assert "\x1b[" not in on_a_terminal("sortie", "list", env={"NO_COLOR": "1"})
    assert "\x1b[" not in run_fleetgit(repo, "sortie", "list", env={"NO_COLOR": ""}).out


def test_shell_completion_is_enabled(repo: Path) -> None:
    shown = run_fleetgit(
        repo, "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert shown.code == 0 and "complete -o default -F" in shown.out
    env = {"_FLEETGIT_COMPLETE": "complete_bash", "COMP_WORDS": "fleetgit sortie un",
           "COMP_CWORD": "2"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'fleetgit'; from fleetgit.cli import"
         " main; main()"], cwd=repo, env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.stdout.split() == ["unclaim"], proc.stderr


def test_fleet_commits_add_one_segment_each_and_nothing_else(repo: Path, cli: Any) -> None:
    """A committed segment is sealed, so the next append starts a new one: a fleet commit that
    carries events adds one file; appends between commits share it, and a commit with nothing
    new adds none."""

    def segments() -> list[str]:
        return sorted(p.name for p in (repo / ".fleet/events").rglob("*.jsonl"))

    for _round in range(3):
        for _ in range(4):
            assert cli(repo, "--as", "goose", "pilot", "heartbeat").code == 0
        assert cli(repo, "commit").code == 0
        assert cli(repo, "commit").code == 0  # nothing new: no commit, no file
    assert segments() == ["00000001.jsonl", "00000002.jsonl", "00000003.jsonl"]
    assert cli(repo, "--as", "goose", "pilot", "list").code == 0  # reads write nothing
    assert cli(repo, "verify").code == 0
    assert len(segments()) == 3
    assert len(git(repo, "log", "--format=%s").splitlines()) == 1 + 3


def test_a_config_type_error_says_how_to_write_it(repo: Path, cli: Any) -> None:
    cfg = repo / ".fleet/config.toml"
    cfg.write_text('reservation_ttl_seconds = "1h"\n', encoding="utf-8")
    res = cli(repo, "events")
    assert res.code == 1 and "reservation_ttl_seconds must be int, got '1h'" in res.err
    assert "hint: a whole number of seconds, without quotes: reservation_ttl_seconds = 3600" in (
        res.err
    )
    cfg.write_text("hook_mode = 1\n", encoding="utf-8")
    res = cli(repo, "events")
    assert (
        res.code == 1
        and 'hint: edit .fleet/config.toml, for example: hook_mode = "enforce"' in (res.err)
    )


def test_version(repo: Path) -> None:
    res = run_fleetgit(repo, "--version")
    assert res.code == 0 and re.fullmatch(r"fleetgit \d+\.\d+\.\d+\n", res.out)


# -- item 13: no setuptools banner on the first make -------------------------------------------


def test_the_install_is_a_plain_path_file_without_a_deprecated_mode() -> None:
    """setuptools' compat editable mode printed a "will be removed" banner on the first `make`
    (and its other modes print their own, or hide new modules): hatchling's editable install
    is a plain path file to this directory."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "editable_mode" not in makefile and "pip install --quiet -e '.[dev]'" in makefile
    build = orjson.dumps((ROOT / "pyproject.toml").read_text(encoding="utf-8")).decode()
    assert "hatchling.build" in build and "setuptools" not in build
    import fleetgit

    assert Path(fleetgit.__file__).resolve().parent == ROOT / "fleetgit"


def _read_only_fleet(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`fleetgit ARGS` with `.fleet/` read-only (conftest's read_only_fleet)."""
    with read_only_fleet(repo) as prefix:
        command = [*prefix, sys.executable, "-m", "fleetgit", *args]
        return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)


def test_a_read_only_fleet_folder_is_one_line_and_exit_1(repo: Path) -> None:
    """A write into a read-only `.fleet/` was an internal error (exit 3, a traceback in the
    log) naming a bare writer id; it is the system's reason with the path, and a hint."""
    before = git(repo, "status", "--porcelain", "--untracked-files=all")
    res = _read_only_fleet(repo, "--as", "goose", "squawk", "send", "--to", "ice", "--subject", "x")
    assert res.returncode == 1, res.stderr
    first, hint = res.stderr.splitlines()
    assert first.startswith("fleetgit: ") and ".fleet/events/" in first
    assert "Read-only file system" in first or "Permission denied" in first
    assert hint.startswith("hint: ") and "writable" in hint
    assert not list((repo / ".git/fleet/logs").glob("error-*"))
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == before
    reads = _read_only_fleet(repo, "--as", "goose", "status")  # reading needs no write
    assert reads.returncode == 0, reads.stderr


def test_dash_c_names_a_directory(repo: Path, tmp_path: Path) -> None:
    """`-C FILE` ran in the file's repository as if it were a directory (git refuses it)."""
    for where, why in ((repo / "README.md", "not a directory"), (tmp_path / "nope", "no such")):
        res = run_fleetgit(tmp_path, "-C", str(where), "status")
        assert res.code == 1, res.out
        first, hint = res.err.splitlines()
        assert why in first and str(where) in first and hint == "hint: check the -C path"
