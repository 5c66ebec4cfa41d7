"""The only module that touches git: `git` processes to read refs and objects, pygit2 to write
objects and commits, `git` for the index file.

pygit2 is imported lazily: it costs ~80 ms, and most commands never need it. Reading the
`.fleet/events` trees of refs (a catch-up after a fetch, a commit, a checkout; `verify`) goes
through one `git cat-file --batch` and one `--batch-check` process, each started on first use
and kept while the repository is open (a few ms each): a sync that only receives loads no
pygit2.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fleetgit.git import fingerprint
from fleetgit.git.catfile import CatFile, Header
from fleetgit.git.paths import RepoPaths
from fleetgit.ledger import safefs
from fleetgit.ledger.errors import GitError

REF_PREFIXES = ("refs/heads/", "refs/remotes/", "refs/fleet/")
FLEET_ATTRIBUTES = ".fleet/events/** -text merge=union"
_INDEX_TRIES = 20  # 50 ms apart: a git process holding the index lock gets a second
MAX_TREE_BYTES = 64 << 20  # ~1.3M entries: far over any .fleet/events tree fleetgit writes


def refs_fingerprint(paths: RepoPaths, worktree_git_dirs: list[Path]) -> str:
    """A cheap digest of every ref the index reads, from file stats alone (no git call)."""
    return fingerprint.refs_fingerprint(str(paths.common_dir), [str(d) for d in worktree_git_dirs])


class TooLarge(GitError):
    """An object over the limit it was asked with: never read."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} of {size} bytes, over the limit of {limit}")
        self.size, self.limit = size, limit


