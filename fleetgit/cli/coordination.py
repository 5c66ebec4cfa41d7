"""Work order, lock and cursor commands."""

from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    AsOf,
    JsonOpt,
    Limit,
    Rev,
    add_group,
    boundary,
    choice_argument,
    choice_option,
    int_option,
    open_fleet,
    page,
    print_json,
    print_page,
    table,
)
from fleetgit.cli.render import detail
from fleetgit.domain.cursors import commands as cursors
from fleetgit.domain.locks import commands as locks
from fleetgit.domain.missions.events import PRIORITIES
from fleetgit.domain.workorders import commands as workorders
from fleetgit.domain.workorders.fold import STATUSES
from fleetgit.fleet import Fleet
from fleetgit.ledger.durations import format_duration


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "workorder",
        "Work orders: small tasks under a sortie.\n\n"
        "Example: fleetgit --as viper-1 workorder create 'Write tests' --sortie srt-4q2x",
        [
            ("create", wo_create),
            ("list", wo_list),
            ("show", wo_show),
            ("assign", wo_assign),
            ("status", wo_status),
            ("complete", wo_complete),
        ],
    )
    add_group(
        app,
        "lock",
        "Named locks with a TTL.\n\n"
        "Example: fleetgit --as goose lock acquire db-migrations --ttl 10m",
        [("acquire", lock_acquire), ("release", lock_release), ("list", lock_list)],
    )
    add_group(
        app,
        "cursor",
        "Consumer cursors: positions of this clone, kept in its index (no --as-of: a cursor is"
        " local state, not a projection of events).\n\nExample: fleetgit cursor show indexer",
        [("show", cursor_show), ("advance", cursor_advance), ("reset", cursor_reset)],
    )


def _wo_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no work orders"
    return table(
        [
            (r["work_order_id"], r["sortie_id"], r["status"], r["assignee"] or "-", r["title"])
            for r in rows
        ],
        ["ID", "SORTIE", "STATUS", "ASSIGNEE", "TITLE"],
    )


@boundary
def wo_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(metavar="TITLE")],
    sortie: Annotated[str, typer.Option("--sortie", metavar="ID")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    priority: Annotated[
        str, choice_option("--priority", choices=PRIORITIES, metavar="PRIORITY")
    ] = "medium",
    as_json: JsonOpt = False,
) -> None:
    """Create a work order under a sortie; prints its id.

    Example: fleetgit --as viper-1 workorder create "Write lexer tests" --sortie srt-4q2x
    """
    with open_fleet(ctx) as fleet:
        wid = workorders.create(
            fleet, title, sortie=sortie, description=description, priority=priority
        )
        out = workorders.show(fleet, wid)
    print_json(out) if as_json else typer.echo(wid)


