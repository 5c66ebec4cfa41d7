"""`fleetgit agents install|uninstall`: merged into what is there, idempotent, and uninstall gives
every file back byte for byte."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgit.agents.install import (
    CLIENTS,
    MD_BEGIN,
    MD_END,
    Installer,
    files_for,
    installed_clients,
    uninstall,
)
from tests.conftest import run_fleetgit

# what a project may already hold: odd formatting, other servers and hooks, no last newline
BEFORE: dict[str, bytes] = {
    ".mcp.json": b'{"mcpServers": {"other": {"command": "other-mcp"}},\n  "x": [1,2]}',
    ".claude/settings.json": (
        b'{\n    "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},'
        b'\n    "model": "opus"\n}\n'
    ),
    "CLAUDE.md": b"# Project\n\nUse tabs.",
    "AGENTS.md": b"# Agents\r\n\r\nRun make test.\r\n",
    ".codex/config.toml": b'model = "o4"\n\n[mcp_servers.other]\ncommand = "other"\n',
    ".cursor/mcp.json": b"{}\n",
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def dirs(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir() and ".git" not in p.parts
    }


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("existing", [True, False], ids=["with-content", "fresh"])
def test_install_then_uninstall_leaves_every_byte_as_it_was(
    repo: Path, client: str, existing: bool
) -> None:
    if existing:
        for rel, content in BEFORE.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_bytes(content)
    before, folders = snapshot(repo), dirs(repo)

    first = run_fleetgit(repo, "agents", "install", "--client", client, "--json")
    assert first.code == 0, first.err
    written = {f["path"]: f["action"] for f in json.loads(first.out)["files"]}
    assert set(written) == set(files_for(client, None))
    assert all(a in ("created", "updated") for a in written.values())
    installed = snapshot(repo)
    for rel, content in before.items():  # what was there is kept, fleetgit's parts added
        if rel in written and rel.endswith(".md"):
            assert installed[rel].startswith(content.rstrip(b"\r\n"))
    _check_wired(repo, client, existing)

    again = run_fleetgit(repo, "agents", "install", "--client", client, "--json")
    assert {f["action"] for f in json.loads(again.out)["files"]} == {"unchanged"}
    assert snapshot(repo) == installed  # idempotent

    gone = run_fleetgit(repo, "agents", "uninstall", "--client", client)
    assert gone.code == 0, gone.err
    assert snapshot(repo) == before and dirs(repo) == folders


def _check_wired(repo: Path, client: str, existing: bool) -> None:
    if client == "claude-code":
        servers = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
        assert servers["fleetgit"] == {"command": "fleetgit", "args": ["mcp"]}
        assert ("other" in servers) == existing
        hooks = json.loads((repo / ".claude/settings.json").read_text())["hooks"]
        commands = {e: [h["command"] for x in v for h in x["hooks"]] for e, v in hooks.items()}
        assert "resume --latest" in commands["SessionStart"][-1]
        assert "--trigger compaction" in commands["PreCompact"][-1]
        assert "checkpoint create" in commands["Stop"][-1]
        assert ("say done" in commands["Stop"]) == existing
        assert MD_BEGIN in (repo / "CLAUDE.md").read_text()
    elif client == "codex":
        config = tomllib.loads((repo / ".codex/config.toml").read_text())
        assert config["mcp_servers"]["fleetgit"] == {"command": "fleetgit", "args": ["mcp"]}
        assert ("other" in config["mcp_servers"]) == existing
    elif client == "cursor":
        servers = json.loads((repo / ".cursor/mcp.json").read_text())["mcpServers"]
        assert servers["fleetgit"]["args"] == ["mcp"]
    if client != "claude-code":
        text = (repo / "AGENTS.md").read_text()
        assert text.count(MD_BEGIN) == 1 and text.count(MD_END) == 1
        assert "claim_sortie" in text and "--reserve" in text and "checkpoint" in text


def test_a_file_edited_after_the_install_keeps_the_edits(repo: Path) -> None:
    (repo / "AGENTS.md").write_bytes(b"# Agents\n")
    Installer("generic", str(repo)).install()
    with open(repo / "AGENTS.md", "ab") as fh:
        fh.write(b"\nAlso: run the linters.\n")
    Installer("generic", str(repo)).uninstall()
    text = (repo / "AGENTS.md").read_text()
    assert MD_BEGIN not in text and "fleetgit" not in text
    assert text.startswith("# Agents\n") and "Also: run the linters." in text


def test_dry_run_writes_nothing_and_shows_the_diff(repo: Path) -> None:
    before = snapshot(repo)
    res = run_fleetgit(repo, "agents", "install", "--client", "claude-code", "--dry-run")
    assert res.code == 0, res.err
    assert "+++ b/.mcp.json" in res.out and '+      "command": "fleetgit"' in res.out
    assert "dry run: nothing written" in res.out
    assert snapshot(repo) == before
    assert not (repo / ".git/fleet/agents").exists()


def test_pinning_a_pilot_and_refusing_what_it_cannot_merge(repo: Path) -> None:
    res = run_fleetgit(repo, "--as", "goose", "agents", "install", "--client", "cursor")
    assert res.code == 0, res.err
    servers = json.loads((repo / ".cursor/mcp.json").read_text())["mcpServers"]
    assert servers["fleetgit"]["args"] == ["mcp", "--as", "goose"]
    (repo / ".mcp.json").write_text("[1, 2]\n")
    bad = run_fleetgit(repo, "agents", "install", "--client", "claude-code")
    assert bad.code == 1 and ".mcp.json holds a JSON list" in bad.err and "hint:" in bad.err
    assert (repo / ".mcp.json").read_text() == "[1, 2]\n" and not (repo / "CLAUDE.md").exists()
    wrong = run_fleetgit(repo, "agents", "install", "--client", "vim")
    assert wrong.code == 1 and "claude-code" in wrong.err


def test_the_claude_code_hooks_resume_and_checkpoint(repo: Path) -> None:
    """The hook commands as Claude Code runs them (a shell, in the project): a session starts
    from the status (no checkpoint yet), then from the recovery brief; a compaction and a stop
    each leave a checkpoint."""
    import os
    import subprocess
    import sys

    assert run_fleetgit(repo, "agents", "install", "--client", "claude-code").code == 0
    hooks = json.loads((repo / ".claude/settings.json").read_text())["hooks"]
    command = {event: entries[-1]["hooks"][0]["command"] for event, entries in hooks.items()}
    env = {
        **os.environ,
        "FLEET_CALLSIGN": "goose",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    def hook(event: str) -> str:
        proc = subprocess.run(
            ["bash", "-c", command[event]], cwd=repo, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "me: goose" in hook("SessionStart")  # no checkpoint yet: the status
    hook("PreCompact")
    hook("Stop")
    triggers = [c["trigger"] for c in run_fleetgit(repo, "checkpoint", "list", "--json").items()]
    assert triggers == ["compaction", "auto"]
    assert "# Recovery brief for goose" in hook("SessionStart")


@pytest.mark.parametrize("client", ["claude-code", "codex", "cursor"])
def test_a_linked_client_folder_is_refused_and_nothing_outside_is_written(
    repo: Path, tmp_path: Path, client: str
) -> None:
    """A collaborator can commit `.claude` (or `.codex`, `.cursor`) as a link to a folder
    elsewhere (the user's own ~/.claude, say): install would write its files there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = next(rel.split("/")[0] for rel in files_for(client, None) if "/" in rel)
    (repo / folder).symlink_to(outside)
    before = snapshot(repo)

    result = run_fleetgit(repo, "agents", "install", "--client", client)
    assert result.code == 1
    assert f"{folder}/ is not a directory of this work tree" in result.err
    assert "Traceback" not in result.err
    assert list(outside.iterdir()) == []
    assert snapshot(repo) == before


def test_uninstall_without_a_client_takes_out_every_client_installed(repo: Path) -> None:
    """README: `fleetgit agents uninstall` puts every file back as it was (it asked for
    --client and exited 2)."""
    for rel, content in BEFORE.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(content)
    before = snapshot(repo)
    for client in ("cursor", "claude-code", "codex"):
        assert run_fleetgit(repo, "agents", "install", "--client", client).code == 0
    assert snapshot(repo) != before

    dry = run_fleetgit(repo, "agents", "uninstall", "--dry-run")
    assert dry.code == 0, dry.err
    assert "--- a/.codex/config.toml" in dry.out and "--- a/.mcp.json" in dry.out
    assert snapshot(repo) != before
    res = run_fleetgit(repo, "agents", "uninstall")
    assert res.code == 0, res.err
    assert snapshot(repo) == before
    assert not (repo / ".git/fleet/agents").exists() or not any(
        (repo / ".git/fleet/agents").iterdir()
    )
    again = run_fleetgit(repo, "agents", "uninstall")
    assert again.code == 0 and "no agent client is installed" in again.out


def test_install_says_when_the_server_would_have_no_pilot(repo: Path) -> None:
    """The written server entry is `fleetgit mcp`: with no --as, no FLEET_CALLSIGN and no git
    config fleet.callsign, it would exit at once in the client ("no pilot identity")."""
    bare = run_fleetgit(repo, "agents", "install", "--client", "cursor")  # conftest: no env
    assert bare.code == 0, bare.err
    assert "note:" in bare.err and "no pilot" in bare.err
    assert "git config fleet.callsign" in bare.err and "--as" in bare.err
    named = run_fleetgit(repo, "--as", "goose", "agents", "install", "--client", "cursor")
    assert named.code == 0 and "no pilot" not in named.err


def test_install_says_when_the_client_would_not_find_fleetgit(repo: Path) -> None:
    """The entries run `fleetgit` from the client's PATH: installed in a virtualenv that is not
    on it, the client cannot start the server, and nothing said so."""
    import os
    import sys

    bin_dir = str(Path(sys.executable).parent)
    assert (Path(bin_dir) / "fleetgit").exists()
    without = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "fleetgit").exists()
    )
    lost = run_fleetgit(
        repo, "--as", "goose", "agents", "install", "--client", "codex", env={"PATH": without}
    )
    assert lost.code == 0, lost.err
    assert "note:" in lost.err and "fleetgit is not on PATH" in lost.err and bin_dir in lost.err
    found = run_fleetgit(
        repo,
        "--as",
        "goose",
        "agents",
        "install",
        "--client",
        "codex",
        env={"PATH": f"{bin_dir}{os.pathsep}{without}"},
    )
    assert found.code == 0 and "note:" not in found.err, found.err
    generic = run_fleetgit(repo, "agents", "install", "--client", "generic", env={"PATH": without})
    assert "note:" not in generic.err  # no server, no hooks: nothing runs fleetgit


