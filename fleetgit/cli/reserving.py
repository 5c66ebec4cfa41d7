"""Reservation and hook commands: reserve, renew, release, reservations, check, hooks."""

import os
import shlex
from typing import Annotated

import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    AsOf,
    JsonOpt,
    Limit,
    Rev,
    add_group,
    boundary,
    fail,
    globals_of,
    json_text,
    note,
    note_unknown_callsign,
    open_fleet,
    page,
    print_json,
    print_page,
    report,
    table,
)
from fleetgit.domain.reservations import commands as rsv
from fleetgit.domain.reservations.commands import (
    ReservationConflict,
    force_release,
    lost_hint,
    lost_text,
    settle_conflicts,
)
from fleetgit.git.paths import locate
from fleetgit.guard.patterns import shown
from fleetgit.guard.rules import Reservation, time_left
from fleetgit.ledger import clock
from fleetgit.ledger.errors import UsageError

TtlOpt = Annotated[
    str | None, typer.Option("--ttl", help="Duration like 90s, 30m, 2h (default from config).")
]


def register(app: typer.Typer) -> None:
    for name, fn in (
        ("reserve", reserve),
        ("renew", renew),
        ("release", release),
        ("reservations", reservations),
        ("check", check),
    ):
        app.command(name)(fn)
    add_group(
        app,
        "hooks",
        "Install, remove or inspect fleetgit's git hooks.\n\nExample: fleetgit hooks install",
        [("install", hooks_install), ("uninstall", hooks_uninstall), ("status", hooks_status)],
    )


def _left(r: Reservation, now: int) -> str:
    if r.released:
        return "released"
    if not r.live(now):
        return "expired"
    if r.lost_to is not None:
        return f"lost to {r.lost_to.label()}"
    return time_left(r.expires_ms, now)


def _rows(found: list[Reservation], now: int) -> str:
    rows = [
        (r.reservation_id, r.holder, r.pattern, r.mode, _left(r, now), r.reason or "")
        for r in found
    ]
    return table(rows, ["ID", "HOLDER", "PATTERN", "MODE", "LEFT", "REASON"])


def _show(
    found: list[Reservation],
    as_json: bool,
    empty: str,
    now: int | None = None,
    limit: int = 0,
) -> None:
    """A listing of `found` (at most `limit`, 0: all), time left counted from `now` (default:
    the clock)."""
    now = clock.now_ms() if now is None else now
    rows, more = page(found, limit)
    human = _rows(rows, now) if rows else empty
    print_page("reservations", [r.to_json(now) for r in rows], more, as_json, human)


