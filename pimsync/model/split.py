"""Split a .ics/.vcf file into records, join records into one file, read one record file.

Records keep their original physical lines: a record's ``text`` is made of the lines it
was read from, joined with CRLF. Grouping (ics): every top-level component that shares a
UID (master and RECURRENCE-ID overrides, even across VCALENDARs) is one record, with the
VTIMEZONEs whose TZID its components use and the VCALENDAR-level properties of the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pimsync.errors import MalformedRecord
from pimsync.model.lines import Component, Document, Line, LineError, LineSyntaxError, parse
from pimsync.model.normalise import record_hash
from pimsync.model.record import CONTENT_IDENT_PREFIX, Kind, Record

CRLF = "\r\n"
#: VCALENDAR-level lines of a calendar joined from records that bring none.
DEFAULT_CALENDAR_PROPERTIES = ("VERSION:2.0", "PRODID:-//pimsync//pimsync//EN")
_TIMEZONE_PARTS = frozenset({"VTIMEZONE", "STANDARD", "DAYLIGHT"})


@dataclass(frozen=True, slots=True)
class Wrapper:
    """What a file holds besides its records. ics: the VCALENDAR-level property lines
    (each as its raw physical lines joined with CRLF) and the VTIMEZONEs no record uses
    (each as raw text, CRLF-joined, without a final line ending). vcf: empty."""

    properties: tuple[str, ...] = ()
    timezones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SplitResult:
    wrapper: Wrapper
    records: list[Record] = field(default_factory=list)
    errors: list[MalformedRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------- helpers


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", "surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text


def _value(line: Line | None) -> str | None:
    """A line's value, or None when there is no line or it does not parse."""
    if line is None:
        return None
    try:
        return line.value
    except LineSyntaxError:
        return None


def _uid_of(comp: Component) -> str | None:
    """The UID of a component (its own UID property; empty counts as none)."""
    value = _value(comp.find("UID"))
    if value is None or not value.strip():
        return None
    return value


def _line_errors(doc: Document, depth: int) -> tuple[dict[int, list[LineError]], list[LineError]]:
    """Errors by the id() of the component at ``depth`` they fall in, and the rest."""
    by_root: dict[int, list[LineError]] = {}
    rest: list[LineError] = []
    for err in doc.errors:
        comp = err.component
        if comp is None or comp.depth < depth:
            rest.append(err)
        else:
            by_root.setdefault(id(comp.root(depth)), []).append(err)
    return by_root, rest


def _problem(errors: list[LineError], where: str, uid: str | None) -> MalformedRecord:
    first = errors[0]
    message = first.message
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return MalformedRecord(message, where=where, uid=uid, line=first.lineno)


def _check_lines(comps: Iterable[Component]) -> None:
    """Parse every property line below ``comps`` (LineSyntaxError on the first bad one)."""
    for comp in comps:
        for sub in comp.walk():
            for line in sub.lines:
                line.parts()


def _tzid_refs(comps: Iterable[Component]) -> list[str]:
    """TZID parameter values used anywhere in ``comps``, in order of first use."""
    seen: dict[str, None] = {}
    for comp in comps:
        for sub in comp.walk():
            for line in sub.lines:
                for param in line.parts()[1]:
                    if param[0].upper() == "TZID":
                        for value in param[1:]:
                            seen.setdefault(value, None)
    return list(seen)


def _ics_problem(text: str) -> str | None:
    """What icalendar finds wrong with a VCALENDAR text, or None."""
    import icalendar

    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # icalendar raises ValueError, KeyError, its own errors...
        return f"icalendar cannot read it: {exc}"
    for calendar in calendars:
        for comp in calendar.walk():
            if comp.errors:
                prop, message = comp.errors[0]
                return f"{comp.name}: invalid {prop or 'content line'}: {message}"
            if comp.name in _TIMEZONE_PARTS:
                missing = [p for p in comp.required if p not in comp]
                if missing:
                    return f"{comp.name} lacks {', '.join(missing)}"
    return None


