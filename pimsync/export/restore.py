"""Restore an archive into a storage: create missing collections, add and update records
through the same conditional writes as a sync, and delete records the archive does not
hold only with ``exact``. What the restore changed is then synced like any other edit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pimsync.errors import MalformedRecord, PimsyncError
from pimsync.export.reader import Archive, ArchiveError, iter_records
from pimsync.storage.base import Collection, Storage

BATCH = 200


@dataclass
class RestoreResult:
    collection: str
    created_collection: bool = False
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        made = " (collection created)" if self.created_collection else ""
        return (
            f"{self.collection}{made}: {self.added} added, {self.updated} updated, "
            f"{self.deleted} deleted, {self.unchanged} unchanged, {len(self.errors)} errors"
        )


def _target_index(col: Collection) -> dict[str, tuple[str, str, str]]:
    """ident -> (href, etag, hash) of what the target holds now."""
    listing = col.list(None)
    hrefs = sorted(h for h, e in listing.items.items() if e is not None)
    index: dict[str, tuple[str, str, str]] = {}
    for start in range(0, len(hrefs), BATCH):
        for fetched in col.get(hrefs[start : start + BATCH], values=False):
            if fetched.record is not None:
                index[fetched.record.ident] = (fetched.href, fetched.etag, fetched.record.hash)
    return index


def restore(
    path: Path,
    storage: Storage,
    *,
    collection: str | None = None,
    source: str | None = None,
    exact: bool = False,
    log: Callable[[str], None] = lambda line: None,
    done: Callable[[RestoreResult], None] = lambda result: None,
) -> list[RestoreResult]:
    """Restore the archive's collections (or one, or those of one source storage) into
    ``storage``. ``done`` hears of each collection as soon as it is restored."""
    if storage.read_only:
        raise PimsyncError(f"storage {storage.name!r} is read-only", where=str(path))
    results = []
    with Archive(path) as archive:
        entries = [
            e for e in archive.manifest()["collections"]
            if (collection is None or e.get("collection") == collection)
            and (source is None or e.get("storage") == source)
        ]  # fmt: skip
        if not entries:
            what = f"collection {collection!r}" if collection else "collection"
            origin = f" from storage {source!r}" if source else ""
            raise ArchiveError(f"no {what}{origin} in this archive", where=str(path))
        by_id: dict[str, set[str]] = {}
        for e in entries:
            if e.get("kind") == storage.kind or collection is not None:
                by_id.setdefault(str(e.get("collection")), set()).add(str(e.get("storage")))
        twice = {c: s for c, s in by_id.items() if len(s) > 1}
        if twice:
            c, s = sorted(twice.items())[0]
            raise ArchiveError(
                f"the archive holds collection {c!r} from storages {', '.join(sorted(s))}; "
                "choose one with --from STORAGE",
                where=str(path),
            )
        if collection is None:  # the whole archive: the collections of this storage's kind
            entries = [e for e in entries if e.get("kind") == storage.kind]
            if not entries:
                raise ArchiveError(
                    f"no {storage.kind} collection in this archive for storage {storage.name!r}",
                    where=str(path),
                )
        for entry in entries:
            if entry.get("kind") != storage.kind:
                raise ArchiveError(
                    f"{entry['file']} holds {entry.get('kind')} records; storage "
                    f"{storage.name!r} holds {storage.kind}",
                    where=str(path),
                )
            try:
                result = _restore_one(archive, entry, storage, exact, log)
            except PimsyncError as exc:  # e.g. the collection cannot be created
                result = RestoreResult(str(entry.get("collection")), errors=[str(exc)])
            results.append(result)
            done(result)
    return results


def _restore_one(
    archive: Archive, entry: dict, storage: Storage, exact: bool, log: Callable[[str], None]
) -> RestoreResult:
    cid = str(entry["collection"])
    result = RestoreResult(cid)
    if cid not in {c.id for c in storage.collections()}:
        archived = {  # the name and color it had when archived
            key: value
            for key in ("displayname", "color")
            if isinstance(value := entry.get(key), str) and value
        }
        col = storage.create_collection(cid, archived)
        result.created_collection = True
        for key in col.meta_keys:
            if key in archived and col.get_meta(key) != archived[key]:
                col.set_meta(key, archived[key])
    else:
        col = storage.collection(cid)
    target = _target_index(col)
    seen: set[str] = set()
    with archive.open(entry["file"]) as stream:
        # records go back as they were archived: the target judges their values, as the
        # storage they came from did
        where = f"{archive.path}:{entry['file']}"
        for item in iter_records(stream, storage.kind, where, values=False):
            if isinstance(item, MalformedRecord):
                result.errors.append(str(item))
                continue
            seen.add(item.ident)
            current = target.get(item.ident)
            try:
                if current is None:
                    col.create(item)
                    result.added += 1
                    log(f"{cid}: added {item.ident}")
                elif current[2] != item.hash:
                    col.update(current[0], item, current[1])
                    result.updated += 1
                    log(f"{cid}: updated {item.ident}")
                else:
                    result.unchanged += 1
            except PimsyncError as exc:
                result.errors.append(f"{item.ident}: {exc}")
    if exact:
        for ident, (href, etag, _) in sorted(target.items()):
            if ident in seen:
                continue
            try:
                col.delete(href, etag)
                result.deleted += 1
                log(f"{cid}: deleted {ident} (not in the archive)")
            except PimsyncError as exc:
                result.errors.append(f"{ident}: {exc}")
    try:
        col.flush()
    except PimsyncError as exc:
        result.errors.append(str(exc))
        result.added = result.updated = result.deleted = 0
    return result
