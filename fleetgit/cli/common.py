"""The one boundary where errors become messages and exit codes, and shared output helpers.

Exit codes: 0 ok; 1 refused or invalid; 2 usage (typer/click); 3 unexpected, with the traceback
in a log file under the git dir.
"""

import functools
import inspect
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence, Sized
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import orjson
import typer
from typer._click.core import Command, Context
from typer._click.formatting import HelpFormatter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from fleetgit.domain.pilots import commands as pilots
from fleetgit.fleet import Fleet
from fleetgit.git.paths import locate
from fleetgit.index.reads import INT_MAX  # what SQLite holds: a larger number would not bind
from fleetgit.ledger import clock
from fleetgit.ledger.errors import FleetError, ValidationError, refused_by_the_system


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """A parser for an integer option from `low` to `high`: anything else is a usage error that
    names the range (exit 2), before the command runs."""

    def integer(text: str | int) -> int:
        text = str(text).strip()  # a default arrives as an int
        digits = text[1:] if text[:1] in ("-", "+") else text
        if not digits.isdigit() or not digits.isascii():
            raise typer.BadParameter(f"{text!r} is not a whole number")
        # no int() of a huge string: more digits than the bound has is out of range anyway
        value = int(text) if len(digits) <= len(str(INT_MAX)) else None
        if value is None or not low <= value <= high:
            raise typer.BadParameter(f"{text} is out of range: expected {low} to {high}")
        return value

    return integer


def int_option(
    *names: str, low: int = 0, high: int = INT_MAX, metavar: str = "N", **kw: Any
) -> Any:
    """The one way to declare an integer option: bounded (by default 0 to INT_MAX), so that no
    number typed reaches SQLite out of its range. A narrower range is shown in the help."""
    if high < INT_MAX:
        kw["help"] = " ".join(filter(None, [kw.get("help"), f"({low} to {high})"]))
    return typer.Option(*names, parser=_bounded(low, high), metavar=metavar, **kw)


def _chosen(choices: Sequence[str]) -> Callable[[str], str]:
    """A parser for an option that takes one of `choices`, in any case (`HIGH` is `high`, as hook
    modes are). Anything else goes through as typed, for the command's own check to refuse it
    in one line with a hint (exit 1), as it names every other bad value."""

    def choice(text: str) -> str:
        value = str(text).strip().lower()
        return value if value in choices else str(text)

    return choice


def _choice_help(help: str | None, choices: Sequence[str]) -> str:
    # spaces between the choices, so that a narrow terminal wraps between them, not inside one
    return " ".join(filter(None, [help, f"One of: {', '.join(choices)}."]))


def choice_option(
    *names: str, choices: Sequence[str], metavar: str = "WORD", help: str | None = None, **kw: Any
) -> Any:
    """The one way to declare an option that takes one of a few words (see `_chosen`)."""
    return typer.Option(
        *names, parser=_chosen(choices), metavar=metavar, help=_choice_help(help, choices), **kw
    )


def choice_argument(
    *, choices: Sequence[str], metavar: str, help: str | None = None, **kw: Any
) -> Any:
    """An argument that takes one of a few words, in any case."""
    return typer.Argument(
        parser=_chosen(choices), metavar=metavar, help=_choice_help(help, choices), **kw
    )


LIST_LIMIT = 50  # a listing of thousands would flood an agent's context; --limit 0 shows all
Limit = Annotated[
    int,
    int_option("--limit", help=f"Show at most N (default {LIST_LIMIT}; 0: all of them)."),
]
T = TypeVar("T")


def page(rows: Sequence[T], limit: int) -> tuple[list[T], int]:
    """The first `limit` of `rows` (0: all of them) and how many more there are."""
    shown = list(rows if not limit else rows[:limit])
    return shown, len(rows) - len(shown)


