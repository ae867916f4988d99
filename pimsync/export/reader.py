"""Read archives: open the container, read the manifest, and stream a collection's file
record by record (memory stays bounded by one record, whatever the archive's size)."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pimsync.errors import MalformedRecord, PimsyncError
from pimsync.model.record import Kind, Record

CRLF = "\r\n"
MANIFEST = "manifest.json"


class ArchiveError(PimsyncError):
    """An archive is damaged or not one of pimsync's."""


class Archive:
    """An archive opened for reading (tar.gz or zip, told by content, not by name)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._zip: zipfile.ZipFile | None = None
        try:
            if zipfile.is_zipfile(path):
                self._zip = zipfile.ZipFile(path)
            else:
                self._tar = tarfile.open(path, mode="r:gz")
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(f"not a readable archive ({exc})", where=str(path)) from exc

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._zip is not None:
            self._zip.close()

    def names(self) -> list[str]:
        try:
            if self._zip is not None:
                return self._zip.namelist()
            assert self._tar is not None
            return self._tar.getnames()
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(f"damaged archive ({exc})", where=str(self.path)) from exc

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        try:
            if self._zip is not None:
                with self._zip.open(name) as fh:
                    yield fh
                return
            assert self._tar is not None
            member = self._tar.getmember(name)
            if not member.isfile():
                raise ArchiveError(f"{name} is not a file", where=str(self.path))
            fh = self._tar.extractfile(member)
            assert fh is not None
            with fh:
                yield fh
        except KeyError:
            raise ArchiveError(f"{name} is missing", where=str(self.path)) from None
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(f"damaged archive: {name} ({exc})", where=str(self.path)) from exc

    def manifest(self) -> dict:
        with self.open(MANIFEST) as fh:
            try:
                data = json.loads(fh.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise ArchiveError(
                    f"manifest.json is damaged ({exc})", where=str(self.path)
                ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("collections"), list):
            raise ArchiveError("manifest.json is not a pimsync manifest", where=str(self.path))
        return data


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Physical lines (without line endings) with their numbers."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    try:
        for number, line in enumerate(text, 1):
            yield number, line.rstrip("\r\n")
    finally:
        text.detach()  # leave the stream open for the caller


def iter_records(
    stream: IO[bytes], kind: Kind, where: str, *, values: bool = True
) -> Iterator[Record | MalformedRecord]:
    """The records of a collection file as pimsync writes it: one VCALENDAR with its
    properties and VTIMEZONEs first and each record's components next to each other; or
    vCards one after the other. Each record is validated (``parse_record``; with
    ``values=False`` only its structure, without icalendar's value check)."""
    from pimsync.model import parse_record, split

    header: list[str] = []  # VCALENDAR-level lines
    timezones: list[str] = []
    current: list[str] = []
    current_uid: str | None = None
    pending: list[str] = []  # components of the record being gathered
    pending_uid: str | None = None
    pending_line = 0
    depth = 0
    top: str | None = None
    start_line = 0

    def emit(lines: list[str], line: int) -> Record | MalformedRecord:
        if kind == "vcf":
            text = CRLF.join(lines) + CRLF
        else:
            text = CRLF.join(["BEGIN:VCALENDAR", *header, *timezones, *lines, "END:VCALENDAR"])
            text += CRLF
        data = text.encode("utf-8", "surrogateescape")
        if not values:
            result = split(data, kind, f"{where}:{line}", validate=False)
            if result.errors or len(result.records) != 1:
                problem = result.errors[0] if result.errors else "not exactly one record"
                return MalformedRecord(str(problem), where=where, line=line)
            return result.records[0]
        try:
            return parse_record(data, kind, f"{where}:{line}")
        except MalformedRecord as exc:
            return exc

    for number, line in _lines(stream):
        if not line:
            if (kind == "vcf" and depth >= 1) or depth >= 2:
                current.append(line)  # in vCard 2.1 a blank line ends BASE64 data
            continue
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 1:
                top = upper[6:]
                if kind == "vcf":
                    current, start_line = [line], number
                continue
            if depth == 2 and kind == "ics":
                current, start_line = [line], number
                current_uid = None
                continue
        elif upper.startswith("END:"):
            depth -= 1
            if depth < 0:
                yield MalformedRecord("END without BEGIN", where=where, line=number)
                return
            if depth == 0:
                if kind == "vcf":
                    current.append(line)
                    yield emit(current, start_line)
                    current = []
                top = None
                continue
            if depth == 1 and kind == "ics":
                current.append(line)
                name = current[0][6:].upper()
                if name == "VTIMEZONE":
                    timezones.extend(current)
                else:
                    # the components of one record stand together; no UID: a record each
                    if pending and (current_uid is None or current_uid != pending_uid):
                        yield emit(pending, pending_line)
                        pending = []
                    if not pending:
                        pending_uid, pending_line = current_uid, start_line
                    pending.extend(current)
                current = []
                continue
        if kind == "ics" and depth == 1 and top == "VCALENDAR":
            header.append(line)
            continue
        current.append(line)
        if kind == "ics" and depth == 2 and upper.startswith("UID") and upper[3:4] in (":", ";"):
            current_uid = line.split(":", 1)[-1]
    if depth != 0:
        yield MalformedRecord("the file is cut off (truncated?)", where=where)
        return
    if pending:
        yield emit(pending, pending_line)
