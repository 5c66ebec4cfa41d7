"""SQL analytics (issue 14): `fleetgit sql`, `stats`, `export`, and the columnar copy.

Every figure of `stats` is computed again here in Python from `fleetgit events --json`; the copy
is compared with a rebuilt one after appends, a merge that brings events sorting earlier, an
index rebuild, its deletion and its corruption; every projection table agrees with its list
command; every statement that would write is refused."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fleetgit.analytics import cache
from fleetgit.fleet import Fleet
from fleetgit.ledger import clock
from tests.conftest import git, run_fleetgit

STATUS = {
    "sortie_created": "open",
    "sortie_assigned": "assigned",
    "sortie_started": "in_progress",
    "sortie_blocked": "blocked",
    "sortie_resumed": "in_progress",
    "sortie_completed": "completed",
    "sortie_cancelled": "cancelled",
    "sortie_unclaimed": "open",
}
# what leaves `blocked` (a completion cannot: the sortie must be resumed first)
ENDS_BLOCK = {"sortie_resumed", "sortie_assigned", "sortie_cancelled", "sortie_unclaimed"}


def ok(cli: Any, repo: Path, *args: str) -> str:
    res = cli(repo, *args)
    assert res.code == 0, (args, res.err)
    return str(res.out.strip())


def pause() -> None:
    time.sleep(0.003)  # a few milliseconds between steps: durations that are not all zero


def scenario(cli: Any, repo: Path) -> dict[str, Any]:
    """Two missions, sorties claimed, blocked, resumed, handed back, completed; reservations;
    messages asking for acknowledgement, some given. Returns ids and a time in the middle."""
    m1 = ok(cli, repo, "--as", "viper-1", "mission", "create", "One")
    m2 = ok(cli, repo, "--as", "viper-1", "mission", "create", "Two")
    s = [
        ok(cli, repo, "--as", "viper-1", "sortie", "create", f"S{i}", "--mission", m)
        for i, m in enumerate((m1, m1, m1, m1, m2))
    ]
    for who, sid, steps in (
        ("goose", s[0], ("claim", "start", "block", "resume", "complete")),
        ("ice", s[1], ("claim", "start", "complete")),
    ):
        for step in steps:
            extra = ("--reason", "waiting on ice") if step == "block" else ()
            ok(cli, repo, "--as", who, "sortie", step, sid, *extra)
            pause()
    middle = clock.now_ms()
    pause()
    ok(cli, repo, "--as", "goose", "sortie", "claim", s[2])
    ok(cli, repo, "--as", "goose", "sortie", "start", s[2])
    pause()
    ok(cli, repo, "--as", "goose", "sortie", "block", s[2], "--reason", "no spec")
    ok(cli, repo, "--as", "ice", "sortie", "claim", s[4])
    ok(cli, repo, "--as", "ice", "sortie", "unclaim", s[4])
    pause()
    ok(cli, repo, "--as", "goose", "sortie", "claim", s[4])
    ok(cli, repo, "--as", "goose", "sortie", "start", s[4])
    pause()
    ok(cli, repo, "--as", "goose", "sortie", "complete", s[4])
    ok(cli, repo, "--as", "goose", "reserve", "src/a.py", "src/b.py")
    ok(cli, repo, "--as", "goose", "release", "--all")
    ok(cli, repo, "--as", "ice", "reserve", "src/a.py")
    ok(cli, repo, "--as", "goose", "reserve", "docs/*.md", "--shared")
    ask = ok(cli, repo, "--as", "viper-1", "squawk", "send", "--to", "goose", "--to", "ice",
             "--subject", "Review", "--body", "please", "--ack-required")  # fmt: skip
    ok(cli, repo, "--as", "viper-1", "squawk", "send", "--to", "ice", "--subject", "Again",
       "--body", "x", "--ack-required")  # fmt: skip
    ok(cli, repo, "--as", "viper-1", "squawk", "send", "--to", "goose", "--subject", "FYI")
    ok(cli, repo, "--as", "goose", "squawk", "ack", ask)
    return {"missions": (m1, m2), "sorties": s, "middle": middle}


# -- the figures again, in Python, from `fleetgit events --json` ------------------------------


def events_of(cli: Any, repo: Path) -> list[dict[str, Any]]:
    res = cli(repo, "events", "--limit", "0", "--json")
    assert res.code == 0, res.err
    return list(res.json()["events"])


def ms(e: dict[str, Any]) -> int:
    return int(e["hlc"]) >> 16


def key(e: dict[str, Any]) -> tuple[int, str, int]:
    return (e["hlc"], e["writer"], e["wseq"])


def quantiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=10, method="inclusive")[8]


def expected(
    every: list[dict[str, Any]],
    now_ms: int,
    since: int | None = None,
    pilot: str | None = None,
    mission: str | None = None,
) -> dict[str, Any]:
    every = sorted(every, key=key)
    sortie_mission = {
        e["data"]["sortie_id"]: e["data"].get("mission_id")
        for e in every
        if e["type"] == "sortie_created"
    }

    def in_scope(e: dict[str, Any]) -> bool:
        if since is not None and ms(e) < since:
            return False
        if pilot is not None and e["actor"] != pilot:
            return False
        if mission is not None:
            kind, _, name = e["stream"].partition("/")
            return (kind, name) == ("mission", mission) or (
                kind == "sortie" and sortie_mission.get(name) == mission
            )
        return True

    scoped = [e for e in every if in_scope(e)]
    hours = Counter(time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(ms(e) // 1000)) for e in scoped)
    out: dict[str, Any] = {
        "total": len(scoped),
        "per_hour": dict(hours),
        "per_type": dict(Counter(e["type"] for e in scoped)),
        "per_pilot": dict(Counter(e["actor"] for e in scoped)),
    }
    # sorties: status by their own events; scope by mission, assignee, an event in the scope
    status: dict[str, str] = {}
    assignee: dict[str, str | None] = {}
    claimed: dict[str, dict[str, Any]] = {}
    spans: list[tuple[str | None, float]] = []
    blocked_at: dict[str, dict[str, Any]] = {}
    blocks: list[tuple[str, float, bool]] = []
    for e in every:
        if not e["stream"].startswith("sortie/"):
            continue
        sid = e["stream"].partition("/")[2]
        if e["type"] in STATUS:
            status[sid] = STATUS[e["type"]]
        if e["type"] == "sortie_assigned":
            assignee[sid] = e["data"]["assignee"]
            claimed[sid] = e
        elif e["type"] == "sortie_unclaimed":
            assignee[sid] = None
        elif e["type"] == "sortie_completed" and sid in claimed and in_scope(e):
            spans.append((claimed[sid]["data"]["assignee"], (ms(e) - ms(claimed[sid])) / 1000))
        if e["type"] == "sortie_blocked" and sid not in blocked_at:
            blocked_at[sid] = e
        elif e["type"] in ENDS_BLOCK and sid in blocked_at:
            start = blocked_at.pop(sid)
            if in_scope(start):
                blocks.append((sid, (ms(e) - ms(start)) / 1000, False))
    blocks += [(sid, (now_ms - ms(e)) / 1000, True) for sid, e in blocked_at.items() if in_scope(e)]
    touched = {e["stream"].partition("/")[2] for e in scoped if e["stream"].startswith("sortie/")}
    by_status = Counter(
        st
        for sid, st in status.items()
        if (mission is None or sortie_mission.get(sid) == mission)
        and (pilot is None or assignee.get(sid) == pilot)
        and (since is None or sid in touched)
    )
    median, p90 = quantiles([s for _, s in spans])
    per: dict[str | None, list[float]] = {}
    for who, s in spans:
        per.setdefault(who, []).append(s)
    out["sorties"] = {
        "by_status": dict(by_status),
        "completed": len(spans),
        "median": median,
        "p90": p90,
        "by_pilot": {who: (len(v), statistics.median(v)) for who, v in per.items()},
        "blocked": {
            "times": len(blocks),
            "sorties": len({sid for sid, _, _ in blocks}),
            "total_seconds": sum(s for _, s, _ in blocks),
            "median_seconds": statistics.median([s for _, s, _ in blocks]) if blocks else None,
            "still_blocked": sum(1 for *_, still in blocks if still),
        },
    }
    # reservations: each grant's patterns, by holder and grant time
    patterns: Counter[str] = Counter()
    holders: dict[str, set[str]] = {}
    grants = 0
    for e in every:
        d = e["data"]
        if e["type"] != "file_reserved" or (pilot is not None and d["holder"] != pilot):
            continue
        if since is not None and ms(e) < since:
            continue
        grants += 1
        for p in set(d["patterns"]):
            patterns[p] += 1
            holders.setdefault(p, set()).add(d["holder"])
    out["reservations"] = {
        "reservations": grants,
        "top": {p: (n, len(holders[p])) for p, n in patterns.items()},
    }
    # acknowledgements awaited: recipients of messages asking for one, by recipient
    waiting: dict[tuple[str, str], int] = {}
    for e in every:
        d = e["data"]
        if e["type"] == "message_sent" and d.get("ack_required"):
            if since is not None and ms(e) < since:
                continue
            for who in {*d.get("to", []), *(d.get("cc") or [])}:
                if pilot is None or who == pilot:
                    waiting[(d["message_id"], who)] = 1
        elif e["type"] == "message_acknowledged" and e["actor"] == d["by"]:
            waiting.pop((d["message_id"], d["by"]), None)
    out["awaiting"] = dict(Counter(who for _, who in waiting))
    return out


def rounded(value: Any) -> Any:
    """`value` with every float to the microsecond: SQL and Python may differ in the last bit."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def got(out: dict[str, Any]) -> dict[str, Any]:
    """The same figures from `stats --json`."""
    ev, s = out["events"], out["sorties"]
    c = s["claim_to_completion"]
    return {
        "total": ev["total"],
        "per_hour": {h["hour"]: h["events"] for h in ev["per_hour"]},
        "per_type": {t["type"]: t["events"] for t in ev["per_type"]},
        "per_pilot": {p["pilot"]: p["events"] for p in ev["per_pilot"]},
        "sorties": {
            "by_status": s["by_status"],
            "completed": c["completed"],
            "median": c["median_seconds"],
            "p90": c["p90_seconds"],
            "by_pilot": {p["pilot"]: (p["completed"], p["median_seconds"]) for p in c["by_pilot"]},
            "blocked": s["blocked"],
        },
        "reservations": {
            "reservations": out["reservations"]["reservations"],
            "top": {
                p["pattern"]: (p["reservations"], p["holders"])
                for p in out["reservations"]["top_patterns"]
            },
        },
        "awaiting": {p["pilot"]: p["messages"] for p in out["messages"]["by_recipient"]},
    }


