"""The `fleetgit` command line: a typer app of thin commands over the Python API."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetgit.cli import coordination, crew, ledger, recovery, reserving, squawking
from fleetgit.cli.common import Globals

app = typer.Typer(
    name="fleetgit",
    help="A git-native ledger for fleets of AI coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
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


ledger.register(app)
reserving.register(app)
crew.register(app)
coordination.register(app)
squawking.register(app)
recovery.register(app)


def main() -> None:
    app()


@app.command("demo")
def _demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary repository.")] = False,
) -> None:
    """Walk through fleetgit in a throw-away git repository.

    Example: fleetgit demo --keep
    """
    from fleetgit.cli.common import boundary
    from fleetgit.demo import run_demo

    boundary(lambda as_json=False: run_demo(keep))()
