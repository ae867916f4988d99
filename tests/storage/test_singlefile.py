"""file storage specifics: what a rewrite keeps, and when it refuses to rewrite."""

from __future__ import annotations

import pytest

from pimsync.errors import PreconditionFailed, StorageError
from pimsync.model import parse_record, split
from pimsync.storage.singlefile import SingleFileStorage
from tests.conftest import CORPUS, make_event


def test_rewrite_keeps_order_wrapper_and_timezones(tmp_path):
    src = CORPUS / "ics" / "rie__machbar_16_feb_2019.ics"
    path = tmp_path / "cal.ics"
    path.write_bytes(src.read_bytes())
    storage = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False)
    col = storage.collection("cal")
    listing = col.list()
    before = split(src.read_bytes(), "ics", "src")
    col.create(parse_record(make_event("new-one"), "ics", "t"))
    col.flush()
    after = split(path.read_bytes(), "ics", str(path))
    assert [r.ident for r in after.records] == [r.ident for r in before.records] + ["new-one"]
    assert {r.ident: r.hash for r in after.records if r.ident != "new-one"} == {
        r.ident: r.hash for r in before.records
    }
    assert after.wrapper.properties == before.wrapper.properties
    assert "X-WR-TIMEZONE" in path.read_text()
    assert len(listing.items) == len(before.records)


def test_unchanged_file_lists_as_unchanged_without_reading(tmp_path, monkeypatch):
    path = tmp_path / "cal.ics"
    path.write_bytes(make_event("x"))
    col = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False).collection("cal")
    token = col.list().token
    fresh = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False).collection("cal")
    monkeypatch.setattr(type(fresh), "_load", lambda self: pytest.fail("read the file"))
    listing = fresh.list(token)
    assert listing.delta and listing.items == {}


def test_file_with_a_bad_value_is_read_but_not_rewritten(tmp_path):
    path = tmp_path / "cal.ics"
    broken = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
        "BEGIN:VEVENT\r\nUID:good\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\n"
        "SUMMARY:fine\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:bad\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:not-a-date\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    path.write_bytes(broken.encode())
    col = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False).collection("cal")
    listing = col.list()
    # the bad value is found when the record is read (only changed records are read)
    assert sorted(listing.items) == ["bad", "good"]
    got = {f.href: f for f in col.get(["good", "bad"])}
    assert got["good"].record is not None
    assert got["bad"].error.uid == "bad" and "DTSTART" in str(got["bad"].error)
    col.create(parse_record(make_event("new"), "ics", "t"))
    with pytest.raises(StorageError, match="not rewritten"):
        col.flush()
    assert path.read_bytes() == broken.encode()


def test_file_changed_by_someone_else_meanwhile_is_not_overwritten(tmp_path):
    path = tmp_path / "cal.ics"
    path.write_bytes(make_event("x"))
    col = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False).collection("cal")
    col.list()
    col.create(parse_record(make_event("y"), "ics", "t"))
    path.write_bytes(make_event("z", "written by the phone app"))
    with pytest.raises(PreconditionFailed):
        col.flush()
    assert b"written by the phone app" in path.read_bytes()


def test_without_placeholder_one_collection_named_after_the_file(tmp_path):
    path = tmp_path / "phone.vcf"
    path.write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:A\r\nEND:VCARD\r\n")
    storage = SingleFileStorage("f", path, "vcf", False)
    assert [c.id for c in storage.collections()] == ["phone"]
    assert list(storage.collection("phone").list().items) == ["c1"]


def test_file_with_a_broken_structure_is_read_but_not_rewritten(tmp_path):
    path = tmp_path / "cal.ics"
    broken = make_event("good").replace(b"END:VCALENDAR\r\n", b"") + (
        b"BEGIN:VEVENT\r\nUID:bad\r\nthis line has no colon\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    path.write_bytes(broken)
    col = SingleFileStorage("f", tmp_path / "{collection}.ics", "ics", False).collection("cal")
    listing = col.list()
    assert list(listing.items) == ["good"]
    assert [e.uid for e in listing.errors] == ["bad"]
    col.create(parse_record(make_event("new"), "ics", "t"))
    with pytest.raises(StorageError, match="not rewritten"):
        col.flush()
    assert path.read_bytes() == broken
