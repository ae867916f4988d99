"""Smoke tests of the real CalDAV/CardDAV test servers (tests/servers/).

They talk to Radicale, Xandikos, Cyrus and DAViCal with http.client only, and pin down
the server behaviour the sync code relies on (conditional PUTs, RFC 6578 sync tokens,
paths), and where the servers differ.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import make_card, make_event
from tests.servers import (
    CALDAV_NS,
    CARDDAV_NS,
    DAV_NS,
    DavServer,
    group_members,
    listening_sockets,
    parse_multistatus,
    pid_exists,
    start_cyrus,
    start_davical,
    start_radicale,
    start_xandikos,
    sync_token_of,
)

D = f"{{{DAV_NS}}}"
C = f"{{{CALDAV_NS}}}"
CR = f"{{{CARDDAV_NS}}}"


def unfolded_lines(data: bytes) -> list[str]:
    """Content lines with folding undone, sorted: equal if only order/folding changed."""
    text = data.decode().replace("\r\n ", "").replace("\r\n\t", "")
    return sorted(line for line in text.split("\r\n") if line)


# --- basics ---------------------------------------------------------------------------------


def _options(server: DavServer, path: str) -> tuple[set[str], set[str]]:
    resp = server.request("OPTIONS", path)
    assert resp.status == 200
    dav = {part.strip() for part in (resp.header("DAV") or "").split(",")}
    allow = {part.strip() for part in (resp.header("Allow") or "").split(",")}
    return dav, allow


def test_options_has_dav_headers(dav_server: DavServer, dav_collection):
    """Asked on the homes and a collection: Cyrus's "/" is no DAV resource (no DAV
    header), DAViCal's allows only OPTIONS, PROPFIND and REPORT there."""
    cal_dav, cal_allow = _options(dav_server, dav_server.calendar_home)
    card_dav, card_allow = _options(dav_server, dav_server.addressbook_home)
    assert {"1", "calendar-access", "extended-mkcol"} <= cal_dav
    assert {"1", "addressbook", "extended-mkcol"} <= card_dav
    assert {"PROPFIND", "MKCALENDAR"} <= cal_allow
    assert {"PROPFIND", "MKCOL"} <= card_allow
    for kind in ("ics", "vcf"):
        _, allow = _options(dav_server, dav_collection(dav_server, kind))
        if dav_server.kind == "davical" and kind == "vcf":
            allow.add("PUT")  # not in DAViCal's Allow of an address book; PUTs work there
        assert {"PROPFIND", "REPORT", "PUT", "DELETE"} <= allow


def test_only_loopback_is_bound(dav_server: DavServer):
    """The listening socket is 127.0.0.1:PORT, nothing on a wildcard or IPv6 address."""
    assert listening_sockets(dav_server.port) == [f"0100007F:{dav_server.port:04X}"]


def test_principal_and_homes(dav_server: DavServer):
    resp = dav_server.propfind("/", "<D:current-user-principal/>", depth="0")
    assert resp.status == 207
    (props,) = parse_multistatus(resp.body).values()
    principal = props[D + "current-user-principal"].findtext(D + "href")
    principals = {
        "radicale": "/alice/",
        "xandikos": "/user/",
        "cyrus": "/dav/principals/user/alice/",
        "davical": "/caldav.php/alice/",
    }
    assert principal == principals[dav_server.kind]

    resp = dav_server.propfind(
        principal, "<C:calendar-home-set/><CR:addressbook-home-set/>", depth="0"
    )
    assert resp.status == 207
    props = parse_multistatus(resp.body)[principal]
    assert props[C + "calendar-home-set"].findtext(D + "href") == dav_server.calendar_home
    assert props[CR + "addressbook-home-set"].findtext(D + "href") == dav_server.addressbook_home


@pytest.mark.parametrize("kind", ["ics", "vcf"])
def test_make_collection(dav_server: DavServer, dav_collection, kind):
    path = dav_collection(dav_server, kind)
    assert path.startswith(dav_server.home(kind)) and path.endswith("/")
    resp = dav_server.propfind(path, "<D:resourcetype/><D:displayname/>", depth="0")
    assert resp.status == 207
    props = parse_multistatus(resp.body)[path]
    types = {child.tag for child in props[D + "resourcetype"]}
    assert types == {D + "collection", C + "calendar" if kind == "ics" else CR + "addressbook"}
    assert props[D + "displayname"].text == path.rstrip("/").rsplit("/", 1)[1]
    assert dav_server.etags(path) == {}


# --- conditional writes ---------------------------------------------------------------------


def test_put_if_none_match(dav_server: DavServer, dav_collection):
    path = dav_collection(dav_server, "ics") + "one.ics"
    first = dav_server.put(path, make_event("put-1"), if_none_match=True)
    assert first.status in (201, 204)
    assert first.header("ETag")
    again = dav_server.put(path, make_event("put-1", "again"), if_none_match=True)
    assert again.status == 412
    got = dav_server.request("GET", path)
    assert got.status == 200 and b"SUMMARY:Event" in got.body
    assert got.header("ETag") == first.header("ETag")


