"""Write a point-in-time archive of every collection of some storages.

``<path>/<export>-<UTC YYYYmmddTHHMMSSZ>.tar.gz`` (or ``.zip``) holds ``manifest.json`` and
one standard file per collection, ``<storage>/<collection>.ics`` (one VCALENDAR, every
record, VTIMEZONEs deduplicated) or ``.vcf``: any calendar or contacts app imports it as
it is.

Point in time: a collection is listed before and after it is read; what changed meanwhile
is read again (a few rounds), and the manifest says if the collection never settled.
Streaming: records are read in small batches and written to a spool file, never held all
at once. Safe: the archive is written under a temporary name, verified, and only then
renamed into place, with mode 0600; a failure leaves earlier archives untouched.

Temporary files: the archive being written is ``.<archive>.<pid>.tmp``, locked
(``flock``) by the export writing it for as long as it exists; spool files have no name
(``O_TMPFILE``; where the file system cannot do that, a locked ``.<archive>.<pid>.<n>.tmp``
removed at once). An export killed midway (``kill -9``, a power cut) leaves its
``.tmp`` behind; the next export of that export name removes, in its directory, the
files named exactly so that no live export holds locked (:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pimsync import __version__
from pimsync.errors import MalformedRecord, NotFound, PimsyncError, StorageError
from pimsync.export.reader import MANIFEST
from pimsync.model.record import Record
from pimsync.storage.base import Collection, Fetched, Storage

FORMAT_VERSION = 1
READ_BATCH = 200  # records read at once: bounds the memory an export needs
SETTLE_ROUNDS = 3


class ExportError(PimsyncError):
    """An export could not be made (earlier archives are untouched)."""


@dataclass
class CollectionEntry:
    """One collection in the manifest."""

    storage: str
    collection: str
    where: str
    kind: str
    file: str
    displayname: str | None = None
    color: str | None = None
    count: int = 0
    sha256: str = ""
    settled: bool = True
    errors: list[str] = field(default_factory=list)  # records that could not be read
    # and "records": [{uid, etag}, ...], sorted by href, written from the spool


@dataclass(frozen=True)
class Written:
    """An archive in place, and the records that could not be read into it."""

    path: Path
    errors: list[str]


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")


def _without_userinfo(text: str) -> str:
    """*text* with the user name and password of any URL in it removed
    (``https://alice:pw@host/`` -> ``https://host/``). A configured URL never has them,
    but a server's redirect may: an archive, its manifest and the export's messages
    never keep them."""
    return _USERINFO.sub(r"\1", text)


def _member_name(storage: str, collection: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.@+" else "_" for c in collection)
    return f"{storage}/{safe.lstrip('.') or '_'}.{kind}"


class _Index(Mapping[str, str]):
    """What an export knows of a collection's records, per href: the etag, and once read,
    the UID and where the record is in the spool. Kept on disk, in a private temporary
    SQLite database (deleted when closed), so that the memory an export needs does not
    grow with the collection. As a mapping: href -> etag."""

    def __init__(self) -> None:
        import sqlite3

        self.db = sqlite3.connect("", isolation_level=None)  # "": private, temporary
        self.db.executescript(
            """
            PRAGMA cache_size = -1024;
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE r (
                href TEXT PRIMARY KEY,
                etag TEXT NOT NULL,
                uid TEXT,
                offset INTEGER,  -- NULL: listed, not read yet; -1: could not be read
                length INTEGER
            );
            BEGIN;
            """
        )

    def listed(self, items: Iterable[tuple[str, str]]) -> None:
        """Listed with this etag, to be read (again)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO r (href, etag) VALUES (?, ?)", ((h, e) for h, e in items)
        )

    def read(self, href: str, etag: str, uid: str | None, offset: int, length: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO r VALUES (?, ?, ?, ?, ?)", (href, etag, uid, offset, length)
        )

    def drop(self, href: str) -> None:
        self.db.execute("DELETE FROM r WHERE href = ?", (href,))

    def failed(self, href: str) -> None:
        """Could not be read: not read again unless it is listed again with a new etag."""
        self.db.execute("UPDATE r SET offset = -1 WHERE href = ?", (href,))

    def to_read(self, batch: int) -> Iterator[list[str]]:
        """Batches of the hrefs listed but not read, in href order."""
        after = ""
        while True:
            hrefs = [
                h
                for (h,) in self.db.execute(
                    "SELECT href FROM r WHERE offset IS NULL AND href > ? ORDER BY href LIMIT ?",
                    (after, batch),
                )
            ]
            if not hrefs:
                return
            yield hrefs
            after = hrefs[-1]

    def spans(self) -> Iterator[tuple[int, int]]:
        """Where the records read are in the spool, in the order they were written."""
        yield from self.db.execute("SELECT offset, length FROM r WHERE offset >= 0 ORDER BY offset")

    def records(self) -> Iterator[tuple[str | None, str]]:
        """(uid, etag) of the records read, in href order."""
        yield from self.db.execute("SELECT uid, etag FROM r WHERE offset >= 0 ORDER BY href")

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM r WHERE offset >= 0").fetchone()[0])

    def __getitem__(self, href: str) -> str:
        row = self.db.execute("SELECT etag FROM r WHERE href = ?", (href,)).fetchone()
        if row is None:
            raise KeyError(href)
        return str(row[0])

    def __iter__(self) -> Iterator[str]:
        return (h for (h,) in self.db.execute("SELECT href FROM r"))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM r").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class _Spool:
    """A collection's file, built on disk: the body (records, in reading order) first,
    then head + body + tail copied into the archive. ``index`` says which versions in the
    body count, and holds what the manifest needs."""

    def __init__(
        self, directory: Path, kind: str, new_file: Callable[[], BinaryIO] | None = None
    ) -> None:
        from pimsync.model import Joiner

        self.joiner = Joiner(kind)  # type: ignore[arg-type]
        self.body: BinaryIO = (
            new_file() if new_file is not None else tempfile.TemporaryFile(dir=directory)
        )
        self.index = _Index()

    def add(self, href: str, etag: str, record: Record) -> None:
        data = self.joiner.add(record).encode("utf-8", "surrogateescape")
        offset = self.body.seek(0, os.SEEK_END)
        self.body.write(data)
        self.index.read(href, etag, record.uid, offset, len(data))

    def chunks(self) -> Iterator[bytes]:
        yield self.joiner.head().encode("utf-8", "surrogateescape")
        for offset, length in self.index.spans():
            self.body.seek(offset)
            yield self.body.read(length)
        yield self.joiner.tail().encode("utf-8", "surrogateescape")

    def close(self) -> None:
        self.body.close()
        self.index.close()


