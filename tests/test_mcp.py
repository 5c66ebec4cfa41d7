"""`fleetgit mcp` through the MCP SDK's own client, over stdio, against real repositories: each
server a real `fleetgit mcp` process acting as one pilot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from fleetgit.agents.tools import TOOLS
from fleetgit.fleet import Fleet
from tests.conftest import read_only_fleet, run_fleetgit


def params(repo: Path, callsign: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "fleetgit", "--as", callsign, "mcp"],
        cwd=str(repo),
        env=dict(os.environ),  # the tests' isolated git config, not only the SDK's defaults
    )


class Pilot:
    """One agent: an MCP client session with its own `fleetgit mcp` process."""

    def __init__(self, client: Client, callsign: str) -> None:
        self.client, self.callsign = client, callsign

    async def call(self, tool: str, **args: Any) -> CallToolResult:
        return await self.client.call_tool(tool, args)

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        """The structured result of a call that must succeed (checked against the tool's
        output schema by the SDK's client)."""
        result = await self.call(tool, **args)
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        assert not result.is_error, f"{self.callsign} {tool}: {text}"
        assert "\n" not in text, "the summary is one line"
        assert isinstance(result.structured_content, dict)
        return result.structured_content

    async def refused(self, tool: str, **args: Any) -> str:
        """The text of a call that must be a tool error: the message, then `hint: ...`."""
        result = await self.call(tool, **args)
        text: str = result.content[0].text  # type: ignore[union-attr]
        assert result.is_error, f"{self.callsign} {tool} was not refused: {text}"
        assert "Traceback" not in text and "internal error" not in text
        assert result.structured_content and result.structured_content["error"]["message"]
        return text


@asynccontextmanager
async def pilot(repo: Path, callsign: str) -> AsyncIterator[Pilot]:
    async with Client(params(repo, callsign), read_timeout_seconds=60) as client:
        yield Pilot(client, callsign)


def run(main: Callable[[], Awaitable[None]]) -> None:
    anyio.run(main)


def events_of(repo: Path, type_: str) -> list[Any]:
    with Fleet.open(repo) as fleet:
        return fleet.events(types=(type_,))


def test_three_agents_fly_a_whole_mission(bare_repo: Path) -> None:
    repo = bare_repo

    async def main() -> None:
        async with pilot(repo, "viper") as viper, pilot(repo, "goose") as goose:
            # each server registered its pilot: nobody was before
            me = (await goose.ok("overview"))["me"]
            assert me == {**me, "callsign": "goose", "registered": True, "active": True}
            mission = (await viper.ok("create_mission", title="Parser", priority="high"))[
                "mission_id"
            ]
            lexer = (
                await viper.ok(
                    "create_sortie", title="Lexer", mission=mission, files=["src/lexer.py"]
                )
            )["sortie_id"]
            grammar = (
                await viper.ok(
                    "create_sortie", title="Grammar", mission=mission, files=["src/grammar.py"]
                )
            )["sortie_id"]
            ready = await goose.ok("ready_sorties")
            assert {s["sortie_id"] for s in ready["sorties"]} == {lexer, grammar}

            claimed = await goose.ok("claim_sortie", sortie=lexer)
            assert claimed["assignee"] == "goose"
            assert [r["pattern"] for r in claimed["reservations"]] == ["src/lexer.py"]
            await goose.ok("start_sortie", sortie=lexer)

            async with pilot(repo, "ice") as ice:
                # a clash is refused, naming the holder
                text = await ice.refused("reserve", patterns=["src/lexer.py"])
                assert "held by goose" in text and "\nhint: " in text
                result = await ice.call("reserve", patterns=["src/*.py"])
                conflicts = result.structured_content["error"]["conflicts"]  # type: ignore[index]
                assert [c["holder"] for c in conflicts] == ["goose"]
                assert "goose" in await ice.refused("claim_sortie", sortie=lexer)
                await ice.ok("claim_sortie", sortie=grammar)
                glance = await ice.ok("overview")
                assert [(r["holder"], r["pattern"]) for r in glance["reserved"]] == [
                    ("goose", "src/lexer.py")
                ]
                assert [s["sortie_id"] for s in glance["claimed"]] == [lexer, grammar]
                assert (await ice.ok("check_paths", paths=["src/lexer.py"]))["free"] is False

                # messages, with an acknowledgement
                sent = await ice.ok(
                    "send_message",
                    to=["goose"],
                    subject="lexer tokens?",
                    body="which token names are final?",
                    ack_required=True,
                )
                inbox = await goose.ok("inbox", unread=True)
                assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]
                assert (await goose.ok("read_message", message=sent["message_id"]))[
                    "subject"
                ] == "lexer tokens?"
                await goose.ok("ack_message", message=sent["message_id"], notes="IDENT, NUM")
                await goose.ok(
                    "send_message", to=["ice"], subject="re", reply_to=sent["message_id"]
                )
                thread = await ice.ok("thread", message=sent["message_id"])
                assert [m["sender"] for m in thread["messages"]] == ["ice", "goose"]
                found = await ice.ok("search_messages", query="token names")
                assert [m["message_id"] for m in found["messages"]] == [sent["message_id"]]

                # a checkpoint, then goose's session ends with its files let go
                await goose.ok("report_progress", sortie=lexer, percent=60, note="tokens")
                chk = await goose.ok(
                    "checkpoint",
                    sortie=lexer,
                    progress=60,
                    summary="tokens done",
                    next_steps=["keywords"],
                )
                assert chk["reservations"] == ["src/lexer.py"]
                await goose.ok("release", all=True)
                assert (await ice.ok("check_paths", paths=["src/lexer.py"]))["free"] is True

        # a fresh session: the brief (read only), then resume re-acquires what goose held
        async with pilot(repo, "goose") as goose:
            brief = await goose.client.read_resource("fleetgit://brief")
            text = brief.contents[0].text  # type: ignore[union-attr]
            assert "tokens done" in text and "`src/lexer.py`: free" in text
            resumed = await goose.ok("resume")
            assert resumed["reservations"]["reacquired"] == ["src/lexer.py"]
            assert resumed["sortie"]["sortie_id"] == lexer
            assert "keywords" in resumed["markdown"]
            overview = await goose.client.read_resource("fleetgit://overview")
            assert "src/lexer.py" in overview.contents[0].text  # type: ignore[union-attr]
            # the resource is the overview tool's result (limit 10), not a second shape
            tool = await goose.ok("overview", limit=10)
            assert orjson.loads(overview.contents[0].text) == tool  # type: ignore[union-attr]

            async with pilot(repo, "ice") as ice:
                assert "goose" in await ice.refused("reserve", patterns=["src/lexer.py"])
                # completion frees the files the claim reserved
                done = await goose.ok("complete_sortie", sortie=lexer, summary="lexer done")
                assert done["status"] == "completed"
                assert (await ice.ok("check_paths", paths=["src/lexer.py"]))["free"] is True
                await ice.ok("start_sortie", sortie=grammar)
                await ice.ok("complete_sortie", sortie=grammar)
                seen = await ice.ok("events_since", types=["sortie_completed"])
                assert len(seen["events"]) == 2 and seen["more"] == 0
                assert (await ice.ok("events_since"))["events"] == []  # the cursor moved

    run(main)
    # every event was written as the pilot whose server wrote it
    for etype, actor in (("sortie_started", {"goose", "ice"}), ("message_sent", {"ice", "goose"})):
        assert {e.actor for e in events_of(repo, etype)} == actor
    assert run_fleetgit(repo, "verify").code == 0


