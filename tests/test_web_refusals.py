"""Every route family of the HTTP API refuses bad input and every domain refusal the way the CLI
does, against a real `fleetgit serve` over a real temp repository: malformed JSON, wrong types,
unknown fields, huge bodies, a missing, wrong or read-only token, another pilot's token; and each
refusal of the domain with the CLI's own code, message and hint. Nothing refused is written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

from fleetgit.fleet import init
from tests.conftest import enlist, make_repo, run_fleetgit
from tests.webserver import Reply, Server, serving, token


class World(NamedTuple):
    server: Server
    repo: Path
    tokens: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One server for the module: a mission, a sortie claimed by goose with a work order, a
    message to goose, a lock and a reservation of viper-1, a checkpoint of viper-1."""

    repo = make_repo(tmp_path_factory.mktemp("refusals") / "repo")
    init(repo)
    enlist(repo)
    tokens = {p: token(repo, p) for p in ("viper-1", "goose", "ice")}
    tokens["reader"] = token(repo, None, scope="read")
    with serving(repo) as srv:
        v, g = tokens["viper-1"], tokens["goose"]

        def made(path: str, body: Any, tok: str, key: str) -> str:
            res = srv.call("POST", path, body, token=tok)
            assert res.status == 201, res.body
            return str(res.json()[key])

        ids = {"mission": made("/missions", {"title": "M"}, v, "mission_id")}
        sortie = {"title": "S", "files": ["s.py"], "mission_id": ids["mission"]}
        ids["sortie"] = made("/sorties", sortie, v, "sortie_id")
        claim = {"action": "claim"}
        assert srv.call("PATCH", f"/sorties/{ids['sortie']}", claim, token=g).status == 200
        wo = {"title": "W", "sortie_id": ids["sortie"]}
        ids["workorder"] = made("/workorders", wo, v, "work_order_id")
        msg = {"to": ["goose"], "subject": "hi", "ack_required": True}
        ids["message"] = made("/messages", msg, v, "message_id")
        assert srv.call("POST", "/locks/deploy", {"ttl": "1h"}, token=v).status == 200
        rsv = srv.call("POST", "/reservations", {"patterns": ["r.py"]}, token=v)
        ids["reservation"] = rsv.json()["reservations"][0]["id"]
        ids["checkpoint"] = made("/checkpoints", {"summary": "half"}, v, "checkpoint_id")
        yield World(srv, repo, tokens, ids)


def last_pos(w: World) -> int:
    return int(w.server.get("/board").json()["last_pos"])


# -- every write route: its body, a field of the wrong type, and the token it needs -------------

# (method, path, a valid body or None for a route without one, a field to send with a wrong type)
WRITES: list[tuple[str, str, Any, str | None]] = [
    ("POST", "/pilots", {"callsign": "rookie"}, "callsign"),
    ("PATCH", "/pilots/viper-1", {"status": "busy"}, "task"),
    ("POST", "/pilots/viper-1/deregister", {"reason": "x"}, "reason"),
    ("POST", "/specialists", {"callsign": "rookie"}, "callsign"),
    ("POST", "/missions", {"title": "t"}, "title"),
    ("PATCH", "/missions/{mission}", {"action": "update", "title": "t"}, "title"),
    ("POST", "/sorties", {"title": "t"}, "files"),
    ("PATCH", "/sorties/{sortie}", {"action": "update", "title": "t"}, "priority"),
    ("POST", "/workorders", {"title": "t", "sortie_id": "{sortie}"}, "sortie_id"),
    ("PATCH", "/workorders/{workorder}", {"action": "status", "status": "open"}, "note"),
    ("POST", "/reservations", {"patterns": ["z.py"]}, "shared"),
    ("POST", "/reservations/renew", {"patterns": ["r.py"]}, "patterns"),
    ("POST", "/reservations/release", {"patterns": ["r.py"]}, "all"),
    ("POST", "/reservations/{reservation}/force-release", {"reason": "x"}, "reason"),
    ("POST", "/messages", {"to": ["goose"], "subject": "s"}, "ack_required"),
    ("POST", "/messages/{message}/ack", {"notes": "x"}, "notes"),
    ("POST", "/messages/{message}/read", None, None),
    ("POST", "/messages/{message}/archive", None, None),
    ("POST", "/locks/deploy", {"ttl": "5m"}, "ttl"),
    ("DELETE", "/locks/deploy", None, None),
    ("POST", "/checkpoints", {"summary": "s"}, "progress"),
    ("POST", "/checkpoints/{checkpoint}/restore", None, None),
]


