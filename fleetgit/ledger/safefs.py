"""Files under `.fleet/` opened safely: regular files only, no link followed on the way.

Everything in `.fleet/` may have come from another clone (a merge, a checkout), so a name there
may be a symbolic link (to `/dev/zero`, to `/etc/passwd`, to another project's ledger), a FIFO, a
device, a socket or a directory. Every open here walks the path one directory at a time from the
worktree's top with `O_NOFOLLOW | O_DIRECTORY` (openat-style, through directory fds), opens the
file itself with `O_NOFOLLOW | O_NONBLOCK` (a FIFO neither blocks the open nor is read) and
accepts it only when `fstat` says it is a regular file. The worktree's top itself is the user's
choice and is trusted. Hook path: `os` only, paths are plain strings.
"""

from __future__ import annotations

import errno
import os
import stat

from fleetgit.ledger.errors import FleetError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# errors an open gives for a name that is not what the walk expects (a link, a file, a FIFO
# without a reader, a directory opened to write)
_NOT_THERE_AS_EXPECTED = (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR, errno.EMLINK)


class NotRegular(Exception):
    """`relpath` (relative to the worktree's top) is `what` ("a symbolic link", "a FIFO", ...),
    where fleetgit reads or writes only directories and regular files."""

    def __init__(self, relpath: str, what: str) -> None:
        super().__init__(f"{relpath} is {what}")
        self.relpath = relpath
        self.what = what


def kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def _what_is(name: str, dir_fd: int, default: str) -> str:
    try:
        return kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return default


def open_dir(top: str, relpath: str, *, create: bool = False) -> int:
    """A directory fd of `top/relpath`, no component followed if it is a link; `create` makes
    missing directories. FileNotFoundError when one is missing; NotRegular when one is not a
    directory."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    done = ""
    try:
        for part in relpath.split("/") if relpath else ():
            done = f"{done}/{part}" if done else part
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    _mkdir(part, fd)
                except OSError as exc:  # read-only, no permission, no space: name the path
                    exc.filename = os.path.join(top, done)
                    raise
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _NOT_THERE_AS_EXPECTED:
                        raise NotRegular(done, _what_is(part, fd, "not a directory")) from None
                    raise
            except OSError as exc:
                if exc.errno in _NOT_THERE_AS_EXPECTED:
                    raise NotRegular(done, _what_is(part, fd, "not a directory")) from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mkdir(name: str, dir_fd: int) -> None:
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:  # another process made it, or a dangling link (the open tells)
        return


def open_file(top: str, relpath: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """An fd of the regular file `top/relpath` (opened with `flags`, created with `mode` when
    `flags` has O_CREAT, its directories too). FileNotFoundError when it is missing; NotRegular
    when it, or a directory on the way, is anything else."""
    parent, _, name = relpath.rpartition("/")
    dir_fd = open_dir(top, parent, create=bool(flags & os.O_CREAT))
    try:
        return open_in(dir_fd, name, relpath, flags, mode)
    finally:
        os.close(dir_fd)


def open_in(
    dir_fd: int, name: str, relpath: str, flags: int = os.O_RDONLY, mode: int = 0o644
) -> int:
    """`open_file` in a directory already open (an fd from `open_dir`): the regular file
    `name` there, `relpath` naming it in a NotRegular."""
    try:
        fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _NOT_THERE_AS_EXPECTED:
            raise NotRegular(relpath, _what_is(name, dir_fd, "not a regular file")) from None
        exc.filename = relpath  # the open's name alone is a bare file name
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(relpath, kind(st.st_mode))
    return fd


def stat_file(top: str, relpath: str) -> os.stat_result | None:
    """The stat of the regular file `top/relpath` (its directories walked as `open_dir` does),
    None when it is missing; NotRegular when it, or a directory on the way, is anything else."""
    parent, _, name = relpath.rpartition("/")
    try:
        dir_fd = open_dir(top, parent)
    except FileNotFoundError:
        return None
    try:
        return stat_in(dir_fd, name, relpath)
    finally:
        os.close(dir_fd)


def stat_in(dir_fd: int, name: str, relpath: str) -> os.stat_result | None:
    """`stat_file` in a directory already open (an fd from `open_dir`)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(relpath, kind(st.st_mode))
    return st


def read_small(top: str, relpath: str, limit: int) -> bytes | None:
    """The whole of a small regular file (a config), None when it is missing; NotRegular as
    `open_file`, and ValueError when it holds more than `limit` bytes."""
    try:
        fd = open_file(top, relpath)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, limit + 1)
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                return data
            data += more
    finally:
        os.close(fd)
    raise ValueError(f"{relpath} is larger than {limit} bytes")


def refusal(exc: NotRegular) -> FleetError:
    """The one line that refuses to write through something that is not a real directory or a
    regular file, with how to get rid of it."""
    if exc.what == "a symbolic link":
        hint = f"remove the link (rm {exc.relpath}; what it points to is kept) and retry"
    else:
        hint = f"move {exc.relpath} out of the way and retry"
    return FleetError(
        f"{exc.relpath} is {exc.what}: fleetgit writes only to regular files in real"
        " directories inside the repository",
        hint=hint,
    )
