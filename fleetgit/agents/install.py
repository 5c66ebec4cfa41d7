"""`fleetgit agents install|uninstall`: wire fleetgit into an agent client's project files.

For each client: the MCP server entry in its project config (JSON or TOML), a short section
telling an agent the protocol in its instructions file (AGENTS.md, or CLAUDE.md for Claude
Code), and for Claude Code the session hooks (SessionStart resumes, PreCompact and Stop leave a
checkpoint). Existing files are merged into, never overwritten: JSON keys of fleetgit's own,
TOML and Markdown between marker lines. Installing again changes nothing.

What a file held before the first install is kept in the clone's local state (under the git
dir, never committed); `uninstall` writes it back byte for byte, or removes the file that did
not exist. A file edited since the install keeps those edits: only fleetgit's parts are taken
out of it. codex, cursor and generic share AGENTS.md: a client installed after another records
the other's original of it, and uninstalling one leaves the file alone while another installed
client still uses it (the last to go restores it).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from fleetgit.git.paths import locate
from fleetgit.ledger.errors import ValidationError

CLIENTS = ("claude-code", "codex", "cursor", "generic")
SERVER_NAME = "fleetgit"
MD_BEGIN = "<!-- fleetgit:begin (fleetgit agents install writes this; uninstall removes it) -->"
MD_END = "<!-- fleetgit:end -->"
TOML_BEGIN = "# fleetgit:begin (fleetgit agents install writes this; uninstall removes it)"
TOML_END = "# fleetgit:end"

PROTOCOL = """## Working in a fleet (fleetgit)

Other agents (pilots) work in this repository at the same time. Coordinate through fleetgit:
the MCP server `fleetgit` (tools named below), or the `fleetgit` command.

1. Register once: `fleetgit pilot register CALLSIGN` and `git config fleet.callsign CALLSIGN`
   (the MCP server registers its pilot itself).
2. Take ready work: `overview` or `ready_sorties` (`fleetgit sortie list --ready`).
3. Claim it with its files: `claim_sortie` (`fleetgit sortie claim ID --reserve`), then
   `start_sortie`.
4. Commit through git as usual: the hooks refuse a commit that touches files another pilot
   reserved. Need them? `send_message` to the holder (`fleetgit squawk send --to HOLDER`);
   read your `inbox` and `ack_message` what asks for it.
5. Before your context runs out: `checkpoint` (`fleetgit checkpoint create --summary TEXT`).
   After losing it: `resume` (`fleetgit resume --latest`).
