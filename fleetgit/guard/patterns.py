"""Reservation patterns: git's wildmatch in pathname mode, plus "a directory covers below".

One tokenizer feeds two back ends: a regex (fast matching, used by the hooks) and a symbolic
automaton (overlap of two patterns, decided exactly by searching their product for a path both
accept). Pure and dependency-free; `fnmatch` is avoided on purpose (its translation changed in
Python 3.14 and silently broke another tool's guard).
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from fleetgit.ledger.errors import ValidationError

# The hook path imports this module: `typing` and `re` cost ~10 ms each to import here, so
# types are for mypy only and `re` is imported where a regex is really needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Generic, TypeVar

    T = TypeVar("T")

    class _Generic(Generic[T]):
        pass

else:
    T = None

    class _Generic:
        def __class_getitem__(cls, item: object) -> type:
            return cls


SLASH = 0x2F
MAX_CP = 0x10FFFF

_POSIX: dict[str, tuple[tuple[int, int], ...]] = {
    "alnum": ((48, 57), (65, 90), (97, 122)),
    "alpha": ((65, 90), (97, 122)),
    "blank": ((9, 9), (32, 32)),
    "cntrl": ((0, 31), (127, 127)),
    "digit": ((48, 57),),
    "graph": ((33, 126),),
    "lower": ((97, 122),),
    "print": ((32, 126),),
    "punct": ((33, 47), (58, 64), (91, 96), (123, 126)),
    "space": ((9, 13), (32, 32)),
    "upper": ((65, 90),),
    "xdigit": ((48, 57), (65, 70), (97, 102)),
}


class CharSet:
    """A set of characters: `ranges`, or everything but them when `negated`."""

    __slots__ = ("literal", "negated", "ranges")

    def __init__(
        self, ranges: tuple[tuple[int, int], ...], negated: bool = False, literal: bool = False
    ) -> None:
        self.ranges = ranges
        self.negated = negated
        self.literal = literal  # one plain character of the pattern (may be '/')

    def has(self, cp: int) -> bool:
        inside = any(lo <= cp <= hi for lo, hi in self.ranges)
        return inside != self.negated

    def has_any(self, cps: tuple[int, ...]) -> bool:
        """Is one of `cps` inside the ranges (then negated)? `cps` a character and its other case
        is how git's WM_CASEFOLD tests a class: `[!a]` refuses 'A' as it refuses 'a'."""
        inside = any(lo <= cp <= hi for cp in cps for lo, hi in self.ranges)
        return inside != self.negated

    def common(self, other: CharSet) -> int | None:
        """A character in both sets, or None. Exact: an intersection of unions of ranges and
        their complements is empty unless it holds a range end, a neighbour of one, or 'a'."""
        candidates = {ord("a"), 0}
        for lo, hi in (*self.ranges, *other.ranges):
            candidates.update((lo, hi, lo - 1, hi + 1))
        ordered = [ord("a"), *sorted(c for c in candidates if 0 <= c <= MAX_CP)]
        for cp in ordered:
            if self.has(cp) and other.has(cp):
                return cp
        return None


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


LIT = "lit"  # one character: CharSet
STAR = "star"  # any run of non-slash characters
DIRS = "dirs"  # `**/`: zero or more whole directories
ALL = "all"  # `**` at the end: anything, slashes included

if TYPE_CHECKING:
    Token = tuple[str, CharSet | None]
NOT_SLASH = CharSet(((SLASH, SLASH),), negated=True)
ANY = CharSet((), negated=True)


class PatternError(ValueError):
    """git's wildmatch would abort on this pattern (it never matches)."""


def _lit(ch: str) -> Token:
    return (LIT, CharSet(((ord(ch), ord(ch)),), literal=True))


@lru_cache(maxsize=4096)
def tokenize(pattern: str) -> tuple[Token, ...]:
    """Tokens of a wildmatch pattern in pathname mode; PatternError where wildmatch aborts."""
    out: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError("a trailing backslash escapes nothing")
            out.append(_lit(pattern[i + 1]))
            i += 2
        elif ch == "?":
            out.append((LIT, NOT_SLASH))
            i += 1
        elif ch == "*":
            i = _star(pattern, i, out)
        elif ch == "[":
            charset, i = _bracket(pattern, i + 1)
            out.append((LIT, charset))
        else:
            out.append(_lit(ch))
            i += 1
    return tuple(out)


