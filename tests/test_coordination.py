"""Work orders, locks and cursors through the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from fleetgit.domain.cursors.commands import consume
from fleetgit.fleet import Fleet
from fleetgit.index.reads import EventFilter
from tests.conftest import CREW_EVENTS, plant


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


def test_work_orders(repo: Path, cli: Any) -> None:
    for who in ("goose", "ice"):
        cli(repo, "pilot", "register", who)
    sid = as_(cli, repo, "viper", "sortie", "create", "Lexer").out.strip()
    wid = as_(cli, repo, "viper", "workorder", "create", "Write tests", "--sortie", sid[:9])
    wid = wid.out.strip()
    assert wid.startswith("wo-")
    res = as_(cli, repo, "viper", "workorder", "assign", wid, "gose")
    assert res.code == 1 and "unknown callsign(s): gose" in res.err
    assert "did you mean goose?" in res.err and "--allow-unknown" in res.err
    assert as_(cli, repo, "viper", "workorder", "assign", wid, "goose").code == 0
    assert (
        as_(cli, repo, "viper", "workorder", "status", wid, "in_progress", "--note", "half").code
        == 0
    )
    assert as_(cli, repo, "viper", "workorder", "status", wid, "sleeping").code == 1
    assert as_(cli, repo, "viper", "workorder", "complete", wid, "--summary", "12 tests").code == 0
    res = as_(cli, repo, "viper", "workorder", "assign", wid, "ice")
    assert res.code == 1 and "is completed" in res.err
    (row,) = cli(repo, "workorder", "list", "--sortie", sid, "--json").items()
    assert (row["status"], row["assignee"], row["summary"]) == ("completed", "goose", "12 tests")
    assert as_(cli, repo, "viper", "workorder", "create", "x", "--sortie", "srt-nope").code == 1


def test_lock_contention_timeout_and_release_rules(repo: Path, cli: Any) -> None:
    assert as_(cli, repo, "viper", "lock", "acquire", "db", "--ttl", "10m").code == 0
    assert as_(cli, repo, "viper", "lock", "acquire", "db").code == 0  # re-entrant: extends
    t0 = time.monotonic()
    res = as_(cli, repo, "goose", "lock", "acquire", "db", "--wait", "1s")
    assert res.code == 1 and "held by viper" in res.err and time.monotonic() - t0 >= 1
    (timeout,) = cli(repo, "events", "--type", "lock_timeout", "--json").items()
    assert timeout["data"]["waiter"] == "goose" and timeout["data"]["waited_ms"] >= 1000
    res = as_(cli, repo, "goose", "lock", "release", "db")
    assert res.code == 1 and "only the holder" in res.err
    assert [r["holder"] for r in cli(repo, "lock", "list", "--json").items()] == ["viper"]
    assert as_(cli, repo, "viper", "lock", "release", "db").code == 0
    assert as_(cli, repo, "goose", "lock", "acquire", "db", "--ttl", "1s").code == 0
    time.sleep(1.2)
    assert as_(cli, repo, "ice", "lock", "acquire", "db").code == 0  # expired: can be taken
    assert cli(repo, "lock", "acquire", "bad/key", "--as", "x").code != 0


WAITER = """
import sys
from fleetgit.domain.locks import commands as locks
from fleetgit.fleet import Fleet
with Fleet.open(sys.argv[1], actor=sys.argv[2], register=True) as fleet:
    try:
        locks.acquire(fleet, "deploy", ttl="1h")
        print("got")
    except Exception:
        print("busy")
