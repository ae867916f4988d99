"""Logging in: HTTP Digest (RFC 7616) against Apache's mod_auth_digest in front of a
Radicale, and Bearer tokens from ``token_command`` against Apache checking the token.

The fronts are real (``tests/frontends.py``): a request without Digest is refused by them
(checked first), a stale nonce is Apache's own (``AuthDigestNonceLifetime 1``).
"""

from __future__ import annotations

import base64
import time

import pytest

from pimsync.storage.dav.auth import (
    PasswordAuth,
    Sent,
    choose_digest,
    digest_header,
    parse_challenges,
)
from pimsync.storage.dav.http import HttpClient
from tests.frontends import Sync, plain_request, start_apache

PASSWORD = "digest-pass-7f3a"


@pytest.fixture
def digest_front(tmp_path, radicale):
    front = start_apache(
        tmp_path / "apache", radicale.url, digest=("alice", PASSWORD), pass_user="alice"
    )
    yield front
    front.stop()


# --- the Digest computation, with the examples of RFC 7616 section 3.9.1 -----------------

RFC_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("alg", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_response_matches_rfc_7616_examples(alg, response):
    session = choose_digest(parse_challenges([RFC_CHALLENGE.format(alg=alg)]))
    header = digest_header(
        session,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert f'response="{response}"' in header
    assert "nc=00000001" in header and "qop=auth," in header and f"algorithm={alg}" in header
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header
    again = digest_header(session, "GET", "/dir/index.html", "Mufasa", "Circle of Life")
    assert "nc=00000002" in again  # the count goes on under the same nonce


def test_sha_256_is_chosen_over_md5_and_unsupported_challenges_are_named():
    both = parse_challenges(
        [RFC_CHALLENGE.format(alg="MD5") + ", " + RFC_CHALLENGE.format(alg="SHA-256")]
    )
    assert [c.scheme for c in both] == ["digest", "digest"]
    assert choose_digest(both).algorithm == "SHA-256"
    auth = PasswordAuth("u", "p")
    with pytest.raises(Exception, match="NTLM"):
        auth.challenged(("https", "h", 443), Sent("basic", "x"), parse_challenges(["NTLM"]))
    only_int = parse_challenges(['Digest realm="r", nonce="n", qop="auth-int"'])
    with pytest.raises(Exception, match="auth-int"):
        auth.challenged(("https", "h", 443), Sent("basic", "x"), only_int)


def test_challenges_several_in_one_header():
    got = parse_challenges(['Negotiate abc==, Basic realm="a, b", Digest realm="r",nonce=n'])
    assert [(c.scheme, c.params) for c in got] == [
        ("negotiate", {"": "abc=="}),
        ("basic", {"realm": "a, b"}),
        ("digest", {"realm": "r", "nonce": "n"}),
    ]


# --- Digest against Apache ----------------------------------------------------------------


def test_apache_refuses_a_request_without_digest(digest_front):
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    status, headers = plain_request(digest_front.url + "alice/", headers={"Authorization": basic})
    assert status == 401
    assert headers["www-authenticate"].startswith("Digest ")
    assert "Basic" not in headers["www-authenticate"]


def test_a_sync_logs_in_with_digest_when_the_server_offers_only_digest(
    tmp_path, radicale, digest_front, capsys
):
    sync = Sync(
        tmp_path, f'url = "{digest_front.url}"\nusername = "alice"\npassword = "{PASSWORD}"'
    )
    assert sync.run() == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert err == "" and "b +3" in out, (out, err)
    uids = {h.rsplit("/", 1)[1] for h in radicale.etags(f"/alice/{sync.col}/")}
    assert uids == {f"{u}.ics" for u in sync.uids}
    log = digest_front.log()
    assert "auth=digest" in log and '"PUT ' in log
    # Basic went once (the first request; Apache ignored it), then Digest only
    assert log.count("auth=basic") == 1, log
    assert PASSWORD not in log
    assert sync.run() == 0  # a second run (new nonce) goes through too


def test_auth_digest_never_sends_basic(tmp_path, radicale, digest_front, capsys):
    sync = Sync(
        tmp_path,
        f'url = "{digest_front.url}"\nusername = "alice"\npassword = "{PASSWORD}"\nauth = "digest"',
    )
    assert sync.run() == 0, capsys.readouterr()
    assert "auth=basic" not in digest_front.log()


def test_a_wrong_password_with_digest_is_the_usual_clear_error(
    tmp_path, radicale, digest_front, capsys
):
    sync = Sync(tmp_path, f'url = "{digest_front.url}"\nusername = "alice"\npassword = "wrong-pw"')
    assert sync.run() == 1
    out, err = capsys.readouterr()
    assert "401 Unauthorized: the server refused the username or password" in err, err
    assert digest_front.url in err and "wrong-pw" not in out + err
    assert not (tmp_path / "pc" / sync.col / "x").exists()
    # asked twice at most: Basic, then Digest, then given up
    assert digest_front.log().count("PROPFIND") == 2


def test_a_stale_nonce_is_answered_with_the_new_one(tmp_path, radicale, monkeypatch):
    from pimsync.storage.dav import http

    lines: list[str] = []
    monkeypatch.setattr(http, "DEBUG", lines.append)
    front = start_apache(
        tmp_path / "apache",
        radicale.url,
        digest=("alice", PASSWORD),
        nonce_lifetime=1,
        pass_user="alice",
    )
    try:
        client = HttpClient(front.url, username="alice", password=PASSWORD)
        first = client.request("PROPFIND", "/alice/", None, {"Depth": "0"})
        assert first.status == 207
        time.sleep(2.2)  # the nonce is now older than AuthDigestNonceLifetime
        status, headers = plain_request(front.url + "alice/")
        second = client.request("PROPFIND", "/alice/", None, {"Depth": "0"})
        assert second.status == 207
    finally:
        front.stop()
    log = front.log().splitlines()
    # Basic (401), Digest (207); after the sleep: the stale nonce (401), the new one (207)
    statuses = [line.split('" ')[1].split()[0] for line in log if "PROPFIND" in line]
    assert statuses == ["401", "207", "401", "401", "207"], log
    challenges = [line for line in lines if "WWW-Authenticate: Digest" in line]
    assert len(challenges) == 2 and "stale=true" in challenges[1], challenges


# --- Bearer tokens ------------------------------------------------------------------------


def token_script(tmp_path, *tokens: str):
    """A token command printing the next of ``tokens`` each time it runs (then the last);
    the file ``runs`` counts its runs."""
    script = tmp_path / "token.sh"
    runs = tmp_path / "runs"
    lines = "\n".join(f'  {i}) echo "{t}";;' for i, t in enumerate(tokens))
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{runs}" 2>/dev/null || echo 0)\n'
        f'echo $((n + 1)) > "{runs}"\n'
        f'case "$n" in\n{lines}\n  *) echo "{tokens[-1]}";;\nesac\n'
    )
    script.chmod(0o755)
    return script, runs


@pytest.fixture
def bearer_front(tmp_path, radicale):
    front = start_apache(
        tmp_path / "apache", radicale.url, bearer="tok-new-5150", pass_user="alice"
    )
    yield front
    front.stop()


def test_a_bearer_token_from_token_command(tmp_path, radicale, bearer_front, capsys):
    script, runs = token_script(tmp_path, "tok-new-5150")
    sync = Sync(tmp_path, f'url = "{bearer_front.url}alice/"\ntoken_command = ["{script}"]')
    assert sync.run() == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert err == "" and "b +3" in out, (out, err)
    assert runs.read_text().strip() == "1"
    log = bearer_front.log()
    assert "auth=bearer" in log and " 401 " not in log and "auth=basic" not in log
    assert len(radicale.etags(f"/alice/{sync.col}/")) == 3


def test_an_expired_token_is_asked_for_again_once(tmp_path, radicale, bearer_front, capsys):
    script, runs = token_script(tmp_path, "tok-expired", "tok-new-5150")
    sync = Sync(tmp_path, f'url = "{bearer_front.url}alice/"\ntoken_command = ["{script}"]')
    assert sync.run() == 0, capsys.readouterr()
    assert runs.read_text().strip() == "2"  # once, and once more after the 401
    statuses = [line.split('" ')[1].split()[0] for line in bearer_front.log().splitlines()]
    assert statuses[0] == "401" and "401" not in statuses[1:], statuses


def test_a_refused_token_is_a_clear_error_without_the_token(
    tmp_path, radicale, bearer_front, capsys
):
    script, runs = token_script(tmp_path, "tok-bad-1", "tok-bad-2")
    sync = Sync(tmp_path, f'url = "{bearer_front.url}alice/"\ntoken_command = ["{script}"]')
    assert sync.run() == 1
    out, err = capsys.readouterr()
    assert "401" in err and "refused the access token" in err, err
    assert "tok-bad" not in out + err
    assert runs.read_text().strip() == "2"  # asked again once, not more


def test_token_command_excludes_passwords_in_the_config(tmp_path):
    from pimsync.config import load_config
    from pimsync.errors import ConfigError

    for extra in ('password = "x"', 'username = "alice"', 'keyring = "svc"'):
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[storages.s]\ntype = "caldav"\nurl = "https://dav.example/"\n'
            f'token_command = ["tok"]\n{extra}\n'
            '[storages.v]\ntype = "vdir"\npath = "v"\nfileext = ".ics"\n'
            '[pairs.p]\na = "s"\nb = "v"\n'
        )
        with pytest.raises(ConfigError) as err:
            load_config(cfg)
        message = str(err.value)
        assert "storages.s.token_command" in message and "instead of" in message, message
        assert "x" not in message.split("token_command")[0][-3:]


def test_auth_basic_does_not_answer_digest_and_says_so():
    from pimsync.storage.dav.auth import Refused

    auth = PasswordAuth("alice", "pw", "basic")
    with pytest.raises(Refused, match='auth = "basic" never answers it'):
        auth.challenged(
            ("http", "h", 80), Sent("basic", "x"), parse_challenges(['Digest realm="r", nonce="n"'])
        )
    auto = PasswordAuth("alice", "pw")
    auto.challenged(("http", "h", 80), Sent("basic", "x"), parse_challenges(['Digest nonce="n"']))
    assert auto.header(("http", "h", 80), "GET", "/").scheme == "digest"
    assert auto.header(("http", "other", 80), "GET", "/").scheme == "basic"  # per origin
