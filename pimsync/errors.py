"""One exception tree. Every error names the file, URL, key or record it is about."""

from __future__ import annotations


class PimsyncError(Exception):
    """Base of every error pimsync raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(PimsyncError):
    """A problem with the config file: names the file, the key and what is allowed."""


class MalformedRecord(PimsyncError):
    """A record (or a file of records) that cannot be read.

    ``where`` names the file or URL (with a line number where known); ``uid`` is the UID
    when it could still be recovered, so that the engine knows which record is affected.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        uid: str | None = None,
        line: int | None = None,
    ) -> None:
        self.uid = uid
        self.line = line
        if where and line is not None:
            where = f"{where}:{line}"
        super().__init__(message, where=where)


class StorageError(PimsyncError):
    """A storage could not do what was asked (I/O error, server error...)."""


class PreconditionFailed(StorageError):
    """A conditional write failed: the item changed (or appeared) since it was listed."""


class NotFound(StorageError):
    """The item or collection does not exist (any more)."""


class Unreachable(StorageError):
    """Not attempted: the server did not answer earlier in this run. ``origin`` names the
    server; the engine reports each server once and skips its other collections."""

    origin: str = ""


class ReadOnlyError(StorageError):
    """A write was attempted on a storage configured with ``read_only = true``."""


class LockTimeout(PimsyncError):
    """Another pimsync holds the state database lock."""


class StateError(PimsyncError):
    """The state database is unusable (newer schema, corrupt file...)."""
