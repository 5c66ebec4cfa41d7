"""Human output for the fleet commands: every value readable. Times are ISO 8601 (UTC), yes/no
for booleans, "-" for nothing, durations like 9m59s (the one formatter reservations use too)."""

from typing import Any

from fleetgit.ledger import clock

HIDDEN = frozenset({"last_pos", "rid"})  # bookkeeping of the index, not facts about the entity


def text(value: Any, key: str = "") -> str:
    """One value as a person reads it; `key` tells raw times (`*_ms`, `*_hlc`) apart."""
    if value is None or value in ("", [], {}):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key.endswith(("_ms", "_hlc")):
        ms = clock.hlc_ms(value) if key.endswith("_hlc") else value
        return clock.iso_ms(ms)
    if isinstance(value, list):
        return ", ".join(text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {text(v, k)}" for k, v in value.items())
    return str(value)


def label(key: str) -> str:
    """`registered_ms` -> `registered`, `current_task` -> `current task`."""
    return key.removesuffix("_ms").removesuffix("_hlc").replace("_", " ")


def detail(value: dict[str, Any]) -> str:
    """A record as aligned `label value` lines; a list of records as indented rows."""
    lines = []
    for key, item in value.items():
        if key in HIDDEN:
            continue
        if isinstance(item, list) and item and isinstance(item[0], dict):
            lines.append(f"{label(key)}:")
            lines.extend(
                "  " + "  ".join(text(v, k) for k, v in entry.items() if k not in HIDDEN)
                for entry in item
            )
        else:
            lines.append(f"{label(key):16} {text(item, key)}")
    return "\n".join(lines)
