"""Git hook entry point: `python -m fleetgit.hook NAME [ARGS]`, run by the shims in hooks/.

This is the hook path, so it stays light: no typer, pygit2 or duckdb; only the standard library,
the pattern matcher and the shared reservation rule. Pre-commit and pre-push fail closed;
post-* hooks only catch the index up and never fail the git command.
"""

from __future__ import annotations

import os
import sys

from fleetgit import clock
from fleetgit.durations import format_duration
from fleetgit.rules import Block, Reservation, blocking, load

# Like rules.py: `typing`, `re` and `subprocess` each cost ~10 ms to import here; git is run with
# posix_spawn, and the two config values are found with plain string operations.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import sqlite3
else:
    try:  # the C module alone: `sqlite3` adds datetime adapters this hook never uses (~2 ms)
        import _sqlite3 as sqlite3
    except ImportError:  # pragma: no cover - a Python without it
        import sqlite3
if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_LINES = 20


def ways_out(command: str) -> str:
    return (
        f"To {command} anyway: git {command} --no-verify (skips all hooks), or set"
        ' FLEET_HOOK_MODE=warn (or hook_mode = "warn" in .fleet/config.toml) to report'
        " without blocking."
    )


ZERO = "0" * 40


class HookFailure(Exception):
    """The check itself could not run; pre-commit and pre-push then refuse (fail closed)."""


class Where:
    """The repository the hook runs in (pathlib costs too much here)."""

    __slots__ = ("common_dir", "worktree")

    def __init__(self, worktree: str, common_dir: str) -> None:
        self.worktree, self.common_dir = worktree, common_dir

    @property
    def fleet_root(self) -> str:
        return os.path.join(self.worktree, ".fleet")

    @property
    def config_file(self) -> str:
        return os.path.join(self.worktree, ".fleet", "config.toml")

    @property
    def index_file(self) -> str:
        return os.path.join(self.common_dir, "fleet", "index.sqlite")


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
    common = git_dir
    pointer = os.path.join(git_dir, "commondir")
    if os.path.isfile(pointer):
        with open(pointer, encoding="utf-8") as fh:
            common = os.path.join(git_dir, fh.read().strip())
    return Where(top, os.path.normpath(common))


