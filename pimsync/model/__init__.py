"""The model layer: pure functions to split, join, read, normalise and hash records.

Importing this package does not import icalendar or vobject: they are imported by the
functions that need them (line parsing, validation), so a run with nothing to do never
pays for them.
"""

from __future__ import annotations

import os

from pimsync.model.info import content_uid, newest_key, summary, with_uid, without_method
from pimsync.model.record import CONTENT_IDENT_PREFIX, Kind, Record
from pimsync.model.split import (
    Joiner,
    SplitResult,
    Wrapper,
    check,
    join,
    parse_record,
    prepare,
    split,
)

__all__ = [
    "CONTENT_IDENT_PREFIX",
    "Joiner",
    "Kind",
    "Record",
    "SplitResult",
    "Wrapper",
    "check",
    "content_uid",
    "join",
    "kind_for_path",
    "newest_key",
    "parse_record",
    "prepare",
    "split",
    "summary",
    "with_uid",
    "without_method",
]

_EXTENSIONS: dict[str, Kind] = {".ics": "ics", ".vcf": "vcf", ".vcard": "vcf"}


def kind_for_path(path: str) -> Kind | None:
    """The kind of record a file holds, from its extension (case-insensitive)."""
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower())
