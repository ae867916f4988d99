"""Small facts about a record: a summary for messages, a key for the "newest" conflict
policy, a copy under another UID (for "keep both", and for a record that has none), and
the form a CalDAV server may store."""

from __future__ import annotations

import quopri
import re
import uuid
from datetime import UTC, datetime, timedelta

from pimsync.model.lines import Component, Line, LineSyntaxError, fold, param_dict, parse
from pimsync.model.normalise import record_components, record_hash
from pimsync.model.record import Record

_DATETIME = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:T(\d{2}):?(\d{2})(?::?(\d{2}))?(?:[.,]\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_UNESCAPE = re.compile(r"\\([\\;,nN])")


def _components(record: Record) -> list[Component]:
    """The record's components (VTIMEZONEs left out)."""
    doc = parse(record.text)
    return [c for c in record_components(record.kind, doc.components) if c.name != "VTIMEZONE"]


def _master(comps: list[Component]) -> Component | None:
    for comp in comps:
        if comp.find("RECURRENCE-ID") is None:
            return comp
    return comps[0] if comps else None


def _text_value(line: Line) -> str:
    """A property's value as text: quoted-printable and CHARSET decoded, escapes undone."""
    _name, params, value, _group = line.parts()
    pdict = param_dict(params)
    charset = (pdict.get("CHARSET") or ["utf-8"])[0]
    encodings = {v.upper() for v in pdict.get("ENCODING", [])}
    if "QUOTED-PRINTABLE" in encodings or "QUOTED-PRINTABLE" in pdict:
        raw = quopri.decodestring(value.encode("utf-8", "surrogateescape"))
    else:
        raw = value.encode("utf-8", "surrogateescape")
    try:
        text = raw.decode(charset, "replace")
    except LookupError:
        text = raw.decode("utf-8", "replace")
    return _UNESCAPE.sub(lambda m: " " if m.group(1) in "nN" else m.group(1), text)


def summary(record: Record) -> str:
    """SUMMARY of the master (or first) component, or a vCard's FN; '' if none."""
    try:
        comps = _components(record)
        comp = _master(comps)
        if comp is None:
            return ""
        line = comp.find("FN" if record.kind == "vcf" else "SUMMARY")
        return _text_value(line).strip() if line is not None else ""
    except LineSyntaxError:
        return ""


def _utc(line: Line | None) -> str:
    """A date-time property as ``YYYYMMDDTHHMMSSZ`` in UTC ('' if missing or unreadable).
    Floating times count as UTC; a TZID is honoured when the zone is known."""
    if line is None:
        return ""
    try:
        _name, params, value, _group = line.parts()
    except LineSyntaxError:
        return ""
    match = _DATETIME.match(value.strip())
    if match is None:
        return ""
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return ""
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        when = when - sign * delta
    elif not offset:
        tzid = (param_dict(params).get("TZID") or [None])[0]
        if tzid:
            try:
                from zoneinfo import ZoneInfo

                when = when.replace(tzinfo=ZoneInfo(tzid)).astimezone(UTC).replace(tzinfo=None)
            except (ValueError, OSError, KeyError):
                pass
    return when.strftime("%Y%m%dT%H%M%SZ")


def newest_key(record: Record) -> tuple[str, str, int]:
    """Sortable key for the "newest" conflict policy: (LAST-MODIFIED (ics, latest of the
    record's components) or REV (vcf) in UTC, DTSTAMP in UTC, SEQUENCE). A missing part
    sorts lowest ('' or -1)."""
    comps = _components(record)
    modified = "REV" if record.kind == "vcf" else "LAST-MODIFIED"
    last = max((_utc(c.find(modified)) for c in comps), default="")
    stamp = max((_utc(c.find("DTSTAMP")) for c in comps), default="")
    sequence = -1
    for comp in comps:
        line = comp.find("SEQUENCE")
        if line is None:
            continue
        try:
            sequence = max(sequence, int(line.value.strip()))
        except (ValueError, LineSyntaxError):
            continue
    return (last, stamp, sequence)


def with_uid(record: Record, uid: str) -> Record:
    """A copy of ``record`` whose UID lines all carry ``uid`` (a UID line is added to
    components without one), with ident and hash recomputed. Line endings become CRLF."""
    if not uid.strip() or any(c in uid for c in "\r\n"):
        raise ValueError(f"not a usable UID: {uid!r}")
    doc = parse(record.text)
    comps = [c for c in record_components(record.kind, doc.components) if c.name != "VTIMEZONE"]
    replace: dict[int, tuple[int, list[str]]] = {}  # first physical index -> (last, lines)
    insert: dict[int, list[str]] = {}  # physical index -> lines to put after it
    for comp in comps:
        uid_lines = [line for line in comp.lines if line.name == "UID"]
        if not uid_lines:
            # after BEGIN, or after a VERSION line right there (vCard 4.0 wants it first)
            after = comp.first
            if comp.lines and comp.lines[0].name == "VERSION" and comp.lines[0].first == after + 1:
                after = comp.lines[0].last
            insert[after] = fold("UID:" + uid)
        for line in uid_lines:
            value = line.value
            prefix = line.text[: len(line.text) - len(value)] if value else line.text
            replace[line.first] = (line.last, fold(prefix + uid))
    out: list[str] = []
    physical = doc.physical
    index = 0
    while index < len(physical):
        if index in replace:
            last, lines = replace[index]
            out.extend(lines)
            index = last + 1
            continue
        out.append(physical[index])
        if index in insert:
            out.extend(insert[index])
        index += 1
    text = "\r\n".join(out) + "\r\n"
    new_doc = parse(text)
    digest = record_hash(record.kind, record_components(record.kind, new_doc.components))
    return Record(uid, record.kind, text, digest, uid)


#: the namespace of UIDs derived from a record's content (:func:`content_uid`)
_CONTENT_UID_NAMESPACE = uuid.UUID("5b0f4d0e-3c1a-4d7e-9a43-7e0b8f6c2d11")


def content_uid(record: Record) -> str:
    """A UID for a record that has none, derived from its content (the same record gets
    the same UID on every machine and in every run): a name-based UUID (RFC 4122 v5)."""
    return str(uuid.uuid5(_CONTENT_UID_NAMESPACE, record.hash))


def without_method(data: bytes) -> bytes:
    """A calendar as a CalDAV server may store it: without the iTIP ``METHOD`` property
    of its VCALENDAR (RFC 4791 4.1 forbids it in a calendar object resource; Cyrus
    refuses such a PUT). Anything else, line ends and folding included, is left as it
    is; so is a record that has no METHOD. The record hash does not see METHOD (it
    leaves out the VCALENDAR wrapper), so the copy without it is the same record."""
    if b"METHOD" not in data.upper():
        return data
    lines = data.split(b"\n")
    out: list[bytes] = []
    depth = 0
    skipping = False
    for line in lines:
        if skipping and line[:1] in (b" ", b"\t"):
            continue  # a folded continuation of the METHOD line
        skipping = False
        head = line.lstrip()[:16].upper()
        if head.startswith(b"BEGIN:"):
            depth += 1
        elif head.startswith(b"END:"):
            depth -= 1
        elif depth == 1 and (head.startswith(b"METHOD:") or head.startswith(b"METHOD;")):
            skipping = True
            continue
        out.append(line)
    return b"\n".join(out)
