"""`fleetgit resume`: a recovery brief for a pilot that lost its context.

It re-acquires the reservations the checkpoint held where they are still free, reports the ones
someone else took, lists unread messages and what changed in the fleet since, and records
`checkpoint_restored` and `fleet_recovered` in the same batch as the re-acquisitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.checkpoints import commands as checkpoints
from fleetgit.domain.locks import commands as locks
from fleetgit.domain.missions import commands as missions
from fleetgit.domain.pilots import commands as pilots
from fleetgit.domain.reservations import commands as reservations
from fleetgit.domain.reservations.commands import reserve_specs
from fleetgit.domain.sorties import commands as sorties
from fleetgit.domain.squawk import commands as squawk
from fleetgit.guard.rules import conflicts_for
from fleetgit.ledger import clock
from fleetgit.ledger.codec import EventSpec
from fleetgit.ledger.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet

BRIEF_MESSAGES = 50  # newest unread messages listed in the brief


def _choose(
    fleet: Fleet, me: str, checkpoint: str | None, mission: str | None, latest: bool
) -> dict[str, Any]:
    """The checkpoint to resume: one of `me`'s own (`--mission` and `--latest` pick only those;
    resuming another pilot's would take what it held)."""
    if sum(x is not None and x is not False for x in (checkpoint, mission, latest)) != 1:
        raise ValidationError(
            "say which checkpoint: one of --checkpoint ID, --mission ID or --latest",
            hint="fleetgit resume --latest (your newest checkpoint)",
        )
    if checkpoint is None:
        return checkpoints.latest(fleet, mission=mission)
    chk = checkpoints.show(fleet, checkpoint)
    if chk["pilot"] != me:
        cid = chk["checkpoint_id"]
        raise ConflictError(
            f"checkpoint {cid} is {chk['pilot']}'s, not {me}'s: resuming it would take over"
            " what it held",
            hint=f"read it instead: fleetgit checkpoint show {cid}",
        )
    return chk


def resume(
    fleet: Fleet, *, checkpoint: str | None = None, mission: str | None = None, latest: bool = False
) -> dict[str, Any]:
    me = pilots.acting(fleet)
    chk = _choose(fleet, me, checkpoint, mission, latest)
    outcome: dict[str, list[Any]] = {"reacquired": [], "lost": [], "kept": []}
    files = reservations.file_patterns(fleet, chk["reservations"])
    shared = set(chk["context"].get("shared_reservations") or [])

    def plan() -> list[EventSpec]:
        found, free = standing(fleet, chk, me, files)
        outcome.update(found)
        claimed = _claimed_files(fleet, chk, me)
        specs = [
            s
            for pat in free
            for s in reserve_specs(
                fleet,
                me,
                [pat],
                shared=pat in shared,
                seconds=fleet.config.reservation_ttl_seconds,
                # a file of the sortie I still hold is its claim's again: completing it frees it
                reason=sorties.claim_reason(chk["sortie_id"])
                if pat in claimed
                else f"resumed {chk['checkpoint_id']}",
                files=files,
            )
        ]
        outcome["reacquired"] = free
        cid = chk["checkpoint_id"]
        specs.append(
            EventSpec(
                "checkpoint_restored",
                f"checkpoint/{cid}",
                {"checkpoint_id": cid, "restored_by": me},
            )
        )
        specs.append(
            EventSpec(
                "fleet_recovered",
                f"pilot/{me}",
                {
                    "checkpoint_id": cid,
                    "reacquired": free,
                    "lost": [x["pattern"] for x in outcome["lost"]],
                },
            )
        )
        return specs

    fleet.transact(plan)
    return _brief_data(fleet, chk, outcome, me)


def _claimed_files(fleet: Fleet, chk: dict[str, Any], me: str) -> set[str]:
    """The files of the checkpoint's sortie, when I still hold it."""
    sid = chk["sortie_id"]
    if sid is None:
        return set()
    current = sorties.row(fleet, sid)
    return set(current["files"]) if current["assignee"] == me else set()


def standing(
    fleet: Fleet, chk: dict[str, Any], me: str, files: set[str]
) -> tuple[dict[str, list[Any]], list[str]]:
    """Where each reservation of the checkpoint stands now: kept (still mine), lost (another
    pilot holds what clashes with it) or free (resume re-acquires it); and the free ones."""
    # the one notion of standing: a reservation that lost a clash a merge brought in is
    # neither kept nor in anyone's way
    live = [r for r in reservations.listing(fleet) if r.lost_to is None]
    mine = {r.pattern for r in live if r.holder == me}
    others = [r for r in live if r.holder != me]
    shared = set(chk["context"].get("shared_reservations") or [])
    free: list[str] = []
    outcome: dict[str, list[Any]] = {"reacquired": [], "lost": [], "kept": []}
    for pattern in chk["reservations"]:
        if pattern in mine:
            outcome["kept"].append(pattern)
            continue
        clash = conflicts_for([pattern], pattern not in shared, me, others, fleet.ignorecase, files)
        if clash:
            outcome["lost"].append(
                {
                    "pattern": pattern,
                    "holder": clash[0].holder,
                    "until": clock.iso_ms(clash[0].expires_ms),
                }
            )
        else:
            free.append(pattern)
    return outcome, free