def _star(pattern: str, i: int, out: list[Token]) -> int:
    j = i
    while j < len(pattern) and pattern[j] == "*":
        j += 1
    at_start = i == 0 or pattern[i - 1] == "/"
    if j - i >= 2 and at_start and (j == len(pattern) or pattern[j] == "/"):
        if j == len(pattern):
            out.append((ALL, None))
            return j
        out.append((DIRS, None))
        return j + 1  # the slash is part of `**/`
    out.append((STAR, None))
    return j


def _bracket(pattern: str, i: int) -> tuple[CharSet, int]:
    """Parse a class after `[` as git's dowild does; returns the set and the index after `]`."""
    n = len(pattern)
    negated = False
    if i < n and pattern[i] in "!^":
        negated = True
        i += 1
    ranges: list[tuple[int, int]] = []
    prev: int | None = None
    first = True
    while True:
        if i >= n:
            raise PatternError("unterminated character class")
        ch = pattern[i]
        if ch == "]" and not first:
            break
        first = False
        if ch == "\\":
            i += 1
            if i >= n:
                raise PatternError("unterminated character class")
            prev = ord(pattern[i])
            ranges.append((prev, prev))
        elif ch == "-" and prev is not None and i + 1 < n and pattern[i + 1] != "]":
            i += 1
            hi = pattern[i]
            if hi == "\\":
                i += 1
                if i >= n:
                    raise PatternError("unterminated character class")
                hi = pattern[i]
            ranges.append((prev, ord(hi)))
            prev = None
        elif ch == "[" and i + 1 < n and pattern[i + 1] == ":":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise PatternError("unterminated character class")
            if pattern[end - 1] != ":" or end - 1 < i + 2:
                ranges.append((ord("["), ord("[")))  # not a [:name:]: a plain '['
                prev = ord("[")
            else:
                name = pattern[i + 2 : end - 1]
                if name not in _POSIX:
                    raise PatternError(f"unknown character class [:{name}:]")
                ranges.extend(_POSIX[name])
                prev = None
                i = end
        else:
            prev = ord(ch)
            ranges.append((prev, prev))
        i += 1
    return _without_slash(CharSet(tuple(r for r in ranges if r[0] <= r[1]), negated)), i + 1


def _without_slash(cs: CharSet) -> CharSet:
    """In pathname mode a class never matches '/'."""
    if cs.negated:
        return CharSet((*cs.ranges, (SLASH, SLASH)), negated=True)
    pieces: list[tuple[int, int]] = []
    for lo, hi in cs.ranges:
        if lo <= SLASH <= hi:
            pieces.extend(r for r in ((lo, SLASH - 1), (SLASH + 1, hi)) if r[0] <= r[1])
        else:
            pieces.append((lo, hi))
    return CharSet(tuple(pieces))


# -- regex back end -------------------------------------------------------------------------


def _class_regex(cs: CharSet) -> str:
    import re

    if cs.literal:
        return re.escape(chr(cs.ranges[0][0]))
    if cs is NOT_SLASH:
        return "[^/]"
    parts = "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in cs.ranges
    )
    if cs.negated:
        return f"[^{parts}]"
    return f"[{parts}]" if parts else "(?!)"


def _regex(tokens: tuple[Token, ...]) -> str:
    out = []
    for kind, cs in tokens:
        if kind == LIT:
            assert cs is not None
            out.append(_class_regex(cs))
        elif kind == STAR:
            out.append("[^/]*")
        elif kind == DIRS:
            out.append("(?:.*/)?")
        else:
            out.append(".*")
    return "".join(out)


def _regex_safe(tokens: tuple[Token, ...]) -> bool:
    """Can Python's backtracking `re` run these tokens in low polynomial time on any path?

    Yes when every segment has at most one `*` and the pattern at most one `**/`. A `*` is
    `[^/]*`, which cannot cross a `/`: with one per segment, where a segment ends is fixed by
    the next literal `/` (or the end), so each `*` backtracks over its own segment alone and
    the whole match is linear once the segments' starts are fixed. One `**/` (`(?:.*/)?`) moves
    those starts over the O(n) slashes of the path: quadratic at worst. A final `**` (`.*` at the
    end) always succeeds once reached, so it never backtracks. What multiplies is two `*` in a
    segment (`*a*a*a...b`: each splits the segment again) or two `**/` (each takes any of the
    slashes): n ** k, for k of them.
    """
    dirs = stars = 0
    for kind, cs in tokens:
        if kind == STAR:
            stars += 1
        elif kind == DIRS:
            dirs, stars = dirs + 1, 0
        elif cs is not None and cs.literal and cs.ranges[0][0] == SLASH:
            stars = 0
        if stars > 1 or dirs > 1:
            return False
    return True


