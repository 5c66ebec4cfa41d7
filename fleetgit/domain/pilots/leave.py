"""A pilot leaves the fleet, letting go in the same batch of everything it holds (its sorties,
reservations and locks), so nothing stays blocked by a pilot that is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.locks import commands as locks
from fleetgit.domain.pilots.commands import show, spec, stored
from fleetgit.domain.reservations.commands import mine_now, release_specs
from fleetgit.domain.sorties import commands as sorties
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


def deregister(fleet: Fleet, *, reason: str | None = None) -> dict[str, Any]:
    """Leave the fleet. In the same batch, the pilot releases its reservations and locks and
    hands back the sorties it holds (open again), so nothing stays blocked by a pilot that left;
    the result lists them (`released`, `unlocked`, `handed_back`)."""
    me = fleet.me()
    let_go: dict[str, list[str]] = {}

    def plan() -> list[EventSpec]:
        if stored(fleet, me)["deregistered"]:
            raise ValidationError(
                f"pilot {me} is already deregistered",
                hint=f"to rejoin the fleet: fleetgit pilot register {me}",
            )
        why = f"{me} deregistered"
        held = sorties.held_by(fleet, me)
        specs = [s for h in held for s in sorties.unclaim_specs(fleet, h, me, why)]
        freed = {s.data["reservation_id"] for s in specs if s.type == "file_released"}
        rest = sorted({r.reservation_id for r in mine_now(fleet, me)} - freed)
        specs += release_specs(rest, why)
        keys = locks.held_by(fleet, me)
        specs += [locks.release_spec(key, me) for key in keys]
        let_go.update(
            handed_back=[h["sortie_id"] for h in held],
            released=sorted(freed | set(rest)),
            unlocked=keys,
        )
        return [*specs, spec("pilot_deregistered", me, {"reason": reason})]

    fleet.transact(plan)
    return {**show(fleet, me), **let_go}
