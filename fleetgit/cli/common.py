"""The one boundary where errors become messages and exit codes, and shared output helpers.

Exit codes: 0 ok; 1 refused or invalid; 2 usage (typer/click); 3 unexpected, with the traceback
in a log file under the git dir.
"""

import functools
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
from typer.core import TyperGroup

from fleetgit import pilots
from fleetgit.errors import FleetError
from fleetgit.fleet import Fleet
from fleetgit.index.reads import INT_MAX  # what SQLite holds: a larger number would not bind
from fleetgit.paths import locate


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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsOf = Annotated[
    int | None,
    int_option("--as-of", metavar="POS", help="Answer from the state after position POS."),
]
Commands = Sequence[tuple[str, Callable[..., Any]]]

F = TypeVar("F", bound=Callable[..., Any])


class Globals(NamedTuple):
    directory: str | None = None
    actor: str | None = None
    json: bool = False


def add_group(app: typer.Typer, name: str, help: str, commands: Commands) -> None:
    """Add a command group. A fresh Typer each time: an app built twice gets no duplicates."""
    group = typer.Typer(help=help, no_args_is_help=True)
    for command, fn in commands:
        group.command(command)(fn)
    app.add_typer(group, name=name)


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


def open_fleet(ctx: typer.Context, *, catch_up: bool = True, repair: bool = True) -> Fleet:
    g = globals_of(ctx)
    fleet = Fleet.open(g.directory, actor=g.actor, catch_up=catch_up, repair=repair)
    if fleet.index.refused_new:
        note(
            "refused",
            f"{fleet.index.refused_new} line(s) in the ledger were skipped: invalid, or not"
            " readable as events (written by another clone or version)",
            "fleetgit verify lists them with where they are",
            g.json,
        )
    return fleet


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
    """A plain aligned text table; the last column is not padded."""
    cells = [list(headers)]
    cells += [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)][:-1]
    line = "  ".join([f"{{:<{w}}}" for w in widths] + ["{}"]).format
    return "\n".join([line(*row).rstrip() for row in cells])


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
        sys.stderr.write(visible(f"fleetgit: {message}\n"))
        if hint:
            sys.stderr.write(visible(f"hint: {hint}\n"))


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


class RootGroup(TyperGroup):
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
        argv = list(sys.argv[1:] if args is None else args)
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
        return self._stream.write(visible(text) if isinstance(text, str) else text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


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
        except Exception as exc:
            log = _log_traceback(directory)
            fail(
                "internal",
                f"internal error: {type(exc).__name__}: {exc}",
                f"details in {log}; please report it",
                3,
                as_json,
            )
        finally:
            sys.stdout = stdout
            if ctx is not None:
                ctx.color = color
        return None

    return wrapper  # type: ignore[return-value]
