"""Index snapshots: a fresh clone starts from the index of a commit's history and catches up.

A snapshot is a parentless commit on `refs/fleet/snapshots/<writer>` holding `snapshot.json` (the
manifest) and the index file, zstd-compressed, in parts of at most `PART_BYTES` (GitHub refuses
files over 100 MB). Its tree has no `.fleet/events`, so catch-up reads no events from it.

What it covers is the history of one commit C (every `.fleet/events` tree reachable from C, read
as catch-up reads it, into an index of its own: index/snapshotting.py). Git names C and every
segment blob by the hash of its content, so the manifest ties the snapshot to the segments:
C's id, and each segment blob's id and byte length; and to the file: each part's blob id. The
manifest is signed (`sign`): by a fleet admin key, or by a pilot's key. Loading (`install`, only
where there is no index file yet; no pygit2: git processes read the objects) checks, before the
file is put in place, with one line naming the first failure:

- the format, the index schema version, a digest of the event catalogue, and the intake settings
  (what decides which lines are events) are this fleetgit's and this config's;
- the signature checks and its signer is one this configuration takes (`check_signature`);
- C is a commit here, reachable from a branch or remote-tracking branch (so catch-up reads it too),
  and every segment blob it lists is here with its size (a shallow clone fails this);
- each part is the blob the manifest names, with its size and CRC-32, and one whole zstd frame,
  the file has the manifest's size, it opens as SQLite, and its own schema version, blob ids,
  C's `.fleet/events` tree and event counts per writer (count and largest wseq) agree with the
  manifest; no event is stamped beyond this clock's skew bound;
- unless a listed admin key signed it: its quarantine keeps no event out, and (under trust =
  "require", or when a pilot signed it) its `pilot_keys` and `key_events` are the ones the key
  events of the listed segment blobs establish, re-derived here (`_check_keys`), the signer's
  key among them and not revoked; its `signatures` are rows of the form `remember` writes
  (checked in SQL before any is read) and the `_sig` values of the listed blobs' signed lines it
  took, none more and none less (`_Signed`).

A failure loads nothing: the normal catch-up reads every segment, exactly as without a snapshot.
What the loaded index holds is then bookkeeping-equivalent to having read C's history: its trees
and blobs tables skip those objects, the refs at C (or a pseudo ref at C) hide C's history from
the ref walk, and the work-tree files git checked out from those blobs are recorded as read to
their end. See docs/design.md ("Index snapshots") and docs/trust.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import zlib
from collections.abc import Callable
from itertools import compress, repeat
from operator import add
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from fleetgit.domain.catalogue import CATALOGUE
from fleetgit.git import fingerprint
from fleetgit.git.catfile import CatFile
from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import GitRepo
from fleetgit.index.schema import SCHEMA_VERSION
from fleetgit.index.store import _TAIL, fsync_path, tail_hash
from fleetgit.ledger import clock, safefs
from fleetgit.ledger.config import Config
from fleetgit.ledger.digest import digest16
from fleetgit.ledger.errors import GitError
from fleetgit.ledger.segments import read_limit

FORMAT = 2  # 2: each part's blob id, and a signature (issue 18)
PREFIX = "refs/fleet/snapshots/"
MANIFEST = "snapshot.json"
PART_BYTES = 48 << 20  # each compressed part: well under GitHub's 100 MB per file
MAX_PARTS = 64  # 3 GB compressed: more is refused, not split further
MAX_MANIFEST_BYTES = 16 << 20
_PIPE_BYTES = 1 << 20  # how far git may run ahead of zstd
_QUEUED = 4  # inflated chunks (~5 MB each) waiting for the writer thread
_PREALLOCATE_RATIO = 16  # an index compresses ~5x; a larger claim is not given its blocks early
PSEUDO_REF = "snapshot"  # a refs-table row hiding the covered history from the first ref walk
SIGNED_AS = b"fleetgit-snapshot/1\n"  # what a manifest's signature signs starts with this
ADMIN = "admin"  # `signature.by` of a snapshot a fleet admin key signed


class SnapshotRefused(Exception):
    """A snapshot that must not be loaded; the message is the one line that says why."""


def ref_name(writer: str) -> str:
    return PREFIX + writer


def catalogue_digest() -> str:
    """What the catalogue accepts, as a digest: a snapshot of another catalogue may have refused
    or accepted other lines."""
    items = sorted(
        (t.name, t.version, sorted(f.name for f in t.fields)) for t in CATALOGUE.types.values()
    )
    return digest16(orjson.dumps(items)).hex()


def intake_settings(config: Config) -> dict[str, int]:
    """The configuration that decides which lines become events (bounds of reads, the skew)."""
    return {
        "max_event_bytes": config.max_event_bytes,
        "segment_max_bytes": config.segment_max_bytes,
        "max_clock_skew_seconds": config.max_clock_skew_seconds,
    }


def writer_counts(conn: sqlite3.Connection) -> dict[str, list[int]]:
    """Per writer: how many events the index holds, and its largest wseq."""
    rows = conn.execute("SELECT writer, count(*), max(wseq) FROM events GROUP BY writer")
    return {w: [int(n), int(m)] for w, n, m in rows}


# -- finding one ------------------------------------------------------------------------------


def reader(paths: RepoPaths) -> CatFile:
    """The git objects one load reads, through one `git cat-file --batch` (started on first
    use) and no pygit2: a fresh clone's first command then never imports it (~0.1 s of CPU),
    and git inflates its pack on the other core while this process works (its pipe widened to
    `_PIPE_BYTES`, so git runs ahead of zstd)."""
    return CatFile(paths.worktree, contents=True, pipesize=_PIPE_BYTES)


def _read(objects: CatFile, spec: str, kind: str, limit: int) -> bytes | None:
    """The content of `spec` when it is a `kind` of at most `limit` bytes, else None."""
    found = objects.read(spec, limit)
    return found.data if found is not None and found.type == kind else None


def candidates(objects: CatFile, refs: dict[str, str]) -> list[tuple[str, str]]:
    """(ref, commit) of every snapshot ref in `refs`, newest commit first."""
    out = []
    for ref, commit in refs.items():
        if not ref.startswith(PREFIX):
            continue
        data = _read(objects, commit, "commit", MAX_MANIFEST_BYTES)
        if data is None:
            continue
        when = 0
        for line in data.split(b"\n"):
            if not line:
                break
            if line.startswith(b"committer "):
                with contextlib.suppress(ValueError, IndexError):
                    when = int(line.rsplit(b" ", 2)[1])
        out.append((when, ref, commit))
    out.sort(reverse=True)
    return [(ref, commit) for _, ref, commit in out]


def read_manifest(objects: CatFile, commit: str) -> dict[str, Any]:
    data = _read(objects, f"{commit}:{MANIFEST}", "blob", MAX_MANIFEST_BYTES)
    if data is None:
        raise SnapshotRefused(f"no {MANIFEST} in it")
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise SnapshotRefused(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise SnapshotRefused(f"format {got!r}, this fleetgit reads {FORMAT}")
    return manifest


# -- the signature -------------------------------------------------------------------------


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What a manifest's signature signs: everything in it but the signature (the covered
    commit, the segment blobs, the counts, the settings, the file's size and CRC-32 and each
    part's blob id), canonical."""
    rest = {k: v for k, v in manifest.items() if k != "signature"}
    return SIGNED_AS + orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)


