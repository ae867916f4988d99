"""The state database: schema version, migrations, privacy, the single-run lock."""

from __future__ import annotations

import sqlite3

import pytest

from pimsync.errors import LockTimeout, StateError
from pimsync.plan_types import Entry, Known
from pimsync.state import DB_NAME, SCHEMA_VERSION, StateDB


def test_new_database_is_private_and_current(tmp_path):
    with StateDB(tmp_path / "s") as db:
        db.put("p", "c", Entry("x", Known("x.ics", "1", "h"), None), b"BEGIN:VCARD\xff")
    path = tmp_path / "s" / DB_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with StateDB(tmp_path / "s") as db:
        assert db.entries("p", "c")["x"].a == Known("x.ics", "1", "h")
        assert db.base("p", "c", "x") == b"BEGIN:VCARD\xff"  # any byte survives


def test_older_database_is_upgraded_not_replaced(tmp_path):
    (tmp_path / "s").mkdir()
    raw = sqlite3.connect(tmp_path / "s" / DB_NAME)
    raw.execute("CREATE TABLE keepme (x)")
    raw.execute("INSERT INTO keepme VALUES (42)")
    raw.commit()
    raw.close()
    with StateDB(tmp_path / "s") as db:
        assert db.entries("p", "c") == {}
        assert db.db.execute("SELECT x FROM keepme").fetchone() == (42,)


def test_newer_database_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    raw = sqlite3.connect(tmp_path / "s" / DB_NAME)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StateError, match="newer pimsync"):
        StateDB(tmp_path / "s")


def test_corrupt_database_is_a_clear_error(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="unusable state database"):
        StateDB(tmp_path / "s")


def test_second_writer_waits_then_gives_up_naming_the_holder(tmp_path):
    import os

    with StateDB(tmp_path / "s"):
        with pytest.raises(LockTimeout, match=f"pid {os.getpid()}"):
            StateDB(tmp_path / "s", lock_timeout=0.2)
        with StateDB(tmp_path / "s", readonly=True) as reader:  # status still works
            assert reader.status() == []
    with StateDB(tmp_path / "s", lock_timeout=0.2):
        pass


def test_transaction_rolls_back_on_error(tmp_path):
    with StateDB(tmp_path / "s") as db:
        with pytest.raises(RuntimeError), db.transaction():
            db.put("p", "c", Entry("x", None, Known("x", "1", "h")))
            raise RuntimeError
        assert db.entries("p", "c") == {}
