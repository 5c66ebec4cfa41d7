"""`fleetgit demo`: a small fleet in a throw-away repository, driven through the real CLI."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from fleetgit.errors import FleetError


class DemoRun(NamedTuple):
    root: str
    kept: bool
    steps: list[dict[str, Any]]  # section, command, exit_code, output


class Demo:
    def __init__(self, root: Path, *, echo: bool = True) -> None:
        self.root = root
        self.repo = root / "hangar"
        self.echo = echo  # print as it goes; the steps are recorded either way
        self.section = ""
        self.steps: list[dict[str, Any]] = []
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Demo",
            "GIT_AUTHOR_EMAIL": "demo@example.com",
            "GIT_COMMITTER_NAME": "Demo",
            "GIT_COMMITTER_EMAIL": "demo@example.com",
            "NO_COLOR": "1",
        }
        self.env.pop("FLEET_CALLSIGN", None)

    def print(self, text: str) -> None:
        if self.echo:
            print(text)

    def say(self, text: str) -> None:
        self.section = text
        self.print(f"\n## {text}")

    def run(
        self, *args: str, at: str | None = None, expect: int = 0, pilot: str | None = None
    ) -> str:
        """Run a command in the main worktree (or, with `at`, with `-C at`), echo it and its
        output exactly as a reader could type them, and insist on the expected exit code."""
        if at is not None:
            args = (args[0], "-C", at, *args[1:])
        shown = ("FLEET_CALLSIGN=" + pilot + " " if pilot else "") + shlex.join(args)
        self.print(f"$ {shown}")
        fleetgit = [sys.executable, "-m", "fleetgit"]
        argv = [*fleetgit, *args[1:]] if args[0] == "fleetgit" else list(args)
        env = {**self.env, "FLEET_CALLSIGN": pilot} if pilot else self.env
        proc = subprocess.run(
            argv, cwd=self.repo, env=env, capture_output=True, text=True, check=False
        )
        output = (proc.stdout + proc.stderr).rstrip()
        self.steps.append(
            {
                "section": self.section,
                "command": shown,
                "exit_code": proc.returncode,
                "output": output,
            }
        )
        if output:
            self.print("\n".join(f"  {line}" for line in output.splitlines()))
        if proc.returncode != expect:
            raise FleetError(f"demo step failed (exit {proc.returncode}, wanted {expect}): {shown}")
        if expect:
            self.print(f"  (exit {proc.returncode}, as expected)")
        return proc.stdout

    def last_pos(self) -> int:
        """The newest position in this clone's index (read quietly)."""
        argv = [sys.executable, "-m", "fleetgit", "index", "status", "--json"]
        proc = subprocess.run(argv, cwd=self.repo, env=self.env, capture_output=True, check=True)
        return int(json.loads(proc.stdout)["last_pos"])

    def setup(self) -> None:
        self.say("A git repository for the fleet to work in")
        self.repo.mkdir()
        self.run("git", "init", "-q", "-b", "main")
        (self.repo / "app.py").write_text("print('hello')\n", encoding="utf-8")
        self.run("git", "add", "app.py")
        self.run("git", "commit", "-q", "-m", "initial commit")
        self.say("fleetgit init: config, events directory, .gitattributes line, index")
        self.run("fleetgit", "init")

    def ledger(self) -> None:
        self.say("Pilots append events; each is one canonical JSON line in this writer's segment")
        self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "emit",
            "pilot_registered",
            "--stream",
            "pilot/viper-1",
            "--data",
            '{"callsign": "viper-1", "program": "claude-code", "model": "opus"}',
        )
        self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "emit",
            "mission_created",
            "--stream",
            "mission/msn-demo",
            "--data",
            '{"mission_id": "msn-demo", "title": "Ship the parser", "priority": "high"}',
            "--expect-version",
            "0",
        )
        self.say("Optimistic concurrency: the stream moved on, so a stale writer is refused")
        self.run(
            "fleetgit",
            "--as",
            "maverick",
            "emit",
            "mission_started",
            "--stream",
            "mission/msn-demo",
            "--data",
            '{"mission_id": "msn-demo"}',
            "--expect-version",
            "0",
            expect=1,
        )
        self.say("Bad input is refused with one line naming the field; nothing is written")
        self.run(
            "fleetgit",
            "emit",
            "mission_created",
            "--stream",
            "mission/msn-x",
            "--data",
            '{"mission_id": "msn-x", "title": "x", "priority": "urgent"}',
            expect=1,
        )
        self.run("fleetgit", "events")
        self.run("fleetgit", "stream", "mission/msn-demo")
        self.say("The segments are plain files under .fleet/; commit them (and only them) to git")
        (self.repo / "app.py").write_text("print('work in progress')\n", encoding="utf-8")
        self.run("fleetgit", "commit", "-m", "fleet: viper-1 plans the parser")
        self.run("git", "status", "--short")

    def reservations(self) -> None:
        self.say("Hooks: git itself now refuses commits that touch another pilot's files")
        self.run("fleetgit", "hooks", "install")
        self.say("viper-1 reserves the parser; maverick's overlapping request is refused whole")
        self.run("fleetgit", "--as", "viper-1", "reserve", "src/parser.py", "--reason", "rewrite")
        self.run("fleetgit", "--as", "maverick", "reserve", "src/*.py", "docs/", expect=1)
        self.run("fleetgit", "reservations")
        self.say("maverick edits the parser anyway: the pre-commit hook blocks the commit")
        (self.repo / "src").mkdir(exist_ok=True)
        (self.repo / "src/parser.py").write_text("def parse(): ...\n", encoding="utf-8")
        self.run("git", "add", "src/parser.py")
        self.run("git", "commit", "-q", "-m", "maverick: quick fix", pilot="maverick", expect=1)
        self.run("fleetgit", "--as", "maverick", "check", "src/parser.py", expect=1)
        self.say("viper-1 releases the file; the same commit now goes through")
        self.run("fleetgit", "--as", "viper-1", "release", "src/parser.py")
        self.run("git", "commit", "-q", "-m", "maverick: quick fix", pilot="maverick")
        self.run("git", "log", "--oneline", "-1")

    def fleet(self) -> None:
        self.say("The fleet: three pilots, one mission, sorties with dependencies")
        for who, model in (("viper-1", "opus"), ("maverick", "sonnet"), ("goose", "haiku")):
            self.run(
                "fleetgit", "pilot", "register", who, "--program", "claude-code", "--model", model
            )
        mission = self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "mission",
            "create",
            "Ship the parser",
            "--priority",
            "high",
        ).strip()
        grammar = self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "sortie",
            "create",
            "Grammar",
            "--mission",
            mission,
            "--file",
            "src/grammar.py",
        ).strip()
        lexer = self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "sortie",
            "create",
            "Lexer",
            "--mission",
            mission,
            "--depends-on",
            grammar,
            "--priority",
            "critical",
            "--file",
            "src/lexer.py",
        ).strip()
        self.run("fleetgit", "sortie", "list", "--ready")
        planned = self.last_pos()
        self.say("Work orders: small tasks under a sortie, for registered pilots (typos refused)")
        order = self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "workorder",
            "create",
            "Tokenise the keywords",
            "--sortie",
            lexer,
        ).strip()
        self.run("fleetgit", "--as", "viper-1", "workorder", "assign", order, "gose", expect=1)
        self.run("fleetgit", "--as", "viper-1", "workorder", "assign", order, "goose")
        self.say("maverick claims the grammar (and reserves its file); goose is too late")
        self.run("fleetgit", "--as", "maverick", "sortie", "claim", grammar, "--reserve")
        self.run("fleetgit", "--as", "goose", "sortie", "claim", grammar, expect=1)
        self.run("fleetgit", "--as", "goose", "sortie", "claim", lexer)
        self.run("fleetgit", "--as", "goose", "sortie", "start", lexer, expect=1)
        self.run("fleetgit", "--as", "maverick", "sortie", "start", grammar)
        self.run("fleetgit", "--as", "maverick", "sortie", "progress", grammar, "--percent", "40")
        self.run(
            "fleetgit",
            "--as",
            "maverick",
            "sortie",
            "block",
            grammar,
            "--reason",
            "which keywords?",
        )
        self.say("Squawk: maverick asks, viper-1 answers in the thread, maverick acknowledges")
        question = self.run(
            "fleetgit",
            "--as",
            "maverick",
            "squawk",
            "send",
            "--to",
            "viper-1",
            "--subject",
            "Keywords",
            "--body",
            "Are let and fn reserved?",
        ).strip()
        self.run("fleetgit", "--as", "viper-1", "squawk", "inbox", "--unread")
        answer = self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "squawk",
            "send",
            "--to",
            "maverick",
            "--subject",
            "Re: Keywords",
            "--body",
            "Yes, both.",
            "--reply-to",
            question,
            "--ack-required",
        ).strip()
        self.run("fleetgit", "--as", "maverick", "squawk", "ack", answer, "--notes", "thanks")
        self.run("fleetgit", "squawk", "thread", question)
        self.run("fleetgit", "--as", "maverick", "sortie", "resume", grammar)
        self.say("Locks: one migration at a time; goose gives up after waiting a second")
        self.run("fleetgit", "--as", "maverick", "lock", "acquire", "schema", "--ttl", "10m")
        self.run("fleetgit", "--as", "goose", "lock", "acquire", "schema", "--wait", "1s", expect=1)
        self.say("maverick checkpoints, then loses its context; resume brings it back")
        self.run(
            "fleetgit",
            "--as",
            "maverick",
            "checkpoint",
            "create",
            "--sortie",
            grammar,
            "--progress",
            "60",
            "--summary",
            "keywords settled, operators left",
            "--next-step",
            "operator precedence",
            "--file",
            "src/grammar.py",
        )
        self.run("fleetgit", "--as", "viper-1", "mission", "start", mission)
        self.run("fleetgit", "--as", "maverick", "resume", "--latest")
        self.run(
            "fleetgit",
            "--as",
            "maverick",
            "sortie",
            "complete",
            grammar,
            "--summary",
            "grammar done",
        )
        self.run("fleetgit", "--as", "maverick", "lock", "release", "schema")
        self.run("fleetgit", "--as", "goose", "sortie", "start", lexer)
        self.run("fleetgit", "--as", "goose", "workorder", "complete", order, "--summary", "done")
        self.run("fleetgit", "workorder", "list", "--sortie", lexer)
        self.run("fleetgit", "mission", "show", mission)
        self.run("fleetgit", "pilot", "list")
        self.say(f"Time travel: any list or show as of a position ({planned}: nothing claimed yet)")
        self.run("fleetgit", "mission", "show", mission, "--as-of", str(planned))
        self.say("Cursors: a consumer (a CI bot, say) reads what it has not seen, then moves on")
        self.run("fleetgit", "events", "--consumer", "ci-bot", "--type", "sortie_completed")
        self.run("fleetgit", "events", "--consumer", "ci-bot", "--type", "sortie_completed",
                 "--advance")  # fmt: skip
        self.run("fleetgit", "cursor", "show", "ci-bot")
        self.run("fleetgit", "events", "--consumer", "ci-bot")
        self.run("fleetgit", "commit", "-m", "fleet: the parser mission so far")

    def branches(self) -> None:
        self.say("A second worktree is a second writer; the clone's index sees both at once")
        wt = "../hangar-feature"  # beside the main worktree; its commands run with -C
        self.run("git", "worktree", "add", "-q", "-b", "feature", wt)
        self.run(
            "fleetgit",
            "--as",
            "maverick",
            "emit",
            "sortie_created",
            "--stream",
            "sortie/srt-lexer",
            "--data",
            '{"sortie_id": "srt-lexer", "mission_id": "msn-demo", "title": "Lexer"}',
            at=wt,
        )
        self.say("The main worktree sees the feature worktree's event at once, uncommitted")
        self.run("fleetgit", "events", "--type", "sortie_created")
        self.run("fleetgit", "commit", "-m", "fleet: maverick takes the lexer", at=wt)
        self.say("Meanwhile the main worktree appends and commits on main")
        self.run(
            "fleetgit",
            "--as",
            "viper-1",
            "emit",
            "mission_started",
            "--stream",
            "mission/msn-demo",
            "--data",
            '{"mission_id": "msn-demo"}',
            "--expect-version",
            "1",
        )
        self.run("fleetgit", "commit")
        self.say("Both branches appended; the merge cannot conflict (one writer per directory)")
        self.run("git", "merge", "-q", "--no-edit", "feature")
        self.run("git", "log", "--oneline", "--graph")
        self.say("verify reads every segment of every source; rebuild re-derives the index")
        self.run("fleetgit", "verify")
        self.run("fleetgit", "index", "rebuild")
        self.run("fleetgit", "index", "status")
        self.run("fleetgit", "events", "--stream", "mission/msn-demo", "--json")


def run_demo(keep: bool = False, *, echo: bool = True) -> DemoRun:
    """Run every section; `echo` prints them as they go (else only the steps are returned)."""
    import shutil

    root = Path(tempfile.mkdtemp(prefix="fleetgit-demo-"))
    demo = Demo(root, echo=echo)
    try:
        demo.print(f"# fleetgit demo in {root}")
        demo.setup()
        demo.ledger()
        demo.reservations()
        demo.fleet()
        demo.branches()
        done = f"The repository is kept at {demo.repo}" if keep else "Cleaning up."
        demo.print(f"\n# done. {done}")
    finally:  # a demo that failed half-way leaves nothing behind either
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return DemoRun(str(demo.repo), keep, demo.steps)
