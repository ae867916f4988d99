"""End to end against real Radicale, Xandikos, Cyrus and DAViCal: the phone-and-PC scenario,
no ping-pong, one request per unchanged collection, token expiry, a 412 race, a wrong
password."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

import pimsync.storage.dav.http as dav_http
from pimsync.cli import main
from pimsync.model import parse_record, split
from pimsync.storage.dav.collection import DavCollection
from tests.conftest import make_card, make_event


def dav_storage_toml(name: str, server, kind: str, extra: str = "") -> str:
    auth = ""
    if server.username:
        auth = f'username = "{server.username}"\npassword = "{server.password or "x"}"\n'
    return (
        f'[storages.{name}]\ntype = "{"caldav" if kind == "ics" else "carddav"}"\n'
        f'url = "{server.url}"\n{auth}{extra}\n'
    )


class Setup:
    """Two local stores (a PC vdir and a phone-style file) each paired with one server."""

    def __init__(self, tmp: Path, server, kind: str, conflict: str = "newest") -> None:
        self.tmp, self.server, self.kind = tmp, server, kind
        self.col = f"c{uuid.uuid4().hex[:10]}"
        ext = f".{kind}"
        (tmp / "pc" / self.col).mkdir(parents=True)
        (tmp / "phone").mkdir()
        self.cfg = tmp / "config.toml"
        self.cfg.write_text(
            f"""
[general]
state_dir = "state"

[storages.pc]
type = "vdir"
path = "pc"
fileext = "{ext}"

[storages.phone]
type = "file"
path = "phone/{{collection}}{ext}"

{dav_storage_toml("server", server, kind)}

[pairs.pc]
a = "pc"
b = "server"
collections = ["{self.col}"]
conflict = "{conflict}"

