"""Reservations through the CLI and API: all or nothing, renew, release, force, check, races."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.fleet import Fleet
from fleetgit.ledger.config import DEFAULT_TOML
from tests.conftest import CREW_EVENTS, git, run_fleetgit
from tests.test_merge import snapshot

NONE = {"events": [], "more": 0}


def reserve(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, "reserve", *args, "--json")


def test_grant_is_all_or_nothing_and_names_the_holder(repo: Path, cli: Any) -> None:
    assert reserve(cli, repo, "viper-1", "src/parser/**", "--reason", "parser").code == 0
    res = reserve(cli, repo, "goose", "docs/a.md", "src/*/lexer.py")
    assert res.code == 1
    err = orjson.loads(res.err)["error"]
    assert err["code"] == "conflict"
    (conflict,) = err["conflicts"]
    assert conflict["holder"] == "viper-1" and conflict["pattern"] == "src/parser/**"
    assert conflict["requested"] == "src/*/lexer.py" and conflict["mode"] == "exclusive"
    assert conflict["expires_at"]
    held = cli(repo, "reservations", "--json").items()
    assert [r["pattern"] for r in held] == ["src/parser/**"]  # docs/a.md was not granted
    human = cli(repo, "--as", "goose", "reserve", "src/parser/x.py")
    assert "held by viper-1" in human.err and "left" in human.err


def test_shared_reservations_coexist_but_not_with_exclusive(repo: Path, cli: Any) -> None:
    assert reserve(cli, repo, "viper-1", "docs/", "--shared").code == 0
    assert reserve(cli, repo, "goose", "docs/guide.md", "--shared").code == 0
    assert reserve(cli, repo, "maverick", "docs/guide.md").code == 1
    assert reserve(cli, repo, "maverick", "src/").code == 0
    assert reserve(cli, repo, "goose", "src/x", "--shared").code == 1


def test_rereserving_extends_and_renew_release(repo: Path, cli: Any) -> None:
    first = reserve(cli, repo, "viper-1", "a.txt", "--ttl", "10m").items()[0]
    again = reserve(cli, repo, "viper-1", "a.txt", "--ttl", "2h").items()[0]
    assert again["id"] == first["id"] and again["seconds_left"] > 3600
    renewed = cli(repo, "--as", "viper-1", "renew", "--ttl", "3h", "--json").items()
    assert renewed[0]["seconds_left"] > 2 * 3600
    assert cli(repo, "--as", "viper-1", "renew", "nope.txt").code == 1
    assert cli(repo, "--as", "goose", "release", "a.txt").code == 1  # not goose's
    out = cli(repo, "--as", "viper-1", "release", "a.txt", "--json").json()
    assert out["released"] == [first["id"]]
    assert cli(repo, "reservations", "--json").items() == []
    assert len(cli(repo, "reservations", "--include-expired", "--json").items()) == 1
    assert reserve(cli, repo, "goose", "a.txt").code == 0


def test_listing_filters(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "a/")
    reserve(cli, repo, "goose", "b/")
    assert [
        r["holder"] for r in cli(repo, "reservations", "--holder", "goose", "--json").items()
    ] == ["goose"]
    mine = cli(repo, "--as", "viper-1", "reservations", "--mine", "--json").items()
    assert [r["pattern"] for r in mine] == ["a/"]
    assert cli(repo, "reservations", "--mine").code == 1  # no identity


def test_expired_reservations_stop_counting(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "a.txt", "--ttl", "1s")
    time.sleep(1.2)
    assert cli(repo, "reservations", "--json").items() == []
    assert reserve(cli, repo, "goose", "a.txt").code == 0


def test_force_release_needs_a_silent_holder(repo: Path, cli: Any) -> None:
    rid = reserve(cli, repo, "viper-1", "a.txt").items()[0]["id"]
    res = cli(repo, "--as", "goose", "release", "--force", rid)
    assert res.code == 1 and "viper-1 was active" in res.err
    cfg = repo / ".fleet/config.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "force_release_after_seconds = 1800", "force_release_after_seconds = 1"
        )
    )
    time.sleep(1.2)
    assert cli(repo, "--as", "goose", "release", "--force", rid[:8], "--reason", "gone").code == 0
    (event,) = cli(repo, "events", "--type", "file_released", "--json").items()
    assert event["actor"] == "goose"
    assert event["data"] == {
        "reservation_id": rid,
        "forced": True,
        "forced_by": "goose",
        "reason": "gone",
    }


def test_force_release_names_a_reservation_as_ids_are_named(repo: Path, cli: Any) -> None:
    """A reservation of two patterns (the ledger allows it; another version may write one) is
    one reservation; its id works bare (without `res-`) and by a unique prefix, and a near miss
    suggests the closest id."""
    rid = "res-7k3m9q2xabcd"
    data = {"reservation_id": rid, "holder": "viper-1", "patterns": ["a.txt", "b.txt"],
            "exclusive": True, "ttl_seconds": 3600}  # fmt: skip
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit("file_reserved", f"reservation/{rid}", data)
    assert len(cli(repo, "reservations", "--json").items()) == 2  # a row per pattern
    cfg = repo / ".fleet/config.toml"
    key = "force_release_after_seconds"
    cfg.write_text(cfg.read_text().replace(f"{key} = 1800", f"{key} = 0"))
    miss = cli(repo, "--as", "goose", "release", "--force", "res-7k3m9q2xabzz")
    assert miss.code == 1 and f"did you mean {rid}?" in miss.err
    assert cli(repo, "--as", "goose", "release", "--force", "7k3m9q").code == 0
    assert cli(repo, "reservations", "--json").items() == []


def test_check_paths(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "src/*.py")
    res = cli(repo, "--as", "goose", "check", "src/a.py", "README.md", "--json")
    assert res.code == 1
    assert [(b["path"], [r["holder"] for r in b["held_by"]]) for b in res.items()] == [
        ("src/a.py", ["viper-1"])
    ]
    assert cli(repo, "--as", "viper-1", "check", "src/a.py").code == 0
    assert cli(repo, "check", "src/a.py").code == 1  # no identity: every exclusive one blocks
    assert "free" in cli(repo, "--as", "goose", "check", "lib/x.py").out


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("/etc/x", "outside the repository"),
        ("a/../../b", "outside the repository"),
        ("", "empty"),
        ("**", "whole repository"),
    ],
)
def test_bad_patterns_are_refused(repo: Path, cli: Any, pattern: str, reason: str) -> None:
    res = cli(repo, "--as", "viper-1", "reserve", pattern)
    assert res.code == 1 and reason in res.err
    assert cli(repo, "events", "--after", str(CREW_EVENTS), "--json").items() == []


def test_allow_broad(repo: Path, cli: Any) -> None:
    assert reserve(cli, repo, "viper-1", "**", "--allow-broad").code == 0


def test_reserving_needs_an_identity(repo: Path, cli: Any) -> None:
    res = cli(repo, "reserve", "a.txt")
    assert res.code == 1 and "FLEET_CALLSIGN" in res.err


RACER = """
import sys
from fleetgit.fleet import Fleet
from fleetgit.ledger.errors import ConflictError
with Fleet.open(sys.argv[1], actor=sys.argv[2], register=True) as fleet:
    try:
        fleet.reserve(["src/contested.py"])
        print("won")
    except ConflictError:
        print("lost")