def print_page(
    key: str, items: list[Any], more: int, as_json: bool, human: str, word: str = "more"
) -> None:
    """A listing: with --json the one envelope of every listing, `{KEY: [...], "more": N}`
    (N: how many more match than the limit shows); else `human` and, when some are left out,
    a last line saying how many and how to see them all."""
    if as_json:
        print_json({key: items, "more": more})
        return
    typer.echo(human)
    if more:
        typer.echo(f"... {more} {word}; --limit 0 shows all {len(items) + more}")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsOf = Annotated[
    int | None,
    int_option("--as-of", metavar="POS", help="Answer from the state after position POS."),
]
Rev = Annotated[
    str | None,
    typer.Option(
        "--rev",
        metavar="REV",
        help="Answer from the ledger as recorded in commit REV: only the segments in its tree.",
    ),
]
Commands = Sequence[tuple[str, Callable[..., Any]]]

F = TypeVar("F", bound=Callable[..., Any])


class Globals(NamedTuple):
    directory: str | None = None
    actor: str | None = None
    json: bool = False
    register: bool = False


GLOBAL_OPTIONS = ("-C", "--as")  # the root's options that take a value
GLOBAL_FLAGS = ("--register",)


def hoist_globals(argv: list[str]) -> list[str]:
    """argv with the root's options moved before the command when given after it
    (`fleetgit reserve a.py --as viper-1`, as `fleetgit --as viper-1 reserve a.py`), and a
    `--json` given before the command moved after it. Nothing after `--` moves."""
    front: list[str] = []
    rest: list[str] = []
    json = False
    words = 0  # command words seen
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if arg in GLOBAL_FLAGS or arg.startswith("--as="):
            front.append(arg)
        elif arg == "--json" and not words:
            json = True
        else:
            words += not arg.startswith("-")
            rest.append(arg)
        i += 1
    if json:
        end = rest.index("--") if "--" in rest else len(rest)
        rest.insert(end, "--json")
    return front + rest


def kept_examples(help: str) -> str:
    """Help text for click's formatter: prose paragraphs are reflowed to the terminal, example
    paragraphs (`Example: fleetgit ...`) never are: click's `\b` marks them, and a command that
    the source broke over lines is joined into one, so that a copied example runs as shown."""
    paragraphs = []
    for paragraph in inspect.cleandoc(help).split("\n\n"):
        if paragraph.startswith("Example"):
            lines: list[str] = []
            for line in paragraph.splitlines():
                line = line.strip()
                if lines and not line.startswith(("Example", "fleetgit ")):
                    lines[-1] += " " + line
                else:
                    lines.append(line)
            paragraph = "\b\n" + "\n".join(lines)
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


class _KeptExamples:
    """Help written by click's plain formatter (no rich boxes: they re-wrapped examples and cut
    option help off), with `kept_examples` applied to the command's text."""

    help: str | None

    def format_help_text(self, ctx: Context, formatter: HelpFormatter) -> None:
        original = self.help
        self.help = kept_examples(original) if original else original
        try:
            super().format_help_text(ctx, formatter)  # type: ignore[misc]
        finally:
            self.help = original


class FleetCommand(_KeptExamples, TyperCommand):
    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, several_values(self, args))


def several_values(command: Command, args: list[str]) -> list[str]:
    """`args` with an option that may be repeated given several values at once spelled out:
    `--depends-on A B` is `--depends-on A --depends-on B`. The values run to the next option;
    what the command's required arguments still need is given back to them from the end
    (`sortie create --depends-on A "Title"`). Not for a command whose arguments take any
    number of values: there a word after the option could be either."""
    if any(p.nargs == -1 for p in command.params if isinstance(p, TyperArgument)):
        return args
    options = {n: p for p in command.params if isinstance(p, TyperOption) for n in p.opts}
    needed = sum(1 for p in command.params if isinstance(p, TyperArgument) and p.required)
    tokens: list[tuple[str, str]] = []  # (kind, text): opt, value, many (of a repeatable), arg
    greedy = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            tokens += [("value", a) for a in args[i:]]
            break
        option = options.get(arg)
        if option is not None and not option.is_flag and not option.count:
            tokens.append(("opt", arg))
            if i + 1 < len(args):
                tokens.append(("value", args[i + 1]))
                i += 1
            greedy = option.multiple and option.nargs == 1
        elif arg.startswith("-") and arg != "-":
            tokens.append(("opt", arg))
            greedy = False
        else:
            tokens.append(("many" if greedy else "arg", arg))
        i += 1
    missing = needed - sum(1 for kind, _ in tokens if kind == "arg")
    for at in range(len(tokens) - 1, -1, -1):
        if missing <= 0:
            break
        if tokens[at][0] == "many":
            tokens[at] = ("arg", tokens[at][1])
            missing -= 1
    out: list[str] = []
    for at, (kind, text) in enumerate(tokens):
        if kind == "many":
            flag = next(t for k, t in reversed(tokens[:at]) if k == "opt")
            out += [flag, text]
        else:
            out.append(text)
    return out


