"""Making index snapshots (`fleetgit snapshot`) and proving an index by replay (`verify --deep`).

The format and the loading are in index/snapshots.py; this module folds, so it imports catch-up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from fleetgit.git.paths import RepoPaths
from fleetgit.index import snapshots
from fleetgit.index.catchup import Index, Progress
from fleetgit.index.projections import TABLES
from fleetgit.index.schema import SCHEMA_VERSION
from fleetgit.index.store import IngestResult
from fleetgit.ledger import clock
from fleetgit.ledger.config import Config
from fleetgit.ledger.errors import ValidationError


class HistoryIndex(Index):
    """The index of everything reachable from one commit, in a file of its own: what a clone
    whose only ref is that commit would hold, read by the catch-up's own code."""

    def __init__(self, paths: RepoPaths, config: Config, commit: str, path: Path) -> None:
        super().__init__(paths, config, path)
        self.commit = commit

    def is_fresh(self) -> bool:
        return True

    def catch_up_locked(
        self, progress: Progress | None = None, refs_fp: str | None = None
    ) -> IngestResult:
        del refs_fp  # no ref is a source here
        result = IngestResult()
        self.settled_pos = self.max_pos()
        self.read_history([self.commit], result)
        self.settle_clashes()
        return result


class Built(NamedTuple):
    ref: str
    commit: str  # the snapshot's own commit
    covers: str  # the commit whose history it holds
    events: int
    db_bytes: int
    stored_bytes: int
    parts: int
    signed_by: str | None  # "admin" (a fleet admin key), a pilot's callsign, or None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


