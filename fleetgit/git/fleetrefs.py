"""The fleet's published histories in git, for `fleetgit sync` (fleetgit/sync/).

- `refs/fleet/writers/<writer>`: one writer's history, built here from its segment files. Each
  commit holds `.fleet/events/<writer>/<segment>.jsonl` (the same layout as a branch, so catch-up
  reads it like any ref) and has the previous one as parent: every push is a fast-forward, and
  no two machines ever write one ref. A segment already published is replaced only by its own
  extension (an append-only file grown), never by other bytes.
- `refs/fleet/remotes/<remote>/<writer>`: the writer refs fetched from `<remote>` (the fetch
  refspec `+refs/fleet/writers/*:refs/fleet/remotes/<remote>/*`).

Both are under `refs/fleet/`, which catch-up already reads (fingerprint.REF_PREFIXES); neither
touches HEAD, the index, the work tree or the stash. A commit is made with plumbing only.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from fleetgit.git.paths import RepoPaths
from fleetgit.git.repo import GitRepo, TooLarge, git_message, run_git
from fleetgit.ledger.errors import GitError

WRITERS = "refs/fleet/writers/"
REMOTES = "refs/fleet/remotes/"
PREFETCH = "refs/fleet-prefetch/"  # a sync's early fetch (sync/prefetch.py), until it is applied
CODE_REFS = ("refs/heads/", "refs/remotes/", "refs/tags/")  # where code, and segments, live
IDENTITY = ("fleetgit", "fleetgit@localhost")  # the fleet's commits are not anyone's code


def writer_ref(writer: str) -> str:
    return WRITERS + writer


def remote_prefix(remote: str) -> str:
    """Where the writer refs fetched from `remote` live: refs/fleet/remotes/<remote>/."""
    return f"{REMOTES}{remote}/"


def fetch_refspec(remote: str) -> str:
    return f"+{WRITERS}*:{remote_prefix(remote)}*"


class Published(NamedTuple):
    commit: str | None  # the new tip, None when there was nothing new
    segments: tuple[str, ...]  # segment names added or grown
    events: int  # lines sent (complete events)
    bytes: int
    refused: tuple[str, ...]  # segments whose bytes differ from their published copy: kept


def plan(
    git: GitRepo, writer: str, files: Mapping[str, tuple[int, Any]]
) -> tuple[str | None, dict[str, bytes], int, int, list[str]]:
    """What a publish of `files` (segment name -> (size, read() -> bytes)) would change on top
    of the writer ref: (tip, {name: bytes}, lines, bytes, refused names). Sizes are compared
    first, from git's cat-file readers (pygit2 costs ~80 ms to import: only a change needs it)."""
    tip = refs_under(git.paths, writer_ref(writer)).get(writer_ref(writer))
    published = published_segments(git, tip, writer) if tip else {}
    changes: dict[str, bytes] = {}
    lines = size_sent = 0
    refused: list[str] = []
    for name in sorted(files):
        size, read = files[name]
        blob, blob_size = published.get(name, (None, 0))
        if blob is not None and blob_size == size:
            continue  # append-only: the same size is the same bytes
        data: bytes = read()
        if blob is not None and blob_size >= len(data):  # not grown: the same or rewritten
            refused.append(name)
            continue
        old = git.blob(blob, len(data)) if blob is not None else b""
        if not data.startswith(old) or len(data) <= len(old):
            refused.append(name)
            continue
        changes[name] = data
        lines += data.count(b"\n", len(old))
        size_sent += len(data) - len(old)
    return tip, changes, lines, size_sent, refused


def published_segments(git: GitRepo, tip: str, writer: str) -> dict[str, tuple[str, int]]:
    """The segments of `writer` in commit `tip`: name -> (blob id, size). From the repository's
    long-lived cat-file readers (no process of its own), as `committed_segments` reads."""
    (tree,) = git.headers([f"{tip}:.fleet/events/{writer}"])
    if tree is None or tree.type != "tree":
        return {}  # no such directory in that commit
    # a listing over 64 MB (never fleetgit's) is TooLarge: the sync stops in one line
    blobs = [(name, oid) for name, oid, kind, _ in git.tree_entries(tree.id) if kind == "blob"]
    sizes = git.headers([oid for _, oid in blobs])
    return {
        name: (oid, header.size)
        for (name, oid), header in zip(blobs, sizes, strict=True)
        if header is not None
    }


