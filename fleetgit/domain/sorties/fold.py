"""Sorties: open -> assigned -> in_progress <-> blocked -> completed | cancelled, with
dependencies. A claim is a compare-and-swap on the assignee, so of two claims made in two clones
the first in total order wins, the same in every clone; the work itself (start, progress, block,
resume, complete) counts only from the assignee of that moment, so the loser's events change
nothing. A claim may also take a started or blocked sortie over; it goes back to assigned, to the
new pilot.

Two rules cross streams, so index.claims judges them and passes what it found (`Judged`): a
takeover (a claim naming another pilot as previous_assignee) counts only if that pilot was no
longer active at the claim's point in total order (`sortie_takeovers` lists them, whatever the
state, for it to judge), and a claim or start counts only if the sortie's mission had not ended
before it (`sortie_missions` records, for each mission, the last claim or start that counted and
the first that did not, so the sortie is folded again when the end moves across one of them).
Without `Judged` (emit, verify) neither is applied."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

from fleetgit.domain.fold import Ev, Key, Rows, changes, stored_row
from fleetgit.domain.missions.fold import priority_rank

KIND = "sortie"
KEY = "sortie_id"
TABLES = ("sorties", "sortie_deps", "sortie_takeovers", "sortie_missions")
RESUMES = True
# a listing's order (status, then priority, then creation) as an index: a page of the ready or
# claimed sorties reads its rows in order and stops, instead of sorting every open sortie
_RANK = priority_rank("priority")
DDL = f"""
CREATE TABLE IF NOT EXISTS sorties (
    sortie_id TEXT PRIMARY KEY,
    mission_id TEXT,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT NOT NULL,
    files TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    percent INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    blocked_reason TEXT,
    result TEXT,
    summary TEXT,
    created_hlc INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    last_pos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sorties_mission ON sorties (mission_id);
CREATE INDEX IF NOT EXISTS sorties_status ON sorties (status, {_RANK}, created_hlc);
-- set_*: the total-order key of the event that set these dependencies (create or update), so a
-- cycle that two clones closed between them is broken the same way everywhere (`cycle_breaks`)
CREATE TABLE IF NOT EXISTS sortie_deps (
    sortie_id TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    set_hlc INTEGER NOT NULL,
    set_writer TEXT NOT NULL,
    set_wseq INTEGER NOT NULL,
    PRIMARY KEY (sortie_id, depends_on)
);
CREATE INDEX IF NOT EXISTS sortie_deps_on ON sortie_deps (depends_on);
-- Claims naming another pilot as previous_assignee (takeovers): each counts only when
-- index.claims judged that pilot no longer active at the claim's point of total order
CREATE TABLE IF NOT EXISTS sortie_takeovers (
    sortie_id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    wseq INTEGER NOT NULL,
    previous TEXT NOT NULL,
    PRIMARY KEY (sortie_id, hlc, writer, wseq)
);
CREATE INDEX IF NOT EXISTS sortie_takeovers_previous ON sortie_takeovers (previous, hlc);
-- The missions the sortie was in at a claim or start: the last such event that counted (kept_*)
-- and the first ignored because the mission had ended (ignored_*). index.claims folds the sortie
-- again when the mission's end no longer falls between them (it moved: another clone's arrived)
CREATE TABLE IF NOT EXISTS sortie_missions (
    sortie_id TEXT NOT NULL,
    mission_id TEXT NOT NULL,
    kept_hlc INTEGER,
    kept_writer TEXT,
    kept_wseq INTEGER,
    ignored_hlc INTEGER,
    ignored_writer TEXT,
    ignored_wseq INTEGER,
    PRIMARY KEY (sortie_id, mission_id)
);
CREATE INDEX IF NOT EXISTS sortie_missions_mission ON sortie_missions (mission_id);
"""

LIVE = ("open", "assigned", "in_progress", "blocked")
CLOSED = ("completed", "cancelled")
STATUSES = (*LIVE, *CLOSED)
# a dependency in one of these states no longer holds anything up (a cancelled one never ends)
SETTLED = CLOSED
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "sortie_assigned": (LIVE, "assigned"),  # from a started one: a takeover, back to assigned
    "sortie_started": (("assigned",), "in_progress"),
    "sortie_progress": (("in_progress",), None),
    "sortie_blocked": (("in_progress",), "blocked"),
    "sortie_resumed": (("blocked",), "in_progress"),
    "sortie_updated": (LIVE, None),
    "sortie_completed": (("in_progress",), "completed"),
    "sortie_cancelled": (LIVE, "cancelled"),
    "sortie_unclaimed": (("assigned", "in_progress", "blocked"), "open"),  # handed back
}
# what ends a block: every transition out of `blocked` (a resume, a takeover, a hand-back, a
# cancel); the history's "time blocked" figures count from a block to the first of these
UNBLOCKING = tuple(
    t
    for t, (before, after) in TRANSITIONS.items()
    if "blocked" in before and after not in (None, "blocked")
)
# who may record what: the assignee does the work; anyone may claim, cancel or update
ASSIGNEE_ONLY = frozenset(
    {
        "sortie_started",
        "sortie_progress",
        "sortie_blocked",
        "sortie_resumed",
        "sortie_completed",
        "sortie_unclaimed",
    }
)


class Judged(NamedTuple):
    """What index.claims judged across streams, for one sortie: the takeovers that count, and
    each mission's end in total order (None while it has not ended)."""

    taken: Collection[Key]
    end_of: Callable[[str], Key | None]


