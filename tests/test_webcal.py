"""webcal: a read-only subscription over HTTP, served here by a loopback http.server."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from pimsync.cli import main
from pimsync.model import parse_record
from tests.conftest import CORPUS, make_event


class Feed:
    def __init__(self) -> None:
        self.body = b""
        self.etag = '"1"'
        self.requests: list[dict[str, str]] = []


@pytest.fixture
def feed():
    state = Feed()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state.requests.append(dict(self.headers))
            if self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("ETag", state.etag)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/holidays.ics"
    yield state
    server.shutdown()
    server.server_close()


def config(tmp: Path, url: str) -> Path:
    (tmp / "cal").mkdir(exist_ok=True)
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.holidays]
type = "webcal"
url = "{url}"
[storages.laptop]
type = "vdir"
path = "cal"
fileext = ".ics"
[pairs.subscriptions]
a = "holidays"
b = "laptop"
"""
    )
    return cfg


def uids(tmp: Path) -> set[str]:
    return {
        parse_record(p.read_bytes(), "ics", str(p)).ident
        for p in (tmp / "cal" / "holidays").glob("*.ics")
    }


def test_subscription_flows_one_way_and_unchanged_costs_a_304(tmp_path, feed, capsys):
    feed.body = (
        CORPUS / "ics" / "allenporter-ical__google_calendar_public_holidays.ics"
    ).read_bytes()
    cfg = config(tmp_path, feed.url)
    assert main(["--config", str(cfg), "run"]) == 0
    n = len(uids(tmp_path))
    assert n > 100
    assert main(["--config", str(cfg), "run"]) == 0
    assert feed.requests[-1].get("If-None-Match") == '"1"'  # answered 304
    assert "a +0 ~0 -0, b +0 ~0 -0, 0 errors" in capsys.readouterr().out

    # the feed changes: one event fewer, one new
    text = make_event("new-holiday", "A new holiday").decode()
    feed.body = feed.body.replace(
        b"END:VCALENDAR",
        text[text.index("BEGIN:VEVENT") : text.index("END:VCALENDAR")].encode() + b"END:VCALENDAR",
    )
    feed.etag = '"2"'
    assert main(["--config", str(cfg), "run"]) == 0
    assert "new-holiday" in uids(tmp_path) and len(uids(tmp_path)) == n + 1

    # a local edit is never written to the subscription, and is reported
    victim = next((tmp_path / "cal" / "holidays").glob("*.ics"))
    victim.write_bytes(victim.read_bytes().replace(b"SUMMARY:", b"SUMMARY:Edited "))
    capsys.readouterr()
    assert main(["--config", str(cfg), "run"]) == 0
    assert "1 not written (read-only)" in capsys.readouterr().out
    assert all(r["User-Agent"].startswith("pimsync/") for r in feed.requests)


def test_webcal_read_only_false_is_a_config_error(tmp_path, feed, capsys):
    cfg = config(tmp_path, feed.url)
    cfg.write_text(cfg.read_text().replace('type = "webcal"', 'type = "webcal"\nread_only = false'))
    assert main(["--config", str(cfg), "run"]) == 2
    assert "storages.holidays.read_only" in capsys.readouterr().err
