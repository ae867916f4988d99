"""The record hash against what CalDAV/CardDAV servers do when they re-serialise a record
(Radicale through vobject, Xandikos through icalendar): the forms they write for what a
client wrote must hash the same, or every sync sees a phantom change ("ping-pong"); a
real edit, and what a server loses, must still change the hash.

Each normalisation has its pairs: (client form, server form) -> same hash; (form, edit)
-> different hash. No server is started here."""

from __future__ import annotations

import pytest

from pimsync.model import split
from pimsync.model.lines import Line
from pimsync.model.normalise import canonical_lines

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//test//EN
BEGIN:VEVENT
UID:forms-1@example.com
DTSTAMP:20240101T000000Z
DTSTART:20060611
DTEND:20060612
SUMMARY:Team \\"offsite\\"
DESCRIPTION:Bring a laptop\\, a charger\\; and snacks.\\NSee you there
LOCATION:Room 1
CATEGORIES:work,travel
COMMENT:no escapes
X-FOO:x\\"y
X-BAR:a;b;
URL:http://example.com/a\\,b
GEO:+51.76882;+14.32321
ATTENDEE;CN=Ann;X-TITLE=:mailto:ann@example.com
RDATE;VALUE=PERIOD:20060620T100000Z/PT1H30M
DURATION:PT1H
X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE=Home:geo:52.382762,7.528319
REQUEST-STATUS:2.0;Success;
X-DUR;VALUE=DURATION:P1W
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-P0DT0H10M0S
END:VALARM
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Earlier
TRIGGER;VALUE=DURATION:-P1W6DT15H
END:VALARM
BEGIN:VALARM
ACTION:AUDIO
TRIGGER:PT0S
END:VALARM
END:VEVENT
END:VCALENDAR
"""

VCARD = """BEGIN:VCARD
VERSION:3.0
UID:card-forms
FN:Sherlock Holmes
N:Holmes;Sherlock;;Mr;;
ORG:allinfo Company;
ADR;TYPE=home:;;221B Baker Street;London;;NW1 6XE;UK;;
TEL;TYPE=voice,home;VALUE=uri:tel:+44-555-555-5555;ext=5555
EMAIL:sherlock@example.com
NOTE:Consulting detective\\, London
item1.TITLE;LANGUAGE=en:Detective\\, consulting
CATEGORIES:detective,fiction
X-GENDER-NOTE:x;
GEO:51.5237;-0.1585
PHOTO;ENCODING=BASE64;TYPE=JPEG:AAAA
END:VCARD
"""

VCARD_21 = """BEGIN:VCARD
VERSION:2.1
UID:card-21-forms
N:Holmes;Sherlock
FN:Sherlock Holmes
ADR;HOME;CHARSET=utf-8;ENCODING=QUOTED-PRINTABLE:;;=41=41=2D=41=C3=A4=20=31=31;=55=72=74;;=30=30;
NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Sprechzeiten:=0D=0AMo 8=E2=80=9312=2C 15=E2=80=9318
TITLE;QUOTED-PRINTABLE:Facharzt f=C3=BCr Allgemeinmedizin
TEL;HOME;VOICE:+49 30 1234
END:VCARD
"""


def record_hash(text: str, kind: str = "ics") -> str:
    return raw_hash(text.replace("\n", "\r\n").encode(), kind)


def raw_hash(data: bytes, kind: str = "ics") -> str:
    result = split(data, kind, "test")
    assert result.errors == []
    assert len(result.records) == 1
    return result.records[0].hash


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    changed = text.replace(old, new)
    assert changed != text
    return changed


# ------------------------------------------------------------------ pairs, by normalisation

#: (base text, kind, what the client wrote, what a server writes for it)
SAME: dict[str, tuple[str, str, str, str]] = {
    # 1. TEXT escapes: an invalid escape stands for its character, \N is \n
    'invalid escape \\" in TEXT (vobject writes ")': (
        EVENT,
        "ics",
        'SUMMARY:Team \\"offsite\\"',
        'SUMMARY:Team "offsite"',
    ),
    "invalid escape in an X- property": (EVENT, "ics", 'X-FOO:x\\"y', 'X-FOO:x"y'),
    "\\N is \\n": (EVENT, "ics", "\\NSee you", "\\nSee you"),
    "single-valued TEXT: escaped comma (icalendar adds the backslash)": (
        EVENT,
        "ics",
        "DESCRIPTION:Bring a laptop\\, a charger",
        "DESCRIPTION:Bring a laptop, a charger",
    ),
    "single-valued TEXT: escaped semicolon": (EVENT, "ics", "charger\\; and", "charger; and"),
    "vCard NOTE: escaped comma": (
        VCARD,
        "vcf",
        "NOTE:Consulting detective\\, London",
        "NOTE:Consulting detective, London",
    ),
    "single-valued TEXT with parameters and a group": (
        VCARD,
        "vcf",
        "item1.TITLE;LANGUAGE=en:Detective\\, consulting",
        "item1.TITLE;LANGUAGE=en:Detective, consulting",
    ),
    # 2. VALUE parameters added or dropped
    "VALUE=DATE added": (EVENT, "ics", "DTSTART:20060611", "DTSTART;VALUE=DATE:20060611"),
    "VALUE=DURATION dropped": (
        EVENT,
        "ics",
        "TRIGGER;VALUE=DURATION:-P1W6DT15H",
        "TRIGGER:-P1W6DT15H",
    ),
    "VALUE case": (EVENT, "ics", "RDATE;VALUE=PERIOD:", "RDATE;VALUE=period:"),
    # 3. durations
    "duration with zero parts (Google) against vobject's": (
        EVENT,
        "ics",
        "TRIGGER:-P0DT0H10M0S",
        "TRIGGER:-PT10M",
    ),
    "duration in weeks against days (icalendar)": (
        EVENT,
        "ics",
        "TRIGGER;VALUE=DURATION:-P1W6DT15H",
        "TRIGGER:-P13DT15H",
    ),
    "zero duration: P0D (icalendar) for PT0S": (EVENT, "ics", "TRIGGER:PT0S", "TRIGGER:P0D"),
    "minutes against hours": (
        EVENT,
        "ics",
        "DURATION:PT1H",
        "DURATION:PT60M",
    ),
    "duration of an RDATE period": (EVENT, "ics", "Z/PT1H30M", "Z/PT90M"),
    "any VALUE=DURATION property": (
        EVENT,
        "ics",
        "X-DUR;VALUE=DURATION:P1W",
        "X-DUR;VALUE=DURATION:P7D",
    ),
    # 4. trailing empty components of structured values
    "N with one empty component more or less": (
        VCARD,
        "vcf",
        "N:Holmes;Sherlock;;Mr;;",
        "N:Holmes;Sherlock;;Mr;",
    ),
    "N without trailing components (vCard 2.1) against padded": (
        VCARD_21,
        "vcf",
        "N:Holmes;Sherlock",
        "N:Holmes;Sherlock;;;",
    ),
    "ORG with a trailing empty unit": (VCARD, "vcf", "ORG:allinfo Company;", "ORG:allinfo Company"),
    "ADR padded": (VCARD, "vcf", "NW1 6XE;UK;;", "NW1 6XE;UK"),
    "REQUEST-STATUS without its empty extra data": (
        EVENT,
        "ics",
        "REQUEST-STATUS:2.0;Success;",
        "REQUEST-STATUS:2.0;Success",
    ),
    # 5. vCard 2.1 quoted-printable decoded by the server
    "quoted-printable ADR decoded (vobject keeps CHARSET)": (
        VCARD_21,
        "vcf",
        "ADR;HOME;CHARSET=utf-8;ENCODING=QUOTED-PRINTABLE:;;=41=41=2D=41=C3=A4=20=31=31;"
        "=55=72=74;;=30=30;",
        "ADR;HOME;CHARSET=utf-8:;;AA-Aä 11;Urt;;00",
    ),
    "quoted-printable line breaks as \\n, comma as it is": (
        VCARD_21,
        "vcf",
        "NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Sprechzeiten:=0D=0AMo 8=E2=80=9312=2C "
        "15=E2=80=9318",
        "NOTE:Sprechzeiten:\\nMo 8–12\\, 15–18",
    ),
    "bare QUOTED-PRINTABLE, no CHARSET (UTF-8)": (
        VCARD_21,
        "vcf",
        "TITLE;QUOTED-PRINTABLE:Facharzt f=C3=BCr Allgemeinmedizin",
        "TITLE:Facharzt für Allgemeinmedizin",
    ),
    "ENCODING=BASE64 is ENCODING=b": (VCARD, "vcf", "ENCODING=BASE64", "ENCODING=b"),
    # 6. escapes in values that are not TEXT
    "TEL uri with an escaped semicolon (vobject)": (
        VCARD,
        "vcf",
        "tel:+44-555-555-5555;ext=5555",
        "tel:+44-555-555-5555\\;ext=5555",
    ),
    "TEL uri without VALUE": (
        VCARD,
        "vcf",
        "TEL;TYPE=voice,home;VALUE=uri:",
        "TEL;TYPE=voice,home:",
    ),
    "URL with an escaped comma against none (icalendar unescapes)": (
        EVENT,
        "ics",
        "URL:http://example.com/a\\,b",
        "URL:http://example.com/a,b",
    ),
    "GEO with an escaped semicolon": (VCARD, "vcf", "GEO:51.5237;-0.1585", "GEO:51.5237\\;-0.1585"),
    "X- property with VALUE=URI": (
        EVENT,
        "ics",
        "geo:52.382762,7.528319",
        "geo:52.382762\\,7.528319",
    ),
    # GEO numbers, empty parameter values
    "GEO without + signs (icalendar)": (
        EVENT,
        "ics",
        "GEO:+51.76882;+14.32321",
        "GEO:51.76882;14.32321",
    ),
    "GEO with trailing zeros": (
        EVENT,
        "ics",
        "GEO:+51.76882;+14.32321",
        "GEO:51.768820;14.3232100",
    ),
    "a parameter without value against an empty one (icalendar)": (
        EVENT,
        "ics",
        "ATTENDEE;CN=Ann;X-TITLE=:",
        'ATTENDEE;CN=Ann;X-TITLE="":',
    ),
}

#: (base text, kind, old, new): a real edit, or something a server loses
DIFFERENT: dict[str, tuple[str, str, str, str]] = {
    # next to 1: the text itself
    "SUMMARY edit": (EVENT, "ics", 'SUMMARY:Team \\"offsite\\"', 'SUMMARY:Team \\"onsite\\"'),
    "DESCRIPTION edit": (EVENT, "ics", "and snacks", "and drinks"),
    "a literal backslash (icalendar keeps the one of an invalid escape)": (
        EVENT,
        "ics",
        'SUMMARY:Team \\"offsite\\"',
        'SUMMARY:Team \\\\"offsite\\\\"',
    ),
    "a line break against the letter n": (EVENT, "ics", "\\NSee you", "nSee you"),
    "a literal backslash and n against a line break": (EVENT, "ics", "\\NSee you", "\\\\nSee you"),
    "TEXT cut at an unescaped comma (vobject)": (
        EVENT,
        "ics",
        "DESCRIPTION:Bring a laptop\\, a charger\\; and snacks.\\NSee you there",
        "DESCRIPTION:Bring a laptop",
    ),
    "vCard NOTE cut at a comma (vobject)": (
        VCARD,
        "vcf",
        "NOTE:Consulting detective\\, London",
        "NOTE:Consulting detective",
    ),
    "CATEGORIES: an escaped comma is no separator": (
        EVENT,
        "ics",
        "CATEGORIES:work,travel",
        "CATEGORIES:work\\,travel",
    ),
    "CATEGORIES: a category more": (EVENT, "ics", "CATEGORIES:work,travel", "CATEGORIES:work,x"),
    "X- property: an escaped comma is kept apart": (EVENT, "ics", 'X-FOO:x\\"y', "X-FOO:x\\,y"),
    "new ATTENDEE": (
        EVENT,
        "ics",
        "DURATION:PT1H",
        "DURATION:PT1H\nATTENDEE:mailto:bob@example.com",
    ),
    # next to 2: the value VALUE describes
    "DTSTART moved": (EVENT, "ics", "DTSTART:20060611", "DTSTART;VALUE=DATE:20060612"),
    "DTSTART a date-time instead of a date": (
        EVENT,
        "ics",
        "DTSTART:20060611",
        "DTSTART:20060611T000000",
    ),
    # next to 3: the duration itself
    "TRIGGER earlier": (EVENT, "ics", "TRIGGER:-P0DT0H10M0S", "TRIGGER:-PT15M"),
    "TRIGGER after instead of before": (EVENT, "ics", "TRIGGER:-P0DT0H10M0S", "TRIGGER:PT10M"),
    "TRIGGER a week later": (EVENT, "ics", "-P1W6DT15H", "-P2W6DT15H"),
    "DURATION longer": (EVENT, "ics", "DURATION:PT1H", "DURATION:PT1H1S"),
    "RDATE period start": (EVENT, "ics", "20060620T100000Z/", "20060621T100000Z/"),
    "RDATE period length": (EVENT, "ics", "Z/PT1H30M", "Z/PT1H31M"),
    # next to 4: components with content, escaped semicolons, other properties
    "N: a prefix changed": (VCARD, "vcf", "N:Holmes;Sherlock;;Mr;;", "N:Holmes;Sherlock;;Dr;;"),
    "N: a suffix added": (VCARD, "vcf", "N:Holmes;Sherlock;;Mr;;", "N:Holmes;Sherlock;;Mr;Jr;"),
    "ORG: a unit added": (VCARD, "vcf", "ORG:allinfo Company;", "ORG:allinfo Company;Sales"),
    "ORG: an escaped semicolon is text": (
        VCARD,
        "vcf",
        "ORG:allinfo Company;",
        "ORG:allinfo Company\\;",
    ),
    "ORG: a leading empty component": (
        VCARD,
        "vcf",
        "ORG:allinfo Company;",
        "ORG:;allinfo Company",
    ),
    "ADR: the country removed": (VCARD, "vcf", "NW1 6XE;UK;;", "NW1 6XE;;;"),
    "an X- property keeps its trailing semicolon": (EVENT, "ics", "X-BAR:a;b;", "X-BAR:a;b"),
    "vCard X- property keeps its trailing semicolon": (
        VCARD,
        "vcf",
        "X-GENDER-NOTE:x;",
        "X-GENDER-NOTE:x",
    ),
    # next to 5: the decoded text, and the TYPEs vobject drops
    "quoted-printable text edited": (VCARD_21, "vcf", "=55=72=74", "=55=72=75"),
    "quoted-printable ADR losing its bare TYPE (vobject)": (
        VCARD_21,
        "vcf",
        "ADR;HOME;CHARSET=utf-8;ENCODING=QUOTED-PRINTABLE:;;=41=41=2D=41=C3=A4=20=31=31;"
        "=55=72=74;;=30=30;",
        "ADR;CHARSET=utf-8:;;AA-Aä 11;Urt;;00",
    ),
    "vCard 2.1 bare TYPEs dropped (vobject)": (VCARD_21, "vcf", "TEL;HOME;VOICE:", "TEL:"),
    "quoted-printable NOTE cut at the comma (vobject)": (
        VCARD_21,
        "vcf",
        "NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Sprechzeiten:=0D=0AMo 8=E2=80=9312=2C "
        "15=E2=80=9318",
        "NOTE;CHARSET=UTF-8:Sprechzeiten:\\nMo 8–12",
    ),
    "BASE64 data changed": (VCARD, "vcf", "JPEG:AAAA", "JPEG:AAAB"),
    "BASE64 against text": (VCARD, "vcf", "PHOTO;ENCODING=BASE64;TYPE=JPEG:", "PHOTO;TYPE=JPEG:"),
    # next to 6: the non-TEXT value itself
    "TEL extension changed": (VCARD, "vcf", ";ext=5555", ";ext=5556"),
    "URL changed": (EVENT, "ics", "URL:http://example.com/a\\,b", "URL:http://example.com/a,c"),
    "EMAIL changed": (VCARD, "vcf", "EMAIL:sherlock@", "EMAIL:mycroft@"),
    "X- location cut at the comma (vobject)": (
        EVENT,
        "ics",
        "geo:52.382762,7.528319",
        "geo:52.382762",
    ),
    "GEO moved": (EVENT, "ics", "GEO:+51.76882;+14.32321", "GEO:+51.76883;+14.32321"),
    "GEO sign": (EVENT, "ics", "GEO:+51.76882;+14.32321", "GEO:-51.76882;+14.32321"),
    "a parameter value against none": (
        EVENT,
        "ics",
        "ATTENDEE;CN=Ann;X-TITLE=:",
        "ATTENDEE;CN=Ann:",
    ),
    "a parameter's value": (EVENT, "ics", ";X-TITLE=Home:", ";X-TITLE=Work:"),
}


@pytest.mark.parametrize("case", sorted(SAME))
def test_server_form_has_the_same_hash(case: str) -> None:
    text, kind, client, server = SAME[case]
    assert record_hash(edited(text, client, server), kind) == record_hash(text, kind)


@pytest.mark.parametrize("case", sorted(DIFFERENT))
def test_edit_changes_the_hash(case: str) -> None:
    text, kind, old, new = DIFFERENT[case]
    assert record_hash(edited(text, old, new), kind) != record_hash(text, kind)


# ------------------------------------------------------------------ details


def canonical(text: str, vcard: bool = False) -> list[str]:
    return canonical_lines(Line(text, 0, 0), vcard)


def test_all_server_forms_at_once() -> None:
    """What Radicale and Xandikos write for EVENT, with every difference at once."""
    server = EVENT
    for old, new in [
        ('SUMMARY:Team \\"offsite\\"', 'SUMMARY:Team "offsite"'),
        ("\\NSee you", "\\nSee you"),
        ("charger\\; and", "charger; and"),
        ("DTSTART:20060611", "DTSTART;VALUE=DATE:20060611"),
        ("DTEND:20060612", "DTEND;VALUE=DATE:20060612"),
        ("TRIGGER:-P0DT0H10M0S", "TRIGGER:-PT10M"),
        ("TRIGGER;VALUE=DURATION:-P1W6DT15H", "TRIGGER:-P13DT15H"),
        ("GEO:+51.76882;+14.32321", "GEO:51.76882;14.32321"),
        ("X-TITLE=:mailto", 'X-TITLE="":mailto'),
        ("URL:http://example.com/a\\,b", "URL:http://example.com/a,b"),
    ]:
        server = edited(server, old, new)
    assert record_hash(server) == record_hash(EVENT)


def test_canonical_text_is_unambiguous() -> None:
    """Decoded TEXT keeps \\\\ and \\n escaped: a value cannot pose as two lines."""
    assert canonical("DESCRIPTION:a\\nSUMMARY:b") == ["DESCRIPTION:a\\nSUMMARY:b"]
    assert canonical("DESCRIPTION:a\\\\b\\,c\\x") == ["DESCRIPTION:a\\\\b,cx"]
    assert canonical("DESCRIPTION:a\\\\nb") != canonical("DESCRIPTION:a\\nb")
    assert canonical("DESCRIPTION:trailing\\") == ["DESCRIPTION:trailing\\"]


def test_duration_forms() -> None:
    def trigger(value: str) -> str:
        [line] = canonical("TRIGGER:" + value)
        return line.split(":", 1)[1]

    assert {trigger(v) for v in ("-PT10M", "-P0DT0H10M0S", "-PT600S", "-P0W0DT0H10M")} == {
        "-PT600S"
    }
    assert {trigger(v) for v in ("P1W", "P7D", "PT168H", "+P6DT24H")} == {"PT604800S"}
    assert {trigger(v) for v in ("PT0S", "P0D", "-PT0S", "-P0W")} == {"PT0S"}
    # a day is 24 hours here: vobject and icalendar read durations as timedelta
    assert trigger("P1D") == trigger("PT24H") != trigger("PT23H")
    # not a duration: as it is
    for value in ("P", "-PT", "P1DT", "19980101T050000Z", "P1.5D", "p1d"):
        assert trigger(value) == value


def test_quoted_printable_charsets() -> None:
    """QUOTED-PRINTABLE decoded with its CHARSET; raw bytes that are not UTF-8 decoded with
    their CHARSET; CHARSET and ENCODING left out."""
    jis = "テスト".encode("shift_jis")
    card = b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:jis\r\n%s\r\nFN:Taro\r\nEND:VCARD\r\n"
    forms = [
        b"N;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:=83=65=83=58=83=67;Taro",
        b"N;CHARSET=shift_jis;QUOTED-PRINTABLE:"
        + "".join(f"={b:02X}" for b in jis).encode()
        + b";Taro",
        b"N;CHARSET=SHIFT_JIS:" + jis + b";Taro",
        b"N;CHARSET=SHIFT_JIS:\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88;Taro",  # already UTF-8
        "N:テスト;Taro".encode(),
    ]
    hashes = {raw_hash(card % form, "vcf") for form in forms}
    assert len(hashes) == 1
    assert raw_hash(card % "N:テキスト;Taro".encode(), "vcf") not in hashes
    # an unknown charset: decoded as UTF-8
    assert canonical("NOTE;CHARSET=x-unknown;ENCODING=QUOTED-PRINTABLE:=C3=BC", True) == ["NOTE:ü"]
    assert canonical("NOTE;ENCODING=8BIT:x", True) == ["NOTE:x"]


def test_value_parameter_chooses_the_comparison() -> None:
    # VALUE=TEXT on a non-TEXT property: escapes kept apart
    assert canonical("TEL;VALUE=TEXT:a\\;b", True) != canonical("TEL;VALUE=TEXT:a;b", True)
    # VALUE=URI on an X- property: escapes dropped
    assert canonical("X-LOC;VALUE=URI:geo:1\\,2") == canonical("X-LOC:geo:1,2") == ["X-LOC:geo:1,2"]
    # no VALUE: an X- property is TEXT
    assert canonical("X-LOC:geo:1\\,2") != canonical("X-LOC:geo:1,2")
    # only duration-valued properties: a SUMMARY is text
    assert canonical("SUMMARY:PT1H") != canonical("SUMMARY:PT60M")
    # TRIGGER with a date-time: no duration
    assert canonical("TRIGGER;VALUE=DATE-TIME:19980101T050000Z") == ["TRIGGER:19980101T050000Z"]
