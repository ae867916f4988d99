"""Robustness of the CalDAV path against a misbehaving network or server, end to end.

Every test runs ``pimsync.cli.main`` with a vdir on one side and a caldav storage whose URL
points at ``tests.faultproxy.FaultProxy`` in front of a real Radicale or Xandikos: dropped
connections, 5xx, 429/503 with Retry-After, HTML pages, malformed or hostile XML, odd
hrefs, refused PUTs, timeouts and TLS verification. The invariants: no exception escapes,
the error names the URL and the status, nothing local is deleted or changed by a failure,
and once the network is healthy again one run converges (nothing lost, nothing doubled).
"""

from __future__ import annotations

import datetime
import os
import re
import sqlite3
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

import pimsync.storage.dav.http as dav_http
from pimsync.cli import main
from pimsync.model import parse_record
from tests.conftest import make_event
from tests.faultproxy import FaultProxy, Seen

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
NO_CHANGE = "a +0 ~0 -0, b +0 ~0 -0, 0 errors"


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Retries without real waits: 4 attempts, 1 ms apart (Retry-After still counts)."""
    defaults = dav_http.HttpClient.__init__.__kwdefaults__
    monkeypatch.setitem(defaults, "backoff", dav_http.Backoff(attempts=4, base=0.001))

    def set_attempts(attempts: int) -> None:
        monkeypatch.setitem(defaults, "backoff", dav_http.Backoff(attempts=attempts, base=0.001))

    return set_attempts


@pytest.fixture
def proxy_for():
    """Factory: ``proxy_for(server, **kw)`` starts a FaultProxy, stopped after the test."""
    started: list[FaultProxy] = []

    def start(server, **kw) -> FaultProxy:
        proxy = FaultProxy(server.url, **kw).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Env:
    """A vdir ``pc`` paired with a caldav storage ``server`` reached through a proxy."""

    def __init__(
        self,
        tmp: Path,
        server,
        col_path: str,
        url: str,
        capsys,
        *,
        storage_extra: str = "",
        extra: str = "",
    ) -> None:
        self.tmp, self.server, self.col_path, self.capsys = tmp, server, col_path, capsys
        self.url = url
        self.col = col_path.rstrip("/").rsplit("/", 1)[-1]
        self.dir = tmp / "pc" / self.col
        self.dir.mkdir(parents=True)
        # the server's displayname (the name): no metadata write blurs the snapshots
        (self.dir / "displayname").write_text(self.col)
        auth = ""
        if server.username:
            auth = f'username = "{server.username}"\npassword = "{server.password or "x"}"\n'
        self.cfg = tmp / "config.toml"
        self.cfg.write_text(
            f"""
[general]
state_dir = "state"

