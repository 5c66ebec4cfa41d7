"""Who is acting: --as, else FLEET_CALLSIGN, else git config fleet.callsign."""

from __future__ import annotations

import os
import subprocess

from fleetgit.git.gitconfig import config_entries
from fleetgit.git.paths import RepoPaths
from fleetgit.ledger.schema import check_name, name_like


def check_callsign(callsign: str) -> str:
    """A callsign is a name: letters, digits and . _ : @ -, at most 128, no spaces."""
    return check_name(callsign, "callsign", f"for example {name_like(callsign)!r}")


def _config(paths: RepoPaths, *args: str) -> str:
    """What `git config ARGS` prints (repository, global and system config, `git -c`)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(paths.worktree), "config", *args],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return proc.stdout


def git_config(paths: RepoPaths, key: str) -> str | None:
    """One git config value, or None."""
    return _config(paths, "--get", key).strip() or None


def git_config_entries(paths: RepoPaths, regexp: str) -> dict[str, str | None]:
    """The keys matching `regexp` as `rules.config_entries` reads them (None: no value)."""
    return config_entries(_config(paths, "--get-regexp", regexp))


_ASK: str = "\0"  # not given: ask git


def resolve_callsign(
    explicit: str | None, paths: RepoPaths, configured: str | None = _ASK
) -> str | None:
    """The acting pilot's callsign, or None when no identity is set anywhere. `configured`: git
    config fleet.callsign, when the caller has read it."""
    value = explicit or os.environ.get("FLEET_CALLSIGN")
    if not value:
        value = git_config(paths, "fleet.callsign") if configured is _ASK else configured
    return check_callsign(value) if value else None
