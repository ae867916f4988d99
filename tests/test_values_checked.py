"""Records from a CalDAV/CardDAV server are not value-checked again; local ones are.

A server checks what it stores (RFC 4791 5.3.2.1, RFC 6352 6.3.2.1), so a record it serves
is copied as it is, even with a value icalendar rejects. A local file with such a value is
reported and not copied, and its counterpart is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pimsync.model import parse_record
from pimsync.plan import Options
from pimsync.state import StateDB
from pimsync.storage.base import Fetched
from pimsync.storage.memory import MemoryCollection
from pimsync.storage.vdir import VdirCollection
from pimsync.sync import PairSettings, Reporter, sync_collection
from tests.conftest import make_event


def _odd(uid: str) -> bytes:
    return make_event(uid, "Odd date").replace(b"DTSTART:20261201", b"DTSTART:20261399")


class Server(MemoryCollection):
    remote = True
    values_checked = True
    concurrent_writes = 4

    def __init__(self) -> None:
        super().__init__("cal", "ics")
        self.asked: list[bool] = []

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        self.asked.append(values)
        return super().get(hrefs, values=values)


def test_server_records_are_copied_without_a_value_check_local_ones_are_checked(tmp_path):
    (tmp_path / "pc").mkdir()
    local = VdirCollection(tmp_path / "pc", "cal", "ics", ".ics")
    server = Server()
    server.create(parse_record(_odd("from-server"), "ics", "memory", values=False))
    server.create(parse_record(make_event("fine"), "ics", "memory"))
    (tmp_path / "pc" / "from-pc.ics").write_bytes(_odd("from-pc"))
    db = StateDB(tmp_path / "state", lock_timeout=0)
    result = sync_collection(
        PairSettings("p", options=Options(conflict="newest")),
        "cal",
        {"a": local, "b": server},
        {"a": False, "b": False},
        db,
        Reporter(),
    )
    db.close()
    assert server.asked == [False]
    assert (tmp_path / "pc" / "from-server.ics").read_bytes() == _odd("from-server")
    assert (tmp_path / "pc" / "fine.ics").exists()
    # the local file with a bad value is reported, not copied, and stays
    [error] = result.stats.errors
    assert "from-pc.ics" in error and "DTSTART" in error
    assert not any(r.uid == "from-pc" for _, r in server.items.values())
    assert (tmp_path / "pc" / "from-pc.ics").read_bytes() == _odd("from-pc")
