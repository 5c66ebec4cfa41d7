"""A pilot's keys: export and import (a second machine), add (a pilot from before keys),
rotate (a new key signed by the old one, which is then revoked). See ledger/keys.py and
index/trust.py; docs/trust.md says what they protect against."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgit.domain.pilots.commands import spec
from fleetgit.ledger import keys
from fleetgit.ledger.errors import ValidationError

if TYPE_CHECKING:
    from fleetgit.fleet import Fleet


def ledger_keys(fleet: Fleet, callsign: str) -> set[str]:
    """The keys of `callsign` the ledger holds that are not revoked."""
    rows = fleet.index.conn.execute(
        "SELECT key FROM pilot_keys WHERE callsign = ? AND revoked_hlc IS NULL", (callsign,)
    )
    return {k for (k,) in rows}


def export(fleet: Fleet) -> str:
    return keys.export_text(fleet.paths.common_dir, fleet.me())


def import_key(fleet: Fleet, text: str) -> dict[str, Any]:
    """Keep an exported key here, refused unless it is one of the pilot's keys in the ledger
    (a key from elsewhere cannot make this clone act as anyone)."""
    me = fleet.me()
    pub = keys.public_of_text(text)
    if pub not in ledger_keys(fleet, me):
        raise ValidationError(
            f"this key is not one of pilot {me}'s keys in the ledger",
            hint="fetch the ledger first (git pull or fleetgit sync), or export the right key",
        )
    keys.import_text(fleet.paths.common_dir, me, text)
    return {"callsign": me, "key": pub}


def add(fleet: Fleet) -> dict[str, Any]:
    """Give a key to a pilot that has none in the ledger (registered before keys existed):
    made here, recorded by a `pilot_key_added` it signs itself. A pilot with a key gets
    another machine's only through that key (export/import)."""
    me = fleet.me()
    if ledger_keys(fleet, me):
        raise ValidationError(
            f"pilot {me} has a key already",
            hint=f"on a machine that holds it: fleetgit --as {me} pilot key export; here:"
            f" fleetgit --as {me} pilot key import",
        )
    key = keys.create(fleet.paths.common_dir, me)
    pub = keys.public(key)
    fleet.transact(lambda: [spec("pilot_key_added", me, {"key": pub})])
    return {"callsign": me, "key": pub}


def rotate(fleet: Fleet) -> dict[str, Any]:
    """A new key for the pilot: added and the old one revoked in one batch signed by the old
    key; events signed before keep counting (validity is by position in total order)."""
    me = fleet.me()
    common = fleet.paths.common_dir
    old = keys.load(common, me)
    if old is None or keys.public(old) not in ledger_keys(fleet, me):
        raise ValidationError(
            f"this clone holds no key of pilot {me} to rotate",
            hint=f"fleetgit --as {me} pilot key add",
        )
    raw = keys.generate_raw()
    new = keys.public_of_raw(raw)
    fleet.transact(
        lambda: [
            spec("pilot_key_added", me, {"key": new}),
            spec("pilot_key_revoked", me, {"key": keys.public(old)}),
        ]
    )
    keys.replace(common, me, raw)
    return {"callsign": me, "key": new, "revoked": keys.public(old)}
