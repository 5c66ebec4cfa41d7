"""The README's first command runs `fleetgit demo`: it must work from a clean environment."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_fleetgit


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    res = run_fleetgit(tmp_path, "demo")
    assert res.code == 0, res.out[-3000:] + res.err
    assert "commit refused" in res.out and "verify: ok" in res.out
    assert "Traceback" not in res.out + res.err
    for shown in ("workorder complete", "--as-of", "events --consumer ci-bot", "cursor show"):
        assert f"$ fleetgit {shown}" in res.out or shown in res.out, shown