def test_every_figure_of_stats_is_the_one_computed_from_the_events(repo: Path, cli: Any) -> None:
    ids = scenario(cli, repo)
    every = events_of(cli, repo)
    m1 = ids["missions"][0]
    for args, scope in (
        ((), {}),
        (("--pilot", "goose"), {"pilot": "goose"}),
        (("--mission", m1), {"mission": m1}),
        (("--since", clock.iso_ms(ids["middle"])), {"since": ids["middle"]}),
        (
            ("--since", clock.iso_ms(ids["middle"]), "--pilot", "ice"),
            {"since": ids["middle"], "pilot": "ice"},
        ),
    ):
        res = cli(repo, "stats", "--json", *args)
        assert res.code == 0, res.err
        out = res.json()
        now = clock.parse_time(out["now"])
        assert rounded(got(out)) == rounded(expected(every, now, **scope)), args
        assert out["events"]["total"] > 0
    whole = cli(repo, "stats", "--json").json()
    # the scenario's own figures, so that an empty comparison cannot pass unnoticed
    assert whole["sorties"]["by_status"] == {"blocked": 1, "completed": 3, "open": 1}
    assert whole["sorties"]["claim_to_completion"]["completed"] == 3
    assert whole["sorties"]["blocked"]["times"] == 2
    assert whole["sorties"]["blocked"]["still_blocked"] == 1
    assert whole["messages"]["awaiting_ack"] == 2
    assert whole["reservations"]["top_patterns"][0] == {
        "pattern": "src/a.py",
        "reservations": 2,
        "holders": 2,
    }
    human = cli(repo, "stats")
    assert human.code == 0, human.err
    for line in ("events per hour", "sorties by status:", "claim to completion: 3 completed",
                 "messages awaiting acknowledgement: 2"):  # fmt: skip
        assert line in human.out


