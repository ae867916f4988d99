"""conflict = "merge" end to end: concurrent edits of different properties merge; the same
property changed differently is a conflict settled by conflict_fallback, its losing version
kept for `pimsync conflicts`. Locally (vdir <-> file) and through Radicale, Xandikos, Cyrus
and DAViCal."""

from __future__ import annotations

import uuid

import pytest

from pimsync.cli import main
from pimsync.model import parse_record
from pimsync.plan import Copy, Merge, MergeWrite, Options, SideView, plan, settle
from pimsync.plan_types import Entry, Item, Known
from tests.test_dav_sync import Setup

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
    "SEQUENCE:0\r\nSUMMARY:Planning\r\nLOCATION:{location}\r\nDESCRIPTION:{description}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\n"
    "TEL;TYPE=CELL:{tel}\r\nEMAIL;TYPE=HOME:{email}\r\nEND:VCARD\r\n"
)


def event(uid="m1", location="Room 1", description="Agenda"):
    return EVENT.format(uid=uid, location=location, description=description).encode()


def card(uid="c1", tel="+49 1", email="ann@example.org"):
    return CARD.format(uid=uid, tel=tel, email=email).encode()


def item(data: bytes, kind: str = "ics", etag: str = "e") -> Item:
    r = parse_record(data, kind, "t")
    return Item(f"{r.ident}.{kind}", etag + r.hash[:6], r.hash, r)


# -- planner -----------------------------------------------------------------------------
def test_changed_on_both_sides_is_merged_against_the_base():
    base = parse_record(event(), "ics", "base")
    A, B = item(event(location="Room 2")), item(event(description="New agenda"))
    entry = Entry("m1", Known(A.href, "x", base.hash), Known(B.href, "y", base.hash))
    a, b = SideView({"m1": A}), SideView({"m1": B})
    first = plan(a, b, {"m1": entry}, options=Options("merge"))
    assert [type(x) for x in first.actions] == [Merge]
    settled = settle(first, {"m1": base}, a, b, Options("merge"))
    [write] = settled.actions
    assert isinstance(write, MergeWrite) and not write.details
    assert b"LOCATION:Room 2" in write.record.to_bytes()
    assert b"DESCRIPTION:New agenda" in write.record.to_bytes()


def test_no_base_means_the_fallback_settles_it():
    A, B = item(event(location="Room 2")), item(event(location="Room 3"))
    a, b = SideView({"m1": A}), SideView({"m1": B})
    never_synced = plan(a, b, {}, options=Options("merge", fallback="b wins"))
    [copy] = never_synced.actions
    assert isinstance(copy, Copy) and copy.to == "a" and "no base" in copy.reason
    entry = Entry("m1", Known(A.href, "x", "old"), Known(B.href, "y", "old"))
    lost_base = settle(plan(a, b, {"m1": entry}), {"m1": None}, a, b, Options("merge"))
    assert isinstance(lost_base.actions[0], Copy)


# -- end to end --------------------------------------------------------------------------
@pytest.fixture(params=["local", "radicale", "xandikos", "cyrus", "davical"])
def where(request):
    return request.param


def test_edits_of_different_properties_merge(tmp_path, where, capsys):
    server = request_server(where)
    for kind, make, a_edit, b_edit, a_line, b_line in (
        ("ics", event, {"location": "Room 2"}, {"description": "New agenda"},
         b"LOCATION:Room 2", b"DESCRIPTION:New agenda"),
        ("vcf", card, {"tel": "+49 2"}, {"email": "ann@work.example"},
         b"TEL;TYPE=CELL:+49 2", b"EMAIL;TYPE=HOME:ann@work.example"),
    ):  # fmt: skip
        s = setup(tmp_path / kind, server, kind)
        uid = f"{kind}-{uuid.uuid4().hex[:6]}"
        s.pc_write_raw(uid, make(uid))
        assert s.run() == 0 and s.run() == 0
        s.pc_write_raw(uid, make(uid, **a_edit))
        s.phone_write_raw(uid, make(uid, **b_edit))
        capsys.readouterr()
        assert s.run() == 0 and s.run() == 0
        assert "merged" in capsys.readouterr().out
        for text in (s.pc_text(uid), s.phone_text(uid)):
            assert a_line in text and b_line in text
        assert main(["--config", str(s.cfg), "conflicts"]) == 0
        assert "no conflicts kept" in capsys.readouterr().out


