"""The storage contract: every adapter behaves the same, for VEVENT, VTODO and VCARD:
the in-memory store, vdir, single file, and CalDAV/CardDAV on real Radicale, Xandikos,
Cyrus and DAViCal."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pimsync.errors import NotFound, PreconditionFailed
from pimsync.model import parse_record
from pimsync.storage.memory import MemoryStorage
from pimsync.storage.singlefile import SingleFileStorage
from pimsync.storage.vdir import VdirStorage
from tests.conftest import make_card, make_event

KINDS = {
    "VEVENT": ("ics", lambda uid, s: make_event(uid, s)),
    "VTODO": ("ics", lambda uid, s: make_event(uid, s, component="VTODO")),
    "VCARD": ("vcf", lambda uid, s: make_card(uid, s)),
}


def _memory(tmp: Path, kind: str):
    return MemoryStorage("mem", kind)


def _vdir(tmp: Path, kind: str):
    return VdirStorage("vdir", tmp / "vdir", f".{kind}", kind, False)


def _file(tmp: Path, kind: str):
    return SingleFileStorage("file", tmp / f"{{collection}}.{kind}", kind, False)


def _dav(server):
    def make(tmp: Path, kind: str):
        from pimsync.storage.dav.http import HttpClient
        from pimsync.storage.dav.storage import DavStorage

        client = HttpClient(server.url, username=server.username, password=server.password)
        return DavStorage(server.kind, client, kind)

    return make


ADAPTERS = {"memory": _memory, "vdir": _vdir, "file": _file}
SERVERS = ("radicale", "xandikos", "cyrus", "davical")


@pytest.fixture(params=list(KINDS))
def component(request):
    return request.param


@pytest.fixture(params=[*ADAPTERS, *SERVERS])
def storage(request, tmp_path, component):
    kind = KINDS[component][0]
    if request.param in SERVERS:
        return _dav(request.getfixturevalue(request.param))(tmp_path, kind)
    return ADAPTERS[request.param](tmp_path, kind)


@pytest.fixture
def cid():
    """A collection name of its own for each test (servers are shared by the session)."""
    return f"c-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def new(component):
    kind, factory = KINDS[component]

    def make(uid: str, summary: str = "x"):
        return parse_record(factory(uid, summary), kind, "test")

    return make


def test_create_collection_then_list_it(storage, cid):
    before = {c.id for c in storage.collections()}
    assert cid not in before
    storage.create_collection(cid)
    assert {c.id for c in storage.collections()} == before | {cid}
    assert storage.collection(cid).list().items == {}


def test_create_get_update_delete(storage, new, cid):
    col = storage.create_collection(cid)
    href, etag = col.create(new("one", "first"))
    col.flush()
    listing = col.list()
    assert listing.items == {href: etag}
    [got] = list(col.get([href]))
    assert got.record.ident == "one" and got.etag == etag

    etag2 = col.update(href, new("one", "second"), etag)
    col.flush()
    assert etag2 != etag
    [got] = list(col.get([href]))
    assert got.record.hash == new("one", "second").hash

    col.delete(href, etag2)
    col.flush()
    assert storage.collection(cid).list().items == {}


def test_create_refuses_an_existing_record(storage, new, cid):
    col = storage.create_collection(cid)
    col.create(new("one"))
    col.flush()
    with pytest.raises(PreconditionFailed):
        storage.collection(cid).create(new("one"))


def test_update_with_a_stale_etag_fails(storage, new, cid):
    col = storage.create_collection(cid)
    href, etag = col.create(new("one", "first"))
    col.flush()
    col = storage.collection(cid)
    col.list()
    etag2 = col.update(href, new("one", "second"), etag)
    col.flush()
    col = storage.collection(cid)
    col.list()
    with pytest.raises(PreconditionFailed):
        col.update(href, new("one", "third"), etag)
    with pytest.raises(PreconditionFailed):
        col.delete(href, etag)
    assert etag2


def test_get_of_a_missing_href_says_not_found(storage, new, cid):
    col = storage.create_collection(cid)
    col.create(new("one"))
    col.flush()
    [got] = list(storage.collection(cid).get([f"nope.{storage.kind}"]))
    assert got.record is None and isinstance(got.error, NotFound)


def test_many_records_and_odd_uids(storage, new, cid):
    col = storage.create_collection(cid)
    uids = [f"uid-{i}" for i in range(20)] + ["ünïcödé", "a/b", "..", "x" * 300, ".hidden"]
    made = {}
    for uid in uids:
        href, etag = col.create(new(uid))
        made[href] = uid
    col.flush()
    col = storage.collection(cid)
    listing = col.list()
    assert set(listing.items) == set(made)
    got = {f.href: f.record.ident for f in col.get(list(listing.items))}
    assert got == made