class FleetGroup(_KeptExamples, TyperGroup):
    pass


class FleetTyper(typer.Typer):
    """A Typer whose commands are `FleetCommand`s, with plain (not rich) help and errors."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("cls", FleetGroup)
        super().__init__(rich_markup_mode=None, **kw)

    def command(self, *args: Any, **kw: Any) -> Any:
        kw.setdefault("cls", FleetCommand)
        return super().command(*args, **kw)


def add_group(app: typer.Typer, name: str, help: str, commands: Commands) -> None:
    """Add a command group. A fresh Typer each time: an app built twice gets no duplicates."""
    group = FleetTyper(help=help, no_args_is_help=True)
    for command, fn in commands:
        group.command(command)(fn)
    app.add_typer(group, name=name)


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


def open_fleet(
    ctx: typer.Context, *, catch_up: bool = True, repair: bool = True, rev: str | None = None
) -> Fleet:
    """The ledger of the repository -C names; with `rev`, as recorded in that commit, to read."""
    g = globals_of(ctx)
    if g.actor == "":  # an empty --as is a mistake, not "whoever FLEET_CALLSIGN names"
        raise ValidationError(
            "--as '': the callsign is empty",
            hint="fleetgit --as CALLSIGN ..., or leave --as out to act as FLEET_CALLSIGN"
            " (else git config fleet.callsign)",
        )
    if rev is not None:
        return Fleet.at_rev(g.directory, rev, actor=g.actor)
    fleet = Fleet.open(
        g.directory, actor=g.actor, catch_up=catch_up, repair=repair, register=g.register
    )
    if fleet.index.snapshot_note:  # an index snapshot loaded, or refused (index/snapshots.py)
        note("snapshot", fleet.index.snapshot_note, None, g.json)
    if fleet.index.refused_new:
        note(
            "refused",
            f"{fleet.index.refused_new} line(s) in the ledger were skipped: invalid, or not"
            " readable as events (written by another clone or version)",
            "fleetgit verify lists them with where they are",
            g.json,
        )
    if fleet.config.sync == "on-write":
        fleet.before_close.append(lambda: _publish_on_write(fleet, g.json))
    return fleet


def _publish_on_write(fleet: Fleet, as_json: bool) -> None:
    """`sync = "on-write"`: after a command's local append, publish and push this writer's
    events within `sync_timeout`; a failure is a note on stderr, never a refused write."""
    if not fleet.appended:
        return
    from fleetgit.sync import engine

    try:
        engine.publish_on_write(fleet, timeout=fleet.config.sync_timeout)
    except Exception as exc:  # never a refused write: the append is done and kept
        message = exc.message if isinstance(exc, FleetError) else f"{type(exc).__name__}: {exc}"
        note(
            "sync_failed",
            f"on-write sync did not publish: {message}",
            "your write is kept; fleetgit sync sends it",
            as_json,
        )


# Terminal control codes (C0 but tab and line feed, a carriage return not ending a line, DEL,
# C1) and the invisible characters that reorder or break what is shown (bidi controls, the line
# and paragraph separators) are printed escaped: text from the ledger (another clone, an older
# version) must not be able to clear the screen or disguise what a reader sees. JSON output
# escapes them the JSON way (`print_json`), so it stays valid and passes through unchanged.
_INVISIBLE = "\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"\\r(?!\\n)|[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_UNSAFE_IN_JSON = re.compile(f"[\\x7f-\\x9f{_INVISIBLE}]")  # orjson escapes C0 itself


def visible(text: str) -> str:
    """`text` with what `_UNSAFE` matches shown as Python escapes (ESC -> \\x1b)."""
    return _UNSAFE.sub(lambda found: repr(found.group())[1:-1], text)


def print_json(value: Any) -> None:
    sys.stdout.write(json_text(value, indent=True) + "\n")


def json_text(value: Any, *, indent: bool = False) -> str:
    """`value` as JSON with every control or invisible character written as a JSON escape."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode()
    return _UNSAFE_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table; the last column is not padded. Its header is bold on a
    terminal that shows colour."""
    cells = [list(headers)]
    cells += [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)][:-1]
    line = "  ".join([f"{{:<{w}}}" for w in widths] + ["{}"]).format
    lines = [line(*row).rstrip() for row in cells]
    return "\n".join([styled(lines[0], "bold"), *lines[1:]])


# -- colour -----------------------------------------------------------------------------------
# On a terminal, and only there, some fixed parts of the output are styled (table headers, the
# `fleetgit:` and `hint:` of a message), with rich's styles; NO_COLOR (any value) or TERM=dumb
# turn it off. Piped output, hooks and JSON never pay rich's import. A styled span is marked in
# the text with a token of this process that no ledger text can know; `_SafeText` escapes
# everything else, then turns the marks into the terminal's codes.
_MARK = f"\x00{os.urandom(8).hex()}"
_SPAN = re.compile(f"{_MARK}([a-z ]+)\x01(.*?){_MARK}\x02", re.S)


def colour(stream: Any) -> bool:
    """Whether `stream` shows colour: a terminal, NO_COLOR unset (or empty), TERM not dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def styled(text: str, style: str) -> str:
    """`text` marked to show in `style` (bold, dim, red, ...) when stdout shows colour."""
    return f"{_MARK}{style}\x01{text}{_MARK}\x02" if colour(sys.stdout) else text


