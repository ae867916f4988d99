"""Real fronts for the transport tests: Apache httpd (Digest authentication, TLS with client
certificates, a Bearer-token check) and tinyproxy, started from Debian's packages with our
own config files in temporary directories, plus certificates made with ``openssl`` and a
tiny discovery front written here.

Every server binds 127.0.0.1 on a free port, runs in the foreground as our child (it gets
SIGTERM if the test process dies: ``_die_with_parent``), logs into its temporary directory,
and is stopped by its PID. Where ``apache2``, ``tinyproxy`` or ``openssl`` is missing, the
tests that need it are skipped with a reason naming ``tests/servers/install.sh``, which
installs them.

Apache (Debian's ``apache2`` binary has ``log_config`` built in; the other modules are
loaded from ``/usr/lib/apache2/modules/``):

* ``start_apache(tmp, upstream, digest=...)``: ``AuthType Digest`` (mod_auth_digest, MD5,
  ``qop=auth``) in front of ``upstream`` (a Radicale without authentication) through
  mod_proxy; ``AuthDigestNonceLifetime`` makes nonces go stale;
* ``tls=Certs`` serves HTTPS (mod_ssl), ``client_certs=True`` asks for a client
  certificate signed by the test CA (``SSLVerifyClient require``);
* ``bearer="TOKEN"`` answers 401 unless the request carries ``Authorization: Bearer
  TOKEN`` (mod_rewrite), and passes ``alice`` on to Radicale in its place (mod_headers).

Run as root, Apache's workers run as ``nobody``: the files they read while serving (the
Digest password file) live in a directory of their own under ``/tmp`` that they can read.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import hashlib
import http.client
import http.server
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.servers import HOST, _die_with_parent, _owns_listener, free_port

MODULES = Path("/usr/lib/apache2/modules")
INSTALL = "tests/servers/install.sh"
START_TIMEOUT = 15.0
REALM = "pimsync-test"


def _missing(*programs: str) -> str | None:
    gone = [p for p in programs if shutil.which(p) is None and not Path(p).exists()]
    if "apache2" in programs and not (MODULES / "mod_auth_digest.so").exists():
        gone.append(str(MODULES))
    return ", ".join(gone) or None


def need(*programs: str) -> None:
    """Skip the test, naming the installer, when one of the programs is missing."""
    gone = _missing(*programs)
    if gone == "openssl":
        pytest.skip("openssl not installed (apt-get install openssl)")
    if gone:
        pytest.skip(f"{gone} not installed: run {INSTALL} (it installs apache2 and tinyproxy)")


def apache_binary() -> str:
    return shutil.which("apache2") or "/usr/sbin/apache2"


# --------------------------------------------------------------------------- processes


@dataclass(eq=False)
class Front:
    """One server process of ours: its port, directory and log files."""

    name: str
    port: int
    base: Path
    proc: subprocess.Popen[bytes]
    logs: dict[str, Path]
    scheme: str = "http"
    _out: IO[bytes] | None = field(default=None, repr=False)
    _extra: list[Path] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self, which: str = "access") -> str:
        try:
            return self.logs[which].read_text("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._out is not None:
            self._out.close()
            self._out = None
        for path in self._extra:
            shutil.rmtree(path, ignore_errors=True)
        self._extra.clear()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(
    name: str,
    base: Path,
    make: Callable[[int], tuple[list[str], dict[str, Path]]],
    scheme: str = "http",
    extra: Sequence[Path] = (),
    attempts: int = 4,
) -> Front:
    """Start ``make(port)``'s command on a free port; wait until our process listens."""
    last = ""
    for _ in range(attempts):
        port = free_port()
        argv, logs = make(port)
        out_path = base / f"{name}.out"
        out = open(out_path, "ab")  # noqa: SIM115 - closed by Front.stop
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=base,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        front = Front(name, port, base, proc, {**logs, "out": out_path}, scheme, out, list(extra))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _owns_listener(proc.pid, port):
                try:
                    with socket.create_connection((HOST, port), timeout=0.5):
                        return front
                except OSError:
                    pass
            time.sleep(0.05)
        last = front.log("out") + front.log("error")
        front._extra = []  # kept for the next attempt
        front.stop()
        if "in use" not in last.lower():
            break
    for path in extra:
        shutil.rmtree(path, ignore_errors=True)
    raise RuntimeError(f"{name} did not start; its output:\n{last[-3000:]}")


# --------------------------------------------------------------------------- certificates


