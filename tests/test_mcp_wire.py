"""`tools/call` answered by the server's middleware (agents/server.py `ToolCalls`): the wire form
the SDK itself would give each result, and every call of another form, or on a connection not
yet open, left to the SDK's own path, which validates it and answers as it always did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from mcp.server.runner import _dump_result
from mcp_types import SERVER_INFO_META_KEY, CallToolResult, RequestParamsMeta
from mcp_types.methods import serialize_server_result

from fleetgit.agents.server import ToolCalls, answer, build
from fleetgit.agents.tools import Session
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
