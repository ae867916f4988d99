"""vdir specifics: safe file names, atomic writes, metadata files, modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pimsync.errors import PreconditionFailed, StorageError
from pimsync.model import parse_record
from pimsync.storage.vdir import VdirStorage, href_for
from tests.conftest import make_event


@pytest.mark.parametrize(
    "uid",
    ["simple-uid@example.org", "ünïcödé", "a/b/../../c", "..", ".", ".hidden", "x" * 1000,
     "with space", "back\\slash", "nul\0byte", "CON", "x.ics"],
)  # fmt: skip
def test_file_name_is_safe_for_any_uid(uid, tmp_path):
    name = href_for(uid, ".ics")
    assert "/" not in name and "\\" not in name and "\0" not in name
    assert not name.startswith(".") and name.endswith(".ics") and len(name) <= 200
    storage = VdirStorage("v", tmp_path / "v", ".ics", "ics", False)
    col = storage.create_collection("home")
    record = parse_record(make_event(uid.replace("\0", "")), "ics", "t")
    href, _ = col.create(record)
    assert (tmp_path / "v" / "home" / href).resolve().parent == (tmp_path / "v" / "home").resolve()


def test_safe_uid_keeps_its_name():
    assert href_for("abc-123@example.org", ".ics") == "abc-123@example.org.ics"


def test_hrefs_from_outside_never_leave_the_directory(tmp_path):
    col = VdirStorage("v", tmp_path / "v", ".ics", "ics", False).create_collection("home")
    for bad in ["../x.ics", "/etc/passwd.ics", ".hidden.ics", "a/b.ics"]:
        with pytest.raises(StorageError):
            col.update(bad, parse_record(make_event("x"), "ics", "t"), "etag")


def test_collection_names_cannot_escape(tmp_path):
    storage = VdirStorage("v", tmp_path / "v", ".ics", "ics", False)
    for bad in ["..", "../x", "a/b", ".hidden", ""]:
        with pytest.raises(StorageError):
            storage.create_collection(bad)


def test_writes_are_atomic_and_private(tmp_path, monkeypatch):
    col = VdirStorage("v", tmp_path / "v", ".ics", "ics", False).create_collection("home")
    href, etag = col.create(parse_record(make_event("x", "one"), "ics", "t"))
    path = tmp_path / "v" / "home" / href
    assert path.stat().st_mode & 0o777 == 0o600
    os.chmod(path, 0o640)  # a user's choice is kept on update

    # a failing write leaves the old file whole and no temp file behind
    def boom(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", boom)
    with pytest.raises(StorageError, match="No space left"):
        col.update(href, parse_record(make_event("x", "two"), "ics", "t"), etag)
    monkeypatch.undo()
    assert b"SUMMARY:one" in path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [href]
    new_etag = col.update(href, parse_record(make_event("x", "two"), "ics", "t"), etag)
    assert path.stat().st_mode & 0o777 == 0o640
    assert new_etag != etag and b"SUMMARY:two" in path.read_bytes()


def test_other_files_are_ignored(tmp_path):
    home = tmp_path / "v" / "home"
    home.mkdir(parents=True)
    (home / "x.ics").write_bytes(make_event("x"))
    (home / ".x.ics.abc.tmp").write_bytes(b"half")
    (home / "notes.txt").write_text("hello")
    (home / "displayname").write_text("Home\n")
    (home / "color").write_text("#ff0000\n")
    (home / "sub.ics").mkdir()
    storage = VdirStorage("v", tmp_path / "v", ".ics", "ics", False)
    col = storage.collection("home")
    assert list(col.list().items) == ["x.ics"]
    [info] = storage.collections()
    assert (info.id, info.displayname, info.color) == ("home", "Home", "#ff0000")
    col.set_meta("displayname", "Family")
    assert (home / "displayname").read_text() == "Family"


def test_create_beside_a_foreign_file_of_the_same_name(tmp_path):
    col = VdirStorage("v", tmp_path / "v", ".ics", "ics", False).create_collection("home")
    # a file named like x's href but holding another record
    (Path(col.path) / "x.ics").write_bytes(make_event("other"))
    href, _ = col.create(parse_record(make_event("x"), "ics", "t"))
    assert href != "x.ics"
    # the same record again is a precondition failure, not a second file
    (Path(col.path) / href).unlink()
    (Path(col.path) / "x.ics").write_bytes(make_event("x"))
    with pytest.raises(PreconditionFailed):
        col.create(parse_record(make_event("x"), "ics", "t"))
