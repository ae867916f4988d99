"""Never lose a record: what exists but cannot be read is not a deletion, every record
keeps its base, a guard against mass deletion, a full disk at the state commit, runs
stopped by a signal. End to end through the command line on real files, and in process
where a moment must be hit exactly."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pimsync.storage.singlefile
import pimsync.storage.vdir
from pimsync.model import parse_record, split
from pimsync.plan import Options
from pimsync.state import StateDB
from pimsync.storage.singlefile import SingleFileStorage
from pimsync.storage.vdir import VdirStorage
from pimsync.sync import PairSettings, Reporter, sync_pair
from tests.conftest import make_event
from tests.test_cli import run, write_config

N = 20


def phone_uids(tmp: Path, col: str = "home") -> dict[str, bytes]:
    path = tmp / "phone" / f"{col}.ics"
    if not path.exists():
        return {}
    return {r.ident: r.to_bytes() for r in split(path.read_bytes(), "ics", str(path)).records}


def vdir_uids(tmp: Path, col: str = "home") -> list[str]:
    out = []
    for p in (tmp / "vdir" / col).glob("*.ics"):
        if p.is_file():
            out.append(parse_record(p.read_bytes(), "ics", str(p)).ident)
    return sorted(out)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, nothing is cleaned up."""


def crash(*args, **kw):
    raise Crash()


class Local:
    """A vdir (side a) and a file storage (side b), collection "c", synced in process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.a = VdirStorage("a", tmp / "a", ".ics", "ics", False)
        self.b = SingleFileStorage("b", tmp / "b" / "{collection}.ics", "ics", False)
        (tmp / "a" / "c").mkdir(parents=True)
        (tmp / "b").mkdir()
        self.vfile, self.bfile = tmp / "a" / "c" / "x.ics", tmp / "b" / "c.ics"
        self.pair = PairSettings("p", "all", Options())

    def sync(self, reporter: Reporter | None = None, a=None):
        with StateDB(self.tmp / "state") as db:
            return sync_pair(self.pair, {"a": a or self.a, "b": self.b}, db, reporter or Reporter())

    def crashing_sync(self, monkeypatch, target: object, name: str) -> None:
        """A sync killed where ``target.name`` is first called."""
        with monkeypatch.context() as m:
            m.setattr(target, name, crash)
            with pytest.raises(Crash):
                self.sync()


@pytest.fixture
def synced(tmp_path, capsys):
    """A vdir of N events synced to a phone's .ics file (pair "cal")."""
    home = tmp_path / "vdir" / "home"
    home.mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(N):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"event {i}"))
    assert run(cfg, "run") == 0
    assert len(phone_uids(tmp_path)) == N
    capsys.readouterr()
    return tmp_path, cfg


def outerr(capsys) -> str:
    out, err = capsys.readouterr()
    return out + err


# --- 1. listed but unreadable is never a deletion ------------------------------------------


def test_dangling_symlinks_are_reported_and_nothing_is_deleted(synced, capsys):
    tmp, cfg = synced
    home = tmp / "vdir" / "home"
    for i in range(5):  # the content went away (an unmounted disk, git-annex dropped it)
        (home / f"e{i}.ics").unlink()
        (home / f"e{i}.ics").symlink_to(tmp / "unmounted" / f"e{i}.ics")
    assert run(cfg, "run") == 1
    text = outerr(capsys)
    assert len(phone_uids(tmp)) == N, text  # today: b -5
    for i in range(5):
        assert f"{home / f'e{i}.ics'}: a symbolic link to '{tmp / 'unmounted'}/e{i}.ics'" in text
    assert "b +0 ~0 -0" in text
    # the disk is back: everything as before, nothing to do
    (tmp / "unmounted").mkdir()
    for i in range(5):
        (tmp / "unmounted" / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"event {i}"))
    assert run(cfg, "run") == 0, outerr(capsys)
    assert len(phone_uids(tmp)) == N


def test_a_symlink_loop_is_reported_and_not_deleted(synced, capsys):
    tmp, cfg = synced
    path = tmp / "vdir" / "home" / "e7.ics"
    path.unlink()
    path.symlink_to(path.name)  # points at itself: ELOOP
    assert run(cfg, "run") == 1
    text = outerr(capsys)
    assert "e7" in phone_uids(tmp)
    assert f"{path}: cannot read: Too many levels of symbolic links" in text


