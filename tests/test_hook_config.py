"""The hook reads .fleet/config.toml with the commands' own reader: what they refuse, it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetgit.ledger.config import DEFAULT_TOML, DEFAULTS, Config
from tests.test_hooks import commit, hooked, stage  # noqa: F401 - the fixture

WARN = DEFAULT_TOML.replace('hook_mode = "enforce"', 'hook_mode = "warn"')


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('HOOK_MODE = "warn"\n', "unknown setting 'HOOK_MODE'"),
        ('hook_mode = "warn"\nhook_mode = "enforce"\n', "Cannot overwrite a value"),
        (WARN.replace("format = 1", "format = 2"), "newer than this fleetgit understands"),
        ('hook_mode = "warn" # a comment\nfsync = "sometimes"\n', "fsync: expected always"),
        ("hook_mode = warn\n", "Invalid value"),
        ('[hook]\nhook_mode = "warn"\n', "unknown setting 'hook'"),
    ],
)
def test_a_config_the_commands_refuse_refuses_the_commit(
    hooked: Path,  # noqa: F811
    cli: Any,
    text: str,
    says: str,
) -> None:
    (hooked / ".fleet/config.toml").write_text(text)
    listed = cli(hooked, "reservations")
    assert listed.code == 1 and says in listed.err
    stage(hooked, "docs/free.md")  # nothing reserved: refused for the file alone
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "commit refused: the commands refuse the config:" in res.stderr and says in res.stderr
    assert "--no-verify" in res.stderr
    # warn from the environment reports the bad file and lets the commit go ahead
    res = commit(hooked, "goose", env={"FLEET_HOOK_MODE": "warn"})
    assert res.returncode == 0 and says in res.stderr and "warning" in res.stderr


def test_a_customised_config_is_read_the_same_and_remembered_only_while_unchanged(
    hooked: Path,  # noqa: F811
    cli: Any,
) -> None:
    cfg = hooked / ".fleet/config.toml"
    cfg.write_text(WARN.replace("= 3600", "= 60"))  # not the default text: parsed
    assert cli(hooked, "reservations").code == 0
    for text in ("one\n", "two\n"):  # the second run takes the remembered verdict
        stage(hooked, "src/app.py", text)
        res = commit(hooked, "goose")
        assert res.returncode == 0 and 'warn mode (hook_mode = "warn"' in res.stderr
    assert (hooked / ".git/fleet/config-checked").is_file()
    cfg.write_text(cfg.read_text() + 'HOOK_MODE = "warn"\n')  # changed: parsed again, refused
    stage(hooked, "src/app.py", "three\n")
    res = commit(hooked, "goose")
    assert res.returncode == 1 and "unknown setting 'HOOK_MODE'" in res.stderr


def test_a_remembered_verdict_of_other_settings_is_not_reused(
    hooked: Path,  # noqa: F811
) -> None:
    cfg = hooked / ".fleet/config.toml"
    cfg.write_text(WARN.replace("= 3600", "= 60"))
    memo = hooked / ".git/fleet/config-checked"
    memo.parent.mkdir(exist_ok=True)
    # a memo written by a fleetgit with other settings says warn for a text it never checked
    memo.write_text("fleetgit config 1 other\nwarn\n" + cfg.read_text())
    cfg.write_text(cfg.read_text().replace('"warn"', '"enforce"'))
    memo.write_text("fleetgit config 1 format\nwarn\n" + cfg.read_text())
    stage(hooked, "src/app.py", "changed\n")
    assert commit(hooked, "goose").returncode == 1


def test_config_fields_match_the_defaults() -> None:
    assert Config._fields == tuple(DEFAULTS) and Config() == tuple(DEFAULTS.values())
