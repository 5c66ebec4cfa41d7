"""How an MCP session keeps level with the sources: a write tool whose decisions all happen in its
append relies on the append's own catch-up (one scan of the sources a call, not two), and still
acts on what it had not read yet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetgit.agents.tools import CAUGHT_UP_BY_APPEND, TOOLS, Session
from fleetgit.domain.sorties import commands as sorties
from fleetgit.index import catchup
from tests.conftest import plant


@pytest.fixture
def session(repo: Path) -> Iterator[Session]:
    s = Session.open(str(repo), "viper")
    yield s
    s.close()


def counting_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the scans of the work trees' segment files (a freshness check or a catch-up)."""
    calls: list[int] = []
    real = catchup.scan_worktrees  # type: ignore[attr-defined]

    def scan(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(catchup, "scan_worktrees", scan)
    return calls


def test_a_write_tool_scans_the_sources_once(
    repo: Path, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = sorties.create(session.fleet, "parser", files=["src/parser.py"])
    session.call("claim_sortie", {"sortie": sid, "reserve": False})
    session.call("start_sortie", {"sortie": sid})
    scans = counting_scans(monkeypatch)
    session.call("report_progress", {"sortie": sid, "percent": 40})
    session.call("send_message", {"to": ["goose"], "subject": "lexer?"})
    session.call("reserve", {"patterns": ["src/parser.py"]})
    session.call("release", {"patterns": ["src/parser.py"]})
    assert len(scans) == 4  # the append's catch-up alone
    session.call("check_paths", {"paths": ["src/parser.py"]})  # a read checks first
    assert len(scans) == 5


def test_a_write_tool_acts_on_events_it_had_not_read(repo: Path, session: Session) -> None:
    """A sortie another clone created, in a segment this index has not read (as git brings
    one): claiming it through the session finds it, the append catching up first."""
    planted = "srt-planted0000000"
    data: dict[str, object] = {
        "sortie_id": planted,
        "title": "from another clone",
        "files": ["src/lexer.py"],
    }
    plant(repo, "sortie_created", f"sortie/{planted}", data, "goose")
    out, _ = session.call("claim_sortie", {"sortie": planted})
    assert out["sortie_id"] == planted and out["assignee"] == "viper"
    assert [r["pattern"] for r in out["reservations"]] == ["src/lexer.py"]


def test_the_tools_that_skip_the_first_catch_up_all_write() -> None:
    writing = {name for name, tool in TOOLS.items() if tool.writes}
    assert CAUGHT_UP_BY_APPEND.issubset(writing)