def _regex_tester(
    tokens: tuple[Token, ...], rule: bool, dir_only: bool, ignorecase: bool
) -> Callable[[str], object]:
    """wildmatch as a regex (a fullmatch); with the directory rule, the body matches the path
    or a parent directory of it (a prefix followed by `/`), or only a parent when `dir_only`."""
    import re

    body = _regex(tokens)
    # git folds ASCII letters only: 'K' (Kelvin) is no 'k' to git, nor then to `re.ASCII`
    flags = re.DOTALL | ((re.IGNORECASE | re.ASCII) if ignorecase else 0)
    if not rule:
        return re.compile(body, flags).fullmatch
    return re.compile(body + ("/" if dir_only else r"(?:/|\Z)"), flags).match


@lru_cache(maxsize=8192)
def _tester(pattern: str, rule: bool, ignorecase: bool) -> Callable[[str], object] | None:
    """A function whose result is truthy for the paths `pattern` matches: wildmatch alone, or
    with the directory rule (`rule`). None when wildmatch aborts on the pattern (it matches
    nothing). A regex where backtracking stays low-polynomial, else the automaton."""
    base, dir_only = _split_dir(pattern) if rule else (pattern, False)
    try:
        tokens = tokenize(base)
    except PatternError:
        return None
    if _regex_safe(tokens):
        return _regex_tester(tokens, rule, dir_only, ignorecase)
    return automaton(pattern, rule=rule, ignorecase=ignorecase)


def wildmatch(pattern: str, path: str, *, ignorecase: bool = False) -> bool:
    """git's wildmatch(pattern, path, WM_PATHNAME [| WM_CASEFOLD])."""
    test = _tester(pattern, False, ignorecase)
    return test is not None and bool(test(path))


def _split_dir(pattern: str) -> tuple[str, bool]:
    """`docs/` covers only what is below docs; a pattern without it covers itself and below."""
    return (pattern[:-1], True) if pattern.endswith("/") and len(pattern) > 1 else (pattern, False)


def matches(pattern: str, path: str, *, ignorecase: bool = False) -> bool:
    """Does `pattern` cover `path`: a wildmatch of the path or of one of its parent directories.
    Polynomial in the path and the pattern, whatever the pattern (see `_regex_safe`)."""
    test = _tester(pattern, True, ignorecase)
    return test is not None and bool(test(path))


def _slashes(path: str) -> list[int]:
    return [k for k, ch in enumerate(path) if ch == "/"]


_ASCII_LOWER = {cp: cp + 32 for cp in range(65, 91)}


