"""Pilots: register, heartbeat, list, show, deregister."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit import clock
from fleetgit.errors import NotFoundError, ValidationError
from fleetgit.identity import check_callsign

if TYPE_CHECKING:
    from fleetgit.fleet import EventSpec, Fleet


def _spec(type_: str, callsign: str, data: dict[str, Any]) -> EventSpec:
    from fleetgit.fleet import EventSpec

    return EventSpec(type_, f"pilot/{callsign}", data, actor=callsign)


def register(
    fleet: Fleet,
    callsign: str,
    *,
    program: str | None = None,
    model: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    check_callsign(callsign)
    data = {"callsign": callsign, "program": program, "model": model, "task_description": task}
    fleet.transact(lambda: [_spec("pilot_registered", callsign, data)])
    return show(fleet, callsign)


def heartbeat(
    fleet: Fleet, *, status: str | None = None, task: str | None = None
) -> dict[str, Any]:
    me = fleet.me()

    def plan() -> list[EventSpec]:
        _row(fleet, me)
        return [_spec("pilot_active", me, {"status": status or "active", "current_task": task})]

    fleet.transact(plan)
    return show(fleet, me)


def deregister(fleet: Fleet, *, reason: str | None = None) -> dict[str, Any]:
    me = fleet.me()

    def plan() -> list[EventSpec]:
        if _row(fleet, me)["deregistered"]:
            raise ValidationError(f"pilot {me} is already deregistered")
        return [_spec("pilot_deregistered", me, {"reason": reason})]

    fleet.transact(plan)
    return show(fleet, me)


def _row(fleet: Fleet, callsign: str) -> dict[str, Any]:
    cur = fleet.index.conn.execute("SELECT * FROM pilots WHERE callsign = ?", (callsign,))
    row = cur.fetchone()
    if row is None:
        known = [r[0] for r in fleet.index.conn.execute("SELECT callsign FROM pilots")]
        import difflib

        close = difflib.get_close_matches(callsign, known, n=3)
        hint = (
            f"did you mean {' or '.join(close)}?" if close else "fleetgit pilot register CALLSIGN"
        )
        raise NotFoundError(f"no pilot {callsign!r}", hint=hint)
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def _decorate(fleet: Fleet, row: dict[str, Any], seen: dict[str, int], now: int) -> dict[str, Any]:
    last = seen.get(row["callsign"])
    window = fleet.config.pilot_active_window_seconds * 1000
    row["last_seen"] = clock.iso_ms(last) if last else None
    row["active"] = bool(last and now - last <= window and not row["deregistered"])
    row["deregistered"] = bool(row["deregistered"])
    row.pop("last_pos", None)
    return row


def show(fleet: Fleet, callsign: str) -> dict[str, Any]:
    row = _row(fleet, callsign)
    out = _decorate(fleet, row, fleet.last_seen(), clock.now_ms())
    out["sorties"] = [
        {"sortie_id": sid, "title": title, "status": status}
        for sid, title, status in fleet.index.conn.execute(
            "SELECT sortie_id, title, status FROM sorties WHERE assignee = ? ORDER BY created_hlc",
            (callsign,),
        )
    ]
    return out


def listing(fleet: Fleet, *, active_only: bool = False) -> list[dict[str, Any]]:
    cur = fleet.index.conn.execute("SELECT * FROM pilots ORDER BY callsign")
    names = [c[0] for c in cur.description]
    seen, now = fleet.last_seen(), clock.now_ms()
    rows = [_decorate(fleet, dict(zip(names, r, strict=True)), seen, now) for r in cur]
    return [r for r in rows if r["active"]] if active_only else rows