def _changed_since(
    col: Collection, have: Mapping[str, str], token: str | None
) -> dict[str, str | None]:
    """hrefs whose etag is not the one read (None: removed) since ``have`` was made."""
    listing = col.list(token)
    if listing.delta:
        return {h: e for h, e in listing.items.items() if have.get(h) != e and (e or h in have)}
    now = {h: e for h, e in listing.items.items() if e is not None}
    changed: dict[str, str | None] = {h: e for h, e in now.items() if have.get(h) != e}
    changed.update({h: None for h in have if h not in now})
    return changed


def _read_ahead(col: Collection, batches: Iterator[list[str]]) -> Iterator[Fetched]:
    """The records of batch after batch of hrefs; the next batch is read on a thread while
    the caller handles the one before (a server prepares its answer meanwhile). At most
    two batches are in memory.

    Records are kept as the storage serves them: structure checked, values not. icalendar
    would take most of the export's time, and a backup should keep what a stricter reader
    dislikes rather than drop it (``archive verify`` reports it)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    def fetch(hrefs: list[str]) -> list[Fetched]:
        return list(col.get(hrefs, values=False))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pimsync-export") as pool:
        ahead: Future[list[Fetched]] | None = None
        for hrefs in batches:
            following = pool.submit(fetch, hrefs)
            if ahead is not None:
                yield from ahead.result()
            ahead = following
        if ahead is not None:
            yield from ahead.result()


def snapshot(
    storage: Storage,
    collection_id: str,
    spool_dir: Path,
    log: Callable[[str], None] = lambda line: None,
    new_file: Callable[[], BinaryIO] | None = None,
) -> tuple[CollectionEntry, _Spool]:
    """Read one collection as one consistent snapshot into a spool file (made by
    *new_file*; by default an unnamed temporary file in *spool_dir*)."""
    col = storage.collection(collection_id)
    entry = CollectionEntry(
        storage.name,
        collection_id,
        _without_userinfo(col.where),
        col.kind,
        _member_name(storage.name, collection_id, col.kind),
        col.get_meta("displayname") if "displayname" in col.meta_keys else None,
        col.get_meta("color") if "color" in col.meta_keys else None,
    )
    spool = _Spool(spool_dir, col.kind, new_file)
    index = spool.index
    try:
        listing = col.list(None)
        entry.errors.extend(_without_userinfo(str(e)) for e in listing.errors)
        token = listing.token
        index.listed((h, e) for h, e in listing.items.items() if e is not None)
        del listing

        def read() -> None:
            for fetched in _read_ahead(col, index.to_read(READ_BATCH)):
                if fetched.record is not None:
                    spool.add(fetched.href, fetched.etag, fetched.record)
                elif isinstance(fetched.error, NotFound):
                    index.drop(fetched.href)
                else:  # not in the archive; read again only if it changes
                    index.failed(fetched.href)
                    entry.errors.append(_without_userinfo(str(fetched.error)))

        read()
        for _ in range(SETTLE_ROUNDS):
            changed = _changed_since(col, index, token)
            if not changed:
                break
            log(f"{storage.name}/{collection_id}: {len(changed)} records changed while reading")
            for href in changed:
                index.drop(href)
            index.listed((h, e) for h, e in changed.items() if e is not None)
            token = None  # compare full listings from now on: cheap enough, always correct
            read()
        else:
            entry.settled = False
        entry.count = index.count()
    except BaseException:
        spool.close()
        raise
    return entry, spool


def _manifest_chunks(
    head: dict[str, object], entries: list[tuple[CollectionEntry, _Index]]
) -> Iterator[bytes]:
    """manifest.json, a piece at a time: never the whole text, nor a copy of the records
    as dicts, in memory at once."""

    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    out = ["{\n"]
    out.extend(f" {dump(key)}: {dump(value)},\n" for key, value in head.items())
    out.append(' "collections": [')
    yield "".join(out).encode()
    for n, (entry, records) in enumerate(entries):
        parts = ["," if n else "", "\n  {\n"]
        for f in fields(entry):
            parts.append(f"   {dump(f.name)}: {dump(getattr(entry, f.name))},\n")
        parts.append('   "records": [')
        yield "".join(parts).encode()
        lines = []
        first = True
        for uid, etag in records.records():
            lines.append(
                f'{"" if first else ","}\n    {{"uid": {dump(uid)}, "etag": {dump(etag)}}}'
            )
            first = False
            if len(lines) >= 500:
                yield "".join(lines).encode()
                lines = []
        yield "".join(lines).encode()
        yield ("]\n  }" if first else "\n   ]\n  }").encode()
    yield b"\n ]\n}\n"


class _Writer:
    """The archive container: tar.gz or zip, written member by member."""

    def __init__(self, fd: int, fmt: str, new_file: Callable[[], BinaryIO]) -> None:
        """Write to *fd* (closed by :meth:`close`); stage tar members in *new_file*()."""
        self.fmt = fmt
        self.new_file = new_file
        self.raw = os.fdopen(fd, "wb")
        if fmt == "zip":
            self.zip = zipfile.ZipFile(self.raw, "w", compression=zipfile.ZIP_DEFLATED)
        else:
            self.tar = tarfile.open(fileobj=self.raw, mode="w:gz", format=tarfile.PAX_FORMAT)

    def add(self, name: str, chunks: Iterator[bytes]) -> str:
        """Add a member from chunks; return its SHA-256."""
        digest = hashlib.sha256()
        if self.fmt == "zip":
            info = zipfile.ZipInfo(name, time.gmtime()[:6])
            info.external_attr = 0o100600 << 16  # a private file when extracted
            info.compress_type = zipfile.ZIP_DEFLATED
            with self.zip.open(info, "w", force_zip64=True) as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
        # tar needs the size first: stage the member beside the archive (same disk)
        with self.new_file() as staging:
            for chunk in chunks:
                digest.update(chunk)
                staging.write(chunk)
            info = tarfile.TarInfo(name)
            info.size = staging.tell()
            info.mtime = int(time.time())
            info.mode = 0o600
            staging.seek(0)
            self.tar.addfile(info, staging)
        return digest.hexdigest()

    def close(self) -> None:
        if self.fmt == "zip":
            self.zip.close()
        else:
            self.tar.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()


# --------------------------------------------------------------------------- temporaries

#: Whether to try ``O_TMPFILE`` (Linux) for spool files; tests turn it off to exercise
#: the named fallback.
USE_O_TMPFILE = hasattr(os, "O_TMPFILE")


def _create_locked(path: Path) -> int:
    """Create *path* (mode 0600, never an existing file) and hold an exclusive ``flock``
    on it; return the descriptor. The lock says "a live export is writing this": it goes
    when the descriptor is closed or the process dies, however it dies.

    A :func:`remove_leftovers` of another export may see the file between its creation
    and the lock, and remove it: then the lock is on a file that has no name any more, so
    the name is checked after the lock is taken, and the file made again."""
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # at once: only a cleanup holds it, briefly
            mine = os.fstat(fd)
            try:
                there = os.lstat(path)
            except FileNotFoundError:
                there = None
            if there is not None and (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed meanwhile: make it again
    raise ExportError("a temporary file kept disappearing while it was made", where=str(path))


class _Temporaries:
    """The temporary files of one export: the archive being written, and spool files."""

    def __init__(self, export: str, directory: Path, when: datetime, fmt: str) -> None:
        from pimsync.export.schedule import temporary_name

        self.directory = directory
        pid = os.getpid()
        self.path = directory / temporary_name(export, when, fmt, pid)
        self._name = lambda part: directory / temporary_name(export, when, fmt, pid, part)
        self._parts = itertools.count(1)

    def archive(self) -> int:
        """Create :attr:`path`, locked; the descriptor, kept open while the file exists."""
        return _create_locked(self.path)

    def unnamed(self) -> BinaryIO:
        """A new temporary file with no name (private, gone when closed or on a crash)."""
        if USE_O_TMPFILE:
            try:
                fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600)
            except OSError:  # not on this file system (or kernel): as tempfile does
                pass
            else:
                return os.fdopen(fd, "w+b")
        # named for an instant, like tempfile's fallback, but by a name (and a lock) the
        # next export recognises should a crash come in that instant
        path = self._name(next(self._parts))
        fd = _create_locked(path)
        try:
            os.unlink(path)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "w+b")


def remove_leftovers(export: str, directory: Path) -> list[str]:
    """Remove the temporary files that exports of *export* killed midway left in
    *directory*; return their names.

    Only regular files of this user named exactly as :func:`~pimsync.export.schedule.
    temporary_name` names this export's temporaries, and only those no process holds
    locked: a live export (this one, or another writing at the same time) keeps its own.
    Never an archive, another export's temporaries, nor any other file. Files that cannot
    be looked at or removed are left as they are."""
    from pimsync.export.schedule import is_temporary_name

    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    removed = []
    for name in names:
        if not is_temporary_name(export, name):
            continue
        path = directory / name
        try:
            # O_NONBLOCK: a FIFO of that name does not hang the export; O_NOFOLLOW: nor is
            # a symbolic link followed
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            seen = os.fstat(fd)
            if not stat.S_ISREG(seen.st_mode) or seen.st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a live export is writing it
                continue
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
                continue  # replaced meanwhile by another file of that name
            os.unlink(path)  # still holding the lock: no export can be writing it
            removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def write_archive(
    export: str,
    storages: list[Storage],
    directory: Path,
    *,
    fmt: str = "tar.gz",
    now: datetime | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Written:
    """Make, verify and put in place one archive."""
    from pimsync.export.schedule import archive_name
    from pimsync.export.verify import Expected, check_written, uid_digest

    now = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ExportError(f"cannot create: {exc.strerror}", where=str(directory)) from exc
    final = directory / archive_name(export, now, fmt)
    for name in remove_leftovers(export, directory):
        log(f"{export}: removed {name} (left by an export that was stopped midway)")
    if final.exists():
        raise ExportError("an archive of that second exists already", where=str(final))
    temporaries = _Temporaries(export, directory, now, fmt)
    tmp = temporaries.path
    entries: list[tuple[CollectionEntry, _Index]] = []
    expected: list[Expected] = []
    spools: list[_Spool] = []
    lock = -1  # held from the temporary file's creation until it is renamed or removed
    try:
        lock = temporaries.archive()
        writer = _Writer(os.dup(lock), fmt, temporaries.unnamed)
        try:
            for storage in storages:
                for info in storage.collections():
                    entry, spool = snapshot(
                        storage, info.id, directory, log, new_file=temporaries.unnamed
                    )
                    try:
                        entry.sha256 = writer.add(entry.file, spool.chunks())
                        uids = uid_digest(uid for uid, _ in spool.index.records())
                    except BaseException:
                        spool.close()
                        raise
                    spools.append(spool)  # its index gives the manifest's records
                    entries.append((entry, spool.index))
                    expected.append(
                        Expected(entry.file, entry.kind, entry.sha256, entry.count, uids)
                    )
                    log(f"{export}: {entry.file}: {entry.count} record{'s' * (entry.count != 1)}")
                    for error in entry.errors:
                        log(f"{export}: {entry.file}: not in the archive: {error}")
            head = {
                "format": FORMAT_VERSION,
                "pimsync": __version__,
                "export": export,
                "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            manifest_sha256 = writer.add(MANIFEST, _manifest_chunks(head, entries))
        finally:
            writer.close()
            for spool in spools:
                spool.close()
        # complete and intact: every checksum, every record's structure, counts and UIDs
        check_written(tmp, expected, manifest_sha256)
        os.replace(tmp, final)
        with contextlib.suppress(OSError):
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException as exc:
        if lock >= 0:  # the file is ours (a file of that name we did not make is not)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, ExportError | KeyboardInterrupt):
            raise
        if isinstance(exc, PimsyncError | OSError | MalformedRecord | StorageError):
            raise ExportError(
                f"export {export!r} failed: {_without_userinfo(str(exc))}", where=str(final)
            ) from exc
        raise
    finally:
        if lock >= 0:
            os.close(lock)
    return Written(final, [error for entry, _ in entries for error in entry.errors])