6. Done: `complete_sortie` (`fleetgit sortie complete ID`) releases the files it reserved.
"""


class Change(NamedTuple):
    path: str  # relative to the work tree's top
    before: bytes | None  # None: the file does not exist
    after: bytes | None  # None: the file is removed
    kept_for: tuple[str, ...] = ()  # uninstall: the clients still installed that use the file

    @property
    def action(self) -> str:
        if self.kept_for:
            return "kept"
        if self.before == self.after:
            return "unchanged"
        if self.after is None:
            return "removed"
        return "created" if self.before is None else "updated"

    def diff(self) -> str:
        old = (self.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = (self.after or b"").decode("utf-8", "replace").splitlines(keepends=True)
        a = "/dev/null" if self.before is None else f"a/{self.path}"
        b = "/dev/null" if self.after is None else f"b/{self.path}"
        return "".join(difflib.unified_diff(old, new, a, b))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "action": self.action}
        if self.kept_for:
            out["for"] = list(self.kept_for)
        return out


def server_entry(callsign: str | None) -> dict[str, Any]:
    args = ["mcp"] + (["--as", callsign] if callsign else [])
    return {"command": "fleetgit", "args": args}


def hook_commands(callsign: str | None) -> dict[str, str]:
    """Claude Code's session hooks: a session starts from the recovery brief (or, with no
    checkpoint yet, the fleet's status); a compaction or a stop leaves a checkpoint. Stop fires
    at the end of every turn, so it saves only when something changed since the last one."""
    who = f" --as {shlex.quote(callsign)}" if callsign else ""
    return {
        "SessionStart": f"fleetgit{who} resume --latest 2>/dev/null || fleetgit{who} status",
        "PreCompact": f"fleetgit{who} checkpoint create --trigger compaction"
        " --summary 'context compacted'",
        "Stop": f"fleetgit{who} checkpoint create --trigger auto --if-changed"
        " --summary 'session stopped'",
    }


# -- merging into each kind of file ------------------------------------------------------------


def _load_json(path: str, text: bytes | None) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(
            f"{path} is not valid JSON ({exc}): fleetgit will not rewrite it",
            hint=f"fix {path}, or add the fleetgit entry yourself (--dry-run shows it)",
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(
            f"{path} holds a JSON {type(value).__name__}, not an object",
            hint=f"fix {path}, or add the fleetgit entry yourself (--dry-run shows it)",
        )
    return value


def _dump_json(value: dict[str, Any]) -> bytes | None:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode() if value else None


def _table(value: dict[str, Any], path: str, key: str) -> dict[str, Any]:
    found = value.setdefault(key, {})
    if not isinstance(found, dict):
        raise ValidationError(
            f"{path}: {key!r} is a JSON {type(found).__name__}, not an object",
            hint=f"fix {path}, or add the fleetgit entry yourself (--dry-run shows it)",
        )
    return found


def mcp_json(callsign: str | None) -> Callable[[str, bytes | None, bool], bytes | None]:
    """`.mcp.json` / `.cursor/mcp.json`: the server under mcpServers.fleetgit."""

    def merge(path: str, text: bytes | None, install: bool) -> bytes | None:
        value = _load_json(path, text)
        servers = _table(value, path, "mcpServers")
        if install:
            servers[SERVER_NAME] = server_entry(callsign)
        else:
            servers.pop(SERVER_NAME, None)
            if not servers:
                del value["mcpServers"]
        return _dump_json(value)

    return merge


def _ours(entry: Any) -> bool:
    hooks = entry.get("hooks") if isinstance(entry, dict) else None
    return isinstance(hooks, list) and any(
        isinstance(h, dict) and str(h.get("command", "")).startswith("fleetgit") for h in hooks
    )


def claude_settings(callsign: str | None) -> Callable[[str, bytes | None, bool], bytes | None]:
    """`.claude/settings.json`: one hook entry of fleetgit's per session event."""

    def merge(path: str, text: bytes | None, install: bool) -> bytes | None:
        value = _load_json(path, text)
        hooks = _table(value, path, "hooks")
        for event, command in hook_commands(callsign).items():
            entries = hooks.get(event, [])
            if not isinstance(entries, list):
                raise ValidationError(
                    f"{path}: hooks.{event} is not a list", hint=f"fix {path} and run again"
                )
            entries = [e for e in entries if not _ours(e)]
            if install:
                entries.append({"hooks": [{"type": "command", "command": command}]})
            if entries:
                hooks[event] = entries
            else:
                hooks.pop(event, None)
        if not hooks:
            del value["hooks"]
        return _dump_json(value)

    return merge