@boundary
def wo_list(
    ctx: typer.Context,
    sortie: Annotated[str | None, typer.Option("--sortie", metavar="ID")] = None,
    status: Annotated[
        str | None, choice_option("--status", choices=STATUSES, metavar="STATUS")
    ] = None,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List work orders, oldest first.

    Example: fleetgit workorder list --sortie srt-4q2x --status open
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(workorders.listing(fleet, sortie=sortie, status=status), limit)
    print_page("work_orders", rows, more, as_json, _wo_rows(rows))


@boundary
def wo_show(
    ctx: typer.Context,
    work_order: Annotated[str, typer.Argument(metavar="ID")],
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a work order.

    Example: fleetgit workorder show wo-8d2k
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = workorders.show(fleet, work_order)
    print_json(out) if as_json else typer.echo(detail(out))


def _wo_out(fleet: Fleet, wid: str, as_json: bool) -> None:
    out = workorders.show(fleet, wid)
    print_json(out) if as_json else typer.echo(f"work order {wid}: {out['status']}")


@boundary
def wo_assign(
    ctx: typer.Context,
    work_order: Annotated[str, typer.Argument(metavar="ID")],
    callsign: Annotated[str, typer.Argument(metavar="CALLSIGN")],
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Assign to a callsign not in the fleet (unregistered or deregistered).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Assign a work order to a pilot of the fleet; it becomes assigned.

    Refused when it already has that assignee, or is completed or cancelled.

    Example: fleetgit --as viper-1 workorder assign wo-8d2k goose
    """
    with open_fleet(ctx) as fleet:
        wid = workorders.assign(fleet, work_order, callsign, allow_unknown=allow_unknown)
        _wo_out(fleet, wid, as_json)


@boundary
def wo_status(
    ctx: typer.Context,
    work_order: Annotated[str, typer.Argument(metavar="ID")],
    status: Annotated[
        str,
        choice_argument(choices=STATUSES, metavar="STATUS"),
    ],
    note: Annotated[str | None, typer.Option("--note")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a work order's status.

    open means nobody holds it: setting it open clears the assignee. assigned, in_progress and
    blocked need an assignee (give one with `workorder assign`). Setting the status it already
    has is refused (nothing would change); completed and cancelled are final.

    Example: fleetgit --as goose workorder status wo-8d2k in_progress --note "half done"
    """
    with open_fleet(ctx) as fleet:
        _wo_out(fleet, workorders.set_status(fleet, work_order, status, note=note), as_json)


@boundary
def wo_complete(
    ctx: typer.Context,
    work_order: Annotated[str, typer.Argument(metavar="ID")],
    summary: Annotated[str | None, typer.Option("--summary")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Complete a work order.

    Example: fleetgit --as goose workorder complete wo-8d2k --summary "12 tests"
    """
    with open_fleet(ctx) as fleet:
        _wo_out(fleet, workorders.complete(fleet, work_order, summary=summary), as_json)


@boundary
def lock_acquire(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="KEY")],
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="How long it is held (default 5m).")
    ] = None,
    wait: Annotated[
        str | None, typer.Option("--wait", help="Retry until this long has passed.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a named lock (exit 1 if another pilot holds it past --wait).

    Taking a lock you hold again extends it to --ttl from now; it never shortens it.

    Example: fleetgit --as viper-1 lock acquire db-migrations --ttl 10m --wait 30s
    """
    with open_fleet(ctx) as fleet:
        out = locks.acquire(fleet, key, ttl=ttl, wait=wait)
    print_json(out) if as_json else typer.echo(
        f"lock {key} is yours for {format_duration(out['seconds_left'])}"
    )


@boundary
def lock_release(
    ctx: typer.Context, key: Annotated[str, typer.Argument(metavar="KEY")], as_json: JsonOpt = False
) -> None:
    """Release a lock you hold.

    Example: fleetgit --as viper-1 lock release db-migrations
    """
    with open_fleet(ctx) as fleet:
        out = locks.release(fleet, key)
    print_json(out) if as_json else typer.echo(f"released lock {key}")


@boundary
def lock_list(
    ctx: typer.Context,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List held locks (with --as-of, those held at that position's time).

    Example: fleetgit lock list --as-of 42
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(locks.listing(fleet), limit)
    human = (
        table(
            [(r["lock_key"], r["holder"], format_duration(r["seconds_left"])) for r in rows],
            ["KEY", "HOLDER", "LEFT"],
        )
        if rows
        else "no locks held"
    )
    print_page("locks", rows, more, as_json, human)


@boundary
def cursor_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    as_json: JsonOpt = False,
) -> None:
    """Show a consumer cursor and how many events wait after it.

    A cursor is this clone's own state, kept in its index, not a projection of events: nothing
    records where it was before, so there is no --as-of.

    Example: fleetgit cursor show indexer
    """
    with open_fleet(ctx) as fleet:
        out = cursors.show(fleet, name)
    print_json(out) if as_json else typer.echo(
        f"{name}: pos {out['pos']}, {out['pending']} pending"
    )


@boundary
def cursor_advance(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    to: Annotated[int, int_option("--to", metavar="POS")],
    as_json: JsonOpt = False,
) -> None:
    """Move a cursor to a position.

    Example: fleetgit cursor advance indexer --to 120
    """
    with open_fleet(ctx) as fleet:
        out = cursors.advance(fleet, name, to)
    print_json(out) if as_json else typer.echo(
        f"{name}: pos {out['pos']}, {out['pending']} pending"
    )


@boundary
def cursor_reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    as_json: JsonOpt = False,
) -> None:
    """Reset a cursor to the start.

    Example: fleetgit cursor reset indexer
    """
    with open_fleet(ctx) as fleet:
        out = cursors.reset(fleet, name)
    print_json(out) if as_json else typer.echo(f"{name}: pos 0, {out['pending']} pending")
