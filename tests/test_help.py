"""The top-level help is built from stubs holding one line per command, with no command module
imported (fast), and says exactly what the full app's help says; anything else still gets the
full app."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_fleetgit


def test_the_top_level_help_lists_every_command_as_the_full_app_does(repo: Path) -> None:
    from typer.testing import CliRunner

    from fleetgit.cli import app, help_app

    for width in ("80", "200"):
        env = {"COLUMNS": width}
        full = CliRunner(env=env).invoke(app, ["--help"], catch_exceptions=False).stdout
        fast = CliRunner(env=env).invoke(help_app(), ["--help"], catch_exceptions=False).stdout
        assert fast == full, "COMMAND_LINES or GROUP_LINES differ from the commands' own help"
    fast = run_fleetgit(repo, "--help")
    assert fast.code == 0, fast.err
    for name in ("status", "pilot", "events", "demo"):
        assert f"\n  {name} " in fast.out
    bare_help = run_fleetgit(repo)  # no arguments: the same help, exit 2
    assert bare_help.code == 2 and fast.out in bare_help.out + bare_help.err
    bare = run_fleetgit(repo, "--", "events", "--limit", "1")  # a real command after `--`
    assert bare.code == 0 and "pilot_registered" in bare.out
    assert run_fleetgit(repo, "--version").out.startswith("fleetgit ")