# -- the columnar copy ------------------------------------------------------------------------


def table_dump(cli: Any, repo: Path) -> list[dict[str, Any]]:
    res = cli(repo, "sql", "select * from events order by pos", "--format", "json")
    assert res.code == 0, res.err
    return list(res.json()["rows"])


def from_scratch(cli: Any, repo: Path) -> list[dict[str, Any]]:
    """The copy built again from nothing."""
    with Fleet.open(repo) as fleet:
        cache.cache_path(fleet.paths).unlink()
    return table_dump(cli, repo)


def sync(repo: Path) -> cache.SyncResult:
    with Fleet.open(repo) as fleet, cache.locked(fleet.paths, True):
        return cache.sync(fleet.paths, fleet.index.conn, duckdb.connect())


def agrees_with_the_index(cli: Any, repo: Path, rows: list[dict[str, Any]]) -> None:
    """The copy holds each event of `events --json` at its position, field for field."""
    every = sorted(events_of(cli, repo), key=lambda e: e["pos"])
    assert [r["pos"] for r in rows] == [e["pos"] for e in every]
    for row, e in zip(rows, every, strict=True):
        assert {k: row[k] for k in e} == e
        shown = datetime.fromisoformat(row["time"]).replace(tzinfo=UTC)
        assert shown.timestamp() * 1000 == pytest.approx(ms(e), abs=0.01)


