"""End to end through the command line, on real files in temp directories."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pimsync.cli import main
from tests.conftest import CORPUS, make_event


def write_config(tmp: Path, extra: str = "", *, conflict: str = "newest",
                 ro: str = "") -> Path:  # fmt: skip
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
lock_timeout = 0.3

[storages.laptop]
type = "vdir"
path = "vdir"
fileext = ".ics"
{ro}

[storages.phone]
type = "file"
path = "phone/{{collection}}.ics"

[pairs.cal]
a = "laptop"
b = "phone"
conflict = "{conflict}"
{extra}
"""
    )
    return cfg


def run(cfg: Path, *args: str) -> int:
    return main(["--config", str(cfg), *args])


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    return tmp_path, write_config(tmp_path)


def vdir_uids(tmp: Path, col: str = "home") -> set[str]:
    from pimsync.model import parse_record

    return {
        parse_record(p.read_bytes(), "ics", str(p)).ident
        for p in (tmp / "vdir" / col).glob("*.ics")
    }


def file_records(tmp: Path, col: str = "home"):
    from pimsync.model import split

    path = tmp / "phone" / f"{col}.ics"
    return {r.ident: r for r in split(path.read_bytes(), "ics", str(path)).records}


def test_first_sync_then_no_change(setup, capsys):
    tmp, cfg = setup
    for i in range(3):
        (tmp / "vdir" / "home" / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"Event {i}"))
    assert run(cfg, "run") == 0
    out = capsys.readouterr().out
    assert "cal/home: a +0 ~0 -0, b +3 ~0 -0, 0 errors" in out
    assert set(file_records(tmp)) == {"e0", "e1", "e2"}
    before = (tmp / "phone" / "home.ics").stat()
    assert run(cfg, "run") == 0
    assert "cal/home: a +0 ~0 -0, b +0 ~0 -0, 0 errors" in capsys.readouterr().out
    after = (tmp / "phone" / "home.ics").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_edits_and_deletes_flow_both_ways(setup, capsys):
    tmp, cfg = setup
    for i in range(3):
        (tmp / "vdir" / "home" / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"Event {i}"))
    assert run(cfg, "run") == 0
    # edit e0 on a, delete e1 on a, add e3 on b (the phone file)
    (tmp / "vdir" / "home" / "e0.ics").write_bytes(make_event("e0", "Edited on laptop"))
    (tmp / "vdir" / "home" / "e1.ics").unlink()
    phone = tmp / "phone" / "home.ics"
    text = phone.read_text()
    new = make_event("e3", "Added on phone").decode()
    body = new[new.index("BEGIN:VEVENT") : new.index("END:VCALENDAR")]
    phone.write_text(text.replace("END:VCALENDAR", body + "END:VCALENDAR"))
    capsys.readouterr()
    assert run(cfg, "run") == 0
    assert "a +1 ~0 -0, b +0 ~1 -1" in capsys.readouterr().out
    recs = file_records(tmp)
    assert set(recs) == {"e0", "e2", "e3"}
    assert "Edited on laptop" in recs["e0"].text
    assert vdir_uids(tmp) == {"e0", "e2", "e3"}
    assert run(cfg, "run") == 0
    assert "a +0 ~0 -0, b +0 ~0 -0" in capsys.readouterr().out


def test_dry_run_writes_nothing(setup, capsys):
    tmp, cfg = setup
    (tmp / "vdir" / "home" / "x.ics").write_bytes(make_event("x"))
    assert run(cfg, "run", "--dry-run", "-v") == 0
    out = capsys.readouterr().out
    assert "would create collection on b" in out and "would create x on b" in out
    assert not (tmp / "phone" / "home.ics").exists()
    assert not (tmp / "state").exists()
    assert run(cfg, "run") == 0
    (tmp / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "changed"))
    db = tmp / "state" / "state.sqlite"
    before = (db.stat().st_mtime_ns, db.read_bytes())
    assert run(cfg, "run", "--dry-run", "-v") == 0
    assert "would update x on b" in capsys.readouterr().out
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


def test_collection_created_on_the_other_side(setup, capsys):
    tmp, cfg = setup
    (tmp / "phone" / "work.ics").write_bytes(make_event("w1", "From the phone"))
    assert run(cfg, "run") == 0
    assert vdir_uids(tmp, "work") == {"w1"}