def _fill(w: World, value: Any) -> Any:
    if isinstance(value, str):
        return value.format(**w.ids)
    if isinstance(value, dict):
        return {k: _fill(w, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(w, v) for v in value]
    return value


def _refused(reply: Reply, status: int, code: str, *words: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    err = reply.error  # exactly {code, message, hint}, no traceback
    assert err["code"] == code, err
    assert err["hint"], err
    for word in words:
        assert word in err["message"], (word, err)


@pytest.mark.parametrize(("method", "path", "body", "field"), WRITES, ids=[w[1] for w in WRITES])
def test_every_write_refuses_bad_tokens_and_bad_bodies_and_writes_nothing(
    world: World, method: str, path: str, body: Any, field: str | None
) -> None:
    w, srv = world, world.server
    path, body = _fill(w, path), _fill(w, body)
    viper = w.tokens["viper-1"]
    before = last_pos(w)
    if not path.endswith(("/pilots", "/specialists")):  # a newcomer registers with none
        _refused(srv.call(method, path, body), 401, "unauthorized", "token")
    _refused(srv.call(method, path, body, token="fgt_tok-x_y"), 401, "unauthorized", "not valid")
    _refused(srv.call(method, path, body, token=viper[:-3] + "abc"), 401, "unauthorized")
    basic = {"Authorization": "Basic dmlwZXI6eA=="}
    _refused(srv.call(method, path, body, headers=basic), 401, "unauthorized", "Bearer")
    _refused(srv.call(method, path, body, token=w.tokens["reader"]), 403, "forbidden", "read-only")
    if body is not None:
        raw = orjson.dumps(body)
        _refused(srv.call(method, path, raw=raw[:-1], token=viper), 400, "bad_json")
        _refused(srv.call(method, path, raw=b"\xff\xfe", token=viper), 400, "bad_json")
        _refused(srv.call(method, path, [body], token=viper), 422, "invalid")
        _refused(srv.call(method, path, "text", token=viper), 422, "invalid")
        unknown = srv.call(method, path, {**body, "bogus": 1}, token=viper)
        _refused(unknown, 422, "invalid", "unknown body field 'bogus'")
        assert field is not None
        wrong = srv.call(method, path, {**body, field: 12345}, token=viper)
        _refused(wrong, 422, "invalid", f"'{field}'")
        if isinstance(body.get(field), str):  # no coercion: a list is not a string either
            as_list = srv.call(method, path, {**body, field: [body[field]]}, token=viper)
            _refused(as_list, 422, "invalid", f"'{field}'")
        huge = srv.call(method, path, {**body, "x": "y" * (1 << 20)}, token=viper)
        _refused(huge, 413, "too_large", "limit")
        form = {"Content-Type": "text/plain"}
        _refused(
            srv.call(method, path, raw=raw, token=viper, headers=form),
            415,
            "unsupported_media_type",
        )
    else:  # a route without a body refuses one rather than ignore what the client meant
        extra = srv.call(method, path, {"notes": "x"}, token=viper)
        _refused(extra, 422, "invalid", "takes no body")
    assert last_pos(w) == before, "a refused request wrote an event"


# -- another pilot's token ----------------------------------------------------------------------


def test_a_token_acts_only_as_its_pilot(world: World) -> None:
    w, srv = world, world.server
    goose = w.tokens["goose"]
    before = last_pos(w)
    for method, path, body in (
        ("PATCH", "/pilots/viper-1", {"status": "busy"}),
        ("POST", "/pilots/viper-1/deregister", {}),
        ("PATCH", "/specialists/viper-1", {}),
    ):
        _refused(srv.call(method, path, body, token=goose), 403, "forbidden", "acts as goose")
    assert last_pos(w) == before


# -- each domain refusal: the CLI's code, message and hint --------------------------------------


def cli_error(repo: Path, *args: str) -> dict[str, Any]:
    """The CLI's refusal of the same request: `--json` puts it on stderr as one object."""
    res = run_fleetgit(repo, *args, "--json")
    assert res.code == 1, (args, res.out, res.err)
    err: dict[str, Any] = orjson.loads(res.err.strip().splitlines()[-1])["error"]
    return err


def _timeless(message: str) -> str:
    """A message naming the time left (or since) reads a second apart in two processes."""
    return re.sub(r"(\d+[dhms])+ (left|ago)", r"T \2", message)


def same_as_cli(reply: Reply, status: int, cli: dict[str, Any]) -> None:
    assert reply.status == status, (reply.status, reply.body)
    err = reply.error
    assert err["code"] == cli["code"], (err, cli)
    assert _timeless(err["message"]) == _timeless(cli["message"]), (err, cli)
    assert err["hint"] == cli.get("hint"), (err, cli)


def test_work_order_refusals_are_the_clis(world: World) -> None:
    w, srv, repo = world, world.server, world.repo
    v, g, ice = w.tokens["viper-1"], w.tokens["goose"], w.tokens["ice"]
    wid, sid = w.ids["workorder"], w.ids["sortie"]
    before = last_pos(w)
    same_as_cli(
        srv.call("POST", "/workorders", {"title": "t", "sortie_id": "srt-nothere"}, token=v),
        404,
        cli_error(repo, "--as", "viper-1", "workorder", "create", "t", "--sortie", "srt-nothere"),
    )
    same_as_cli(
        srv.call("POST", "/workorders", {"title": "", "sortie_id": sid}, token=v),
        422,
        cli_error(repo, "--as", "viper-1", "workorder", "create", "", "--sortie", sid),
    )
    same_as_cli(
        srv.call(
            "POST", "/workorders", {"title": "t", "sortie_id": sid, "priority": "asap"}, token=v
        ),
        422,
        cli_error(
            repo,
            "--as",
            "viper-1",
            "workorder",
            "create",
            "t",
            "--sortie",
            sid,
            "--priority",
            "asap",
        ),
    )
    assign = {"action": "assign", "callsign": "nobody"}
    same_as_cli(
        srv.call("PATCH", f"/workorders/{wid}", assign, token=v),
        422,
        cli_error(repo, "--as", "viper-1", "workorder", "assign", wid, "nobody"),
    )
    bad = {"action": "status", "status": "flying"}
    same_as_cli(
        srv.call("PATCH", f"/workorders/{wid}", bad, token=v),
        422,
        cli_error(repo, "--as", "viper-1", "workorder", "status", wid, "flying"),
    )
    same_as_cli(
        srv.get("/workorders/wo-nothere"),
        404,
        cli_error(repo, "workorder", "show", "wo-nothere"),
    )
    same_as_cli(
        srv.call("PATCH", "/workorders/wo-nothere", {"action": "complete"}, token=ice),
        404,
        cli_error(repo, "--as", "ice", "workorder", "complete", "wo-nothere"),
    )
    _refused(srv.call("PATCH", f"/workorders/{wid}", {"action": "fly"}, token=v), 422, "invalid")
    _refused(srv.call("PATCH", f"/workorders/{wid}", {}, token=v), 422, "invalid", "action")
    assert srv.get("/workorders?status=flying").status == 422
    assert last_pos(w) == before
    # a completed work order: the next transition is refused as the CLI refuses it
    assert srv.call("PATCH", f"/workorders/{wid}", {"action": "complete"}, token=g).status == 200
    again = {"action": "status", "status": "in_progress"}
    before = last_pos(w)
    same_as_cli(
        srv.call("PATCH", f"/workorders/{wid}", again, token=g),
        srv.call("PATCH", f"/workorders/{wid}", again, token=g).status,
        cli_error(repo, "--as", "goose", "workorder", "status", wid, "in_progress"),
    )
    assert last_pos(w) == before


def test_lock_refusals_are_the_clis(world: World) -> None:
    w, srv, repo = world, world.server, world.repo
    g = w.tokens["goose"]
    before = last_pos(w)
    same_as_cli(
        srv.call("POST", "/locks/deploy", token=g),
        409,
        cli_error(repo, "--as", "goose", "lock", "acquire", "deploy"),
    )
    same_as_cli(
        srv.call("DELETE", "/locks/deploy", token=g),
        409,
        cli_error(repo, "--as", "goose", "lock", "release", "deploy"),
    )
    same_as_cli(
        srv.call("DELETE", "/locks/never-taken", token=g),
        srv.call("DELETE", "/locks/never-taken", token=g).status,
        cli_error(repo, "--as", "goose", "lock", "release", "never-taken"),
    )
    same_as_cli(
        srv.call("POST", "/locks/other", {"ttl": "forever"}, token=g),
        422,
        cli_error(repo, "--as", "goose", "lock", "acquire", "other", "--ttl", "forever"),
    )
    same_as_cli(
        srv.call("POST", "/locks/bad%20key", token=g),
        422,
        cli_error(repo, "--as", "goose", "lock", "acquire", "bad key"),
    )
    assert srv.get("/locks/" + "k" * 300).status == 422  # over the path's bound
    assert last_pos(w) == before


def test_checkpoint_refusals_are_the_clis(world: World) -> None:
    w, srv, repo = world, world.server, world.repo
    v, g = w.tokens["viper-1"], w.tokens["goose"]
    before = last_pos(w)
    same_as_cli(
        srv.call("POST", "/checkpoints", {"mission_id": "msn-nothere"}, token=v),
        404,
        cli_error(repo, "--as", "viper-1", "checkpoint", "create", "--mission", "msn-nothere"),
    )
    same_as_cli(
        srv.call("POST", "/checkpoints", {"sortie_id": "srt-nothere"}, token=v),
        404,
        cli_error(repo, "--as", "viper-1", "checkpoint", "create", "--sortie", "srt-nothere"),
    )
    same_as_cli(
        srv.call("POST", "/checkpoints", {"trigger": "whenever"}, token=v),
        422,
        cli_error(repo, "--as", "viper-1", "checkpoint", "create", "--trigger", "whenever"),
    )
    _refused(srv.call("POST", "/checkpoints", {"progress": 101}, token=v), 422, "invalid")
    _refused(srv.call("POST", "/checkpoints", {"progress": "50"}, token=v), 422, "invalid")
    same_as_cli(
        srv.get("/checkpoints/chk-nothere"),
        404,
        cli_error(repo, "checkpoint", "show", "chk-nothere"),
    )
    same_as_cli(
        srv.call("POST", "/checkpoints/chk-nothere/restore", token=v),
        404,
        cli_error(repo, "--as", "viper-1", "resume", "--checkpoint", "chk-nothere"),
    )
    cid = w.ids["checkpoint"]
    theirs = srv.call("POST", f"/checkpoints/{cid}/restore", token=g)
    if theirs.status != 200:  # whatever the CLI decides for another pilot's checkpoint
        same_as_cli(
            theirs,
            theirs.status,
            cli_error(repo, "--as", "goose", "resume", "--checkpoint", cid),
        )
    else:
        assert run_fleetgit(repo, "--as", "goose", "resume", "--checkpoint", cid).code == 0
    if theirs.status != 200:
        assert last_pos(w) == before


def test_sortie_mission_reservation_and_message_refusals_are_the_clis(world: World) -> None:
    w, srv, repo = world, world.server, world.repo
    v, g, ice = w.tokens["viper-1"], w.tokens["goose"], w.tokens["ice"]
    sid, mid, msg = w.ids["sortie"], w.ids["mission"], w.ids["message"]
    before = last_pos(w)
    same_as_cli(
        srv.call("PATCH", f"/sorties/{sid}", {"action": "claim"}, token=ice),
        409,
        cli_error(repo, "--as", "ice", "sortie", "claim", sid),
    )
    same_as_cli(
        srv.call("PATCH", f"/sorties/{sid}", {"action": "complete"}, token=ice),
        409,
        cli_error(repo, "--as", "ice", "sortie", "complete", sid),
    )
    same_as_cli(
        srv.call("PATCH", f"/missions/{mid}", {"action": "complete"}, token=v),
        409,
        cli_error(repo, "--as", "viper-1", "mission", "complete", mid),
    )
    clash, cli = (
        srv.call("POST", "/reservations", {"patterns": ["r.py"]}, token=g),
        cli_error(repo, "--as", "goose", "reserve", "r.py"),
    )
    same_as_cli(clash, 409, cli)
    assert [c["holder"] for c in clash.error["conflicts"]] == ["viper-1"]
    assert [c["reservation_id"] for c in clash.error["conflicts"]] == [
        c["reservation_id"] for c in cli["conflicts"]
    ]
    same_as_cli(
        srv.call("POST", "/reservations", {"patterns": ["**"]}, token=g),
        422,
        cli_error(repo, "--as", "goose", "reserve", "**"),
    )
    same_as_cli(
        srv.call("POST", "/messages", {"to": ["nobody"], "subject": "s"}, token=v),
        422,
        cli_error(repo, "--as", "viper-1", "squawk", "send", "--to", "nobody", "--subject", "s"),
    )
    not_mine = srv.call("POST", f"/messages/{msg}/ack", token=ice)
    same_as_cli(not_mine, not_mine.status, cli_error(repo, "--as", "ice", "squawk", "ack", msg))
    same_as_cli(srv.get("/pilots/nobody"), 404, cli_error(repo, "pilot", "show", "nobody"))
    assert last_pos(w) == before


# -- every read route: a bad token is never ignored, a typo in a filter is refused ---------------

# (path, a query parameter of the wrong type or out of range)
READS: list[tuple[str, str]] = [
    ("/pilots", "limit=ten"),
    ("/pilots/viper-1", ""),
    ("/specialists", "offset=-1"),
    ("/missions", "limit=-1"),
    ("/missions/{mission}", ""),
    ("/sorties", "ready=perhaps"),
    ("/sorties/{sortie}", ""),
    ("/workorders", "limit=1.5"),
    ("/workorders/{workorder}", ""),
    ("/reservations", "include_expired=2x"),
    ("/messages/inbox", "unread=maybe"),
    ("/messages/search?q=hi", "fts=nope"),
    ("/messages/{message}", ""),
    ("/messages/{message}/thread", "offset=x"),
    ("/locks", ""),
    ("/locks/deploy", ""),
    ("/checkpoints", "limit=100000"),
    ("/checkpoints/{checkpoint}", ""),
    ("/events", "after=x"),
    ("/streams/mission/{mission}/events", "from_seq=0"),
    ("/me", ""),
    ("/board", ""),
]


@pytest.mark.parametrize(("path", "wrong"), READS, ids=[r[0] for r in READS])
def test_every_read_refuses_bad_tokens_typos_and_wrong_types(
    world: World, path: str, wrong: str
) -> None:
    srv, goose = world.server, world.tokens["goose"]
    path = _fill(world, path)
    join = "&" if "?" in path else "?"
    assert srv.get(path, token=goose).status == 200
    _refused(srv.get(path, token="fgt_tok-x_y"), 401, "unauthorized", "not valid")
    basic = {"Authorization": "Basic dmlwZXI6eA=="}
    _refused(srv.get(path, headers=basic), 401, "unauthorized", "Bearer")
    _refused(srv.get(f"{path}{join}bogus=1", token=goose), 422, "invalid", "bogus")
    if wrong:
        name = wrong.split("=")[0]
        _refused(srv.get(f"{path}{join}{wrong}", token=goose), 422, "invalid", name)
