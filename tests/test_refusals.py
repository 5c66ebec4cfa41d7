"""Bad input is refused in one line with a hint, never a traceback: numbers out of range, and
filters naming a callsign no event ever had."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
import typer

from fleetgit.cli import make_app
from fleetgit.cli.common import INT_MAX

HUGE = "99999999999999999999999"


@pytest.fixture
def repo(bare_repo: Path) -> Path:
    """These tests register the pilots they act as themselves."""
    return bare_repo


def _int_options() -> Iterator[tuple[list[str], str]]:
    """(command words, option name) for every integer option of every command."""
    app = make_app()
    commands = [([_name(c)], c.callback) for c in app.registered_commands]
    for group in app.registered_groups:
        sub = group.typer_instance
        assert sub is not None and group.name
        commands += [([group.name, _name(c)], c.callback) for c in sub.registered_commands]
    for words, callback in commands:
        for param in inspect.signature(callback).parameters.values():
            kind, *meta = get_args(param.annotation) or (None,)
            option = meta[0] if meta else None
            if int in (kind, *get_args(kind)) and isinstance(option, type(typer.Option())):
                # in Annotated, typer takes the first name as `default`
                yield words, str(option.default)


def _name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


INT_OPTIONS = sorted(_int_options())


def test_the_commands_have_integer_options_to_check() -> None:
    found = {f"{' '.join(w)} {o}" for w, o in INT_OPTIONS}
    assert {
        "events --limit",
        "events --after",
        "squawk inbox --limit",
        "lock list --as-of",
    } <= found


@pytest.mark.parametrize(("words", "option"), INT_OPTIONS, ids=lambda x: str(x))
def test_every_integer_option_refuses_numbers_out_of_range(
    repo: Path, cli: Any, words: list[str], option: str
) -> None:
    for value, reason in (
        (HUGE, "out of range"),
        (str(INT_MAX + 1), "out of range"),
        ("-" + HUGE, "out of range"),
        ("12x", "not a whole number"),
        ("-+5", "not a whole number"),
    ):
        res = cli(repo, *words, f"{option}={value}", "--json")  # first, so that it is parsed first
        assert res.code == 2, (words, option, res.err)
        error = orjson.loads(res.err)["error"]
        assert option in error["message"] and reason in error["message"]
        assert error["hint"] == f"see: fleetgit {' '.join(words)} --help"
    assert not list((repo / ".fleet" / "events").iterdir())  # nothing written


def test_huge_numbers_in_the_audited_commands(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    res = cli(repo, "--as", "goose", "squawk", "inbox", "--limit", HUGE, "--json")
    assert res.code == 2 and '"code":"usage"' in res.err and "--limit" in res.err
    assert "fleetgit squawk inbox --help" in res.err
    for option in ("--limit", "--after"):
        res = cli(repo, "events", option, HUGE)
        assert res.code == 2 and f"'{option}': {HUGE} is out of range" in res.err
    assert cli(repo, "events", "--after", str(INT_MAX), "--json").items() == []
    assert len(cli(repo, "events", "--limit", str(INT_MAX), "--json").items()) == 1
    res = cli(repo, "events", "--since", "6500-01-01")
    assert res.code == 1 and "later than any time the ledger can hold" in res.err


def test_a_narrow_range_is_shown_in_the_help(repo: Path, cli: Any) -> None:
    assert "(0 to 100)" in cli(repo, "sortie", "progress", "--help").out
    res = cli(repo, "sortie", "progress", "srt-x", "--percent", "101")
    assert res.code == 2 and "expected 0 to 100" in res.err


def test_claim_refuses_a_ttl_without_reserve(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    sid = cli(repo, "--as", "goose", "sortie", "create", "Lexer", "--file", "a.py").out.strip()
    before = cli(repo, "events", "--json").items()
    for ttl in ("bogus", "2h"):
        res = cli(repo, "--as", "goose", "sortie", "claim", sid, "--ttl", ttl)
        assert res.code == 2 and "--ttl needs --reserve" in res.err
        assert f"hint: fleetgit sortie claim {sid} --reserve --ttl {ttl}" in res.err
    assert cli(repo, "events", "--json").items() == before  # nothing written
    res = cli(repo, "--as", "goose", "sortie", "claim", sid, "--reserve", "--ttl", "2h", "--json")
    assert res.code == 0 and res.json()["assignee"] == "goose"


def test_titles_and_names_are_one_line(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    before = cli(repo, "events", "--json").items()
    for args in (
        ("mission", "create", "Ship\nit"),
        ("mission", "create", "Ship\tit"),
        ("sortie", "create", "Lexer\r"),
        ("squawk", "send", "--to", "goose", "--subject", "hi\nthere"),
        ("emit", "mission_created", "--stream", "mission/msn-1",
         "--data", '{"mission_id": "msn-1", "title": "a\\nb"}'),
    ):  # fmt: skip
        res = cli(repo, "--as", "goose", *args)
        assert res.code == 1 and "contains a control character" in res.err, args
        assert "hint: fleetgit schema " in res.err and "Traceback" not in res.err
    for args in (("pilot", "register", "bob\n"), ("--as", "goose", "lock", "acquire", "k\n")):
        res = cli(repo, *args)
        assert res.code == 1 and "use letters, digits" in res.err, args
    assert cli(repo, "events", "--json").items() == before  # nothing written
    # free text keeps its lines; the listing keeps one line per mission
    mid = cli(repo, "--as", "goose", "mission", "create", "Ship it", "--description", "a\nb")
    assert mid.code == 0
    assert cli(repo, "mission", "show", mid.out.strip(), "--json").json()["description"] == "a\nb"
    assert len(cli(repo, "mission", "list").out.splitlines()) == 2


def test_free_text_refuses_terminal_escapes(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    before = cli(repo, "events", "--json").items()
    for args in (
        ("squawk", "send", "--to", "goose", "--subject", "hi", "--body", "\x1b[2J\x1b[Hall good"),
        ("mission", "create", "Ship it", "--description", "\x1b]0;pwned\x07"),
    ):
        res = cli(repo, "--as", "goose", *args)
        assert res.code == 1 and "not terminal control codes" in res.err, args
        assert "Traceback" not in res.err and len(res.err.strip().splitlines()) <= 2
    assert cli(repo, "events", "--json").items() == before  # nothing written


def test_refusals_name_the_command_to_run(repo: Path, cli: Any) -> None:
    for who in ("goose", "ice"):
        cli(repo, "pilot", "register", who)
    sid = cli(repo, "--as", "goose", "sortie", "create", "Lexer", "--file", "src/lexer.py")
    sid = sid.out.strip()
    assert cli(repo, "--as", "goose", "sortie", "claim", sid, "--reserve").code == 0
    assert cli(repo, "--as", "goose", "sortie", "start", sid).code == 0
    res = cli(repo, "--as", "goose", "sortie", "start", sid)
    assert res.code == 1 and f"next for it: fleetgit sortie complete {sid}" in res.err
    other = cli(repo, "--as", "ice", "sortie", "create", "Docs", "--file", "src/").out.strip()
    res = cli(repo, "--as", "ice", "sortie", "claim", other, "--reserve")
    assert res.code == 1 and "held by goose" in res.err
    assert "hint: see when it frees: fleetgit reservations --holder goose" in res.err
    assert cli(repo, "reservations", "--holder", "goose", "--json").items()[0]["holder"] == "goose"


FILTERS = (
    ("sortie", "list", "--assigned-to"),
    ("reservations", "--holder"),
    ("events", "--actor"),
)


@pytest.mark.parametrize("words", FILTERS, ids=lambda w: " ".join(w))
def test_a_filter_naming_a_callsign_no_event_had_says_so(
    repo: Path, cli: Any, words: tuple[str, ...]
) -> None:
    cli(repo, "pilot", "register", "goose")
    sid = cli(repo, "--as", "goose", "sortie", "create", "Lexer", "--file", "a.py").out.strip()
    cli(repo, "--as", "goose", "sortie", "claim", sid, "--reserve")
    command = " ".join(words)
    # the rule: the empty result and exit 0 stand; a note on stderr names the closest callsign
    res = cli(repo, *words, "gosse")
    assert res.code == 0 and "fleetgit: note: no event has the callsign 'gosse'" in res.err
    assert f"hint: did you mean goose? fleetgit {command} goose" in res.err
    res = cli(repo, *words, "gosse", "--json")
    assert res.code == 0 and res.items() == []
    assert orjson.loads(res.err)["note"] == {
        "code": "unknown_callsign",
        "message": "no event has the callsign 'gosse'",
        "hint": f"did you mean goose? fleetgit {command} goose",
    }
    res = cli(repo, *words, "nobody-like-it")
    assert res.code == 0 and "hint: fleetgit pilot list shows the pilots" in res.err
    # a callsign some event had: an empty result is just empty, and a match is listed, silently
    cli(repo, "pilot", "register", "ice")
    res = cli(repo, *words, "ice", "--json")  # no sortie or reservation: empty, and quiet
    assert (res.code, res.err) == (0, "") and len(res.items()) == (words[0] == "events")
    res = cli(repo, *words, "goose", "--json")
    assert res.code == 0 and res.items() and res.err == ""
