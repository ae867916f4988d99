"""Verify an archive: the manifest reads, every file's SHA-256 matches it, every record
parses, and the records (count and UIDs) are the ones the manifest lists.

A record whose values icalendar rejects (a date that is no date, say) is not a damaged
archive: an export keeps records as their storage served them. Such records are listed as
warnings, naming the record, and do not fail the check."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pimsync.errors import MalformedRecord
from pimsync.export.reader import MANIFEST, Archive, ArchiveError, iter_records


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


def uid_sum(count: int, total: int, uid: str | None) -> tuple[int, int]:
    """One more UID into a running :func:`uid_digest`."""
    data = b"\0" if uid is None else b"u" + uid.encode("utf-8", "surrogateescape")
    return count + 1, (total + int.from_bytes(hashlib.sha256(data).digest(), "big")) % (1 << 256)


def uid_digest(uids: Iterable[str | None]) -> tuple[int, int]:
    """A multiset fingerprint of UIDs, in constant memory: (count, sum of their hashes
    modulo 2**256). Equal for the same UIDs in any order; duplicates count."""
    count = total = 0
    for uid in uids:
        count, total = uid_sum(count, total, uid)
    return count, total


@dataclass(frozen=True)
class Expected:
    """What one collection file must hold (from the manifest, or from the export that is
    writing it)."""

    file: str
    kind: str
    sha256: str
    count: int
    uids: tuple[int, int]  # uid_digest of the UIDs listed


def _check_file(archive: Archive, expected: Expected, values: bool, warnings: list[str]) -> int:
    """Check one collection file against what it must hold; return its record count."""
    from pimsync.model import check

    where = str(archive.path)
    name = expected.file
    count = 0
    total = 0
    with archive.open(name) as raw:
        hashing = _Hashing(raw)
        stream = io.BufferedReader(hashing)
        for item in iter_records(stream, expected.kind, f"{where}:{name}", values=False):  # type: ignore[arg-type]
            if isinstance(item, MalformedRecord):
                raise ArchiveError(f"{name}: a record does not parse: {item}", where=where)
            if values:
                try:
                    check(item, f"{where}:{name}")
                except MalformedRecord as exc:
                    warnings.append(
                        f"{name}: UID {item.uid}: {exc.message} (kept as its storage served it)"
                    )
            count, total = uid_sum(count, total, item.uid)
        while stream.read(1 << 16):  # the rest, if any, counts for the checksum
            pass
    if hashing.digest.hexdigest() != expected.sha256:
        raise ArchiveError(f"{name}: checksum mismatch (the file is damaged)", where=where)
    if count != expected.count or count != expected.uids[0]:
        raise ArchiveError(
            f"{name}: {count} records, the manifest says {expected.count}", where=where
        )
    if (count, total) != expected.uids:
        raise ArchiveError(f"{name}: the records' UIDs differ from the manifest", where=where)
    return count


def verify(path: Path, *, values: bool = True) -> Verified:
    """Raise ArchiveError naming the archive, the file and the problem; else a summary.
    A record whose values icalendar rejects is a warning (``values=False``: not checked)."""
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
            listed = entry.get("records") or []
            uids = uid_digest(r.get("uid") if isinstance(r, dict) else None for r in listed)
            count = entry.get("count")
            expected = Expected(
                name,
                kind,
                str(entry.get("sha256")),
                count if isinstance(count, int) else -1,
                uids,
            )
            total += _check_file(archive, expected, values, warnings)
        return Verified(
            path,
            str(manifest.get("created")),
            len(manifest["collections"]),
            total,
            tuple(warnings),
        )


def check_written(path: Path, expected: list[Expected], manifest_sha256: str) -> None:
    """The check an export makes of the archive it has just written, before renaming it
    into place: manifest.json is the one written (its checksum), and every collection file
    its checksum, the structure of every record, the count and the UIDs. Values are not
    checked again (``archive verify`` does)."""
    where = str(path)
    with Archive(path) as archive:
        names = set(archive.names())
        with archive.open(MANIFEST) as raw:
            digest = hashlib.sha256()
            while chunk := raw.read(1 << 16):
                digest.update(chunk)
        if digest.hexdigest() != manifest_sha256:
            raise ArchiveError(f"{MANIFEST}: checksum mismatch (the file is damaged)", where=where)
        for item in expected:
            if item.file not in names:
                raise ArchiveError(f"{item.file} is missing", where=where)
            _check_file(archive, item, False, [])
