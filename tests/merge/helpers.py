"""Small builders and views for the merge tests."""

from __future__ import annotations

from pimsync.merge import MergeResult
from pimsync.model.lines import Component, parse
from pimsync.model.normalise import canonical_component, canonical_lines, record_components
from pimsync.model.record import Kind, Record
from pimsync.model.split import parse_record

UID = "merge-test-1@example.com"

EVENT = """\
DTSTAMP:20261101T000000Z
DTSTART:20261104T093000Z
DTEND:20261104T103000Z
SUMMARY:Planning
LOCATION:Room 1
RRULE:FREQ=WEEKLY;COUNT=10
ORGANIZER;CN=Boss:mailto:boss@example.com
ATTENDEE;PARTSTAT=ACCEPTED;CN=Ann:mailto:ann@example.com
ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@example.com
CATEGORIES:work,planning
SEQUENCE:0"""

OVERRIDE = """\
DTSTAMP:20261101T000000Z
RECURRENCE-ID:20261111T093000Z
DTSTART:20261111T100000Z
DTEND:20261111T110000Z
SUMMARY:Planning (moved)
SEQUENCE:0"""

ALARM = """\
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT15M
END:VALARM"""

BERLIN = """\
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE"""

CARD30 = """\
VERSION:3.0
FN:Ann Example
N:Example;Ann;;;
ORG:Example Corp
TEL;TYPE=CELL:+1-555-0100
TEL;TYPE=WORK,VOICE:+1-555-0101
EMAIL;TYPE=INTERNET,HOME:ann@example.com
CATEGORIES:friends,work
NOTE:Met at the conference
REV:20260101T000000Z"""

CARD21 = """\
VERSION:2.1
N:Example;Ann
FN:Ann Example
TEL;CELL;VOICE:+1-555-0100
TEL;HOME:+1-555-0102
EMAIL;INTERNET:ann@example.com
NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Caf=C3=A9 au lait, =
second line
ADR;HOME:;;Main Street 1;Springfield;;12345;USA"""

CARD40 = """\
VERSION:4.0
FN:Ann Example
N:Example;Ann;;;
KIND:individual
TEL;VALUE=uri;TYPE="cell,voice":tel:+1-555-0100
EMAIL;TYPE=work:ann@work.example
IMPP;PREF=1:xmpp:ann@example.com
ORG:Example Corp
REV:20260101T000000Z"""


def edit(
    body: str,
    sub: dict[str, str | None] | None = None,
    add: tuple[str, ...] = (),
) -> str:
    """``body`` with each line starting with a key of ``sub`` replaced (None: removed),
    then ``add`` appended."""
    out: list[str] = []
    for line in body.split("\n"):
        for prefix, new in (sub or {}).items():
            if line.startswith(prefix):
                if new is not None:
                    out.append(new)
                break
        else:
            out.append(line)
    return "\n".join([*out, *add])


def component(name: str, body: str, children: tuple[str, ...] = (), uid: str = UID) -> str:
    return "\n".join([f"BEGIN:{name}", f"UID:{uid}", body, *children, f"END:{name}"])


def ics(*components: str, timezones: tuple[str, ...] = ()) -> Record:
    """A calendar record (parsed and checked like a downloaded one)."""
    text = "\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//pimsync tests//merge//EN", *timezones,
         *components, "END:VCALENDAR"]
    )  # fmt: skip
    return record(text, "ics")


def event(body: str = EVENT, *, overrides: tuple[str, ...] = (), alarms: tuple[str, ...] = (),
          timezones: tuple[str, ...] = ()) -> Record:  # fmt: skip
    """The test event (a master with ``alarms``) and its ``overrides``."""
    comps = [component("VEVENT", body, alarms), *(component("VEVENT", o) for o in overrides)]
    return ics(*comps, timezones=timezones)


def card(body: str = CARD30, uid: str = UID) -> Record:
    lines = body.split("\n")
    text = "\n".join(["BEGIN:VCARD", lines[0], f"UID:{uid}", *lines[1:], "END:VCARD"])
    return record(text, "vcf")


def record(text: str, kind: Kind) -> Record:
    data = text.replace("\n", "\r\n").encode("utf-8") + b"\r\n"
    return parse_record(data, kind, "test")


def _label(comp: Component) -> str:
    rid = comp.find("RECURRENCE-ID")
    return comp.name if rid is None else f"{comp.name};RECURRENCE-ID={rid.value}"


def view_lines(rec: Record) -> dict[str, tuple[str, ...]]:
    """Canonical lines of each component by label, sorted, repeats kept (VTIMEZONEs left
    out); each sub-component's canonical text counts as one line ("BEGIN:VALARM...")."""
    vcard = rec.kind == "vcf"
    out: dict[str, tuple[str, ...]] = {}
    for comp in record_components(rec.kind, parse(rec.text).components):
        if comp.name == "VTIMEZONE":
            continue
        lines = [c for line in comp.lines for c in canonical_lines(line, vcard)]
        lines.extend(canonical_component(child, vcard) for child in comp.children)
        out[_label(comp)] = tuple(sorted(lines))
    return out


def view(rec: Record) -> dict[str, set[str]]:
    """``view_lines`` as sets."""
    return {label: set(lines) for label, lines in view_lines(rec).items()}


def named(rec: Record, label: str, name: str) -> set[str]:
    """The canonical lines of property ``name`` in component ``label``."""
    return {
        line for line in view(rec).get(label, set()) if line.split(":")[0].split(";")[0] == name
    }


def checked(result: MergeResult, like: Record) -> Record:
    """The merged record, after checking it is whole: it parses again, to the same hash,
    with the same ident."""
    merged = result.record
    assert merged is not None, result.conflicts
    again = parse_record(merged.to_bytes(), merged.kind, "again")
    assert (again.hash, again.ident, again.uid) == (merged.hash, like.ident, like.uid)
    return merged
