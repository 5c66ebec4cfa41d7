"""The index's SQLite schema. A cache: on a version mismatch it is rebuilt, never migrated."""

from __future__ import annotations

SCHEMA_VERSION = 23

# Derived tables: emptied and refilled by a rebuild.
DERIVED_TABLES = (
    "events",
    "files",
    "blobs",
    "trees",
    "refs",
    "segments",
    "streams",
    "anomalies",
    "held",
    "refused",
    "pilot_keys",
    "key_events",
    "quarantine",
    "signatures",
)  # projection tables are emptied and refolded by index.projections.rebuild

# Clone-local state a rebuild carries over into the index it builds (with `meta`'s settings).
KEPT_TABLES = ("cursors",)

# The events table's secondary indexes; a rebuild drops them and builds them once at the end.
EVENT_INDEXES = """
CREATE INDEX IF NOT EXISTS events_stream ON events (stream, hlc, writer, wseq);
CREATE INDEX IF NOT EXISTS events_order ON events (hlc, writer, wseq);
CREATE INDEX IF NOT EXISTS events_writer ON events (writer, wseq);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
-- a pilot's last sign of life is one index probe, not a scan of the whole history
CREATE INDEX IF NOT EXISTS events_actor ON events (actor, hlc);
"""

# kept apart so that index/trust.py can make the table in a scratch database of keys
KEY_EVENTS = """
-- Every key event read (registration or spawn with a key, key added or revoked), whatever its
-- verdict, with the lines of its batch (what its signature covers): a pilot's keys are derived
-- from these in total order (index/trust.py `derive`), the same whatever order they were read in.
CREATE TABLE IF NOT EXISTS key_events (
    pilot TEXT NOT NULL,  -- whose keys it changes (the spawned pilot for a spawn)
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    hash INTEGER NOT NULL,  -- of its line: copies with other bytes are candidates of their own
    actor TEXT NOT NULL,
    segment INTEGER NOT NULL,
    at INTEGER NOT NULL,  -- its index in the batch
    batch BLOB NOT NULL,  -- the batch's lines as in the segment
    PRIMARY KEY (pilot, hlc, writer, wseq, hash)
);
CREATE INDEX IF NOT EXISTS key_events_actor ON key_events (actor);
"""

DDL = (
    """
-- WITHOUT ROWID: the small keyed tables an append writes (meta, files, streams) keep their rows
-- in their primary key's b-tree alone, so each append writes one page of each, not two (the
-- table's and its key's): docs/design.md, "What an append writes".
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    v INTEGER NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    actor TEXT,
    ts TEXT NOT NULL,
    causation_id TEXT,
    correlation_id TEXT,
    tx TEXT NOT NULL,
    txn INTEGER NOT NULL,
    data TEXT NOT NULL,
    hash INTEGER NOT NULL
);
"""
    + EVENT_INDEXES
    + """

-- Work-tree segment files: how far each was ingested (checkpoint by content, not by commit).
CREATE TABLE IF NOT EXISTS files (
    worktree TEXT NOT NULL,
    relpath TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    tail_hash BLOB NOT NULL,
    PRIMARY KEY (worktree, relpath)
) WITHOUT ROWID;
-- Committed objects already ingested: a rebase or another branch with the same blobs costs nothing.
CREATE TABLE IF NOT EXISTS blobs (oid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS trees (oid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, target TEXT NOT NULL);
-- Every segment seen. committed: it has been in a commit, so its writer must not append again.
CREATE TABLE IF NOT EXISTS segments (
    writer TEXT NOT NULL,
    number INTEGER NOT NULL,
    committed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (writer, number)
);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    last_pos INTEGER NOT NULL
) WITHOUT ROWID;
-- Contradictions found while ingesting: never resolved silently, listed by `fleetgit verify`.
CREATE TABLE IF NOT EXISTS anomalies (
    kind TEXT NOT NULL,
    event_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    hash INTEGER NOT NULL,
    PRIMARY KEY (kind, event_id, hash)
);
-- Lines intake refused or could not read, where they are: skipped, and listed by `verify`.
CREATE TABLE IF NOT EXISTS refused (
    source TEXT NOT NULL,
    offset INTEGER NOT NULL,
    what TEXT NOT NULL,
    PRIMARY KEY (source, offset)
);
-- Batches stamped too far ahead of this clock: not followed until it comes within the skew.
CREATE TABLE IF NOT EXISTS held (
    id TEXT NOT NULL,
    hash INTEGER NOT NULL,
    tx TEXT NOT NULL,
    writer TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    line BLOB NOT NULL,
    PRIMARY KEY (id, hash)
);
-- Pilots' public keys, from the events, each valid from its addition to its revocation in total
-- order (index/trust.py).
CREATE TABLE IF NOT EXISTS pilot_keys (
    callsign TEXT NOT NULL,
    key TEXT NOT NULL,
    added_hlc INTEGER NOT NULL,
    added_writer TEXT NOT NULL,
    added_wseq INTEGER NOT NULL,
    revoked_hlc INTEGER,
    revoked_writer TEXT,
    revoked_wseq INTEGER,
    PRIMARY KEY (callsign, key)
);
"""
    + KEY_EVENTS
    + """
-- Events no valid signature of their actor covers (index/trust.py): kept = 0, not events of
-- the index (trust = "require"); kept = 1, ingested anyway (trust = "warn").
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT NOT NULL,
    hash INTEGER NOT NULL,
    tx TEXT NOT NULL,
    writer TEXT NOT NULL,
    segment INTEGER NOT NULL,
    lineno INTEGER,  -- its line, when the segment was read from its start
    wseq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    actor TEXT,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    line BLOB NOT NULL,
    kept INTEGER NOT NULL,
    PRIMARY KEY (id, hash)
);
-- The `_sig` values of the signed lines taken (index/trust.py `remember`), so that a line
-- rebuilt from the index (restore-lost) gets its exact bytes back: one row per portion of a
-- segment taken (not one per line: a rebuild writes a few rows, not one per batch), `ids` the
-- events' ids one after the other (36 characters each), `sigs` their values as in the lines
-- (128 characters each). No index: only restore-lost reads it (a scan), appends write it.
CREATE TABLE IF NOT EXISTS signatures (writer TEXT NOT NULL, ids TEXT NOT NULL, sigs BLOB NOT NULL);
-- Clone-local state, kept across rebuilds: consumer cursors (positions of this clone).
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    pos INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
"""
)
