"""The one error hierarchy. The CLI turns these into a message and an exit code at one boundary."""

from __future__ import annotations

import errno


class FleetError(Exception):
    """An expected failure: refused or invalid input. Exit code 1."""

    code = "fleet_error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ValidationError(FleetError):
    """Input that does not fit the catalogue, the stream grammar or a command's rules."""

    code = "invalid"


class UsageError(FleetError):
    """Options that do not go together (one would be ignored, or needs another). Exit code 2,
    like the usage errors the command-line parser reports itself."""

    code = "usage"
    exit_code = 2


class NotARepositoryError(FleetError):
    code = "not_a_repository"


class NotInitializedError(FleetError):
    code = "not_initialized"


class NotFoundError(FleetError):
    code = "not_found"


class AmbiguousError(FleetError):
    code = "ambiguous"


class ConflictError(FleetError):
    """Optimistic concurrency or a domain rule refused the change."""

    code = "conflict"


class IntegrityError(FleetError):
    """The ledger contradicts itself: the same event id with different bytes, a broken segment."""

    code = "integrity"


class GitError(FleetError):
    """A git operation failed; raised only by gitrepo."""

    code = "git"


class SystemRefusedError(FleetError):
    """The system refused a write to a named path: read-only, no permission, no space. The
    user's to mend, not a bug: one line with the path, and a hint."""

    code = "filesystem"


# what the system refuses for a file (read-only, no permission, no space): the user's to mend
_REFUSED_BY_THE_SYSTEM = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def refused_by_the_system(exc: BaseException) -> SystemRefusedError | None:
    """`exc` as the refusal every interface gives (the CLI's one line, an MCP tool error) when
    the system refused it for a named path; None for any other error (a bug: logged)."""
    if (
        not isinstance(exc, OSError)
        or exc.errno not in _REFUSED_BY_THE_SYSTEM
        or exc.filename is None
    ):
        return None
    return SystemRefusedError(
        f"{exc.strerror}: {exc.filename}",
        hint="the events go under .fleet/, the index and keys under .git/fleet/:"
        " make them writable (or free some space) and run it again",
    )
