"""Paths on the command line are relative to the current directory, as in git; a pattern that
matches nothing gets a note; a path the repository shows as a file has nothing below it, so it
does not clash with what could only lie below it. Through the real CLI, in real repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fleetgit.fleet import Fleet
from tests.conftest import git
from tests.test_fleet_merges import exchange, two_clones


def tracked(repo: Path, *paths: str) -> None:
    """Commit these files, so that git tracks them."""
    for path in paths:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(f"{path}\n", encoding="utf-8")
    git(repo, "add", *paths)
    git(repo, "commit", "-q", "-m", "files")


def register(cli: Any, repo: Path, *names: str) -> None:
    for name in names:
        assert cli(repo, "pilot", "register", name).code == 0


def held(cli: Any, repo: Path) -> dict[str, str]:
    """{pattern: holder} of the active reservations."""
    found = cli(repo, "reservations", "--json").items()
    return {r["pattern"]: r["holder"] for r in found if r["active"]}


def test_patterns_are_relative_to_the_current_directory(repo: Path, cli: Any) -> None:
    tracked(repo, "src/parser/lexer.py", "lexer.py", "src/x.py")
    register(cli, repo, "viper", "goose")
    here = repo / "src" / "parser"
    res = cli(here, "--as", "viper", "reserve", "lexer.py", "*.py", "../x.py", ":/README.md")
    assert res.code == 0, res.err
    assert held(cli, repo) == {
        "src/parser/lexer.py": "viper",
        "src/parser/*.py": "viper",
        "src/x.py": "viper",
        "README.md": "viper",
    }
    assert cli(repo, "--as", "goose", "reserve", "lexer.py").code == 0  # the top-level one
    # check there means the same file, and so does reserve for another pilot
    assert cli(here, "--as", "goose", "check", "lexer.py").code == 1
    assert cli(here, "--as", "viper", "check", ":/lexer.py").code == 1  # goose's, at the top
    refused = cli(here, "--as", "goose", "reserve", "lexer.py", "--json")
    assert refused.code == 1
    (conflict,) = orjson.loads(refused.err)["error"]["conflicts"][:1]
    assert conflict["requested"] == "src/parser/lexer.py"
    # renew and release name the same reservations from there; -C is the same as cd
    assert cli(here, "--as", "viper", "renew", "lexer.py", "--ttl", "2h").code == 0
    gone = cli(repo, "-C", str(here), "--as", "viper", "release", "lexer.py", "../x.py")
    assert gone.code == 0, gone.err
    assert "src/parser/lexer.py" not in held(cli, repo) and "src/x.py" not in held(cli, repo)
    # an absolute path inside the work tree names what it names; a way out is refused
    absolute = cli(here, "--as", "viper", "reserve", str(repo / "src" / "x.py"))
    assert absolute.code == 0 and "src/x.py" in held(cli, repo)
    before = held(cli, repo)
    for outside in ("../../../elsewhere.py", "/etc/passwd"):
        res = cli(here, "--as", "viper", "reserve", outside)
        assert res.code == 1 and "hint:" in res.err, outside
    assert held(cli, repo) == before  # nothing written


def test_a_wildcard_and_a_directory_are_relative_too(repo: Path, cli: Any) -> None:
    tracked(repo, "src/parser/a.py", "top.py")
    register(cli, repo, "viper", "goose")
    here = repo / "src" / "parser"
    assert cli(here, "--as", "viper", "reserve", "*.py").code == 0
    assert held(cli, repo) == {"src/parser/*.py": "viper"}
    assert cli(repo, "--as", "goose", "reserve", "*.py").code == 0  # top-level files only
    assert cli(here, "--as", "goose", "reserve", ".").code == 1  # src/parser: viper's *.py
    # `*` in a subdirectory is not the whole repository
    assert cli(here, "--as", "goose", "reserve", "*", "--json").code == 1  # clashes, not broad
    broad = cli(repo, "--as", "goose", "reserve", "*")
    assert broad.code == 1 and "whole repository" in broad.err


def test_sortie_files_are_relative_to_the_current_directory(repo: Path, cli: Any) -> None:
    tracked(repo, "src/parser/lexer.py")
    register(cli, repo, "viper")
    here = repo / "src" / "parser"
    res = cli(here, "--as", "viper", "sortie", "create", "Lexer", "--file", "lexer.py", "--json")
    assert res.code == 0, res.err
    sid = res.json()["sortie_id"]
    assert res.json()["files"] == ["src/parser/lexer.py"]
    res = cli(here, "--as", "viper", "sortie", "update", sid, "--file", "*.py", "--json")
    assert res.code == 0 and res.json()["files"] == ["src/parser/*.py"]


def test_a_pattern_that_matches_nothing_is_granted_with_a_note(repo: Path, cli: Any) -> None:
    tracked(repo, "src/parser/lexer.py")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("x", encoding="utf-8")  # untracked
    (repo / "notes.txt").write_text("x", encoding="utf-8")  # untracked
    register(cli, repo, "viper")
    here = repo / "src" / "parser"
    res = cli(here, "--as", "viper", "reserve", "lexr.py")
    assert res.code == 0 and "src/parser/lexr.py" in res.out
    assert "note: 'src/parser/lexr.py' matches nothing git tracks" in res.err
    assert "hint:" in res.err and "release :/src/parser/lexr.py" in res.err
    quiet = ("lexer.py", "*.py", ":/build/*.bin", ":/notes.txt", ":/build", ":/src/")
    res = cli(here, "--as", "viper", "reserve", *quiet)
    assert res.code == 0 and res.err == "", res.err
    res = cli(here, "--as", "viper", "reserve", "nothing/*.py", "--json")
    assert res.code == 0 and orjson.loads(res.err)["note"]["code"] == "no_match"
    assert "src/parser/nothing/*.py" in held(cli, repo)


def test_a_file_does_not_clash_with_what_could_only_be_below_it(repo: Path, cli: Any) -> None:
    """src/x/y/a_test.py is a file: no path below it can exist, so src/**/test_*.py, which
    covers src/x/y/a_test.py/test_1.py and not the file, leaves it free; the other way round
    too (the grant records the file). What is not known to be a file still clashes."""
    tracked(repo, "src/x/y/a_test.py", "src/x/test_b.py")
    register(cli, repo, "viper", "goose")
    assert cli(repo, "--as", "viper", "reserve", "src/**/test_*.py").code == 0
    res = cli(repo, "--as", "goose", "reserve", "src/x/y/a_test.py")
    assert res.code == 0, res.err
    (grant,) = [
        e
        for e in cli(repo, "events", "--type", "file_reserved", "--json").items()
        if e["data"]["holder"] == "goose"
    ]
    assert grant["data"]["file_patterns"] == ["src/x/y/a_test.py"]
    # real overlaps are still refused: a file the glob covers, a directory, an unknown path
    for pattern in ("src/x/test_b.py", "src/x/y", "src/x/y/ghost", "src/x/y/a_test.py/"):
        assert cli(repo, "--as", "goose", "reserve", pattern).code == 1, pattern
    # the other way round: goose holds the file, ice's glob is free of it
    register(cli, repo, "ice")
    assert cli(repo, "--as", "viper", "release", "--all").code == 0
    assert cli(repo, "--as", "ice", "reserve", "src/**/test_*.py").code == 0
    assert held(cli, repo) == {"src/x/y/a_test.py": "goose", "src/**/test_*.py": "ice"}
    # an untracked file in the work tree is a file too
    (repo / "src" / "x" / "y" / "b_test.py").write_text("x", encoding="utf-8")
    assert cli(repo, "--as", "goose", "reserve", "src/x/y/b_test.py").code == 0


def test_clones_agree_a_file_and_a_glob_below_it_do_not_clash(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    """Granted apart in two clones: the file's grant says it is a file, so after the merge
    neither is lost, in both clones and after a rebuild; a real overlap still loses."""
    tracked(repo, "src/x/y/a_test.py", "src/x/test_a.py")
    register(cli, repo, "viper", "goose")
    one, two = two_clones(repo, tmp_path, cli)
    assert cli(one, "--as", "viper", "reserve", "src/**/test_*.py").code == 0
    assert cli(two, "--as", "goose", "reserve", "src/x/y/a_test.py", "src/x/test_a.py").code == 0
    exchange(cli, one, two)
    for clone in (one, two):
        found = cli(clone, "reservations", "--json").items()
        lost = {r["pattern"]: r["lost_to"] is not None for r in found}
        assert lost == {
            "src/**/test_*.py": False,
            "src/x/y/a_test.py": False,
            "src/x/test_a.py": True,
        }
        assert cli(clone, "index", "rebuild").code == 0
        again = cli(clone, "reservations", "--json").items()
        assert [r.pop("seconds_left") >= 0 for r in again + found]  # the clock moved on
        assert again == found


def test_a_file_pattern_from_the_python_api_is_recorded_too(repo: Path) -> None:
    tracked(repo, "src/a.py")
    with Fleet.open(repo, actor="viper") as fleet:
        fleet.emit("pilot_registered", "pilot/viper", {"callsign": "viper"})
        (r,) = fleet.reserve(["src/a.py"])
        assert r.is_file
        (d,) = fleet.reserve(["src/"])
        assert not d.is_file


def test_a_grant_that_says_it_names_a_file_blocks_that_path_only(repo: Path, cli: Any) -> None:
    """The hook judges a file pattern as the clash rule does: `src` recorded as a file stands
    beside viper-1's src/app.py (nothing lies below a file), so it must not block src/app.py."""
    from fleetgit.ledger import clock
    from tests.hostile import ATTACKER_WRITER, line

    register(cli, repo, "viper-1", "goose")
    tracked(repo, "src/app.py")
    assert cli(repo, "--as", "viper-1", "reserve", "src/app.py").code == 0
    data = {"reservation_id": "res-forged", "holder": "mallory", "patterns": ["src"],
            "file_patterns": ["src"], "exclusive": True, "ttl_seconds": 3600}  # fmt: skip
    later = clock.make_hlc(clock.now_ms() + 1000)
    forged = line("file_reserved", "reservation/res-forged", data, hlc=later)
    folder = repo / ".fleet/events" / ATTACKER_WRITER
    folder.mkdir(parents=True)
    (folder / "00000001.jsonl").write_bytes(forged)
    mine = cli(repo, "--as", "viper-1", "check", "src/app.py")
    assert mine.code == 0, mine.out + mine.err
    blocked = cli(repo, "--as", "goose", "check", "src/app.py")
    assert blocked.code == 1 and "viper-1" in blocked.out and "mallory" not in blocked.out
