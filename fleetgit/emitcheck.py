"""`emit` of a domain event refuses what the commands refuse: one rule, two users.

Each event of a batch is checked against its stream as the index folded it (and the batch's
earlier events), through the `refuses` of the stream kind's fold: what the fold would ignore,
emit refuses, in one line naming the rule and the command that writes such events. The rules
that cross streams are checked here with the commands' own functions: a release of another
pilot's reservation under the force rule (`reservations.may_force`), a grant that would clash
with a live reservation (the clash rule would void it), a claim or start of a sortie in a mission
that is over, a mission completed while sorties are open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from fleetgit import catalogue, clock
from fleetgit.errors import ValidationError
from fleetgit.folds import Ev

if TYPE_CHECKING:
    from fleetgit.fleet import EventSpec, Fleet

# the command that writes each domain event: where the hint sends the user
COMMANDS = {
    "pilot_registered": "fleetgit pilot register CALLSIGN",
    "pilot_spawned": "fleetgit pilot register CALLSIGN",
    "pilot_active": "fleetgit --as CALLSIGN pilot heartbeat",
    "pilot_deregistered": "fleetgit --as CALLSIGN pilot deregister",
    "pilot_terminated": "fleetgit --as CALLSIGN pilot deregister",
    "mission_created": "fleetgit mission create TITLE",
    "mission_started": "fleetgit mission start ID",
    "mission_updated": "fleetgit mission update ID",
    "mission_completed": "fleetgit mission complete ID",
    "mission_cancelled": "fleetgit mission cancel ID",
    "sortie_created": "fleetgit sortie create TITLE",
    "sortie_assigned": "fleetgit sortie claim ID",
    "sortie_started": "fleetgit sortie start ID",
    "sortie_progress": "fleetgit sortie progress ID --percent N",
    "sortie_blocked": "fleetgit sortie block ID --reason TEXT",
    "sortie_resumed": "fleetgit sortie resume ID",
    "sortie_updated": "fleetgit sortie update ID",
    "sortie_completed": "fleetgit sortie complete ID",
    "sortie_cancelled": "fleetgit sortie cancel ID",
    "work_order_created": "fleetgit workorder create",
    "work_order_assigned": "fleetgit workorder assign ID",
    "work_order_status_changed": "fleetgit workorder status ID",
    "work_order_completed": "fleetgit workorder complete ID",
    "message_sent": "fleetgit squawk send",
    "message_read": "fleetgit --as RECIPIENT squawk read ID",
    "message_acknowledged": "fleetgit --as RECIPIENT squawk ack ID",
    "message_archived": "fleetgit --as RECIPIENT squawk archive ID",
    "file_reserved": "fleetgit --as HOLDER reserve PATTERN",
    "file_renewed": "fleetgit --as HOLDER renew PATTERN",
    "file_released": "fleetgit --as HOLDER release PATTERN, or fleetgit release --force ID",
    "lock_acquired": "fleetgit --as HOLDER lock acquire KEY",
    "lock_released": "fleetgit --as HOLDER lock release KEY",
    "checkpoint_created": "fleetgit checkpoint create",
}

RULES = {
    "exists": "it exists already: it is created once",
    "unknown": "there is nothing to change: it was never created",
    "not_holder": "only its holder takes, renews or releases it, in its own name",
    "forced": "its holder {holder} is active: another pilot releases it only once the holder"
    " has been silent for {limit} or has deregistered",
    "released": "it is released already",
    "not_self": "a pilot acts in its own name only (the actor is {actor})",
    "not_recipient": "only a recipient of the message reads, acknowledges or archives it",
    "deregistered": "the pilot has left the fleet (deregistered)",
    "state": "it is {status}: not allowed from that state",
    "not_assignee": "only its assignee ({assignee}) records its work",
    "stale": "a claim names the current assignee ({assignee}) as previous_assignee",
    "held": "the lock is held by {holder}",
    "not_held": "the lock is not held",
    "closed": "it is over (completed or cancelled)",
    "invalid": "the value is not one it takes",
    "unchanged": "it would change nothing",
    "unassigned": "that status needs an assignee first",
    "mission_over": "its mission {mission} is {status}",
    "open_sorties": "sorties of it are still open ({sorties}): cancel them in the same batch",
}


def _stream_events(fleet: Fleet, stream: str) -> list[Ev]:
    rows = fleet.index.conn.execute(
        "SELECT type, v, data, hlc, writer, wseq, actor, pos FROM events WHERE stream = ?"
        " ORDER BY hlc, writer, wseq",
        (stream,),
    )
    out = []
    for etype, v, data, hlc, writer, wseq, actor, pos in rows:
        _, payload = catalogue.upcast(etype, v, orjson.loads(data))
        out.append(Ev(etype, payload, hlc, writer, wseq, actor, pos))
    return out


def _refuse(spec: EventSpec, why: str, facts: dict[str, Any]) -> ValidationError:
    rule = RULES.get(why, why).format_map(_Blank(facts))
    command = COMMANDS.get(spec.type)
    hint = f"use the command that checks it: {command}" if command else None
    return ValidationError(f"{spec.type} on {spec.stream} refused: {rule}", hint=hint)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def check(
    fleet: Fleet, specs: Sequence[EventSpec], datas: list[dict[str, Any]], actor: str | None
) -> None:
    """Refuse the batch (ValidationError, ConflictError) if an event in it breaks a domain
    rule, given what the index holds and the batch's earlier events (a clash with a live
    reservation: ReservationConflict, as `reserve` says it). Call inside the append's
    write transaction, after catch-up."""
    from fleetgit.index import forcing
    from fleetgit.index.projections import BY_KIND

    streams: dict[str, list[Ev]] = {}
    hlc = clock.make_hlc(clock.now_ms())
    for i, (spec, data) in enumerate(zip(specs, datas, strict=True)):
        module = BY_KIND.get(spec.stream.partition("/")[0])
        if module is None:
            continue
        events = streams.get(spec.stream)
        if events is None:
            events = streams[spec.stream] = _stream_events(fleet, spec.stream)
        hlc = clock.tick(max([hlc, *(e.hlc for e in events[-1:])]), clock.now_ms())
        ev = Ev(spec.type, data, hlc, fleet.writer.id, 0, spec.actor or actor, -1 - i)
        rid = spec.stream.partition("/")[2]
        if module.KIND == "reservation":
            folded = module.fold(events, forcing.accepted(fleet.index.conn, [rid]).get(rid, ()))
        else:
            folded = module.fold(events)
        why = module.refuses(folded, ev)
        facts = _facts(folded, module.TABLES[0], ev)
        if why == "forced":
            from fleetgit.reservations import may_force

            if may_force(fleet, facts["holder"]):
                why = None
            else:
                seconds = forcing.limit_of(fleet.config) // 1000
                facts["limit"] = f"{seconds}s"
        why = why or _across(fleet, spec, data, specs[:i], datas[:i], facts)
        if why is not None:
            raise _refuse(spec, why, facts)
        events.append(ev)


def _facts(folded: dict[str, list[dict[str, Any]]], table: str, ev: Ev) -> dict[str, Any]:
    """What the messages name: the stream's row in its main `table`, and the event's actor."""
    rows = folded.get(table) or [{}]
    return {**rows[0], "actor": ev.actor or "nobody"}


def _across(
    fleet: Fleet,
    spec: EventSpec,
    data: dict[str, Any],
    before: Sequence[EventSpec],
    before_data: list[dict[str, Any]],
    facts: dict[str, Any],
) -> str | None:
    """The rules that cross streams, as the commands apply them."""
    if spec.type == "file_reserved":
        from fleetgit import reservations, rules

        live = rules.load(fleet.index.conn, live_only=True, now_ms=clock.now_ms())
        freeing = {d.get("reservation_id") for s, d in zip(before, before_data, strict=True)
                   if s.type == "file_released"}  # fmt: skip
        standing = [r for r in live if r.lost_to is None and r.reservation_id not in freeing]
        found = rules.conflicts_for(
            data["patterns"], bool(data["exclusive"]), data["holder"], standing, fleet.ignorecase
        )
        if found:
            raise reservations.ReservationConflict(found)
    if spec.type in ("sortie_assigned", "sortie_started") and facts.get("mission_id"):
        from fleetgit.folds.missions import CLOSED

        row = fleet.index.conn.execute(
            "SELECT status FROM missions WHERE mission_id = ?", (facts["mission_id"],)
        ).fetchone()
        if row and row[0] in CLOSED:
            facts.update(mission=facts["mission_id"], status=row[0])
            return "mission_over"
    if spec.type in ("mission_completed", "mission_cancelled"):
        mid = spec.stream.partition("/")[2]
        ending = {d.get("sortie_id") for s, d in zip(before, before_data, strict=True)
                  if s.type in ("sortie_cancelled", "sortie_completed")}  # fmt: skip
        open_ = [
            sid
            for (sid,) in fleet.index.conn.execute(
                "SELECT sortie_id FROM sorties WHERE mission_id = ?"
                " AND status NOT IN ('completed', 'cancelled') ORDER BY created_hlc",
                (mid,),
            )
            if sid not in ending
        ]
        if open_:
            facts["sorties"] = ", ".join(open_)
            return "open_sorties"
    return None
