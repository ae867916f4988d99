"""Merging an iCalendar record: its components matched by name and RECURRENCE-ID, its
VTIMEZONEs united by TZID, a's VCALENDAR lines."""

from __future__ import annotations

from pimsync.merge.canon import split_canonical
from pimsync.merge.components import Version, merge_component, whole
from pimsync.merge.entries import CRLF, Unreadable
from pimsync.merge.properties import Context
from pimsync.merge.result import PropertyConflict, Side
from pimsync.merge.threeway import numbered, union_keys
from pimsync.model.lines import Component, parse
from pimsync.model.normalise import canonical_lines

Key = tuple[tuple[str, str], int]


class Calendar:
    """One version of a calendar record: its first VCALENDAR (for the wrapper), its
    VTIMEZONEs and its other components by key."""

    def __init__(self, text: str) -> None:
        self.doc = parse(text)
        calendars = [c for c in self.doc.components if c.name == "VCALENDAR"]
        if not calendars:
            raise Unreadable("no VCALENDAR")
        self.calendar = calendars[0]
        children = [child for cal in calendars for child in cal.children]
        self.timezones = [c for c in children if c.name == "VTIMEZONE"]
        others = [Version(self.doc, c, False) for c in children if c.name != "VTIMEZONE"]
        keys = numbered(_key(v.comp) for v in others)
        self.components: dict[Key, Version] = dict(zip(keys, others, strict=True))

    def tzid(self, comp: Component) -> str:
        line = comp.find("TZID")
        return line.value if line is not None else ""


def _key(comp: Component) -> tuple[str, str]:
    line = comp.find("RECURRENCE-ID")
    return (comp.name, canonical_lines(line, False)[0] if line is not None else "")


def label(key: Key) -> str:
    """``VEVENT`` or ``VEVENT;RECURRENCE-ID=20261104T093000``."""
    (name, rid), _n = key
    return f"{name};RECURRENCE-ID={split_canonical(rid)[1]}" if rid else name


def _timezones(a: Calendar, b: Calendar) -> list[str]:
    """a's VTIMEZONEs, then b's with a TZID a has none for."""
    known = {a.tzid(tz) for tz in a.timezones}
    extra = [tz for tz in b.timezones if b.tzid(tz) not in known]
    return [a.doc.raw_text(tz) for tz in a.timezones] + [b.doc.raw_text(tz) for tz in extra]


def _one_sided(
    key: Key, base: Version | None, present: Version, side: Side, prefer: Side
) -> tuple[str | None, PropertyConflict | None]:
    """A component one side has and the other not: added (kept), deleted and unchanged
    on the other side (gone), or deleted and edited (a conflict on "*")."""
    if base is None:
        return present.raw, None
    if present.canon == base.canon:
        return None, None
    mine, theirs = (whole(present), ()) if side == "a" else ((), whole(present))
    conflict = PropertyConflict(label(key), "*", whole(base), mine, theirs)
    return (present.raw if prefer == side else None), conflict


def merge_calendar(
    base_text: str, a_text: str, b_text: str, prefer: Side, *, a_form: bool = False
) -> tuple[str, list[PropertyConflict]]:
    """The merged text (CRLF line endings) and the conflicts met. ``a_form``: see
    ``Context.a_form``."""
    base, a, b = Calendar(base_text), Calendar(a_text), Calendar(b_text)
    blocks: list[str] = []
    conflicts: list[PropertyConflict] = []
    for key in union_keys(a.components, b.components, base.components):
        in_base, in_a, in_b = (v.components.get(key) for v in (base, a, b))
        if in_a is not None and in_b is not None:
            ctx = Context(False, prefer, label(key), a_form)
            text, found = merge_component(in_base, in_a, in_b, ctx)
            blocks.append(text)
            conflicts.extend(found)
            continue
        if in_a is not None:
            kept, conflict = _one_sided(key, in_base, in_a, "a", prefer)
        elif in_b is not None:
            kept, conflict = _one_sided(key, in_base, in_b, "b", prefer)
        else:
            continue  # deleted on both sides
        if kept is not None:
            blocks.append(kept)
        if conflict is not None:
            conflicts.append(conflict)
    wrapper = a.calendar
    head = [a.doc.physical[wrapper.first], *(a.doc.raw_text(line) for line in wrapper.lines)]
    lines = [*head, *_timezones(a, b), *blocks, a.doc.physical[wrapper.last]]
    return CRLF.join(lines) + CRLF, conflicts
