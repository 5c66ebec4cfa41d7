"""`fleetgit log`: the fleet's history as a compact timeline, like `git log --oneline`."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    JsonOpt,
    Limit,
    Since,
    boundary,
    note_unknown_callsign,
    open_fleet,
    print_page,
    styled,
    time_option,
)
from fleetgit.ledger import clock


def register(app: typer.Typer) -> None:
    app.command("log")(log)


@boundary
def log(
    ctx: typer.Context,
    pilot: Annotated[
        str | None, typer.Option("--pilot", metavar="CALLSIGN", help="Only what this pilot did.")
    ] = None,
    mission: Annotated[
        str | None,
        typer.Option(
            "--mission",
            metavar="ID",
            help="Only this mission: its events, its sorties' and their work orders'.",
        ),
    ] = None,
    since: Since = None,
    limit: Limit = LIST_LIMIT,
    as_json: JsonOpt = False,
) -> None:
    """The fleet's history, newest first, one line per event (coloured on a terminal only).

    Each line: the event's short id, its time (UTC), the pilot, what happened. With --json, the
    events as `fleetgit events --json` shows them, each with its "summary" line.

    Example: fleetgit log --pilot goose --since -2h
    """
    from fleetgit.domain.timeline import summary, timeline

    since_ms = time_option(since, "--since")
    with open_fleet(ctx) as fleet:
        found, more = timeline(
            fleet, pilot=pilot, mission=mission, since_ms=since_ms, limit=limit or None
        )
        note_unknown_callsign(fleet, "log --pilot", pilot, found, as_json)
        short = fleet.short_ids([e.id for e in found])
    if as_json:
        items = [{**e.to_json(), "summary": summary(e)} for e in found]
        print_page("events", items, more, True, "")
        return
    width = max((len(e.actor or "-") for e in found), default=0)
    lines = [
        f"{styled(sid, 'yellow')} {clock.iso_ms(clock.hlc_ms(e.hlc))[:16].replace('T', ' ')}"
        f" {styled((e.actor or '-').ljust(width), 'cyan')} {summary(e)}"
        for sid, e in zip(short, found, strict=True)
    ]
    print_page("events", list(found), more, False, "\n".join(lines) or "no events", word="older")
