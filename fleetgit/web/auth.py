"""Bearer tokens of the HTTP API: each bound to one pilot, stored hashed in the clone's git dir.

A token is `fgt_<id>_<secret>`. Only the SHA-256 of the secret is kept, in
`<git-common-dir>/fleet/tokens.json` (mode 0600, never committed): the secret is shown once, by
`fleetgit token create`. A revoked token stays listed (revoked_at set) and is refused at once:
the server reads the file again whenever it changes. No web framework is imported here: the
`token` commands use this module alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from fleetgit.git.paths import RepoPaths
from fleetgit.ledger import clock
from fleetgit.ledger.errors import NotFoundError, ValidationError

SCOPES = ("write", "read", "admin")  # write: act as the pilot (and read); read: read only;
# admin: no pilot; reads, and registers new pilots over HTTP (each receiving its own token)
PREFIX = "fgt_"
MAX_FILE_BYTES = 4 << 20


class Principal(NamedTuple):
    """Who a request acts as: the token's pilot (None for a loopback read without a token)."""

    pilot: str | None
    scope: str  # "write", "read", or "anonymous"
    token_id: str | None = None


def tokens_file(paths: RepoPaths) -> Path:
    return paths.common_dir / "fleet" / "tokens.json"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationError(f"{path} is over {MAX_FILE_BYTES} bytes: not a token file")
    try:
        value = json.loads(raw)
        tokens = value["tokens"]
        if not isinstance(tokens, list):
            raise TypeError("tokens is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            f"{path} is not readable as a token file ({exc})",
            hint="move it away and create the tokens again: fleetgit token create --as CALLSIGN",
        ) from None
    return [t for t in tokens if isinstance(t, dict)]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[dict[str, Any]]]:
    """The tokens, to change in place: written back atomically (0600) under a file lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        tokens = _load(path)
        yield tokens
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(out, "w", encoding="utf-8") as fh:
            json.dump({"tokens": tokens}, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    finally:
        os.close(fd)


def public(t: dict[str, Any]) -> dict[str, Any]:
    """A stored token as listings show it: never its hash."""
    return {k: t.get(k) for k in ("id", "pilot", "scope", "name", "created_at", "revoked_at")}


def create(
    paths: RepoPaths, pilot: str | None, *, scope: str = "write", name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A new token for `pilot`; returns (the token to show once, its public record)."""
    if scope not in SCOPES:
        raise ValidationError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if scope == "write" and not pilot:
        raise ValidationError(
            "a write token acts as one pilot: name it",
            hint="fleetgit token create --as CALLSIGN (or --read-only for a viewer)",
        )
    if scope == "admin" and pilot:
        raise ValidationError(
            "an admin token acts as no pilot: it registers new ones",
            hint="fleetgit token create --admin (without --as)",
        )
    token_id = clock.short_id("tok", 40)
    secret = secrets.token_urlsafe(32)
    record = {
        "id": token_id,
        "pilot": pilot,
        "scope": scope,
        "name": name,
        "hash": _hash(secret),
        "created_at": clock.iso_ms(clock.now_ms()),
        "revoked_at": None,
    }
    with _locked(tokens_file(paths)) as tokens:
        tokens.append(record)
    return f"{PREFIX}{token_id}_{secret}", public(record)


def listing(paths: RepoPaths) -> list[dict[str, Any]]:
    return [public(t) for t in _load(tokens_file(paths))]


def revoke(paths: RepoPaths, token_id: str) -> dict[str, Any]:
    with _locked(tokens_file(paths)) as tokens:
        for t in tokens:
            if t.get("id") == token_id:
                if t.get("revoked_at") is None:
                    t["revoked_at"] = clock.iso_ms(clock.now_ms())
                return public(t)
    raise NotFoundError(f"no token {token_id!r}", hint="fleetgit token list shows them")


class TokenBook:
    """The token file as the server reads it: again whenever its stat changes."""

    def __init__(self, paths: RepoPaths) -> None:
        self.path = tokens_file(paths)
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, dict[str, Any]] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            self._by_id = {str(t.get("id")): t for t in _load(self.path)}
            self._stamp = stamp

    def check(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; None for anything else."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        token_id, _, secret = token[len(PREFIX) :].partition("_")
        self._refresh()
        found = self._by_id.get(token_id)
        if found is None or found.get("revoked_at") is not None or not secret:
            return None
        if not hmac.compare_digest(str(found.get("hash")), _hash(secret)):
            return None
        return Principal(found.get("pilot"), str(found.get("scope")), token_id)
