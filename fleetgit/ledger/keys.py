"""Pilots' Ed25519 keys: the private key file of this clone, signing and verifying.

A pilot's private key lives in `<git-common-dir>/fleet/keys/<callsign>.key` (mode 0600, never in
the repository; every worktree of the clone shares it; FLEETGIT_KEY_DIR moves it); its public
key is in the pilot's registration event (or a `pilot_key_added` signed by a key it already
had). `cryptography` is imported only when a key is made, loaded or checked: never on the
hooks' path.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from fleetgit.ledger.errors import ValidationError
from fleetgit.ledger.sigs import encode_key

# path -> (the file's (inode, mtime, size), private key object, its public text): one load per
# process and file version; a key another process replaced (`rotate`) is loaded again
_cache: dict[str, tuple[tuple[int, int, int], Any, str]] = {}
_paths: dict[tuple[Path, str, str | None], str] = {}


def key_path(common_dir: Path, callsign: str) -> Path:
    """Where this clone keeps `callsign`'s private key: its git dir, or FLEETGIT_KEY_DIR (one
    directory for every clone of this machine, as ~/.ssh is)."""
    return Path(_key_file(common_dir, callsign))


def _key_file(common_dir: Path, callsign: str) -> str:
    shared = os.environ.get("FLEETGIT_KEY_DIR")
    memo = (common_dir, callsign, shared)
    path = _paths.get(memo)
    if path is None:
        folder = Path(shared) if shared else common_dir / "fleet" / "keys"
        path = _paths[memo] = str(folder / f"{callsign}.key")
    return path


def admin_path(common_dir: Path) -> Path:
    """Where this clone keeps a fleet admin private key: beside the pilots' keys, in a folder
    no callsign's file can be."""
    return key_path(common_dir, "x").parent / "admin" / "admin.key"


def load_admin(common_dir: Path) -> Any | None:
    """This clone's fleet admin private key, or None."""
    path = admin_path(common_dir)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    raw = _decode_private(text)
    if raw is None:
        raise ValidationError(f"{path}: not a fleetgit private key", hint="remove it")
    return _private_cls().from_private_bytes(raw)


def create_admin(common_dir: Path) -> tuple[Any, bool]:
    """This clone's fleet admin key, made now if there is none; (key, made now)."""
    key = load_admin(common_dir)
    if key is not None:
        return key, False
    path = admin_path(common_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = generate_raw()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, f"fleetgit-ed25519:{encode_key(raw)}\n".encode("ascii"))
    finally:
        os.close(fd)
    return load_admin(common_dir), True


def _private_cls() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey


def load(common_dir: Path, callsign: str) -> Any | None:
    """This clone's private key of `callsign`, or None."""
    got = load_pair(common_dir, callsign)
    return None if got is None else got[0]


def load_pair(common_dir: Path, callsign: str) -> tuple[Any, str] | None:
    """(this clone's private key of `callsign`, its public key as the ledger records it), or
    None. Kept per process while the file's inode, mtime and size stay: an append pays one
    stat, not a read, a decode and a public-key derivation (~0.1 ms)."""
    path = _key_file(common_dir, callsign)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    try:
        with open(path, "rb") as fh:
            text = fh.read(4096).decode("ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    raw = _decode_private(text)
    if raw is None:
        raise ValidationError(
            f"{path}: not a fleetgit private key", hint=f"remove it, or import {callsign}'s key"
        )
    key = _private_cls().from_private_bytes(raw)
    pub = public(key)
    _cache[path] = (stamp, key, pub)
    return key, pub


def _decode_private(text: str) -> bytes | None:
    if not text.startswith("fleetgit-ed25519:"):
        return None
    try:
        raw = base64.urlsafe_b64decode(text.split(":", 1)[1] + "==")
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def public(key: Any) -> str:
    """The public key as the ledger records it (base64url, 43 characters)."""
    return encode_key(key.public_key().public_bytes_raw())


def store(common_dir: Path, callsign: str, raw: bytes) -> Path:
    """Write a private key file (mode 0600, created exclusively)."""
    path = key_path(common_dir, callsign)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = f"fleetgit-ed25519:{encode_key(raw)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
    _cache.pop(str(path), None)
    return path


def create(common_dir: Path, callsign: str) -> Any:
    """This clone's key of `callsign`, made now if there is none."""
    key = load(common_dir, callsign)
    if key is None:
        raw = _private_cls().generate().private_bytes_raw()
        store(common_dir, callsign, raw)
        key = load(common_dir, callsign)
    return key


def export_text(common_dir: Path, callsign: str) -> str:
    key = load(common_dir, callsign)
    if key is None:
        raise ValidationError(
            f"this clone holds no key of pilot {callsign}",
            hint="export it on the machine that registered the pilot",
        )
    return f"fleetgit-ed25519:{encode_key(key.private_bytes_raw())}"


def import_text(common_dir: Path, callsign: str, text: str) -> str:
    """Store an exported key; its public key (for the caller to check against the ledger)."""
    raw = _decode_private(text.strip())
    if raw is None:
        raise ValidationError(
            "not an exported fleetgit key", hint="use the output of fleetgit pilot key export"
        )
    if load(common_dir, callsign) is not None:
        raise ValidationError(
            f"this clone already holds a key of pilot {callsign}",
            hint=f"remove {key_path(common_dir, callsign)} first to replace it",
        )
    store(common_dir, callsign, raw)
    return public(load(common_dir, callsign))


def generate_raw() -> bytes:
    return bytes(_private_cls().generate().private_bytes_raw())


def public_of_raw(raw: bytes) -> str:
    return public(_private_cls().from_private_bytes(raw))


def public_of_text(text: str) -> str:
    raw = _decode_private(text.strip())
    if raw is None:
        raise ValidationError(
            "not an exported fleetgit key", hint="use the output of fleetgit pilot key export"
        )
    return public_of_raw(raw)


def replace(common_dir: Path, callsign: str, raw: bytes) -> None:
    """Put `raw` in place of the pilot's key file (a rotation), atomically."""
    path = key_path(common_dir, callsign)
    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, f"fleetgit-ed25519:{encode_key(raw)}\n".encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _cache.pop(str(path), None)


def sign(key: Any, message: bytes) -> bytes:
    return bytes(key.sign(message))


_public_cache: dict[bytes, Any] = {}


def verify(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = _public_cache.get(public_raw)
    if pub is None:
        pub = _public_cache[public_raw] = Ed25519PublicKey.from_public_bytes(public_raw)
    try:
        pub.verify(signature, message)
    except InvalidSignature:
        return False
    return True