class GitRepo:
    """A repository: refs and objects read by git itself, a pygit2 repository opened on first
    use for what writes objects and commits."""

    def __init__(self, paths: RepoPaths) -> None:
        self.paths = paths
        self._repo: Any = None
        self._objects = CatFile(paths.worktree, contents=True)
        self._headers = CatFile(paths.worktree, contents=False)

    def close(self) -> None:
        """Stop the cat-file processes (a later read starts them again)."""
        self._objects.close()
        self._headers.close()

    @property
    def repo(self) -> Any:
        if self._repo is None:
            import pygit2

            # libgit2 hashes every object it reads again (SHA-1 with collision detection: 10 ms
            # a MB); git itself does not, having checked each one as it arrived (a fetch's
            # index-pack, a write's own hash). A segment of 3.7 MB reads in 14 ms, not 36 ms.
            pygit2.settings.enable_strict_hash_verification(False)
            try:
                self._repo = pygit2.Repository(str(self.paths.worktree))
            except pygit2.GitError as exc:
                raise GitError(f"cannot open the git repository: {exc}") from None
        return self._repo

    def ref_targets(self, worktree_git_dirs: list[Path]) -> dict[str, str]:
        """Commit ids of local and remote-tracking branches, refs/fleet/* and detached HEADs,
        read from the ref files as the hook reads them (fingerprint.ref_targets)."""
        dirs = [str(d) for d in worktree_git_dirs]
        return fingerprint.ref_targets(str(self.paths.common_dir), dirs)

    def events_tree(self, commit_id: str) -> str | None:
        """The tree id of `.fleet/events` in a commit, or None."""
        found = self._headers.read(f"{commit_id}:.fleet/events", 0) if _is_id(commit_id) else None
        return found.id if found is not None and found.type == "tree" else None

    def events_trees(
        self, target: str, hide: Iterable[str], also: Iterable[str] = ()
    ) -> Iterator[str]:
        """The `.fleet/events` tree of each commit reachable from `target` (or from one of
        `also`, in the same walk) and from none of `hide` (each distinct tree once), newest
        first: a segment a later commit rewrote or deleted is still in the history, and the
        index keeps what any commit ever held."""
        tips = [t for t in (target, *also) if _is_id(t)]
        if not _is_id(target):
            return
        # `--ignore-missing`: a tip or a hidden commit git no longer has is left out, as a walk
        # in libgit2 left it
        wanted = "".join([*(f"{t}\n" for t in tips), *(f"^{h}\n" for h in hide if _is_id(h))])
        try:
            out = run_git(self.paths, ["rev-list", "--ignore-missing", "--stdin"], wanted.encode())
        except GitError:
            return
        yielded: set[str] = set()
        for found in self._headers.headers([f"{c}:.fleet/events" for c in out.split()]):
            if found is not None and found.type == "tree" and found.id not in yielded:
                yielded.add(found.id)
                yield found.id

    def resolve_commit(self, rev: str) -> tuple[str, int] | None:
        """The commit `rev` names (as `git rev-parse REV^{commit}`) and its committer time in
        seconds, or None when it names none."""
        import pygit2

        try:
            commit = self.repo.revparse_single(rev).peel(_commit_type())
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            return None
        return str(commit.id), int(commit.commit_time)

    def file_at(self, commit_id: str, relpath: str, max_bytes: int) -> bytes | None:
        """A regular file's bytes in a commit's tree (at most `max_bytes`), else None."""
        try:
            entry = self.repo[commit_id].peel(_tree_type()) / relpath
        except (KeyError, ValueError):
            return None
        if entry.type_str != "blob" or entry.filemode not in (0o100644, 0o100755):
            return None
        try:
            return self.blob(str(entry.id), max_bytes)
        except TooLarge:
            return None

    def tree_entries(self, tree_id: str) -> Iterator[tuple[str, str, str, int]]:
        """(name, id, kind, filemode) of one tree's entries: a symbolic link is a blob of mode
        0o120000, a submodule a commit of mode 0o160000. A tree over MAX_TREE_BYTES is not
        read: TooLarge."""
        found = self._objects.read(tree_id, MAX_TREE_BYTES) if _is_id(tree_id) else None
        if found is None or found.type != "tree":
            return
        if found.data is None:
            raise TooLarge(f"tree {tree_id[:12]}", found.size, MAX_TREE_BYTES)
        data, width, at = found.data, len(tree_id) // 2, 0
        while at < len(data):
            space = data.index(b" ", at)
            nul = data.index(b"\0", space)
            mode = int(data[at:space], 8)
            oid = data[nul + 1 : nul + 1 + width].hex()
            name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
            at = nul + 1 + width
            kind = "tree" if mode == 0o40000 else "commit" if mode == 0o160000 else "blob"
            yield name, oid, kind, mode

    def fleet_entries(self, commit_id: str) -> Iterator[tuple[str, str, int]]:
        """(path, kind, filemode) of `.fleet` and `.fleet/events` in a commit, as far as they
        exist: what `verify` checks are directories."""
        try:
            tree = self.repo[commit_id].peel(_tree_type())
        except (KeyError, ValueError):
            return
        for path in (".fleet", ".fleet/events"):
            try:
                entry = tree / path
            except KeyError:
                return
            yield path, entry.type_str, entry.filemode
            if entry.type_str != "tree":
                return

    def headers(self, specs: list[str]) -> list[Header | None]:
        """The header (id, type, size) of the object each of `specs` names (an id or
        `REV:PATH`), None where it names none: one round trip a few hundred, no content read."""
        return self._headers.headers(specs)

    def blob_size(self, blob_id: str) -> int:
        """A blob's size from its header alone (its content is not inflated)."""
        found = self._headers.read(blob_id, 0) if _is_id(blob_id) else None
        if found is None:
            raise KeyError(blob_id)
        return found.size

    def blob(self, blob_id: str, limit: int) -> bytes:
        """A blob's bytes when it has at most `limit` of them (else TooLarge, never read);
        KeyError when there is no such object."""
        found = self._objects.read(blob_id, limit) if _is_id(blob_id) else None
        if found is None:
            raise KeyError(blob_id)
        if found.data is None:
            raise TooLarge(f"blob {blob_id[:12]}", found.size, limit)
        return found.data

    def commit_paths(
        self, relpaths: list[str], message: str, extra: dict[str, bytes], *, max_bytes: int
    ) -> str:
        """Commit exactly `relpaths` (from the work tree) plus `extra` blobs on top of HEAD.

        The index entries of `relpaths` follow the commit, so `git status` is clean for them; an
        `extra` path follows only when the user has no change of their own staged to it. Every
        other index entry, and the working tree, stay exactly as they were.
        """
        import pygit2

        author, committer = identity(self.paths, "AUTHOR"), identity(self.paths, "COMMITTER")
        repo = self.repo
        head = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
        workdir = Path(repo.workdir)
        blobs = {rel: repo.create_blob(_work_file(workdir, rel, max_bytes)) for rel in relpaths}
        extras = {rel: repo.create_blob(content) for rel, content in extra.items()}
        index = repo.index
        index.read()
        unstaged = {rel for rel in extras if _index_id(index, rel) == _tree_id(head, rel)}
        tree = _tree_with(repo, head, {**blobs, **extras})
        parents = [head.id] if head is not None else []
        try:
            commit_id = repo.create_commit("HEAD", author, committer, message, tree, parents)
        except pygit2.GitError as exc:
            raise GitError(f"commit failed: {exc}") from None
        for rel in relpaths:
            index.add(rel)  # re-stat from the work tree: the entry is clean
        for rel in unstaged:
            index.add(pygit2.IndexEntry(rel, extras[rel], pygit2.enums.FileMode.BLOB))
        self.write_index_or_undo(index, head, commit_id)
        return str(commit_id)

    def write_index_or_undo(self, index: Any, old_head: Any, commit_id: Any) -> None:
        """Write the updated index; if another git process holds its lock past a second, undo
        the commit (HEAD goes back) rather than leave the index disagreeing with HEAD."""
        import pygit2

        error: Exception | None = None
        for _ in range(_INDEX_TRIES):
            try:
                index.write()
                return
            except pygit2.GitError as exc:
                error = exc
                time.sleep(0.05)
        self._undo_commit(old_head, commit_id)
        raise GitError(
            f"cannot update the git index, so the commit was undone: {error}",
            hint=f"retry; if no git process is running, remove {self.paths.git_dir / 'index.lock'}",
        )

    def _undo_commit(self, old_head: Any, commit_id: Any) -> None:
        """Point HEAD (its branch, or itself when detached) back at `old_head`."""
        repo = self.repo
        head = repo.lookup_reference("HEAD")
        ref = head if repo.head_is_detached else repo.lookup_reference(head.target)
        if ref.target != commit_id:
            return  # someone moved it since: not ours to change
        if old_head is None:
            ref.delete()
        else:
            ref.set_target(old_head.id, "fleetgit: undo a commit whose index update failed")

    def head_file(self, relpath: str, max_bytes: int) -> bytes | None:
        """A regular file's bytes in HEAD's tree, None when HEAD or the path is absent. The
        tree came from whichever clone committed last, so it is read as untrusted: a link, a
        directory, a submodule or more than `max_bytes` bytes is refused (NotAFile, one line;
        the content is never read), and a regular file is read bounded through cat-file."""
        repo = self.repo
        if repo.head_is_unborn:
            return None
        try:
            entry = repo.head.peel(_commit_type()).tree / relpath
        except KeyError:
            return None
        kind = _KINDS.get(entry.type_str) or _MODES.get(entry.filemode, "special entry")
        if kind != "file":
            raise NotAFile(relpath, f"a {kind}")
        try:
            return self.blob(str(entry.id), max_bytes)
        except TooLarge as exc:
            raise NotAFile(relpath, f"{exc.size} bytes, over the limit of {max_bytes}") from None


