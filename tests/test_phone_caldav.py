"""The phone-and-PC scenario with the phone being the caldav library, on every test server.

The PC is a vdir synced by ``pimsync run``; the phone is what a phone's sync adapter does
on the wire: the caldav library creating, editing (through its icalendar object, with its
``If-Match``) and deleting events on the server, and (the caldav library has no CardDAV
API) its ``DAVClient`` putting and deleting vCards. Edits on both sides, of one record
and of different records, meet through the server; after two runs the PC holds what the
phone holds, and a further run writes nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import caldav

from pimsync.cli import main
from pimsync.model import parse_record
from tests.conftest import make_card, make_event

NO_CHANGE = "a +0 ~0 -0, b +0 ~0 -0, 0 errors"


class Pc:
    """A vdir paired with the server's home, one collection."""

    def __init__(self, tmp: Path, server, kind: str) -> None:
        self.kind = kind
        self.col = f"phone-{uuid.uuid4().hex[:10]}"
        self.dir = tmp / "pc" / self.col
        self.dir.mkdir(parents=True)
        login = ""
        if server.username:
            login = f'username = "{server.username}"\npassword = "{server.password or "x"}"\n'
        self.cfg = tmp / "config.toml"
        self.cfg.write_text(
            f"""
[general]
state_dir = "state"

[storages.pc]
type = "vdir"
path = "pc"
fileext = ".{kind}"

[storages.server]
type = "{"caldav" if kind == "ics" else "carddav"}"
url = "{server.url.rstrip("/")}{server.home(kind)}"
{login}
[pairs.p]
a = "pc"
b = "server"
collections = ["{self.col}"]
"""
        )

    def run(self, capsys) -> str:
        rc = main(["--config", str(self.cfg), "run"])
        out = capsys.readouterr()
        assert rc == 0, out.out + out.err
        return out.out

    def files(self) -> dict[str, bytes]:
        return {
            parse_record(p.read_bytes(), self.kind, str(p)).ident: p.read_bytes()  # type: ignore[arg-type]
            for p in self.dir.glob(f"*.{self.kind}")
        }

    def write(self, uid: str, data: bytes) -> None:
        for p in self.dir.glob(f"*.{self.kind}"):
            if parse_record(p.read_bytes(), self.kind, str(p)).ident == uid:  # type: ignore[arg-type]
                p.write_bytes(data)
                return
        (self.dir / f"{uid}.{self.kind}").write_bytes(data)


def _client(server) -> caldav.DAVClient:
    return caldav.DAVClient(
        url=server.url, username=server.username, password=server.password or None
    )


def _summaries(calendar: caldav.Calendar) -> dict[str, str]:
    out = {}
    for event in calendar.get_events():
        component = event.get_icalendar_component()
        out[str(component["UID"])] = str(component["SUMMARY"])
    return out


def _lines(data: bytes) -> list[str]:
    return data.decode().replace("\r\n ", "").replace("\r\n", "\n").splitlines()


