"""`fleetgit hooks install|uninstall|status`: write the shims from hooks/ into git's hooks dir.

A hook that is already there is kept (renamed to NAME.fleetgit-chained) and still runs; uninstall
renames it back, so the original is restored byte for byte. Installing twice changes nothing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from fleetgit.errors import ConflictError
from fleetgit.gitrepo import run_git
from fleetgit.paths import RepoPaths

HOOKS = (
    "pre-commit",
    "pre-merge-commit",
    "pre-push",
    "post-merge",
    "post-checkout",
    "post-rewrite",
)
MARKER = "# fleetgit-managed-hook:"
CHAINED = ".fleetgit-chained"
TEMPLATE = Path(__file__).resolve().parent / "shims" / "fleetgit-hook.sh"


@dataclass(frozen=True)
class HookState:
    name: str
    state: str  # installed | not installed | foreign
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


PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def shim(name: str, python: str) -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    return (
        text.replace("@HOOK@", name)
        .replace("@PYTHON@", python)
        .replace("@PACKAGE_ROOT@", PACKAGE_ROOT)
    )


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")[:200]
    except OSError:
        return False


def install(paths: RepoPaths, *, force: bool = False) -> list[HookState]:
    """Write every shim, or (on a conflict) nothing: all hooks are checked before any write."""
    directory = hooks_dir(paths)
    keep = [name for name in HOOKS if _to_keep(directory, name, force)]
    directory.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    for name in HOOKS:
        target = directory / name
        if name in keep:
            os.replace(target, directory / f"{name}{CHAINED}")  # kept: it still runs, first
        content = shim(name, python)
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            tmp = target.with_name(f".{name}.fleetgit-tmp")
            tmp.write_text(content, encoding="utf-8")
            tmp.chmod(0o755)
            os.replace(tmp, target)
    return status(paths)


def _to_keep(directory: Path, name: str, force: bool) -> bool:
    """Is there a foreign hook to keep (chain)? ConflictError when one is already kept."""
    target, chained = directory / name, directory / f"{name}{CHAINED}"
    if not target.exists() or _ours(target):
        return False
    if chained.exists() and not force:
        raise ConflictError(
            f"{target} is not fleetgit's, and {chained.name} is already kept",
            hint="inspect both; `fleetgit hooks install --force` keeps the current one",
        )
    return True


def uninstall(paths: RepoPaths) -> list[HookState]:
    directory = hooks_dir(paths)
    for name in HOOKS:
        target, chained = directory / name, directory / f"{name}{CHAINED}"
        if target.exists() and _ours(target):
            target.unlink()
            if chained.exists():
                os.replace(chained, target)
    return status(paths)


def status(paths: RepoPaths) -> list[HookState]:
    directory = hooks_dir(paths)
    states = []
    for name in HOOKS:
        target = directory / name
        chained = (directory / f"{name}{CHAINED}").exists()
        if not target.exists():
            states.append(HookState(name, "not installed", chained, None))
        elif _ours(target):
            line = next(
                (
                    ln
                    for ln in target.read_text(encoding="utf-8").splitlines()
                    if ln.startswith("python=")
                ),
                "python=''",
            )
            states.append(HookState(name, "installed", chained, line.split("=", 1)[1].strip("'")))
        else:
            states.append(HookState(name, "foreign", chained, None))
    return states
