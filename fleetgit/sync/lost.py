"""`fleetgit restore-lost`: publish again the events no ref reaches any more.

The index keeps every event it ingested, even after a force-push, a deleted branch or a
filter-repo took the last commit holding it; `verify` reports them (index/verify.lost_events).
Restoring writes their exact lines (rebuilt from the index: a line is canonical, so its bytes
follow from its fields; a line whose hash does not match is left out) as new segments on this
writer's fleet ref, each batch whole. A line must lie in its own writer's directory (intake), so
an event of writer W goes to `.fleet/events/W/<n>.jsonl` in that commit, `n` from
RESTORED_SEGMENTS (90000000) on: W's own appends number their segments below it and never follow
it (index.store.writer_facts), so W and the restorer never write one segment name. Two clones
restoring the same writer's events at once may: `verify` reports it, every event still counts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson

from fleetgit.git import fleetrefs
from fleetgit.index.trust import signatures_of
from fleetgit.ledger.codec import Event, encode
from fleetgit.ledger.segments import RESTORED_SEGMENTS, line_hash, segment_name
from fleetgit.ledger.sigs import with_field

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet

_COLUMNS = (
    "id, type, v, stream, seq, hlc, writer, wseq, actor, ts, tx, txn, data, causation_id,"
    " correlation_id, hash"
)


def restore(fleet: Fleet, *, dry_run: bool = False) -> dict[str, Any]:
    report = fleet.verify()
    lost = report.lost
    writer = fleet.writer.id
    ref = fleetrefs.writer_ref(writer)
    out: dict[str, Any] = {"events": [], "segments": [], "ref": ref, "commit": None}
    if not lost:
        return out
    lines = _lines(fleet, lost)
    out["events"] = [eid for eid in lost if any(eid in ids for ids, _ in lines.values())]
    if dry_run:
        out["segments"] = sorted(lines)
        return out
    git = fleet.index.git
    with fleet.writer.locked():
        tip = fleetrefs.ref_target(git, ref)
        changes: dict[str, dict[str, bytes]] = {}
        for w, (_ids, data) in sorted(lines.items()):
            number = _next_number(fleet, w)
            changes[w] = {segment_name(number): data}
            out["segments"].append(f"{w}/{segment_name(number)}")
        message = f"fleet: restore {len(out['events'])} lost event(s)"
        commit = fleetrefs.commit_segments(git, tip, changes, message)
        fleetrefs.set_ref(fleet.paths, ref, commit, tip)
        out["commit"] = commit
    fleet.index.catch_up()
    return out


def _lines(fleet: Fleet, lost: list[str]) -> dict[str, tuple[set[str], bytes]]:
    """Per writer: the ids and the bytes of the whole batches holding the lost events, in
    the writer's order."""
    conn = fleet.index.conn
    txs: set[str] = set()
    for start in range(0, len(lost), 500):
        chunk = lost[start : start + 500]
        marks = ",".join("?" * len(chunk))
        txs.update(
            r[0] for r in conn.execute(f"SELECT tx FROM events WHERE id IN ({marks})", chunk)
        )
    rows: list[Any] = []
    tx_list = sorted(txs)
    for start in range(0, len(tx_list), 500):
        chunk = tx_list[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(f"SELECT {_COLUMNS} FROM events WHERE tx IN ({marks})", chunk)
    signed = signatures_of(conn, {r[0]: r[6] for r in rows})
    batches: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
    broken: set[str] = set()
    for r in rows:
        event = Event(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
            orjson.loads(r[12]), r[13], r[14],
        )  # fmt: skip
        line = encode(event)
        for value in signed.get(event.id, ()):  # its signature, as the line had it (trust.py)
            if line_hash(with_field(line, value)) == r[15]:
                line = with_field(line, value)
                break
        if line_hash(line) != r[15]:
            broken.add(event.tx)  # its bytes cannot be rebuilt: the batch is left out whole
        batches[event.tx].append((event.wseq, event.writer, line))
    out: dict[str, tuple[set[str], bytes]] = {}
    per_writer: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
    for tx, items in batches.items():
        if tx in broken:
            continue
        for wseq, w, line in items:
            per_writer[w].append((wseq, tx, line))
    for w, items in per_writer.items():
        items.sort()
        ids = {orjson.loads(line)["id"] for _, _, line in items}
        out[w] = (ids, b"".join(line for _, _, line in items))
    return out


def _next_number(fleet: Fleet, writer: str) -> int:
    """A number the writer's own appends never use (they stay below RESTORED_SEGMENTS), past
    the restored segments this clone knows of."""
    row = fleet.index.conn.execute(
        "SELECT max(number) FROM segments WHERE writer = ? AND number >= ?",
        (writer, RESTORED_SEGMENTS),
    ).fetchone()
    return int(row[0]) + 1 if row[0] is not None else RESTORED_SEGMENTS
