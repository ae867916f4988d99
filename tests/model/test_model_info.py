"""summary, newest_key and with_uid."""

from __future__ import annotations

import pytest
from model_helpers import CORPUS

from pimsync.model import CONTENT_IDENT_PREFIX, Record, parse_record, split, with_uid
from pimsync.model.info import newest_key, summary


def record(text: str, kind: str = "ics") -> Record:
    return parse_record(text.replace("\n", "\r\n").encode(), kind, "test")


CAL = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n{}END:VCALENDAR\n"
MASTER = (
    "BEGIN:VEVENT\nUID:e1\nDTSTAMP:20240101T000000Z\nDTSTART:20240105T100000Z\n"
    "RRULE:FREQ=DAILY;COUNT=3\nSUMMARY:Stand-up\\, daily\n{}END:VEVENT\n"
)
OVERRIDE = (
    "BEGIN:VEVENT\nUID:e1\nDTSTAMP:20240301T000000Z\nRECURRENCE-ID:20240106T100000Z\n"
    "DTSTART:20240106T110000Z\nSUMMARY:Moved stand-up\n{}END:VEVENT\n"
)


def test_summary() -> None:
    # the master's SUMMARY even when an override comes first; escapes undone
    assert summary(record(CAL.format(OVERRIDE.format("") + MASTER.format("")))) == (
        "Stand-up, daily"
    )
    assert summary(record(CAL.format(OVERRIDE.format("")))) == "Moved stand-up"
    no_summary = "BEGIN:VTODO\nUID:t\nDTSTAMP:20240101T000000Z\nEND:VTODO\n"
    assert summary(record(CAL.format(no_summary))) == ""
    card = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann Example\nEND:VCARD\n"
    assert summary(record(card, "vcf")) == "Ann Example"
    assert summary(record(card.replace("FN:Ann Example\n", ""), "vcf")) == ""


def test_summary_decodes_vcard_21() -> None:
    qp = (
        "BEGIN:VCARD\nVERSION:2.1\n"
        "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen =\nM=C3=BCller\nEND:VCARD\n"
    )
    assert summary(record(qp, "vcf")) == "Jürgen Müller"
    sjis = parse_record((CORPUS / "vcf/aosp-vcard__v21_japanese_2.vcf").read_bytes(), "vcf", "jp")
    assert summary(sjis) == "安藤 ロイド 1"


def test_newest_key_ics() -> None:
    plain = record(CAL.format(MASTER.format("")))
    assert newest_key(plain) == ("", "20240101T000000Z", -1)
    both = record(
        CAL.format(
            MASTER.format("LAST-MODIFIED:20240201T000000Z\nSEQUENCE:2\n")
            + OVERRIDE.format("LAST-MODIFIED:20240315T120000Z\nSEQUENCE:1\n")
        )
    )
    # the latest of the components, then DTSTAMP, then SEQUENCE
    assert newest_key(both) == ("20240315T120000Z", "20240301T000000Z", 2)
    assert newest_key(both) > newest_key(plain)
    in_berlin = record(
        CAL.format(MASTER.format("LAST-MODIFIED;TZID=Europe/Berlin:20240701T120000\n"))
    )
    assert newest_key(in_berlin)[0] == "20240701T100000Z"


@pytest.mark.parametrize(
    ("rev", "expected"),
    [
        ("REV:20080424T195243Z", "20080424T195243Z"),
        ("REV:2012-03-05T13:32:54Z", "20120305T133254Z"),
        ("REV:2017-05-10T14:34:50Z(0)", "20170510T143450Z"),
        ("REV:1997-11-15", "19971115T000000Z"),
        ("REV:2024-01-01T12:00:00+02:00", "20240101T100000Z"),
        ("REV:2024-01-01T12:00:00.123Z", "20240101T120000Z"),
        ("REV;VALUE=DATE-AND-OR-TIME:20210314T092838Z", "20210314T092838Z"),
        ("REV:1", ""),
        ("REV:2014722T222710Z", ""),
        ("NOTE:no rev", ""),
    ],
)
def test_newest_key_vcf(rev: str, expected: str) -> None:
    card = f"BEGIN:VCARD\nVERSION:3.0\nFN:x\n{rev}\nEND:VCARD\n"
    assert newest_key(record(card, "vcf")) == (expected, "", -1)


def test_with_uid_ics() -> None:
    long_uid = "new-" + "x" * 100
    original = record(CAL.format(MASTER.format("") + OVERRIDE.format("")))
    copy = with_uid(original, long_uid)
    assert (copy.ident, copy.uid, copy.kind) == (long_uid, long_uid, "ics")
    assert copy.hash != original.hash
    again = parse_record(copy.to_bytes(), "ics", "copy")
    assert (again.ident, again.hash) == (long_uid, copy.hash)
    assert "UID:e1" not in copy.text
    assert max(len(line.encode()) for line in copy.text.split("\r\n")) <= 75
    # everything else is as it was
    keep = [line for line in original.text.split("\r\n") if not line.startswith("UID:")]
    assert [line for line in copy.text.split("\r\n") if line in keep] == keep
    # back to the old UID: the same record again
    assert with_uid(copy, "e1").hash == original.hash


def test_with_uid_without_uid_and_vcf() -> None:
    no_uid = record(CAL.format(MASTER.format("").replace("UID:e1\n", "")))
    assert no_uid.ident.startswith(CONTENT_IDENT_PREFIX)
    copy = with_uid(no_uid, "fresh")
    assert copy.ident == "fresh" and "\r\nUID:fresh\r\n" in copy.text
    assert parse_record(copy.to_bytes(), "ics", "c").hash == copy.hash

    cards = split((CORPUS / "vcf/ezvcard__gmail-list.vcf").read_bytes(), "vcf", "g")
    card = cards.records[0]
    copy = with_uid(card, "urn:uuid:1234")
    assert copy.ident == "urn:uuid:1234"
    assert parse_record(copy.to_bytes(), "vcf", "c").ident == "urn:uuid:1234"
    with pytest.raises(ValueError):
        with_uid(card, "two\nlines")
