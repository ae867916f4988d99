"""A small HTTP client for the DAV data path, on the standard library's ``http.client``.

Why not the caldav library's client: importing it (niquests) costs about 0.4 s, more than
the whole budget of a run that has nothing to do (see docs/design-decisions.md). This
client keeps connections alive, runs requests from several threads over a bounded pool,
verifies TLS by default, times out, and retries idempotent and conditional requests on
connection errors, 429 and 503 (honouring Retry-After) with exponential backoff.

Secrets: the Authorization header is built once and never logged; error messages carry
the method, URL and status only.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from pimsync import __version__
from pimsync.errors import StorageError

USER_AGENT = f"pimsync/{__version__}"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})


class HttpError(StorageError):
    """A request failed: names the method, the URL and the status (never a secret)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.status = status
        self.url = url
        super().__init__(message, where=url)


class AuthError(HttpError):
    """The server refused the credentials (401) or the access (403)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4  # tries in all, for a request that may be repeated
    base: float = 0.5  # first wait, doubled each time


def _retry_after(value: str | None, fallback: float) -> float:
    if not value:
        return fallback
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return fallback
    return min(max(when - time.time(), 0.0), MAX_RETRY_AFTER)


class HttpClient:
    """Requests against one server. Thread-safe; close() when done."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        verify: bool | Path = True,
        timeout: float = 30.0,
        max_connections: int = 4,
        backoff: Backoff = Backoff(),
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("not an http(s) URL", url=base_url)
        self._options = {
            "username": username,
            "password": password,
            "verify": verify,
            "timeout": timeout,
            "max_connections": max_connections,
            "backoff": backoff,
        }
        self.base_url = base_url
        self.timeout = timeout
        self.backoff = backoff
        self.max_connections = max(1, max_connections)
        self._origin = (parts.scheme, parts.hostname, parts.port)
        self._auth: str | None = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._auth = f"Basic {token}"
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify
        self._idle: dict[tuple[str, str, int | None], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        #: requests sent (for benchmarks and tests)
        self.requests = 0

    def rebased(self, base_url: str) -> HttpClient:
        """A client for another base URL (found by discovery) with the same settings."""
        return HttpClient(base_url, **self._options)  # type: ignore[arg-type]

    # connections -----------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if self._verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif isinstance(self._verify, Path):
                try:
                    ctx = ssl.create_default_context(cafile=str(self._verify))
                except (OSError, ssl.SSLError) as exc:
                    raise HttpError(
                        f"cannot read the CA bundle {str(self._verify)!r} given as verify "
                        f"({getattr(exc, 'strerror', None) or exc})",
                        url=self.base_url,
                    ) from exc
            else:
                ctx = ssl.create_default_context()
            self._ssl = ctx
        return self._ssl

    def _connect(self, key: tuple[str, str, int | None]) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._context()
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _take(self, key: tuple[str, str, int | None]) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key), False

    def _give_back(
        self, key: tuple[str, str, int | None], conn: http.client.HTTPConnection
    ) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()

    # requests --------------------------------------------------------------------------
    def url(self, href: str) -> str:
        return urljoin(self.base_url, href)

    def request(
        self,
        method: str,
        href: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        retry: bool | None = None,
        follow_redirects: bool = False,
    ) -> Response:
        """Send a request and return the response, whatever its status (except that 401
        raises AuthError). ``retry`` (default: safe methods and conditional writes) allows
        repeating it on connection errors, 429 and 503."""
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"  # DAV request bodies
        if retry is None:
            retry = method in SAFE_METHODS or "If-Match" in hdrs or "If-None-Match" in hdrs
        url = self.url(href)
        redirects = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, url, body, hdrs)
            except (OSError, http.client.HTTPException) as exc:
                # a certificate that does not verify will not verify on a second try
                if (
                    retry
                    and attempt < self.backoff.attempts
                    and not isinstance(exc, ssl.SSLCertVerificationError)
                ):
                    time.sleep(self.backoff.base * 2 ** (attempt - 1))
                    continue
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                if isinstance(exc, socket.timeout | TimeoutError):
                    reason = f"no answer within {self.timeout:g} s"
                raise HttpError(f"{method} failed: {reason}", url=url) from exc
            status = response.status
            if status in RETRY_STATUSES and retry and attempt < self.backoff.attempts:
                wait = self.backoff.base * 2 ** (attempt - 1)
                time.sleep(_retry_after(response.header("Retry-After"), wait))
                continue
            if status == 401:
                raise AuthError(
                    f"{method}: 401 {response.reason}: the server refused the username or password",
                    url=url,
                    status=status,
                )
            if follow_redirects and status in (301, 302, 303, 307, 308) and redirects < 5:
                location = response.header("Location")
                if location:
                    redirects += 1
                    target = urljoin(url, location)
                    if urlsplit(target).scheme not in ("http", "https"):
                        raise HttpError(f"redirected to {target!r}", url=url, status=status)
                    url = target
                    attempt = 0
                    continue
            return response

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        send = dict(headers)
        if self._auth and key == self._origin:
            send["Authorization"] = self._auth  # never sent to another host
        with self._slots:
            for fresh_try in (False, True):
                conn, reused = self._take(key) if not fresh_try else (self._connect(key), False)
                try:
                    self.requests += 1
                    conn.request(method, target, body=body, headers=send)
                    raw = conn.getresponse()
                    data = raw.read()
                except (
                    http.client.RemoteDisconnected,
                    BrokenPipeError,
                    ConnectionResetError,
                ):
                    conn.close()
                    if reused and not fresh_try:
                        continue  # the server closed an idle connection: once more, fresh
                    raise
                except BaseException:
                    conn.close()
                    raise
                if raw.will_close:
                    conn.close()
                else:
                    self._give_back(key, conn)
                hdrs = {k.lower(): v for k, v in raw.getheaders()}
                return Response(raw.status, raw.reason, hdrs, data, url)
        raise AssertionError("unreachable")


def check_status(response: Response, method: str, ok: tuple[int, ...]) -> Response:
    """Raise HttpError naming the URL and status unless the status is in ``ok``."""
    if response.status in ok:
        return response
    detail = ""
    kind = (response.header("Content-Type") or "").split(";")[0].strip()
    if kind in ("text/html", "application/xhtml+xml"):
        detail = " (the server sent an HTML page, not a DAV answer)"
    elif response.body and kind in ("text/plain", "application/xml", "text/xml"):
        snippet = response.body[:200].decode("utf-8", "replace").strip().replace("\n", " ")
        detail = f": {snippet}" if snippet else ""
    cls = AuthError if response.status == 403 else HttpError
    raise cls(
        f"{method}: {response.status} {response.reason}{detail}",
        url=response.url,
        status=response.status,
    )