[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"

[storages.server]
type = "caldav"
url = "{url.rstrip("/")}{server.calendar_home}"
{auth}{storage_extra}

[pairs.p]
a = "pc"
b = "server"
collections = ["{self.col}"]
{extra}
"""
        )

    @property
    def col_url(self) -> str:
        """The collection's URL as pimsync sees it (through the proxy)."""
        return self.url.rstrip("/") + self.col_path

    def run(self, *args: str) -> Run:
        self.capsys.readouterr()
        rc = main(["--config", str(self.cfg), "run", *args])
        out, err = self.capsys.readouterr()
        return Run(rc, out, err)

    def write(self, uid: str, summary: str = "Event") -> Path:
        path = self.dir / f"{uid}.ics"
        path.write_bytes(make_event(uid, summary))
        return path

    def local_uids(self) -> list[str]:
        return sorted(
            parse_record(p.read_bytes(), "ics", str(p)).ident for p in self.dir.glob("*.ics")
        )

    def server_records(self) -> dict[str, bytes]:
        """href -> body of every record in the collection, read straight from the server."""
        out = {}
        for href in self.server.etags(self.col_path):
            resp = self.server.request("GET", href)
            assert resp.status == 200, (href, resp.status)
            out[href] = resp.body
        return out

    def server_uids(self) -> list[str]:
        return sorted(
            parse_record(body, "ics", href).ident for href, body in self.server_records().items()
        )


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ROOT: content, mtime and inode (a rewrite changes one of them)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (p.read_bytes(), st.st_mtime_ns, st.st_ino)
    return out


@pytest.fixture
def env(tmp_path, dav_server, dav_collection, proxy_for, capsys):
    """Factory: ``env(**proxy_kw)`` -> (Env, FaultProxy) on the parametrised server."""

    def make(storage_extra: str = "", extra: str = "", **proxy_kw) -> tuple[Env, FaultProxy]:
        proxy = proxy_for(dav_server, **proxy_kw)
        col_path = dav_collection(dav_server, "ics")
        e = Env(
            tmp_path,
            dav_server,
            col_path,
            proxy.url,
            capsys,
            storage_extra=storage_extra,
            extra=extra,
        )
        return e, proxy

    return make


def synced_env(env, n: int = 3, **kw) -> tuple[Env, FaultProxy]:
    """An Env whose N events are already synced through a healthy proxy."""
    e, proxy = env(**kw)
    for i in range(n):
        e.write(f"ev-{i}", f"event {i}")
    first = e.run()
    assert first.rc == 0, first.text
    assert e.server_uids() == [f"ev-{i}" for i in range(n)]
    proxy.reset_log()
    return e, proxy


def writes(proxy: FaultProxy) -> list[Seen]:
    return [s for s in proxy.log if s.method in ("PUT", "DELETE", "MKCALENDAR", "PROPPATCH")]


# --- 1. random drops and 500s -------------------------------------------------------------


# seeds picked so that between them the faults hit discovery, listings and every kind of
# PUT failure, on both servers (the request order is deterministic, so is the outcome)
@pytest.mark.parametrize("seed", [2, 5, 11])
def test_random_faults_lose_nothing_and_duplicate_nothing(env, seed):
    e, proxy = env(seed=seed)
    uids = [f"ev-{i:02d}" for i in range(30)]
    for uid in uids:
        e.write(uid, f"event {uid}")
    # 30 % of all requests fail, 7.5 % each: dropped before reaching the server, dropped
    # after the server did the work (the answer is lost), a 500 instead of forwarding, and
    # a 500 after the server did the work
    proxy.drop(probability=0.075)
    proxy.drop(after=True, probability=0.075 / 0.925)
    proxy.respond(500, PLAIN, "internal error", probability=0.075 / 0.85)
    proxy.respond(500, PLAIN, "internal error", after=True, probability=0.075 / 0.775)

    first = e.run()
    faults = [s for s in proxy.log if s.action != "pass"]
    assert faults, "the seed made no fault at all"
    assert first.rc in (0, 1), first.text
    if first.rc == 1:
        errors = [line for line in first.err.splitlines() if line.startswith("error: ")]
        assert errors, first.text
        assert all(proxy.url in line for line in errors), first.err  # each names its URL
    else:
        # a PUT whose 500 came after the work is sent again, gets 412 and the record is
        # found on the server as it was sent: in the state, not counted as a create
        summary = re.search(rf"p/{e.col}: a \+0 ~0 -0, b \+(\d+) ~0 -0, 0 errors", first.out)
        assert summary is not None, first.text
        assert 0 < int(summary[1]) <= 30, first.text

    proxy.clear()
    second = e.run()
    assert second.rc == 0, second.text
    assert e.local_uids() == uids  # each once, nothing lost
    assert e.server_uids() == uids
    assert len(e.server_records()) == 30

    proxy.reset_log()
    third = e.run()
    assert third.rc == 0, third.text
    assert f"p/{e.col}: {NO_CHANGE}" in third.out, third.text
    assert writes(proxy) == []


# --- 2. 503 + Retry-After -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["REPORT", "PUT"])
def test_503_with_retry_after_is_retried(env, method):
    e, proxy = env()
    e.write("ev-0")
    proxy.respond(503, {"Retry-After": "0", **PLAIN}, "busy", method=method, times=2)
    run = e.run()
    assert run.rc == 0, run.text
    assert f"p/{e.col}: a +0 ~0 -0, b +1 ~0 -0, 0 errors" in run.out
    seen = proxy.seen(method)
    assert [s.status for s in seen[:2]] == [503, 503]
    assert seen[2].status in ((207,) if method == "REPORT" else (200, 201, 204))
    # the same request, repeated: same target, body and conditions
    assert len({(s.path, s.body, s.headers.get("if-none-match")) for s in seen[:3]}) == 1
    assert e.server_uids() == ["ev-0"]


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_retry_after_seconds_are_waited(env):
    e, proxy = synced_env(env, 1)
    proxy.respond(503, {"Retry-After": "1", **PLAIN}, "busy", method="REPORT", times=1)
    started = time.monotonic()
    run = e.run()
    assert run.rc == 0, run.text
    assert time.monotonic() - started >= 0.95  # the backoff alone would be 1 ms
    assert [s.status for s in proxy.seen("REPORT")] == [503, 207]


# --- 3. 429 forever -----------------------------------------------------------------------


@pytest.mark.parametrize("which", [b"sync-collection", b"calendar-multiget"])
def test_429_forever_fails_the_collection_and_touches_nothing(env, which):
    e, proxy = synced_env(env, 3)
    # changes on the server that a successful run would bring to the vdir
    records = e.server_records()
    hrefs = sorted(records)
    assert e.server.request("DELETE", hrefs[0]).status in (200, 204)
    assert e.server.put(hrefs[1], make_event("ev-1", "edited on the server")).status in (
        200,
        201,
        204,
    )
    before = snapshot(e.tmp / "pc")
    proxy.respond(429, PLAIN, "slow down", method="REPORT", contains=which)
    run = e.run()
    assert run.rc == 1, run.text
    assert "429" in run.err and e.col_url in run.err, run.err
    assert len(proxy.seen("REPORT", "respond")) == 4  # Backoff.attempts, then it gives up
    assert snapshot(e.tmp / "pc") == before
    assert writes(proxy) == []


# --- 4. an HTML page instead of a multistatus ---------------------------------------------


@pytest.mark.parametrize("status", [200, 500])
def test_html_page_instead_of_multistatus(env, status):
    e, proxy = synced_env(env, 3)
    e.write("ev-new", "new locally")
    before = snapshot(e.tmp / "pc")
    page = (
        "<!DOCTYPE html><html><body><h1>Please log in</h1>"
        "<p>session=abc123 and the rest of the page</p></body></html>"
    )
    proxy.respond(status, {"Content-Type": "text/html; charset=utf-8"}, page, method="REPORT")
    run = e.run()
    assert run.rc == 1, run.text
    assert e.col_url in run.err and str(status) in run.err and "HTML page" in run.err, run.err
    # the page's heading is its reason; nothing else of the page is shown
    assert "Please log in" in run.err
    assert "session=abc123" not in run.text
    assert snapshot(e.tmp / "pc") == before
    assert writes(proxy) == []


# --- 5. malformed and hostile XML ---------------------------------------------------------


def test_malformed_xml_in_a_207(env):
    e, proxy = synced_env(env, 3)
    before = snapshot(e.tmp / "pc")
    broken = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">'
        b"<d:response><d:href>/x/</d:href><d:propstat><d:prop><d:getetag>&quot;1"
    )
    proxy.respond(207, {"Content-Type": "application/xml; charset=utf-8"}, broken, method="REPORT")
    run = e.run()
    assert run.rc == 1, run.text
    assert "not well-formed XML" in run.err and e.col_url in run.err, run.err
    assert snapshot(e.tmp / "pc") == before
    assert writes(proxy) == []


