"""`fleetgit guard`: the pre-push rule where code lands (CI, a bare repository's pre-receive)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from fleetgit.cli.common import JsonOpt, boundary, globals_of, print_json
from fleetgit.ledger import clock
from fleetgit.ledger.errors import ValidationError

MAX_SHOWN = 20  # refused commits reported in full; then a count


def register(app: typer.Typer) -> None:
    app.command("guard")(guard)


@boundary
def guard(
    ctx: typer.Context,
    revisions: Annotated[
        list[str] | None,
        typer.Argument(metavar="RANGE", help="Commits to check, as git log takes them."),
    ] = None,
    pre_receive: Annotated[
        bool,
        typer.Option(
            "--pre-receive",
            help="Check what a push brings: git's `old new ref` lines on stdin (a pre-receive"
            " hook).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Refuse commits that touch files another pilot held when they were made; exit 1 if any.

    The pre-push hook's rule, for where `git commit --no-verify` cannot skip it: each commit is
    judged by the pilot that made it (its Fleet-Pilot trailer, else the pilot registered with
    its committer email, else the pusher given with --as, else no one: then every exclusive
    reservation held at the time blocks it), against the reservations held during the second of
    its committer date. Works in a clone that has only fetched (CI) and in a bare repository
    (its fleet events are read from the commits its refs hold).

    Example: fleetgit guard origin/main..HEAD
    """
    from fleetgit import fleet
    from fleetgit.domain.pilots.identity import git_config_entries
    from fleetgit.git import gitconfig
    from fleetgit.git.paths import locate_repository
    from fleetgit.guard import ranges
    from fleetgit.guard.hookgit import HookFailure, Where

    g = globals_of(ctx)
    if pre_receive == bool(revisions):
        raise ValidationError(
            "guard checks a RANGE or, with --pre-receive, what a push brings: give one of them",
            hint="fleetgit guard origin/main..HEAD, or in a pre-receive hook: fleetgit guard"
            " --pre-receive",
        )
    paths = locate_repository(g.directory)
    where = Where(str(paths.worktree), str(paths.git_dir), str(paths.common_dir))
    try:
        if pre_receive:
            tips = ranges.received(sys.stdin.readlines())
            args = ranges.receive_args(tips) if tips else []  # deletions only: nothing to judge
        else:
            args = ranges.range_args(revisions or [])
        ignorecase = gitconfig.ignorecase(git_config_entries(paths, r"^core\.ignorecase$"))
        commits, refused = (
            ranges.check(
                where, args, lambda oids: fleet.guard_view(g.directory, oids), g.actor, ignorecase
            )
            if args
            else ([], [])
        )
    except (HookFailure, ValueError) as exc:
        first = (str(exc).splitlines() or [""])[0]  # git's own message runs over lines
        raise ValidationError(
            f"guard: {first}",
            hint="git feeds a pre-receive hook one `OLD NEW REF` line per ref (40 hex digits)"
            if pre_receive
            else "give commits as git log takes them: fleetgit guard origin/main..HEAD",
        ) from None
    if as_json:
        print_json(
            {"checked": len(commits), "refused": [_json(c, blocks) for c, blocks in refused]}
        )
    else:
        _human(len(commits), refused)
    if refused:
        raise typer.Exit(1)


def _json(c: Any, blocks: Any) -> dict[str, Any]:
    return {
        "commit": c.oid,
        "pilot": c.pilot,
        "pilot_from": c.source,
        "committed_at": clock.iso_ms(c.time_ms),
        "paths": [
            {
                "path": b.path,
                "held_by": [
                    {"holder": r.holder, "pattern": r.pattern, "reservation_id": r.reservation_id}
                    for r in b.reservations
                ],
            }
            for b in blocks
        ],
    }


def _human(checked: int, refused: list[Any]) -> None:
    from fleetgit.guard.hook import _maker, _report

    if not refused:
        typer.echo(
            f"fleetgit: guard: {checked} commit(s) checked: none touches a path another pilot"
            " held when it was made"
        )
        return
    for c, blocks in refused[:MAX_SHOWN]:
        head = None
        if c.source == "none":  # no pilot known: every exclusive reservation held then blocks
            at = clock.iso_ms(c.time_ms).replace(".000Z", "Z")
            head = (
                f"fleetgit: refused: commit {c.oid[:12]}, made at {at}, names no pilot (no"
                " Fleet-Pilot trailer, no registered committer email), and changes"
                f" {len(blocks)} path(s) reserved then:"
            )
        typer.echo(_report(blocks, _maker(c), "refused", head), err=True)
    if len(refused) > MAX_SHOWN:
        typer.echo(
            f"fleetgit: ... and {len(refused) - MAX_SHOWN} more commit(s) like these", err=True
        )
    typer.echo(
        f"fleetgit: guard: {len(refused)} of {checked} commit(s) refused. The holders can release"
        " the files, or the commits can be rewritten by their pilots; see docs/reservations.md.",
        err=True,
    )
