"""git/catfile.py: the one `git cat-file` reader (catch-up's and a snapshot load's), every read
bounded. Real repositories, real git processes."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from fleetgit.git import catfile, repo
from fleetgit.git.catfile import CatFile
from fleetgit.git.paths import locate
from fleetgit.git.repo import GitRepo, TooLarge
from fleetgit.git.sources import committed_segments
from tests.conftest import git, make_repo


def _blob(where: Path, data: bytes) -> str:
    out = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=where, input=data, capture_output=True
    )
    return out.stdout.decode().strip()


@pytest.fixture
def where(tmp_path: Path) -> Path:
    path = tmp_path / "r"
    path.mkdir()
    git(path, "init", "-q")
    return path


def _alive(reader: CatFile) -> bool:
    proc = reader._proc
    return proc is not None and proc.poll() is None


def test_an_object_over_the_limit_is_never_read(where: Path) -> None:
    big, small = _blob(where, b"x" * 100_000), _blob(where, b"small\n")
    reader = CatFile(where, contents=True)
    found = reader.read(big, 99_999)
    assert found == (big, "blob", 100_000, None)
    assert not _alive(reader)  # stopped, not read through
    assert reader.read(small, 6) == (small, "blob", 6, b"small\n")  # a new process answers
    assert reader.read(big, 100_000) == (big, "blob", 100_000, b"x" * 100_000)
    assert reader.read("0" * 40, 1 << 20) is None
    assert reader.read("no\nsuch", 1 << 20) is None  # never written to git
    reader.close()


def test_a_big_object_streams_in_bounded_chunks(where: Path) -> None:
    data = os.urandom(catfile.CHUNK * 3 + 5)
    oid = _blob(where, data)
    reader = CatFile(where, contents=True, pipesize=1 << 20)
    header = reader.header(oid)
    assert header == (oid, "blob", len(data))
    parts = list(reader.chunks(header.size))
    assert b"".join(parts) == data and max(map(len, parts)) <= catfile.CHUNK
    assert reader.read(oid, 10) == (oid, "blob", len(data), None)  # in step after streaming
    reader.close()


def test_headers_come_in_rounds_with_the_missing_ones_none(where: Path) -> None:
    oids = [_blob(where, f"{n}\n".encode()) for n in range(300)]  # over one round
    reader = CatFile(where, contents=False)
    asked = [o if n % 7 else "f" * 40 for n, o in enumerate(oids)]
    got = reader.headers(asked)
    assert [h.id if h else None for h in got] == [o if n % 7 else None for n, o in enumerate(oids)]
    assert all(h.size == len(f"{n}\n") for n, h in enumerate(got) if h)
    reader.close()


def test_threads_sharing_a_repository_each_get_their_own_object(where: Path) -> None:
    blobs = {_blob(where, f"object {n}\n".encode() * (n + 1)): n for n in range(40)}
    gitrepo = GitRepo(locate(where))
    wrong: list[str] = []

    def read() -> None:
        for _ in range(5):
            for oid, n in blobs.items():
                if gitrepo.blob(oid, 1 << 20) != f"object {n}\n".encode() * (n + 1):
                    wrong.append(oid)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gitrepo.close()
    assert wrong == []


def test_gitrepo_blob_and_trees_refuse_what_is_over_their_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_repo(tmp_path / "m")
    events = path / ".fleet" / "events" / "0123456789abcdef"
    events.mkdir(parents=True, exist_ok=True)
    (events / "00000001.jsonl").write_bytes(b"{}\n" * 100)
    git(path, "add", "-f", ".fleet/events")
    git(path, "commit", "-q", "-m", "segments")
    gitrepo = GitRepo(locate(path))
    head = git(path, "rev-parse", "HEAD").strip()
    tree = gitrepo.events_tree(head)
    assert tree is not None
    (seg,) = committed_segments(gitrepo, tree, set())
    with pytest.raises(TooLarge, match="300 bytes, over the limit of 299"):
        gitrepo.blob(seg.blob, 299)
    assert gitrepo.blob(seg.blob, 300) == b"{}\n" * 100
    monkeypatch.setattr(repo, "MAX_TREE_BYTES", 10)  # a writer's tree is ~50 bytes
    skipped: list[tuple[str, str]] = []
    assert list(committed_segments(gitrepo, tree, set(), skipped)) == []
    assert skipped == [("", f"a directory whose listing has {_size(path, tree)} bytes")]
    gitrepo.close()


def _size(path: Path, oid: str) -> int:
    return int(git(path, "cat-file", "-s", oid))


def test_code_refs_segments_come_through_the_shared_readers(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """fleetrefs.committed_segments: the longest version of each of the writer's segments on
    any branch or tag, regular files only, read with no git process a tree."""
    from fleetgit.fleet import Fleet
    from fleetgit.git import fleetrefs

    with Fleet.open(repo, actor="viper") as fleet:
        writer, git_repo = fleet.writer.id, fleet.index.git
        fleet.emit("context_compacted", "pilot/viper", {"summary": "one"})
        fleet.commit()
        git(repo, "branch", "short")
        fleet.emit("context_compacted", "pilot/viper", {"summary": "two"})
        fleet.commit()
        git(repo, "tag", "long")
        git(repo, "checkout", "-q", "-b", "hostile", "short")
        (repo / ".fleet/events" / writer / "9.jsonl").symlink_to("/etc/passwd")
        git(repo, "add", "-f", ".fleet")
        git(repo, "commit", "-q", "-m", "a link as a segment")
        git(repo, "checkout", "-q", "main")
        listed = git(repo, "ls-tree", "-l", f"long:.fleet/events/{writer}").splitlines()
        longest = {f[4]: (f[2], int(f[3])) for f in map(str.split, listed)}
        trace = tmp_path / "trace.json"
        monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
        git_repo.close()  # the readers start again under the trace
        found = fleetrefs.committed_segments(git_repo, writer, 1 << 20)
        git_repo.close()
    assert found == longest  # not the link, and each in its longest version
    started = [
        e["argv"] for e in map(orjson.loads, trace.read_bytes().splitlines())
        if e["event"] == "start"
    ]  # fmt: skip
    assert not [a for a in started if "ls-tree" in a], started
    assert len(started) <= 3, started  # for-each-ref and the two readers
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    assert git(repo, "ls-tree", "hostile", f".fleet/events/{writer}/9.jsonl").startswith("120000")