SHARING = [(a, b) for a in ("codex", "cursor", "generic") for b in ("codex", "cursor", "generic")]


@pytest.mark.parametrize(("first", "second"), [p for p in SHARING if p[0] != p[1]])
@pytest.mark.parametrize("leaves", ["first", "second"])
def test_uninstalling_one_client_keeps_what_another_still_uses(
    repo: Path, first: str, second: str, leaves: str
) -> None:
    """codex, cursor and generic share AGENTS.md: uninstalling one took the protocol out of it
    while the other, still installed, needed it. Whichever goes first, the other keeps it; when
    the last goes, every file comes back byte for byte."""
    for rel, content in BEFORE.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(content)
    before = snapshot(repo)
    for client in (first, second):
        assert run_fleetgit(repo, "agents", "install", "--client", client).code == 0
    gone, stays = (first, second) if leaves == "first" else (second, first)
    dry = run_fleetgit(repo, "agents", "uninstall", "--client", gone, "--dry-run")
    assert f"kept: AGENTS.md (still used by {stays})" in dry.out, dry.out + dry.err

    res = run_fleetgit(repo, "agents", "uninstall", "--client", gone, "--json")
    assert res.code == 0, res.err
    actions = {f["path"]: f for f in json.loads(res.out)["files"]}
    assert actions["AGENTS.md"]["action"] == "kept" and actions["AGENTS.md"]["for"] == [stays]
    assert (repo / "AGENTS.md").read_bytes().count(MD_BEGIN.encode()) == 1
    _check_wired(repo, stays, True)
    for rel in files_for(gone, None):  # its own files are back as they were
        if rel != "AGENTS.md":
            assert (repo / rel).read_bytes() == before[rel]

    last = run_fleetgit(repo, "agents", "uninstall", "--client", stays)
    assert last.code == 0, last.err
    assert snapshot(repo) == before