def _between(text: str, begin: str, end: str, section: str | None, path: str) -> str:
    """`text` with the lines from `begin` to `end` replaced by `section` (None: removed), or
    `section` appended after a blank line when the markers are not there."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == begin]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == end]
    if (
        len(starts) > 1
        or len(ends) > 1
        or len(starts) != len(ends)
        or (starts and ends[0] < starts[0])
    ):
        raise ValidationError(
            f"{path}: the fleetgit markers are broken (each must appear once, begin first)",
            hint=f"fix them by hand in {path}: {begin} ... {end}",
        )
    block = f"{begin}\n{section}{end}\n" if section is not None else ""
    if starts:
        return "".join(lines[: starts[0]]) + block + "".join(lines[ends[0] + 1 :])
    if section is None:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text.strip() else "") + block


def _section_file(
    begin: str, end: str, section: str, trim: bool
) -> Callable[[str, bytes | None, bool], bytes | None]:
    def merge(path: str, text: bytes | None, install: bool) -> bytes | None:
        old = (text or b"").decode("utf-8")
        new = _between(old, begin, end, section if install else None, path)
        if not install and trim and new != old:
            new = new.rstrip("\n") + "\n" if new.strip() else ""
        return new.encode() if new.strip() else None

    return merge


def markdown_section() -> Callable[[str, bytes | None, bool], bytes | None]:
    return _section_file(MD_BEGIN, MD_END, PROTOCOL, trim=True)


def codex_toml(callsign: str | None) -> Callable[[str, bytes | None, bool], bytes | None]:
    """`.codex/config.toml`: the server as [mcp_servers.fleetgit], between marker comments."""
    entry = server_entry(callsign)
    args = ", ".join(json.dumps(a) for a in entry["args"])
    table = (
        f"[mcp_servers.{SERVER_NAME}]\ncommand = {json.dumps(entry['command'])}\nargs = [{args}]\n"
    )

    def merge(path: str, text: bytes | None, install: bool) -> bytes | None:
        old = (text or b"").decode("utf-8")
        outside = _between(old, TOML_BEGIN, TOML_END, None, path)
        if install and f"[mcp_servers.{SERVER_NAME}]" in outside:
            raise ValidationError(
                f"{path} already has [mcp_servers.{SERVER_NAME}] of its own",
                hint=f"remove it from {path} (fleetgit writes its own between marker comments)",
            )
        return _section_file(TOML_BEGIN, TOML_END, table, trim=True)(path, text, install)

    return merge


def files_for(
    client: str, callsign: str | None
) -> dict[str, Callable[[str, bytes | None, bool], bytes | None]]:
    if client not in CLIENTS:
        raise ValidationError(
            f"--client {client!r}: not a client fleetgit knows",
            hint=f"one of: {', '.join(CLIENTS)}",
        )
    if client == "claude-code":
        return {
            ".mcp.json": mcp_json(callsign),
            ".claude/settings.json": claude_settings(callsign),
            "CLAUDE.md": markdown_section(),
        }
    if client == "codex":
        return {".codex/config.toml": codex_toml(callsign), "AGENTS.md": markdown_section()}
    if client == "cursor":
        return {".cursor/mcp.json": mcp_json(callsign), "AGENTS.md": markdown_section()}
    return {"AGENTS.md": markdown_section()}


# -- reading, writing and remembering ----------------------------------------------------------


def _read(top: Path, rel: str) -> bytes | None:
    path = top / rel
    for folder in reversed(Path(rel).parents[:-1]):  # .claude/ a link: its file is elsewhere
        if (top / folder).is_symlink() or ((top / folder).exists() and not (top / folder).is_dir()):
            raise ValidationError(
                f"{folder}/ is not a directory of this work tree (a link, or a file):"
                f" fleetgit writes {rel} only inside it",
                hint=f"replace {folder} with a regular directory, or edit its target yourself",
            )
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValidationError(
            f"{rel} is not a regular file: fleetgit writes only regular files",
            hint=f"replace {rel} with a regular file, or edit its target yourself",
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(top: Path, rel: str, content: bytes | None) -> None:
    path = top / rel
    if content is None:
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != top and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()  # a folder install created and nothing else uses
            parent = parent.parent
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.fleetgit-{os.getpid()}")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def _digest(content: bytes | None) -> str | None:
    return None if content is None else hashlib.sha256(content).hexdigest()


def installed_clients(directory: str | None = None) -> list[str]:
    """The clients installed in this clone's work tree at `directory`, the last installed
    first (each keeps its manifest of what the files held before)."""
    folder = locate(directory).local_dir / "agents"
    found = [(p.stat().st_mtime_ns, p.stem) for p in folder.glob("*.json") if p.stem in CLIENTS]
    return [client for _, client in sorted(found, reverse=True)]


def _load_manifest(path: Path) -> dict[str, Any]:
    """A client's record of what its files held (clone-local, but a crash or a hand can break
    it): refused in one line naming it when it is not what fleetgit writes."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError:  # not JSON (UnicodeDecodeError is one too)
        value = None
    if not isinstance(value, dict) or not all(map(_is_record, value.values())):
        raise ValidationError(
            f"{path} is not a record fleetgit wrote: it cannot say what the files held",
            hint="delete it (that client then counts as not installed; take fleetgit's"
            " sections out of its files by hand, or install it again) and run this again",
        )
    return value


