"""Pilot, mission and sortie commands: thin wrappers over fleetgit.pilots/missions/sorties."""

import os
from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    AsOf,
    Commands,
    JsonOpt,
    Limit,
    Rev,
    add_group,
    boundary,
    choice_option,
    globals_of,
    int_option,
    note_unknown_callsign,
    open_fleet,
    page,
    print_json,
    print_page,
    table,
)
from fleetgit.cli.render import detail
from fleetgit.domain.missions import commands as missions
from fleetgit.domain.missions import fold as mission_fold
from fleetgit.domain.missions.events import PRIORITIES, RESULTS
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.pilots import leave
from fleetgit.domain.pilots.events import PILOT_STATUSES
from fleetgit.domain.reservations.commands import from_cwd
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.sorties import fold as sortie_fold
from fleetgit.ledger.errors import UsageError, ValidationError

Priority = Annotated[
    str | None, choice_option("--priority", choices=PRIORITIES, metavar="PRIORITY")
]


def register(app: typer.Typer) -> None:
    groups: list[tuple[str, str, Commands]] = [
        (
            "pilot",
            "Pilots: register, heartbeat, list, show, deregister, key.\n\n"
            "Example: fleetgit pilot register viper-1 --program claude-code --model opus",
            [
                ("register", pilot_register),
                ("heartbeat", pilot_heartbeat),
                ("list", pilot_list),
                ("show", pilot_show),
                ("deregister", pilot_deregister),
                ("key", pilot_key),
            ],
        ),
        (
            "mission",
            "Missions: create, list, show, start, complete, cancel, update.\n\n"
            "Example: fleetgit --as viper-1 mission create 'Ship the parser' --priority high",
            [
                ("create", mission_create),
                ("list", mission_list),
                ("show", mission_show),
                ("start", mission_start),
                ("complete", mission_complete),
                ("cancel", mission_cancel),
                ("update", mission_update),
            ],
        ),
        (
            "sortie",
            "Sorties: create, list, show, claim and work through them.\n\n"
            "Example: fleetgit --as goose sortie claim srt-4q2x --reserve",
            [
                ("create", sortie_create),
                ("list", sortie_list),
                ("show", sortie_show),
                ("claim", sortie_claim),
                ("start", sortie_start),
                ("resume", sortie_resume),
                ("complete", sortie_complete),
                ("progress", sortie_progress),
                ("block", sortie_block),
                ("cancel", sortie_cancel),
                ("unclaim", sortie_unclaim),
                ("update", sortie_update),
            ],
        ),
    ]
    for name, help, commands in groups:
        add_group(app, name, help, commands)


def _out(value: Any, as_json: bool, human: str) -> None:
    print_json(value) if as_json else typer.echo(human)


# -- pilots ----------------------------------------------------------------------------------


