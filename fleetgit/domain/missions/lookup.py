"""Missions as the other concepts see them: find one by id or prefix, its row, its spec, and the
SQL that ranks priorities. The sorties' commands use these; missions' commands add the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.missions.fold import CLOSED
from fleetgit.domain.missions.fold import priority_rank as priority_rank  # the sorties' too
from fleetgit.ledger import ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


def spec(type_: str, mission_id: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"mission/{mission_id}", {"mission_id": mission_id, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(fleet.index.conn, "missions", "mission_id", ref, "mission", "msn")


def resolve_open(fleet: Fleet, ref: str) -> str:
    """The mission `ref` names, if sorties can still be added to it (or moved into it)."""
    mission_id = resolve(fleet, ref)
    status = row(fleet, mission_id)["status"]
    if status in CLOSED:
        raise ValidationError(
            f"mission {mission_id} is {status}: cannot add sorties to it",
            hint="plan the work in a new mission: fleetgit mission create TITLE",
        )
    return mission_id


def row(fleet: Fleet, mission_id: str) -> dict[str, Any]:
    cur = fleet.index.conn.execute("SELECT * FROM missions WHERE mission_id = ?", (mission_id,))
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found, strict=True))
