"""Checkpoint and resume commands."""

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
    choice_option,
    int_option,
    open_fleet,
    page,
    print_json,
    print_page,
    table,
)
from fleetgit.cli.render import label
from fleetgit.domain.checkpoints import commands as checkpoints
from fleetgit.domain.checkpoints.events import TRIGGERS
from fleetgit.domain.checkpoints.resume import markdown, resume


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "checkpoint",
        "Checkpoints a pilot can resume from.\n\nExample: fleetgit --as goose checkpoint latest",
        [("create", create), ("list", listing), ("show", show), ("latest", latest)],
    )
    app.command("resume")(resume_cmd)


def _human(c: dict[str, Any]) -> str:
    lines = [
        f"{c['checkpoint_id']}  {c['created_at']}  by {c['pilot']}  ({c['trigger']})",
        f"mission {c['mission_id'] or '-'}  sortie {c['sortie_id'] or '-'}  progress "
        + ("-" if c["progress"] is None else f"{c['progress']}%"),
    ]
    if c["summary"]:
        lines.append(c["summary"])
    for key in (
        "next_steps",
        "blockers",
        "files_modified",
        "reservations",
        "locks",
        "unread_messages",
    ):
        if c[key]:
            lines.append(f"{label(key)}: {', '.join(c[key])}")
    return "\n".join(lines)


@boundary
def create(
    ctx: typer.Context,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    sortie: Annotated[str | None, typer.Option("--sortie", metavar="ID")] = None,
    trigger: Annotated[
        str,
        choice_option("--trigger", choices=TRIGGERS, metavar="TRIGGER"),
    ] = "manual",
    progress: Annotated[int | None, int_option("--progress", high=100)] = None,
    summary: Annotated[str | None, typer.Option("--summary")] = None,
    next_steps: Annotated[list[str] | None, typer.Option("--next-step", help="Repeat.")] = None,
    blockers: Annotated[list[str] | None, typer.Option("--blocker", help="Repeat.")] = None,
    files: Annotated[list[str] | None, typer.Option("--file", help="Repeat.")] = None,
    if_changed: Annotated[
        bool,
        typer.Option(
            "--if-changed", help="Save nothing if your newest checkpoint already says all this."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Save where you are; your reservations, locks and unread messages are recorded too.

    Example: fleetgit --as viper-1 checkpoint create --sortie srt-4q2x --progress 60
    --summary "tokens done" --next-step "keywords" --file src/lexer.py
    """
    with open_fleet(ctx) as fleet:
        cid = checkpoints.create(
            fleet,
            mission=mission,
            sortie=sortie,
            trigger=trigger,
            progress=progress,
            summary=summary,
            next_steps=next_steps or [],
            blockers=blockers or [],
            files=files or [],
            if_changed=if_changed,
        )
        out = checkpoints.show(fleet, cid)
    print_json(out) if as_json else typer.echo(cid)


@boundary
def listing(
    ctx: typer.Context,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List checkpoints, oldest first.

    Example: fleetgit checkpoint list --mission msn-7k3m
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(checkpoints.listing(fleet, mission=mission), limit)
    print_page(
        "checkpoints",
        rows,
        more,
        as_json,
        table(
            [
                (
                    c["checkpoint_id"],
                    c["created_at"][:19].replace("T", " "),
                    c["pilot"],
                    c["trigger"],
                    c["summary"] or "",
                )
                for c in rows
            ],
            ["ID", "CREATED (UTC)", "PILOT", "TRIGGER", "SUMMARY"],
        )
        if rows
        else "no checkpoints",
    )


@boundary
def show(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Argument(metavar="ID")],
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a checkpoint.

    Example: fleetgit checkpoint show chk-2m8v
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = checkpoints.show(fleet, checkpoint)
    print_json(out) if as_json else typer.echo(_human(out))


@boundary
def latest(
    ctx: typer.Context,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Your newest checkpoint (anyone's, without an identity).

    Example: fleetgit --as viper-1 checkpoint latest
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = checkpoints.latest(fleet, mission=mission)
    print_json(out) if as_json else typer.echo(_human(out))


@boundary
def resume_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", metavar="ID")] = None,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    latest_: Annotated[bool, typer.Option("--latest", help="Your newest checkpoint.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a Markdown recovery brief and re-acquire what you held, where it is still free.

    Example: fleetgit --as viper-1 resume --latest
    """
    with open_fleet(ctx) as fleet:
        brief = resume(fleet, checkpoint=checkpoint, mission=mission, latest=latest_)
    print_json(brief) if as_json else typer.echo(markdown(brief), nl=False)
