"""Patterns: git's wildmatch table, agreement with real git, and overlap against brute force."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.errors import ValidationError
from fleetgit.patterns import Matcher, matches, normalize, overlap_witness, overlaps, wildmatch

# git's t/t3070-wildmatch.sh cases: [WM_PATHNAME, WM_PATHNAME|WM_CASEFOLD, text, pattern]
CASES = json.loads((Path(__file__).parent / "data/wildmatch_cases.json").read_text())


@pytest.mark.parametrize(("glob", "iglob", "text", "pattern"), CASES)
def test_git_wildmatch_table(glob: int, iglob: int, text: str, pattern: str) -> None:
    assert wildmatch(pattern, text) is bool(glob)
    assert wildmatch(pattern, text, ignorecase=True) is bool(iglob)


def test_directory_patterns_cover_everything_below() -> None:
    assert matches("docs", "docs/a/b.md") and matches("docs", "docs")
    assert matches("docs/", "docs/a.md") and not matches("docs/", "docs")
    assert matches("src/*", "src/x/y.py") and not matches("src/*", "srcx/y.py")
    assert matches("src/**", "src/x/y.py") and not matches("src/**", "src")
    assert not matches("*.py", "a/b.py") and matches("**/*.py", "a/b.py")
    assert matches("SRC/A.py", "src/a.py", ignorecase=True) and not matches("SRC/A.py", "src/a.py")


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


@settings(max_examples=100, deadline=None)
@given(
    st.lists(patterns, min_size=1, max_size=20), st.lists(st.sampled_from(UNIVERSE), max_size=20)
)
def test_matcher_agrees_with_matches(pats: list[str], paths: list[str]) -> None:
    matcher = Matcher((p, i) for i, p in enumerate(pats))
    for path in paths:
        assert sorted(matcher.match(path)) == [i for i, p in enumerate(pats) if matches(p, path)]


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