def test_uninstalling_every_client_plans_what_it_does(repo: Path) -> None:
    """Without --client, the dry run shows the shared AGENTS.md restored once (the last client
    to go), as the run then does."""
    (repo / "AGENTS.md").write_bytes(BEFORE["AGENTS.md"])
    before = snapshot(repo)
    for client in ("generic", "codex", "cursor"):
        assert run_fleetgit(repo, "agents", "install", "--client", client).code == 0
    dry = run_fleetgit(repo, "agents", "uninstall", "--dry-run", "--json")
    wet = run_fleetgit(repo, "agents", "uninstall", "--json")
    assert dry.code == wet.code == 0, dry.err + wet.err
    assert [{k: f[k] for k in f if k != "diff"} for f in json.loads(dry.out)["files"]] == (
        json.loads(wet.out)["files"]
    )
    agents = [f for f in json.loads(wet.out)["files"] if f["path"] == "AGENTS.md"]
    assert [f["action"] for f in agents] == ["kept", "kept", "updated"]
    assert snapshot(repo) == before


def test_an_edit_between_two_installs_survives_them_both(repo: Path) -> None:
    """codex installed, AGENTS.md edited, cursor installed: the edit stays through either
    uninstall order, and fleetgit's section leaves with the last client."""
    (repo / "AGENTS.md").write_bytes(b"# Agents\n")
    Installer("codex", str(repo)).install()
    with open(repo / "AGENTS.md", "ab") as fh:
        fh.write(b"\nAlso: run the linters.\n")
    Installer("cursor", str(repo)).install()
    Installer("codex", str(repo)).uninstall()
    assert MD_BEGIN in (repo / "AGENTS.md").read_text()
    Installer("cursor", str(repo)).uninstall()
    text = (repo / "AGENTS.md").read_text()
    assert MD_BEGIN not in text and text.startswith("# Agents\n") and "run the linters" in text