def ascii_lower(text: str) -> str:
    """Lower case as git folds it with core.ignorecase: ASCII letters only ('É' stays)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _is_literal(text: str) -> bool:
    return not any(c in text for c in "*?[\\")


def _literal_dirs(pattern: str) -> str:
    """The directories a pattern names literally before its first wildcard (`src/lexer` for
    `src/lexer/*.py`, `src` for `src/pkg*/x`, '' for `*.py` or `**/x`): every path it covers
    lies below them."""
    first = min((i for i in map(pattern.find, "*?[\\") if i >= 0), default=len(pattern))
    return pattern[: pattern.rfind("/", 0, first) + 1].rstrip("/")


class Matcher(_Generic[T]):
    """Many patterns against many paths, for the hooks: 1,000 x 1,000 must take milliseconds.

    The common shapes need no regex: an exact path or directory (`a/b`, `a/b/`, `a/b/**`) is a
    dictionary lookup per path prefix, `**/name` a lookup per path segment, `**/*.ext` a lookup
    per path segment and suffix length. Other globs are
    bucketed by their literal leading directories (`src/lexer` for `src/lexer/*.py`), found by a
    lookup per directory of the path, and only those are matched by compiled regexes: a path is
    tested against the globs of its own directories, not against every glob under `src`.
    """

    def __init__(self, items: Iterable[tuple[str, T]], *, ignorecase: bool = False) -> None:
        self.ignorecase = ignorecase
        self.exact: dict[str, list[T]] = {}  # covers itself and below
        self.below: dict[str, list[T]] = {}  # covers only below
        self.segment: dict[str, list[T]] = {}  # `**/name`: any path with a segment `name`
        self.suffix: dict[str, list[T]] = {}  # `**/*.ext`: any path with a segment ending so
        self.suffix_lengths: set[int] = set()
        self.buckets: dict[str, list[tuple[str, T]]] = {}
        self.wild: list[tuple[str, T]] = []
        for pattern, payload in items:
            self._add(pattern, payload)

    def _key(self, text: str) -> str:
        return ascii_lower(text) if self.ignorecase else text

    def _add(self, pattern: str, payload: T) -> None:
        base, dir_only = _split_dir(pattern)
        if base.endswith("/**") and _is_literal(base[:-3]) and base[:-3] and not dir_only:
            base, dir_only = base[:-3], True  # `a/**`: all below a (`a/**/`: only below a/*/)
        if _is_literal(base):
            table = self.below if dir_only else self.exact
            table.setdefault(self._key(base), []).append(payload)
        elif (
            base.startswith("**/")
            and _is_literal(base[3:])
            and "/" not in base[3:]
            and not dir_only
        ):
            self.segment.setdefault(self._key(base[3:]), []).append(payload)
        elif (
            base.startswith("**/*")
            and _is_literal(base[4:])
            and "/" not in base[4:]
            and base[4:]
            and not dir_only
        ):
            self.suffix.setdefault(self._key(base[4:]), []).append(payload)
            self.suffix_lengths.add(len(base) - 4)
        else:
            dirs = _literal_dirs(base)
            if dirs:
                self.buckets.setdefault(self._key(dirs), []).append((pattern, payload))
            else:
                self.wild.append((pattern, payload))

    def match(self, path: str) -> list[T]:
        key = self._key(path)
        found: list[T] = []
        for k in (*_slashes(key), len(key)):
            prefix = key[:k]
            found.extend(self.exact.get(prefix, ()))
            if k < len(key):
                found.extend(self.below.get(prefix, ()))
        if self.segment or self.suffix:
            segments = set(key.split("/"))
            for seg in segments:
                found.extend(self.segment.get(seg, ()))
            # each ending once, however many segments end with it
            ends = {seg[-n:] for seg in segments for n in self.suffix_lengths}
            for end in ends & self.suffix.keys():
                found.extend(self.suffix[end])
        candidates = [*self.wild]
        if self.buckets:
            for k in _slashes(key):
                candidates.extend(self.buckets.get(key[:k], ()))
        for pattern, payload in candidates:
            if matches(pattern, path, ignorecase=self.ignorecase):
                found.append(payload)
        return found


# -- overlap --------------------------------------------------------------------------------

if TYPE_CHECKING:
    Edge = tuple[CharSet, int]


class _NFA:
    __slots__ = ("accept", "edges", "eps")

    def __init__(
        self,
        edges: tuple[tuple[Edge, ...], ...],  # per state: (label, target)
        eps: tuple[tuple[int, ...], ...],  # per state: epsilon targets
        accept: frozenset[int],
    ) -> None:
        self.edges, self.eps, self.accept = edges, eps, accept


def _fold(cs: CharSet) -> CharSet:
    """Close a set under ASCII case (for core.ignorecase); conservative for negated sets."""
    if cs.negated:
        return cs
    extra = []
    for lo, hi in cs.ranges:
        for a, b, delta in ((65, 90, 32), (97, 122, -32)):
            if _overlap((lo, hi), (a, b)):
                extra.append((max(lo, a) + delta, min(hi, b) + delta))
    return CharSet(tuple(_merge([*cs.ranges, *extra])))


@lru_cache(maxsize=4096)
def _nfa(pattern: str, ignorecase: bool, rule: bool = True) -> _NFA:
    """The automaton of `pattern`: with the directory rule (`rule`), or wildmatch's alone."""
    base, dir_only = _split_dir(pattern) if rule else (pattern, False)
    edges: list[list[Edge]] = [[]]
    eps: list[list[int]] = [[]]

    def new() -> int:
        edges.append([])
        eps.append([])
        return len(edges) - 1

    cur = 0
    for kind, cs in tokenize(base):
        if kind == LIT:
            assert cs is not None
            nxt = new()
            edges[cur].append((_fold(cs) if ignorecase else cs, nxt))
            cur = nxt
        elif kind == STAR:
            edges[cur].append((NOT_SLASH, cur))
            nxt = new()
            eps[cur].append(nxt)
            cur = nxt
        elif kind == DIRS:  # (.*/)?
            loop, nxt = new(), new()
            eps[cur].extend((loop, nxt))
            edges[loop].append((ANY, loop))
            edges[loop].append((CharSet(((SLASH, SLASH),)), nxt))
            cur = nxt
        else:  # ALL: .*
            edges[cur].append((ANY, cur))
    if not rule:
        return _NFA(tuple(map(tuple, edges)), tuple(map(tuple, eps)), frozenset({cur}))
    below = new()  # "/" then anything: a directory covers what is under it
    edges[cur].append((CharSet(((SLASH, SLASH),)), below))
    edges[below].append((ANY, below))
    accept = {below} if dir_only else {cur, below}
    return _NFA(tuple(map(tuple, edges)), tuple(map(tuple, eps)), frozenset(accept))