def is_takeover(e: Ev) -> bool:
    """A claim naming another pilot than its writer as the previous assignee."""
    previous = e.data.get("previous_assignee")
    return e.type == "sortie_assigned" and isinstance(previous, str) and previous != e.actor


def fold(events: list[Ev], start: Rows | None = None, judged: Judged | None = None) -> Rows:
    import orjson

    row = stored_row(start, "sorties")
    takeovers = [
        {k: r[k] for k in ("hlc", "writer", "wseq", "previous")}
        for r in (start.get("sortie_takeovers", []) if start else [])
    ]
    # mission -> the claims and starts in it that counted, and that did not (`_crossed`)
    missions = {r["mission_id"]: dict(r) for r in start.get("sortie_missions", [])} if start else {}
    if row is not None:
        row["files"] = orjson.loads(row["files"])
    stored_deps = start.get("sortie_deps", []) if start else []
    deps = [r["depends_on"] for r in stored_deps]
    # the order of the event that set `deps` (when there are none, nothing shows it)
    deps_set = (
        (stored_deps[0]["set_hlc"], stored_deps[0]["set_writer"], stored_deps[0]["set_wseq"])
        if stored_deps
        else (0, "", 0)
    )
    for e in events:
        d = e.data
        if e.type == "sortie_created":
            if row is None:
                row = {
                    "sortie_id": d["sortie_id"],
                    "mission_id": d.get("mission_id"),
                    "title": d["title"],
                    "description": d.get("description"),
                    "priority": d.get("priority") or "medium",
                    "files": list(d.get("files") or []),
                    "status": "open",
                    "assignee": None,
                    "percent": 0,
                    "note": None,
                    "blocked_reason": None,
                    "result": None,
                    "summary": None,
                    "created_hlc": e.hlc,
                    "updated_ms": e.ms,
                    "last_pos": e.pos,
                }
                deps = list(dict.fromkeys(d.get("depends_on") or []))
                deps_set = e.order
            continue
        update = changes(e, keep_null=True) if e.type == "sortie_updated" else {}
        if row is None or e.type not in TRANSITIONS:
            continue
        if e.type == "sortie_assigned" and is_takeover(e):  # listed whatever its state: no
            previous = d["previous_assignee"]  # verdict depends on another one
            takeovers.append({"hlc": e.hlc, "writer": e.writer, "wseq": e.wseq,
                              "previous": previous})  # fmt: skip
        if not _apply(row, e, update, judged, missions):
            continue
        if "depends_on" in update:
            deps = list(dict.fromkeys(update["depends_on"] or []))
            deps_set = e.order
        row["updated_ms"], row["last_pos"] = e.ms, e.pos
    if row is None:
        return {}
    row["files"] = orjson.dumps(row["files"]).decode()
    sid = row["sortie_id"]
    hlc, writer, wseq = deps_set
    return {
        "sorties": [row],
        "sortie_takeovers": [{"sortie_id": sid, **t} for t in takeovers],
        "sortie_missions": list(missions.values()),
        "sortie_deps": [
            {
                "sortie_id": sid,
                "depends_on": x,
                "set_hlc": hlc,
                "set_writer": writer,
                "set_wseq": wseq,
            }
            for x in deps
        ],
    }


