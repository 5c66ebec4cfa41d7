"""Branches, worktrees, merges and rebuilds: the index is the union, and rebuild == incremental."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from fleetgit.fleet import Fleet
from tests.conftest import CREW_EVENTS, git

TABLES = {
    "events": "SELECT pos, id, type, v, stream, seq, hlc, writer, wseq, actor, ts, data, hash"
    " FROM events ORDER BY pos",
    "streams": "SELECT stream, version, last_pos FROM streams ORDER BY stream",
    "segments": "SELECT writer, number, committed FROM segments ORDER BY writer, number",
}


def snapshot(repo: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(repo / ".git/fleet/index.sqlite")
    try:
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        conn.close()


def missions(listed: Any) -> list[dict[str, Any]]:
    """The mission events of an `events --json` result (the crew's registrations left out)."""
    return [e for e in listed.items() if e["stream"].startswith("mission/")]


def emit(repo: Path, actor: str, mission: str, type_: str = "mission_created") -> None:
    data = {"mission_id": mission, "title": f"{mission} by {actor}"}
    if type_ != "mission_created":
        data = {"mission_id": mission}
    with Fleet.open(repo, actor=actor) as fleet:
        fleet.emit(type_, f"mission/{mission}", data)


def test_two_branches_merge_without_conflict_and_the_index_is_the_union(
    repo: Path, cli: Any
) -> None:
    cli(repo, "commit", "-m", "fleet: init")
    git(repo, "checkout", "-q", "-b", "feature")
    emit(repo, "maverick", "m-feature")
    cli(repo, "commit", "-m", "feature work")
    git(repo, "checkout", "-q", "main")
    emit(repo, "viper-1", "m-main")
    cli(repo, "commit", "-m", "main work")
    merged = git(repo, "merge", "--no-edit", "feature")
    assert "CONFLICT" not in merged
    assert git(repo, "status", "--porcelain") == ""
    streams = {e["stream"] for e in missions(cli(repo, "events", "--json"))}
    assert streams == {"mission/m-feature", "mission/m-main"}
    assert cli(repo, "verify").code == 0
    before = snapshot(repo)
    assert cli(repo, "index", "rebuild").code == 0
    assert snapshot(repo) == before


def test_a_clone_sees_the_history_through_plain_git(repo: Path, tmp_path: Path, cli: Any) -> None:
    emit(repo, "viper-1", "m1")
    cli(repo, "commit")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    cli(clone, "init")
    assert [e["stream"] for e in missions(cli(clone, "events", "--json"))] == ["mission/m1"]
    emit(clone, "goose", "m1", "mission_started")
    cli(clone, "commit")
    emit(repo, "viper-1", "m2")
    cli(repo, "commit")
    git(clone, "pull", "-q", "--no-rebase", "--no-edit")
    streams = sorted(e["stream"] for e in missions(cli(clone, "events", "--json")))
    assert streams == ["mission/m1", "mission/m1", "mission/m2"]
    writers = {e["writer"] for e in missions(cli(clone, "events", "--json"))}
    assert len(writers) == 2  # a clone is a new writer


def test_fetch_alone_brings_remote_tracking_events(repo: Path, tmp_path: Path, cli: Any) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    cli(clone, "init")
    emit(repo, "viper-1", "m-remote")
    cli(repo, "commit")
    assert missions(cli(clone, "events", "--json")) == []
    git(clone, "fetch", "-q")
    assert [e["stream"] for e in missions(cli(clone, "events", "--json"))] == ["mission/m-remote"]


def test_a_worktree_is_another_writer_seen_at_once(repo: Path, tmp_path: Path, cli: Any) -> None:
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(wt))
    emit(wt, "maverick", "m-wt")
    seen = missions(cli(repo, "events", "--json"))
    assert [e["stream"] for e in seen] == ["mission/m-wt"]
    emit(repo, "viper-1", "m-main")
    writers = {e["writer"] for e in missions(cli(wt, "events", "--json"))}
    assert len(writers) == 2


