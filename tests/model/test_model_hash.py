"""The record hash: what must not change it, and edits that must."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pimsync.model import split

TIMEZONE = """BEGIN:VTIMEZONE
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
END:VTIMEZONE
"""

EVENT = """BEGIN:VEVENT
UID:ev1@example.com
DTSTAMP:20240101T000000Z
DTSTART;TZID=Europe/Berlin:20240105T100000
DTEND;TZID=Europe/Berlin:20240105T110000
SUMMARY:Planning meeting
CATEGORIES:work,urgent\\,now,home
ATTENDEE;CN="Ann Example";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:ann@example.com
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10
EXDATE;TZID=Europe/Berlin:20240108T100000,20240110T100000
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT15M
END:VALARM
BEGIN:VALARM
ACTION:AUDIO
TRIGGER:-PT5M
END:VALARM
END:VEVENT
"""

OVERRIDE = """BEGIN:VEVENT
UID:ev1@example.com
DTSTAMP:20240101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20240115T100000
DTSTART;TZID=Europe/Berlin:20240115T120000
DTEND;TZID=Europe/Berlin:20240115T130000
SUMMARY:Planning meeting (moved)
END:VEVENT
"""

HEAD = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\n"


def calendar(*parts: str, head: str = HEAD) -> str:
    return head + "".join(parts) + "END:VCALENDAR\n"


BASE = calendar(TIMEZONE, EVENT, OVERRIDE)


def record_hash(text: str, kind: str = "ics") -> str:
    result = split(text.replace("\n", "\r\n").encode(), kind, "test")
    assert result.errors == []
    assert len(result.records) == 1
    return result.records[0].hash


def raw_hash(data: bytes, kind: str = "ics") -> str:
    result = split(data, kind, "test")
    assert result.errors == []
    assert len(result.records) == 1
    return result.records[0].hash


def fold(text: str, width: int) -> str:
    out = []
    for line in text.split("\n"):
        chunks = [line[:width]] + [
            " " + line[i : i + width] for i in range(width, len(line), width)
        ]
        out.extend(chunks)
    return "\n".join(out)


def swap(text: str, a: str, b: str) -> str:
    """Swap two whole lines (or blocks) given by their exact text."""
    assert a in text and b in text
    return text.replace(a, "\0").replace(b, a).replace("\0", b)


SAME: dict[str, Callable[[str], str]] = {
    "folding": lambda t: fold(t, 17),
    "folding at 1 character": lambda t: fold(t, 1),
    "property order": lambda t: swap(
        t, "SUMMARY:Planning meeting\n", "DTSTART;TZID=Europe/Berlin:20240105T100000\n"
    ),
    "parameter order": lambda t: t.replace(
        'ATTENDEE;CN="Ann Example";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT',
        'ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN="Ann Example"',
    ),
    "property name case": lambda t: t.replace(
        "SUMMARY:Planning meeting\n", "Summary:Planning meeting\n"
    ),
    "parameter name case": lambda t: t.replace(";PARTSTAT=ACCEPTED", ";partstat=ACCEPTED"),
    "enumerated parameter value case": lambda t: t.replace(
        "PARTSTAT=ACCEPTED", "PARTSTAT=accepted"
    ),
    "parameter quoting": lambda t: t.replace('CN="Ann Example"', "CN=Ann Example").replace(
        "TZID=Europe/Berlin:20240105T100000", 'TZID="Europe/Berlin":20240105T100000'
    ),
    "RRULE part order": lambda t: t.replace(
        "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10", "COUNT=10;FREQ=WEEKLY;BYDAY=MO,WE"
    ),
    "RRULE INTERVAL=1 (the default)": lambda t: t.replace(
        "FREQ=WEEKLY;BYDAY", "FREQ=WEEKLY;INTERVAL=1;BYDAY"
    ),
    "CATEGORIES value order": lambda t: t.replace(
        "CATEGORIES:work,urgent\\,now,home", "CATEGORIES:home,urgent\\,now,work"
    ),
    "CATEGORIES one line per value (Cyrus)": lambda t: t.replace(
        "CATEGORIES:work,urgent\\,now,home",
        "CATEGORIES:urgent\\,now\nCATEGORIES:home\ncategories:work",
    ),
    "EXDATE value order": lambda t: t.replace(
        "20240108T100000,20240110T100000", "20240110T100000,20240108T100000"
    ),
    "EXDATE values on two lines": lambda t: t.replace(
        "EXDATE;TZID=Europe/Berlin:20240108T100000,20240110T100000",
        "EXDATE;TZID=Europe/Berlin:20240110T100000\nEXDATE;TZID=Europe/Berlin:20240108T100000",
    ),
    "sub-component order": lambda t: swap(
        t,
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:Reminder\nTRIGGER:-PT15M\nEND:VALARM\n",
        "BEGIN:VALARM\nACTION:AUDIO\nTRIGGER:-PT5M\nEND:VALARM\n",
    ),
    "component order (override first)": lambda t: calendar(TIMEZONE, OVERRIDE, EVENT),
    "VCALENDAR-level properties": lambda t: t.replace(
        "PRODID:-//test//test//EN\n",
        "PRODID:-//other//x//EN\nCALSCALE:GREGORIAN\nX-WR-CALNAME:Work\n",
    ),
    "VTIMEZONE rewritten": lambda t: t.replace(
        "TZOFFSETFROM:+0200\nTZOFFSETTO:+0100", "TZOFFSETTO:+0100\nTZOFFSETFROM:+0200\nTZNAME:CET"
    ),
    "VTIMEZONE left out": lambda t: t.replace(TIMEZONE, ""),
    "DTSTAMP": lambda t: t.replace("DTSTAMP:20240101T000000Z", "DTSTAMP:20250101T101010Z"),
    "LAST-MODIFIED added": lambda t: t.replace(
        "SUMMARY:Planning", "LAST-MODIFIED:20240301T000000Z\nSUMMARY:Planning"
    ),
    "PRODID inside a component": lambda t: t.replace(
        "SUMMARY:Planning", "PRODID:-//x//y//EN\nSUMMARY:Planning"
    ),
}

DIFFERENT: dict[str, Callable[[str], str]] = {
    "SUMMARY edit": lambda t: t.replace(
        "SUMMARY:Planning meeting\n", "SUMMARY:Planning meeting!\n"
    ),
    "new ATTENDEE": lambda t: t.replace("RRULE:", "ATTENDEE:mailto:bob@example.com\nRRULE:"),
    "PARTSTAT value": lambda t: t.replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED"),
    "CN value case": lambda t: t.replace('CN="Ann Example"', 'CN="ann example"'),
    "new parameter": lambda t: t.replace(
        ";ROLE=REQ-PARTICIPANT", ";ROLE=REQ-PARTICIPANT;RSVP=TRUE"
    ),
    "RRULE count": lambda t: t.replace("COUNT=10", "COUNT=11"),
    "EXDATE added": lambda t: t.replace("20240110T100000\n", "20240110T100000,20240115T100000\n"),
    "RRULE INTERVAL=2": lambda t: t.replace("FREQ=WEEKLY;BYDAY", "FREQ=WEEKLY;INTERVAL=2;BYDAY"),
    "CATEGORIES escaped comma made a separator": lambda t: t.replace("urgent\\,now", "urgent,now"),
    "CATEGORIES value added": lambda t: t.replace(",home\n", ",home,play\n"),
    "CATEGORIES value case": lambda t: t.replace(",home\n", ",Home\n"),
    "alarm trigger": lambda t: t.replace("TRIGGER:-PT5M", "TRIGGER:-PT10M"),
    "override moved": lambda t: t.replace(
        "DTSTART;TZID=Europe/Berlin:20240115T120000", "DTSTART;TZID=Europe/Berlin:20240115T140000"
    ),
    "override removed": lambda t: calendar(TIMEZONE, EVENT),
    "DTSTART time zone": lambda t: t.replace(
        "DTSTART;TZID=Europe/Berlin:20240105", "DTSTART;TZID=Europe/Paris:20240105"
    ),
    "value whitespace": lambda t: t.replace(
        "SUMMARY:Planning meeting\n", "SUMMARY:Planning  meeting\n"
    ),
}


@pytest.mark.parametrize("change", sorted(SAME))
def test_ics_hash_does_not_change(change: str) -> None:
    changed = SAME[change](BASE)
    assert changed != BASE
    assert record_hash(changed) == record_hash(BASE)


@pytest.mark.parametrize("change", sorted(DIFFERENT))
def test_ics_hash_changes(change: str) -> None:
    changed = DIFFERENT[change](BASE)
    assert changed != BASE
    assert record_hash(changed) != record_hash(BASE)


def test_line_endings_do_not_change_the_hash() -> None:
    lf = BASE.encode()
    crlf = BASE.replace("\n", "\r\n").encode()
    mixed = b"".join(
        line + (b"\r\n" if i % 2 else b"\n") for i, line in enumerate(lf.split(b"\n")[:-1])
    )
    no_final = crlf[:-2]
    assert {raw_hash(d) for d in (lf, crlf, mixed, no_final)} == {record_hash(BASE)}


VCARD_30 = """BEGIN:VCARD
VERSION:3.0
UID:card-1
FN:Ann Example
N:Example;Ann;;;
TEL;TYPE=home,voice:+49 30 1234
item1.EMAIL;TYPE=INTERNET:ann@example.com
item1.X-ABLabel:private
NOTE:Met at the conference\\, 2023
REV:20240101T000000Z
PRODID:-//Apple Inc.//iOS 17//EN
END:VCARD
"""

VCARD_21 = """BEGIN:VCARD
VERSION:2.1
UID:card-21
N;CHARSET=UTF-8:Example;Ann
FN:Ann Example
TEL;HOME;VOICE:+49 30 1234
NOTE;ENCODING=QUOTED-PRINTABLE:first line=0D=0Asecond line with a longer text that=
 continues