def test_an_unreadable_entry_of_unknown_identity_holds_back_deletions(synced, capsys):
    """A new dangling link may be the new name of any record: no deletion this run."""
    tmp, cfg = synced
    home = tmp / "vdir" / "home"
    (home / "e3.ics").unlink()
    (home / "renamed.ics").symlink_to(tmp / "elsewhere.ics")
    assert run(cfg, "run") == 1
    assert "e3" in phone_uids(tmp), outerr(capsys)
    (home / "renamed.ics").unlink()
    assert run(cfg, "run") == 0
    assert "e3" not in phone_uids(tmp)  # once nothing is uncertain, the deletion goes through


def test_a_collection_that_is_a_dangling_symlink_is_left_alone_even_with_force_delete(
    synced, capsys
):
    tmp, cfg = synced
    work = tmp / "vdir" / "work"
    work.mkdir()
    (work / "w1.ics").write_bytes(make_event("w1", "work"))
    assert run(cfg, "run") == 0
    assert "w1" in phone_uids(tmp, "work")
    capsys.readouterr()
    os.rename(work, tmp / "moved-away")
    work.symlink_to(tmp / "unmounted-work")
    assert run(cfg, "run", "--force-delete") == 1
    text = outerr(capsys)
    assert f"{work}: a symbolic link to '{tmp / 'unmounted-work'}'" in text
    assert "w1" in phone_uids(tmp, "work")  # today: --force-delete empties it
    assert len(phone_uids(tmp)) == N  # the other collection synced as usual
    assert "cal/home: a +0 ~0 -0, b +0 ~0 -0, 0 errors" in text


class _Vanishing:
    """A collection whose get() finds some listed records gone the first ``times`` times
    (a file replaced between listing and reading; a server 404 for an href it just
    listed)."""

    def __init__(self, inner, hrefs: set[str], times: int) -> None:
        self.inner, self.hrefs, self.times = inner, hrefs, times

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def get(self, hrefs, *, values=True):
        from pimsync.errors import NotFound
        from pimsync.storage.base import Fetched

        vanish = self.times > 0
        self.times -= 1
        for fetched in self.inner.get(hrefs, values=values):
            if vanish and fetched.href in self.hrefs:
                yield Fetched(fetched.href, "", error=NotFound("vanished", where=fetched.href))
            else:
                yield fetched


class _Storage:
    def __init__(self, inner, wrap) -> None:
        self.inner, self.wrap = inner, wrap

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def collection(self, cid):
        return self.wrap(self.inner.collection(cid))