def test_a_client_installed_before_the_shared_record_still_restores(repo: Path) -> None:
    """An install made before clients shared AGENTS.md's record kept the file with the other's
    section in it as its original: when that other goes first, it hands its record down."""
    (repo / "AGENTS.md").write_bytes(BEFORE["AGENTS.md"])
    before = snapshot(repo)
    Installer("codex", str(repo)).install()
    agents = repo / ".git/fleet/agents"
    (agents / "codex.json").rename(repo.parent / "codex.json")  # cursor installs as it used to
    Installer("cursor", str(repo)).install()
    (repo.parent / "codex.json").rename(agents / "codex.json")
    kept = json.loads((agents / "cursor.json").read_text())["AGENTS.md"]["original"]
    assert MD_BEGIN.encode() in base64.b64decode(kept)  # the old record
    assert run_fleetgit(repo, "agents", "uninstall", "--client", "codex").code == 0
    assert MD_BEGIN in (repo / "AGENTS.md").read_text()
    assert run_fleetgit(repo, "agents", "uninstall", "--client", "cursor").code == 0
    assert snapshot(repo) == before


SHARED = ("codex", "cursor", "generic")
STEPS = st.lists(
    st.tuples(st.sampled_from(["install", "uninstall"]), st.sampled_from(SHARED)),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    original=st.sampled_from([None, BEFORE["AGENTS.md"], b"# Notes\n\nUse tabs."]),
    steps=STEPS,
)
def test_agents_md_holds_the_protocol_while_any_client_that_shares_it_is_installed(
    original: bytes | None, steps: list[tuple[str, str]]
) -> None:
    """Any order of installs and uninstalls of the clients that share AGENTS.md: it holds the
    protocol exactly while one of them is installed; uninstalling the rest (all at once) gives
    it back byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        subprocess.run(["git", "init", "-q", str(top)], check=True)
        agents = top / "AGENTS.md"
        if original is not None:
            agents.write_bytes(original)
        installed: set[str] = set()
        for verb, client in steps:
            if verb == "install":
                Installer(client, tmp).install()
                installed.add(client)
            else:
                Installer(client, tmp).uninstall()
                installed.discard(client)
            now = agents.read_bytes() if agents.exists() else None
            assert (now is not None and MD_BEGIN.encode() in now) == bool(installed), (verb, client)
        assert set(installed_clients(tmp)) == installed
        uninstall(installed_clients(tmp), tmp)
        assert (agents.read_bytes() if agents.exists() else None) == original


@pytest.mark.parametrize("record", [b"{bad", b"[]", b'{"AGENTS.md": {"original": 5}}'])
def test_a_broken_record_of_another_client_is_one_line_naming_it(repo: Path, record: bytes) -> None:
    """Installing or uninstalling a client reads the other clients' records of the AGENTS.md
    they share: a broken one was an internal error (exit 3); now one line naming it, exit 1,
    and nothing written."""
    assert run_fleetgit(repo, "agents", "install", "--client", "codex").code == 0
    manifest = repo / ".git/fleet/agents/codex.json"
    manifest.write_bytes(record)
    before = (repo / "AGENTS.md").read_bytes()
    for args in (["install", "--client", "cursor"], ["uninstall", "--client", "cursor"]):
        res = run_fleetgit(repo, "agents", *args)
        assert res.code == 1, res.err
        assert str(manifest) in res.err and "hint:" in res.err and "Traceback" not in res.err
        assert (repo / "AGENTS.md").read_bytes() == before
    assert not (repo / ".cursor").exists()
