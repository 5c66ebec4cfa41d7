"""Checkpoints: save where a pilot is, with what it holds, so `resume` can brief it later."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from fleetgit.domain.missions import lookup as missions
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.sorties import commands as sorties
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import NotFoundError, ValidationError
from fleetgit.ledger.schema import MAX_LIST

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetgit.fleet import Fleet


def _spec(type_: str, cid: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"checkpoint/{cid}", {"checkpoint_id": cid, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(fleet.index.conn, "checkpoints", "checkpoint_id", ref, "checkpoint", "chk")


def holdings(fleet: Fleet, me: str) -> dict[str, Any]:
    """What `me` holds now: reservations, locks, unread messages."""
    now = clock.now_ms()
    conn = fleet.index.conn
    reservations = conn.execute(
        "SELECT pattern, exclusive FROM reservations WHERE holder = ? AND released = 0"
        " AND expires_ms > ? ORDER BY pattern",
        (me, now),
    ).fetchall()
    return {
        "reservations": [p for p, _ in reservations],
        "shared": [p for p, excl in reservations if not excl],
        "locks": [
            r[0]
            for r in conn.execute(
                "SELECT lock_key FROM locks WHERE holder = ? AND released = 0 AND expires_ms > ?"
                " ORDER BY lock_key",
                (me, now),
            )
        ],
        "unread_messages": [  # the newest ones, oldest first
            r[0]
            for r in conn.execute(
                "SELECT message_id FROM recipients WHERE callsign = ? AND archived = 0"
                " AND read_ms IS NULL ORDER BY sent_hlc DESC LIMIT ?",
                (me, MAX_LIST),
            )
        ][::-1],
        "unread_total": conn.execute(
            "SELECT count(*) FROM recipients WHERE callsign = ? AND archived = 0"
            " AND read_ms IS NULL",
            (me,),
        ).fetchone()[0],
    }


def create(
    fleet: Fleet,
    *,
    mission: str | None = None,
    sortie: str | None = None,
    trigger: str = "manual",
    progress: int | None = None,
    summary: str | None = None,
    next_steps: Sequence[str] = (),
    blockers: Sequence[str] = (),
    files: Sequence[str] = (),
    if_changed: bool = False,
) -> str:
    """A new checkpoint's id; with `if_changed`, the pilot's newest one instead when it already
    says all this (a session hook that fires every turn leaves one checkpoint per change)."""
    me = pilots.acting(fleet)
    cid = clock.short_id("chk")
    unchanged: list[str] = []

    def plan() -> list[EventSpec]:
        sid = sorties.resolve(fleet, sortie) if sortie is not None else None
        mid = missions.resolve(fleet, mission) if mission is not None else None
        if sid is not None:
            mid = _sortie_mission(fleet, sid, mid)
        held = holdings(fleet, me)
        data = {
            "mission_id": mid,
            "sortie_id": sid,
            "trigger": trigger,
            "progress_percent": progress,
            "summary": summary,
            "next_steps": list(next_steps),
            "blockers": list(blockers),
            "files_modified": list(files),
            "reservations": held["reservations"],
            "locks": held["locks"],
            "unread_messages": held["unread_messages"],
            "context": {
                "shared_reservations": held["shared"],
                "unread_total": held["unread_total"],
            },
        }
        if if_changed:
            newest = _rows(fleet, " AND pilot = ?", [me])[-1:]
            if newest and {k: newest[0].get(_COLUMN.get(k, k)) for k in data} == data:
                unchanged.append(newest[0]["checkpoint_id"])
                return []
        return [_spec("checkpoint_created", cid, data)]

    fleet.transact(plan)
    return unchanged[0] if unchanged else cid


_COLUMN = {"progress_percent": "progress"}  # event field -> checkpoints column


def _sortie_mission(fleet: Fleet, sid: str, mid: str | None) -> str | None:
    """The sortie's mission: `mid` must be it, when given."""
    own: str | None = sorties.row(fleet, sid)["mission_id"]
    if mid is None or mid == own:
        return own
    if own is None:
        raise ValidationError(
            f"sortie {sid} is in no mission, not in {mid}",
            hint=f"put it in the mission first: fleetgit sortie update {sid} --mission {mid}",
        )
    raise ValidationError(
        f"sortie {sid} belongs to mission {own}, not {mid}",
        hint=f"leave out --mission (it comes from the sortie): fleetgit checkpoint create"
        f" --sortie {sid}",
    )


def _decorate(row: dict[str, Any]) -> dict[str, Any]:
    details = orjson.loads(row.pop("details"))
    row.update(details)
    row["created_at"] = clock.iso_ms(clock.hlc_ms(row.pop("created_hlc")))
    row["deleted"] = bool(row["deleted"])
    return row


def _rows(fleet: Fleet, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cur = fleet.index.conn.execute(
        f"SELECT * FROM checkpoints WHERE deleted = 0{where} ORDER BY created_hlc", params
    )
    names = [c[0] for c in cur.description]
    return [_decorate(dict(zip(names, r, strict=True))) for r in cur]


def show(fleet: Fleet, ref: str) -> dict[str, Any]:
    cid = resolve(fleet, ref)
    cur = fleet.index.conn.execute("SELECT * FROM checkpoints WHERE checkpoint_id = ?", (cid,))
    return _decorate(dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True)))


def listing(fleet: Fleet, *, mission: str | None = None) -> list[dict[str, Any]]:
    if mission is not None:
        return _rows(fleet, " AND mission_id = ?", [missions.resolve(fleet, mission)])
    return _rows(fleet, "", [])


def latest(fleet: Fleet, *, mission: str | None = None) -> dict[str, Any]:
    """The newest checkpoint of the acting pilot (of anyone, without an identity)."""
    where, params = "", []
    if mission is not None:
        where += " AND mission_id = ?"
        params.append(missions.resolve(fleet, mission))
    if fleet.actor:
        where += " AND pilot = ?"
        params.append(fleet.actor)
    found = _rows(fleet, where, params)
    if not found:
        who = f"--as {fleet.actor} " if fleet.actor else ""
        raise NotFoundError(
            "no checkpoint yet" + (f" of {fleet.actor}" if fleet.actor else ""),
            hint=f"save one first: fleetgit {who}checkpoint create --summary TEXT",
        )
    return found[-1]
