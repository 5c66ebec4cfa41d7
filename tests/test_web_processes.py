"""`fleetgit serve`'s processes (web/workers.py): SIGTERM and Ctrl-C end every one after its
clean-up, a worker that dies is started again on its socket, and one that keeps failing to start
ends the server in one line. Real processes, real signals, real HTTP."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from fleetgit.web.workers import MIN_LIFE_S
from tests.test_web import Sse, _listening
from tests.webserver import Server, serving, token, workers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _alive(pid: int) -> bool:
    """Running (a zombie no one has reaped yet has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stopped(srv: Server, how: int, *, group: bool = False) -> int:
    """Send `how` to the server (or, as a terminal's Ctrl-C does, to its whole process group)
    and return its exit code."""
    if group:
        os.killpg(srv.proc.pid, how)
    else:
        srv.proc.send_signal(how)
    return srv.proc.wait(30)


def _errors(repo: Path) -> str:
    return (repo.parent / "serve.err").read_text()


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_stop_ends_every_process_after_its_clean_up(repo: Path, tmp_path: Path, how: str) -> None:
    """Each worker's lifespan ends (its trace records are written then, FLEETGIT_WEB_TRACE) and
    its event streams are closed before the server exits 0; before, uvicorn raised SIGTERM
    again in the first process, which died of it, and the others ended by the parent-death
    signal, after it."""
    trace = tmp_path / "trace"
    with serving(repo, "--workers", "2", env={"FLEETGIT_WEB_TRACE": str(trace)}) as srv:
        pids = workers(srv, 2)
        assert len(pids) == 2
        live = Sse(srv)
        viper = token(repo, "viper-1")
        assert srv.call("POST", "/missions", {"title": "m"}, token=viper).status == 201
        assert live.next()[1]["data"]["title"] == "m"
        if how == "SIGTERM":
            assert _stopped(srv, signal.SIGTERM) == 0
        else:
            assert _stopped(srv, signal.SIGINT, group=True) == 0
        assert not any(_alive(pid) for pid in pids)  # ended before their supervisor
        assert sorted(p.name for p in tmp_path.glob("trace.*")) == sorted(
            f"trace.{pid}" for pid in pids
        )
        with pytest.raises(AssertionError, match="the stream ended"):
            live.next()  # closed by the server, not left hanging
        live.close()
    assert "Traceback" not in _errors(repo)


def test_a_second_signal_to_a_stopping_worker_keeps_its_stop_graceful(repo: Path) -> None:
    """Ctrl-C reaches every process of the group, and the supervisor sends each worker SIGTERM
    too: in either order the worker's stop stays the graceful one. uvicorn takes a SIGINT after
    another signal as "force exit", which skipped the app's shutdown and left its lifespan to be
    cancelled with a traceback."""
    with serving(repo, "--workers", "2") as srv:
        pids = workers(srv, 2)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGINT)
        for pid in pids:
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert _stopped(srv, signal.SIGTERM) == 0
    assert "Traceback" not in _errors(repo)


def test_a_killed_worker_is_started_again_on_its_socket(repo: Path) -> None:
    viper = token(repo, "viper-1")
    with serving(repo, "--workers", "2") as srv:
        pids = workers(srv, 2)
        held = {pid: _listening(pid, srv.port) for pid in pids}
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while pids[0] in (now := workers(srv, 2)) or len(now) < 2:
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        (new,) = set(now) - set(pids)
        while _listening(new, srv.port) != held[pids[0]]:  # the same socket: none was closed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert f"server process {pids[0]} ended " in _errors(repo)
        assert "(killed by SIGKILL); starting another" in _errors(repo)
        live = Sse(srv)  # whichever process writes, every stream hears of it
        made = [srv.call("POST", "/missions", {"title": f"m{n}"}, token=viper) for n in range(8)]
        assert {r.status for r in made} == {201}
        assert [live.next()[1]["data"]["title"] for _ in range(8)] == [f"m{n}" for n in range(8)]
        live.close()
        assert srv.proc.poll() is None


