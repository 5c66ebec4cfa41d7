"""`tools/call` answered by the server's middleware (agents/server.py `ToolCalls`), or on a 2026
stdio connection as its line is read (`EnvelopedCalls`): the wire form the SDK itself would give
each result, and every call of another form, or on a connection not yet open, left to the SDK's
own path, which validates it and answers as it always did."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from mcp.server.runner import _dump_result, modern_error_data
from mcp.shared.message import SessionMessage
from mcp_types import (
    SERVER_INFO_META_KEY,
    CallToolResult,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestParamsMeta,
)
from mcp_types.methods import serialize_server_result

from fleetgit.agents.server import (
    EnvelopedCalls,
    ToolCalls,
    _PipeIn,
    _PipeOut,
    answer,
    build,
)
from fleetgit.agents.tools import Session
from fleetgit.fleet import Fleet
from tests.test_mcp_stdio import META, piped, request

MODERN, LEGACY = "2026-07-28", "2025-11-25"


@pytest.fixture
def session(repo: Path) -> Iterator[Session]:
    s = Session.open(str(repo), "viper")
    yield s
    s.close()


def through(middleware: ToolCalls, params: Any, version: str = MODERN, **ctx: Any) -> Any:
    """What the middleware returns for a request: its own answer, or "SDK" when it handed the
    request down the SDK's path."""

    async def call_next(_ctx: Any) -> str:
        return "SDK"

    context = SimpleNamespace(
        method="tools/call",
        params=params,
        meta=RequestParamsMeta(),
        protocol_version=version,
        session=SimpleNamespace(client_params=object()),
    )
    for key, value in ctx.items():
        setattr(context, key, value)

    async def main() -> Any:
        return await middleware(context, call_next)

    return anyio.run(main)


CALLS = [
    ("check_paths", {"paths": ["src/app.py"]}),  # a read
    ("send_message", {"to": ["goose"], "subject": "hi", "importance": "high"}),  # a write
    ("send_message", {"to": ["nobody-here"], "subject": "hi"}),  # refused by the domain
    ("check_paths", {"paths": [1]}),  # an argument of the wrong type: the field named
    ("no_such_tool", {}),  # no such tool
    ("inbox", None),  # no arguments at all
]


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_a_plain_call_is_answered_in_the_wire_form_the_sdk_gives_it(
    session: Session, version: str
) -> None:
    server = build(session)
    middleware = server.middleware[0]
    assert isinstance(middleware, ToolCalls)
    for name, arguments in CALLS:
        params = {"name": name, "arguments": arguments, **META}
        got = through(middleware, params, version)
        assert got != "SDK"
        # the SDK's own outbound pass over the same result (the model the SDK's path makes of
        # it): dumped, validated against that version's CallToolResult and dumped, stamped
        model = CallToolResult.model_validate(answer(session, name, arguments))
        want = serialize_server_result("tools/call", version, _dump_result(model))
        if version == MODERN:
            want["_meta"] = {SERVER_INFO_META_KEY: server.server_info_stamp}
        if "sent msg-" in got["content"][0]["text"]:  # each send is a new message
            for out in (got, want):
                out["structuredContent"] = {
                    k: v
                    for k, v in out["structuredContent"].items()
                    if k not in ("message_id", "thread_id", "sent_at")
                }
                out["content"] = []
        assert json.loads(json.dumps(got)) == want, name
    assert through(middleware, {"name": "check_paths", "arguments": {"paths": [1]}})["isError"]


def test_any_other_request_goes_down_the_sdks_path(session: Session) -> None:
    middleware = build(session).middleware[0]
    assert isinstance(middleware, ToolCalls)
    plain = {"name": "inbox", "arguments": {}}
    assert through(middleware, plain) != "SDK"
    assert through(middleware, plain, method="tools/list") == "SDK"
    for params in [
        {"name": 7, "arguments": {}},  # the SDK refuses the request: invalid params
        {"arguments": {}},
        {"name": "inbox", "arguments": [1]},
        {"name": "inbox", "arguments": {}, "requestState": "x"},  # a form of its own
        None,
        [1],
    ]:
        assert through(middleware, params) == "SDK", params
    # `_meta` the SDK could not read, and a handshake-era connection not initialized
    assert through(middleware, {**plain, "_meta": {"progressToken": []}}, meta=None) == "SDK"
    not_open = SimpleNamespace(client_params=None)
    assert through(middleware, plain, LEGACY, session=not_open) == "SDK"
    assert through(middleware, plain, MODERN, session=not_open) != "SDK"  # no handshake


