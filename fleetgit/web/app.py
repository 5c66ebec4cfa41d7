"""The ASGI app: settings, errors as JSON, the body limit and host check, tokens, static files.

Every error a client sees is `{"error": {"code", "message", "hint"}}` with a fitting status;
an unexpected one is a 500 whose traceback goes to a log under the git dir, never to the client.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetgit.fleet import Fleet
from fleetgit.git.paths import RepoPaths
from fleetgit.ledger import errors
from fleetgit.web import trace
from fleetgit.web.common import (
    API,
    CODES,
    JSON,
    ApiError,
    Settings,
    State,
    error,
    is_loopback,
    state,
    status_of,
)

if TYPE_CHECKING:
    from fleetgit.web.sse import Hub

# -- errors ------------------------------------------------------------------------------------


def _fleet_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.FleetError)
    extra: dict[str, Any] = {}
    conflicts = getattr(exc, "conflicts", None)
    if conflicts is not None:  # a reservation refused: who holds what
        extra["conflicts"] = [c.to_json() for c in conflicts]
    return error(status_of(exc), exc.code, exc.message, exc.hint, **extra)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return error(exc.status_code, exc.code, exc.message, exc.hint)
    status = exc.status_code
    message = str(exc.detail)
    hint = None
    if status == 404:
        message = f"no such route: {request.method} {request.url.path}"
        hint = f"the routes are listed in {API}/openapi.json"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        hint = f"the routes and their methods are listed in {API}/openapi.json"
    elif status == 400 and "parsing the body" in message:
        message = "the body could not be read"
    return error(status, CODES.get(status, "http_error"), message, hint)


def _where(loc: tuple[Any, ...], body: Any) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
        kind = "body"
        # a discriminated union puts the member's tag (the body's action) in the location
        if parts and isinstance(body, dict) and parts[0] == body.get("action"):
            parts = parts[1:]
    else:
        kind = parts.pop(0) if parts else "request"
    parts = [p for p in parts if not p.startswith(("Sortie", "Mission", "WorkOrder"))]
    return f"{kind} field {'.'.join(parts)!r}" if parts else kind


def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in found):
        return error(
            400,
            "bad_json",
            "the body is not valid JSON",
            "send one JSON object, with Content-Type: application/json",
        )
    lines = []
    for e in found[:10]:
        kind, where = e.get("type"), _where(tuple(e.get("loc", ())), exc.body)
        if kind == "extra_forbidden":
            lines.append(f"unknown {where}")
        elif kind == "missing":
            lines.append(f"{where} is missing")
        else:
            lines.append(f"{where}: {e.get('msg')}")
    more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
    return error(
        422,
        "invalid",
        "; ".join(lines) + more,
        f"the request's schema is in {API}/openapi.json",
    )


def _internal(request: Request, exc: Exception) -> Response:
    refused = errors.refused_by_the_system(exc)
    if refused is not None:  # read-only, no permission, no space: the CLI's refusal, not a bug
        return _fleet_error(request, refused)
    log = _log_traceback(state(request).paths)
    return error(
        500,
        "internal",
        f"internal error: {type(exc).__name__}",
        f"details in {log}; please report it",
    )


def _log_traceback(paths: RepoPaths) -> Path:
    log_dir = paths.local_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"web-error-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


# -- the guard: host check and body limit ------------------------------------------------------


class TooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "too_large",
            f"the request body is over the limit of {limit} bytes",
            "store large content in a file and reference its path (fleetgit serve --max-body"
            " sets the limit)",
        )


async def _send_error(send: Send, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _json_or_empty(headers: dict[bytes, bytes]) -> bool:
    """A body that says it is JSON (application/json, or +json), or no body at all."""
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind == b"application/json" or kind.endswith(b"+json"):
        return True
    return headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers


class Guard:
    """Pure ASGI, outermost: refuses a body over the limit (by its Content-Length before
    reading, else while it streams in), and on loopback a Host that is not loopback (a web page
    elsewhere cannot reach this server through DNS rebinding)."""

    def __init__(self, app: ASGIApp, web: State, hub: Hub) -> None:
        self.app, self.web, self.hub = app, web, hub
        self.limit = web.settings.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.web.loopback:
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback(name):
                msg = f"Host {host!r} is not this loopback server"
                hint = "use http://127.0.0.1:PORT/ (fleetgit serve --host binds elsewhere)"
                await _send_error(send, error(400, "bad_host", msg, hint))
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            exc = TooLarge(self.limit)
            await _send_error(send, error(413, exc.code, exc.message, exc.hint))
            return
        if scope["method"] in ("POST", "PATCH", "PUT") and not _json_or_empty(headers):
            msg = "the body must be JSON"
            hint = "send it with Content-Type: application/json"
            await _send_error(send, error(415, "unsupported_media_type", msg, hint))
            return
        seen = 0
        if trace.TARGET is not None and scope["path"] != f"{API}/events/stream":
            trace.start(scope["method"], scope["path"])
            send = _traced(send)

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def _traced(send: Send) -> Send:
    async def traced(message: Message) -> None:
        if message["type"] == "http.response.start":
            trace.mark("resp")
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            trace.mark("sent")

    return traced


# -- the app -----------------------------------------------------------------------------------

STATIC = resources.files("fleetgit.web") / "static"


def create_app(settings: Settings) -> Guard:
    from fleetgit.web import routes, sse

    web = State(settings)
    hub = sse.Hub(web)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # requests run in worker threads; with the GIL, more than a few only add switching
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.threads
        try:
            async with hub.running(), trace.running():
                yield
        finally:
            # each request thread's index, on a thread of its own: the default limiter's
            # tokens may all be held by requests uvicorn cancelled whose threads run on
            await anyio.to_thread.run_sync(web.close, limiter=anyio.CapacityLimiter(1))

    app = FastAPI(
        title="fleetgit",
        version="1",
        description="The fleet's ledger over HTTP: the same rules as the fleetgit CLI.",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,
        redoc_url=None,
        default_response_class=JSON,
        lifespan=lifespan,
    )
    app.state.web = web
    app.state.hub = hub
    app.add_exception_handler(errors.FleetError, _fleet_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _internal)
    # before the router: /events/{event_id} would take "stream" for an id
    app.add_api_route(f"{API}/events/stream", sse.endpoint(hub), methods=["GET"], tags=["events"])
    # the routes themselves, not an included router: FastAPI's include_router wraps each
    # request in a second matching pass that cost about as much as the request's own work
    app.router.routes.extend(routes.router.routes)
    static = Path(str(STATIC))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> Response:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    if settings.cors:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    return Guard(app, web, hub)


MAX_AUTO_WORKERS = 4


def processes(workers: int) -> int:
    """How many server processes: `workers`, or for 0 one per core this process may run on, at
    most MAX_AUTO_WORKERS. One process's requests share its GIL; a second one on a second core
    takes the read p99 of issue 16's load from 44-81 ms to 12-22 ms (docs/benchmarks.md)."""
    if workers > 0:
        return workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores))