"""


def test_racing_processes_one_lock_holder(repo: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WAITER, str(repo), f"p{i}"], stdout=subprocess.PIPE, text=True
        )
        for i in range(5)
    ]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert results == ["busy"] * 4 + ["got"]


def test_cursors_and_consumers(repo: Path, cli: Any) -> None:
    c = CREW_EVENTS
    cli(repo, "cursor", "advance", "indexer", "--to", str(c))  # past the crew's registrations
    for i in range(3):
        as_(cli, repo, "viper", "mission", "create", f"m{i}")
    assert cli(repo, "cursor", "show", "indexer", "--json").json()["pending"] == 3
    first = cli(
        repo, "events", "--consumer", "indexer", "--limit", "2", "--advance", "--json"
    ).json()
    assert [e["pos"] for e in first["events"]] == [c + 1, c + 2] and first["more"] == 1
    rest = cli(repo, "events", "--consumer", "indexer", "--advance", "--json").items()
    assert [e["pos"] for e in rest] == [c + 3]
    assert cli(repo, "events", "--consumer", "indexer", "--json").items() == []
    again = cli(repo, "cursor", "advance", "indexer", "--to", str(c + 1), "--json").json()
    assert again["pending"] == 2
    assert cli(repo, "cursor", "advance", "indexer", "--to", "99").code == 1
    cli(repo, "index", "rebuild")
    assert cli(repo, "cursor", "show", "indexer", "--json").json()["pos"] == c + 1  # kept
    assert cli(repo, "cursor", "reset", "indexer", "--json").json()["pos"] == 0


def test_a_consumer_read_applies_the_filters_and_advances_past_what_it_examined(
    repo: Path, cli: Any
) -> None:
    for i in range(3):
        as_(cli, repo, "viper", "mission", "create", f"m{i}")
        as_(cli, repo, "viper", "lock", "acquire", f"k{i}")
    got = cli(repo, "events", "--consumer", "c", "--type", "lock_acquired", "--json").items()
    assert [e["type"] for e in got] == ["lock_acquired"] * 3
    got = cli(repo, "events", "--consumer", "c", "--stream", "lock/k1", "--json").items()
    assert [e["stream"] for e in got] == ["lock/k1"]
    # with --limit, the cursor stops at the last event listed
    res = cli(
        repo, "events", "--consumer", "c", "--type", "mission_created", "--limit", "2",
        "--advance", "--json",
    )  # fmt: skip
    c = CREW_EVENTS
    assert [e["pos"] for e in res.items()] == [c + 1, c + 3]
    assert cli(repo, "cursor", "show", "c", "--json").json()["pos"] == c + 3
    # without one, it moves to the newest position: skipped events are passed over for good
    got = cli(repo, "events", "--consumer", "c", "--type", "mission_created", "--advance", "--json")
    assert [e["pos"] for e in got.items()] == [c + 5]
    assert cli(repo, "cursor", "show", "c", "--json").json() | {"updated_at": None} == {
        "name": "c", "pos": c + 6, "pending": 0, "updated_at": None,
    }  # fmt: skip
    res = cli(repo, "events", "--advance")
    assert res.code == 2 and "needs --consumer" in res.err
    assert "hint: fleetgit events --consumer NAME --advance" in res.err
    assert cli(repo, "events", "--consumer", "c", "--reverse").code == 1
    # a bad stream name is refused, not read as "nothing new" (and never advances the cursor)
    for _ in range(2):
        as_(cli, repo, "viper", "mission", "create", "later")
    bad = cli(repo, "events", "--consumer", "c", "--stream", "bogus", "--advance")
    assert bad.code == 1 and "KIND/NAME" in bad.err + bad.out
    assert cli(repo, "cursor", "show", "c", "--json").json()["pos"] == c + 6
    # through the API a limit of 0 means no limit, as on the command line
    with Fleet.open(repo) as fleet:
        assert len(consume(fleet, "c", EventFilter(limit=0), advance=True)) == 2
        assert consume(fleet, "c", EventFilter(limit=0), advance=True) == []


def test_a_lock_wait_says_how_long_it_waited(repo: Path, cli: Any) -> None:
    assert as_(cli, repo, "goose", "lock", "acquire", "db", "--ttl", "10m").code == 0
    res = as_(cli, repo, "viper", "lock", "acquire", "db", "--wait", "1s")
    assert res.code == 1 and "held by goose" in res.err and "waited 1s and gave up" in res.err
    assert "hint: wait until it expires: fleetgit lock acquire db --wait 11m" in res.err
    res = as_(cli, repo, "viper", "lock", "acquire", "db")  # no wait: nothing waited
    assert res.code == 1 and "waited" not in res.err


def test_lock_list_as_of_a_position_uses_that_positions_time(repo: Path, cli: Any) -> None:
    assert as_(cli, repo, "goose", "lock", "acquire", "db", "--ttl", "1s").code == 0
    pos = cli(repo, "events", "--json").items()[-1]["pos"]
    time.sleep(1.2)
    as_(cli, repo, "goose", "pilot", "register", "goose")
    assert cli(repo, "lock", "list", "--json").items() == []  # expired by now
    (then,) = cli(repo, "lock", "list", "--as-of", str(pos), "--json").items()
    assert then["holder"] == "goose" and then["held"] and then["seconds_left"] == 1
    assert cli(repo, "lock", "list", "--as-of", str(pos)).out.split()[3:] == ["db", "goose", "1s"]
    res = cli(repo, "lock", "list", "--as-of", "99")
    assert res.code == 1 and f"positions here run from 0 to {2 + CREW_EVENTS}" in res.err


def _events_of(cli: Any, repo: Path, stream: str) -> int:
    return len(cli(repo, "events", "--stream", stream, "--json").items())


def test_a_pilot_that_left_cannot_be_given_work_or_mail(repo: Path, cli: Any) -> None:
    for who in ("goose", "ice"):
        cli(repo, "pilot", "register", who)
    assert as_(cli, repo, "ice", "pilot", "deregister").code == 0
    sid = as_(cli, repo, "viper", "sortie", "create", "Lexer").out.strip()
    wid = as_(cli, repo, "viper", "workorder", "create", "Tests", "--sortie", sid).out.strip()
    before = cli(repo, "events", "--json").items()
    for args in (
        ("workorder", "assign", wid, "ice"),
        ("squawk", "send", "--to", "goose", "--cc", "ice", "--subject", "x"),
    ):
        res = as_(cli, repo, "viper", *args)
        assert res.code == 1 and "ice has left the fleet (deregistered)" in res.err, args
        assert "hint: see who is here: fleetgit pilot list --active" in res.err
        assert "--allow-unknown" in res.err and "Traceback" not in res.err
    assert cli(repo, "events", "--json").items() == before  # nothing written
    res = as_(cli, repo, "viper", "squawk", "send", "--to", "ice", "--subject", "x", "--json")
    assert res.code == 1 and '"code":"invalid"' in res.err
    # --allow-unknown still insists; registering again brings it back
    assert as_(cli, repo, "viper", "workorder", "assign", wid, "ice", "--allow-unknown").code == 0
    cli(repo, "pilot", "register", "ice")
    res = as_(cli, repo, "viper", "squawk", "send", "--to", "ice", "--subject", "welcome back")
    assert res.code == 0


def test_work_order_status_rules(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    sid = as_(cli, repo, "viper", "sortie", "create", "Lexer").out.strip()
    wid = as_(cli, repo, "viper", "workorder", "create", "Tests", "--sortie", sid).out.strip()
    stream = f"workorder/{wid}"
    # held statuses need an assignee: nothing written
    for status in ("assigned", "in_progress", "blocked"):
        res = as_(cli, repo, "viper", "workorder", "status", wid, status)
        assert res.code == 1 and f"has no assignee: {status} needs one" in res.err
        assert f"fleetgit workorder assign {wid} CALLSIGN" in res.err
    assert _events_of(cli, repo, stream) == 1
    # the status it has already, or the assignee it has already: refused, no event
    res = as_(cli, repo, "viper", "workorder", "status", wid, "open")
    assert res.code == 1 and "is already open: nothing to change" in res.err
    assert f"hint: fleetgit workorder show {wid}" in res.err
    assert as_(cli, repo, "viper", "workorder", "assign", wid, "goose").code == 0
    res = as_(cli, repo, "viper", "workorder", "assign", wid, "goose")
    assert res.code == 1 and "already assigned to goose" in res.err
    assert as_(cli, repo, "goose", "workorder", "status", wid, "in_progress").code == 0
    for _ in range(2):
        res = as_(cli, repo, "goose", "workorder", "status", wid, "in_progress", "--note", "x")
        assert res.code == 1 and "already in_progress" in res.err
    assert _events_of(cli, repo, stream) == 3
    # open gives it back: the assignee is cleared
    row = as_(cli, repo, "goose", "workorder", "status", wid, "open", "--json").json()
    assert (row["status"], row["assignee"]) == ("open", None)
    res = as_(cli, repo, "viper", "workorder", "status", wid, "sleeping")
    assert res.code == 1 and "expected one of open|assigned" in res.err
    assert "hint: fleetgit workorder status" in res.err
    help_text = cli(repo, "workorder", "status", "--help").out
    assert "clears the assignee" in help_text and "need an assignee" in help_text


def test_the_work_order_fold_ignores_what_the_commands_refuse(repo: Path, cli: Any) -> None:
    """Raw events (as another clone's race could write them) fold by the same rules; emit
    refuses them."""

    def emit(data: dict[str, Any], event_type: str = "work_order_status_changed") -> None:
        payload = orjson.dumps({"work_order_id": "wo-1", **data}).decode()
        res = as_(cli, repo, "viper", "emit", event_type, "--stream", "workorder/wo-1",
                  "--data", payload)  # fmt: skip
        if res.code:  # what the commands refuse: written as another clone could
            assert "refused" in res.err and "hint: use the command that checks it" in res.err
            plant(repo, event_type, "workorder/wo-1", {"work_order_id": "wo-1", **data}, "viper")

    def row() -> tuple[str, str | None, str | None]:
        r = cli(repo, "workorder", "show", "wo-1", "--json").json()
        return r["status"], r["assignee"], r["note"]

    emit({"sortie_id": "srt-1", "title": "T"}, "work_order_created")
    emit({"status": "in_progress", "note": "no one holds it"})
    assert row() == ("open", None, None)
    emit({"assignee": "goose"}, "work_order_assigned")
    emit({"status": "in_progress", "note": "first"})
    emit({"status": "in_progress", "note": "again"})  # the status it has: ignored
    emit({"assignee": "goose"}, "work_order_assigned")  # its assignee: ignored
    assert row() == ("in_progress", "goose", "first")
    emit({"status": "open"})
    assert row() == ("open", None, "first")
    emit({"status": "assigned"})
    assert row() == ("open", None, "first")
    before = cli(repo, "workorder", "show", "wo-1", "--json").json()
    cli(repo, "index", "rebuild")
    assert cli(repo, "workorder", "show", "wo-1", "--json").json() == before


def test_taking_a_lock_again_extends_it_and_never_shortens_it(repo: Path, cli: Any) -> None:
    first = as_(cli, repo, "viper", "lock", "acquire", "db", "--ttl", "1h", "--json").json()
    again = as_(cli, repo, "viper", "lock", "acquire", "db", "--json").json()  # default 5m
    assert again["expires_at"] == first["expires_at"] and again["seconds_left"] > 3500
    longer = as_(cli, repo, "viper", "lock", "acquire", "db", "--ttl", "2h", "--json").json()
    assert longer["expires_at"] > first["expires_at"] and longer["seconds_left"] > 7100
    (row,) = cli(repo, "lock", "list", "--json").items()
    assert row["expires_at"] == longer["expires_at"]
    cli(repo, "index", "rebuild")
    (rebuilt,) = cli(repo, "lock", "list", "--json").items()
    assert (rebuilt["holder"], rebuilt["expires_at"]) == ("viper", row["expires_at"])
    assert "never shortens" in cli(repo, "lock", "acquire", "--help").out
