"""file: one .ics/.vcf file per collection, as phones and most apps export them.

``path`` names the file; a ``{collection}`` placeholder in its file name makes one file per
collection. Records are addressed by their ident; a record's etag is its hash. Writes are
buffered and made at :meth:`SingleFileCollection.flush` with one atomic rewrite of the
file, keeping the file's own VCALENDAR properties (X-WR-CALNAME, METHOD, X- properties...),
its unused VTIMEZONEs and the order of the records.

A file holding a malformed record is read (the good records sync) but not rewritten until
the broken record is fixed: rewriting it would drop what could not be read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pimsync.errors import MalformedRecord, NotFound, PreconditionFailed, StorageError
from pimsync.model.record import CONTENT_IDENT_PREFIX, Kind, Record
from pimsync.storage.base import (
    CollectionInfo,
    Fetched,
    Listing,
    check_collection_id,
    fetch_parsed,
)
from pimsync.storage.fsutil import atomic_write, file_etag, remove_stale_temp

PLACEHOLDER = "{collection}"


class SingleFileCollection:
    def __init__(self, path: Path, collection_id: str, kind: Kind) -> None:
        self.path = path
        self.id = collection_id
        self.kind = kind
        self.where = str(path)
        self._loaded_etag: str | None = None
        self._records: dict[str, Record] = {}
        self._wrapper: object | None = None
        self._errors: list[MalformedRecord] = []
        self._dirty = False
        self.meta_keys: tuple[str, ...] = ()  # a file's calendar name is not synced
        #: a record's href is its ident (it changes when a record gets a UID); writes
        #: land in the file at ``flush``
        self.keyed_by_ident = True

    # reading -------------------------------------------------------------------------
    def _stat_etag(self) -> str | None:
        try:
            return file_etag(os.stat(self.path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read: {exc.strerror}", where=self.where) from exc

    def _load(self) -> None:
        from pimsync.model import split

        try:
            with open(self.path, "rb") as fh:
                etag = file_etag(os.fstat(fh.fileno()))
                data = fh.read()
        except FileNotFoundError:
            raise NotFound("file does not exist", where=self.where) from None
        except OSError as exc:
            raise StorageError(f"cannot read: {exc.strerror}", where=self.where) from exc
        # Values are checked record by record in get(): only what changed is read there.
        result = split(data, self.kind, self.where, validate=False)
        self._records = {}
        errors = list(result.errors)
        for record in result.records:
            if record.ident in self._records:
                errors.append(
                    MalformedRecord(
                        f"UID {record.ident!r} occurs twice", where=self.where, uid=record.ident
                    )
                )
                continue
            self._records[record.ident] = record
        self._wrapper = result.wrapper
        self._errors = errors
        self._loaded_etag = etag
        self._dirty = False

    def list(self, token: str | None = None) -> Listing:
        current = self._stat_etag()
        if current is None:
            raise NotFound("file does not exist", where=self.where)
        if token is not None and token == current:
            return Listing(items={}, token=current, delta=True)
        self._load()
        items: dict[str, str | None] = {i: r.hash for i, r in self._records.items()}
        return Listing(items=items, token=self._loaded_etag, errors=list(self._errors))

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        if self._loaded_etag is None:
            self._load()
        # a record with a bad value keeps the file from being rewritten (see flush)
        return fetch_parsed(self._records, hrefs, self.where, self._errors.append, values=values)

    # writing -------------------------------------------------------------------------
    def _check(self, href: str, etag: str | None) -> None:
        if self._loaded_etag is None:
            self._load()
        current = self._records.get(href)
        if etag is None:
            if current is not None:
                raise PreconditionFailed(f"record {href!r} exists already", where=self.where)
        elif current is None or current.hash != etag:
            raise PreconditionFailed(f"record {href!r} changed", where=self.where)

    def create(self, record: Record) -> tuple[str, str]:
        self._check(record.ident, None)
        self._records[record.ident] = record
        self._dirty = True
        return record.ident, record.hash

    def update(self, href: str, record: Record, etag: str) -> str:
        """Replace a record. Its href is its ident, so a record whose ident changes (one
        without UID given one: see ``keyed_by_ident``) takes its place under its new
        ident, in the same position in the file."""
        self._check(href, etag)
        if record.ident != href:
            if not (href.startswith(CONTENT_IDENT_PREFIX) and record.uid is not None):
                raise StorageError(
                    f"record {record.ident!r} cannot replace {href!r}", where=self.where
                )
            self._check(record.ident, None)
            self._records = {
                (record.ident if k == href else k): (record if k == href else v)
                for k, v in self._records.items()
            }
        else:
            self._records[href] = record
        self._dirty = True
        return record.hash

    def delete(self, href: str, etag: str) -> None:
        if self._loaded_etag is None:
            self._load()
        if href not in self._records:
            return
        self._check(href, etag)
        del self._records[href]
        self._dirty = True

    def flush(self) -> str | None:
        """Rewrite the file if anything changed; return the file's new token."""
        if not self._dirty:
            return None
        from pimsync.model import join

        self._dirty = False
        loaded, self._loaded_etag = self._loaded_etag, None  # re-read after any failure
        if self._errors:
            raise StorageError(
                f"not rewritten: it holds a record that cannot be read ({self._errors[0]}); "
                "fix or remove that record and run again",
                where=self.where,
            )
        if self._stat_etag() != loaded:
            raise PreconditionFailed("changed while syncing", where=self.where)
        data = join(self._records.values(), self.kind, self._wrapper)  # type: ignore[arg-type]
        self._loaded_etag = atomic_write(self.path, data)
        self._remove_stale_temps()
        return self._loaded_etag

    def _remove_stale_temps(self) -> None:
        """Temporary files of this file that a killed run left beside it."""
        prefix = f".{self.path.name[:64]}."
        try:
            with os.scandir(self.path.parent) as entries:
                names = [e.name for e in entries if e.name.startswith(prefix)]
        except OSError:
            return
        for name in names:
            remove_stale_temp(self.path.parent / name)

    def get_meta(self, key: str) -> str | None:
        if self.kind != "ics":
            return None
        if self._loaded_etag is None:
            try:
                self._load()
            except NotFound:
                return None
        name = {"displayname": "X-WR-CALNAME", "color": "X-APPLE-CALENDAR-COLOR"}.get(key)
        if name is None or self._wrapper is None:
            return None
        for prop in getattr(self._wrapper, "properties", ()):
            line = prop.replace("\r\n ", "").replace("\r\n\t", "")
            head, _, value = line.partition(":")
            if head.split(";", 1)[0].upper() == name:
                return value.strip() or None
        return None

    def set_meta(self, key: str, value: str | None) -> None:
        return None  # metadata of a file collection is whatever the file says