def serve(
    settings: Settings,
    port: int,
    *,
    announce: Callable[[str], None],
    note: Callable[[str], None],
    complain: Callable[[errors.FleetError], None],
    workers: int = 0,
) -> None:
    """Listen on (host, port) (0: a free port) and serve until SIGTERM or SIGINT, in `workers`
    processes (0: see `processes`) under a supervisor (web/workers.py) that starts again one
    that ends. The sockets are bound here, so the address announced is the one listened on, and
    a busy port is one clear line; so is a ledger that does not open. `note` tells of a server
    process started again, `complain` of the error a process could not start for."""
    import uvicorn

    from fleetgit.web import sse
    from fleetgit.web.workers import Voice, supervise

    host = settings.host
    count = processes(workers)
    # one listening socket per process, in one SO_REUSEPORT group: the kernel spreads the
    # connections evenly (a socket shared by all, each process accepting, gave one of two
    # processes three quarters of a load's keep-alive connections: the first awake takes all)
    if count > 1:  # a plain socket first: a port in use (by anyone) is refused, as with one
        probe = _listen(host, port, reuse=False)  # process, never joined
        port = probe.getsockname()[1]
        probe.close()
    sockets = [_listen(host, port, reuse=count > 1)]
    bound = sockets[0].getsockname()[1]
    every: list[sse.Link] = []
    try:
        sockets += [_listen(host, bound, reuse=True) for _ in range(count - 1)]
        # the ledger opens and is caught up once, here: a bad config is one line, not one a
        # process, and the processes find the index level (closed before any fork)
        Fleet(settings.paths, actor=None).close()
        shown = f"[{host}]" if ":" in host else host
        app = create_app(settings)
        every = sse.links(count) if count > 1 else [sse.Link()]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # a token given as ?access_token= must not land in a log
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        announce(f"http://{shown}:{bound}/")

        def worker(n: int, sock: socket.socket, voice: Voice) -> int:
            """Process `n`: its own GIL, event stream poller and ledgers (they serialise writes
            as CLI processes do), forked before any thread or connection. A write wakes every
            process's event stream (sse.links), not only its own."""
            sse.keep(every, every[n])
            app.hub.link = every[n]
            try:  # the ledger the app's start opens, opened here: one line when it cannot
                app.hub.open()
            except errors.FleetError as exc:
                voice.failed(exc)  # the supervisor says it, once however often it comes
                return 1
            Server(config, voice).run(sockets=[sock])
            return 0

        class Server(uvicorn.Server):
            def __init__(self, config: uvicorn.Config, voice: Voice) -> None:
                super().__init__(config)
                self.voice = voice

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                """Once the app has started and the socket serves, the supervisor is told."""
                await super().startup(sockets=sockets)
                if self.started and not self.should_exit:
                    self.voice.started()

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                """A stop (SIGTERM, SIGINT) ends the event streams first: their connections
                then close in the graceful shutdown, not cancelled with a traceback at its
                end. A second signal keeps the stop graceful: Ctrl-C reaches every process
                of the group and the supervisor sends SIGTERM as well, and uvicorn would take
                a SIGINT after another signal as a forced exit, skipping the app's shutdown
                (a worker that hangs is the supervisor's to kill, after STOP_S)."""
                app.hub.end_streams()
                if not self.should_exit:
                    super().handle_exit(sig, frame)

        supervise(sockets, worker, note=note, complain=complain)
        # SQLite folds the WAL back and deletes it at the last connection's close, when that
        # one gets the lock; two workers closing at once can each leave it to the other. The
        # supervisor's own close, once every worker has ended, is the last one.
        with contextlib.suppress(errors.FleetError):  # a ledger that no longer opens: none
            Fleet(settings.paths, actor=None, repair=False, catch_up=False).close()
    finally:
        for sock in sockets:
            sock.close()
        sse.keep(every, sse.Link())  # every pipe end closed


def _listen(host: str, port: int, *, reuse: bool) -> socket.socket:
    """A listening TCP socket on (host, port); `reuse`: in an SO_REUSEPORT group, which only
    sockets of this user that say so too may join. A busy port is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it a
    # keep-alive response sent in two writes waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise errors.ValidationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0: any free one) or --host",
        ) from None
    return sock
