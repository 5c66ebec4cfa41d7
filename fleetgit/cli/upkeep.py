"""Upkeep of the ledger and its index: snapshot, compact."""

import subprocess
from typing import Annotated

import typer

from fleetgit.cli.common import JsonOpt, boundary, open_fleet, print_json
from fleetgit.ledger.errors import GitError


def register(app: typer.Typer) -> None:
    app.command("snapshot")(snapshot)
    app.command("compact")(compact)


@boundary
def snapshot(
    ctx: typer.Context,
    rev: Annotated[
        str, typer.Option("--rev", help="The commit whose history the snapshot holds.")
    ] = "HEAD",
    push: Annotated[
        str | None,
        typer.Option("--push", metavar="REMOTE", help="Then push the snapshot ref to REMOTE."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fold the history of a commit into an index snapshot that fresh clones start from.

    The snapshot is a commit on refs/fleet/snapshots/<writer> (the index file, compressed, in
    parts well under 100 MB, and a manifest of the segments it covers, signed by this clone's
    fleet admin key when the configuration lists it, else by the acting pilot). A clone with no
    index yet (its first `fleetgit sync` fetches the snapshots) loads the newest one that its
    segments confirm (counts and hashes, schema, catalogue, intake settings, the signature) and
    catches up from there; anything else is reported in one line and the segments are read
    instead. `fleetgit verify --deep` proves a loaded index by replay.

    Example: fleetgit --as viper-1 snapshot --push origin

    Example: git clone URL fresh && fleetgit -C fresh sync
    """
    with open_fleet(ctx, catch_up=False) as fleet:
        built = fleet.snapshot(rev)
        if push:
            spec = f"+{built.ref}:{built.ref}"
            proc = subprocess.run(
                ["git", "-C", str(fleet.paths.worktree), "push", "--quiet", push, spec],
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                why = proc.stderr.decode(errors="replace").strip()
                raise GitError(
                    f"git push {push} {spec} failed: {why}",
                    hint="the snapshot is made locally; push the ref when the remote answers",
                )
    if as_json:
        print_json(built.to_json())
    else:
        typer.echo(
            f"snapshot {built.commit[:12]} on {built.ref}: {built.events} events up to"
            f" {built.covers[:12]}, {built.stored_bytes} bytes in {built.parts} part(s)"
            + (f", signed by {built.signed_by}" if built.signed_by else ", unsigned")
            + (f", pushed to {push}" if push else "")
        )


@boundary
def compact(
    ctx: typer.Context,
    message: Annotated[str | None, typer.Option("-m", "--message")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pack this writer's committed segments into fewer, larger files, in one commit.

    Consecutive segments committed in HEAD and unchanged in the work tree are joined byte for
    byte (each event keeps its id and bytes) up to segment_max_bytes, and the old files are
    deleted in the same commit. Only this writer writes its directory, so a branch that still
    holds the old files merges without conflict, and the index counts each event once.

    Example: fleetgit compact
    """
    with open_fleet(ctx) as fleet:
        result = fleet.compact(message)
    if as_json:
        print_json(result.to_json())
    elif result.commit is None:
        typer.echo("nothing to compact")
    else:
        typer.echo(
            f"compacted {len(result.packed)} segment(s) into {len(result.written)}"
            f" as {result.commit[:12]}"
        )
