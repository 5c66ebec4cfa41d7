"""`emit` of a domain event refuses what the commands refuse: one rule, two users.

Each event of a batch is checked against its stream as the index folded it (and the batch's
earlier events), through the `refuses` of the stream kind's fold: what the fold would ignore,
emit refuses, in one line naming the rule and the command that writes such events. The rules
that cross streams are checked here: a release of another pilot's reservation under the force
rule (`reservations.may_force`), a grant that the clash rule would void (index.clashes: it
overlaps a reservation that counts now), a sortie created, moved, claimed or started in a mission
that is over, a mission ended while sorties of it are open, and a claim that takes a sortie over
from a pilot still active (the folds judge that one, and a claim or start in a mission that is
over, at the event's point in total order: index.claims).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleetgit.domain.fold import Ev
from fleetgit.domain.withdrawals.events import WITHDRAWN
from fleetgit.guard.patterns import can_name_file
from fleetgit.index.clashes import Holding, Live
from fleetgit.ledger import clock
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet
    from fleetgit.guard.rules import Reservation

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
    WITHDRAWN: "fleetgit --as ACTOR withdraw ID",
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
    "clash": "{pattern} overlaps {other_pattern} of {other} held by {other_holder}, which counts"
    " now: the clash rule would void it",
    "active_assignee": "its assignee {previous} is active: a claim takes a sortie over only from"
    " a pilot that is no longer active",
    "open_sorties": "sorties of it are still open ({sorties}): cancel them in the same batch",
    "no_target": "it names no event of this stream",
    "not_actor": "only the event's own actor ({target_actor}) withdraws it",
    "tombstone": "a withdrawal cannot be withdrawn",
}


def _refuse(spec: EventSpec, why: str, facts: dict[str, Any]) -> ValidationError:
    rule = RULES.get(why, why).format_map(_Blank(facts))
    command = COMMANDS.get(spec.type)
    hint = f"use the command that checks it: {command}" if command else None
    return ValidationError(f"{spec.type} on {spec.stream} refused: {rule}", hint=hint)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def check(
    fleet: Fleet,
    specs: Sequence[EventSpec],
    datas: list[dict[str, Any]],
    seqs: list[int],
    actor: str | None,
) -> None:
    """Refuse the batch (ValidationError, ConflictError) if an event in it breaks a domain
    rule, given what the index holds and the batch's earlier events (a clash with a live
    reservation: ReservationConflict, as `reserve` says it). Call inside the append's
    write transaction, after catch-up; `seqs`: the events' versions in their streams (a stream
    at 0 before the batch has no state to read).

    A stream's state is what the index stored for it (a resumable fold's rows are its whole
    state), with the batch's earlier events folded onto it; a reservation's stream (short, and
    not resumable) is folded from its events."""
    from fleetgit.index import forcing, streams
    from fleetgit.index.projections import BY_KIND

    for spec, data in zip(specs, datas, strict=True):
        if spec.type == WITHDRAWN:
            _check_withdrawal(fleet, spec, data, spec.actor or actor)
    owned = [BY_KIND.get(spec.stream.partition("/")[0]) for spec in specs]
    later = Counter(spec.stream for spec, module in zip(specs, owned, strict=True) if module)
    fresh = {spec.stream for spec, seq in zip(specs, seqs, strict=True) if seq == 1}
    states: dict[str, Any] = {stream: {} for stream in fresh}
    states.update(
        _states(
            fleet, [s for s in later if s not in fresh and BY_KIND[s.partition("/")[0]].RESUMES]
        )
    )
    history: dict[str, list[Ev]] = {s: [] for s in fresh}
    grants = _Grants(fleet)
    hlc = clock.make_hlc(clock.now_ms())
    for i, (spec, data, module) in enumerate(zip(specs, datas, owned, strict=True)):
        if module is None:
            continue
        if spec.type in _CREATES - _ACROSS and later[spec.stream] == 1 and spec.stream in fresh:
            continue  # the one event of a new stream: nothing it could break
        hlc = clock.tick(hlc, clock.now_ms())
        ev = Ev(spec.type, data, hlc, fleet.writer.id, 0, spec.actor or actor, -1 - i)
        if module.RESUMES:
            folded = states[spec.stream]
        else:
            if spec.stream not in history:
                history[spec.stream] = streams.stream_events(fleet.index.conn, spec.stream)
            rid = spec.stream.partition("/")[2]
            accepted = forcing.accepted(fleet.index.conn, [rid]).get(rid, ())
            folded = module.fold(history[spec.stream], accepted)
        why = module.refuses(folded, ev)
        if why is None and spec.type not in _ACROSS:
            grants.applied(ev)
            _keep(spec.stream, ev, module, folded, later, states, history)
            continue  # the usual case, kept cheap: a batch of 5,000 creations
        facts = _facts(folded, module.TABLES[0], ev)
        if why == "forced":
            from fleetgit.domain.reservations.commands import may_force

            if may_force(fleet, facts["holder"]):
                why = None
            else:
                seconds = forcing.limit_of(fleet.config) // 1000
                facts["limit"] = f"{seconds}s"
        why = why or _across(fleet, spec, data, ev, specs, datas, i, facts, grants)
        if why is not None:
            raise _refuse(spec, why, facts)
        grants.applied(ev)
        _keep(spec.stream, ev, module, folded, later, states, history)


def _check_withdrawal(
    fleet: Fleet, spec: EventSpec, data: dict[str, Any], actor: str | None
) -> None:
    """A tombstone as `fleetgit withdraw` writes it: of an event of its own stream, by that
    event's actor, never of a tombstone (the folds ignore any other; emit refuses it)."""
    target = fleet.index.conn.execute(
        "SELECT type, actor FROM events WHERE id = ? AND stream = ?",
        (data.get("event_id"), spec.stream),
    ).fetchone()
    if target is None:
        raise _refuse(spec, "no_target", {})
    if target[0] == WITHDRAWN:
        raise _refuse(spec, "tombstone", {})
    if target[1] is None or target[1] != actor:
        raise _refuse(spec, "not_actor", {"target_actor": target[1] or "none"})


