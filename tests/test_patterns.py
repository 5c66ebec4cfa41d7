"""Patterns: git's wildmatch table, agreement with real git, and overlap against brute force."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.guard import patterns as pat
from fleetgit.guard.patterns import (
    Matcher,
    automaton,
    matches,
    normalize,
    overlap_witness,
    overlaps,
    shown,
    tokenize,
    uncovered_name,
    wildmatch,
)
from fleetgit.ledger.errors import ValidationError

# git's t/t3070-wildmatch.sh cases: [WM_PATHNAME, WM_PATHNAME|WM_CASEFOLD, text, pattern]
CASES = json.loads((Path(__file__).parent / "data/wildmatch_cases.json").read_text())


@pytest.mark.parametrize(("glob", "iglob", "text", "pattern"), CASES)
def test_git_wildmatch_table(glob: int, iglob: int, text: str, pattern: str) -> None:
    assert wildmatch(pattern, text) is bool(glob)
    assert wildmatch(pattern, text, ignorecase=True) is bool(iglob)


@pytest.mark.parametrize(("glob", "iglob", "text", "pattern"), CASES)
def test_git_wildmatch_table_on_the_automaton(
    glob: int, iglob: int, text: str, pattern: str
) -> None:
    """The automaton that runs the patterns a regex could blow up on gives git's answers too."""
    try:
        tokenize(pattern)
    except pat.PatternError:
        assert not glob and not iglob  # wildmatch aborts: nothing matches
        return
    assert automaton(pattern, rule=False)(text) is bool(glob)
    assert automaton(pattern, rule=False, ignorecase=True)(text) is bool(iglob)


def test_directory_patterns_cover_everything_below() -> None:
    assert matches("docs", "docs/a/b.md") and matches("docs", "docs")
    assert matches("docs/", "docs/a.md") and not matches("docs/", "docs")
    assert matches("src/*", "src/x/y.py") and not matches("src/*", "srcx/y.py")
    assert matches("src/**", "src/x/y.py") and not matches("src/**", "src")
    assert not matches("*.py", "a/b.py") and matches("**/*.py", "a/b.py")
    assert matches("SRC/A.py", "src/a.py", ignorecase=True) and not matches("SRC/A.py", "src/a.py")


def test_case_folds_ascii_letters_only_as_git_does() -> None:
    """git's WM_CASEFOLD folds A-Z alone: every matcher and overlap agrees ('K' is the Kelvin
    sign, which Unicode folds to 'k')."""
    for pattern, path in (("É.txt", "é.txt"), ("[a-z]", "\u212a"), ("*É*/x*", "aéb/x1")):
        assert not matches(pattern, path, ignorecase=True)
        assert not Matcher([(pattern, 1)], ignorecase=True).match(path)
        assert not automaton(pattern, ignorecase=True)(path)
        assert not overlaps(pattern, pat.escape(path), ignorecase=True)
    assert matches("É/A.txt", "É/a.TXT", ignorecase=True)
    assert Matcher([("É/A.txt", 1)], ignorecase=True).match("É/a.TXT") == [1]


def test_overlap_examples() -> None:
    assert overlaps("src/*.py", "src/a*")  # src/a.py: text cross-matching misses this one
    assert not overlaps("src/*.py", "src/*.js")
    assert overlaps("src/**", "src/x/y.txt") and overlaps("docs", "docs/a.md")
    assert overlaps("a/*/c", "a/b/*") and overlaps("a/*/c", "a/b")
    assert not overlaps("a/b/c", "a/x/*") and not overlaps("*.py", "a/b.py")
    assert overlaps("**/*.md", "src/x.py")  # src/x.py/a.md: a path may be a directory
    assert not overlaps("[a-c]x", "[!a-c]x") and overlaps("[a-c]x", "[!b]x")
    assert overlaps("A/b", "a/B", ignorecase=True) and not overlaps("A/b", "a/B")


# -- agreement with real git ------------------------------------------------------------------

