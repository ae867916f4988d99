"""The whole conformance corpus through split, join and parse_record."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from model_helpers import CORPUS, content, malformed, well_formed

from pimsync.errors import MalformedRecord
from pimsync.model import join, parse_record, split


def test_corpus_is_there() -> None:
    assert CORPUS == CORPUS.resolve()
    assert len(well_formed()) > 100
    assert len(malformed()) == 29


def _physical(data: bytes) -> list[bytes]:
    return [line for line in re.split(rb"\r\n|\n", data) if line]


@pytest.mark.parametrize(("name", "kind"), well_formed())
def test_well_formed_file(name: str, kind: str) -> None:
    data = (CORPUS / name).read_bytes()
    result = split(data, kind, name)
    assert result.errors == []
    assert result.records
    if kind == "vcf":
        assert result.wrapper.properties == () and result.wrapper.timezones == ()

    # join, then split again: the same records
    joined = join(result.records, kind, result.wrapper)
    again = split(joined, kind, name)
    assert again.errors == []
    assert [(r.ident, r.hash) for r in again.records] == [(r.ident, r.hash) for r in result.records]
    assert again.wrapper == result.wrapper

    # nothing lost: every property, parameter and value is still there
    main, timezones = content(data)
    main2, timezones2 = content(joined)
    assert main2 == main
    assert timezones2 == timezones  # VTIMEZONEs: deduplicated by TZID, else the same

    # byte for byte: each record is made of the file's own physical lines
    original = Counter(_physical(data))
    for record in result.records:
        lines = Counter(_physical(record.to_bytes()))
        if kind == "ics":
            del lines[b"BEGIN:VCALENDAR"], lines[b"END:VCALENDAR"]
        assert not lines - original, record.ident
        assert record.text.endswith("\r\n")
        assert "\n" not in record.text.replace("\r\n", "")

    # each record stands alone: parse_record agrees, and it splits into itself
    for record in result.records:
        alone = parse_record(record.to_bytes(), kind, f"{name}#{record.ident}")
        assert (alone.ident, alone.hash, alone.uid) == (record.ident, record.hash, record.uid)
        assert alone.text == record.text
        itself = split(record.to_bytes(), kind, name)
        assert itself.errors == []
        assert itself.records == [record]


# What each malformed corpus file is expected to produce: a piece of the first error's
# message, or None where the defect is not detected, with the reason.
MALFORMED: dict[str, str | None] = {
    "aosp-vcard__v21_invalid_comment_line.vcf": "line without a colon",
    # a colon inside BASE64 data: the line grammar reads it as part of the value and
    # nothing decodes PHOTO; a value-level defect
    "aosp-vcard__v21_malformed_photo.vcf": None,
    "aosp-vcard__v30_ios_613_multiline.vcf": "lone CR",
    "ccs__Test-01B.ics": "lone CR",
    "eds__libebook_vcard_7.vcf": "line outside any vCard",
    "eds__libebook_vcard_9.vcf": "no END:VCARD",
    "ezvcard__John_Doe_IPHONE.vcf": "lone CR",
    "gammu__se-3.vcf": "line without a colon",
    "ical4j__1106817412.ics": "invalid UTF-8",
    "ical4j__13-MoonPhase.ics": "no END:VCALENDAR",
    "ical4j__apple-iphone-os-26-structured-location.ics": "not a valid content line",
    "ical4j__blankTzid.ics": "TZID",
    # VTIMEZONE DTSTART;VALUE=DATE: a value-level defect icalendar 7.3 accepts
    "ical4j__evolution2.ics": None,
    # a space inside a CAL-ADDRESS and a trailing space in PRODID: icalendar accepts both
    "ical4j__groupwise.ics": None,
    # GEO:12.34567\;12.34567: icalendar 7.3 reads it without recording an error
    "ical4j__sogo-geo-escaped-semicolon.ics": None,
    "icalendar__broken_dtstart.ics": "invalid DTSTART",
    "icalendar__fuzz_testcase_vtimezone_lone_cr.ics": "BEGIN:VCALENDAR expected",
    "icalendar__issue_104_broken_calendar.ics": "line without a colon: 'X'",
    "icalendar__issue_165_missing_event.ics": "invalid RRULE",
    "icalendar__parsing_error.ics": "invalid EXDATE",
    "icalendar__parsing_error_in_UTC_offset.ics": "Offset must be less than 24 hours",
    "icaljs__google_birthday.ics": "invalid RDATE",
    "icaljs__recur_instances.ics": "VTIMEZONE without a (readable) TZID",
    "ics-parser__issue-343.ics": "line without a colon",
    "kcalendarcore__AppleICal_1.5.ics": "STANDARD lacks DTSTART, TZOFFSETFROM",
    "kcontacts__vcard9.vcf": "invalid UTF-8",
    "khal__invalid_tzoffset.ics": "Offset must be less than 24 hours",
    "khal__non_dst_error.ics": "PT-2H",
    "rie__issue_61_time_zone_error.ics": "not a valid content line",
}


def test_every_malformed_file_is_listed() -> None:
    assert sorted(MALFORMED) == sorted(name.split("/", 1)[1] for name, _ in malformed())


@pytest.mark.parametrize(("name", "kind"), malformed())
def test_malformed_file(name: str, kind: str) -> None:
    base = name.split("/", 1)[1]
    expected = MALFORMED[base]
    data = (CORPUS / name).read_bytes()
    result = split(data, kind, name)
    if expected is None:
        assert result.errors == [], "now detected: move it to the detected ones"
        return
    assert result.errors, f"{name}: defect not detected"
    assert expected in result.errors[0].message
    for error in result.errors:
        assert isinstance(error, MalformedRecord)
        assert name in str(error)  # names the file
        assert error.line is not None and f"{name}:{error.line}" in str(error)
    # a file reader never gets more records than are there, and broken ones are left out
    assert all(r.ident for r in result.records)
    with pytest.raises(MalformedRecord) as raised:
        parse_record(data, kind, name)
    assert name in str(raised.value)


def test_malformed_details() -> None:
    """The rest of a multi-record file is still returned, and errors carry the UID."""
    gammu = split((CORPUS / "malformed/gammu__se-3.vcf").read_bytes(), "vcf", "se-3.vcf")
    assert len(gammu.records) == 498 and len(gammu.errors) == 1
    assert gammu.errors[0].line == 4448

    moon = split((CORPUS / "malformed/ical4j__13-MoonPhase.ics").read_bytes(), "ics", "m")
    assert len(moon.records) == 41  # the 42nd event is cut off
    assert [e.line for e in moon.errors] == [1, 213]

    apple = split((CORPUS / "malformed/kcalendarcore__AppleICal_1.5.ics").read_bytes(), "ics", "a")
    assert apple.records and apple.errors  # records using the broken VTIMEZONE only
    assert "76338AC4-873F-11D8-92F9-0003939BE42C" in {e.uid for e in apple.errors}

    broken = split((CORPUS / "malformed/icalendar__broken_dtstart.ics").read_bytes(), "ics", "b")
    assert broken.errors[0].uid == "test-123"

    cr_only = split((CORPUS / "malformed/ccs__Test-01B.ics").read_bytes(), "ics", "c")
    assert len(cr_only.errors) == 1 and cr_only.errors[0].uid is None