def _walk(root: Path) -> list[Path]:
    """Every file and directory under ROOT (not following links)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out.extend(Path(dirpath, n) for n in dirnames + filenames)
    return out


def test_external_entities_are_never_resolved(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e, proxy = synced_env(env, 2)
    marker = f"SECRET-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    passwd = Path("/etc/passwd").read_text().splitlines()
    passwd_line = next((line for line in passwd if line.strip()), None)
    dtd = (
        "<!DOCTYPE d:multistatus [\n"
        '  <!ENTITY e SYSTEM "file:///etc/passwd">\n'
        f'  <!ENTITY s SYSTEM "file://{secret}">\n'
        '  <!ENTITY lol "lol">\n'
        '  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        '  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">\n'
        '  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
        "]>\n"
    )
    p = e.col_path
    ok = "<d:status>HTTP/1.1 200 OK</d:status>"

    def listing(seen, status, headers, body):
        token = ET.fromstring(body).findtext(f"{{{DAV}}}sync-token") if status == 207 else ""
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}'
            f'<d:multistatus xmlns:d="DAV:">'
            f"<d:response><d:href>{p}xxe-1.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"&s;"</d:getetag></d:prop>{ok}</d:propstat></d:response>'
            f"<d:response><d:href>{p}&e;.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"&e;&lol3;"</d:getetag></d:prop>{ok}</d:propstat></d:response>'
            f"<d:response><d:href>{p}x-&s;.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"2"</d:getetag></d:prop>{ok}</d:propstat></d:response>'
            f"<d:sync-token>{token}</d:sync-token></d:multistatus>"
        )
        return 207, [("Content-Type", "application/xml; charset=utf-8")], xml.encode()

    def multiget(seen, status, headers, body):
        event = make_event("xxe-1", "&s;", extra="DESCRIPTION:&e;&lol3;\r\n").decode()
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}'
            f'<d:multistatus xmlns:d="DAV:" xmlns:c="{CALDAV}">'
            f"<d:response><d:href>{p}xxe-1.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"&s;"</d:getetag><c:calendar-data>{event}</c:calendar-data>'
            f"</d:prop>{ok}</d:propstat></d:response>"
            f"<d:response><d:href>{p}&e;.ics</d:href><d:propstat><d:prop>"
            f"<d:getetag>&e;</d:getetag><c:calendar-data>&e;</c:calendar-data>"
            f"</d:prop>{ok}</d:propstat></d:response></d:multistatus>"
        )
        return 207, [("Content-Type", "application/xml; charset=utf-8")], xml.encode()

    proxy.rewrite(listing, method="REPORT", contains=b"sync-collection")
    proxy.rewrite(multiget, forward=False, method="REPORT", contains=b"calendar-multiget")
    started = time.monotonic()
    runs = [e.run(), e.run()]
    assert time.monotonic() - started < 20  # no entity expansion blow-up

    def leaked(text: str) -> bool:
        return marker in text or (passwd_line is not None and passwd_line in text)

    for run in runs:
        assert not leaked(run.text), run.text
    db = (tmp_path / "state" / "state.sqlite").read_bytes()
    assert marker.encode() not in db
    assert passwd_line is None or passwd_line.encode() not in db
    conn = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert not leaked(dump)
    for p_ in tmp_path.rglob("*"):
        if p_.is_file() and p_ != secret:
            assert not leaked(p_.read_text("utf-8", "replace")), p_
    for path in _walk(tmp_path.parent):
        assert not leaked(path.name), path
    for seen in proxy.log:  # nothing resolved went back to the server either
        assert not leaked(seen.path) and not leaked(seen.body.decode("utf-8", "replace"))


# --- 6. 404 and 507 for the collection ----------------------------------------------------


@pytest.mark.parametrize("status", [404, 507])
def test_collection_report_404_or_507_deletes_nothing(env, status):
    e, proxy = synced_env(env, 3)
    before = snapshot(e.tmp / "pc")
    proxy.respond(status, PLAIN, "", method="REPORT", path=e.col_path)
    run = e.run()
    assert run.rc == 1, run.text
    assert str(status) in run.err and e.col_url in run.err, run.err
    assert snapshot(e.tmp / "pc") == before
    assert writes(proxy) == []
    # the server is fine again: nothing was lost on either side
    proxy.clear()
    again = e.run()
    assert again.rc == 0, again.text
    assert e.local_uids() == e.server_uids() == ["ev-0", "ev-1", "ev-2"]


# --- 7. a PUT refused for one record ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 415])
def test_refused_put_fails_only_that_record(env, status):
    e, proxy = env()
    uids = [f"ev-{i}" for i in range(5)]
    for uid in uids:
        e.write(uid, f"event {uid}")
    proxy.respond(status, PLAIN, "refused by the test", method="PUT", path="/ev-2.ics")
    run = e.run()
    assert run.rc == 1, run.text
    assert f"{e.col_url}ev-2.ics" in run.err and str(status) in run.err, run.err
    assert f"p/{e.col}: a +0 ~0 -0, b +4 ~0 -0, 1 error" in run.out, run.out
    assert e.server_uids() == ["ev-0", "ev-1", "ev-3", "ev-4"]
    assert (e.dir / "ev-2.ics").exists()

    proxy.clear()
    again = e.run()
    assert again.rc == 0, again.text
    assert (e.dir / "ev-2.ics").exists()
    assert e.local_uids() == e.server_uids() == uids
    third = e.run()
    assert third.rc == 0 and f"p/{e.col}: {NO_CHANGE}" in third.out, third.text


# --- 8. hrefs outside the collection ------------------------------------------------------


def test_odd_hrefs_are_never_written_nor_used_as_paths(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e, proxy = synced_env(env, 2)
    m = uuid.uuid4().hex[:12]
    p = e.col_path
    parent = p.rstrip("/").rsplit("/", 1)[0] + "/"
    odd = [
        f"{parent}other-{m}/evil.ics",  # another collection
        f"{p}../escape-{m}.ics",
        f"{p}..%2Fescape2-{m}.ics",
        f"{p}%2E%2E%2Fescape3-{m}.ics",
        f"{p}..%2F..%2F..%2F..%2F..%2Ftmp%2Fpwned-{m}.ics",
        f"{p}sub%2Fnested-{m}.ics",
        f"{p}..",
        f"{p}%2e%2e",
        f"{p}.",
        f"http://evil.invalid{parent}abs-{m}.ics",  # another host, outside the collection
        f"{p}../../../../../../../tmp/pwned-{m}.ics",
    ]
    nasty_uids = [
        f"../../pwned-{m}",
        f"..\\..\\pwned-{m}",
        f"/tmp/pwned-{m}",
        f"pwned-{m}/../../x",
        f"%2e%2e%2fpwned-{m}",
        "..",
        ".",
    ]
    ok = "<d:status>HTTP/1.1 200 OK</d:status>"
    uid_of: dict[str, str] = {}

    def etag(href: str) -> str:
        return f'"odd-{abs(hash(href)) % 10**8}"'

    def listing(seen, status, headers, body):
        if status != 207:
            return status, headers, body
        root = ET.fromstring(body)
        token = root.find(f"{{{DAV}}}sync-token")
        extra = "".join(
            f"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>{etag(href)}"
            f"</d:getetag></d:prop>{ok}</d:propstat></d:response>"
            for href in odd
        )
        responses = "".join(
            ET.tostring(r, encoding="unicode") for r in root.iter(f"{{{DAV}}}response")
        )
        tok = "" if token is None else f"<d:sync-token>{token.text or ''}</d:sync-token>"
        xml = f'<d:multistatus xmlns:d="DAV:">{responses}{extra}{tok}</d:multistatus>'
        return 207, [("Content-Type", "application/xml; charset=utf-8")], xml.encode()

    def is_odd(href: str) -> bool:
        return not re.fullmatch(re.escape(p) + r"ev-\d+\.ics", href)

    def multiget(seen, status, headers, body):
        asked = [h.text or "" for h in ET.fromstring(seen.body).iter(f"{{{DAV}}}href")]
        upstream = {}
        if status == 207:
            for r in ET.fromstring(body).iter(f"{{{DAV}}}response"):
                upstream[unquote(r.findtext(f"{{{DAV}}}href") or "")] = ET.tostring(
                    r, encoding="unicode"
                )
        parts = []
        for href in asked:
            if is_odd(href):
                if href not in uid_of:
                    i = len(uid_of)
                    uid_of[href] = nasty_uids[i] if i < len(nasty_uids) else f"odd-{m}-{i}"
                data = make_event(uid_of[href], "from an odd href").decode()
                parts.append(
                    f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>"
                    f"<d:getetag>{etag(href)}</d:getetag><c:calendar-data>{data}"
                    f"</c:calendar-data></d:prop>{ok}</d:propstat></d:response>"
                )
            elif unquote(href) in upstream:
                parts.append(upstream[unquote(href)])
        xml = f'<d:multistatus xmlns:d="DAV:" xmlns:c="{CALDAV}">{"".join(parts)}</d:multistatus>'
        return 207, [("Content-Type", "application/xml; charset=utf-8")], xml.encode()

    def plain_member(path: str) -> bool:
        """A target pimsync may write: a plain name right inside the collection."""
        decoded = unquote(path)
        name = decoded[len(p) :] if decoded.startswith(p) else ""
        return name not in ("", ".", "..") and "/" not in name and "\\" not in name

    def odd_write(method: str, path: str, body: bytes) -> bool:
        return method in ("PUT", "DELETE") and not plain_member(path)

    # never let a write to an odd href reach the real server; the test fails on it below
    proxy.respond(403, PLAIN, "odd href refused by the test proxy", when=odd_write)
    proxy.rewrite(listing, method="REPORT", contains=b"sync-collection")
    proxy.rewrite(multiget, method="REPORT", contains=b"calendar-multiget")

    first = e.run()
    assert first.rc in (0, 1), first.text
    # whatever was read from odd hrefs landed inside the collection directory, under safe
    # names; nothing appeared anywhere else
    allowed = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*\.ics")
    for f in e.dir.iterdir():
        assert allowed.fullmatch(f.name) or f.name in ("displayname", "color"), f
    for path in tmp_path.rglob("*"):
        rel = path.relative_to(tmp_path)
        assert rel.parts[0] in ("pc", "state", "config.toml"), path
        if rel.parts[0] == "pc" and path.is_file():
            assert path.parent == e.dir, path
    outside = [p_ for p_ in _walk(tmp_path.parent) if m in p_.name and p_.parent != e.dir]
    assert outside == []
    assert not Path(f"/tmp/pwned-{m}.ics").exists()

    # now change and delete locally what came from odd hrefs: pimsync must not PUT or
    # DELETE those hrefs on the server
    came_from_odd = [f for f in e.dir.glob("*.ics") if b"from an odd href" in f.read_bytes()]
    for i, f in enumerate(came_from_odd):
        if i % 2:
            f.unlink()
        else:
            f.write_bytes(f.read_bytes().replace(b"from an odd href", b"edited locally"))
    second = e.run()
    assert second.rc in (0, 1), second.text
    bad = [(s.method, s.path) for s in proxy.log if odd_write(s.method, s.path, s.body)]
    assert bad == [], f"pimsync wrote to odd hrefs: {bad}\n{second.text}"
    outside = [p_ for p_ in _walk(tmp_path.parent) if m in p_.name and p_.parent != e.dir]
    assert outside == []


# --- 9. a server that does not answer in time ---------------------------------------------


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_timeout_fails_only_the_pairs_using_that_server(env, fast_backoff, tmp_path):
    fast_backoff(2)  # one retry: two timeouts of 2 s
    local = """
