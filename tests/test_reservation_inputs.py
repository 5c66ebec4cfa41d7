"""What reservation commands take from the command line, and how they show it back: patterns
as stored (pasteable), bytes that are not UTF-8, strict durations, one way to release, callsigns,
and which patterns count as the whole repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from fleetgit.ledger.errors import ValidationError
from tests.conftest import CREW_EVENTS, git, run_fleetgit

BAD = os.fsdecode(b"bad\xff.txt")  # what Python makes of a non-UTF-8 argument or git path


def events(repo: Path) -> list[Any]:
    """The events after the crew's registrations."""
    out = run_fleetgit(repo, "events", "--after", str(CREW_EVENTS), "--json").out
    return orjson.loads(out)["events"]  # type: ignore[no-any-return]


# -- patterns shown as stored --------------------------------------------------------------------


def test_refusals_and_check_show_patterns_as_stored(repo: Path, cli: Any) -> None:
    assert cli(repo, "--as", "viper", "reserve", "star\\*name.txt").code == 0
    refused = cli(repo, "--as", "goose", "reserve", "star\\*name.txt")
    assert refused.code == 1
    assert "'star\\*name.txt': held by viper (exclusive 'star\\*name.txt'," in refused.err
    held = cli(repo, "--as", "goose", "check", "star*name.txt")
    assert held.code == 1 and "viper ('star\\*name.txt', " in held.out
    # pasted back as shown, it names the reservation
    assert cli(repo, "--as", "viper", "release", "star\\*name.txt").code == 0
    missing = cli(repo, "--as", "viper", "release", "star\\*name.txt")
    assert missing.code == 1 and "for 'star\\*name.txt'" in missing.err


def test_the_hook_shows_patterns_as_stored(repo: Path) -> None:
    (repo / "star*name.txt").write_text("x\n")
    git(repo, "add", "star*name.txt")
    git(repo, "commit", "-q", "-m", "file")
    install(locate(repo))
    with Fleet.open(repo, actor="viper") as fleet:
        fleet.reserve(["star\\*name.txt"])
    (repo / "star*name.txt").write_text("goose\n")
    git(repo, "add", "star*name.txt")
    env = {**os.environ, "FLEET_CALLSIGN": "goose"}
    res = subprocess.run(
        ["git", "commit", "-q", "-m", "x"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert res.returncode == 1 and "viper holds 'star\\*name.txt' (exclusive" in res.stderr


# -- not UTF-8 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--as", "viper", "reserve", BAD),
        ("--as", "viper", "reserve", BAD, "--json"),
        ("--as", "viper", "release", BAD),
        ("--as", "viper", "renew", BAD),
        ("check", os.fsdecode(b"bad/\xff.txt"), "--json"),
        ("check", BAD),
    ],
)
def test_non_utf8_paths_and_patterns_are_refused(repo: Path, args: tuple[str, ...]) -> None:
    res = run_fleetgit(repo, *args)
    assert res.code == 1, res.err
    assert "internal error" not in res.err and "is not valid UTF-8" in res.err
    if "--json" in args:
        err = orjson.loads(res.err)["error"]
        assert err["code"] == "invalid" and "\\xff" in err["message"] and err["hint"]
    else:
        assert "\\xff" in res.err and "hint:" in res.err
    assert events(repo) == []


def test_the_wildcard_the_hint_offers_guards_a_non_utf8_file(repo: Path) -> None:
    res = run_fleetgit(repo, "--as", "viper", "reserve", BAD)
    assert "$'bad\\xff.txt' is not valid UTF-8" in res.err and "'bad?.txt'" in res.err
    assert run_fleetgit(repo, "--as", "viper", "reserve", "bad?.txt").code == 0
    install(locate(repo))
    name = os.fsencode(repo) + b"/bad\xff.txt"
    with open(name, "wb") as fh:
        fh.write(b"x\n")
    subprocess.run([b"git", b"add", b"bad\xff.txt"], cwd=repo, check=True)
    env = {**os.environ, "FLEET_CALLSIGN": "goose"}
    res2 = subprocess.run(
        [b"git", b"commit", b"-q", b"-m", b"x"],
        cwd=repo,
        capture_output=True,
        env=env,
        check=False,
    )
    assert res2.returncode == 1 and b"viper holds 'bad?.txt'" in res2.stderr


