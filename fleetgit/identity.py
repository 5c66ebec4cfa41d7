"""Who is acting: --as, else FLEET_CALLSIGN, else git config fleet.callsign."""

from __future__ import annotations

import os
import subprocess

from fleetgit.catalogue import NAME_RE, name_like
from fleetgit.errors import ValidationError
from fleetgit.paths import RepoPaths


def check_callsign(callsign: str) -> str:
    """A callsign is a name: letters, digits and . _ : @ -, at most 128, no spaces."""
    if not NAME_RE.match(callsign):
        raise ValidationError(
            f"callsign {callsign!r}: use letters, digits and . _ : @ - (at most 128, no spaces)",
            hint=f"for example {name_like(callsign)!r}",
        )
    return callsign


def git_config(paths: RepoPaths, key: str) -> str | None:
    """One git config value (repository, global or system), or None."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(paths.worktree), "config", "--get", key],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    value = proc.stdout.strip()
    return value or None


def resolve_callsign(explicit: str | None, paths: RepoPaths) -> str | None:
    """The acting pilot's callsign, or None when no identity is set anywhere."""
    value = explicit or os.environ.get("FLEET_CALLSIGN") or git_config(paths, "fleet.callsign")
    return check_callsign(value) if value else None