class NotAFile(GitError):
    """A path in HEAD's tree that is no regular file fleetgit may read and rewrite."""

    def __init__(self, relpath: str, what: str) -> None:
        super().__init__(f"{relpath} in HEAD is {what}: left as it is")
        self.relpath = relpath


_KINDS = {"tree": "directory", "commit": "submodule"}
_MODES = {0o100644: "file", 0o100755: "file", 0o120000: "symbolic link"}


def _is_id(text: str) -> bool:
    """An object id as git prints it (SHA-1 or SHA-256, lowercase hex)."""
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _work_file(top: Path, relpath: str, max_bytes: int) -> bytes:
    """A pending `.fleet/` file's bytes: a regular file in real directories (a link would
    commit what it points to), at most `max_bytes`; refused in one line otherwise."""
    try:
        data = safefs.read_small(str(top), relpath, max_bytes)
    except safefs.NotRegular as exc:
        raise safefs.refusal(exc) from None
    except ValueError:
        raise GitError(
            f"{relpath} is larger than {max_bytes} bytes: not written by fleetgit, not committed",
            hint="move it out of .fleet/ (fleetgit verify lists what it holds)",
        ) from None
    if data is None:
        raise GitError(f"{relpath} vanished while it was being committed", hint="retry")
    return data


def blob_id_of_fd(fd: int, size: int, like: str) -> str:
    """The id git gives the first `size` bytes of open file `fd` as a blob, in the hash of the
    object id `like` (SHA-1, or SHA-256 in a repository made with --object-format=sha256); read
    in chunks, never whole."""
    import hashlib  # here only: it loads OpenSSL, which costs every command's start ~5 ms

    make = hashlib.sha1 if len(like) == 40 else hashlib.sha256
    h = make(b"blob %d\0" % size, usedforsecurity=False)
    done = 0
    while done < size:
        chunk = os.pread(fd, min(1 << 20, size - done), done)
        if not chunk:
            break
        h.update(chunk)
        done += len(chunk)
    return h.hexdigest()


def _tree_with(repo: Any, head: Any, blobs: dict[str, Any]) -> Any:
    """The tree of `head` (or an empty one) with `blobs` (path -> blob id) put in."""
    import pygit2

    staging = pygit2.Index()
    if head is not None:
        staging.read_tree(head.tree)
    for rel, oid in blobs.items():
        staging.add(pygit2.IndexEntry(rel, oid, pygit2.enums.FileMode.BLOB))
    return staging.write_tree(repo)


def _index_id(index: Any, relpath: str) -> Any:
    return index[relpath].id if relpath in index else None