def _closure(nfa: _NFA, states: Iterable[int]) -> frozenset[int]:
    seen = set(states)
    stack = list(seen)
    while stack:
        for t in nfa.eps[stack.pop()]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return frozenset(seen)


class _Automaton:
    """The NFA run on a path as a DFA built lazily: one subset of NFA states per state, made
    the first time a (state, character) step is taken and then one dict lookup. Linear in the
    path whatever the pattern; a step not seen before costs O(states x edges). At most LIMIT
    subsets are kept (then it starts afresh), as a pathological pattern could make many."""

    __slots__ = ("fold", "moves", "nfa", "sets", "states")
    LIMIT = 1024
    START, DEAD = 0, 1

    def __init__(self, nfa: _NFA, fold: bool) -> None:
        self.nfa, self.fold = nfa, fold
        self.sets: list[frozenset[int]] = []
        self.states: dict[frozenset[int], int] = {}
        self.moves: list[dict[str, int]] = []
        self._reset()

    def _reset(self) -> None:
        self.sets.clear()
        self.states.clear()
        self.moves.clear()
        self._state(_closure(self.nfa, [0]))  # START
        self._state(frozenset())  # DEAD

    def _state(self, subset: frozenset[int]) -> int:
        found = self.states.get(subset)
        if found is None:
            found = self.states[subset] = len(self.sets)
            self.sets.append(subset)
            self.moves.append({})
        return found

    def _step(self, state: int, ch: str) -> int:
        cp = ord(ch)
        folded = self.fold and (65 <= cp <= 90 or 97 <= cp <= 122)
        cps = (cp, cp ^ 0x20) if folded else (cp,)  # ASCII letters only, as git folds
        edges = self.nfa.edges
        subset = _closure(
            self.nfa, [t for s in self.sets[state] for cs, t in edges[s] if cs.has_any(cps)]
        )
        if len(self.sets) >= self.LIMIT:
            self._reset()  # `state` is gone with the rest: nothing to remember the step in
            return self._state(subset)
        nxt = self.moves[state][ch] = self._state(subset)
        return nxt

    def accepts(self, text: str) -> bool:
        state, moves = self.START, self.moves
        for ch in text:
            nxt = moves[state].get(ch)
            if nxt is None:
                nxt = self._step(state, ch)
            if nxt == self.DEAD:
                return False
            state = nxt
        return not self.sets[state].isdisjoint(self.nfa.accept)


def automaton(
    pattern: str, *, rule: bool = True, ignorecase: bool = False
) -> Callable[[str], bool]:
    """The matcher that is polynomial for every pattern: `matches` (with the directory rule,
    `rule`) or `wildmatch` as a lazily built DFA. The regex is faster where it is safe."""
    return _Automaton(_nfa(pattern, False, rule), ignorecase).accepts


def overlap_witness(a: str, b: str, *, ignorecase: bool = False) -> str | None:
    """A shortest path that both patterns cover, or None when there is none.

    A breadth-first search of the product of the two automata; every label pair is intersected
    exactly, so the answer is exact for literals, `*`, `?`, `**` and character classes alike.
    """
    try:
        na, nb = _nfa(a, ignorecase), _nfa(b, ignorecase)
    except PatternError:
        return None
    start = (_closure(na, [0]), _closure(nb, [0]))
    parent: dict[tuple[frozenset[int], frozenset[int]], tuple[object, int]] = {start: (None, 0)}
    queue = deque([start])
    while queue:
        pair = queue.popleft()
        sa, sb = pair
        if sa & na.accept and sb & nb.accept:
            return _spell(parent, pair)
        for x in sa:
            for la, ta in na.edges[x]:
                for y in sb:
                    for lb, tb in nb.edges[y]:
                        cp = la.common(lb)
                        if cp is None:
                            continue
                        nxt = (_closure(na, [ta]), _closure(nb, [tb]))
                        if nxt not in parent:
                            parent[nxt] = (pair, cp)
                            queue.append(nxt)
    return None