def preview(fleet: Fleet) -> dict[str, Any]:
    """The brief `resume --latest` would give, read only: nothing is re-acquired or recorded;
    the reservations free to take again are listed under "free"."""
    me = pilots.acting(fleet)
    chk = checkpoints.latest(fleet)
    outcome, free = standing(fleet, chk, me, reservations.file_patterns(fleet, chk["reservations"]))
    return _brief_data(fleet, chk, {**outcome, "free": free}, me)


def _brief_data(
    fleet: Fleet, chk: dict[str, Any], outcome: dict[str, list[Any]], me: str
) -> dict[str, Any]:
    conn = fleet.index.conn
    since = chk["created_pos"]
    changes = dict(
        conn.execute(
            "SELECT type, count(*) FROM events NOT INDEXED WHERE pos > ? AND type NOT IN"
            " ('checkpoint_restored', 'fleet_recovered') GROUP BY type ORDER BY type",
            (since,),
        ).fetchall()
    )
    moved = [
        dict(zip(("sortie_id", "title", "status", "assignee"), r, strict=True))
        for r in conn.execute(
            "SELECT sortie_id, title, status, assignee FROM sorties WHERE last_pos > ?"
            + (" AND mission_id = ?" if chk["mission_id"] else "")
            + " ORDER BY sortie_id",
            (since, chk["mission_id"]) if chk["mission_id"] else (since,),
        )
    ]
    holders = {lock["lock_key"]: lock["holder"] for lock in locks.listing(fleet)}
    lock_state = [{"lock_key": key, "holder": holders.get(key)} for key in chk["locks"]]
    return {
        "checkpoint": chk,
        "pilot": me,
        "mission": missions.show(fleet, chk["mission_id"]) if chk["mission_id"] else None,
        "sortie": sorties.show(fleet, chk["sortie_id"]) if chk["sortie_id"] else None,
        "reservations": outcome,
        "locks": lock_state,
        "unread_messages": squawk.inbox(fleet, unread=True, limit=BRIEF_MESSAGES),
        "unread_total": squawk.inbox_count(fleet, unread=True),
        "changes_since": changes,
        "sorties_changed": moved,
    }


def markdown(brief: dict[str, Any]) -> str:
    """The brief as Markdown an agent can read straight after losing its context."""
    chk, lines = brief["checkpoint"], []
    lines.append(f"# Recovery brief for {brief['pilot']}")
    lines.append(
        f"\nFrom checkpoint `{chk['checkpoint_id']}` ({chk['trigger']}, {chk['created_at']})."
    )
    if brief["mission"]:
        m = brief["mission"]
        lines.append(
            f"\n## Mission `{m['mission_id']}`: {m['title']}\n\n{m['status']}, {m['progress']}% "
            f"over {m['sorties']} sorties"
        )
    if brief["sortie"]:
        s = brief["sortie"]
        lines.append(
            f"\n## Sortie `{s['sortie_id']}`: {s['title']}\n\n{s['status']}, {s['percent']}%, "
            f"assigned to {s['assignee'] or 'nobody'}"
        )
    progress = "not recorded" if chk["progress"] is None else f"{chk['progress']}%"
    lines.append(f"\n## Where you were\n\nProgress: {progress}")
    if chk["summary"]:
        lines.append(f"\n{chk['summary']}")
    for title, key in (
        ("Next steps", "next_steps"),
        ("Blockers", "blockers"),
        ("Files touched", "files_modified"),
    ):
        if chk[key]:
            lines.append(f"\n## {title}\n")
            lines.extend(f"- {item}" for item in chk[key])
    res = brief["reservations"]
    lines.append("\n## Reservations\n")
    lines.extend(f"- `{p}`: re-acquired" for p in res["reacquired"])
    lines.extend(f"- `{p}`: still yours" for p in res["kept"])
    lines.extend(f"- `{p}`: free, resume re-acquires it" for p in res.get("free", ()))
    lines.extend(
        f"- `{x['pattern']}`: LOST, now held by {x['holder']} until {x['until']}"
        for x in res["lost"]
    )
    if not any(res.values()):
        lines.append("- none held at the checkpoint")
    if brief["locks"]:
        lines.append("\n## Locks held at the checkpoint\n")
        lines.extend(
            f"- `{lk['lock_key']}`: " + (f"held by {lk['holder']}" if lk["holder"] else "free")
            for lk in brief["locks"]
        )
    lines.append("\n## Unread messages\n")
    unread = brief["unread_messages"]
    lines.extend(
        f"- `{m['message_id']}` from {m['sender']}: {m['subject']}"
        + (" (ack required)" if m["ack_required"] else "")
        for m in unread
    )
    if brief["unread_total"] > len(unread):
        lines.append(
            f"- ... and {brief['unread_total'] - len(unread)} more:"
            " fleetgit squawk inbox --unread --limit 0"
        )
    if not unread:
        lines.append("- none")
    lines.append("\n## What changed since\n")
    lines.extend(f"- {n} x {t}" for t, n in brief["changes_since"].items())
    lines.extend(
        f"- sortie `{s['sortie_id']}` ({s['title']}) is now {s['status']}"
        + (f", with {s['assignee']}" if s["assignee"] else "")
        for s in brief["sorties_changed"]
    )
    if not brief["changes_since"]:
        lines.append("- nothing")
    return "\n".join(lines) + "\n"
