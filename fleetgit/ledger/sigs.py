"""Where a signature sits in a line and what it signs (no cryptography here: ledger/keys.py).

A signed line is the canonical line with one more key, `_sig`, which sorts first, so the line
is `{"_sig":"<128 chars>",` followed by the unsigned line without its `{`. The value is base64url
(no padding) of 96 bytes: the chain value of the segment before the line's batch (32) and an
Ed25519 signature (64) over `message`.

The chain of a segment: c0 = H(writer, segment number), then c = H(c, line) for each line as it
is in the file (signature included). A batch's signed line signs H(writer, the chain before
the batch, the batch's lines before it, itself without its `_sig`). So the newest valid
signature of an actor whose stated chain matches the real one vouches for every byte of the
segment before it (the rebuild checks one signature per segment and actor), while a batch read
alone (a catch-up in the middle of a file) is checked by its own signatures, trusting the chain
value it states (it cannot be checked there).
"""

from __future__ import annotations

import base64
import hashlib
from binascii import b2a_base64

PREFIX = b'{"_sig":"'
SIG_CHARS = 128  # base64url of 96 bytes
_END = len(PREFIX) + SIG_CHARS  # index of `",` after the value
_BODY = _END + 2  # where the rest of the unsigned line starts (after `",`)
_b2 = hashlib.blake2b
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 -> base64url


def split(line: bytes) -> tuple[bytes, bytes | None]:
    """(the line without its `_sig`, the signature field's value or None). A line that starts
    like a signed line but is not one is returned whole: the canonical check then refuses it."""
    if line[:9] != PREFIX or line[_END:_BODY] != b'",':
        return line, None
    return b"{" + line[_BODY:], line[9:_END]


def join(body: bytes, base: bytes, signature: bytes) -> bytes:
    """`body` (an unsigned canonical line) with its `_sig` field."""
    value = b2a_base64(base + signature, newline=False).translate(_URLSAFE)
    return b"".join((PREFIX, value, b'",', memoryview(body)[1:]))


def with_field(body: bytes, value: bytes) -> bytes:
    """`body` (an unsigned canonical line) with a `_sig` value as stored (`join`, encoded)."""
    return PREFIX + value + b'",' + body[1:]


def unpack(value: bytes) -> tuple[bytes, bytes] | None:
    """(stated chain base, signature) from a field value, or None if malformed."""
    try:
        raw = base64.urlsafe_b64decode(value)
    except ValueError:
        return None
    if len(raw) != 96:
        return None
    return raw[:32], raw[32:]


def genesis(writer: str, segment: int) -> bytes:
    return _b2(f"fleetgit-chain/1 {writer} {segment}".encode(), digest_size=32).digest()


def chain(value: bytes, lines: list[bytes]) -> bytes:
    """The chain after `lines` (as they are in the file), from `value`."""
    b2 = _b2
    for line in lines:  # blake2b-512 cut to 32 bytes: ~25 % faster than asking for 32
        value = b2(value + line).digest()[:32]
    return value


def message(writer: str, base: bytes, before: list[bytes], body: bytes) -> bytes:
    """What a signed line's signature signs: its writer, the chain value before its batch, the
    batch's lines before it (as in the file) and itself without `_sig`. Not the segment
    number: the stated chain value binds a line to its place when a segment is read whole (the
    chain starts from the writer and number), and a batch copied elsewhere (restore-lost, whose
    segments are numbered apart) still proves who wrote it; a copy never counts twice (one id)."""
    h = _b2(f"fleetgit-sig/1 {writer} ".encode(), digest_size=32)
    h.update(base)
    for line in before:
        h.update(len(line).to_bytes(4, "big"))
        h.update(line)
    h.update(body)
    return h.digest()


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key(text: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return raw if len(raw) == 32 else None