def paint(text: str, style: str) -> str:
    """`text` with the terminal codes of `style`, through rich (imported only here)."""
    from rich.style import Style

    return Style.parse(style).render(text)


def _unmark(text: str) -> str:
    """`text` escaped (`visible`), its styled spans painted."""
    out: list[str] = []
    end = 0
    for span in _SPAN.finditer(text):
        out += [visible(text[end : span.start()]), paint(visible(span[2]), span[1])]
        end = span.end()
    return "".join([*out, visible(text[end:])])


def _log_traceback(directory: str | None) -> Path:
    """Write the current traceback to a log under the git dir of the repository at `directory`
    (-C, else the current one), or a temp dir outside any; returns its path."""
    try:
        log_dir = locate(directory).local_dir / "logs"
    except FleetError:
        import tempfile  # rarely needed, and it costs 2 ms at start

        log_dir = Path(tempfile.gettempdir()) / "fleetgit-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


def report(code: str, message: str, hint: str | None, as_json: bool) -> None:
    """Write one error to stderr: a JSON object, or a line and its hint."""
    if as_json:
        err: dict[str, Any] = {"code": code, "message": message}
        if hint:
            err["hint"] = hint
        sys.stderr.write(json_text({"error": err}) + "\n")
    else:  # a message or hint may quote the ledger: shown escaped, as on stdout
        tty = colour(sys.stderr)
        prefix = paint("fleetgit:", "bold red") if tty else "fleetgit:"
        sys.stderr.write(f"{prefix} {visible(message)}\n")
        if hint:
            sys.stderr.write(f"{paint('hint:', 'cyan') if tty else 'hint:'} {visible(hint)}\n")


def note(code: str, message: str, hint: str | None, as_json: bool) -> None:
    """Write a note to stderr: something worth knowing that changes neither the result nor the
    exit code. `fleetgit: note: ...` and its hint, or `{"note": {...}}` with --json."""
    if as_json:
        body = {"code": code, "message": message, **({"hint": hint} if hint else {})}
        sys.stderr.write(json_text({"note": body}) + "\n")
    else:
        report(code, f"note: {message}", hint, False)


