"""An export killed midway (kill -9) leaves its temporary file; the next export of that
export removes its own leftovers, and nothing else."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pimsync.cli import main
from pimsync.export import archive as archive_mod
from pimsync.export.schedule import parse_archive_name
from pimsync.export.verify import verify
from tests.conftest import make_card, make_event
from tests.export.test_archive import write_config

RECORDS = 2500  # enough that an export takes a moment (about half a second here)

# written out here, not imported: the tests must run (and fail) on code that has no
# helper for it
LEFTOVER = re.compile(r"\.nightly-[0-9]{8}T[0-9]{6}Z\.tar\.gz\.[0-9]+(\.[0-9]+)?\.tmp")

DECOYS = {
    ".nightly-x.tar.gz.tmp": b"a user's own file",
    ".nightly-20260101T000000Z.tar.gz.tmp": b"no pid: not an export's temporary",
    ".nightly-old-20260101T000000Z.tar.gz.4242.tmp": b"export nightly-old's temporary",
    ".weekly-20260101T000000Z.zip.4242.tmp": b"export weekly's temporary",
    "nightly-20260101T000000Z.tar.gz.4242.tmp": b"no leading dot",
    ".nightly-20260101T000000Z.tar.gz.4242.tmp.keep": b"another suffix",
    ".Nightly-20260101T000000Z.tar.gz.4242.tmp": b"another case",
    ".nightly-20261301T000000Z.tar.gz.4242.tmp": b"month 13",
}


@pytest.fixture
def big(tmp_path):
    (tmp_path / "cal" / "home").mkdir(parents=True)
    (tmp_path / "cards").mkdir()
    for i in range(RECORDS):
        (tmp_path / "cal" / "home" / f"e{i}.ics").write_bytes(
            make_event(f"e{i}", f"Event {i} " + "x" * 200)
        )
    (tmp_path / "cards" / "friends.vcf").write_bytes(
        b"".join(make_card(f"c{i}", f"Friend {i}") for i in range(50))
    )
    return tmp_path, write_config(tmp_path)


def export_cli(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), "export", *args],
        cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def leftovers(directory: Path) -> set[str]:
    return {n for n in os.listdir(directory) if LEFTOVER.fullmatch(n) and n not in DECOYS}


def made(directory: Path) -> list[str]:
    """The archives of export nightly in *directory*."""
    return [n for n in os.listdir(directory) if parse_archive_name("nightly", n)]


def kill_midway(cfg: Path, backups: Path, delay: float) -> None:
    """Start ``pimsync export``, wait until it writes its temporary file, let it go on for
    *delay* seconds, then kill -9 it."""
    before = leftovers(backups) if backups.exists() else set()
    proc = export_cli(cfg)
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if backups.exists() and leftovers(backups) - before:
                break
            time.sleep(0.002)
        time.sleep(delay)
    finally:
        proc.kill()
        proc.communicate()


class Holder:
    """Another process holding a file locked, as a live export holds its temporary."""

    def __init__(self, path: Path) -> None:
        code = (
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'being written')\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"locked\n"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.communicate()


def next_second() -> None:
    """Archive names are to the second: the next export must not share one."""
    time.sleep(1.05 - time.time() % 1)


def test_kill_9_midway_then_one_export_removes_only_its_own_leftovers(big):
    tmp, cfg = big
    backups = tmp / "backups"
    assert main(["--config", str(cfg), "export"]) == 0
    [first] = os.listdir(backups)
    seen: set[str] = set()
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
        kill_midway(cfg, backups, delay)
        seen |= leftovers(backups)  # (each export, killed or not, first removes the last's)
    assert len(seen) >= 4, seen  # most kills came midway
    left = leftovers(backups)
    assert left, seen

    for name, data in DECOYS.items():
        (backups / name).write_bytes(data)
    outside = tmp / "elsewhere.txt"
    outside.write_bytes(b"not in the backups")
    link = ".nightly-20250101T000000Z.tar.gz.77.tmp"
    (backups / link).symlink_to(outside)
    held = backups / f".nightly-20250101T000000Z.tar.gz.{os.getpid() + 1}.tmp"
    holder = Holder(held)
    try:
        archives = made(backups)
        next_second()
        proc = export_cli(cfg, "-v")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        log = out.decode()
        # the leftovers are gone, each said in the -v log
        assert leftovers(backups) == {held.name, link}
        for name in left:
            assert f"nightly: removed {name} (left by an export that was stopped midway)" in log
        assert log.count("left by an export that was stopped midway") == len(left)
        # nothing else was touched
        for name, data in DECOYS.items():
            assert (backups / name).read_bytes() == data
        assert (backups / link).is_symlink() and outside.read_bytes() == b"not in the backups"
        assert held.read_bytes() == b"being written"
        assert first in archives
        new = made(backups)
        assert set(archives) < set(new) and len(new) == len(archives) + 1
        for name in new:  # every archive, old and new, intact
            assert verify(backups / name).records == RECORDS + 50
            assert (backups / name).stat().st_mode & 0o777 == 0o600
    finally:
        holder.stop()
    # its writer gone, the held file is a leftover like the others
    next_second()
    assert main(["--config", str(cfg), "export"]) == 0
    assert leftovers(backups) == {link}
    for name, data in DECOYS.items():
        assert (backups / name).read_bytes() == data


def test_a_live_export_keeps_its_temporary_file(big):
    """A cleanup while another export is writing leaves that export's file alone, and the
    export completes."""
    tmp, cfg = big
    backups = tmp / "backups"
    proc = export_cli(cfg)
    try:
        deadline = time.monotonic() + 30
        while not (backups.exists() and leftovers(backups)) and time.monotonic() < deadline:
            time.sleep(0.002)
        [writing] = leftovers(backups)
        assert archive_mod.remove_leftovers("nightly", backups) == []
        assert (backups / writing).exists()
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    [made] = os.listdir(backups)
    assert verify(backups / made).records == RECORDS + 50


def test_remove_leftovers_skips_what_is_not_a_plain_file(tmp_path):
    fifo = tmp_path / ".nightly-20250101T000000Z.tar.gz.5.tmp"
    os.mkfifo(fifo)
    folder = tmp_path / ".nightly-20250101T000000Z.tar.gz.6.tmp"
    folder.mkdir()
    stale = tmp_path / ".nightly-20250101T000000Z.zip.7.3.tmp"
    stale.write_bytes(b"spool of a killed export")
    assert archive_mod.remove_leftovers("nightly", tmp_path) == [stale.name]
    assert fifo.exists() and folder.is_dir()
    assert archive_mod.remove_leftovers("nightly", tmp_path / "missing") == []


def test_a_temporary_removed_before_it_was_locked_is_made_again(tmp_path, monkeypatch):
    """A cleanup that comes between the creation of the file and its lock removes it; the
    export sees that and makes it again, locked, under the same name."""
    real = fcntl.flock
    calls = []

    def flock(fd, op):
        calls.append(op)
        if len(calls) == 1:  # the export's first lock: a cleanup gets there first
            assert archive_mod.remove_leftovers("nightly", tmp_path) == [path.name]
        return real(fd, op)

    path = tmp_path / ".nightly-20250101T000000Z.tar.gz.8.tmp"
    monkeypatch.setattr(archive_mod.fcntl, "flock", flock)
    fd = archive_mod._create_locked(path)
    monkeypatch.setattr(archive_mod.fcntl, "flock", real)
    try:
        # the export's lock, the cleanup's, the export's again
        assert len(calls) == 3 and path.exists()
        assert os.fstat(fd).st_ino == path.stat().st_ino
        assert archive_mod.remove_leftovers("nightly", tmp_path) == []  # held
    finally:
        os.close(fd)
    assert archive_mod.remove_leftovers("nightly", tmp_path) == [path.name]


def test_without_o_tmpfile_spool_files_are_named_locked_and_gone_at_once(big, monkeypatch):
    """Where a file system cannot make unnamed files, spool files get this export's
    temporary name for an instant, locked; none is left."""
    tmp, cfg = big
    monkeypatch.setattr(archive_mod, "USE_O_TMPFILE", False)
    made = []
    real = archive_mod._create_locked

    def create(path):
        made.append(path.name)
        return real(path)

    monkeypatch.setattr(archive_mod, "_create_locked", create)
    assert main(["--config", str(cfg), "export"]) == 0
    assert len(made) > 2 and all(LEFTOVER.fullmatch(n) for n in made)
    [archive] = os.listdir(tmp / "backups")
    assert verify(tmp / "backups" / archive).records == RECORDS + 50
