"""Squawk: messages, threads, read/ack/archive state, search, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import flood


def as_(cli: Any, repo: Path, who: str, *args: str) -> Any:
    return cli(repo, "--as", who, *args)


def test_squawk_end_to_end(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose", "ice"):
        cli(repo, "pilot", "register", who)
    res = as_(
        cli,
        repo,
        "viper",
        "squawk",
        "send",
        "--to",
        "goose,ice",
        "--cc",
        "viper",
        "--subject",
        "Lexer API frozen",
        "--body",
        "tokens are final",
        "--ack-required",
        "--importance",
        "high",
    )
    assert res.code == 0, res.err
    mid = res.out.strip()
    inbox = as_(cli, repo, "goose", "squawk", "inbox", "--unread", "--json").json()["messages"]
    assert [m["message_id"] for m in inbox] == [mid] and inbox[0]["ack_required"]
    read = as_(cli, repo, "goose", "squawk", "read", mid[:8], "--json").json()
    assert read["body"] == "tokens are final"
    empty = {"messages": [], "more": 0}
    assert as_(cli, repo, "goose", "squawk", "inbox", "--unread", "--json").json() == empty
    as_(cli, repo, "goose", "squawk", "read", mid)  # reading twice records nothing new
    assert len(cli(repo, "events", "--type", "message_read", "--json").items()) == 1

    res = as_(cli, repo, "maverick", "squawk", "ack", mid)
    assert res.code == 1 and "not addressed to maverick" in res.err
    assert as_(cli, repo, "ice", "squawk", "ack", mid, "--notes", "on it").code == 0
    shown = as_(cli, repo, "ice", "squawk", "read", mid, "--json").json()
    ice = next(r for r in shown["recipients"] if r["callsign"] == "ice")
    assert ice["acked"] and ice["notes"] == "on it"

    reply = as_(
        cli,
        repo,
        "goose",
        "squawk",
        "send",
        "--to",
        "viper",
        "--subject",
        "Re: Lexer",
        "--body",
        "what about comments?",
        "--reply-to",
        mid,
    ).out.strip()
    thread = cli(repo, "squawk", "thread", reply, "--json").items()
    assert [m["message_id"] for m in thread] == [mid, reply]
    assert thread[1]["reply_to"] == mid and thread[1]["thread_id"] == mid

    found = cli(repo, "squawk", "search", "comments", "--json").json()
    assert [m["message_id"] for m in found["messages"]] == [reply] and found["more"] == 0
    phrase = cli(repo, "squawk", "search", '"tokens are"', "--json").json()
    assert phrase["messages"][0]["message_id"] == mid
    bad = cli(repo, "squawk", "search", "--fts", "AND AND")
    assert bad.code == 1 and 'not a valid FTS5 query (syntax error near "AND")' in bad.err
    assert "fts5:" not in bad.err
    for query, why in ((" ", "empty"), (". ... ,", "no word to look for")):
        bad = cli(repo, "squawk", "search", query)
        assert bad.code == 1 and why in bad.err, query
    assert cli(repo, "squawk", "search", "AND AND", "--json").json()["messages"] == []

    assert as_(cli, repo, "goose", "squawk", "archive", mid).code == 0
    assert as_(cli, repo, "goose", "squawk", "inbox", "--json").json() == empty
    (archived,) = as_(cli, repo, "goose", "squawk", "inbox", "--all", "--json").json()["messages"]
    assert archived["archived"] and archived["read"]
    table = as_(cli, repo, "goose", "squawk", "inbox", "--all").out.splitlines()
    assert len(table) == 2 and " archived" in table[1] and " read " not in table[1]
    assert [
        m["message_id"] for m in as_(cli, repo, "goose", "squawk", "sent", "--json").items()
    ] == [reply]

    res = as_(cli, repo, "viper", "squawk", "send", "--to", "nobody", "--subject", "x")
    assert res.code == 1 and "unknown callsign" in res.err and "--allow-unknown" in res.err
    assert (
        as_(
            cli,
            repo,
            "viper",
            "squawk",
            "send",
            "--to",
            "nobody",
            "--subject",
            "x",
            "--allow-unknown",
        ).code
        == 0
    )

    before = {t: cli(repo, "squawk", "search", "tokens", "--json").items() for t in ("x",)}
    assert cli(repo, "index", "rebuild").code == 0
    assert {t: cli(repo, "squawk", "search", "tokens", "--json").items() for t in ("x",)} == before


def test_inbox_shows_the_newest_page_and_says_how_many_more(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "viper")
    ids = flood(repo, "viper", 120)
    page = as_(cli, repo, "viper", "squawk", "inbox", "--json").json()
    assert [m["message_id"] for m in page["messages"]] == ids[::-1][:50] and page["more"] == 70
    human = as_(cli, repo, "viper", "squawk", "inbox")
    assert human.out.splitlines()[1].startswith(ids[-1])
    assert human.out.rstrip().endswith("... 70 older; --limit 0 shows all 120")
    every = as_(cli, repo, "viper", "squawk", "inbox", "--limit", "0", "--json").json()
    assert len(every["messages"]) == 120 and every["more"] == 0
    as_(cli, repo, "viper", "squawk", "read", ids[-1])
    unread = as_(cli, repo, "viper", "squawk", "inbox", "--unread", "--limit", "3", "--json").json()
    assert [m["message_id"] for m in unread["messages"]] == ids[-2:-5:-1]
    assert unread["more"] == 116
    short = as_(cli, repo, "viper", "squawk", "inbox", "--unread", "--limit", "3")
    assert "... 116 older" in short.out
    assert as_(cli, repo, "viper", "squawk", "inbox", "--limit", "-1").code == 2


def test_thread_ids_are_resolved_like_other_ids(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose"):
        cli(repo, "pilot", "register", who)
    first = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "q").out.strip()
    reply = as_(
        cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "a", "--reply-to", first
    ).out.strip()
    # a reply's id, or a short prefix of the first message's, names the same thread
    for ref in (reply, first[4:12]):
        res = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "more",
                  "--thread", ref, "--json")  # fmt: skip
        assert res.code == 0, res.err
        assert res.json()["thread_id"] == first
    assert len(cli(repo, "squawk", "thread", first, "--json").items()) == 4
    res = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "x",
              "--thread", first[:-1] + "?")  # fmt: skip
    assert res.code == 1 and f"did you mean {first}" in res.err
    before = len(cli(repo, "events", "--json").items())
    res = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "x",
              "--thread", "msg-zz0")  # fmt: skip
    assert res.code == 1 and "no message 'msg-zz0'" in res.err
    other = as_(cli, repo, "viper", "squawk", "send", "--to", "goose", "--subject", "new").out
    res = as_(cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "x",
              "--reply-to", first, "--thread", other.strip())  # fmt: skip
    assert res.code == 1 and "hint: drop --thread" in res.err
    assert len(cli(repo, "events", "--json").items()) == before + 1


def test_unknown_thread_hint_names_real_commands(repo: Path, cli: Any) -> None:
    res = cli(repo, "squawk", "thread", "msg-zz0")
    assert res.code == 1 and "squawk list" not in res.err
    assert "hint: list them: fleetgit --as CALLSIGN squawk inbox --all (or squawk sent)" in res.err


def test_unknown_recipients_get_the_closest_callsign(repo: Path, cli: Any) -> None:
    cli(repo, "pilot", "register", "goose")
    res = as_(cli, repo, "viper", "squawk", "send", "--to", "gooze", "--subject", "x")
    assert res.code == 1 and "did you mean goose?" in res.err
    assert "fleetgit pilot register gooze" in res.err and "--allow-unknown" in res.err


def test_inbox_columns_have_headers_over_them(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose"):
        cli(repo, "pilot", "register", who)
    as_(cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "hello there")
    mid = as_(
        cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "ack me",
        "--ack-required",
    ).out.strip()  # fmt: skip
    as_(cli, repo, "viper", "squawk", "read", mid)
    header, *rows = as_(cli, repo, "viper", "squawk", "inbox").out.splitlines()
    assert header.split() == ["ID", "SENT", "(UTC)", "FROM", "IMPORTANCE", "STATE", "SUBJECT"]
    column = header.index("SUBJECT")
    assert [r[column:] for r in rows] == ["ack me", "hello there"]
    assert "read, ack wanted" in rows[0] and "new" in rows[1]


def test_search_as_of_a_position(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose"):
        cli(repo, "pilot", "register", who)
    as_(cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "lexer one")
    pos = cli(repo, "events", "--json").items()[-1]["pos"]
    as_(cli, repo, "goose", "squawk", "send", "--to", "viper", "--subject", "lexer two")
    assert len(cli(repo, "squawk", "search", "lexer", "--json").json()["messages"]) == 2
    then = cli(repo, "squawk", "search", "lexer", "--as-of", str(pos), "--json").json()
    assert [m["subject"] for m in then["messages"]] == ["lexer one"] and then["more"] == 0


def test_search_shows_the_best_50_unless_a_limit_says_otherwise(repo: Path, cli: Any) -> None:
    flood(repo, "viper", 53)  # subjects msg-00000 ... msg-00052
    page = cli(repo, "squawk", "search", "msg", "--json").json()
    assert (len(page["messages"]), page["more"]) == (50, 3)
    every = cli(repo, "squawk", "search", "msg", "--limit", "0", "--json").json()
    assert (len(every["messages"]), every["more"]) == (53, 0)
    three = cli(repo, "squawk", "search", "msg", "--limit", "3")
    assert three.out.splitlines()[-1] == "... 50 more; --limit 0 shows all 53"
    assert len(three.out.splitlines()) == 1 + 3 + 1  # header, rows, the note
    exact = cli(repo, "squawk", "search", "msg", "--limit", "53")  # all of them: no note
    assert len(exact.out.splitlines()) == 1 + 53
    bad = cli(repo, "squawk", "search", "msg", "--limit", "-1")
    assert bad.code == 2 and "--limit" in bad.err


def test_search_finds_what_people_type_ids_paths_versions(repo: Path, cli: Any) -> None:
    for who in ("viper", "goose"):
        cli(repo, "pilot", "register", who)
    body = "re-run of src/app.py at v1.2 failed; don't merge; see srt-4p4d"
    send = ("squawk", "send", "--to", "goose", "--subject")
    mid = as_(cli, repo, "viper", *send, "CI", "--body", body)
    other = as_(cli, repo, "viper", *send, "run app v2")
    mid, other = mid.out.strip(), other.out.strip()
    for query in ("srt-4p4d", "re-run", "src/app.py", "v1.2", "don't", "SRT-4P4D merge", "src/ap*"):
        res = cli(repo, "squawk", "search", query, "--json")
        assert res.code == 0, (query, res.err)
        assert [m["message_id"] for m in res.json()["messages"]] == [mid], query
    # every word must be there (AND); a phrase in quotes is kept together
    assert cli(repo, "squawk", "search", "run app", "--json").json()["messages"] != []
    found = cli(repo, "squawk", "search", '"app v2"', "--json").json()["messages"]
    assert [m["message_id"] for m in found] == [other]
    assert cli(repo, "squawk", "search", "srt-4p4d nowhere", "--json").json()["messages"] == []
    # FTS5 syntax stays available behind --fts
    res = cli(repo, "squawk", "search", "--fts", "merge OR v2", "--json")
    assert {m["message_id"] for m in res.json()["messages"]} == {mid, other}
    res = cli(repo, "squawk", "search", "--fts", "srt-4p4d")
    assert res.code == 1 and "not a valid FTS5 query" in res.err and "Traceback" not in res.err


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        st.one_of(
            st.sampled_from(list("\"'*-:./^+()[]{}~@#NEARANDORNOT ")),
            st.characters(blacklist_categories=("Cs",)),
        ),
        max_size=30,
    )
)
def test_no_text_makes_search_fail_with_an_fts_error(repo: Path, cli: Any, query: str) -> None:
    res = cli(repo, "squawk", "search", "--json", "--", query)
    if res.code == 0:
        assert res.json()["more"] == 0
        return
    assert res.code == 1, res.err
    assert "empty" in res.err or "no word to look for" in res.err, (query, res.err)
