"""Core ledger commands: init, emit, events, show, stream, commit, verify, schema, index."""

import sys
from typing import Annotated, Any

import orjson
import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    JsonOpt,
    Limit,
    Rev,
    Since,
    add_group,
    boundary,
    globals_of,
    int_option,
    note,
    note_unknown_callsign,
    open_fleet,
    page,
    print_json,
    print_page,
    table,
    time_option,
)
from fleetgit.domain import catalogue
from fleetgit.fleet import Fleet
from fleetgit.fleet import init as fleet_init
from fleetgit.git.paths import locate
from fleetgit.index.reads import EventFilter
from fleetgit.ledger.codec import Event
from fleetgit.ledger.errors import UsageError, ValidationError


def _event_rows(fleet: Fleet, events: list[Event]) -> str:
    """A table of events, with ids short enough to read and long enough for `fleetgit show`."""
    ids = fleet.short_ids([e.id for e in events])
    rows = [
        (short, e.pos, e.ts[:19].replace("T", " "), e.type, e.stream, e.seq, e.actor or "-")
        for short, e in zip(ids, events, strict=True)
    ]
    return table(rows, ["ID", "POS", "TIME (UTC)", "TYPE", "STREAM", "SEQ", "ACTOR"])


def _event_detail(e: Event) -> str:
    lines = [f"{k:15} {'-' if v is None else v}" for k, v in e.to_json().items() if k != "data"]
    body = orjson.dumps(e.data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return "\n".join([*lines, "data:", body])


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("emit")(emit)
    app.command("events")(events)
    app.command("show")(show)
    app.command("stream")(stream)
    app.command("commit")(commit)
    app.command("verify")(verify)
    app.command("quarantine")(quarantine)
    app.command("schema")(schema)
    add_group(
        app,
        "index",
        "Inspect or rebuild the local SQLite index.\n\nExample: fleetgit index status --json",
        [("rebuild", index_rebuild), ("status", index_status)],
    )


@boundary
def init(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Set up fleetgit in this git repository (idempotent).

    Creates .fleet/config.toml, .fleet/events/, the .gitattributes line and the index.

    Example: fleetgit init
    """
    result = fleet_init(globals_of(ctx).directory)
    if as_json:
        print_json(result._asdict())
    elif result.created or result.updated:
        typer.echo(f"initialised fleetgit in {result.worktree}")
        for verb, items in (("created", result.created), ("updated", result.updated)):
            for item in items:
                typer.echo(f"  {verb} {item}")
    else:
        typer.echo(f"fleetgit is already initialised in {result.worktree}")
    if ".fleet/config.toml" not in result.created:  # a new fleet: `hooks install` comes next
        _note_hooks(globals_of(ctx).directory, as_json)


def _note_hooks(directory: str | None, as_json: bool) -> None:
    """A fleet whose hooks are not installed here (a clone: git does not clone them) commits
    without the reservation check: say so."""
    from fleetgit.guard import install as hooks

    (pre_commit,) = (s for s in hooks.status(locate(directory)) if s.name == "pre-commit")
    if pre_commit.state != "installed":
        note(
            "hooks_not_installed",
            f"git's pre-commit hook is {pre_commit.state} here: commits are not checked"
            " against reservations",
            "fleetgit hooks install",
            as_json,
        )


def _parse_data(text: str) -> Any:
    """The JSON of --data; the catalogue checks that it is an object that fits the type."""
    raw: str | bytes = sys.stdin.buffer.read() if text == "-" else text
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            f"--data: not valid JSON ({exc})", hint="""quote it: --data '{"title": "x"}'"""
        ) from None
    twice = _duplicate_key(raw)
    if twice is not None:  # orjson keeps the last one silently: which one was meant?
        raise ValidationError(
            f"--data: the key {orjson.dumps(twice).decode()} appears twice in one object",
            hint="give each key once",
        )
    return value


def _duplicate_key(raw: str | bytes) -> str | None:
    """A key that appears twice in one object of `raw` (valid JSON), if any."""
    import json

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys) and not found:
            found.append(next(k for i, k in enumerate(keys) if k in keys[:i]))
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None  # orjson read it: nested deeper than json goes, say; the catalogue decides
    return found[0] if found else None


@boundary
def emit(
    ctx: typer.Context,
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type (fleetgit schema).")
    ],
    stream: Annotated[str, typer.Option("--stream", help="Stream, e.g. mission/msn-1.")],
    data: Annotated[str, typer.Option("--data", help="JSON object; - reads stdin.")] = "{}",
    expect_version: Annotated[
        int | None, int_option("--expect-version", help="Refuse unless the stream is at N.")
    ] = None,
    causation_id: Annotated[
        str | None,
        typer.Option(
            "--causation-id",
            metavar="EVENT_ID",
            help="The event that caused this one: a full event id (UUID form, as `show` prints).",
        ),
    ] = None,
    correlation_id: Annotated[
        str | None,
        typer.Option(
            "--correlation-id",
            metavar="NAME",
            help="The job or conversation it belongs to: any name (letters, digits and . _ : @ -,"
            " at most 128), often the id of the event that started it.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Append one raw event to the ledger.

    Example: fleetgit emit mission_created --stream mission/msn-1
    --data '{"mission_id": "msn-1", "title": "Ship it"}' --expect-version 0
    """
    payload = _parse_data(data)
    with open_fleet(ctx) as fleet:
        event = fleet.emit(
            event_type,
            stream,
            payload,
            expect_version=expect_version,
            causation_id=causation_id,
            correlation_id=correlation_id,
        )
    if as_json:
        print_json(event.to_json())
    else:
        typer.echo(f"appended {event.type} to {event.stream} (seq {event.seq}, pos {event.pos})")
        typer.echo(f"id {event.id}")


@boundary
def events(
    ctx: typer.Context,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only this type (repeat).")
    ] = None,
    stream: Annotated[str | None, typer.Option("--stream")] = None,
    actor: Annotated[str | None, typer.Option("--actor")] = None,
    since: Since = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only events up to this time: an ISO time or -2h.")
    ] = None,
    after: Annotated[
        int | None,
        int_option(
            "--after",
            metavar="POS",
            help="Only positions after POS, listed by position (page on with the last one).",
        ),
    ] = None,
    limit: Limit = LIST_LIMIT,
    reverse: Annotated[bool, typer.Option("--reverse", help="Newest first.")] = False,
    consumer: Annotated[
        str | None,
        typer.Option("--consumer", metavar="NAME", help="What this cursor has not seen."),
    ] = None,
    advance: Annotated[
        bool,
        typer.Option(
            "--advance",
            help="With --consumer: move its cursor to the last position examined (past events"
            " the filters skipped too; with --limit, to the last one listed).",
        ),
    ] = False,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List events in total order (hlc, writer, wseq); after a position, or a consumer's unseen
    ones, by position.

    Example: fleetgit events --type mission_created --since -1h --limit 10
    """
    for t in types or []:
        catalogue.event_type(t)
    flt = EventFilter(
        types=tuple(types or ()),
        stream=stream,
        actor=actor,
        since_ms=time_option(since, "--since"),
        until_ms=time_option(until, "--until"),
        after_pos=after,
        limit=limit or None,
        reverse=reverse,
    )
    if advance and consumer is None:
        raise UsageError(
            "--advance moves a consumer's cursor: it needs --consumer NAME",
            hint="fleetgit events --consumer NAME --advance",
        )
    if consumer is not None and rev is not None:
        raise UsageError(
            "--consumer reads this clone's events by position; --rev one commit's: not both",
            hint="fleetgit events --rev REV",
        )
    with open_fleet(ctx, rev=rev) as fleet:
        if consumer is None:
            found = fleet.events(flt)
        else:
            from fleetgit.domain.cursors import commands as cursors

            found = cursors.consume(fleet, consumer, flt, advance=advance)
        note_unknown_callsign(fleet, "events --actor", actor, found, as_json)
        more = _more_events(fleet, flt, found, by_pos=consumer is not None)
        listing = _event_rows(fleet, found) if found and not as_json else ""
    empty = "no events" if consumer is None else f"nothing new for {consumer}"
    print_page("events", [e.to_json() for e in found], more, as_json, listing or empty)


def _more_events(fleet: Fleet, flt: EventFilter, found: list[Event], *, by_pos: bool) -> int:
    """How many more events match `flt` than the limit let through: in total order, all that
    match but those listed; for a consumer (by position), those after the last one listed."""
    if not flt.limit or len(found) < flt.limit:
        return 0
    from fleetgit.index.reads import where_clause

    if by_pos:
        where, params = where_clause(flt._replace(after_pos=found[-1].pos))
        where += " AND pos <= ?"
        params.append(fleet.index.max_pos())
    else:
        where, params = where_clause(flt)
    total = fleet.index.conn.execute("SELECT count(*) FROM events" + where, params).fetchone()[0]
    return int(total) - (0 if by_pos else len(found))


@boundary
def show(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id or a unique prefix.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one event.

    The ID column of `fleetgit events` is a prefix that works here; hyphens are optional.

    Example: fleetgit show 01a22d8942d2
    """
    with open_fleet(ctx) as fleet:
        event = fleet.show(event_id)
    typer.echo(_event_detail(event)) if not as_json else print_json(event.to_json())


@boundary
def stream(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="STREAM", help="e.g. mission/msn-1")],
    from_seq: Annotated[int | None, int_option("--from-seq", low=1, metavar="SEQ")] = None,
    to_seq: Annotated[int | None, int_option("--to-seq", low=1, metavar="SEQ")] = None,
    limit: Limit = LIST_LIMIT,
    as_json: JsonOpt = False,
) -> None:
    """Show the events of one stream by version.

    Example: fleetgit stream mission/msn-1 --from-seq 2
    """
    with open_fleet(ctx) as fleet:
        found, more = page(fleet.stream(name, from_seq=from_seq, to_seq=to_seq), limit)
        listing = _event_rows(fleet, found) if found and not as_json else ""
    empty = f"stream {name} has no events"
    print_page("events", [e.to_json() for e in found], more, as_json, listing or empty)


