"""Missions: create, list, show (with sorties rolled up), start, complete, cancel, update."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit import clock, ids
from fleetgit.errors import ValidationError
from fleetgit.folds.missions import TRANSITIONS

if TYPE_CHECKING:
    from fleetgit.fleet import EventSpec, Fleet

PRIORITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _spec(type_: str, mission_id: str, data: dict[str, Any]) -> EventSpec:
    from fleetgit.fleet import EventSpec

    return EventSpec(type_, f"mission/{mission_id}", {"mission_id": mission_id, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(fleet.index.conn, "missions", "mission_id", ref, "mission", "msn")


def row(fleet: Fleet, mission_id: str) -> dict[str, Any]:
    cur = fleet.index.conn.execute("SELECT * FROM missions WHERE mission_id = ?", (mission_id,))
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found, strict=True))


def create(
    fleet: Fleet, title: str, *, description: str | None = None, priority: str = "medium"
) -> str:
    mission_id = clock.short_id("msn")
    data = {
        "title": title,
        "description": description,
        "priority": priority,
        "created_by": fleet.actor,
    }
    fleet.transact(lambda: [_spec("mission_created", mission_id, data)])
    return mission_id


def transition(fleet: Fleet, ref: str, event_type: str, data: dict[str, Any]) -> str:
    """Append a status change if the mission's current state allows it."""

    def plan() -> list[EventSpec]:
        mission_id = resolve(fleet, ref)
        status = row(fleet, mission_id)["status"]
        allowed, _ = TRANSITIONS[event_type]
        if status not in allowed:
            verb = event_type.removeprefix("mission_")
            raise ValidationError(
                f"mission {mission_id} is {status}: cannot record it as {verb}",
                hint=f"allowed from: {', '.join(allowed)}",
            )
        return [_spec(event_type, mission_id, data)]

    return str(fleet.transact(plan)[0].data["mission_id"])


def update(fleet: Fleet, ref: str, changes: dict[str, Any]) -> str:
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ValidationError("nothing to update", hint="pass --title, --description or --priority")
    return transition(fleet, ref, "mission_updated", {"changes": changes})


def listing(fleet: Fleet, *, status: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM missions" + (" WHERE status = ?" if status else "")
    cur = fleet.index.conn.execute(sql + " ORDER BY created_hlc", (status,) if status else ())
    names = [c[0] for c in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur]
    rollups = _rollups(fleet)
    for r in rows:
        r.update(rollups.get(r["mission_id"], {"sorties": 0, "progress": 0}))
    return sorted(rows, key=lambda r: (PRIORITY_ORDER[r["priority"]], r["created_hlc"]))


def _rollups(fleet: Fleet, mission_id: str | None = None) -> dict[str, dict[str, Any]]:
    sql = (
        "SELECT mission_id, count(*),"
        " avg(CASE WHEN status = 'completed' THEN 100 ELSE percent END),"
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
    out.update(_rollups(fleet, mission_id).get(mission_id, {"sorties": 0, "progress": 0}))
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
