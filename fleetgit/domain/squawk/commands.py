"""Squawk: messages between pilots, with threads, read/ack/archive state and full-text search."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, TypeVar

from fleetgit.domain.pilots import commands as pilots
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from fleetgit.fleet import Fleet

T = TypeVar("T")
_COLUMNS = (
    "m.message_id, m.sender, m.subject, m.body, m.thread_id, m.reply_to, m.importance,"
    " m.ack_required, m.sent_hlc"
)


def _spec(type_: str, mid: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"message/{mid}", {"message_id": mid, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(
        fleet.index.conn,
        "messages",
        "message_id",
        ref,
        "message",
        "msg",
        "fleetgit --as CALLSIGN squawk inbox --all (or squawk sent)",
    )


def thread_of(fleet: Fleet, ref: str) -> str:
    """The thread `ref` names: a thread id, or any message of it (id or unique prefix)."""
    found = fleet.index.conn.execute(
        "SELECT thread_id FROM messages WHERE thread_id = ? LIMIT 1", (ref,)
    ).fetchone()
    return str(found[0] if found else message(fleet, resolve(fleet, ref))["thread_id"])


def _split(names: Sequence[str]) -> list[str]:
    out = [n.strip() for item in names for n in item.split(",") if n.strip()]
    return list(dict.fromkeys(out))


def _thread(
    fleet: Fleet, thread: str | None, reply_to: str | None
) -> tuple[str | None, str | None]:
    """(thread id, replied message id) of a new message: a reply stays in its message's thread."""
    parent = resolve(fleet, reply_to) if reply_to else None
    thread_id = message(fleet, parent)["thread_id"] if parent else None
    if thread is not None:
        named = thread_of(fleet, thread)
        if thread_id is not None and named != thread_id:
            raise ValidationError(
                f"--thread {thread} is not the thread of {parent} ({thread_id})",
                hint="drop --thread: a reply stays in the thread of the message it answers",
            )
        thread_id = named
    return thread_id, parent


def send(
    fleet: Fleet,
    to: Sequence[str],
    subject: str,
    body: str,
    *,
    cc: Sequence[str] = (),
    thread: str | None = None,
    reply_to: str | None = None,
    importance: str = "normal",
    ack_required: bool = False,
    allow_unknown: bool = False,
) -> str:
    pilots.acting(fleet)  # the sender is the actor of the event
    to_list, cc_list = _split(to), _split(cc)
    if not to_list:
        raise ValidationError(
            "--to names nobody", hint=f"fleetgit squawk send --to CALLSIGN --subject {subject!r}"
        )
    mid = clock.short_id("msg")

    def plan() -> list[EventSpec]:
        pilots.check_known(fleet, [*to_list, *cc_list], allow_unknown=allow_unknown)
        thread_id, parent = _thread(fleet, thread, reply_to)
        data = {
            "to": to_list,
            "cc": cc_list,
            "subject": subject,
            "body": body,
            "thread_id": thread_id or mid,
            "reply_to": parent,
            "importance": importance,
            "ack_required": ack_required,
        }
        return [_spec("message_sent", mid, data)]

    fleet.transact(plan)
    return mid


def message(fleet: Fleet, mid: str) -> dict[str, Any]:
    cur = fleet.index.conn.execute(
        f"SELECT {_COLUMNS} FROM messages m WHERE m.message_id = ?", (mid,)
    )
    out = dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))
    return _decorate(fleet, out)


def _decorate(fleet: Fleet, out: dict[str, Any]) -> dict[str, Any]:
    return _decorate_all(fleet, [out])[0]