def test_non_utf8_free_text_is_refused_too(repo: Path) -> None:
    res = run_fleetgit(repo, "--as", "viper", "reserve", "a.txt", "--reason", BAD)
    assert res.code == 1 and "internal error" not in res.err and "UTF-8" in res.err
    assert events(repo) == []


# -- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [" 5m", "5m ", "５m", "5 m", "²m", "+5m", "5mm", ""])
def test_ttl_is_ascii_digits_and_a_unit(repo: Path, cli: Any, ttl: str) -> None:
    res = cli(repo, "--as", "viper", "reserve", "a.txt", "--ttl", ttl)
    assert res.code == 1 and "expected digits 0-9 and a unit" in res.err
    assert cli(repo, "events", "--after", str(CREW_EVENTS), "--json").items() == []


def test_ttl_units_either_case(repo: Path, cli: Any) -> None:
    got = cli(repo, "--as", "viper", "reserve", "a.txt", "--ttl", "2H", "--json").items()
    assert 7000 < got[0]["seconds_left"] <= 7200


# -- release: one way at a time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ignored"),
    [
        (("x", "--all"), "'x' would be ignored beside --all"),
        (("x", "--force", "res-1"), "'x' would be ignored beside --force 'res-1'"),
        (("--all", "--force", "res-1"), "--all would be ignored beside --force 'res-1'"),
        (("x", "--all", "--force", "res-1"), "'x' and --all would be ignored beside --force"),
    ],
)
def test_release_takes_one_of_patterns_all_force(
    repo: Path, cli: Any, args: tuple[str, ...], ignored: str
) -> None:
    rid = cli(repo, "--as", "viper", "reserve", "x", "y", "--json").items()[0]["id"]
    args = tuple(rid if a == "res-1" else a for a in args)
    res = cli(repo, "--as", "viper", "release", *args)
    assert res.code == 2 and ignored.replace("res-1", rid) in res.err and "hint:" in res.err
    res = cli(repo, "--as", "viper", "release", *args, "--json")
    assert res.code == 2 and orjson.loads(res.err)["error"]["code"] == "usage"
    assert len(cli(repo, "reservations", "--json").items()) == 2  # nothing released


def test_release_refuses_an_empty_force_id(repo: Path, cli: Any) -> None:
    cli(repo, "--as", "viper", "reserve", "x")
    for empty in ("", " "):
        res = cli(repo, "--as", "goose", "release", "--force", empty)
        assert res.code == 2 and "needs a reservation id" in res.err, empty
        assert "ambiguous" not in res.err


def test_release_api_refuses_both_and_empty_ids(repo: Path) -> None:
    from fleetgit.domain.reservations import commands as reservations

    with Fleet.open(repo, actor="viper") as fleet:
        fleet.reserve(["x"])
        with pytest.raises(ValidationError, match="not both"):
            fleet.release(["x"], everything=True)
        with pytest.raises(ValidationError, match="empty reservation id"):
            reservations.force_release(fleet, "")
        assert len(fleet.reservations()) == 1


# -- holders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("holder", ["bad name", "", "a/b"])
def test_reservations_holder_must_be_a_callsign(repo: Path, cli: Any, holder: str) -> None:
    cli(repo, "--as", "viper", "reserve", "x")
    res = cli(repo, "reservations", "--holder", holder)
    assert res.code == 1 and "callsign" in res.err and "hint:" in res.err
    assert cli(repo, "reservations", "--holder", "VIPER", "--json").items()[0]["holder"] == "viper"


# -- the whole repository --------------------------------------------------------------------------


def test_a_class_that_misses_names_is_not_the_whole_repository(repo: Path, cli: Any) -> None:
    assert cli(repo, "--as", "viper", "reserve", "[a-z.]*").code == 0
    for broad in ("?*", "**/*", "*"):
        res = cli(repo, "--as", "goose", "reserve", broad)
        assert res.code == 1 and "covers the whole repository" in res.err, broad