def _keep(
    stream: str,
    ev: Ev,
    module: Any,
    folded: Any,
    later: Counter[str],
    states: dict[str, Any],
    history: dict[str, list[Ev]],
) -> None:
    """Fold an event that passed into its stream's state, if a later event of the batch is on
    the same stream."""
    later[stream] -= 1
    if not later[stream]:
        return
    if module.RESUMES:
        states[stream] = module.fold([ev], folded or None)
    else:
        history[stream].append(ev)


def _states(fleet: Fleet, streams: list[str]) -> dict[str, Any]:
    """What the index stored for each of `streams` (resumable kinds), in chunks."""
    from fleetgit.index.projections import _stored

    out: dict[str, Any] = {}
    for start in range(0, len(streams), 500):
        out.update(_stored(fleet.index.conn, streams[start : start + 500]))
    return out


def _facts(folded: dict[str, list[dict[str, Any]]], table: str, ev: Ev) -> dict[str, Any]:
    """What the messages name: the stream's row in its main `table`, and the event's actor."""
    rows = folded.get(table) or [{}]
    return {**rows[0], "actor": ev.actor or "nobody"}


# the types `_across` checks, and those of them that look at the batch's earlier events
_IN_MISSION = ("sortie_created", "sortie_updated", "sortie_assigned", "sortie_started")
_ACROSS = frozenset({"file_reserved", "mission_completed", "mission_cancelled", *_IN_MISSION})
_BATCHED = ("mission_completed", "mission_cancelled")
# the types that create a stream with no rule beyond "once" (a grant has its holder and clashes)
_CREATES = frozenset(
    {
        "mission_created",
        "sortie_created",
        "work_order_created",
        "message_sent",
        "checkpoint_created",
        "pilot_registered",
        "pilot_spawned",
    }
)


