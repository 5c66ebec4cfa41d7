"""`--rev REV`: the history and the state as recorded in one commit, from the segments in that
commit's tree alone, folded in a throwaway index by the catch-up's own code."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fleetgit.fleet import Fleet
from tests.conftest import git


def ids(listing: Any, key: str = "events") -> list[str]:
    return [item["id"] for item in listing[key]]


def test_events_and_reservations_as_recorded_in_a_commit(repo: Path, cli: Any) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/app.py"])
        fleet.commit("fleet: viper-1 holds src/app.py")
    committed = cli(repo, "events", "--json", "--limit", "0").json()
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.release(["src/app.py"])  # not committed: not in HEAD's tree
    now = cli(repo, "events", "--json", "--limit", "0").json()
    at_head = cli(repo, "events", "--rev", "HEAD", "--json", "--limit", "0").json()
    assert ids(at_head) == ids(committed) != ids(now)
    held = cli(repo, "reservations", "--rev", "HEAD", "--json").json()
    assert [(r["holder"], r["pattern"], r["active"]) for r in held["reservations"]] == [
        ("viper-1", "src/app.py", True)
    ]
    assert cli(repo, "reservations", "--json").json()["reservations"] == []
    before = cli(repo, "events", "--rev", "HEAD~1", "--json").json()
    assert before == {"events": [], "more": 0}  # the commit before the fleet's first


def test_another_branchs_segments_are_not_in_a_commits_tree(repo: Path, cli: Any) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.commit("fleet: pilots")
    git(repo, "checkout", "-q", "-b", "side")
    assert cli(repo, "--as", "goose", "mission", "create", "Side work").code == 0
    assert cli(repo, "commit", "-m", "fleet: side").code == 0
    git(repo, "checkout", "-q", "main")
    side = cli(repo, "mission", "list", "--rev", "side", "--json").json()
    main = cli(repo, "mission", "list", "--rev", "main", "--json").json()
    assert [m["title"] for m in side["missions"]] == ["Side work"]
    assert main["missions"] == []
    assert len(cli(repo, "mission", "list", "--json").json()["missions"]) == 1  # the index: all


def test_rev_leaves_the_index_and_no_file_behind(repo: Path, cli: Any) -> None:
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.commit("fleet: pilots")
        status = fleet.index_status()
    left = set(Path(tempfile.gettempdir()).glob("fleetgit-rev-*"))
    assert cli(repo, "--as", "viper-1", "status", "--rev", "HEAD").code == 0
    assert set(Path(tempfile.gettempdir()).glob("fleetgit-rev-*")) == left
    with Fleet.open(repo) as fleet:
        assert fleet.index_status()["last_pos"] == status["last_pos"]


def test_a_rev_that_names_no_commit_and_writes_are_refused(repo: Path, cli: Any) -> None:
    res = cli(repo, "events", "--rev", "nosuch")
    assert res.code == 1 and "--rev nosuch: names no commit" in res.err and "hint:" in res.err
    res = cli(repo, "events", "--rev", "HEAD", "--consumer", "bot")
    assert res.code == 2 and "not both" in res.err
    with Fleet.at_rev(repo, "HEAD", actor="viper-1") as fleet:
        try:
            fleet.reserve(["x.py"])
        except Exception as exc:
            assert "read-only" in str(exc)
        else:
            raise AssertionError("a write through --rev went through")
