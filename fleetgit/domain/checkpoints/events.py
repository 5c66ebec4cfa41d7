"""Checkpoints' event types, and the pilot's context events the recovery brief uses."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, define, opt, pct, req, strs

TRIGGERS = ("manual", "auto", "error", "compaction")
TYPES: tuple[EventType, ...] = (
    define(
        "checkpoint_created",
        "checkpoint",
        "checkpoint_id",
        "A pilot saved where it is.",
        req("checkpoint_id", "name"),
        opt("mission_id", "name"),
        opt("sortie_id", "name"),
        opt("trigger", "enum", choices=TRIGGERS),
        pct("progress_percent"),
        opt("summary", "text"),
        strs("next_steps"),
        strs("blockers"),
        strs("files_modified"),
        strs("reservations"),
        strs("locks"),
        strs("unread_messages"),
        opt("context", "object"),
    ),
    define(
        "checkpoint_restored",
        "checkpoint",
        "checkpoint_id",
        "A pilot resumed from a checkpoint.",
        req("checkpoint_id", "name"),
        opt("restored_by", "name"),
    ),
    define(
        "checkpoint_deleted",
        "checkpoint",
        "checkpoint_id",
        "A checkpoint was withdrawn.",
        req("checkpoint_id", "name"),
        opt("reason"),
    ),
    define(
        "context_compacted",
        "pilot",
        None,
        "A pilot's context window was compacted.",
        opt("summary", "text"),
        opt("tokens_before", "int", minimum=0),
        opt("tokens_after", "int", minimum=0),
    ),
    define(
        "fleet_recovered",
        "pilot",
        None,
        "A pilot recovered its state after losing context.",
        req("checkpoint_id", "name"),
        strs("reacquired"),
        strs("lost"),
    ),
)