def prepare(kinds: Iterable[Kind], *, values: bool = True) -> None:
    """Start importing the parsers that reading records of these kinds needs (vobject's
    line parser; icalendar for calendars, when ``values`` are to be checked) on a
    background thread, unless imported already.

    For a caller that knows records are coming: the imports then overlap with its wait
    for them (a server's answer) instead of following it. A run with nothing to read never
    calls this, so it never pays for them."""
    import sys

    wanted = ["vobject.base"]
    if values and "ics" in kinds:
        wanted.append("icalendar")
    missing = [name for name in wanted if name not in sys.modules]
    if missing:
        import importlib
        import threading

        def load() -> None:
            for name in missing:
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001 - the caller's own import reports it
                    return

        threading.Thread(target=load, name="pimsync-prepare").start()


def _calendar_text(properties: Iterable[str], components: Iterable[str]) -> str:
    return CRLF.join(["BEGIN:VCALENDAR", *properties, *components, "END:VCALENDAR"]) + CRLF


# ---------------------------------------------------------------------------- ics


@dataclass(slots=True)
class _Group:
    uid: str | None
    calendar: Component
    components: list[Component] = field(default_factory=list)


@dataclass(slots=True)
class _IcsScan:
    """A parsed .ics document sorted into groups (records to be), timezones, wrapper."""

    doc: Document
    groups: list[_Group]
    timezones: dict[str, Component]  # first VTIMEZONE for each TZID, in document order
    extra_timezones: list[Component]  # later VTIMEZONEs with a TZID already seen
    properties: dict[int, list[str]]  # id(VCALENDAR) -> raw property lines that parse
    bad: dict[int, list[LineError]]  # id(component below VCALENDAR) -> its line errors
    file_errors: list[LineError]
    stray: list[str]  # raw content lines outside every component (kept in the wrapper)


def _scan_ics(doc: Document) -> _IcsScan:
    bad, file_errors = _line_errors(doc, 1)
    groups: dict[object, _Group] = {}
    timezones: dict[str, Component] = {}
    extra: list[Component] = []
    properties: dict[int, list[str]] = {}
    stray: list[str] = []
    for line in doc.stray:
        # tolerated (icalendar reads such files too): kept as VCALENDAR-level lines
        try:
            line.parts()
        except LineSyntaxError as exc:
            file_errors.append(LineError(exc.lineno, f"outside VCALENDAR: {exc}", None))
            continue
        stray.append(doc.raw_text(line))
    for top in doc.components:
        if top.name != "VCALENDAR":
            file_errors.append(
                LineError(top.lineno, f"BEGIN:VCALENDAR expected, found BEGIN:{top.name}", None)
            )
            continue
        props: list[str] = []
        for line in top.lines:
            try:
                line.parts()
            except LineSyntaxError as exc:
                file_errors.append(LineError(exc.lineno, str(exc), top))
                continue
            props.append(doc.raw_text(line))
        properties[id(top)] = props
        for child in top.children:
            if child.name == "VTIMEZONE":
                tzid = _value(child.find("TZID"))
                if tzid is None:
                    bad.setdefault(id(child), []).append(
                        LineError(child.lineno, "VTIMEZONE without a (readable) TZID", child)
                    )
                    extra.append(child)
                elif tzid in timezones:
                    extra.append(child)
                else:
                    timezones[tzid] = child
                continue
            uid = _uid_of(child)
            key: object = uid if uid is not None else id(child)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(uid, top)
            group.components.append(child)
    file_errors.sort(key=lambda e: e.lineno)
    return _IcsScan(
        doc, list(groups.values()), timezones, extra, properties, bad, file_errors, stray
    )


