"""The MCP tools, without the MCP SDK: each a thin call of the Python API the CLI uses, with its
input schema, output schema and a one-line summary. A `Session` is one pilot: it opens the ledger
once, registers the pilot if it is new, beats its heartbeat while it works, and runs every tool as
that pilot (no tool takes an identity).

Arguments are checked here, before anything runs: a malformed call is refused naming the
argument (`percent`, `files[2]`) and what is wrong with it. Refusals are the domain's own
FleetErrors, with the CLI's message and hint.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from fleetgit.domain.catalogue import TYPES as EVENT_TYPES
from fleetgit.domain.checkpoints import commands as checkpoints
from fleetgit.domain.checkpoints import resume as recovery
from fleetgit.domain.checkpoints.events import TRIGGERS
from fleetgit.domain.cursors import commands as cursors
from fleetgit.domain.locks import commands as locks
from fleetgit.domain.missions import commands as missions
from fleetgit.domain.missions.events import PRIORITIES, RESULTS
from fleetgit.domain.overview import gather
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.reservations import commands as rsv
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.sorties.fold import STATUSES as SORTIE_STATUSES
from fleetgit.domain.squawk import commands as squawk
from fleetgit.domain.squawk.events import IMPORTANCE
from fleetgit.domain.workorders import commands as workorders
from fleetgit.fleet import Fleet
from fleetgit.index.reads import INT_MAX, EventFilter
from fleetgit.ledger import clock
from fleetgit.ledger.durations import parse_duration
from fleetgit.ledger.errors import NotFoundError, ValidationError

LIST_DEFAULT = 20  # a listing's default length: an agent's context is small
OVERVIEW_DEFAULT = 5  # per section: a glance, with the counts; the listing tools page on


class Param(NamedTuple):
    name: str
    kind: str  # string, integer, boolean, strings (a list of strings)
    description: str
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.kind == "strings":
            items: dict[str, Any] = {"type": "string"}
            if self.enum:
                items["enum"] = list(self.enum)
            out.update(type="array", items=items)
        else:
            out["type"] = self.kind
            if self.enum:
                out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return out


Result = tuple[dict[str, Any], str]  # the structured result and its one-line summary
Run = Callable[["Session", dict[str, Any]], Result]


class Tool(NamedTuple):
    name: str
    title: str
    description: str
    params: tuple[Param, ...]
    output: dict[str, Any]  # the JSON Schema of the structured result
    run: Run
    writes: bool

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }


# -- checking arguments ------------------------------------------------------------------------

_KINDS = {"string": "a string", "integer": "an integer", "boolean": "true or false"}


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad(tool: Tool, path: str, what: str, hint: str | None = None) -> ValidationError:
    example = tool.description.rsplit("Example: ", 1)
    return ValidationError(
        f"{tool.name}: argument {path}: {what}",
        hint=hint or (f"for example {example[1].strip()}" if len(example) == 2 else None),
    )


def _not_one_of(tool: Tool, path: str, value: str, choices: tuple[str, ...]) -> ValidationError:
    close = difflib.get_close_matches(value, choices, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    if len(choices) > 8:  # the event types: the closest, not all of them
        return _bad(tool, path, f"{value!r} is not one of its values", guess + "see the schema")
    return _bad(
        tool,
        path,
        f"{value!r} is not one of {', '.join(choices)}",
        f"{guess}one of: {', '.join(choices)}",
    )


def _check_one(tool: Tool, p: Param, value: Any) -> Any:
    if p.kind == "strings":
        if isinstance(value, str):
            value = [value]  # one string for a list of one: what a model means
        if not isinstance(value, list):
            raise _bad(tool, p.name, f"expected a list of strings, got {_kind_of(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _bad(tool, f"{p.name}[{i}]", f"expected a string, got {_kind_of(item)}")
            if p.enum and item not in p.enum:
                raise _not_one_of(tool, f"{p.name}[{i}]", item, p.enum)
        return value
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[p.kind]
    if not ok:
        raise _bad(tool, p.name, f"expected {_KINDS[p.kind]}, got {_kind_of(value)}")
    if p.enum and value not in p.enum:
        raise _not_one_of(tool, p.name, value, p.enum)
    if p.kind == "integer":
        low = 0 if p.minimum is None else p.minimum
        high = INT_MAX if p.maximum is None else p.maximum
        if not low <= value <= high:
            raise _bad(tool, p.name, f"{value} is out of range: expected {low} to {high}")
    return value


def check_arguments(tool: Tool, raw: Any) -> dict[str, Any]:
    """The arguments of a call as the tool's function takes them (defaults filled in), or a
    ValidationError naming the first argument that is wrong. A null is an argument left out."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError(
            f"{tool.name}: the arguments must be an object, got {_kind_of(raw)}",
            hint=f"arguments: {', '.join(p.name for p in tool.params) or 'none'}",
        )
    known = {p.name: p for p in tool.params}
    for name in raw:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            raise _bad(
                tool,
                str(name),
                "unknown argument",
                (f"did you mean {close[0]}? " if close else "")
                + f"{tool.name} takes: {', '.join(known) or 'no arguments'}",
            )
    out: dict[str, Any] = {}
    for p in tool.params:
        value = raw.get(p.name)
        if value is None:
            if p.required:
                raise _bad(tool, p.name, "required, and missing")
            out[p.name] = p.default
        else:
            out[p.name] = _check_one(tool, p, value)
    return out


