"""Progress bars on a terminal, plain summary lines otherwise (cron, systemd)."""

from __future__ import annotations

import io

from pimsync.cli import ConsoleReporter, main
from tests.conftest import make_event
from tests.test_cli import write_config


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_only():
    out, tty, pipe = io.StringIO(), Tty(), io.StringIO()
    ConsoleReporter(out, tty, False, False).progress("p/c", "writing", 50, 200)
    assert "[#######-" in tty.getvalue() and "50/200" in tty.getvalue()
    ConsoleReporter(out, pipe, False, False).progress("p/c", "writing", 50, 200)
    assert pipe.getvalue() == ""
    ConsoleReporter(out, tty := Tty(), False, True).progress("p/c", "writing", 50, 200)
    assert tty.getvalue() == ""  # --quiet
    ConsoleReporter(out, tty := Tty(), False, False).progress("p/c", "writing", 5, 20)
    assert tty.getvalue() == ""  # short transfers draw nothing


def test_a_real_run_draws_bars_on_a_terminal_and_clears_them(tmp_path, monkeypatch, capsys):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(250):
        (tmp_path / "vdir" / "home" / f"e{i}.ics").write_bytes(make_event(f"e{i}"))
    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert main(["--config", str(cfg), "run"]) == 0
    drawn = tty.getvalue()
    assert "reading a [" in drawn and "writing [" in drawn and "250/250" in drawn
    assert drawn.endswith("\r\x1b[K")  # cleared before the summary line
    assert "b +250 ~0 -0" in capsys.readouterr().out


def test_no_bar_when_not_a_terminal(tmp_path, capsys):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(150):
        (tmp_path / "vdir" / "home" / f"e{i}.ics").write_bytes(make_event(f"e{i}"))
    assert main(["--config", str(cfg), "run"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "\r" not in captured.out
