"""Git hook entry point: `python -m fleetgit.guard.hook NAME [ARGS]`, run by guard/shim.sh.

This is the hook path, so it stays light: no typer, pygit2 or duckdb; only the standard library,
the pattern matcher and the shared reservation rule. pre-commit, pre-merge-commit and pre-push
fail closed; post-* hooks only catch the index up and never fail the git command.
"""

from __future__ import annotations

import os
import sys

from fleetgit.git.gitconfig import config_entries, ignorecase
from fleetgit.guard.hookgit import HookFailure, Process, Where, run_git, where
from fleetgit.guard.hookindex import IndexView, full_python
from fleetgit.guard.rules import Block, blocking, time_left
from fleetgit.ledger import clock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetgit.guard.rules import Commit, Reservation

# Like rules.py: `typing`, `re` and `subprocess` each cost ~10 ms to import here; git is run with
# posix_spawn (hookgit.py), and .fleet/config.toml is read by config.py, as the commands read it.
MAX_LINES = 20
MAX_COMMITS = 10  # refused commits a push reports in full
MODES = ("enforce", "warn")
# the enforcing hooks and the git command each one guards
GUARDS = {
    "pre-commit": "commit",
    "pre-merge-commit": "merge",
    "pre-applypatch": "am",  # git am, with the patch applied to the index
    "pre-push": "push",
}


def ways_out(command: str) -> str:
    """The two ways past a refusal. A refused merge is left staged, to conclude or abort."""
    if command == "am":  # `git am --no-verify` is newer than some gits; warn mode works in all
        return (
            "To apply the patch anyway: FLEET_HOOK_MODE=warn git am --continue (or git am --abort)."
        )
    skip = f"git {command} --no-verify"
    if command == "merge":
        skip = "git commit --no-verify (this concludes the merge git stopped; or git merge --abort)"
    return (
        f"To {command} anyway: {skip}, which skips all hooks; or set FLEET_HOOK_MODE=warn"
        ' (or hook_mode = "warn" in .fleet/config.toml) to report without blocking.'
    )


def _read_settings(paths: Where) -> Process:
    """Start reading fleet.callsign and core.ignorecase the way git does (repository, global
    and system config, `git -c`), in one call that runs while the hook does other work."""
    return Process(paths, "config", "--get-regexp", "^(fleet\\.callsign|core\\.ignorecase)$")


def _settings(reading: Process) -> tuple[str | None, bool]:
    """(callsign, core.ignorecase): FLEET_CALLSIGN wins over fleet.callsign."""
    found = config_entries(reading.result()[1])
    callsign = os.environ.get("FLEET_CALLSIGN") or found.get("fleet.callsign") or None
    return callsign, ignorecase(found)


class Mode:
    """enforce or warn (in any case), and the setting it came from, for the messages."""

    __slots__ = ("setting", "warn")

    def __init__(self, paths: Where) -> None:
        """FLEET_HOOK_MODE, else hook_mode in .fleet/config.toml, else enforce. Any other value,
        or a config file the commands would refuse, is a HookFailure: the hook refuses, saying
        why (with FLEET_HOOK_MODE=warn, a bad file is reported and the command goes ahead)."""
        value = os.environ.get("FLEET_HOOK_MODE")
        self.setting = f"FLEET_HOOK_MODE={value}"
        self.warn = False
        if value:
            if value.lower() not in MODES:
                raise HookFailure(
                    f"{self.setting} is not a hook mode: expected enforce or warn (in any case)"
                )
            self.warn = value.lower() == "warn"
        file_mode = _file_mode(paths, self)
        if not value:
            self.setting = f'hook_mode = "{file_mode}" in .fleet/config.toml'
            self.warn = file_mode == "warn"

    def outcome(self, command: str) -> int:
        """Exit code after a refusal was reported: warn lets the command go ahead, saying why."""
        if self.warn:
            print(
                f"fleetgit: the {command} goes ahead: warn mode ({self.setting})", file=sys.stderr
            )
            return 0
        print(ways_out(command), file=sys.stderr)
        return 1