def test_the_sdk_still_answers_a_malformed_call_itself(repo: Path) -> None:
    lines = "".join(
        line + "\n"
        for line in [
            request(1, "tools/call", name=7, arguments={}),
            request(2, "tools/call", name="inbox", arguments={"limit": 2}),
            request(3, "tools/call", name="inbox", arguments=[1]),
        ]
    )
    got = piped(repo, lines)
    assert got[1]["code"] == -32602 and got[3]["code"] == -32602  # invalid params, as before
    assert got[2]["structuredContent"] == {"messages": [], "more": 0}
    assert got[2]["resultType"] == "complete" and not got[2]["isError"]
    assert got[2]["_meta"][SERVER_INFO_META_KEY]["name"] == "fleetgit"


def test_a_handshake_era_client_gets_its_own_results(repo: Path) -> None:
    def legacy(rid: int | None, method: str, **params: Any) -> str:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if rid is not None:
            message["id"] = rid
        return json.dumps(message)

    hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t"}}
    lines = [
        legacy(1, "tools/call", name="inbox", arguments={}),  # before the handshake: refused
        legacy(2, "initialize", **hello),
        legacy(None, "notifications/initialized"),
        legacy(3, "tools/call", name="inbox", arguments={}),
    ]
    got = piped(repo, "".join(line + "\n" for line in lines), answers=3)
    assert "code" in got[1]
    assert got[3] == {
        "content": [{"type": "text", "text": "0 message(s)"}],
        "structuredContent": {"messages": [], "more": 0},
        "isError": False,
    }


def test_a_record_result_holds_the_types_its_schema_declares(session: Session) -> None:
    """A tool answering one record (a sortie, a message, ...) declares a schema per field, types
    and enums included: its results hold them."""
    from jsonschema.validators import Draft202012Validator

    from fleetgit.agents.tools import MESSAGE, SORTIE, TOOLS
    from fleetgit.domain.sorties import commands as sorties

    assert TOOLS["report_progress"].output is SORTIE
    assert TOOLS["send_message"].output is MESSAGE
    sid = sorties.create(session.fleet, "typed", files=["src/typed.py"])
    results = [
        (SORTIE, session.call("claim_sortie", {"sortie": sid, "reserve": False})[0]),
        (SORTIE, session.call("start_sortie", {"sortie": sid})[0]),
        (SORTIE, session.call("report_progress", {"sortie": sid, "percent": 40})[0]),
        (MESSAGE, session.call("send_message", {"to": ["goose"], "subject": "typed"})[0]),
    ]
    for schema, out in results:
        Draft202012Validator(schema).validate(out)


def _answered(main: Any, read_end: int, write_end: int) -> list[dict[str, Any]]:
    """Run `main`, which answers down the pipe's `write_end`; the answers read from `read_end`."""
    try:
        anyio.run(main)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as written:
        return [json.loads(line) for line in written]


