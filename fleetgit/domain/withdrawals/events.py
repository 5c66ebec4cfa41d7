"""The tombstone's event type. It sits in the stream of the event it withdraws (so that stream
is folded again) and every projection folds that stream without either of them
(fold.honour_withdrawals). Only the withdrawn event's own actor can withdraw it: a tombstone
by anyone else counts for nothing, in every clone."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, define, opt, req

WITHDRAWN = "event_withdrawn"
# every stream kind a projection folds, and the fleet's
KINDS = "pilot|mission|sortie|workorder|message|reservation|lock|checkpoint|fleet"

TYPES: tuple[EventType, ...] = (
    define(
        WITHDRAWN,
        KINDS,
        None,
        "Withdraws one earlier event of the same stream, by its own actor: every projection"
        " then folds the stream as if it had never been written (the ledger keeps both).",
        req("event_id", "name"),
        opt("reason", "text"),
    ),
)
