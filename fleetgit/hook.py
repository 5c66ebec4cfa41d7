"""Git hook entry point: `python -m fleetgit.hook NAME [ARGS]`, run by the shims in hooks/.

This is the hook path, so it stays light: no typer, pygit2 or duckdb; only the standard library,
the pattern matcher and the shared reservation rule. Pre-commit and pre-push fail closed;
post-* hooks only catch the index up and never fail the git command.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Sequence

from fleetgit import clock
from fleetgit.durations import format_duration
from fleetgit.paths import RepoPaths, locate
from fleetgit.reservations import Block, Reservation, blocking, load

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


def _git(paths: RepoPaths, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=paths.worktree, input=stdin, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise HookFailure(f"git {args[0]} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _settings(paths: RepoPaths) -> tuple[str | None, bool]:
    """(callsign, core.ignorecase) with one git call; FLEET_CALLSIGN wins over git config."""
    proc = subprocess.run(
        ["git", "config", "--get-regexp", r"^(fleet\.callsign|core\.ignorecase)$"],
        cwd=paths.worktree,
        capture_output=True,
        text=True,
        check=False,
    )
    found = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    callsign = os.environ.get("FLEET_CALLSIGN") or found.get("fleet.callsign") or None
    return callsign, found.get("core.ignorecase", "false").lower() == "true"


def _mode(paths: RepoPaths) -> str:
    env = os.environ.get("FLEET_HOOK_MODE")
    if env:
        return env
    try:
        with open(paths.config_file, "rb") as fh:
            return str(tomllib.load(fh).get("hook_mode", "enforce"))
    except (OSError, tomllib.TOMLDecodeError):
        return "enforce"


def _live_reservations(paths: RepoPaths) -> list[Reservation]:
    if not paths.index_file.exists():
        _build_index(paths)
    try:
        conn = sqlite3.connect(f"file:{paths.index_file}?mode=ro", uri=True, timeout=10)
        try:
            return load(conn, live_only=True, now_ms=clock.now_ms())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise HookFailure(f"cannot read the fleet index ({exc})") from None


def _build_index(paths: RepoPaths) -> None:
    """No index yet in this clone: derive it from the segments (the slow path, once)."""
    from fleetgit.fleet import Fleet

    Fleet(paths).close()


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


def check_paths(paths: RepoPaths, changed: Sequence[str], command: str) -> int:
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


def staged_paths(paths: RepoPaths) -> list[str]:
    """Added, modified and deleted paths; --no-renames lists both sides of a rename."""
    out = _git(paths, "diff", "--cached", "--name-only", "-z", "--no-renames")
    return [p for p in out.split("\0") if p]


def pushed_paths(paths: RepoPaths, remote: str, lines: Sequence[str]) -> list[str]:
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


def catch_up(paths: RepoPaths) -> int:
    """post-merge, post-checkout, post-rewrite: catch the index up; never fail git."""
    try:
        from fleetgit.fleet import Fleet
        from fleetgit.reservations import settle_conflicts

        with Fleet(paths) as fleet:
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
    try:
        paths = locate()
    except Exception:
        return 0  # not in a repository git would run us in: nothing to guard
    if not paths.fleet_root.is_dir():
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


def check_failed(paths: RepoPaths, exc: Exception, command: str) -> int:
    print(f"fleetgit: the reservation check failed: {exc}", file=sys.stderr)
    print(ways_out(command), file=sys.stderr)
    return 0 if _mode(paths) == "warn" else 1


def console() -> None:
    """The `fleetgit-hook` console script (for the pre-commit framework)."""
    sys.exit(main())


if __name__ == "__main__":
    console()
