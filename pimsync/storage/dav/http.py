"""A small HTTP client for the DAV data path, on the standard library's ``http.client``.

Why not the caldav library's client: importing it (niquests) costs about 0.4 s, more than
the whole budget of a run that has nothing to do (see docs/design-decisions.md). This
client keeps connections alive, runs requests from several threads over a bounded pool,
verifies TLS by default, times out, and retries idempotent and conditional requests on
connection errors, 429 and 503 (honouring Retry-After) with exponential backoff.

Bounds: every answer is read in pieces, at most ``max_response_size`` bytes and within
``max_request_time`` seconds in all (``timeout`` is the limit for each silence); going past
either closes the connection and fails the request, naming the limit and its config key.
:meth:`HttpClient.stream` hands the answer's pieces to a callback as they arrive, so a
listing or a multiget is parsed while it is read. A server that did not answer in time (or
refused the connection through every retry) is not asked again in the same run: the
client and every client :meth:`~HttpClient.rebased` from it fail at once with
:class:`ServerUnreachable`.

Logging in (:mod:`pimsync.storage.dav.auth`): Basic, Digest when the server asks for
it, or a Bearer token; credentials go only to the origins the client trusts: the
configured one, and ``https://`` origins that an authenticated answer named
(:meth:`HttpClient.trust`, for a home set on another host), never to a host reached by a
redirect. Proxies (:mod:`pimsync.storage.dav.proxy`): the storage's ``proxy`` or the
environment; ``https://`` through a CONNECT tunnel. TLS: a CA bundle, a client
certificate, or a pinned SHA-256 fingerprint of the server's certificate (checked before
anything is sent). Answers are asked for gzip (``Accept-Encoding``) and decoded as they
are read, the *decoded* size counting against the limits.

Secrets: the Authorization header is never logged; error messages carry the method, URL
and status, and the server's reason (:mod:`pimsync.storage.dav.reason`). :data:`DEBUG`
(``pimsync -vv``) logs every request and answer, with the values of ``Authorization``,
``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` withheld.
"""

from __future__ import annotations

import email.utils
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

from pimsync import __version__
from pimsync.errors import StorageError, Unreachable
from pimsync.storage import format_size
from pimsync.storage.dav.auth import (
    Authenticator,
    Origin,
    PasswordAuth,
    Refused,
    Sent,
    parse_challenges,
)
from pimsync.storage.dav.proxy import Proxy, ProxyChooser, ProxyURLError

USER_AGENT = f"pimsync/{__version__}"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
DEFAULT_MAX_RESPONSE_SIZE = 64 << 20  # bytes of one answer
DEFAULT_MAX_RECORD_SIZE = 32 << 20  # bytes of one record in a multiget
DEFAULT_MAX_REQUEST_TIME = 600.0  # seconds one request may take in all
CHUNK = 1 << 16  # what one read asks for
MAX_TIMEOUTS = 2  # a request that timed out is tried once more, not again
ACCEPT_ENCODING = "gzip, deflate"
#: a 401 is answered (Digest, a stale nonce, a new token) at most this often per request
MAX_AUTH_ROUNDS = 3
#: bytes of each request and answer body that the debug log shows
DEBUG_BODY = 1024
#: headers whose values the debug log never shows
WITHHELD = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

#: ``pimsync -vv``: called with each line of the HTTP log (None: no log)
DEBUG: Callable[[str], None] | None = None

T = TypeVar("T")


