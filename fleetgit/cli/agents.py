"""`fleetgit mcp` and `fleetgit agents install|uninstall`: thin over fleetgit.agents. The MCP SDK
is imported by `fleetgit mcp` alone, when it runs."""

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleetgit.agents import install as wiring
from fleetgit.cli.common import (
    JsonOpt,
    add_group,
    boundary,
    choice_option,
    globals_of,
    note,
    print_json,
)
from fleetgit.domain.pilots.identity import resolve_callsign
from fleetgit.ledger.errors import ValidationError

Client = Annotated[
    str,
    choice_option("--client", choices=wiring.CLIENTS, metavar="CLIENT", help="The agent client."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show the changes as diffs; write nothing.")
]


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
    add_group(
        app,
        "agents",
        "Wire fleetgit into agent clients (MCP server entry, instructions, session hooks).\n\n"
        "Example: fleetgit agents install --client claude-code",
        [("install", agents_install), ("uninstall", agents_uninstall)],
    )


def parse_http(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (the host defaults to 127.0.0.1: this machine only)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(
            f"--http {text!r}: expected HOST:PORT, :PORT or PORT (a port from 1 to 65535)",
            hint="fleetgit mcp --http 127.0.0.1:8765",
        )
    return host, int(port)


@boundary
def mcp(
    ctx: typer.Context,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve streamable HTTP at HOST:PORT (the host defaults to 127.0.0.1) instead"
            " of stdio.",
        ),
    ] = None,
) -> None:
    """Serve the MCP tools over stdio, acting as one pilot (registered if new).

    The pilot is --as CALLSIGN, else FLEET_CALLSIGN, else git config fleet.callsign; no tool can
    act as another. Add it to an agent with fleetgit agents install.

    Example: fleetgit --as viper-1 mcp
    """
    from fleetgit.agents.server import serve
    from fleetgit.agents.tools import Session

    address = parse_http(http) if http is not None else None
    g = globals_of(ctx)
    if g.actor == "":
        raise ValidationError("--as '': the callsign is empty", hint="fleetgit --as CALLSIGN mcp")
    session = Session.open(g.directory, g.actor)
    if address is not None and address[0] not in ("127.0.0.1", "localhost", "::1"):
        note(
            "exposed",
            f"serving on {address[0]}:{address[1]}: a client needs {session.callsign}'s bearer"
            " token (fleetgit token create), and the connection is not encrypted",
            "serve on 127.0.0.1 (the default), or behind a TLS proxy",
            False,
        )
    try:
        serve(session, address)
    finally:
        session.close()


def _show(changes: list[wiring.Change], dry_run: bool, as_json: bool, verb: str) -> None:
    if as_json:
        out = [c.to_json() for c in changes]
        if dry_run:
            for item, c in zip(out, changes, strict=True):
                item["diff"] = c.diff()
        print_json({"files": out, "dry_run": dry_run})
        return
    for c in changes:
        if dry_run and c.action not in ("unchanged", "kept"):
            typer.echo(c.diff(), nl=False)
        elif c.kept_for:
            typer.echo(f"kept: {c.path} (still used by {', '.join(c.kept_for)})")
        else:
            typer.echo(f"{c.action}: {c.path}")
    if dry_run:
        typer.echo(f"dry run: nothing {verb}")


@boundary
def agents_install(
    ctx: typer.Context,
    client: Client,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Add fleetgit to an agent client's project files (idempotent; merges, never overwrites).

    claude-code: .mcp.json, CLAUDE.md and the SessionStart/PreCompact/Stop hooks in
    .claude/settings.json; codex: .codex/config.toml and AGENTS.md; cursor: .cursor/mcp.json
    and AGENTS.md; generic: AGENTS.md. With --as CALLSIGN the server and hooks act as that
    pilot; without, as FLEET_CALLSIGN or git config fleet.callsign when they run.

    Example: fleetgit agents install --client claude-code
    """
    g = globals_of(ctx)
    installer = wiring.Installer(client, g.directory, g.actor or None)
    _show(installer.install(dry_run), dry_run, as_json, "written")
    if client == "generic":  # AGENTS.md alone: nothing the client runs
        return
    if shutil.which("fleetgit") is None:
        here = Path(sys.executable).parent
        note(
            "not_on_path",
            "fleetgit is not on PATH: the client runs the server and hooks as `fleetgit` and"
            " would not find it",
            f"add {here} to the PATH the client starts with"
            if (here / "fleetgit").exists()
            else "install fleetgit where the client's PATH finds it",
            as_json,
        )
    if not g.actor and resolve_callsign(None, installer.paths) is None:
        note(
            "no_identity",
            "the MCP server and hooks written act as FLEET_CALLSIGN or git config"
            " fleet.callsign, and no pilot is set here: the server would stop at its start",
            "git config fleet.callsign CALLSIGN, or install again with --as CALLSIGN",
            as_json,
        )


@boundary
def agents_uninstall(
    ctx: typer.Context,
    client: Annotated[
        str | None,
        choice_option(
            "--client",
            choices=wiring.CLIENTS,
            metavar="CLIENT",
            help="The agent client (default: every client installed here).",
        ),
    ] = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Take fleetgit out of a client's files (without --client, of every client installed):
    each comes back byte for byte as it was before the install (one edited since keeps its
    edits, without fleetgit's parts). A file another client still installed uses (AGENTS.md)
    is kept.

    Example: fleetgit agents uninstall
    """
    directory = globals_of(ctx).directory
    clients = [client] if client is not None else wiring.installed_clients(directory)
    if not clients and not as_json:
        typer.echo("no agent client is installed here: nothing to take out")
        return
    _show(wiring.uninstall(clients, directory, dry_run), dry_run, as_json, "changed")
