"""fleetgit: a git-native ledger for fleets of AI coding agents.

`from fleetgit import Fleet, EventSpec, init` is the Python API (fleetgit.fleet). It is loaded on
first use, not with the package: the git hooks import `fleetgit.*` modules on a light path that
must not pay for the API's imports.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`: its import costs the hooks milliseconds
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EventSpec", "Fleet", "FleetError", "init"]


def __getattr__(name: str) -> Any:
    if name in ("EventSpec", "Fleet", "init"):
        from fleetgit import fleet

        return getattr(fleet, name)
    if name == "FleetError":
        from fleetgit.ledger.errors import FleetError

        return FleetError
    raise AttributeError(f"module 'fleetgit' has no attribute {name!r}")
