"""The storage contract: every adapter behaves the same, for VEVENT, VTODO and VCARD."""

from __future__ import annotations

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


ADAPTERS = {"memory": _memory, "vdir": _vdir, "file": _file}


@pytest.fixture(params=list(KINDS))
def component(request):
    return request.param


@pytest.fixture(params=list(ADAPTERS))
def storage(request, tmp_path, component):
    kind = KINDS[component][0]
    return ADAPTERS[request.param](tmp_path, kind)


@pytest.fixture
def new(component):
    kind, factory = KINDS[component]

    def make(uid: str, summary: str = "x"):
        return parse_record(factory(uid, summary), kind, "test")

    return make


def test_create_collection_then_list_it(storage):
    assert storage.collections() == []
    storage.create_collection("home")
    assert [c.id for c in storage.collections()] == ["home"]
    assert storage.collection("home").list().items == {}


def test_create_get_update_delete(storage, new):
    col = storage.create_collection("home")
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
    assert storage.collection("home").list().items == {}


def test_create_refuses_an_existing_record(storage, new):
    col = storage.create_collection("home")
    col.create(new("one"))
    col.flush()
    with pytest.raises(PreconditionFailed):
        storage.collection("home").create(new("one"))


def test_update_with_a_stale_etag_fails(storage, new):
    col = storage.create_collection("home")
    href, etag = col.create(new("one", "first"))
    col.flush()
    col = storage.collection("home")
    col.list()
    etag2 = col.update(href, new("one", "second"), etag)
    col.flush()
    col = storage.collection("home")
    col.list()
    with pytest.raises(PreconditionFailed):
        col.update(href, new("one", "third"), etag)
    with pytest.raises(PreconditionFailed):
        col.delete(href, etag)
    assert etag2


def test_get_of_a_missing_href_says_not_found(storage, new):
    col = storage.create_collection("home")
    col.create(new("one"))
    col.flush()
    [got] = list(storage.collection("home").get([f"nope.{storage.kind}"]))
    assert got.record is None and isinstance(got.error, NotFound)


def test_many_records_and_odd_uids(storage, new):
    col = storage.create_collection("home")
    uids = [f"uid-{i}" for i in range(20)] + ["ünïcödé", "a/b", "..", "x" * 300, ".hidden"]
    made = {}
    for uid in uids:
        href, etag = col.create(new(uid))
        made[href] = uid
    col.flush()
    col = storage.collection("home")
    listing = col.list()
    assert set(listing.items) == set(made)
    got = {f.href: f.record.ident for f in col.get(list(listing.items))}
    assert got == made
