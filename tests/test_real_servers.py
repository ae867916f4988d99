"""What real servers need on the wire, end to end through the CLI, on every test server
(``dav_server``): collections made with their name and color in one request, events
stored without ``METHOD``, records without UID given one before they go to a server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import servers as dav_servers
from tests.conftest import make_card

NO_CHANGE = "a +0 ~0 -0, b +0 ~0 -0, 0 errors"


def _config(tmp_path: Path, server: dav_servers.DavServer, kind: str, collections: str) -> Path:
    """A vdir "pc" (under tmp_path/pc) paired with the server's home for KIND."""
    cfg = tmp_path / "config.toml"
    home = server.home(kind)  # type: ignore[arg-type]
    login = ""
    if server.username is not None:
        login = f'username = "{server.username}"\npassword = "{server.password or "x"}"\n'
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.pc]
type = "vdir"
path = "pc"
fileext = ".{kind}"
[storages.server]
type = "{"caldav" if kind == "ics" else "carddav"}"
url = "{server.url.rstrip("/")}{home}"
{login}
[pairs.p]
a = "pc"
b = "server"
collections = {collections}
"""
    )
    return cfg


def _run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), *args, "run"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _server_bodies(server: dav_servers.DavServer, path: str) -> dict[str, bytes]:
    out = {}
    for href in server.etags(path):
        resp = server.request("GET", href)
        assert resp.status == 200, (href, resp.status)
        out[href] = resp.body
    return out


def _name() -> str:
    return f"real-{uuid.uuid4().hex[:8]}"


def _delete(server: dav_servers.DavServer, path: str) -> None:
    try:
        server.request("DELETE", path)
    except OSError:
        pass


EVENT_WITH_METHOD = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T090000Z\r\n"
    "DTSTART:20261210T100000Z\r\nDTEND:20261210T110000Z\r\nSUMMARY:Invitation\r\n"
    "ORGANIZER;CN=Org:mailto:org@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:me@example.org\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_a_new_calendar_is_made_with_its_name_and_color(tmp_path, dav_server):
    name = _name()
    local = tmp_path / "pc" / name
    local.mkdir(parents=True)
    (local / "displayname").write_text("Work and more")
    (local / "color").write_text("#1E90FFFF")
    (local / "e.ics").write_bytes(EVENT_WITH_METHOD.format(uid=f"ev-{name}").encode())
    cfg = _config(tmp_path, dav_server, "ics", f'["{name}"]')
    path = dav_server.collection_path(name, "ics")
    try:
        run = _run(cfg, "-v")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "created collection on b" in run.stdout
        resp = dav_server.propfind(
            path,
            '<D:displayname/><A:calendar-color xmlns:A="http://apple.com/ns/ical/"/>',
            depth="0",
        )
        assert resp.status == 207, resp.text
        assert "Work and more" in resp.text
        assert "#1E90FF" in resp.text.upper()
        again = _run(cfg)
        assert again.returncode == 0, again.stdout + again.stderr
        assert NO_CHANGE in again.stdout
    finally:
        _delete(dav_server, path)


def test_an_address_book_is_made_with_its_name(tmp_path, dav_server):
    name = _name()
    local = tmp_path / "pc" / name
    local.mkdir(parents=True)
    (local / "displayname").write_text("Family")
    (local / "c.vcf").write_bytes(make_card(f"card-{name}", "Ann Example"))
    cfg = _config(tmp_path, dav_server, "vcf", f'["{name}"]')
    path = dav_server.collection_path(name, "vcf")
    try:
        run = _run(cfg)
        assert run.returncode == 0, run.stdout + run.stderr
        resp = dav_server.propfind(path, "<D:displayname/><D:resourcetype/>", depth="0")
        assert resp.status == 207, resp.text
        assert "Family" in resp.text
        assert "addressbook" in resp.text
        assert len(dav_server.etags(path)) == 1
    finally:
        _delete(dav_server, path)


def test_an_event_with_method_goes_to_the_server_without_it_and_stays_here(tmp_path, dav_server):
    """RFC 4791 4.1: no METHOD in a stored calendar object (Cyrus refuses the PUT). The
    local file keeps it, and nothing is written back and forth for it."""
    name = _name()
    local = tmp_path / "pc" / name
    local.mkdir(parents=True)
    data = EVENT_WITH_METHOD.format(uid=f"ev-{name}").encode()
    (local / "e.ics").write_bytes(data)
    cfg = _config(tmp_path, dav_server, "ics", f'["{name}"]')
    path = dav_server.collection_path(name, "ics")
    try:
        run = _run(cfg)
        assert run.returncode == 0, run.stdout + run.stderr
        bodies = _server_bodies(dav_server, path)
        assert len(bodies) == 1
        body = next(iter(bodies.values()))
        assert b"Invitation" in body
        assert b"METHOD" not in body.upper()
        assert (local / "e.ics").read_bytes() == data
        again = _run(cfg)
        assert again.returncode == 0, again.stdout + again.stderr
        assert NO_CHANGE in again.stdout
        assert (local / "e.ics").read_bytes() == data
    finally:
        _delete(dav_server, path)


CARD_WITHOUT_UID = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Nobody Known\r\nN:Known;Nobody;;;\r\n"
    "KIND:individual\r\nTEL;TYPE=cell:+1-555-0100\r\nEND:VCARD\r\n"
)


def test_a_card_without_uid_gets_one_from_its_content_on_both_sides(tmp_path, dav_server):
    """Cyrus refuses a card without UID and DAViCal invents one: pimsync gives it a UID
    derived from its content, in the local file first (right after VERSION, which a
    vCard 4.0 needs first), then uploads it; the next run has nothing to do."""
    name = _name()
    local = tmp_path / "pc" / name
    local.mkdir(parents=True)
    (local / "nobody.vcf").write_bytes(CARD_WITHOUT_UID.encode())
    cfg = _config(tmp_path, dav_server, "vcf", f'["{name}"]')
    path = dav_server.collection_path(name, "vcf")
    try:
        run = _run(cfg, "-v")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "give UID" in run.stdout
        assert "a +0 ~1 -0, b +1 ~0 -0" in run.stdout
        text = (local / "nobody.vcf").read_text()
        lines = text.splitlines()
        assert lines[:2] == ["BEGIN:VCARD", "VERSION:4.0"]
        uid = next(line[4:] for line in lines if line.startswith("UID:"))
        assert lines[2] == f"UID:{uid}"
        assert str(uuid.UUID(uid)) == uid  # a UUID
        bodies = _server_bodies(dav_server, path)
        assert len(bodies) == 1
        assert f"UID:{uid}".encode() in next(iter(bodies.values()))
        again = _run(cfg)
        assert again.returncode == 0, again.stdout + again.stderr
        assert NO_CHANGE in again.stdout
        assert len(list(local.glob("*.vcf"))) == 1
    finally:
        _delete(dav_server, path)


def test_the_uid_given_to_a_card_is_the_same_on_every_machine():
    from pimsync.model import content_uid, parse_record, with_uid

    record = parse_record(CARD_WITHOUT_UID.encode(), "vcf", "x.vcf")
    again = parse_record(CARD_WITHOUT_UID.replace("\r\n", "\n").encode(), "vcf", "y.vcf")
    assert content_uid(record) == content_uid(again)
    other = parse_record(CARD_WITHOUT_UID.replace("Nobody", "Somebody").encode(), "vcf", "z")
    assert content_uid(other) != content_uid(record)
    given = with_uid(record, content_uid(record))
    assert given.uid == content_uid(record)
    assert given.text.splitlines()[1:3] == ["VERSION:4.0", f"UID:{content_uid(record)}"]


@pytest.mark.parametrize(
    "data",
    [
        EVENT_WITH_METHOD.format(uid="m1"),
        EVENT_WITH_METHOD.format(uid="m1").replace("METHOD:REQUEST", "METHOD:REQ\r\n UEST"),
        EVENT_WITH_METHOD.format(uid="m1").replace("METHOD:REQUEST", "method;X-A=1:PUBLISH"),
        EVENT_WITH_METHOD.format(uid="m1").replace("\r\n", "\n"),
    ],
)
def test_method_is_left_out_and_nothing_else(data):
    from pimsync.model import parse_record, without_method

    raw = data.encode()
    out = without_method(raw)
    assert b"METHOD" not in out.upper().replace(b"X-A=1", b"")
    assert b"UEST" not in out.split(b"BEGIN:VEVENT")[0]
    expected = b"\n".join(
        line for line in raw.split(b"\n") if not line.upper().startswith((b"METHOD", b" UEST"))
    )
    assert out == expected
    assert parse_record(out, "ics", "x").hash == parse_record(raw, "ics", "x").hash


def test_an_event_without_method_is_sent_as_it_is():
    from pimsync.model import without_method

    raw = EVENT_WITH_METHOD.format(uid="m2").replace("METHOD:REQUEST\r\n", "").encode()
    raw = raw.replace(b"SUMMARY:Invitation", b"SUMMARY:METHOD: how to")
    assert without_method(raw) is raw or without_method(raw) == raw


CARD_40 = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\n"
    "KIND:individual\r\nTEL;VALUE=uri;TYPE=cell:tel:+1-555-0100\r\n"
    "EMAIL;TYPE=work:ann@example.org\r\nNOTE:written here\\, by hand\r\nEND:VCARD\r\n"
)
EVENT_RRULE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//here//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261201T090000Z\r\nDTSTART:20261207T100000Z\r\nDURATION:PT1H\r\n"
    "RRULE:BYDAY=MO,WE;INTERVAL=1;FREQ=WEEKLY\r\n"
    "EXDATE:20261209T100000Z,20261214T100000Z\r\nSUMMARY:Standup\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _phone_edit(server: dav_servers.DavServer, path: str, old: bytes, new: bytes) -> None:
    """A phone changes one property of the server's version (as the server stores it)."""
    (href, etag), *more = server.etags(path).items()
    assert not more
    body = server.request("GET", href).body
    edited = b"\n".join(
        new if line.rstrip(b"\r").startswith(old) else line for line in body.split(b"\n")
    )
    assert edited != body, body
    assert server.put(href, edited, if_match=etag).status in (200, 201, 204)