def _file_mode(paths: Where, mode: Mode) -> str:
    """hook_mode from .fleet/config.toml, read as the commands read the file: one they refuse
    is a HookFailure naming their error (mode.warn set: reported, and the check goes on)."""
    from fleetgit.ledger import config  # light: tomllib only for a file other than the default
    from fleetgit.ledger.errors import FleetError

    try:
        return str(config.load_checked(paths.config_file, paths.config_memo).hook_mode)
    except (FleetError, OSError) as exc:
        hint = getattr(exc, "hint", None)
        reason = f"{exc}" + (f" (hint: {hint})" if hint else "")
        if isinstance(exc, OSError):
            reason = f"cannot read {paths.config_file}: {exc.strerror or exc}"
        if not mode.warn:
            raise HookFailure(f"the commands refuse the config: {reason}") from None
        print(f"fleetgit: warning: the commands refuse the config: {reason}", file=sys.stderr)
        return "warn"


def _held(r: Reservation, now: int) -> str:
    """How a holder still holds it: time left, or that it no longer does (a commit's time)."""
    if r.live(now):
        return f"{time_left(r.expires_ms, now)} left"
    return "released since" if r.released else "expired since"


def _report(blocks: list[Block], who: str, what: str, head: str | None = None) -> str:
    """One line per path with every holder; at most MAX_LINES paths, then a count. `head`:
    another first line than `... reserved by other pilots, not WHO:`."""
    now = clock.now_ms()
    lines = [
        head or f"fleetgit: {what}: {len(blocks)} path(s) reserved by other pilots, not {who}:"
    ]
    from fleetgit.guard.patterns import (
        shown,  # loaded already (rules imports it); as stored, unescaped
    )

    for b in blocks[:MAX_LINES]:
        held = "; ".join(
            f"{r.holder} holds {shown(r.pattern)} (exclusive, {_held(r, now)})"
            for r in b.reservations
        )
        lines.append(f"  {b.path}  <- {held}")
    if len(blocks) > MAX_LINES:
        lines.append(f"  ... and {len(blocks) - MAX_LINES} more path(s)")
    return "\n".join(lines)


def _you(me: str | None) -> str:
    if me:
        return f"you ({me})"
    return "you (no identity: set FLEET_CALLSIGN or git config fleet.callsign)"


def _maker(c: Commit) -> str:
    """Who a pushed commit is judged as, and why: its trailer, its email, or the pusher."""
    at = clock.iso_ms(c.time_ms).replace(".000Z", "Z")
    how = {
        "trailer": "its Fleet-Pilot trailer",
        "email": "its committer email",
        "none": "no Fleet-Pilot trailer, no registered committer email",
    }
    pilot = c.pilot or "a pilot of no identity (set FLEET_CALLSIGN or git config fleet.callsign)"
    source = how.get(c.source, "no pilot recorded in it: you push it")
    return f"{pilot}, who made commit {c.oid[:12]} at {at} ({source}); held then"


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
        index = IndexView(paths)  # a git call it may need runs alongside the diff
        if name == "pre-push":
            reports = _push_reports(paths, index, reading, verb)
        else:
            changed = staged_paths(paths)
            live = index.live()
            me, ignorecase = _settings(reading)
            blocks = blocking(live, changed, me, ignorecase)
            reports = [_report(blocks, _you(me), verb)] if blocks else []
    except Exception as exc:  # fail closed: a check that cannot run must not pass silently
        reason = str(exc) or type(exc).__name__
        print(f"fleetgit: {verb}: the reservation check failed: {reason}", file=sys.stderr)
        return mode.outcome(command)
    if not reports:
        return 0
    print("\n".join(reports), file=sys.stderr)
    return mode.outcome(command)


