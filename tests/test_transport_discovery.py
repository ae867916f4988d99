"""Home sets and collections on another host (as iCloud's ``pNN-caldav.icloud.com``): two
loopback servers, a small real DAV front whose principal names the calendar home on
another port, where Apache (mod_ssl) fronts a Radicale that checks the password.

The credentials go to that other host only over https and only because the server that
had them named it; never to a host reached by a redirect, nor over http."""

from __future__ import annotations

import pytest

from tests.frontends import DiscoveryFront, Sync, make_certs, start_apache
from tests.servers import RADICALE_PASSWORD, RADICALE_USER


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path / "certs")


@pytest.fixture
def home_host(tmp_path, radicale_auth, certs):
    """https://127.0.0.1:PORT/ : Apache in front of the Radicale that checks passwords."""
    front = start_apache(tmp_path / "apache", radicale_auth.url, tls=certs)
    yield front
    front.stop()


def keys(url: str, certs) -> str:
    return (
        f'url = "{url}"\nusername = "{RADICALE_USER}"\npassword = "{RADICALE_PASSWORD}"\n'
        f'verify = "{certs.ca}"'
    )


def test_a_home_set_on_another_https_host_gets_the_credentials(
    tmp_path, radicale_auth, home_host, certs, capsys
):
    home = f"{home_host.url}{RADICALE_USER}/"
    with DiscoveryFront(home, tls=(certs.server_cert, certs.server_key)) as front:
        sync = Sync(tmp_path, keys(front.url, certs))
        assert sync.run() == 0, capsys.readouterr()
        out, err = capsys.readouterr()
        assert err == "" and "b +3" in out, (out, err)
        assert len(radicale_auth.etags(f"/{RADICALE_USER}/{sync.col}/")) == 3
        log = home_host.log()
        assert f'"MKCALENDAR /{RADICALE_USER}/{sync.col}/' in log and '"PUT ' in log, log
        assert " 401 " not in log and "auth=-" not in log, log  # every request logged in
        asked = [(s.path, s.authorization is not None) for s in front.seen]
        assert asked == [("/", True), ("/principal/", True)], asked
        # the next run uses the discovery cache: the other host still gets the credentials
        (tmp_path / "pc" / sync.col / "new.ics").write_bytes(
            (tmp_path / "pc" / sync.col / f"{sync.uids[0]}.ics")
            .read_bytes()
            .replace(sync.uids[0].encode(), b"new-event")
        )
        assert sync.run() == 0, capsys.readouterr()
        assert len(front.seen) == 2  # no discovery this time
    assert len(radicale_auth.etags(f"/{RADICALE_USER}/{sync.col}/")) == 4
    assert " 401 " not in home_host.log()


def test_a_home_set_on_another_host_over_http_gets_no_credentials(
    tmp_path, radicale_auth, certs, capsys
):
    home = f"{radicale_auth.url}{RADICALE_USER}/"  # plain http, another port
    with DiscoveryFront(home, tls=(certs.server_cert, certs.server_key)) as front:
        sync = Sync(tmp_path, keys(front.url, certs))
        assert sync.run() == 1
        err = capsys.readouterr().err
    assert f"{home}: PROPFIND: 401" in err, err
    assert "only to the configured server, and to https:// hosts" in err, err
    assert RADICALE_PASSWORD not in err


def test_a_redirect_to_another_host_gets_no_credentials(
    tmp_path, radicale_auth, home_host, certs, capsys
):
    target = f"{home_host.url}{RADICALE_USER}/"
    with DiscoveryFront(
        "unused", tls=(certs.server_cert, certs.server_key), redirect=target
    ) as front:
        sync = Sync(tmp_path, keys(front.url + "dav/", certs))
        assert sync.run() == 1
        err = capsys.readouterr().err
        assert [s.path for s in front.seen] == ["/dav/", "/.well-known/caldav"]
    assert f"{target}: PROPFIND: 401" in err and "not to a host reached by a redirect" in err
    lines = [line for line in home_host.log().splitlines() if "PROPFIND" in line]
    assert lines and all(" 401 " in line and "auth=-" in line for line in lines), lines
