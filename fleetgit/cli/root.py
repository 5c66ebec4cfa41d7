"""The `fleetgit` command line: a typer app of thin commands over the Python API.

Typer turns every registered command into a click command at each start (about 0.5 ms each),
so `main` builds an app holding only the command being run (all of them for `--help` or a typo,
so that usage lists them); `app` is the full one.
"""

import importlib
import os
import sys
from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    GLOBAL_FLAGS,
    GLOBAL_OPTIONS,
    FleetTyper,
    Globals,
    JsonOpt,
    RootGroup,
    boundary,
    hoist_globals,
    print_json,
)

# top-level command -> the module that registers it
GROUPS: dict[str, str] = {
    **dict.fromkeys(
        (
            "init",
            "emit",
            "events",
            "show",
            "stream",
            "commit",
            "verify",
            "quarantine",
            "schema",
            "index",
        ),
        "ledger",
    ),
    **dict.fromkeys(("reserve", "renew", "release", "reservations", "check", "hooks"), "reserving"),
    **dict.fromkeys(("pilot", "mission", "sortie"), "crew"),
    **dict.fromkeys(("workorder", "lock", "cursor"), "coordination"),
    "squawk": "squawking",
    **dict.fromkeys(("checkpoint", "resume"), "recovery"),
    "status": "status",
    "guard": "guard",
    "log": "timeline",
    **dict.fromkeys(("mcp", "agents"), "agents"),
    **dict.fromkeys(("sql", "stats", "export"), "analytics"),
    **dict.fromkeys(("sync", "restore-lost", "withdraw"), "sync"),
    **dict.fromkeys(("serve", "token"), "web"),
    **dict.fromkeys(("snapshot", "compact"), "upkeep"),
    "demo": "",
}
MODULES = (
    "ledger",
    "reserving",
    "crew",
    "coordination",
    "squawking",
    "recovery",
    "status",
    "guard",
    "timeline",
    "agents",
    "analytics",
    "sync",
    "web",
    "upkeep",
)

