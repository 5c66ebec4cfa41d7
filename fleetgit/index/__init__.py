"""The SQLite index: schema, catch-up, reads."""

from fleetgit.index.catchup import Index
from fleetgit.index.store import IngestResult

__all__ = ["Index", "IngestResult"]