# -- the session -------------------------------------------------------------------------------

# Write tools that read nothing of the index before their append: every decision is taken in the
# append's plan (`Fleet.transact`), after the append's own catch-up under the writer lock. A
# catch-up before them would scan the sources a second time per call and, with other processes
# appending, queue once more on the writer lock (the 8-client benchmark: 1.4 lock waits a write).
# Stale signature verdicts still rebuild first, as any catch-up does (`Index.catch_up`).
CAUGHT_UP_BY_APPEND = frozenset(
    {
        "claim_sortie",
        "start_sortie",
        "report_progress",
        "block_sortie",
        "resume_sortie",
        "complete_sortie",
        "reserve",
        "renew",
        "release",
        "send_message",
        "read_message",
        "ack_message",
    }
)


class Session:
    """One pilot's connection: the ledger opened once, as `callsign`, for every tool call."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.callsign = fleet.me()
        self._register()
        self._alive_ms = clock.now_ms()

    @classmethod
    def open(cls, directory: str | None = None, callsign: str | None = None) -> Session:
        """The pilot `callsign` (None: FLEET_CALLSIGN, else git config fleet.callsign, as the
        CLI resolves it) in the repository at `directory`; registered now if it is new."""
        fleet = Fleet.open(directory, actor=callsign)
        try:
            return cls(fleet)
        except BaseException:
            fleet.close()
            raise

    def close(self) -> None:
        self.fleet.close()

    def _register(self) -> None:
        """Register the pilot if it is new (or left the fleet)."""
        row = self.fleet.index.conn.execute(
            "SELECT deregistered FROM pilots WHERE callsign = ?", (self.callsign,)
        ).fetchone()
        if row is None or row[0]:
            pilots.register(self.fleet, self.callsign, program="mcp")

    def heartbeat_due(self) -> bool:
        window = self.fleet.config.pilot_active_window_seconds * 1000
        return clock.now_ms() - self._alive_ms >= min(60_000, window // 4)

    def call(self, name: str, raw: Any) -> Result:
        """Run the tool `name` as this pilot: its structured result and one-line summary, or a
        FleetError (a refusal, or arguments that do not fit) with a message and a hint."""
        tool = TOOLS.get(name)
        if tool is None:
            close = difflib.get_close_matches(name, TOOLS, n=1)
            raise NotFoundError(
                f"no tool {name!r}",
                hint=(f"did you mean {close[0]}? " if close else "") + "tools/list lists them",
            )
        args = check_arguments(tool, raw)
        if name not in CAUGHT_UP_BY_APPEND or self.fleet.index.trust_stale():
            self.fleet.catch_up()  # what other processes and clones wrote since
        if not tool.writes and self.heartbeat_due():
            self.beat()
        result = tool.run(self, args)
        if tool.writes:  # a write is a sign of life of its own
            self._alive_ms = clock.now_ms()
        return result

    def beat(self) -> None:
        """Say the pilot is alive; a pilot that left the fleet (another process deregistered
        it) beats no more, and its reads still answer."""
        with contextlib.suppress(ValidationError):
            pilots.heartbeat(self.fleet)
        self._alive_ms = clock.now_ms()


# -- output schemas ----------------------------------------------------------------------------

Schema = dict[str, Any]
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
OPT_STR: Schema = {"type": ["string", "null"]}
STRS: Schema = {"type": "array", "items": STR}


def obj(**props: dict[str, Any]) -> dict[str, Any]:
    """An object with these properties, all required; other properties are allowed."""
    return {"type": "object", "properties": props, "required": list(props)}


def _described(value: Schema) -> str:
    kind = value.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if "enum" in value:
        kind += f": {' | '.join(value['enum'])}"
    return kind


def rows(item: Schema) -> Schema:
    """An array of `item` objects, their fields required and their types described in words,
    not as a schema per field: the SDK's client validates every result against the output
    schema, and per-field schemas cost it ~5 us per field of every row (0.7 ms of a 20-row
    page, a quarter of a read's budget). What a row holds is said all the same."""
    fields = ", ".join(f"{k} ({_described(v)})" for k, v in item["properties"].items())
    return {
        "type": "array",
        "items": {"type": "object", "required": item["required"], "description": fields},
    }


def listing(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return obj(**{key: rows(item), "more": INT})


SORTIE = obj(
    sortie_id=STR,
    title=STR,
    status={"type": "string", "enum": list(SORTIE_STATUSES)},
    priority={"type": "string", "enum": list(PRIORITIES)},
    assignee=OPT_STR,
    percent=INT,
    mission_id=OPT_STR,
)
MISSION = obj(mission_id=STR, title=STR, status=STR, priority=STR, progress=INT)
WORK_ORDER = obj(work_order_id=STR, sortie_id=STR, title=STR, status=STR)
RESERVATION = obj(
    id=STR,
    holder=STR,
    pattern=STR,
    mode=STR,
    expires_at=STR,
    seconds_left=INT,
    lost_to={"type": ["object", "null"]},
)
MESSAGE = obj(message_id=STR, sender=STR, subject=STR, thread_id=STR)
LOCK = obj(lock_key=STR, held=BOOL, holder=OPT_STR, expires_at=OPT_STR, seconds_left=INT)
CHECKPOINT = obj(checkpoint_id=STR, pilot=STR, trigger=STR, reservations=STRS, locks=STRS)
EVENT = obj(id=STR, type=STR, stream=STR, seq=INT, actor=OPT_STR, ts=STR, data={"type": "object"})
OVERVIEW = obj(
    me=obj(callsign=OPT_STR, registered=BOOL, active=BOOL),
    pilots=rows(obj(callsign=STR, status=STR)),
    claimed=rows(SORTIE),
    reservations=rows(RESERVATION),
    reserved=rows(RESERVATION),
    ready=rows(SORTIE),
    unread=rows(MESSAGE),
    more={"type": "object", "additionalProperties": INT},
)
BRIEF = obj(
    pilot=STR,
    checkpoint=CHECKPOINT,
    reservations=obj(reacquired=STRS, kept=STRS, lost={"type": "array"}),
    unread_messages=rows(MESSAGE),
    unread_total=INT,
    markdown=STR,
)


# -- the tools ---------------------------------------------------------------------------------

SORTIE_ID = Param(
    "sortie", "string", "The sortie's id (a unique prefix will do), e.g. srt-4q2x.", True
)
LIMIT = Param("limit", "integer", "Show at most N (0: all).", default=LIST_DEFAULT)
TTL = Param("ttl", "string", "How long, e.g. 30m, 2h (default: the fleet's).")


def _page(rows: Sequence[Any], limit: int) -> tuple[list[Any], int]:
    shown = list(rows if not limit else rows[:limit])
    return shown, len(rows) - len(shown)


def _ids(rows: Sequence[dict[str, Any]], key: str, most: int = 5) -> str:
    names = [str(r[key]) for r in rows[:most]]
    return ", ".join(names) + (", ..." if len(rows) > most else "")


# The overview's rows, cut to what an agent acts on (the ids name the rest: show a sortie, read a
# message). The SDK's client parses and checks every byte of a result, and the full rows made
# the overview 11 kB; a message's body goes, and a null that its row's schema does not require.
_OVERVIEW_ROWS = {
    "pilots": ("callsign", "status", "current_task", "last_seen"),
    "claimed": tuple(SORTIE["properties"]),
    "ready": tuple(SORTIE["properties"]),
    "unread": (
        "message_id",
        "sender",
        "subject",
        "thread_id",
        "importance",
        "ack_required",
        "sent_at",
    ),
    "reservations": (*RESERVATION["properties"], "reason"),
    "reserved": (*RESERVATION["properties"], "reason"),
}


def overview(s: Session, a: dict[str, Any]) -> Result:
    """The overview tool's result; the overview resource reads the same."""
    out = gather(s.fleet, a["limit"], others=True)
    required = {"callsign", "status", *SORTIE["required"], *MESSAGE["required"]}
    required.update(RESERVATION["required"])
    for section, keep in _OVERVIEW_ROWS.items():
        out[section] = [
            {k: row[k] for k in keep if row.get(k) is not None or k in required}
            for row in out[section]
        ]
    more = out["more"]
    counts = {k: len(out[k]) + more[k] for k in ("pilots", "claimed", "ready", "unread")}
    return out, (
        f"{s.callsign}: {counts['pilots']} active pilot(s), {counts['claimed']} claimed"
        f" sortie(s), {len(out['reservations']) + more['reservations']} reservation(s) of mine,"
        f" {len(out['reserved']) + more['reserved']} of others,"
        f" {counts['ready']} ready, {counts['unread']} unread message(s)"
    )


def _ready(s: Session, a: dict[str, Any]) -> Result:
    rows, more = sorties.page(s.fleet, a["limit"], ready=True)
    summary = f"{len(rows) + more} ready sortie(s)" + (
        f": {_ids(rows, 'sortie_id')}" if rows else ""
    )
    return {"sorties": rows, "more": more}, summary


def _claim(s: Session, a: dict[str, Any]) -> Result:
    out = sorties.claim(s.fleet, a["sortie"], reserve=a["reserve"], ttl=a["ttl"])
    sid = out["sortie_id"]
    mine = sorties.claimed(s.fleet, sid, s.callsign)
    now = clock.now_ms()
    out["reservations"] = [r.to_json(now) for r in mine]
    summary = f"sortie {sid} is yours ({out['status']})"
    if mine:
        summary += f", reserved {', '.join(r.pattern for r in mine)}"
    if out["taken_from"]:
        summary += f", taken over from {out['taken_from']}"
    return out, summary + f"; next: start_sortie {sid}"


def _act(event_type: str, data: Callable[[dict[str, Any]], dict[str, Any]]) -> Run:
    def run(s: Session, a: dict[str, Any]) -> Result:
        sid = sorties.act(s.fleet, a["sortie"], event_type, data(a))
        out = sorties.show(s.fleet, sid)
        return out, f"sortie {sid}: {out['status']} ({out['percent']}%)"

    return run


def _create_mission(s: Session, a: dict[str, Any]) -> Result:
    mid = missions.create(s.fleet, a["title"], description=a["description"], priority=a["priority"])
    return missions.show(s.fleet, mid), f"created mission {mid}"


def _create_sortie(s: Session, a: dict[str, Any]) -> Result:
    sid = sorties.create(
        s.fleet,
        a["title"],
        mission=a["mission"],
        description=a["description"],
        priority=a["priority"],
        files=a["files"] or [],
        depends_on=a["depends_on"] or [],
    )
    return sorties.show(s.fleet, sid), f"created sortie {sid}"


def _create_work_order(s: Session, a: dict[str, Any]) -> Result:
    wid = workorders.create(
        s.fleet,
        a["title"],
        sortie=a["sortie"],
        description=a["description"],
        priority=a["priority"],
    )
    return workorders.show(s.fleet, wid), f"created work order {wid}"


def _reserve(s: Session, a: dict[str, Any]) -> Result:
    granted = s.fleet.reserve(a["patterns"], shared=a["shared"], ttl=a["ttl"], reason=a["reason"])
    unmatched = rsv.unmatched(s.fleet, list(dict.fromkeys(r.pattern for r in granted)))
    now = clock.now_ms()
    out = {"reservations": [r.to_json(now) for r in granted], "unmatched": unmatched}
    summary = f"reserved {', '.join(r.pattern for r in granted)}"
    if unmatched:
        summary += f" (matching nothing yet: {', '.join(unmatched)})"
    return out, summary


def _renew(s: Session, a: dict[str, Any]) -> Result:
    renewed = s.fleet.renew(a["patterns"] or [], ttl=a["ttl"])
    now = clock.now_ms()
    return {"reservations": [r.to_json(now) for r in renewed]}, (
        f"renewed {len(renewed)} reservation(s)"
    )


def _release(s: Session, a: dict[str, Any]) -> Result:
    if not a["patterns"] and not a["all"]:
        raise ValidationError(
            "release: say what to release: patterns, or all: true",
            hint='release {"patterns": ["src/app.py"]} or release {"all": true}',
        )
    if a["patterns"] and a["all"]:
        raise ValidationError(
            "release: patterns and all: true both given: one of them would be ignored",
            hint='release {"all": true} alone, or only the patterns',
        )
    released = s.fleet.release(a["patterns"] or [], everything=a["all"])
    return {"released": released}, f"released {len(released)} reservation(s)"


def _check(s: Session, a: dict[str, Any]) -> Result:  # a query: being blocked is no error
    blocks = s.fleet.check(a["paths"])
    now = clock.now_ms()
    found = [{"path": b.path, "held_by": [r.to_json(now) for r in b.reservations]} for b in blocks]
    if not found:
        return {"blocked": [], "free": True}, f"free: none of {len(a['paths'])} path(s) is held"
    return {"blocked": found, "free": False}, "blocked: " + "; ".join(
        f"{b.path} by {', '.join(r.holder for r in b.reservations)}" for b in blocks
    )


def _send(s: Session, a: dict[str, Any]) -> Result:
    mid = squawk.send(
        s.fleet,
        a["to"],
        a["subject"],
        a["body"] or "",
        cc=a["cc"] or [],
        thread=a["thread"],
        reply_to=a["reply_to"],
        importance=a["importance"],
        ack_required=a["ack_required"],
    )
    out = squawk.message(s.fleet, mid)
    to = [r["callsign"] for r in out["recipients"] if r["kind"] == "to"]
    return out, f"sent {mid} to {', '.join(to) or ', '.join(a['to'])}"


def _inbox(s: Session, a: dict[str, Any]) -> Result:
    rows = squawk.inbox(s.fleet, unread=a["unread"], limit=a["limit"] or None)
    total = squawk.inbox_count(s.fleet, unread=a["unread"])
    summary = f"{total} {'unread ' if a['unread'] else ''}message(s)" + (
        ": " + "; ".join(f"{m['message_id']} from {m['sender']}: {m['subject']}" for m in rows[:3])
        if rows
        else ""
    )
    return {"messages": rows, "more": total - len(rows)}, summary


def _read(s: Session, a: dict[str, Any]) -> Result:
    out = squawk.mark(s.fleet, a["message"], "message_read")
    return out, f"{out['message_id']} from {out['sender']}: {out['subject']}"


def _ack(s: Session, a: dict[str, Any]) -> Result:
    out = squawk.mark(s.fleet, a["message"], "message_acknowledged", {"notes": a["notes"]})
    return out, f"acknowledged {out['message_id']}"


def _thread(s: Session, a: dict[str, Any]) -> Result:
    rows, more = _page(squawk.thread(s.fleet, a["message"]), a["limit"])
    return {"messages": rows, "more": more}, f"{len(rows) + more} message(s) in the thread"


def _search(s: Session, a: dict[str, Any]) -> Result:
    rows = squawk.search(s.fleet, a["query"], limit=a["limit"] or None)
    total = squawk.search_count(s.fleet, a["query"]) if len(rows) == a["limit"] else len(rows)
    return {"messages": rows, "more": total - len(rows)}, f"{total} message(s) match"


MAX_WAIT = 60  # seconds: a call that waits holds its server (one call at a time)


def _acquire(s: Session, a: dict[str, Any]) -> Result:
    if a["wait"] is not None and parse_duration(a["wait"]) > MAX_WAIT:
        raise ValidationError(
            f"acquire_lock: argument wait: {a['wait']} is over {MAX_WAIT}s",
            hint="wait at most 60s, then call again (the server answers nothing while it waits)",
        )
    out = locks.acquire(s.fleet, a["key"], ttl=a["ttl"], wait=a["wait"])
    return out, f"lock {out['lock_key']} is yours for {out['seconds_left']}s"


def _unlock(s: Session, a: dict[str, Any]) -> Result:
    out = locks.release(s.fleet, a["key"])
    return out, f"released lock {out['lock_key']}"


def _checkpoint(s: Session, a: dict[str, Any]) -> Result:
    cid = checkpoints.create(
        s.fleet,
        mission=a["mission"],
        sortie=a["sortie"],
        trigger=a["trigger"],
        progress=a["progress"],
        summary=a["summary"],
        next_steps=a["next_steps"] or [],
        blockers=a["blockers"] or [],
        files=a["files"] or [],
    )
    out = checkpoints.show(s.fleet, cid)
    return out, (
        f"checkpoint {cid}: {len(out['reservations'])} reservation(s), {len(out['locks'])}"
        " lock(s) recorded"
    )


def _resume(s: Session, a: dict[str, Any]) -> Result:
    brief = recovery.resume(s.fleet, checkpoint=a["checkpoint"], latest=a["checkpoint"] is None)
    brief["markdown"] = recovery.markdown(brief)
    res = brief["reservations"]
    return brief, (
        f"resumed {brief['checkpoint']['checkpoint_id']}: re-acquired {len(res['reacquired'])},"
        f" kept {len(res['kept'])}, lost {len(res['lost'])}; {brief['unread_total']} unread"
    )


def cursor_name(callsign: str) -> str:
    return f"mcp.{callsign}"


def _events(s: Session, a: dict[str, Any]) -> Result:
    name = cursor_name(s.callsign)
    flt = EventFilter(types=tuple(a["types"] or ()), limit=a["limit"] or None)
    found = cursors.consume(s.fleet, name, flt, advance=True)
    state = cursors.show(s.fleet, name)
    out = {"events": [e.to_json() for e in found], "cursor": state["pos"], "more": state["pending"]}
    return out, f"{len(found)} new event(s); {state['pending']} more after position {state['pos']}"


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "overview",
            "The fleet at a glance",
            "Who is active, which sorties are claimed (or blocked) and by whom, my reservations"
            " and the others' (reserved), the ready sorties and my unread messages. Start here."
            " Example: overview {}",
            (
                Param(
                    "limit", "integer", "At most N per section (0: all).", default=OVERVIEW_DEFAULT
                ),
            ),
            OVERVIEW,
            overview,
            False,
        ),
        Tool(
            "ready_sorties",
            "Sorties ready to take",
            "Open sorties whose dependencies are all completed, by priority: take one with"
            " claim_sortie. Example: ready_sorties {}",
            (LIMIT,),
            listing("sorties", SORTIE),
            _ready,
            False,
        ),
        Tool(
            "claim_sortie",
            "Claim a sortie",
            "Make a sortie yours and (by default) reserve its files in the same step, so other"
            " pilots' commits to them are refused. Refused while another active pilot holds it"
            ' (the holder is named). Example: claim_sortie {"sortie": "srt-4q2x"}',
            (
                SORTIE_ID,
                Param("reserve", "boolean", "Also reserve its files.", default=True),
                TTL,
            ),
            SORTIE,
            _claim,
            True,
        ),
        Tool(
            "start_sortie",
            "Start a sortie",
            'Start your assigned sortie. Example: start_sortie {"sortie": "srt-4q2x"}',
            (SORTIE_ID,),
            SORTIE,
            _act("sortie_started", lambda a: {}),
            True,
        ),
        Tool(
            "report_progress",
            "Report progress",
            "Report progress on your sortie (0-100%). Example: report_progress"
            ' {"sortie": "srt-4q2x", "percent": 60, "note": "lexer done"}',
            (
                SORTIE_ID,
                Param("percent", "integer", "How far, 0 to 100.", True, minimum=0, maximum=100),
                Param("note", "string", "What was done."),
            ),
            SORTIE,
            _act("sortie_progress", lambda a: {"percent": a["percent"], "note": a["note"]}),
            True,
        ),
        Tool(
            "block_sortie",
            "Mark a sortie blocked",
            "Mark your sortie blocked, saying why. Example: block_sortie"
            ' {"sortie": "srt-4q2x", "reason": "waiting for the grammar"}',
            (SORTIE_ID, Param("reason", "string", "Why it is blocked.", True)),
            SORTIE,
            _act("sortie_blocked", lambda a: {"reason": a["reason"]}),
            True,
        ),
        Tool(
            "resume_sortie",
            "Resume a blocked sortie",
            'Resume your blocked sortie. Example: resume_sortie {"sortie": "srt-4q2x"}',
            (SORTIE_ID,),
            SORTIE,
            _act("sortie_resumed", lambda a: {}),
            True,
        ),
        Tool(
            "complete_sortie",
            "Complete a sortie",
            "Complete your sortie; what claim_sortie reserved for it is released. Example:"
            ' complete_sortie {"sortie": "srt-4q2x", "summary": "lexer merged"}',
            (
                SORTIE_ID,
                Param("result", "string", "How it went.", enum=RESULTS, default="success"),
                Param("summary", "string", "What was done."),
            ),
            SORTIE,
            _act("sortie_completed", lambda a: {"result": a["result"], "summary": a["summary"]}),
            True,
        ),
        Tool(
            "create_mission",
            "Create a mission",
            'Create a mission (a goal made of sorties). Example: create_mission {"title": "Ship'
            ' the parser", "priority": "high"}',
            (
                Param("title", "string", "What the mission achieves.", True),
                Param("description", "string", "More detail."),
                Param("priority", "string", "Priority.", enum=PRIORITIES, default="medium"),
            ),
            MISSION,
            _create_mission,
            True,
        ),
        Tool(
            "create_sortie",
            "Create a sortie",
            "Create a sortie (one pilot's piece of work), with the files it will touch and what"
            ' must complete first. Example: create_sortie {"title": "Lexer", "mission":'
            ' "msn-7k3m", "files": ["src/lexer.py"]}',
            (
                Param("title", "string", "What the sortie does.", True),
                Param("mission", "string", "The mission's id."),
                Param("description", "string", "More detail."),
                Param("priority", "string", "Priority.", enum=PRIORITIES, default="medium"),
                Param("files", "strings", "Paths or globs it will touch, from the repo's top."),
                Param("depends_on", "strings", "Sortie ids that must complete first."),
            ),
            SORTIE,
            _create_sortie,
            True,
        ),
        Tool(
            "create_work_order",
            "Create a work order",
            'Create a small task under a sortie. Example: create_work_order {"title": "Write'
            ' lexer tests", "sortie": "srt-4q2x"}',
            (
                Param("title", "string", "The task.", True),
                SORTIE_ID,
                Param("description", "string", "More detail."),
                Param("priority", "string", "Priority.", enum=PRIORITIES, default="medium"),
            ),
            WORK_ORDER,
            _create_work_order,
            True,
        ),
        Tool(
            "reserve",
            "Reserve files",
            "Reserve paths or globs (from the repo's top): all are granted, or none, and a clash"
            " names the holder. Exclusive unless shared. Example: reserve"
            ' {"patterns": ["src/parser/**"], "ttl": "2h"}',
            (
                Param("patterns", "strings", "Paths or globs, e.g. src/app.py, src/**.", True),
                Param("shared", "boolean", "Others may hold shared ones too.", default=False),
                TTL,
                Param("reason", "string", "Why."),
            ),
            obj(reservations=rows(RESERVATION), unmatched=STRS),
            _reserve,
            True,
        ),
        Tool(
            "renew",
            "Renew reservations",
            "Extend your reservations (all, or those named) to ttl from now. Example: renew"
            ' {"ttl": "1h"}',
            (Param("patterns", "strings", "Which (default: all of yours)."), TTL),
            obj(reservations=rows(RESERVATION)),
            _renew,
            True,
        ),
        Tool(
            "release",
            "Release reservations",
            'Release your reservations: the patterns named, or all. Example: release {"all": true}',
            (
                Param("patterns", "strings", "Which to release."),
                Param("all", "boolean", "Release all of yours.", default=False),
            ),
            obj(released=STRS),
            _release,
            True,
        ),
        Tool(
            "check_paths",
            "Check paths",
            "Which of these paths another pilot holds (a commit of them would be refused), and"
            ' by whom. Example: check_paths {"paths": ["src/app.py"]}',
            (Param("paths", "strings", "Paths from the repo's top.", True),),
            obj(
                blocked={"type": "array", "items": obj(path=STR, held_by={"type": "array"})},
                free=BOOL,
            ),
            _check,
            False,
        ),
        Tool(
            "send_message",
            "Send a message",
            "Send a message to pilots (e.g. to ask for files they hold). Example: send_message"
            ' {"to": ["goose"], "subject": "free src/app.py?", "ack_required": true}',
            (
                Param("to", "strings", "Recipients' callsigns.", True),
                Param("subject", "string", "One line.", True),
                Param("body", "string", "The text."),
                Param("cc", "strings", "Copied callsigns."),
                Param("thread", "string", "Post in this thread (or any message's)."),
                Param("reply_to", "string", "Answer this message, in its thread."),
                Param("importance", "string", "Importance.", enum=IMPORTANCE, default="normal"),
                Param("ack_required", "boolean", "Ask for an acknowledgement.", default=False),
            ),
            MESSAGE,
            _send,
            True,
        ),
        Tool(
            "inbox",
            "My messages",
            'Your messages, newest first. Example: inbox {"unread": true}',
            (Param("unread", "boolean", "Only unread ones.", default=False), LIMIT),
            listing("messages", MESSAGE),
            _inbox,
            False,
        ),
        Tool(
            "read_message",
            "Read a message",
            'Show a message and mark it read. Example: read_message {"message": "msg-3k9d"}',
            (Param("message", "string", "The message's id.", True),),
            MESSAGE,
            _read,
            True,
        ),
        Tool(
            "ack_message",
            "Acknowledge a message",
            "Acknowledge a message addressed to you. Example: ack_message"
            ' {"message": "msg-3k9d", "notes": "on it"}',
            (
                Param("message", "string", "The message's id.", True),
                Param("notes", "string", "A short answer."),
            ),
            MESSAGE,
            _ack,
            True,
        ),
        Tool(
            "thread",
            "A whole thread",
            'A whole thread, oldest first. Example: thread {"message": "msg-3k9d"}',
            (Param("message", "string", "Any message of the thread, or its id.", True), LIMIT),
            listing("messages", MESSAGE),
            _thread,
            False,
        ),
        Tool(
            "search_messages",
            "Search messages",
            "Full-text search over subjects and bodies, best first. Example: search_messages"
            ' {"query": "lexer srt-4q2x"}',
            (Param("query", "string", 'Words to find; "quotes" keep a phrase.', True), LIMIT),
            listing("messages", MESSAGE),
            _search,
            False,
        ),
        Tool(
            "acquire_lock",
            "Take a named lock",
            "Take a named lock (e.g. db-migrations); refused while another pilot holds it,"
            ' unless it frees within wait. Example: acquire_lock {"key": "db-migrations",'
            ' "ttl": "10m"}',
            (
                Param("key", "string", "The lock's name.", True),
                Param("ttl", "string", "How long it is held (default 5m)."),
                Param(
                    "wait", "string", "Retry until this long has passed, e.g. 30s (60s at most)."
                ),
            ),
            LOCK,
            _acquire,
            True,
        ),
        Tool(
            "release_lock",
            "Release a lock",
            'Release a lock you hold. Example: release_lock {"key": "db-migrations"}',
            (Param("key", "string", "The lock's name.", True),),
            LOCK,
            _unlock,
            True,
        ),
        Tool(
            "checkpoint",
            "Save a checkpoint",
            "Save where you are, so that you (or a fresh session) can resume: your reservations,"
            ' locks and unread messages are recorded too. Example: checkpoint {"sortie":'
            ' "srt-4q2x", "progress": 60, "summary": "tokens done", "next_steps": ["keywords"]}',
            (
                Param("summary", "string", "Where you are."),
                Param("progress", "integer", "0 to 100.", minimum=0, maximum=100),
                Param("next_steps", "strings", "What comes next."),
                Param("blockers", "strings", "What is in the way."),
                Param("files", "strings", "Files you modified."),
                Param("sortie", "string", "The sortie's id."),
                Param("mission", "string", "The mission's id."),
                Param("trigger", "string", "Why now.", enum=TRIGGERS, default="manual"),
            ),
            CHECKPOINT,
            _checkpoint,
            True,
        ),
        Tool(
            "resume",
            "Recovery brief",
            "After losing your context: the recovery brief from your newest checkpoint (or the"
            " one named), re-acquiring the reservations you held where they are still free."
            " Example: resume {}",
            (Param("checkpoint", "string", "A checkpoint id (default: your newest)."),),
            BRIEF,
            _resume,
            True,
        ),
        Tool(
            "events_since",
            "New events",
            "The ledger's events you have not seen through this tool yet (your cursor moves past"
            ' them). Example: events_since {"types": ["message_sent"]}',
            (
                Param("types", "strings", "Only these event types.", enum=tuple(EVENT_TYPES)),
                Param("limit", "integer", "At most N (0: all).", default=50),
            ),
            obj(events=rows(EVENT), cursor=INT, more=INT),
            _events,
            False,  # it moves a cursor of this clone, not the ledger
        ),
    )
}
