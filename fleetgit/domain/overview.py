"""The fleet at a glance, for the acting pilot: `fleetgit status` and the MCP `overview` tool
read it from here (one implementation for every interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.squawk import commands as squawk

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet

WORKING = ("assigned", "in_progress", "blocked")


def gather(fleet: Fleet, limit: int, *, others: bool = False) -> dict[str, Any]:
    """Me (registered or not), the active pilots, the claimed sorties and who holds them, my
    reservations (with `others`, the other pilots' too, as "reserved": the files not to touch),
    the ready sorties and my unread messages; each section at most `limit` long (0: all of it),
    and "more": how many each section left out. The sortie sections are cut and counted in SQL
    (a listing's order: priority, then creation), not listed whole."""
    me = fleet.actor
    now = fleet.now_ms()
    every = pilots.listing(fleet)
    mine = next((p for p in every if p["callsign"] == me), None)
    active = [p for p in every if p["active"]]
    sections: dict[str, tuple[list[Any], int]] = {
        "pilots": (active, len(active)),
        "claimed": sorties.page(fleet, limit, status=WORKING, claimed=True),
        "reservations": ([], 0),
        "ready": sorties.page(fleet, limit, ready=True),
        "unread": ([], 0),
    }
    held = fleet.reservations() if me or others else []  # listed once, split by holder
    if others:
        theirs = [r.to_json(now) for r in held if r.holder != me]
        sections["reserved"] = (theirs, len(theirs))
    if me:
        found = [r.to_json(now) for r in held if r.holder.lower() == me.lower()]
        sections["reservations"] = (found, len(found))
        unread = squawk.inbox(fleet, unread=True, limit=limit or None)
        sections["unread"] = (unread, squawk.inbox_count(fleet, unread=True))
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
    for key, (rows, total) in sections.items():
        if key in ("claimed", "ready"):  # a page already, and `total` what it left out
            out[key], more[key] = rows, total
            continue
        out[key] = rows if not limit else rows[:limit]
        more[key] = total - len(out[key])
    out["more"] = more
    return out
