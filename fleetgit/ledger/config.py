"""`.fleet/config.toml`: the format version and project defaults.

One reader for the commands and the git hooks, so both accept and refuse the same files. It is on
the hook path, so it stays light at import (no typing, pathlib or re); `tomllib` (~20 ms, it
imports re and typing) is loaded only for a file that is not exactly the one `fleetgit init`
writes, and the hook remembers the last text it accepted (`load_checked`).
"""

from __future__ import annotations

import os

from fleetgit.ledger.durations import MAX_SECONDS
from fleetgit.ledger.errors import ValidationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

FORMAT_VERSION = 1

# the settings and their defaults; Config below is this, typed for mypy
DEFAULTS: dict[str, Any] = {
    "format": FORMAT_VERSION,
    "reservation_ttl_seconds": 3600,
    "force_release_after_seconds": 1800,  # holder inactive this long: release --force allowed
    "pilot_active_window_seconds": 900,
    "hook_mode": "enforce",  # enforce | warn
    "fsync": "always",  # always | never
    "segment_max_bytes": 4 * 1024 * 1024,
    "max_event_bytes": 256 * 1024,
    "max_clock_skew_seconds": 300,
    "sync": "manual",  # manual | on-write: each writing command publishes (fleetgit sync)
    "sync_timeout": 5,  # seconds an on-write publish may take before it gives up (a warning)
    "trust": "warn",  # off | warn | require: signatures (index/trust.py); init writes require
    # fleet admin public keys ("ed25519:<base64url>", a list in the file; kept comma-joined):
    # a key added or revoked with one of them counts for any pilot (docs/trust.md)
    "admin_keys": "",
}

if TYPE_CHECKING:

    class Config(NamedTuple):  # the same fields and defaults as DEFAULTS (a test compares)
        format: int = FORMAT_VERSION
        reservation_ttl_seconds: int = 3600
        force_release_after_seconds: int = 1800
        pilot_active_window_seconds: int = 900
        hook_mode: str = "enforce"
        fsync: str = "always"
        segment_max_bytes: int = 4 * 1024 * 1024
        max_event_bytes: int = 256 * 1024
        max_clock_skew_seconds: int = 300
        sync: str = "manual"
        sync_timeout: int = 5
        trust: str = "warn"
        admin_keys: str = ""

else:  # typing.NamedTuple costs the hook ~5 ms; collections is loaded already
    from collections import namedtuple

    Config = namedtuple("Config", DEFAULTS, defaults=DEFAULTS.values())


INIT_CONFIG = Config(trust="require")  # what DEFAULT_TOML says; a ledger without `trust`: warn

CHOICES = {
    "hook_mode": ("enforce", "warn"),
    "fsync": ("always", "never"),
    "sync": ("manual", "on-write"),
    "trust": ("off", "warn", "require"),
}  # any case
# (lowest, highest or None): durations are seconds, bounded like every duration (366 days)
RANGES: dict[str, tuple[int, int | None]] = {
    "format": (1, None),
    "reservation_ttl_seconds": (1, MAX_SECONDS),
    "force_release_after_seconds": (0, MAX_SECONDS),
    "pilot_active_window_seconds": (1, MAX_SECONDS),
    # bounded: they bound what is read too (a line, a committed segment; see segments.py)
    "segment_max_bytes": (1, 256 << 20),
    "max_event_bytes": (1, 64 << 20),
    "max_clock_skew_seconds": (0, MAX_SECONDS),
    "sync_timeout": (1, 3600),
}


DEFAULT_TOML = """\
# fleetgit project settings (committed; shared by every clone)
format = 1
reservation_ttl_seconds = 3600        # default TTL of `fleetgit reserve`
force_release_after_seconds = 1800    # a holder silent this long may be released with --force
pilot_active_window_seconds = 900     # a pilot is active while its last event is this recent
hook_mode = "enforce"                 # enforce | warn (FLEET_HOOK_MODE overrides)
fsync = "always"                      # always | never: fsync each append
segment_max_bytes = 4194304           # a writer rolls to a new segment past this size
max_event_bytes = 262144              # one event's encoded size limit
max_clock_skew_seconds = 300          # events further in the future are flagged, not followed
sync = "manual"                       # manual | on-write: each write publishes (fleetgit sync)
sync_timeout = 5                      # seconds an on-write publish may take (then a warning)
trust = "require"                     # off | warn | require: each event signed by its pilot
"""


def load(path: str | os.PathLike[str]) -> Config:
    """Read the config, refusing bad TOML, unknown keys and wrong types with one clear line."""
    try:
        text = _read_text(path)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="save the file as UTF-8",
        ) from None
    if text is None:
        return Config()
    return parse(text, path)


MAX_CONFIG_BYTES = 1 << 20


