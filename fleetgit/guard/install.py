"""`fleetgit hooks install|uninstall|status`: write the shim (guard/shim.sh) into git's hooks dir.

A hook that is already there (any entry: a file, a link, even a dangling one) is kept as
`fleetgit-chained/NAME` and still runs, first, under its own name: hook managers that switch on
`basename "$0"` (husky v4) keep working. A kept relative link is stored pointing at the same
target from its new directory (`../` in front) and restored as it was. Uninstall moves kept hooks
back, so the original is restored byte for byte, mode included. Installing twice changes nothing.
Kept hooks of the layout before (`NAME.fleetgit-chained`, next to the shim) are moved on install
and restored on uninstall.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import run_git
from fleetgit.ledger.errors import ConflictError

HOOKS = (
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "applypatch-msg",
    "pre-applypatch",
    "pre-push",
    "post-merge",
    "post-checkout",
    "post-rewrite",
)
MARKER = "# fleetgit-managed-hook:"
CHAINED_DIR = "fleetgit-chained"  # kept hooks: fleetgit-chained/NAME
OLD_CHAINED = ".fleetgit-chained"  # kept hooks before: NAME.fleetgit-chained
TEMPLATE = Path(__file__).resolve().parent / "shim.sh"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_PLACEHOLDER = re.compile(r"@(HOOK|PYTHON|PACKAGE_ROOT)@")


@dataclass(frozen=True)
class HookState:
    name: str
    state: str  # installed | not executable | not installed | foreign
    chained: bool
    interpreter: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "hook": self.name,
            "state": self.state,
            "chains_existing": self.chained,
            "interpreter": self.interpreter,
        }


def hooks_dir(paths: RepoPaths) -> Path:
    """Where git looks for hooks here: core.hooksPath if set, else the common hooks dir."""
    out = run_git(paths, ["rev-parse", "--path-format=absolute", "--git-path", "hooks"]).strip()
    return Path(out)


def sh_quote(value: str) -> str:
    """`value` as one sh word, whatever it holds: single quotes, each `'` as `'\\''`."""
    return "'" + value.replace("'", "'\\''") + "'"


def shim(name: str, python: str) -> str:
    """The shim for hook `name`, the interpreter and the package root baked in, quoted for sh
    (replaced in one pass, so a value holding a placeholder's text stays as it is)."""
    values = {"HOOK": name, "PYTHON": sh_quote(python), "PACKAGE_ROOT": sh_quote(PACKAGE_ROOT)}
    text = TEMPLATE.read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _exists(path: Path) -> bool:
    """Any entry at all, a dangling link included (git would still see a hook named there)."""
    return os.path.lexists(path)


def _ours(path: Path) -> bool:
    """A shim we wrote: a regular file with our marker. A link is the user's, whatever it
    points at."""
    if path.is_symlink():
        return False
    try:
        with open(path, "rb") as fh:
            return MARKER.encode() in fh.read(200)
    except OSError:
        return False


def _chained(directory: Path, name: str) -> Path:
    return directory / CHAINED_DIR / name


def _old_chained(directory: Path, name: str) -> Path:
    return directory / f"{name}{OLD_CHAINED}"


def _kept(directory: Path, name: str) -> Path | None:
    """The hook kept for `name`, in either layout."""
    for path in (_chained(directory, name), _old_chained(directory, name)):
        if _exists(path):
            return path
    return None


def install(paths: RepoPaths, *, force: bool = False) -> list[HookState]:
    """Write every shim, or (on a conflict) nothing: all hooks are checked before any write."""
    directory = hooks_dir(paths)
    _refuse_shared_dir(paths, directory)
    keep = [name for name in HOOKS if _to_keep(directory, name, force)]
    directory.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    for name in HOOKS:
        target = directory / name
        old = _old_chained(directory, name)
        if name in keep:  # kept: it still runs, first (with force, over a kept one)
            _move_hook(target, _chained(directory, name))
            if _exists(old):
                old.unlink()
        elif _exists(old):  # the layout before: move it where the new shim runs it
            _move_hook(old, _chained(directory, name))
        _write_shim(target, shim(name, python))
    return status(paths)


def _refuse_shared_dir(paths: RepoPaths, directory: Path) -> None:
    """A hooks dir in the work tree (core.hooksPath=.husky) that git tracks, or would pick up
    (not ignored), is shared with every clone: the shims carry this machine's interpreter path,
    and the user's hooks would move into fleetgit-chained/. Refused, with the way that works
    for everyone: the hook manager's own hooks call `fleetgit-hook NAME`."""
    top, where = paths.worktree.resolve(), directory.resolve()
    in_git = (where.is_relative_to(d.resolve()) for d in (paths.git_dir, paths.common_dir))
    if not where.is_relative_to(top) or any(in_git):
        return
    rel = where.relative_to(top).as_posix() or "."
    tracked = run_git(paths, ["ls-files", "-z", "--", rel]).strip("\0")
    ignored = rel != "." and _ignored(paths, rel)
    if not tracked and ignored:
        return  # inside the work tree but ignored: this clone's alone, like .git/hooks
    what = "tracks files in it" if tracked else "would commit it (it is not ignored)"
    raise ConflictError(
        f"core.hooksPath is {rel}, inside the work tree, and git {what}: shims written there"
        f" would carry this machine's interpreter ({sys.executable}) to every clone, and the"
        f" hooks there would move into {rel}/{CHAINED_DIR}/",
        hint=f"let each hook in {rel} call fleetgit with a line `fleetgit-hook NAME"
        ' "$@"` (NAME: its own name; at least pre-commit, prepare-commit-msg, commit-msg and'
        " pre-push), on every machine that has fleetgit installed; see docs/reservations.md,"
        " Hook managers",
    )


def _ignored(paths: RepoPaths, rel: str) -> bool:
    """Does git ignore `rel` (a directory)? check-ignore exits 0 when it does, 1 when not."""
    proc = subprocess.run(
        ["git", "-C", str(paths.worktree), "check-ignore", "-q", "--", f"{rel}/"],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def _to_keep(directory: Path, name: str, force: bool) -> bool:
    """Is there a foreign hook to keep (chain)? ConflictError when one is already kept, or
    when both layouts hold one."""
    target, kept = directory / name, _kept(directory, name)
    if _exists(_chained(directory, name)) and _exists(_old_chained(directory, name)):
        raise ConflictError(
            f"two hooks are kept for {name}: {CHAINED_DIR}/{name} and {name}{OLD_CHAINED}",
            hint=f"keep one: remove the other from {directory}, then install again",
        )
    if not _exists(target) or _ours(target):
        return False
    if kept is not None and not force:
        raise ConflictError(
            f"{target} is not fleetgit's, and {kept.relative_to(directory)} is already kept",
            hint="inspect both; `fleetgit hooks install --force` keeps the current one",
        )
    return True


def _write_shim(target: Path, content: str) -> None:
    """Write the shim when its text differs, and make it executable when it is not: git skips
    a hook it cannot execute, without a word."""
    if _ours(target) and target.read_text(encoding="utf-8") == content:
        if not os.access(target, os.X_OK):
            target.chmod(0o755)
        return
    tmp = target.with_name(f".{target.name}.fleetgit-tmp")
    if _exists(tmp):
        tmp.unlink()
    tmp.write_text(content, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, target)


def _move_hook(source: Path, dest: Path) -> None:
    """Move a hook between the hooks dir and fleetgit-chained/ (either way): a file as it is
    (bytes and mode), a relative link rewritten to point at the same place from there."""
    dest.parent.mkdir(exist_ok=True)
    link = os.readlink(source) if source.is_symlink() else None
    if link is None or os.path.isabs(link):
        os.replace(source, dest)
        return
    if dest.parent.name == CHAINED_DIR and source.parent != dest.parent:
        link = f"../{link}"  # kept one level down
    elif source.parent.name == CHAINED_DIR and link.startswith("../"):
        link = link[3:]  # back up to the hooks dir
    if _exists(dest):
        dest.unlink()
    os.symlink(link, dest)
    source.unlink()


def uninstall(paths: RepoPaths) -> list[HookState]:
    """Remove our shims and put back what was there before them (or left alone: a hook that
    replaced our shim since is the user's, and its kept one stays kept)."""
    directory = hooks_dir(paths)
    for name in HOOKS:
        target = directory / name
        if _exists(target) and _ours(target):
            target.unlink()
        kept = _kept(directory, name)
        if kept is not None and not _exists(target):
            _move_hook(kept, target)
    with contextlib.suppress(OSError):  # only when empty
        (directory / CHAINED_DIR).rmdir()
    return status(paths)


def status(paths: RepoPaths) -> list[HookState]:
    directory = hooks_dir(paths)
    states = []
    for name in HOOKS:
        target = directory / name
        chained = _kept(directory, name) is not None
        if not _exists(target):
            states.append(HookState(name, "not installed", chained, None))
        elif _ours(target):
            text = target.read_text(encoding="utf-8")
            state = "installed" if os.access(target, os.X_OK) else "not executable"
            states.append(HookState(name, state, chained, _baked(text, "python")))
        else:
            states.append(HookState(name, "foreign", chained, None))
    return states


def _baked(text: str, name: str) -> str | None:
    """The value a shim assigns to `name` (`name='...'` at the start of a line), unquoted."""
    found = re.search(rf"^{name}=", text, re.MULTILINE)
    if found is None:
        return None
    lexer = shlex.shlex(text[found.end() :], posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return lexer.get_token()
    except ValueError:  # an unterminated quote: not a shim we wrote
        return None
