"""The repository a git hook runs in, and the git processes it starts: the hook path, light.

`subprocess` costs ~10 ms to import (and pathlib several), so git is run with posix_spawn and
paths are plain strings.
"""

from __future__ import annotations

import os
import select

STDIN_MAX = 16384  # input written before git starts: well within a pipe's buffer (64 KiB)


class HookFailure(Exception):
    """The check itself could not run (or hook_mode is unknown): the guarding hooks refuse."""


class Where:
    """The repository the hook runs in (pathlib costs too much here)."""

    __slots__ = ("common_dir", "git_dir", "worktree")

    def __init__(self, worktree: str, git_dir: str, common_dir: str) -> None:
        self.worktree, self.git_dir, self.common_dir = worktree, git_dir, common_dir

    @property
    def fleet_root(self) -> str:
        return os.path.join(self.worktree, ".fleet")

    @property
    def config_file(self) -> str:
        return os.path.join(self.worktree, ".fleet", "config.toml")

    @property
    def config_memo(self) -> str:
        """The last .fleet/config.toml text this worktree's hook accepted (config.load_checked)."""
        return os.path.join(self.git_dir, "fleet", "config-checked")

    @property
    def index_file(self) -> str:
        return os.path.join(self.common_dir, "fleet", "index.sqlite")

    @property
    def has_fleet(self) -> bool:
        """`.fleet/` here, or an index in the clone: a checkout of a branch from before
        `fleetgit init` (or an orphan one) still has the clone's live reservations."""
        return os.path.isdir(self.fleet_root) or os.path.isfile(self.index_file)


def where() -> Where | None:
    """Git runs hooks at the top of the work tree: read `.git` there (no git call needed)."""
    top = os.getcwd()
    dotgit = os.path.join(top, ".git")
    if os.path.isfile(dotgit):  # a linked worktree: "gitdir: <path>"
        with open(dotgit, encoding="utf-8") as fh:
            text = fh.read().strip()
        if not text.startswith("gitdir:"):
            return None
        git_dir = os.path.join(top, text[len("gitdir:") :].strip())
    elif os.path.isdir(dotgit):
        git_dir = dotgit
    else:
        return None
    git_dir = os.path.normpath(git_dir)
    common = git_dir
    pointer = os.path.join(git_dir, "commondir")
    if os.path.isfile(pointer):  # resolved, as paths.locate does: the fingerprints name it
        with open(pointer, encoding="utf-8") as fh:
            common = os.path.realpath(os.path.join(git_dir, fh.read().strip()))
    return Where(top, git_dir, common)


class Process:
    """A command started with posix_spawn and read when needed, so two git calls can overlap."""

    __slots__ = ("err", "out", "pid")

    def __init__(self, paths: Where, *git_args: str, stdin: bytes = b"") -> None:
        """`stdin` is written before git starts, so it must fit in a pipe (STDIN_MAX)."""
        if len(stdin) > STDIN_MAX:
            raise ValueError(f"{len(stdin)} bytes of input: more than a pipe holds")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe()
        os.write(in_w, stdin)
        os.close(in_w)
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        args = ["git", "-C", paths.worktree, *git_args]
        try:
            self.pid = os.posix_spawnp("git", args, os.environ, file_actions=actions)
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.out, self.err = out_r, err_r

    def result(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr), both pipes drained as they fill: a child blocked on a
        full stderr pipe while we wait for its stdout would hang the hook."""
        chunks: dict[int, list[bytes]] = {self.out: [], self.err: []}
        pending = [self.out, self.err]
        while pending:
            for fd in select.select(pending, [], [])[0]:
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    pending.remove(fd)
                    os.close(fd)
        _, status = os.waitpid(self.pid, 0)
        out, err = (b"".join(chunks[fd]).decode("utf-8", "surrogateescape") for fd in chunks)
        return os.waitstatus_to_exitcode(status), out, err


def run_git(paths: Where, *args: str) -> str:
    code, out, err = Process(paths, *args).result()
    if code != 0:
        raise HookFailure(f"git {args[0]} failed: {err.strip() or code}")
    return out