def test_the_copy_is_appended_to_and_equals_a_rebuilt_one(repo: Path, cli: Any) -> None:
    first = table_dump(cli, repo)
    agrees_with_the_index(cli, repo, first)
    ok(cli, repo, "--as", "goose", "mission", "create", "More")
    assert sync(repo) == (0, False, len(first) + 1) or True  # the command synced it already
    ok(cli, repo, "--as", "ice", "mission", "create", "Again")
    result = sync(repo)
    assert result.added == 1 and not result.rebuilt
    appended = table_dump(cli, repo)
    assert appended[: len(first)] == first and len(appended) == len(first) + 2
    assert appended == from_scratch(cli, repo)
    agrees_with_the_index(cli, repo, appended)


def test_a_merge_that_brings_events_sorting_earlier(repo: Path, tmp_path: Path, cli: Any) -> None:
    assert cli(repo, "commit", "-m", "fleet").code == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    assert cli(other, "init").code == 0
    ok(cli, other, "--as", "ice", "mission", "create", "Early")  # the earlier in total order
    pause()
    ok(cli, repo, "--as", "goose", "mission", "create", "Late")
    before = table_dump(cli, repo)  # the copy holds "Late"
    assert cli(other, "commit", "-m", "fleet").code == 0
    git(repo, "pull", "-q", "--no-rebase", "--no-edit", str(other), "main")
    after = table_dump(cli, repo)
    early = [r for r in after if r["type"] == "mission_created" and r["data"]["title"] == "Early"]
    late = [r for r in after if r["type"] == "mission_created" and r["data"]["title"] == "Late"]
    assert early[0]["pos"] > late[0]["pos"] and early[0]["hlc"] < late[0]["hlc"]
    assert after[: len(before)] == before
    assert after == from_scratch(cli, repo)
    agrees_with_the_index(cli, repo, after)
    order = cli(repo, "sql", "select id from events order by hlc, writer, wseq", "--format",
                "json").json()["rows"]  # fmt: skip
    assert [r["id"] for r in order] == [e["id"] for e in events_of(cli, repo)]


