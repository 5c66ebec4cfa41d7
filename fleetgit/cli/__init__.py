"""The `fleetgit` command line: a typer app of thin commands over the Python API (cli/root.py).

This package's own module loads nothing heavy: `main` starts a plain `fleetgit sync`'s fetch
(sync/prefetch.py) before typer and the command's modules load, so that git works on the other
core meanwhile; then it runs the app. `app`, `make_app` and the rest are root's, here too.
"""

import sys
from typing import Any


def main() -> None:
    if "sync" in sys.argv[1:]:
        from fleetgit.sync import prefetch

        prefetch.start(sys.argv[1:])
    from fleetgit.cli.root import main as run

    run()


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module("fleetgit.cli.root"), name)