def committed_segments(git: GitRepo, writer: str, limit: int) -> dict[str, tuple[str, int]]:
    """`writer`'s segments in the trees of the clone's branches, remote-tracking branches, tags
    and HEAD: name -> (blob id, size) of the longest version of at most `limit` bytes (regular
    files only). What a reset or a rebase took from the work tree may still be held there and
    nowhere on the writer's fleet ref. One `for-each-ref`; the trees and sizes come from the
    repository's long-lived cat-file readers (no process a tree)."""
    tips = run_git(git.paths, ["for-each-ref", "--format=%(objectname)", *CODE_REFS]).split()
    specs = [f"{tip}:.fleet/events/{writer}" for tip in ["HEAD", *tips]]
    trees = {h.id for h in git.headers(specs) if h is not None and h.type == "tree"}
    versions: set[tuple[str, str]] = set()
    for tree in sorted(trees):
        with contextlib.suppress(TooLarge):  # a tree of over 64 MB was never fleetgit's
            versions.update(
                (name, oid)
                for name, oid, kind, mode in git.tree_entries(tree)
                if kind == "blob" and mode in (0o100644, 0o100755)
            )
    ordered = sorted(versions)
    found: dict[str, tuple[str, int]] = {}
    for (name, blob), header in zip(ordered, git.headers([b for _, b in ordered]), strict=True):
        size = -1 if header is None else header.size
        if 0 <= size <= limit and size > found.get(name, ("", -1))[1]:
            found[name] = (blob, size)
    return found


def publish(git: GitRepo, writer: str, files: Mapping[str, tuple[int, Any]]) -> Published:
    """Commit this writer's new and grown segments onto refs/fleet/writers/<writer>. The caller
    holds the writer's lock (nothing appends meanwhile, and only it moves this ref)."""
    tip, changes, lines, size, refused = plan(git, writer, files)
    if not changes:
        return Published(None, (), 0, 0, tuple(refused))
    message = f"fleet: writer {writer}: {lines} event(s) in {len(changes)} segment(s)"
    commit = commit_segments(git, tip, {writer: changes}, message)
    set_ref(git.paths, writer_ref(writer), commit, tip)
    return Published(commit, tuple(sorted(changes)), lines, size, tuple(refused))


def commit_segments(
    git: GitRepo,
    tip: str | None,
    changes: Mapping[str, Mapping[str, bytes]],
    message: str,
    also: str | None = None,
) -> str:
    """A commit on top of `tip` (and `also`, a second parent) whose tree is tip's with
    `changes` (writer -> name -> bytes) put under .fleet/events/; no ref moves."""
    import pygit2

    repo = git.repo
    blob_mode, tree_mode = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.TREE
    root = repo[tip].peel(pygit2.Tree) if tip else None
    fleet = _subtree(repo, root, ".fleet")
    events = _subtree(repo, fleet, "events")
    events_builder = repo.TreeBuilder(events) if events is not None else repo.TreeBuilder()
    for writer, segments in sorted(changes.items()):
        current = _subtree(repo, events, writer)
        builder = repo.TreeBuilder(current) if current is not None else repo.TreeBuilder()
        for name, data in sorted(segments.items()):
            builder.insert(name, repo.create_blob(data), blob_mode)
        events_builder.insert(writer, builder.write(), tree_mode)
    fleet_builder = repo.TreeBuilder(fleet) if fleet is not None else repo.TreeBuilder()
    fleet_builder.insert("events", events_builder.write(), tree_mode)
    root_builder = repo.TreeBuilder(root) if root is not None else repo.TreeBuilder()
    root_builder.insert(".fleet", fleet_builder.write(), tree_mode)
    sig = pygit2.Signature(*IDENTITY)
    parents = [pygit2.Oid(hex=p) for p in (tip, also) if p]
    oid = repo.create_commit(None, sig, sig, message, root_builder.write(), parents)
    return str(oid)


