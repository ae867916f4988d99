"""A run with nothing to do reads no record content and imports no parser."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pimsync.cli import main
from pimsync.storage.singlefile import SingleFileCollection
from pimsync.storage.vdir import VdirCollection
from tests.conftest import make_event
from tests.test_cli import write_config


def test_no_change_run_reads_no_content(tmp_path, monkeypatch, capsys):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(20):
        (tmp_path / "vdir" / "home" / f"e{i}.ics").write_bytes(make_event(f"e{i}"))
    assert main(["--config", str(cfg), "run"]) == 0
    monkeypatch.setattr(VdirCollection, "get", lambda *a: pytest.fail("read a record file"))
    monkeypatch.setattr(SingleFileCollection, "_load", lambda *a: pytest.fail("read the file"))
    assert main(["--config", str(cfg), "run"]) == 0
    assert "b +0 ~0 -0" in capsys.readouterr().out


def test_no_change_run_imports_no_parser(tmp_path):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    (tmp_path / "vdir" / "home" / "e.ics").write_bytes(make_event("e"))
    probe = (
        "import sys; from pimsync.cli import main; rc = main(['--config', sys.argv[1], 'run']);"
        "heavy = [m for m in ('icalendar', 'vobject', 'caldav', 'niquests', 'keyring')"
        " if m in sys.modules]; print(rc, heavy)"
    )
    first = subprocess.run([sys.executable, "-c", probe, str(cfg)], capture_output=True, text=True)
    # the first run reads a record: it needs the parsers (and nothing else heavy)
    last = first.stdout.strip().splitlines()[-1]
    assert last in ("0 ['icalendar']", "0 ['icalendar', 'vobject']"), first.stdout + first.stderr
    again = subprocess.run([sys.executable, "-c", probe, str(cfg)], capture_output=True, text=True)
    assert again.stdout.strip().endswith("0 []"), again.stdout + again.stderr
