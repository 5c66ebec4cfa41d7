"""The package's top: the Python API as users import it, without weighing on the hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fleetgit
from tests.conftest import make_repo


def test_the_api_imports_from_the_top(tmp_path: Path) -> None:
    from fleetgit import EventSpec, Fleet, FleetError, init

    repo = make_repo(tmp_path / "repo")
    init(repo)
    with Fleet.open(repo, actor="viper-1", register=True) as fleet:
        (event,) = fleet.emit_batch(
            [EventSpec("mission_created", "mission/m1", {"mission_id": "m1", "title": "T"})]
        )
    assert event.seq == 1 and issubclass(FleetError, Exception)
    assert sorted(fleetgit.__all__) == ["EventSpec", "Fleet", "FleetError", "init"]


def test_importing_the_package_loads_nothing_heavy() -> None:
    """The hooks import fleetgit.* under `python -S`: the package itself must stay empty."""
    code = "import sys, fleetgit; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(fleetgit.__file__).parent.parent,
    ).stdout.split()
    assert not {"typing", "re", "fleetgit.fleet", "sqlite3", "orjson"} & set(out)
