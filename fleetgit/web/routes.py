"""The routes under /api/v1: each one a call into the same Python API as the CLI command of the
same name (fleetgit/fleet.py, fleetgit/domain/*/commands.py), its answer as JSON. Nothing here
decides a rule; a refusal is the domain's, with the CLI's code, message and hint."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Path, Query, Request

from fleetgit.domain.checkpoints import commands as checkpoints
from fleetgit.domain.checkpoints import resume as recovery
from fleetgit.domain.locks import commands as locks
from fleetgit.domain.missions import commands as missions
from fleetgit.domain.missions import fold as mission_fold
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.pilots import leave
from fleetgit.domain.reservations import commands as rsv
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.sorties import fold as sortie_fold
from fleetgit.domain.squawk import commands as squawk
from fleetgit.domain.workorders import commands as workorders
from fleetgit.index.reads import INT_MAX, EventFilter
from fleetgit.ledger import clock
from fleetgit.web import auth, sse, stats
from fleetgit.web import schemas as s
from fleetgit.web.auth import Principal
from fleetgit.web.common import (
    API,
    JSON,
    ApiError,
    no_body,
    principal,
    registrar,
    state,
    writer,
)

router = APIRouter(prefix=API)  # its routes go straight onto the app (see app.create_app)

Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(writer)]
Registrar = Annotated[Principal, Depends(registrar)]
NO_BODY = [Depends(no_body)]
LIST_LIMIT = 50
Limit = Annotated[int, Query(ge=0, le=10_000, description="At most N (0: all).")]
# The history grows without bound: a page of it is at most 10,000 events (`after` pages on).
EventLimit = Annotated[int, Query(ge=1, le=10_000, description="At most N (page on with after).")]
Offset = Annotated[int, Query(ge=0, le=INT_MAX)]
Ref = Annotated[str, Path(max_length=256)]


def writes(fn: Callable[..., JSON]) -> Callable[..., Coroutine[Any, Any, JSON]]:
    """A write runs in a worker thread of its own pool (WRITE_THREADS): writes wait for each
    other on the writer's lock, and must not take every thread while reads wait behind them."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> JSON:
        global _write_limiter
        if _write_limiter is None:  # made inside the event loop, as anyio wants
            _write_limiter = anyio.CapacityLimiter(WRITE_THREADS)
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await anyio.to_thread.run_sync(call, limiter=_write_limiter)
        finally:  # the event stream looks now, not at its next poll
            request = kwargs.get("request")
            if isinstance(request, Request):
                request.app.state.hub.wake()

    return run


WRITE_THREADS = 2
_write_limiter: anyio.CapacityLimiter | None = None


def ok(value: Any, status: int = 200) -> JSON:
    return JSON(value, status_code=status)


def page(key: str, rows: list[Any], limit: int, offset: int) -> JSON:
    """A listing: `{KEY: [...], "total": N, "more": M}` (M: how many follow this page)."""
    shown = rows[offset : offset + limit] if limit else rows[offset:]
    more = max(0, len(rows) - offset - len(shown))
    return ok({key: shown, "total": len(rows), "more": more})


def own(who: Principal, callsign: str) -> None:
    """A token acts only as its own pilot."""
    if callsign != who.pilot:
        raise ApiError(
            403,
            "forbidden",
            f"this token acts as {who.pilot}, not {callsign}",
            f"use a token of {callsign} (fleetgit token create --as {callsign})",
        )


def me(who: Principal) -> str:
    if not who.pilot:
        raise ApiError(
            401,
            "unauthorized",
            "this read is about a pilot's own things: it needs a token bound to a pilot",
            "fleetgit token create --as CALLSIGN",
        )
    return who.pilot


# -- pilots ------------------------------------------------------------------------------------


@router.post("/pilots", status_code=201, tags=["pilots"])
@writes
def pilot_register(request: Request, who: Registrar, body: s.PilotRegister) -> JSON:
    """Register a pilot. With its own write token: rejoin (keeping what is not given; 200).
    Without an identity (on loopback, no token; anywhere, an admin token): a NEW callsign only
    (409 for one registered before), answered with its write token, shown this once (201)."""
    if who.pilot is not None and body.callsign != who.pilot:
        raise ApiError(
            403,
            "forbidden",
            f"this token acts as {who.pilot}, not {body.callsign}: it rejoins only its own pilot",
            "a new pilot registers with no token on loopback, or with an admin token"
            " (fleetgit token create --admin)",
        )
    with state(request).fleet(who) as fleet:
        out = pilots.register(
            fleet,
            body.callsign,
            program=body.program,
            model=body.model,
            task=body.task,
            email=body.email,
            new=who.pilot is None,
        )
    if who.pilot is not None:
        return ok(out)  # register returns the pilot as `show` has it
    secret, record = auth.create(state(request).paths, body.callsign, scope="write")
    return ok(out | {"token": secret, "token_id": record["id"]}, 201)