PATHS = [
    "a.py",
    "b.txt",
    "src/a.py",
    "src/b/c.py",
    "src/bc.js",
    "docs/x.md",
    "docs/y/z.md",
    "x/y/z/w.txt",
    "ab/cd",
    "a b/c.txt",
]
PATTERNS = [
    "*.py",
    "**/*.py",
    "src/*",
    "src/**",
    "src",
    "docs/",
    "docs/**/*.md",
    "src/*.py",
    "*/b*",
    "a?py",
    "[ab].*",
    "x/**/w.txt",
    "**/c*",
    "src/[!a]*",
    "a b/*",
    "**/y/**",
]


def test_matches_agrees_with_git_glob_pathspecs(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for p in PATHS:
        (repo / p).parent.mkdir(parents=True, exist_ok=True)
        (repo / p).write_text("x")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    for pattern in PATTERNS:
        out = subprocess.run(
            ["git", "--glob-pathspecs", "ls-files", "-z", "--", pattern],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        by_git = {p for p in out.split("\0") if p}
        # git's pathspecs extend only literal paths to what is below them; wildcards must match
        # the whole path. Our rule extends both (as .gitignore does), so compare like with like.
        literal = not any(c in pattern for c in "*?[")
        ours = {p for p in PATHS if (matches if literal else wildmatch)(pattern, p)}
        assert ours == by_git, pattern


# -- overlap: exact, checked against brute force and by witnesses -----------------------------

SEGMENTS = ["a", "b", "ab", "*", "?", "**", "a*", "*b", "[ab]", "[!a]"]
patterns = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join)
# Every pattern above has at most 3 segments and each segment matches strings of length <= 2 or
# any length; a shortest common path needs at most 3 + 3 segments... we bound the universe by
# segments of length <= 2 over {a, b, c} and at most 4 segments, and only assert the direction
# brute force can prove ("found a common path => overlaps"); the other direction is proved by
# the witness, which both real matchers must accept.
ALPHABET_SEGMENTS = ["".join(p) for n in (1, 2) for p in itertools.product("abc", repeat=n)]
UNIVERSE = [
    "/".join(p) for n in range(1, 4) for p in itertools.product(ALPHABET_SEGMENTS, repeat=n)
]


@settings(max_examples=150, deadline=None)
@given(patterns, patterns)
def test_overlap_is_exact(a: str, b: str) -> None:
    witness = overlap_witness(a, b)
    assert (witness is not None) == overlaps(a, b) == overlaps(b, a)
    if witness is not None:
        assert matches(a, witness) and matches(b, witness)
    else:
        assert not any(matches(a, p) and matches(b, p) for p in UNIVERSE)


@settings(max_examples=100, deadline=None)
@given(patterns, st.sampled_from(UNIVERSE))
def test_a_path_matched_by_both_is_found_as_overlap(a: str, path: str) -> None:
    literal = path  # a literal pattern covers exactly the path and what is below it
    if matches(a, path):
        assert overlaps(a, literal)


# -- a pattern known to name a file: nothing below it ------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    patterns,
    st.sampled_from(["", "/"]),
    st.sampled_from(UNIVERSE),
    st.lists(st.sampled_from(UNIVERSE), max_size=8),
    st.booleans(),
)
def test_a_file_overlap_misses_no_real_overlap(
    other: str, slash: str, file: str, paths: list[str], icase: bool
) -> None:
    """`file` names a file, so the paths that exist are never below it. Among those, any path
    both patterns cover is an overlap, and an overlap is always a path both cover (the file
    itself): exact, both ways round, and two files overlap only when they are one."""
    other += slash
    assert pat.can_name_file(file)
    found = overlaps(file, other, ignorecase=icase, a_file=True)
    assert found == overlaps(other, file, ignorecase=icase, b_file=True)
    for path in [file, *paths]:
        if path.startswith(file + "/"):
            continue  # below a file: no such path
        if matches(file, path, ignorecase=icase) and matches(other, path, ignorecase=icase):
            assert found, (file, other, path)
    if found:
        assert matches(other, file, ignorecase=icase)  # the witness: the file itself
    assert not found or overlaps(file, other, ignorecase=icase)  # narrower than the rule
    for second in paths:
        both = overlaps(file, second, ignorecase=icase, a_file=True, b_file=True)
        fold = pat.ascii_lower if icase else str
        assert both == (fold(file) == fold(second))