def test_a_caldav_library_phone_and_a_pc_converge(tmp_path, dav_server, capsys):
    pc = Pc(tmp_path, dav_server, "ics")
    for i in range(3):
        pc.write(f"ev-{i}-{pc.col}", make_event(f"ev-{i}-{pc.col}", f"from the pc {i}"))
    pc.run(capsys)  # creates the calendar, uploads three events
    ev = [f"ev-{i}-{pc.col}" for i in range(3)]
    client = _client(dav_server)
    try:
        url = f"{dav_server.url.rstrip('/')}{dav_server.collection_path(pc.col, 'ics')}"
        phone = caldav.Calendar(client=client, url=url)
        assert _summaries(phone) == {ev[0]: "from the pc 0", ev[1]: "from the pc 1",
                                     ev[2]: "from the pc 2"}  # fmt: skip

        # the phone: edits one event, deletes one, adds one; the PC edits the third
        first = phone.get_event_by_uid(ev[0])
        with first.edit_icalendar_component() as component:
            component["SUMMARY"] = "edited on the phone"
        first.save()
        phone.get_event_by_uid(ev[1]).delete()
        new = f"new-{pc.col}"
        phone.save_event(make_event(new, "new on the phone").decode())
        pc.write(ev[2], make_event(ev[2], "edited on the pc"))

        out = pc.run(capsys)
        assert f"p/{pc.col}: a +1 ~1 -1, b +0 ~1 -0, 0 errors" in out, out
        files = pc.files()
        assert set(files) == {ev[0], ev[2], new}
        assert "SUMMARY:edited on the phone" in _lines(files[ev[0]])
        assert "SUMMARY:new on the phone" in _lines(files[new])
        assert _summaries(phone) == {
            ev[0]: "edited on the phone",
            ev[2]: "edited on the pc",
            new: "new on the phone",
        }

        # both edit one event, different properties: merged on both sides
        again = phone.get_event_by_uid(ev[2])
        with again.edit_icalendar_component() as component:
            component["LOCATION"] = "Room 4 (the phone)"
        again.save()
        pc.write(ev[2], make_event(ev[2], "the pc's title"))
        out = pc.run(capsys)
        assert f"p/{pc.col}: a +0 ~1 -0, b +0 ~1 -0, 1 merged, 0 errors" in out, out
        lines = _lines(pc.files()[ev[2]])
        assert "SUMMARY:the pc's title" in lines, lines
        assert "LOCATION:Room 4 (the phone)" in lines, lines
        merged = phone.get_event_by_uid(ev[2]).get_icalendar_component()
        assert str(merged["SUMMARY"]) == "the pc's title"
        assert str(merged["LOCATION"]) == "Room 4 (the phone)"

        # nothing left to do, on either side
        assert f"p/{pc.col}: {NO_CHANGE}" in pc.run(capsys)
    finally:
        client.close()


def test_a_caldav_library_phone_and_a_pc_converge_on_contacts(tmp_path, dav_server, capsys):
    pc = Pc(tmp_path, dav_server, "vcf")
    cards = [f"card-{i}-{pc.col}" for i in range(3)]
    for i, uid in enumerate(cards):
        pc.write(uid, make_card(uid, f"Person {i}"))
    pc.run(capsys)
    client = _client(dav_server)
    try:
        base = f"{dav_server.url.rstrip('/')}{dav_server.collection_path(pc.col, 'vcf')}"
        hrefs = dav_server.etags(dav_server.collection_path(pc.col, "vcf"))
        by_uid = {}
        for href, etag in hrefs.items():
            ident = parse_record(dav_server.request("GET", href).body, "vcf", href).ident
            by_uid[ident] = (f"{dav_server.url.rstrip('/')}{href}", etag)
        assert set(by_uid) == set(cards)

        # the phone: a new TEL on one card, one card deleted, one new card
        url, etag = by_uid[cards[0]]
        edited = make_card(cards[0], "Person 0", extra="TEL;TYPE=CELL:+1-555-0100\r\n")
        answer = client.put(url, edited.decode(), {"If-Match": etag,
                                                   "Content-Type": "text/vcard"})  # fmt: skip
        assert answer.status in (200, 201, 204), answer.status
        url, etag = by_uid[cards[1]]
        assert client.delete(url, {"If-Match": etag}).status in (200, 204)
        new = f"new-{pc.col}"
        answer = client.put(f"{base}{new}.vcf", make_card(new, "From the phone").decode(),
                            {"If-None-Match": "*", "Content-Type": "text/vcard"})  # fmt: skip
        assert answer.status in (200, 201, 204), answer.status

        out = pc.run(capsys)
        assert f"p/{pc.col}: a +1 ~1 -1, b +0 ~0 -0, 0 errors" in out, out
        files = pc.files()
        assert set(files) == {cards[0], cards[2], new}
        assert "TEL;TYPE=CELL:+1-555-0100" in _lines(files[cards[0]])
        assert "FN:From the phone" in _lines(files[new])
        assert f"p/{pc.col}: {NO_CHANGE}" in pc.run(capsys)
    finally:
        client.close()