@dataclass
class Certs:
    """A test CA, a server certificate for 127.0.0.1 signed by it, a client certificate
    signed by it (its key apart, and both in one PEM), and a self-signed certificate."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_both: Path
    self_signed_cert: Path
    self_signed_key: Path

    @staticmethod
    def fingerprint(cert: Path) -> str:
        """The SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...``."""
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')}")


def make_certs(where: Path) -> Certs:
    """Certificates made with ``openssl`` in ``where`` (RSA 2048, valid for two days)."""
    need("openssl")
    d = Path(where)
    d.mkdir(parents=True, exist_ok=True)
    ext = d / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    cext = d / "client.ext"
    cext.write_text("extendedKeyUsage = clientAuth\n")
    run = lambda *a: _openssl(*a, cwd=d)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=pimsync test CA")  # fmt: skip
    for name, subject, extfile in (
        ("server", "/CN=127.0.0.1", ext),
        ("client", "/CN=alice", cext),
    ):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", subject)  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", str(extfile))  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out",
        "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
        "subjectAltName = IP:127.0.0.1")  # fmt: skip
    both = d / "client-both.pem"
    both.write_bytes((d / "client.pem").read_bytes() + (d / "client.key").read_bytes())
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Certs(
        d,
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        both,
        d / "self.pem",
        d / "self.key",
    )


# --------------------------------------------------------------------------- Apache


def _worker_user() -> tuple[str, str] | None:
    """Apache's User and Group when we are root (it will not serve as root)."""
    if os.geteuid() != 0:
        return None
    user = "nobody" if _exists(pwd.getpwnam, "nobody") else "daemon"
    group = next(g for g in ("nogroup", "nobody", "daemon") if _exists(grp.getgrnam, g))
    return user, group


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def start_apache(
    tmp: Path,
    upstream: str,
    *,
    digest: tuple[str, str] | None = None,
    nonce_lifetime: int = 300,
    tls: Certs | None = None,
    server_cert: tuple[Path, Path] | None = None,
    client_certs: bool = False,
    bearer: str | None = None,
    pass_user: str | None = None,
) -> Front:
    """Apache in front of ``upstream`` (``http://127.0.0.1:PORT/``); see the module doc.
    ``digest``: (user, password) for AuthType Digest. ``server_cert``: (cert, key) to serve
    instead of the CA-signed one. ``pass_user``: the Basic user Radicale is told (auth
    none there) in place of whatever Authorization the client sent."""
    need("apache2")
    base = Path(tmp)
    base.mkdir(parents=True, exist_ok=True)
    modules = ["mpm_event", "authz_core", "proxy", "proxy_http", "headers", "rewrite"]
    if digest:
        modules += ["authn_core", "authn_file", "authz_user", "auth_digest"]
    if tls:
        modules += ["ssl", "socache_shmcb"]
    public = Path(tempfile.mkdtemp(prefix="pimsync-apache-"))  # read by the workers
    public.chmod(0o755)
    lines = [
        f"ServerRoot {base}",
        f"ServerName {HOST}",
        f"PidFile {base}/httpd.pid",
        f"DefaultRuntimeDir {base}",
        f"ErrorLog {base}/error.log",
        "LogLevel warn",
        # who asked, with what kind of credentials (never their value), and the answer
        'LogFormat "%h %u \\"%r\\" %>s %b auth=%{AUTH_KIND}e" front',
        f"CustomLog {base}/access.log front",
        "Timeout 60",
        "KeepAlive On",
        "SetEnvIf Authorization ^Basic AUTH_KIND=basic",
        "SetEnvIf Authorization ^Digest AUTH_KIND=digest",
        "SetEnvIf Authorization ^Bearer AUTH_KIND=bearer",
    ]
    modules.append("setenvif")
    lines[:0] = [f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in modules]
    who = _worker_user()
    if who:
        lines += [f"User {who[0]}", f"Group {who[1]}"]
    if tls:
        cert, key = server_cert or (tls.server_cert, tls.server_key)
        lines += [
            "SSLEngine on",
            f"SSLCertificateFile {cert}",
            f"SSLCertificateKeyFile {key}",
            "SSLSessionCache none",
        ]
        if client_certs:
            lines += [
                f"SSLCACertificateFile {tls.ca}",
                "SSLVerifyClient require",
                "SSLVerifyDepth 2",
            ]
    if digest:
        user, password = digest
        ha1 = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
        (public / "htdigest").write_text(f"{user}:{REALM}:{ha1}\n")
        (public / "htdigest").chmod(0o644)
        lines += [
            "<Location />",
            "  AuthType Digest",
            f'  AuthName "{REALM}"',
            "  AuthDigestProvider file",
            f"  AuthUserFile {public}/htdigest",
            "  AuthDigestAlgorithm MD5",
            f"  AuthDigestNonceLifetime {nonce_lifetime}",
            "  Require valid-user",
            "</Location>",
        ]
    if bearer:
        lines += [
            "RewriteEngine On",
            f'RewriteCond "%{{HTTP:Authorization}}" "!=Bearer {bearer}"',
            "RewriteRule ^ - [R=401,L]",
        ]
    if pass_user:
        basic = base64.b64encode(f"{pass_user}:".encode()).decode()
        lines.append(f'RequestHeader set Authorization "Basic {basic}"')
    lines += [
        "ProxyRequests Off",
        "ProxyPreserveHost Off",
        f"ProxyPass / {upstream.rstrip('/')}/ keepalive=On",
        f"ProxyPassReverse / {upstream.rstrip('/')}/",
    ]

    def make(port: int) -> tuple[list[str], dict[str, Path]]:
        conf = base / "httpd.conf"
        conf.write_text("\n".join([f"Listen {HOST}:{port}", *lines]) + "\n")
        logs = {"access": base / "access.log", "error": base / "error.log"}
        return [apache_binary(), "-f", str(conf), "-DFOREGROUND"], logs

    return _launch("apache", base, make, "https" if tls else "http", extra=[public])