def _spell(
    parent: dict[tuple[frozenset[int], frozenset[int]], tuple[object, int]], pair: object
) -> str:
    chars: list[str] = []
    while True:
        prev, cp = parent[pair]  # type: ignore[index]
        if prev is None:
            return "".join(reversed(chars))
        chars.append(chr(cp))
        pair = prev


def can_name_file(pattern: str) -> bool:
    """Can `pattern` be recorded as naming a file (`file_patterns` of a grant)? Only a literal
    path: no wildcard or escape, no trailing slash, not `**`."""
    return bool(pattern) and _is_literal(pattern) and not pattern.endswith("/")


def overlaps(
    a: str, b: str, *, ignorecase: bool = False, a_file: bool = False, b_file: bool = False
) -> bool:
    """Is there a path that both patterns cover? `a_file` (`b_file`): `a` names a file, so
    nothing lies below it and it covers that one path (only for `can_name_file` patterns)."""
    if a_file or b_file:
        if a_file and b_file:
            x, y = (ascii_lower(a), ascii_lower(b)) if ignorecase else (a, b)
            return x == y
        path, other = (a, b) if a_file else (b, a)
        return matches(other, path, ignorecase=ignorecase)
    if not any(c in a + b for c in "*?[\\"):  # two literals: equal, or one below the other
        x, y = (ascii_lower(a), ascii_lower(b)) if ignorecase else (a, b)
        x, y = x.rstrip("/"), y.rstrip("/")
        return x == y or x.startswith(y + "/") or y.startswith(x + "/")
    return overlap_witness(a, b, ignorecase=ignorecase) is not None


# -- validation -----------------------------------------------------------------------------


def shown(text: str) -> str:
    """A pattern or path as messages show it: exactly as stored, in single quotes and nothing
    escaped, so that `'star\\*name.txt'` pastes back into `fleetgit release` as it is. Text that
    single quotes cannot carry or a terminal should not be sent (a quote, control characters,
    bytes that are not UTF-8) is spelled the way bash's $'...' reads it back."""
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return "$'" + "".join(_spelled(c) for c in text) + "'"


