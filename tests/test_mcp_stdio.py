"""`fleetgit mcp`'s stdio transport: the server reads a pipe on its event loop (not through the
SDK's worker threads) and falls back to the SDK's own transport when stdin is a regular file;
both answer the same, and nothing but JSON-RPC reaches stdout. Real server processes, fed the
lines the SDK's client (mcp 2.3.0, protocol 2026-07-28) writes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

META = {
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
}


def request(rid: int, method: str, **params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params | META})


REQUESTS = "".join(
    line + "\n"
    for line in [
        request(1, "server/discover"),
        request(2, "tools/list"),
        request(3, "tools/call", name="check_paths", arguments={"paths": ["src/app.py"]}),
        request(4, "tools/call", name="send_message", arguments={"to": ["goose"], "subject": "hi"}),
        request(5, "tools/call", name="check_paths", arguments={"paths": 7}),
        request(6, "tools/call", name="inbox", arguments={"limit": 5}),
    ]
)


SERVER = [sys.executable, "-m", "fleetgit", "--as", "viper", "mcp"]


def parsed(lines: list[str]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for line in lines:
        message = json.loads(line)  # every line on the wire is one JSON-RPC message
        out[message["id"]] = message.get("result", message.get("error"))
    return out


def piped(repo: Path, requests: str, answers: int | None = None) -> dict[int, Any]:
    """The answers through a pipe, kept open until every request is answered (at the end of
    its input the SDK's server stops, cancelling what it has not answered yet). `answers`:
    how many there are, when not one a line (a notification has none)."""
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            SERVER, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(requests.encode())
        proc.stdin.flush()
        count = len(requests.splitlines()) if answers is None else answers
        lines = [proc.stdout.readline().decode() for _ in range(count)]
        proc.stdin.close()
        errors.seek(0)
        assert proc.wait(timeout=60) == 0, errors.read().decode()
        assert proc.stdout.read() == b""
    return parsed(lines)


def test_a_pipe_and_a_regular_file_get_the_same_answers(repo: Path, tmp_path: Path) -> None:
    got = piped(repo, REQUESTS)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert {t["name"] for t in got[2]["tools"]} >= {"check_paths", "send_message", "inbox"}
    assert got[3]["structuredContent"] == {"blocked": [], "free": True}
    assert not got[4]["isError"]
    assert got[5]["isError"] and "argument paths" in got[5]["content"][0]["text"]
    assert got[6]["structuredContent"]["messages"] == []
    # a regular file: the SDK's own transport, which stops at the file's end (so it answers
    # what it reached by then), the same answers, nothing else on stdout
    requests = tmp_path / "requests.jsonl"
    requests.write_text(REQUESTS)
    with requests.open("rb") as stdin:
        proc = subprocess.run(SERVER, cwd=repo, stdin=stdin, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    filed = parsed(proc.stdout.decode().splitlines())
    for rid in filed.keys() & {1, 3, 5}:
        assert filed[rid] == got[rid] or rid == 1  # discover: the same server, another process


def test_stdin_from_dev_null_ends_at_once_without_a_traceback(repo: Path) -> None:
    """/dev/null is a character device the event loop cannot watch (epoll refuses it): the
    server took it for a terminal, logged asyncio's traceback and hung. It is an empty input:
    the server ends as at the end of a file."""
    proc = subprocess.run(
        SERVER, cwd=repo, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr and proc.stdout == b""


def test_a_long_message_line_is_read_whole(repo: Path) -> None:
    """asyncio reads lines of at most 64 KiB by default; a call may carry more."""
    paths = [f"src/{i:06d}/{'x' * 40}.py" for i in range(4000)]  # ~200 KB on one line
    lines = request(1, "server/discover") + "\n"
    lines += request(2, "tools/call", name="check_paths", arguments={"paths": paths}) + "\n"
    got = piped(repo, lines)
    assert got[2]["structuredContent"] == {"blocked": [], "free": True}