def refusal(
    row: dict[str, Any] | None, event_type: str, data: dict[str, Any], actor: str | None
) -> str | None:
    """Why `event_type` by `actor` cannot apply to the sortie `row` (None: it applies). The one
    rule for emit, which refuses it, and the fold, which ignores it (a race lost in another
    clone, or an event no command writes), so every clone folds the same state:

    - `exists`: a sortie is created once; `unknown`: none to change;
    - `state`: not from its state (`TRANSITIONS`);
    - `not_assignee`: the work is recorded by its assignee of the moment only;
    - `not_self`: a claim names the pilot claiming as the assignee;
    - `stale`: a claim is a compare-and-swap: its previous_assignee is the assignee now."""
    if event_type == "sortie_created":
        return "exists" if row is not None else None
    if event_type not in TRANSITIONS:
        return None
    if row is None:
        return "unknown"
    if row["status"] not in TRANSITIONS[event_type][0]:
        return "state"
    if event_type in ASSIGNEE_ONLY and actor != row["assignee"]:
        return "not_assignee"  # not (or no longer) theirs: a claim lost, or taken over
    if event_type == "sortie_assigned":
        if not isinstance(data.get("assignee"), str) or data["assignee"] != actor:
            return "not_self"
        if data.get("previous_assignee") != row["assignee"]:
            return "stale"  # someone else claimed it first
    return None


def refuses(rows: Rows, e: Ev) -> str | None:
    """`refusal` of `e` after the folded `rows` of its stream."""
    return refusal(stored_row(rows, "sorties"), e.type, e.data, e.actor)


def _crossed(
    row: dict[str, Any], e: Ev, judged: Judged, missions: dict[str, dict[str, Any]]
) -> bool:
    """Whether `e` (a claim or start that `refusal` lets through) breaks a rule that crosses
    streams (`Judged`): a takeover of a pilot still active, a claim or start once the mission
    ended. What is recorded is what the row depends on."""
    if e.type == "sortie_assigned" and is_takeover(e) and e.order not in judged.taken:
        return True
    mission = row["mission_id"]
    if not isinstance(mission, str):
        return False
    end = judged.end_of(mission)
    over = end is not None and end < e.order
    seen = missions.get(mission)
    if seen is None:
        seen = missions[mission] = {"sortie_id": row["sortie_id"], "mission_id": mission}
        seen.update(dict.fromkeys(_SEEN))
    if not over:  # in total order: the last one kept so far
        seen.update(kept_hlc=e.hlc, kept_writer=e.writer, kept_wseq=e.wseq)
    elif seen["ignored_hlc"] is None:  # and every later one is ignored too
        seen.update(ignored_hlc=e.hlc, ignored_writer=e.writer, ignored_wseq=e.wseq)
    return over


_JUDGED = frozenset({"sortie_assigned", "sortie_started"})
_SEEN = ("kept_hlc", "kept_writer", "kept_wseq", "ignored_hlc", "ignored_writer", "ignored_wseq")


