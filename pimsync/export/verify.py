"""Verify an archive: the manifest reads, every file's SHA-256 matches it, every record
parses, and the records (count and UIDs) are the ones the manifest lists.

A record whose values icalendar rejects (a date that is no date, say) is not a damaged
archive: an export keeps records as their storage served them. Such records are listed as
warnings, naming the record, and do not fail the check."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pimsync.errors import MalformedRecord
from pimsync.export.reader import Archive, ArchiveError, iter_records


@dataclass(frozen=True)
class Verified:
    path: Path
    created: str
    collections: int
    records: int
    warnings: tuple[str, ...] = ()


class _Hashing(io.RawIOBase):
    """A stream that hashes every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


def verify(path: Path, *, values: bool = True) -> Verified:
    """Raise ArchiveError naming the archive, the file and the problem; else a summary.
    ``values=False`` checks every record's structure but not its values (icalendar): the
    check an export makes of the archive it has just written."""
    from pimsync.model import check

    where = str(path)
    warnings: list[str] = []
    with Archive(path) as archive:
        manifest = archive.manifest()
        names = set(archive.names())
        total = 0
        for entry in manifest["collections"]:
            name = entry.get("file")
            kind = entry.get("kind")
            if not isinstance(name, str) or kind not in ("ics", "vcf"):
                raise ArchiveError("manifest.json: a collection without file or kind", where=where)
            if name not in names:
                raise ArchiveError(f"{name} is listed in the manifest but missing", where=where)
            uids: Counter[str | None] = Counter()
            count = 0
            with archive.open(name) as raw:
                hashing = _Hashing(raw)
                stream = io.BufferedReader(hashing)
                for item in iter_records(stream, kind, f"{where}:{name}", values=False):
                    if isinstance(item, MalformedRecord):
                        raise ArchiveError(f"{name}: a record does not parse: {item}", where=where)
                    if values:
                        try:
                            check(item, f"{where}:{name}")
                        except MalformedRecord as exc:
                            warnings.append(f"{exc} (kept as its storage served it)")
                    uids[item.uid] += 1
                    count += 1
                while stream.read(1 << 16):  # the rest, if any, counts for the checksum
                    pass
            if hashing.digest.hexdigest() != entry.get("sha256"):
                raise ArchiveError(f"{name}: checksum mismatch (the file is damaged)", where=where)
            listed = entry.get("records") or []
            if count != entry.get("count") or count != len(listed):
                raise ArchiveError(
                    f"{name}: {count} records, the manifest says {entry.get('count')}", where=where
                )
            if uids != Counter(r.get("uid") for r in listed):
                raise ArchiveError(
                    f"{name}: the records' UIDs differ from the manifest", where=where
                )
            total += count
        return Verified(
            path,
            str(manifest.get("created")),
            len(manifest["collections"]),
            total,
            tuple(warnings),
        )
