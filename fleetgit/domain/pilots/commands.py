"""Pilots: register, heartbeat, list, show (deregister: leave.py); who is active; who may act.

Activity is derived, not folded: a pilot's last sign of life is the newest event it wrote, and it
is active while that is within the configured window and it has not deregistered. Inside
`Fleet.as_of(pos)` both the events and "now" are those of that position.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots.fold import active
from fleetgit.domain.pilots.identity import check_callsign
from fleetgit.ledger import clock
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetgit.fleet import Fleet


def spec(type_: str, callsign: str, data: dict[str, Any]) -> EventSpec:
    return EventSpec(type_, f"pilot/{callsign}", data, actor=callsign)


def register(
    fleet: Fleet,
    callsign: str,
    *,
    program: str | None = None,
    model: str | None = None,
    task: str | None = None,
    email: str | None = None,
    new: bool = False,
) -> dict[str, Any]:
    """Join the fleet, or rejoin after deregistering; what is not given is kept from before.
    `email` is the git committer email of the pilot's commits: the hooks judge a commit that
    carries no Fleet-Pilot trailer as the pilot registered with its committer's email.
    `new`: only a callsign the ledger has never registered (decided under the writer's lock), for
    a caller with no identity of its own: it may join, never take over an existing pilot."""
    check_callsign(callsign)
    data: dict[str, Any] = {
        "callsign": callsign,
        "program": program,
        "model": model,
        "task_description": task,
    }
    if email is not None:
        data["email"] = check_email(email)

    def plan() -> list[EventSpec]:
        if new and fleet.index.stream_version(f"pilot/{callsign}"):
            raise ConflictError(
                f"pilot {callsign!r} is registered already: a registration without its identity"
                " cannot take it over",
                hint=f"choose another callsign; {callsign} itself rejoins with its own token"
                f" (fleetgit --as {callsign} token create)",
            )
        return [spec("pilot_registered", callsign, data)]

    fleet.transact(plan)
    return show(fleet, callsign)


def check_email(email: str) -> str:
    """A committer email as git writes it: `name@host`, no spaces, `<` or `>`; kept as given
    (the hooks compare emails case-blind)."""
    local, at, host = email.rpartition("@")
    if not (at and local and host) or any(c.isspace() or c in "<>" for c in email):
        raise ValidationError(
            f"not an email address: {email!r}",
            hint="the committer email of the pilot's commits: git config user.email",
        )
    return email


def acting(fleet: Fleet) -> str:
    """The acting callsign, for a command that writes as a pilot. Whether it may act (it is
    registered, and has not deregistered) is checked once, inside the write transaction: see
    `Fleet._check_registered`."""
    return fleet.me()


def closest_registered(fleet: Fleet, callsign: str) -> list[str]:
    """The registered callsigns (still in the fleet) closest to `callsign`: for a typo."""
    rows = fleet.index.conn.execute("SELECT callsign FROM pilots WHERE NOT deregistered")
    here = [name for (name,) in rows]
    return difflib.get_close_matches(callsign, here, n=3)


def heartbeat(
    fleet: Fleet, *, status: str | None = None, task: str | None = None
) -> dict[str, Any]:
    me = acting(fleet)

    def plan() -> list[EventSpec]:
        stored(fleet, me)
        return [spec("pilot_active", me, {"status": status or "active", "current_task": task})]

    fleet.transact(plan)
    return show(fleet, me)


def _known(fleet: Fleet) -> list[str]:
    return [r[0] for r in fleet.index.conn.execute("SELECT callsign FROM pilots")]


def _closest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f"did you mean {' or '.join(close)}? " if close else ""


def check_known(fleet: Fleet, names: Sequence[str], *, allow_unknown: bool = False) -> None:
    """Refuse callsigns that are not in the fleet, unless allowed: one no pilot registered (a
    typo would go unnoticed) or one that deregistered (it has left: nobody would do or read
    what is given to it, until it registers again)."""
    for name in names:
        check_callsign(name)
    if allow_unknown:
        return
    left = dict(fleet.index.conn.execute("SELECT callsign, deregistered FROM pilots").fetchall())
    here = [c for c, gone in left.items() if not gone]
    unknown = [n for n in names if n not in left]
    if unknown:
        raise ValidationError(
            f"unknown callsign(s): {', '.join(unknown)}",
            hint=_closest(unknown[0], here)
            + f"register it first (fleetgit pilot register {unknown[0]}), or pass --allow-unknown",
        )
    gone = [n for n in names if left[n]]
    if gone:
        raise ValidationError(
            f"{', '.join(gone)} {'has' if len(gone) == 1 else 'have'} left the fleet"
            " (deregistered)",
            hint="see who is here: fleetgit pilot list --active; it rejoins with"
            f" fleetgit --as {gone[0]} pilot register {gone[0]}; or pass --allow-unknown",
        )


def never_seen(fleet: Fleet, callsign: str) -> list[str] | None:
    """For a filter by callsign: None when some event had it (as its actor, or a pilot of that
    name); else the closest callsigns that some event had (perhaps none). A typo in a filter
    lists nothing, which looks like a true empty result. Inside `Fleet.as_of`, up to then."""
    cond, params = _upto(fleet)
    conn = fleet.index.conn
    sql = f"SELECT 1 FROM events WHERE actor = ?{cond} LIMIT 1"
    if conn.execute(sql, (callsign, *params)).fetchone() is not None:
        return None
    if conn.execute("SELECT 1 FROM pilots WHERE callsign = ?", (callsign,)).fetchone():
        return None
    known = sorted({*last_seen(fleet), *_known(fleet)})
    return difflib.get_close_matches(callsign, known, n=3)


def stored(fleet: Fleet, callsign: str) -> dict[str, Any]:
    cur = fleet.index.conn.execute("SELECT * FROM pilots WHERE callsign = ?", (callsign,))
    row = cur.fetchone()
    if row is None:
        hint = _closest(callsign, _known(fleet)) or f"fleetgit pilot register {callsign}"
        raise NotFoundError(f"no pilot {callsign!r}", hint=hint.strip())
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def _upto(fleet: Fleet) -> tuple[str, tuple[int, ...]]:
    """The condition keeping the events of an `as_of` read."""
    pos = fleet.as_of_pos
    return ("", ()) if pos is None else (" AND pos <= ?", (pos,))


def last_seen(fleet: Fleet) -> dict[str, int]:
    """Each actor's last sign of life (ms): the newest event it wrote."""
    cond, params = _upto(fleet)
    # a skip scan of the (actor, hlc) index: one probe per actor, however long the history
    rows = fleet.index.conn.execute(
        "WITH RECURSIVE actors (name) AS (SELECT min(actor) FROM events UNION ALL"
        " SELECT (SELECT min(actor) FROM events WHERE actor > name) FROM actors"
        " WHERE name IS NOT NULL)"
        f" SELECT name, (SELECT max(hlc) FROM events WHERE actor = name{cond}) FROM actors"
        " WHERE name IS NOT NULL",
        params,
    )
    return {actor: clock.hlc_ms(hlc) for actor, hlc in rows if hlc is not None}


def seen_ms(fleet: Fleet, callsign: str) -> int | None:
    """One pilot's last sign of life (ms), or None."""
    cond, params = _upto(fleet)
    row = fleet.index.conn.execute(
        f"SELECT max(hlc) FROM events WHERE actor = ?{cond}", (callsign, *params)
    ).fetchone()
    return None if row[0] is None else clock.hlc_ms(row[0])


def _live(fleet: Fleet, last: int | None, deregistered: bool) -> bool:
    window = fleet.config.pilot_active_window_seconds * 1000
    return active(last, deregistered, fleet.now_ms(), window)


def deregistered(fleet: Fleet, callsign: str) -> bool:
    row = fleet.index.conn.execute(
        "SELECT deregistered FROM pilots WHERE callsign = ?", (callsign,)
    ).fetchone()
    return bool(row and row[0])


def active_since(fleet: Fleet, callsign: str) -> int | None:
    """The pilot's last sign of life (ms) while it is active: seen within the window and not
    deregistered (a pilot that never registered can be active: any event is a sign of life).
    None when it is not active."""
    last = seen_ms(fleet, callsign)
    return last if _live(fleet, last, deregistered(fleet, callsign)) else None


def _decorate(fleet: Fleet, row: dict[str, Any], seen: dict[str, int]) -> dict[str, Any]:
    last = seen.get(row["callsign"])
    row["last_seen"] = clock.iso_ms(last) if last else None
    row["active"] = _live(fleet, last, bool(row["deregistered"]))
    row["deregistered"] = bool(row["deregistered"])
    row["registered_at"] = clock.iso_ms(row.pop("registered_ms"))
    row.pop("last_pos", None)
    return row


def show(fleet: Fleet, callsign: str) -> dict[str, Any]:
    row = stored(fleet, callsign)
    last = seen_ms(fleet, callsign)
    out = _decorate(fleet, row, {} if last is None else {callsign: last})
    out["sorties"] = [
        {"sortie_id": sid, "title": title, "status": status}
        for sid, title, status in fleet.index.conn.execute(
            "SELECT sortie_id, title, status FROM sorties WHERE assignee = ? ORDER BY created_hlc",
            (callsign,),
        )
    ]
    return out


def listing(fleet: Fleet, *, active_only: bool = False) -> list[dict[str, Any]]:
    cur = fleet.index.conn.execute("SELECT * FROM pilots ORDER BY callsign")
    names = [c[0] for c in cur.description]
    seen = last_seen(fleet)
    rows = [_decorate(fleet, dict(zip(names, r, strict=True)), seen) for r in cur]
    return [r for r in rows if r["active"]] if active_only else rows
