"""`fleetgit mcp`: the tools of tools.py on the official MCP SDK's low-level server, over stdio
(or streamable HTTP). The only module that imports `mcp`, and only `fleetgit mcp` imports it.

One process is one pilot (a `Session`). Each tool call runs to its end on the event loop's
thread, one at a time: the ledger's SQLite connection is that thread's, and a call takes a few
milliseconds. A result is the structured JSON (matching the tool's declared output schema) and a
one-line summary; a refusal is a tool error (`isError`) with the CLI's message and hint, as text
and as `{"error": {"code", "message", "hint"}}`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any, Self

import anyio
import mcp_types as types
import orjson
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import InboundModernRoute, classify_inbound_request
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import PROTOCOL_VERSION_META_KEY, SERVER_INFO_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from fleetgit.agents.tools import TOOLS, Session, Tool, overview
from fleetgit.domain.checkpoints import resume as recovery
from fleetgit.domain.reservations.commands import ReservationConflict
from fleetgit.ledger.errors import FleetError, refused_by_the_system

INSTRUCTIONS = """fleetgit coordinates the agents (pilots) working in this git repository.
You act as one pilot. Protocol: overview (or ready_sorties) -> claim_sortie (reserves its files)
-> start_sortie -> work, report_progress, commit through git as usual (a commit touching files
another pilot reserved is refused: send_message to the holder) -> checkpoint before your context
runs out -> complete_sortie (frees the files). After losing your context: resume."""

OVERVIEW_URI = "fleetgit://overview"
BRIEF_URI = "fleetgit://brief"


def _json(value: Any) -> Any:
    """`value` as plain JSON types (what orjson writes: tuples become lists, and so on)."""
    return orjson.loads(orjson.dumps(value))


def result(summary: str, structured: Any, is_error: bool = False) -> dict[str, Any]:
    """A tools/call result in its wire form (`CallToolResult`'s fields by their JSON names):
    the one-line summary as text and the structured JSON."""
    return {
        "content": [{"type": "text", "text": summary}],
        "structuredContent": structured,
        "isError": is_error,
    }


def refusal(exc: FleetError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        error["hint"] = exc.hint
    if isinstance(exc, ReservationConflict):
        error["conflicts"] = [c.to_json() for c in exc.conflicts]
    text = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
    return result(text, {"error": error}, is_error=True)


def answer(session: Session, name: str, arguments: Any) -> dict[str, Any]:
    """The result of the tool call `name(arguments)` as this session's pilot: the tool's
    result, or a refusal (a FleetError's message and hint, or the system's refusal of a write
    to a named path as the CLI gives it; any other error is logged)."""
    try:
        out, summary = session.call(name, arguments)
    except FleetError as exc:
        return refusal(exc)
    except Exception as exc:
        refused = refused_by_the_system(exc)  # read-only, no permission, no space: the CLI's
        if refused is not None:
            return refusal(refused)
        log = _log_traceback(session)
        return refusal(
            FleetError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint=f"details in {log}; please report it",
            )
        )
    return result(summary, _json(out))


def _log_traceback(session: Session) -> Path:
    log_dir = session.fleet.paths.local_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"mcp-error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


def describe(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema(),
        output_schema=tool.output,
        annotations=types.ToolAnnotations(
            title=tool.title, read_only_hint=not tool.writes, open_world_hint=False
        ),
    )


def build(session: Session) -> Server[Any]:
    """The MCP server of one pilot's session."""
    listed = types.ListToolsResult(tools=[describe(t) for t in TOOLS.values()])

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return listed

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        # a call ToolCalls did not answer (not of the plain form, or a connection not open)
        return types.CallToolResult.model_validate(answer(session, params.name, params.arguments))

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=OVERVIEW_URI,
                    name="overview",
                    title="The fleet at a glance",
                    description="Active pilots, claimed sorties, my reservations, ready sorties,"
                    " my unread messages (the overview tool's result).",
                    mime_type="application/json",
                ),
                types.Resource(
                    uri=BRIEF_URI,
                    name="recovery-brief",
                    title="My recovery brief",
                    description="Where I was at my newest checkpoint and what changed since,"
                    " read only: the resume tool re-acquires what I held.",
                    mime_type="text/markdown",
                ),
            ]
        )

    async def read_resource(
        ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        session.fleet.catch_up()
        if uri == OVERVIEW_URI:
            text = orjson.dumps(
                overview(session, {"limit": 10})[0], option=orjson.OPT_INDENT_2
            ).decode()
            mime = "application/json"
        elif uri == BRIEF_URI:
            mime = "text/markdown"
            try:
                text = recovery.markdown(recovery.preview(session.fleet))
            except FleetError as exc:
                text = f"# Recovery brief for {session.callsign}\n\n{exc.message}"
                text += f" ({exc.hint})\n" if exc.hint else "\n"
        else:
            raise ValueError(f"no resource {uri!r}: {OVERVIEW_URI} and {BRIEF_URI} exist")
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
        )

    from importlib.metadata import version

    server: Server[Any] = Server(
        "fleetgit",
        version=version("fleetgit"),
        title=f"fleetgit, as pilot {session.callsign}",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )
    # the SDK's default middleware opens an OpenTelemetry span per message (a no-op without an
    # exporter, yet ~20 us a call): nothing here exports one
    server.middleware = [ToolCalls(session, server)]
    return server