def sign(manifest: dict[str, Any], by: str, key: Any) -> None:
    """Sign `manifest` in place with `key`: a fleet admin key (`by` = "admin") or the key of
    the pilot `by`."""
    from fleetgit.ledger import keys, sigs

    signature = keys.sign(key, signed_bytes(manifest))
    manifest["signature"] = {
        "by": by,
        "key": keys.public(key),
        "value": sigs.encode_key(signature),
    }


class Signer(NamedTuple):
    """Who signed a snapshot whose signature checks: a fleet admin key this configuration lists
    (`admin`: the file is taken as the admin built it), or a pilot's key (proved valid from the
    segments when the keys are re-derived), or nobody (None)."""

    by: str
    key: str

    @property
    def admin(self) -> bool:
        return self.by == ADMIN


def check_signature(manifest: dict[str, Any], config: Config) -> Signer | None:
    """The manifest's signature against the fleet's policy:

    - a fleet that lists admin keys takes only a snapshot one of them signed;
    - else one signed by a pilot (its key proved from the segments later, `_check_keys`);
    - an unsigned one only under trust "warn" or "off" (under "require" a consistently forged
      file could hide events: nothing but a signature tells it from an honest one).
    A signature that does not check refuses the snapshot, whoever it names."""
    from fleetgit.index.trust import admin_keys
    from fleetgit.ledger import keys, sigs

    admins = admin_keys(config)
    stated = manifest.get("signature")
    if stated is None:
        if admins:
            raise SnapshotRefused("it is not signed, and this fleet lists admin keys")
        if config.trust == "require":
            raise SnapshotRefused("it is not signed, and trust = require takes only signed ones")
        return None
    if not isinstance(stated, dict):
        raise SnapshotRefused("its signature is malformed")
    by, key, value = stated.get("by"), stated.get("key"), stated.get("value")
    raw = sigs.decode_key(key) if isinstance(key, str) else None
    sig = _decode_signature(value)
    if not isinstance(by, str) or not by or raw is None or sig is None:
        raise SnapshotRefused("its signature is malformed")
    if not keys.verify(raw, sig, signed_bytes(manifest)):
        raise SnapshotRefused(f"its signature (by {by}) does not check")
    if by == ADMIN:
        if key not in admins:
            raise SnapshotRefused("it is signed by an admin key this fleet does not list")
    elif admins:
        raise SnapshotRefused(f"it is signed by pilot {by}, and this fleet takes only admin-signed")
    return Signer(by, str(key))


def _decode_signature(value: Any) -> bytes | None:
    import base64

    if not isinstance(value, str) or len(value) != 86:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "==")
    except ValueError:
        return None
    return raw if len(raw) == 64 else None


# -- checking and installing --------------------------------------------------------------


