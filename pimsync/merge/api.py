"""``merge``: the three-way merge of one record, checked."""

from __future__ import annotations

from pimsync.errors import MalformedRecord
from pimsync.merge.calendar import merge_calendar
from pimsync.merge.card import merge_card
from pimsync.merge.entries import Unreadable
from pimsync.merge.result import MergeResult, PropertyConflict, Side
from pimsync.model.lines import LineSyntaxError
from pimsync.model.record import Record
from pimsync.model.split import parse_record

#: ``where`` of the merged record, for parse_record's messages.
WHERE = "merge"


def _failed(kind: str, found: list[PropertyConflict]) -> MergeResult:
    """Nothing could be merged: a conflict on the whole record (after any found)."""
    whole = PropertyConflict("VCARD" if kind == "vcf" else "VCALENDAR", "*", (), (), ())
    return MergeResult(None, (*found, whole))


def merge(base: Record, a: Record, b: Record, prefer: Side = "a") -> MergeResult:
    """Merge ``a`` and ``b``, two versions of one record changed since ``base``.

    A property (or component) changed on one side only is taken from that side;
    multi-valued properties merge item by item; a property changed differently on both
    sides is a conflict, settled for ``prefer`` and reported. Lines are kept as one side
    wrote them (a's where both agree). The result is checked with ``parse_record``;
    ``record`` is None when it fails (or when an input cannot be read)."""
    if not base.kind == a.kind == b.kind:
        raise ValueError(f"cannot merge records of kinds {base.kind}, {a.kind}, {b.kind}")
    if a.hash == b.hash or b.hash == base.hash:
        return MergeResult(a, ())
    if a.hash == base.hash:
        return MergeResult(b, ())
    merge_text = merge_card if a.kind == "vcf" else merge_calendar
    try:
        text, conflicts = merge_text(base.text, a.text, b.text, prefer)
    except (LineSyntaxError, Unreadable):
        return _failed(a.kind, [])
    try:
        record = parse_record(text.encode("utf-8", "surrogateescape"), a.kind, WHERE)
    except MalformedRecord:
        return _failed(a.kind, conflicts)
    if record.ident != a.ident:  # a record without UID: its ident is its content
        return _failed(a.kind, conflicts)
    return MergeResult(record, tuple(conflicts))


def apply_changes(stored: Record, local: Record, changed: Record) -> Record | None:
    """A server's change applied to the local version as the properties that changed:
    ``stored`` is what the server held after the last sync (its own re-serialisation of
    what pimsync wrote, ``local``), ``changed`` what it holds now (a phone's edit). What
    differs between ``stored`` and ``local`` only (the server's rewrite: vCard 4.0 as
    3.0, a reordered RRULE) stays as the user wrote it; what changed on the server is
    taken (where a property was both rewritten and edited, the edit). None when that
    cannot be done (the caller then takes the server's version as it is)."""
    if not stored.kind == local.kind == changed.kind:
        return None
    merge_text = merge_card if local.kind == "vcf" else merge_calendar
    try:
        text, _conflicts = merge_text(stored.text, local.text, changed.text, "b", a_form=True)
        record = parse_record(text.encode("utf-8", "surrogateescape"), local.kind, WHERE)
    except (LineSyntaxError, Unreadable, MalformedRecord):
        return None
    if record.ident != changed.ident:
        return None
    return record
