"""Pilots' event types: joining, signs of life, leaving."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, define, opt, req

PILOT_STATUSES = ("active", "idle", "busy")
TYPES: tuple[EventType, ...] = (
    define(
        "pilot_registered",
        "pilot",
        "callsign",
        "A pilot joined the fleet.",
        req("callsign", "name"),
        opt("program"),
        opt("model"),
        opt("task_description", "text"),
        opt("email"),  # the git committer email its commits carry: the hooks' fallback attribution
        opt("key"),  # its Ed25519 public key (ledger/keys.py); signs its events (index/trust.py)
    ),
    define(
        "pilot_active",
        "pilot",
        None,
        "A pilot's sign of life (heartbeat).",
        opt("status", "enum", choices=PILOT_STATUSES),
        opt("current_task"),
    ),
    define("pilot_deregistered", "pilot", None, "A pilot left the fleet.", opt("reason")),
    define(
        "pilot_spawned",
        "pilot",
        "callsign",
        "A pilot was started by another.",
        req("callsign", "name"),
        opt("parent", "name"),
        opt("program"),
        opt("model"),
        opt("task_description", "text"),
        opt("key"),  # the spawned pilot's public key, made by its parent
    ),
    define(
        "pilot_key_added",
        "pilot",
        None,
        "A pilot's key signed another key of its own (a second machine, a rotation).",
        req("key"),
        opt("admin"),  # the fleet admin key that signed it instead (.fleet/config.toml)
    ),
    define(
        "pilot_key_revoked",
        "pilot",
        None,
        "A pilot's key stops counting for what sorts after this event.",
        req("key"),
        opt("admin"),  # the fleet admin key that signed it instead (.fleet/config.toml)
    ),
    define(
        "pilot_terminated",
        "pilot",
        None,
        "A pilot's process ended.",
        opt("reason"),
        opt("exit_code", "int"),
    ),
)
