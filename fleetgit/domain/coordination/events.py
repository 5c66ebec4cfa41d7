"""Coordination's event types: decisions a coordinator records for the fleet or a mission."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, define, opt, req, strs

TYPES: tuple[EventType, ...] = (
    define(
        "coordinator_decision",
        "fleet|mission",
        None,
        "A coordinator's recorded decision.",
        req("decision", "text"),
        opt("rationale", "text"),
        opt("mission_id", "name"),
        opt("sortie_id", "name"),
        strs("affected"),
    ),
)
