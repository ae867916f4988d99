"""split, join and parse_record on small hand-made files, and the line layer's errors."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from model_helpers import CORPUS

from pimsync.errors import MalformedRecord
from pimsync.model import (
    CONTENT_IDENT_PREFIX,
    Record,
    Wrapper,
    join,
    kind_for_path,
    parse_record,
    split,
)
from pimsync.model.lines import parse


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def tz(tzid: str, offset: str = "+0100") -> str:
    return (
        f"BEGIN:VTIMEZONE\nTZID:{tzid}\nBEGIN:STANDARD\nDTSTART:19700101T000000\n"
        f"TZOFFSETFROM:{offset}\nTZOFFSETTO:{offset}\nEND:STANDARD\nEND:VTIMEZONE\n"
    )


def event(uid: str | None, summary: str, extra: str = "") -> str:
    uid_line = f"UID:{uid}\n" if uid else ""
    return (
        f"BEGIN:VEVENT\n{uid_line}DTSTAMP:20240101T000000Z\n"
        f"DTSTART:20240105T100000Z\nSUMMARY:{summary}\n{extra}END:VEVENT\n"
    )


HEAD = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nX-WR-CALNAME:Work\nX-FOO:bar\n"
TAIL = "END:VCALENDAR\n"


# ---------------------------------------------------------------------------- ics


def test_grouping_by_uid_with_overrides_and_timezones() -> None:
    master = event("a", "Master", "RRULE:FREQ=DAILY;COUNT=5\n").replace(
        "DTSTART:20240105T100000Z", "DTSTART;TZID=Europe/Berlin:20240105T100000"
    )
    override = event("a", "Moved", "RECURRENCE-ID;TZID=Europe/Berlin:20240106T100000\n")
    nested = event(
        "b",
        "Nested TZID",
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:x\nTRIGGER:-PT5M\n"
        "X-SNOOZE;TZID=Asia/Tokyo:20240105T090000\nEND:VALARM\n",
    )
    todo = "BEGIN:VTODO\nUID:c\nDTSTAMP:20240101T000000Z\nSUMMARY:Todo\nEND:VTODO\n"
    data = crlf(
        HEAD
        + tz("Europe/Berlin")
        + master
        + tz("Asia/Tokyo", "+0900")
        + nested
        + tz("America/New_York", "-0500")
        + override
        + todo
        + TAIL
    )
    result = split(data, "ics", "cal.ics")
    assert result.errors == []
    assert [r.ident for r in result.records] == ["a", "b", "c"]
    a, b, c = result.records
    assert a.uid == "a" and a.kind == "ics"
    # the record: wrapper lines, its VTIMEZONEs, its components in order
    assert a.text == crlf(HEAD + tz("Europe/Berlin") + master + override + TAIL).decode()
    assert "TZID:Asia/Tokyo" in b.text and "Europe/Berlin" not in b.text
    assert "VTIMEZONE" not in c.text
    assert result.wrapper == Wrapper(
        ("VERSION:2.0", "PRODID:-//test//EN", "X-WR-CALNAME:Work", "X-FOO:bar"),
        (crlf(tz("America/New_York", "-0500")).decode().rstrip("\r\n"),),
    )


def test_override_without_master_and_no_uid_records() -> None:
    data = crlf(
        HEAD
        + event("o", "Only an override", "RECURRENCE-ID:20240106T100000Z\n")
        + event(None, "No UID")
        + "BEGIN:VJOURNAL\nDTSTAMP:20240101T000000Z\nSUMMARY:Journal\nEND:VJOURNAL\n"
        + TAIL
    )
    result = split(data, "ics", "x.ics")
    assert result.errors == []
    override, no_uid, journal = result.records
    assert override.ident == "o" and "RECURRENCE-ID" in override.text
    for record in (no_uid, journal):
        assert record.uid is None
        assert record.ident == CONTENT_IDENT_PREFIX + record.hash


def test_one_uid_over_two_calendars_is_merged() -> None:
    second_head = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//other//EN\n"
    data = crlf(
        HEAD
        + event("a", "Master")
        + TAIL
        + second_head
        + event("a", "Moved", "RECURRENCE-ID:20240106T100000Z\n")
        + event("z", "Other")
        + TAIL
    )
    result = split(data, "ics", "two.ics")
    assert result.errors == []
    assert [r.ident for r in result.records] == ["a", "z"]
    merged = result.records[0]
    assert merged.text.count("BEGIN:VEVENT") == 2
    assert "PRODID:-//test//EN" in merged.text  # the first calendar's lines
    assert "PRODID:-//other//EN" in result.records[1].text
    assert result.wrapper.properties[1] == "PRODID:-//test//EN"


def test_identical_uidless_components_are_reported_once() -> None:
    data = crlf(HEAD + event(None, "Same") + event(None, "Same") + TAIL)
    result = split(data, "ics", "dup.ics")
    assert len(result.records) == 1
    assert len(result.errors) == 1 and "same content" in result.errors[0].message


def test_line_endings_and_final_newline() -> None:
    text = HEAD + tz("Europe/Berlin") + event("a", "A") + event("b", "B") + TAIL
    variants = [
        text.encode(),
        crlf(text),
        crlf(text)[:-2],
        b"".join(
            line + (b"\r\n" if i % 3 else b"\n")
            for i, line in enumerate(text.encode().split(b"\n")[:-1])
        ),
    ]
    results = [split(v, "ics", "v.ics") for v in variants]
    assert all(r.errors == [] for r in results)
    assert len({tuple(r.records) for r in results}) == 1  # same texts, hashes, idents
    for record in results[0].records:
        assert record.text.endswith("\r\n")
        assert "\n" not in record.text.replace("\r\n", "")


def test_join_ics() -> None:
    berlin = tz("Europe/Berlin")
    uses_berlin = (
        event("a", "A")
        .replace("DTSTART:", "DTSTART;TZID=Europe/Berlin:")
        .replace("100000Z", "100000")
    )
    first = split(crlf(HEAD + berlin + uses_berlin + TAIL), "ics", "1").records[0]
    other_head = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//other//EN\n"
    second = parse_record(
        (
            other_head
            + berlin.replace("+0100", "+0200")
            + uses_berlin.replace("UID:a", "UID:b")
            + TAIL
        ).encode(),  # LF line endings, as a vdir file might have them
        "ics",
        "b.ics",
    )
    joined = join([first, second], "ics")
    text = joined.decode()
    assert "\n" not in text.replace("\r\n", "")
    assert text.count("BEGIN:VTIMEZONE") == 1 and "+0100" in text  # first wins
    assert "PRODID:-//test//EN" in text and "X-WR-CALNAME:Work" in text
    assert "PRODID:-//other//EN" not in text
    assert text.index("UID:a") < text.index("UID:b")
    again = split(joined, "ics", "joined.ics")
    assert [(r.ident, r.hash) for r in again.records] == [("a", first.hash), ("b", second.hash)]

    # the wrapper's lines and orphans win over the records'
    wrapper = Wrapper(("VERSION:2.0", "PRODID:-//w//EN"), (crlf(tz("Asia/Tokyo")).decode(),))
    text = join([second], "ics", wrapper).decode()
    assert "PRODID:-//w//EN" in text and "PRODID:-//other//EN" not in text
    assert "TZID:Asia/Tokyo" in text and "+0200" in text

    # nothing at all: a minimal calendar
    assert (
        join([], "ics")
        == b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pimsync//pimsync//EN\r\nEND:VCALENDAR\r\n"
    )


def test_orphan_timezone_kept_once() -> None:
    data = crlf(HEAD + tz("Asia/Tokyo") + tz("Asia/Tokyo") + event("a", "A") + TAIL)
    result = split(data, "ics", "x")
    assert result.errors == []
    assert len(result.wrapper.timezones) == 1
    assert b"Asia/Tokyo" in join(result.records, "ics", result.wrapper)


def test_malformed_record_among_good_ones() -> None:
    data = crlf(
        HEAD
        + event("good-1", "Fine")
        + event("bad", "Broken", "DTEND:NOT-A-DATE\n")
        + event("bad-line", "Broken", "this line has no colon\n")
        + event("good-2", "Fine too")
        + TAIL
    )
    result = split(data, "ics", "cal.ics")
    assert [r.ident for r in result.records] == ["good-1", "good-2"]
    assert [(e.uid, e.line) for e in result.errors] == [("bad", 12), ("bad-line", 24)]
    assert "DTEND" in result.errors[0].message
    assert str(result.errors[0]).startswith("cal.ics:12: ")
    assert "no colon" in result.errors[1].message


def test_file_with_nothing_to_attribute() -> None:
    result = split(b"this is not a calendar\r\nat all\r\n", "ics", "junk.ics")
    assert result.records == []
    assert len(result.errors) == 1 and result.errors[0].uid is None


def test_empty_file() -> None:
    result = split(b"", "ics", "empty.ics")
    assert (result.records, result.errors) == ([], [])
    assert split(b"", "vcf", "empty.vcf").records == []


# ---------------------------------------------------------------------------- vcf

CARDS = """BEGIN:VCARD
VERSION:2.1
N:Doe;John
FN:John Doe
TEL;HOME;VOICE:555-1234
UID:v21-uid
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Jane Roe
N:Roe;Jane;;;
UID:urn:uuid:0a0b0c0d-1111-2222-3333-444455556666
END:VCARD
BEGIN:vcard
VERSION:4.0
FN:No UID
END:vcard
"""


def test_vcards() -> None:
    result = split(crlf(CARDS), "vcf", "cards.vcf")
    assert result.errors == []
    assert result.wrapper == Wrapper()
    v21, v30, v40 = result.records
    assert v21.ident == "v21-uid"
    assert v30.ident == "urn:uuid:0a0b0c0d-1111-2222-3333-444455556666"
    assert v40.uid is None and v40.ident == CONTENT_IDENT_PREFIX + v40.hash
    assert v40.text == "BEGIN:vcard\r\nVERSION:4.0\r\nFN:No UID\r\nEND:vcard\r\n"
    assert join(result.records, "vcf") == crlf(CARDS)
    assert join([], "vcf") == b""
    # a UTF-8 byte order mark is tolerated
    bom = parse_record(
        b"\xef\xbb\xbf" + crlf(CARDS.split("END:VCARD\n")[0] + "END:VCARD\n"), "vcf", "b"
    )
    assert bom.ident == "v21-uid"


def test_duplicate_uid_in_vcf() -> None:
    card = "BEGIN:VCARD\nVERSION:3.0\nUID:same\nFN:{}\nEND:VCARD\n"
    result = split(crlf(card.format("First") + card.format("Second")), "vcf", "d.vcf")
    assert [r.text.count("First") for r in result.records] == [1]
    (error,) = result.errors
    assert error.uid == "same" and error.line == 6
    assert "line 6" in error.message and "line 1" in error.message


def test_shift_jis_bytes_survive() -> None:
    """vCard 2.1 with CHARSET=SHIFT_JIS: raw bytes that are not UTF-8 go through split,
    to_bytes and join unchanged."""
    data = (CORPUS / "vcf/aosp-vcard__v21_japanese_2.vcf").read_bytes()
    assert b"CHARSET=SHIFT_JIS" in data
    result = split(data, "vcf", "jp.vcf")
    assert result.errors == []
    (record,) = result.records
    assert "\udc88" in record.text or any(0xDC80 <= ord(c) <= 0xDCFF for c in record.text)
    assert record.to_bytes() == data
    assert join(result.records, "vcf") == data
    assert parse_record(data, "vcf", "jp.vcf").hash == record.hash

    multiple = (CORPUS / "vcf/aosp-vcard__v21_multiple_entry.vcf").read_bytes()
    result = split(multiple, "vcf", "m.vcf")
    assert len(result.records) == 3
    joined = join(result.records, "vcf")
    assert [line for line in joined.split(b"\r\n") if line] == [
        line for line in multiple.split(b"\r\n") if line
    ]


def test_vcard_21_blank_line_after_base64_is_kept() -> None:
    data = (CORPUS / "vcf/ezvcard__outlook-2003.vcf").read_bytes()
    (record,) = split(data, "vcf", "o.vcf").records
    assert "\r\n\r\nEMAIL;PREF;INTERNET:" in record.text


# ---------------------------------------------------------------------------- parse_record


def test_parse_record_keeps_the_text() -> None:
    text = HEAD + tz("Europe/Berlin") + event("a", "A") + TAIL
    record = parse_record(text.encode(), "ics", "a.ics")
    assert record == Record("a", "ics", text, record.hash, "a")
    assert record.hash == split(text.encode(), "ics", "a.ics").records[0].hash


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("ics", HEAD + event("a", "A") + event("b", "B") + TAIL, "holds 2 records (UIDs a, b)"),
        ("ics", HEAD + tz("Europe/Berlin") + TAIL, "no record"),
        ("ics", "", "no record"),
        ("ics", HEAD + event("a", "A", "DTEND:2024-13-45\n") + TAIL, "DTEND"),
        ("ics", HEAD + event("a", "A") + "END:VEVENT\n" + TAIL, "without a matching BEGIN"),
        ("ics", HEAD + event("a", "A"), "no END:VCALENDAR"),
        ("ics", HEAD + event("a", "A").replace("END:VEVENT", "END:VTODO") + TAIL, "END:VEVENT"),
        ("vcf", CARDS, "holds 3 records"),
        ("vcf", "BEGIN:VCARD\nFN:x\nEND:VCARD\n", "without VERSION"),
        ("vcf", "BEGIN:VCARD\nVERSION:3.0\nFN x;y:z\nEND:VCARD\n", "not a valid content line"),
        ("vcf", "", "no record"),
        ("vcf", "VERSION:3.0\nBEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n", "outside any vCard"),
    ],
)
def test_parse_record_rejects(kind: str, text: str, message: str) -> None:
    with pytest.raises(MalformedRecord) as raised:
        parse_record(text.encode(), kind, "item")
    assert message in str(raised.value)
    assert str(raised.value).startswith("item")


# ---------------------------------------------------------------------------- lines


def test_unfolding_keeps_physical_lines() -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;QUOTED-PRINTABLE:a=\r\nb=\r\n c\r\n\r\n"
        "FN:x\r\n y\r\nEND:VCARD"
    )
    doc = parse(text)
    assert doc.errors == []
    (card,) = doc.components
    assert [(line.text, line.lineno) for line in card.lines] == [
        ("VERSION:2.1", 2),
        ("NOTE;QUOTED-PRINTABLE:ab c", 3),
        ("FN:xy", 7),
    ]
    assert doc.raw(card.lines[1]) == ["NOTE;QUOTED-PRINTABLE:a=", "b=", " c"]
    assert doc.raw(card) == text.split("\r\n")


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        (b"BEGIN:VCARD\r\r\nVERSION:3.0\r\r\nEND:VCARD\r\r\n", "lone CR", 1),
        (b"BEGIN:VCARD\rVERSION:3.0\rEND:VCARD\r", "lone CR", 1),
        (b"BEGIN:VCARD\nVERSION:3.0\nFN:caf\xe9\nEND:VCARD\n", "invalid UTF-8", 3),
        (b"BEGIN:VCARD\nVERSION:3.0\nno colon here\nEND:VCARD\n", "without a colon", 3),
        (b" leading\nBEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n", "continues nothing", 1),
        (b"BEGIN:VCARD\nVERSION:3.0\n", "no END:VCARD", 1),
        (b"BEGIN:VCARD\nVERSION:3.0\nEND:VCALENDAR\nEND:VCARD\n", "END:VCALENDAR without", 3),
    ],
)
def test_line_errors(data: bytes, message: str, line: int) -> None:
    result = split(data, "vcf", "f.vcf")
    assert message in result.errors[0].message
    assert result.errors[0].line == line
    assert f"f.vcf:{line}" in str(result.errors[0])


def test_non_utf8_with_charset_is_accepted() -> None:
    data = b"BEGIN:VCARD\nVERSION:2.1\nFN;CHARSET=ISO-8859-1:caf\xe9\nEND:VCARD\n"
    (record,) = split(data, "vcf", "latin1.vcf").records
    assert record.to_bytes() == data.replace(b"\n", b"\r\n")


def test_stray_lines_outside_the_calendar_are_kept_in_the_wrapper() -> None:
    data = crlf(HEAD + event("a", "A") + TAIL + "X-COMMENT:cached\n")
    result = split(data, "ics", "x.ics")
    assert result.errors == []
    assert result.wrapper.properties[-1] == "X-COMMENT:cached"


# ---------------------------------------------------------------------------- package


def test_kind_for_path() -> None:
    assert kind_for_path("a/b/c.ics") == "ics"
    assert kind_for_path("C.ICS") == "ics"
    assert kind_for_path("x.vcf") == "vcf"
    assert kind_for_path("x.vCard") == "vcf"
    assert kind_for_path("x.txt") is None
    assert kind_for_path("ics") is None
    assert kind_for_path("dir.ics/file") is None


def test_import_does_not_load_parsers() -> None:
    code = (
        "import sys, pimsync.model; "
        "bad = [m for m in ('icalendar', 'vobject') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_speed() -> None:
    """10,000 small events: the line layer and the hash stay well under a second each on a
    developer machine; the bound here is loose so that a slow CI box does not flake."""
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:u{i}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T100000Z\r\n"
        f"SUMMARY:Event {i}\r\nLOCATION:Room 1\r\nEND:VEVENT\r\n"
        for i in range(10_000)
    )
    data = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{events}END:VCALENDAR\r\n".encode()
    split(data[:2000] + b"END:VEVENT\r\nEND:VCALENDAR\r\n", "ics", "warm-up", validate=False)
    start = time.perf_counter()
    result = split(data, "ics", "big.ics", validate=False)
    elapsed = time.perf_counter() - start
    assert len(result.records) == 10_000 and result.errors == []
    assert elapsed < 5.0, elapsed
