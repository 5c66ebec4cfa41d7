"""The clone's index once rebuilt: `index.sqlite` a symbolic link to the rebuild's own file
beside it, `index.sqlite.gen-<16 hex>` (index/catchup.py, `Index.rebuild`). Only such a link is
followed: any other (made by hand, or hostile) is never read, written through, nor used to pick
files to delete. Light (the hooks read it): `os` only.
"""

from __future__ import annotations

import os

GEN_INFIX = ".gen-"  # a rebuilt index's file: `index.sqlite.gen-<hex>`, `index.sqlite` its link
GEN_HEX = 16
_HEX = frozenset("0123456789abcdef")
_REGULAR = 0o100000  # S_IFREG
_FORMAT = 0o170000  # S_IFMT


def is_generation(link_name: str, name: str) -> bool:
    """Is `name` (no directory) a rebuilt file of the index named `link_name`?"""
    prefix = link_name + GEN_INFIX
    tail = name[len(prefix) :]
    return name.startswith(prefix) and len(tail) == GEN_HEX and set(tail) <= _HEX


def target(link: str) -> str | None:
    """The file the index at `link` is: `link` itself when it is no link (or nothing is there);
    the rebuilt file it names when it names one as a rebuild makes it (a name
    `<link>.gen-<16 hex>` with no directory, a regular file or nothing, never another link);
    None for any other link (foreign)."""
    try:
        name = os.readlink(link)
    except OSError:  # not a link, or nothing there
        return link
    if "/" in name or not is_generation(os.path.basename(link), name):
        return None
    path = os.path.join(os.path.dirname(link), name)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:  # deleted by hand, or retired by a rebuild just now
        return path
    except OSError:
        return None
    return path if mode & _FORMAT == _REGULAR else None