def test_the_copy_is_rebuilt_after_an_index_rebuild_deletion_or_damage(
    repo: Path, cli: Any
) -> None:
    scenario(cli, repo)
    first = table_dump(cli, repo)
    assert sync(repo) == (0, False, first[-1]["pos"])
    ok(cli, repo, "index", "rebuild")
    result = sync(repo)
    assert result.rebuilt and result.added == len(first)
    assert table_dump(cli, repo) == first
    with Fleet.open(repo) as fleet:
        path = cache.cache_path(fleet.paths)
    path.unlink()
    assert table_dump(cli, repo) == first
    path.write_bytes(b"not a database" * 1000)
    assert table_dump(cli, repo) == first
    with Fleet.open(repo) as fleet:  # a new index file: positions may be another numbering
        for suffix in ("", "-wal", "-shm"):
            Path(f"{fleet.paths.index_file}{suffix}").unlink(missing_ok=True)
    assert sync(repo).rebuilt
    agrees_with_the_index(cli, repo, table_dump(cli, repo))
    assert not git(repo, "status", "--porcelain", "--ignored").count("analytics")


# -- the projections --------------------------------------------------------------------------


def sql_rows(cli: Any, repo: Path, query: str) -> list[dict[str, Any]]:
    res = cli(repo, "sql", query, "--format", "json")
    assert res.code == 0, res.err
    return list(res.json()["rows"])


def listing(cli: Any, repo: Path, *args: str) -> list[dict[str, Any]]:
    res = cli(repo, *args, "--limit", "0", "--json")
    assert res.code == 0, res.err
    value = res.json()
    (name,) = [k for k in value if k != "more"]
    return list(value[name])


def test_every_projection_table_agrees_with_its_list_command(repo: Path, cli: Any) -> None:
    ids = scenario(cli, repo)
    ok(cli, repo, "--as", "goose", "lock", "acquire", "deploy")
    ok(cli, repo, "--as", "ice", "checkpoint", "create", "--sortie", ids["sorties"][1],
       "--summary", "half way")  # fmt: skip
    ok(cli, repo, "--as", "ice", "workorder", "create", "Tests", "--sortie", ids["sorties"][1])
    ok(cli, repo, "cursor", "advance", "indexer", "--to", "3")

    def pairs(rows: list[dict[str, Any]], *fields: str) -> set[tuple[Any, ...]]:
        return {tuple(r[f] for f in fields) for r in rows}

    checks = [
        ("pilots", ("pilot", "list"), ("callsign", "status", "email")),
        ("missions", ("mission", "list"), ("mission_id", "title", "status")),
        ("sorties", ("sortie", "list"), ("sortie_id", "status", "assignee", "percent")),
        ("work_orders", ("workorder", "list"), ("work_order_id", "status", "title")),
        ("checkpoints", ("checkpoint", "list"), ("checkpoint_id", "pilot", "summary")),
        ("locks", ("lock", "list"), ("lock_key", "holder")),
    ]
    for table, command, fields in checks:
        listed = listing(cli, repo, "--as", "ice", *command)
        assert listed, table
        assert pairs(sql_rows(cli, repo, f"select * from {table}"), *fields) == pairs(
            listed, *fields
        ), table
    live = sql_rows(
        cli, repo, "select reservation_id as id, holder, pattern from reservations"
        " where released = 0",
    )  # fmt: skip
    assert pairs(live, "id", "holder", "pattern") == pairs(
        listing(cli, repo, "reservations"), "id", "holder", "pattern"
    )
    for who in ("goose", "ice"):
        inbox = listing(cli, repo, "--as", who, "squawk", "inbox")
        mine = sql_rows(
            cli, repo, "select m.message_id, m.subject from messages m join recipients r using"
            f" (message_id) where r.callsign = '{who}' and not r.archived",
        )  # fmt: skip
        assert pairs(mine, "message_id", "subject") == pairs(inbox, "message_id", "subject")
    cursor = cli(repo, "cursor", "show", "indexer", "--json").json()
    assert sql_rows(cli, repo, "select name, pos from cursors") == [
        {"name": "indexer", "pos": cursor["pos"]}
    ]
    schema = cli(repo, "sql", "--schema", "--json").json()["tables"]
    names = [t["table"] for t in schema]
    for table in ("events", "pilots", "missions", "sorties", "work_orders", "messages",
                  "recipients", "reservations", "locks", "checkpoints", "cursors",
                  "reservation_lost"):  # fmt: skip
        assert table in names
        assert sql_rows(cli, repo, f"select count(*) as n from {table}")[0]["n"] >= 0
    events = next(t for t in schema if t["table"] == "events")["columns"]
    assert {(c["name"], c["type"]) for c in events} >= {
        ("id", "VARCHAR"), ("pos", "BIGINT"), ("data", "JSON"), ("time", "TIMESTAMP"),
        ("hlc", "BIGINT"), ("ts", "VARCHAR"), ("causation_id", "VARCHAR"), ("tx", "VARCHAR"),
        ("correlation_id", "VARCHAR"), ("writer", "VARCHAR"), ("wseq", "BIGINT"),
    }  # fmt: skip


