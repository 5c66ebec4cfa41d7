"""The fleet at a glance, for the acting pilot: `fleetgit status` and the MCP `overview` tool
read it from here (one implementation for every interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.missions.events import PRIORITIES
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.squawk import commands as squawk

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet

WORKING = ("assigned", "in_progress", "blocked")
RANK = {p: i for i, p in enumerate(reversed(PRIORITIES))}  # as lookup.priority_rank orders


def _claimed(fleet: Fleet) -> list[dict[str, Any]]:
    """The sorties a pilot holds, in the order of a listing (priority, then creation): read by
    status (its index), not by listing every sortie."""
    found = [s for st in WORKING for s in sorties.listing(fleet, status=st) if s["assignee"]]
    found.sort(key=lambda s: (RANK.get(s["priority"], len(RANK)), s["created_hlc"]))
    return found


def gather(fleet: Fleet, limit: int) -> dict[str, Any]:
    """Me (registered or not), the active pilots, the claimed sorties and who holds them, my
    reservations, the ready sorties and my unread messages; each section at most `limit` long
    (0: all of it), and "more": how many each section left out."""
    me = fleet.actor
    now = fleet.now_ms()
    every = pilots.listing(fleet)
    mine = next((p for p in every if p["callsign"] == me), None)
    sections: dict[str, list[Any]] = {
        "pilots": [p for p in every if p["active"]],
        "claimed": _claimed(fleet),
        "reservations": [],
        "ready": sorties.listing(fleet, ready=True),
        "unread": [],
    }
    unread = 0
    if me:
        found = fleet.reservations(holder=me)
        sections["reservations"] = [r.to_json(now) for r in found]
        sections["unread"] = squawk.inbox(fleet, unread=True, limit=limit or None)
        unread = squawk.inbox_count(fleet, unread=True)
    out: dict[str, Any] = {
        "me": {
            "callsign": me,
            "registered": mine is not None and not mine["deregistered"],
            "active": bool(mine and mine["active"]),
            "status": mine["status"] if mine else None,
            "last_seen": mine["last_seen"] if mine else None,
        }
    }
    more: dict[str, int] = {}
    for key, rows in sections.items():
        total = unread if key == "unread" else len(rows)
        out[key] = rows if not limit else rows[:limit]
        more[key] = total - len(out[key])
    out["more"] = more
    return out