@boundary
def commit(
    ctx: typer.Context,
    message: Annotated[str | None, typer.Option("-m", "--message")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Commit the pending .fleet/ segments, and nothing else.

    Your staged changes and working tree are left exactly as they are.

    Example: fleetgit commit -m "fleet: plan for sprint 4"
    """
    with open_fleet(ctx) as fleet:
        result = fleet.commit(message)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        print_json(result._asdict())
    elif result.commit is None:
        typer.echo("nothing to commit in .fleet/")
    else:
        typer.echo(f"committed {len(result.paths)} file(s) as {result.commit[:12]}")


@boundary
def verify(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on forks the rules settled too.")
    ] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also prove the index by replay: rebuild a copy from the segments and compare"
            " every projection (catches the index up first).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every segment; exit 1 when anything is wrong. Changes nothing.

    Reports torn lines, incomplete batches, one id with different bytes, gaps in a writer's
    wseq, two events with one writer and wseq (a copied repository), schema violations
    (including versions this fleetgit cannot read), clock anomalies, backdated events, stream
    forks and sortie dependency cycles that clones closed between them; and, unless trust =
    "off", every event no valid signature of its pilot covers, checked again from the segments,
    and where the index disagrees with them. A fork that the domain's rules settle
    the same way in every clone (two claims of one sortie, two takes of one lock) is shown as
    settled and is not a failure, unless --strict.

    --deep rebuilds a copy of the index from the segments and compares the events, streams
    and every projection with the index (for one loaded from a snapshot, say).

    Example: fleetgit verify --strict --json
    """
    with open_fleet(ctx, catch_up=False, repair=False) as fleet:
        report = fleet.verify()
        if deep:
            from fleetgit.index.verify import Problem

            report.problems += [
                Problem("replay", "index", line, hint="fleetgit index rebuild")
                for line in fleet.verify_deep()
            ]
    if as_json:
        print_json(report.to_json(strict=strict))
    else:
        typer.echo(report.summary())
        for problem in report.problems:
            kind = f"{problem.kind} (settled)" if problem.settled else problem.kind
            typer.echo(f"  {kind:16} {problem.where}: {problem.detail}")
            if problem.hint:
                typer.echo(f"  {'':16} hint: {problem.hint}")
    if report.failed(strict=strict):
        raise typer.Exit(1)


@boundary
def quarantine(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the events no valid signature of their pilot covers, and why.

    Under trust = "require" they are kept out of every projection, the hooks and the checks;
    under "warn" they count and are listed here. Each is named by writer, segment and line.

    Example: fleetgit quarantine --json
    """
    from fleetgit.index.trust import quarantined

    with open_fleet(ctx) as fleet:
        rows = quarantined(fleet.index.conn, fleet.paths.worktree)
        policy = fleet.config.trust
    if as_json:
        print_json({"quarantine": rows, "more": 0, "trust": policy})
        return
    if not rows:
        typer.echo(f"nothing quarantined (trust = {policy})")
        return
    for q in rows:
        where = f"{q['writer']}/{q['segment']:08d}" + (
            f" line {q['line']}" if q["line"] else f" wseq {q['wseq']}"
        )
        state = "counted" if q["kept"] else "kept out"
        typer.echo(f"{where}: {q['type']} by {q['actor']} ({state}): {q['reason']}")


@boundary
def schema(
    event_type: Annotated[str | None, typer.Argument(metavar="[TYPE]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the JSON Schema of one event type, or list the whole catalogue.

    Example: fleetgit schema sortie_created --json
    """
    if event_type is not None or as_json:
        print_json(catalogue.json_schema(event_type))
        return
    rows = [
        (t.name, t.version, "|".join(t.stream_kinds), t.description)
        for t in catalogue.TYPES.values()
    ]
    typer.echo(table(rows, ["TYPE", "V", "STREAM", "DESCRIPTION"]))


@boundary
def index_rebuild(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Rebuild the index from the segments (a full replace; positions are kept).

    Example: fleetgit index rebuild
    """
    with open_fleet(ctx) as fleet:
        if not as_json and sys.stderr.isatty():
            with typer.progressbar(length=1, label="rebuilding", file=sys.stderr) as bar:

                def progress(stage: str, done: int, total: int) -> None:
                    bar.length = max(total, 1)
                    if bar.label != stage:  # a new stage starts its own count, shown at once
                        bar.label, bar.pos, bar.finished = stage, 0, False
                        bar.show_eta = total > 1  # a one-step stage has no time to foretell
                        bar.render_progress()
                    if done > bar.pos:
                        bar.update(done - bar.pos)

                result = fleet.rebuild(progress)
        else:
            result = fleet.rebuild()
        status = fleet.index_status()
    if as_json:
        print_json({"events": result.new_events, "status": status})
    else:
        typer.echo(
            f"rebuilt the index: {status['events']} events from {status['segments']} segments"
        )


@boundary
def index_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the index: events, segments, last position, schema version, staleness.

    Example: fleetgit index status --json
    """
    with open_fleet(ctx, catch_up=False) as fleet:
        status = fleet.index_status()
    if as_json:
        print_json(status)
    else:
        for key, value in status.items():
            typer.echo(f"{key:15} {value}")
