"""Withdrawing an event: a tombstone in its stream, by its own actor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetgit.domain.pilots.commands import acting
from fleetgit.domain.withdrawals.events import WITHDRAWN
from fleetgit.ledger.codec import Event, EventSpec
from fleetgit.ledger.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


def withdraw(fleet: Fleet, ref: str, reason: str | None = None) -> Event:
    """Append the tombstone of event `ref` (an id or a unique prefix); refused unless the
    acting pilot is its actor, and for a tombstone or an event already withdrawn."""
    me = acting(fleet)
    target = fleet.show(ref)
    if target.type == WITHDRAWN:
        raise ValidationError(
            f"event {target.id} is a withdrawal itself: it cannot be withdrawn",
            hint="fleetgit events --type event_withdrawn lists them",
        )
    if target.actor != me:
        raise ValidationError(
            f"event {target.id} is {target.actor or 'nobody'}'s: only its actor withdraws it",
            hint=f"ask {target.actor} to run: fleetgit withdraw {target.id}"
            if target.actor
            else "an event without an actor cannot be withdrawn",
        )
    data: dict[str, str] = {"event_id": target.id}
    if reason:
        data["reason"] = reason

    def plan() -> list[EventSpec]:
        done = fleet.index.conn.execute(
            "SELECT 1 FROM events WHERE stream = ? AND type = ? AND actor = ?"
            " AND json_extract(data, '$.event_id') = ?",
            (target.stream, WITHDRAWN, me, target.id),
        ).fetchone()
        if done:
            raise ConflictError(f"event {target.id} is withdrawn already", hint="nothing to do")
        return [EventSpec(WITHDRAWN, target.stream, data, causation_id=target.id)]

    return fleet.transact(plan)[0]
