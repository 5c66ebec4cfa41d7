"""Benchmarks (`make bench`, or `python -m bench.NAME`): timings and ratios, never assertions."""

from __future__ import annotations

from fleetgit.ledger.codec import EventSpec


def missions(ids: range, prefix: str = "m", title: str = "mission {i}") -> list[EventSpec]:
    """One `mission_created` per number of `ids`, as mission `<prefix><i>`: the plain event the
    benchmarks fill their ledgers with."""
    return [
        EventSpec(
            "mission_created",
            f"mission/{prefix}{i}",
            {"mission_id": f"{prefix}{i}", "title": title.format(i=i)},
        )
        for i in ids
    ]