@boundary
def pilot_register(
    ctx: typer.Context,
    callsign: Annotated[str, typer.Argument(metavar="CALLSIGN")],
    program: Annotated[str | None, typer.Option("--program")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    task: Annotated[str | None, typer.Option("--task")] = None,
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            help="The git committer email of its commits: pre-push judges a commit without a"
            " Fleet-Pilot trailer as this pilot's.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a pilot (an agent) under a callsign; again to rejoin after deregistering.

    Registering again keeps the program, model, task and email not given anew.

    Example: fleetgit pilot register viper-1 --program claude-code --model opus --task "parser"
    """
    with open_fleet(ctx) as fleet:
        out = pilots.register(fleet, callsign, program=program, model=model, task=task, email=email)
    _out(out, as_json, f"registered pilot {callsign}")


@boundary
def pilot_heartbeat(
    ctx: typer.Context,
    status: Annotated[
        str | None, choice_option("--status", choices=PILOT_STATUSES, metavar="STATUS")
    ] = None,
    task: Annotated[str | None, typer.Option("--task")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Say you are alive (and optionally what you are doing).

    Example: fleetgit --as viper-1 pilot heartbeat --status busy --task "lexer tests"
    """
    with open_fleet(ctx) as fleet:
        out = pilots.heartbeat(fleet, status=status, task=task)
    _out(out, as_json, f"{out['callsign']}: {out['status']}")


@boundary
def pilot_list(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="Only pilots seen recently.")] = False,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List pilots, with their last sign of life.

    Example: fleetgit pilot list --active
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(pilots.listing(fleet, active_only=active), limit)
    human = (
        table(
            [
                (
                    r["callsign"],
                    "yes" if r["active"] else "no",
                    r["status"],
                    r["program"] or "-",
                    r["email"] or "-",
                    r["last_seen"] or "-",
                    r["current_task"] or r["task"] or "",
                )
                for r in rows
            ],
            ["CALLSIGN", "ACTIVE", "STATUS", "PROGRAM", "EMAIL", "LAST SEEN", "TASK"],
        )
        if rows
        else "no pilots"
    )
    print_page("pilots", rows, more, as_json, human)


@boundary
def pilot_show(
    ctx: typer.Context,
    callsign: Annotated[str, typer.Argument(metavar="CALLSIGN")],
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one pilot and the sorties assigned to it.

    Example: fleetgit pilot show viper-1
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = pilots.show(fleet, callsign)
    _out(out, as_json, detail(out))


KEY_ACTIONS = ("export", "import", "add", "rotate", "revoke", "admin-create")


@boundary
def pilot_key(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(metavar="export|import|add|rotate|revoke|admin-create")],
    callsign: Annotated[
        str | None, typer.Argument(help="with --admin: the pilot whose key it is")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="the public key (base64url)")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="sign with this clone's fleet admin key")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Manage the acting pilot's signing key (Ed25519; docs/trust.md).

    export prints this clone's private key of the pilot (keep it secret); import reads one from
    stdin, for a second machine of the same pilot (only a key the ledger already lists for it);
    add gives a key to a pilot registered before keys existed; rotate makes a new key, signed
    by the old one, and revokes the old one (what it signed before stays valid); revoke --key
    revokes one of the pilot's keys. admin-create makes this clone's fleet admin key and prints
    the line naming it in .fleet/config.toml; then `revoke CALLSIGN --admin [--key KEY]` and
    `add CALLSIGN --admin [--key KEY]` change any pilot's keys (a lost or compromised key).

    Example: fleetgit --as viper-1 pilot key export > key (then on the other machine: import < key)
    """
    from fleetgit.domain.pilots import keying

    if action not in KEY_ACTIONS:
        raise UsageError(f"unknown key action {action!r}", hint=f"one of: {', '.join(KEY_ACTIONS)}")
    if (admin or callsign is not None) and action not in ("add", "revoke"):
        raise UsageError(
            f"pilot key {action} takes no CALLSIGN or --admin", hint="only add and revoke do"
        )
    if admin != (callsign is not None):
        raise UsageError(
            "a CALLSIGN goes with --admin", hint="fleetgit pilot key revoke CALLSIGN --admin"
        )
    with open_fleet(ctx) as fleet:
        if action == "export":
            text = keying.export(fleet)
            _out({"callsign": fleet.me(), "private_key": text}, as_json, text)
            return
        if action == "admin-create":
            made = keying.admin_create(fleet)
            line = made["config_line"]
            note = "" if made["listed"] else f"\nname it in .fleet/config.toml: {line}"
            _out(made, as_json, f"fleet admin key {made['key']} ({made['path']}){note}")
            return
        if action == "revoke":
            if callsign is not None:
                out = keying.admin_revoke(fleet, callsign, key)
            elif key is None:
                raise UsageError("which key? pass --key KEY", hint="or rotate: pilot key rotate")
            else:
                out = keying.revoke(fleet, key)
            _out(out, as_json, f"pilot {out['callsign']}: revoked {', '.join(out['revoked'])}")
            return
        if action == "import":
            out = keying.import_key(fleet, typer.get_text_stream("stdin").read())
        elif action == "add":
            out = keying.add(fleet) if callsign is None else keying.admin_add(fleet, callsign, key)
        else:
            out = keying.rotate(fleet)
    _out(out, as_json, f"pilot {out['callsign']}: key {out['key']}")


@boundary
def pilot_deregister(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Leave the fleet: its reservations and locks are released and the sorties it holds
    handed back (open again), in the same batch.

    Example: fleetgit --as viper-1 pilot deregister --reason "done for today"
    """
    with open_fleet(ctx) as fleet:
        out = leave.deregister(fleet, reason=reason)
    lines = [f"deregistered {out['callsign']}"]
    for key, what in (
        ("handed_back", "handed back (open again)"),
        ("released", "released"),
        ("unlocked", "unlocked"),
    ):
        if out[key]:
            lines.append(f"{what}: {', '.join(out[key])}")
    _out(out, as_json, "\n".join(lines))


# -- missions --------------------------------------------------------------------------------


@boundary
def mission_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(metavar="TITLE")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    priority: Priority = "medium",
    as_json: JsonOpt = False,
) -> None:
    """Create a mission; prints its id.

    Example: fleetgit --as viper-1 mission create "Ship the parser" --priority high
    """
    with open_fleet(ctx) as fleet:
        mission_id = missions.create(
            fleet, title, description=description, priority=priority or "medium"
        )
        out = missions.show(fleet, mission_id)
    _out(out, as_json, mission_id)