def test_a_lone_worker_killed_loses_no_connection(repo: Path) -> None:
    """A connection made while the only worker is dead waits on its socket (the supervisor
    holds it) and is answered by the next one."""
    with serving(repo, "--workers", "1") as srv:
        (pid,) = workers(srv, 1)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid) and srv.proc.poll() is None:
            time.sleep(0.01)
        assert srv.get("/me").status == 200
        assert workers(srv, 1) != [pid]


def test_a_worker_that_keeps_failing_to_start_ends_the_server_in_one_line(repo: Path) -> None:
    config = repo / ".fleet" / "config.toml"
    with serving(repo, "--workers", "2") as srv:
        pids = workers(srv, 2)
        time.sleep(MIN_LIFE_S)  # the one killed has most likely lived: its end starts no count
        config.write_text(config.read_text() + "bogus = 1\n")  # no process starts now
        os.kill(pids[0], signal.SIGKILL)
        assert srv.proc.wait(60) == 1
        assert not _alive(pids[1])  # stopped as the server gave up
    err = _errors(repo)
    assert err.count("unknown setting 'bogus'") == 1  # why, once for the five tries
    assert "fleetgit: a server process ended before it started, or just after, 5 times" in err
    assert "hint: the reason it gave is above" in err
    # 4, or 3 when the killed one had started less than MIN_LIFE_S before (a loaded machine)
    assert err.count("ended before it started (exit code 1); starting another") in (3, 4)
    assert "Traceback" not in err


def test_serve_refuses_a_ledger_that_does_not_open_before_starting_any_process(
    repo: Path,
) -> None:
    config = repo / ".fleet" / "config.toml"
    config.write_text(config.read_text() + "bogus = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "fleetgit", "serve", "--port", "0"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("unknown setting 'bogus'") == 1 and "hint:" in out.stderr


def test_workers_end_cleanly_when_their_supervisor_is_killed(repo: Path, tmp_path: Path) -> None:
    """SIGKILL gives the supervisor no say: each worker gets SIGTERM from the kernel (the
    parent-death signal) and still runs its clean-up."""
    trace = tmp_path / "trace"
    with serving(repo, "--workers", "2", env={"FLEETGIT_WEB_TRACE": str(trace)}) as srv:
        pids = workers(srv, 2)
        assert _stopped(srv, signal.SIGKILL) == -signal.SIGKILL
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in pids):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert sorted(p.name for p in tmp_path.glob("trace.*")) == sorted(f"trace.{p}" for p in pids)


@pytest.mark.parametrize("count", ["1", "2"])
def test_a_stop_closes_every_request_threads_index(repo: Path, count: str) -> None:
    """Each request thread keeps the index open (web/common.State): a stop closes each of
    them, so SQLite folds its WAL back and deletes it, and the next open finds a clean file."""
    from concurrent.futures import ThreadPoolExecutor

    from fleetgit.git.paths import locate

    index = locate(repo).index_file
    viper = token(repo, "viper-1")
    with serving(repo, "--workers", count) as srv:
        assert srv.call("POST", "/missions", {"title": "m"}, token=viper).status == 201
        with ThreadPoolExecutor(8) as pool:  # several request threads in each worker
            replies = list(pool.map(lambda _: srv.get("/missions", token=viper), range(64)))
        assert {r.status for r in replies} == {200}
        assert Path(f"{index}-wal").exists()  # the server holds it open
        assert _stopped(srv, signal.SIGTERM) == 0
    assert not Path(f"{index}-wal").exists()
    assert not Path(f"{index}-shm").exists()
    assert "Traceback" not in _errors(repo)
    with sqlite3.connect(index) as conn:  # what the server left is whole
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check = subprocess.run(
        [sys.executable, "-m", "fleetgit", "mission", "list", "--json"],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert [m["title"] for m in orjson.loads(check.stdout)["missions"]] == ["m"]
