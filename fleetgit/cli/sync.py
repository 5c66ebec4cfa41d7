"""`fleetgit sync` and `fleetgit restore-lost`: the ledger between machines (fleetgit/sync/)."""

from typing import Annotated, Any

import typer

from fleetgit.cli.common import JsonOpt, boundary, globals_of, open_fleet, print_json
from fleetgit.ledger.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.command("restore-lost")(restore_lost)
    app.command("withdraw")(withdraw)


@boundary
def sync(
    ctx: typer.Context,
    remote: Annotated[
        str | None,
        typer.Argument(help="A git remote (default: the current branch's, else origin)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be sent and received; change nothing.")
    ] = False,
    push_only: Annotated[bool, typer.Option("--push-only", help="Publish and push only.")] = False,
    fetch_only: Annotated[
        bool, typer.Option("--fetch-only", help="Fetch and ingest only.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Share the ledger through a git remote: publish, push, fetch, ingest.

    Publishes this writer's new events under refs/fleet/writers/<writer> (never on your
    branches: HEAD, the index, the work tree and the stash stay as they are), pushes that ref,
    fetches every writer ref of the remote into refs/fleet/remotes/<remote>/ and reads them.
    Prints what was sent and received, and what concerns you: reservations of others that
    overlap yours, yours that lost a clash, claims on your sorties, messages to you.

    A remote that fails is one line with git's message and exit 1; nothing is lost, and the
    next sync picks up where this one stopped.

    Example: fleetgit sync origin --json
    """
    if push_only and fetch_only:
        raise UsageError(
            "--push-only and --fetch-only together do nothing", hint="pass one of them, or neither"
        )
    from fleetgit.git.paths import locate
    from fleetgit.sync import engine

    if not dry_run:  # a fresh clone starts from the remote's index snapshot, if it has one
        engine.fetch_snapshots_first(locate(globals_of(ctx).directory), remote, None)
    with open_fleet(ctx) as fleet:
        report = engine.run(
            fleet, remote, push=not fetch_only, fetch=not push_only, dry_run=dry_run
        )
    if as_json:
        print_json(report.to_json())
        return
    typer.echo(_human(report.to_json()))


def _human(r: dict[str, Any]) -> str:
    sent, got = r["sent"], r["received"]
    would = "would send" if r["dry_run"] else "sent"
    lines = []
    if sent["events"] or sent["pushed"]:
        lines.append(
            f"{would} {sent['events']} event(s) in {len(sent['segments'])} segment(s) to"
            f" {r['remote']}" + ("" if sent["events"] else " (published before)")
        )
    else:
        lines.append(f"nothing to send to {r['remote']}")
    for name in sent["refused"]:
        lines.append(
            f"warning: segment {name} differs from its published copy: not sent (fleetgit verify)"
        )
    if r["dry_run"]:
        writers = len(got["writers"])
        lines.append(f"would receive from {writers} writer(s)" if writers else "nothing to receive")
    elif got["writers"] or got["events"]:
        moved = len(got["writers"])
        lines.append(f"received {got['events']} new event(s) ({moved} writer ref(s) moved)")
    else:
        lines.append("nothing new received")
    for c in r["concerns"]:
        lines.append(_concern(c))
    return "\n".join(lines)


def _concern(c: dict[str, Any]) -> str:
    kind = c["kind"]
    if kind == "message":
        return f"message from {c['from']}: {c['subject']} ({c['message_id']})"
    if kind == "claim":
        return f"{c['by']} claimed sortie {c['sortie']}, which you claimed"
    if kind == "lost":
        return (
            f"your reservation {c['mine']!r} lost a clash to {c['holder']}'s {c['pattern']!r}:"
            " it no longer counts"
        )
    if kind == "won":
        return f"{c['holder']} reserved {c['pattern']!r} over your {c['mine']!r}: yours won"
    return f"{c['holder']} reserved {c['pattern']!r} ({c['mode']}), overlapping your {c['mine']!r}"


@boundary
def restore_lost(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the lost events; publish nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish again the events no ref reaches any more (same ids and bytes).

    After a force-push, a deleted branch or a filter-repo, events this clone ingested may be in
    no commit of any ref nor in any work tree (fleetgit verify reports them). They go into a
    new commit on this writer's fleet ref; the next fleetgit sync pushes them.

    Example: fleetgit restore-lost --dry-run
    """
    from fleetgit.sync import lost

    with open_fleet(ctx) as fleet:
        result = lost.restore(fleet, dry_run=dry_run)
    if as_json:
        print_json(result)
    elif not result["events"]:
        typer.echo("no lost events: every event is reachable from a ref or a work tree")
    else:
        verb = "would restore" if dry_run else "restored"
        typer.echo(
            f"{verb} {len(result['events'])} event(s) in {len(result['segments'])} segment(s)"
            + ("" if dry_run else f" on {result['ref']}: fleetgit sync publishes them")
        )


@boundary
def withdraw(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="The event's id (or a unique prefix).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw one of your events: every projection then ignores it (the ledger keeps it).

    Appends an event_withdrawn tombstone to the event's stream, honoured by every clone once
    it arrives. Only the event's own actor can withdraw it.

    Example: fleetgit --as viper-1 withdraw 0193a1b2 --reason "wrong mission"
    """
    from fleetgit.domain.withdrawals.commands import withdraw as run

    with open_fleet(ctx) as fleet:
        tombstone = run(fleet, event, reason)
    if as_json:
        print_json(tombstone.to_json())
    else:
        typer.echo(f"withdrew {tombstone.data['event_id']} ({tombstone.stream})")