def _push_reports(paths: Where, index: IndexView, reading: Process, verb: str) -> list[str]:
    """One report per pushed commit the push rule refuses (hookpush, rules.judge)."""
    from fleetgit.guard import hookpush

    lines = sys.stdin.readlines()
    me, ignorecase = _settings(reading)
    refused = hookpush.check(
        paths, lines, index, me, ignorecase, lambda raw: checked_paths(changes(raw)), DIFF_OPTIONS
    )
    reports = [_report(blocks, _maker(c), verb) for c, blocks in refused[:MAX_COMMITS]]
    if len(refused) > MAX_COMMITS:
        reports.append(f"fleetgit: ... and {len(refused) - MAX_COMMITS} more commit(s) like these")
    return reports


# git's mode of a gitlink (a submodule's commit): its path stands for a directory
GITLINK = "160000"
# whatever submodule.<name>.ignore or diff.ignoreSubmodules say, a moved gitlink is a change
DIFF_OPTIONS = ("--raw", "-z", "--no-renames", "--ignore-submodules=none", "--no-color")


def changes(raw: str) -> dict[str, bool]:
    """`--raw -z` records (`:mode mode sha sha status`, or one more colon, mode and sha per
    parent in git's combined format, then the path) as {path: a gitlink on some side}."""
    fields = [f for f in raw.split("\0") if f]  # neither a record nor a path is empty
    records, paths = fields[0::2], fields[1::2]
    if len(fields) % 2 or not all(r.startswith(":") for r in records):
        raise HookFailure(f"unexpected output from git: {raw[:200]!r}")
    found = dict.fromkeys(paths, False)
    if GITLINK in raw:  # rare: find the gitlinks
        for record, path in zip(records, paths, strict=True):
            parents = len(record) - len(record.lstrip(":"))
            if GITLINK in record[parents:].split(" ", parents + 1)[: parents + 1]:
                found[path] = True
    return found


def checked_paths(found: dict[str, bool]) -> list[str]:
    """The paths to check: a gitlink as the directory it is (`sub/`), covering its contents."""
    if not any(found.values()):
        return list(found)
    return [f"{path}/" if link else path for path, link in found.items()]


def _diff_cached(paths: Where, *against: str) -> dict[str, bool]:
    """Added, modified and deleted paths; --no-renames lists both sides of a rename."""
    return changes(run_git(paths, "diff", "--cached", *DIFF_OPTIONS, *against))


def staged_paths(paths: Where) -> list[str]:
    """The paths the commit being made changes. For a merge, only those that differ from every
    parent (what `--cc` shows of it, as pre-push checks it): a clean merge does not re-check the
    other side's own commits."""
    changed = _diff_cached(paths)
    for head in _merge_heads(paths):
        if not changed:
            break
        theirs = _diff_cached(paths, head)
        changed = {p: link or theirs[p] for p, link in changed.items() if p in theirs}
    return checked_paths(changed)


def _merge_heads(paths: Where) -> list[str]:
    """The other parents of a merge: in MERGE_HEAD when `git commit` concludes a stopped merge;
    in GITHEAD_<sha> variables during pre-merge-commit (git writes MERGE_HEAD only after it)."""
    try:
        with open(os.path.join(paths.git_dir, "MERGE_HEAD"), encoding="utf-8") as fh:
            return fh.read().split()
    except OSError:
        return [k[len("GITHEAD_") :] for k in os.environ if k.startswith("GITHEAD_")]


def catch_up(paths: Where) -> int:
    """post-merge, post-checkout, post-rewrite: catch the index up; never fail git."""
    try:
        full_python()
        from fleetgit.domain.reservations.commands import settle_conflicts
        from fleetgit.fleet import Fleet

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
    if not paths.has_fleet:
        return 0  # no fleet in this clone at all: pass silently
    if name in GUARDS:
        return guard(paths, name)
    if name in ("prepare-commit-msg", "commit-msg", "applypatch-msg"):  # hookstamp.HOOKS
        from fleetgit.guard.hookstamp import stamp

        return stamp(paths, args[1]) if len(args) > 1 else 0
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