@contextlib.contextmanager
def _scratch(paths: RepoPaths) -> Iterator[Path]:
    snapshots.sweep(paths.index_file.parent, "snapshot-")  # a killed build's scratch
    tmp = Path(tempfile.mkdtemp(prefix=f"snapshot-{os.getpid()}-", dir=paths.index_file.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build(
    paths: RepoPaths,
    config: Config,
    writer: str,
    rev: str,
    progress: Progress | None = None,
    sign_with: Callable[[], tuple[str, Any] | None] = lambda: None,
) -> Built:
    """Fold the history of `rev` into a fresh index, and commit it, compressed, as this writer's
    snapshot ref (a parentless commit: an older snapshot is not kept). `sign_with()`: (who,
    private key) signing its manifest, or None: "admin" and a fleet admin key, or a pilot and
    its key, which must be one of that pilot's keys in the history of `rev`."""
    import pygit2

    from fleetgit.git import fleetrefs
    from fleetgit.git.repo import GitRepo, identity, run_git

    repo = GitRepo(paths)
    found = repo.resolve_commit(rev)
    if found is None:
        raise ValidationError(f"snapshot --rev {rev}: names no commit here", hint="git log")
    covers = found[0]
    if not snapshots.reachable(repo, covers):
        raise ValidationError(
            f"{rev}: no branch holds commit {covers[:12]}",
            hint="snapshot a commit of a branch others fetch (the default is HEAD)",
        )
    signer = sign_with()
    with _scratch(paths) as tmp:
        index = HistoryIndex(paths, config, covers, tmp / "build.sqlite")
        try:
            index.rebuild(progress)
            conn = index.conn
            events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            segments = [
                [oid, repo.blob_size(oid)]
                for (oid,) in conn.execute("SELECT oid FROM blobs ORDER BY oid")
            ]
            counts = snapshots.writer_counts(conn)
            if signer is not None and signer[0] != snapshots.ADMIN:
                _check_signer(conn, signer)
            flat = tmp / "index.sqlite"
            conn.execute("VACUUM INTO ?", (str(flat),))
        finally:
            index.close()
        db, parts, files = _compress(flat, tmp)
        stored = sum(p["bytes"] for p in parts)
        if len(parts) > snapshots.MAX_PARTS:
            raise ValidationError(
                f"the snapshot would take more than {snapshots.MAX_PARTS} parts of"
                f" {snapshots.PART_BYTES} bytes",
                hint="compact the ledger first (fleetgit compact), or do without a snapshot",
            )
        r = repo.repo
        for p, part in zip(files, parts, strict=True):
            part["blob"] = str(r.create_blob_fromdisk(str(p)))
        manifest = {
            "format": snapshots.FORMAT,
            "schema_version": SCHEMA_VERSION,
            "catalogue": snapshots.catalogue_digest(),
            "intake": snapshots.intake_settings(config),
            "commit": covers,
            "built_ms": clock.now_ms(),
            "built_by": writer,
            "writers": counts,
            "segments": segments,
            "db": db,
            "parts": parts,
        }
        if signer is not None:
            snapshots.sign(manifest, *signer)
        builder = r.TreeBuilder()
        builder.insert(
            snapshots.MANIFEST,
            r.create_blob(orjson.dumps(manifest, option=orjson.OPT_INDENT_2)),
            pygit2.enums.FileMode.BLOB,
        )
        for part in parts:
            builder.insert(part["name"], part["blob"], pygit2.enums.FileMode.BLOB)
        tree = builder.write()
    sig = identity(paths, "COMMITTER")
    message = f"fleetgit snapshot: {events} events, the history of {covers[:12]}"
    commit = str(r.create_commit(None, sig, sig, message, tree, []))
    ref = snapshots.ref_name(writer)
    old = fleetrefs.ref_target(repo, ref)
    run_git(paths, ["update-ref", "-m", "fleetgit snapshot", ref, commit, old or "0" * 40])
    signed_by = None if signer is None else signer[0]
    return Built(ref, commit, covers, events, db["bytes"], stored, len(parts), signed_by)


def _check_signer(conn: sqlite3.Connection, signer: tuple[str, Any]) -> None:
    """A pilot signs a snapshot only with a key the history it covers gives it, unrevoked:
    no clone would take its signature otherwise (index/snapshots.py `_check_keys`)."""
    from fleetgit.ledger import keys

    by, key = signer
    found = conn.execute(
        "SELECT 1 FROM pilot_keys WHERE callsign = ? AND key = ? AND revoked_hlc IS NULL",
        (by, keys.public(key)),
    ).fetchone()
    if not found:
        raise ValidationError(
            f"the history this snapshot covers gives pilot {by} no key this clone holds",
            hint="sign as a pilot registered in that history (--as CALLSIGN), or with a fleet"
            " admin key",
        )


def _compress(flat: Path, tmp: Path) -> tuple[dict[str, int], list[dict[str, Any]], list[Path]]:
    """The file's size and CRC-32, and its parts: zstd frames (with their own content checksum)
    of at most PART_BYTES each, with each part's size and CRC-32."""
    import zstandard

    crc = 0
    parts: list[dict[str, Any]] = []
    paths: list[Path] = []
    chunk = min(4 << 20, snapshots.PART_BYTES // 4)
    size = 0
    with open(flat, "rb") as src:
        data = src.read(chunk)
        while data and len(paths) <= snapshots.MAX_PARTS:
            path = tmp / f"index.sqlite.zst{len(paths):03d}"
            paths.append(path)
            squeezer = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
            part_crc, written = 0, 0
            with open(path, "wb") as out:
                # a chunk goes in while even its worst case (not compressible) fits; a block
                # flush after each makes `written` exact
                while (
                    data and written + len(data) + len(data) // 100 + 1024 <= snapshots.PART_BYTES
                ):
                    crc = zlib.crc32(data, crc)
                    size += len(data)
                    block = squeezer.compress(data) + squeezer.flush(
                        zstandard.COMPRESSOBJ_FLUSH_BLOCK
                    )
                    out.write(block)
                    part_crc = zlib.crc32(block, part_crc)
                    written += len(block)
                    data = src.read(chunk)
                block = squeezer.flush()
                out.write(block)
                part_crc = zlib.crc32(block, part_crc)
                written += len(block)
            parts.append({"name": path.name, "bytes": written, "crc32": part_crc})
    return {"bytes": size, "crc32": crc}, parts, paths


# -- verify --deep ------------------------------------------------------------------------------


def deep_verify(index: Index) -> list[str]:
    """Rebuild a copy of the index from the segments (positions kept, as `index rebuild` does)
    and compare it with the index as it is: the events, the streams and every projection.
    Returns one line per table that differs (none: the index is what the segments say)."""
    paths, config = index.paths, index.config
    with _scratch(paths) as tmp:
        copy = tmp / "deep.sqlite"
        dst = sqlite3.connect(copy)
        try:
            index.conn.backup(dst)
        finally:
            dst.close()
        replay = Index(paths, config, copy)
        try:
            replay.rebuild()
        finally:
            replay.close()
        c = index.conn
        c.execute("ATTACH DATABASE ? AS deep", (str(copy),))
        try:
            out = []
            for table in ("events", "streams", *TABLES):
                cols = [r[1] for r in c.execute(f"PRAGMA main.table_info({table})")]
                listed = ", ".join(f'"{col}"' for col in cols)
                diff = c.execute(
                    f"SELECT count(*) FROM (SELECT {listed} FROM main.{table} EXCEPT"
                    f" SELECT {listed} FROM deep.{table})"
                ).fetchone()[0]
                diff += c.execute(
                    f"SELECT count(*) FROM (SELECT {listed} FROM deep.{table} EXCEPT"
                    f" SELECT {listed} FROM main.{table})"
                ).fetchone()[0]
                if diff:
                    out.append(f"{table}: {diff} row(s) differ from a replay of the segments")
            return out
        finally:
            c.execute("DETACH DATABASE deep")
            with contextlib.suppress(OSError):
                os.unlink(copy)