def test_positions_are_stable_when_earlier_events_arrive(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    cli(repo, "commit", "-m", "fleet: init")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    cli(clone, "init")
    emit(clone, "goose", "early")  # sorts before the next one
    cli(clone, "commit")
    emit(repo, "viper-1", "late")
    first = missions(cli(repo, "events", "--json"))
    c = CREW_EVENTS
    assert [(e["pos"], e["stream"]) for e in first] == [(c + 1, "mission/late")]
    git(repo, "pull", "-q", "--no-rebase", "--no-edit", str(clone), "main")
    after = missions(cli(repo, "events", "--json"))
    assert [(e["stream"], e["pos"]) for e in after] == [
        ("mission/early", c + 2),
        ("mission/late", c + 1),
    ]
    assert cli(repo, "events", "--after", str(c + 1), "--json").items()[0]["stream"] == (
        "mission/early"
    )
    # paging on from the last position listed sees each event once, although the merge brought
    # one that sorts before the other (in total order, the page after c would be "early", and
    # the next page, after its position, would skip "late")
    pages, last = [], c
    while page := cli(repo, "events", "--after", str(last), "--limit", "1", "--json").items():
        pages.append(page[0]["stream"])
        last = page[0]["pos"]
    assert pages == ["mission/late", "mission/early"]
    before = snapshot(repo)
    cli(repo, "index", "rebuild")
    assert snapshot(repo) == before


def test_deleted_index_rebuilds_to_the_same_projections(repo: Path, cli: Any) -> None:
    for i in range(5):
        emit(repo, "viper-1", f"m{i}")
    cli(repo, "commit")
    emit(repo, "viper-1", "m0", "mission_started")
    before = snapshot(repo)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{repo}/.git/fleet/index.sqlite{suffix}").unlink(missing_ok=True)
    assert len(missions(cli(repo, "events", "--json"))) == 6
    after = snapshot(repo)
    assert after["segments"] == before["segments"]
    assert [r[:2] for r in after["streams"]] == [r[:2] for r in before["streams"]]
    assert sorted(r[1:] for r in after["events"]) == sorted(r[1:] for r in before["events"])


def test_index_status(repo: Path, cli: Any) -> None:
    emit(repo, "viper-1", "m1")
    status = cli(repo, "index", "status", "--json").json()
    assert status["events"] == status["last_pos"] == 1 + CREW_EVENTS and not status["stale"]
    assert status["schema_version"] >= 1
    emit(repo, "viper-1", "m2")
    (seg,) = (repo / ".fleet/events").rglob("*.jsonl")
    os.utime(seg, ns=(0, 0))  # the file changed behind the index's back
    assert cli(repo, "index", "status", "--json").json()["stale"] is True


def test_a_rebuild_reads_a_checked_out_segment_once_not_again_from_its_commit(
    repo: Path, cli: Any
) -> None:
    for i in range(3):
        emit(repo, "viper-1", f"m{i}")
    cli(repo, "commit")
    before = snapshot(repo)
    with Fleet.open(repo, catch_up=False) as fleet:
        result = fleet.rebuild()
    assert (result.files_read, result.blobs_read) == (1, 0)  # the blob's bytes are the file's
    assert snapshot(repo) == before
    # a work-tree file that differs from its commit: the committed bytes are read as well
    (segment,) = (repo / ".fleet/events").rglob("*.jsonl")
    committed = segment.read_bytes()
    segment.write_bytes(committed.splitlines(keepends=True)[0])  # a checkout of older bytes
    with Fleet.open(repo, catch_up=False) as fleet:
        result = fleet.rebuild()
    assert (result.files_read, result.blobs_read) == (1, 1)
    assert snapshot(repo)["events"] == before["events"]  # every committed event, same positions


def test_a_new_worktree_s_checked_out_copies_are_not_parsed_again(
    repo: Path, tmp_path: Path, cli: Any
) -> None:
    """`git worktree add` checks out every committed segment again: a copy whose bytes equal a
    file the index read to its end (in another worktree, or earlier in the same pass) is
    recorded as read, not parsed again (it was a whole re-read of the ledger); one that differs
    by a byte is read. The index is the one a rebuild makes."""
    for i in range(3):
        emit(repo, "viper-1", f"m{i}")
    cli(repo, "commit")
    before = snapshot(repo)
    git(repo, "worktree", "add", "-q", "-b", "agent", str(tmp_path / "agent"))
    with Fleet.open(repo, catch_up=False) as fleet:
        result = fleet.catch_up()
        assert (result.files_read, result.new_events) == (0, 0)
        assert fleet.index.is_fresh()  # its files recorded: the next catch-up reads nothing
        rebuilt = fleet.rebuild()
    assert rebuilt.files_read == 1  # the rebuild's pass, too: one copy of two read
    assert snapshot(repo) == before
    (copy,) = (tmp_path / "agent/.fleet/events").rglob("*.jsonl")
    lines = copy.read_bytes().splitlines(keepends=True)
    copy.write_bytes(b"".join(lines[:-1]) + lines[-1].replace(b'"m2"', b'"mX"'))
    with Fleet.open(repo, catch_up=False) as fleet:
        assert fleet.catch_up().files_read == 1