def test_no_tool_takes_an_identity() -> None:
    for tool in TOOLS.values():
        names = set(tool.input_schema()["properties"])
        assert not names & {"as", "actor", "callsign", "pilot", "holder", "sender"}, tool.name


def test_eight_servers_race_for_one_sortie_and_one_lock(repo: Path) -> None:
    with Fleet.open(repo, actor="viper") as fleet:
        from fleetgit.domain.sorties import commands as sorties

        sid = sorties.create(fleet, "The one", files=["src/one.py"])
    names = [f"racer-{i}" for i in range(8)]
    claims: dict[str, CallToolResult] = {}
    takes: dict[str, CallToolResult] = {}

    async def main() -> None:
        async def fly(name: str, started: anyio.Event, ready: list[str]) -> None:
            async with pilot(repo, name) as p:
                ready.append(name)
                await started.wait()
                claims[name] = await p.call("claim_sortie", sortie=sid)
                takes[name] = await p.call("acquire_lock", key="db-migrations", ttl="10m")

        started, ready = anyio.Event(), []  # type: ignore[var-annotated]
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(fly, name, started, ready)
            while len(ready) < len(names):  # every server up, then all at once
                await anyio.sleep(0.05)
            started.set()

    run(main)
    for results, what in ((claims, "sortie"), (takes, "lock")):
        winners = [n for n, r in results.items() if not r.is_error]
        assert len(winners) == 1, f"{what}: {winners}"
        for name, r in results.items():
            if name != winners[0]:
                assert winners[0] in r.content[0].text  # type: ignore[union-attr]
    assert len(events_of(repo, "sortie_assigned")) == 1
    assert len(events_of(repo, "lock_acquired")) == 1
    assert len(events_of(repo, "file_reserved")) == 1
    assert run_fleetgit(repo, "verify").code == 0


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("claim_sortie", {}, "argument sortie: required"),
    ("claim_sortie", {"sortie": 7}, "argument sortie: expected a string, got an integer"),
    ("claim_sortie", {"sortie": "srt-x", "reserve": "yes"}, "argument reserve: expected true"),
    ("claim_sortie", {"sortie": "srt-x", "sortei": 1}, "argument sortei: unknown argument"),
    ("report_progress", {"sortie": "srt-x", "percent": 101}, "argument percent: 101 is out"),
    ("report_progress", {"sortie": "srt-x", "percent": -1}, "argument percent: -1 is out"),
    ("report_progress", {"sortie": "srt-x", "percent": 5.5}, "argument percent: expected an int"),
    ("report_progress", {"sortie": "srt-x", "percent": True}, "argument percent: expected an int"),
    ("complete_sortie", {"sortie": "srt-x", "result": "great"}, "argument result: 'great' is not"),
    ("create_mission", {"title": "T", "priority": "urgent"}, "argument priority: 'urgent'"),
    ("create_sortie", {"title": "T", "files": ["a.py", 3]}, "argument files[1]: expected a str"),
    ("create_sortie", {"title": "T", "files": {"a": 1}}, "argument files: expected a list"),
    ("send_message", {"to": ["goose"]}, "argument subject: required"),
    ("reserve", {"patterns": None}, "argument patterns: required"),
    ("inbox", {"limit": "ten"}, "argument limit: expected an integer, got a string"),
    ("checkpoint", {"next_steps": [None]}, "argument next_steps[0]: expected a string, got null"),
    ("acquire_lock", {"key": "k", "wait": "10m"}, "argument wait: 10m is over 60s"),
    ("events_since", {"types": ["sortie_done"]}, "argument types[0]: 'sortie_done' is not one"),
]


