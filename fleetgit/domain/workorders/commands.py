"""Work orders: create, list, show, assign, status, complete.

Status rules (`fold.refusal`, the same in the fold): open means nobody holds it, and
setting it open clears the assignee; assigned, in_progress and blocked need an assignee (`assign`
gives one and makes it assigned); a change that changes nothing is refused; completed and
cancelled are final."""

from __future__ import annotations

import difflib
from functools import partial
from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.workorders.fold import STATUSES, refusal
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleetgit.fleet import Fleet


def _spec(type_: str, wid: str, data: dict[str, Any]) -> EventSpec:
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


def _refuse(current: dict[str, Any], event_type: str, data: dict[str, Any]) -> None:
    """Refuse what the fold would ignore (`fold.refusal`), saying why and what to do."""
    why = refusal(current, event_type, data)
    wid, status, assignee = current["work_order_id"], current["status"], current["assignee"]
    if why == "closed":
        raise ValidationError(
            f"work order {wid} is {status}: it cannot change any more",
            hint=f"add another: fleetgit workorder create TITLE --sortie {current['sortie_id']}",
        )
    if why == "unchanged" and event_type == "work_order_assigned":
        raise ValidationError(
            f"work order {wid} is already assigned to {assignee}: nothing to change",
            hint=f"fleetgit workorder show {wid}",
        )
    if why == "unchanged":
        raise ValidationError(
            f"work order {wid} is already {status}: nothing to change",
            hint=f"fleetgit workorder show {wid}",
        )
    if why == "unassigned":
        raise ValidationError(
            f"work order {wid} has no assignee: {data['status']} needs one",
            hint=f"give it to a pilot (that makes it assigned): fleetgit workorder assign {wid}"
            " CALLSIGN",
        )
    if why is not None:
        raise ValidationError(f"work order {wid}: {event_type} {data} is not valid")


def change(
    fleet: Fleet,
    ref: str,
    event_type: str,
    data: dict[str, Any],
    *,
    check: Callable[[], None] | None = None,
) -> str:
    """Record `event_type` if the work order's rules allow it; `check` runs first, inside the
    same transaction."""
    pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        if check is not None:
            check()
        wid = resolve(fleet, ref)
        _refuse(show(fleet, wid), event_type, data)
        return [_spec(event_type, wid, data)]

    return str(fleet.transact(plan)[0].data["work_order_id"])


def assign(fleet: Fleet, ref: str, callsign: str, *, allow_unknown: bool = False) -> str:
    """Give the work order to a pilot of the fleet (any callsign with `allow_unknown`)."""
    check = partial(pilots.check_known, fleet, [callsign], allow_unknown=allow_unknown)
    return change(fleet, ref, "work_order_assigned", {"assignee": callsign}, check=check)


def set_status(fleet: Fleet, ref: str, status: str, *, note: str | None = None) -> str:
    """Set a work order's status by the rules of `refusal`; `open` clears its assignee."""
    if status not in STATUSES:
        close = difflib.get_close_matches(status, STATUSES, n=1, cutoff=0.4) or ["in_progress"]
        raise ValidationError(
            f"status {status!r}: expected one of {'|'.join(STATUSES)}",
            hint=f"fleetgit workorder status {ref} {close[0]}",
        )
    return change(fleet, ref, "work_order_status_changed", {"status": status, "note": note})


def complete(fleet: Fleet, ref: str, *, summary: str | None = None) -> str:
    data = {"result": "success", "summary": summary}
    return change(fleet, ref, "work_order_completed", data)


def listing(
    fleet: Fleet, *, sortie: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    where, params = [], []
    if sortie is not None:  # an empty id is refused, not taken for no filter
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