def _apply(
    row: dict[str, Any],
    e: Ev,
    update: dict[str, Any],
    judged: Judged | None,
    missions: dict[str, dict[str, Any]],
) -> bool:
    """Apply one transition if `refusal` allows it, and what crosses streams (`_crossed`) when
    `judged`; others are ignored. `update`: an update's accepted changes (its dependencies are
    the caller's)."""
    target = TRANSITIONS[e.type][1]
    d = e.data
    if refusal(row, e.type, d, e.actor) is not None:
        return False
    if judged is not None and e.type in _JUDGED and _crossed(row, e, judged, missions):
        return False
    if e.type == "sortie_assigned":
        row["assignee"], row["blocked_reason"] = d["assignee"], None
    elif e.type == "sortie_progress":
        row["percent"], row["note"] = d["percent"], d.get("note") or row["note"]
    elif e.type == "sortie_blocked":
        row["blocked_reason"] = d["reason"]
    elif e.type == "sortie_resumed":
        row["blocked_reason"] = None
    elif e.type == "sortie_updated":
        row.update({k: v for k, v in update.items() if k != "depends_on" and v is not None})
    elif e.type == "sortie_unclaimed":
        row["assignee"], row["blocked_reason"] = None, None
    elif e.type == "sortie_completed":
        row.update(result=d.get("result") or "success", summary=d.get("summary"), percent=100)
    if target:
        row["status"] = target
    return True


Edge = tuple[str, str]  # (sortie, the sortie it depends on)


def cycle_breaks(
    edges: Iterable[tuple[str, str, tuple[int, str, int]]],
) -> dict[Edge, list[str]]:
    """The dependencies that do not count, each with the cycle it would close.

    `edges` are (sortie, dependency, order of the event that set it). Commands refuse a cycle,
    but two clones can close one between them (A -> B in one, B -> A in the other). Taken in
    total order of the events that set them (then by ids), each edge counts unless the ones
    counted before it already lead from its dependency back to its sortie: so the later update
    loses, the same way in every clone. Only the edges on some cycle (`cyclic_edges`) can lose,
    so they are the only ones walked."""
    listed = list(edges)
    suspect = cyclic_edges((a, b) for a, b, _ in listed)
    kept: dict[str, list[str]] = {}
    broken: dict[Edge, list[str]] = {}
    for _, a, b in sorted((order, a, b) for a, b, order in listed if (a, b) in suspect):
        back = [a] if a == b else _path(kept, b, a)
        if back:
            broken[(a, b)] = [a, *back]
        else:
            kept.setdefault(a, []).append(b)
    return broken


def cyclic_edges(edges: Iterable[Edge]) -> set[Edge]:
    """The edges that lie on some cycle: those inside one strongly connected component. Nodes
    that lead to no cycle are peeled off first (sinks, then what only leads to them), so an
    acyclic graph, the usual case, costs one linear pass."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    graph = _peel(graph)
    component = _components(graph)
    return {
        (a, b)
        for a, targets in graph.items()
        if a in component
        for b in targets
        if component.get(b) == component[a]
    }


def _peel(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    """`graph` without the nodes from which no cycle can be reached (Kahn's algorithm, on the
    reversed edges): what is left is empty exactly when there is no cycle."""
    left = {a: len(targets) for a, targets in graph.items()}
    before: dict[str, list[str]] = {}
    for a, targets in graph.items():
        for b in targets:
            before.setdefault(b, []).append(a)
    done = [b for b in before if b not in graph]
    while done:
        for a in before.get(done.pop(), ()):
            left[a] -= 1
            if not left[a]:
                done.append(a)
    return {a: [b for b in graph[a] if left.get(b)] for a, n in left.items() if n}


def _path(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """A path start -> ... -> goal in `graph`, or None."""
    stack, came = [start], {start: start}
    while stack:
        node = stack.pop()
        if node == goal:
            path = [node]
            while path[-1] != start:
                path.append(came[path[-1]])
            return path[::-1]
        for nxt in graph.get(node, ()):
            if nxt not in came:
                came[nxt] = node
                stack.append(nxt)
    return None


def _components(graph: dict[str, list[str]]) -> dict[str, int]:
    """Each node of a non-trivial strongly connected component (or with a loop on itself) ->
    its component's number (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: dict[str, int] = {}
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1 or node in graph.get(node, ()):
                        out.update((m, index[node]) for m in members)
    return out
