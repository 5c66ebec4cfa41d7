"""The fleet's history for people (`fleetgit log`): events newest first, by pilot, mission and
time, each with a one-line summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.missions import lookup
from fleetgit.index.reads import EventFilter, select_events, where_clause

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet
    from fleetgit.ledger.codec import Event

# The events of one mission: its own stream, what names it, its sorties' events and their work
# orders' (a work order's later events name only the work order).
_SORTIES = "SELECT sortie_id FROM sorties WHERE mission_id = ?"
MISSION_SQL = (
    "stream = ? OR json_extract(data, '$.mission_id') = ?"
    f" OR json_extract(data, '$.sortie_id') IN ({_SORTIES})"
    " OR stream IN (SELECT stream FROM events WHERE type = 'work_order_created'"
    f" AND json_extract(data, '$.sortie_id') IN ({_SORTIES}))"
)
# what a summary shows of an event's data, in this order, when present
DETAILS = (
    "title",
    "subject",
    "patterns",
    "pattern",
    "assignee",
    "to",
    "progress",
    "status",
    "summary",
    "lock_key",
    "reason",
)
MAX_SUMMARY = 100


def timeline(
    fleet: Fleet,
    *,
    pilot: str | None = None,
    mission: str | None = None,
    since_ms: int | None = None,
    limit: int | None = None,
) -> tuple[list[Event], int]:
    """The events that match, newest first (at most `limit`), and how many more match."""
    fleet.index.catch_up()
    also, params = "", []
    if mission is not None:
        mission_id = lookup.resolve(fleet, mission)
        also, params = MISSION_SQL, [f"mission/{mission_id}", mission_id, mission_id, mission_id]
    flt = EventFilter(actor=pilot, since_ms=since_ms, reverse=True, limit=limit)
    found = select_events(fleet.index, flt, also, params)
    if not limit or len(found) < limit:
        return found, 0
    where, all_params = where_clause(flt)
    if also:
        where = f"{where} AND ({also})" if where else f" WHERE ({also})"
        all_params.extend(params)
    (total,) = fleet.index.conn.execute(
        f"SELECT count(*) FROM events{where}", all_params
    ).fetchone()
    return found, int(total) - len(found)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def summary(event: Event) -> str:
    """`sortie assigned srt-4q2x assignee=goose`: the type in words, the entity, what matters."""
    entity = event.stream.partition("/")[2]
    words = event.type.replace("_", " ")
    parts = [words, entity] if entity else [words]
    data = event.data if isinstance(event.data, dict) else {}
    details = []
    for key in DETAILS:
        if key in data and data[key] not in (None, "", []):
            value = _shown(data[key])
            details.append(f"{value!r}" if key in ("title", "subject") else f"{key}={value}")
    text = " ".join(parts + details)
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"
