"""A Hypothesis state machine: random creates, edits and deletes on both sides of a pair,
syncs that crash at random points (between any two writes, or before a state commit),
then clean syncs; after each clean sync both sides are equal and no edit is lost.

"No edit lost" is checked on version history: every write by the user creates a version
whose parent is what that side showed at the time; a version is *superseded* when the user
edited or deleted it. After a clean sync the versions present on each side are exactly the
versions never superseded (an edit beats a delete; with "keep both" a conflicting version
survives under a new UID), each exactly once: nothing lost, nothing resurrected, nothing
duplicated.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pimsync.state
import pimsync.storage.singlefile
import pimsync.storage.vdir
from pimsync.model import join, parse_record, split
from pimsync.plan import Options
from pimsync.state import StateDB
from pimsync.storage.singlefile import SingleFileStorage
from pimsync.storage.vdir import VdirStorage, href_for
from pimsync.sync import PairSettings, Reporter, sync_pair
from tests.conftest import make_event


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, nothing is cleaned up."""


class CrashPoints:
    """Counts the points where a crash can happen and crashes at the n-th."""

    def __init__(self) -> None:
        self.countdown: int | None = None

    def tick(self) -> None:
        if self.countdown is not None:
            self.countdown -= 1
            if self.countdown < 0:
                self.countdown = None
                raise Crash()


UIDS = [f"u{i}" for i in range(5)]