class _Errors(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize("times, errors", [(1, 0), (99, 1)])
def test_a_record_gone_between_listing_and_reading_is_not_a_deletion(tmp_path, times, errors):
    t = Local(tmp_path)
    for i in range(3):
        (tmp_path / "a" / "c" / f"e{i}.ics").write_bytes(make_event(f"e{i}", "one"))
    t.sync()
    # e1 is edited on a; reading it finds it gone (times) before it can be read
    (tmp_path / "a" / "c" / "e1.ics").write_bytes(make_event("e1", "two"))
    reporter = _Errors()
    flaky = _Storage(t.a, lambda col: _Vanishing(col, {"e1.ics"}, times))
    (result,) = t.sync(reporter, a=flaky)
    records = {
        r.ident: r for r in split((tmp_path / "b" / "c.ics").read_bytes(), "ics", "b").records
    }
    assert sorted(records) == ["e0", "e1", "e2"]  # today: e1 deleted on b
    assert len(result.stats.errors) == errors, reporter.lines
    if errors:
        assert "e1.ics was listed, then gone when it was read, in every attempt" in str(
            result.stats.errors
        )
    else:  # read again in the next pass: the edit went across
        assert b"SUMMARY:two" in records["e1"].to_bytes()


# --- 2. every record keeps its base --------------------------------------------------------


def _without_base(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "state.sqlite") as db:
        return db.execute("SELECT count(*) FROM records WHERE base IS NULL").fetchone()[0]


def test_a_write_that_landed_before_a_crash_keeps_its_base_and_later_edits_merge(
    tmp_path, monkeypatch
):
    t = Local(tmp_path)
    for i in range(10):
        (tmp_path / "a" / "c" / f"e{i}.ics").write_bytes(make_event(f"e{i}", "first"))
    t.crashing_sync(monkeypatch, StateDB, "put")  # the writes landed, not the commit
    assert len(split(t.bfile.read_bytes(), "ics", "b").records) == 10
    t.sync()
    assert _without_base(tmp_path / "state") == 0  # today: all 10 rows without a base
    # a later edit of different properties on both sides is merged, not settled by newest
    (tmp_path / "a" / "c" / "e4.ics").write_bytes(make_event("e4", "edited on a"))
    t.bfile.write_bytes(
        t.bfile.read_bytes().replace(b"UID:e4\r\n", b"UID:e4\r\nLOCATION:set on b\r\n")
    )
    (result,) = t.sync()
    assert result.stats.merged == 1 and result.stats.conflicts == 0
    merged = (tmp_path / "a" / "c" / "e4.ics").read_bytes()
    assert b"SUMMARY:edited on a" in merged and b"LOCATION:set on b" in merged


def test_rows_without_a_base_are_healed_by_the_next_run(synced, capsys):
    tmp, cfg = synced
    with sqlite3.connect(tmp / "state" / "state.sqlite") as db:  # as an older pimsync left it
        db.execute("UPDATE records SET base = NULL")
    assert _without_base(tmp / "state") == N
    assert run(cfg, "run") == 0
    assert _without_base(tmp / "state") == 0
    assert "a +0 ~0 -0, b +0 ~0 -0, 0 errors" in outerr(capsys)  # healing writes nothing


# --- 4. a guard against mass deletion ------------------------------------------------------


def _delete_on_phone(tmp: Path, count: int) -> None:
    path = tmp / "phone" / "home.ics"
    records = split(path.read_bytes(), "ics", str(path)).records
    from pimsync.model import join

    path.write_bytes(join(records[count:], "ics"))


def test_deleting_more_than_half_stops_the_collection(synced, capsys):
    tmp, cfg = synced
    _delete_on_phone(tmp, 15)
    assert run(cfg, "run", "--dry-run") == 1
    text = outerr(capsys)
    assert "would delete 15 of the 20 records on side a" in text and "--force-delete" in text
    assert run(cfg, "run") == 1
    text = outerr(capsys)
    assert "would delete 15 of the 20 records on side a" in text
    assert len(vdir_uids(tmp)) == N  # today: 15 deleted
    assert run(cfg, "run", "--force-delete") == 0
    assert len(vdir_uids(tmp)) == 5


def test_a_few_deletions_pass(synced, capsys):
    tmp, cfg = synced
    _delete_on_phone(tmp, 5)  # a quarter, and not more than a few
    assert run(cfg, "run") == 0
    assert len(vdir_uids(tmp)) == 15


@pytest.mark.parametrize(
    "setting, deleted, stops",
    [("1.0", 15, False), ("0.9", 15, False), ("0.25", 6, True), ("3", 4, True), ("3", 3, False),
     ("20", 15, False)],
)  # fmt: skip
def test_max_delete_is_a_fraction_or_a_count(tmp_path, capsys, setting, deleted, stops):
    home = tmp_path / "vdir" / "home"
    home.mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path, f"max_delete = {setting}")
    for i in range(N):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"event {i}"))
    assert run(cfg, "run") == 0
    _delete_on_phone(tmp_path, deleted)
    assert run(cfg, "run") == (1 if stops else 0)
    assert len(vdir_uids(tmp_path)) == (N if stops else N - deleted), outerr(capsys)


@pytest.mark.parametrize("value", ["0", "1.5", "-1", "true", '"half"', "0.0"])
def test_max_delete_bad_values_name_the_key(tmp_path, capsys, value):
    (tmp_path / "vdir").mkdir()
    cfg = write_config(tmp_path, f"max_delete = {value}")
    if value == "0":  # a count of 0: every deletion stops (allowed)
        assert run(cfg, "check") == 0
        return
    assert run(cfg, "check") == 2
    err = capsys.readouterr().err
    assert "pairs.cal.max_delete" in err and "1.0 turns the guard off" in err


# --- 9. a full disk at the state commit ----------------------------------------------------


def _limit_file_size(limit: int):
    def set_limit() -> None:  # writes past the limit fail with EFBIG, like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def test_a_full_disk_at_the_state_commit_names_the_file_and_loses_nothing(synced):
    tmp, cfg = synced
    path = tmp / "phone" / "home.ics"
    from pimsync.model import join

    records = split(path.read_bytes(), "ics", str(path)).records
    new = [parse_record(make_event(f"n{i}", "x" * 200), "ics", "t") for i in range(400)]
    path.write_bytes(join(records + new, "ics"))  # 400 new records: the state must grow
    db_size = (tmp / "state" / "state.sqlite").stat().st_size
    proc = subprocess.run(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), "run"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(max(db_size, 64 * 1024) + 16 * 1024),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{tmp / 'state' / 'state.sqlite'}: cannot record the sync state" in proc.stderr
    assert "nothing was lost" in proc.stderr
    assert run(cfg, "run") == 0  # space again: one run converges, nothing doubled
    assert len(vdir_uids(tmp)) == N + 400 == len(set(vdir_uids(tmp)))
    assert run(cfg, "run") == 0