_CALL_KEYS = frozenset({"name", "arguments", "_meta"})


class ToolCalls:
    """The SDK's middleware for `tools/call` (a server's documented extension point, run before
    the SDK validates a request's params): a call of the plain form `{name, arguments, _meta}`
    on an open connection is answered here, its arguments checked by the tool's own checker
    (which names the argument that is wrong: tools.check_arguments), and its result returned in
    the wire form the SDK would give it, with the envelope a 2026 result carries. The SDK's
    pydantic models of the request and of `CallToolResult` (built, validated, dumped, validated
    and dumped again: a quarter of a write's time in the SDK) are left out. Any other request,
    and a call of any other form, goes down the SDK's own path (`call_next`), to `call_tool`."""

    def __init__(self, session: Session, server: Server[Any]) -> None:
        self.session = session
        self.server = server
        self.stamp = orjson.dumps(server.server_info_stamp)  # fixed at construction

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        params = ctx.params
        if (
            ctx.method != "tools/call"
            or not _plain_call(params)
            or ("_meta" in params and ctx.meta is None)  # malformed: the SDK says how
            or not self._open(ctx)
        ):
            return await call_next(ctx)
        out = answer(self.session, params["name"], params.get("arguments"))
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self.envelop(out)
        return out

    def envelop(self, out: dict[str, Any]) -> None:
        """Give the result `out` the envelope a 2026 result carries (as the SDK stamps it)."""
        out["resultType"] = "complete"
        out["_meta"] = {SERVER_INFO_META_KEY: orjson.loads(self.stamp)}

    def _open(self, ctx: Any) -> bool:
        """Is the request gate open: a 2026 connection (no handshake), or an initialized one?
        Otherwise the SDK refuses the call as it does."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return True
        return ctx.session.client_params is not None


class _PipeEnd:
    """What the SDK's server does with a stream besides reading or writing it: enter and
    close it. A pipe end has nothing to open or close (`_serve_stdio` owns the fds)."""

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class EnvelopedCalls:
    """On a 2026 connection over stdio, a `tools/call` of the plain form is answered as the
    pipe's line is read, before the SDK sees it: the same answer, in the same wire form, as
    `ToolCalls` gives it (tests/test_mcp_wire.py compares the bytes), without the SDK's path a
    2026 request takes before the middleware runs (the message's pydantic model, a relay task
    and a stream hop, a task per request, the envelope's connection, runner and context, a
    shielded teardown, the response's model and its dump): ~0.6 M of the server's ~3.9 M
    instructions a write (callgrind; docs/benchmarks.md).

    Only what the SDK would answer the same way is taken: the connection's era is the SDK's (its
    first request decides, as `serve_dual_era_loop` decides, and that request goes to the SDK);
    the request is `{jsonrpc: "2.0", id, method: "tools/call", params}` with an id the SDK
    takes, params of the plain form, and an envelope the SDK's own ladder
    (`classify_inbound_request`) admits, without a progress token. Everything else, every line
    on a handshake-era connection, and every line read while a request handed to the SDK is
    unanswered (`_PipeIn`: it would overtake that request), goes to the SDK as before."""

    def __init__(self, calls: ToolCalls) -> None:
        self.calls = calls
        self.modern: bool | None = None  # the era, once the first request decided it

    def answer(self, line: bytes) -> bytes | None:
        """The response line to the request `line`, or None: the SDK's to answer."""
        if self.modern is not True:
            if self.modern is None:
                self._decide(line)
            return None
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if type(message) is not dict or message.keys() != _REQUEST_KEYS:
            return None
        rid, params = message["id"], message["params"]
        if (
            message["jsonrpc"] != "2.0"
            or message["method"] != "tools/call"
            or not (type(rid) is str or type(rid) is int)
            or not _plain_call(params)
            or type(params.get("_meta")) is not dict
            or "progressToken" in params["_meta"]
            or not isinstance(classify_inbound_request(message), InboundModernRoute)
        ):
            return None
        try:
            out = answer(self.calls.session, params["name"], params.get("arguments"))
            self.calls.envelop(out)
            return orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": out}) + b"\n"
        except Exception:  # what escaped `answer` (its log not written, a result orjson refused)
            # the SDK's answer to a 2026 request whose handler raised: logged here, and no
            # detail on the wire (mcp.server.runner.modern_error_data)
            _logger.exception("tools/call %r raised", params["name"])
            return orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": _INTERNAL_ERROR}) + b"\n"

    def _decide(self, line: bytes) -> None:
        """The SDK's rule: the first request opens a 2026 connection when it is not `initialize`
        and its params' `_meta` carries the protocol-version key; anything else opens a
        handshake-era one."""
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except Exception:
            return  # not a request: the SDK drops or answers it, and waits for one
        if isinstance(message, types.JSONRPCRequest):
            meta = (message.params or {}).get("_meta")
            self.modern = (
                message.method != "initialize"
                and isinstance(meta, dict)
                and PROTOCOL_VERSION_META_KEY in meta
            )


_REQUEST_KEYS = {"jsonrpc", "id", "method", "params"}
_INTERNAL_ERROR = {"code": types.INTERNAL_ERROR, "message": "Internal server error"}
_logger = logging.getLogger(__name__)


def _plain_call(params: Any) -> bool:
    """`{name, arguments, _meta}`, the name a string and the arguments an object or null: the
    form `ToolCalls` answers."""
    return (
        type(params) is dict
        and _CALL_KEYS.issuperset(params)
        and type(params.get("name")) is str
        and isinstance(params.get("arguments", {}), dict | None)
    )


class _PipeIn(_PipeEnd):
    """The client's messages, one a line, read and parsed by the event loop itself from the
    pipe, for the SDK's server to iterate (its `ReadStream`). The SDK's stdio transport puts two
    tasks and two rendezvous streams between the pipe and the server (a reader task, through
    anyio's worker threads, and a writer task), each message a few task switches on the way in
    and out; the pipe needs none of them. A line `direct` answers is answered on the spot (its
    answer written to `out`), but only while every request handed to the SDK has been answered:
    the SDK runs a request in a task of its own, later, so a call answered on the spot while one
    is pending would run before it (calls run in the order they came). A line that is not
    JSON-RPC is handed on as the exception the SDK's own transport hands on."""

    def __init__(
        self, reader: asyncio.StreamReader, direct: EnvelopedCalls | None, out: _PipeOut
    ) -> None:
        self.reader = reader
        self.direct = direct
        self.out = out

    async def receive(self) -> SessionMessage | Exception:
        while True:
            line = await self.reader.readline()
            if not line:
                raise anyio.EndOfStream
            if self.direct is None or self.out.pending:
                break
            answered = self.direct.answer(line)
            if answered is None:
                break
            try:
                self.out.write(answered)
            except OSError:  # the client is gone: as the end of its messages
                raise anyio.EndOfStream from None
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except Exception as exc:  # as the SDK's transport: the server answers a parse error
            return exc
        if isinstance(message, types.JSONRPCRequest):
            rid, out = message.id, self.out
            out.pending[rid] = out.pending.get(rid, 0) + 1

            async def unanswered() -> None:  # the client cancelled it: no response goes out
                out.count_off(rid)

            # the SDK's stdio transport attaches no metadata; this one changes nothing else
            # (no HTTP request, a pipe that can carry the server's requests, as by default)
            return SessionMessage(message, ServerMessageMetadata(on_request_unanswered=unanswered))
        return SessionMessage(message)

    def __aiter__(self) -> _PipeIn:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _PipeOut(_PipeEnd):
    """The server's messages, written straight to the pipe as the SDK's transport writes them
    (a blocking write: one call runs at a time, and the client reads its pipe in a task of its
    own); the SDK's server sends to it (its `WriteStream`). `pending`: the ids of the requests
    handed to the SDK and not answered yet, each with how many (`_PipeIn` counts them in, a
    response or an error sent counts one off, and so does a request the SDK settles without
    an answer: one the client cancelled, which the protocol forbids answering)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: dict[types.RequestId | None, int] = {}

    async def send(self, item: SessionMessage) -> None:
        message = item.message
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
            self.count_off(message.id)
        text = message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        self.write(text.encode("utf-8"))

    def count_off(self, rid: types.RequestId | None) -> None:
        left = self.pending.pop(rid, 0) - 1
        if left > 0:
            self.pending[rid] = left

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


LINE_LIMIT = 1 << 28  # the longest message line read (asyncio's default is 64 KiB)


def _wire_fds() -> tuple[int, int] | None:
    """The client's pipe ends, moved off fds 0 and 1 (which then read /dev/null and write to
    stderr, so a child process or a stray print cannot touch the wire, as the SDK does); None
    when stdin is not something the event loop can watch (a regular file, /dev/null: epoll
    takes no character device but a terminal): the SDK's transport serves that."""
    import fcntl
    import stat

    try:
        mode = os.fstat(0).st_mode
        os.fstat(1)
    except OSError:
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(0))):
        return None
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return wire_in, wire_out