def check_manifest(manifest: dict[str, Any], config: Config) -> None:
    """What the manifest says of this fleetgit and this configuration."""
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise SnapshotRefused(
            f"index schema {manifest.get('schema_version')}, this fleetgit's is {SCHEMA_VERSION}"
        )
    if manifest.get("catalogue") != catalogue_digest():
        raise SnapshotRefused("made with another event catalogue (another fleetgit version)")
    if manifest.get("intake") != intake_settings(config):
        raise SnapshotRefused("made with other intake settings in .fleet/config.toml")


class Lookups:
    """What a load asks git about the covered history, through a `git cat-file --batch-check`
    started before the file is inflated (its start runs on the other core) and asked after:
    each listed segment blob's size, and the covered commit's `.fleet/events` tree."""

    def __init__(self, paths: RepoPaths, manifest: dict[str, Any]) -> None:
        self.segments = [(str(b), s) for b, s in manifest.get("segments", [])]
        self.covered = str(manifest.get("commit", ""))
        specs = [b for b, _ in self.segments] + [f"{self.covered}:.fleet/events"]
        if any(not x or "\n" in x or " " in x for x in specs):
            raise SnapshotRefused("its manifest names objects that are not object ids")
        self.reader = CatFile(paths.worktree, contents=False)
        try:
            self.reader.start()
        except GitError as exc:
            raise SnapshotRefused(str(exc)) from None
        self.specs = specs
        self.events_tree: str | None = None

    def check(self) -> None:
        """Every segment blob the manifest lists is here with its size (a shallow clone, or
        another repository's snapshot, fails this)."""
        try:
            found = self.reader.headers(self.specs)
        except GitError:
            raise SnapshotRefused("git could not look up its segment blobs") from None
        for (blob, size), got in zip(self.segments, found, strict=False):
            if got is None or got.id != blob or got.type != "blob" or got.size != size:
                raise SnapshotRefused(f"segment blob {blob[:12]} is not here with its size")
        tree = found[-1]
        self.events_tree = tree.id if tree is not None and tree.type == "tree" else None

    def close(self) -> None:
        self.reader.close()


def held_by_a_branch(paths: RepoPaths, refs: dict[str, str], commit: str) -> bool:
    """Is `commit` a commit that a local or remote-tracking branch here holds? A branch at it
    answers from the ref files alone; else one `git for-each-ref --contains`."""
    if not commit or len(commit) not in (40, 64) or commit.strip("0123456789abcdef"):
        return False
    branches = ("refs/heads/", "refs/remotes/")
    if any(t == commit for n, t in refs.items() if n.startswith(branches)):
        return True
    proc = subprocess.run(
        ["git", "-C", str(paths.worktree), "for-each-ref", "--count=1", "--contains", commit,
         "--format=%(refname)", *branches],
        capture_output=True,
        check=False,
    )  # fmt: skip
    return proc.returncode == 0 and bool(proc.stdout.strip())


def reachable(git: GitRepo, commit: str) -> bool:
    """Is `commit` a commit here that a local or remote-tracking branch holds?"""
    import pygit2

    repo = git.repo
    try:
        oid = repo.revparse_single(commit).peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError):
        return False
    if str(oid) != commit:
        return False
    for ref in repo.references:
        if not ref.startswith(("refs/heads/", "refs/remotes/")):
            continue
        try:
            tip = repo.revparse_single(ref).peel(pygit2.Commit).id
        except (KeyError, ValueError, pygit2.GitError):
            continue
        if tip == oid or repo.descendant_of(tip, oid):
            return True
    return False


def inflate(objects: CatFile, commit: str, manifest: dict[str, Any], dest: Path) -> None:
    """Write the index file of the snapshot to `dest`, checking each part's blob id (what the
    signature covers), size and CRC-32 and its zstd content checksum, and the whole file's size,
    against the manifest (a CRC-32 of the whole file would add nothing: its bytes are the
    frames', each pinned by the part's blob id).

    The parts stream from `git cat-file --batch` straight through zstd into `dest`: git
    inflates its pack on one core while this process decompresses and writes on the other, and
    no part is ever whole in memory. A part found wrong refuses the file, which nothing has
    opened yet."""
    parts = manifest.get("parts", [])
    if not parts or len(parts) > MAX_PARTS:
        raise SnapshotRefused(f"{len(parts)} parts")
    expected = int(manifest.get("db", {}).get("bytes", -1))
    with open(dest, "wb") as out:
        compressed = sum(int(part.get("bytes", 0)) for part in parts)
        if 0 < expected <= _PREALLOCATE_RATIO * compressed:
            # the file's blocks in one call: the writes then only copy (half their cost);
            # refused (a full disk, a file system without it), the writes say so or not
            with contextlib.suppress(OSError):
                os.posix_fallocate(out.fileno(), 0, expected)
        writer = _Writer(out)
        try:
            size = 0
            for part in parts:
                size = _inflate_part(objects, commit, part, writer.put, size, expected)
        finally:
            writer.close()
    if size != expected:
        raise SnapshotRefused("its index file is not the size the manifest says")