class SingleFileStorage:
    def __init__(self, name: str, path: Path, kind: Kind, read_only: bool) -> None:
        self.name = name
        self.path = path
        self.kind = kind
        self.read_only = read_only
        text = str(path)
        if PLACEHOLDER in text:
            head, tail = text.split(PLACEHOLDER, 1)
            self._prefix, self._suffix = head, tail
        else:
            self._prefix = self._suffix = None

    def _path_for(self, collection_id: str) -> Path:
        if self._prefix is None:
            if collection_id != self.path.stem:
                raise NotFound(
                    f"no collection {collection_id!r}: this storage is one file (collection "
                    f"{self.path.stem!r}); put {{collection}} in its path for more",
                    where=str(self.path),
                )
            return self.path
        check_collection_id(collection_id, str(self.path))
        return Path(self._prefix + collection_id + self._suffix)

    def collections(self) -> list[CollectionInfo]:
        if self._prefix is None:
            candidates = [(self.path.stem, str(self.path))]
        else:
            pattern = glob.escape(self._prefix) + "*" + glob.escape(self._suffix or "")
            candidates = []
            for found in sorted(glob.glob(pattern)):
                cid = found[len(self._prefix) : len(found) - len(self._suffix or "")]
                if cid and "/" not in cid and not cid.startswith("."):
                    candidates.append((cid, found))
        out = []
        for cid, found in candidates:
            if os.path.isfile(found):
                out.append(CollectionInfo(cid))
            elif os.path.islink(found):  # a link whose target is missing: not a deletion
                try:
                    target = os.readlink(found)
                except OSError:
                    target = "?"
                out.append(
                    CollectionInfo(
                        cid,
                        problem=f"{found}: a symbolic link to {target!r}, which does not "
                        "exist (an unmounted disk?); left alone on both sides",
                    )
                )
        return out

    def collection(self, collection_id: str) -> SingleFileCollection:
        return SingleFileCollection(self._path_for(collection_id), collection_id, self.kind)

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> SingleFileCollection:
        from pimsync.model import join

        col = self.collection(collection_id)
        if not col.path.exists():
            try:
                col.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create: {exc.strerror}", where=col.where) from exc
            try:
                atomic_write(col.path, join([], self.kind), exclusive=True)
            except PreconditionFailed:
                pass
        return col