async def _serve_stdio(server: Server[Any], calls: ToolCalls | None = None) -> None:
    fds = _wire_fds()
    if fds is None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    pipe = os.fdopen(fds[0], "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    out = _PipeOut(fds[1])
    direct = EnvelopedCalls(calls) if calls is not None else None
    try:
        await server.run(_PipeIn(reader, direct, out), out, server.create_initialization_options())
    finally:
        transport.close()
        os.close(fds[1])


def serve(session: Session, http: tuple[str, int] | None = None) -> None:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    server = build(session)
    if http is None:
        calls = next(m for m in server.middleware if isinstance(m, ToolCalls))
        anyio.run(_serve_stdio, server, calls)
        return
    import uvicorn

    host, port = http
    app: Any = server.streamable_http_app(host=host)  # on loopback: the SDK's Host/Origin checks
    if host not in LOOPBACK:
        app = TokenGate(app, session)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class TokenGate:
    """Beyond loopback, every request carries a bearer token of this server's pilot (`fleetgit
    token create --as CALLSIGN`, the HTTP API's tokens): whoever reaches the port acts as the
    pilot, so only its own token may. A missing, wrong, revoked, read-only or another pilot's
    token is a 401 before the SDK sees the request."""

    def __init__(self, app: Any, session: Session) -> None:
        from fleetgit.web.auth import TokenBook

        self.app = app
        self.callsign = session.callsign
        self.book = TokenBook(session.fleet.paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._admits(dict(scope["headers"])):
            body = orjson.dumps(
                {
                    "error": {
                        "code": "unauthorized",
                        "message": f"this MCP server acts as {self.callsign}: it needs that"
                        " pilot's bearer token",
                        "hint": f"fleetgit token create --as {self.callsign}; send it as"
                        " Authorization: Bearer TOKEN",
                    }
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _admits(self, headers: dict[bytes, bytes]) -> bool:
        kind, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if kind.lower() != "bearer":
            return False
        who = self.book.check(token.strip())
        return who is not None and who.scope == "write" and who.pilot == self.callsign
