"""What the app, the routes and the event stream share: settings, the JSON response, the
refusals made here, and who a request acts as (its token)."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from fleetgit.fleet import Fleet
from fleetgit.git.paths import RepoPaths
from fleetgit.ledger import errors
from fleetgit.web.auth import Principal, TokenBook

API = "/api/v1"
MAX_BODY = 1 << 20  # 1 MiB: far over any event (max_event_bytes), far under what hurts
STATUS = {  # the CLI's error codes -> HTTP
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.AmbiguousError: 409,
    errors.UsageError: 400,
    errors.ValidationError: 422,
}
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
CODES |= {405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


class Settings(NamedTuple):
    paths: RepoPaths
    host: str = "127.0.0.1"
    max_body: int = MAX_BODY
    cors: tuple[str, ...] = ()
    poll_s: float = 0.1  # how often the event stream looks for new events


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(HTTPException):
    """A refusal made here (not by the domain): status, code, message, hint."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(status, message)
        self.code, self.message, self.hint = code, message, hint


def error(status: int, code: str, message: str, hint: str | None = None, **extra: Any) -> JSON:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint, **extra}
    return JSON({"error": body}, status_code=status)


def status_of(exc: errors.FleetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class State:
    """What every request shares: where the ledger is, the tokens, the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.loopback = is_loopback(settings.host)
        self.tokens = TokenBook(settings.paths)

    @contextlib.contextmanager
    def fleet(self, who: Principal) -> Iterator[Fleet]:
        """The ledger, acting as `who`'s pilot (nobody for an anonymous read): one per request,
        as one CLI process, so nothing is cached across requests that a CLI would not cache."""
        fleet = Fleet(self.paths, actor=who.pilot)
        try:
            yield fleet
        finally:
            fleet.close()


def state(request: Request) -> State:
    found: State = request.app.state.web
    return found


def principal(request: Request) -> Principal:
    """Who is asking. A token, when given, must be valid; without one, only a read on loopback."""
    web = state(request)
    header = request.headers.get("authorization")
    token: str | None = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "unauthorized",
                "the Authorization header is not 'Bearer TOKEN'",
                "fleetgit token create --as CALLSIGN prints a token",
            )
        token = value.strip()
    elif request.url.path == f"{API}/events/stream":  # EventSource cannot set headers
        token = request.query_params.get("access_token")
    if token is None:
        if web.loopback and request.method in ("GET", "HEAD"):
            return Principal(None, "anonymous")
        if request.method in ("GET", "HEAD"):
            raise ApiError(
                401,
                "unauthorized",
                "reading needs a token: this server listens beyond loopback",
                "fleetgit token create --read-only (or --as CALLSIGN); send it as"
                " 'Authorization: Bearer TOKEN'",
            )
        raise ApiError(
            401,
            "unauthorized",
            "writing needs a token bound to a pilot",
            "fleetgit token create --as CALLSIGN; send it as 'Authorization: Bearer TOKEN'",
        )
    found = web.tokens.check(token)
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is not valid: unknown, revoked or mistyped",
            "fleetgit token list shows the tokens; fleetgit token create --as CALLSIGN makes one",
        )
    return found


def writer(request: Request) -> Principal:
    """A write: a token that may act as its pilot."""
    who = principal(request)
    if who.scope != "write" or not who.pilot:
        raise ApiError(
            403,
            "forbidden",
            "this token is read-only: it cannot change anything",
            "fleetgit token create --as CALLSIGN makes a token that acts as that pilot",
        )
    return who