def _ics_record(
    scan: _IcsScan, group: _Group, where: str, validate: bool
) -> tuple[Record | None, list[Component], MalformedRecord | None]:
    """Build one record: (record, the VTIMEZONEs it uses, None) or (None, [], error)."""
    doc = scan.doc
    comps = group.components
    uid = group.uid
    errors = [e for c in comps for e in scan.bad.get(id(c), ())]
    if errors:
        return None, [], _problem(sorted(errors, key=lambda e: e.lineno), where, uid)
    try:
        _check_lines(comps)
        tzids = _tzid_refs(comps)
        digest = record_hash("ics", comps)
    except LineSyntaxError as exc:
        return None, [], MalformedRecord(str(exc), where=where, uid=uid, line=exc.lineno)
    tzs = sorted((scan.timezones[t] for t in tzids if t in scan.timezones), key=lambda c: c.first)
    tz_errors = [e for tz in tzs for e in scan.bad.get(id(tz), ())]
    if tz_errors:
        return None, [], _problem(tz_errors, where, uid)
    text = _calendar_text(
        scan.properties[id(group.calendar)], [doc.raw_text(c) for c in (*tzs, *comps)]
    )
    if validate:
        problem = _ics_problem(text)
        if problem is not None:
            return None, [], MalformedRecord(problem, where=where, uid=uid, line=comps[0].lineno)
    ident = uid if uid is not None else CONTENT_IDENT_PREFIX + digest
    return Record(ident, "ics", text, digest, uid), tzs, None


def _split_ics(text: str, where: str, validate: bool) -> SplitResult:
    doc = parse(text)
    scan = _scan_ics(doc)
    if validate and not doc.errors and not scan.file_errors and not scan.bad:
        # Fast path: icalendar reads the whole file once; only when it finds a problem is
        # every record checked on its own, to tell which ones are bad.
        validate = _ics_problem(text) is not None
    records: list[Record] = []
    errors: list[MalformedRecord] = []
    used: set[int] = set()
    seen: dict[str, int] = {}
    for group in scan.groups:
        record, tzs, error = _ics_record(scan, group, where, validate)
        if error is not None:
            errors.append(error)
            continue
        assert record is not None
        line = group.components[0].lineno
        if record.ident in seen:  # two UID-less components with the same content
            errors.append(
                MalformedRecord(
                    f"same content as the component at line {seen[record.ident]}; "
                    "this copy is left out",
                    where=where,
                    line=line,
                )
            )
            continue
        seen[record.ident] = line
        used.update(id(tz) for tz in tzs)
        records.append(record)
    orphans: list[str] = []
    for tz in scan.timezones.values():
        if id(tz) in used:
            continue
        tz_errors = scan.bad.get(id(tz))
        problem = None
        if tz_errors:
            errors.append(_problem(tz_errors, where, None))
            continue
        raw = doc.raw_text(tz)
        if validate:
            try:
                _check_lines([tz])
                problem = _ics_problem(_calendar_text(DEFAULT_CALENDAR_PROPERTIES, [raw]))
            except LineSyntaxError as exc:
                problem = str(exc)
        if problem is not None:
            errors.append(MalformedRecord(problem, where=where, line=tz.lineno))
            continue
        orphans.append(raw)
    for tz in scan.extra_timezones:  # duplicates by TZID are dropped; report broken ones
        if scan.bad.get(id(tz)) and _value(tz.find("TZID")) is None:
            errors.append(_problem(scan.bad[id(tz)], where, None))
    if scan.file_errors:
        errors.append(_problem(scan.file_errors, where, None))
    errors.sort(key=lambda e: e.line or 0)
    first = next((c for c in doc.components if c.name == "VCALENDAR"), None)
    props = tuple(scan.properties[id(first)] if first is not None else ()) + tuple(scan.stray)
    return SplitResult(Wrapper(props, tuple(orphans)), records, errors)


def _parse_ics(text: str, where: str, values: bool = True) -> Record:
    doc = parse(text)
    scan = _scan_ics(doc)
    if scan.file_errors:
        raise _problem(scan.file_errors, where, None)
    groups = scan.groups
    if not groups:
        raise MalformedRecord("no record (no component other than VTIMEZONE)", where=where)
    if len(groups) > 1:
        uids = ", ".join(g.uid if g.uid is not None else "(none)" for g in groups)
        raise MalformedRecord(
            f"holds {len(groups)} records (UIDs {uids}); one record per file",
            where=where,
            uid=groups[0].uid,
        )
    group = groups[0]
    record, _tzs, error = _ics_record(scan, group, where, validate=False)
    if error is not None:
        raise error
    assert record is not None
    for tz in (*scan.timezones.values(), *scan.extra_timezones):
        if tz_errors := scan.bad.get(id(tz)):
            raise _problem(tz_errors, where, group.uid)
    try:
        _check_lines([*scan.timezones.values(), *scan.extra_timezones])
    except LineSyntaxError as exc:
        raise MalformedRecord(str(exc), where=where, uid=group.uid, line=exc.lineno) from None
    problem = _ics_problem(text) if values else None
    if problem is not None:
        raise MalformedRecord(problem, where=where, uid=group.uid, line=doc.components[0].lineno)
    return Record(record.ident, "ics", text, record.hash, record.uid)