class HttpError(StorageError):
    """A request failed: names the method, the URL and the status (never a secret)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.status = status
        self.url = url
        super().__init__(message, where=url)


class AuthError(HttpError):
    """The server refused the credentials (401) or the access (403)."""


class ResponseTooLarge(HttpError):
    """An answer went past ``max_response_size``: it was not read to its end."""


class RequestTooSlow(HttpError):
    """A request went past ``max_request_time``."""


class ConnectionRefusedByPolicy(HttpError):
    """Not sent, and not worth trying again: a pinned certificate that does not match, a
    proxy that refused the tunnel, a client certificate that cannot be read."""


#: the most read whole of a DAV answer that is not parsed as a stream (discovery,
#: PROPPATCH, a PUT's answer): such answers are small, and a hostile one must not fill
#: memory up to max_response_size
WHOLE_ANSWER = 16 << 20


class ServerUnreachable(HttpError, Unreachable):
    """Not sent: the server did not answer (or refused connections) earlier in this run.
    ``origin`` names the server (``https://host:port``): one message per server is enough."""

    def __init__(self, message: str, *, url: str, origin: str) -> None:
        self.origin = origin
        super().__init__(message, url=url)


def origin_key(url: str) -> Origin:
    """``(scheme, host, port)`` of a URL, the port filled in: what credentials are bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return (scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80))


def origin_url(key: Origin) -> str:
    scheme, host, port = key
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port != default else "")


def fingerprint_of(der: bytes) -> str:
    """The SHA-256 fingerprint of a certificate (DER), as ``AB:CD:...``."""
    import hashlib

    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a server is known by in messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{round(value, 1):g}"


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


class _Watch:
    """One request's deadline, kept by the watchdog."""

    __slots__ = ("conn", "deadline", "done", "expired")

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self.conn: http.client.HTTPConnection | None = conn
        self.deadline = deadline
        self.done = False
        self.expired = False


class _Watchdog:
    """Ends requests that run past their deadline, whatever they are waiting for (a
    trickle of header lines, of chunk sizes, of body bytes: each read returns within
    ``timeout``, the sum need not): one thread shuts their socket down, so that the
    blocked read returns at once. The request then fails with RequestTooSlow."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, conn: http.client.HTTPConnection, deadline: float) -> _Watch:
        entry = _Watch(conn, deadline)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pimsync-request-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is entry:
                self._cond.notify()
        return entry

    def release(self, entry: _Watch) -> None:
        with self._cond:  # after this, the watchdog never touches the connection
            entry.done = True
            entry.conn = None

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)[2]
                entry.expired = True
                sock = entry.conn.sock if entry.conn is not None else None
                if sock is not None:
                    try:  # the plain socket's shutdown: an SSL socket's state is left alone
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass


_WATCHDOG = _Watchdog()


class _Decoder:
    """Decodes a gzip or deflate body piece by piece, never more than ``CHUNK`` bytes of
    output at a time (a small piece of a gzip bomb does not become gigabytes at once)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._z = zlib.decompressobj(self._wbits)
        self._started = False
        self._raw_deflate = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data``; raises zlib.error on a corrupt body."""
        while data:
            if self._z.eof:  # a gzip body may hold several members, one after the other
                if not data.strip(b"\0"):
                    return  # (padding after the last one)
                self._z = zlib.decompressobj(self._wbits)
            try:
                out = self._z.decompress(data, CHUNK)
            except zlib.error:
                if self.encoding == "deflate" and not self._started and not self._raw_deflate:
                    # "deflate" without the zlib header, as some servers send it
                    self._raw_deflate, self._wbits = True, -zlib.MAX_WBITS
                    self._z = zlib.decompressobj(self._wbits)
                    continue
                raise
            self._started = True
            rest = self._z.unused_data if self._z.eof else self._z.unconsumed_tail
            if out:
                yield out
            elif rest == data:
                return  # (nothing moved: wait for more input)
            data = rest

    def finished(self) -> bool:
        return self._z.eof or not self._started


def _shown(data: bytes) -> str:
    """Bytes of a body for the debug log: text, control characters escaped."""
    text = data.decode("utf-8", "replace")
    return "".join(
        c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" if ord(c) < 256 else "?"
        for c in text
    )


class _Log:
    """The debug log of one request (``pimsync -vv``): numbered lines, so that the
    requests of several threads can be told apart."""

    _numbers = itertools.count(1)
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.number = next(self._numbers)
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        out = DEBUG
        if out is not None:
            with self._lock:
                out(f"http {self.number}: {text}")

    def headers(self, marker: str, headers: Iterator[tuple[str, str]] | list) -> None:
        for name, value in headers:
            shown = "<withheld>" if name.lower() in WITHHELD else _shown(value.encode())
            self.line(f"{marker}   {name}: {shown}")

    def body(self, marker: str, data: bytes, total: int, note: str = "") -> None:
        if not total:
            self.line(f"{marker}   (no body{note})")
            return
        cut = f"; the first {len(data)} shown" if total > len(data) else ""
        self.line(f"{marker}   body: {total} bytes{note}{cut}:")
        text = _shown(data)
        for piece in text.split("\n"):
            self.line(f"{marker}   | {piece}")
        if cut:
            self.line(f"{marker}   | … ({total - len(data)} more bytes not shown)")

    def seconds(self) -> str:
        return f"{time.monotonic() - self.started:.3f} s"


class StreamResponse:
    """An answer whose body has not been read yet; the client holds its connection until
    :meth:`close` (done by :meth:`HttpClient.stream` after the callback returned).

    :meth:`chunks` yields the body as it arrives (decoded, if the server compressed it),
    checked against the client's limits; :meth:`response` reads it whole (within the same
    limits)."""

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        key: Origin,
        conn: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
        watch: _Watch,
        sent: Sent | None = None,
        log: _Log | None = None,
    ) -> None:
        self.client, self.method, self.url = client, method, url
        self.status = raw.status
        self.reason = raw.reason
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in raw.getheaders()}
        #: the WWW-Authenticate headers, every one
        self.challenges: list[str] = raw.msg.get_all("WWW-Authenticate") or []
        self.sent = sent or Sent(None)
        self._key, self._conn, self._raw, self._watch = key, conn, raw, watch
        #: bytes of the body read so far (decoded: what the limits count)
        self.read_bytes = 0
        #: bytes of the body as they came over the wire
        self.wire_bytes = 0
        self._complete = False
        self._closed = False
        self._log = log
        self._preview = bytearray()
        #: bytes this answer may have (lowered for answers read whole, see ``request``)
        self.limit = client.max_response_size
        encoding = (self.headers.get("content-encoding") or "").strip().lower()
        self.encoding = "" if encoding == "identity" else encoding

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def chunks(self) -> Iterator[bytes]:
        client, raw, watch = self.client, self._raw, self._watch
        limit = self.limit
        if raw.length is not None and raw.length > limit:
            raise client.too_large(
                self.method, self.url, f"announces {format_size(raw.length)}", limit
            )
        decoder: _Decoder | None = None
        if self.encoding in ("gzip", "x-gzip", "deflate"):
            decoder = _Decoder(self.encoding)
        elif self.encoding:
            raise HttpError(
                f"{self.method}: the server sent its answer with Content-Encoding "
                f"{self.encoding[:40]!r}, which pimsync did not ask for and cannot read",
                url=self.url,
                status=self.status,
            )
        while True:
            if time.monotonic() > watch.deadline:
                raise client.too_slow(self.method, self.url, self.read_bytes)
            try:
                data = raw.read1(CHUNK)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if watch.expired:
                    raise client.too_slow(self.method, self.url, self.read_bytes) from exc
                raise
            if not data:
                if watch.expired:
                    raise client.too_slow(self.method, self.url, self.read_bytes)
                if raw.length:  # the connection ended before the announced length
                    raise http.client.IncompleteRead(b"", raw.length)
                if decoder is not None and not decoder.finished():
                    raise HttpError(
                        f"{self.method}: the server's {self.encoding} answer ends in the "
                        "middle (cut off)",
                        url=self.url,
                        status=self.status,
                    )
                self._complete = True
                return
            self.wire_bytes += len(data)
            client._count(len(data))
            pieces: Iterator[bytes] | tuple[bytes, ...] = (data,)
            if decoder is not None:
                pieces = decoder.feed(data)
            try:
                for piece in pieces:
                    self.read_bytes += len(piece)
                    if self.read_bytes > limit:
                        what = "is still going" if decoder is None else "decodes to still more"
                        raise client.too_large(self.method, self.url, what, limit)
                    if self._log is not None and len(self._preview) < DEBUG_BODY:
                        self._preview += piece[: DEBUG_BODY - len(self._preview)]
                    yield piece
            except zlib.error as exc:
                raise HttpError(
                    f"{self.method}: the server's {self.encoding} answer is corrupt ({exc})",
                    url=self.url,
                    status=self.status,
                ) from None

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def response(self) -> Response:
        """The whole answer (for the requests whose answers are small)."""
        return Response(self.status, self.reason, self.headers, self.read(), self.url)

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else close it."""
        if self._closed:
            return
        self._closed = True
        _WATCHDOG.release(self._watch)
        if self._log is not None:
            self._log_end()
        try:
            self._raw.close()
            if self._complete and not self._raw.will_close:
                self.client._give_back(self._key, self._conn)
            else:
                self._conn.close()
        finally:
            self.client._slots.release()

    def _log_end(self) -> None:
        log = self._log
        assert log is not None
        note = ""
        if self.encoding and self.wire_bytes:
            note = f" (decoded from {self.wire_bytes} {self.encoding} bytes)"
        if not self._complete:
            note += ", not read to its end"
        log.body("<", bytes(self._preview), self.read_bytes, note)
        log.line(f"< done, {log.seconds()} in all")