def test_a_file_has_nothing_below_it() -> None:
    """The example of issue 11: a file named like no test is free of a test glob."""
    assert overlaps("src/x/y/a_test.py", "src/**/test_*.py")  # .../a_test.py/test_1.py
    assert not overlaps("src/x/y/a_test.py", "src/**/test_*.py", a_file=True)
    assert not overlaps("src/**/test_*.py", "src/x/y/a_test.py", b_file=True)
    assert overlaps("src/x/test_a.py", "src/**/test_*.py", a_file=True)
    assert overlaps("src/x/y/a_test.py", "src/x/", a_file=True)
    assert not overlaps("src/x", "src/x/", a_file=True)  # a file is not below itself
    assert not pat.can_name_file("src/x/") and not pat.can_name_file("src/*.py")
    assert not pat.can_name_file("a\\*b")


def test_patterns_from_the_current_directory() -> None:
    f = pat.from_cwd
    assert f("lexer.py", "src/parser") == "src/parser/lexer.py"
    assert f("*.py", "src/parser") == "src/parser/*.py"
    assert f("../x/", "src/parser") == "src/x/" and f("..", "src") == "."
    assert f(".", "src/parser") == "src/parser" and f("./", "") == "./"
    assert f(":/README.md", "src") == "README.md" and f(":/", "src") == "."
    assert f("**", "src") == "src/**" and f("a", "") == "a"
    assert f("/abs", "src") == "/abs" and f("", "src") == ""  # left for normalize to refuse
    with pytest.raises(ValidationError, match="outside the repository"):
        f("../../x", "src")


def test_matcher_keeps_the_directory_rule_of_a_trailing_slash() -> None:
    """`py/**` covers all below py; `py/**/` only what is below a directory inside py."""
    both = Matcher([("py/**", 1), ("py/**/", 2)])
    assert both.match("py/file.txt") == [1] and not matches("py/**/", "py/file.txt")
    assert sorted(both.match("py/a/b.txt")) == [1, 2] and matches("py/**/", "py/a/b.txt")