@router.get("/pilots", tags=["pilots"])
def pilot_list(
    request: Request,
    who: Reader,
    status: Annotated[str | None, Query(max_length=32)] = None,
    active: bool | None = None,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    """Pilots with their last sign of life; `status` filters on it (active, idle, busy, ...),
    `active` on liveness."""
    with state(request).fleet(who) as fleet:
        rows = pilots.listing(fleet, active_only=bool(active))
    if active is False:
        rows = [r for r in rows if not r["active"]]
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return page("pilots", rows, limit, offset)


@router.get("/pilots/{callsign}", tags=["pilots"])
def pilot_show(request: Request, who: Reader, callsign: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(pilots.show(fleet, callsign))


@router.patch("/pilots/{callsign}", tags=["pilots"])
@writes
def pilot_heartbeat(request: Request, who: Writer, callsign: Ref, body: s.Heartbeat) -> JSON:
    """A heartbeat: alive, and optionally a status and what it is doing."""
    own(who, callsign)
    with state(request).fleet(who) as fleet:
        return ok(pilots.heartbeat(fleet, status=body.status, task=body.task))


@router.post("/pilots/{callsign}/deregister", tags=["pilots"])
@writes
def pilot_deregister(
    request: Request, who: Writer, callsign: Ref, body: s.Deregister | None = None
) -> JSON:
    """Leave the fleet: reservations and locks released, sorties handed back."""
    own(who, callsign)
    with state(request).fleet(who) as fleet:
        return ok(leave.deregister(fleet, reason=body.reason if body else None))


for path, fn, methods in (
    ("/specialists", pilot_register, ["POST"]),
    ("/specialists", pilot_list, ["GET"]),
    ("/specialists/{callsign}", pilot_show, ["GET"]),
    ("/specialists/{callsign}", pilot_heartbeat, ["PATCH"]),
    ("/specialists/{callsign}/deregister", pilot_deregister, ["POST"]),
):
    router.add_api_route(path, fn, methods=methods, include_in_schema=False)


# -- missions ----------------------------------------------------------------------------------


@router.post("/missions", status_code=201, tags=["missions"])
@writes
def mission_create(request: Request, who: Writer, body: s.MissionCreate) -> JSON:
    with state(request).fleet(who) as fleet:
        mid = missions.create(
            fleet, body.title, description=body.description, priority=body.priority
        )
        return ok(missions.show(fleet, mid), 201)


@router.get("/missions", tags=["missions"])
def mission_list(
    request: Request,
    who: Reader,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    """Missions by priority, with sortie progress rolled up; `status`: one of
    planned, in_progress, completed, cancelled."""
    with state(request).fleet(who) as fleet:
        return page("missions", missions.listing(fleet, status=status), limit, offset)


@router.get("/missions/{mission_id}", tags=["missions"])
def mission_show(request: Request, who: Reader, mission_id: Ref) -> JSON:
    """A mission with its sorties and progress."""
    with state(request).fleet(who) as fleet:
        return ok(missions.show(fleet, mission_id))


@router.patch("/missions/{mission_id}", tags=["missions"])
@writes
def mission_change(
    request: Request, who: Writer, mission_id: Ref, body: Annotated[s.MissionPatch, Body()]
) -> JSON:
    """A transition (start, complete, cancel) or an update, as `action` says."""
    with state(request).fleet(who) as fleet:
        if isinstance(body, s.MissionUpdate):
            changes = {"title": body.title, "description": body.description}
            mid = missions.update(fleet, mission_id, changes | {"priority": body.priority})
        elif isinstance(body, s.MissionStart):
            mid = missions.transition(fleet, mission_id, "mission_started", {})
        elif isinstance(body, s.MissionComplete):
            data = {"result": body.result, "summary": body.summary}
            mid = missions.transition(
                fleet, mission_id, "mission_completed", data, force=body.force
            )
        else:
            mid = missions.transition(
                fleet, mission_id, "mission_cancelled", {"reason": body.reason}, force=body.force
            )
        return ok(missions.show(fleet, mid))


# -- sorties -----------------------------------------------------------------------------------


@router.post("/sorties", status_code=201, tags=["sorties"])
@writes
def sortie_create(request: Request, who: Writer, body: s.SortieCreate) -> JSON:
    """A sortie; `files` are paths from the top of the repository."""
    with state(request).fleet(who) as fleet:
        sid = sorties.create(
            fleet,
            body.title,
            mission=body.mission_id,
            description=body.description,
            priority=body.priority,
            files=body.files,
            depends_on=body.depends_on,
            allow_broad=body.allow_broad,
        )
        return ok(sorties.show(fleet, sid), 201)


@router.get("/sorties", tags=["sorties"])
def sortie_list(
    request: Request,
    who: Reader,
    mission_id: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    assigned_to: Annotated[str | None, Query(max_length=256)] = None,
    ready: bool = False,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    """Sorties by priority; `ready`: open with every dependency completed."""
    with state(request).fleet(who) as fleet:
        rows = sorties.listing(
            fleet,
            mission=mission_id,
            status=status,
            assigned_to=assigned_to,
            ready=ready,
            limit=limit or None,
            offset=offset,
        )
        whole = not limit and not offset  # every row is here: no count needed
        total = (
            len(rows)
            if whole
            else sorties.count(
                fleet, mission=mission_id, status=status, assigned_to=assigned_to, ready=ready
            )
        )
    more = max(0, total - offset - len(rows))
    return ok({"sorties": rows, "total": total, "more": more})


@router.get("/sorties/{sortie_id}", tags=["sorties"])
def sortie_show(request: Request, who: Reader, sortie_id: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(sorties.show(fleet, sortie_id))


_ACTS = {
    s.SortieStart: "sortie_started",
    s.SortieResume: "sortie_resumed",
    s.SortieProgress: "sortie_progress",
    s.SortieBlock: "sortie_blocked",
    s.SortieComplete: "sortie_completed",
    s.SortieCancel: "sortie_cancelled",
}


@router.patch("/sorties/{sortie_id}", tags=["sorties"])
@writes
def sortie_change(
    request: Request, who: Writer, sortie_id: Ref, body: Annotated[s.SortiePatch, Body()]
) -> JSON:
    """A transition as `action` says: claim, start, resume, progress, block, complete, cancel,
    unclaim; or update. Refused as the CLI refuses it (409 for a state that does not allow it)."""
    with state(request).fleet(who) as fleet:
        extra: dict[str, Any] = {}
        if isinstance(body, s.SortieClaim):
            claimed = sorties.claim(
                fleet,
                sortie_id,
                reserve=body.reserve,
                ttl=body.ttl,
                allow_broad=body.allow_broad,
            )
            sid = claimed["sortie_id"]
            held = sorties.claimed(fleet, sid, who.pilot)  # what the claim reserved, as MCP says
            now = clock.now_ms()
            extra = {"claim": claimed, "reservations": [r.to_json(now) for r in held]}
        elif isinstance(body, s.SortieUnclaim):
            sid = sorties.unclaim(fleet, sortie_id, reason=body.reason)["sortie_id"]
        elif isinstance(body, s.SortieUpdate):
            changes = body.model_dump(exclude={"action", "allow_broad"})
            sid = sorties.update(fleet, sortie_id, changes, allow_broad=body.allow_broad)
        else:
            data = body.model_dump(exclude={"action"})
            sid = sorties.act(fleet, sortie_id, _ACTS[type(body)], data)
        return ok(sorties.show(fleet, sid) | extra)


# -- work orders -------------------------------------------------------------------------------


@router.post("/workorders", status_code=201, tags=["work orders"])
@writes
def workorder_create(request: Request, who: Writer, body: s.WorkOrderCreate) -> JSON:
    with state(request).fleet(who) as fleet:
        wid = workorders.create(
            fleet,
            body.title,
            sortie=body.sortie_id,
            description=body.description,
            priority=body.priority,
        )
        return ok(workorders.show(fleet, wid), 201)


@router.get("/workorders", tags=["work orders"])
def workorder_list(
    request: Request,
    who: Reader,
    sortie_id: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    with state(request).fleet(who) as fleet:
        rows = workorders.listing(fleet, sortie=sortie_id, status=status)
    return page("workorders", rows, limit, offset)


@router.get("/workorders/{workorder_id}", tags=["work orders"])
def workorder_show(request: Request, who: Reader, workorder_id: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(workorders.show(fleet, workorder_id))


@router.patch("/workorders/{workorder_id}", tags=["work orders"])
@writes
def workorder_change(
    request: Request, who: Writer, workorder_id: Ref, body: Annotated[s.WorkOrderPatch, Body()]
) -> JSON:
    with state(request).fleet(who) as fleet:
        if isinstance(body, s.WorkOrderAssign):
            wid = workorders.assign(
                fleet, workorder_id, body.callsign, allow_unknown=body.allow_unknown
            )
        elif isinstance(body, s.WorkOrderStatus):
            wid = workorders.set_status(fleet, workorder_id, body.status, note=body.note)
        else:
            wid = workorders.complete(fleet, workorder_id, summary=body.summary)
        return ok(workorders.show(fleet, wid))


# -- reservations ------------------------------------------------------------------------------


def _reservations(found: list[Any]) -> JSON:
    now = clock.now_ms()
    return ok({"reservations": [r.to_json(now) for r in found]})


@router.post("/reservations", status_code=201, tags=["reservations"])
@writes
def reserve(request: Request, who: Writer, body: s.Reserve) -> JSON:
    """Reserve every pattern (paths from the top) or none: 409 names the holders."""
    with state(request).fleet(who) as fleet:
        granted = fleet.reserve(
            body.patterns,
            shared=body.shared,
            ttl=body.ttl,
            reason=body.reason,
            allow_broad=body.allow_broad,
        )
        unmatched = rsv.unmatched(fleet, list(dict.fromkeys(r.pattern for r in granted)))
    now = clock.now_ms()
    out = {"reservations": [r.to_json(now) for r in granted], "unmatched": unmatched}
    return ok(out, 201)


@router.get("/reservations", tags=["reservations"])
def reservation_list(
    request: Request,
    who: Reader,
    holder: Annotated[str | None, Query(max_length=256)] = None,
    include_expired: bool = False,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    """Active reservations with the time left; one that lost a clash names its winner
    (`lost_to`)."""
    with state(request).fleet(who) as fleet:
        found = fleet.reservations(holder=holder, include_expired=include_expired)
    now = clock.now_ms()
    return page("reservations", [r.to_json(now) for r in found], limit, offset)


@router.post("/reservations/renew", tags=["reservations"])
@writes
def renew(request: Request, who: Writer, body: s.Renew) -> JSON:
    with state(request).fleet(who) as fleet:
        return _reservations(fleet.renew(body.patterns, ttl=body.ttl))


@router.post("/reservations/release", tags=["reservations"])
@writes
def release(request: Request, who: Writer, body: s.Release) -> JSON:
    """Release the named patterns of yours, or all of them (`all`)."""
    if body.all and body.patterns:
        raise ApiError(
            400,
            "usage",
            "release takes patterns or all, one of them: the patterns would be ignored",
            'send {"all": true} alone, or the patterns alone',
        )
    with state(request).fleet(who) as fleet:
        return ok({"released": fleet.release(body.patterns, everything=body.all)})


@router.post("/reservations/{reservation_id}/force-release", tags=["reservations"])
@writes
def force_release(
    request: Request, who: Writer, reservation_id: Ref, body: s.ForceRelease | None = None
) -> JSON:
    """Release another pilot's reservation under the force rule (its holder has gone silent)."""
    with state(request).fleet(who) as fleet:
        done = rsv.force_release(fleet, reservation_id, reason=body.reason if body else None)
    return ok({"released": [done.reservation_id]})


@router.post("/reservations/check", tags=["reservations"])
def check(request: Request, who: Reader, body: s.Check) -> JSON:
    """Which of `paths` are blocked for the token's pilot (for anybody, without one)."""
    with state(request).fleet(who) as fleet:
        blocks = fleet.check(body.paths)
    now = clock.now_ms()
    found = [{"path": b.path, "held_by": [r.to_json(now) for r in b.reservations]} for b in blocks]
    return ok({"blocked": found})


# -- messages ----------------------------------------------------------------------------------


@router.post("/messages", status_code=201, tags=["messages"])
@writes
def message_send(request: Request, who: Writer, body: s.MessageSend) -> JSON:
    with state(request).fleet(who) as fleet:
        mid = squawk.send(
            fleet,
            body.to,
            body.subject,
            body.body,
            cc=body.cc,
            thread=body.thread_id,
            reply_to=body.reply_to,
            importance=body.importance,
            ack_required=body.ack_required,
            allow_unknown=body.allow_unknown,
        )
        return ok(squawk.message(fleet, mid), 201)


@router.get("/messages/inbox", tags=["messages"])
def inbox(
    request: Request,
    who: Reader,
    unread: bool = False,
    include_archived: bool = False,
    limit: Limit = LIST_LIMIT,
) -> JSON:
    """The token's pilot's messages, newest first; `more`: how many older ones."""
    with state(request).fleet(who) as fleet:
        me(who)
        rows = squawk.inbox(
            fleet, unread=unread, include_archived=include_archived, limit=limit or None
        )
        total = squawk.inbox_count(fleet, unread=unread, include_archived=include_archived)
    return ok({"messages": rows, "total": total, "more": max(0, total - len(rows))})


@router.get("/messages/search", tags=["messages"])
def message_search(
    request: Request,
    who: Reader,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    fts: bool = False,
    limit: Limit = LIST_LIMIT,
) -> JSON:
    """Full-text search over subjects and bodies, best first."""
    with state(request).fleet(who) as fleet:
        rows = squawk.search(fleet, q, limit=limit or None, fts=fts)
        total = squawk.search_count(fleet, q, fts=fts) if len(rows) == limit else len(rows)
    return ok({"messages": rows, "total": total, "more": total - len(rows)})


@router.get("/messages/{message_id}", tags=["messages"])
def message_show(request: Request, who: Reader, message_id: Ref) -> JSON:
    """A message, without marking it read."""
    with state(request).fleet(who) as fleet:
        return ok(squawk.message(fleet, squawk.resolve(fleet, message_id)))


@router.get("/messages/{message_id}/thread", tags=["messages"])
def message_thread(
    request: Request, who: Reader, message_id: Ref, limit: Limit = LIST_LIMIT, offset: Offset = 0
) -> JSON:
    """The whole thread of a message (or of a thread id), oldest first."""
    with state(request).fleet(who) as fleet:
        return page("messages", squawk.thread(fleet, message_id), limit, offset)


@router.post("/messages/{message_id}/read", tags=["messages"], dependencies=NO_BODY)
@writes
def message_read(request: Request, who: Writer, message_id: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(squawk.mark(fleet, message_id, "message_read"))


@router.post("/messages/{message_id}/ack", tags=["messages"])
@writes
def message_ack(request: Request, who: Writer, message_id: Ref, body: s.Ack | None = None) -> JSON:
    """Acknowledge a message addressed to the token's pilot."""
    with state(request).fleet(who) as fleet:
        data = {"notes": body.notes if body else None}
        return ok(squawk.mark(fleet, message_id, "message_acknowledged", data))


@router.post("/messages/{message_id}/archive", tags=["messages"], dependencies=NO_BODY)
@writes
def message_archive(request: Request, who: Writer, message_id: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(squawk.mark(fleet, message_id, "message_archived"))


# -- locks -------------------------------------------------------------------------------------


@router.get("/locks", tags=["locks"])
def lock_list(request: Request, who: Reader) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok({"locks": locks.listing(fleet), "more": 0})


@router.get("/locks/{key}", tags=["locks"])
def lock_status(request: Request, who: Reader, key: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(locks.status(fleet, key))


@router.post("/locks/{key}", tags=["locks"])
@writes
def lock_acquire(
    request: Request, who: Writer, key: Ref, body: s.LockAcquire | None = None
) -> JSON:
    """Take a named lock (no waiting: 409 when another pilot holds it)."""
    with state(request).fleet(who) as fleet:
        return ok(locks.acquire(fleet, key, ttl=body.ttl if body else None))


@router.delete("/locks/{key}", tags=["locks"], dependencies=NO_BODY)
@writes
def lock_release(request: Request, who: Writer, key: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(locks.release(fleet, key))


# -- checkpoints -------------------------------------------------------------------------------


@router.post("/checkpoints", status_code=201, tags=["checkpoints"])
@writes
def checkpoint_create(request: Request, who: Writer, body: s.CheckpointCreate) -> JSON:
    with state(request).fleet(who) as fleet:
        cid = checkpoints.create(
            fleet,
            mission=body.mission_id,
            sortie=body.sortie_id,
            trigger=body.trigger,
            progress=body.progress,
            summary=body.summary,
            next_steps=body.next_steps,
            blockers=body.blockers,
            files=body.files,
        )
        return ok(checkpoints.show(fleet, cid), 201)


@router.get("/checkpoints", tags=["checkpoints"])
def checkpoint_list(
    request: Request,
    who: Reader,
    mission_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> JSON:
    with state(request).fleet(who) as fleet:
        return page("checkpoints", checkpoints.listing(fleet, mission=mission_id), limit, offset)


@router.get("/checkpoints/{checkpoint_id}", tags=["checkpoints"])
def checkpoint_show(request: Request, who: Reader, checkpoint_id: Ref) -> JSON:
    with state(request).fleet(who) as fleet:
        return ok(checkpoints.show(fleet, checkpoint_id))


@router.post("/checkpoints/{checkpoint_id}/restore", tags=["checkpoints"], dependencies=NO_BODY)
@writes
def checkpoint_restore(request: Request, who: Writer, checkpoint_id: Ref) -> JSON:
    """The recovery brief (`markdown` too) and what was re-acquired, lost or kept, as
    `fleetgit resume --checkpoint ID`."""
    with state(request).fleet(who) as fleet:
        brief = recovery.resume(fleet, checkpoint=checkpoint_id)
    return ok(brief | {"markdown": recovery.markdown(brief)})


# -- events ------------------------------------------------------------------------------------


@router.get("/events", tags=["events"])
def event_list(
    request: Request,
    who: Reader,
    type: Annotated[list[str] | None, Query(max_length=50)] = None,
    stream: Annotated[str | None, Query(max_length=512)] = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[int | None, Query(ge=0, le=INT_MAX, description="positions after")] = None,
    limit: EventLimit = LIST_LIMIT,
    reverse: bool = False,
) -> JSON:
    """Events in total order (`reverse`: newest first); after a position (`after`), by position:
    page on with the last event's `pos`."""
    sse.only(type, None)  # an unknown type would list nothing, as if there were no such events
    flt = EventFilter(
        types=tuple(type or ()),
        stream=stream,
        actor=actor,
        after_pos=after,
        limit=limit + 1,
        reverse=reverse,
    )
    with state(request).fleet(who) as fleet:
        found = fleet.events(flt)
    shown = found[:limit]
    more = len(found) - len(shown)  # at least 1 when the page is full and more follow
    return ok({"events": [e.to_json() for e in shown], "more": more})


@router.get("/events/{event_id}", tags=["events"])
def event_show(request: Request, who: Reader, event_id: Ref) -> JSON:
    """One event by id, or a unique prefix of it."""
    with state(request).fleet(who) as fleet:
        return ok(fleet.show(event_id).to_json())


@router.get("/streams/{stream:path}/events", tags=["events"])
def stream_events(
    request: Request,
    who: Reader,
    stream: str,
    from_seq: Annotated[int | None, Query(ge=1, le=INT_MAX)] = None,
    to_seq: Annotated[int | None, Query(ge=1, le=INT_MAX)] = None,
) -> JSON:
    """The events of one stream (`sortie/srt-...`) by version."""
    with state(request).fleet(who) as fleet:
        found = fleet.stream(stream, from_seq=from_seq, to_seq=to_seq)
    return ok({"events": [e.to_json() for e in found], "more": 0})


# -- the dashboard's reads ---------------------------------------------------------------------


@router.get("/me", tags=["dashboard"])
def whoami(request: Request, who: Reader) -> JSON:
    """Who this request acts as, and whether a token is needed to read."""
    return ok({"pilot": who.pilot, "scope": who.scope, "loopback": state(request).loopback})


@router.get("/board", tags=["dashboard"])
def board(
    request: Request,
    who: Reader,
    events: Annotated[int, Query(ge=0, le=1000, description="The newest N events.")] = 100,
) -> JSON:
    """Everything the dashboard shows, in one read: pilots, missions with their sorties,
    reservations (lost ones included), the newest messages with their acknowledgements,
    the newest `events` events (the dashboard asks for them once, then follows the event
    stream: `events=0`), and the charts' figures."""
    with state(request).fleet(who) as fleet:
        now = clock.now_ms()
        out = {
            "now": clock.iso_ms(now),
            "last_pos": fleet.index.max_pos(),
            "pilots": pilots.listing(fleet),
            "missions": missions.listing(fleet),
            "sorties": sorties.listing(fleet),
            "sortie_statuses": list(sortie_fold.STATUSES),
            "mission_statuses": list(mission_fold.STATUSES),
            "reservations": [r.to_json(now) for r in fleet.reservations()],
            "messages": stats.messages(fleet, 100),
            "events": [e.to_json() for e in fleet.events(EventFilter(limit=events, reverse=True))]
            if events
            else [],
            "charts": stats.charts(fleet, now, state(request).hours),
        }
    return ok(out)
