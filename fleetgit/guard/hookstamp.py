"""prepare-commit-msg, commit-msg, applypatch-msg: record who makes a commit, in the commit.

The pilot making a commit (FLEET_CALLSIGN, else git config fleet.callsign) becomes its
`Fleet-Pilot` trailer, by which pre-push and the server-side check judge it (hookpush.py,
rules.judge). git runs prepare-commit-msg for `commit` (with --no-verify too), merges,
`cherry-pick` and `revert`; commit-msg after the editor; applypatch-msg for `am`. The trailer
replaces one a picked commit or a patch carried, and without an identity such a trailer is
removed. Left alone: a rebase (it replays commits, not who made them) and a message with no
text yet (an editor is about to open, and git must still abort on a message left empty). Never
fails git: without the trailer a commit is judged by its committer email, or its pusher.
The hook path: light.
"""

from __future__ import annotations

import os
import sys

from fleetgit.git.gitconfig import config_entries
from fleetgit.guard.hookgit import Process, Where, run_git

TRAILER = "Fleet-Pilot"
HOOKS = ("prepare-commit-msg", "commit-msg", "applypatch-msg")
SCISSORS = b" ------------------------ >8 ------------------------"


def stamp(paths: Where, message_file: str) -> int:
    if _rebasing(paths):
        return 0
    try:
        found = config_entries(
            Process(
                paths, "config", "--get-regexp", "^(fleet\\.callsign|core\\.commentchar)$"
            ).result()[1]
        )
        with open(message_file, "rb") as fh:
            text = fh.read()
        comment = (found.get("core.commentchar") or "#").encode()
        if not has_text(text, comment if comment != b"auto" else b"#"):
            return 0
        me = os.environ.get("FLEET_CALLSIGN") or found.get("fleet.callsign") or None
        if me:
            run_git(
                paths,
                "interpret-trailers",
                "--in-place",
                "--if-exists=replace",
                "--if-missing=add",
                f"--trailer={TRAILER}: {me}",
                os.path.abspath(message_file),
            )
        else:
            unstamp(message_file, text)
    except Exception as exc:
        print(f"fleetgit: could not record the pilot in the message ({exc})", file=sys.stderr)
    return 0


def _rebasing(paths: Where) -> bool:
    """A rebase in progress, of either backend (`rebase-apply/` without `rebasing` is am)."""
    return os.path.isdir(os.path.join(paths.git_dir, "rebase-merge")) or os.path.exists(
        os.path.join(paths.git_dir, "rebase-apply", "rebasing")
    )


def has_text(message: bytes, comment: bytes) -> bool:
    """Does the message say anything: a line that is neither blank nor a comment, before the
    scissors line that `commit -v` adds (git drops what follows it)?"""
    for line in message.splitlines():
        if line.startswith(comment + SCISSORS):
            return False
        stripped = line.strip()
        if stripped and not stripped.startswith(comment):
            return True
    return False


def unstamp(message_file: str, text: bytes) -> None:
    """Remove `Fleet-Pilot:` lines (another pilot's) from a message, whatever its encoding."""
    lines = text.splitlines(keepends=True)
    prefix = f"{TRAILER.lower()}:".encode()
    kept = [line for line in lines if not line.lower().startswith(prefix)]
    if len(kept) != len(lines):
        with open(message_file, "wb") as fh:
            fh.write(b"".join(kept))
