"""The README's Python API example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_python_api_example_runs_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    make_repo(tmp_path / "path" / "to" / "repo")
    proc = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "mission_created {'mission_id': 'msn-1', 'title': 'Ship it'}" in proc.stdout
    assert "[('src/parser/x.py', ['viper-1'])]" in proc.stdout  # goose is blocked by viper-1