def _spawn(args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """Run a command: (exit code, stdout, stderr). Small outputs: one pipe, then the other."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    actions = [
        (os.POSIX_SPAWN_DUP2, in_r, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    pid = os.posix_spawnp(args[0], args, os.environ, file_actions=actions)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    if stdin:
        os.write(in_w, stdin.encode())
    os.close(in_w)
    out, err = _drain(out_r), _drain(err_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


def _drain(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def _git(paths: Where, *args: str, stdin: str | None = None) -> str:
    code, out, err = _spawn(["git", "-C", paths.worktree, *args], stdin)
    if code != 0:
        raise HookFailure(f"git {args[0]} failed: {err.strip() or code}")
    return out


def _config_value(text: str, key: str) -> str | None:
    """The value of `key = value` in a small config file's text (one key, no parser needed)."""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == key:
            return value.split("#", 1)[0].strip().strip("\"'")
    return None


def _settings(paths: Where) -> tuple[str | None, bool]:
    """(callsign, core.ignorecase). With FLEET_CALLSIGN set, the repository's own config file
    answers core.ignorecase (git init writes it there); otherwise one git call answers both."""
    callsign = os.environ.get("FLEET_CALLSIGN")
    if callsign:
        try:
            with open(os.path.join(paths.common_dir, "config"), encoding="utf-8") as fh:
                return callsign, (_config_value(fh.read(), "ignorecase") or "").lower() == "true"
        except OSError:
            pass
    _, out, _ = _spawn(
        [
            "git",
            "-C",
            paths.worktree,
            "config",
            "--get-regexp",
            "^(fleet\\.callsign|core\\.ignorecase)$",
        ]
    )
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    callsign = callsign or found.get("fleet.callsign") or None
    return callsign, found.get("core.ignorecase", "false").lower() == "true"


def _mode(paths: Where) -> str:
    """FLEET_HOOK_MODE, else hook_mode from .fleet/config.toml."""
    env = os.environ.get("FLEET_HOOK_MODE")
    if env:
        return env
    try:
        with open(paths.config_file, encoding="utf-8") as fh:
            return _config_value(fh.read(), "hook_mode") or "enforce"
    except OSError:
        return "enforce"


def _live_reservations(paths: Where) -> list[Reservation]:
    if not os.path.exists(paths.index_file):
        _build_index(paths)
    try:
        conn = sqlite3.connect(f"file:{paths.index_file}?mode=ro", uri=True, timeout=10)
        try:
            return load(conn, live_only=True, now_ms=clock.now_ms())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise HookFailure(f"cannot read the fleet index ({exc})") from None


def _full_python() -> None:
    """The shim starts Python with -S; the slow paths need site-packages (orjson, pygit2)."""
    import site

    site.main()


def _build_index(paths: Where) -> None:
    """No index yet in this clone: derive it from the segments (the slow path, once)."""
    _full_python()
    from fleetgit.fleet import Fleet

    Fleet.open(paths.worktree).close()


def _report(blocks: list[Block], me: str | None, verb: str) -> str:
    now = clock.now_ms()
    who = (
        f"you ({me})"
        if me
        else "you (no identity: set FLEET_CALLSIGN or git config fleet.callsign)"
    )
    lines = [f"fleetgit: {verb}: {len(blocks)} path(s) are reserved by other pilots, not {who}:"]
    for b in blocks[:MAX_LINES]:
        r = b.reservation
        left = format_duration((r.expires_ms - now) / 1000)
        lines.append(f"  {b.path}  <- {r.holder} holds {r.pattern!r} (exclusive, {left} left)")
    if len(blocks) > MAX_LINES:
        lines.append(f"  ... and {len(blocks) - MAX_LINES} more")
    return "\n".join(lines)


def check_paths(paths: Where, changed: Sequence[str], command: str) -> int:
    """The enforcing check shared by pre-commit and pre-push."""
    mode = _mode(paths)
    try:
        me, ignorecase = _settings(paths)
        blocks = blocking(_live_reservations(paths), list(changed), me, ignorecase)
    except Exception as exc:  # fail closed: a check that cannot run must not pass silently
        reason = str(exc) or type(exc).__name__
        print(f"fleetgit: the reservation check failed: {reason}", file=sys.stderr)
        print(ways_out(command), file=sys.stderr)
        return 0 if mode == "warn" else 1
    if not blocks:
        return 0
    print(_report(blocks, me, f"{command} refused"), file=sys.stderr)
    if mode == "warn":
        print("fleetgit: FLEET_HOOK_MODE=warn: letting it through.", file=sys.stderr)
        return 0
    print(ways_out(command), file=sys.stderr)
    return 1


def staged_paths(paths: Where) -> list[str]:
    """Added, modified and deleted paths; --no-renames lists both sides of a rename."""
    out = _git(paths, "diff", "--cached", "--name-only", "-z", "--no-renames")
    return [p for p in out.split("\0") if p]


def pushed_paths(paths: Where, remote: str, lines: Sequence[str]) -> list[str]:
    """Paths changed by the commits being pushed (--root for root commits, --cc for merges)."""
    commits: list[str] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[1] == ZERO:
            continue  # a deletion pushes no content
        local, remote_sha = parts[1], parts[3]
        exclude = [f"^{remote_sha}"] if remote_sha != ZERO else ["--not", f"--remotes={remote}"]
        commits += _git(paths, "rev-list", local, *exclude).split()
    if not commits:
        return []
    out = _git(
        paths,
        "diff-tree",
        "--stdin",
        "--root",
        "--cc",
        "-r",
        "--name-only",
        "-z",
        "--no-renames",
        "--no-commit-id",
        stdin="\n".join(commits) + "\n",
    )
    return sorted({p for p in out.split("\0") if p.strip()})


def catch_up(paths: Where) -> int:
    """post-merge, post-checkout, post-rewrite: catch the index up; never fail git."""
    try:
        _full_python()
        from fleetgit.fleet import Fleet
        from fleetgit.reservations import settle_conflicts

        with Fleet.open(paths.worktree) as fleet:
            settled = settle_conflicts(fleet)
        for loser, winner in settled:
            print(
                f"fleetgit: reservation {loser} lost to {winner} (earlier in total order)",
                file=sys.stderr,
            )
    except Exception as exc:
        print(
            f"fleetgit: could not catch the index up ({exc}); run: fleetgit index status",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else ""
    paths = where()
    if paths is None:
        return 0  # not in a work tree (a bare repository): nothing to guard
    if not os.path.isdir(paths.fleet_root):
        return 0  # a repository without .fleet/: pass silently
    if name == "pre-commit":
        try:
            changed = staged_paths(paths)
        except HookFailure as exc:
            return check_failed(paths, exc, "commit")
        return check_paths(paths, changed, "commit")
    if name == "pre-push":
        try:
            changed = pushed_paths(
                paths, args[1] if len(args) > 1 else "origin", sys.stdin.readlines()
            )
        except HookFailure as exc:
            return check_failed(paths, exc, "push")
        return check_paths(paths, changed, "push")
    if name in ("post-merge", "post-checkout", "post-rewrite"):
        if name == "post-rewrite":
            sys.stdin.read()
        return catch_up(paths)
    print(f"fleetgit: unknown hook {name!r}", file=sys.stderr)
    return 1


def check_failed(paths: Where, exc: Exception, command: str) -> int:
    print(f"fleetgit: the reservation check failed: {exc}", file=sys.stderr)
    print(ways_out(command), file=sys.stderr)
    return 0 if _mode(paths) == "warn" else 1


def console() -> None:
    """The `fleetgit-hook` console script (for the pre-commit framework)."""
    sys.exit(main())


if __name__ == "__main__":
    console()
