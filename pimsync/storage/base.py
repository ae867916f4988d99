"""The storage interface every adapter implements, and the types it speaks in.

A *storage* holds collections; a *collection* holds records addressed by href, each with an
etag (a cheap change marker). Writes are conditional: ``create`` fails if the href exists,
``update`` and ``delete`` fail with :class:`PreconditionFailed` if the etag moved.

Some collections buffer writes (a single-file collection rewrites one file): their writes
take effect at :meth:`Collection.flush`, which raises if the buffered writes could not be
made. The engine commits state only after ``flush`` returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pimsync.errors import MalformedRecord, NotFound, StorageError
from pimsync.model.record import Kind, Record


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection as listed by its storage."""

    id: str
    displayname: str | None = None
    color: str | None = None
    #: set when the collection is listed but cannot be synced (a directory that is a
    #: dangling symbolic link, two server collections that map to one id...): says why.
    #: The engine stops that collection with this message and changes nothing.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """What :meth:`Collection.list` found.

    ``delta`` is True when ``items`` holds only what changed since the token passed in
    (an etag of ``None`` then means "deleted"); otherwise ``items`` is every href.
    ``token`` is the token to pass next time (``None``: the collection has no token).
    ``errors`` are records that could not be read while listing (a file collection parses
    its file to list it); an error whose ``uid`` is None could not be attributed to a record.
    ``unreadable`` maps hrefs that exist but could not be listed or read (a dangling symbolic
    link, an I/O error, a server response without an etag) to the reason: such a record is
    never taken as deleted; it is left alone on both sides and reported.
    """

    items: dict[str, str | None]
    token: str | None = None
    delta: bool = False
    errors: list[MalformedRecord] = field(default_factory=list)
    unreadable: dict[str, StorageError] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One item read by :meth:`Collection.get`: a record or the reason it is unreadable."""

    href: str
    etag: str
    record: Record | None = None
    error: MalformedRecord | StorageError | None = None


class Collection(Protocol):
    """One calendar or address book inside a storage."""

    id: str
    kind: Kind
    where: str  # a path or URL, for messages
    meta_keys: tuple[str, ...]  # the metadata it keeps: "displayname", "color" or none

    def list(self, token: str | None = None) -> Listing: ...

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        """Read the given hrefs. An href that vanished yields a Fetched with a NotFound.

        ``values=False`` leaves out the value check (icalendar), keeping the structural
        one: for a reader that keeps records as they are (an export)."""
        ...

    def create(self, record: Record) -> tuple[str, str]:
        """Add a record; return its (href, etag). PreconditionFailed if it exists."""
        ...

    def update(self, href: str, record: Record, etag: str) -> str:
        """Replace the record at href if its etag is still ``etag``; return the new etag."""
        ...

    def delete(self, href: str, etag: str) -> None:
        """Remove the record at href if its etag is still ``etag``."""
        ...

    def flush(self) -> str | None:
        """Make buffered writes durable (no-op for collections that write at once).

        Returns the collection's token after the writes, when it has tokens and wrote."""
        ...

    def get_meta(self, key: str) -> str | None:
        """Collection metadata: ``displayname`` or ``color``."""
        ...

    def set_meta(self, key: str, value: str | None) -> None: ...


class Storage(Protocol):
    """A configured place holding collections."""

    name: str
    kind: Kind
    read_only: bool

    def collections(self) -> list[CollectionInfo]: ...

    def collection(self, collection_id: str) -> Collection: ...

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> Collection:
        """Make a new collection. ``meta``: the name and color it should have, which a
        store may set as it creates it (a server, in one request); the engine sets what
        ``get_meta`` does not then report."""
        ...


def fetch_parsed(
    records: Mapping[str, Record],
    hrefs: Sequence[str],
    where: str,
    on_error: Callable[[MalformedRecord], None] | None = None,
    *,
    values: bool = True,
) -> Iterator[Fetched]:
    """``get`` for collections that parsed a whole file to list it (a single file, a
    webcal feed): what is read gets the value check that listing left out."""
    from pimsync.model import check

    for href in hrefs:
        record = records.get(href)
        if record is None:
            yield Fetched(href, "", error=NotFound(f"no record {href!r}", where=where))
            continue
        try:
            if values:
                check(record, where)
        except MalformedRecord as exc:
            if on_error is not None:
                on_error(exc)
            yield Fetched(href, record.hash, error=exc)
            continue
        yield Fetched(href, record.hash, record=record)


def checks_values(col: object) -> bool:
    """Does the engine check the values (icalendar) of records it reads from this
    collection? Not for a CalDAV/CardDAV server, which checked them when they were stored
    (``values_checked``); the structure of every record is checked anyway."""
    return not getattr(col, "values_checked", False)


def check_collection_id(collection_id: str, where: str) -> str:
    """Refuse a collection id that could escape its storage's directory."""
    if (
        not collection_id
        or collection_id in {".", ".."}
        or "/" in collection_id
        or "\\" in collection_id
        or "\0" in collection_id
        or collection_id.startswith(".")
    ):
        raise StorageError(f"invalid collection name {collection_id!r}", where=where)
    return collection_id
