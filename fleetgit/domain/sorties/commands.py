"""Sorties: the units of work pilots claim. Every change is decided inside `Fleet.transact`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from fleetgit.domain.missions import lookup as missions
from fleetgit.domain.missions.fold import CLOSED as MISSION_CLOSED
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.reservations.commands import may_force
from fleetgit.domain.sorties.fold import (
    ASSIGNEE_ONLY,
    CLOSED,
    SETTLED,
    STATUSES,
    TRANSITIONS,
    cycle_breaks,
    cyclic_edges,
)
from fleetgit.guard import patterns
from fleetgit.ledger import clock, ids
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.durations import format_duration
from fleetgit.ledger.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetgit.fleet import Fleet
    from fleetgit.guard.rules import Reservation

# the command that moves a sortie on from each state, for hints
_NEXT = {"open": "claim", "assigned": "start", "in_progress": "complete", "blocked": "resume"}


def _spec(type_: str, sortie_id: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"sortie/{sortie_id}", {"sortie_id": sortie_id, **data})


def resolve(fleet: Fleet, ref: str) -> str:
    return ids.resolve(fleet.index.conn, "sorties", "sortie_id", ref, "sortie", "srt")


def broken_deps(fleet: Fleet) -> dict[tuple[str, str], list[str]]:
    """{(sortie, dependency): the cycle it would close}: the dependencies that do not count,
    because two clones closed a cycle between them (`domain.sorties.fold.cycle_breaks`)."""
    conn = fleet.index.conn
    if not cyclic_edges(conn.execute("SELECT sortie_id, depends_on FROM sortie_deps")):
        return {}  # the usual case: the pairs alone, from the primary key's index
    rows = conn.execute(
        "SELECT sortie_id, depends_on, set_hlc, set_writer, set_wseq FROM sortie_deps"
    )
    return cycle_breaks((a, b, (hlc, writer, wseq)) for a, b, hlc, writer, wseq in rows)


def row(fleet: Fleet, sortie_id: str) -> dict[str, Any]:
    """The sortie; each dependency with its status and, when it does not count, `cycle`."""
    conn = fleet.index.conn
    cur = conn.execute("SELECT * FROM sorties WHERE sortie_id = ?", (sortie_id,))
    out = dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))
    out["files"] = orjson.loads(out["files"])
    deps = conn.execute(
        "SELECT d.depends_on, coalesce(s.status, 'unknown') FROM sortie_deps d"
        " LEFT JOIN sorties s ON s.sortie_id = d.depends_on WHERE d.sortie_id = ?"
        " ORDER BY d.depends_on",
        (sortie_id,),
    ).fetchall()
    broken = broken_deps(fleet) if deps else {}
    out["depends_on"] = [
        {"sortie_id": d, "status": s, "cycle": broken.get((sortie_id, d))} for d, s in deps
    ]
    return out


def waits_for(current: dict[str, Any]) -> list[str]:
    """The dependencies that still hold the sortie (a `row`) up: neither completed nor
    cancelled (a cancelled one never completes), and not breaking a cycle."""
    return [
        d["sortie_id"]
        for d in current["depends_on"]
        if d["status"] not in SETTLED and d["cycle"] is None
    ]


def _files(files: Sequence[str], allow_broad: bool) -> list[str]:
    """A sortie's files, as `reserve` takes them: one that covers the whole repository needs
    `--allow-broad`, since `claim --reserve` reserves them."""
    return [patterns.normalize(f, allow_broad=allow_broad) for f in files]


def create(
    fleet: Fleet,
    title: str,
    *,
    mission: str | None = None,
    description: str | None = None,
    priority: str = "medium",
    files: Sequence[str] = (),
    depends_on: Sequence[str] = (),
    allow_broad: bool = False,
) -> str:
    pilots.acting(fleet)
    sortie_id = clock.short_id("srt")
    paths = _files(files, allow_broad)

    def plan() -> list[EventSpec]:
        mission_id = missions.resolve_open(fleet, mission) if mission is not None else None
        deps = list(dict.fromkeys(resolve(fleet, d) for d in depends_on))
        data = {
            "mission_id": mission_id,
            "title": title,
            "description": description,
            "priority": priority,
            "files": paths,
            "depends_on": deps,
        }
        return [_spec("sortie_created", sortie_id, data)]

    fleet.transact(plan)
    return sortie_id


def _how(sid: str, status: str, allowed: tuple[str, ...]) -> str:
    """What to do about an illegal transition: the way on from `status`, if there is one."""
    if status in CLOSED:
        return f"a {status} sortie is final; new work needs a new one: fleetgit sortie create TITLE"
    step = _NEXT.get(status)
    return f"allowed only from {', '.join(allowed)}" + (
        f"; next for it: fleetgit sortie {step} {sid}" if step else ""
    )


def _check_transition(current: dict[str, Any], event_type: str, me: str) -> None:
    allowed, _ = TRANSITIONS[event_type]
    sid, status = current["sortie_id"], current["status"]
    not_mine = event_type in ASSIGNEE_ONLY and current["assignee"] != me
    if status not in allowed and (status in CLOSED or not not_mine):
        verb = event_type.removeprefix("sortie_")
        raise ValidationError(
            f"sortie {sid} is {status}: cannot record it as {verb}",
            hint=_how(sid, status, allowed),
        )
    if not_mine:  # before the state: the way on from it is not theirs to take
        holder = current["assignee"] or "nobody"
        raise ConflictError(
            f"sortie {sid} is assigned to {holder}, not {me}", hint=f"fleetgit sortie claim {sid}"
        )
    if event_type == "sortie_started":
        waiting = waits_for(current)
        if waiting:
            raise ConflictError(
                f"sortie {sid} waits for {', '.join(waiting)} to complete",
                hint="fleetgit sortie list --ready shows what can start now",
            )


def _mission_open(fleet: Fleet, current: dict[str, Any], event_type: str) -> list[EventSpec]:
    """A claim or start needs the sortie's mission to be open; the first start of a sortie
    starts a planned mission too, in the same batch (the events of it)."""
    mission_id = current["mission_id"]
    if mission_id is None or event_type not in ("sortie_assigned", "sortie_started"):
        return []
    found = fleet.index.conn.execute(
        "SELECT status FROM missions WHERE mission_id = ?", (mission_id,)
    ).fetchone()
    status = found[0] if found else None
    if status in MISSION_CLOSED:
        verb = "claim" if event_type == "sortie_assigned" else "start"
        raise ConflictError(
            f"sortie {current['sortie_id']} belongs to mission {mission_id}, which is {status}:"
            f" cannot {verb} it",
            hint="new work needs a new mission: fleetgit mission create TITLE",
        )
    if event_type == "sortie_started" and status == "planned":
        return [missions.spec("mission_started", mission_id, {})]
    return []


def cancel_specs(fleet: Fleet, sid: str, me: str, reason: str | None) -> list[EventSpec]:
    """Cancel the open sortie `sid` (checked by the caller), freeing what its claim reserved."""
    holder = row(fleet, sid)["assignee"]
    specs = [_spec("sortie_cancelled", sid, {"reason": reason})]
    return specs + _ending(fleet, sid, holder, me)


def _ending(fleet: Fleet, sid: str, holder: str | None, me: str) -> list[EventSpec]:
    """What the claim reserved is freed with the sortie, by its holder or under the force rule
    (a pilot ending an active pilot's sortie leaves that pilot's reservations alone)."""
    if holder == me or (holder is not None and may_force(fleet, holder)):
        return _release_claimed_files(fleet, sid, holder, me)
    return []


def act(fleet: Fleet, ref: str, event_type: str, data: dict[str, Any] | None = None) -> str:
    """start, resume, complete, progress, block, cancel: if the state machine allows it."""
    me = pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        sid = resolve(fleet, ref)
        current = row(fleet, sid)
        _check_transition(current, event_type, me)
        specs = [_spec(event_type, sid, data or {}), *_mission_open(fleet, current, event_type)]
        if event_type in ("sortie_completed", "sortie_cancelled"):
            specs += _ending(fleet, sid, current["assignee"], me)
        return specs

    return str(fleet.transact(plan)[0].data["sortie_id"])


def claim_reason(sid: str) -> str:
    """The reason `claim --reserve` gives the reservations it takes for sortie `sid`."""
    return f"sortie {sid}"


def claimed(fleet: Fleet, sid: str, holder: str | None) -> list[Reservation]:
    """The live reservations `holder` took for the sortie with `claim --reserve`."""
    from fleetgit.guard.rules import load

    live = load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
    return [r for r in live if r.holder == holder and r.reason == claim_reason(sid)]


def _claimed_files(fleet: Fleet, sid: str, holder: str | None) -> list[str]:
    return sorted({r.reservation_id for r in claimed(fleet, sid, holder)})


def _release_claimed_files(fleet: Fleet, sid: str, holder: str, me: str) -> list[EventSpec]:
    """The sortie is over: free what `claim --reserve` reserved for it, in the same batch."""
    from fleetgit.domain.reservations.commands import release_specs

    return release_specs(
        _claimed_files(fleet, sid, holder),
        f"sortie {sid} is over",
        forced_by=None if holder == me else me,
    )


_YOURS_NEXT = {
    "assigned": "start it: fleetgit sortie start {sid}",
    "in_progress": "fleetgit sortie progress {sid} --percent N, or fleetgit sortie complete {sid}",
    "blocked": "once unblocked: fleetgit sortie resume {sid}",
}


def claim(
    fleet: Fleet,
    ref: str,
    *,
    reserve: bool = False,
    ttl: str | None = None,
    allow_broad: bool = False,
) -> dict[str, Any]:
    """Assign the sortie to me; refused while another active pilot holds it. A sortie held by
    a pilot that is no longer active (silent past the window, or deregistered) can be taken
    over, started or blocked too: it goes back to assigned, to me (`taken_from` names the
    holder). With `reserve`, its files are reserved in the same batch: all of it, or none, and
    one that covers the whole repository only with `allow_broad`, as `reserve` grants it (a
    sortie written by another clone or version may name one)."""
    from fleetgit.domain.reservations.commands import _ttl, release_specs, reserve_specs

    me = pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        sid = resolve(fleet, ref)
        current = row(fleet, sid)
        _check_transition(current, "sortie_assigned", me)
        _mission_open(fleet, current, "sortie_assigned")
        holder = current["assignee"]
        if holder == me:
            raise ConflictError(
                f"sortie {sid} is already yours ({current['status']})",
                hint=_YOURS_NEXT[current["status"]].format(sid=sid),
            )
        seen = pilots.active_since(fleet, holder) if holder else None
        if seen is not None:
            ago = format_duration((fleet.now_ms() - seen) / 1000)
            raise ConflictError(
                f"sortie {sid} is held by {holder} (active {ago} ago)",
                hint=f"ask them (fleetgit squawk send --to {holder} --subject 'free {sid}?'),"
                " or claim it once they have been silent for"
                f" {format_duration(fleet.config.pilot_active_window_seconds)}",
            )
        specs = [_spec("sortie_assigned", sid, {"assignee": me, "previous_assignee": holder})]
        # a takeover frees what the silent holder's claim reserved, so the files move with it
        freed = _claimed_files(fleet, sid, holder) if holder else []
        specs += release_specs(freed, f"sortie {sid} taken over by {me}", forced_by=me)
        if reserve and current["files"]:
            try:
                files = [patterns.normalize(f, allow_broad=allow_broad) for f in current["files"]]
            except ValidationError as exc:
                exc.hint = (
                    f"fleetgit sortie claim {sid} --reserve --allow-broad, or update its files"
                )
                raise
            specs += reserve_specs(
                fleet,
                me,
                files,
                shared=False,
                seconds=_ttl(fleet, ttl),
                reason=claim_reason(sid),
                freeing=freed,
            )
        return specs

    assigned = fleet.transact(plan)[0].data
    return {**row(fleet, assigned["sortie_id"]), "taken_from": assigned.get("previous_assignee")}


def unclaim(fleet: Fleet, ref: str, *, reason: str | None = None) -> dict[str, Any]:
    """Hand my claimed sortie back: open again with no assignee (its progress kept), and what
    `claim --reserve` reserved for it freed in the same batch, as `complete` does."""
    me = pilots.acting(fleet)

    def plan() -> list[EventSpec]:
        sid = resolve(fleet, ref)
        return unclaim_specs(fleet, row(fleet, sid), me, reason)

    return row(fleet, str(fleet.transact(plan)[0].data["sortie_id"]))


def unclaim_specs(
    fleet: Fleet, current: dict[str, Any], me: str, reason: str | None
) -> list[EventSpec]:
    """The batch that hands `current` (a `row`) back, refused unless `me` holds it."""
    sid, status, holder = current["sortie_id"], current["status"], current["assignee"]
    if status in CLOSED or status == "open":
        raise ValidationError(
            f"sortie {sid} is {status}: nobody holds it, there is nothing to hand back",
            hint=_how(sid, status, TRANSITIONS["sortie_unclaimed"][0]),
        )
    if holder != me:
        raise ConflictError(
            f"sortie {sid} is assigned to {holder}, not {me}: only its holder hands it back",
            hint=f"ask {holder}: fleetgit squawk send --to {holder} --subject 'unclaim {sid}?'",
        )
    return [
        _spec("sortie_unclaimed", sid, {"reason": reason}),
        *_release_claimed_files(fleet, sid, me, me),
    ]


def held_by(fleet: Fleet, callsign: str) -> list[dict[str, Any]]:
    """The sorties `callsign` holds (assigned, started or blocked), as `row`s."""
    found = fleet.index.conn.execute(
        "SELECT sortie_id FROM sorties WHERE assignee = ? AND status IN (?, ?, ?)"
        " ORDER BY created_hlc",
        (callsign, *TRANSITIONS["sortie_unclaimed"][0]),
    )
    return [row(fleet, sid) for (sid,) in found.fetchall()]


def _cycle(fleet: Fleet, sid: str, deps: list[str]) -> list[str] | None:
    """A path sid -> ... -> sid through the dependency graph if `deps` would close one."""
    edges: dict[str, list[str]] = {}
    for a, b in fleet.index.conn.execute("SELECT sortie_id, depends_on FROM sortie_deps"):
        edges.setdefault(a, []).append(b)
    edges[sid] = deps
    stack = [(d, [sid, d]) for d in deps]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == sid:
            return path
        if node in seen:
            continue
        seen.add(node)
        stack.extend((n, [*path, n]) for n in edges.get(node, []))
    return None


def update(fleet: Fleet, ref: str, changes: dict[str, Any], *, allow_broad: bool = False) -> str:
    """Change a sortie's fields; `depends_on=[]` clears its dependencies. A cycle is refused,
    and so is a mission that is over."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ValidationError(
            "nothing to update", hint=f"fleetgit sortie update {ref} --priority high"
        )
    if "files" in changes:
        changes["files"] = _files(changes["files"], allow_broad)
    me = pilots.acting(fleet)  # anyone may update a sortie

    def plan() -> list[EventSpec]:
        sid = resolve(fleet, ref)
        current = row(fleet, sid)
        _check_transition(current, "sortie_updated", me)
        data = dict(changes)
        if "mission_id" in data:
            data["mission_id"] = missions.resolve_open(fleet, data["mission_id"])
        if "depends_on" in data:
            data["depends_on"] = list(dict.fromkeys(resolve(fleet, d) for d in data["depends_on"]))
            loop = _cycle(fleet, sid, data["depends_on"])
            if loop:
                raise ValidationError(
                    f"dependency cycle: {' -> '.join(loop)}",
                    hint=f"drop {loop[1]} from --depends-on"
                    + ("" if loop[1] == sid else f": it already waits for {sid}"),
                )
        return [_spec("sortie_updated", sid, {"changes": data})]

    return str(fleet.transact(plan)[0].data["sortie_id"])


