"""git's configuration as the hooks and the commands read it: `git config --get-regexp` output,
and git's boolean words. Light on purpose (the pre-commit hook imports it): no re, no typing."""

from __future__ import annotations

from fleetgit.ledger.errors import ValidationError

# git's boolean words (any case); an integer is true unless it is 0
TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off", "")


def config_entries(text: str) -> dict[str, str | None]:
    """`git config --get-regexp` output as {key: value}: the last value wins, as in git, and a
    key written with no `=` (`[core] ignorecase`) has the value None."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" ")
        found[key.lower()] = value if sep else None
    return found


def config_bool(key: str, value: str | None) -> bool:
    """A git boolean by git's rules: no value at all, true, yes, on and nonzero integers are
    true; false, no, off, empty and 0 are false. Anything else is refused, as git refuses it."""
    if value is None:
        return True
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    digits = word.removeprefix("-")
    if digits.isascii() and digits.isdigit():
        return int(digits) != 0
    raise ValidationError(
        f"git config {key} = {value!r} is not a boolean (true/yes/on/1 or false/no/off/0)",
        hint=f"git config {key} true (or: git config {key} false)",
    )


def ignorecase(entries: dict[str, str | None]) -> bool:
    """core.ignorecase from `config_entries`, false when unset: patterns match case-blind."""
    return config_bool("core.ignorecase", entries.get("core.ignorecase", "false"))
