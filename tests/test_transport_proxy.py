"""Proxies: a real tinyproxy on loopback, whose log names every request that went
through it; ``http_proxy``/``https_proxy``/``no_proxy`` from the environment, the storage's
``proxy`` key (``""``: no proxy whatever the environment says), CONNECT tunnels to an
https:// server (Apache with mod_ssl in front of Radicale), and proxy credentials, which
are never shown."""

from __future__ import annotations

import pytest

from pimsync.config import load_config
from pimsync.errors import ConfigError
from tests.frontends import Sync, make_certs, start_apache, start_tinyproxy

PROXY_PASSWORD = "prox-pw-9d1c"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def clean_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.fixture
def tinyproxy(tmp_path):
    proxy = start_tinyproxy(tmp_path / "tinyproxy")
    yield proxy
    proxy.stop()


@pytest.fixture
def tls_front(tmp_path, radicale):
    certs = make_certs(tmp_path / "certs")
    front = start_apache(tmp_path / "apache", radicale.url, tls=certs)
    yield front, certs
    front.stop()


def server_keys(url: str, extra: str = "") -> str:
    return f'url = "{url}"\nusername = "alice"\npassword = "x"\n{extra}'


def requests_through(proxy) -> list[str]:
    """The request lines tinyproxy logged ("PROPFIND http://...", "CONNECT host:port")."""
    return [
        line.split("): ", 1)[1].rsplit(" HTTP/", 1)[0]
        for line in proxy.log().splitlines()
        if "Request (file descriptor" in line
    ]


def test_http_proxy_from_the_environment(tmp_path, radicale, tinyproxy, clean_env, capsys):
    clean_env.setenv("http_proxy", tinyproxy.url)
    sync = Sync(tmp_path, server_keys(radicale.url))
    assert sync.run() == 0, capsys.readouterr()
    assert len(radicale.etags(f"/alice/{sync.col}/")) == 3
    seen = requests_through(tinyproxy)
    assert f"PROPFIND {radicale.url}" in seen
    assert any(s.startswith(f"PUT {radicale.url}alice/{sync.col}/") for s in seen), seen


def test_https_through_a_connect_tunnel(tmp_path, tls_front, tinyproxy, clean_env, capsys):
    front, certs = tls_front
    clean_env.setenv("HTTPS_PROXY", tinyproxy.url)
    clean_env.setenv("http_proxy", "http://127.0.0.1:9/")  # not used for https
    sync = Sync(tmp_path, server_keys(front.url, f'verify = "{certs.ca}"'))
    assert sync.run() == 0, capsys.readouterr()
    seen = requests_through(tinyproxy)
    assert seen and set(seen) == {f"CONNECT 127.0.0.1:{front.port}"}, seen
    assert '"PUT /alice/' in front.log()  # the requests reached the server through the tunnel


def test_no_proxy_goes_direct(tmp_path, radicale, tinyproxy, clean_env, capsys):
    clean_env.setenv("http_proxy", tinyproxy.url)
    clean_env.setenv("no_proxy", "localhost,127.0.0.1")
    sync = Sync(tmp_path, server_keys(radicale.url))
    assert sync.run() == 0, capsys.readouterr()
    assert requests_through(tinyproxy) == []


def test_proxy_key_overrides_the_environment(tmp_path, radicale, tinyproxy, clean_env, capsys):
    clean_env.setenv("http_proxy", "http://127.0.0.1:9/")  # nobody there
    sync = Sync(tmp_path, server_keys(radicale.url, f'proxy = "{tinyproxy.url}"'))
    assert sync.run() == 0, capsys.readouterr()
    assert f"PROPFIND {radicale.url}" in requests_through(tinyproxy)


