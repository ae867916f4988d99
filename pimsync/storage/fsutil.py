"""Atomic file writes: temp file in the same directory, fsync, rename (or link)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from pathlib import Path

from pimsync.errors import PreconditionFailed, StorageError

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS}


#: the temporary files of :func:`atomic_write`: ``.<name>.<12 hex digits>.tmp``
TEMP_NAME = re.compile(r"\.(.{1,64})\.[0-9a-f]{12}\.tmp", re.DOTALL)


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name[:64]}.{secrets.token_hex(6)}.tmp"


def remove_stale_temp(path: Path) -> bool:
    """Remove a temporary file of :func:`atomic_write` left by a run that was killed: one
    that no live writer holds (a writer keeps it locked until it is renamed). Never
    anything else: the name must match, it must be a regular file, and the lock must be
    free. Returns True if it was removed."""
    if not TEMP_NAME.fullmatch(path.name):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        now = os.lstat(path)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _put_in_place(tmp: Path, path: Path, exclusive: bool) -> None:
    if not exclusive:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise PreconditionFailed("exists already", where=str(path)) from None
    except OSError as exc:  # a file system without hard links (FAT, some shares)
        if exc.errno not in _NO_LINKS:
            raise
        if path.exists():
            raise PreconditionFailed("exists already", where=str(path)) from None
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def file_etag(st: os.stat_result) -> str:
    """The etag of a local file: inode, size and modification time in nanoseconds."""
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def fsync_dir(directory: Path) -> None:
    """Make the renames and removals in a directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes, *, exclusive: bool = False, mode: int = 0o600, sync_dir: bool = True
) -> str:
    """Write ``data`` to ``path`` atomically and return the new file's etag.

    A file that is replaced keeps its permission bits; a new one gets ``mode`` (0600 by
    default: calendars and contacts are personal data). With ``sync_dir=False`` the
    caller fsyncs the directory itself (once for many writes) before relying on them.

    With ``exclusive`` the write fails with :class:`PreconditionFailed` if ``path`` exists
    (the file is linked into place, which is atomic and refuses to overwrite).
    """
    directory = path.parent
    if not exclusive:
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode & 0o7777
    tmp = _temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            # held until the file is in place: a later run removes a temporary file only
            # if it is free (left by a run that was killed, see remove_stale_temp)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            _put_in_place(tmp, path, exclusive)
        finally:
            os.close(fd)
        if sync_dir:
            fsync_dir(directory)
        return file_etag(os.stat(path))
    except PreconditionFailed:
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(f"cannot write: {exc.strerror or exc}", where=str(path)) from exc
