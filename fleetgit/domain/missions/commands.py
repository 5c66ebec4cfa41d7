"""Missions: create, list, show (with sorties rolled up), start, complete, cancel, update."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.missions.fold import CLOSED, STATUSES, TRANSITIONS
from fleetgit.domain.missions.lookup import priority_rank, resolve, row
from fleetgit.domain.missions.lookup import spec as _spec
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.sorties import commands as sorties
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


def create(
    fleet: Fleet, title: str, *, description: str | None = None, priority: str = "medium"
) -> str:
    me = pilots.acting(fleet)
    mission_id = clock.short_id("msn")
    data = {"title": title, "description": description, "priority": priority, "created_by": me}
    fleet.transact(lambda: [_spec("mission_created", mission_id, data)])
    return mission_id


def _refuse(mission_id: str, status: str, event_type: str) -> ValidationError:
    allowed, _ = TRANSITIONS[event_type]
    verb = event_type.removeprefix("mission_")
    hint = (
        f"a {status} mission is final; plan a new one: fleetgit mission create TITLE"
        if status in CLOSED
        else f"allowed only from {', '.join(allowed)}"
    )
    return ValidationError(
        f"mission {mission_id} is {status}: cannot record it as {verb}", hint=hint
    )


def open_sorties(fleet: Fleet, mission_id: str) -> list[str]:
    """The mission's sorties that are neither completed nor cancelled, oldest first."""
    return [
        sid
        for (sid,) in fleet.index.conn.execute(
            "SELECT sortie_id FROM sorties WHERE mission_id = ?"
            " AND status NOT IN ('completed', 'cancelled') ORDER BY created_hlc",
            (mission_id,),
        )
    ]


def transition(
    fleet: Fleet, ref: str, event_type: str, data: dict[str, Any], *, force: bool = False
) -> str:
    """Append a status change (or an update) if the mission's current state allows it. A
    mission is over (completed or cancelled) only when its sorties are: with sorties still
    open it is refused, unless `force`, which cancels them in the same batch (and frees what
    their claims reserved, as `sortie cancel` does)."""
    me = pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        mission_id = resolve(fleet, ref)
        status = row(fleet, mission_id)["status"]
        if status not in TRANSITIONS[event_type][0]:
            raise _refuse(mission_id, status, event_type)
        ending = open_sorties(fleet, mission_id) if event_type in _ENDS else []
        if ending and not force:
            verb = _ENDS[event_type]
            raise ConflictError(
                f"mission {mission_id} has {len(ending)} open sortie(s): {', '.join(ending)}",
                hint=f"complete or cancel them first, or: fleetgit mission {verb} {mission_id}"
                " --force (cancels them)",
            )
        reason = f"mission {mission_id} {TRANSITIONS[event_type][1]}"
        specs = [s for sid in ending for s in sorties.cancel_specs(fleet, sid, me, reason)]
        return [*specs, _spec(event_type, mission_id, data)]

    done = fleet.transact(plan)
    return str(done[-1].data["mission_id"])


_ENDS = {"mission_completed": "complete", "mission_cancelled": "cancel"}


def update(fleet: Fleet, ref: str, changes: dict[str, Any]) -> str:
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ValidationError(
            "nothing to update", hint=f"fleetgit mission update {ref} --priority high"
        )
    return transition(fleet, ref, "mission_updated", {"changes": changes})


def listing(fleet: Fleet, *, status: str | None = None) -> list[dict[str, Any]]:
    """Missions by priority (critical first), then age; with their sorties rolled up."""
    where = ""
    if status:
        ids.choice(status, STATUSES, "--status", "mission list")
        where = " WHERE status = ?"
    cur = fleet.index.conn.execute(
        f"SELECT * FROM missions{where} ORDER BY {priority_rank('priority')}, created_hlc",
        (status,) if status else (),
    )
    names = [c[0] for c in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur]
    rollups = _rollups(fleet)
    for r in rows:
        r.update(rollups.get(r["mission_id"], _NO_SORTIES))
    return rows


_NO_SORTIES = {"sorties": 0, "progress": 0, "sorties_completed": 0, "sorties_cancelled": 0}


def _rollups(fleet: Fleet, mission_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Per mission: sortie counts and progress, the average over the sorties not cancelled
    (a completed one counts as 100%)."""
    sql = (
        "SELECT mission_id, count(*),"
        " avg(CASE status WHEN 'cancelled' THEN NULL WHEN 'completed' THEN 100 ELSE percent END),"
        " sum(status = 'completed'), sum(status = 'cancelled') FROM sorties"
        + (" WHERE mission_id = ?" if mission_id else " WHERE mission_id IS NOT NULL")
        + " GROUP BY mission_id"
    )
    out = {}
    for mid, n, avg, done, cancelled in fleet.index.conn.execute(
        sql, (mission_id,) if mission_id else ()
    ):
        out[mid] = {
            "sorties": n,
            "progress": round(avg or 0),
            "sorties_completed": done,
            "sorties_cancelled": cancelled,
        }
    return out


def show(fleet: Fleet, ref: str) -> dict[str, Any]:
    mission_id = resolve(fleet, ref)
    out = row(fleet, mission_id)
    out.update(_rollups(fleet, mission_id).get(mission_id, _NO_SORTIES))
    cur = fleet.index.conn.execute(
        "SELECT sortie_id, title, status, assignee, percent, priority FROM sorties"
        " WHERE mission_id = ? ORDER BY created_hlc",
        (mission_id,),
    )
    names = [c[0] for c in cur.description]
    out["sortie_list"] = [dict(zip(names, r, strict=True)) for r in cur]
    by_status: dict[str, int] = {}
    for s in out["sortie_list"]:
        by_status[s["status"]] = by_status.get(s["status"], 0) + 1
    out["by_status"] = by_status
    return out