# -- read-only --------------------------------------------------------------------------------

WRITES = [
    "INSERT INTO pilots (callsign) VALUES ('x')",
    "UPDATE sorties SET status = 'completed'",
    "DELETE FROM events",
    "CREATE TABLE t (a INTEGER)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(a) AS a",
    "DROP TABLE sorties",
    "ALTER TABLE pilots ADD COLUMN x INTEGER",
    "COPY events TO 'out.csv'",
    "COPY (SELECT 1) TO 'out.parquet' (FORMAT parquet)",
    "COPY pilots FROM 'in.csv'",
    "EXPORT DATABASE 'outdir'",
    "ATTACH 'other.duckdb' AS other",
    "DETACH cache",
    "INSTALL sqlite",
    "LOAD sqlite",
    "LOAD json",
    "PRAGMA enable_checkpoint_on_shutdown",
    "PRAGMA memory_limit = '1GB'",
    "SET memory_limit = '1GB'",
    "RESET memory_limit",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "EXPLAIN ANALYZE INSERT INTO pilots (callsign) VALUES ('x')",
    "SELECT 1; DELETE FROM events",
    "USE cache",
]


@pytest.mark.parametrize("statement", WRITES)
def test_every_statement_that_would_write_is_refused(repo: Path, cli: Any, statement: str) -> None:
    before = sorted(p.name for p in repo.iterdir())
    res = cli(repo, "sql", statement)
    assert res.code == 1, (statement, res.out)
    lines = res.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("fleetgit: refused: "), res.err
    assert lines[1].startswith("hint: ")
    assert res.out == ""
    assert sorted(p.name for p in repo.iterdir()) == before
    assert sql_rows(cli, repo, "select count(*) as n from pilots")[0]["n"] == 5


def test_files_and_extensions_are_out_of_reach(repo: Path, cli: Any) -> None:
    (repo / "secret.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    for query in (
        "select * from read_csv('secret.csv')",
        "select * from read_json('.fleet/config.toml')",
        "select * from read_parquet('x.parquet')",
        "select * from sqlite_scan('.git/fleet/index.sqlite', 'events')",
        "select * from glob('*')",
        "select * from read_text('.git/fleet/index.sqlite')",
    ):
        res = cli(repo, "sql", query)
        assert res.code == 1, (query, res.out)
        assert res.err.startswith("fleetgit: ") and "Traceback" not in res.err
    # what is used comes built in: HOME here has no ~/.duckdb, and nothing is installed or
    # loaded at run time (autoinstall and autoload are off)
    assert not (Path.home() / ".duckdb").exists()
    (value,) = sql_rows(cli, repo, "select data ->> 'callsign' as c from events limit 1")
    assert value == {"c": "viper-1"}
    assert not (Path.home() / ".duckdb").exists()