class _Writer:
    """Writes the inflated bytes on a thread of its own: zstd and the page-cache writes both let
    go of the GIL, so decompressing the next chunk and writing this one run on two cores (and a
    loaded machine's scheduler gives the load two runnable threads). At most `_QUEUED` chunks
    wait; a write that fails is raised by the next `put` or by `close`."""

    def __init__(self, out: IO[bytes]) -> None:
        import queue
        import threading

        self.out = out
        self.failed: list[BaseException] = []
        self.pending: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self.thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.pending.get()) is not None:
            if not self.failed:
                try:
                    self.out.write(chunk)
                except BaseException as exc:  # raised in the loading thread
                    self.failed.append(exc)

    def put(self, chunk: bytes) -> None:
        if self.failed:
            raise self.failed[0]
        self.pending.put(chunk)

    def close(self) -> None:
        """Wait for every chunk to be written (or dropped after a failure)."""
        self.pending.put(None)
        self.thread.join()
        if self.failed:
            raise self.failed[0]


def _inflate_part(
    objects: CatFile,
    commit: str,
    part: dict[str, Any],
    write: Callable[[bytes], None],
    size: int,
    expected: int,
) -> int:
    """One part from `git cat-file --batch` through zstd to `write`; the file's size so far."""
    import zstandard

    name = str(part.get("name"))
    if not name or "\n" in name:
        raise SnapshotRefused(f"part {name!r} is not a file name")
    found = objects.header(f"{commit}:{name}")
    if found is None or found[1] != "blob":
        if found is not None:
            objects.close()  # its content is on the pipe, unread
        raise SnapshotRefused(f"part {name} is missing or not a file")
    oid, _, length = found
    if oid != part.get("blob"):  # the id the signature covers
        objects.close()
        raise SnapshotRefused(f"part {name} is not the blob the manifest names")
    if length != part.get("bytes") or length > PART_BYTES + (1 << 20):
        objects.close()
        raise SnapshotRefused(f"part {name} is not the size the manifest says")
    crc = 0
    inflater = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in objects.chunks(length):
            crc = zlib.crc32(chunk, crc)
            plain = inflater.decompress(chunk)
            size += len(plain)
            if size > expected:
                raise SnapshotRefused(f"part {name} holds more than the manifest says")
            write(plain)
    except zstandard.ZstdError as exc:
        objects.close()
        raise SnapshotRefused(f"part {name} is not a whole zstd frame ({exc})") from None
    except GitError:  # the reader has stopped its git
        raise SnapshotRefused("git stopped answering") from None
    except SnapshotRefused:
        objects.close()
        raise
    if crc != part.get("crc32"):
        raise SnapshotRefused(f"part {name} does not match the manifest's checksum")
    if not inflater.eof:
        raise SnapshotRefused(f"part {name} is cut short")
    return size


def check_file(
    dest: Path,
    objects: CatFile,
    lookups: Lookups,
    manifest: dict[str, Any],
    config: Config,
    signer: Signer | None,
) -> None:
    """The inflated file agrees with the manifest, and so with the segments it lists."""
    try:
        conn = sqlite3.connect(dest, isolation_level=None)
        try:
            _check_tables(conn, lookups.events_tree, manifest, config)
            if signer is None or not signer.admin:
                _check_trust_tables(conn, objects, manifest, config, signer)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise SnapshotRefused(f"its index file is not a usable SQLite index ({exc})") from None