@pytest.mark.parametrize(
    ("kind", "template", "old", "new", "kept"),
    [
        (
            "vcf",
            CARD_40,
            b"TEL",
            b"TEL;TYPE=CELL:+1-555-0199\r",
            ["VERSION:4.0", "KIND:individual", "NOTE:written here\\, by hand"],
        ),
        (
            "ics",
            EVENT_RRULE,
            b"SUMMARY",
            b"SUMMARY:Standup (moved)\r",
            [
                "RRULE:BYDAY=MO,WE;INTERVAL=1;FREQ=WEEKLY",
                "EXDATE:20261209T100000Z,20261214T100000Z",
                "PRODID:-//here//EN",
            ],
        ),
    ],
)
def test_a_phone_edit_of_a_rewritten_record_changes_only_what_the_phone_changed(
    tmp_path, dav_server, kind, template, old, new, kept
):
    """Whatever the server made of the uploaded record (Cyrus: vCard 4.0 as 3.0, RRULE
    parts reordered, EXDATE split), the phone's change reaches the local file as that
    change: the rest of the file stays as the user wrote it."""
    name = _name()
    local = tmp_path / "pc" / name
    local.mkdir(parents=True)
    file = local / f"r.{kind}"
    file.write_bytes(template.format(uid=f"r-{name}").encode())
    cfg = _config(tmp_path, dav_server, kind, f'["{name}"]')
    path = dav_server.collection_path(name, kind)  # type: ignore[arg-type]
    try:
        first = _run(cfg)
        assert first.returncode == 0, first.stdout + first.stderr
        _phone_edit(dav_server, path, old, new)
        run = _run(cfg)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "a +0 ~1 -0, b +0 ~0 -0" in run.stdout
        lines = file.read_text().splitlines()
        assert new.decode().strip() in lines, lines
        for line in kept:
            assert line in lines, (line, lines)
        again = _run(cfg)
        assert NO_CHANGE in again.stdout, again.stdout + again.stderr
    finally:
        _delete(dav_server, path)
