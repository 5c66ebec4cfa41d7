"""Tombstones: `fleetgit withdraw` takes one event out of every projection, in every clone,
incrementally as after a rebuild; only the event's own actor can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.conftest import plant, signed_segment
from tests.test_sync import fg, make_net, sync


def _last(clone: Path, etype: str) -> dict[str, Any]:
    out = orjson.loads(
        fg(clone, "events", "--type", etype, "--reverse", "--limit", "1", "--json").out
    )
    return dict(out["events"][0])


def _state(clone: Path) -> tuple[str, str, str]:
    def read(*args: str) -> str:
        return fg(clone, *args, "--limit", "0", "--json").out

    return (
        read("reservations"),
        read("sortie", "list"),
        read("--as", "goose", "squawk", "inbox"),
    )


def test_a_withdrawn_event_leaves_every_projection_here_and_on_other_machines(
    tmp_path: Path,
) -> None:
    _remote, (a, b, _c) = make_net(tmp_path)
    for clone in (a, b, a):
        sync(clone)
    fg(a, "--as", "viper", "reserve", "src/app.py")
    grant = _last(a, "file_reserved")
    fg(a, "--as", "viper", "sortie", "create", "Mistake")
    created = _last(a, "sortie_created")
    fg(a, "--as", "viper", "squawk", "send", "--to", "goose", "--subject", "wrong thread")
    sent = _last(a, "message_sent")
    sync(a)
    sync(b)
    assert "src/app.py" in fg(b, "reservations").out
    blocked = fg(b, "--as", "goose", "check", "src/app.py", ok=False)
    assert blocked.code == 1
    for event in (grant, created, sent):
        fg(a, "--as", "viper", "withdraw", event["id"][:13], "--reason", "mistake")
    assert fg(a, "reservations").out.strip() == "no reservations"
    assert "Mistake" not in fg(a, "sortie", "list").out
    here = _state(a)
    fg(a, "index", "rebuild")
    assert _state(a) == here  # incremental == rebuild
    sync(a)
    sync(b)
    assert _state(b) == here
    fg(b, "--as", "goose", "check", "src/app.py")  # free again on the other machine
    assert not orjson.loads(fg(b, "--as", "goose", "squawk", "inbox", "--json").out)["messages"]
    assert (
        len(orjson.loads(fg(b, "events", "--type", "event_withdrawn", "--json").out)["events"]) == 3
    )
    fg(b, "verify", "--strict")


def test_only_the_actor_withdraws_and_a_tombstone_by_another_counts_for_nothing(
    repo: Path,
) -> None:
    fg(repo, "--as", "viper", "reserve", "src/app.py")
    grant = _last(repo, "file_reserved")
    res = fg(repo, "--as", "goose", "withdraw", grant["id"], ok=False)
    assert res.code == 1 and "only its actor withdraws it" in res.err
    # a tombstone another clone wrote in goose's name, past every check: ignored
    plant(repo, "event_withdrawn", grant["stream"], {"event_id": grant["id"]}, "goose")
    assert "src/app.py" in fg(repo, "reservations").out
    fg(repo, "index", "rebuild")
    assert "src/app.py" in fg(repo, "reservations").out
    fg(repo, "--as", "viper", "withdraw", grant["id"])
    again = fg(repo, "--as", "viper", "withdraw", grant["id"], ok=False)
    assert again.code == 1 and "withdrawn already" in again.err
    assert fg(repo, "reservations").out.strip() == "no reservations"


def test_a_tombstone_that_arrives_before_its_event_is_honoured(repo: Path) -> None:
    """Another clone's segment holds both; catch-up may read the tombstone first."""
    from fleetgit.ledger import clock
    from fleetgit.ledger.codec import Event

    now = clock.now_ms()
    rid, (eid, tid) = "res-zzzzzzzzzzzz", clock.uuid7s(2)
    grant = Event(
        eid, "file_reserved", 1, f"reservation/{rid}", 1, clock.make_hlc(now), "y" * 16, 1,
        "ice", clock.iso_ms(now), eid, 1,
        {"reservation_id": rid, "holder": "ice", "patterns": ["docs/"], "exclusive": True,
         "ttl_seconds": 3600},
    )  # fmt: skip
    tomb = Event(
        tid, "event_withdrawn", 1, f"reservation/{rid}", 2, clock.make_hlc(now + 1), "y" * 16, 2,
        "ice", clock.iso_ms(now + 1), tid, 1, {"event_id": eid},
    )  # fmt: skip
    wdir = repo / ".fleet/events" / ("y" * 16)
    wdir.mkdir(parents=True)
    (wdir / "00000002.jsonl").write_bytes(
        signed_segment(repo, 2, [tomb])
    )  # read first: the later segment...
    fg(repo, "reservations")
    (wdir / "00000001.jsonl").write_bytes(
        signed_segment(repo, 1, [grant])
    )  # ...then the event it withdraws
    assert fg(repo, "reservations").out.strip() == "no reservations"
    assert orjson.loads(fg(repo, "index", "status", "--json").out)["refused"] == 0
    # the control: the same grant without its tombstone counts
    (wdir / "00000002.jsonl").unlink()
    fg(repo, "index", "rebuild")
    assert "docs/" in fg(repo, "reservations").out


def test_emit_refuses_a_tombstone_withdraw_would_refuse(repo: Path, cli: Any) -> None:
    """`emit event_withdrawn` is held to `withdraw`'s rules: the folds would ignore such a
    tombstone, so writing it would only leave junk in the ledger."""
    assert cli(repo, "--as", "ice", "reserve", "src/app.py").code == 0
    out = orjson.loads(cli(repo, "events", "--type", "file_reserved", "--json").out)
    grant = out["events"][-1]
    stream = grant["stream"]

    def emit(who: str, data: dict[str, Any], on: str = stream) -> Any:
        payload = orjson.dumps(data).decode()
        return cli(repo, "--as", who, "emit", "event_withdrawn", "--stream", on, "--data", payload)

    other = emit("viper-1", {"event_id": grant["id"]})
    assert other.code == 1 and "only the event's own actor (ice) withdraws it" in other.err
    assert "fleetgit --as ACTOR withdraw ID" in other.err
    elsewhere = emit("ice", {"event_id": grant["id"]}, on="reservation/res-elsewhere")
    assert elsewhere.code == 1 and "names no event of this stream" in elsewhere.err
    assert emit("ice", {"event_id": "0" * 8 + "-0000-7000-8000-" + "0" * 12}).code == 1
    assert emit("ice", {"event_id": grant["id"]}).code == 0  # its own actor, its own stream
    tomb = orjson.loads(cli(repo, "events", "--type", "event_withdrawn", "--json").out)
    again = emit("ice", {"event_id": tomb["events"][0]["id"]})
    assert again.code == 1 and "a withdrawal cannot be withdrawn" in again.err
    assert (
        len(orjson.loads(cli(repo, "events", "--type", "event_withdrawn", "--json").out)["events"])
        == 1
    )