def listing(
    fleet: Fleet,
    *,
    mission: str | None = None,
    status: str | Sequence[str] | None = None,
    assigned_to: str | None = None,
    ready: bool = False,
    claimed: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The sorties that pass the filters, by priority then creation; a page of them with
    `limit` (None or 0: all) and `offset`, cut in SQL, so that a page of 20 of 2,000 open
    sorties reads 20. `status`: one or several; `claimed`: only those with an assignee."""
    where, params = _filters(fleet, mission, status, assigned_to, ready, claimed)
    sql = (
        "SELECT s.sortie_id, s.mission_id, s.title, s.priority, s.status, s.assignee, s.percent,"
        " s.created_hlc FROM sorties s"
        + where
        + f" ORDER BY {missions.priority_rank('s.priority')}, s.created_hlc LIMIT ? OFFSET ?"
    )
    cur = fleet.index.conn.execute(sql, [*params, limit or -1, offset])
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def page(
    fleet: Fleet,
    limit: int,
    *,
    status: str | Sequence[str] | None = None,
    ready: bool = False,
    claimed: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` sorties of a listing (0: all) and how many more there are: counted in
    SQL, and only when the page is full."""
    rows = listing(fleet, status=status, ready=ready, claimed=claimed, limit=limit)
    if not limit or len(rows) < limit:
        return rows, 0
    return rows, count(fleet, status=status, ready=ready, claimed=claimed) - len(rows)


def count(
    fleet: Fleet,
    *,
    mission: str | None = None,
    status: str | Sequence[str] | None = None,
    assigned_to: str | None = None,
    ready: bool = False,
    claimed: bool = False,
) -> int:
    """How many sorties `listing` lists with no limit. It visits every row that passes, so the
    answer is kept until the index changes."""
    where, params = _filters(fleet, mission, status, assigned_to, ready, claimed)
    sql = f"SELECT count(*) FROM sorties s{where}"
    total = fleet.index.memo(
        (fleet.as_of_pos, sql, tuple(params)),
        lambda: fleet.index.conn.execute(sql, params).fetchone()[0],
    )
    return int(total)


def _filters(
    fleet: Fleet,
    mission: str | None,
    status: str | Sequence[str] | None,
    assigned_to: str | None,
    ready: bool,
    claimed: bool,
) -> tuple[str, list[Any]]:
    """A listing's WHERE clause (with its leading space; empty: none) and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if mission is not None:
        where.append("s.mission_id = ?")
        params.append(missions.resolve(fleet, mission))
    if isinstance(status, str) and status:
        where.append("s.status = ?")
        params.append(ids.choice(status, STATUSES, "--status", "sortie list"))
    elif status:
        where.append(f"s.status IN ({', '.join('?' * len(status))})")
        params.extend(ids.choice(st, STATUSES, "--status", "sortie list") for st in status)
    if assigned_to:
        where.append("s.assignee = ?")
        params.append(assigned_to)
    if claimed:
        where.append("coalesce(s.assignee, '') != ''")
    if ready:  # open, in no mission that is over, every dependency that counts settled
        where.append(
            "NOT EXISTS (SELECT 1 FROM missions m WHERE m.mission_id = s.mission_id"
            f" AND m.status IN ({', '.join(map(repr, MISSION_CLOSED))}))"
        )
        broken = list(broken_deps(fleet))
        skip = ", ".join(["(?, ?)"] * len(broken))
        where.append(
            "s.status = 'open' AND NOT EXISTS (SELECT 1 FROM sortie_deps d LEFT JOIN sorties x"
            " ON x.sortie_id = d.depends_on WHERE d.sortie_id = s.sortie_id"
            f" AND coalesce(x.status, '') NOT IN ({', '.join(map(repr, SETTLED))})"
            + (f" AND (d.sortie_id, d.depends_on) NOT IN (VALUES {skip})" if broken else "")
            + ")"
        )
        params.extend(x for edge in broken for x in edge)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def show(fleet: Fleet, ref: str) -> dict[str, Any]:
    sid = resolve(fleet, ref)
    out = row(fleet, sid)
    out["dependents"] = [
        r[0]
        for r in fleet.index.conn.execute(
            "SELECT sortie_id FROM sortie_deps WHERE depends_on = ? ORDER BY sortie_id", (sid,)
        )
    ]
    return out
