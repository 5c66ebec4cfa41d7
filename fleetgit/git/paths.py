"""Where things live: the worktree, its git dir, the common dir and the fleet files.

Pure filesystem reads, no git process and no pygit2, so the hook path can use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from fleetgit.ledger.errors import NotARepositoryError, NotInitializedError, ValidationError

FLEET_DIR = ".fleet"
EVENTS_DIR = ".fleet/events"
CONFIG_FILE = ".fleet/config.toml"


class RepoPaths(NamedTuple):
    worktree: Path  # top of this worktree
    git_dir: Path  # this worktree's git dir (.git, or .git/worktrees/<name>)
    common_dir: Path  # shared by all worktrees of the clone

    @property
    def fleet_root(self) -> Path:
        return self.worktree / FLEET_DIR

    @property
    def events_dir(self) -> Path:
        return self.worktree / EVENTS_DIR

    @property
    def config_file(self) -> Path:
        return self.worktree / CONFIG_FILE

    @property
    def index_file(self) -> Path:
        return self.common_dir / "fleet" / "index.sqlite"

    @property
    def local_dir(self) -> Path:
        """Untracked per-worktree state: writer id, lock, logs."""
        return self.git_dir / "fleet"

    @property
    def initialized(self) -> bool:
        """A config here, or an index in the clone (a new worktree of an initialised clone)."""
        return self.config_file.is_file() or self.index_file.is_file()

    def require_initialized(self) -> RepoPaths:
        if not self.initialized:
            raise NotInitializedError(
                f"fleetgit is not initialised in {self.worktree}", hint="run: fleetgit init"
            )
        return self


def _read_gitfile(dotgit: Path) -> Path | None:
    """A worktree's `.git` may be a file saying `gitdir: <path>`."""
    try:
        text = dotgit.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else (dotgit.parent / target).resolve()


def _common_dir(git_dir: Path) -> Path:
    commondir = git_dir / "commondir"
    if commondir.is_file():
        rel = commondir.read_text(encoding="utf-8").strip()
        path = Path(rel)
        return (path if path.is_absolute() else git_dir / path).resolve()
    return git_dir


def locate(start: str | os.PathLike[str] | None = None) -> RepoPaths:
    """Find the enclosing worktree of `start` (default: the current directory)."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    if not here.is_dir():
        what = "not a directory" if here.exists() else "no such directory"
        raise NotARepositoryError(f"{what}: {here}", hint="check the -C path")
    for candidate in (here, *here.parents):
        dotgit = candidate / ".git"
        if dotgit.is_dir() and (dotgit / "HEAD").exists():
            return RepoPaths(candidate, dotgit, _common_dir(dotgit))
        if dotgit.is_file():
            git_dir = _read_gitfile(dotgit)
            if git_dir is not None and git_dir.is_dir():
                return RepoPaths(candidate, git_dir, _common_dir(git_dir))
        if _is_bare(candidate):
            raise NotARepositoryError(
                f"{candidate} is a bare git repository: fleetgit needs a worktree",
                hint=f"clone it (git clone {candidate} DIR) or add one"
                f" (git -C {candidate} worktree add DIR)",
            )
    raise NotARepositoryError(f"not a git repository: {here}", hint="git init")


def locate_repository(start: str | os.PathLike[str] | None = None) -> RepoPaths:
    """`locate`, or else a bare repository: its git dir stands for the work tree it lacks (so
    no segment file is found there, and only committed segments are read: `fleetgit guard`)."""
    try:
        return locate(start)
    except NotARepositoryError:
        here = Path(start if start is not None else os.getcwd()).resolve()
        for candidate in (here, *here.parents):
            if _is_bare(candidate):
                return RepoPaths(candidate, candidate, candidate)
        raise


def _is_bare(path: Path) -> bool:
    """A bare repository: a git dir of its own (HEAD, objects) whose config says `bare = true`."""
    if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
        return False
    try:
        config = (path / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(_bare_setting(line) for line in config.splitlines())


def _bare_setting(line: str) -> bool:
    """Whether a config line says `bare` is true, by git's boolean rules (an error path: a
    malformed value is simply not bare)."""
    from fleetgit.git.gitconfig import config_bool

    key, sep, value = line.split("#")[0].split(";")[0].partition("=")
    if key.strip().lower() != "bare":
        return False
    try:
        return config_bool("core.bare", value.strip() if sep else None)
    except ValidationError:
        return False
