"""Work orders: create, list, show, assign, status, complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit import clock, ids, pilots, sorties
from fleetgit.errors import ValidationError
from fleetgit.folds.workorders import CLOSED, STATUSES

if TYPE_CHECKING:
    from fleetgit.fleet import EventSpec, Fleet


def _spec(type_: str, wid: str, data: dict[str, Any]) -> EventSpec:
    from fleetgit.fleet import EventSpec

    return EventSpec(type_, f"workorder/{wid}", {"work_order_id": wid, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(fleet.index.conn, "work_orders", "work_order_id", ref, "workorder", "wo")


def show(fleet: Fleet, ref: str) -> dict[str, Any]:
    wid = resolve(fleet, ref)
    cur = fleet.index.conn.execute("SELECT * FROM work_orders WHERE work_order_id = ?", (wid,))
    return dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))


def create(
    fleet: Fleet,
    title: str,
    *,
    sortie: str,
    description: str | None = None,
    priority: str = "medium",
) -> str:
    pilots.acting(fleet)
    wid = clock.short_id("wo")

    def plan() -> list[EventSpec]:
        sid = sorties.resolve(fleet, sortie)
        data = {"sortie_id": sid, "title": title, "description": description, "priority": priority}
        return [_spec("work_order_created", wid, data)]

    fleet.transact(plan)
    return wid


def change(fleet: Fleet, ref: str, event_type: str, data: dict[str, Any]) -> str:
    """status, complete: refused once the work order is closed."""
    pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        wid = resolve(fleet, ref)
        current = show(fleet, wid)
        if current["status"] in CLOSED:
            raise ValidationError(
                f"work order {wid} is {current['status']}: it cannot change any more",
                hint="add another: fleetgit workorder create TITLE"
                f" --sortie {current['sortie_id']}",
            )
        return [_spec(event_type, wid, data)]

    return str(fleet.transact(plan)[0].data["work_order_id"])


def assign(fleet: Fleet, ref: str, callsign: str, *, allow_unknown: bool = False) -> str:
    """Give the work order to a registered pilot (any callsign with `allow_unknown`)."""
    pilots.check_known(fleet, [callsign], allow_unknown=allow_unknown)
    return change(fleet, ref, "work_order_assigned", {"assignee": callsign})


def listing(
    fleet: Fleet, *, sortie: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    where, params = [], []
    if sortie:
        where.append("sortie_id = ?")
        params.append(sorties.resolve(fleet, sortie))
    if status:
        where.append("status = ?")
        params.append(ids.choice(status, STATUSES, "--status", "workorder list"))
    cur = fleet.index.conn.execute(
        "SELECT * FROM work_orders"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY created_hlc",
        params,
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]
