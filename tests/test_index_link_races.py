"""The index link changed by two processes at once (ledger/indexlink.py, index/store.py
`_relink`, index/catchup.py `_put_in_place`): a relink is a compare-and-swap under the link
lock a rebuild's switch takes too, so two processes replacing a foreign link make one file,
and a relink never lands over a link a rebuild has just put in place. Real processes; each
child stops between judging the link and changing it until the test opens a gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fleetgit.fleet import EventSpec, Fleet

# judges the link (a foreign one), says so where argv[3] tells it (`relink`: before changing it;
# `put_link`: its new file made, the link about to be changed), waits for the gate, goes on
_CHILD = """
import os, sys, time
from pathlib import Path
from fleetgit.index import store
from fleetgit.fleet import Fleet

repo, gate, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real = store.IndexDB._relink if where == "relink" else store.put_link
waited = []

def gated(*args, **kwargs):
    if not waited:
        waited.append(1)
        print("judged", flush=True)
        while not gate.exists():
            time.sleep(0.01)
    return real(*args, **kwargs)

if where == "relink":  # the link judged, not yet changed
    store.IndexDB._relink = gated
else:  # the new file made, the link about to be changed (under the link lock)
    store.put_link = gated
with Fleet.open(repo) as fleet:
    print(fleet.index.file.name, fleet.index.max_pos(), flush=True)
"""


def _missions(n: int, first: int = 0) -> list[EventSpec]:
    return [
        EventSpec("mission_created", f"mission/m{i}", {"mission_id": f"m{i}", "title": "t"})
        for i in range(first, first + n)
    ]


def _foreign(repo: Path, tmp_path: Path) -> tuple[Path, int]:
    """Five missions, then `index.sqlite` made a link fleetgit did not make: (its path, the
    events' count)."""
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(5))
        n = fleet.index.max_pos()
        index = fleet.index.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    outside = tmp_path / "outside.db"
    outside.write_bytes(b"")
    index.symlink_to(outside)
    return index, n


def _start(repo: Path, gate: Path, where: str = "relink") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(repo), str(gate), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "judged"  # it saw the foreign link, and waits
    return proc


def _generations(index: Path) -> list[str]:
    return sorted(
        p.name
        for p in index.parent.glob(f"{index.name}.gen-*")
        if not p.name.endswith(("-wal", "-shm"))
    )


def test_two_processes_replacing_a_foreign_link_at_once_make_one_file(
    repo: Path, tmp_path: Path
) -> None:
    index, n = _foreign(repo, tmp_path)
    gate = tmp_path / "gate"
    procs = [_start(repo, gate) for _ in range(2)]
    gate.touch()
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    files = {out.split()[0] for out, _ in outs}
    assert all(out.split()[1] == str(n) for out, _ in outs), outs
    (made,) = _generations(index)  # one new file, not one per process
    assert files == {made} and os.readlink(index) == made
    warned = sum(err.count("was a link fleetgit did not make") for _, err in outs)
    assert warned == 1, outs
    assert (tmp_path / "outside.db").read_bytes() == b""


def test_a_relink_never_lands_over_a_link_a_rebuild_just_put_in_place(
    repo: Path, tmp_path: Path
) -> None:
    """A process judged the foreign link and was held up; meanwhile another replaced it, took
    events and rebuilt (its link now names the rebuilt file). The first one's relink, judged on
    a link that is no longer there, changes nothing: it reads the rebuilt file."""
    index, n = _foreign(repo, tmp_path)
    gate = tmp_path / "gate"
    late = _start(repo, gate)
    with Fleet.open(repo, actor="viper-1") as fleet:
        fleet.emit_batch(_missions(3, 5))
        fleet.rebuild()
        rebuilt = fleet.index.file.name
    assert os.readlink(index) == rebuilt
    gate.touch()
    out, err = late.communicate(timeout=120)
    assert late.returncode == 0, err
    assert os.readlink(index) == rebuilt
    assert out.split() == [rebuilt, str(n + 3)]
    assert "did not make" not in err, err
    with Fleet.open(repo) as fleet:
        assert fleet.index.file.name == rebuilt and fleet.index.max_pos() == n + 3
        assert not fleet.verify().failed()


def test_a_process_killed_while_it_relinks_leaves_a_usable_index(
    repo: Path, tmp_path: Path
) -> None:
    """SIGKILLed holding the link lock, between judging the foreign link and changing it: the
    lock goes with the process, and the next one replaces the link and reads every event."""
    index, n = _foreign(repo, tmp_path)
    proc = _start(repo, tmp_path / "never", "put_link")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    with Fleet.open(repo) as fleet:
        assert fleet.index.max_pos() == n
        assert not fleet.verify().failed()
        assert os.readlink(index) == fleet.index.file.name
