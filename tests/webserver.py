"""A real `fleetgit serve` in a subprocess on a free port, and a plain HTTP client (http.client,
no mocks): what the web tests and the dashboard's browser test share."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from fleetgit.git.paths import locate
from fleetgit.web import auth


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, headers

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        """The error object, checked to be exactly {code, message, hint} and no traceback."""
        value = self.json()
        assert set(value) == {"error"}, value
        err = value["error"]
        assert {"code", "message", "hint"} <= set(err), err
        assert "Traceback" not in self.body.decode(), self.body
        return dict(err)


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[str], repo: Path) -> None:
        self.url, self.proc, self.repo = url, proc, repo
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = orjson.dumps(body)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        conn = self.connection()
        try:
            conn.request(method, "/api/v1" + path if path.startswith("/") else path, data, sent)
            res = conn.getresponse()
            return Reply(res.status, res.read(), dict(res.getheaders()))
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)


def token(repo: Path, pilot: str | None, scope: str = "write") -> str:
    secret, _ = auth.create(locate(repo), pilot, scope=scope)
    return secret


def workers(server: Server, count: int) -> list[int]:
    """The server's worker processes (its supervisor's children), once `count` of them run
    (the first may answer before the last is forked), or after 10 s whatever runs."""
    pid = server.proc.pid
    deadline = time.monotonic() + 10
    while True:
        try:
            found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            found = []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@contextmanager
def serving(
    repo: Path, *args: str, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> Iterator[Server]:
    """`fleetgit serve --port 0 ARGS` in `repo` (its own process group), until the block ends;
    its stderr goes to `repo.parent / "serve.err"`. `prefix`: what runs it (conftest's
    `read_only_fleet`), exec-ing it in the same process."""
    log = open(repo.parent / "serve.err", "ab")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "fleetgit", "serve", "--port", "0", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # a Ctrl-C is a SIGINT to its whole group (os.killpg)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "serving" not in line:
            proc.kill()
            proc.wait()
            err = (repo.parent / "serve.err").read_text()
            raise AssertionError(f"serve did not start: {line}{err}")
        url = line.rsplit(" on ", 1)[1].strip()
        server = Server(url, proc, repo)
        deadline = time.monotonic() + 20
        while True:  # the socket listens already; wait for the app's start-up
            try:
                if server.get("/me").status == 200 or "0.0.0.0" in url:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve never answered")
            time.sleep(0.05)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()
