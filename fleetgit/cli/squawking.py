"""Squawk commands: send, inbox, read, ack, archive, thread, search, sent."""

import sys
from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    LIST_LIMIT,
    AsOf,
    JsonOpt,
    Limit,
    Rev,
    add_group,
    boundary,
    choice_option,
    int_option,
    open_fleet,
    page,
    print_json,
    print_page,
    table,
)
from fleetgit.domain.squawk import commands as squawk
from fleetgit.domain.squawk.events import IMPORTANCE
from fleetgit.ledger import schema
from fleetgit.ledger.errors import UsageError, ValidationError

INBOX_PAGE = 50  # an inbox of thousands would flood an agent's context; --limit 0 shows all
SEARCH_PAGE = 50  # likewise for search results
MsgId = Annotated[str, typer.Argument(metavar="ID")]


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "squawk",
        "Messages between pilots.\n\nExample: fleetgit --as viper-1 squawk inbox --unread",
        [
            ("send", send),
            ("inbox", inbox),
            ("read", read),
            ("ack", ack),
            ("archive", archive),
            ("thread", thread),
            ("search", search),
            ("sent", sent),
        ],
    )


def _state(r: dict[str, Any]) -> str:
    """My state of an inbox message: new, read, acked or archived (and whether an ack is
    still wanted)."""
    state = (
        "archived" if r["archived"] else "acked" if r["acked"] else "read" if r["read"] else "new"
    )
    return state + (", ack wanted" if r["ack_required"] and not r["acked"] else "")


def _list(
    rows: list[dict[str, Any]],
    as_json: bool,
    empty: str,
    *,
    mine: bool = False,
    more: int = 0,
    word: str = "more",
) -> None:
    """Messages as a table (`more`: how many the limit left out, `word` what they are); `mine`
    adds my read state (inbox rows carry it)."""
    print_page("messages", rows, more, as_json, _table(rows, mine) if rows else empty, word)


def _table(rows: list[dict[str, Any]], mine: bool) -> str:
    headers = ["ID", "SENT (UTC)", "FROM", "IMPORTANCE", *(["STATE"] if mine else []), "SUBJECT"]
    cells = [
        (
            r["message_id"],
            r["sent_at"][:19].replace("T", " "),
            r["sender"] or "-",
            r["importance"],
            *([_state(r)] if mine else []),
            r["subject"],
        )
        for r in rows
    ]
    return table(cells, headers)


def _one(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(out)
        return
    who = ", ".join(
        f"{r['callsign']}{' (cc)' if r['kind'] == 'cc' else ''}" for r in out["recipients"]
    )
    typer.echo(f"{out['message_id']}  {out['sent_at']}  from {out['sender']} to {who}")
    flags = out["importance"] + (", ack required" if out["ack_required"] else "")
    typer.echo(f"subject: {out['subject']}  [{flags}]")
    typer.echo(f"thread:  {out['thread_id']}\n\n{out['body']}")


def _body(body: str, path: str | None) -> str:
    """The message text: --body, stdin for `--body -`, or the file --body-file names."""
    if path is not None and body:
        raise UsageError(
            "--body and --body-file both give the text: give one",
            hint="--body-file PATH, or --body - to read stdin",
        )
    if path is None and body != "-":
        return body
    what = "stdin" if path is None else path
    limit = schema.MAX_TEXT * 4  # UTF-8 bytes of the longest body the catalogue takes
    try:
        if path is None:
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as fh:  # a bounded read: /dev/zero or a huge file is refused
                data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValidationError(
                f"the message text from {what} is longer than {schema.MAX_TEXT} characters",
                hint="send a shorter text, and name the file that holds the rest",
            )
        return data.decode("utf-8")
    except OSError as exc:
        raise ValidationError(
            f"--body-file {path}: {exc.strerror or exc}",
            hint="name a readable file, or pipe the text in with --body -",
        ) from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"the message text from {what} is not UTF-8 (byte {exc.start})",
            hint="convert it first, e.g. iconv -t UTF-8",
        ) from None


