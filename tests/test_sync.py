"""`fleetgit sync` between real clones: a bare remote and clones in temp dirs, real git."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from fleetgit.fleet import init
from tests.conftest import enlist, git, make_repo, run_fleetgit

PILOTS = ("viper", "goose", "ice")


def make_net(tmp: Path, n: int = 3) -> tuple[Path, list[Path]]:
    """A bare remote and `n` clones of it, fleetgit initialised and committed on main; clone i
    registers PILOTS[i] (not yet synced)."""
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    first = make_repo(tmp / "c0")
    init(first)
    git(first, "add", ".fleet", ".gitattributes")
    git(first, "commit", "-q", "-m", "fleet")
    git(first, "remote", "add", "origin", str(remote))
    git(first, "push", "-q", "-u", "origin", "main")
    clones = [first]
    for i in range(1, n):
        git(tmp, "clone", "-q", str(remote), str(tmp / f"c{i}"))
        clones.append(tmp / f"c{i}")
    for clone, pilot in zip(clones, PILOTS, strict=False):
        enlist(clone, pilot)
    return remote, clones


def fg(cwd: Path, *args: str, ok: bool = True) -> Any:
    res = run_fleetgit(cwd, *args)
    if ok:
        assert res.code == 0, f"fleetgit {' '.join(args)}: {res.err}"
    return res


def sync(clone: Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(fg(clone, "sync", *args, "--json").out)
    return out


def views(clone: Path, pilot: str = "viper") -> dict[str, str]:
    """What must be identical everywhere. Positions (`pos`, `last_pos`) are this clone's order of
    arrival, and `seconds_left`/`updated_ms` the reading's moment: left out."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            drop = {"pos", "last_pos", "seconds_left"}
            return {k: clean(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    out = {}
    for name, args in {
        "events": ("events", "--limit", "0"),
        "reservations": ("reservations", "--limit", "0"),
        "sorties": ("sortie", "list", "--limit", "0"),
        "inbox": ("--as", pilot, "squawk", "inbox", "--limit", "0"),
    }.items():
        raw = orjson.loads(fg(clone, *args, "--json").out)
        out[name] = orjson.dumps(clean(raw), option=orjson.OPT_SORT_KEYS).decode()
    return out


def test_three_clones_that_reserve_claim_send_and_commit_converge(tmp_path: Path) -> None:
    _remote, clones = make_net(tmp_path)
    for clone in clones:  # everyone knows everyone: messages go to registered pilots
        sync(clone)
    for clone in clones:
        sync(clone)
    for i, (clone, pilot) in enumerate(zip(clones, PILOTS, strict=True)):
        fg(clone, "--as", pilot, "reserve", f"src/mod{i}.py")
        made = orjson.loads(fg(clone, "--as", pilot, "sortie", "create", f"S{i}", "--json").out)
        fg(clone, "--as", pilot, "sortie", "claim", made["sortie_id"])
        to = PILOTS[(i + 1) % 3]
        fg(clone, "--as", pilot, "squawk", "send", "--to", f"{to},viper", "--subject", f"hi {i}")
        fg(clone, "commit")
    for order in ([2, 0, 1], [1, 2, 0]):  # any order: two rounds bring everything everywhere
        for i in order:
            sync(clones[i])
    seen = [views(c) for c in clones]
    assert seen[0] == seen[1] == seen[2]
    assert len(orjson.loads(seen[0]["events"])["events"]) == 3 + 3 * 4  # registrations + 4 each
    assert len(orjson.loads(seen[0]["inbox"])["messages"]) == 3  # viper: all three


def test_sync_never_touches_head_the_index_the_work_tree_or_the_stash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_OPTIONAL_LOCKS", "0")  # the checks' own git diff leaves the index
    _remote, (a, b, _c) = make_net(tmp_path)
    (a / "README.md").write_text("stashed\n", encoding="utf-8")
    git(a, "stash", "-q")
    (a / "staged.txt").write_text("staged\n", encoding="utf-8")
    git(a, "add", "staged.txt")
    (a / "README.md").write_text("edited, not staged\n", encoding="utf-8")
    fg(a, "--as", "viper", "reserve", "x.py")
    fg(b, "--as", "goose", "reserve", "y.py")
    sync(b)

    def state() -> tuple[Any, ...]:
        return (
            (a / ".git/index").read_bytes(),
            git(a, "rev-parse", "HEAD"),
            git(a, "for-each-ref", "refs/heads", "refs/remotes", "refs/stash"),
            git(a, "stash", "list"),
            git(a, "diff"),
            git(a, "diff", "--cached"),
            (a / "README.md").read_bytes(),
            sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if ".git/" not in str(p)),
        )

    before = state()
    report = sync(a)
    assert report["sent"]["events"] == 2 and report["received"]["events"] == 2
    assert state() == before
    assert "y.py" in fg(a, "reservations").out


def test_a_published_segment_grows_instead_of_rolling(tmp_path: Path) -> None:
    """A sync does not seal: the next append continues the segment, and the next sync sends
    the grown copy; the other clone's verify finds nothing rewritten."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    fg(a, "--as", "viper", "reserve", "one.py")
    first = sync(a)["sent"]
    fg(a, "--as", "viper", "reserve", "two.py")
    trace = tmp_path / "trace.json"
    res = run_fleetgit(a, "sync", "--json", env={"GIT_TRACE2_EVENT": str(trace)})
    assert res.code == 0, res.err
    second = orjson.loads(res.out)["sent"]
    assert first["segments"] == second["segments"] == ["00000001.jsonl"]
    assert (first["events"], second["events"]) == (1, 1)
    # the published copy is read through the long-lived cat-file readers: no one-off ls-tree
    runs = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    argv = [r["argv"] for r in runs if r["event"] == "start"]
    assert not [cmd for cmd in argv if "ls-tree" in cmd], argv
    sync(b)
    assert "two.py" in fg(b, "reservations").out
    fg(b, "verify", "--strict")


def test_the_first_sync_adds_the_fetch_refspec_so_plain_git_fetch_brings_fleet_refs(
    tmp_path: Path,
) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(b)
    fg(a, "--as", "viper", "reserve", "x.py")
    sync(a, "--push-only")
    assert "+refs/fleet/writers/*:refs/fleet/remotes/origin/*" in git(
        b, "config", "--get-all", "remote.origin.fetch"
    )
    git(b, "fetch", "-q")
    assert "refs/fleet/remotes/origin/" in git(b, "for-each-ref", "refs/fleet/remotes")
    assert "x.py" in fg(b, "reservations").out  # catch-up reads the fetched refs
    git(b, "push", "-q", "--dry-run", "origin", "main")  # pushing code is not affected


def test_two_machines_reserving_one_file_agree_who_lost_and_the_loser_hears_it(
    tmp_path: Path,
) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    for clone in (a, b, a):
        sync(clone)
    fg(a, "--as", "viper", "reserve", "src/app.py")  # first in total order: it wins
    fg(b, "--as", "goose", "reserve", "src/app.py")
    sync(a)
    heard = orjson.loads(fg(b, "--as", "goose", "sync", "--json").out)
    assert {"kind": "lost", "holder": "viper", "pattern": "src/app.py", "mode": "exclusive",
            "mine": "src/app.py"} in heard["concerns"]  # fmt: skip
    won = orjson.loads(fg(a, "--as", "viper", "sync", "--json").out)
    assert [c["kind"] for c in won["concerns"]] == ["won"]
    listed = [orjson.loads(fg(c, "reservations", "--json").out) for c in (a, b)]
    assert listed[0] == listed[1] or _same_but_time(listed[0], listed[1])
    lost = [r for r in listed[0]["reservations"] if r["lost_to"]]
    assert [(r["holder"], r["lost_to"]["holder"]) for r in lost] == [("goose", "viper")]
    status = orjson.loads(fg(b, "--as", "goose", "status", "--json").out)
    assert status["reservations"][0]["lost_to"]["holder"] == "viper"
    blocked = fg(b, "--as", "goose", "check", "src/app.py", ok=False)
    assert blocked.code == 1 and "viper" in blocked.out + blocked.err


def _same_but_time(x: Any, y: Any) -> bool:
    def strip(v: Any) -> Any:
        return [{k: w for k, w in r.items() if k != "seconds_left"} for r in v["reservations"]]

    return bool(strip(x) == strip(y))


def test_a_failing_remote_is_one_line_exit_1_and_the_next_sync_sends_everything(
    tmp_path: Path,
) -> None:
    remote, (a, b, _c) = make_net(tmp_path)
    moved = remote.rename(tmp_path / "elsewhere.git")
    first = fg(a, "sync", ok=False)  # a first sync asks for this writer's copy first
    assert first.code == 1 and "git fetch failed" in first.err.splitlines()[0]
    moved.rename(remote)
    sync(a)
    fg(a, "--as", "viper", "reserve", "x.py")
    moved = remote.rename(tmp_path / "elsewhere.git")
    res = fg(a, "sync", ok=False)
    assert res.code == 1 and "Traceback" not in res.err
    first = res.err.splitlines()[0]
    assert first.startswith("fleetgit: sync with origin: git push failed:")
    assert "does not appear to be a git repository" in first
    assert "nothing is lost" in res.err
    moved.rename(remote)
    report = sync(a)
    assert report["sent"]["pushed"] and report["sent"]["events"] == 0  # published before
    sync(b)
    assert "x.py" in fg(b, "reservations").out


def test_a_remote_hook_that_refuses_is_reported_with_its_message(tmp_path: Path) -> None:
    remote, (a, _b, _c) = make_net(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'fleet refs are read-only here' >&2\nexit 1\n")
    hook.chmod(0o755)
    fg(a, "--as", "viper", "reserve", "x.py")
    res = fg(a, "sync", ok=False)
    assert res.code == 1
    assert "pre-receive hook declined" in res.err and "read-only here" in res.err
    assert len(res.err.splitlines()) == 2  # the line and its hint
    res = fg(a, "sync", "--fetch-only")  # fetching still works
    hook.unlink()
    assert sync(a)["sent"]["pushed"]


def test_an_unknown_remote_and_contradictory_flags_are_refused(tmp_path: Path) -> None:
    _remote, (a,) = make_net(tmp_path, 1)
    res = fg(a, "sync", "nowhere", ok=False)
    assert res.code == 1 and "no git remote named 'nowhere'" in res.err and "hint:" in res.err
    res = fg(a, "sync", "--push-only", "--fetch-only", ok=False)
    assert res.code == 2


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(b)
    fg(a, "--as", "viper", "reserve", "x.py")
    refs = git(a, "for-each-ref")
    config = (a / ".git/config").read_bytes()
    report = sync(a, "--dry-run")
    assert report["dry_run"] and report["sent"]["events"] == 2 and report["sent"]["pushed"]
    assert report["received"]["writers"] == [b_writer(b)]
    assert git(a, "for-each-ref") == refs and (a / ".git/config").read_bytes() == config


def b_writer(clone: Path) -> str:
    return (clone / ".git/fleet/writer").read_text().split()[0]


def test_two_syncs_at_once_in_one_clone_both_succeed(tmp_path: Path) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    fg(a, "--as", "viper", "reserve", "x.py")
    fg(b, "--as", "goose", "reserve", "y.py")
    sync(b)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fleetgit", "sync", "--json"],
            cwd=a,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    reports = [orjson.loads(o) for o, _ in outs]
    assert sum(r["sent"]["events"] for r in reports) == 2  # sent once
    assert "y.py" in fg(a, "reservations").out


def test_on_write_publishes_after_each_write_and_a_failure_is_a_warning(tmp_path: Path) -> None:
    remote, (a, b, _c) = make_net(tmp_path)
    config = a / ".fleet/config.toml"
    config.write_text(config.read_text().replace('sync = "manual"', 'sync = "on-write"'))
    fg(a, "--as", "viper", "reserve", "x.py")
    writer = b_writer(a)
    assert writer in git(remote, "for-each-ref", "refs/fleet/writers")
    sync(b)
    assert "x.py" in fg(b, "reservations").out
    before = git(remote, "for-each-ref", "refs/fleet/writers")
    fg(a, "reservations")  # a read never reaches the network
    assert git(remote, "for-each-ref", "refs/fleet/writers") == before
    moved = remote.rename(tmp_path / "away.git")
    res = fg(a, "--as", "viper", "reserve", "z.py")  # the write stands
    assert "note: on-write sync did not publish" in res.err
    moved.rename(remote)
    assert "z.py" in fg(a, "reservations").out
    assert sync(a)["sent"]["pushed"]


def test_restore_lost_after_a_force_push(tmp_path: Path) -> None:
    """A's events reached B only through a branch; a force-push drops that commit, and B's
    reset follows it: B's index keeps them, verify warns, restore-lost republishes them and
    a third clone gets them, the same ids and bytes."""
    _remote, (a, b, c) = make_net(tmp_path)
    base = git(a, "rev-parse", "HEAD").strip()
    fg(a, "--as", "viper", "reserve", "x.py")
    fg(a, "--as", "viper", "squawk", "send", "--to", "viper", "--subject", "note to self")
    fg(a, "commit", "-m", "fleet: a")
    git(a, "push", "-q", "origin", "main")
    git(b, "pull", "-q", "--no-rebase")
    assert "x.py" in fg(b, "reservations").out
    wanted = _events_of(b, b_writer(a))
    git(a, "push", "-q", "--force", "origin", f"{base}:refs/heads/main")
    git(b, "fetch", "-q")
    git(b, "reset", "-q", "--hard", "origin/main")
    report = orjson.loads(fg(b, "verify", "--json").out)
    lost = [p for p in report["problems"] if p["kind"] == "lost"]
    assert report["ok"] and len(lost) == 1 and "3 event(s)" in lost[0]["detail"]
    assert fg(b, "verify", "--strict", ok=False).code == 1
    assert "x.py" in fg(b, "reservations").out  # the index lost nothing
    restored = orjson.loads(fg(b, "restore-lost", "--json").out)
    assert len(restored["events"]) == 3
    assert not [p for p in orjson.loads(fg(b, "verify", "--json").out)["problems"]]
    sync(b)
    sync(c)
    assert _events_of(c, b_writer(a)) == wanted
    fg(c, "verify", "--strict")
    fg(a, "--as", "viper", "reserve", "after.py")  # A's own numbering rolls past the restored
    sync(a)
    fg(a, "verify", "--strict")


def test_sync_publishes_what_a_reset_took_from_the_work_tree(tmp_path: Path) -> None:
    """B's messages left only on a pushed code branch: B resets its branch below that commit
    (the segment leaves its work tree, origin/main still holds it) and then syncs. The writer
    ref must carry them, or a clone that only syncs never sees them (hypothesis found it)."""
    _remote, (a, b, _c) = make_net(tmp_path)
    sync(a)
    sync(b)
    fg(b, "--as", "goose", "squawk", "send", "--to", "viper", "--subject", "only on main")
    fg(b, "commit", "-m", "fleet: b")
    git(b, "push", "-q", "origin", "main")
    git(b, "reset", "-q", "--hard", "HEAD~1")
    assert not (b / ".fleet/events" / b_writer(b)).exists() or not any(
        "only on main" in p.read_text() for p in (b / ".fleet/events" / b_writer(b)).iterdir()
    )
    fg(b, "--as", "goose", "reserve", "later.py")
    sync(b)
    sync(a)
    assert "only on main" in fg(a, "--as", "viper", "squawk", "inbox").out
    assert len(_events_of(a, b_writer(b))) == len(_events_of(b, b_writer(b)))


def _events_of(clone: Path, writer: str) -> list[dict[str, Any]]:
    found = orjson.loads(fg(clone, "events", "--limit", "0", "--json").out)["events"]
    return [{k: v for k, v in e.items() if k != "pos"} for e in found if e["writer"] == writer]


@pytest.mark.parametrize("flag", ["--push-only", "--fetch-only"])
def test_push_only_and_fetch_only(tmp_path: Path, flag: str) -> None:
    remote, (a, b, _c) = make_net(tmp_path)
    fg(a, "--as", "viper", "reserve", "x.py")
    sync(b)
    report = sync(a, flag)
    if flag == "--push-only":
        assert report["sent"]["pushed"] and report["received"]["writers"] == []
        assert b_writer(a) in git(remote, "for-each-ref")
    else:
        assert not report["sent"]["pushed"] and report["received"]["writers"] == [b_writer(b)]
        assert b_writer(a) not in git(remote, "for-each-ref")


# -- hypothesis: random appends, syncs, merges, rebases, resets and cherry-picks on three clones -

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["reserve", "message", "sortie", "sync", "merge", "rebase", "reset", "cherry-pick"]
        ),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=10,
)


def _in_process(clone: Path, *args: str) -> str:
    from typer.testing import CliRunner

    from fleetgit.cli import app

    res = CliRunner().invoke(app, ["-C", str(clone), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return res.stdout


def _in_process_sync(clone: Path) -> None:
    _in_process(clone, "sync", "--json")


# a few examples (each makes three clones), and no shrinking: minutes per failure otherwise
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(ops=OPS, union=st.booleans())
@example(  # picks across clones that also merge and rebase the same commits
    ops=[
        ("reserve", 0),
        ("cherry-pick", 0),
        ("message", 1),
        ("merge", 1),
        ("cherry-pick", 1),
        ("sortie", 2),
        ("rebase", 2),
        ("cherry-pick", 2),
        ("merge", 0),
        ("cherry-pick", 0),
    ],
    union=False,
)
@example(
    ops=[
        ("message", 0),
        ("merge", 0),
        ("reserve", 0),
        ("cherry-pick", 0),
        ("reset", 0),
        ("cherry-pick", 1),
        ("rebase", 1),
        ("sync", 1),
        ("cherry-pick", 2),
    ],
    union=True,
)
def test_any_sequence_of_appends_syncs_merges_rebases_resets_and_cherry_picks_converges(
    ops: list[tuple[str, int]], union: bool
) -> None:
    """`union`: with the `.gitattributes` line `merge=union`, or with git's plain text merge
    forced over it (.git/info/attributes): no git operation may conflict in .fleet/ either way
    (a git() that fails fails the test)."""
    with tempfile.TemporaryDirectory() as tmp:
        _remote, clones = make_net(Path(tmp))
        if not union:
            for clone in clones:
                (clone / ".git" / "info").mkdir(exist_ok=True)
                (clone / ".git" / "info" / "attributes").write_text(".fleet/** merge=text\n")
        for clone in [*clones, *clones]:
            _in_process_sync(clone)
        for n, (op, i) in enumerate(ops):
            clone, pilot = clones[i], PILOTS[i]
            if op == "reserve":
                _in_process(clone, "--as", pilot, "reserve", f"src/{pilot}/f{n}.py")
            elif op == "message":
                to = PILOTS[(i + 1) % 3]
                _in_process(
                    clone, "--as", pilot, "squawk", "send", "--to", to, "--subject", f"m{n}"
                )
            elif op == "sortie":
                _in_process(clone, "--as", pilot, "sortie", "create", f"s{n}")
            elif op == "sync":
                _in_process_sync(clone)
            elif op in ("merge", "rebase"):
                _in_process(clone, "commit", "-m", f"fleet {n}")
                how = "--rebase" if op == "rebase" else "--no-rebase"
                git(clone, "pull", "-q", how, "--autostash", "--no-edit", "origin", "main")
                git(clone, "push", "-q", "origin", "HEAD:main")
            elif op == "reset" and int(git(clone, "rev-list", "--count", "HEAD")) > 2:
                git(clone, "reset", "-q", "--hard", "HEAD~1")
            elif op == "cherry-pick":  # the next clone picks this one's fleet commits
                _in_process(clone, "commit", "-m", f"fleet {n}")
                git(clone, "push", "-q", "-f", "origin", f"HEAD:pick-{i}")
                other = clones[(i + 1) % 3]
                git(other, "fetch", "-q", "origin")
                picks = git(other, "rev-list", "--reverse", "--no-merges", f"HEAD..origin/pick-{i}")
                for commit in picks.split():
                    git(other, "cherry-pick", "--keep-redundant-commits", commit)
        for clone in clones:  # what a reset took from every ref comes back
            _in_process(clone, "restore-lost")
        for clone in [*clones, *clones]:
            _in_process_sync(clone)
        seen = [views(c, "goose") for c in clones]
        assert seen[0] == seen[1] == seen[2]


def test_a_clone_that_lost_its_fleet_refs_still_pushes_a_fast_forward(tmp_path: Path) -> None:
    """The writer ref and its remote-tracking copy deleted here (by hand, a tool): the next
    sync asks the remote for its copy and builds on it; nothing published is dropped."""
    _remote, (a, b, _c) = make_net(tmp_path)
    fg(a, "--as", "viper", "reserve", "one.py")
    sync(a)
    writer = b_writer(a)
    git(a, "update-ref", "-d", f"refs/fleet/writers/{writer}")
    git(a, "update-ref", "-d", f"refs/fleet/remotes/origin/{writer}")
    fg(a, "--as", "viper", "reserve", "two.py")
    assert sync(a)["sent"]["pushed"]
    sync(b)
    listed = fg(b, "reservations").out
    assert "one.py" in listed and "two.py" in listed
    # diverged: the local ref made again from nothing, and the tracking copy stale (an older
    # commit of the remote's ref): the push is refused once, then joined and sent
    first = git(a, "rev-parse", f"refs/fleet/writers/{writer}~1").strip()
    git(a, "update-ref", "-d", f"refs/fleet/writers/{writer}")
    git(a, "update-ref", f"refs/fleet/remotes/origin/{writer}", first)
    from fleetgit.git import fleetrefs
    from fleetgit.git.paths import locate
    from fleetgit.git.repo import GitRepo

    stray = fleetrefs.commit_segments(GitRepo(locate(a)), None, {}, "a stray root")
    git(a, "update-ref", f"refs/fleet/writers/{writer}", stray)
    fg(a, "--as", "viper", "reserve", "three.py")
    assert sync(a)["sent"]["pushed"]
    sync(b)
    assert "three.py" in fg(b, "reservations").out
    fg(b, "verify", "--strict")


@pytest.mark.parametrize("tracking", ["stale", "fetched"])
def test_a_remote_copy_of_my_ref_that_is_no_commit_is_replaced(
    tmp_path: Path, tracking: str
) -> None:
    """A collaborator points this writer's ref on the remote at a blob. Only this writer pushes
    that ref, and only commits: the blob holds none of its history. Sync replaces it (and only
    it) instead of failing at every run with "needs force" (the tracking copy still at the
    last commit) or an internal error (the tracking copy fetched: a blob has no tree)."""
    remote, (a, b, _c) = make_net(tmp_path)
    fg(a, "--as", "viper", "reserve", "one.py")
    sync(a)
    writer = b_writer(a)
    blob = (
        subprocess.run(
            ["git", "-C", str(remote), "hash-object", "-w", "--stdin"],
            input=b"garbage\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(remote, "update-ref", f"refs/fleet/writers/{writer}", blob)
    if tracking == "stale":  # the blob known here too: git says "needs force", not "fetch first"
        subprocess.run(["git", "-C", str(a), "hash-object", "-w", "--stdin"], input=b"garbage\n")
    if tracking == "fetched":  # a plain git fetch brings it (the refspec forces)
        git(a, "fetch", "-q", "origin")
        assert git(a, "rev-parse", f"refs/fleet/remotes/origin/{writer}").strip() == blob
    fg(a, "--as", "viper", "reserve", "two.py")
    res = fg(a, "sync", "--json", ok=False)
    assert res.code == 0, res.err
    assert orjson.loads(res.out)["sent"]["pushed"]
    tip = git(remote, "rev-parse", f"refs/fleet/writers/{writer}").strip()
    assert git(remote, "cat-file", "-t", tip).strip() == "commit"
    sync(b)
    listed = fg(b, "reservations").out
    assert "one.py" in listed and "two.py" in listed


def test_cherry_picks_conflict_only_for_a_segment_committed_in_two_versions_as_documented(
    tmp_path: Path,
) -> None:
    """A writer never appends to a segment once git has it staged or committed, so every commit
    holds a segment in one version and merges, rebases and cherry-picks of .fleet/ never meet.
    A plain `git add` racing an append of another process in the same worktree can still stage
    a segment without its newest line, the next `git add` then commits the line as a change of
    it (made here on purpose). Picking that second commit onto a branch without the first is
    git's modify/delete conflict (union or not), and picking the first onto a branch with the
    second is add/add (resolved by the union line, a conflict without it). docs/history.md says
    what to do: keep the longer version (a segment only grows). This checks that it works."""
    repo = make_repo(tmp_path / "r")
    init(repo)
    git(repo, "add", ".fleet", ".gitattributes")
    git(repo, "commit", "-q", "-m", "fleet")
    base = git(repo, "rev-parse", "HEAD").strip()
    enlist(repo, "viper")
    fg(repo, "--as", "viper", "reserve", "a.py")
    fg(repo, "--as", "viper", "reserve", "b.py")
    (segment,) = (repo / ".fleet" / "events").glob("*/*.jsonl")
    whole = segment.read_bytes()
    lines = whole.splitlines(keepends=True)
    rel = str(segment.relative_to(repo))
    nohooks = ("-c", "core.hooksPath=/dev/null")
    segment.write_bytes(b"".join(lines[:-1]))  # staged while the last append was writing
    git(repo, "add", rel)
    git(repo, *nohooks, "commit", "-q", "-m", "fleet: the segment without its last line")
    first = git(repo, "rev-parse", "HEAD").strip()
    segment.write_bytes(whole)
    git(repo, "add", rel)
    git(repo, *nohooks, "commit", "-q", "-m", "fleet: its last line")
    second = git(repo, "rev-parse", "HEAD").strip()
    before = fg(repo, "events", "--limit", "0", "--json").out

    def conflicted() -> str:
        return git(repo, "diff", "--name-only", "--diff-filter=U").strip()

    def keep_the_longer() -> None:
        """docs/history.md: `git checkout --theirs` or `--ours`, whichever side is longer."""
        sizes = {}
        for side, stage in (("--ours", 2), ("--theirs", 3)):
            shown = subprocess.run(
                ["git", "show", f":{stage}:{rel}"], cwd=repo, capture_output=True
            )
            sizes[side] = len(shown.stdout) if shown.returncode == 0 else -1
        git(repo, "checkout", max(sizes, key=lambda k: sizes[k]), "--", rel)
        git(repo, "add", rel)
        nothing_left = not git(repo, "diff", "--cached", "--name-only", "HEAD").strip()
        done = "--skip" if nothing_left else "--continue"  # --skip: the pick brought nothing
        git(repo, "-c", "core.editor=true", *nohooks, "cherry-pick", done)

    for union in (True, False):
        attributes = repo / ".git" / "info" / "attributes"
        attributes.write_text("" if union else ".fleet/** merge=text\n")
        # the second commit onto a branch without the segment: deleted by us, modified by them
        git(repo, "checkout", "-q", "-B", f"pick-{union}", base)
        git(repo, *nohooks, "cherry-pick", second, check=False)
        assert conflicted() == rel
        keep_the_longer()
        assert segment.read_bytes() == whole
        # the first onto a branch with the whole segment: add/add, which the union line settles
        picked = git(repo, *nohooks, "cherry-pick", "--keep-redundant-commits", first, check=False)
        if union:
            assert not conflicted(), picked
        else:
            assert conflicted() == rel
            keep_the_longer()
        assert segment.read_bytes() == whole
        assert fg(repo, "events", "--limit", "0", "--json").out == before
        assert fg(repo, "verify").code == 0
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-edit", "pick-True", "pick-False")
    assert segment.read_bytes() == whole and fg(repo, "verify").code == 0