# --------------------------------------------------------------------------- tinyproxy


def start_tinyproxy(tmp: Path, *, credentials: tuple[str, str] | None = None) -> Front:
    """tinyproxy on 127.0.0.1 (clients from 127.0.0.1 only); its log names every request
    (``Request (file descriptor N): GET http://...`` and ``CONNECT 127.0.0.1:PORT``).
    ``credentials``: it asks for them (407) with BasicAuth."""
    need("tinyproxy")
    base = Path(tmp)
    base.mkdir(parents=True, exist_ok=True)
    log = base / "tinyproxy.log"

    def make(port: int) -> tuple[list[str], dict[str, Path]]:
        conf = base / "tinyproxy.conf"
        lines = [
            f"Port {port}",
            f"Listen {HOST}",
            "Timeout 120",
            f'LogFile "{log}"',
            "LogLevel Info",
            f'PidFile "{base}/tinyproxy.pid"',
            "MaxClients 20",
            f"Allow {HOST}",
            "DisableViaHeader Yes",
        ]
        if credentials:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        return [binary, "-d", "-c", str(conf)], {"access": log}

    return _launch("tinyproxy", base, make)


# --------------------------------------------------------------------------- a discovery front


_MULTI = (
    '<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:" '
    'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response><d:href>{href}</d:href><d:propstat>'
    "<d:prop>{props}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    "</d:multistatus>"
)


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


class DiscoveryFront:
    """A tiny real DAV front (in this process, on a thread): it asks for Basic credentials
    ``user``/``password`` (401 otherwise, with ``WWW-Authenticate: Basic``), and answers a
    PROPFIND of any path but ``/.well-known/`` with ``current-user-principal`` =
    ``/principal/``, and of ``/principal/`` with ``calendar-home-set`` = ``home`` (an
    absolute URL on another server). ``redirect``: ``/.well-known/caldav`` redirects there
    (301) and the URL itself answers 404. Every answer sets a cookie. ``seen`` keeps each
    request, with its Authorization header."""

    def __init__(
        self,
        home: str,
        *,
        user: str = "alice",
        password: str = "secret",
        tls: tuple[Path, Path] | None = None,
        redirect: str | None = None,
    ) -> None:
        self.home, self.redirect = home, redirect
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[Seen] = []
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Set-Cookie", "session=front-cookie-value; HttpOnly")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PROPFIND(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization")
                front.seen.append(Seen("PROPFIND", self.path, auth))
                if front.redirect is not None:
                    if self.path.startswith("/.well-known/"):
                        return self._answer(301, b"", {"Location": front.redirect})
                    return self._answer(404, b"not here")
                if auth != front.expected:
                    return self._answer(401, b"", {"WWW-Authenticate": 'Basic realm="front"'})
                if self.path.startswith("/principal/"):
                    props = (
                        f"<c:calendar-home-set><d:href>{front.home}</d:href></c:calendar-home-set>"
                    )
                else:
                    props = "<d:current-user-principal><d:href>/principal/</d:href>"
                    props += "</d:current-user-principal>"
                body = _MULTI.format(href=self.path, props=props).encode()
                self._answer(207, body, {"Content-Type": "application/xml; charset=utf-8"})

            do_GET = do_PROPFIND  # noqa: N815

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> DiscoveryFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def plain_request(
    url: str,
    method: str = "PROPFIND",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str]]:
    """One request with http.client (not the code under test): its status and headers."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, parts.path or "/", headers={"Depth": "0", **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


# --------------------------------------------------------------------------- a sync to run


class Sync:
    """A vdir with one calendar of ``count`` events, paired with a caldav storage whose
    keys are ``server`` (TOML lines: url, credentials, TLS, proxy...); ``run()`` is
    ``pimsync run`` in this process (its exit status; output through capsys)."""

    def __init__(self, tmp: Path, server: str, *, count: int = 3, name: str | None = None) -> None:
        import uuid

        from tests.conftest import make_event

        self.tmp = Path(tmp)
        self.col = name or f"t{uuid.uuid4().hex[:10]}"
        folder = self.tmp / "pc" / self.col
        folder.mkdir(parents=True)
        self.uids = [f"ev-{i}-{self.col}" for i in range(count)]
        for uid in self.uids:
            (folder / f"{uid}.ics").write_bytes(make_event(uid, f"event {uid}"))
        self.cfg = self.tmp / "config.toml"
        self.cfg.write_text(
            f'[general]\nstate_dir = "state"\n\n'
            f'[storages.pc]\ntype = "vdir"\npath = "pc"\nfileext = ".ics"\n\n'
            f'[storages.server]\ntype = "caldav"\n{server.strip()}\n\n'
            f'[pairs.cal]\na = "pc"\nb = "server"\ncollections = ["{self.col}"]\n'
        )

    def run(self, *args: str, command: str = "run") -> int:
        from pimsync.cli import main
        from pimsync.credentials import clear_cache

        clear_cache()
        return main(["--config", str(self.cfg), *args, command])