[storages.notes_a]
type = "vdir"
path = "la"
fileext = ".ics"

[storages.notes_b]
type = "vdir"
path = "lb"
fileext = ".ics"

[pairs.local]
a = "notes_a"
b = "notes_b"
collections = ["n"]
"""
    e, proxy = env(storage_extra="timeout = 2", extra=local)
    e.write("ev-0")
    (tmp_path / "la" / "n").mkdir(parents=True)
    (tmp_path / "lb").mkdir()
    for i in range(2):
        (tmp_path / "la" / "n" / f"n-{i}.ics").write_bytes(make_event(f"n-{i}"))
    before = snapshot(e.tmp / "pc")
    proxy.delay(6, method="REPORT")
    started = time.monotonic()
    run = e.run()
    elapsed = time.monotonic() - started
    assert run.rc == 1, run.text
    assert "no answer within 2 s" in run.err and e.col_url in run.err, run.err
    assert elapsed < 10, elapsed
    assert len(proxy.seen("REPORT")) == 2
    assert "local/n: a +0 ~0 -0, b +2 ~0 -0, 0 errors" in run.out, run.out
    assert sorted(f.name for f in (tmp_path / "lb" / "n").iterdir()) == ["n-0.ics", "n-1.ics"]
    assert snapshot(e.tmp / "pc") == before


# --- 10. TLS ------------------------------------------------------------------------------


def _make_ca(dirpath: Path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = dirpath / f"{name}.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, pem


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A private CA, a server certificate for 127.0.0.1 signed by it, and another CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert, ca_pem = _make_ca(d, "test-ca")
    _, _, other_ca_pem = _make_ca(d, "other-ca")
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = d / "server.pem"
    key_pem = d / "server.key"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"cert": cert_pem, "key": key_pem, "ca": ca_pem, "other_ca": other_ca_pem}


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
@pytest.mark.parametrize("verify", ["default", "false", "ca", "other_ca"])
def test_tls_is_verified_by_default(env, tls_files, verify):
    extra = {
        "default": "",
        "false": "verify = false",
        "ca": f'verify = "{tls_files["ca"]}"',
        "other_ca": f'verify = "{tls_files["other_ca"]}"',
    }[verify]
    e, proxy = env(storage_extra=extra, tls=(tls_files["cert"], tls_files["key"]))
    assert proxy.url.startswith("https://127.0.0.1:")
    e.write("ev-0")
    before = snapshot(e.tmp / "pc")
    run = e.run()
    if verify in ("default", "other_ca"):
        assert run.rc == 1, run.text
        assert "CERTIFICATE_VERIFY_FAILED" in run.err or "certificate verify failed" in run.err
        assert proxy.url in run.err, run.err
        assert proxy.log == []  # not one request got through the handshake
        assert snapshot(e.tmp / "pc") == before
        assert e.server_uids() == []
    else:
        assert run.rc == 0, run.text
        assert e.server_uids() == ["ev-0"]
        assert proxy.log and all(s.headers.get("authorization") for s in proxy.log)