def _is_record(entry: Any) -> bool:
    """One file's entry of a manifest, as `install` writes it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("wrote"), (str, type(None))):
        return False
    original = entry.get("original")
    if original is None:
        return True
    try:
        base64.b64decode(original, validate=True)
    except (TypeError, ValueError):
        return False
    return True


def _save_manifest(path: Path, manifest: dict[str, Any], keep_time: bool = False) -> None:
    """`keep_time`: the file keeps its mtime (installed_clients orders by it)."""
    if not manifest:
        path.unlink(missing_ok=True)
        return
    times = None
    if keep_time:
        st = path.stat()
        times = (st.st_atime_ns, st.st_mtime_ns)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if times is not None:
        os.utime(path, ns=times)


class Installer:
    """The files of one client in the work tree at `directory`."""

    def __init__(self, client: str, directory: str | None = None, callsign: str | None = None):
        self.paths = locate(directory)
        self.top = self.paths.worktree
        self.client = client
        self.files = files_for(client, callsign)
        self.manifest_path = _manifest_path(self.paths.local_dir, client)

    def _manifest(self) -> dict[str, Any]:
        return _load_manifest(self.manifest_path)

    def _shared(self, rel: str) -> dict[str, Any] | None:
        """Another installed client's record of `rel` (AGENTS.md, shared), the latest first."""
        for other in installed_clients(str(self.top)):
            if other != self.client:
                kept = _load_manifest(_manifest_path(self.paths.local_dir, other)).get(rel)
                if isinstance(kept, dict):
                    return kept
        return None

    def plan_install(self) -> list[Change]:
        changes = []
        for rel, merge in self.files.items():
            before = _read(self.top, rel)
            changes.append(Change(rel, before, merge(rel, before, True)))
        return changes

    def install(self, dry_run: bool = False) -> list[Change]:
        changes = self.plan_install()
        if dry_run:
            return changes
        manifest = self._manifest()
        for c in changes:
            kept = manifest.get(c.path)
            if kept is None:  # the first install: what the file held is what uninstall restores
                shared = self._shared(c.path)
                if shared is None:
                    original = None if c.before is None else base64.b64encode(c.before).decode()
                    manifest[c.path] = {"original": original, "wrote": _digest(c.after)}
                elif shared.get("wrote") == _digest(c.before):  # another client's, as it left it
                    manifest[c.path] = {**shared, "wrote": _digest(c.after)}
                else:  # another client's, edited since
                    manifest[c.path] = {"edited": True, "wrote": _digest(c.after)}
            elif kept.get("wrote") == _digest(c.before):  # as we left it
                kept["wrote"] = _digest(c.after)
            else:  # edited since: uninstall takes fleetgit's parts out, keeping the edits
                manifest[c.path] = {"edited": True, "wrote": _digest(c.after)}
            if c.action != "unchanged":
                _write(self.top, c.path, c.after)
        _save_manifest(self.manifest_path, manifest)
        return changes

    def uninstall(self, dry_run: bool = False) -> list[Change]:
        return uninstall([self.client], str(self.top), dry_run)


def _manifest_path(local_dir: Path, client: str) -> Path:
    return local_dir / "agents" / f"{client}.json"


def uninstall(
    clients: list[str], directory: str | None = None, dry_run: bool = False
) -> list[Change]:
    """Take fleetgit out of the files of `clients`, one after the other. A file another client
    still installed uses (AGENTS.md) is kept; the last client that uses it restores it. The dry
    run plans the same steps over the planned contents, writing nothing."""
    paths = locate(directory)
    top = paths.worktree
    for client in clients:
        files_for(client, None)  # an unknown client: refused before anything is written
    leaving = list(dict.fromkeys(clients))
    installed = installed_clients(directory)
    manifests = {
        c: _load_manifest(_manifest_path(paths.local_dir, c))
        for c in dict.fromkeys(installed + leaving)
    }
    handed: set[str] = set()  # staying clients whose manifest changed
    planned: dict[str, bytes | None] = {}
    changes = []
    for i, client in enumerate(leaving):
        manifest = manifests[client]
        staying = [c for c in installed if c not in leaving[: i + 1]]
        for rel, merge in files_for(client, None).items():
            now = planned[rel] if rel in planned else _read(top, rel)
            kept = manifest.get(rel)
            users = tuple(c for c in staying if isinstance(manifests[c].get(rel), dict))
            if users:
                after = now
                if isinstance(kept, dict):
                    handed.update(_hand_down(kept, [manifests[c] for c in users], rel, users))
            elif (
                isinstance(kept, dict)
                and not kept.get("edited")
                and kept.get("wrote") == _digest(now)
            ):
                original = kept.get("original")
                after = None if original is None else base64.b64decode(original)
            else:  # edited since (or installed by hand): take only fleetgit's parts out
                after = merge(rel, now, False)
            planned[rel] = after
            changes.append(Change(rel, now, after, users))
        manifests[client] = {}
    if dry_run:
        return changes
    for c in changes:
        if c.action not in ("unchanged", "kept"):
            _write(top, c.path, c.after)
    for client in handed:
        _save_manifest(_manifest_path(paths.local_dir, client), manifests[client], keep_time=True)
    for client in leaving:
        _save_manifest(_manifest_path(paths.local_dir, client), {})
    return changes


def _hand_down(
    kept: dict[str, Any], records: list[dict[str, Any]], rel: str, users: tuple[str, ...]
) -> list[str]:
    """A client installed over this one's install recorded the file with fleetgit's section in
    it as its original (installs before the shared record): it takes this one's record."""
    changed = []
    for user, record in zip(users, records, strict=True):
        entry = record[rel]
        original = entry.get("original")
        if entry.get("edited") or original is None:
            continue
        if _digest(base64.b64decode(original)) == kept.get("wrote"):
            record[rel] = {**kept, "wrote": entry.get("wrote")}
            changed.append(user)
    return changed