# as reserved: also with a trailing slash (only what is below), or in capitals (core.ignorecase)
reserved = st.tuples(patterns, st.sampled_from(["", "/"]), st.booleans()).map(
    lambda t: (t[0] + t[1]).upper() if t[2] else t[0] + t[1]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(reserved, min_size=1, max_size=20),
    st.lists(st.sampled_from(["ab/b", "b/ab/cb", *UNIVERSE]), max_size=20),
    st.booleans(),
)
def test_matcher_agrees_with_matches(pats: list[str], paths: list[str], icase: bool) -> None:
    """Each pattern found once per path, whichever lookup finds it (`**/*b` on `ab/b` too)."""
    matcher = Matcher(((p, i) for i, p in enumerate(pats)), ignorecase=icase)
    for path in paths:
        expected = [i for i, p in enumerate(pats) if matches(p, path, ignorecase=icase)]
        assert sorted(matcher.match(path)) == expected


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/etc/passwd", "absolute"),
        ("C:\\x", "absolute"),
        ("src/../secret", "'..'"),
        ("../x", "'..'"),
        ("**", "whole repository"),
        ("*", "whole repository"),
        ("**/*", "whole repository"),
        (".", "whole repository"),
        ("./", "whole repository"),
        ("src/[ab", "unterminated"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        normalize(pattern)


def test_normalize_canonical_forms() -> None:
    assert normalize("./src//app.py") == "src/app.py"
    assert normalize("docs/") == "docs/"
    assert normalize("**", allow_broad=True) == "**"
    assert normalize(".", allow_broad=True) == "**"
    assert normalize("*/**") == "*/**"  # covers directories only, not the top-level files


def test_whole_repository_is_decided_exactly() -> None:
    # every top-level name covered: the whole repository
    for broad in ("**", "*", "**/*", "?*", "*?", "***", "[!/]*", "**/**"):
        assert uncovered_name(broad) is None, broad
    # not every top-level name: README, 1.txt or .env is left out, or no top-level file at all
    for pattern, left_out in (
        ("[a-z.]*", "README"),
        ("[a-z.]*", "1.txt"),
        ("[!.]*", ".env"),
        ("?", "ab"),
        ("??*", "a"),
        ("*/**", "README"),
        ("*/", "README"),
        ("[!a]*", "a"),
        ("*.*", "Makefile"),
    ):
        assert not matches(pattern, left_out)
        name = uncovered_name(pattern)
        assert name is not None and not matches(pattern, name), pattern
        assert normalize(pattern) == pattern  # reservable without --allow-broad


BROAD_SEGMENTS = ["*", "?", "**", "[a-z.]", "[!.]", "[!a]", "a", ".", "[]-]", "\\*", "[!/]"]
NAMES = ["a", "z", "README", "1.txt", ".env", "-", "]", "*", "\x01", "é", "a b", "ab", "aaa"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(BROAD_SEGMENTS), min_size=1, max_size=4).map("".join))
def test_whole_repository_agrees_with_the_matcher(first: str) -> None:
    for pattern in (first, first + "/**", first + "/", "**/" + first):
        name = uncovered_name(pattern)
        if name is None:  # covers the whole repository: every name tried, and what is below
            assert all(matches(pattern, n) and matches(pattern, n + "/x") for n in NAMES)
        else:  # the witness is a valid name (no NUL, '/' or surrogate) it does not cover
            assert name and not matches(pattern, name)
            assert "/" not in name and "\x00" not in name and name.encode("utf-8")


# -- matching stays polynomial ----------------------------------------------------------------

CRAFTED = [
    ("*a" * 16 + "b", "a" * 60),  # each `*` splits the segment again: exponential with a regex
    ("a/" + "**/" * 10 + "z", "a/" + "b/" * 40 + "y"),  # n ** 10 with a regex: 185 s
    ("a/" + "**/" * 10 + "z", "a/" + "b/" * 40 + "z"),
    ("**/" + "*a*/" * 8 + "b", "ab/" * 300 + "c"),
]


def test_patterns_that_would_backtrack_run_on_the_automaton() -> None:
    for pattern, _ in CRAFTED:
        assert not pat._regex_safe(tokenize(pattern)), pattern
    for common in ("src/*.py", "**/*.py", "src/**/test_*.py", "docs/**", "a/*/b/*/c", "*.md"):
        assert pat._regex_safe(tokenize(common)), common


def test_crafted_patterns_finish_quickly() -> None:
    """No timed assertion: a regression (a backtracking regex takes minutes to hours on these)
    fails by the generous timeout."""
    script = (
        "from fleetgit.guard.patterns import Matcher, matches, wildmatch\n"
        f"cases = {CRAFTED!r}\n"
        "print([(matches(p, t), wildmatch(p, t), len(Matcher([(p, 1)]).match(t)))"
        " for p, t in cases])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.strip() == str(
        [(False, False, 0), (False, False, 0), (True, True, 1), (False, False, 0)]
    )


# The worst the regex is left with: one `*` per segment and one `**/`, on long paths that fail
# late. Polynomial (see `_regex_safe`): these take milliseconds, where two `*` in a segment or
# two `**/` on the same sizes would not finish.
REGEX_WORST = [
    ("**/" + "*a/" * 8 + "b", "aa/" * 2000 + "c"),
    ("*" + "?" * 30 + "b", "a" * 5000),
    ("**/*" + "a" * 30 + "b", "a" * 5000),
    ("**/" + "*/" * 30 + "x", "a/" * 3000 + "y"),
    ("*/" * 30 + "x/**", "a/" * 3000 + "y"),
    ("**/" + "[!b]*[ab]/" * 20 + "c/", "ab/" * 2000 + "c"),
]


