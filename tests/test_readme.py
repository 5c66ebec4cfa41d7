"""Every command the README shows runs as written, in order, in a scratch repository.

The README's example ids (msn-7k3m, srt-4q2x, ...) stand for what the commands before them
printed: each is mapped, in the order the README first names it, to the next real id of its
kind that a command prints. Lines the README shows being refused must be refused (exit 1).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_repo

README = Path(__file__).resolve().parent.parent / "README.md"
ID = re.compile(r"\b(msn|srt|wo|msg|res|chk)-[0-9a-z]{4}\b")
PRINTED = re.compile(r"\b(msn|srt|wo|msg|res|chk)-[0-9a-z]{6,}\b")
# README lines that show a refusal, and why each is refused where the README runs it
REFUSED = {
    "reserve 'src/*/lexer.py'": "viper-1 holds src/parser/**",
    "check src/parser/lexer.py": "viper-1 holds it",
    "check src/parser/": "viper-1 holds something in it",
    "release --force": "the holder is still active",
}


def commands() -> list[tuple[str, str]]:
    """(command, comment) of every line of the README's sh blocks, but `make` (set-up)."""
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            code, _, comment = _split_comment(line)
            for part in code.split("; "):
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
    """README placeholder -> real id, in the order the README names them."""

    def __init__(self) -> None:
        text = README.read_text(encoding="utf-8")
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


def test_every_readme_command_runs_as_written(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src/parser").mkdir(parents=True)
    (repo / "src/parser/lexer.py").write_text("# lexer\n", encoding="utf-8")
    ids = Ids()
    ran = 0
    for command, comment in commands():
        if command.startswith("export "):
            name, _, value = command[len("export ") :].partition("=")
            monkeypatch.setenv(name, value)
            continue
        argv = shlex.split(ids.sub(command))
        assert argv[0] == "fleetgit", command
        if "<ID>" in argv:
            last = cli(repo, "events", "--reverse", "--limit", "1", "--json").json()
            argv[argv.index("<ID>")] = _first(last)["id"][:13]
        res = cli(repo, *argv[1:])
        refused = [why for key, why in REFUSED.items() if key in command]
        expected = 1 if refused else 0
        assert res.code == expected, f"{command}  # {comment}\n{res.out}\n{res.err}"
        ids.learn(res.out + res.err)
        ran += 1
    assert ran > 50
    assert not [p for p in ids.order if p not in ids.real and p != "res-7k3m"], ids.real


def _first(listing: Any) -> dict[str, Any]:
    items = listing if isinstance(listing, list) else next(iter(listing.values()))
    return dict(items[0])


def test_the_python_api_example_runs(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    repo = make_repo(tmp_path / "repo")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code.replace('"path/to/repo"', repr(str(repo))), "README", "exec"), {})
    finally:
        os.chdir(old)
