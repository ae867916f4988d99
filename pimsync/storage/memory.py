"""An in-memory storage: the reference implementation of the contract, for unit tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

from pimsync.errors import NotFound, PreconditionFailed
from pimsync.model.record import Kind, Record
from pimsync.storage.base import CollectionInfo, Fetched, Listing, check_collection_id

_counter = itertools.count(1)


class MemoryCollection:
    def __init__(self, collection_id: str, kind: Kind) -> None:
        self.id = collection_id
        self.kind = kind
        self.where = f"memory:{collection_id}"
        self.items: dict[str, tuple[str, Record]] = {}
        self.meta: dict[str, str] = {}
        self.meta_keys = ("displayname", "color")

    def list(self, token: str | None = None) -> Listing:
        return Listing(items={href: etag for href, (etag, _) in self.items.items()})

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        for href in hrefs:
            if href in self.items:
                etag, record = self.items[href]
                yield Fetched(href, etag, record=record)
            else:
                yield Fetched(href, "", error=NotFound("vanished", where=f"{self.where}/{href}"))

    def create(self, record: Record) -> tuple[str, str]:
        href = f"{record.ident}.{self.kind}"
        if href in self.items:
            raise PreconditionFailed("exists already", where=f"{self.where}/{href}")
        etag = str(next(_counter))
        self.items[href] = (etag, record)
        return href, etag

    def update(self, href: str, record: Record, etag: str) -> str:
        if href not in self.items or self.items[href][0] != etag:
            raise PreconditionFailed("changed", where=f"{self.where}/{href}")
        new = str(next(_counter))
        self.items[href] = (new, record)
        return new

    def delete(self, href: str, etag: str) -> None:
        if href not in self.items:
            return
        if self.items[href][0] != etag:
            raise PreconditionFailed("changed", where=f"{self.where}/{href}")
        del self.items[href]

    def flush(self) -> None:
        return None

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.meta.pop(key, None)
        else:
            self.meta[key] = value


class MemoryStorage:
    def __init__(self, name: str, kind: Kind, read_only: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.read_only = read_only
        self.cols: dict[str, MemoryCollection] = {}

    def collections(self) -> list[CollectionInfo]:
        return [CollectionInfo(c, m.get_meta("displayname")) for c, m in self.cols.items()]

    def collection(self, collection_id: str) -> MemoryCollection:
        if collection_id not in self.cols:
            raise NotFound("no such collection", where=f"memory:{collection_id}")
        return self.cols[collection_id]

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> MemoryCollection:
        check_collection_id(collection_id, "memory")
        return self.cols.setdefault(collection_id, MemoryCollection(collection_id, self.kind))