def test_bad_input_is_a_tool_error_naming_the_field(repo: Path) -> None:
    async def main() -> None:
        async with pilot(repo, "goose") as goose:
            for tool, args, expected in BAD_CALLS:
                text = await goose.refused(tool, **args)
                assert text.startswith(f"{tool}: {expected}"), (tool, args, text)
                assert "\nhint: " in text
            assert "did you mean claim_sortie" in await goose.refused("claim_sortei")
            # the domain's own refusals carry the CLI's message and hint
            text = await goose.refused("start_sortie", sortie="srt-nope")
            assert "srt-nope" in text and "\nhint: " in text

    run(main)
    assert events_of(repo, "sortie_created") == []  # nothing was written


def test_only_the_mcp_command_loads_the_sdk(repo: Path) -> None:
    code = (
        "import sys; sys.argv = ['fleetgit', 'status']; from fleetgit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'mcp', 'pydantic', 'starlette', 'uvicorn', 'anyio', 'mcp_types'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_a_server_without_an_identity_says_so(repo: Path) -> None:
    res = run_fleetgit(repo, "mcp")
    assert res.code == 1 and "no pilot identity" in res.err and "hint:" in res.err
    assert "Traceback" not in res.err


@pytest.mark.parametrize("text", ["nope", "host:0", "1:2:99999"])
def test_a_bad_http_address_is_refused(repo: Path, text: str) -> None:
    res = run_fleetgit(repo, "--as", "goose", "mcp", "--http", text)
    assert res.code == 1 and "--http" in res.err and "HOST:PORT" in res.err


@contextmanager
def http_server(repo: Path, host: str) -> Iterator[int]:
    """`fleetgit --as goose mcp --http HOST:PORT` in its own process, until it listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetgit", "--as", "goose", "mcp", "--http", f"{host}:{port}"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):  # until it listens (not a timing assertion: it just waits)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "the server exited"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_server_speaks_streamable_http_on_localhost(repo: Path) -> None:
    with http_server(repo, "") as port:

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                result = await client.call_tool("overview", {})
                assert not result.is_error
                assert result.structured_content["me"]["callsign"] == "goose"  # type: ignore[index]

        run(main)


def test_beyond_loopback_only_the_pilots_own_token_gets_in(repo: Path) -> None:
    """Whoever reaches a port bound beyond loopback would act as the server's pilot: each
    request needs that pilot's write token (the HTTP API's), nothing else."""
    import http.client

    def token(who: str, *options: str) -> str:
        res = run_fleetgit(repo, "--as", who, "token", "create", *options, "--json")
        assert res.code == 0, res.err
        return str(res.json()["token"])

    goose, viper = token("goose"), token("viper")
    reader = token("goose", "--read-only")
    with http_server(repo, "0.0.0.0") as port:
        hello = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})

        def status(auth: str | None) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = {"content-type": "application/json", "accept": "application/json"}
            if auth is not None:
                headers["authorization"] = auth
            conn.request("POST", "/mcp", hello, headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if response.status == 401:
                assert b"fleetgit token create --as goose" in body
            return response.status

        for refused in (
            None,
            "Bearer",
            f"Bearer {viper}",
            f"Bearer {reader}",
            f"Basic {goose}",
            f"Bearer {goose}x",
        ):
            assert status(refused) == 401, refused
        assert status(f"Bearer {goose}") != 401

        async def main() -> None:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            headers = {"authorization": f"Bearer {goose}"}
            async with httpx2.AsyncClient(headers=headers) as http_client:
                transport = streamable_http_client(
                    f"http://127.0.0.1:{port}/mcp", http_client=http_client
                )
                async with Client(transport) as client:
                    result = await client.call_tool("overview", {})
                    assert not result.is_error
                    me = result.structured_content["me"]  # type: ignore[index]
                    assert me["callsign"] == "goose"

        run(main)
        run_fleetgit(repo, "token", "revoke", goose.split("_")[1])
        assert status(f"Bearer {goose}") == 401


def test_the_server_beats_the_pilots_heartbeat_while_it_reads(repo: Path) -> None:
    """A read after a quarter of the activity window without a write records a heartbeat (with
    the usual 15 minutes, after a minute); writes are signs of life of their own."""
    config = repo / ".fleet/config.toml"
    text = config.read_text().replace(
        "pilot_active_window_seconds = 900", "pilot_active_window_seconds = 2"
    )
    config.write_text(text)

    async def main() -> None:
        async with pilot(repo, "goose") as goose:
            await goose.ok("inbox")
            before = [e for e in events_of(repo, "pilot_active") if e.actor == "goose"]
            await anyio.sleep(0.6)  # past a quarter of the window
            await goose.ok("inbox")
            beats = [e for e in events_of(repo, "pilot_active") if e.actor == "goose"]
            assert len(beats) == len(before) + 1

    run(main)


def test_every_tool_is_described_for_a_model() -> None:
    from jsonschema.validators import Draft202012Validator

    for tool in TOOLS.values():
        assert "Example: " + tool.name in tool.description, tool.name
        Draft202012Validator.check_schema(tool.input_schema())
        Draft202012Validator.check_schema(tool.output)
        for p in tool.params:
            assert p.description, (tool.name, p.name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(TOOLS)),
    args=st.dictionaries(st.sampled_from(["sortie", "percent", "files", "to", "x"]), json_values),
)
def test_any_arguments_are_taken_or_refused_in_one_line(name: str, args: dict[str, Any]) -> None:
    from fleetgit.agents.tools import check_arguments
    from fleetgit.ledger.errors import ValidationError

    try:
        checked = check_arguments(TOOLS[name], args)
    except ValidationError as exc:
        assert exc.message.startswith(f"{name}: argument ") and "\n" not in exc.message
        return
    assert set(checked) == {p.name for p in TOOLS[name].params}


def test_a_write_on_a_read_only_fleet_folder_is_the_clis_refusal(repo: Path) -> None:
    """A write tool on a read-only `.fleet/` answered "internal error: OSError ..." (and logged
    a traceback) where the CLI refuses in one line naming the path, with a hint: the tool error
    is that refusal, and reads still answer."""
    with read_only_fleet(repo) as prefix:
        fleetgit = [*prefix, sys.executable, "-m", "fleetgit", "--as", "goose"]
        cli = subprocess.run(
            [*fleetgit, "squawk", "send", "--to", "ice", "--subject", "x"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        server = StdioServerParameters(
            command=fleetgit[0], args=[*fleetgit[1:], "mcp"], cwd=str(repo), env=dict(os.environ)
        )
        texts: list[str] = []
        errors: list[Any] = []

        async def main() -> None:
            async with Client(server, read_timeout_seconds=60) as client:
                goose = Pilot(client, "goose")
                texts.append(await goose.refused("send_message", to=["ice"], subject="x"))
                result = await goose.call("send_message", to=["goose"], subject="y")
                errors.append(result.structured_content)
                assert (await goose.ok("overview"))["me"]

        run(main)
    assert cli.returncode == 1, cli.stderr
    cli_message, cli_hint = cli.stderr.removeprefix("fleetgit: ").splitlines()
    message, hint = texts[0].splitlines()
    assert hint == cli_hint and "writable" in hint
    assert ".fleet/events/" in message and message.split(":")[0] == cli_message.split(":")[0]
    assert errors[0]["error"]["code"] == "filesystem"
    assert errors[0]["error"]["message"] == message and errors[0]["error"]["hint"] == hint[6:]
    assert not list((repo / ".git/fleet/logs").glob("*error-*"))
    assert events_of(repo, "message_sent") == []