@boundary
def mission_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        choice_option("--status", choices=mission_fold.STATUSES, metavar="STATUS"),
    ] = None,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List missions by priority, with sortie progress rolled up.

    Example: fleetgit mission list --status in_progress
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(missions.listing(fleet, status=status), limit)
    human = (
        table(
            [
                (
                    r["mission_id"],
                    r["priority"],
                    r["status"],
                    f"{r['progress']}%",
                    r["sorties"],
                    r["title"],
                )
                for r in rows
            ],
            ["ID", "PRIORITY", "STATUS", "PROGRESS", "SORTIES", "TITLE"],
        )
        if rows
        else "no missions"
    )
    print_page("missions", rows, more, as_json, human)


def _mission_view(m: dict[str, Any]) -> str:
    head = [
        f"{m['mission_id']}  {m['title']}",
        f"status {m['status']}, priority {m['priority']}, created by {m['created_by'] or '-'}",
        f"progress {m['progress']}% over {m['sorties']} sortie(s): "
        + (", ".join(f"{n} {k}" for k, n in sorted(m["by_status"].items())) or "none yet"),
    ]
    if m["description"]:
        head.append(m["description"])
    if m["result"]:
        head.append(f"result {m['result']}: {m['summary'] or ''}")
    rows = [
        (
            x["sortie_id"],
            x["priority"],
            x["status"],
            x["assignee"] or "-",
            f"{x['percent']}%",
            x["title"],
        )
        for x in m["sortie_list"]
    ]
    body = (
        table(rows, ["SORTIE", "PRIORITY", "STATUS", "ASSIGNEE", "DONE", "TITLE"]) if rows else ""
    )
    return "\n".join(head) + ("\n\n" + body if body else "")


def _sortie_view(x: dict[str, Any]) -> str:
    lines = [
        f"{x['sortie_id']}  {x['title']}",
        f"status {x['status']} ({x['percent']}%), priority {x['priority']},"
        f" assigned to {x['assignee'] or 'nobody'}, mission {x['mission_id'] or '-'}",
    ]
    for label, key in (
        ("note", "note"),
        ("blocked", "blocked_reason"),
        ("summary", "summary"),
        ("description", "description"),
    ):
        if x[key]:
            lines.append(f"{label}: {x[key]}")
    if x["files"]:
        lines.append("files: " + ", ".join(x["files"]))
    if x["depends_on"]:
        lines.append("depends on: " + ", ".join(_dependency(d) for d in x["depends_on"]))
    if x["dependents"]:
        lines.append("needed by: " + ", ".join(x["dependents"]))
    return "\n".join(lines)


