"""Work orders: create, list, show, assign, status, complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit import clock, ids, sorties
from fleetgit.errors import ValidationError
from fleetgit.folds.workorders import CLOSED
from fleetgit.identity import check_callsign

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
    wid = clock.short_id("wo")

    def plan() -> list[EventSpec]:
        sid = sorties.resolve(fleet, sortie)
        data = {"sortie_id": sid, "title": title, "description": description, "priority": priority}
        return [_spec("work_order_created", wid, data)]

    fleet.transact(plan)
    return wid


def change(fleet: Fleet, ref: str, event_type: str, data: dict[str, Any]) -> str:
    """assign, status, complete: refused once the work order is closed."""
    if "assignee" in data:
        check_callsign(data["assignee"])

    def plan() -> list[EventSpec]:
        wid = resolve(fleet, ref)
        status = show(fleet, wid)["status"]
        if status in CLOSED:
            raise ValidationError(f"work order {wid} is {status}: it cannot change any more")
        return [_spec(event_type, wid, data)]

    return str(fleet.transact(plan)[0].data["work_order_id"])


def listing(fleet: Fleet, *, sortie: str | None = None) -> list[dict[str, Any]]:
    params: tuple[str, ...] = (sorties.resolve(fleet, sortie),) if sortie else ()
    cur = fleet.index.conn.execute(
        "SELECT * FROM work_orders"
        + (" WHERE sortie_id = ?" if sortie else "")
        + " ORDER BY created_hlc",
        params,
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]