def test_put_wrong_if_match(dav_server: DavServer, dav_collection):
    path = dav_collection(dav_server, "vcf") + "card.vcf"
    created = dav_server.put(path, make_card("card-1"), if_none_match=True)
    assert created.status in (201, 204)
    stale = dav_server.put(path, make_card("card-1", "Other"), if_match='"not-the-etag"')
    assert stale.status == 412
    fresh = dav_server.put(path, make_card("card-1", "Other"), if_match=created.header("ETag"))
    assert fresh.status in (200, 201, 204)
    # DAViCal sends no ETag with the 204 of an update (pimsync asks a PROPFIND then)
    etag = fresh.header("ETag") or dav_server.etags(path.rsplit("/", 1)[0] + "/")[path]
    assert etag != created.header("ETag")


def test_put_if_match_on_missing_resource(dav_server: DavServer, dav_collection):
    path = dav_collection(dav_server, "ics") + "missing.ics"
    assert dav_server.put(path, make_event("m-1"), if_match='"x"').status == 412


# --- RFC 6578 sync-collection ---------------------------------------------------------------


def test_sync_collection(dav_server: DavServer, dav_collection):
    coll = dav_collection(dav_server, "ics")
    put = dav_server.put(coll + "s.ics", make_event("sync-1"), if_none_match=True)

    full = dav_server.sync_collection(coll, "")
    assert full.status == 207
    token = sync_token_of(full.body)
    assert token
    listed = parse_multistatus(full.body)
    assert listed[coll + "s.ics"][D + "getetag"].text == put.header("ETag")

    unchanged = dav_server.sync_collection(coll, token)
    assert unchanged.status == 207
    assert parse_multistatus(unchanged.body) == {}
    assert sync_token_of(unchanged.body) == token

    dav_server.put(coll + "t.ics", make_event("sync-2"), if_none_match=True)
    assert dav_server.request("DELETE", coll + "s.ics").status in (200, 204)
    delta = dav_server.sync_collection(coll, token)
    assert delta.status == 207
    assert sync_token_of(delta.body) not in (None, token)
    assert set(parse_multistatus(delta.body)) == {coll + "s.ics", coll + "t.ics"}
    assert "404" in delta.text  # the deleted member is reported with status 404


def test_invalid_sync_token(dav_server: DavServer, dav_collection):
    """403 or 412 valid-sync-token; DAViCal answers a token it does not know with the
    full listing and a token of its own (a full resync, which is all a client needs)."""
    coll = dav_collection(dav_server, "vcf")
    dav_server.put(coll + "a.vcf", make_card("bogus-a"), if_none_match=True)
    resp = dav_server.sync_collection(coll, "http://example.invalid/sync/bogus")
    expected = {"radicale": 403, "xandikos": 412, "cyrus": 403, "davical": 207}
    assert resp.status == expected[dav_server.kind]
    if resp.status == 207:
        assert set(parse_multistatus(resp.body)) == {coll + "a.vcf"}
        assert sync_token_of(resp.body) not in (None, "http://example.invalid/sync/bogus")
    else:
        assert "valid-sync-token" in resp.text


# --- auth -----------------------------------------------------------------------------------


def test_radicale_auth(radicale_auth: DavServer):
    principal = radicale_auth.calendar_home
    assert radicale_auth.propfind(principal, "<D:resourcetype/>", "0").status == 207
    started = time.monotonic()
    wrong = radicale_auth.propfind(principal, "<D:resourcetype/>", "0", password="wrong")
    assert wrong.status == 401
    assert (wrong.header("WWW-Authenticate") or "").startswith("Basic")
    assert time.monotonic() - started < 0.5  # [auth] delay = 0
    anonymous = radicale_auth.request("PROPFIND", principal, auth=False, headers={"Depth": "0"})
    assert anonymous.status == 401


@pytest.mark.parametrize("name", ["cyrus", "davical"])
def test_real_auth(request, name):
    """Cyrus and DAViCal check alice's password: wrong or none is a 401 (Basic offered)."""
    server: DavServer = request.getfixturevalue(name)
    home = server.calendar_home
    assert server.password
    assert server.propfind(home, "<D:resourcetype/>", "0").status == 207
    wrong = server.propfind(home, "<D:resourcetype/>", "0", password="wrong")
    assert wrong.status == 401
    assert "Basic" in (wrong.header("WWW-Authenticate") or "")
    anonymous = server.request("PROPFIND", home, auth=False, headers={"Depth": "0"})
    assert anonymous.status == 401


def test_radicale_without_auth_takes_any_password(radicale: DavServer):
    resp = radicale.propfind("/alice/", "<D:resourcetype/>", "0", password="anything")
    assert resp.status == 207


# --- seeding --------------------------------------------------------------------------------


