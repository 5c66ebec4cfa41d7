"""Intake's fast path (one regular expression per event type, ledger/intake.py) changes no
verdict: on every line, mutated or not, `check` gives the same event or the same refusal, with
the same reason, as the field-by-field checks alone (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.ledger import intake
from fleetgit.ledger.codec import DecodeError
from fleetgit.ledger.sigs import split
from tests.test_ingest_fuzz import _ledger

# characters that sit on the edges of the checks: controls, blanks, separators, escapes, quotes,
# non-ASCII, digits and the envelope's own punctuation
EDGES = [
    "\x00", "\x01", "\t", "\n", "\x1f", " ", "\x7f", "\x85", "\xa0", "\u2028", "\u2029", "\u3000",
    "\u200b", "é", "\U0001f680", "\\", '\\"', "\\n", "\\t", "\\u0000", "\\u2028", '"', "}", "{",
    ",", ":", "[", "]", "-", "0", "9", "1e3", ".5", "null", "true", "A", "z", "/", "@", ',"hlc":1',
    ".", "..", "./", "../", "//", "*", "?", "**/", ":/",
]  # fmt: skip


def _slow(line: bytes, writer: str | None) -> Any:
    """What the field-by-field checks alone say: the event, or the refusal's type and text."""
    fast, intake._fast = intake._fast, lambda *_: None  # type: ignore[assignment]
    try:
        return intake.check(line, writer, CATALOGUE)
    except DecodeError as exc:
        return type(exc), str(exc)
    finally:
        intake._fast = fast  # type: ignore[assignment]


def _both(line: bytes, writer: str | None) -> None:
    try:
        got: Any = intake.check(line, writer, CATALOGUE)
    except DecodeError as exc:
        got = type(exc), str(exc)
    assert got == _slow(line, writer)
    taken = intake._fast(split(line)[0], writer, CATALOGUE)
    assert taken is None or taken == got


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return _ledger(tmp_path_factory.mktemp("fast") / "repo").splitlines(keepends=True)


def test_the_fast_path_takes_the_lines_a_fleet_writes(lines: list[bytes]) -> None:
    writer = intake.check(lines[0], None, CATALOGUE).writer
    taken = [intake._fast(split(line)[0], writer, CATALOGUE) for line in lines]
    for line, event in zip(lines, taken, strict=True):
        assert event is None or event == _slow(line, writer)
    missed = {intake.check(x, writer, CATALOGUE).type for x, e in zip(lines, taken, strict=True)
              if e is None}  # fmt: skip
    assert missed <= {"file_reserved"}  # a pattern other than a plain path: checked in Python


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_mutated_line_gets_the_same_verdict_and_reason(
    lines: list[bytes], data: st.DataObject
) -> None:
    line = bytearray(data.draw(st.sampled_from(lines)))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(line)))
        kind = data.draw(st.sampled_from(["edge", "edge", "flip", "bytes", "delete"]))
        if kind == "edge":
            line[at:at] = data.draw(st.sampled_from(EDGES)).encode("utf-8", "surrogatepass")
        elif kind == "flip" and at < len(line):
            line[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "bytes":
            line[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del line[at : at + data.draw(st.integers(1, 12))]
    writer = data.draw(st.sampled_from([None, intake.check(lines[0], None, CATALOGUE).writer]))
    _both(bytes(line), writer)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"hlc":', b'"hlc":99999999999999999999'),  # beyond 2^63: refused, with its reason
        (b'"seq":', b'"seq":0'),
        (b'"txn":', b'"txn":100001'),
        (b'"v":1', b'"v":2'),
        (b'"v":1', b'"v":0'),
        (b'"title":"', b'"title":"  '),
        (b'"title":"', b'"title":" \\u0007'),
        (b'"ts":"', b'"ts":"\\u0041'),
        (b'"data":{', b'"data":{"zzz":1,'),
    ],
)
def test_edges_of_the_envelope_and_data(lines: list[bytes], old: bytes, new: bytes) -> None:
    for line in lines:
        if old in line:
            _both(line.replace(old, new, 1), None)
            _both(line.replace(old, new, 1).replace(b"\n", b" \n"), None)


@pytest.mark.parametrize(
    "pattern",
    [
        "src", "src/", "a/b.py", "...", ".x/y", "-", "a.", ".", "..", "./a", "a/.", "a/..",
        "../a", "a//b", "/a", "a/./b", "C:/a", "c:\\\\a", "a b", "a*", "a?", "a[b]", "**",
        "a\\\\b", "é", "", " ", "a/\\u0000", "x" * 10_000, "x" * 10_001,
    ],
)  # fmt: skip
def test_a_reserved_pattern_gets_the_same_verdict_fast_or_not(
    lines: list[bytes], pattern: str
) -> None:
    """The fast path takes the plain paths `check_stored` surely keeps as they are
    (guard/patterns.py PLAIN_STORED), and leaves every other pattern to it."""
    reserved = next(x for x in lines if b'"file_reserved"' in x)
    at = reserved.index(b'"patterns":["') + len(b'"patterns":["')
    end = reserved.index(b'"', at)
    line = reserved[:at] + pattern.encode() + reserved[end:]
    _both(line, None)
    plain = pattern in ("src", "src/", "a/b.py", "...", ".x/y", "-", "a.", "x" * 10_000)
    assert (intake._fast(split(line)[0], None, CATALOGUE) is not None) == plain


def test_blank_and_control_titles_are_refused_as_before(lines: list[bytes]) -> None:
    created = next(x for x in lines if b'"mission_created"' in x)
    blank = [b" ", b"\\u3000", b"\xe3\x80\x80", b"a\xc2\x85", b"a\xe2\x80\xa8", b"\xed\xa0\x80"]
    for title in blank:
        mutated = created.replace(b'"title":"Ship it"', b'"title":"' + title + b'"')
        assert mutated != created
        _both(mutated, None)
        assert isinstance(_slow(mutated, None), tuple)