def _read_text(path: str | os.PathLike[str]) -> str | None:
    """The config file's text, None when there is none. Only a regular file in a real `.fleet`
    directory, at most MAX_CONFIG_BYTES: a link (it could point anywhere), a FIFO (it would hang
    every command and hook) or a device is refused in one line (see safefs)."""
    from fleetgit.ledger import safefs

    path = os.fspath(path)
    parent = os.path.dirname(path)
    top, rel = (
        os.path.dirname(parent) or ".",
        f"{os.path.basename(parent)}/{os.path.basename(path)}",
    )
    try:
        data = safefs.read_small(top, rel, MAX_CONFIG_BYTES)
    except safefs.NotRegular as exc:
        raise ValidationError(
            f"{path}: {exc.relpath} is {exc.what}, not a regular file: fleetgit does not read it",
            hint=f"replace {exc.relpath} with a regular file (rm it, then git checkout it or"
            " run fleetgit init)",
        ) from None
    except ValueError:
        raise ValidationError(
            f"{path}: larger than {MAX_CONFIG_BYTES} bytes: not a fleetgit config",
            hint="edit .fleet/config.toml",
        ) from None
    return None if data is None else data.decode("utf-8")


def parse(text: str, path: str | os.PathLike[str]) -> Config:
    """The settings `text` (the file at `path`, named in errors) holds, checked strictly."""
    if text == DEFAULT_TOML:  # as `fleetgit init` wrote it: skip importing tomllib (~20 ms)
        return INIT_CONFIG
    import tomllib

    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: {exc}", hint="fix the TOML syntax") from None
    settings = {key: _checked(path, key, value) for key, value in raw.items()}
    if settings.get("format", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValidationError(
            f"{path}: format {settings['format']} is newer than this fleetgit understands",
            hint="upgrade fleetgit",
        )
    return Config(**settings)


# what a remembered verdict was made by: other settings or a newer format, and it is not reused
_STAMP = f"fleetgit config {FORMAT_VERSION} {','.join(DEFAULTS)}\n"


def load_checked(path: str, memo: str) -> Config:
    """`load` for the hook: a text that `parse` accepted before (remembered in the file `memo`,
    in the git dir) is not parsed again, so a customised config does not cost every commit
    the TOML parser. Refused texts are never remembered."""
    try:
        text = _read_text(path)
    except UnicodeDecodeError:
        return load(path)  # raises, naming the byte
    if text is None:
        return Config()
    if text == DEFAULT_TOML:
        return Config()
    try:
        with open(memo, encoding="utf-8") as fh:
            stamp, values, remembered = fh.readline(), fh.readline(), fh.read()
        if stamp == _STAMP and remembered == text:
            return _restored(values.rstrip("\n").split("\t"))
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # none yet, or unreadable: parse
    config = parse(text, path)
    _remember(memo, "\t".join(str(v) for v in config) + "\n" + text)
    return config


def _restored(values: list[str]) -> Config:
    """A Config from its remembered values, in field order (a choice stays text)."""
    kinds = [type(d) for d in DEFAULTS.values()]
    fields: list[Any] = [v if k is str else int(v) for k, v in zip(kinds, values, strict=True)]
    return Config(*fields)


def _remember(memo: str, body: str) -> None:
    tmp = f"{memo}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(memo), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(_STAMP + body)
        os.replace(tmp, memo)
    except OSError:  # a read-only git dir: parse every time
        try:  # noqa: SIM105 - contextlib is one more import on the hook path
            os.unlink(tmp)
        except OSError:
            pass


def _type_hint(key: str, value: Any, default: Any) -> str:
    """How to write `key` right: a duration given as text becomes its number of seconds."""
    if isinstance(default, int) and isinstance(value, str) and key.endswith("_seconds"):
        from fleetgit.ledger.durations import parse_duration  # only on this error

        try:
            return f"a whole number of seconds, without quotes: {key} = {parse_duration(value)}"
        except ValidationError:
            pass
    shown = f'"{default}"' if isinstance(default, str) else default
    return f"edit .fleet/config.toml, for example: {key} = {shown} (the default)"


def _admin_keys(path: str | os.PathLike[str], value: Any) -> str:
    """`admin_keys = ["ed25519:<43 base64url characters>", ...]`, kept comma-joined."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        body = item[8:] if isinstance(item, str) and item.startswith("ed25519:") else ""
        if len(body) != 43 or not all(c.isalnum() or c in "-_" for c in body):
            raise ValidationError(
                f"{path}: admin_keys: not an admin public key: {item!r}",
                hint='admin_keys = ["ed25519:..."], as fleetgit pilot key admin-create prints it',
            )
    return ",".join(items)


def _checked(path: str | os.PathLike[str], key: str, value: Any) -> Any:
    """One setting, refused with the file and key named; choices come back in lower case."""
    known = DEFAULTS
    if key not in known:
        raise ValidationError(f"{path}: unknown setting {key!r}", hint=f"known: {', '.join(known)}")
    if key == "admin_keys":
        return _admin_keys(path, value)
    expected = type(known[key])
    if type(value) is not expected:
        raise ValidationError(
            f"{path}: {key} must be {expected.__name__}, got {value!r}",
            hint=_type_hint(key, value, known[key]),
        )
    if key in CHOICES:
        if value.lower() not in CHOICES[key]:
            raise ValidationError(
                f"{path}: {key}: expected {' or '.join(CHOICES[key])}, got {value!r}",
                hint="edit .fleet/config.toml",
            )
        return value.lower()
    low, high = RANGES[key]
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValidationError(
            f"{path}: {key} must be {bound}, got {value}", hint="edit .fleet/config.toml"
        )
    return value