def _named(data: dict[str, Any]) -> list[tuple[str, bool]]:
    """A grant's patterns, each with whether it names a file, as the reservation fold reads
    them (`file_patterns`)."""
    files = data.get("file_patterns")
    named = set(files) if isinstance(files, list) else set()
    return [(p, p in named and can_name_file(p)) for p in data["patterns"]]


class _Grants:
    """The reservations that count now, as the clash rule sees them (index.clashes): read once
    per batch when it grants something, then kept up with the batch's grants and releases."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.held: Live | None = None

    def live(self) -> Live:
        if self.held is None:
            from fleetgit.guard import rules

            now = clock.now_ms()
            found = rules.load(self.fleet.index.conn, live_only=True, now_ms=now)
            by_id: dict[str, list[Reservation]] = {}
            for r in found:
                if r.lost_to is None:
                    by_id.setdefault(r.reservation_id, []).append(r)
            self.held = Live()
            for rid, rs in by_id.items():
                first = rs[0]
                patterns = [(r.pattern, r.is_file) for r in rs]
                self.held.add(Holding(rid, first.granted, first.holder, first.exclusive,
                                      patterns, first.expires_ms))  # fmt: skip
        return self.held

    def applied(self, ev: Ev) -> None:
        """An event of the batch passed: a grant counts from now on, a release no longer."""
        if self.held is None or ev.type not in ("file_reserved", "file_released"):
            return
        rid = ev.data["reservation_id"]
        if ev.type == "file_released":
            if rid in self.held.by_id:
                self.held.remove(self.held.by_id[rid])
            return
        d = ev.data
        until = ev.ms + d["ttl_seconds"] * 1000
        self.held.add(Holding(rid, ev.order, d["holder"], bool(d["exclusive"]), _named(d), until))


def _across(
    fleet: Fleet,
    spec: EventSpec,
    data: dict[str, Any],
    ev: Ev,
    specs: Sequence[EventSpec],
    datas: list[dict[str, Any]],
    i: int,
    facts: dict[str, Any],
    grants: _Grants,
) -> str | None:
    """The rules that cross streams, as the commands apply them (`specs[:i]`: the batch's
    events before this one)."""
    before = list(zip(specs[:i], datas[:i], strict=True)) if spec.type in _BATCHED else []
    if spec.type == "file_reserved":
        exclusive = bool(data["exclusive"])
        until = ev.ms + data["ttl_seconds"] * 1000
        grant = Holding(data["reservation_id"], ev.order, data["holder"], exclusive,
                        _named(data), until)  # fmt: skip
        won = grants.live().winner(grant, ev.ms)
        if won is not None:
            winner, mine, theirs = won
            facts.update(pattern=mine, other=winner.rid, other_holder=winner.holder,
                         other_pattern=theirs)  # fmt: skip
            return "clash"
    mission = facts.get("mission_id")
    if spec.type == "sortie_created":
        mission = data.get("mission_id")
    elif spec.type == "sortie_updated":
        changes = data.get("changes")
        mission = changes.get("mission_id") if isinstance(changes, dict) else None
    if spec.type in _IN_MISSION and isinstance(mission, str):
        from fleetgit.domain.missions.fold import CLOSED

        row = fleet.index.conn.execute(
            "SELECT status FROM missions WHERE mission_id = ?", (mission,)
        ).fetchone()
        if row and row[0] in CLOSED:
            facts.update(mission=mission, status=row[0])
            return "mission_over"
    previous = data.get("previous_assignee")
    if spec.type == "sortie_assigned" and isinstance(previous, str) and previous != ev.actor:
        from fleetgit.domain.pilots import commands as pilots

        if pilots.active_since(fleet, previous) is not None:
            facts["previous"] = previous
            return "active_assignee"  # a takeover only of a pilot no longer active
    if spec.type in ("mission_completed", "mission_cancelled"):
        mid = spec.stream.partition("/")[2]
        ending = {
            d.get("sortie_id")
            for s, d in before
            if s.type in ("sortie_cancelled", "sortie_completed")
        }
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