# --- 6. a run stopped by a signal ----------------------------------------------------------


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_what_landed_is_recorded(tmp_path, sig, status):
    home = tmp_path / "vdir" / "home"
    home.mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(3000):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"event {i}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal (a fast machine): nothing to test")
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert run(cfg, "run") == 0
    assert len(phone_uids(tmp_path)) == 3000
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    assert _without_base(tmp_path / "state") == 0


# --- 8. secrets in a bad config are never repeated -----------------------------------------


@pytest.mark.parametrize(
    "line",
    ['url = "ftp://alice:hunter2-SECRET@dav.example/"', "password = 77123456789"],
)
def test_a_bad_config_never_repeats_a_password(tmp_path, capsys, line):
    cfg = tmp_path / "config.toml"
    url = "" if line.startswith("url") else 'url = "https://dav.example/"\n'
    cfg.write_text(
        f'[storages.s]\ntype = "caldav"\n{url}{line}\nusername = "alice"\n'
        '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
        '[pairs.p]\na = "v"\nb = "s"\n'
    )
    assert run(cfg, "check") == 2
    err = capsys.readouterr().err
    assert "storages.s." in err
    assert "hunter2-SECRET" not in err and "77123456789" not in err


def _event(uid: str, summary: str, location: str) -> bytes:
    return make_event(uid, summary, extra=f"LOCATION:{location}\r\n")


def _props(data: bytes) -> tuple[str, str]:
    text = data.decode()
    summary = text.split("SUMMARY:", 1)[1].split("\r\n", 1)[0]
    location = text.split("LOCATION:", 1)[1].split("\r\n", 1)[0]
    return summary, location


def _file_record(path: Path, uid: str) -> bytes:
    return next(
        r for r in split(path.read_bytes(), "ics", str(path)).records if r.ident == uid
    ).to_bytes()


def _edit_file(path: Path, uid: str, summary: str, location: str) -> None:
    from pimsync.model import join

    records = split(path.read_bytes(), "ics", str(path)).records
    new = [r if r.ident != uid else parse_record(_event(uid, summary, location), "ics", "t")
           for r in records]  # fmt: skip
    path.write_bytes(join(new, "ics"))


def test_a_merge_written_to_one_side_before_a_crash_is_replayed_with_later_edits(
    tmp_path, monkeypatch
):
    """The merged record reached a, the run died before b's file was rewritten; then a's
    SUMMARY and b's LOCATION are edited again. Both edits survive, no conflict."""
    t = Local(tmp_path)
    t.vfile.write_bytes(_event("x", "S0", "L0"))
    t.sync()
    t.vfile.write_bytes(_event("x", "S1", "L0"))  # the laptop edits the summary
    _edit_file(t.bfile, "x", "S0", "L1")  # the phone the location
    t.crashing_sync(monkeypatch, pimsync.storage.singlefile.SingleFileCollection, "flush")
    assert _props(t.vfile.read_bytes()) == ("S1", "L1")  # the merge reached a only
    assert _props(_file_record(t.bfile, "x")) == ("S0", "L1")
    t.vfile.write_bytes(t.vfile.read_bytes().replace(b"SUMMARY:S1", b"SUMMARY:S2"))
    _edit_file(t.bfile, "x", "S0", "L2")
    (result,) = t.sync()
    assert result.stats.conflicts == 0, result.stats
    assert _props(t.vfile.read_bytes()) == ("S2", "L2")  # before: L1 or L2 lost to "newest"
    assert _props(_file_record(t.bfile, "x")) == ("S2", "L2")


def test_a_create_that_landed_before_a_crash_then_edited_on_both_sides_merges(
    tmp_path, monkeypatch
):
    t = Local(tmp_path)
    t.vfile.write_bytes(_event("x", "S0", "L0"))
    t.crashing_sync(monkeypatch, StateDB, "put")  # the first copy landed, its commit did not
    t.vfile.write_bytes(_event("x", "S1", "L0"))
    _edit_file(t.bfile, "x", "S0", "L1")
    (result,) = t.sync()
    assert result.stats.conflicts == 0 and result.stats.merged == 1, result.stats
    assert _props(t.vfile.read_bytes()) == _props(_file_record(t.bfile, "x")) == ("S1", "L1")


