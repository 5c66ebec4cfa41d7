"""`.fleet/config.toml`: the format version and project defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from fleetgit.durations import MAX_SECONDS
from fleetgit.errors import ValidationError

FORMAT_VERSION = 1


class Config(NamedTuple):
    format: int = FORMAT_VERSION
    reservation_ttl_seconds: int = 3600
    force_release_after_seconds: int = 1800  # holder inactive this long: release --force allowed
    pilot_active_window_seconds: int = 900
    hook_mode: str = "enforce"  # enforce | warn
    fsync: str = "always"  # always | never
    segment_max_bytes: int = 4 * 1024 * 1024
    max_event_bytes: int = 256 * 1024
    max_clock_skew_seconds: int = 300


CHOICES = {"hook_mode": ("enforce", "warn"), "fsync": ("always", "never")}  # any case
# (lowest, highest or None): durations are seconds, bounded like every duration (366 days)
RANGES: dict[str, tuple[int, int | None]] = {
    "format": (1, None),
    "reservation_ttl_seconds": (1, MAX_SECONDS),
    "force_release_after_seconds": (0, MAX_SECONDS),
    "pilot_active_window_seconds": (1, MAX_SECONDS),
    "segment_max_bytes": (1, None),
    "max_event_bytes": (1, None),
    "max_clock_skew_seconds": (0, MAX_SECONDS),
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
"""


def load(path: Path) -> Config:
    """Read the config, refusing unknown keys and wrong types with one clear line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="save the file as UTF-8",
        ) from None
    if text == DEFAULT_TOML:  # as `fleetgit init` wrote it: skip importing tomllib (~3 ms)
        return Config()
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


def _checked(path: Path, key: str, value: Any) -> Any:
    """One setting, refused with the file and key named; choices come back in lower case."""
    known = Config._field_defaults
    if key not in known:
        raise ValidationError(f"{path}: unknown setting {key!r}", hint=f"known: {', '.join(known)}")
    expected = type(known[key])
    if type(value) is not expected:
        raise ValidationError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
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