def _tree_id(commit: Any, relpath: str) -> Any:
    try:
        return (commit.tree / relpath).id if commit is not None else None
    except KeyError:
        return None


def identity(paths: RepoPaths, role: str) -> Any:
    """The author or committer (`role`) signature exactly as git would make it: GIT_<role>_NAME,
    _EMAIL and _DATE, else user.name and user.email (asked of `git var`, so every rule holds)."""
    import pygit2

    try:
        ident = run_git(paths, ["var", f"GIT_{role}_IDENT"]).strip()
    except GitError:
        raise GitError(
            "git does not know who you are, so fleetgit cannot commit",
            hint='git config user.name "Your Name" && git config user.email you@example.com',
        ) from None
    person, when, tz = ident.rsplit(" ", 2)
    name, _, email = person.partition("<")
    minutes = int(tz[1:3]) * 60 + int(tz[3:5])
    offset = -minutes if tz.startswith("-") else minutes
    return pygit2.Signature(name.strip(), email.rstrip(">"), int(when), offset)


# git's markers of an operation in progress, and the command that finishes it
_OPERATIONS = (
    ("MERGE_HEAD", "a merge", "git merge --continue (or --abort)"),
    ("rebase-merge", "a rebase", "git rebase --continue (or --abort)"),
    ("rebase-apply", "a rebase or git am", "git rebase --continue or git am --continue"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue (or --abort)"),
    ("REVERT_HEAD", "a revert", "git revert --continue (or --abort)"),
)


def refuse_during_operation(paths: RepoPaths) -> None:
    """A fleet commit in the middle of a merge or rebase would land inside the user's operation."""
    for marker, what, finish in _OPERATIONS:
        if (paths.git_dir / marker).exists():
            raise GitError(
                f"{what} is in progress: fleetgit commits only between operations",
                hint=f"finish it first: {finish}; then run fleetgit commit again",
            )


def with_fleet_line(text: bytes) -> bytes | None:
    """A `.gitattributes` text with fleetgit's line added, or None when it has it already."""
    line = FLEET_ATTRIBUTES.encode()
    if line in text.splitlines():
        return None
    sep = b"" if not text or text.endswith(b"\n") else b"\n"
    return text + sep + line + b"\n"


def _tree_type() -> Any:
    import pygit2

    return pygit2.Tree


def _commit_type() -> Any:
    import pygit2

    return pygit2.Commit


def changed_fleet_paths(paths: RepoPaths) -> list[str]:
    """`.fleet/` paths that differ from HEAD (new, modified), via `git status` (no pygit2)."""
    out = run_git(
        paths, ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".fleet"]
    )
    result = []
    for record in out.split("\0"):
        if len(record) > 3 and record[1] != "D" and record[0] != "D":
            result.append(record[3:])
    return sorted(result)


def staged_paths(paths: RepoPaths, prefix: str) -> set[str]:
    """Paths under `prefix` present in this worktree's git index."""
    out = run_git(paths, ["ls-files", "-z", "--cached", "--", prefix])
    return {p for p in out.split("\0") if p}


def _git(paths: RepoPaths, args: Sequence[str], given: bytes | None = None) -> bytes:
    """`git ARGS` in the work tree's top (no network; `given` on its stdin, else nothing): its
    stdout, or GitError with the line of git's stderr that says what went wrong."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(paths.worktree), *args],
            capture_output=True,
            check=False,
            input=given,
            stdin=subprocess.DEVNULL if given is None else None,
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {git_message(proc.stderr)}")
    return proc.stdout


def git_message(stderr: bytes) -> str:
    """The line of git's stderr that says what went wrong (its first error, else its first
    line), with what a hook on the remote said before it."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    remote = [ln for ln in lines if ln.startswith("remote:") and ln != "remote:"]
    errors = [ln for ln in lines if ln.startswith(("fatal:", "error:", " ! ", "! ["))]
    chosen = errors[0] if errors else (lines[0] if lines else "no message")
    if remote and "hook declined" in " ".join(lines):
        chosen = f"{chosen} ({remote[0]})"
    return chosen


def run_git(paths: RepoPaths, args: Sequence[str], given: bytes | None = None) -> str:
    """`git ARGS` (see `_git`), its stdout as text."""
    return _git(paths, args, given).decode("utf-8", "replace")


def ls_files(paths: RepoPaths, args: list[str], pathspecs: list[str]) -> list[str]:
    """`git ls-files -z ARGS -- PATHSPECS` from the top of the work tree, one entry per record
    (paths that are not UTF-8 kept with surrogateescape, as the hook reads them)."""
    out = _git(paths, ["ls-files", "-z", *args, "--", *pathspecs])
    return [r for r in out.decode("utf-8", "surrogateescape").split("\0") if r]
