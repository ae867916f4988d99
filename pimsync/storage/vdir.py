"""vdir: a directory with one sub-directory per collection and one file per record.

The layout khal, khard, vdirsyncer and many other tools read and write. Collection metadata
lives in the files ``displayname`` and ``color`` inside the collection's directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pimsync.errors import MalformedRecord, NotFound, PreconditionFailed, StorageError
from pimsync.model.record import Kind, Record
from pimsync.storage.base import CollectionInfo, Fetched, Listing, check_collection_id
from pimsync.storage.fsutil import atomic_write, file_etag, fsync_dir, remove_stale_temp

META_KEYS = ("displayname", "color")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}")


def href_for(ident: str, fileext: str) -> str:
    """A file name for a record: its UID when that is a safe, short file name; otherwise a
    hash of it. Never a path separator, never hidden, never ``.``/``..``, bounded length."""
    if _SAFE_NAME.fullmatch(ident) and not ident.lower().endswith(fileext.lower()):
        return ident + fileext
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:40] + fileext


def _dangling(path: Path) -> StorageError:
    """The error for a symbolic link whose target is missing (an unmounted disk, content
    a tool such as git-annex dropped, a synced folder still arriving)."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return StorageError(
        f"a symbolic link to {target!r}, which does not exist (an unmounted disk or a "
        "file still arriving?); left alone on both sides",
        where=str(path),
    )


class VdirCollection:
    def __init__(self, path: Path, collection_id: str, kind: Kind, fileext: str) -> None:
        self.path = path
        self.id = collection_id
        self.kind = kind
        self.fileext = fileext
        self.where = str(path)
        self._unsynced = False  # renames or removals not yet made durable (see flush)
        self.meta_keys = META_KEYS

    def _write(self, path: Path, record: Record, exclusive: bool) -> str:
        etag = atomic_write(path, record.to_bytes(), exclusive=exclusive, sync_dir=False)
        self._unsynced = True
        return etag

    def _file(self, href: str) -> Path:
        if (
            not href
            or "/" in href
            or "\\" in href
            or "\0" in href
            or href.startswith(".")
            or not href.endswith(self.fileext)
        ):
            raise StorageError(f"refusing unsafe file name {href!r}", where=self.where)
        return self.path / href

    def list(self, token: str | None = None) -> Listing:
        items: dict[str, str | None] = {}
        unreadable: dict[str, StorageError] = {}
        ext = self.fileext
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        if name.endswith(".tmp"):  # a killed run's temporary file
                            remove_stale_temp(self.path / name)
                        continue
                    if not name.endswith(ext):
                        continue
                    try:
                        if entry.is_dir():
                            continue  # a directory is not a record
                        items[name] = file_etag(entry.stat())
                    except FileNotFoundError:
                        if entry.is_symlink():  # a link to a file that is not there
                            unreadable[name] = _dangling(self.path / name)
                        continue  # else removed while we listed
                    except OSError as exc:  # EIO, EACCES, ELOOP...: it is there, unread
                        unreadable[name] = StorageError(
                            f"cannot read: {exc.strerror or exc}; left alone on both sides",
                            where=str(self.path / name),
                        )
        except FileNotFoundError:
            raise NotFound("collection directory is gone", where=self.where) from None
        except OSError as exc:
            raise StorageError(f"cannot list: {exc.strerror}", where=self.where) from exc
        return Listing(items=items, unreadable=unreadable)

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        from pimsync.model import parse_record

        for href in hrefs:
            path = self._file(href)
            try:
                with open(path, "rb") as fh:
                    etag = file_etag(os.fstat(fh.fileno()))
                    data = fh.read()
            except FileNotFoundError:
                if os.path.islink(path):  # the link is there, its target is not
                    yield Fetched(href, "", error=_dangling(path))
                else:
                    yield Fetched(href, "", error=NotFound("vanished", where=str(path)))
                continue
            except OSError as exc:
                yield Fetched(href, "", error=StorageError(exc.strerror or "", where=str(path)))
                continue
            try:
                record = parse_record(data, self.kind, str(path), values=values)
                yield Fetched(href, etag, record=record)
            except MalformedRecord as exc:
                yield Fetched(href, etag, error=exc)

    def _current_etag(self, path: Path) -> str | None:
        try:
            return file_etag(os.stat(path))
        except FileNotFoundError:
            return None

    def create(self, record: Record) -> tuple[str, str]:
        href = href_for(record.ident, self.fileext)
        path = self._file(href)
        try:
            return href, self._write(path, record, exclusive=True)
        except PreconditionFailed:
            if self._holds_ident(path, record.ident):
                raise
        # Another record already uses that name: pick a fresh one.
        alt = href_for(f"{record.ident}\0{os.urandom(8).hex()}", self.fileext)
        return alt, self._write(self._file(alt), record, exclusive=True)

    def _holds_ident(self, path: Path, ident: str) -> bool:
        from pimsync.model import parse_record

        try:
            return parse_record(path.read_bytes(), self.kind, str(path)).ident == ident
        except (OSError, MalformedRecord):
            return True  # unreadable: do not add a second file beside it

    def update(self, href: str, record: Record, etag: str) -> str:
        path = self._file(href)
        current = self._current_etag(path)
        if current != etag:
            raise PreconditionFailed(
                "changed since it was listed" if current else "vanished", where=str(path)
            )
        return self._write(path, record, exclusive=False)

    def delete(self, href: str, etag: str) -> None:
        path = self._file(href)
        current = self._current_etag(path)
        if current is None:
            return  # already gone: the goal is reached
        if current != etag:
            raise PreconditionFailed("changed since it was listed", where=str(path))
        try:
            os.unlink(path)
            self._unsynced = True
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete: {exc.strerror}", where=str(path)) from exc

    def flush(self) -> None:
        """Each file was fsynced when written; one fsync of the directory makes all the
        renames and removals since the last flush durable (before the state records them)."""
        if self._unsynced:
            try:
                fsync_dir(self.path)
            except OSError as exc:
                raise StorageError(f"cannot sync: {exc.strerror}", where=self.where) from exc
            self._unsynced = False

    def get_meta(self, key: str) -> str | None:
        if key not in META_KEYS:
            raise KeyError(key)
        try:
            value = (self.path / key).read_text("utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read {key}: {exc}", where=self.where) from exc
        return value or None

    def set_meta(self, key: str, value: str | None) -> None:
        if key not in META_KEYS:
            raise KeyError(key)
        path = self.path / key
        if value is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        atomic_write(path, value.encode("utf-8"))


