"""Git hook entry point: `python -m fleetgit.hook NAME [ARGS]`, run by the shims in hooks/.

This is the hook path, so it stays light: no typer, pygit2 or duckdb; only the standard library,
the pattern matcher and the shared reservation rule. pre-commit, pre-merge-commit and pre-push
fail closed; post-* hooks only catch the index up and never fail the git command.
"""

from __future__ import annotations

import os
import select
import sys

from fleetgit import clock
from fleetgit.rules import Block, Reservation, blocking, config_entries, ignorecase, load, time_left

# Like rules.py: `typing`, `re` and `subprocess` each cost ~10 ms to import here; git is run with
# posix_spawn, and hook_mode is found in .fleet/config.toml with plain string operations.
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
MODES = ("enforce", "warn")
# the enforcing hooks and the git command each one guards
GUARDS = {"pre-commit": "commit", "pre-merge-commit": "merge", "pre-push": "push"}


def ways_out(command: str) -> str:
    """The two ways past a refusal. A refused merge is left staged, to conclude or abort."""
    skip = (
        "git commit --no-verify (this concludes the merge git stopped; or git merge --abort)"
        if command == "merge"
        else f"git {command} --no-verify"
    )
    return (
        f"To {command} anyway: {skip}, which skips all hooks; or set FLEET_HOOK_MODE=warn"
        ' (or hook_mode = "warn" in .fleet/config.toml) to report without blocking.'
    )


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
    return Where(top, os.path.normpath(git_dir), os.path.normpath(common))


class _Process:
    """A command started with posix_spawn and read when needed, so two git calls can overlap."""

    __slots__ = ("err", "out", "pid")

    def __init__(self, paths: Where, *git_args: str) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        args = ["git", "-C", paths.worktree, *git_args]
        self.pid = os.posix_spawnp("git", args, os.environ, file_actions=actions)
        os.close(out_w)
        os.close(err_w)
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


def _git(paths: Where, *args: str) -> str:
    code, out, err = _Process(paths, *args).result()
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


def _read_settings(paths: Where) -> _Process:
    """Start reading fleet.callsign and core.ignorecase the way git does (repository, global
    and system config, `git -c`), in one call that runs while the hook does other work."""
    return _Process(paths, "config", "--get-regexp", "^(fleet\\.callsign|core\\.ignorecase)$")


def _settings(reading: _Process) -> tuple[str | None, bool]:
    """(callsign, core.ignorecase): FLEET_CALLSIGN wins over fleet.callsign."""
    found = config_entries(reading.result()[1])
    callsign = os.environ.get("FLEET_CALLSIGN") or found.get("fleet.callsign") or None
    return callsign, ignorecase(found)


class Mode:
    """enforce or warn (in any case), and the setting it came from, for the messages."""

    __slots__ = ("setting", "warn")

    def __init__(self, paths: Where) -> None:
        """FLEET_HOOK_MODE, else hook_mode in .fleet/config.toml, else enforce. Any other value
        is a HookFailure: the hook refuses, naming the allowed ones."""
        value = os.environ.get("FLEET_HOOK_MODE")
        self.setting = f"FLEET_HOOK_MODE={value}"
        if not value:
            value = _file_mode(paths)
            self.setting = f'hook_mode = "{value}" in .fleet/config.toml'
        if value.lower() not in MODES:
            raise HookFailure(
                f"{self.setting} is not a hook mode: expected enforce or warn (in any case)"
            )
        self.warn = value.lower() == "warn"

    def outcome(self, command: str) -> int:
        """Exit code after a refusal was reported: warn lets the command go ahead, saying why."""
        if self.warn:
            print(
                f"fleetgit: the {command} goes ahead: warn mode ({self.setting})", file=sys.stderr
            )
            return 0
        print(ways_out(command), file=sys.stderr)
        return 1


def _file_mode(paths: Where) -> str:
    try:
        with open(paths.config_file, encoding="utf-8") as fh:
            return _config_value(fh.read(), "hook_mode") or "enforce"
    except OSError:
        return "enforce"
    except UnicodeDecodeError:
        raise HookFailure(f"{paths.config_file} is not UTF-8 text") from None


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


