"""The guarding hooks' read of the index (guard/hookindex.py) while rebuilds switch its link,
and where the clone's path holds characters a SQLite URI gives a meaning to. Real `git commit`
firing the real hook, real rebuild processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleetgit.fleet import Fleet, init
from fleetgit.git.paths import locate
from fleetgit.guard.install import install
from tests.conftest import enlist, git, make_repo
from tests.test_hooks import commit, stage

FLEETGIT = Path(sys.executable).with_name("fleetgit")


def _reserved(repo: Path) -> None:
    """src/app.py committed, the hooks installed, viper-1 holding a reservation on it."""
    stage(repo, "src/app.py")
    git(repo, "commit", "-q", "-m", "files")
    install(locate(repo))
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.reserve(["src/app.py"])


def test_the_hook_reads_the_index_of_a_clone_whose_path_holds_uri_characters(
    tmp_path: Path,
) -> None:
    """`#`, `?` and `%` in a directory above the clone: the hook opens the index itself (its
    `file:` URI escaped), refuses the commit naming the holder, and makes no file elsewhere
    (unescaped, `a#b` opened `a` read-write: an empty database made beside the clone)."""
    top = tmp_path / "a#b?c%41"
    repo = make_repo(top / "repo")
    init(repo)
    enlist(repo)
    _reserved(repo)
    before = sorted(os.listdir(tmp_path))
    stage(repo, "src/app.py", "goose was here\n")
    res = commit(repo, "goose")
    assert res.returncode == 1 and "viper-1" in res.stderr, res.stderr
    assert "cannot read the fleet index" not in res.stderr, res.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_a_hook_catching_up_while_rebuilds_switch_the_link_never_passes(repo: Path) -> None:
    """Each commit finds the index behind (a segment file touched: its stamp moved), so the
    hook catches up (`_catch_up`), while another process rebuilds again and again, retiring
    and deleting the file the hook may have just connected to. Every commit is refused with
    the holder named (never passed, never a failure to read), and no git process the hook
    started is left running."""
    _reserved(repo)
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.rebuild()
    segments = sorted((repo / ".fleet" / "events").rglob("*.jsonl"))
    stage(repo, "src/app.py", "goose was here\n")
    loop = (
        "for i in 1 2 3 4 5 6 7 8; do " + f"'{FLEETGIT}' index rebuild >/dev/null || exit 1; done"
    )
    with subprocess.Popen(["sh", "-c", loop], cwd=repo) as rebuilding:
        tries = 0
        while rebuilding.poll() is None or tries < 3:
            tries += 1
            os.utime(segments[0])  # the index behind: the hook catches up
            res = commit(repo, "goose")
            assert res.returncode == 1 and "viper-1" in res.stderr, res.stderr
            assert "cannot" not in res.stderr, res.stderr
    assert rebuilding.returncode == 0
    assert git(repo, "log", "-1", "--format=%s").strip() == "files"


def test_the_hook_reads_again_when_its_catch_up_s_file_is_retired_before_its_query(
    repo: Path,
) -> None:
    """The step that meets the rebuild is the hook's own catch-up: it caught up and connected,
    and a rebuild retired and deleted that file before the query (which fails on it). The
    link names another file: the hook connects again, checks that one and reads it, with
    the right answer, and the git process it started to check moved refs has ended."""
    from fleetgit.guard.hookgit import Where
    from fleetgit.guard.hookindex import IndexView

    started: list[int] = []

    class RetiredAfterCatchUp(IndexView):
        raced = False

        def _behind(self) -> bool:
            behind = super()._behind()
            if self.probe is not None:
                started.append(self.probe.pid)
            return behind

        def _catch_up(self) -> None:
            super()._catch_up()
            if not RetiredAfterCatchUp.raced:
                RetiredAfterCatchUp.raced = True
                subprocess.run([FLEETGIT, "index", "rebuild"], cwd=repo, check=True)

    _reserved(repo)
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.rebuild()
        fleet.emit("mission_created", "mission/m1", {"mission_id": "m1", "title": "t"})
    # committed with no hook: HEAD moved to an events tree the index has not read, which the
    # hook asks git about (its probe), then catches up
    git(repo, "add", ".fleet")
    git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "events")
    git_dir = str(repo / ".git")
    view = RetiredAfterCatchUp(Where(str(repo), git_dir, git_dir))
    live = view.live()
    assert RetiredAfterCatchUp.raced
    assert [(r.pattern, r.holder) for r in live] == [("src/app.py", "viper-1")]
    assert view.conn is None and started
    for pid in started:  # reaped already: waited for by the hook, not left to run
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        raise AssertionError(f"git process {pid} was left running or unreaped")
