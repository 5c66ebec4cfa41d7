"""Every shell block of the README and of docs/*.md runs as written, in order, each page in a
scratch repository of its own (a git repository with one commit: whatever else a page needs, it
sets up in its own lines).

`fleetgit` lines run in this process; any other line (`git commit`, `echo ... > file`) runs in
bash, in the scratch repository, with what `export` lines set (`FLEET_CALLSIGN=ice git commit`
works too: bash reads it). Lines that show `make` are set-up, and skipped. A block that cannot run
here (a CI config, a hook manager's files) is fenced as another language, not `sh`.

A page's example ids (msn-7k3m, srt-4q2x, ...) stand for what the commands before them printed:
each is mapped, in the order the page first names it, to the next real id of its kind that a
command prints. Lines a page shows being refused must be refused (exit 1) with the text REFUSED
names.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_repo

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
ID = re.compile(r"\b(msn|srt|wo|msg|res|chk)-[0-9a-z]{4}\b")
PRINTED = re.compile(r"\b(msn|srt|wo|msg|res|chk)-[0-9a-z]{6,}\b")
# per page: the lines it shows refused (a part of the line) -> what the refusal must say
REFUSED: dict[str, dict[str, str]] = {
    "README.md": {'git commit -m "lexer"': "goose"},
    "reservations.md": {
        "reserve 'src/*/lexer.py'": "viper-1",  # viper-1 holds src/parser/**
        "check src/parser/lexer.py": "viper-1",
        "check src/parser/": "viper-1",  # something in it
        "release --force": "active",  # the holder is still active
        'git commit -m "parser"': "viper-1",
    },
    "interfaces.md": {"show nosuchid --json": '"code":"not_found"'},
    "analytics.md": {'sql "delete from events"': "read-only"},
    "history.md": {"check tests/": "ice"},  # ice reserved tests/ on another machine
}
# per page: lines whose output must show a text (a part of the line) -> the text
SHOWS: dict[str, dict[str, str]] = {
    "README.md": {"--as goose status": "lexer.py", "resume --latest": "still yours"},
    "history.md": {
        "fleetgit reservations": "goose",
        "fleetgit verify": "ok",
    },
    "interfaces.md": {"--version": "fleetgit ", "status": "me: viper-1, active"},
    "analytics.md": {"sql --schema": "reservation_lost", "stats --pilot": "claim_to_completion"},
}
# a block fenced as one of these is shell the test would not run: fence it `sh`, or as what it is
HIDDEN_SHELL = {"", "bash", "shell", "console", "zsh", "shell-session"}
# placeholders a page names but no command prints (a refused line's id)
UNPRINTED = {"res-7k3m"}


def blocks(page: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def commands(page: Path) -> list[tuple[str, str]]:
    """(command, comment) of every line of the page's sh blocks, but `make` (set-up); a
    `fleetgit` line with `; ` holds several commands."""
    out = []
    for block in blocks(page):
        for line in block.replace("\\\n", " ").splitlines():
            code, _, comment = _split_comment(line)
            parts = code.split("; ") if code.strip().startswith("fleetgit ") else [code]
            for part in parts:
                if part.strip() and not part.strip().startswith("make "):
                    out.append((part.strip(), comment))
    return out


def _split_comment(line: str) -> tuple[str, str, str]:
    """Split a shell line at its first `#` outside quotes."""
    quote = ""
    for i, c in enumerate(line):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], "#", line[i + 1 :]
    return line, "", ""


class Ids:
    """Placeholder -> real id, in the order the page names them."""

    def __init__(self, page: Path) -> None:
        text = page.read_text(encoding="utf-8")
        self.order = list(dict.fromkeys(m.group() for m in ID.finditer(text)))
        self.real: dict[str, str] = {}

    def learn(self, output: str) -> None:
        for found in PRINTED.finditer(output):
            real = found.group()
            if real in self.real.values():
                continue
            kind = found.group(1)
            waiting = [p for p in self.order if p.startswith(kind + "-") and p not in self.real]
            if waiting:
                self.real[waiting[0]] = real

    def sub(self, command: str) -> str:
        return ID.sub(lambda m: self.real.get(m.group(), m.group()), command)


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_every_shell_line_runs_as_written(
    page: Path, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    ids = Ids(page)
    refused = REFUSED.get(page.name, {})
    seen_refused, shown = set(), set()
    for command, comment in commands(page):
        if command.startswith("export "):
            name, _, value = command[len("export ") :].partition("=")
            monkeypatch.setenv(name, value)
            continue
        line = ids.sub(command)
        if line.startswith("fleetgit "):
            argv = shlex.split(line)
            if "<ID>" in argv:
                last = cli(repo, "events", "--reverse", "--limit", "1", "--json").json()
                argv[argv.index("<ID>")] = _first(last)["id"][:13]
            res = cli(repo, *argv[1:])
            code, out, err = res.code, res.out, res.err
        else:
            proc = subprocess.run(
                ["bash", "-c", line], cwd=repo, capture_output=True, text=True, check=False
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        says = [text for key, text in refused.items() if key in command]
        where = f"{page.name}: {command}  # {comment}\n{out}\n{err}"
        assert code == (1 if says else 0), where
        if says:
            assert says[0] in out + err, where
            seen_refused.add(command)
        for key, text in SHOWS.get(page.name, {}).items():
            if key in command:
                assert text in out + err, where
                shown.add(key)
        ids.learn(out + err)
    assert len(seen_refused) >= len(refused), f"{page.name}: REFUSED names a line it lacks"
    assert shown == set(SHOWS.get(page.name, {})), f"{page.name}: SHOWS names a line it lacks"
    unmapped = [p for p in ids.order if p not in ids.real and p not in UNPRINTED]
    assert not unmapped, (page.name, ids.real)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_shell_block_hides_under_another_fence(page: Path) -> None:
    fences = re.findall(r"^```(.*)$", page.read_text(encoding="utf-8"), re.M)[::2]
    assert not [f for f in fences if f.strip() in HIDDEN_SHELL], page.name


def _first(listing: Any) -> dict[str, Any]:
    items = listing if isinstance(listing, list) else next(iter(listing.values()))
    return dict(items[0])


def test_the_python_api_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "interfaces.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    repo = make_repo(tmp_path / "repo")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code.replace('"path/to/repo"', repr(str(repo))), "README", "exec"), {})
    finally:
        os.chdir(old)