def test_seed_200_records(dav_server: DavServer, request):
    name = f"seed-{request.node.callspec.id}-{time.monotonic_ns()}"
    files = {f"ev-{i:03d}.ics": make_event(f"seed-{name}-{i}", f"Seeded {i}") for i in range(200)}
    path = dav_server.seed(name, "ics", files)
    assert path == dav_server.collection_path(name, "ics")
    etags = dav_server.etags(path)
    assert set(etags) == {path + n for n in files}
    resp = dav_server.propfind(path, "<D:resourcetype/>", depth="0")
    types = {child.tag for child in parse_multistatus(resp.body)[path][D + "resourcetype"]}
    assert C + "calendar" in types
    got = dav_server.request("GET", path + "ev-007.ics")
    assert got.status == 200 and b"SUMMARY:Seeded 7\r\n" in got.body


def test_seed_into_live_collection_shows_in_sync(dav_server: DavServer, dav_collection):
    coll = dav_collection(dav_server, "vcf")
    dav_server.put(coll + "a.vcf", make_card("live-a"), if_none_match=True)
    token = sync_token_of(dav_server.sync_collection(coll).body)
    name = coll.rstrip("/").rsplit("/", 1)[1]
    dav_server.seed(name, "vcf", {"b.vcf": make_card("live-b"), "c.vcf": make_card("live-c")})
    delta = dav_server.sync_collection(coll, token or "")
    assert delta.status == 207
    assert set(parse_multistatus(delta.body)) == {coll + "b.vcf", coll + "c.vcf"}
    # The server knows the seeded records: a PUT over one of them needs its etag.
    etag = dav_server.etags(coll)[coll + "b.vcf"]
    assert dav_server.put(coll + "b.vcf", make_card("live-b", "X"), if_match='"x"').status == 412
    assert dav_server.put(coll + "b.vcf", make_card("live-b", "X"), if_match=etag).status in (
        200,
        201,
        204,
    )


def test_seed_refuses_wrong_kind(dav_server: DavServer, dav_collection):
    coll = dav_collection(dav_server, "ics")
    name = coll.rstrip("/").rsplit("/", 1)[1]
    if dav_server.calendar_home == dav_server.addressbook_home:
        with pytest.raises(ValueError):
            dav_server.seed(name, "vcf", {"x.vcf": make_card("x")})
    with pytest.raises(ValueError):
        dav_server.seed(name, "ics", {"../x.ics": make_event("x")})


# --- how each server stores what it gets ----------------------------------------------------


def test_stored_form(dav_server: DavServer, dav_collection):
    """Radicale re-serialises events and cards; Xandikos and Cyrus re-serialise events
    only; DAViCal keeps events as they are and adds a REV to cards.

    Apart from DAViCal's REV, none changes the content lines, only their order and the
    line folding.
    """
    event = make_event("form-1", extra="DESCRIPTION:" + "x" * 90 + "\r\n")
    card = make_card("form-2", extra="EMAIL;TYPE=INTERNET:ann@example.org\r\n")
    ev_path = dav_collection(dav_server, "ics") + "e.ics"
    card_path = dav_collection(dav_server, "vcf") + "c.vcf"
    dav_server.put(ev_path, event, if_none_match=True)
    dav_server.put(card_path, card, if_none_match=True)
    ev_back = dav_server.request("GET", ev_path).body
    card_back = dav_server.request("GET", card_path).body
    if dav_server.kind == "davical":
        assert ev_back == event
        added = set(unfolded_lines(card_back)) - set(unfolded_lines(card))
        assert [line.split(":", 1)[0] for line in added] == ["REV"]
        assert set(unfolded_lines(card_back)) - added == set(unfolded_lines(card))
        return
    assert ev_back != event
    assert unfolded_lines(ev_back) == unfolded_lines(event)
    assert unfolded_lines(card_back) == unfolded_lines(card)
    if dav_server.kind in ("xandikos", "cyrus"):
        assert card_back == card
    else:
        assert card_back != card


# --- lifecycle ------------------------------------------------------------------------------


STARTERS = {
    "radicale": start_radicale,
    "xandikos": start_xandikos,
    "cyrus": start_cyrus,
    "davical": start_davical,
}


@pytest.mark.parametrize("kind", list(STARTERS))
def test_stop_ends_the_process(tmp_path, request, kind):
    """stop() ends every process the server started (Cyrus's master and its children;
    Apache and its children, PostgreSQL) and removes its private data directory."""
    if kind in ("cyrus", "davical"):
        request.getfixturevalue(kind)  # skips the test where the server is not installed
    server = STARTERS[kind](tmp_path)
    groups = [server.pid, *(h.proc.pid for h in server.helpers)]
    try:
        assert pid_exists(server.pid)
        assert server.request("OPTIONS", server.calendar_home).status == 200
        assert all(group_members(g) for g in groups)
    finally:
        server.stop()
    assert not pid_exists(server.pid)
    assert not server.alive()
    assert [g for g in groups if group_members(g)] == []
    assert listening_sockets(server.port) == []
    assert not server.root.exists() or server.root.is_relative_to(tmp_path)
    server.stop()  # idempotent