def is_ancestor(paths: RepoPaths, older: str, newer: str) -> bool:
    try:
        run_git(paths, ["merge-base", "--is-ancestor", older, newer])
    except GitError:
        return False
    return True


def join(git: GitRepo, writer: str, local: str, there: str) -> str:
    """When the remote's copy of this writer's ref is not in the local one's history (the
    local ref was deleted and made again, say), a commit with both as parents: its tree is the
    local one plus whatever segment only the remote's holds, so the push is a fast-forward
    and no published event is dropped. Moves the writer ref; returns the new tip."""
    repo = git.repo
    theirs: dict[str, dict[str, bytes]] = {}
    ours = _segment_names(repo, local)
    for (w, name), oid in _segment_names(repo, there).items():
        if (w, name) not in ours:
            theirs.setdefault(w, {})[name] = repo[oid].data
    message = f"fleet: writer {writer}: join {there[:12]}"
    commit = commit_segments(git, local, theirs, message, also=there)
    set_ref(git.paths, writer_ref(writer), commit, local)
    return commit


def _segment_names(repo: Any, commit: str) -> dict[tuple[str, str], Any]:
    """(writer, segment name) -> blob id of the segments in a fleet commit's tree."""
    events = _subtree(repo, _subtree(repo, repo[commit].tree, ".fleet"), "events")
    out = {}
    for wentry in events or ():
        if wentry.type_str != "tree":
            continue
        for entry in repo[wentry.id]:
            if entry.type_str == "blob":
                out[(wentry.name, entry.name)] = entry.id
    return out


def _subtree(repo: Any, tree: Any, name: str) -> Any:
    if tree is None:
        return None
    try:
        entry = tree[name]
    except KeyError:
        return None
    return repo[entry.id] if entry.type_str == "tree" else None


def ref_target(git: GitRepo, name: str) -> str | None:
    try:
        return str(git.repo.references[name].resolve().target)
    except (KeyError, ValueError):
        return None


def set_ref(paths: RepoPaths, name: str, new: str, old: str | None) -> None:
    """Move `name` from `old` (None: it must not exist) to `new`, or fail: git's compare and
    swap, with a reflog entry."""
    expected = old or "0" * len(new)
    run_git(paths, ["update-ref", "-m", "fleetgit sync: publish", name, new, expected])


def refs_under(paths: RepoPaths, prefix: str) -> dict[str, str]:
    """Ref name -> commit id of every ref under `prefix`."""
    out = run_git(paths, ["for-each-ref", "--format=%(objectname) %(refname)", prefix])
    refs = {}
    for line in out.splitlines():
        oid, _, name = line.partition(" ")
        if name:
            refs[name] = oid
    return refs


# -- remotes ------------------------------------------------------------------------------


class RemoteConfig(NamedTuple):
    remotes: list[str]  # names of the remotes with a URL
    fetch: dict[str, list[str]]  # remote -> its fetch refspecs
    upstream: str | None  # the remote of the current branch's upstream
    callsign: str | None = None  # fleet.callsign, read with them (no git call of its own)