def _spelled(c: str) -> str:
    cp = ord(c)
    if c in "\\'":
        return "\\" + c
    if 0xDC80 <= cp <= 0xDCFF:  # a byte that is not UTF-8, as Python decodes argv and git output
        return f"\\x{cp - 0xDC00:02x}"
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if c.isprintable():
        return c
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def check_utf8(what: str, text: str) -> None:
    """Refuse text that cannot be stored: the ledger is UTF-8, and a path or pattern from argv
    (or git) holding other bytes arrives as lone surrogates."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        wild = "".join("?" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        raise ValidationError(
            f"{what} {shown(text)} is not valid UTF-8: paths and patterns are stored in the"
            " ledger as UTF-8 text",
            hint=f"rename it to a UTF-8 name (git mv), or use a wildcard for each other byte,"
            f" like {shown(wild)}",
        ) from None


def uncovered_name(pattern: str) -> str | None:
    """A top-level name that `pattern` does not cover, or None when it covers them all (and so
    the whole repository: a pattern covering a name covers everything below it).

    Exact: the automaton read on one-segment names, as a DFA built by subsets, over one
    character of each class of characters its edges tell apart (valid in a path: not NUL,
    `/` or a surrogate); breadth first, so the name is a shortest one. Cheap: unless every
    one-character name is covered, that is found in the first round; if it is, the pattern's
    first segment has at most one character test and it accepts anything, so the subsets
    depend on the length alone (at most one per state).
    """
    nfa = _nfa(pattern, False)
    cuts = {1, SLASH, SLASH + 1, 0xD800, 0xE000}
    for edges in nfa.edges:
        for cs, _ in edges:
            for lo, hi in cs.ranges:
                cuts.update((lo, hi + 1))
    reps = [c for c in sorted(cuts) if 0 < c <= MAX_CP and c != SLASH and not 0xD800 <= c < 0xE000]
    seen: set[frozenset[int]] = set()  # reached by a non-empty name, and covered
    queue = deque([(_closure(nfa, [0]), "")])
    while queue:
        states, name = queue.popleft()
        for cp in reps:
            nxt = _closure(nfa, [t for s in states for cs, t in nfa.edges[s] if cs.has(cp)])
            if nxt in seen:
                continue
            if nxt.isdisjoint(nfa.accept):
                return name + chr(cp)
            seen.add(nxt)
            queue.append((nxt, name + chr(cp)))
    return None


def normalize(pattern: str, *, allow_broad: bool = False) -> str:
    """The canonical form of a reservation pattern, or ValidationError saying what is wrong."""
    check_utf8("pattern", pattern)
    if "\x00" in pattern:
        raise ValidationError(f"pattern {shown(pattern)}: contains a NUL character")
    if not pattern.strip():
        raise ValidationError("empty pattern", hint="name a path, like 'src/app.py' or 'docs/'")
    if pattern.startswith("/") or (pattern[1:3] in (":\\", ":/") and pattern[0].isalpha()):
        raise ValidationError(
            f"pattern {shown(pattern)}: absolute paths are not allowed",
            hint="use a path relative to the repository root, like 'src/app.py'",
        )
    trailing = pattern.endswith("/")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(
            f"pattern {shown(pattern)}: '..' segments are not allowed",
            hint="name the path from the repository root",
        )
    if not parts:
        parts = ["**"]
    result = "/".join(parts) + ("/" if trailing and parts != ["**"] else "")
    try:
        tokenize(result)
    except PatternError as exc:
        raise ValidationError(
            f"pattern {shown(pattern)}: {exc}", hint="escape [ or \\ with \\"
        ) from None
    if not allow_broad and uncovered_name(result) is None:
        raise ValidationError(
            f"pattern {shown(pattern)} covers the whole repository (every top-level name)",
            hint="reserve something narrower, or pass --allow-broad",
        )
    return result


TOP = ":/"  # git's magic for the top of the work tree: `:/src/app.py` from anywhere


def from_cwd(pattern: str, prefix: str) -> str:
    """`pattern` as typed in the directory `prefix` (its path from the top, '' at the top), as
    a pattern from the top: paths and patterns on the command line are relative to the current
    directory, as git takes them (`*.py` in src/parser is `src/parser/*.py`). `:/` anchors
    at the top. `.` and `..` are resolved here (`../x` in src/parser is `src/x`); one that
    leaves the repository is refused. An absolute path is left for `normalize` to refuse."""
    if pattern.startswith(TOP):
        pattern, prefix = pattern[len(TOP) :] or ".", ""
    if not pattern.strip() or pattern.startswith("/"):
        return pattern
    trailing = pattern.endswith("/")
    parts: list[str] = [p for p in prefix.split("/") if p]
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValidationError(
                    f"pattern {shown(pattern)} is outside the repository",
                    hint="name a path inside the work tree (:/ starts from its top)",
                )
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        return "./" if trailing else "."
    return "/".join(parts) + ("/" if trailing else "")


# Stored patterns `check_stored` surely takes, as a regular expression (intake's fast path,
# ledger/schema.py Field.fast): plain paths, segments of [A-Za-z0-9_.-] other than `.` and `..`
# joined by single slashes, maybe one trailing slash. `normalize` gives them back unchanged:
# relative, nothing to drop, no `..`, no character wildmatch treats apart, and allow_broad.
PLAIN_STORED = r"(?!\.\.?[/\"])[A-Za-z0-9_.-]+(?:/(?!\.\.?[/\"])[A-Za-z0-9_.-]+)*/?"


def check_stored(where: str, pattern: str) -> None:
    """A pattern as an event stores it: `reserve`'s rules (whole-repository patterns allowed, as
    `--allow-broad` grants them) and the canonical form `reserve` writes."""
    try:
        canonical = normalize(pattern, allow_broad=True)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc.message}", hint=exc.hint) from None
    if canonical != pattern:
        raise ValidationError(
            f"{where}: pattern {shown(pattern)} is not in canonical form",
            hint=f"write it as {shown(canonical)}",
        )


def escape(path: str) -> str:
    """The literal pattern of a path: wildmatch's special characters escaped."""
    return "".join("\\" + c if c in "*?[\\" else c for c in path)
