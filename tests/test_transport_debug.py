"""``pimsync -vv``: every HTTP request and answer on stderr, with the values of
Authorization, Proxy-Authorization, Cookie and Set-Cookie withheld, and the first KiB of
each body (decoded when it came gzipped), marked where it is cut."""

from __future__ import annotations

import base64
import re

import pytest

from pimsync.cli import _parser
from pimsync.storage.dav import http as dav_http
from tests.frontends import DiscoveryFront, Sync, make_certs, start_apache
from tests.servers import RADICALE_PASSWORD, RADICALE_USER


@pytest.fixture(autouse=True)
def no_debug_after(monkeypatch):
    monkeypatch.setattr(dav_http, "DEBUG", None)  # -vv sets it; the test's end puts it back


def test_minus_vv_is_counted_and_documented():
    args = _parser().parse_args(["-vv", "run"])
    assert args.verbose == 2
    assert _parser().parse_args(["run", "-v"]).verbose == 1
    assert "-vv" in _parser().format_help()


def test_vv_logs_requests_and_answers_without_secrets(tmp_path, radicale_auth, capsys):
    certs = make_certs(tmp_path / "certs")
    home_host = start_apache(tmp_path / "apache", radicale_auth.url, tls=certs)
    try:
        home = f"{home_host.url}{RADICALE_USER}/"
        with DiscoveryFront(home, tls=(certs.server_cert, certs.server_key)) as front:
            sync = Sync(
                tmp_path,
                f'url = "{front.url}"\nusername = "{RADICALE_USER}"\n'
                f'password = "{RADICALE_PASSWORD}"\nverify = "{certs.ca}"',
                count=40,
            )
            assert sync.run("-vv") == 0
    finally:
        home_host.stop()
    out, err = capsys.readouterr()
    basic = base64.b64encode(f"{RADICALE_USER}:{RADICALE_PASSWORD}".encode()).decode()
    assert RADICALE_PASSWORD not in out + err and basic not in out + err
    assert "front-cookie-value" not in err  # the front's Set-Cookie
    assert re.search(rf"^http \d+: > PROPFIND {re.escape(front.url)}$", err, re.M), err[:2000]
    assert "Authorization: <withheld>" in err and "Set-Cookie: <withheld>" in err
    assert "< 207 Multi-Status" in err
    for method in ("MKCALENDAR", "PUT", "REPORT"):
        assert f"> {method} {home}" in err, method
    # a gzipped answer is shown decoded, and a long one cut at 1 KiB, saying so
    assert "Content-Encoding: gzip" in err and "gzip bytes)" in err
    assert "| <?xml" in err and "more bytes not shown)" in err
    assert "BEGIN:VCALENDAR" in err  # a PUT's body (record data is shown: see the docs)
    assert "ev-0-" in out  # -vv is also -v: the actions


def test_control_characters_from_a_server_are_escaped_in_the_log():
    assert dav_http._shown(b"ok\x1b[2Jstill\r\n") == "ok\\x1b[2Jstill\\x0d\n"
