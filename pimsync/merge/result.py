"""What a three-way merge returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pimsync.model.record import Record

#: Which side wins a true conflict.
Side = Literal["a", "b"]


@dataclass(frozen=True)
class PropertyConflict:
    """A property (or a whole component) changed differently on both sides.

    ``component``: ``"VEVENT"``, ``"VEVENT;RECURRENCE-ID=20261104T093000"``, ``"VCARD"``...
    ``name``: the property (with its vCard group, if any: ``"ITEM1.X-ABLABEL"``), or
    ``"*"`` for a whole component (edited on one side, deleted on the other).
    ``base``, ``a``, ``b``: the canonical lines (``pimsync.model.normalise``) of that
    property (for a multi-valued one: of the one item in conflict, e.g. one ATTENDEE) or
    of that component in each version; empty where it is absent.
    """

    component: str
    name: str
    base: tuple[str, ...]
    a: tuple[str, ...]
    b: tuple[str, ...]


@dataclass(frozen=True)
class MergeResult:
    """``record``: the merged record (``parse_record`` accepts it; same ident as the
    inputs), or None when nothing could be merged automatically (then ``conflicts`` says
    why). ``conflicts``: empty for a clean merge; otherwise the merged record holds the
    preferred side's version of each conflicting property."""

    record: Record | None
    conflicts: tuple[PropertyConflict, ...]

    @property
    def clean(self) -> bool:
        return self.record is not None and not self.conflicts