def note_unknown_callsign(
    fleet: Fleet, command: str, callsign: str | None, found: Sized, as_json: bool
) -> None:
    """After a listing filtered by `callsign` (`command` is the command and its flag, such as
    `sortie list --assigned-to`) came out empty: when no event ever had that callsign, say so,
    with the closest one. The empty result stands, and so does exit 0: the one rule for every
    filter by callsign."""
    if callsign is None or len(found):
        return
    close = pilots.never_seen(fleet, callsign)
    if close is None:
        return
    hint = (
        f"did you mean {' or '.join(close)}? fleetgit {command} {close[0]}"
        if close
        else "fleetgit pilot list shows the pilots"
    )
    note("unknown_callsign", f"no event has the callsign {callsign!r}", hint, as_json)


def fail(code: str, message: str, hint: str | None, exit_code: int, as_json: bool) -> None:
    report(code, message, hint, as_json)
    raise typer.Exit(exit_code)


class RootGroup(FleetGroup):
    """The root command. With `--json` anywhere in argv, usage errors (exit 2) are JSON too."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_globals(list(sys.argv[1:] if args is None else args))
        expand = windows_expand_args
        if "--json" not in argv or not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, expand, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, expand, **extra)
        except typer.TyperException as exc:  # typer's (click's) usage errors derive from it
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "fleetgit"
            kind = "usage" if exc.exit_code == 2 else "invalid"
            report(kind, exc.format_message(), f"see: {where} --help", True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            report("aborted", "aborted", None, True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class _SafeText:
    """A text stream that escapes terminal control codes on the way through."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: Any) -> Any:
        if not isinstance(text, str):
            return self._stream.write(text)
        return self._stream.write(_unmark(text) if _MARK in text else visible(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _internal(exc: Exception, directory: str | None, as_json: bool) -> None:
    log = _log_traceback(directory)
    fail(
        "internal",
        f"internal error: {type(exc).__name__}: {exc}",
        f"details in {log}; please report it",
        3,
        as_json,
    )


def boundary(fn: F) -> F:
    """Wrap a command: FleetError -> exit 1 with one line; anything else -> exit 3 and a log."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        ctx = kwargs.get("ctx")
        directory = None
        if ctx is not None:
            as_json = as_json or globals_of(ctx).json
            directory = globals_of(ctx).directory
        stdout, sys.stdout = sys.stdout, _SafeText(sys.stdout)
        # echo deletes ANSI sequences when stdout is not a terminal (unless the context asks for
        # color); this stream shows them escaped instead, the same whether piped or not
        color = ctx.color if ctx is not None else None
        if ctx is not None:
            ctx.color = True
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except FleetError as exc:
            fail(exc.code, exc.message, exc.hint, exc.exit_code, as_json)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None
        except OSError as exc:
            refused = refused_by_the_system(exc)
            if refused is not None:
                fail(refused.code, refused.message, refused.hint, refused.exit_code, as_json)
            _internal(exc, directory, as_json)
        except Exception as exc:
            _internal(exc, directory, as_json)
        finally:
            sys.stdout = stdout
            if ctx is not None:
                ctx.color = color
        return None

    return wrapper  # type: ignore[return-value]


Since = Annotated[
    str | None,
    typer.Option("--since", help="Only events from this time on: an ISO time or -2h."),
]


def time_option(text: str | None, flag: str) -> int | None:
    """A time option (`--since`, `--until`): an ISO time or a relative one (-2h), in ms; one
    line naming the flag when it is neither or past what the ledger can hold."""
    if text is None:
        return None
    try:
        ms = clock.parse_time(text)
        if ms <= clock.hlc_ms(INT_MAX):
            return ms
        reason = "later than any time the ledger can hold (the year 6429)"
    except ValueError:
        reason = "expected an ISO time or a relative one like -2h"
    except ValidationError as exc:  # a relative time's duration: no unit, zero, too far back
        reason = exc.message
    raise ValidationError(
        f"{flag} {text!r}: {reason}",
        hint=f"for example {flag} 2026-11-22T10:00:00Z or {flag} -30m",
    )
