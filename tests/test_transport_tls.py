"""TLS: client certificates (Apache with mod_ssl, ``SSLVerifyClient require``, in front of
Radicale) and certificate pinning (``verify_fingerprint``: a self-signed certificate is
accepted if and only if its SHA-256 fingerprint matches). Certificates are made with
``openssl`` in the test's temporary directory."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from pimsync.config import load_config
from pimsync.errors import ConfigError
from tests.frontends import Certs, Sync, make_certs, plain_request, start_apache


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path / "certs")


@pytest.fixture
def cert_front(tmp_path, radicale, certs):
    front = start_apache(tmp_path / "apache", radicale.url, tls=certs, client_certs=True)
    yield front
    front.stop()


@pytest.fixture
def self_signed_front(tmp_path, radicale, certs):
    front = start_apache(
        tmp_path / "apache-self",
        radicale.url,
        tls=certs,
        server_cert=(certs.self_signed_cert, certs.self_signed_key),
    )
    yield front
    front.stop()


def keys(url: str, extra: str) -> str:
    return f'url = "{url}"\nusername = "alice"\npassword = "x"\n{extra}'


def test_apache_asks_for_the_client_certificate(cert_front, certs):
    context = ssl.create_default_context(cafile=str(certs.ca))
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        plain_request(cert_front.url + "alice/", context=context)
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    assert plain_request(cert_front.url + "alice/", context=context)[0] == 207


@pytest.mark.parametrize("layout", ["two files", "one file"])
def test_a_client_certificate_logs_in(tmp_path, radicale, cert_front, certs, capsys, layout):
    if layout == "two files":
        extra = f'client_cert = "{certs.client_cert}"\nclient_key = "{certs.client_key}"'
    else:
        extra = f'client_cert = "{certs.client_both}"'
    sync = Sync(tmp_path, keys(cert_front.url, f'verify = "{certs.ca}"\n{extra}'))
    assert sync.run() == 0, capsys.readouterr()
    assert len(radicale.etags(f"/alice/{sync.col}/")) == 3
    assert '"PUT /alice/' in cert_front.log()


def test_without_a_client_certificate_the_error_says_so_at_once(
    tmp_path, cert_front, certs, capsys
):
    sync = Sync(tmp_path, keys(cert_front.url, f'verify = "{certs.ca}"'))
    assert sync.run() == 1
    err = capsys.readouterr().err
    assert "certificate required" in err and "storages.server.client_cert" in err, err
    assert "tried" not in err  # not retried: the server's refusal is its answer


def test_an_encrypted_client_key_is_refused_without_asking(tmp_path, cert_front, certs, capsys):
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(certs.client_key), "-out", str(encrypted),
         "-aes256", "-passout", "pass:key-pass-77"],
        check=True,
    )  # fmt: skip
    extra = (
        f'verify = "{certs.ca}"\nclient_cert = "{certs.client_cert}"\nclient_key = "{encrypted}"'
    )
    sync = Sync(tmp_path, keys(cert_front.url, extra))
    assert sync.run() == 1
    out, err = capsys.readouterr()
    assert "storages.server.client_key" in err and "passphrase" in err, err
    assert "key-pass-77" not in out + err


def test_a_pinned_fingerprint_accepts_a_self_signed_certificate(
    tmp_path, radicale, self_signed_front, certs, capsys
):
    fingerprint = Certs.fingerprint(certs.self_signed_cert)
    for n, pin in enumerate((fingerprint, fingerprint.replace(":", "").lower())):
        sync = Sync(
            tmp_path / f"run{n}", keys(self_signed_front.url, f'verify_fingerprint = "{pin}"')
        )
        assert sync.run() == 0, capsys.readouterr()
        assert len(radicale.etags(f"/alice/{sync.col}/")) == 3


def test_without_the_pin_the_self_signed_certificate_is_refused(
    tmp_path, self_signed_front, capsys
):
    sync = Sync(tmp_path, keys(self_signed_front.url, ""))
    assert sync.run() == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    assert "PROPFIND" not in self_signed_front.log()


def test_a_wrong_fingerprint_is_refused_before_anything_is_sent(
    tmp_path, self_signed_front, certs, capsys
):
    wrong = Certs.fingerprint(certs.server_cert)  # another certificate's
    sync = Sync(tmp_path, keys(self_signed_front.url, f'verify_fingerprint = "{wrong}"'))
    assert sync.run() == 1
    err = capsys.readouterr().err
    assert "not the one storages.server.verify_fingerprint pins" in err, err
    assert Certs.fingerprint(certs.self_signed_cert) in err  # the one the server has
    assert "nothing was sent" in err and "tried" not in err
    assert "PROPFIND" not in self_signed_front.log()  # no request reached the server


@pytest.mark.parametrize(
    ("lines", "key", "message"),
    [
        ('verify_fingerprint = "AB:CD"', "verify_fingerprint", "is not allowed; use the SHA-256"),
        (f'verify_fingerprint = "{"ab" * 20}"', "verify_fingerprint", "a SHA-1 fingerprint"),
        (f'verify_fingerprint = "{"ab" * 32}"\nverify = true', "verify", "both set"),
        ('client_key = "k.pem"', "client_key", "needs client_cert too"),
        ("verify_fingerprint = 7", "verify_fingerprint", "expected a string"),
    ],
)
def test_tls_key_errors(tmp_path, lines, key, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[storages.s]\ntype = "caldav"\nurl = "https://dav.example/"\n{lines}\n'
        '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
        '[pairs.p]\na = "s"\nb = "v"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert f"storages.s.{key}" in str(err.value) and message in str(err.value), str(err.value)


def test_tls_keys_are_for_https_urls(tmp_path):
    for lines in (f'verify_fingerprint = "{"ab" * 32}"', 'client_cert = "c.pem"'):
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            f'[storages.s]\ntype = "caldav"\nurl = "http://dav.example/"\n{lines}\n'
            '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
            '[pairs.p]\na = "s"\nb = "v"\n'
        )
        with pytest.raises(ConfigError, match="for https:// URLs only"):
            load_config(cfg)