[pairs.phone]
a = "phone"
b = "server"
collections = ["{self.col}"]
conflict = "{conflict}"
"""
        )

    def run(self, *args: str) -> int:
        return main(["--config", str(self.cfg), "run", *args])

    def make(self, uid: str, text: str) -> bytes:
        return make_event(uid, text) if self.kind == "ics" else make_card(uid, text)

    def pc(self) -> dict[str, str]:
        out = {}
        for p in (self.tmp / "pc" / self.col).glob(f"*.{self.kind}"):
            r = parse_record(p.read_bytes(), self.kind, str(p))
            out[r.ident] = r.hash
        return out

    def pc_write(self, uid: str, text: str) -> None:
        path = self.tmp / "pc" / self.col
        for p in path.glob(f"*.{self.kind}"):
            if parse_record(p.read_bytes(), self.kind, str(p)).ident == uid:
                p.write_bytes(self.make(uid, text))
                return
        (path / f"{uid}.{self.kind}").write_bytes(self.make(uid, text))

    def phone_file(self) -> Path:
        return self.tmp / "phone" / f"{self.col}.{self.kind}"

    def phone(self) -> dict[str, str]:
        path = self.phone_file()
        return {r.ident: r.hash for r in split(path.read_bytes(), self.kind, str(path)).records}

    def phone_write(self, uid: str, text: str | None) -> None:
        from pimsync.model import join

        path = self.phone_file()
        res = split(path.read_bytes(), self.kind, str(path))
        records = [r for r in res.records if r.ident != uid]
        if text is not None:
            records.append(parse_record(self.make(uid, text), self.kind, "phone app"))
        path.write_bytes(join(records, self.kind, res.wrapper))

    def server_uids(self) -> set[str]:
        path = f"{self.server.home(self.kind)}{self.col}/"
        return {
            parse_record(self.server.request("GET", href).body, self.kind, href).ident
            for href in self.server.etags(path)
        }


@pytest.fixture(params=["ics", "vcf"])
def kind(request):
    return request.param


@pytest.fixture
def count_requests(monkeypatch):
    sent: list[tuple[str, str]] = []
    real = dav_http.HttpClient._send

    def counting(self, method, url, body, headers):
        sent.append((method, url))
        return real(self, method, url, body, headers)

    monkeypatch.setattr(dav_http.HttpClient, "_send", counting)
    return sent


def test_phone_and_pc_converge(tmp_path, dav_server, kind, capsys):
    s = Setup(tmp_path, dav_server, kind)
    for i in range(3):
        s.pc_write(f"pc-{i}", f"from the pc {i}")
    assert s.run() == 0  # pc -> server (creates the collection), phone gets it
    assert s.run() == 0
    assert set(s.phone()) == {"pc-0", "pc-1", "pc-2"}
    # edits on both sides, a delete on the phone, a new record on the phone
    s.pc_write("pc-0", "edited on the pc")
    s.phone_write("pc-1", None)
    s.phone_write("phone-0", "new on the phone")
    assert s.run() == 0
    assert s.run() == 0
    assert s.pc() == s.phone()
    assert set(s.pc()) == {"pc-0", "pc-2", "phone-0"}
    assert s.server_uids() == {"pc-0", "pc-2", "phone-0"}
    # and one more run of everything writes nothing anywhere (no ping-pong)
    capsys.readouterr()
    assert s.run() == 0
    out = capsys.readouterr().out
    assert out.count("a +0 ~0 -0, b +0 ~0 -0, 0 errors") == 2, out


def test_conflict_is_settled_by_policy(tmp_path, dav_server, capsys):
    s = Setup(tmp_path, dav_server, "ics", conflict="b wins")
    s.pc_write("x", "first")
    assert s.run() == 0 and s.run() == 0
    s.pc_write("x", "pc edit")
    s.phone_write("x", "phone edit")
    assert s.run("phone") == 0  # the phone's edit reaches the server first
    capsys.readouterr()
    assert s.run("pc") == 0  # conflict on the pc pair: b (the server) wins
    assert "1 conflict" in capsys.readouterr().out
    assert s.run() == 0
    assert s.pc() == s.phone()
    [pc_file] = (tmp_path / "pc" / s.col).glob("*.ics")
    assert b"phone edit" in pc_file.read_bytes()


def test_no_change_run_is_one_request_per_collection(tmp_path, dav_server, count_requests):
    s = Setup(tmp_path, dav_server, "ics")
    for i in range(20):
        s.pc_write(f"e{i}", f"event {i}")
    assert s.run("pc") == 0
    assert s.run("pc") == 0
    count_requests.clear()
    assert s.run("pc") == 0
    assert len(count_requests) == 1, count_requests
    assert count_requests[0][0] == "REPORT"


def test_the_run_after_writing_to_the_server_reads_and_plans_nothing(
    tmp_path, dav_server, monkeypatch
):
    """The server's delta since the stored token lists the last run's own writes again;
    they are what the state knows, so the run takes the no-change path."""
    import pimsync.sync

    s = Setup(tmp_path, dav_server, "ics")
    for i in range(5):
        s.pc_write(f"e{i}", f"event {i}")
    assert s.run("pc") == 0
    s.pc_write("e0", "edited")
    assert s.run("pc") == 0  # one PUT to the server
    monkeypatch.setattr(pimsync.sync, "plan", lambda *a, **k: pytest.fail("planned"))
    monkeypatch.setattr(DavCollection, "get", lambda *a, **k: pytest.fail("read"))
    assert s.run("pc") == 0


def test_expired_sync_token_falls_back_to_a_full_listing(tmp_path, dav_server, capsys):
    s = Setup(tmp_path, dav_server, "ics")
    for i in range(3):
        s.pc_write(f"e{i}", f"event {i}")
    assert s.run("pc") == 0
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    db.execute("UPDATE collections SET b_token = 'sync:http://example.invalid/bogus-token'")
    db.commit()
    db.close()
    s.pc_write("e0", "edited")
    capsys.readouterr()
    assert s.run("pc") == 0
    assert "b +0 ~1 -0, 0 errors" in capsys.readouterr().out
    assert s.run("pc") == 0
    assert "a +0 ~0 -0, b +0 ~0 -0, 0 errors" in capsys.readouterr().out


def test_a_record_changed_on_the_server_meanwhile_is_never_overwritten(
    tmp_path, dav_server, monkeypatch, capsys
):
    s = Setup(tmp_path, dav_server, "ics", conflict="b wins")
    s.pc_write("x", "first")
    assert s.run("pc") == 0
    s.pc_write("x", "pc edit")
    real_update = DavCollection.update
    raced = []

    def racing_update(self, href, record, etag):
        if not raced:  # another client writes between our listing and our write
            raced.append(href)
            r = dav_server.put(href, make_event("x", "written by the phone meanwhile"))
            assert r.status in (200, 201, 204)
        return real_update(self, href, record, etag)

    monkeypatch.setattr(DavCollection, "update", racing_update)
    assert s.run("pc") == 0
    assert raced
    # the 412 made pimsync read again: now it is a conflict, and "b wins"
    [pc_file] = (tmp_path / "pc" / s.col).glob("*.ics")
    assert b"written by the phone meanwhile" in pc_file.read_bytes()
    body = dav_server.request("GET", raced[0]).body
    assert b"written by the phone meanwhile" in body


@pytest.mark.parametrize("auth_server", ["radicale_auth", "cyrus", "davical"])
def test_wrong_password_is_a_clear_error_and_touches_nothing(
    tmp_path, request, auth_server, capsys
):
    """On each server that checks passwords (user alice on all three)."""
    server = request.getfixturevalue(auth_server)
    (tmp_path / "pc" / "home").mkdir(parents=True)
    (tmp_path / "pc" / "home" / "x.ics").write_bytes(make_event("x"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"
[storages.server]
type = "caldav"
url = "{server.url}"
username = "{server.username}"
password = "wrong-{uuid.uuid4().hex}"
[pairs.p]
a = "pc"
b = "server"
"""
    )
    assert main(["--config", str(cfg), "run"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "username or password" in err and server.url in err
    assert "wrong-" not in err  # the password is never shown
    assert (tmp_path / "pc" / "home" / "x.ics").exists()
    assert main(["--config", str(cfg), "check"]) == 1


def test_collection_name_and_color_sync_both_ways(tmp_path, dav_server, capsys):
    s = Setup(tmp_path, dav_server, "ics")
    s.pc_write("x", "first")
    pc_col = tmp_path / "pc" / s.col
    (pc_col / "displayname").write_text("Family")
    (pc_col / "color").write_text("#00ff00")
    assert s.run("pc") == 0
    path = f"{dav_server.home('ics')}{s.col}/"
    props = dav_server.propfind(
        path, '<D:displayname/><A:calendar-color xmlns:A="http://apple.com/ns/ical/"/>', "0"
    ).text
    assert "Family" in props and "#00ff00" in props
    # renamed on the server (by another client); pimsync sees it after discovery refreshes
    body = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        "<D:displayname>Family and friends</D:displayname></D:prop></D:set></D:propertyupdate>"
    )
    assert dav_server.request("PROPPATCH", path, body).status in (200, 207)
    assert main(["--config", str(s.cfg), "discover"]) == 0
    assert s.run("pc") == 0
    assert (pc_col / "displayname").read_text() == "Family and friends"
    assert (pc_col / "color").read_text() == "#00ff00"


def test_new_collection_takes_the_other_sides_name(tmp_path, dav_server):
    s = Setup(tmp_path, dav_server, "ics")
    s.pc_write("x", "first")
    (tmp_path / "pc" / s.col / "displayname").write_text("Family")
    assert s.run("pc") == 0
    path = f"{dav_server.home('ics')}{s.col}/"
    assert "Family" in dav_server.propfind(path, "<D:displayname/>", "0").text
    assert main(["--config", str(s.cfg), "discover"]) == 0
    assert s.run("pc") == 0
    assert (tmp_path / "pc" / s.col / "displayname").read_text() == "Family"


def test_a_url_naming_one_collection_syncs_it_and_creates_nothing(tmp_path, dav_server, capsys):
    name = f"one{uuid.uuid4().hex[:8]}"
    path = dav_server.make_collection(name, "ics")
    assert dav_server.put(f"{path}x.ics", make_event("x", "on the server")).status in (201, 204)
    (tmp_path / "pc" / name).mkdir(parents=True)
    (tmp_path / "pc" / "other").mkdir()
    (tmp_path / "pc" / "other" / "o.ics").write_bytes(make_event("o"))
    cfg = tmp_path / "config.toml"
    server = type(dav_server)(**{**dav_server.__dict__, "url": dav_server.url.rstrip("/") + path})
    cfg.write_text(
        f'[general]\nstate_dir = "state"\n[storages.pc]\ntype = "vdir"\npath = "pc"\n'
        f'fileext = ".ics"\n{dav_storage_toml("server", server, "ics")}'
        '[pairs.p]\na = "pc"\nb = "server"\n'
    )
    assert main(["--config", str(cfg), "run"]) == 1  # "other" cannot be created there
    captured = capsys.readouterr()
    assert "the url names one collection" in captured.err
    assert f"p/{name}: a +1 ~0 -0" in captured.out