def _report(blocks: list[Block], me: str | None, what: str) -> str:
    """One line per path with every holder; at most MAX_LINES paths, then a count."""
    now = clock.now_ms()
    who = (
        f"you ({me})"
        if me
        else "you (no identity: set FLEET_CALLSIGN or git config fleet.callsign)"
    )
    lines = [f"fleetgit: {what}: {len(blocks)} path(s) reserved by other pilots, not {who}:"]
    from fleetgit.patterns import shown  # loaded already (rules imports it); as stored, unescaped

    for b in blocks[:MAX_LINES]:
        held = "; ".join(
            f"{r.holder} holds {shown(r.pattern)} (exclusive, {time_left(r.expires_ms, now)} left)"
            for r in b.reservations
        )
        lines.append(f"  {b.path}  <- {held}")
    if len(blocks) > MAX_LINES:
        lines.append(f"  ... and {len(blocks) - MAX_LINES} more path(s)")
    return "\n".join(lines)


def guard(paths: Where, name: str) -> int:
    """pre-commit, pre-merge-commit, pre-push: refuse what touches others' reservations.
    Fails closed: a check that cannot run refuses too (warn mode only reports it)."""
    command = GUARDS[name]
    try:
        mode = Mode(paths)
    except HookFailure as exc:
        print(f"fleetgit: {command} refused: {exc}", file=sys.stderr)
        print(ways_out(command), file=sys.stderr)
        return 1
    verb = f"warning, {command} not blocked" if mode.warn else f"{command} refused"
    try:
        reading = _read_settings(paths)
        changed = (
            pushed_paths(paths, sys.stdin.readlines())
            if name == "pre-push"
            else staged_paths(paths)
        )
        live = _live_reservations(paths)
        me, ignorecase = _settings(reading)
        blocks = blocking(live, changed, me, ignorecase)
    except Exception as exc:  # fail closed: a check that cannot run must not pass silently
        reason = str(exc) or type(exc).__name__
        print(f"fleetgit: {verb}: the reservation check failed: {reason}", file=sys.stderr)
        return mode.outcome(command)
    if not blocks:
        return 0
    print(_report(blocks, me, verb), file=sys.stderr)
    return mode.outcome(command)


def _diff_cached(paths: Where, *against: str) -> list[str]:
    """Added, modified and deleted paths; --no-renames lists both sides of a rename."""
    out = _git(paths, "diff", "--cached", "--name-only", "-z", "--no-renames", *against)
    return [p for p in out.split("\0") if p]


def staged_paths(paths: Where) -> list[str]:
    """The paths the commit being made changes. For a merge, only those that differ from every
    parent (what `--cc` shows of it, as pre-push checks it): a clean merge does not re-check the
    other side's own commits."""
    changed = _diff_cached(paths)
    for head in _merge_heads(paths):
        if not changed:
            break
        theirs = set(_diff_cached(paths, head))
        changed = [p for p in changed if p in theirs]
    return changed


def _merge_heads(paths: Where) -> list[str]:
    """The other parents of a merge: in MERGE_HEAD when `git commit` concludes a stopped merge;
    in GITHEAD_<sha> variables during pre-merge-commit (git writes MERGE_HEAD only after it)."""
    try:
        with open(os.path.join(paths.git_dir, "MERGE_HEAD"), encoding="utf-8") as fh:
            return fh.read().split()
    except OSError:
        return [k[len("GITHEAD_") :] for k in os.environ if k.startswith("GITHEAD_")]


def pushed_paths(paths: Where, lines: Sequence[str]) -> list[str]:
    """Paths changed by the commits being pushed that no remote has yet: not reachable from any
    remote-tracking ref nor from what the remote has now (skipped when unknown here, as after
    someone else's push). Roots count whole; a merge, its paths that differ from every parent."""
    tips, known = [], []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or not parts[1].strip("0"):
            continue  # a deletion pushes no content
        tips.append(parts[1])
        if parts[3].strip("0"):
            known.append(parts[3])
    if not tips:
        return []
    out = _git(
        paths,
        "log",
        "--format=",
        "--name-only",
        "-z",
        "--no-renames",
        "--root",
        "--cc",
        "--no-color",
        "--no-relative",
        "--no-show-signature",
        "--ignore-missing",
        *tips,
        "--not",
        "--remotes",
        *known,
    )
    return sorted({p for p in out.split("\0") if p})


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
                f"fleetgit: reservation {loser.label()} lost to {winner.label()}, earlier in"
                " total order: it no longer blocks anyone",
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
    if name in GUARDS:
        return guard(paths, name)
    if name in ("post-merge", "post-checkout", "post-rewrite"):
        if name == "post-rewrite":
            sys.stdin.read()
        return catch_up(paths)
    print(f"fleetgit: unknown hook {name!r}", file=sys.stderr)
    return 1


def console() -> None:
    """The `fleetgit-hook` console script (for the pre-commit framework)."""
    sys.exit(main())


if __name__ == "__main__":
    console()