# --- temporary files a killed run left --------------------------------------------------


def test_a_killed_runs_temporary_files_are_removed_and_nothing_else(tmp_path):
    import fcntl

    from pimsync.storage.fsutil import remove_stale_temp

    d = tmp_path / "c"
    d.mkdir()
    stale = d / ".e1.ics.0123456789ab.tmp"
    stale.write_bytes(b"half a record")
    live = d / ".e2.ics.ba9876543210.tmp"
    live.write_bytes(b"being written")
    held = os.open(live, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # a live writer
    decoys = [d / ".e3.ics.tmp", d / "e4.ics.0123456789ab.tmp", d / ".notes.0123456789AB.tmp"]
    for decoy in decoys:
        decoy.write_bytes(b"someone else's")
    link = d / ".e5.ics.0123456789ab.tmp"
    link.symlink_to(d / "elsewhere")
    try:
        assert [remove_stale_temp(p) for p in (stale, live, *decoys, link)] == [True] + [False] * 5
    finally:
        os.close(held)
    assert not stale.exists() and live.exists() and link.is_symlink()
    assert all(p.exists() for p in decoys)
    assert remove_stale_temp(live)  # its writer is gone


def test_temporary_files_of_runs_killed_midway_do_not_pile_up(tmp_path):
    home = tmp_path / "vdir" / "home"
    home.mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(1500):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"event {i}"))
    command = [sys.executable, "-m", "pimsync", "--config", str(cfg), "run"]
    # as a killed run leaves them: one beside the phone's file, one in the vdir
    (tmp_path / "phone" / ".home.ics.00000000abcd.tmp").write_bytes(b"BEGIN:VCALENDAR")
    (home / ".e1.ics.00000000abcd.tmp").write_bytes(b"BEGIN:VCALENDAR")
    for delay in (0.3, 0.6, 0.9):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    left = [p for p in tmp_path.rglob(".*.tmp")]
    assert left == [], left
    assert len(phone_uids(tmp_path)) == 1500


@pytest.mark.parametrize("landed", [True, False])
def test_a_copy_of_a_crashed_run_then_edits_on_both_sides_merge_without_conflict(
    tmp_path, monkeypatch, landed
):
    """a's SUMMARY edit was being copied to b when the run died (the copy landed or not:
    nothing tells); then b's LOCATION and a's SUMMARY are edited. Merged, no conflict."""
    t = Local(tmp_path)
    t.vfile.write_bytes(_event("x", "S0", "L0"))
    (tmp_path / "a" / "c" / "y.ics").write_bytes(_event("y", "S0", "L0"))
    t.sync()
    t.vfile.write_bytes(_event("x", "S1", "L0"))
    if landed:
        t.crashing_sync(monkeypatch, StateDB, "put")
    else:
        t.crashing_sync(monkeypatch, pimsync.storage.singlefile.SingleFileCollection, "flush")
    summary = _props(_file_record(t.bfile, "x"))[0]
    assert summary == ("S1" if landed else "S0")
    _edit_file(t.bfile, "x", summary, "L1")
    t.vfile.write_bytes(_event("x", "S2", "L0"))
    (result,) = t.sync()
    assert result.stats.conflicts == 0, result.stats
    assert _props(t.vfile.read_bytes()) == _props(_file_record(t.bfile, "x")) == ("S2", "L1")


def test_a_landed_write_is_recorded_before_the_next_write_of_the_record(tmp_path, monkeypatch):
    """b's LOCATION reached a, the run died before recording it; b edits again; the next
    run dies right after noting its own write of the record (which replaces the old
    note). What landed first is recorded before that: the run after merges nothing
    (b's second edit is a one-side change), no conflict."""
    t = Local(tmp_path)
    t.vfile.write_bytes(_event("x", "S0", "L0"))
    t.sync()
    _edit_file(t.bfile, "x", "S0", "L1")
    t.crashing_sync(monkeypatch, StateDB, "put")  # the copy to a lands, its commit does not
    assert _props(t.vfile.read_bytes()) == ("S0", "L1")
    _edit_file(t.bfile, "x", "S0", "L2")
    t.crashing_sync(monkeypatch, pimsync.storage.vdir, "atomic_write")  # at its first write
    t.vfile.write_bytes(t.vfile.read_bytes().replace(b"SUMMARY:S0", b"SUMMARY:S1"))
    (result,) = t.sync()
    assert result.stats.conflicts == 0, result.stats
    assert _props(t.vfile.read_bytes()) == _props(_file_record(t.bfile, "x")) == ("S1", "L2")