def _unsent(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what differs between two sends of one message (its ids and time)."""
    if "sent msg-" not in result["content"][0]["text"]:
        return result
    rest = {k: v for k, v in result["structuredContent"].items()}
    for key in ("message_id", "thread_id", "sent_at"):
        rest.pop(key)
    return {**result, "content": [], "structuredContent": rest}


def test_a_plain_call_on_a_2026_pipe_is_answered_as_the_middleware_answers_it(
    session: Session,
) -> None:
    """The bytes are the SDK's writer's for that response, and the result the middleware's."""
    middleware = build(session).middleware[0]
    assert isinstance(middleware, ToolCalls)
    direct = EnvelopedCalls(middleware)
    assert direct.answer(request(1, "server/discover").encode()) is None  # the SDK's
    assert direct.modern
    for rid, (name, arguments) in enumerate(CALLS, 2):
        got = direct.answer(request(rid, "tools/call", name=name, arguments=arguments).encode())
        assert got is not None and got.endswith(b"\n"), name
        result = json.loads(got)["result"]
        sdk = JSONRPCResponse(jsonrpc="2.0", id=rid, result=result)
        assert got == sdk.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        want = through(middleware, {"name": name, "arguments": arguments, **META})
        assert _unsent(result) == _unsent(json.loads(json.dumps(want))), name
    string_id = json.loads(request(1, "tools/call", name="inbox", arguments={}))
    string_id["id"] = "call-7"
    got = direct.answer(json.dumps(string_id).encode())
    assert got is not None and json.loads(got)["id"] == "call-7"


def test_the_pipe_leaves_to_the_sdk_what_it_would_answer_otherwise(session: Session) -> None:
    middleware = build(session).middleware[0]
    assert isinstance(middleware, ToolCalls)
    direct = EnvelopedCalls(middleware)
    plain = json.loads(request(2, "tools/call", name="inbox", arguments={}))
    line = json.dumps(plain).encode()
    note = {"jsonrpc": "2.0", "method": "notifications/initialized", "params": META}
    assert direct.answer(json.dumps(note).encode()) is None and direct.modern is None
    assert direct.answer(b"not json\n") is None and direct.modern is None
    assert direct.answer(line) is None  # the first request decides the era, and is the SDK's
    assert direct.answer(line) is not None
    envelope = META["_meta"]
    version = "io.modelcontextprotocol/protocolVersion"
    for change in [
        {"method": "tools/list"},
        {"jsonrpc": "1.0"},
        {"id": True},
        {"id": None},
        {"id": 1.5},
        {"extra": 1},
        {"params": None},
        {"params": {"name": 7, "arguments": {}, **META}},
        {"params": {"name": "inbox", "arguments": [1], **META}},
        {"params": {"name": "inbox", "arguments": {}, "requestState": "x", **META}},
        {"params": {"name": "inbox", "arguments": {}}},  # no envelope
        {"params": {"name": "inbox", "_meta": {**envelope, "progressToken": 1}}},
        {"params": {"name": "inbox", "_meta": {**envelope, version: "2099-01-01"}}},
        {"params": {"name": "inbox", "_meta": {version: "2026-07-28"}}},  # no capabilities
    ]:
        assert direct.answer(json.dumps(plain | change).encode()) is None, change
    without_id = {k: v for k, v in plain.items() if k != "id"}
    assert direct.answer(json.dumps(without_id).encode()) is None
    assert direct.answer(b"not json\n") is None
    # a handshake-era connection (`initialize` opens one, even with the 2026 envelope on it)
    for params in [{}, META]:
        legacy = EnvelopedCalls(middleware)
        hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t"}}
        opening = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello | params}
        assert legacy.answer(json.dumps(opening).encode()) is None
        assert legacy.modern is False
        assert legacy.answer(line) is None