def _check_tables(
    conn: sqlite3.Connection, tree: str | None, manifest: dict[str, Any], config: Config
) -> None:
    """`tree`: the covered commit's `.fleet/events` tree here."""
    (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if int(version) != SCHEMA_VERSION:
        raise SnapshotRefused(f"its index file has schema {version}")
    blobs = {oid for (oid,) in conn.execute("SELECT oid FROM blobs")}
    if blobs != {str(s[0]) for s in manifest.get("segments", [])}:
        raise SnapshotRefused("its index read other segments than the manifest lists")
    found = conn.execute("SELECT 1 FROM trees WHERE oid = ?", (tree,)).fetchone()
    if tree is not None and not found:
        raise SnapshotRefused("its index did not read the covered commit's segments")
    if writer_counts(conn) != manifest.get("writers"):
        raise SnapshotRefused("its events per writer differ from the manifest's counts")
    bound = clock.make_hlc(clock.now_ms() + config.max_clock_skew_seconds * 1000 + 1)
    (top,) = conn.execute("SELECT max(hlc) FROM events").fetchone()
    if top is not None and top >= bound:
        raise SnapshotRefused("it holds events stamped beyond this clock's allowed skew")
    if conn.execute("SELECT count(*) FROM files").fetchone()[0]:
        raise SnapshotRefused("its index read work-tree files, which a snapshot must not")


# -- the trust tables ---------------------------------------------------------------------------

_KEY_MARK = b'"type":"pilot_'


def _check_trust_tables(
    conn: sqlite3.Connection,
    objects: CatFile,
    manifest: dict[str, Any],
    config: Config,
    signer: Signer | None,
) -> None:
    """The trust tables of a snapshot no fleet admin key signed (an admin-signed one is taken
    as its admin built it: the signature covers the file). Such a snapshot may keep no event
    out (`quarantine` rows with kept = 0: they could hide honest events, and proving each one
    would cost a rebuild of its segment): refused, the segments are read. Its keys are proved
    from the segments (`_check_keys`) under trust "require", and whenever a pilot signed it
    (its key must be valid there). Its `signatures` (the `_sig` values restore-lost writes
    back; a later copy of a line the index holds adds none) are checked against the listed
    blobs in the same read (`_Signed`); under trust "off" this clone keeps none: dropped."""
    held = conn.execute("SELECT count(*) FROM quarantine WHERE kept = 0").fetchone()[0]
    if held:
        raise SnapshotRefused(
            f"it keeps {held} event(s) out as unsigned, which only an admin-signed snapshot may"
        )
    with_keys = config.trust == "require" or signer is not None
    signed = None
    if config.trust == "off":
        conn.execute("DELETE FROM signatures")  # what this clone's own read keeps: none
    else:
        signed = _Signed(conn)
    if with_keys or signed is not None:
        _check_segments(conn, objects, manifest, config, signer, with_keys, signed)


_SIG_PREFIX = b'{"_sig":"'  # a signed line (ledger/sigs.py)
# every whole signed line after the first: found by the literal prefix in C (a blob of
# unsigned lines costs ~0.3 ms a MB, splitting it into lines ~1.7)
_SIGNED_LINES = re.compile(rb'\n(\{"_sig":"[^\n]*)(?=\n)')
_VALUE = slice(9, 9 + 128)  # its `_sig` value
_ID_KEY, _WRITER_KEY = b'"id":"', b',"writer":"'
_ID_CHARS = 36  # an event id (index/trust.py)
_AFTER_VALUE = len(_SIG_PREFIX) + 128  # where a signed line's other keys may start
# a `signatures` row `remember` writes: text ids, a blob of 128 bytes per id (ledger/sigs.py
# SIG_CHARS), at least one. What SQLite answers from the record headers alone (the type; a
# blob's length, not a text's): the rest (the ids' length against the values', ASCII) is checked
# as the rows are read (trust.signature_rows `strict`), before any is split
_MALFORMED = (
    "SELECT count(*) FROM signatures WHERE typeof(writer) != 'text' OR typeof(ids) != 'text'"
    " OR typeof(sigs) != 'blob' OR length(sigs) % 128 OR length(sigs) = 0"
)


class _Signed:
    """The snapshot's `signatures` checked against the signed lines of its listed blobs: each
    (writer, id, value) it keeps is one of those lines' (else a forged value, never used), and
    each of those lines whose event the index holds with that line's hash is kept (else
    restore-lost could not write that line back, and no later read of it adds the row: a
    copy of a line the index holds is not kept again). Copies kept twice are kept once.

    A line's id is its last `"id":"` (only scalars follow the top-level one, and a JSON string
    cannot hold that sequence), its writer its last `,"writer":"`: passes in C over the signed
    lines (`map`), a few µs a signed line, not a parse."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        from fleetgit.index.trust import signature_rows

        self.conn = conn
        # rows `remember` could not have written, refused before anything in them is converted
        # (SQLite columns are loosely typed: `bytes()` of an integer value was that many bytes)
        bad = conn.execute(_MALFORMED).fetchone()[0]
        if bad:
            raise SnapshotRefused(f"it keeps {bad} malformed line-signature row(s)")
        try:
            self.listed, self.copies = signature_rows(conn, encoded=True, strict=True)
        except ValueError as e:
            raise SnapshotRefused(f"it keeps a malformed line-signature row ({e})") from None
        self.found: set[tuple[bytes, bytes, bytes]] = set()
        self.unlisted: list[tuple[str, bytes]] = []  # (id, line) of signed lines not kept

    def read(self, data: bytes) -> None:
        signed = _SIGNED_LINES.findall(data)
        if data.startswith(_SIG_PREFIX) and b"\n" in data:  # the first line has no `\n` before
            signed.insert(0, data[: data.index(b"\n")])
        if not signed:
            return
        at = list(map(add, map(bytes.rfind, signed, repeat(_ID_KEY)), repeat(len(_ID_KEY))))
        cut: Callable[[bytes, slice], bytes] = bytes.__getitem__
        ids = list(map(cut, signed, map(slice, at, map(add, at, repeat(_ID_CHARS)))))
        w_at = list(map(add, map(bytes.rfind, signed, repeat(_WRITER_KEY)), repeat(11)))
        w_end = list(map(bytes.find, signed, repeat(b'"'), w_at))
        if (
            min(at) < _AFTER_VALUE
            or min(w_at) < _AFTER_VALUE
            or min(w_end) < 0
            or not all(map(_ID_CHARS.__eq__, map(len, ids)))
        ):
            # a line (intake refuses it, a blob may hold it) without a whole id after its last
            # `"id":"` or a writer after its last `,"writer":"` gives no row: a row of an empty
            # id was once matched by such a line
            whole = [
                i >= _AFTER_VALUE and w >= _AFTER_VALUE and e >= 0 and len(x) == _ID_CHARS
                for i, w, e, x in zip(at, w_at, w_end, ids, strict=True)
            ]
            signed, ids = list(compress(signed, whole)), list(compress(ids, whole))
            w_at, w_end = list(compress(w_at, whole)), list(compress(w_end, whole))
        writers = map(cut, signed, map(slice, w_at, w_end))
        rows: list[tuple[bytes, bytes, bytes]] = list(
            zip(writers, ids, map(cut, signed, repeat(_VALUE)), strict=True)
        )
        new = set(rows)
        self.found |= new  # the hashes kept: not computed again
        new -= self.listed
        if new:
            self.unlisted += [
                (r[1].decode(errors="replace"), x + b"\n")
                for r, x in zip(rows, signed, strict=True)
                if r in new
            ]

    def check(self) -> None:
        from fleetgit.index.trust import rewrite_signatures
        from fleetgit.ledger.segments import line_hash

        if not self.listed <= self.found:
            raise SnapshotRefused("it keeps a line signature that none of its segments holds")
        for start in range(0, len(self.unlisted), 500):
            chunk = self.unlisted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            hashes = dict(
                self.conn.execute(
                    f"SELECT id, hash FROM events WHERE id IN ({marks})", [i for i, _ in chunk]
                )
            )
            for eid, line in chunk:
                if hashes.get(eid) == line_hash(line):
                    raise SnapshotRefused(
                        f"it lacks the line signature of event {eid}, which its segments hold"
                    )
        if self.copies:
            rewrite_signatures(self.conn, {r for r in self.listed if r[1]})


def _check_segments(
    conn: sqlite3.Connection,
    objects: CatFile,
    manifest: dict[str, Any],
    config: Config,
    signer: Signer | None,
    with_keys: bool,
    signed: _Signed | None,
) -> None:
    """One read of every listed segment blob for what the trust tables need of them: the keys
    (`_check_keys`, when `with_keys`) and the signatures (`signed`)."""
    from fleetgit.index import recheck

    keys = recheck.Keys(config) if with_keys else None
    events: set[tuple[Any, ...]] = set()
    limit = read_limit(config.segment_max_bytes)  # what catch-up reads of a committed segment
    for blob, _size in manifest.get("segments", []):
        data = _read(objects, str(blob), "blob", limit)
        if data is None:
            raise SnapshotRefused(
                f"segment blob {str(blob)[:12]} is not here, or over the read limit of {limit}"
            )
        if keys is not None:
            for batch in _key_batches(data):
                keys.collect(batch[0][0].writer, 0, batch)
                events |= _key_event_rows(batch)
        if signed is not None:
            signed.read(data)
    if keys is not None:
        _check_keys(conn, keys, events, signer)
    if signed is not None:
        signed.check()


def _check_keys(
    conn: sqlite3.Connection,
    keys: Any,
    events: set[tuple[Any, ...]],
    signer: Signer | None,
) -> None:
    """The snapshot's `pilot_keys` are the keys the key events of the segments it lists establish
    (index/recheck.py: each key batch checked by its own signatures, in total order), and its
    `key_events` are those events (later key events derive keys from them). Else it could carry
    a forged key that later ingests would take as a pilot's, or lose a revocation. Each listed
    blob is searched for key events (bytes, no parse: `_check_segments`); only their batches
    are decoded and checked. A pilot's signature counts only with a key of that pilot the
    segments establish and do not revoke (up to the covered commit)."""
    from fleetgit.index import recheck

    keys.derive()
    rows = keys.rows()
    if rows != recheck.index_keys(conn):
        raise SnapshotRefused(
            "its pilot keys are not the ones the key events of its segments establish"
        )
    listed = set(
        conn.execute("SELECT pilot, hlc, writer, wseq, hash, actor, at, batch FROM key_events")
    )
    if listed != events:
        raise SnapshotRefused("its key events are not the ones its segments hold")
    if signer is not None and not any(
        r[0] == signer.by and r[1] == signer.key and r[5] is None for r in rows
    ):
        raise SnapshotRefused(
            f"it is signed by {signer.by} with a key the segments do not give {signer.by}"
            " (never added, or revoked)"
        )


def _key_event_rows(batch: list[tuple[Any, bytes]]) -> set[tuple[Any, ...]]:
    """The `key_events` rows (but their segment number) ingest keeps of one batch
    (index/trust.py `_record`)."""
    from fleetgit.index.trust import KEY_TYPES
    from fleetgit.ledger.segments import line_hash

    lines = b"".join(line for _, line in batch)
    out = set()
    for at, (e, line) in enumerate(batch):
        if e.type not in KEY_TYPES or e.actor is None or not isinstance(e.data.get("key"), str):
            continue
        pilot = str(e.data.get("callsign")) if e.type == "pilot_spawned" else e.actor
        out.add((pilot, e.hlc, e.writer, e.wseq, line_hash(line), e.actor, at, lines))
    return out


def _key_batches(data: bytes) -> list[list[tuple[Any, bytes]]]:
    """The complete batches of `data` (a segment) that hold a key event. The key events pass
    intake as ingest reads them; the other lines of their batches (a batch is contiguous, its
    lines share its tx) are only decoded: what they are does not matter here, only that their
    bytes and actors are what the signature covers. Anything read otherwise than ingest would
    gives other keys, so the snapshot is refused (and the segments read): never a key more."""
    from fleetgit.index.trust import KEY_TYPES
    from fleetgit.ledger import sigs
    from fleetgit.ledger.codec import decode
    from fleetgit.ledger.intake import check

    def line_at(start: int) -> bytes:
        end = data.find(b"\n", start)
        return data[start : len(data) if end < 0 else end + 1]

    out: list[list[tuple[Any, bytes]]] = []
    done = 0
    at = data.find(_KEY_MARK)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        if start < done:  # inside a batch already taken
            at = data.find(_KEY_MARK, at + len(_KEY_MARK))
            continue
        key_line = line_at(start)
        try:
            key = check(key_line, None, CATALOGUE)
        except Exception:  # refused or undecodable: not an event of the index
            key = None
        if key is not None and key.type in KEY_TYPES:
            mark = b'"tx":"' + key.tx.encode() + b'"'
            first = start
            while first > 0:
                prev = data.rfind(b"\n", 0, first - 1) + 1
                if mark not in line_at(prev):
                    break
                first = prev
            lines: list[bytes] = []
            pos = first
            while pos < len(data) and len(lines) < key.txn:
                line = line_at(pos)
                if mark not in line:
                    break
                lines.append(line)
                pos += len(line)
            done = pos
            if len(lines) == key.txn:  # a complete batch, as parse keeps
                try:
                    batch = [(decode(sigs.split(x)[0]), x) for x in lines]
                except Exception:
                    batch = []
                if batch and all(e.tx == key.tx for e, _ in batch):
                    out.append(batch)
        at = data.find(_KEY_MARK, max(at + len(_KEY_MARK), done))
    return out


class Checkout:
    """The `.fleet/events` files git checked out in this work tree, and which of them still hold
    their blob's bytes: `git ls-files -s` (the blob id of each) and `git diff-files` (which
    hashes every file a fresh clone wrote in the same second as its git index) are started
    before the snapshot is inflated, so they run on the other core meanwhile. The files are
    stat-ed before git starts and again when recorded, so a file written after the scan is
    never taken for its blob."""

    def __init__(self, paths: RepoPaths) -> None:
        from fleetgit.git.sources import scan_worktrees

        top = str(paths.worktree)
        self.skipped: list[tuple[str, str, str]] = []
        self.scanned = list(scan_worktrees(paths, self.skipped))  # every worktree's
        self.files = [f for f in self.scanned if f.worktree == top]
        self.procs: list[subprocess.Popen[bytes]] = []
        if not self.files:
            return
        for args in (
            ["ls-files", "--stage", "-z", "--", ".fleet/events"],
            ["diff-files", "--name-only", "-z", "--", ".fleet/events"],
        ):
            try:
                self.procs.append(
                    subprocess.Popen(
                        ["git", "-C", top, *args],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                    )
                )
            except OSError:
                self.close()
                return

    def unchanged(self) -> dict[str, str]:
        """relpath -> blob id of the files whose work-tree bytes are the git index's (git's own
        stat check, racy-git safe)."""
        if len(self.procs) != 2:
            return {}
        (staged, _), (changed, _) = (proc.communicate() for proc in self.procs)
        if any(proc.returncode != 0 for proc in self.procs):
            return {}
        entries = {}
        for item in staged.decode("utf-8", "surrogateescape").split("\0"):
            info, _, relpath = item.partition("\t")
            mode, oid, stage = [*info.split(), "", "", ""][:3]
            if mode in ("100644", "100755") and stage == "0":
                entries[relpath] = oid
        for relpath in changed.decode("utf-8", "surrogateescape").split("\0"):
            entries.pop(relpath, None)
        return entries

    def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                proc.communicate()
        self.procs = []


class Refs(NamedTuple):
    """The clone's refs as catch-up reads them (from the ref files, no git call), and their
    fingerprint taken before they were read."""

    fingerprint: str
    targets: dict[str, str]

    @classmethod
    def read(cls, paths: RepoPaths) -> Refs:
        common = str(paths.common_dir)
        dirs = fingerprint.git_dirs(common)
        taken = fingerprint.refs_fingerprint(common, dirs)
        return cls(taken, fingerprint.ref_targets(common, dirs))


def prepare(
    conn: sqlite3.Connection,
    checkout: Checkout,
    covered: str,
    sizes_of: list[tuple[str, int]],
    refs: Refs,
    empty: set[str],
) -> None:
    """Make the checked file this clone's index: a new generation; the covered history hidden
    from the first ref walk; the work-tree files git checked out from covered blobs recorded
    as read to their end (their bytes are the blobs': `git diff-files` says which are not).
    When that is every ref and every file, it is what the first catch-up would record, so
    their fingerprints are recorded too and that catch-up is a few stat calls: the refs at the
    covered commit (the walk would read nothing past it) and those in `empty` (snapshot refs
    whose commit holds no `.fleet`), and every segment file of every worktree.
    `sizes_of`: (blob id, size) of the covered segment blobs."""
    from fleetgit.index.store import new_generation

    conn.execute("BEGIN IMMEDIATE")
    new_generation(conn)
    conn.execute("DELETE FROM meta WHERE key IN ('files_fp', 'refs_fp')")
    conn.execute("DELETE FROM refs")
    if all(t == covered or n in empty for n, t in refs.targets.items()):
        conn.executemany("INSERT INTO refs VALUES (?, ?)", sorted(refs.targets.items()))
        conn.execute("INSERT INTO meta VALUES ('refs_fp', ?)", (refs.fingerprint,))
    else:
        conn.execute("INSERT INTO refs VALUES (?, ?)", (PSEUDO_REF, covered))
    staged = checkout.unchanged()
    sizes = dict(sizes_of)
    recorded = 0
    for f in checkout.files:
        # the bytes git checked out from a covered blob, and not one byte more since
        if sizes.get(staged.get(f.relpath, "")) != f.size:
            continue
        try:
            fd = safefs.open_file(f.worktree, f.relpath)
        except (OSError, safefs.NotRegular):
            continue
        try:
            st = os.fstat(fd)
            if (st.st_size, st.st_mtime_ns, st.st_ino) != (f.size, f.mtime_ns, f.ino):
                continue
            start = max(0, f.size - _TAIL)
            tail = tail_hash(os.pread(fd, f.size - start, start))
        finally:
            os.close(fd)
        conn.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.worktree, f.relpath, f.size, f.mtime_ns, f.ino, f.size, tail),
        )
        recorded += 1
    if recorded == len(checkout.scanned) and not checkout.skipped:
        done = fingerprint.files_fingerprint(checkout.scanned)
        conn.execute("INSERT INTO meta VALUES ('files_fp', ?)", (done,))
    conn.execute("COMMIT")


def sweep(directory: Path, prefix: str) -> None:
    """Remove what a killed load or build left: `<prefix><pid>...` of a process that is gone."""
    import shutil

    for name in os.listdir(directory):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except PermissionError:  # alive, someone else's
            continue


def _may_have_snapshots(common_dir: Path) -> bool:
    """A snapshot ref as a loose ref file, a line of packed-refs, or a ref store read otherwise
    (reftable): cheap checks before pygit2 reads the refs."""
    loose = common_dir / PREFIX
    with contextlib.suppress(OSError):
        if loose.is_dir() and any(loose.iterdir()):
            return True
    with contextlib.suppress(OSError), open(common_dir / "packed-refs", "rb") as fh:
        if any(b" " + PREFIX.encode() in line for line in fh):
            return True
    return (common_dir / "reftable").exists()


def install(paths: RepoPaths, config: Config) -> str | None:
    """Where this clone has no index file yet: load the newest usable snapshot as its index.
    Returns one line for the user (what was loaded, or why each snapshot was not), or None when
    there is no snapshot at all. Never raises for a bad snapshot; never replaces an index file
    (another process that created one first wins, `os.link` being atomic)."""
    if os.environ.get("FLEETGIT_NO_SNAPSHOT") or paths.worktree == paths.git_dir:
        return None  # a bare repository (a server's guard) reads its refs, never a snapshot
    if not _may_have_snapshots(paths.common_dir):
        return None  # the usual new index (init, a plain clone): no git call, no ref walk
    refs = Refs.read(paths)
    if not any(n.startswith(PREFIX) for n in refs.targets):
        return None
    objects = reader(paths)
    checkout: Checkout | None = None
    try:
        found = candidates(objects, refs.targets)
        if not found:
            return None
        target = paths.index_file
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep(target.parent, f"{target.name}.snapshot-")
        notes = []
        for ref, commit in found:
            tmp = target.with_name(f"{target.name}.snapshot-{os.getpid()}")
            lookups: Lookups | None = None
            try:
                manifest = read_manifest(objects, commit)
                check_manifest(manifest, config)
                signer = check_signature(manifest, config)
                covered = str(manifest.get("commit", ""))
                if not held_by_a_branch(paths, refs.targets, covered):
                    raise SnapshotRefused(
                        f"covers commit {covered[:12]}, which no branch or remote-tracking"
                        " branch here holds"
                    )
                lookups = Lookups(paths, manifest)
                checkout = checkout or Checkout(paths)
                inflate(objects, commit, manifest, tmp)
                lookups.check()
                check_file(tmp, objects, lookups, manifest, config, signer)
                # this snapshot's own commit holds no `.fleet`: its ref is read as it stands.
                # Git's header says so; a content is never read (limit 0: git is stopped
                # instead, and nothing more is asked of it on the way to the link)
                there = objects.read(f"{commit}:.fleet", 0) is not None
                empty = set() if there else {ref}
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    sizes = [(str(b), int(n)) for b, n in manifest["segments"]]
                    prepare(conn, checkout, covered, sizes, refs, empty)
                    conn.execute("PRAGMA journal_mode = WAL")
                finally:
                    conn.close()
                fsync_path(tmp)  # on disk before its name: a power loss leaves no torn index
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return None  # another process made the index first: it is as good
                fsync_path(target.parent)
                events = sum(n for n, _ in manifest["writers"].values())
                return (
                    f"loaded the index snapshot {ref} ({events} events up to commit"
                    f" {covered[:12]}); catching up from there"
                )
            except SnapshotRefused as exc:
                notes.append(f"index snapshot {ref} not used: {exc}; reading the segments instead")
            except Exception as exc:  # a malformed manifest or file: never the command's failure
                notes.append(
                    f"index snapshot {ref} not used: unreadable ({exc}); reading the segments"
                )
            finally:
                if lookups is not None:
                    lookups.close()
                for suffix in ("", "-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{tmp}{suffix}")
        return notes[0] if len(notes) == 1 else "; ".join(notes)
    finally:
        objects.close()
        if checkout is not None:
            checkout.close()