def test_the_regex_is_left_only_patterns_it_runs_in_polynomial_time() -> None:
    for pattern, _ in REGEX_WORST:
        assert pat._regex_safe(tokenize(pattern)), pattern
    script = (
        "from fleetgit.guard.patterns import matches, wildmatch\n"
        f"cases = {REGEX_WORST!r}\n"
        "print([matches(p, t) or wildmatch(p, t) for p, t in cases])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.strip() == str([False] * len(REGEX_WORST))


def test_the_automaton_takes_one_step_per_character() -> None:
    """Linear: a path reads one DFA state per character, made at most once."""
    pattern, path = CRAFTED[1]
    run = pat._Automaton(pat._nfa(pattern, False), False)
    assert not run.accepts(path) and len(run.sets) <= len(path) + 2
    made = len(run.sets)
    assert not run.accepts(path) and len(run.sets) == made  # the second time: lookups only


def test_the_automaton_starts_afresh_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pat._Automaton, "LIMIT", 3)
    run = pat._Automaton(pat._nfa("**/*a*b", False), False)
    for path in ("x/yab", "aaaab", "q/r/s/t", "zzab/c"):
        assert run.accepts(path) is matches("**/*a*b", path) and len(run.sets) <= 4


RICH_SEGMENTS = [*SEGMENTS, "*a*", "a*b*", "**", "*?*", "[a-c]*[!b]", "\\*", "A*", "[[:upper:]]"]
rich_patterns = st.lists(st.sampled_from(RICH_SEGMENTS), min_size=1, max_size=4).map("/".join)
rich_paths = st.lists(st.sampled_from(["a", "b", "ab", "A", "aBb", "*", "ba", "c"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(rich_patterns, st.booleans(), rich_paths.map("/".join), st.booleans())
def test_regex_and_automaton_agree(pattern: str, slash: bool, path: str, ignorecase: bool) -> None:
    """Both back ends, on every pattern (the regex is only slow on some, never wrong)."""
    pattern += "/" if slash else ""
    for rule in (True, False):
        base, dir_only = pat._split_dir(pattern) if rule else (pattern, False)
        regex = pat._regex_tester(tokenize(base), rule, dir_only, ignorecase)
        dfa = automaton(pattern, rule=rule, ignorecase=ignorecase)
        assert bool(regex(path)) is dfa(path), (pattern, path, rule, ignorecase)


# -- shown as stored ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "looks"),
    [
        ("src/app.py", "'src/app.py'"),
        ("star\\*name.txt", "'star\\*name.txt'"),
        ("a b/[x]?", "'a b/[x]?'"),
        ("it's", "$'it\\'s'"),
        ("tab\there", "$'tab\\x09here'"),
        ("bad\udcff.txt", "$'bad\\xff.txt'"),
        ("back\\slash\nnew", "$'back\\\\slash\\x0anew'"),
        ("é.txt", "'é.txt'"),
    ],
)
def test_shown_is_the_stored_text_and_pastes_back(text: str, looks: str) -> None:
    assert shown(text) == looks
    echoed = subprocess.run(["bash", "-c", f"printf %s {looks}"], capture_output=True, check=True)
    assert echoed.stdout == os.fsencode(text)


def test_non_utf8_is_refused_with_a_wildcard_hint() -> None:
    with pytest.raises(ValidationError) as exc:
        normalize("src/bad\udcff.txt")
    assert "$'src/bad\\xff.txt' is not valid UTF-8" in exc.value.message
    assert exc.value.hint is not None and "'src/bad?.txt'" in exc.value.hint
    assert matches("src/bad?.txt", "src/bad\udcff.txt")  # as the hook reads such a staged path