"""


def test_racing_processes_exactly_one_winner(repo: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(repo), f"racer-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["lost"] * 5 + ["won"]
    with Fleet.open(repo) as fleet:
        assert len(fleet.reservations()) == 1


def clash(repo: Path, tmp_path: Path, cli: Any) -> None:
    """viper-1 holds src/app.py; a clone granted goose src/ offline; the merge brings both."""
    cli(repo, "commit", "-m", "fleet: init")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert reserve(cli, repo, "viper-1", "src/app.py").code == 0  # first in total order
    time.sleep(0.01)
    assert reserve(cli, clone, "goose", "src/").code == 0  # granted offline, clashes
    cli(clone, "commit")
    cli(repo, "commit")
    git(repo, "pull", "-q", "--no-rebase", "--no-edit", str(clone), "main")


def test_a_merge_that_brings_a_clash_is_settled_by_total_order(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    clash(repo, tmp_path, cli)
    listed = cli(repo, "reservations", "--json").items()  # settles: emits file_conflict once
    assert {r["holder"] for r in listed} == {"viper-1", "goose"}
    (conflict,) = cli(repo, "events", "--type", "file_conflict", "--json").items()
    assert conflict["data"]["winner"] == "viper-1" and conflict["data"]["holder"] == "goose"
    cli(repo, "reservations")
    assert len(cli(repo, "events", "--type", "file_conflict", "--json").items()) == 1
    # goose's losing reservation no longer blocks viper-1; viper-1's still blocks goose
    assert cli(repo, "--as", "viper-1", "check", "src/app.py").code == 0
    assert cli(repo, "--as", "goose", "check", "src/app.py").code == 1
    before = snapshot(repo)
    cli(repo, "index", "rebuild")
    assert snapshot(repo) == before


def test_reservation_projection_survives_rebuild(repo: Path, cli: Any) -> None:
    import sqlite3

    reserve(cli, repo, "viper-1", "a/", "b/")
    cli(repo, "--as", "viper-1", "release", "a/")
    cli(repo, "--as", "viper-1", "renew", "b/", "--ttl", "5h")

    def rows() -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
        try:
            return conn.execute("SELECT * FROM reservations ORDER BY reservation_id").fetchall()
        finally:
            conn.close()

    before = rows()
    cli(repo, "index", "rebuild")
    assert rows() == before and len(before) == 2


def test_check_lists_each_path_once_with_all_its_holders(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "src/", "src/*.py", "src/a.py")  # three cover src/a.py
    res = cli(repo, "--as", "goose", "check", "src/a.py", "src/a.py")
    assert res.code == 1
    (row,) = res.out.splitlines()[1:]  # under the header: one line for the one path
    assert row.startswith("src/a.py") and row.count("viper-1") == 3
    (block,) = cli(repo, "--as", "goose", "check", "src/a.py", "--json").items()
    assert sorted(r["pattern"] for r in block["held_by"]) == ["src/", "src/*.py", "src/a.py"]


def test_check_takes_paths_relative_to_the_current_directory(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "src/parser/**")
    (repo / "src/parser").mkdir(parents=True)
    (repo / "src/other").mkdir()
    inside = cli(repo / "src", "--as", "goose", "check", "parser/lexer.py", "--json")
    assert inside.code == 1 and inside.items()[0]["path"] == "src/parser/lexer.py"
    up = cli(repo / "src/other", "--as", "goose", "check", "../parser/x.py")
    assert up.code == 1 and "src/parser/x.py" in up.out
    assert cli(repo / "src", "--as", "goose", "check", "lexer.py").code == 0  # src/lexer.py
    assert cli(repo, "-C", "src", "--as", "goose", "check", "parser/y.py").code == 1
    outside = cli(repo / "src", "--as", "goose", "check", "../../elsewhere.py")
    assert outside.code == 1 and "outside the repository" in outside.err
    assert "hint:" in outside.err
    empty = cli(repo, "--as", "goose", "check", "")
    assert empty.code == 1 and "empty path" in empty.err and "hint:" in empty.err


def test_check_through_a_symlinked_repository_path(repo: Path, tmp_path: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "src/parser/**")
    (repo / "src/parser").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(repo)
    absolute = cli(link / "src", "--as", "goose", "check", str(link / "src/parser/a.py"))
    assert absolute.code == 1 and "src/parser/a.py" in absolute.out, absolute.err
    relative = cli(link / "src", "--as", "goose", "check", "parser/b.py", "--json")
    assert relative.code == 1 and relative.items()[0]["path"] == "src/parser/b.py"
    with Fleet.open(repo, actor="goose") as fleet:  # the API takes the same cwd
        (block,) = fleet.check(["parser/c.py"], cwd=str(link / "src"))
    assert block.path == "src/parser/c.py"


def test_check_a_directory_checks_what_is_inside_it(repo: Path, cli: Any) -> None:
    reserve(cli, repo, "viper-1", "src/parser/**")
    (repo / "src/parser").mkdir(parents=True)
    for directory in ("src/parser", "src", "."):  # each holds reserved paths
        res = cli(repo, "--as", "goose", "check", directory, "--json")
        assert res.code == 1, directory
    assert res.items()[0]["path"] == "./"
    assert cli(repo, "--as", "goose", "check", "src/lexer/").code == 0  # not a dir yet: the slash
    assert cli(repo, "--as", "goose", "check", "src/parser/deep/").code == 1
    assert cli(repo, "--as", "viper-1", "check", "src").code == 0  # mine


@pytest.mark.parametrize("ttl", ["10000000000000d", "99999999999999999999d", "367d", "9" * 5000])
def test_a_huge_ttl_is_refused_before_anything_is_written(repo: Path, ttl: str) -> None:
    res = run_fleetgit(repo, "--as", "a", "reserve", "x", "--ttl", ttl)
    assert res.code == 1 and "limit of 366d" in res.err and "hint:" in res.err
    assert "Traceback" not in res.err
    assert run_fleetgit(repo, "events", "--after", str(CREW_EVENTS), "--json").json() == NONE
    assert run_fleetgit(repo, "index", "rebuild").code == 0
    assert run_fleetgit(repo, "--as", "a", "--register", "reserve", "x", "--ttl", "366d").code == 0


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("reservation_ttl_seconds = 0", "reservation_ttl_seconds must be from 1 to 31622400"),
        ("reservation_ttl_seconds = 99999999999999999", "reservation_ttl_seconds must be from"),
        ("force_release_after_seconds = -1", "force_release_after_seconds must be from 0"),
    ],
)
def test_config_durations_are_bounded(repo: Path, setting: str, says: str) -> None:
    cfg = repo / ".fleet/config.toml"
    key = setting.split(" =")[0]
    cfg.write_text(
        "\n".join(setting if line.startswith(key) else line for line in cfg.read_text().split("\n"))
    )
    res = run_fleetgit(repo, "--as", "a", "reserve", "x")
    assert res.code == 1 and str(cfg) in res.err and says in res.err and "hint:" in res.err
    cfg.write_text(DEFAULT_TOML)
    assert run_fleetgit(repo, "events", "--after", str(CREW_EVENTS), "--json").json() == NONE


def emit_reserved(cli: Any, repo: Path, **data: Any) -> Any:
    full = {"reservation_id": "res-x1", "holder": "ice", "exclusive": True, "ttl_seconds": 3600}
    full.update(data)
    return cli(
        repo,
        "--as",
        "ice",  # its holder: a grant in another's name is refused
        "emit",
        "file_reserved",
        "--stream",
        "reservation/res-x1",
        "--data",
        orjson.dumps(full).decode(),
    )


@pytest.mark.parametrize(
    ("patterns", "says"),
    [
        (["[a-"], "unterminated"),
        (["/etc/passwd"], "absolute"),
        (["../x"], "'..'"),
        ([""], "empty pattern"),
        (["ok.txt", "src//a"], "canonical form"),
        ([], "at least 1"),
    ],
)
def test_emit_applies_reserves_pattern_rules(
    repo: Path, cli: Any, patterns: list[str], says: str
) -> None:
    res = emit_reserved(cli, repo, patterns=patterns)
    assert res.code == 1 and says in res.err and "hint:" in res.err
    assert cli(repo, "events", "--after", str(CREW_EVENTS), "--json").items() == []
    assert cli(repo, "reservations", "--json").items() == []


def test_emit_bounds_ttl_but_allows_a_broad_pattern(repo: Path, cli: Any) -> None:
    res = emit_reserved(cli, repo, patterns=["a"], ttl_seconds=10**15)
    assert res.code == 1 and "data.ttl_seconds" in res.err
    renew = {"reservation_id": "res-x1", "ttl_seconds": 0}
    res = cli(
        repo,
        "emit",
        "file_renewed",
        "--stream",
        "reservation/res-x1",
        "--data",
        orjson.dumps(renew).decode(),
    )
    assert res.code == 1 and "data.ttl_seconds" in res.err
    assert emit_reserved(cli, repo, patterns=["**"]).code == 0  # as --allow-broad grants


def test_a_stored_out_of_range_event_cannot_break_the_index(repo: Path, cli: Any) -> None:
    """An event that reached the ledger unvalidated (here: a hand-edited segment) is refused at
    intake: it grants nothing, breaks nothing else, and verify reports it."""
    assert reserve(cli, repo, "viper-1", "a.txt", "--ttl", "1h").code == 0
    assert reserve(cli, repo, "viper-1", "b.txt").code == 0
    (segment,) = (repo / ".fleet/events").glob("*/*.jsonl")
    text = segment.read_text()
    segment.write_text(text.replace('"ttl_seconds":3600', '"ttl_seconds":864000000000000000', 1))
    rebuilt = run_fleetgit(repo, "index", "rebuild")
    assert rebuilt.code == 0, rebuilt.err
    listed = run_fleetgit(repo, "reservations", "--json")
    assert listed.code == 0, listed.err
    held = {r["pattern"]: r for r in orjson.loads(listed.out)["reservations"]}
    assert set(held) == {"b.txt"}
    verify = run_fleetgit(repo, "verify")
    assert verify.code == 1 and "data.ttl_seconds" in verify.out + verify.err


def test_a_lost_reservation_is_listed_as_lost(repo: Path, tmp_path: Path, cli: Any) -> None:
    clash(repo, tmp_path, cli)
    listed = {r["holder"]: r for r in cli(repo, "reservations", "--json").items()}
    winner, loser = listed["viper-1"], listed["goose"]
    assert winner["active"] and winner["lost_to"] is None
    assert not loser["active"]
    assert loser["lost_to"] == {"id": winner["id"], "holder": "viper-1", "pattern": "src/app.py"}
    (mine,) = cli(repo, "--as", "goose", "reservations", "--mine", "--json").items()
    assert mine["lost_to"]["id"] == winner["id"]
    human = cli(repo, "reservations").out
    (line,) = [ln for ln in human.splitlines() if "goose" in ln]
    assert f"lost to {winner['id']} (viper-1, 'src/app.py')" in line


def test_renewing_a_lost_reservation_is_refused_naming_the_winner(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    clash(repo, tmp_path, cli)
    won = cli(repo, "--as", "viper-1", "reservations", "--mine", "--json").items()[0]
    renewals = len(cli(repo, "events", "--type", "file_renewed", "--json").items())
    for args in (("src/",), ()):  # named, or all of mine when it is the only one
        res = cli(repo, "--as", "goose", "renew", *args)
        assert res.code == 1, args
        assert f"lost to {won['id']} (viper-1, 'src/app.py')" in res.err
        assert "hint: fleetgit release src/, then once free" in res.err
        assert "fleetgit reserve src/" in res.err
    assert len(cli(repo, "events", "--type", "file_renewed", "--json").items()) == renewals
    assert cli(repo, "--as", "goose", "release", "src/").code == 0  # the hint works
    assert cli(repo, "--as", "viper-1", "release", "src/app.py").code == 0
    assert reserve(cli, repo, "goose", "src/").code == 0


def test_renewing_all_of_mine_renews_the_live_ones_and_reports_the_lost(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    clash(repo, tmp_path, cli)
    assert reserve(cli, repo, "goose", "docs/", "--ttl", "10m").code == 0
    res = cli(repo, "--as", "goose", "renew", "--ttl", "2h", "--json")
    assert res.code == 0, res.err
    listed = {r["pattern"]: r for r in res.items()}
    assert listed["docs/"]["active"] and listed["docs/"]["seconds_left"] > 3600
    assert not listed["src/"]["active"] and listed["src/"]["lost_to"]["holder"] == "viper-1"
    (renewal,) = cli(repo, "events", "--type", "file_renewed", "--json").items()
    assert renewal["data"]["reservation_id"] == listed["docs/"]["id"]
    human = cli(repo, "--as", "goose", "renew")
    assert human.code == 0 and "docs/" in human.out
    assert "not renewed:" in human.err and "(viper-1, 'src/app.py')" in human.err
    assert "hint: fleetgit release src/" in human.err
    res = cli(repo, "--as", "goose", "renew", "docs/", "src/")  # named: nothing renewed
    assert res.code == 1 and "nothing renewed" in res.err
    assert len(cli(repo, "events", "--type", "file_renewed", "--json").items()) == 2


def test_a_deregistered_pilot_cannot_reserve_renew_or_release(repo: Path, cli: Any) -> None:
    rid = reserve(cli, repo, "goose", "a.txt").items()[0]["id"]
    left = cli(repo, "--as", "goose", "pilot", "deregister", "--json")
    assert left.code == 0 and left.json()["released"] == [rid]  # in the same batch
    assert cli(repo, "reservations", "--json").items() == []
    (released,) = cli(repo, "events", "--type", "file_released", "--json").items()
    assert released["data"]["reason"] == "goose deregistered"
    before = cli(repo, "events", "--json").items()
    for args in (("reserve", "b.txt"), ("lock", "acquire", "k"), ("pilot", "heartbeat")):
        res = cli(repo, "--as", "goose", *args)
        assert res.code == 1 and "pilot goose is deregistered" in res.err, args
        assert "hint: fleetgit pilot register goose" in res.err
    for args in (("renew",), ("release", "a.txt")):
        res = cli(repo, "--as", "goose", *args)  # it holds nothing any more
        assert res.code == 1 and "you hold no active reservation" in res.err, args
    assert cli(repo, "events", "--json").items() == before
    # it comes back by registering, or with --register in the command that acts
    res = cli(repo, "--as", "goose", "--register", "reserve", "b.txt", "--json")
    assert res.code == 0 and [r["pattern"] for r in res.items()] == ["b.txt"]
    assert not cli(repo, "pilot", "show", "goose", "--json").json()["deregistered"]


def test_reservations_as_of_judges_expiry_at_that_positions_time(repo: Path, cli: Any) -> None:
    first = reserve(cli, repo, "viper-1", "a.txt", "--ttl", "1s").items()[0]
    pos = cli(repo, "events", "--json").items()[-1]["pos"]
    time.sleep(1.2)
    reserve(cli, repo, "goose", "b.txt")
    assert [r["pattern"] for r in cli(repo, "reservations", "--json").items()] == ["b.txt"]
    (then,) = cli(repo, "reservations", "--as-of", str(pos), "--json").items()
    assert then["id"] == first["id"] and then["active"] and then["seconds_left"] == 1
    human = cli(repo, "reservations", "--as-of", str(pos)).out
    assert "a.txt" in human and "1s" in human
    later = cli(repo, "reservations", "--as-of", str(pos + 1), "--include-expired", "--json")
    assert {r["pattern"]: r["active"] for r in later.items()} == {"a.txt": False, "b.txt": True}


def test_the_fold_never_drops_a_grant_or_release_for_data_it_does_not_know() -> None:
    """A newer fleetgit may add fields: an older clone must still see the grant (or its hook
    would let commits through) and the release (or the path would stay blocked)."""
    from fleetgit.domain.fold import Ev
    from fleetgit.domain.reservations.fold import fold

    grant = {"reservation_id": "res-a", "holder": "ice", "patterns": ["src/x.py"]}
    grant |= {"exclusive": True, "ttl_seconds": 3600, "priority_from_the_future": 7}
    hlc = 1_800_000_000_000 << 16
    reserved = Ev("file_reserved", grant, hlc, "w1", 1, "ice", 1)
    (row,) = fold([reserved])["reservations"]
    assert row["pattern"] == "src/x.py" and row["released"] == 0
    released = Ev(
        "file_released", {"reservation_id": "res-a", "new_field": 1}, hlc + 1, "w1", 2, "ice", 2
    )
    (row,) = fold([reserved, released])["reservations"]
    assert row["released"] == 1
