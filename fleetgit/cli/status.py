"""`fleetgit status`: the one screen a person wants first, read through the Python API."""

from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    AsOf,
    JsonOpt,
    Rev,
    boundary,
    int_option,
    open_fleet,
    print_json,
    table,
)
from fleetgit.domain.overview import gather
from fleetgit.guard.patterns import shown
from fleetgit.ledger.durations import format_duration

STATUS_LIMIT = 10  # per section: one screen


def register(app: typer.Typer) -> None:
    app.command("status")(status)


@boundary
def status(
    ctx: typer.Context,
    limit: Annotated[
        int,
        int_option(
            "--limit", help=f"Show at most N of each section (default {STATUS_LIMIT}; 0: all)."
        ),
    ] = STATUS_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """One screen: me, the active pilots, claimed sorties, my reservations, ready sorties, my
    unread messages.

    Me: the acting pilot, registered or not. Claimed: the sorties a pilot holds, and who. My
    reservations: a lost one shows whom it lost a clash to. Unread: messages to me.

    With --json: one object, each section a list, and "more": how many each section left out.

    Example: fleetgit --as viper-1 status
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = gather(fleet, limit)
    if as_json:
        print_json(out)
    else:
        typer.echo(_human(out))


def _human(out: dict[str, Any]) -> str:
    me = out["me"]
    if not me["callsign"]:
        who = "me: no identity (--as CALLSIGN, FLEET_CALLSIGN or git config fleet.callsign)"
    elif not me["registered"]:
        who = f"me: {me['callsign']}, not registered (fleetgit pilot register {me['callsign']})"
    else:
        who = f"me: {me['callsign']}, {'active' if me['active'] else 'not active'}"
    lines = [who]

    def section(key: str, title: str, rows: list[Any], headers: list[str]) -> None:
        lines.append("")
        more = out["more"][key]
        lines.append(f"{title} ({len(out[key]) + more})")
        if rows:
            lines.append(table(rows, headers))
        if more:
            lines.append(f"... {more} more; --limit 0 shows all")

    section(
        "pilots",
        "active pilots",
        [(p["callsign"], p["status"], p["last_seen"] or "-") for p in out["pilots"]],
        ["CALLSIGN", "STATUS", "LAST SEEN"],
    )
    section(
        "claimed",
        "claimed sorties",
        [(s["sortie_id"], s["assignee"], s["status"], s["title"]) for s in out["claimed"]],
        ["ID", "ASSIGNEE", "STATUS", "TITLE"],
    )
    if me["callsign"]:
        section(
            "reservations",
            "my reservations",
            [
                (
                    r["id"],
                    r["pattern"],
                    r["mode"],
                    f"lost to {r['lost_to']['id']} ({r['lost_to']['holder']},"
                    f" {shown(r['lost_to']['pattern'])})"
                    if r["lost_to"]
                    else format_duration(r["seconds_left"]),
                )
                for r in out["reservations"]
            ],
            ["ID", "PATTERN", "MODE", "LEFT"],
        )
    section(
        "ready",
        "ready sorties",
        [(s["sortie_id"], s["priority"], s["title"]) for s in out["ready"]],
        ["ID", "PRIORITY", "TITLE"],
    )
    if me["callsign"]:
        section(
            "unread",
            "unread messages",
            [(m["message_id"], m["sender"], m["subject"]) for m in out["unread"]],
            ["ID", "FROM", "SUBJECT"],
        )
    return "\n".join(lines)
