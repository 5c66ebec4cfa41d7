"""Squawk messages: the message, its recipients' read/ack/archive state, and full-text search
(an FTS5 index kept in step with the messages table by triggers).

A recipient speaks for itself (`refusal`): a read, acknowledgement or archiving counts only from
a recipient, in its own name (the event's actor is the reader it names), as `squawk` writes it."""

from __future__ import annotations

from typing import Any

from fleetgit.domain.fold import Ev, Rows, stored_row

KIND = "message"
KEY = "message_id"
TABLES = ("messages", "recipients")
RESUMES = True
DDL = """
CREATE TABLE IF NOT EXISTS messages (
    rid INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    sender TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    reply_to TEXT,
    importance TEXT NOT NULL,
    ack_required INTEGER NOT NULL,
    sent_hlc INTEGER NOT NULL,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, sent_hlc);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender, sent_hlc);
CREATE TABLE IF NOT EXISTS recipients (
    message_id TEXT NOT NULL,
    callsign TEXT NOT NULL,
    kind TEXT NOT NULL,
    read_ms INTEGER,
    acked_ms INTEGER,
    ack_notes TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    sent_hlc INTEGER NOT NULL,
    PRIMARY KEY (message_id, callsign)
);
-- sent_hlc is copied here so that an inbox page walks this index newest first, with no sort;
-- read_ms in it lets the unread filter and count skip the table
CREATE INDEX IF NOT EXISTS recipients_inbox ON recipients (callsign, archived, sent_hlc, read_ms);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(subject, body, content='messages', content_rowid='rid');
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, subject, body) VALUES (new.rid, new.subject, new.body);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, subject, body)
    VALUES ('delete', old.rid, old.subject, old.body);
END;
"""


MARKS = {"message_read": "reader", "message_acknowledged": "by", "message_archived": "by"}


def refusal(
    recipients: dict[str, Any], event_type: str, data: dict[str, Any], actor: str | None
) -> str | None:
    """Why a read, acknowledgement or archiving cannot apply to a message with `recipients`
    (callsign -> row; None: it applies). The one rule for emit, which refuses it, and the fold,
    which ignores it:

    - `not_recipient`: the reader it names is not a recipient of the message;
    - `not_self`: the reader it names is not the pilot that wrote the event."""
    reader = data.get(MARKS.get(event_type, "by"))
    if not isinstance(reader, str) or reader not in recipients:
        return "not_recipient"
    if reader != actor:
        return "not_self"
    return None


def refuses(rows: Rows, e: Ev) -> str | None:
    """Why `e` cannot apply after the folded `rows` of its stream: `exists` (a message is sent
    once), `unknown` (no message to mark), else `refusal`."""
    if e.type == "message_sent":
        return "exists" if rows.get("messages") else None
    if e.type not in MARKS:
        return None
    if not rows.get("messages"):
        return "unknown"
    return refusal({r["callsign"]: r for r in rows["recipients"]}, e.type, e.data, e.actor)


def fold(events: list[Ev], start: Rows | None = None) -> Rows:
    msg = stored_row(start, "messages")
    rcpt = {r["callsign"]: dict(r) for r in (start.get("recipients", []) if start else [])}
    for e in events:
        d = e.data
        if e.type == "message_sent":
            if msg is None:
                msg = {
                    "rid": e.pos,  # the FTS row id: the send's position, the same after a rebuild
                    "message_id": d["message_id"],
                    "sender": e.actor,
                    "subject": d["subject"],
                    "body": d.get("body") or "",
                    "thread_id": d.get("thread_id") or d["message_id"],
                    "reply_to": d.get("reply_to"),
                    "importance": d.get("importance") or "normal",
                    "ack_required": int(bool(d.get("ack_required"))),
                    "sent_hlc": e.hlc,
                    "last_pos": e.pos,
                }
                for kind in ("cc", "to"):  # "to" wins over "cc" for someone named in both
                    for who in _names(d.get(kind)):
                        rcpt[who] = {
                            "message_id": d["message_id"],
                            "callsign": who,
                            "kind": kind,
                            "read_ms": None,
                            "acked_ms": None,
                            "ack_notes": None,
                            "archived": 0,
                            "sent_hlc": e.hlc,
                        }
            continue
        if msg is None or e.type not in MARKS or refusal(rcpt, e.type, d, e.actor) is not None:
            continue
        r = rcpt[d[MARKS[e.type]]]
        r["read_ms"] = r["read_ms"] or e.ms
        if e.type == "message_acknowledged" and r["acked_ms"] is None:
            r.update(acked_ms=e.ms, ack_notes=d.get("notes"))
        elif e.type == "message_archived":
            r["archived"] = 1
        msg["last_pos"] = e.pos
    if msg is None:
        return {}
    return {"messages": [msg], "recipients": list(rcpt.values())}


def _names(value: Any) -> list[str]:
    """The callsigns of a `to` or `cc` list. Anything else (only another clone or version could
    write it) names nobody: a resumed fold compares names read back from the index as text."""
    return [who for who in value if isinstance(who, str)] if isinstance(value, list) else []
