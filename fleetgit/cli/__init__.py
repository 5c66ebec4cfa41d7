"""The `fleetgit` command line: a typer app of thin commands over the Python API.

Typer turns every registered command into a click command at each start, so `main` builds an
app holding only the command group being run (all of them for `--help`); `app` is the full one.
"""

import importlib
import sys
from typing import Annotated, Any

import typer

from fleetgit.cli.common import Globals, boundary

# top-level command -> the module that registers it
GROUPS: dict[str, str] = {
    **dict.fromkeys(
        ("init", "emit", "events", "show", "stream", "commit", "verify", "schema", "index"),
        "ledger",
    ),
    **dict.fromkeys(("reserve", "renew", "release", "reservations", "check", "hooks"), "reserving"),
    **dict.fromkeys(("pilot", "mission", "sortie"), "crew"),
    **dict.fromkeys(("workorder", "lock", "cursor"), "coordination"),
    "squawk": "squawking",
    **dict.fromkeys(("checkpoint", "resume"), "recovery"),
    "demo": "",
}
MODULES = ("ledger", "reserving", "crew", "coordination", "squawking", "recovery")


def _globals(
    ctx: typer.Context,
    directory: Annotated[
        str | None,
        typer.Option("-C", help="Run as if started in PATH (like git -C).", metavar="PATH"),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as", help="Act as CALLSIGN (else FLEET_CALLSIGN, else git config fleet.callsign)."
        ),
    ] = None,
) -> None:
    ctx.obj = Globals(directory=directory, actor=actor)


def _demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary repository.")] = False,
) -> None:
    """Walk through fleetgit in a throw-away git repository.

    Example: fleetgit demo --keep
    """
    from fleetgit.demo import run_demo

    boundary(lambda as_json=False: run_demo(keep))()


def make_app(modules: tuple[str, ...] = MODULES, demo: bool = True) -> typer.Typer:
    app = typer.Typer(
        name="fleetgit",
        help="A git-native ledger for fleets of AI coding agents.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_globals)
    for name in modules:
        importlib.import_module(f"fleetgit.cli.{name}").register(app)
    if demo:
        app.command("demo")(_demo)
    return app


def _command(argv: list[str]) -> str | None:
    """The top-level command in argv, skipping the global options."""
    args = iter(argv)
    for arg in args:
        if arg in ("-C", "--as"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    group = GROUPS.get(_command(sys.argv[1:]) or "")
    if group is None:  # no command, --help, or a typo: everything, so usage lists them all
        make_app()()
    else:
        make_app((group,) if group else (), demo=not group)()


def __getattr__(name: str) -> Any:
    if name == "app":  # the full app, for tests and documentation
        return make_app()
    raise AttributeError(name)
