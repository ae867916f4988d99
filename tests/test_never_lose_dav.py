"""Never lose a record, against real servers: a write the server never lists is not a
deletion; a collection an interrupted run created is not "gone"; SIGTERM during a first
upload stops cleanly and the next run goes on."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import make_event
from tests.test_dav_faults import (  # noqa: F401 - fixtures
    env,
    fast_backoff,
    proxy_for,
    synced_env,
    writes,
)

NO_CHANGE = "a +0 ~0 -0, b +0 ~0 -0, 0 errors"


def test_a_write_the_server_answers_but_never_lists_is_written_again_not_deleted(env):  # noqa: F811
    e, proxy = synced_env(env, 3)
    for i in range(5):
        e.write(f"new-{i}", f"new {i}")
    proxy.respond(201, {"ETag": '"accepted"'}, method="PUT")  # answered, never stored
    first = e.run()
    assert first.rc == 0, first.text
    assert "b +5 ~0 -0" in first.text
    for _ in range(2):  # the server keeps dropping them: reported every run, kept here
        again = e.run()
        assert again.rc == 1, again.text
        assert len(e.local_uids()) == 8, again.text  # today: the 5 local copies deleted
        assert again.text.count("did not keep it") == 5
        assert "b +5 ~0 -0" in again.text
    proxy.clear()  # the server works again: written once more, then listed
    healed = e.run()
    assert "b +5 ~0 -0" in healed.text
    assert e.run().text.strip().endswith(NO_CHANGE)
    assert (
        e.server_uids()
        == e.local_uids()
        == sorted([f"ev-{i}" for i in range(3)] + [f"new-{i}" for i in range(5)])
    )


def _drop_from_cached_discovery(state: str, collection: str) -> None:
    with sqlite3.connect(state) as db:
        for storage, found in db.execute("SELECT storage, found FROM discovery").fetchall():
            kept = [f for f in json.loads(found) if f["id"] != collection]
            db.execute("UPDATE discovery SET found = ? WHERE storage = ?", (json.dumps(kept),
                                                                             storage))  # fmt: skip


def test_a_collection_missing_only_from_the_saved_list_is_looked_up(env):  # noqa: F811
    e, proxy = synced_env(env, 3)
    _drop_from_cached_discovery(str(e.tmp / "state" / "state.sqlite"), e.col)
    proxy.reset_log()
    run = e.run()
    assert run.rc == 0, run.text  # today: "gone from storage 'server'", --force-delete
    assert "gone" not in run.text and "force-delete" not in run.text
    assert any(s.method == "PROPFIND" for s in proxy.log)  # the server was asked
    # the server itself says it is gone: now the advice
    e.server.delete_collection(e.col_path)  # (Cyrus answers 404 to it, and deletes)
    gone = e.run()
    assert gone.rc == 1
    assert "is gone from storage 'server'" in gone.text and "--force-delete" in gone.text
    assert len(e.local_uids()) == 3


def _config(tmp_path, server, collections: list[str]):
    """A vdir "pc" paired with the server's calendars (pair "p")."""
    cfg = tmp_path / "config.toml"
    names = ", ".join(f'"{c}"' for c in collections)
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"
[storages.server]
type = "caldav"
url = "{server.url.rstrip("/")}{server.calendar_home}"
username = "{server.username}"
password = "x"
[pairs.p]
a = "pc"
b = "server"
collections = [{names}]
"""
    )
    return cfg


def _server_count(server, path: str) -> int:
    try:
        return len(server.etags(path))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_sigterm_during_the_first_upload_stops_cleanly_and_the_next_run_goes_on(tmp_path, radicale):
    pc = tmp_path / "pc"
    (pc / "old").mkdir(parents=True)
    (pc / "old" / "o.ics").write_bytes(make_event("o", "old"))
    name = f"new-{uuid.uuid4().hex[:8]}"
    cfg = _config(tmp_path, radicale, ["old", name])
    command = [sys.executable, "-m", "pimsync", "--config", str(cfg), "run"]
    (pc / name).mkdir()  # after the first run, which remembers the server's collections
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    for i in range(400):
        (pc / name / f"n{i}.ics").write_bytes(make_event(f"n{i}", f"new {i}"))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = f"{radicale.calendar_home}{name}/"
    deadline = time.monotonic() + 60
    while _server_count(radicale, path) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    if proc.returncode == 0:
        pytest.skip("the upload finished before the signal: nothing to test")
    assert proc.returncode == 143, err
    assert waited < 8, err
    assert "stopping:" in err and "in flight" in err and "stopped by SIGTERM" in err
    assert "Traceback" not in err
    uploaded = _server_count(radicale, path)
    assert 0 < uploaded < 400
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr  # today: "gone from the server", --force-delete
    assert "gone" not in again.stdout + again.stderr
    assert _server_count(radicale, path) == 400
    assert len(list((pc / name).glob("*.ics"))) == 400
    last = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert last.returncode == 0 and last.stdout.count(NO_CHANGE) == 2, last.stdout


def test_a_record_the_phone_deletes_right_after_the_upload_is_deleted_here_too(env):  # noqa: F811
    """The writes are confirmed by listing the server once more at the end of the run, so
    a deletion on the server right after is a deletion, not a dropped write."""
    e, proxy = synced_env(env, 3)
    e.write("fresh", "uploaded now")
    assert e.run().rc == 0
    assert "fresh" in e.server_uids()
    href = next(h for h, body in e.server_records().items() if b"UID:fresh" in body)
    assert e.server.request("DELETE", href).status in (200, 204)  # the phone deletes it
    run = e.run()
    assert run.rc == 0, run.text  # before: "did not keep it", written again
    assert "a +0 ~0 -1" in run.text
    assert e.local_uids() == e.server_uids() == [f"ev-{i}" for i in range(3)]


def test_a_collection_an_interrupted_run_created_is_used_not_created_again(tmp_path, radicale):
    """A run killed right after MKCALENDAR (before it noted the new calendar): the next
    run's MKCALENDAR finds it there (Radicale: 409 resource-must-be-null) and uses it."""
    name = f"made-{uuid.uuid4().hex[:8]}"
    assert radicale.request("MKCALENDAR", f"{radicale.calendar_home}{name}/").status in (
        200,
        201,
    )  # as the killed run left it
    pc = tmp_path / "pc" / name
    pc.mkdir(parents=True)
    (pc / "x.ics").write_bytes(make_event("x", "here"))
    cfg = _config(tmp_path, radicale, [name])
    # the discovery cache as the killed run saved it: without the new calendar
    command = [sys.executable, "-m", "pimsync", "--config", str(cfg)]
    subprocess.run([*command, "discover"], capture_output=True, timeout=60, check=True)
    _drop_from_cached_discovery(str(tmp_path / "state" / "state.sqlite"), name)
    run = subprocess.run([*command, "run"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr  # before: MKCALENDAR: 409 Conflict
    assert _server_count(radicale, f"{radicale.calendar_home}{name}/") == 1


def test_a_record_the_phone_deletes_right_after_an_update_is_deleted_here_too(env):  # noqa: F811
    """An update needs no confirming listing: the server reports the record it kept and
    then lost to the phone as deleted, which is a deletion, not a dropped write."""
    e, proxy = synced_env(env, 3)
    e.write("ev-0", "edited here")
    assert e.run().rc == 0
    href = next(h for h, body in e.server_records().items() if b"UID:ev-0" in body)
    assert b"edited here" in e.server_records()[href]
    assert e.server.request("DELETE", href).status in (200, 204)  # the phone deletes it
    run = e.run()
    assert run.rc == 0, run.text
    assert "a +0 ~0 -1" in run.text
    assert e.local_uids() == e.server_uids() == ["ev-1", "ev-2"]


def test_an_update_the_server_listed_is_not_taken_for_a_dropped_write_later(env):  # noqa: F811
    """A run updates a record on the server; the next run's changes since the old token
    report it together with a change of its own (so that run plans, and its token moves
    past the update). The record counts as kept from then on: the third run must not
    take it for a write the server dropped (before: "written again", then 412 in every
    pass, exit 1)."""
    e, proxy = synced_env(env, 3)
    e.write("ev-0", "edited here")
    assert e.run().rc == 0
    e.write("ev-1", "edited here too")  # something else to do in the next run
    second = e.run()
    assert second.rc == 0, second.text
    proxy.reset_log()
    third = e.run()
    assert third.rc == 0, third.text
    assert "written again" not in third.text
    assert not writes(proxy), [(s.method, s.path, s.status) for s in writes(proxy)]
    assert e.local_uids() == e.server_uids() == ["ev-0", "ev-1", "ev-2"]
