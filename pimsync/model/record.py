"""The record: the unit of sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ics", "vcf"]

#: Prefix of an ident derived from content (a record without UID).
CONTENT_IDENT_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class Record:
    """One calendar object resource (every component sharing one UID, with the VTIMEZONEs
    they use, inside a VCALENDAR) or one vCard.

    ``text`` is the record as a standalone file, decoded from UTF-8 with
    ``surrogateescape`` so that any byte survives a round trip through :meth:`to_bytes`.
    ``hash`` is the SHA-256 (hex) of the normalised form (see ``pimsync.model.normalise``).
    """

    ident: str
    kind: Kind
    text: str
    hash: str
    uid: str | None

    def to_bytes(self) -> bytes:
        return self.text.encode("utf-8", "surrogateescape")

    def __repr__(self) -> str:  # keep logs short
        return f"Record({self.ident!r}, {self.kind}, {self.hash[:12]})"
