"""`fleetgit sql`, `stats` and `export`: the analytics commands (fleetgit.analytics, DuckDB).

The only commands that import duckdb: this module is loaded for them alone (cli/__init__.py).
"""

import csv
import io
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from fleetgit.cli.common import (
    JsonOpt,
    Since,
    boundary,
    choice_option,
    globals_of,
    int_option,
    open_fleet,
    print_json,
    table,
    time_option,
)
from fleetgit.ledger.errors import ValidationError

FORMATS = ("table", "json", "csv", "markdown")
EXPORT_FORMATS = ("parquet", "jsonl", "csv")
MAX_QUERY_BYTES = 1 << 20
DEFAULT_TIMEOUT = 60


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
    app.command("stats")(stats)
    app.command("export")(export)


@boundary
def sql(
    ctx: typer.Context,
    query: Annotated[
        str | None,
        typer.Argument(metavar="QUERY", help="The query; without it, read from stdin."),
    ] = None,
    fmt: Annotated[
        str, choice_option("--format", choices=FORMATS, help="How rows are written.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the rows to FILE."),
    ] = None,
    timeout: Annotated[
        int,
        int_option(
            "--timeout",
            low=1,
            high=86400,
            metavar="SECONDS",
            help=f"Interrupt the query after this long (default {DEFAULT_TIMEOUT}).",
        ),
    ] = DEFAULT_TIMEOUT,
    schema: Annotated[
        bool, typer.Option("--schema", help="List the tables and their columns.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a read-only SQL query (DuckDB) over the whole history and the projections.

    Tables: events (every envelope field, data as JSON, pos, and time: a TIMESTAMP) and every
    projection under its own name (pilots, missions, sorties, work_orders, messages, recipients,
    reservations, locks, checkpoints, cursors, ...): --schema lists them. Only queries run: a
    statement that writes, attaches, copies or loads is refused.

    Example: fleetgit sql "select type, count(*) from events group by 1 order by 2 desc"
    """
    if as_json:
        fmt = "json"
    if fmt not in FORMATS:
        raise ValidationError(
            f"--format {fmt!r}: not a format", hint=f"one of: {', '.join(FORMATS)}"
        )
    if query is None and not schema:
        query = sys.stdin.read(MAX_QUERY_BYTES + 1)
        if len(query.encode()) > MAX_QUERY_BYTES:
            raise ValidationError(
                "the query on stdin is over 1 MiB", hint="a query, not data: write it shorter"
            )
    elif query is not None and schema:
        raise ValidationError("--schema takes no query", hint="fleetgit sql --schema")
    from fleetgit.analytics import session as sessions

    with (
        open_fleet(ctx) as fleet,
        sessions.open_session(
            fleet.paths, fleet.index.conn, query=None if schema else query or ""
        ) as session,
    ):
        if schema:
            _print_schema(session.schema(), fmt)
            return
        result = session.run(query or "", timeout)
    text = _render(result.columns, result.types, result.rows, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ValidationError(
            f"--output {output}: {exc.strerror or exc}", hint="name a file you can write"
        ) from None


def _print_schema(tables: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print_json({"tables": tables, "more": 0})
        return
    rows = [(t["table"], c["name"], c["type"]) for t in tables for c in t["columns"]]
    sys.stdout.write(_render(["table", "column", "type"], ["VARCHAR"] * 3, rows, fmt))


def _plain(value: Any, kind: str) -> Any:
    """A value as JSON has it (a JSON column as the value it holds)."""
    if value is None:
        return None
    if kind == "JSON" and isinstance(value, str):
        return orjson.loads(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v, "") for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, "") for k, v in value.items()}
    if isinstance(value, int | float | str | bool):
        return value
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def _render(columns: list[str], types: list[str], rows: list[Any], fmt: str) -> str:
    if fmt == "json":
        items = [
            {c: _plain(v, k) for c, v, k in zip(columns, row, types, strict=True)} for row in rows
        ]
        from fleetgit.cli.common import json_text

        return json_text({"rows": items, "more": 0}, indent=True) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return buf.getvalue()
    cells = [[_cell(v) for v in row] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
        return "\n".join(lines) + "\n"
    count = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return (table(cells, columns) + "\n" if columns else "") + count + "\n"


@boundary
def stats(
    ctx: typer.Context,
    since: Since = None,
    pilot: Annotated[
        str | None, typer.Option("--pilot", metavar="CALLSIGN", help="Only this pilot.")
    ] = None,
    mission: Annotated[
        str | None, typer.Option("--mission", metavar="ID", help="Only this mission.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A summary of the fleet's history: activity, sorties, reservations, acknowledgements.

    Events per hour, per type and per pilot; sorties by status; the median and p90 time from
    claim to completion, per pilot too; time spent blocked; the most reserved patterns and the
    clashes; messages awaiting an acknowledgement. --since, --pilot and --mission narrow it.

    Example: fleetgit stats --since -24h
    """
    from fleetgit.analytics import session as sessions
    from fleetgit.analytics import stats as figures

    scope = figures.Scope(time_option(since, "--since"), pilot, mission)
    with (
        open_fleet(ctx) as fleet,
        sessions.open_session(fleet.paths, fleet.index.conn, figures.TABLES) as session,
    ):
        out = figures.gather(session, scope)
    if as_json or globals_of(ctx).json:
        print_json(out)
    else:
        typer.echo(_human(out))


def _seconds(value: float | None) -> str:
    from fleetgit.ledger.durations import format_duration

    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else format_duration(value)


def _human(out: dict[str, Any]) -> str:
    from fleetgit.analytics.stats import bar, sparkline

    ev = out["events"]
    scope = ", ".join(f"{k} {v}" for k, v in out["scope"].items() if v) or "the whole history"
    lines = [f"fleet stats: {scope} ({ev['total']} events)", ""]
    hours = ev["per_hour"][-24:]
    if hours:
        counts = _hourly(hours)
        lines.append(f"events per hour, last {len(counts)} h to {hours[-1]['hour']}:")
        lines.append(f"  {sparkline(counts)}  (max {max(counts)}/h)")
        lines.append("")

    def bars(title: str, items: list[tuple[str, float]], label: Any = str) -> None:
        lines.append(title)
        if not items:
            lines.append("  (none)")
        width = max((len(name) for name, _ in items), default=0)
        top = max((n for _, n in items), default=0)
        for name, n in items:
            lines.append(f"  {name:<{width}}  {bar(n, top):<25} {label(n)}")
        lines.append("")

    bars("events per type:", [(t["type"], t["events"]) for t in ev["per_type"][:12]])
    bars("events per pilot:", [(p["pilot"] or "-", p["events"]) for p in ev["per_pilot"][:12]])
    s = out["sorties"]
    bars("sorties by status:", list(s["by_status"].items()))
    c = s["claim_to_completion"]
    lines.append(
        f"claim to completion: {c['completed']} completed, median {_seconds(c['median_seconds'])},"
        f" p90 {_seconds(c['p90_seconds'])}"
    )
    bars(
        "  median per pilot:",
        [(p["pilot"] or "-", p["median_seconds"] or 0) for p in c["by_pilot"][:12]],
        _seconds,
    )
    b = s["blocked"]
    lines.append(
        f"blocked: {b['times']} time(s) on {b['sorties']} sortie(s), {_seconds(b['total_seconds'])}"
        f" in all, median {_seconds(b['median_seconds'])}; {b['still_blocked']} still blocked"
    )
    lines.append("")
    r = out["reservations"]
    bars(
        f"most reserved ({r['reservations']} reservations):",
        [(p["pattern"], p["reservations"]) for p in r["top_patterns"]],
    )
    lines.append(f"clashes (reservations void by a merge): {len(r['clashes'])}")
    for k in r["clashes"][:10]:
        lines.append(
            f"  {k['lost']} ({k['holder']}, {k['pattern']}) lost to {k['winner']}"
            f" ({k['winner_holder']}, {k['winner_pattern']})"
        )
    lines.append("")
    m = out["messages"]
    lines.append(f"messages awaiting acknowledgement: {m['awaiting_ack']}")
    for p in m["by_recipient"][:10]:
        lines.append(f"  {p['pilot']}: {p['messages']} (oldest {p['oldest']})")
    return "\n".join(lines).rstrip()


def _hourly(hours: list[dict[str, Any]]) -> list[int]:
    """Counts for every hour from the first to the last listed (hours without events: 0)."""
    parse = datetime.fromisoformat
    first, last = parse(hours[0]["hour"]), parse(hours[-1]["hour"])
    span = int((last - first).total_seconds() // 3600) + 1
    counts = [0] * span
    for h in hours:
        counts[int((parse(h["hour"]) - first).total_seconds() // 3600)] = h["events"]
    return counts[-24:]


@boundary
def export(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="The directory to write to.")
    ],
    fmt: Annotated[
        str, choice_option("--format", choices=EXPORT_FORMATS, help="The files' format.")
    ] = "parquet",
    since: Since = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the events and every projection table to DIR, one file each (TABLE.parquet, ...).

    Parquet is what DuckDB, Spark, BigQuery, pandas and the like read; JSONL and CSV for the
    rest. --since limits the events; the projections are the state now.

    Example: fleetgit export --format parquet --output /tmp/fleet
    """
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(
            f"--format {fmt!r}: not an export format", hint=f"one of: {', '.join(EXPORT_FORMATS)}"
        )
    if output.exists() and not output.is_dir():
        raise ValidationError(f"--output {output}: not a directory", hint="name a directory")
    since_ms = time_option(since, "--since")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"--output {output}: {exc.strerror or exc}", hint="name a directory you can write"
        ) from None
    from fleetgit.analytics import export as exporting
    from fleetgit.analytics import session as sessions

    with (
        open_fleet(ctx) as fleet,
        sessions.open_session(
            fleet.paths, fleet.index.conn, directories=[output.resolve()]
        ) as session,
    ):
        done = exporting.export(session, fmt, output, since_ms)
    if as_json:
        print_json({"files": [d._asdict() for d in done], "more": 0})
        return
    typer.echo(table([(d.table, d.rows, d.path) for d in done], ["TABLE", "ROWS", "FILE"]))