def _dependency(d: dict[str, Any]) -> str:
    if d["cycle"]:
        return f"{d['sortie_id']} ({d['status']}; ignored: it closes {' -> '.join(d['cycle'])})"
    return f"{d['sortie_id']} ({d['status']})"


@boundary
def mission_show(
    ctx: typer.Context,
    mission: Annotated[str, typer.Argument(metavar="ID")],
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a mission with its sorties and progress.

    Example: fleetgit mission show msn-7k3m
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = missions.show(fleet, mission)
    _out(out, as_json, _mission_view(out))


def _mission_change(
    ctx: typer.Context,
    ref: str,
    event_type: str,
    data: dict[str, Any],
    as_json: bool,
    force: bool = False,
) -> None:
    with open_fleet(ctx) as fleet:
        mission_id = missions.transition(fleet, ref, event_type, data, force=force)
        out = missions.show(fleet, mission_id)
    _out(out, as_json, f"mission {mission_id}: {out['status']}")


ForceEnd = Annotated[
    bool, typer.Option("--force", help="Cancel its open sorties in the same batch.")
]


@boundary
def mission_start(
    ctx: typer.Context,
    mission: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Start a planned mission.

    Example: fleetgit --as viper-1 mission start msn-7k3m
    """
    _mission_change(ctx, mission, "mission_started", {}, as_json)


@boundary
def mission_complete(
    ctx: typer.Context,
    mission: Annotated[str, typer.Argument(metavar="ID")],
    result: Annotated[
        str, choice_option("--result", choices=RESULTS, metavar="RESULT")
    ] = "success",
    summary: Annotated[str | None, typer.Option("--summary")] = None,
    force: ForceEnd = False,
    as_json: JsonOpt = False,
) -> None:
    """Complete a mission: refused while sorties of it are open, unless --force.

    Example: fleetgit --as viper-1 mission complete msn-7k3m --result partial --summary "lexer only"
    """
    data = {"result": result, "summary": summary}
    _mission_change(ctx, mission, "mission_completed", data, as_json, force)


@boundary
def mission_cancel(
    ctx: typer.Context,
    mission: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    force: ForceEnd = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a mission: refused while sorties of it are open, unless --force.

    Example: fleetgit --as viper-1 mission cancel msn-7k3m --reason "superseded" --force
    """
    _mission_change(ctx, mission, "mission_cancelled", {"reason": reason}, as_json, force)


@boundary
def mission_update(
    ctx: typer.Context,
    mission: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    priority: Priority = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a mission's title, description or priority.

    Example: fleetgit --as viper-1 mission update msn-7k3m --priority critical
    """
    with open_fleet(ctx) as fleet:
        mission_id = missions.update(
            fleet, mission, {"title": title, "description": description, "priority": priority}
        )
        out = missions.show(fleet, mission_id)
    _out(out, as_json, f"updated mission {mission_id}")


# -- sorties ---------------------------------------------------------------------------------


@boundary
def sortie_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(metavar="TITLE")],
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    priority: Priority = "medium",
    files: Annotated[
        list[str] | None,
        typer.Option("--file", metavar="PATH", help="A file it will touch (repeat)."),
    ] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option("--depends-on", metavar="ID", help="Must complete first (repeat)."),
    ] = None,
    allow_broad: Annotated[
        bool,
        typer.Option("--allow-broad", help="Allow a --file covering the whole repository."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a sortie; prints its id.

    Example: fleetgit --as viper-1 sortie create "Lexer" --mission msn-7k3m --file src/lexer.py
    --depends-on srt-4q2x
    """
    with open_fleet(ctx) as fleet:
        sid = sorties.create(
            fleet,
            title,
            mission=mission,
            description=description,
            priority=priority or "medium",
            files=from_cwd(fleet, files or [], globals_of(ctx).directory or os.getcwd()),
            depends_on=depends_on or [],
            allow_broad=allow_broad,
        )
        out = sorties.show(fleet, sid)
    _out(out, as_json, sid)


@boundary
def sortie_list(
    ctx: typer.Context,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    status: Annotated[
        str | None, choice_option("--status", choices=sortie_fold.STATUSES, metavar="STATUS")
    ] = None,
    assigned_to: Annotated[str | None, typer.Option("--assigned-to", metavar="CALLSIGN")] = None,
    ready: Annotated[
        bool, typer.Option("--ready", help="Open, with every dependency completed.")
    ] = False,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """List sorties by priority.

    Example: fleetgit sortie list --ready
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        found = sorties.listing(
            fleet, mission=mission, status=status, assigned_to=assigned_to, ready=ready
        )
        note_unknown_callsign(fleet, "sortie list --assigned-to", assigned_to, found, as_json)
    rows, more = page(found, limit)
    human = (
        table(
            [
                (
                    r["sortie_id"],
                    r["priority"],
                    r["status"],
                    r["assignee"] or "-",
                    f"{r['percent']}%",
                    r["title"],
                )
                for r in rows
            ],
            ["ID", "PRIORITY", "STATUS", "ASSIGNEE", "DONE", "TITLE"],
        )
        if rows
        else "no sorties"
    )
    print_page("sorties", rows, more, as_json, human)


@boundary
def sortie_show(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a sortie, its dependencies and dependents.

    Example: fleetgit sortie show srt-4q2x
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        out = sorties.show(fleet, sortie)
    _out(out, as_json, _sortie_view(out))


@boundary
def sortie_claim(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    reserve: Annotated[
        bool, typer.Option("--reserve", help="Also reserve its files, in the same batch.")
    ] = False,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="TTL of those reservations (with --reserve).")
    ] = None,
    allow_broad: Annotated[
        bool,
        typer.Option("--allow-broad", help="With --reserve: allow a file covering everything."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Claim a sortie: it becomes yours, unless another active pilot holds it.

    A sortie whose holder is no longer active (silent, or deregistered) can be taken over,
    even started or blocked: it goes back to assigned, to you; then start it.

    Example: fleetgit --as viper-1 sortie claim srt-4q2x --reserve
    """
    if ttl is not None and not reserve:
        raise UsageError(
            "--ttl needs --reserve: it is the TTL of the reservations --reserve takes",
            hint=f"fleetgit sortie claim {sortie} --reserve --ttl {ttl} (or leave out --ttl)",
        )
    with open_fleet(ctx) as fleet:
        out = sorties.claim(fleet, sortie, reserve=reserve, ttl=ttl, allow_broad=allow_broad)
    sid, taken = out["sortie_id"], out["taken_from"]
    human = f"sortie {sid} is yours ({out['assignee']})"
    if taken:
        human += f", taken over from {taken}; next: fleetgit sortie start {sid}"
    _out(out, as_json, human)


def _sortie_act(
    ctx: typer.Context, ref: str, event_type: str, data: dict[str, Any], as_json: bool
) -> None:
    with open_fleet(ctx) as fleet:
        sid = sorties.act(fleet, ref, event_type, data)
        out = sorties.show(fleet, sid)
    _out(out, as_json, f"sortie {sid}: {out['status']} ({out['percent']}%)")


@boundary
def sortie_start(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Start your assigned sortie (its dependencies must be completed).

    Example: fleetgit --as viper-1 sortie start srt-4q2x
    """
    _sortie_act(ctx, sortie, "sortie_started", {}, as_json)


@boundary
def sortie_resume(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Resume your blocked sortie.

    Example: fleetgit --as viper-1 sortie resume srt-4q2x
    """
    _sortie_act(ctx, sortie, "sortie_resumed", {}, as_json)


@boundary
def sortie_complete(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    result: Annotated[
        str, choice_option("--result", choices=RESULTS, metavar="RESULT")
    ] = "success",
    summary: Annotated[str | None, typer.Option("--summary")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Complete your sortie.

    Example: fleetgit --as viper-1 sortie complete srt-4q2x --summary "lexer done"
    """
    _sortie_act(ctx, sortie, "sortie_completed", {"result": result, "summary": summary}, as_json)


@boundary
def sortie_progress(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    percent: Annotated[int, int_option("--percent", high=100)],
    note: Annotated[str | None, typer.Option("--note")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Report progress on your sortie.

    Example: fleetgit --as viper-1 sortie progress srt-4q2x --percent 60 --note "tokens done"
    """
    _sortie_act(ctx, sortie, "sortie_progress", {"percent": percent, "note": note}, as_json)


@boundary
def sortie_block(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason")],
    as_json: JsonOpt = False,
) -> None:
    """Mark your sortie blocked, with the reason.

    Example: fleetgit --as viper-1 sortie block srt-4q2x --reason "waiting for the grammar"
    """
    _sortie_act(ctx, sortie, "sortie_blocked", {"reason": reason}, as_json)


@boundary
def sortie_cancel(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a sortie.

    Example: fleetgit --as viper-1 sortie cancel srt-4q2x --reason "not needed"
    """
    with open_fleet(ctx) as fleet:
        sid = sorties.act(fleet, sortie, "sortie_cancelled", {"reason": reason})
        out = sorties.show(fleet, sid)
    _out(out, as_json, f"sortie {sid}: cancelled")


@boundary
def sortie_unclaim(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand your claimed sortie back: open again with no assignee (its progress kept); what
    `claim --reserve` reserved for it is released.

    Example: fleetgit --as viper-1 sortie unclaim srt-4q2x --reason "out of time"
    """
    with open_fleet(ctx) as fleet:
        sorties.unclaim(fleet, sortie, reason=reason)
        out = sorties.show(fleet, sorties.resolve(fleet, sortie))
    _out(out, as_json, f"sortie {out['sortie_id']}: handed back, open")


@boundary
def sortie_update(
    ctx: typer.Context,
    sortie: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    priority: Priority = None,
    mission: Annotated[str | None, typer.Option("--mission", metavar="ID")] = None,
    files: Annotated[list[str] | None, typer.Option("--file", metavar="PATH")] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option(
            "--depends-on", metavar="ID", help="Replaces its dependencies (repeat for more)."
        ),
    ] = None,
    no_depends: Annotated[
        bool, typer.Option("--no-depends", help="Clear its dependencies.")
    ] = False,
    allow_broad: Annotated[
        bool,
        typer.Option("--allow-broad", help="Allow a --file covering the whole repository."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a sortie (dependency cycles are refused; a mission that is over is refused).

    --depends-on replaces the dependencies; --no-depends clears them.

    Example: fleetgit --as viper-1 sortie update srt-4q2x --priority high --depends-on srt-9w1e
    """
    if no_depends:
        if depends_on:
            raise ValidationError(
                "--no-depends clears the dependencies; --depends-on sets them: give one",
                hint=f"fleetgit sortie update {sortie} --no-depends",
            )
        depends_on = []
    changes = {
        "title": title,
        "description": description,
        "priority": priority,
        "mission_id": mission,
        "files": files,
        "depends_on": depends_on,
    }
    with open_fleet(ctx) as fleet:
        if files is not None:  # relative to the current directory, as git takes paths
            changes["files"] = from_cwd(fleet, files, globals_of(ctx).directory or os.getcwd())
        sid = sorties.update(fleet, sortie, changes, allow_broad=allow_broad)
        out = sorties.show(fleet, sid)
    _out(out, as_json, f"updated sortie {sid}")
