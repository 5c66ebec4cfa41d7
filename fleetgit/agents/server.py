"""`fleetgit mcp`: the tools of tools.py on the official MCP SDK's low-level server, over stdio
(or streamable HTTP). The only module that imports `mcp`, and only `fleetgit mcp` imports it.

One process is one pilot (a `Session`). Each tool call runs to its end on the event loop's
thread, one at a time: the ledger's SQLite connection is that thread's, and a call takes a few
milliseconds. A result is the structured JSON (matching the tool's declared output schema) and a
one-line summary; a refusal is a tool error (`isError`) with the CLI's message and hint, as text
and as `{"error": {"code", "message", "hint"}}`.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import mcp_types as types
import orjson
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

from fleetgit.agents.tools import TOOLS, Session, Tool
from fleetgit.domain.checkpoints import resume as recovery
from fleetgit.domain.overview import gather
from fleetgit.domain.reservations.commands import ReservationConflict
from fleetgit.ledger.errors import FleetError

INSTRUCTIONS = """fleetgit coordinates the agents (pilots) working in this git repository.
You act as one pilot. Protocol: overview (or ready_sorties) -> claim_sortie (reserves its files)
-> start_sortie -> work, report_progress, commit through git as usual (a commit touching files
another pilot reserved is refused: send_message to the holder) -> checkpoint before your context
runs out -> complete_sortie (frees the files). After losing your context: resume."""

OVERVIEW_URI = "fleetgit://overview"
BRIEF_URI = "fleetgit://brief"


def _text(text: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=text)]


def _json(value: Any) -> Any:
    """`value` as plain JSON types (what orjson writes: tuples become lists, and so on)."""
    return orjson.loads(orjson.dumps(value))


def refusal(exc: FleetError) -> types.CallToolResult:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        error["hint"] = exc.hint
    if isinstance(exc, ReservationConflict):
        error["conflicts"] = [c.to_json() for c in exc.conflicts]
    text = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
    return types.CallToolResult(
        content=_text(text), structured_content={"error": error}, is_error=True
    )


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
        try:
            out, summary = session.call(params.name, params.arguments)
        except FleetError as exc:
            return refusal(exc)
        except Exception as exc:
            log = _log_traceback(session)
            return refusal(
                FleetError(
                    f"internal error: {type(exc).__name__}: {exc}",
                    hint=f"details in {log}; please report it",
                )
            )
        return types.CallToolResult(content=_text(summary), structured_content=_json(out))

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
            text = orjson.dumps(gather(session.fleet, 10), option=orjson.OPT_INDENT_2).decode()
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

    return Server(
        "fleetgit",
        version=version("fleetgit"),
        title=f"fleetgit, as pilot {session.callsign}",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve(session: Session, http: tuple[str, int] | None = None) -> None:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    import anyio

    server = build(session)
    if http is None:
        anyio.run(_serve_stdio, server)
        return
    import uvicorn

    host, port = http
    app = server.streamable_http_app(host=host)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