def _decorate_all(fleet: Fleet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message with its recipients' read and ack state: one query per 500 messages (one
    per message made a thread, a search or the dashboard's list cost a query each)."""
    recipients: dict[str, list[dict[str, Any]]] = {r["message_id"]: [] for r in rows}
    ids = list(recipients)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for m, c, k, r, a, n, x in fleet.index.conn.execute(
            "SELECT message_id, callsign, kind, read_ms, acked_ms, ack_notes, archived"
            f" FROM recipients WHERE message_id IN ({','.join('?' * len(chunk))})"
            " ORDER BY message_id, kind DESC, callsign",
            chunk,
        ):
            recipients[m].append(
                {
                    "callsign": c,
                    "kind": k,
                    "read": r is not None,
                    "acked": a is not None,
                    "notes": n,
                    "archived": bool(x),
                }
            )
    for out in rows:
        out["sent_at"] = clock.iso_ms(clock.hlc_ms(out.pop("sent_hlc")))
        out["ack_required"] = bool(out["ack_required"])
        out["recipients"] = recipients[out["message_id"]]
    return rows


def newest(fleet: Fleet, limit: int) -> list[dict[str, Any]]:
    """Everybody's newest `limit` messages, newest first, with their recipients' state."""
    sql = f"SELECT {_COLUMNS} FROM messages m ORDER BY m.sent_hlc DESC LIMIT ?"
    return _decorate_all(fleet, _rows(fleet, sql, [limit]))


def _rows(fleet: Fleet, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cur = fleet.index.conn.execute(sql, params)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def _inbox_where(unread: bool, include_archived: bool) -> str:
    where = ["r.callsign = ?"]
    if not include_archived:
        where.append("r.archived = 0")
    if unread:
        where.append("r.read_ms IS NULL")
    return " AND ".join(where)


def inbox(
    fleet: Fleet,
    *,
    unread: bool = False,
    include_archived: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """My messages, newest first; at most `limit` of them (all when None)."""
    rows = _rows(
        fleet,
        f"SELECT {_COLUMNS}, r.kind, r.read_ms IS NOT NULL AS read,"
        " r.acked_ms IS NOT NULL AS acked, r.archived"
        f" FROM recipients r JOIN messages m ON m.message_id = r.message_id"
        f" WHERE {_inbox_where(unread, include_archived)} ORDER BY r.sent_hlc DESC LIMIT ?",
        [fleet.me(), -1 if limit is None else limit],
    )
    for r in rows:
        r["sent_at"] = clock.iso_ms(clock.hlc_ms(r.pop("sent_hlc")))
        for flag in ("read", "acked", "archived", "ack_required"):
            r[flag] = bool(r[flag])
    return rows


def inbox_count(fleet: Fleet, *, unread: bool = False, include_archived: bool = False) -> int:
    """How many messages `inbox` would list with no limit. It visits each of them (an overview
    or inbox call of a pilot with thousands), so the answer is kept until the index changes."""
    sql = f"SELECT count(*) FROM recipients r WHERE {_inbox_where(unread, include_archived)}"
    me = fleet.me()
    total = fleet.index.memo(
        (fleet.as_of_pos, sql, me), lambda: fleet.index.conn.execute(sql, (me,)).fetchone()[0]
    )
    return int(total)


def _sender(fleet: Fleet, mid: str) -> str | None:
    row = fleet.index.conn.execute(
        "SELECT sender FROM messages WHERE message_id = ?", (mid,)
    ).fetchone()
    return row[0] if row else None


def _is_recipient(fleet: Fleet, mid: str, me: str) -> bool:
    return (
        fleet.index.conn.execute(
            "SELECT 1 FROM recipients WHERE message_id = ? AND callsign = ?", (mid, me)
        ).fetchone()
        is not None
    )


def _recipient_state(fleet: Fleet, mid: str, me: str) -> tuple[Any, ...]:
    row = fleet.index.conn.execute(
        "SELECT read_ms, acked_ms, archived FROM recipients WHERE message_id = ? AND callsign = ?",
        (mid, me),
    ).fetchone()
    if row is None:
        raise ConflictError(
            f"message {mid} is not addressed to {me}",
            hint=f"only its recipients may; yours are listed by: fleetgit --as {me} squawk inbox",
        )
    return tuple(row)


def mark(
    fleet: Fleet, ref: str, event_type: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """read, acknowledge or archive, as one of the recipients (idempotent for read).
    Its sender may read it too, which records nothing."""
    me = pilots.acting(fleet)
    key = {"message_read": "reader"}.get(event_type, "by")

    def plan() -> list[EventSpec]:
        mid = resolve(fleet, ref)
        if (
            event_type == "message_read"
            and _sender(fleet, mid) == me
            and not _is_recipient(fleet, mid, me)
        ):
            return []
        read, acked, archived = _recipient_state(fleet, mid, me)
        done = {"message_read": read, "message_acknowledged": acked, "message_archived": archived}
        if done[event_type]:
            return []  # already so: nothing to record
        return [_spec(event_type, mid, {key: me, **(data or {})})]

    fleet.transact(plan)
    return message(fleet, resolve(fleet, ref))


def thread(fleet: Fleet, ref: str) -> list[dict[str, Any]]:
    rows = _rows(
        fleet,
        f"SELECT {_COLUMNS} FROM messages m WHERE m.thread_id = ? ORDER BY m.sent_hlc",
        [thread_of(fleet, ref)],
    )
    return _decorate_all(fleet, rows)


def search(
    fleet: Fleet, query: str, *, limit: int | None = 50, fts: bool = False
) -> list[dict[str, Any]]:
    """Messages matching `query`, best first: the best `limit` (None: all of them). The query is
    words to find (`plain_query`), or SQLite FTS5 syntax with `fts`."""
    if limit is not None and limit < 0:
        raise ValidationError(f"limit {limit}: must be 0 or more")
    sql = (
        f"SELECT {_COLUMNS} FROM messages_fts f JOIN messages m ON m.rid = f.rowid"
        " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?"
    )
    limit = -1 if limit is None else limit  # SQLite: a negative limit is none
    match = _match(query, fts)
    rows = _matching(query, lambda: _rows(fleet, sql, [match, limit]))
    return _decorate_all(fleet, rows)


def search_count(fleet: Fleet, query: str, *, fts: bool = False) -> int:
    """How many messages `search` would list with no limit."""
    sql = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?"
    match = _match(query, fts)
    return int(_matching(query, lambda: fleet.index.conn.execute(sql, [match]).fetchone()[0]))


def plain_query(text: str) -> str:
    """The FTS5 query that finds every word of `text`: each whitespace-separated word (or
    "quoted phrase") is quoted as an FTS5 string, so ids, paths, versions and `don't` are
    searched as written rather than read as syntax, and they are ANDed. A word ending in `*`
    is a prefix. Words with no letter or digit (`-`, `...`) constrain nothing and are left out;
    '' when nothing is left."""
    terms = []
    for phrase in _phrases(text.replace("\x00", " ")):
        prefix = phrase.endswith("*")
        phrase = phrase.rstrip("*")
        if any(c.isalnum() for c in phrase):
            terms.append('"' + phrase.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " AND ".join(terms)


def _phrases(text: str) -> list[str]:
    """Words split on whitespace, a double-quoted run kept whole (a quote left open runs to the
    end)."""
    out: list[str] = []
    rest = text
    while rest := rest.lstrip():
        if rest.startswith('"'):
            end = rest.find('"', 1)
            end = len(rest) if end < 0 else end
            out.append(rest[1:end])
            rest = rest[end + 1 :]
            continue
        cut = next((i for i, c in enumerate(rest) if c.isspace() or c == '"'), len(rest))
        out.append(rest[:cut])
        rest = rest[cut:]
    return out


def _match(query: str, fts: bool) -> str:
    """What MATCH is given: the query itself with `fts`, else its words (`plain_query`)."""
    if not query.strip():
        raise ValidationError(
            "the search query is empty", hint="give words to look for: fleetgit squawk search lexer"
        )
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"search {query!r} is not valid UTF-8",
            hint="messages are UTF-8 text: search for words of them",
        ) from None
    if fts:
        return query
    words = plain_query(query)
    if not words:
        raise ValidationError(
            f"search {query!r} has no word to look for (no letter or digit)",
            hint="give words to look for: fleetgit squawk search lexer",
        )
    return words


def _matching(query: str, run: Callable[[], T]) -> T:
    """Run a full-text query; a query FTS5 cannot read (only with --fts) is refused in one
    line."""
    try:
        return run()
    except sqlite3.OperationalError as exc:
        reason = str(exc).removeprefix("fts5: ")
        raise ValidationError(
            f"search {query!r} is not a valid FTS5 query ({reason})",
            hint="with --fts, AND/OR/NOT combine words and quotes make phrases:"
            " fleetgit squawk search --fts '\"lexer tests\" NOT draft'; without --fts"
            " every word is searched as written",
        ) from None


def sent(fleet: Fleet) -> list[dict[str, Any]]:
    rows = _rows(
        fleet,
        f"SELECT {_COLUMNS} FROM messages m WHERE m.sender = ? ORDER BY m.sent_hlc DESC",
        [fleet.me()],
    )
    return _decorate_all(fleet, rows)