# ---------------------------------------------------------------------------- vcf


def _stray_errors(doc: Document) -> list[LineError]:
    return [
        LineError(line.lineno, f"line outside any vCard: {line.text[:60]!r}", None)
        for line in doc.stray
    ]


def _vcard_record(
    doc: Document, card: Component, bad: dict[int, list[LineError]], where: str
) -> Record | MalformedRecord:
    uid = _uid_of(card)
    errors = bad.get(id(card))
    if errors:
        return _problem(errors, where, uid)
    if card.name != "VCARD":
        return MalformedRecord(
            f"BEGIN:VCARD expected, found BEGIN:{card.name}", where=where, line=card.lineno
        )
    try:
        _check_lines([card])
        digest = record_hash("vcf", [card])
    except LineSyntaxError as exc:
        return MalformedRecord(str(exc), where=where, uid=uid, line=exc.lineno)
    if card.find("VERSION") is None:
        return MalformedRecord("vCard without VERSION", where=where, uid=uid, line=card.lineno)
    ident = uid if uid is not None else CONTENT_IDENT_PREFIX + digest
    return Record(ident, "vcf", CRLF.join(doc.raw(card)) + CRLF, digest, uid)


def _split_vcf(doc: Document, where: str) -> SplitResult:
    bad, file_errors = _line_errors(doc, 0)
    file_errors.extend(_stray_errors(doc))
    file_errors.sort(key=lambda e: e.lineno)
    records: list[Record] = []
    errors: list[MalformedRecord] = []
    seen: dict[str, int] = {}
    for card in doc.components:
        result = _vcard_record(doc, card, bad, where)
        if isinstance(result, MalformedRecord):
            errors.append(result)
            continue
        if result.ident in seen:
            what = f"UID {result.uid!r}" if result.uid is not None else "content"
            errors.append(
                MalformedRecord(
                    f"card at line {card.lineno} has the same {what} as the card at line "
                    f"{seen[result.ident]}; it is left out",
                    where=where,
                    uid=result.uid,
                    line=card.lineno,
                )
            )
            continue
        seen[result.ident] = card.lineno
        records.append(result)
    if file_errors:
        errors.append(_problem(file_errors, where, None))
    errors.sort(key=lambda e: e.line or 0)
    return SplitResult(Wrapper(), records, errors)


def _parse_vcf(text: str, where: str) -> Record:
    doc = parse(text)
    bad, file_errors = _line_errors(doc, 0)
    file_errors.extend(_stray_errors(doc))
    file_errors.sort(key=lambda e: e.lineno)
    if file_errors:
        raise _problem(file_errors, where, None)
    cards = doc.components
    if not cards:
        raise MalformedRecord("no record (no BEGIN:VCARD)", where=where)
    if len(cards) > 1:
        uids = ", ".join(_uid_of(c) or "(none)" for c in cards)
        raise MalformedRecord(
            f"holds {len(cards)} records (UIDs {uids}); one record per file",
            where=where,
            uid=_uid_of(cards[0]),
        )
    result = _vcard_record(doc, cards[0], bad, where)
    if isinstance(result, MalformedRecord):
        raise result
    return Record(result.ident, "vcf", text, result.hash, result.uid)


# ---------------------------------------------------------------------------- public