@boundary
def reserve(
    ctx: typer.Context,
    patterns: Annotated[list[str], typer.Argument(metavar="PATTERN...", help="Paths or globs.")],
    shared: Annotated[
        bool, typer.Option("--shared", help="Others may hold shared ones too.")
    ] = False,
    ttl: TtlOpt = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    allow_broad: Annotated[
        bool, typer.Option("--allow-broad", help="Allow a pattern covering everything.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reserve files: all patterns are granted, or none.

    Exclusive by default: another pilot's commit touching them is refused by the hook.
    Re-reserving your own pattern extends it. Patterns are relative to the current directory,
    as git takes paths (:/ starts from the top); one that matches nothing is noted.

    Example: fleetgit --as viper-1 reserve 'src/parser/**' docs/parser.md --ttl 2h --reason "parser"
    """
    try:
        with open_fleet(ctx) as fleet:
            granted = fleet.reserve(
                patterns,
                shared=shared,
                ttl=ttl,
                reason=reason,
                allow_broad=allow_broad,
                cwd=_here(ctx),
            )
            unmatched = rsv.unmatched(fleet, list(dict.fromkeys(r.pattern for r in granted)))
    except ReservationConflict as exc:
        if as_json or globals_of(ctx).json:
            import sys

            err = {
                "code": exc.code,
                "message": exc.message,
                "hint": exc.hint,  # as every other refusal has it (and the HTTP API)
                "conflicts": [c.to_json() for c in exc.conflicts],
            }
            sys.stderr.write(json_text({"error": err}) + "\n")
            raise typer.Exit(1) from None
        now = clock.now_ms()
        lines = "\n".join(f"  {c.describe(now)}" for c in exc.conflicts)
        fail(exc.code, f"reservation refused, nothing granted:\n{lines}", exc.hint, 1, False)
    _show(granted, as_json, "nothing granted")
    for pattern in unmatched:
        note(
            "no_match",
            f"{shown(pattern)} matches nothing git tracks and nothing in the work tree"
            " (granted all the same)",
            "paths are relative to the current directory (:/ starts from the top); if it"
            f" is a typo: fleetgit release {shlex.quote(':/' + pattern)}",
            as_json or globals_of(ctx).json,
        )


def _here(ctx: typer.Context) -> str:
    """Where paths on the command line are relative to: -C's directory, or the current one."""
    return globals_of(ctx).directory or os.getcwd()


@boundary
def renew(
    ctx: typer.Context,
    patterns: Annotated[list[str] | None, typer.Argument(metavar="[PATTERN...]")] = None,
    ttl: TtlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Extend your reservations (all of them, or those named) to --ttl from now; never shortens.

    One that lost a clash cannot be renewed: named, it is refused (nothing renewed); among all
    of yours, the others are renewed and it is listed as lost.

    Example: fleetgit renew 'src/parser/**' --ttl 1h
    """
    with open_fleet(ctx) as fleet:
        renewed = fleet.renew(patterns or [], ttl=ttl, cwd=_here(ctx))
    _show(renewed, as_json, "nothing renewed")
    lost = [r for r in renewed if r.lost_to is not None]
    if lost and not (as_json or globals_of(ctx).json):
        report("conflict", f"not renewed: {lost_text(lost)}", lost_hint(lost), False)


@boundary
def release(
    ctx: typer.Context,
    patterns: Annotated[list[str] | None, typer.Argument(metavar="[PATTERN...]")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Release all of yours.")] = False,
    force: Annotated[
        str | None,
        typer.Option("--force", metavar="ID", help="Release another pilot's stale reservation."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Release your reservations, or (--force ID) one whose holder has gone silent.

    Give patterns, --all or --force ID: one of them (with two, one would be ignored).

    Example: fleetgit release 'src/parser/**'   |   fleetgit release --all
    """
    _one_way_to_release(patterns or [], everything, force)
    with open_fleet(ctx) as fleet:
        if force is not None:
            released = [force_release(fleet, force, reason=reason).reservation_id]
        else:
            released = fleet.release(patterns or [], everything=everything, cwd=_here(ctx))
    if as_json:
        print_json({"released": released})
    else:
        typer.echo(
            f"released {len(released)} reservation(s)"
            + (": " + ", ".join(released) if released else "")
        )


def _one_way_to_release(patterns: list[str], everything: bool, force: str | None) -> None:
    """Patterns, --all and --force ID each say what to release: more than one is a usage error
    (one of them would be ignored), and so is an empty id."""
    named = " ".join(shown(p) for p in patterns)
    if force is not None and (patterns or everything):
        other = " and ".join(filter(None, (named, "--all" if everything else "")))
        raise UsageError(
            f"release takes patterns, --all or --force ID, one of them: {other} would be"
            f" ignored beside --force {shown(force)}",
            hint=f"fleetgit release --force {shown(force)} alone; your own separately:"
            f" fleetgit release {named or '--all'}",
        )
    if patterns and everything:
        raise UsageError(
            f"release takes patterns, --all or --force ID, one of them: {named} would be"
            " ignored beside --all",
            hint=f"fleetgit release {named} (or fleetgit release --all)",
        )
    if force is not None and not force.strip():
        raise UsageError(
            "--force needs a reservation id, not an empty one",
            hint="fleetgit reservations lists them: fleetgit release --force res-...",
        )


@boundary
def reservations(
    ctx: typer.Context,
    mine: Annotated[bool, typer.Option("--mine", help="Only mine.")] = False,
    holder: Annotated[str | None, typer.Option("--holder", metavar="CALLSIGN")] = None,
    include_expired: Annotated[bool, typer.Option("--include-expired")] = False,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List active reservations with the time left.

    Example: fleetgit reservations --holder viper-1
    """
    with open_fleet(ctx, rev=rev) as fleet:
        if as_of is None and rev is None:
            settle_conflicts(fleet)  # announce clashes a merge brought in
        who = fleet.actor if mine else holder
        if mine and not who:
            fail(
                "invalid",
                "--mine needs an identity",
                "pass --as CALLSIGN or set FLEET_CALLSIGN",
                1,
                as_json,
            )
        with fleet.as_of(as_of):
            found = fleet.reservations(holder=who, include_expired=include_expired)
            note_unknown_callsign(fleet, "reservations --holder", holder, found, as_json)
            now = fleet.now_ms()
    _show(found, as_json, "no reservations", now, limit)


@boundary
def check(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH...")],
    as_json: JsonOpt = False,
) -> None:
    """Which of these paths are blocked for me, and by whom; exit 1 when any is.

    Paths are relative to the current directory, as git takes them. A directory (or a path
    ending in /) is checked whole: anything reserved inside it or over it blocks.

    Example: fleetgit --as viper-1 check src/parser/lexer.py README.md
    """
    with open_fleet(ctx) as fleet:
        blocks = fleet.check(paths, cwd=_here(ctx))
    now = clock.now_ms()
    if as_json:
        blocked = [
            {"path": b.path, "held_by": [r.to_json(now) for r in b.reservations]} for b in blocks
        ]
        print_json({"blocked": blocked, "more": 0})
    elif blocks:
        rows = [(b.path, "; ".join(_holding(r, now) for r in b.reservations)) for b in blocks]
        typer.echo(table(rows, ["PATH", "HELD BY"]))
    else:
        typer.echo(f"free: none of the {len(paths)} path(s) is reserved by another pilot")
    if blocks:
        raise typer.Exit(1)


def _holding(r: Reservation, now: int) -> str:
    return f"{r.holder} ({shown(r.pattern)}, {time_left(r.expires_ms, now)} left)"


def _hooks_out(states: list, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        print_json({"hooks": [s.to_json() for s in states], "more": 0})
        return
    rows = [(s.name, s.state, "yes" if s.chained else "", s.interpreter or "") for s in states]
    typer.echo(table(rows, ["HOOK", "STATE", "CHAINS EXISTING", "INTERPRETER"]))


@boundary
def hooks_install(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a kept hook with the current one.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Install the pre-commit, pre-push, *-msg and post-* hooks (idempotent; chains existing ones).

    Refused for a hooks dir that git tracks (core.hooksPath=.husky): see docs/reservations.md.

    Example: fleetgit hooks install
    """
    from fleetgit.guard import install as hi

    _hooks_out(hi.install(locate(globals_of(ctx).directory), force=force), as_json)


@boundary
def hooks_uninstall(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Remove fleetgit's hooks and restore the ones that were there before.

    Example: fleetgit hooks uninstall
    """
    from fleetgit.guard import install as hi

    _hooks_out(hi.uninstall(locate(globals_of(ctx).directory)), as_json)


@boundary
def hooks_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show each hook's state: installed (chaining the hook that was there before, if any),
    not installed, not executable (git skips it: run fleetgit hooks install), or foreign
    (another tool's hook: install keeps and chains it).

    Example: fleetgit hooks status --json
    """
    from fleetgit.guard import install as hi

    _hooks_out(hi.status(locate(globals_of(ctx).directory)), as_json)