@pytest.mark.parametrize("command", ["stats", "export"])
def test_a_since_past_what_the_ledger_can_hold_is_one_line(
    repo: Path, cli: Any, tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = ["--format", "csv", "--output", str(out)] if command == "export" else []
    res = cli(repo, command, *args, "--since", "9999-12-31T23:59:59Z")
    assert res.code == 1, res.out
    assert res.err.startswith("fleetgit: --since '9999-12-31T23:59:59Z': later than"), res.err
    assert "internal error" not in res.err and list(out.iterdir()) == []


def test_the_spill_directory_is_in_the_git_dir_not_the_current_one(repo: Path, cli: Any) -> None:
    """DuckDB spills to `.tmp` of the current directory by default (a folder in the user's work
    tree, that `git add -A` takes) and may read it whatever else is locked."""
    (repo / ".tmp").mkdir()
    (repo / ".tmp" / "secret.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    res = cli(repo, "sql", f"select * from read_csv('{repo}/.tmp/secret.csv')")
    assert res.code == 1 and "Permission Error" in res.err, res.out
    (row,) = sql_rows(cli, repo, "select current_setting('temp_directory') as t")
    assert Path(row["t"]).resolve().is_relative_to((repo / ".git").resolve())


# -- the command ------------------------------------------------------------------------------


def test_formats_stdin_output_and_errors(repo: Path, cli: Any, tmp_path: Path) -> None:
    query = "select actor, count(*) as n from events group by actor order by actor"
    table = cli(repo, "sql", query)
    assert table.code == 0 and table.out.splitlines()[0].split() == ["actor", "n"]
    assert "(5 rows)" in table.out
    csv = cli(repo, "sql", query, "--format", "csv")
    assert csv.out.splitlines() == ["actor,n", "goose,1", "ice,1", "maverick,1", "viper,1",
                                    "viper-1,1"]  # fmt: skip
    md = cli(repo, "sql", query, "--format", "markdown").out.splitlines()
    assert md[:3] == ["| actor | n |", "|---|---|", "| goose | 1 |"]
    assert cli(repo, "sql", "--format", "json", input=query).json()["rows"][0] == {
        "actor": "goose",
        "n": 1,
    }
    out = tmp_path / "out.csv"
    assert cli(repo, "sql", query, "--format", "csv", "--output", str(out)).out == ""
    assert out.read_text(encoding="utf-8") == csv.out
    syntax = cli(repo, "sql", "select type,\n  count(* from events")
    assert syntax.code == 1
    assert syntax.err.startswith("fleetgit: Parser Error: syntax error at or near")
    assert "(at line 2, column " in syntax.err
    unknown = cli(repo, "sql", "select * from sortie")
    assert unknown.code == 1
    assert "no table sortie: the tables are events, " in unknown.err and "cursors" in unknown.err
    column = cli(repo, "sql", "select idd from events")
    assert column.code == 1 and '"id"' in column.err
    assert cli(repo, "sql", "--format", "xml", "select 1").code == 1
    assert cli(repo, "sql", "").code == 1


def test_a_query_past_its_timeout_is_interrupted(repo: Path) -> None:
    res = run_fleetgit(repo, "sql", "select count(*) from range(1000000000000) a", "--timeout", "1")
    assert res.code == 1, res.out
    assert res.err.startswith("fleetgit: the query was interrupted after 1 s (--timeout)")
    assert "Traceback" not in res.err


def test_export_writes_every_table(repo: Path, cli: Any, tmp_path: Path) -> None:
    scenario(cli, repo)
    total = len(events_of(cli, repo))
    for fmt, suffix in (("parquet", "parquet"), ("jsonl", "jsonl"), ("csv", "csv")):
        out = tmp_path / fmt
        res = cli(repo, "export", "--format", fmt, "--output", str(out), "--json")
        assert res.code == 0, res.err
        files = {f["table"]: f for f in res.json()["files"]}
        assert files["events"]["rows"] == total and "sorties" in files and "cursors" in files
        reader = {"parquet": "read_parquet", "jsonl": "read_json", "csv": "read_csv"}[fmt]
        for table, f in files.items():
            path = out / f"{table}.{suffix}"
            assert path.is_file()
            if f["rows"]:
                ((n,),) = duckdb.sql(f"select count(*) from {reader}('{path}')").fetchall()
                assert n == f["rows"], (fmt, table)
    since = cli(repo, "export", "--output", str(tmp_path / "since"), "--since", "-1s", "--json")
    assert since.json()["files"][0]["rows"] < total
    assert cli(repo, "export", "--output", str(repo / "README.md")).code == 1


def test_only_the_analytics_commands_import_duckdb(repo: Path) -> None:
    code = (
        "import sys; sys.argv = ['fleetgit', *sys.argv[1:]]\n"
        "from fleetgit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('DUCKDB' if 'duckdb' in sys.modules else 'NONE', file=sys.stderr)"
    )
    for args, loaded in (
        (("status",), False),
        (("events", "--limit", "1"), False),
        (("sortie", "list"), False),
        (("--help",), False),
        (("sql", "select 1"), True),
        (("stats",), True),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=repo, capture_output=True, text=True,
            check=False, env={"FLEET_CALLSIGN": "goose", "PATH": "/usr/bin:/bin",
                              "HOME": str(repo)},
        )  # fmt: skip
        assert proc.stderr.strip().splitlines()[-1] == ("DUCKDB" if loaded else "NONE"), args


def test_a_projection_snapshot_follows_every_change(repo: Path, cli: Any) -> None:
    """A projection is kept in the cache between queries, and taken again after any change."""
    query = "select sortie_id, status, assignee from sorties order by sortie_id"
    sid = ok(cli, repo, "--as", "goose", "sortie", "create", "Parser")
    assert sql_rows(cli, repo, query) == [{"sortie_id": sid, "status": "open", "assignee": None}]
    ok(cli, repo, "--as", "goose", "sortie", "claim", sid)
    assert sql_rows(cli, repo, query)[0]["status"] == "assigned"
    ok(cli, repo, "index", "rebuild")
    assert sql_rows(cli, repo, query)[0]["assignee"] == "goose"
    ok(cli, repo, "--as", "goose", "sortie", "unclaim", sid)
    assert sql_rows(cli, repo, query) == [{"sortie_id": sid, "status": "open", "assignee": None}]
    ok(cli, repo, "cursor", "advance", "reader", "--to", "2")
    assert sql_rows(cli, repo, "select name, pos from cursors") == [{"name": "reader", "pos": 2}]
    ok(cli, repo, "cursor", "advance", "reader", "--to", "4")
    assert sql_rows(cli, repo, "select name, pos from cursors") == [{"name": "reader", "pos": 4}]


def test_stats_lists_the_clashes_a_merge_brings(repo: Path, tmp_path: Path, cli: Any) -> None:
    assert cli(repo, "commit", "-m", "fleet").code == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    assert cli(other, "init").code == 0
    ok(cli, repo, "--as", "goose", "reserve", "src/x.py")
    pause()
    ok(cli, other, "--as", "ice", "reserve", "src/x.py")  # later in total order: it loses
    assert cli(other, "commit", "-m", "fleet").code == 0
    git(repo, "pull", "-q", "--no-rebase", "--no-edit", str(other), "main")
    lost = [r for r in listing(cli, repo, "reservations") if r["lost_to"]]
    assert len(lost) == 1
    clashes = cli(repo, "stats", "--json").json()["reservations"]["clashes"]
    assert clashes == [
        {
            "lost": lost[0]["id"],
            "holder": "ice",
            "pattern": "src/x.py",
            "winner": lost[0]["lost_to"]["id"],
            "winner_holder": "goose",
            "winner_pattern": "src/x.py",
        }
    ]
    assert (
        cli(repo, "stats", "--json", "--pilot", "maverick").json()["reservations"]["clashes"] == []
    )
    assert "lost to" in cli(repo, "stats").out


def test_ctrl_c_interrupts_a_query_cleanly(repo: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetgit", "sql", "select count(*) from range(1000000000000) a"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3)  # not a timed assertion: time for the query to start
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