def split(data: bytes, kind: Kind, where: str, *, validate: bool = True) -> SplitResult:
    """Split a whole .ics/.vcf file into records.

    A malformed record is reported in ``errors`` (naming ``where`` and the line) and the
    others are returned. ``validate=False`` skips icalendar's value check (the costly part;
    :func:`check` does it later for the records that are needed); the line grammar is
    always checked.
    """
    text = _decode(data)
    if kind == "ics":
        return _split_ics(text, where, validate)
    return _split_vcf(parse(text), where)


def check(record: Record, where: str) -> None:
    """The value check that ``split(validate=False)`` left out, for one record: raises
    MalformedRecord if icalendar finds a bad value in it (vCards need no more checks)."""
    if record.kind == "ics":
        problem = _ics_problem(record.text)
        if problem is not None:
            raise MalformedRecord(problem, where=where, uid=record.uid)


def parse_record(data: bytes, kind: Kind, where: str, *, values: bool = True) -> Record:
    """Read one standalone record file (a vdir item, a server resource), fully validated.
    Its ``text`` is the file as it is. Raises MalformedRecord. ``values=False`` checks the
    structure (lines, components, UID, time zones) but leaves out icalendar's value check,
    the costly part (:func:`check` does it later)."""
    text = _decode(data)
    if kind == "ics":
        return _parse_ics(text, where, values)
    return _parse_vcf(text, where)


class Joiner:
    """Join records into one file a piece at a time, for files too large to hold (an
    archive of a whole collection): :meth:`add` returns each record's text for the body;
    :meth:`head` and :meth:`tail` (asked after the last ``add``) go around it.

    ics: one VCALENDAR with the wrapper's property lines (no wrapper: those of the first
    record; none at all and no record: VERSION and PRODID), the VTIMEZONEs deduplicated
    by TZID (first wins; the records' first, then the wrapper's), then every record's
    other components in order. vcf: the cards one after the other.
    """

    def __init__(self, kind: Kind, wrapper: Wrapper | None = None) -> None:
        self.kind = kind
        self.wrapper = wrapper
        self._properties: list[str] | None = None
        self._timezones: dict[str, str] = {}
        self._any = False

    def _add_timezone(self, doc: Document, comp: Component) -> None:
        tzid = _value(comp.find("TZID"))
        key = tzid if tzid is not None else f"\0{len(self._timezones)}"
        self._timezones.setdefault(key, doc.raw_text(comp))

    def add(self, record: Record) -> str:
        """The body text of one record (CRLF line endings, ending with CRLF, or '')."""
        doc = parse(record.text)
        pieces: list[str] = []
        for top in doc.components:
            if self.kind == "vcf" or top.name != "VCALENDAR":  # a card, or a bare component
                pieces.append(doc.raw_text(top))
                continue
            if self._properties is None:
                self._properties = [doc.raw_text(line) for line in top.lines]
            for child in top.children:
                if child.name == "VTIMEZONE":
                    self._add_timezone(doc, child)
                else:
                    pieces.append(doc.raw_text(child))
        if pieces:
            self._any = True
        return "".join(p + CRLF for p in pieces)

    def head(self) -> str:
        if self.kind == "vcf":
            return ""
        properties = self._properties
        if self.wrapper is not None:
            for tz_text in self.wrapper.timezones:
                tz_doc = parse(tz_text)
                for comp in tz_doc.components:
                    self._add_timezone(tz_doc, comp)
            properties = list(self.wrapper.properties)
        if not properties and not self._any:  # a new, empty calendar
            properties = list(DEFAULT_CALENDAR_PROPERTIES)
        return "".join(line + CRLF for line in ["BEGIN:VCALENDAR", *(properties or ()),
                                                 *self._timezones.values()])  # fmt: skip

    def tail(self) -> str:
        return "" if self.kind == "vcf" else "END:VCALENDAR" + CRLF


def join(records: Iterable[Record], kind: Kind, wrapper: Wrapper | None = None) -> bytes:
    """One file holding ``records`` (CRLF line endings); see :class:`Joiner`."""
    joiner = Joiner(kind, wrapper)
    body = "".join(joiner.add(record) for record in records)
    text = joiner.head() + body + joiner.tail()
    return text.encode("utf-8", "surrogateescape")