def remote_config(paths: RepoPaths) -> RemoteConfig:
    """The remotes, their fetch refspecs, the current branch's remote and fleet.callsign, in one
    git call."""
    pattern = r"^(remote\..*\.(url|fetch)|branch\..*\.remote|fleet\.callsign)$"
    try:
        out = run_git(paths, ["config", "-z", "--get-regexp", pattern])
    except GitError:  # none at all
        out = ""
    names: list[str] = []
    fetch: dict[str, list[str]] = {}
    branches: dict[str, str] = {}
    callsign = None
    for record in out.split("\0"):
        key, _, value = record.partition("\n")
        section, _, rest = key.partition(".")
        name, _, var = rest.rpartition(".")
        if key == "fleet.callsign":
            callsign = value.strip() or None  # the last one wins, as in git
        elif section == "remote" and var == "url" and name not in names:
            names.append(name)
        elif section == "remote" and var == "fetch":
            fetch.setdefault(name, []).append(value)
        elif section == "branch" and var == "remote":
            branches[name] = value
    upstream = None
    try:
        head = (paths.git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        head = ""
    if head.startswith("ref: refs/heads/"):
        chosen = branches.get(head[len("ref: refs/heads/") :])
        upstream = chosen if chosen and chosen != "." else None
    return RemoteConfig(names, fetch, upstream, callsign)


def ensure_fetch_refspec(paths: RepoPaths, remote: str, have: Sequence[str]) -> bool:
    """Add the fleet's fetch refspec to `remote` (whose refspecs are `have`) so that a plain
    `git fetch` brings the writer refs too; True when it was added. Pushing is not affected
    (no push refspec is set)."""
    spec = fetch_refspec(remote)
    if spec in have:
        return False
    run_git(paths, ["config", "--add", f"remote.{remote}.fetch", spec])
    return True


def is_commit(paths: RepoPaths, oid: str) -> bool:
    """Whether `oid` is a commit (a ref a collaborator pushed may name a blob, a tree, a tag)."""
    try:
        return run_git(paths, ["cat-file", "-t", oid]).strip() == "commit"
    except GitError:
        return False


def push(
    paths: RepoPaths, remote: str, writer: str, timeout: float | None, replace: str | None = None
) -> None:
    """Push this writer's ref (a fast-forward; never forced). Client hooks do not run: the ref
    holds no code. Git updates refs/fleet/remotes/<remote>/<writer> by the fetch refspec.
    `replace`: the remote's ref names this object, which is no commit (so no history of this
    writer): replace it, and only it (--force-with-lease)."""
    ref = writer_ref(writer)
    lease = [f"--force-with-lease={ref}:{replace}"] if replace else []
    args = ["push", "--no-verify", "--quiet", *lease, remote, f"{ref}:{ref}"]
    remote_git(paths, args, timeout, "push")
    # git moves the tracking copy itself once the refspec is configured; make sure
    with contextlib.suppress(GitError):
        run_git(paths, ["update-ref", remote_prefix(remote) + writer, ref])


# A fetch ends by running `git maintenance run --auto` (a process, on every sync): not for the
# fleet's few objects a sync brings. The user's own git commands still run it (commit, merge,
# their fetches); an older git, which knows no such setting, ignores it.
_FETCH = ["-c", "maintenance.auto=false", "fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]


def fetch(paths: RepoPaths, remote: str, timeout: float | None) -> None:
    """Fetch every writer ref of `remote` into refs/fleet/remotes/<remote>/ (pruning the ones it
    no longer has: their events stay in the index, and `verify` reports any no ref reaches)."""
    remote_git(paths, _fetch_all(remote), timeout, "fetch")


def apply_prefetch(paths: RepoPaths, remote: str, keep: str | None) -> dict[str, str]:
    """Set refs/fleet/remotes/<remote>/ to what `start_fetch` brought, as `fetch` would have
    (those the remote no longer has deleted), in one transaction; `keep`: a writer whose
    tracking ref stays as it is (this one's, which its push has just moved). Returns the
    tracking refs now: writer -> commit id. The prefetched refs stay (as git's own prefetch
    task keeps refs/prefetch/): the next early fetch then writes only the refs that moved, and
    a sync that brought nothing runs no update-ref."""
    staged_at, tracking_at = prefetch_prefix(remote), remote_prefix(remote)
    out = run_git(
        paths, ["for-each-ref", "--format=%(objectname) %(refname)", staged_at, tracking_at]
    )
    staged: dict[str, str] = {}
    tracking: dict[str, str] = {}
    for line in out.splitlines():
        oid, _, name = line.partition(" ")
        if name.startswith(staged_at):
            staged[name[len(staged_at) :]] = oid
        elif name.startswith(tracking_at):
            tracking[name[len(tracking_at) :]] = oid
    commands = []
    for writer, oid in staged.items():
        if writer != keep and tracking.get(writer) != oid:
            commands.append(f"update {tracking_at}{writer} {oid}\n")
    for writer in set(tracking) - set(staged) - {keep}:
        commands.append(f"delete {tracking_at}{writer}\n")
    if commands:
        run_git(paths, ["update-ref", "--stdin"], "".join(commands).encode())
    now = {w: oid for w, oid in staged.items() if w != keep}
    if keep is not None and keep in tracking:
        now[keep] = tracking[keep]
    return now


def _fetch_all(remote: str) -> list[str]:
    return [*_FETCH, "--prune", remote, fetch_refspec(remote)]


def prefetch_prefix(remote: str) -> str:
    """Where `start_fetch` puts the writer refs of `remote` until `apply_prefetch` takes them:
    outside refs/fleet/, so no catch-up reads them meanwhile."""
    return f"{PREFETCH}{remote}/"


def start_fetch(paths: RepoPaths, remote: str) -> subprocess.Popen[bytes]:
    """`fetch`, started and not waited for (sync/prefetch.py), into `prefetch_prefix`:
    `finish_fetch` waits for it, `apply_prefetch` moves its refs where `fetch` puts them."""
    # --refmap= : not also into the tracking refs (git updates those a configured refspec
    # names, opportunistically), which catch-up would read before the sync's fetch step
    spec = f"+{WRITERS}*:{prefetch_prefix(remote)}*"
    args = [*_FETCH, "--prune", "--refmap=", remote, spec]
    return subprocess.Popen(
        ["git", "-C", str(paths.worktree), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_remote_env(),
    )


def finish_fetch(proc: subprocess.Popen[bytes], timeout: float | None) -> None:
    """Wait for a fetch `start_fetch` started: a failure is one line with git's message."""
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise GitError(f"git fetch took longer than {timeout:g} s: stopped") from None
    if proc.returncode != 0:
        raise GitError(f"git fetch failed: {git_message(err)}")


def fetch_snapshots(paths: RepoPaths, remote: str, spec: str, timeout: float | None) -> None:
    """Fetch the remote's index snapshots (`spec`: their refspec) as a sync's fetch does."""
    remote_git(paths, [*_FETCH, remote, spec], timeout, "fetch")


def fetch_own(paths: RepoPaths, remote: str, writer: str, timeout: float | None) -> str | None:
    """Fetch the remote's copy of this writer's ref into its tracking ref; None when the
    remote has none (never published from here, or deleted there)."""
    spec = f"+{writer_ref(writer)}:{remote_prefix(remote)}{writer}"
    args = [*_FETCH, remote, spec]
    try:
        remote_git(paths, args, timeout, "fetch")
    except GitError as exc:
        if "couldn't find remote ref" in exc.message:
            return None
        raise
    return refs_under(paths, remote_prefix(remote) + writer).get(remote_prefix(remote) + writer)


def list_remote(paths: RepoPaths, remote: str, timeout: float | None) -> dict[str, str]:
    """The remote's writer refs (ls-remote): writer -> commit id."""
    out = remote_git(paths, ["ls-remote", remote, f"{WRITERS}*"], timeout, "ls-remote")
    found = {}
    for line in out.splitlines():
        oid, _, name = line.partition("\t")
        if name.startswith(WRITERS):
            found[name[len(WRITERS) :]] = oid
    return found


def remote_git(paths: RepoPaths, args: Sequence[str], timeout: float | None, what: str) -> str:
    """A git command that talks to a remote: never prompts (a missing credential is an error,
    not a hang), bounded by `timeout`; a failure is one line with git's own message."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(paths.worktree), *args],
            capture_output=True,
            check=False,
            timeout=timeout,
            env=_remote_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {what} took longer than {timeout:g} s: stopped") from None
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        raise GitError(f"git {what} failed: {git_message(proc.stderr)}")
    return proc.stdout.decode("utf-8", "replace")


def _remote_env() -> dict[str, str]:
    """git talking to a remote never prompts: a missing credential is an error, not a hang."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env