class SyncMachine(RuleBasedStateMachine):
    b_type = "file"
    options = Options("keep both")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="pimsync-machine-"))
        self.counter = itertools.count()
        self.parent: dict[str, str | None] = {}  # version -> the version it replaced
        self.superseded: set[str] = set()
        # A crashed run may have written a version to the other side without noting it.
        # A version the user replaces or deletes before the next clean sync may therefore
        # come back (nothing can tell "my write never landed" from "it landed and the user
        # removed it"): that is allowed, losing data is not.
        self.dirty = False
        self.may_return: set[str] = set()
        self.crashes = CrashPoints()
        self.patches = contextlib.ExitStack()
        self._install_crash_points()

    # -- the two sides, as a user's tools would change them ------------------------------
    def _install_crash_points(self) -> None:
        crashes = self.crashes
        real_write = pimsync.storage.fsutil.atomic_write

        def write(*args, **kwargs):
            crashes.tick()
            result = real_write(*args, **kwargs)
            crashes.tick()
            return result

        real_tx = StateDB.transaction

        @contextlib.contextmanager
        def transaction(db):
            with real_tx(db):
                yield
                crashes.tick()

        mp = pytest.MonkeyPatch()
        self.patches.callback(mp.undo)
        mp.setattr(pimsync.storage.vdir, "atomic_write", write)
        mp.setattr(pimsync.storage.singlefile, "atomic_write", write)
        mp.setattr(StateDB, "transaction", transaction)

    def storages(self) -> dict:
        a = VdirStorage("a", self.tmp / "a", ".ics", "ics", False)
        if self.b_type == "file":
            b = SingleFileStorage("b", self.tmp / "b" / "{collection}.ics", "ics", False)
        else:
            b = VdirStorage("b", self.tmp / "b", ".ics", "ics", False)
        return {"a": a, "b": b}

    def side(self, side: str) -> dict[str, str]:
        """uid -> version (the SUMMARY) on one side, read directly from the files."""
        out: dict[str, str] = {}
        for uid, text in self._records(side).items():
            out[uid] = text.split("SUMMARY:", 1)[1].split("\r\n", 1)[0]
        return out

    def _records(self, side: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if side == "b" and self.b_type == "file":
            path = self.tmp / "b" / "home.ics"
            if path.exists():
                res = split(path.read_bytes(), "ics", str(path))
                assert not res.errors
                for r in res.records:
                    assert r.ident not in out, f"UID {r.ident} twice in {path}"
                    out[r.ident] = r.text
            return out
        for p in (self.tmp / side / "home").glob("*.ics"):
            r = parse_record(p.read_bytes(), "ics", str(p))
            assert r.ident not in out, f"UID {r.ident} twice on side {side}"
            out[r.ident] = r.text
        return out

    def _put(self, side: str, uid: str, data: bytes | None) -> None:
        if side == "b" and self.b_type == "file":
            path = self.tmp / "b" / "home.ics"
            res = split(path.read_bytes(), "ics", str(path))
            records = [r for r in res.records if r.ident != uid]
            if data is not None:
                records.append(parse_record(data, "ics", "user"))
            path.write_bytes(join(records, "ics", res.wrapper))
            return
        directory = self.tmp / side / "home"
        existing = [
            p for p in directory.glob("*.ics")
            if parse_record(p.read_bytes(), "ics", str(p)).ident == uid
        ]  # fmt: skip
        for p in existing:
            p.unlink()
        if data is not None:
            name = existing[0].name if existing else href_for(uid, ".ics")
            (directory / name).write_bytes(data)

    # -- rules ----------------------------------------------------------------------------
    @initialize()
    def setup(self) -> None:
        (self.tmp / "a" / "home").mkdir(parents=True)
        if self.b_type == "file":
            (self.tmp / "b").mkdir()
            (self.tmp / "b" / "home.ics").write_bytes(join([], "ics"))
        else:
            (self.tmp / "b" / "home").mkdir(parents=True)

    def _write(self, side: str, uid: str) -> None:
        version = f"v{next(self.counter)}"
        old = self.side(side).get(uid)
        self.parent[version] = old
        if old is not None:
            self._supersede(old)
        self._put(side, uid, make_event(uid, version))

    def _supersede(self, version: str) -> None:
        self.superseded.add(version)
        if self.dirty:
            self.may_return.add(version)

    @rule(side=st.sampled_from("ab"), uid=st.sampled_from(UIDS))
    def write(self, side: str, uid: str) -> None:
        """Create a record, or edit it if it exists."""
        self._write(side, uid)

    @rule(side=st.sampled_from("ab"), data=st.data())
    def edit_any(self, side: str, data: st.DataObject) -> None:
        """Edit any record there, conflict copies included."""
        current = self.side(side)
        if current:
            self._write(side, data.draw(st.sampled_from(sorted(current))))

    @rule(side=st.sampled_from("ab"), data=st.data())
    def delete(self, side: str, data: st.DataObject) -> None:
        current = self.side(side)
        if not current:
            return
        uid = data.draw(st.sampled_from(sorted(current)))
        self._supersede(current[uid])
        self._put(side, uid, None)

    @rule(crash_at=st.integers(min_value=0, max_value=12))
    def crashing_sync(self, crash_at: int) -> None:
        self.crashes.countdown = crash_at
        try:
            self._sync()
        except Crash:
            self.dirty = True
        finally:
            self.crashes.countdown = None

    @rule()
    def sync_and_check(self) -> None:
        self._sync()
        a, b = self.side("a"), self.side("b")
        assert a == b, f"sides differ after a clean sync:\na={a}\nb={b}"
        versions = sorted(a.values())
        assert len(versions) == len(set(versions)), f"a version is duplicated: {a}"
        alive = {v for v in self.parent if v not in self.superseded}
        lost = alive - set(versions)
        resurrected = set(versions) - alive - self.may_return
        assert not lost and not resurrected, f"lost: {lost}, resurrected: {resurrected}"
        self.superseded -= set(versions) & self.may_return  # they are alive again
        self.dirty = False
        self.may_return = set()
        # and a second clean sync changes nothing
        assert self._sync() == 0

    def _sync(self) -> int:
        db = StateDB(self.tmp / "state", lock_timeout=0)
        try:
            results = sync_pair(
                PairSettings("p", "all", self.options),
                self.storages(),
                db,
                Reporter(),
                force_delete=True,
            )
        finally:
            db.close()
        assert not any(r.stats.errors or r.stopped for r in results), [
            (r.stats.errors, r.stopped) for r in results
        ]
        return sum(r.stats.writes for r in results)

    @invariant()
    def no_temp_files_left_visible(self) -> None:
        for p in self.tmp.rglob("*"):
            assert not (p.is_file() and p.name.endswith(".tmp") and not p.name.startswith("."))

    def teardown(self) -> None:
        try:
            if (self.tmp / "a").exists():
                self.sync_and_check()
        finally:
            self.patches.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


class SyncMachineVdirVdir(SyncMachine):
    b_type = "vdir"


class SyncMachineMerge(SyncMachine):
    """The default policy: merge, and "keep both" for what cannot be merged (every edit
    here changes the SUMMARY, so concurrent edits are true conflicts)."""

    options = Options("merge", fallback="keep both")


MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestVdirFile = SyncMachine.TestCase
TestVdirFile.settings = MACHINE_SETTINGS
TestVdirVdir = SyncMachineVdirVdir.TestCase
TestVdirVdir.settings = MACHINE_SETTINGS
TestMerge = SyncMachineMerge.TestCase
TestMerge.settings = MACHINE_SETTINGS


def test_interrupted_keep_both_then_the_winner_deleted_leaves_no_second_copy():
    """Found by the machine: a crash after the "keep both" copy reached one side only, then
    the user deletes that side's own version. The copy is then no longer needed: the kept
    version is still there under its own UID, and completing the copy would keep it
    twice."""
    m = SyncMachineVdirVdir()
    try:
        m.setup()
        m.write(side="b", uid="u0")  # v0
        m.write(side="a", uid="u0")  # v1: a conflict, never synced
        m.crashing_sync(crash_at=3)  # the copy of v0 reached a, not b
        assert sorted(m.side("a").values()) == ["v0", "v1"] and m.side("b") == {"u0": "v0"}
        m._supersede("v1")
        m._put("a", "u0", None)  # the user deletes a's version
        m.sync_and_check()  # no version lost, none twice
        assert m.side("a") == m.side("b") == {"u0": "v0"}
    finally:
        m.patches.close()
        shutil.rmtree(m.tmp, ignore_errors=True)


def test_keep_both_copy_on_both_sides_then_the_winner_deleted_leaves_no_second_copy():
    """Found by the machine: a crash after the "keep both" copy of b's version reached
    both sides, before a's version replaced b's; then the user deletes a's version. b's
    version is kept as the copy: the one under the original UID is removed, not copied
    back to a (it would be there twice)."""
    m = SyncMachineVdirVdir()
    try:
        m.setup()
        m.write(side="a", uid="u1")  # v0
        m.write(side="b", uid="u1")  # v1: a conflict, never synced
        m.crashing_sync(crash_at=5)  # the copy of v1 reached both sides, a's v0 not b
        b = m.side("b")
        assert sorted(b.values()) == ["v1", "v1"], b  # under u1 and as the copy
        m._supersede("v0")
        m._put("a", "u1", None)  # the user deletes a's version
        m.sync_and_check()  # no version lost, none twice
        assert list(m.side("a").values()) == list(m.side("b").values()) == ["v1"]
    finally:
        m.patches.close()
        shutil.rmtree(m.tmp, ignore_errors=True)
