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

Secrets: the Authorization header is built once and never logged; error messages carry
the method, URL and status only.
"""

from __future__ import annotations

import base64
import email.utils
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

from pimsync import __version__
from pimsync.errors import StorageError, Unreachable
from pimsync.storage import format_size

USER_AGENT = f"pimsync/{__version__}"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
DEFAULT_MAX_RESPONSE_SIZE = 64 << 20  # bytes of one answer
DEFAULT_MAX_RECORD_SIZE = 32 << 20  # bytes of one record in a multiget
DEFAULT_MAX_REQUEST_TIME = 600.0  # seconds one request may take in all
CHUNK = 1 << 16  # what one read asks for
MAX_TIMEOUTS = 2  # a request that timed out is tried once more, not again

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


class StreamResponse:
    """An answer whose body has not been read yet; the client holds its connection until
    :meth:`close` (done by :meth:`HttpClient.stream` after the callback returned).

    :meth:`chunks` yields the body as it arrives, checked against the client's limits;
    :meth:`response` reads it whole (within the same limits)."""

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        key: tuple[str, str, int | None],
        conn: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
        watch: _Watch,
    ) -> None:
        self.client, self.method, self.url = client, method, url
        self.status = raw.status
        self.reason = raw.reason
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in raw.getheaders()}
        self._key, self._conn, self._raw, self._watch = key, conn, raw, watch
        self.read_bytes = 0
        self._complete = False
        self._closed = False
        #: bytes this answer may have (lowered for answers read whole, see ``request``)
        self.limit = client.max_response_size

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def chunks(self) -> Iterator[bytes]:
        client, raw, watch = self.client, self._raw, self._watch
        limit = self.limit
        if raw.length is not None and raw.length > limit:
            raise client.too_large(
                self.method, self.url, f"announces {format_size(raw.length)}", limit
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
                self._complete = True
                return
            self.read_bytes += len(data)
            if self.read_bytes > limit:
                raise client.too_large(self.method, self.url, "is still going", limit)
            yield data

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
        try:
            self._raw.close()
            if self._complete and not self._raw.will_close:
                self.client._give_back(self._key, self._conn)
            else:
                self._conn.close()
        finally:
            self.client._slots.release()


class HttpClient:
    """Requests against one server. Thread-safe; close() when done.

    ``name`` is the storage's name, for the config keys that error messages suggest."""

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
        name: str | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_request_time: float = DEFAULT_MAX_REQUEST_TIME,
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
            "name": name,
            "max_response_size": max_response_size,
            "max_record_size": max_record_size,
            "max_request_time": max_request_time,
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
        #: servers (origin_of) that did not answer in this run -> why; shared with the
        #: clients rebased from this one
        self._down: dict[str, str] = {}
        #: requests sent (for benchmarks and tests)
        self.requests = 0

    def rebased(self, base_url: str) -> HttpClient:
        """A client for another base URL (found by discovery) with the same settings; it
        shares what this one knows of servers that did not answer."""
        client = HttpClient(base_url, **self._options)  # type: ignore[arg-type]
        client._down = self._down
        return client

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
        calls). Its result is returned as it is; its exceptions propagate."""
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"  # DAV request bodies
        if retry is None:
            retry = method in SAFE_METHODS or "If-Match" in hdrs or "If-None-Match" in hdrs
        url = self.url(href)
        redirects = 0
        attempt = timeouts = 0
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
                        raise AuthError(
                            f"{method}: 401 {answer.reason}: the server refused the username "
                            "or password",
                            url=url,
                            status=status,
                        )
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
            # a certificate that does not verify will not verify on a second try
            and not isinstance(exc, ssl.SSLCertVerificationError)
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
        raise HttpError(f"{method} failed: {reason}", url=url) from exc

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> StreamResponse:
        """Send one request and read the status and headers; the body is left for the
        caller, who must close() the answer (that releases the connection)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        send = dict(headers)
        if self._auth and key == self._origin:
            send["Authorization"] = self._auth  # never sent to another host
        deadline = time.monotonic() + self.max_request_time
        self._slots.acquire()
        try:
            for fresh_try in (False, True):
                conn, reused = self._take(key) if not fresh_try else (self._connect(key), False)
                watch = _WATCHDOG.watch(conn, deadline)
                try:
                    self.requests += 1
                    if conn.sock is None:
                        conn.connect()
                    if watch.expired:
                        raise self.too_slow(method, url, 0)
                    conn.request(method, target, body=body, headers=send)
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
                    if watch.expired:
                        raise self.too_slow(method, url, 0) from exc
                    if reused and not fresh_try:
                        continue  # the server closed an idle connection: once more, fresh
                    raise
                except BaseException as exc:
                    _WATCHDOG.release(watch)
                    conn.close()
                    if watch.expired and isinstance(
                        exc, OSError | http.client.HTTPException | ValueError
                    ):
                        raise self.too_slow(method, url, 0) from exc
                    raise
                return StreamResponse(self, method, url, key, conn, raw, watch)
        except BaseException:
            self._slots.release()
            raise
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