END:VCARD
"""

VCARD_40 = """BEGIN:VCARD
VERSION:4.0
UID:urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519
FN:Ann Example
EMAIL;TYPE=work;PREF=1:ann@example.com
REV:20240101T000000Z
END:VCARD
"""

VCARD_SAME: list[tuple[str, str, str]] = [
    (VCARD_30, "TEL;TYPE=home,voice", "TEL;TYPE=voice;TYPE=home"),
    (VCARD_30, "TEL;TYPE=home,voice", "tel;type=VOICE,HOME"),
    (VCARD_30, "TEL;TYPE=home,voice", 'TEL;TYPE="home","voice"'),
    (VCARD_30, "item1.EMAIL", "ITEM1.email"),
    (VCARD_30, "REV:20240101T000000Z", "REV:2025-02-02T10:00:00Z"),
    (VCARD_30, "PRODID:-//Apple Inc.//iOS 17//EN\n", ""),
    (VCARD_30, "FN:Ann Example\nN:Example;Ann;;;\n", "N:Example;Ann;;;\nFN:Ann Example\n"),
    (VCARD_21, "TEL;HOME;VOICE", "TEL;TYPE=HOME;TYPE=VOICE"),
    (VCARD_21, "TEL;HOME;VOICE", "TEL;TYPE=voice,home"),
    (VCARD_21, "TEL;HOME;VOICE", "TEL;VOICE;HOME"),
    (VCARD_21, "NOTE;ENCODING=QUOTED-PRINTABLE", "NOTE;QUOTED-PRINTABLE"),
    (VCARD_21, "with a longer text that=\n continues", "with a =\nlonger text that continues"),
    (VCARD_40, "EMAIL;TYPE=work;PREF=1", "EMAIL;PREF=1;TYPE=WORK"),
    (VCARD_40, "REV:20240101T000000Z\n", ""),
]

VCARD_DIFFERENT: list[tuple[str, str, str]] = [
    (VCARD_30, "FN:Ann Example", "FN:Ann Exampel"),
    (VCARD_30, "TEL;TYPE=home,voice", "TEL;TYPE=work,voice"),
    (VCARD_30, "NOTE:", "EMAIL:ann2@example.com\nNOTE:"),
    (VCARD_30, "item1.EMAIL", "item2.EMAIL"),
    (VCARD_30, "VERSION:3.0", "VERSION:4.0"),
    (VCARD_21, "TEL;HOME;VOICE", "TEL;WORK;VOICE"),
    (VCARD_21, "=0D=0Asecond", "=0D=0Athird"),
    (VCARD_40, "PREF=1", "PREF=2"),
]


@pytest.mark.parametrize(("card", "old", "new"), VCARD_SAME)
def test_vcard_hash_does_not_change(card: str, old: str, new: str) -> None:
    assert old in card
    assert record_hash(card.replace(old, new), "vcf") == record_hash(card, "vcf")


@pytest.mark.parametrize(("card", "old", "new"), VCARD_DIFFERENT)
def test_vcard_hash_changes(card: str, old: str, new: str) -> None:
    assert old in card
    assert record_hash(card.replace(old, new), "vcf") != record_hash(card, "vcf")


def test_vcard_folding_does_not_change_the_hash() -> None:
    for card in (VCARD_30, VCARD_40):
        assert record_hash(fold(card, 9), "vcf") == record_hash(card, "vcf")


def test_hash_is_hex_sha256() -> None:
    digest = record_hash(BASE)
    assert len(digest) == 64 and int(digest, 16) >= 0