# The top-level help, one line per command and group in its order: `fleetgit --help` is built
# from these alone, without importing (and turning into click commands) every command module,
# which made it slower than an ordinary command. tests/test_help.py checks that they say what the
# commands' own help says: change them with a command's first line.
COMMAND_LINES: dict[str, str] = {
    "init": "Set up fleetgit in this git repository (idempotent).",
    "emit": "Append one raw event to the ledger.",
    "events": "List events in total order (hlc, writer, wseq); after a position, or a consumer's"
    " unseen ones, by position.",
    "show": "Show one event.",
    "stream": "Show the events of one stream by version.",
    "commit": "Commit the pending .fleet/ segments, and nothing else.",
    "verify": "Check every segment; exit 1 when anything is wrong. Changes nothing.",
    "quarantine": "List the events no valid signature of their pilot covers, and why.",
    "schema": "Print the JSON Schema of one event type, or list the whole catalogue.",
    "reserve": "Reserve files: all patterns are granted, or none.",
    "renew": "Extend your reservations (all of them, or those named) to --ttl from now; never"
    " shortens.",
    "release": "Release your reservations, or (--force ID) one whose holder has gone silent.",
    "reservations": "List active reservations with the time left.",
    "check": "Which of these paths are blocked for me, and by whom; exit 1 when any is.",
    "resume": "Print a Markdown recovery brief and re-acquire what you held, where it is still"
    " free.",
    "status": "One screen: me, the active pilots, claimed sorties, my reservations, ready"
    " sorties, my unread messages.",
    "guard": "Refuse commits that touch files another pilot held when they were made; exit 1"
    " if any.",
    "log": "The fleet's history, newest first, one line per event (coloured on a terminal only).",
    "mcp": "Serve the MCP tools over stdio, acting as one pilot (registered if new).",
    "sql": "Run a read-only SQL query (DuckDB) over the whole history and the projections.",
    "stats": "A summary of the fleet's history: activity, sorties, reservations, acknowledgements.",
    "export": "Write the events and every projection table to DIR, one file each"
    " (TABLE.parquet, ...).",
    "sync": "Share the ledger through a git remote: publish, push, fetch, ingest.",
    "restore-lost": "Publish again the events no ref reaches any more (same ids and bytes).",
    "withdraw": "Withdraw one of your events: every projection then ignores it (the ledger"
    " keeps it).",
    "serve": "Serve the HTTP API (/api/v1) and the live dashboard (/) of this repository's fleet.",
    "snapshot": "Fold the history of a commit into an index snapshot that fresh clones start from.",
    "compact": "Pack this writer's committed segments into fewer, larger files, in one commit.",
    "demo": "Walk through fleetgit in a throw-away git repository.",
}
GROUP_LINES: dict[str, str] = {
    "index": "Inspect or rebuild the local SQLite index.",
    "hooks": "Install, remove or inspect fleetgit's git hooks.",
    "pilot": "Pilots: register, heartbeat, list, show, deregister, key.",
    "mission": "Missions: create, list, show, start, complete, cancel, update.",
    "sortie": "Sorties: create, list, show, claim and work through them.",
    "workorder": "Work orders: small tasks under a sortie.",
    "lock": "Named locks with a TTL.",
    "cursor": "Consumer cursors: positions of this clone, kept in its index (no --as-of: a"
    " cursor is local state, not a projection of events).",
    "squawk": "Messages between pilots.",
    "checkpoint": "Checkpoints a pilot can resume from.",
    "agents": "Wire fleetgit into agent clients (MCP server entry, instructions, session hooks).",
    "token": "Bearer tokens of the HTTP API, each bound to one pilot.",
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # only here: it costs a few ms

        typer.echo(f"fleetgit {version('fleetgit')}")
        raise typer.Exit()


def _globals(
    ctx: typer.Context,
    directory: Annotated[
        str | None,
        typer.Option("-C", help="Run as if started in PATH (like git -C).", metavar="PATH"),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="CALLSIGN",
            help="Act as CALLSIGN, a registered pilot (else FLEET_CALLSIGN, else git config"
            " fleet.callsign). Also taken after the command.",
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register",
            help="Register the acting pilot with this command's write, if it is not yet.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Globals(directory=directory, actor=actor, register=register)


def _demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary repository.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Walk through fleetgit in a throw-away git repository.

    With --json, prints the steps (section, command, exit code, output) as one JSON object.

    Example: fleetgit demo --keep
    """
    boundary(_run_demo)(keep=keep, as_json=as_json)


def _run_demo(keep: bool, as_json: bool) -> None:
    from fleetgit.demo import run_demo

    result = run_demo(keep, echo=not as_json)
    if as_json:
        print_json(result._asdict())


def make_app(modules: tuple[str, ...] = MODULES, demo: bool = True) -> typer.Typer:
    app = FleetTyper(
        name="fleetgit",
        cls=RootGroup,
        help="A git-native ledger for fleets of AI coding agents.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,  # --install-completion, --show-completion
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_globals)
    for name in modules:
        importlib.import_module(f"fleetgit.cli.{name}").register(app)
    if demo:
        app.command("demo")(_demo)
    return app


def _words(argv: list[str]) -> list[str]:
    """The command and subcommand names in argv: the first two words after the global options."""
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in GLOBAL_OPTIONS and not words:
            next(args, None)
        elif (arg in GLOBAL_FLAGS or arg.startswith("--as=")) and not words:
            continue
        elif arg.startswith("-"):
            break
        else:
            words.append(arg)
            if len(words) == 2:
                break
    return words


def _name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


def _keep_only(app: typer.Typer, words: list[str]) -> None:
    """Drop every command but the one named by `words`, when it exists."""
    app.registered_commands = [c for c in app.registered_commands if _name(c) == words[0]]
    app.registered_groups = [g for g in app.registered_groups if g.name == words[0]]
    if app.registered_groups and len(words) > 1:
        info = app.registered_groups[0]
        sub = info.typer_instance
        wanted = [c for c in sub.registered_commands if _name(c) == words[1]] if sub else []
        if sub and wanted:
            sub.registered_commands = wanted


def help_app() -> typer.Typer:
    """The app the top-level help is printed from: every command and group as a stub holding
    its line of COMMAND_LINES and GROUP_LINES, no command module imported."""
    app = make_app((), demo=False)
    for name, line in COMMAND_LINES.items():
        app.command(name, help=line)(_stub)
    for name, line in GROUP_LINES.items():
        app.add_typer(typer.Typer(), name=name, help=line)
    return app


def _stub() -> None:  # never runs: only a help screen is built from it
    raise AssertionError("a help stub ran")


def _help_only(argv: list[str]) -> bool:
    """argv asks for the top-level help and nothing else can run (no `--`, no completion)."""
    asks = not argv or "-h" in argv or "--help" in argv
    return asks and "--" not in argv and "_FLEETGIT_COMPLETE" not in os.environ


def main() -> None:
    sys.argv[1:] = hoist_globals(sys.argv[1:])
    words = _words(sys.argv[1:])
    group = GROUPS.get(words[0]) if words else None
    if group is None:  # no command, --help, or a typo: everything, so usage lists them all
        (help_app() if not words and _help_only(sys.argv[1:]) else make_app())()
        return
    app = make_app((group,) if group else (), demo=not group)
    _keep_only(app, words)
    app()


def __getattr__(name: str) -> Any:
    if name == "app":  # the full app, for tests and documentation
        return make_app()
    raise AttributeError(name)