class VdirStorage:
    def __init__(self, name: str, path: Path, fileext: str, kind: Kind, read_only: bool) -> None:
        self.name = name
        self.path = path
        self.fileext = fileext
        self.kind = kind
        self.read_only = read_only

    def collections(self) -> list[CollectionInfo]:
        dirs: list[str] = []
        broken: dict[str, str] = {}  # listed, but not a readable directory: why
        try:
            with os.scandir(self.path) as entries:
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    try:
                        if e.is_dir():
                            dirs.append(e.name)
                        elif e.is_symlink() and not os.path.exists(e.path):
                            broken[e.name] = str(_dangling(Path(e.path)))
                    except OSError as exc:
                        broken[e.name] = f"{e.path}: cannot read: {exc.strerror or exc}"
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list: {exc.strerror}", where=str(self.path)) from exc
        out = [CollectionInfo(cid, problem=why) for cid, why in broken.items()]
        for cid in dirs:
            col = self.collection(cid)
            try:
                if not os.access(col.path, os.R_OK | os.X_OK):
                    raise StorageError("cannot read: permission denied", where=col.where)
                out.append(CollectionInfo(cid, col.get_meta("displayname"), col.get_meta("color")))
            except StorageError as exc:
                out.append(CollectionInfo(cid, problem=f"{exc}; left alone on both sides"))
        return sorted(out, key=lambda info: info.id)

    def collection(self, collection_id: str) -> VdirCollection:
        check_collection_id(collection_id, str(self.path))
        return VdirCollection(self.path / collection_id, collection_id, self.kind, self.fileext)

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> VdirCollection:
        col = self.collection(collection_id)
        try:
            col.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create: {exc.strerror}", where=str(col.path)) from exc
        return col