def test_malformed_record_is_reported_rest_syncs_counterpart_kept(setup, capsys):
    tmp, cfg = setup
    home = tmp / "vdir" / "home"
    for i in range(3):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}"))
    assert run(cfg, "run") == 0
    # break e0 on the laptop, add a new record beside it, and a broken new file
    (home / "e0.ics").write_bytes(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e0\r\nSUMMARY")
    (home / "new.ics").write_bytes(make_event("new"))
    shutil.copy(CORPUS / "malformed" / "icalendar__broken_dtstart.ics", home / "broken.ics")
    capsys.readouterr()
    assert run(cfg, "run") == 1
    err = capsys.readouterr().err
    assert "e0.ics" in err and "broken.ics" in err
    recs = file_records(tmp)
    assert "e0" in recs  # its counterpart was not deleted
    assert "new" in recs  # the rest synced


def test_duplicate_uid_reported_by_href(setup, capsys):
    tmp, cfg = setup
    home = tmp / "vdir" / "home"
    (home / "one.ics").write_bytes(make_event("same", "One"))
    (home / "two.ics").write_bytes(make_event("same", "Two"))
    (home / "ok.ics").write_bytes(make_event("ok"))
    assert run(cfg, "run") == 1
    err = capsys.readouterr().err
    assert "one.ics" in err and "two.ics" in err
    assert set(file_records(tmp)) == {"ok"}


def test_empty_side_guard_and_force_delete(setup, capsys):
    tmp, cfg = setup
    home = tmp / "vdir" / "home"
    for i in range(2):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}"))
    assert run(cfg, "run") == 0
    for p in home.glob("*.ics"):
        p.unlink()
    capsys.readouterr()
    assert run(cfg, "run") == 1
    assert "--force-delete" in capsys.readouterr().err
    assert set(file_records(tmp)) == {"e0", "e1"}
    assert run(cfg, "run", "--force-delete") == 0
    assert set(file_records(tmp)) == set()


def test_read_only_storage_is_not_written(tmp_path, capsys):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path, ro="read_only = true")
    (tmp_path / "phone" / "home.ics").write_bytes(make_event("p1"))
    (tmp_path / "vdir" / "home" / "v1.ics").write_bytes(make_event("v1"))
    assert run(cfg, "run") == 0
    assert vdir_uids(tmp_path) == {"v1"}
    assert set(file_records(tmp_path)) == {"p1", "v1"}
    assert "1 not written (read-only)" in capsys.readouterr().out
    # still different, so said again; the read-only side stays untouched
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "vdir" / "home").iterdir())
    assert run(cfg, "run") == 0
    assert "a +0 ~0 -0, b +0 ~0 -0, 1 not written (read-only)" in capsys.readouterr().out
    after = sorted(p.stat().st_mtime_ns for p in (tmp_path / "vdir" / "home").iterdir())
    assert before == after


def test_status_and_check(setup, capsys):
    tmp, cfg = setup
    (tmp / "vdir" / "home" / "x.ics").write_bytes(make_event("x"))
    assert run(cfg, "check") == 0
    out = capsys.readouterr().out
    assert "storage laptop (vdir" in out and "pair cal" in out
    assert run(cfg, "run") == 0
    capsys.readouterr()
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert "cal/home: 1 records, last sync" in out and "ok" in out


def test_no_config_found_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PIMSYNC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "xdg" / "pimsync" / "config.toml") in err
    assert "[pairs." in err  # a minimal example


def test_bad_config_names_key_and_exits_2(tmp_path, capsys):
    cfg = write_config(tmp_path, conflict="whoever")
    assert run(cfg, "run") == 2
    err = capsys.readouterr().err
    assert "pairs.cal.conflict" in err and "newest" in err


def test_unknown_pair_is_usage_error(setup, capsys):
    _, cfg = setup
    assert run(cfg, "run", "nope") == 2


def test_second_run_waits_then_says_so(setup, capsys):
    tmp, cfg = setup
    (tmp / "state").mkdir()
    fd = os.open(tmp / "state" / "state.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert run(cfg, "run") == 1
        assert "another pimsync" in capsys.readouterr().err
    finally:
        os.close(fd)


def test_state_and_lock_are_private(setup):
    tmp, cfg = setup
    assert run(cfg, "run") == 0
    mode = (tmp / "state" / "state.sqlite").stat().st_mode & 0o777
    assert mode == 0o600


def test_python_dash_m_and_console_script(setup):
    tmp, cfg = setup
    proc = subprocess.run(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), "check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "config" in proc.stdout
