"""Byte-level mutations of real segments (hypothesis): ingest never crashes, verify never
crashes, and a rebuild always equals the incremental index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgit.fleet import Fleet, init
from tests.conftest import make_repo, run_fleetgit
from tests.hostile import projections

FOREIGN = "f0reign000000001"


def _ledger(path: Path) -> bytes:
    """A small real fleet's segment: pilots, a mission, sorties, a claim, messages, a lock."""
    make_repo(path)
    init(path)

    def run(*args: str) -> str:
        res = run_fleetgit(path, *args)
        assert res.code == 0, res.err
        return res.out.strip()

    run("pilot", "register", "viper-1")
    run("pilot", "register", "goose")
    mid = run("--as", "viper-1", "mission", "create", "Ship it")
    sid = run("--as", "viper-1", "sortie", "create", "Lexer", "--mission", mid)
    run("--as", "goose", "sortie", "claim", sid, "--reserve")
    run("--as", "viper-1", "reserve", "src/lexer/**", "--ttl", "2h", "--reason", "lexer")
    run("--as", "goose", "squawk", "send", "--to", "viper-1", "--subject", "hi", "--body", "b")
    run("--as", "goose", "lock", "acquire", "db", "--ttl", "10m")
    (segment,) = (path / ".fleet/events").glob("*/*.jsonl")
    return segment.read_bytes()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _ledger(tmp_path_factory.mktemp("source") / "repo")


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "swap"]))
        at = draw(st.integers(0, max(0, len(buf) - 1)))
        if kind == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[at : at + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del buf[at:]
        else:
            lines = bytes(buf).splitlines(keepends=True)
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 2))
                if kind == "dup":
                    lines.insert(i, lines[i])
                else:
                    lines[i], lines[i + 1] = lines[i + 1], lines[i]
                buf = bytearray(b"".join(lines))
    return bytes(buf)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_segments_never_break_ingest_and_rebuild_equals_catch_up(
    source: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    own = source.replace(
        source[source.index(b'"writer":"') + 10 :].split(b'"')[0], FOREIGN.encode()
    )
    mutated = data.draw(mutations(own))
    repo = tmp_path / "victim"
    if repo.exists():
        shutil.rmtree(repo)
    make_repo(repo)
    init(repo)
    folder = repo / ".fleet/events" / FOREIGN
    folder.mkdir(parents=True)
    half = data.draw(st.integers(0, len(mutated)))
    (folder / "00000001.jsonl").write_bytes(mutated[:half])  # arrives in two steps
    with Fleet.open(repo) as fleet:
        fleet.verify()
    (folder / "00000001.jsonl").write_bytes(mutated)
    with Fleet.open(repo) as fleet:
        fleet.verify()
        fleet.events()
        incremental = projections(repo)
        fleet.rebuild()
    assert projections(repo) == incremental