@dataclass
class _Shared:
    """What a client and the clients rebased from it share."""

    #: servers (origin_of) that did not answer in this run -> why
    down: dict[str, str] = field(default_factory=dict)
    #: origins the credentials may be sent to
    trusted: set[Origin] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: bytes received over the wire (bodies), for benchmarks
    wire_bytes: int = 0


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that checks the server certificate's SHA-256 fingerprint right
    after the handshake, before a byte of the request is sent."""

    pinned: str = ""
    client: HttpClient | None = None

    def connect(self) -> None:
        super().connect()
        sock = self.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        import hmac

        got = fingerprint_of(der or b"").replace(":", "").lower()
        if der is None or not hmac.compare_digest(got, self.pinned):
            self.close()
            host = self._tunnel_host or self.host
            port = self._tunnel_port or self.port
            client = self.client
            key = client.config_key("verify_fingerprint") if client else "verify_fingerprint"
            raise ConnectionRefusedByPolicy(
                f"the server's certificate has the SHA-256 fingerprint "
                f"{fingerprint_of(der) if der else '(none)'}, not the one {key} pins; "
                "nothing was sent. If the server's certificate was replaced, check the new "
                "fingerprint with its administrator before you pin it",
                url=origin_url(("https", host, port or 443)) + "/",
            )


class HttpClient:
    """Requests against one server. Thread-safe; close() when done.

    ``name`` is the storage's name, for the config keys that error messages suggest.
    ``auth``: how to log in (else a PasswordAuth from ``username``/``password``).
    ``proxy``: a Proxy, None (no proxy) or ``"environment"``. ``fingerprint``: the
    SHA-256 of the server's certificate in lower-case hex, without colons (pinned: the CA
    and host name are then not checked)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: Authenticator | None = None,
        verify: bool | Path = True,
        timeout: float = 30.0,
        max_connections: int = 4,
        backoff: Backoff = Backoff(),
        name: str | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_request_time: float = DEFAULT_MAX_REQUEST_TIME,
        proxy: Proxy | None | str | ProxyChooser = "environment",
        client_cert: Path | None = None,
        client_key: Path | None = None,
        fingerprint: str | None = None,
        _shared: _Shared | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("not an http(s) URL", url=base_url)
        if auth is None and username is not None:
            auth = PasswordAuth(username, password or "")
        self._options = {
            "auth": auth,
            "verify": verify,
            "timeout": timeout,
            "max_connections": max_connections,
            "backoff": backoff,
            "name": name,
            "max_response_size": max_response_size,
            "max_record_size": max_record_size,
            "max_request_time": max_request_time,
            "client_cert": client_cert,
            "client_key": client_key,
            "fingerprint": fingerprint,
        }
        self.base_url = base_url
        self.timeout = timeout
        self.backoff = backoff
        self.max_connections = max(1, max_connections)
        self.name = name
        self.max_response_size = max_response_size
        #: used by the multiget reader: a larger record is reported, not read
        self.max_record_size = max_record_size
        self.max_request_time = max_request_time
        self.auth = auth
        self._proxies = proxy if isinstance(proxy, ProxyChooser) else ProxyChooser(proxy)
        self._client_cert = client_cert
        self._client_key = client_key
        self._fingerprint = fingerprint
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        if _shared is None:
            _shared = _Shared()
            _shared.trusted.add(origin_key(base_url))
        #: what this client shares with the clients rebased from it: the servers that did
        #: not answer in this run, the origins trusted with the credentials
        self._shared = _shared
        self._down = _shared.down
        #: requests sent (for benchmarks and tests)
        self.requests = 0

    def rebased(self, base_url: str, *, trust: bool = False) -> HttpClient:
        """A client for another base URL (found by discovery) with the same settings; it
        shares what this one knows of servers that did not answer, and of the origins
        trusted with the credentials. ``trust``: trust base_url's origin too."""
        client = HttpClient(
            base_url,
            **self._options,  # type: ignore[arg-type]
            proxy=self._proxies,  # type: ignore[arg-type]
            _shared=self._shared,
        )
        client._ssl = self._ssl
        if trust:
            self.trust(base_url)
        return client

    def trust(self, url: str) -> None:
        """Send the credentials to url's origin too (discovery: a home set or collection
        that an authenticated answer named there; only ``https://`` is ever trusted, but
        for the configured origin itself)."""
        key = origin_key(url)
        if key[0] == "https" or key in self._shared.trusted:
            with self._shared.lock:
                self._shared.trusted.add(key)

    def trusts(self, url: str) -> bool:
        """Are the credentials sent to url's origin?"""
        return origin_key(url) in self._shared.trusted

    @property
    def has_credentials(self) -> bool:
        return self.auth is not None

    @property
    def wire_bytes(self) -> int:
        """Bytes of answer bodies received over the wire by this client and the clients
        rebased from it (compressed ones as compressed: for benchmarks)."""
        return self._shared.wire_bytes

    def _count(self, size: int) -> None:
        with self._shared.lock:
            self._shared.wire_bytes += size

    def config_key(self, key: str) -> str:
        """The dotted config key of one of this client's settings, for messages."""
        return f"storages.{self.name}.{key}" if self.name else key

    # limits ----------------------------------------------------------------------------
    def too_large(
        self, method: str, url: str, what: str, limit: int | None = None
    ) -> ResponseTooLarge:
        if limit is not None and limit < self.max_response_size:
            return ResponseTooLarge(
                f"{method}: the answer {what}, more than {format_size(limit)}, the most "
                "pimsync reads whole of such an answer; stopped reading it",
                url=url,
            )
        size = format_size(self.max_response_size)
        return ResponseTooLarge(
            f"{method}: the answer {what}, more than max_response_size ({size}); "
            f"stopped reading it. To accept larger answers, raise "
            f"{self.config_key('max_response_size')}",
            url=url,
        )

    def too_slow(self, method: str, url: str, read: int) -> RequestTooSlow:
        got = f" ({format_size(read)} read)" if read else ""
        return RequestTooSlow(
            f"{method}: no complete answer within max_request_time "
            f"({_seconds(self.max_request_time)} s){got}; stopped. If the server is just "
            f"slow, raise {self.config_key('max_request_time')}",
            url=url,
        )

    def unreachable(self, url: str) -> str | None:
        """Why requests to url's server are not sent any more in this run (or None)."""
        return self._down.get(origin_of(url))

    def _mark_down(self, url: str, why: str) -> None:
        self._down.setdefault(origin_of(url), why)

    # connections -----------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if self._fingerprint is not None or self._verify is False:
                # pinned: the fingerprint is the check (as in vdirsyncer), not the CA nor
                # the host name; verify = false: no check at all
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
            if self._client_cert is not None:
                self._load_client_cert(ctx)
            self._ssl = ctx
        return self._ssl

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        cert, key = self._client_cert, self._client_key

        class Encrypted(Exception):
            pass

        def no_passphrase() -> bytes:  # never asked on the terminal
            raise Encrypted

        which = self.config_key("client_key" if key is not None else "client_cert")
        try:
            ctx.load_cert_chain(str(cert), str(key) if key is not None else None, no_passphrase)
        except Encrypted:
            raise ConnectionRefusedByPolicy(
                f"{which}: the key in {str(key or cert)!r} is protected by a passphrase, "
                "which pimsync does not ask for; give it a copy without one "
                "(openssl pkey -in KEY -out KEY.plain; chmod 600 KEY.plain)",
                url=self.base_url,
            ) from None
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            where = str(cert) if key is None else f"{str(cert)!r} and {str(key)!r}"
            raise ConnectionRefusedByPolicy(
                f"cannot use the client certificate {where} "
                f"({self.config_key('client_cert')}): {reason}; it must be a PEM file with "
                "the certificate (and the key, unless client_key names the key's file)",
                url=self.base_url,
            ) from None

    def _proxy(self, key: Origin, url: str) -> Proxy | None:
        try:
            return self._proxies.for_server(*key)
        except ProxyURLError as exc:
            raise ConnectionRefusedByPolicy(str(exc), url=url) from None

    def _connect(self, key: Origin) -> http.client.HTTPConnection:
        scheme, host, port = key
        proxy = self._proxy(key, origin_url(key))
        conn: http.client.HTTPConnection
        if scheme == "https":
            target_host, target_port = (proxy.host, proxy.port) if proxy else (host, port)
            if self._fingerprint is not None:
                conn = _PinnedHTTPSConnection(
                    target_host, target_port, timeout=self.timeout, context=self._context()
                )
                conn.pinned, conn.client = self._fingerprint, self
            else:
                conn = http.client.HTTPSConnection(
                    target_host, target_port, timeout=self.timeout, context=self._context()
                )
            if proxy is not None:
                tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
                conn.set_tunnel(host, port, headers=tunnel)
            return conn
        if proxy is not None:
            return http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.timeout)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _take(self, key: Origin) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key), False

    def _give_back(self, key: Origin, conn: http.client.HTTPConnection) -> None:
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
        whole: int | None = WHOLE_ANSWER,
    ) -> Response:
        """Send a request and return the response, whatever its status (except that 401
        raises AuthError). ``retry`` (default: safe methods and conditional writes) allows
        repeating it on connection errors, 429 and 503. The body is read whole, within
        ``max_request_time`` and ``whole`` bytes (a DAV answer that is not streamed is
        small: :data:`WHOLE_ANSWER`; None: up to ``max_response_size``, for a feed)."""

        def read(answer: StreamResponse) -> Response:
            if whole is not None:
                answer.limit = min(answer.limit, whole)
            return answer.response()

        return self.stream(
            method, href, body, headers, read, retry=retry, follow_redirects=follow_redirects
        )

    def stream(
        self,
        method: str,
        href: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        consume: Callable[[StreamResponse], T],
        *,
        retry: bool | None = None,
        follow_redirects: bool = False,
    ) -> T:
        """Send a request and return ``consume(answer)``, called while the connection is
        held: it reads the body with ``answer.chunks()`` (or ``answer.response()``) as it
        arrives. Afterwards the connection goes back to the pool if the body was read to
        its end, and is closed otherwise (a callback may stop early).

        The same rules as :meth:`request`: 429/503 and connection errors are retried
        (for requests that may be repeated) before ``consume`` sees anything; a connection
        error while ``consume`` reads starts the request again and calls ``consume`` anew
        on the new answer, so it must start from scratch each time (keep no state across
        calls). A 401 is answered (Digest, a new token) and the request sent again, at
        most :data:`MAX_AUTH_ROUNDS` times. Its result is returned as it is; its
        exceptions propagate."""
        hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"  # DAV request bodies
        if retry is None:
            retry = method in SAFE_METHODS or "If-Match" in hdrs or "If-None-Match" in hdrs
        url = self.url(href)
        redirects = 0
        attempt = timeouts = rounds = 0
        started = time.monotonic()
        while True:
            attempt += 1
            why = self.unreachable(url)
            if why is not None:
                raise ServerUnreachable(
                    f"skipped: {origin_of(url)} {why}", url=url, origin=origin_of(url)
                )
            pause: float | None = None
            failure: BaseException | None = None
            try:
                answer = self._send(method, url, body, hdrs)
            except RequestTooSlow:
                self._mark_down(url, self._slow_reason())
                raise
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
            if failure is None:
                try:
                    status = answer.status
                    if status in RETRY_STATUSES and retry and attempt < self.backoff.attempts:
                        wait = self.backoff.base * 2 ** (attempt - 1)
                        pause = _retry_after(answer.header("Retry-After"), wait)
                    elif status == 401:
                        self._challenged(method, url, answer, rounds)
                        rounds += 1
                        attempt -= 1  # not a failure: the same request, logged in
                        _drain(answer)
                    elif status == 407:
                        raise self._proxy_refused(method, url, answer)
                    elif (
                        follow_redirects
                        and status in (301, 302, 303, 307, 308)
                        and redirects < 5
                        and answer.header("Location")
                    ):
                        redirects += 1
                        target = urljoin(url, answer.header("Location") or "")
                        if urlsplit(target).scheme not in ("http", "https"):
                            raise HttpError(f"redirected to {target!r}", url=url, status=status)
                        url = target
                        attempt = 0
                        pause = 0.0
                    else:
                        return consume(answer)
                except RequestTooSlow:
                    self._mark_down(url, self._slow_reason())
                    raise
                except (OSError, http.client.HTTPException) as exc:
                    failure = exc  # the connection broke while the answer was read
                finally:
                    answer.close()
            if failure is not None:
                if isinstance(failure, TimeoutError):
                    timeouts += 1
                pause = self._retry_wait(method, url, failure, attempt, timeouts, retry, started)
            if pause:
                time.sleep(pause)

    def _challenged(self, method: str, url: str, answer: StreamResponse, rounds: int) -> None:
        """A 401: return to send the request again (logged in anew), else raise AuthError
        saying why not (never with a secret)."""
        from pimsync.storage.dav.reason import one_line

        start = f"{method}: 401 {one_line(answer.reason, 100)}"
        if self.auth is None:
            raise AuthError(
                f"{start}: the server asks for credentials, and none are configured for "
                "this storage (a caldav or carddav storage takes username with a password, "
                "or token_command)",
                url=url,
                status=401,
            )
        if answer.sent.scheme is None and not self.trusts(url):
            raise AuthError(
                f"{start}: the server asks for credentials; pimsync sends them only to the "
                "configured server, and to https:// hosts that server itself names in its "
                "answers (not to a host reached by a redirect, nor over http://). Set url "
                "to this server's URL if it is the one to log in to",
                url=url,
                status=401,
            )
        if rounds >= MAX_AUTH_ROUNDS:
            raise AuthError(
                f"{start}: the server refused the {self.auth.what} {rounds + 1} times",
                url=url,
                status=401,
            )
        try:
            self.auth.challenged(origin_key(url), answer.sent, parse_challenges(answer.challenges))
        except Refused as exc:
            via = ""
            proxy = self._proxy(origin_key(url), url) if origin_key(url)[0] == "http" else None
            if proxy is not None and proxy.authorization:
                via = (
                    f" (or the proxy {proxy.shown} refused the user name and password in its "
                    "URL: some proxies answer 401 for that)"
                )
            raise AuthError(f"{start}: {exc.message}{via}", url=url, status=401) from None

    def _proxy_refused(self, method: str, url: str, answer: StreamResponse) -> AuthError:
        proxy = self._proxy(origin_key(url), url)
        shown = proxy.shown if proxy else "the proxy"
        given = proxy is not None and proxy.authorization is not None
        hint = (
            "it refused the user name and password in the proxy URL"
            if given
            else "it asks for a user name and password: put them in the proxy URL "
            "(http://USER:PASSWORD@HOST:PORT)"
        )
        from pimsync.storage.dav.reason import one_line

        source = f" ({proxy.source})" if proxy else ""
        return AuthError(
            f"{method}: 407 {one_line(answer.reason, 100)} from the proxy {shown}{source}: {hint}",
            url=url,
            status=407,
        )

    def _slow_reason(self) -> str:
        return (
            f"did not answer in time earlier in this run (a request took over "
            f"max_request_time, {_seconds(self.max_request_time)} s)"
        )

    def _retry_wait(
        self,
        method: str,
        url: str,
        exc: BaseException,
        attempt: int,
        timeouts: int,
        retry: bool,
        started: float,
    ) -> float:
        """How long to wait before the next try after a connection error; raises HttpError
        (and remembers a server that does not answer) when there is no next try."""
        timed_out = isinstance(exc, TimeoutError)
        if (
            retry
            and attempt < self.backoff.attempts
            and not (timed_out and timeouts >= MAX_TIMEOUTS)
            # a certificate that does not verify will not verify on a second try, and a
            # TLS alert (a client certificate refused or missing) is the server's answer
            and not isinstance(exc, ssl.SSLCertVerificationError)
            and not (isinstance(exc, ssl.SSLError) and "ALERT" in str(exc.reason or ""))
        ):
            return self.backoff.base * 2 ** (attempt - 1)
        waited = _seconds(time.monotonic() - started)
        tries = f"tried {attempt} time{'s' if attempt > 1 else ''}"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        if timed_out:
            reason = f"no answer within {self.timeout:g} s; {tries}, {waited} s in all"
            self._mark_down(url, f"did not answer earlier in this run (waited {waited} s)")
        elif isinstance(exc, ConnectionRefusedError):
            reason = f"{reason} ({tries})"
            self._mark_down(url, f"refused the connection earlier in this run ({tries})")
        elif isinstance(exc, ssl.SSLError) and "ALERT" in str(exc.reason or ""):
            alert = str(exc.reason)
            if self._client_cert is None and ("CERTIFICATE" in alert or "HANDSHAKE" in alert):
                reason = (
                    f"{reason}: the server refused the TLS connection; it may ask for a client "
                    f"certificate (set {self.config_key('client_cert')})"
                )
            elif self._client_cert is not None:
                reason = (
                    f"{reason}: the server refused the TLS connection; check that it accepts "
                    f"the client certificate {str(self._client_cert)!r}"
                )
        raise HttpError(f"{method} failed: {reason}", url=url) from exc

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> StreamResponse:
        """Send one request and read the status and headers; the body is left for the
        caller, who must close() the answer (that releases the connection)."""
        parts = urlsplit(url)
        key = origin_key(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        send = dict(headers)
        sent = Sent(None)
        if self.auth is not None and key in self._shared.trusted:  # never another host
            sent = self.auth.header(key, method, target)
            if sent.header is not None:
                send["Authorization"] = sent.header
        proxy = self._proxy(key, url) if key[0] == "http" else None
        line = target
        if proxy is not None:  # plain http through a proxy: the absolute URL
            line = origin_url(key) + target
            if proxy.authorization:
                send["Proxy-Authorization"] = proxy.authorization
        log = _Log() if DEBUG is not None else None
        deadline = time.monotonic() + self.max_request_time
        self._slots.acquire()
        try:
            for fresh_try in (False, True):
                conn, reused = self._take(key) if not fresh_try else (self._connect(key), False)
                watch = _WATCHDOG.watch(conn, deadline)
                try:
                    self.requests += 1
                    if log is not None:
                        self._log_request(log, method, url, send, body, key)
                    if conn.sock is None:
                        try:
                            conn.connect()
                        except OSError as exc:
                            refused = _tunnel_refused(exc, self._proxy(key, url), url)
                            if refused is not None:
                                raise refused from None
                            raise
                    if watch.expired:
                        raise self.too_slow(method, url, 0)
                    conn.request(method, line, body=body, headers=send)
                    raw = conn.getresponse()
                    if watch.expired:  # (the headers ended because the socket was shut)
                        raise self.too_slow(method, url, 0)
                except (
                    http.client.RemoteDisconnected,
                    BrokenPipeError,
                    ConnectionResetError,
                ) as exc:
                    _WATCHDOG.release(watch)
                    conn.close()
                    if log is not None:
                        log.line(f"< no answer: {type(exc).__name__}, {log.seconds()}")
                    if watch.expired:
                        raise self.too_slow(method, url, 0) from exc
                    if reused and not fresh_try:
                        continue  # the server closed an idle connection: once more, fresh
                    raise
                except BaseException as exc:
                    _WATCHDOG.release(watch)
                    conn.close()
                    if log is not None:
                        log.line(f"< failed: {_failure(exc)}, {log.seconds()}")
                    if watch.expired and isinstance(
                        exc, OSError | http.client.HTTPException | ValueError
                    ):
                        raise self.too_slow(method, url, 0) from exc
                    raise
                if log is not None:
                    log.line(f"< {raw.status} {_shown(raw.reason.encode())}, {log.seconds()}")
                    log.headers("<", raw.getheaders())
                return StreamResponse(self, method, url, key, conn, raw, watch, sent, log)
        except BaseException:
            self._slots.release()
            raise
        raise AssertionError("unreachable")

    def _log_request(
        self,
        log: _Log,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        key: Origin,
    ) -> None:
        proxy = self._proxy(key, url)
        via = f" (through the proxy {proxy.shown})" if proxy is not None else ""
        log.line(f"> {method} {url}{via}")
        log.headers(">", list(headers.items()))
        data = body or b""
        log.body(">", data[:DEBUG_BODY], len(data))


def _failure(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, HttpError) else str(exc)
    return f"{type(exc).__name__}: {text}"[:300]


def _drain(answer: StreamResponse) -> None:
    """Read a small answer to its end (a 401's page), so that its connection is reused."""
    answer.limit = min(answer.limit, CHUNK)
    try:
        for _ in answer.chunks():
            pass
    except (HttpError, OSError, http.client.HTTPException, ValueError):
        pass


def _tunnel_refused(exc: OSError, proxy: Proxy | None, url: str) -> HttpError | None:
    """http.client's "Tunnel connection failed: 407 ..." as a clear error (not retried)."""
    text = str(exc)
    if proxy is None or not text.startswith("Tunnel connection failed"):
        return None
    status = text.split(":", 1)[1].strip()
    hint = ""
    if status.startswith(("407", "401")):
        hint = (
            ": it refused the user name and password in the proxy URL"
            if proxy.authorization
            else ": it asks for a user name and password: put them in the proxy URL "
            "(http://USER:PASSWORD@HOST:PORT)"
        )
    return ConnectionRefusedByPolicy(
        f"the proxy {proxy.shown} ({proxy.source}) refused to connect to "
        f"{origin_of(url)} ({status[:100]}){hint}",
        url=url,
    )


def check_status(response: Response, method: str, ok: tuple[int, ...]) -> Response:
    """Raise HttpError naming the URL, the status and the server's reason (one line, at
    most 300 characters: see :mod:`pimsync.storage.dav.reason`) unless the status is in
    ``ok``."""
    if response.status in ok:
        return response
    from pimsync.storage.dav.reason import one_line, server_reason

    content_type = response.header("Content-Type")
    kind = (content_type or "").split(";")[0].strip().lower()
    reason = server_reason(response.body, content_type)
    if reason.lower().rstrip(".") == response.reason.lower():
        reason = ""  # ("Bad Request" again)
    html = kind in ("text/html", "application/xhtml+xml")
    if html and 200 <= response.status < 300:
        said = f": {reason!r}" if reason else ""
        detail = f" (the server sent an HTML page, not a DAV answer{said})"
    elif html:
        detail = f": {reason} (an HTML page)" if reason else " (an HTML page)"
    else:
        detail = f": {reason}" if reason else ""
    cls = AuthError if response.status == 403 else HttpError
    raise cls(
        f"{method}: {response.status} {one_line(response.reason, 100)}{detail}",
        url=response.url,
        status=response.status,
    )