@boundary
def send(
    ctx: typer.Context,
    to: Annotated[
        list[str],
        typer.Option("--to", metavar="C[,C...]", help="Recipients (repeat or comma-separate)."),
    ],
    subject: Annotated[str, typer.Option("--subject")],
    body: Annotated[str, typer.Option("--body", help="The text; - reads it from stdin.")] = "",
    body_file: Annotated[
        str | None,
        typer.Option("--body-file", metavar="PATH", help="Read the text from PATH (UTF-8)."),
    ] = None,
    cc: Annotated[list[str] | None, typer.Option("--cc", metavar="C")] = None,
    thread_id: Annotated[
        str | None,
        typer.Option("--thread", metavar="ID", help="Post in this thread (or any message's)."),
    ] = None,
    reply_to: Annotated[
        str | None,
        typer.Option("--reply-to", metavar="ID", help="Answer a message, in its thread."),
    ] = None,
    importance: Annotated[
        str,
        choice_option("--importance", choices=IMPORTANCE, metavar="IMPORTANCE"),
    ] = "normal",
    ack_required: Annotated[bool, typer.Option("--ack-required")] = False,
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Send to callsigns not in the fleet (unregistered or deregistered).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send a message; prints its id.

    Example: fleetgit --as viper-1 squawk send --to goose,ice --subject "Lexer API"
    --body "tokens are frozen" --ack-required

    Example: git diff | fleetgit --as viper-1 squawk send --to goose --subject "diff" --body -
    """
    body = _body(body, body_file)
    with open_fleet(ctx) as fleet:
        mid = squawk.send(
            fleet,
            to,
            subject,
            body,
            cc=cc or [],
            thread=thread_id,
            reply_to=reply_to,
            importance=importance,
            ack_required=ack_required,
            allow_unknown=allow_unknown,
        )
        out = squawk.message(fleet, mid)
    print_json(out) if as_json else typer.echo(mid)


@boundary
def inbox(
    ctx: typer.Context,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread ones.")] = False,
    include_archived: Annotated[bool, typer.Option("--all", help="Include archived ones.")] = False,
    limit: Annotated[
        int, int_option("--limit", help="Show the newest N (0: all of them).")
    ] = INBOX_PAGE,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Your messages, newest first (the newest 50 unless --limit says otherwise), and how many
    older ones the page leaves out. With --json: {"messages": [...], "more": N}.

    Example: fleetgit --as goose squawk inbox --unread
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows = squawk.inbox(
            fleet, unread=unread, include_archived=include_archived, limit=limit or None
        )
        total = (
            squawk.inbox_count(fleet, unread=unread, include_archived=include_archived)
            if len(rows) == limit
            else len(rows)
        )
    _list(rows, as_json, "inbox empty", mine=True, more=total - len(rows), word="older")


@boundary
def read(ctx: typer.Context, message: MsgId, as_json: JsonOpt = False) -> None:
    """Show a message and mark it read.

    Example: fleetgit --as goose squawk read msg-3k9d
    """
    with open_fleet(ctx) as fleet:
        out = squawk.mark(fleet, message, "message_read")
    _one(out, as_json)


@boundary
def ack(
    ctx: typer.Context,
    message: MsgId,
    notes: Annotated[str | None, typer.Option("--notes")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a message addressed to you.

    Example: fleetgit --as goose squawk ack msg-3k9d --notes "on it"
    """
    with open_fleet(ctx) as fleet:
        out = squawk.mark(fleet, message, "message_acknowledged", {"notes": notes})
    print_json(out) if as_json else typer.echo(f"acknowledged {out['message_id']}")


@boundary
def archive(ctx: typer.Context, message: MsgId, as_json: JsonOpt = False) -> None:
    """Archive a message in your inbox.

    Example: fleetgit --as goose squawk archive msg-3k9d
    """
    with open_fleet(ctx) as fleet:
        out = squawk.mark(fleet, message, "message_archived")
    print_json(out) if as_json else typer.echo(f"archived {out['message_id']}")


@boundary
def thread(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ID")],
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a whole thread (give any message of it, or the thread id), oldest first.

    Example: fleetgit squawk thread msg-3k9d
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(squawk.thread(fleet, ref), limit)
    if as_json:
        print_page("messages", rows, more, True, "")
        return
    for r in rows:
        _one(r, False)
        typer.echo("")
    if more:
        typer.echo(f"... {more} more; --limit 0 shows all {len(rows) + more}")


@boundary
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY")],
    limit: Annotated[
        int, int_option("--limit", help="Show the best N matches (0: all of them).")
    ] = SEARCH_PAGE,
    fts: Annotated[
        bool,
        typer.Option("--fts", help="Read QUERY as SQLite FTS5 syntax (AND, OR, NOT, NEAR, ...)."),
    ] = False,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Full-text search over subjects and bodies, best matches first (the best 50 unless --limit
    says otherwise), and how many more match. With --json: {"messages": [...], "more": N}.

    Messages that hold every word are found; words are taken as written (ids like srt-4p4d,
    paths, v1.2, don't), "quotes" keep a phrase together and a trailing * matches a prefix.
    With --fts the query is SQLite FTS5 syntax.

    Example: fleetgit squawk search 'lexer srt-4p4d' --limit 10
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows = squawk.search(fleet, query, limit=limit or None, fts=fts)
        total = squawk.search_count(fleet, query, fts=fts) if len(rows) == limit else len(rows)
    _list(rows, as_json, "no messages match", more=total - len(rows))


@boundary
def sent(
    ctx: typer.Context,
    limit: Limit = LIST_LIMIT,
    as_of: AsOf = None,
    rev: Rev = None,
    as_json: JsonOpt = False,
) -> None:
    """Messages you sent, newest first.

    Example: fleetgit --as viper-1 squawk sent
    """
    with open_fleet(ctx, rev=rev) as fleet, fleet.as_of(as_of):
        rows, more = page(squawk.sent(fleet), limit)
    _list(rows, as_json, "nothing sent", more=more)