def test_a_call_the_pipe_leaves_gets_the_sdks_answer(repo: Path) -> None:
    """Through a real server: a call with a progress token goes down the SDK's path to the
    middleware (the same result), one with a version the SDK does not serve gets its error."""
    call = json.loads(request(3, "tools/call", name="inbox", arguments={"limit": 2}))
    token = json.loads(json.dumps(call))
    token["id"] = 4
    token["params"]["_meta"]["progressToken"] = "p"
    unknown = json.loads(json.dumps(call))
    unknown["id"] = 5
    unknown["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    lines = [request(1, "server/discover"), request(2, "tools/list")]
    lines += [json.dumps(m) for m in (call, token, unknown)]
    got = piped(repo, "".join(line + "\n" for line in lines))
    assert got[3] == got[4] and got[3]["structuredContent"] == {"messages": [], "more": 0}
    assert "code" in got[5] and "2099-01-01" in json.dumps(got[5])


def test_pipelined_calls_run_in_the_order_they_came(repo: Path) -> None:
    """Through a real server: the first request, and one with a progress token, go to the SDK,
    which runs each in a task of its own, later; the plain calls piped after them are answered
    on the spot only once those are answered, so the ledger holds the messages in order."""

    def send(rid: int, subject: str, token: bool = False) -> str:
        call = json.loads(
            request(
                rid,
                "tools/call",
                name="send_message",
                arguments={"to": ["goose"], "subject": subject},
            )
        )
        if token:
            call["params"]["_meta"]["progressToken"] = f"p{rid}"
        return json.dumps(call)

    subjects = ["one", "two", "three", "four", "five", "six", "seven"]
    lines = [send(rid, s, token=s in ("three", "six")) for rid, s in enumerate(subjects, 1)]
    lines.insert(4, request(99, "tools/list"))  # another request the SDK answers
    got = piped(repo, "".join(line + "\n" for line in lines))
    assert all(not got[rid]["isError"] for rid in range(1, len(subjects) + 1))
    with Fleet.open(repo) as fleet:
        sent = [e.data["subject"] for e in fleet.events() if e.type == "message_sent"]
    assert sent == subjects


def test_a_call_that_fails_past_its_refusal_gets_the_sdks_internal_error(
    session: Session,
) -> None:
    """An error inside a tool is a refusal whose hint names a log of its traceback; when that
    log cannot be written either (its directory is a file here), the call answered on the pipe
    gets what the SDK answers a 2026 request whose handler raised: an internal error, no detail,
    and the server goes on."""
    middleware = build(session).middleware[0]
    assert isinstance(middleware, ToolCalls)
    direct = EnvelopedCalls(middleware)
    assert direct.answer(request(1, "server/discover").encode()) is None and direct.modern
    session.fleet.paths.local_dir.mkdir(parents=True, exist_ok=True)
    (session.fleet.paths.local_dir / "logs").write_text("not a directory\n")
    session.fleet.index.conn.close()  # every statement now raises (sqlite3.ProgrammingError)
    got = direct.answer(request(2, "tools/call", name="inbox", arguments={}).encode())
    sdk = JSONRPCError(jsonrpc="2.0", id=2, error=modern_error_data(RuntimeError("boom")))
    assert got == sdk.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
    assert json.loads(got)["error"] == {"code": -32603, "message": "Internal server error"}


def test_the_pipe_answers_on_the_spot_again_once_the_sdk_has_answered(session: Session) -> None:
    """The pipe's own ends: a request handed to the SDK is counted until its response goes out;
    meanwhile calls go to the SDK too, and once none is pending, a call is answered on the spot
    again (written to the pipe, not handed on)."""
    middleware = build(session).middleware[0]
    assert isinstance(middleware, ToolCalls)
    read_end, write_end = os.pipe()
    out = _PipeOut(write_end)
    call = request(2, "tools/call", name="inbox", arguments={})

    async def main() -> None:
        reader = asyncio.StreamReader()
        for line in [request(1, "server/discover"), call, call.replace('"id": 2', '"id": 3')]:
            reader.feed_data(line.encode() + b"\n")
        reader.feed_eof()
        pipe = _PipeIn(reader, EnvelopedCalls(middleware), out)
        handed = [await pipe.receive(), await pipe.receive()]  # the first, and one behind it
        assert out.pending == {1: 1, 2: 1}
        for item in handed:
            assert isinstance(item, SessionMessage)
            assert isinstance(item.message, JSONRPCRequest)
            rid = item.message.id
            await out.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=rid, result={})))
        assert out.pending == {}
        with pytest.raises(anyio.EndOfStream):
            await pipe.receive()  # the third answered here, then the end of the input

    answers = _answered(main, read_end, write_end)
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[2]["result"]["structuredContent"] == {"messages": [], "more": 0}


def test_a_request_the_client_cancels_is_counted_off(session: Session) -> None:
    """The SDK's own server on the pipe's ends: a request handed to it that the client cancels
    while it runs is never answered (the protocol forbids it); it is counted off all the same
    (the SDK's `on_request_unanswered`), so the pipe answers plain calls on the spot again
    instead of sending the rest of the connection down the SDK's path. (Every tool runs
    without a pause, so a slow one is stood in by a middleware that waits first.)"""
    server = build(session)
    middleware = server.middleware[0]
    assert isinstance(middleware, ToolCalls)

    async def slow(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and (ctx.meta or {}).get("progress_token") == "p2":
            await anyio.sleep(60)  # until the client's cancel interrupts it
        return await call_next(ctx)

    server.middleware.insert(0, slow)
    read_end, write_end = os.pipe()
    out = _PipeOut(write_end)
    call = json.loads(request(2, "tools/call", name="inbox", arguments={}))
    call["params"]["_meta"]["progressToken"] = "p2"  # the SDK's path
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}
    lines = [request(1, "server/discover"), json.dumps(call), json.dumps(cancel)]
    seen: list[dict[Any, int]] = []

    async def main() -> None:
        reader = asyncio.StreamReader()
        for line in lines:
            reader.feed_data(line.encode() + b"\n")
        pipe = _PipeIn(reader, EnvelopedCalls(middleware), out)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.run, pipe, out, server.create_initialization_options())
            for _ in range(200):  # the SDK settles the cancelled request in a task of its own
                await anyio.sleep(0.005)
                if 2 not in out.pending:
                    break
            seen.append(dict(out.pending))
            reader.feed_data(request(3, "tools/call", name="inbox", arguments={}).encode() + b"\n")
            reader.feed_eof()

    answers = _answered(main, read_end, write_end)
    assert seen == [{}]
    assert [a["id"] for a in answers] == [1, 3]  # 2 cancelled: never answered
    assert answers[1]["result"]["structuredContent"] == {"messages": [], "more": 0}
