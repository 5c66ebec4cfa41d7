"""The HTTP API against a real `fleetgit serve` process over a real temp repository: every route,
its refusals and bad input, tokens, and the live event stream fed by a separate CLI process."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetgit.domain.squawk import commands as squawk
from fleetgit.git.paths import locate
from fleetgit.web import auth
from tests.conftest import CREW_EVENTS, flood, read_only_fleet, run_fleetgit
from tests.webserver import Server, serving, token, workers


@pytest.fixture
def server(repo: Path) -> Any:
    with serving(repo) as srv:
        yield srv


def _tokens(repo: Path) -> dict[str, str]:
    return {name: token(repo, name) for name in ("viper-1", "goose", "ice")}


# -- tokens ------------------------------------------------------------------------------------


def test_token_commands_create_list_and_revoke(repo: Path) -> None:
    made = run_fleetgit(repo, "--as", "viper-1", "token", "create", "--name", "bot", "--json")
    assert made.code == 0, made.err
    record = orjson.loads(made.out)
    secret = record["token"]
    assert secret.startswith("fgt_") and record["pilot"] == "viper-1" and record["scope"] == "write"
    path = auth.tokens_file(locate(repo))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = path.read_text()
    assert secret.split("_", 2)[2] not in stored  # only the hash is kept
    listed = run_fleetgit(repo, "token", "list", "--json")
    (row,) = orjson.loads(listed.out)["tokens"]
    assert row["id"] == record["id"] and "hash" not in row and row["revoked_at"] is None
    assert run_fleetgit(repo, "token", "revoke", record["id"]).code == 0
    (row,) = orjson.loads(run_fleetgit(repo, "token", "list", "--json").out)["tokens"]
    assert row["revoked_at"] is not None
    viewer = run_fleetgit(repo, "token", "create", "--read-only", "--json")
    assert viewer.code == 0 and orjson.loads(viewer.out)["scope"] == "read"
    # a typo in --as would make a token for nobody: refused in one line with a hint
    typo = run_fleetgit(repo, "--as", "viper-2", "token", "create")
    assert typo.code == 1 and "unknown callsign" in typo.err and "hint:" in typo.err
    assert "Traceback" not in typo.err
    nobody = run_fleetgit(repo, "token", "create")
    assert nobody.code == 1 and "no pilot identity" in nobody.err
    gone = run_fleetgit(repo, "token", "revoke", "tok-nothere")
    assert gone.code == 1 and "no token" in gone.err
    joined = run_fleetgit(repo, "--as", "rookie", "--register", "token", "create", "--json")
    assert joined.code == 0, joined.err


def test_the_web_modules_load_only_with_serve(repo: Path) -> None:
    """`fleetgit status` and `fleetgit token list` import no web framework."""
    code = (
        "import sys, runpy; sys.argv = ['fleetgit', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('fleetgit', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'fastapi', 'starlette', 'uvicorn', 'pydantic', 'anyio'} & set(sys.modules)\n"
        "print('HEAVY', sorted(heavy))"
    )
    for args in (["status"], ["token", "list"]):
        out = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=repo, capture_output=True, text=True
        ).stdout
        assert "HEAVY []" in out, (args, out)


# -- auth --------------------------------------------------------------------------------------


def test_tokens_reads_and_writes(repo: Path, server: Server) -> None:
    viper = token(repo, "viper-1")
    reader = token(repo, None, scope="read")
    assert server.get("/pilots").status == 200  # loopback: reads need no token
    mission = {"title": "Ship"}
    no_token = server.call("POST", "/missions", mission)
    assert no_token.status == 401 and no_token.error["code"] == "unauthorized"
    wrong = server.call("POST", "/missions", mission, token="fgt_tok-nothing_secret")
    assert wrong.status == 401 and "not valid" in wrong.error["message"]
    tampered = server.call("POST", "/missions", mission, token=viper[:-2] + "xx")
    assert tampered.status == 401
    basic = server.call("POST", "/missions", mission, headers={"Authorization": "Basic abc"})
    assert basic.status == 401 and "Bearer" in basic.error["message"]
    assert server.get("/pilots", token="fgt_bad").status == 401  # a bad token is never ignored
    ro = server.call("POST", "/missions", mission, token=reader)
    assert ro.status == 403 and ro.error["code"] == "forbidden"
    assert server.get("/pilots", token=reader).status == 200
    made = server.call("POST", "/missions", mission, token=viper)
    assert made.status == 201 and made.json()["created_by"] == "viper-1"
    assert server.get("/me", token=viper).json()["pilot"] == "viper-1"
    # revoked: refused from the next request on
    (record,) = [t for t in auth.listing(locate(repo)) if t["pilot"] == "viper-1"]
    auth.revoke(locate(repo), record["id"])
    again = server.call("POST", "/missions", mission, token=viper)
    assert again.status == 401


def test_beyond_loopback_reads_need_a_token(repo: Path) -> None:
    reader = token(repo, None, scope="read")
    with serving(repo, "--host", "0.0.0.0") as srv:
        srv.host = "127.0.0.1"
        refused = srv.get("/pilots")
        assert refused.status == 401 and "beyond loopback" in refused.error["message"]
        assert srv.get("/pilots", token=reader).status == 200
        stream = srv.get("/events/stream?access_token=nope")
        assert stream.status == 401


def test_serve_refuses_a_busy_port_in_one_line(repo: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_fleetgit(repo, "serve", "--port", str(port))
    assert out.code == 1 and "cannot listen on 127.0.0.1" in out.err and "hint:" in out.err
    assert "Traceback" not in out.err


# -- pilots ------------------------------------------------------------------------------------


def test_pilots(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    listed = server.get("/pilots?limit=2&offset=1").json()
    assert listed["total"] == 5 and len(listed["pilots"]) == 2 and listed["more"] == 2
    assert listed["pilots"][0]["callsign"] == "ice"  # by callsign: goose, ice, maverick...
    mine = server.call(
        "POST", "/pilots", {"callsign": "viper-1", "program": "claude"}, token=t["viper-1"]
    )
    assert mine.status == 200 and mine.json()["program"] == "claude"  # a rejoin
    assert "token" not in mine.json()
    other = server.call("POST", "/pilots", {"callsign": "goose"}, token=t["viper-1"])
    assert other.status == 403 and "acts as viper-1" in other.error["message"]
    beat = server.call(
        "PATCH", "/pilots/goose", {"status": "busy", "task": "lexer"}, token=t["goose"]
    )
    assert beat.status == 200 and beat.json()["status"] == "busy"
    busy = server.get("/pilots?status=busy").json()
    assert [p["callsign"] for p in busy["pilots"]] == ["goose"] and busy["total"] == 1
    bad = server.call("PATCH", "/pilots/goose", {"status": "asleep"}, token=t["goose"])
    assert bad.status == 422 and "status" in bad.error["message"]
    assert server.call("PATCH", "/pilots/ice", {}, token=t["goose"]).status == 403
    shown = server.get("/pilots/goose").json()
    assert shown["callsign"] == "goose" and shown["current_task"] == "lexer"
    missing = server.get("/pilots/nobody")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    # the seed's names answer the same
    assert server.get("/specialists/goose").json() == server.get("/pilots/goose").json()
    assert server.get("/specialists").json()["total"] == 5
    left = server.call("POST", "/pilots/ice/deregister", {"reason": "done"}, token=t["ice"])
    assert left.status == 200 and left.json()["callsign"] == "ice"
    assert server.get("/pilots/ice").json()["deregistered"] is True


def test_a_newcomer_registers_without_a_token_on_loopback_and_gets_its_own(
    repo: Path, server: Server
) -> None:
    """A registration needs no identity, but never yields someone else's: no token (loopback)
    or an admin token registers a NEW callsign only, and answers with its token, once."""
    joined = server.call("POST", "/pilots", {"callsign": "rookie", "program": "claude"})
    assert joined.status == 201, joined.body
    out = joined.json()
    assert out["callsign"] == "rookie" and out["program"] == "claude"
    assert out["token"].startswith("fgt_") and out["token_id"].startswith("tok-")
    made = server.call("POST", "/missions", {"title": "Mine"}, token=out["token"])
    assert made.status == 201 and made.json()["created_by"] == "rookie"
    (record,) = [r for r in auth.listing(locate(repo)) if r["pilot"] == "rookie"]
    assert record["id"] == out["token_id"] and record["scope"] == "write"
    before = server.get("/events?reverse=true&limit=1").json()["events"][0]["pos"]
    for taken in ("rookie", "goose"):  # registered already: refused, nothing written
        again = server.call("POST", "/pilots", {"callsign": taken})
        assert again.status == 409 and again.error["code"] == "conflict", again.body
        assert "registered already" in again.error["message"]
        assert f"--as {taken} token create" in again.error["hint"]
    t = _tokens(repo)
    assert server.call("POST", "/pilots/ice/deregister", token=t["ice"]).status == 200
    gone = server.call("POST", "/pilots", {"callsign": "ice"})  # gone is not free to take
    assert gone.status == 409
    assert server.call("POST", "/pilots", {"callsign": "ice"}, token=t["ice"]).status == 200
    before = server.get("/events?reverse=true&limit=1").json()["events"][0]["pos"]
    stranger = server.call("POST", "/pilots", {"callsign": "newbie"}, token=t["goose"])
    assert stranger.status == 403 and "token create --admin" in stranger.error["hint"]
    reader = token(repo, None, scope="read")
    viewer = server.call("POST", "/pilots", {"callsign": "newbie"}, token=reader)
    assert viewer.status == 403 and viewer.error["code"] == "forbidden"
    bad = server.call("POST", "/pilots", {"callsign": "Bad Name"})
    cli = run_fleetgit(repo, "pilot", "register", "Bad Name", "--json")
    assert bad.status == 422 and bad.error["message"] in cli.err
    assert server.get("/events?reverse=true&limit=1").json()["events"][0]["pos"] == before
    # an admin token (fleetgit token create --admin) registers newcomers and does nothing else
    made_admin = run_fleetgit(repo, "token", "create", "--admin", "--json")
    assert made_admin.code == 0, made_admin.err
    admin = orjson.loads(made_admin.out)
    assert admin["scope"] == "admin" and admin["pilot"] is None
    bot = server.call("POST", "/pilots", {"callsign": "bot-2"}, token=admin["token"])
    assert bot.status == 201 and bot.json()["token"] != admin["token"]
    assert server.call("POST", "/pilots", {"callsign": "goose"}, token=admin["token"]).status == 409
    write = server.call("POST", "/missions", {"title": "x"}, token=admin["token"])
    assert write.status == 403 and "admin token" in write.error["message"]
    assert server.get("/pilots", token=admin["token"]).status == 200
    both = run_fleetgit(repo, "token", "create", "--admin", "--read-only")
    assert both.code == 1 and "hint:" in both.err


def test_beyond_loopback_a_registration_needs_an_admin_token(repo: Path) -> None:
    made = run_fleetgit(repo, "token", "create", "--admin", "--json")
    admin = orjson.loads(made.out)["token"]
    with serving(repo, "--host", "0.0.0.0") as srv:
        srv.host = "127.0.0.1"
        anonymous = srv.call("POST", "/pilots", {"callsign": "remote-1"})
        assert anonymous.status == 401 and anonymous.error["code"] == "unauthorized"
        joined = srv.call("POST", "/pilots", {"callsign": "remote-1"}, token=admin)
        assert joined.status == 201 and joined.json()["token"].startswith("fgt_")


# -- missions and sorties ----------------------------------------------------------------------


def test_missions_and_sorties_with_their_transitions(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    viper, goose = t["viper-1"], t["goose"]
    mission = server.call("POST", "/missions", {"title": "Parser", "priority": "high"}, token=viper)
    assert mission.status == 201
    mid = mission.json()["mission_id"]
    body = {"title": "Lexer", "mission_id": mid, "files": ["src/lexer.py"]}
    sortie = server.call("POST", "/sorties", body, token=viper)
    assert sortie.status == 201, sortie.body
    sid = sortie.json()["sortie_id"]
    second = server.call("POST", "/sorties", {"title": "Docs", "mission_id": mid}, token=viper)
    sid2 = second.json()["sortie_id"]

    def act(tok: str, action: str, ref: str = sid, **extra: Any) -> Any:
        return server.call("PATCH", f"/sorties/{ref}", {"action": action, **extra}, token=tok)

    # refusals, as the CLI refuses them
    early = act(goose, "start")
    assert early.status == 409 and early.error["code"] == "conflict"
    claimed = act(goose, "claim", reserve=True, ttl="1h")
    assert claimed.status == 200, claimed.body
    assert claimed.json()["assignee"] == "goose" and claimed.json()["claim"]["sortie_id"] == sid
    took = [(r["pattern"], r["holder"]) for r in claimed.json()["reservations"]]
    assert took == [("src/lexer.py", "goose")]  # what the claim reserved, as the MCP tool says
    taken = act(viper, "claim")
    assert taken.status == 409 and "goose" in taken.error["message"]
    assert act(viper, "start").status == 409  # not viper's
    assert act(goose, "start").json()["status"] == "in_progress"
    progress = act(goose, "progress", percent=40, note="tokens")
    assert progress.json()["percent"] == 40
    assert act(goose, "progress", percent="40").status == 422  # no coercion
    assert act(goose, "progress", percent=140).status == 422
    assert act(goose, "progress").status == 422  # percent is required
    assert act(goose, "fly").status == 422
    assert act(goose, "block", reason="grammar", bogus=1).status == 422
    assert act(goose, "block", reason="grammar").json()["status"] == "blocked"
    assert act(goose, "resume").json()["status"] == "in_progress"
    # the mission rolls its sorties up
    shown = server.get(f"/missions/{mid}").json()
    assert shown["status"] == "in_progress" and len(shown["sortie_list"]) == 2
    open_refusal = server.call("PATCH", f"/missions/{mid}", {"action": "complete"}, token=viper)
    assert open_refusal.status == 409 and open_refusal.error["hint"]
    done = act(goose, "complete", summary="lexer done")
    assert done.json()["status"] == "completed"
    over = act(goose, "complete")  # already over: the domain's refusal and its code
    assert (
        over.status == 422 and over.error["code"] == "invalid" and "completed" in over.body.decode()
    )
    listed = server.get(f"/sorties?mission_id={mid}&status=completed").json()
    assert [x["sortie_id"] for x in listed["sorties"]] == [sid]
    assert server.get("/sorties?status=flying").status == 422
    assert server.get("/sorties?assigned_to=goose&limit=1").json()["total"] == 1
    assert act(viper, "claim", ref=sid2).status == 200
    assert act(viper, "unclaim", ref=sid2, reason="later").json()["status"] == "open"
    update = act(viper, "update", ref=sid2, title="Docs and examples", priority="low")
    assert update.json()["title"] == "Docs and examples"
    assert act(viper, "cancel", ref=sid2, reason="dropped").json()["status"] == "cancelled"
    assert server.get("/missions?status=in_progress").json()["total"] == 1
    assert server.get("/missions?status=flying").status == 422
    update = server.call(
        "PATCH", f"/missions/{mid}", {"action": "update", "title": "P2"}, token=viper
    )
    assert update.json()["title"] == "P2"
    end = server.call(
        "PATCH", f"/missions/{mid}", {"action": "complete", "summary": "ok"}, token=viper
    )
    assert end.status == 200 and end.json()["status"] == "completed"
    assert server.get("/missions/msn-nothere").status == 404
    assert server.get("/sorties/srt-nothere").status == 404
    other = server.call("POST", "/missions", {"title": "Other"}, token=viper).json()["mission_id"]
    assert (
        server.call("PATCH", f"/missions/{other}", {"action": "start"}, token=viper).status == 200
    )
    cancel = {"action": "cancel", "reason": "no", "force": True}
    assert (
        server.call("PATCH", f"/missions/{other}", cancel, token=viper).json()["status"]
        == "cancelled"
    )


def test_sortie_pages_are_read_in_sql_with_their_total(repo: Path, server: Server) -> None:
    viper = token(repo, "viper-1")
    for n in range(5):
        body = {"title": f"s{n}", "priority": "high" if n == 3 else "medium"}
        assert server.call("POST", "/sorties", body, token=viper).status == 201
    every = server.get("/sorties?limit=0").json()
    titles = [x["title"] for x in every["sorties"]]
    assert titles == ["s3", "s0", "s1", "s2", "s4"] and every["total"] == 5 and every["more"] == 0
    for limit, offset in ((2, 0), (2, 1), (2, 4), (3, 9), (0, 2), (0, 7)):
        got = server.get(f"/sorties?limit={limit}&offset={offset}").json()
        want = titles[offset : offset + limit] if limit else titles[offset:]
        assert [x["title"] for x in got["sorties"]] == want, (limit, offset)
        assert got["total"] == 5 and got["more"] == max(0, 5 - offset - len(want))
    assert server.get("/sorties?status=open&limit=1").json()["total"] == 5


# -- reservations ------------------------------------------------------------------------------


def test_reservations(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    made = server.call(
        "POST", "/reservations", {"patterns": ["src/app.py"], "ttl": "30m"}, token=t["viper-1"]
    )
    assert made.status == 201, made.body
    (r,) = made.json()["reservations"]
    assert r["holder"] == "viper-1" and 1700 < r["seconds_left"] <= 1800
    assert made.json()["unmatched"] == ["src/app.py"]
    clash = server.call("POST", "/reservations", {"patterns": ["src/*.py"]}, token=t["goose"])
    assert clash.status == 409
    err = clash.json()["error"]
    assert err["conflicts"][0]["holder"] == "viper-1" and err["hint"]
    blocked = server.call(
        "POST", "/reservations/check", {"paths": ["src/app.py"]}, token=t["goose"]
    )
    assert blocked.json()["blocked"][0]["held_by"][0]["holder"] == "viper-1"
    free = server.call("POST", "/reservations/check", {"paths": ["src/app.py"]}, token=t["viper-1"])
    assert free.json()["blocked"] == []
    listed = server.get("/reservations?holder=viper-1").json()
    assert listed["total"] == 1 and listed["reservations"][0]["id"] == r["id"]
    renewed = server.call("POST", "/reservations/renew", {"ttl": "2h"}, token=t["viper-1"])
    assert renewed.json()["reservations"][0]["seconds_left"] > 7000
    both = server.call(
        "POST", "/reservations/release", {"patterns": ["x"], "all": True}, token=t["viper-1"]
    )
    assert both.status == 400 and both.error["code"] == "usage"
    assert server.call("POST", "/reservations", {"patterns": []}, token=t["viper-1"]).status == 422
    assert (
        server.call("POST", "/reservations", {"patterns": "src"}, token=t["viper-1"]).status == 422
    )
    broad = server.call("POST", "/reservations", {"patterns": ["**"]}, token=t["goose"])
    assert broad.status == 422 and broad.error["hint"]
    force = server.call("POST", f"/reservations/{r['id']}/force-release", {}, token=t["goose"])
    assert force.status == 409  # viper-1 is active: the force rule refuses
    released = server.call("POST", "/reservations/release", {"all": True}, token=t["viper-1"])
    assert released.json()["released"] == [r["id"]]
    assert server.get("/reservations").json()["total"] == 0


# -- messages ----------------------------------------------------------------------------------


def test_messages(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    body = {"to": ["goose"], "subject": "Lexer API", "body": "tokens frozen", "ack_required": True}
    sent = server.call("POST", "/messages", body, token=t["viper-1"])
    assert sent.status == 201, sent.body
    mid = sent.json()["message_id"]
    reply = {"to": ["viper-1"], "subject": "Re", "body": "ok", "reply_to": mid}
    server.call("POST", "/messages", reply, token=t["goose"])
    inbox = server.get("/messages/inbox?unread=true", token=t["goose"]).json()
    assert [m["message_id"] for m in inbox["messages"]] == [mid] and inbox["total"] == 1
    anon = server.get("/messages/inbox")
    assert anon.status == 401 and "token bound to a pilot" in anon.error["message"]
    shown = server.get(f"/messages/{mid}").json()
    assert shown["recipients"][0]["read"] is False  # showing does not mark it read
    assert server.call("POST", f"/messages/{mid}/read", token=t["goose"]).status == 200
    not_mine = server.call("POST", f"/messages/{mid}/ack", {"notes": "x"}, token=t["ice"])
    assert not_mine.status in (409, 422) and not_mine.error["hint"]
    acked = server.call("POST", f"/messages/{mid}/ack", {"notes": "on it"}, token=t["goose"])
    assert acked.json()["recipients"][0]["acked"] is True
    thread = server.get(f"/messages/{mid}/thread").json()
    assert [m["subject"] for m in thread["messages"]] == ["Lexer API", "Re"]
    found = server.get("/messages/search?q=frozen").json()
    assert [m["message_id"] for m in found["messages"]] == [mid]
    assert server.get("/messages/search").status == 422  # q is required
    unknown = server.call("POST", "/messages", {**body, "to": ["nobody"]}, token=t["viper-1"])
    assert unknown.status == 422 and "unknown callsign" in unknown.error["message"]
    assert server.call("POST", f"/messages/{mid}/archive", token=t["goose"]).status == 200
    assert server.get("/messages/msg-nothere").status == 404


# -- work orders, locks, checkpoints ------------------------------------------------------------


def test_workorders_locks_and_checkpoints(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    viper = t["viper-1"]
    sid = server.call("POST", "/sorties", {"title": "S", "files": ["a.py"]}, token=viper).json()[
        "sortie_id"
    ]
    wo = server.call("POST", "/workorders", {"title": "W", "sortie_id": sid}, token=viper)
    assert wo.status == 201, wo.body
    wid = wo.json()["work_order_id"]
    assigned = server.call(
        "PATCH", f"/workorders/{wid}", {"action": "assign", "callsign": "goose"}, token=viper
    )
    assert assigned.json()["assignee"] == "goose"
    status = {"action": "status", "status": "in_progress"}
    assert server.call("PATCH", f"/workorders/{wid}", status, token=t["goose"]).status == 200
    assert (
        server.call(
            "PATCH", f"/workorders/{wid}", {"action": "status", "status": "x"}, token=t["goose"]
        ).status
        == 422
    )
    assert (
        server.call("PATCH", f"/workorders/{wid}", {"action": "complete"}, token=t["goose"]).status
        == 200
    )
    assert server.get(f"/workorders?sortie_id={sid}").json()["total"] == 1
    assert server.get(f"/workorders/{wid}").json()["status"] == "completed"
    lock = server.call("POST", "/locks/deploy", {"ttl": "5m"}, token=viper)
    assert lock.status == 200, lock.body
    assert server.call("POST", "/locks/deploy", token=t["goose"]).status == 409
    assert server.get("/locks").json()["locks"][0]["lock_key"] == "deploy"
    assert server.get("/locks/deploy").json()["holder"] == "viper-1"
    assert server.call("DELETE", "/locks/deploy", token=viper).status == 200
    reserve = {"patterns": ["a.py"]}
    assert server.call("POST", "/reservations", reserve, token=viper).status == 201
    chk = server.call(
        "POST", "/checkpoints", {"summary": "half", "next_steps": ["tests"]}, token=viper
    )
    assert chk.status == 201, chk.body
    cid = chk.json()["checkpoint_id"]
    assert server.get("/checkpoints").json()["total"] == 1
    assert server.get(f"/checkpoints/{cid}").json()["summary"] == "half"
    server.call("POST", "/reservations/release", {"all": True}, token=viper)
    restored = server.call("POST", f"/checkpoints/{cid}/restore", token=viper)
    assert restored.status == 200, restored.body
    out = restored.json()
    assert "half" in out["markdown"] and out["reservations"]["reacquired"]
    assert server.get("/reservations?holder=viper-1").json()["total"] == 1
    assert server.call("POST", "/checkpoints/chk-nothere/restore", token=viper).status == 404


# -- events ------------------------------------------------------------------------------------


def test_events_and_streams(repo: Path, server: Server) -> None:
    t = _tokens(repo)
    mid = server.call("POST", "/missions", {"title": "M"}, token=t["viper-1"]).json()["mission_id"]
    server.call("PATCH", f"/missions/{mid}", {"action": "start"}, token=t["viper-1"])
    listed = server.get("/events?limit=2").json()
    assert [e["pos"] for e in listed["events"]] == [1, 2] and listed["more"] >= 1
    after = server.get(f"/events?after={CREW_EVENTS}").json()["events"]
    assert [e["type"] for e in after] == ["mission_created", "mission_started"]
    typed = server.get("/events?type=mission_started&type=mission_created").json()["events"]
    assert len(typed) == 2
    stream = f"mission/{mid}"
    by_stream = server.get(f"/events?stream={stream}").json()["events"]
    assert [e["seq"] for e in by_stream] == [1, 2]
    ranged = server.get(f"/streams/{stream}/events?from_seq=2").json()["events"]
    assert [e["type"] for e in ranged] == ["mission_started"]
    one = server.get(f"/events/{ranged[0]['id']}").json()
    assert one == ranged[0]
    assert server.get(f"/events/{ranged[0]['id'][:13]}").json()["id"] == one["id"]
    assert server.get("/events/ffffffff").status == 404
    bad_stream = server.get("/events?stream=no%20such")
    assert bad_stream.status == 422 and bad_stream.error["code"] == "invalid"
    assert server.get("/streams/Bad Stream/events".replace(" ", "%20")).status == 422
    assert server.get("/events?after=-1").status == 422
    assert server.get("/events?limit=ten").status == 422
    unbounded = server.get("/events?limit=0")  # the history grows: pages of it only
    assert unbounded.status == 422 and "limit" in unbounded.error["message"]
    assert server.get("/events?limit=10001").status == 422
    assert server.get(f"/streams/{stream}/events?from_seq=0").status == 422


# -- the dashboard's read ------------------------------------------------------------------------


def test_board_reads_messages_in_two_queries_and_events_only_when_asked(
    repo: Path, server: Server
) -> None:
    from fleetgit.fleet import Fleet
    from fleetgit.web import stats

    ids = flood(repo, "ice", 120)
    with Fleet.open(repo, actor="ice") as fleet:
        squawk.mark(fleet, ids[-1], "message_read")
        statements: list[str] = []
        fleet.index.conn.set_trace_callback(statements.append)
        newest = stats.messages(fleet, 100)
        fleet.index.conn.set_trace_callback(None)
        assert len(statements) == 2, statements  # the messages, then all their recipients
        assert [m["message_id"] for m in newest] == ids[::-1][:100]
        assert newest == [squawk.message(fleet, m["message_id"]) for m in newest]
        assert newest[0]["recipients"][0]["read"] is True
    full = server.get("/board").json()
    assert len(full["events"]) == 100 and full["events"][0]["pos"] == full["last_pos"]
    again = server.get("/board?events=0").json()  # the dashboard's refreshes
    assert again["events"] == [] and again["messages"] == full["messages"]
    assert server.get("/board?events=1001").status == 422


def test_the_events_per_hour_are_counted_as_they_come_and_equal_a_count_from_scratch(
    repo: Path,
) -> None:
    from fleetgit.fleet import EventSpec, Fleet
    from fleetgit.ledger import clock
    from fleetgit.web import stats

    hours = stats.HourCounts()
    hour = 3_600_000

    def both(fleet: Fleet) -> tuple[dict[int, int], dict[int, int]]:
        first = clock.now_ms() // hour - 23
        counted = hours.since(fleet.index.conn, first)
        fresh = stats.HourCounts().since(fleet.index.conn, first)
        return counted, fresh

    with Fleet.open(repo, actor="goose") as fleet:
        counted, fresh = both(fleet)
        assert counted == fresh and sum(counted.values()) == CREW_EVENTS
        beat = EventSpec("pilot_active", "pilot/goose", {"status": "busy"}, actor="goose")
        fleet.emit_batch([beat] * 7)
        counted, fresh = both(fleet)
        assert counted == fresh and sum(counted.values()) == CREW_EVENTS + 7
        assert both(fleet)[0] == counted  # nothing new: the same
    assert run_fleetgit(repo, "index", "rebuild").code == 0  # other positions, perhaps
    with Fleet.open(repo, actor="goose") as fleet:
        fleet.emit_batch([beat] * 2)
        counted, fresh = both(fleet)
        assert counted == fresh and sum(counted.values()) == CREW_EVENTS + 9


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_one_json_error_never_a_traceback(repo: Path, server: Server) -> None:
    viper = token(repo, "viper-1")
    malformed = server.call("POST", "/missions", raw=b'{"title": "x"', token=viper)
    assert malformed.status == 400 and malformed.error["code"] == "bad_json"
    not_utf8 = server.call("POST", "/missions", raw=b'{"title": "\xff"}', token=viper)
    assert not_utf8.status in (400, 422) and not_utf8.error
    array = server.call("POST", "/missions", [1, 2], token=viper)
    assert array.status == 422
    wrong_type = server.call("POST", "/missions", {"title": 5}, token=viper)
    assert wrong_type.status == 422 and "'title'" in wrong_type.error["message"]
    unknown = server.call("POST", "/missions", {"title": "x", "owner": "goose"}, token=viper)
    assert unknown.status == 422 and "unknown body field 'owner'" in unknown.error["message"]
    empty = server.call("POST", "/missions", token=viper)
    assert empty.status == 422 and "missing" in empty.error["message"]
    form = server.call(
        "POST",
        "/missions",
        raw=b"title=x",
        token=viper,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 415 and form.error["code"] == "unsupported_media_type"
    huge = server.call("POST", "/missions", {"title": "x" * (2 << 20)}, token=viper)
    assert huge.status == 413 and huge.error["code"] == "too_large"
    # a chunked body (no Content-Length) over the limit is cut off while it streams in
    conn = server.connection()
    conn.putrequest("POST", "/api/v1/missions")
    conn.putheader("Authorization", f"Bearer {viper}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b'{"title": "' + b"x" * (256 << 10)
    try:
        for _ in range(8):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may answer and close before all of it is sent
    res = conn.getresponse()
    assert res.status == 413 and orjson.loads(res.read())["error"]["code"] == "too_large"
    conn.close()
    too_long = server.call("POST", "/missions", {"title": "x" * 70000}, token=viper)
    assert too_long.status == 422
    domain = server.call("POST", "/missions", {"title": "x", "priority": "urgent"}, token=viper)
    assert domain.status == 422 and domain.error["code"] == "invalid" and domain.error["hint"]
    route = server.get("/nothing")
    assert route.status == 404 and "no such route" in route.error["message"]
    method = server.call("PUT", "/pilots", {})
    assert method.status == 405 and method.error["code"] == "method_not_allowed"
    typo = server.get("/reservations?holdr=goose")
    assert (
        typo.status == 422 and "holdr" in typo.error["message"] and "holder" in typo.error["hint"]
    )
    query = server.get("/pilots?limit=-1")
    assert query.status == 422 and "limit" in query.error["message"]
    host = server.get("/pilots", headers={"Host": "evil.example:7070"})
    assert host.status == 400 and host.error["code"] == "bad_host"
    assert server.get("/pilots", headers={"Host": "LOCALHOST:7070"}).status == 200  # case-blind
    assert server.get("/events/stream", headers={"Last-Event-ID": "x1"}).status == 400
    assert server.get("/pilots").headers.get("access-control-allow-origin") is None


def test_cors_only_when_configured(repo: Path) -> None:
    with serving(repo, "--cors-origin", "http://dash.example") as srv:
        res = srv.get("/pilots", headers={"Origin": "http://dash.example"})
        assert res.headers.get("access-control-allow-origin") == "http://dash.example"
        other = srv.get("/pilots", headers={"Origin": "http://evil.example"})
        assert other.headers.get("access-control-allow-origin") is None


def test_openapi_lists_every_route(repo: Path, server: Server) -> None:
    doc = server.get("/openapi.json").json()
    paths = set(doc["paths"])
    for path in (
        "/api/v1/pilots",
        "/api/v1/pilots/{callsign}",
        "/api/v1/missions/{mission_id}",
        "/api/v1/sorties/{sortie_id}",
        "/api/v1/reservations",
        "/api/v1/reservations/check",
        "/api/v1/messages/{message_id}/ack",
        "/api/v1/events",
        "/api/v1/events/stream",
        "/api/v1/events/{event_id}",
        "/api/v1/streams/{stream}/events",
        "/api/v1/checkpoints/{checkpoint_id}/restore",
    ):
        assert path in paths, path
    assert "SortieProgress" in doc["components"]["schemas"]


# -- the live event stream ----------------------------------------------------------------------


class Sse:
    """A raw SSE client over http.client: reads frames as they arrive."""

    def __init__(self, server: Server, last_id: int | None = None, query: str = "") -> None:
        self.conn = server.connection(timeout=10)
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        self.conn.request("GET", "/api/v1/events/stream" + query, headers=headers)
        self.res = self.conn.getresponse()
        assert self.res.status == 200
        assert self.res.headers["content-type"].startswith("text/event-stream")

    def next(self) -> tuple[int, dict[str, Any]]:
        """The next event frame (comments and the retry line skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.res.fp.readline().decode()
            if line in ("\n", ""):
                if "data" in fields:
                    return int(fields["id"]), orjson.loads(fields["data"])
                if line == "":
                    raise AssertionError("the stream ended")
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.rstrip("\n").partition(": ")
            fields[name] = value

    def close(self) -> None:
        self.conn.close()


def test_sse_delivers_what_a_cli_process_appends_and_resumes_without_gaps(
    repo: Path, server: Server
) -> None:
    live = Sse(server)  # from now on
    out = run_fleetgit(repo, "--as", "goose", "reserve", "src/app.py", "--ttl", "1h")
    assert out.code == 0, out.err
    first_id, first = live.next()
    assert first["type"] == "file_reserved" and first["actor"] == "goose"
    assert first_id == first["pos"] == CREW_EVENTS + 1
    live.close()
    # while nobody listens: a CLI process and the API both append
    for n in range(3):
        assert run_fleetgit(repo, "--as", "ice", "pilot", "heartbeat", "--task", f"t{n}").code == 0
    viper = token(repo, "viper-1")
    assert server.call("POST", "/missions", {"title": "M"}, token=viper).status == 201
    resumed = Sse(server, last_id=first_id)
    got = [resumed.next() for _ in range(4)]
    assert [i for i, _ in got] == list(range(first_id + 1, first_id + 5))  # no gap, no duplicate
    assert [e["type"] for _, e in got] == ["pilot_active"] * 3 + ["mission_created"]
    # and it goes on live, still without a duplicate
    assert run_fleetgit(repo, "--as", "ice", "pilot", "heartbeat").code == 0
    nxt, event = resumed.next()
    assert nxt == first_id + 5 and event["actor"] == "ice"
    resumed.close()
    # ?after= is the same resume for a client that cannot set headers
    again = server.connection()
    again.request("GET", f"/api/v1/events/stream?after={first_id + 3}")
    res = again.getresponse()
    text = b""
    while text.count(b"\ndata: ") < 2:
        text += res.fp.readline()
    assert f"id: {first_id + 4}\n".encode() in text and f"id: {first_id + 5}\n".encode() in text
    assert f"id: {first_id + 3}\n".encode() not in text
    again.close()


def test_sse_filters_by_type_and_stream_and_resumes_under_a_filter_without_gaps(
    repo: Path, server: Server
) -> None:
    def fg(*args: str) -> None:
        out = run_fleetgit(repo, *args)
        assert out.code == 0, out.err

    kinds = "?type=file_reserved&type=file_released"
    live = Sse(server, query=kinds)
    fg("--as", "ice", "pilot", "heartbeat")
    fg("--as", "goose", "reserve", "a.py")
    fg("--as", "ice", "pilot", "heartbeat")
    fg("--as", "goose", "release", "a.py")
    got = [live.next() for _ in range(2)]
    assert [e["type"] for _, e in got] == ["file_reserved", "file_released"]
    assert [i for i, _ in got] == [e["pos"] for _, e in got]  # ids are positions still
    last = got[-1][0]
    live.close()
    # away: other events, and two that pass the filter among them
    fg("--as", "ice", "pilot", "heartbeat")
    fg("--as", "goose", "reserve", "b.py")
    fg("--as", "ice", "pilot", "heartbeat", "--task", "x")
    fg("--as", "goose", "reserve", "c.py")
    resumed = Sse(server, last_id=last, query=kinds)
    back = [resumed.next() for _ in range(2)]
    assert [e["data"]["patterns"] for _, e in back] == [["b.py"], ["c.py"]]
    assert back[0][0] > last and back[1][0] > back[0][0]
    fg("--as", "ice", "pilot", "heartbeat")
    fg("--as", "goose", "release", "--all")
    released = [resumed.next() for _ in range(2)]  # live again: no duplicate, nothing else
    assert [e["type"] for _, e in released] == ["file_released"] * 2
    assert released[0][0] > back[1][0]
    resumed.close()
    # one stream: ice's events only, from the start (?after=0)
    ice = Sse(server, query="?stream=pilot/ice&after=0")
    first = [ice.next()[1] for _ in range(3)]
    assert {e["stream"] for e in first} == {"pilot/ice"}
    ice.close()
    typo = server.get("/events/stream?type=file_reserve")
    assert typo.status == 422 and "file_reserved" in typo.error["hint"]
    assert server.get("/events?type=file_reserve").status == 422
    assert server.get("/events/stream?stream=Not%20a%20stream").status == 422


def test_sse_sees_events_of_another_worktree(repo: Path, server: Server, tmp_path: Path) -> None:
    """A pilot in another worktree of the clone writes its own segments: they reach the stream."""
    other = tmp_path / "wt2"
    subprocess.run(["git", "worktree", "add", "-q", str(other)], cwd=repo, check=True)
    # the poller opens the ledger again every few seconds: a new worktree is seen then
    live = Sse(server)
    start = time.monotonic()
    assert run_fleetgit(other, "--as", "maverick", "pilot", "heartbeat").code == 0
    _, event = live.next()
    assert event["actor"] == "maverick" and time.monotonic() - start < 10
    live.close()
    assert os.path.isdir(other)


def _serving_processes(repo: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == str(repo):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_several_worker_processes_share_the_port_and_end_together(repo: Path) -> None:
    viper = token(repo, "viper-1")
    with serving(repo, "--workers", "2") as srv:
        assert len(workers(srv, 2)) == 2
        live = Sse(srv)
        made = [srv.call("POST", "/missions", {"title": f"m{n}"}, token=viper) for n in range(6)]
        assert {r.status for r in made} == {201}
        got = [live.next()[1]["data"]["title"] for _ in range(6)]
        assert got == [f"m{n}" for n in range(6)]  # whichever process wrote it
        live.close()
        assert srv.get("/missions").json()["total"] == 6
        srv.proc.terminate()  # SIGTERM to the supervisor: it stops every worker
        assert srv.proc.wait(10) == 0
    deadline = time.monotonic() + 10
    while _serving_processes(repo) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _serving_processes(repo) == []


def _listening(pid: int, port: int) -> set[int]:
    """The inodes of the TCP sockets process `pid` holds that listen on `port`."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                held.add(int(link[8:-1]))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in held:
                found.add(inode)
    return found


def test_each_worker_process_listens_on_a_socket_of_its_own(repo: Path) -> None:
    """One SO_REUSEPORT group: the kernel spreads connections over the processes evenly (one
    socket that all accept on gave a busy server's keep-alive connections mostly to one)."""
    from fleetgit.web.app import processes

    with serving(repo) as srv:  # the default: one process per core, at most 4
        assert len(workers(srv, processes(0))) == processes(0)
    with serving(repo, "--workers", "3") as srv:
        pids = workers(srv, 3)
        assert len(pids) == 3
        each = [_listening(pid, srv.port) for pid in pids]
        assert [len(held) for held in each] == [1, 1, 1]
        assert len(set.union(*each)) == 3
        assert srv.get("/me").status == 200


def test_serve_never_joins_a_port_another_server_listens_on(repo: Path) -> None:
    """A port held by a socket in an SO_REUSEPORT group (as another `fleetgit serve` of this
    user holds it) is refused, as a busy port is: joining would answer half its requests."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        try:
            out = subprocess.run(
                [sys.executable, "-m", "fleetgit", "serve", "--port", str(port), "--workers", "2"],
                cwd=repo,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("serve joined the port another server listens on")
    assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "hint:" in out.stderr and "Traceback" not in out.stderr


def test_serve_json_announces_where_it_listens(repo: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetgit", "serve", "--port", "0", "--json"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = orjson.loads(proc.stdout.readline())
        assert first["url"].startswith("http://127.0.0.1:") and first["loopback"] is True
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_write_the_servers_disk_refuses_is_the_clis_refusal(repo: Path) -> None:
    """A write on a read-only `.fleet/` was a 500 "internal error" with a logged traceback,
    where the CLI and the MCP server refuse in one line naming the path, with a hint: the API
    answers that refusal (503: the server's disk, not the request), and reads still answer."""
    goose = token(repo, "goose")
    with read_only_fleet(repo) as prefix, serving(repo, prefix=prefix) as server:
        sent = server.call("POST", "/messages", {"to": ["ice"], "subject": "x"}, token=goose)
        assert sent.status == 503, sent.body
        error = sent.error
        assert error["code"] == "filesystem" and ".fleet/events/" in error["message"]
        assert "writable" in error["hint"]
        assert server.get("/pilots").status == 200
    assert not list((repo / ".git/fleet/logs").glob("web-error-*"))
    inbox = run_fleetgit(repo, "--as", "ice", "squawk", "inbox", "--json")
    assert inbox.code == 0, inbox.err
    assert orjson.loads(inbox.out)["messages"] == []  # nothing was written