def test_same_property_changed_differently_is_a_conflict_kept_and_restorable(
    tmp_path, where, capsys
):
    server = request_server(where)
    # the pc's version is side a locally; through a server the conflict arises in the
    # phone's pair, where the server (holding the pc's version) is side b
    s = setup(tmp_path, server, "ics", fallback="a wins" if server is None else "b wins")
    uid = f"ev-{uuid.uuid4().hex[:6]}"
    s.pc_write_raw(uid, event(uid))
    assert s.run() == 0 and s.run() == 0
    s.pc_write_raw(uid, event(uid, location="PC room", description="Also changed"))
    s.phone_write_raw(uid, event(uid, location="Phone room"))
    capsys.readouterr()
    assert s.run() == 0 and s.run() == 0
    assert "1 conflict" in capsys.readouterr().out
    assert b"LOCATION:PC room" in s.phone_text(uid)  # the fallback settled the conflict
    assert b"DESCRIPTION:Also changed" in s.phone_text(uid)
    assert main(["--config", str(s.cfg), "conflicts"]) == 0
    listing = capsys.readouterr().out
    assert f"{uid} 'Planning'" in listing and "LOCATION" in listing
    conflict_id = listing.split(":", 1)[0].strip()
    assert main(["--config", str(s.cfg), "conflicts", "restore", conflict_id]) == 0
    assert s.run() == 0
    for text in (s.pc_text(uid), s.phone_text(uid)):
        assert b"LOCATION:Phone room" in text


# -- helpers -----------------------------------------------------------------------------
_servers: dict[str, object] = {}


@pytest.fixture(autouse=True)
def _servers_for(request, where):
    if where != "local":
        _servers[where] = request.getfixturevalue(where)


def request_server(where):
    return None if where == "local" else _servers[where]


class LocalSetup(Setup):
    """The PC (vdir) and the phone (a file) paired directly."""

    def __init__(self, tmp, kind, fallback):
        self.tmp, self.server, self.kind = tmp, None, kind
        self.col = "home"
        ext = f".{kind}"
        (tmp / "pc" / self.col).mkdir(parents=True)
        (tmp / "phone").mkdir()
        self.cfg = tmp / "config.toml"
        self.cfg.write_text(
            f'[general]\nstate_dir = "state"\n'
            f'[storages.pc]\ntype = "vdir"\npath = "pc"\nfileext = "{ext}"\n'
            f'[storages.phone]\ntype = "file"\npath = "phone/{{collection}}{ext}"\n'
            f'[pairs.direct]\na = "pc"\nb = "phone"\nconflict_fallback = "{fallback}"\n'
        )


def setup(tmp, server, kind, fallback="newest"):
    tmp.mkdir(parents=True, exist_ok=True)
    s = LocalSetup(tmp, kind, fallback) if server is None else Setup(tmp, server, kind)
    if server is not None:
        s.cfg.write_text(
            s.cfg.read_text().replace(
                'conflict = "newest"', f'conflict = "merge"\nconflict_fallback = "{fallback}"'
            )
        )
    return s


def _pc_write_raw(self, uid, data):
    path = self.tmp / "pc" / self.col
    for p in path.glob(f"*.{self.kind}"):
        if parse_record(p.read_bytes(), self.kind, str(p)).ident == uid:
            p.write_bytes(data)
            return
    (path / f"{uid}.{self.kind}").write_bytes(data)


def _phone_write_raw(self, uid, data):
    from pimsync.model import join, split

    path = self.phone_file()
    res = split(path.read_bytes(), self.kind, str(path))
    records = [r for r in res.records if r.ident != uid]
    records.append(parse_record(data, self.kind, "phone app"))
    path.write_bytes(join(records, self.kind, res.wrapper))


def _pc_text(self, uid):
    for p in (self.tmp / "pc" / self.col).glob(f"*.{self.kind}"):
        if parse_record(p.read_bytes(), self.kind, str(p)).ident == uid:
            return p.read_bytes()
    raise AssertionError(f"{uid} not on the pc")


def _phone_text(self, uid):
    from pimsync.model import split

    path = self.phone_file()
    for r in split(path.read_bytes(), self.kind, str(path)).records:
        if r.ident == uid:
            return r.to_bytes()
    raise AssertionError(f"{uid} not on the phone")


Setup.pc_write_raw = _pc_write_raw
Setup.phone_write_raw = _phone_write_raw
Setup.pc_text = _pc_text
Setup.phone_text = _phone_text
