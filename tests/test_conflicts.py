"""The losing version of a conflict is kept: `pimsync conflicts` lists, shows, restores and
forgets it."""

from __future__ import annotations

from pimsync.cli import main
from tests.conftest import make_event
from tests.test_cli import file_records, write_config


def put_on_phone(tmp, uid: str, summary: str) -> None:
    from pimsync.model import join, parse_record, split

    path = tmp / "phone" / "home.ics"
    res = split(path.read_bytes(), "ics", str(path))
    records = [r for r in res.records if r.ident != uid]
    records.append(parse_record(make_event(uid, summary), "ics", "phone"))
    path.write_bytes(join(records, "ics", res.wrapper))


def test_conflict_loser_is_listed_shown_restored_and_forgotten(tmp_path, capsys):
    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path, conflict="a wins")
    run = lambda *a: main(["--config", str(cfg), *a])  # noqa: E731
    (tmp_path / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "first"))
    assert run("run") == 0
    (tmp_path / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "laptop edit"))
    put_on_phone(tmp_path, "x", "phone edit")
    capsys.readouterr()
    assert run("run") == 0
    assert "1 conflict" in capsys.readouterr().out
    assert "laptop edit" in file_records(tmp_path)["x"].text  # a won

    assert run("conflicts") == 0
    listing = capsys.readouterr().out
    assert "1: cal/home x 'phone edit'" in listing and "b's version lost" in listing
    assert run("conflicts", "show", "1") == 0
    shown = capsys.readouterr().out
    assert "-SUMMARY:phone edit" in shown and "+SUMMARY:laptop edit" in shown

    assert run("conflicts", "restore", "1") == 0
    assert "restored" in capsys.readouterr().out
    assert "phone edit" in file_records(tmp_path)["x"].text
    assert b"phone edit" in (tmp_path / "vdir" / "home" / "x.ics").read_bytes()
    assert run("conflicts") == 0
    assert "no conflicts kept" in capsys.readouterr().out

    # another conflict, forgotten this time
    (tmp_path / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "laptop again"))
    put_on_phone(tmp_path, "x", "phone again")
    assert run("run") == 0
    assert run("conflicts", "forget", "2") == 0
    assert run("conflicts", "show", "2") == 2


class Crash(BaseException):
    """Stands for the process being killed."""


def test_losing_version_survives_a_crash_after_the_winner_was_written(
    tmp_path, capsys, monkeypatch
):
    from pimsync.state import StateDB

    (tmp_path / "vdir" / "home").mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path, conflict="a wins")
    run = lambda *a: main(["--config", str(cfg), *a])  # noqa: E731
    (tmp_path / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "first"))
    assert run("run") == 0
    (tmp_path / "vdir" / "home" / "x.ics").write_bytes(make_event("x", "laptop edit"))
    put_on_phone(tmp_path, "x", "phone edit")

    def killed(*args, **kwargs):
        raise Crash  # the winner is written, the new state is not committed

    with monkeypatch.context() as m:
        m.setattr(StateDB, "put", killed)
        try:
            run("run")
        except Crash:
            pass
    assert "laptop edit" in file_records(tmp_path)["x"].text  # the phone's version is gone
    capsys.readouterr()
    assert run("run") == 0  # converges
    assert run("run") == 0
    assert run("conflicts") == 0
    listing = capsys.readouterr().out
    assert listing.count("cal/home x") == 1 and "'phone edit'" in listing, listing
    assert run("conflicts", "restore", "1") == 0
    assert "phone edit" in file_records(tmp_path)["x"].text
