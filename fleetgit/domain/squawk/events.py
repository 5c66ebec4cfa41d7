"""Squawk's event types: messages, reads, acknowledgements."""

from __future__ import annotations

from fleetgit.ledger.schema import EventType, define, names, opt, req, title

IMPORTANCE = ("low", "normal", "high", "critical")
TYPES: tuple[EventType, ...] = (
    define(
        "message_sent",
        "message",
        "message_id",
        "A squawk message to other pilots.",
        req("message_id", "name"),
        names("to", required=True, min_items=1),
        names("cc"),
        title("subject"),
        opt("body", "text"),
        opt("thread_id", "name"),
        opt("reply_to", "name"),
        opt("importance", "enum", choices=IMPORTANCE),
        opt("ack_required", "bool"),
    ),
    define(
        "message_read",
        "message",
        "message_id",
        "A recipient read a message.",
        req("message_id", "name"),
        req("reader", "name"),
    ),
    define(
        "message_acknowledged",
        "message",
        "message_id",
        "A recipient acknowledged a message.",
        req("message_id", "name"),
        req("by", "name"),
        opt("notes"),
    ),
    define(
        "message_archived",
        "message",
        "message_id",
        "A recipient archived a message.",
        req("message_id", "name"),
        req("by", "name"),
    ),
)
