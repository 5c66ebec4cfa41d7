"""What people and tools read: short ids, JSON usage errors, plain words instead of Python's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fleetgit.fleet import EventSpec, Fleet
from tests.conftest import CREW_EVENTS, flood, git, run_fleetgit


def busy_batch(repo: Path, count: int) -> list[str]:
    """Append `count` events in one batch (one millisecond: their ids share 12 hex digits)."""
    spec = EventSpec("context_compacted", "pilot/viper-1", {"summary": "busy"})
    with Fleet.open(repo, actor="viper-1") as fleet:
        return [e.id for e in fleet.emit_batch([spec] * count)]


def test_events_lists_short_ids_that_show_accepts(repo: Path, cli: Any) -> None:
    ids = busy_batch(repo, 200)
    lines = cli(repo, "events", "--after", str(CREW_EVENTS), "--limit", "0").out.splitlines()
    assert lines[0].split()[:2] == ["ID", "POS"]
    shorts = [line.split()[0] for line in lines[1:]]
    assert len(set(shorts)) == 200 and len({len(s) for s in shorts}) == 1
    for short, full in zip(shorts, ids, strict=True):
        assert full.replace("-", "").startswith(short)
    for short, full in list(zip(shorts, ids, strict=True))[::40]:
        assert cli(repo, "show", short, "--json").json()["id"] == full
    assert "ID" in cli(repo, "stream", "pilot/viper-1").out.splitlines()[0]


def test_filtered_listings_stay_unique_against_unlisted_events(repo: Path, cli: Any) -> None:
    specs = [
        EventSpec("context_compacted", f"pilot/p{i % 40}", {"summary": "busy"}) for i in range(200)
    ]
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(specs)  # one millisecond: neighbours in id order are of other streams
    for stream in ("pilot/p0", "pilot/p7"):  # 5 of 200: looked up one by one
        for line in cli(repo, "events", "--stream", stream).out.splitlines()[1:]:
            short = line.split()[0]
            assert cli(repo, "show", short, "--json").json()["stream"] == stream
    half = [
        EventSpec("context_compacted", f"pilot/h{i % 2}", {"summary": "busy"}) for i in range(60)
    ]
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(half)
    for line in cli(repo, "events", "--stream", "pilot/h1").out.splitlines()[1:]:  # one scan
        assert cli(repo, "show", line.split()[0], "--json").json()["stream"] == "pilot/h1"


def test_show_takes_prefixes_with_or_without_hyphens(repo: Path, cli: Any) -> None:
    [full] = busy_batch(repo, 1)
    for ref in (full, full.replace("-", ""), full[:13], full.replace("-", "")[:14], full.upper()):
        res = cli(repo, "show", ref, "--json")
        assert res.code == 0 and res.json()["id"] == full, ref


def test_an_ambiguous_prefix_lists_the_candidates(repo: Path, cli: Any) -> None:
    ids = busy_batch(repo, 3)
    res = cli(repo, "show", ids[0].replace("-", "")[:12])
    assert res.code == 1 and "ambiguous" in res.err and "hint: give more characters" in res.err
    assert all(i in res.err for i in ids)
    missing = cli(repo, "show", "zzzz")
    assert missing.code == 1 and "hint: list ids with: fleetgit events" in missing.err


def test_an_ambiguous_prefix_says_how_many_it_matches(repo: Path, cli: Any) -> None:
    ids = sorted(busy_batch(repo, 16))  # one millisecond: 12 digits are common to all
    res = cli(repo, "show", ids[0].replace("-", "")[:12])
    assert res.code == 1 and "it matches 16: " in res.err and " and 11 more" in res.err
    assert all(i in res.err for i in ids[:5]) and ids[5] not in res.err
    flood(repo, "viper-1", 16)  # msg-00000 … msg-00015
    res = cli(repo, "squawk", "thread", "msg-0000")
    assert res.code == 1 and "message id 'msg-0000' is ambiguous: it matches 10: " in res.err
    assert "msg-00005 and 4 more" in res.err and "hint: give more characters" in res.err
    res = cli(repo, "squawk", "thread", "0001")  # without its prefix
    assert res.code == 1 and "it matches 6: msg-00010, " in res.err and "msg-00015\n" in res.err


def test_show_prints_a_dash_for_missing_links(repo: Path, cli: Any) -> None:
    [full] = busy_batch(repo, 1)
    out = cli(repo, "show", full).out
    assert "None" not in out
    assert [line.split() for line in out.splitlines() if "_id " in line] == [
        ["causation_id", "-"],
        ["correlation_id", "-"],
    ]


def test_usage_errors_are_json_with_json_anywhere(repo: Path) -> None:
    for argv in (
        ["events", "--limit", "abc", "--json"],
        ["emit", "--json"],
        ["--json", "no-such-command"],
        ["events", "--json", "--bogus"],
    ):
        res = run_fleetgit(repo, *argv)
        assert res.code == 2 and res.out == "", argv
        err = orjson.loads(res.err)["error"]
        assert err["code"] == "usage" and err["message"] and "--help" in err["hint"], argv
    text = run_fleetgit(repo, "events", "--limit", "abc")
    assert text.code == 2 and "--limit" in text.err and not text.err.startswith("{")


def test_data_that_is_not_an_object_is_named_in_json_words(repo: Path, cli: Any) -> None:
    for data, kind in (
        ("null", "null"),
        ("[1]", "list"),
        ('"busy"', "string"),
        ("3", "integer"),
        ("2.5", "number"),
        ("true", "boolean"),
    ):
        res = cli(repo, "emit", "pilot_active", "--stream", "pilot/x", "--data", data)
        assert res.code == 1 and f"expected a JSON object, got {kind}\n" in res.err, data
    assert cli(repo, "events", "--after", str(CREW_EVENTS), "--json").items() == []


def test_stream_names_are_checked(repo: Path, cli: Any) -> None:
    for argv in (["stream", "bad stream"], ["stream", "nokind/x"], ["events", "--stream", "a b"]):
        res = cli(repo, *argv)
        assert res.code == 1 and "hint: a stream is KIND/NAME" in res.err, argv
    assert cli(repo, "stream", "mission/none").out == "stream mission/none has no events\n"


def test_causation_must_be_an_event_id_and_correlation_a_name(repo: Path, cli: Any) -> None:
    [cause] = busy_batch(repo, 1)
    emit = ["emit", "context_compacted", "--stream", "pilot/x", "--data", '{"summary": "busy"}']
    bad_cause = cli(repo, *emit, "--causation-id", "because")
    assert bad_cause.code == 1 and "causation id 'because'" in bad_cause.err
    bad_corr = cli(repo, *emit, "--correlation-id", "job 7")
    assert bad_corr.code == 1 and "correlation id 'job 7'" in bad_corr.err
    good = cli(repo, *emit, "--causation-id", cause, "--correlation-id", "job-7", "--json")
    assert good.code == 0, good.err
    assert (good.json()["causation_id"], good.json()["correlation_id"]) == (cause, "job-7")
    helptext = " ".join(cli(repo, "emit", "--help").out.split())
    assert "full event id" in helptext and "any name" in helptext


def test_a_bare_repository_is_named_as_such(tmp_path: Path, cli: Any) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    for where in (bare, bare / "refs"):
        res = cli(where, "init")
        assert res.code == 1, where
        assert "bare git repository" in res.err and "needs a worktree" in res.err
        assert "git clone" in res.err and "worktree add" in res.err
    assert not (bare / ".fleet").exists()
    for spelling in ("yes", "1", "on  # set by hand", "TRUE"):  # git's booleans, as git reads them
        git(bare, "config", "core.bare", "false")
        config = (bare / "config").read_text().replace("bare = false", f"bare = {spelling}")
        (bare / "config").write_text(config)
        assert git(bare, "rev-parse", "--is-bare-repository").strip() == "true", spelling
        assert "bare git repository" in cli(bare, "init").err, spelling


def test_errors_and_notes_on_stderr_show_control_codes_escaped(capsys: Any) -> None:
    """A message or hint may quote the ledger (an old one may hold anything): escaped as on
    stdout, and the JSON form stays valid JSON."""
    from fleetgit.cli.common import note, report

    report("invalid", "no mission 'x\x1b[2J'", "did you mean y\x9b1m?", False)
    err = capsys.readouterr().err
    assert err == "fleetgit: no mission 'x\\x1b[2J'\nhint: did you mean y\\x9b1m?\n"
    note("unknown", "z\u202e", None, True)
    shown = capsys.readouterr().err
    assert "\u202e" not in shown  # escaped the JSON way, and read back exactly
    assert orjson.loads(shown) == {"note": {"code": "unknown", "message": "z\u202e"}}
