"""A sync's fetch, started as the `fleetgit sync` process starts (cli/__init__.py), before the
command's modules load: git fetches (and the remote packs) on the other core while Python
imports and opens the index, which is where most of a receiving sync's wait went.

Only for a plain `fleetgit sync [REMOTE]` (with --json, --fetch-only, --as, -C, --register):
anything else (--dry-run, --push-only, --help, an unknown word) runs as before. The process
takes the clone's sync lock first (a second sync waits, as it always has), and hands it and the
fetch to the engine (sync/engine.py), which pushes while it runs and waits for it where it
would fetch (`_fetch`): what it fetched never overwrites this writer's own ref, which the push
may have moved meanwhile (`fleetrefs.apply_prefetch` keeps it). The fetch is the one the
engine would run (fleetrefs.fetch), and its failure is reported where that one's
would be. Light on purpose: no typer, no pygit2, no SQLite.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from fleetgit.git.paths import RepoPaths, locate

if TYPE_CHECKING:
    from fleetgit.git.fleetrefs import RemoteConfig


class Prefetch:
    __slots__ = ("common_dir", "config", "lock_fd", "proc", "remote")

    def __init__(
        self,
        common_dir: Path,
        config: RemoteConfig,  # the remotes' settings it read: the engine's too
        remote: str,
        proc: subprocess.Popen[bytes],
        lock_fd: int,
    ) -> None:
        self.common_dir, self.config, self.remote = common_dir, config, remote
        self.proc, self.lock_fd = proc, lock_fd


_started: Prefetch | None = None

_FLAGS = ("--json", "--fetch-only", "--register")


def _plain_sync(argv: list[str]) -> tuple[str | None, str | None] | None:
    """(-C directory, remote) of a plain `fleetgit sync [REMOTE]`, else None."""
    directory = remote = None
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("-C", "--as"):
            value = next(args, None)
            if value is None:
                return None
            if arg == "-C":
                directory = value
        elif arg in _FLAGS or arg.startswith("--as="):
            continue
        elif arg.startswith("-"):
            return None
        else:
            words.append(arg)
    if not words or words[0] != "sync" or len(words) > 2:
        return None
    if len(words) == 2:
        remote = words[1]
    return directory, remote


def start(argv: list[str]) -> None:
    """Start the fetch of a plain `fleetgit sync` (argv: the command's arguments); on any doubt
    nothing starts, and the engine fetches as it always did."""
    global _started
    plain = _plain_sync(argv)
    if plain is None or _started is not None:
        return
    directory, remote = plain
    try:
        paths = locate(directory)
        if not paths.initialized:
            return
        from fleetgit.git import fleetrefs  # light: no pygit2 until an object is written

        config = fleetrefs.remote_config(paths)
        chosen = remote or config.upstream or "origin"
        if chosen not in config.remotes:
            return  # the engine says so, in one line
        lock_fd = _lock(paths)
        if lock_fd is None:
            return  # another sync of this clone runs: wait for it as before
    except Exception:  # never a failure of its own: the engine fetches as it always did
        return
    try:
        proc = fleetrefs.start_fetch(paths, chosen)
    except Exception:
        os.close(lock_fd)  # the engine takes the lock again and fetches itself
        return
    _started = Prefetch(paths.common_dir, config, chosen, proc, lock_fd)


def lock_file(paths: RepoPaths) -> int:
    """The clone's sync lock file, open, not locked yet (engine.sync_lock and `_lock` lock it:
    one sync at a time per clone, all its worktrees)."""
    directory = paths.common_dir / "fleet"
    directory.mkdir(parents=True, exist_ok=True)
    return os.open(directory / "sync.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _lock(paths: RepoPaths) -> int | None:
    """The sync lock, taken at once (its fd), or None when another sync holds it."""
    fd = lock_file(paths)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take(paths: RepoPaths) -> Prefetch | None:
    """The fetch started for this clone, if one was (then the caller holds its lock, and closes
    `lock_fd` when done)."""
    global _started
    got, _started = _started, None
    if got is None or got.common_dir != paths.common_dir:
        if got is not None:
            stop(got)
            os.close(got.lock_fd)
        return None
    return got


def stop(got: Prefetch) -> None:
    """End a fetch nobody will use: SIGTERM (git removes its lock files), then reap it."""
    got.proc.terminate()
    got.proc.communicate()
