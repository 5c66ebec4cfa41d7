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

from fleetgit.ledger.errors import FleetError


def _quoted(arg: str) -> str:
    """An argument as a reader types it: an SQL query with 'literals' in double quotes."""
    plain = shlex.quote(arg)
    if "'" in arg and not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return plain


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

    def note(self, text: str) -> None:
        """A comment line between commands, as a shell would ignore it."""
        self.print(f"# {text}")

    def run(
        self, *args: str, at: str | None = None, expect: int = 0, pilot: str | None = None
    ) -> str:
        """Run a command in the main worktree (or, with `at`, with `-C at`), echo it and its
        output exactly as a reader could type them, and insist on the expected exit code."""
        if at is not None:
            args = (args[0], "-C", at, *args[1:])
        shown = ("FLEET_CALLSIGN=" + pilot + " " if pilot else "") + " ".join(map(_quoted, args))
        fleetgit = [sys.executable, "-m", "fleetgit"]
        argv = [*fleetgit, *args[1:]] if args[0] == "fleetgit" else list(args)
        env = {**self.env, "FLEET_CALLSIGN": pilot} if pilot else self.env
        return self._exec(argv, shown, env, expect)

    def fg(self, *args: str, who: str | None = None, at: str | None = None, expect: int = 0) -> str:
        """`fleetgit [--as WHO] ARGS`; the output, stripped (ids printed by create commands)."""
        acting = ("--as", who) if who else ()
        return self.run("fleetgit", *acting, *args, at=at, expect=expect).strip()

    def sh(self, line: str) -> None:
        """A shell line (an edit a reader could type), run by sh in the main worktree."""
        self._exec(["sh", "-c", line], line, self.env, 0)

    def _exec(self, argv: list[str], shown: str, env: dict[str, str], expect: int) -> str:
        self.print(f"$ {shown}")
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

    def quiet(self, *args: str) -> Any:
        """`fleetgit ARGS --json`, read without echo (to learn a position the reader saw)."""
        argv = [sys.executable, "-m", "fleetgit", *args, "--json"]
        proc = subprocess.run(argv, cwd=self.repo, env=self.env, capture_output=True, check=True)
        return json.loads(proc.stdout)

    def setup(self) -> None:
        self.say("A git repository for the fleet to work in")
        self.repo.mkdir()
        self.run("git", "init", "-q", "-b", "main")
        self.sh("echo \"print('hello')\" > app.py")
        self.run("git", "add", "app.py")
        self.run("git", "commit", "-q", "-m", "initial commit")
        self.say("fleetgit init: config, events directory, .gitattributes line, index")
        self.run("fleetgit", "init")

    def ledger(self) -> str:
        """Three pilots and the one mission of the story; returns the mission's id."""
        self.say("Every fact is an event: three pilots register, viper-1 creates the mission")
        for who, model in (("viper-1", "opus"), ("maverick", "sonnet"), ("goose", "haiku")):
            self.fg("pilot", "register", who, "--program", "claude-code", "--model", model)
        mission = self.fg(
            "mission", "create", "Ship the parser", "--priority", "high", who="viper-1"
        )
        self.fg("events")
        self.fg("stream", f"mission/{mission}")
        self.say("On disk: one canonical JSON line per event, in this writer's own segment")
        self.sh("head -n 1 .fleet/events/*/*.jsonl")
        self.say("emit writes any event; --expect-version 0 (new streams only) refuses a duplicate")
        data = {"mission_id": mission, "title": "Ship the parser"}
        self.fg("emit", "mission_created", "--stream", f"mission/{mission}", "--data",
                json.dumps(data), "--expect-version", "0", who="maverick", expect=1)  # fmt: skip
        self.say("Bad input is refused with one line naming the field; nothing is written")
        data = {"mission_id": "msn-docs", "title": "Write the docs", "priority": "urgent"}
        self.fg("emit", "mission_created", "--stream", "mission/msn-docs", "--data",
                json.dumps(data), who="viper-1", expect=1)  # fmt: skip
        return mission

    def commit(self) -> None:
        self.say(
            "fleetgit commit commits .fleet/ and nothing else: your own edits stay as they are"
        )
        self.sh("echo \"print('work in progress')\" >> app.py")
        self.run("git", "status", "--short")
        self.fg("commit", "-m", "fleet: viper-1 plans the parser")
        self.note(
            "app.py is still modified, unstaged and uncommitted: only the fleet's files went in"
        )
        self.run("git", "status", "--short")

    def reservations(self) -> None:
        self.say("Hooks: git itself now refuses commits that touch another pilot's files")
        self.fg("hooks", "install")
        self.say("viper-1 reserves the parser; maverick's overlapping request is refused whole")
        self.sh("mkdir -p src && touch src/parser.py")  # else reserve notes it matches nothing
        self.fg("reserve", "src/parser.py", "--reason", "rewrite", who="viper-1")
        self.fg("reserve", "src/*.py", "docs/", who="maverick", expect=1)
        self.say("A typo in --as acts as nobody: refused, with the closest registered callsign")
        self.fg("reserve", "docs/", who="mavrick", expect=1)
        self.fg("reservations")
        self.say("maverick writes the parser anyway: the pre-commit hook blocks the commit")
        self.sh("mkdir -p src && echo 'def parse(): ...' > src/parser.py")
        self.run("git", "add", "src/parser.py")
        self.run("git", "commit", "-q", "-m", "maverick: quick fix", pilot="maverick", expect=1)
        self.fg("check", "src/parser.py", who="maverick", expect=1)
        self.say("viper-1 releases the file; the same commit now goes through")
        self.fg("release", "src/parser.py", who="viper-1")
        self.run("git", "commit", "-q", "-m", "maverick: quick fix", pilot="maverick")
        self.run("git", "log", "--oneline", "-1")

    def plan(self, mission: str) -> tuple[str, str, str]:
        """viper-1 splits the mission; returns the grammar and errors sorties and a work order."""
        self.say("viper-1 plans two sorties (one waits for the other) and a work order")
        grammar = self.fg("sortie", "create", "Grammar", "--mission", mission,
                          "--file", "src/grammar.py", who="viper-1")  # fmt: skip
        errors = self.fg("sortie", "create", "Error messages", "--mission", mission,
                         "--depends-on", grammar, "--priority", "critical",
                         "--file", "src/errors.py", who="viper-1")  # fmt: skip
        self.fg("sortie", "list", "--ready")
        self.say("Work orders: small tasks under a sortie, for registered pilots (typos refused)")
        order = self.fg("workorder", "create", "Message for an unclosed bracket",
                        "--sortie", errors, who="viper-1")  # fmt: skip
        self.fg("workorder", "assign", order, "gose", who="viper-1", expect=1)
        self.fg("workorder", "assign", order, "goose", who="viper-1")
        return grammar, errors, order

    def work(self, mission: str, grammar: str, errors: str) -> None:
        self.say(
            "Work begins: viper-1 starts the mission; maverick claims the grammar and its file"
        )
        self.fg("mission", "start", mission, who="viper-1")
        self.fg("sortie", "claim", grammar, "--reserve", who="maverick")
        self.fg("sortie", "claim", grammar, who="goose", expect=1)
        self.say("goose takes the error messages, which cannot start before the grammar is done")
        self.fg("sortie", "claim", errors, who="goose")
        self.fg("sortie", "start", errors, who="goose", expect=1)
        self.fg("sortie", "start", grammar, who="maverick")
        self.fg("sortie", "progress", grammar, "--percent", "40", who="maverick")
        self.fg("sortie", "block", grammar, "--reason", "which keywords?", who="maverick")

    def squawk(self, grammar: str) -> None:
        self.say("Squawk: maverick asks, viper-1 answers in the thread, maverick acknowledges")
        question = self.fg("squawk", "send", "--to", "viper-1", "--subject", "Keywords",
                           "--body", "Are let and fn reserved?", who="maverick")  # fmt: skip
        self.fg("squawk", "inbox", "--unread", who="viper-1")
        answer = self.fg("squawk", "send", "--to", "maverick", "--subject", "Re: Keywords",
                         "--body", "Yes, both.", "--reply-to", question, "--ack-required",
                         who="viper-1")  # fmt: skip
        self.fg("squawk", "ack", answer, "--notes", "thanks", who="maverick")
        self.fg("squawk", "thread", question)
        self.fg("sortie", "resume", grammar, who="maverick")
        self.fg("sortie", "progress", grammar, "--percent", "60", "--note", "keywords settled",
                who="maverick")  # fmt: skip
        self.say("Locks: one migration at a time; goose gives up after waiting a second")
        self.fg("lock", "acquire", "schema", "--ttl", "10m", who="maverick")
        self.fg("lock", "acquire", "schema", "--wait", "1s", who="goose", expect=1)

    def recover(self, grammar: str) -> None:
        self.say("maverick checkpoints at 60%, then loses its context; resume brings it back")
        self.fg("checkpoint", "create", "--sortie", grammar, "--progress", "60",
                "--summary", "keywords settled, operators left",
                "--next-step", "operator precedence", "--file", "src/grammar.py",
                who="maverick")  # fmt: skip
        self.fg("squawk", "send", "--to", "maverick", "--subject", "Operators",
                "--body", "Precedence as in C.", who="viper-1")  # fmt: skip
        self.fg("resume", "--latest", who="maverick")

    def finish(self, mission: str, grammar: str, errors: str, order: str) -> None:
        self.say("maverick completes the grammar; that frees the file its claim reserved")
        self.fg("sortie", "complete", grammar, "--summary", "grammar done", who="maverick")
        self.fg("lock", "release", "schema", who="maverick")
        self.fg("reservations")
        self.say("Now goose can start, and finishes its work order")
        self.fg("sortie", "start", errors, who="goose")
        self.fg("workorder", "complete", order, "--summary", "done", who="goose")
        self.fg("sortie", "progress", errors, "--percent", "50", who="goose")
        self.fg("workorder", "list", "--sortie", errors)
        self.fg("mission", "show", mission)
        self.fg("pilot", "list")

    def history(self, mission: str) -> None:
        self.say("Time travel: any list or show as of a position, taken from a listing's POS")
        self.fg("events", "--type", "mission_started")
        started = self.quiet("events", "--type", "mission_started")["events"][0]["pos"]
        self.note(f"position {started}: the mission had started and nothing was claimed yet")
        self.fg("mission", "show", mission, "--as-of", str(started))
        self.say("Cursors: a consumer (a CI bot, say) reads what it has not seen, then moves on")
        self.fg("events", "--consumer", "ci-bot", "--type", "sortie_completed", "--advance")
        self.note(
            "--advance moves the cursor to the newest position examined, past what --type skipped"
        )
        self.fg("cursor", "show", "ci-bot")
        self.fg("events", "--consumer", "ci-bot")
        self.fg("commit", "-m", "fleet: the parser mission so far")

    def branches(self, mission: str, grammar: str, errors: str) -> None:
        self.say(
            "maverick takes the lexer in a second worktree, on branch feature: a second writer"
        )
        wt = "../hangar-feature"  # beside the main worktree; its commands run with -C
        self.run("git", "worktree", "add", "-q", "-b", "feature", wt)
        self.note("maverick writes the sortie's event by hand, to give it a readable id")
        lexer = {"sortie_id": "srt-lexer", "mission_id": mission, "title": "Lexer",
                 "depends_on": [grammar], "files": ["src/lexer.py"]}  # fmt: skip
        self.fg("emit", "sortie_created", "--stream", "sortie/srt-lexer", "--data",
                json.dumps(lexer), who="maverick", at=wt)  # fmt: skip
        self.fg("sortie", "claim", "srt-lexer", "--reserve", who="maverick", at=wt)
        self.fg("sortie", "start", "srt-lexer", who="maverick", at=wt)
        self.say("The main worktree sees the feature worktree's events at once, uncommitted")
        self.fg("mission", "show", mission)
        self.fg("commit", "-m", "fleet: maverick takes the lexer", at=wt)
        self.say("Meanwhile, on main, goose finishes; ci-bot sees only what is new to it")
        self.fg("sortie", "complete", errors, "--summary", "messages done", who="goose")
        self.fg("events", "--consumer", "ci-bot", "--type", "sortie_completed", "--advance")
        self.fg("commit", "-m", "fleet: goose finishes the error messages")
        self.say("Both branches appended; the merge cannot conflict (one writer per directory)")
        self.run("git", "merge", "-q", "--no-edit", "feature")
        self.run("git", "log", "--oneline", "--graph")
        self.say("verify reads every segment of every source; rebuild re-derives the index")
        self.fg("verify")
        self.fg("index", "rebuild")
        self.fg("index", "status")
        self.fg("mission", "show", mission)

    def analytics(self) -> None:
        self.say("Questions nobody wrote a command for: SQL over the whole history (DuckDB)")
        self.note("who finished sorties, and how long from claim to completion (seconds)")
        self.fg(
            "sql",
            "select c.actor as pilot, count(*) as done,"
            " round(avg((c.hlc >> 16) - (a.hlc >> 16)) / 1000, 3) as seconds"
            " from events c join events a on a.stream = c.stream"
            " and a.type = 'sortie_assigned' where c.type = 'sortie_completed'"
            " group by 1 order by 3",
        )
        self.note("which files were reserved most, and by how many pilots")
        self.fg(
            "sql",
            "select pattern, count(*) as times, count(distinct holder) as pilots"
            " from reservations group by 1 order by 2 desc, 1 limit 5",
        )
        self.note("what each pilot did, by type (the data of every event is JSON)")
        self.fg(
            "sql",
            "select actor, count(*) filter (where type like 'sortie_%') as sortie_events,"
            " count(*) filter (where type = 'message_sent') as messages_sent"
            " from events where actor is not null group by 1 order by 1",
            "--format",
            "markdown",
        )
        self.fg("sql", "delete from events", expect=1)
        self.say("fleetgit stats: the summary, with small charts")
        self.fg("stats")

    def machines(self) -> None:
        self.say("A second machine: any git remote carries the ledger, no server")
        self.run("git", "init", "-q", "--bare", "../hangar.git")  # a bare directory will do
        self.run("git", "remote", "add", "origin", "../hangar.git")
        self.fg("sync")
        self.note("the laptop: a clone of this repository, whose remote is the same hub")
        self.run("git", "clone", "-q", ".", "../laptop")
        self.run("git", "-C", "../laptop", "remote", "set-url", "origin", "../hangar.git")
        self.note("on the laptop, ice registers and reserves the parser to review it, then syncs")
        self.fg("pilot", "register", "ice", at="../laptop")
        self.fg("reserve", "src/parser.py", "--reason", "review", who="ice", at="../laptop")
        self.fg("sync", at="../laptop")
        self.say("Back on the first machine, one fleetgit sync: ice's reservation counts here too")
        self.fg("sync", who="goose")
        self.fg("reservations")
        self.fg("check", "src/parser.py", who="goose", expect=1)
        self.note("sync wrote only refs/fleet/*: main is still the merge, app.py still modified")
        self.run("git", "log", "--oneline", "-1")


def run_demo(keep: bool = False, *, echo: bool = True) -> DemoRun:
    """Run every section; `echo` prints them as they go (else only the steps are returned)."""
    import shutil

    root = Path(tempfile.mkdtemp(prefix="fleetgit-demo-"))
    demo = Demo(root, echo=echo)
    try:
        demo.print(f"# fleetgit demo in {root}")
        demo.setup()
        mission = demo.ledger()
        demo.commit()
        demo.reservations()
        grammar, errors, order = demo.plan(mission)
        demo.work(mission, grammar, errors)
        demo.squawk(grammar)
        demo.recover(grammar)
        demo.finish(mission, grammar, errors, order)
        demo.history(mission)
        demo.branches(mission, grammar, errors)
        demo.analytics()
        demo.machines()
        done = f"The repository is kept at {demo.repo}" if keep else "Cleaning up."
        demo.print(f"\n# done. {done}")
    finally:  # a demo that failed half-way leaves nothing behind either
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return DemoRun(str(demo.repo), keep, demo.steps)
