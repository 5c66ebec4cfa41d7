"""The boot of the machine an index was last opened in (docs/design.md, "The index's durability").

The index is written without syncs: a process killed loses none of its writes (they are in the
page cache), but an OS crash or a power loss can leave it torn. `<index>-boot` names the boot in
which processes last opened it. A process that finds another boot named there is the first of
this boot: it keeps the index only when the last connection of that boot closed it (that close
copies the WAL in, syncs, and deletes the WAL), and otherwise drops it to be rebuilt from the
segments (index/store.py, `IndexDB._claim_boot`). Light (the hooks read it): `os` only.
"""

from __future__ import annotations

import os

BOOT_ID = "/proc/sys/kernel/random/boot_id"  # Linux: new at every boot
SUFFIX = "-boot"
WIDTH = 64  # the marker is rewritten in place at this width, never truncated

_boot: list[str | None] = []


def boot_id() -> str | None:
    """This boot's id, None where the system does not say (the index then syncs as before)."""
    if not _boot:
        try:
            with open(BOOT_ID, "rb") as fh:
                _boot.append(fh.read(WIDTH).strip().decode("ascii", "replace") or None)
        except OSError:
            _boot.append(None)
    return _boot[0]


def marker(index_file: str | os.PathLike[str]) -> str:
    return f"{os.fspath(index_file)}{SUFFIX}"


def named(fd: int) -> str:
    """The boot a marker names ("" for a marker just made, before anything was written)."""
    return os.pread(fd, WIDTH, 0).strip(b" \0\n").decode("ascii", "replace")


def opened_this_boot(index_file: str | os.PathLike[str]) -> bool:
    """Has a process of this boot opened the index (checked it after a reboot)? Also true where
    the boot is not known: such an index is written with syncs."""
    this = boot_id()
    if this is None:
        return True
    try:
        fd = os.open(marker(index_file), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return named(fd) == this
    finally:
        os.close(fd)
