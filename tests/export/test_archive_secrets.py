"""An archive, its manifest and an export's messages never keep a URL's user name and
password (a configured URL cannot have them; a server's redirect can)."""

from __future__ import annotations

import gzip
import json
import tarfile

import pytest

from pimsync.errors import StorageError
from pimsync.export.archive import ExportError, write_archive
from pimsync.model import parse_record
from pimsync.storage.base import Fetched
from pimsync.storage.memory import MemoryCollection, MemoryStorage
from tests.conftest import make_event

SECRET = "hunter2-SECRET"
URL = f"https://alice:{SECRET}@dav.example.org/cal/"


class Redirected(MemoryCollection):
    """A collection found at a URL with credentials in it, one of whose records fails."""

    def __init__(self) -> None:
        super().__init__("home", "ics")
        self.where = URL

    def get(self, hrefs, *, values=True):
        for fetched in super().get(hrefs, values=values):
            if fetched.href == "bad.ics":
                error = StorageError("GET: 500 oops", where=f"{URL}bad.ics")
                yield Fetched(fetched.href, "", error=error)
            else:
                yield fetched


def storage(*, list_fails: bool = False) -> MemoryStorage:
    s = MemoryStorage("server", "ics")
    col = s.cols["home"] = Redirected()
    for uid in ("a", "bad"):
        col.create(parse_record(make_event(uid), "ics", "test"))
    if list_fails:

        def broken(token=None):
            raise StorageError(f"PROPFIND failed: redirected to {URL}x", where=URL)

        col.list = broken  # type: ignore[method-assign]
    return s


def test_the_manifest_keeps_no_userinfo(tmp_path):
    logged: list[str] = []
    written = write_archive("t", [storage()], tmp_path, log=logged.append)
    assert written.errors and all(SECRET not in e for e in written.errors)
    assert "https://dav.example.org/cal/bad.ics" in written.errors[0]
    raw = gzip.decompress(written.path.read_bytes())
    assert SECRET.encode() not in raw and b"alice:" not in raw
    with tarfile.open(written.path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    [entry] = manifest["collections"]
    assert entry["where"] == "https://dav.example.org/cal/"
    assert logged and all(SECRET not in line for line in logged)


def test_an_export_error_keeps_no_userinfo(tmp_path):
    with pytest.raises(ExportError) as info:
        write_archive("t", [storage(list_fails=True)], tmp_path)
    assert SECRET not in str(info.value) and "https://dav.example.org/" in str(info.value)
    assert list(tmp_path.iterdir()) == []
