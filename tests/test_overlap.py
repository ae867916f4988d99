"""When one side is a server, the other side's work goes on while the server answers.

The "server" here is an in-memory collection that declares concurrent writes (as a DAV
collection does) and whose listing, reading and writing each wait until the local side
has done the same step. Were the steps made one after the other, each wait would time out
and the step would fail: these tests check the overlap by what happens, not by timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from pimsync.model import parse_record
from pimsync.plan import Options
from pimsync.state import StateDB
from pimsync.storage.base import Fetched, Listing
from pimsync.storage.memory import MemoryCollection
from pimsync.storage.vdir import VdirCollection
from pimsync.sync import PairSettings, Reporter, sync_collection
from tests.conftest import make_event

WAIT = 10.0  # seconds a step waits for the other side before it counts as not overlapped


class WaitingServer(MemoryCollection):
    """A memory collection that behaves like a server: each step waits for a signal."""

    concurrent_writes = 4
    remote = True

    def __init__(self) -> None:
        super().__init__("cal", "ics")
        self.gates: dict[str, threading.Event] = {}
        self.missed: list[str] = []

    def _wait(self, step: str) -> None:
        gate = self.gates.get(step)
        if gate is not None and not gate.wait(WAIT):
            self.missed.append(step)

    def list(self, token: str | None = None) -> Listing:
        self._wait("list")
        return super().list(token)

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        self._wait("get")
        return super().get(hrefs, values=values)

    def update(self, href: str, record: object, etag: str) -> str:
        self._wait("write")
        return super().update(href, record, etag)  # type: ignore[arg-type]


class SignallingVdir(VdirCollection):
    """A vdir that opens the server's gate once it has done the same step."""

    server: WaitingServer

    def _signal(self, step: str) -> None:
        gate = self.server.gates.get(step)
        if gate is not None:
            gate.set()

    def list(self, token: str | None = None) -> Listing:
        listing = super().list(token)
        self._signal("list")
        return listing

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        yield from super().get(hrefs, values=values)
        self._signal("get")

    def update(self, href: str, record: object, etag: str) -> str:
        etag = super().update(href, record, etag)  # type: ignore[arg-type]
        self._signal("write")
        return etag


def _setup(tmp_path):
    (tmp_path / "pc" / "cal").mkdir(parents=True)
    server = WaitingServer()
    local = SignallingVdir(tmp_path / "pc" / "cal", "cal", "ics", ".ics")
    local.server = server
    db = StateDB(tmp_path / "state", lock_timeout=0)
    pair = PairSettings("p", options=Options(conflict="newest"))
    return server, local, db, pair


def _run(pair, local, server, db):
    # the server is side a: done one after the other, its steps would come first and wait
    # in vain for the local side's
    return sync_collection(
        pair, "cal", {"a": server, "b": local}, {"a": False, "b": False}, db, Reporter()
    )


def test_local_side_is_listed_read_and_written_while_the_server_works(tmp_path):
    server, local, db, pair = _setup(tmp_path)
    for i in range(3):
        (tmp_path / "pc" / "cal" / f"l{i}.ics").write_bytes(make_event(f"l{i}", "local"))
        record = parse_record(make_event(f"s{i}", "server"), "ics", "memory")
        server.create(record)
    result = _run(pair, local, server, db)  # first sync: nothing gated yet
    assert not result.failed, result.stats.errors
    # one edit on each side, then a run in which every server step waits for the local one
    (tmp_path / "pc" / "cal" / "l0.ics").write_bytes(make_event("l0", "local edit"))
    href, (etag, _) = next((h, v) for h, v in server.items.items() if "s0" in h)
    server.update(href, parse_record(make_event("s0", "server edit"), "ics", "memory"), etag)
    server.gates = {step: threading.Event() for step in ("list", "get", "write")}
    result = _run(pair, local, server, db)
    assert not result.failed, result.stats.errors
    assert server.missed == []  # each server step saw the local side's step happen meanwhile
    assert "local edit" in next(r.text for _, r in server.items.values() if r.uid == "l0")
    assert b"server edit" in (tmp_path / "pc" / "cal" / "s0.ics").read_bytes()
    db.close()


def test_without_a_server_side_the_steps_run_in_order(tmp_path, monkeypatch):
    server, local, db, pair = _setup(tmp_path)
    server.remote = False  # now no side waits on a server: listing runs on this thread
    (tmp_path / "pc" / "cal" / "l0.ics").write_bytes(make_event("l0", "local"))
    server.gates = {"list": threading.Event()}
    main = threading.current_thread()
    seen: list[threading.Thread] = []
    original = MemoryCollection.list

    def record_thread(self, token=None):
        seen.append(threading.current_thread())
        return original(self, token)

    monkeypatch.setattr(MemoryCollection, "list", record_thread)
    server.gates["list"].set()
    assert not _run(pair, local, server, db).failed
    assert seen and all(t is main for t in seen)
    db.close()