def test_an_empty_proxy_key_ignores_the_environment(
    tmp_path, radicale, tinyproxy, clean_env, capsys
):
    clean_env.setenv("http_proxy", tinyproxy.url)
    sync = Sync(tmp_path, server_keys(radicale.url, 'proxy = ""'))
    assert sync.run() == 0, capsys.readouterr()
    assert requests_through(tinyproxy) == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_proxy_credentials_go_to_the_proxy_and_are_never_shown(
    tmp_path, radicale, tls_front, clean_env, capsys, scheme
):
    proxy = start_tinyproxy(tmp_path / "authproxy", credentials=("puser", PROXY_PASSWORD))
    try:
        front, certs = tls_front
        url, extra = (
            (radicale.url, "") if scheme == "http" else (front.url, f'verify = "{certs.ca}"')
        )
        address = proxy.url.split("://", 1)[1]
        for n, (userinfo, rc) in enumerate(
            (("", 1), ("puser:wrong-pw-33@", 1), (f"puser:{PROXY_PASSWORD}@", 0))
        ):
            sync = Sync(
                tmp_path / f"run{n}",
                server_keys(url, f'{extra}\nproxy = "http://{userinfo}{address}"'),
            )
            assert sync.run() == rc
            out, err = capsys.readouterr()
            text = out + err
            assert PROXY_PASSWORD not in text and "wrong-pw-33" not in text
            if rc:
                assert address in err, err
                if userinfo:  # tinyproxy answers wrong credentials with 401, not 407
                    assert "refused the user name and password in" in err, err
                else:
                    assert "407" in err and "put them in the proxy URL" in err, err
        assert requests_through(proxy)
        assert len(radicale.etags(f"/alice/{sync.col}/")) == 3
    finally:
        proxy.stop()


def test_a_proxy_variable_pimsync_cannot_use_is_named_without_its_password(
    tmp_path, radicale, clean_env, capsys
):
    clean_env.setenv("http_proxy", f"socks5://u:{PROXY_PASSWORD}@127.0.0.1:1080")
    sync = Sync(tmp_path, server_keys(radicale.url))
    assert sync.run() == 1
    out, err = capsys.readouterr()
    assert "$http_proxy" in err and "HTTP proxies only" in err, err
    assert PROXY_PASSWORD not in out + err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"socks5://127.0.0.1:1080"', "HTTP proxies only"),
        ("false", 'expected a string, got a boolean; use a URL like "http://proxy.example'),
        ('"http://proxy.example:notaport"', "has a port that is not a number"),
        ('"http://proxy.example:3128/path"', "a proxy URL has no path"),
        (f'"socks5://u:{PROXY_PASSWORD}@h:1"', "HTTP proxies only"),
    ],
)
def test_proxy_key_errors(tmp_path, value, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[storages.s]\ntype = "caldav"\nurl = "https://dav.example/"\n'
        f"proxy = {value}\n"
        '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
        '[pairs.p]\na = "s"\nb = "v"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "storages.s.proxy" in str(err.value) and message in str(err.value), str(err.value)
    assert PROXY_PASSWORD not in str(err.value)


def test_the_config_repr_hides_proxy_credentials(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[storages.s]\ntype = "caldav"\nurl = "https://dav.example/"\n'
        f'proxy = "http://u:{PROXY_PASSWORD}@proxy.example:3128"\n'
        '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
        '[pairs.p]\na = "s"\nb = "v"\n'
    )
    storage = load_config(cfg).storages["s"]
    assert PROXY_PASSWORD not in repr(storage) and "proxy.example:3128" in repr(storage)


def test_a_webcal_feed_through_the_proxy_key(
    tmp_path, radicale, dav_collection, tinyproxy, clean_env, capsys
):
    from pimsync.cli import main
    from tests.conftest import make_event

    path = dav_collection(radicale, "ics")
    for uid in ("w1", "w2"):
        assert radicale.put(f"{path}{uid}.ics", make_event(uid)).status == 201
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[general]\nstate_dir = "state"\n'
        f'[storages.feed]\ntype = "webcal"\nurl = "{radicale.url.rstrip("/")}{path}"\n'
        f'proxy = "{tinyproxy.url}"\n'
        '[storages.pc]\ntype = "vdir"\npath = "pc"\nfileext = ".ics"\n'
        '[pairs.feed]\na = "feed"\nb = "pc"\ncollections = "from a"\n'
    )
    assert main(["--config", str(cfg), "run"]) == 0, capsys.readouterr()
    assert len(list((tmp_path / "pc" / "feed").glob("*.ics"))) == 2
    assert f"GET {radicale.url.rstrip('/')}{path}" in requests_through(tinyproxy)
