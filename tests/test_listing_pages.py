"""Listings cut and counted in SQL (sorties.page, the overview) give what cutting the whole
listing gives: the same rows in the same order, and the same count of what was left out."""

from __future__ import annotations

from pathlib import Path

from fleetgit.domain.missions import commands as missions
from fleetgit.domain.overview import WORKING, gather
from fleetgit.domain.sorties import commands as sorties
from fleetgit.fleet import Fleet

PRIORITIES = ("low", "medium", "high", "critical")


def _fleet_of_sorties(repo: Path) -> list[str]:
    with Fleet.open(repo, actor="viper-1") as fleet:
        mission = missions.create(fleet, "a mission")
        sids = []
        for i in range(30):
            deps = [sids[i - 1]] if i % 5 == 4 else []
            in_mission = mission if i % 7 == 6 else None
            sid = sorties.create(
                fleet, f"s{i}", priority=PRIORITIES[i % 4], depends_on=deps, mission=in_mission
            )
            sids.append(sid)
        for sid in sids[:9]:
            sorties.claim(fleet, sid)
        for sid in sids[:3]:
            sorties.act(fleet, sid, "sortie_started")
    with Fleet.open(repo, actor="goose") as fleet:
        for sid in sids[9:12]:
            sorties.claim(fleet, sid)
    return sids


def test_a_page_is_the_listing_cut(repo: Path) -> None:
    _fleet_of_sorties(repo)
    with Fleet.open(repo, actor="viper-1") as fleet:
        for ready, status, claimed in (
            (True, None, False),
            (False, WORKING, True),
            (False, "open", False),
            (False, None, False),
        ):
            whole = sorties.listing(fleet, ready=ready, status=status, claimed=claimed)
            assert whole  # each case lists something
            for limit in (0, 1, 2, 5, len(whole) - 1, len(whole), len(whole) + 3):
                rows, more = sorties.page(fleet, limit, ready=ready, status=status, claimed=claimed)
                expect = whole[:limit] if limit else whole
                assert rows == expect
                assert more == len(whole) - len(expect)


def test_the_overview_sections_are_pages_of_the_listings(repo: Path) -> None:
    _fleet_of_sorties(repo)
    with Fleet.open(repo, actor="viper-1") as fleet:
        claimed = [s for s in sorties.listing(fleet) if s["status"] in WORKING and s["assignee"]]
        ready = sorties.listing(fleet, ready=True)
        for limit in (0, 2, 4):
            out = gather(fleet, limit)
            assert out["claimed"] == (claimed[:limit] if limit else claimed)
            assert out["ready"] == (ready[:limit] if limit else ready)
            assert out["more"]["claimed"] == len(claimed) - len(out["claimed"])
            assert out["more"]["ready"] == len(ready) - len(out["ready"])


def test_a_remembered_count_follows_every_change(repo: Path) -> None:
    """The count of a full page is kept until the index changes (Index.memo): another
    connection's commit, this one's own write, or a read at another position."""
    _fleet_of_sorties(repo)
    with Fleet.open(repo, actor="viper-1") as fleet:
        _rows, more = sorties.page(fleet, 2, ready=True)
        assert sorties.page(fleet, 2, ready=True)[1] == more
        then = fleet.index.max_pos()
        with Fleet.open(repo, actor="goose") as other:  # another connection commits
            sorties.create(other, "by goose")
        fleet.index.catch_up()
        assert sorties.page(fleet, 2, ready=True)[1] == more + 1
        sorties.create(fleet, "by viper")  # this connection writes
        assert sorties.page(fleet, 2, ready=True)[1] == more + 2
        with fleet.as_of(then):
            assert sorties.page(fleet, 2, ready=True)[1] == more
        assert sorties.page(fleet, 2, ready=True)[1] == more + 2
