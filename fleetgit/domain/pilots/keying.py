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


def revoke(fleet: Fleet, key: str) -> dict[str, Any]:
    """The acting pilot revokes one of its keys (signed by a key of its own this clone holds;
    the revoked one may sign its own revocation)."""
    me = fleet.me()
    if key not in ledger_keys(fleet, me):
        raise ValidationError(
            f"{key} is not a key of pilot {me} in the ledger (or it is revoked already)",
            hint=f"see its keys: fleetgit pilot show {me} --json",
        )
    fleet.transact(lambda: [spec("pilot_key_revoked", me, {"key": key})])
    return {"callsign": me, "revoked": [key]}


def admin_create(fleet: Fleet) -> dict[str, Any]:
    """This clone's fleet admin key (made if there is none), and the line that names it in
    .fleet/config.toml: from the commit that adds that line, a key added or revoked with it
    counts for any pilot."""
    key, made = keys.create_admin(fleet.paths.common_dir)
    pub = keys.public(key)
    listed = pub in trust_admins(fleet)
    return {
        "key": f"ed25519:{pub}",
        "made": made,
        "listed": listed,
        "config_line": f'admin_keys = ["ed25519:{pub}"]',
        "path": str(keys.admin_path(fleet.paths.common_dir)),
    }


def trust_admins(fleet: Fleet) -> set[str]:
    from fleetgit.index.trust import admin_keys

    return set(admin_keys(fleet.config))


def _admin_key(fleet: Fleet) -> tuple[Any, str]:
    key = keys.load_admin(fleet.paths.common_dir)
    if key is None:
        raise ValidationError(
            "this clone holds no fleet admin key",
            hint="fleetgit pilot key admin-create (then name it in .fleet/config.toml)",
        )
    pub = keys.public(key)
    if pub not in trust_admins(fleet):
        raise ValidationError(
            "this clone's admin key is not in admin_keys of .fleet/config.toml: nobody would"
            " count what it signs",
            hint=f'add admin_keys = ["ed25519:{pub}"] to .fleet/config.toml and commit it',
        )
    return key, pub


def admin_revoke(fleet: Fleet, callsign: str, key: str | None = None) -> dict[str, Any]:
    """Revoke a pilot's key (`key`; None: all its keys), signed by the fleet admin key: a
    compromised key, or a pilot that lost its own. What sorts after the revocation and only
    that key signed stops counting everywhere."""
    admin, pub = _admin_key(fleet)
    held = sorted(ledger_keys(fleet, callsign))
    targets = held if key is None else [key]
    if not targets or (key is not None and key not in held):
        raise ValidationError(
            f"pilot {callsign} has no such key in the ledger (or it is revoked already)",
            hint=f"see its keys: fleetgit pilot show {callsign} --json",
        )
    specs = [spec("pilot_key_revoked", callsign, {"key": k, "admin": pub}) for k in targets]
    with fleet.signing_as_admin(admin):
        fleet.transact(lambda: specs)
    return {"callsign": callsign, "revoked": targets, "admin": f"ed25519:{pub}"}


def admin_add(fleet: Fleet, callsign: str, key: str | None = None) -> dict[str, Any]:
    """Give a pilot a new key, signed by the fleet admin key (a pilot that lost its own):
    `key` (its public half, base64url), or one made here, kept as the pilot's key in this
    clone (hand it over: fleetgit --as CALLSIGN pilot key export)."""
    admin, pub = _admin_key(fleet)
    made = False
    if key is None:
        if keys.load(fleet.paths.common_dir, callsign) is not None:
            raise ValidationError(
                f"this clone already holds a key of pilot {callsign}",
                hint=f"remove {keys.key_path(fleet.paths.common_dir, callsign)}, or pass --key",
            )
        key, made = keys.public(keys.create(fleet.paths.common_dir, callsign)), True
    elif sigs_decode(key) is None:
        raise ValidationError(
            f"not a public key: {key!r}", hint="43 base64url characters, as pilot show lists them"
        )
    new = key
    with fleet.signing_as_admin(admin):
        fleet.transact(lambda: [spec("pilot_key_added", callsign, {"key": new, "admin": pub})])
    return {"callsign": callsign, "key": new, "made_here": made, "admin": f"ed25519:{pub}"}


def sigs_decode(text: str) -> bytes | None:
    from fleetgit.ledger.sigs import decode_key

    return decode_key(text)
