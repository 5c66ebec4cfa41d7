"""The one hash fleetgit uses: BLAKE2b, for fingerprints and line digests (not for security).

Imported from CPython's built-in `_blake2`: `hashlib` would also load OpenSSL, which costs about
5 ms at every start of every command and hook.
"""

from __future__ import annotations

try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python without the built-in module
    from hashlib import blake2b

__all__ = ["blake2b", "digest8", "digest16", "hash64"]


def digest16(data: bytes) -> bytes:
    return blake2b(data, digest_size=16).digest()


def digest8(data: bytes) -> bytes:
    """BLAKE2b-8: `hash64`'s bytes (big-endian), for callers that unpack many at once."""
    return blake2b(data, digest_size=8).digest()


def hash64(data: bytes, *, signed: bool = False) -> int:
    return int.from_bytes(digest8(data), "big", signed=signed)
