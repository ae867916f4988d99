"""A scriptable HTTP/1.1 reverse proxy for fault-injection tests.

``FaultProxy(upstream_url)`` listens on 127.0.0.1 (a free port, never another address) and
forwards every request to the upstream server unchanged: method, path, all headers
(Authorization, If-Match, If-None-Match, Depth, Content-Type, Host...) and body. It answers
with the upstream status, reason, headers (ETag included) and body. Hop-by-hop headers
(Connection, Keep-Alive, Transfer-Encoding...) are not forwarded; a chunked body is
de-chunked and sent with a Content-Length. ``Accept-Encoding`` is not forwarded either, so
that the upstream answers uncompressed and rules can read and rewrite what it says.

A test scripts faults per request with rules, tried in the order they were added; the first
rule that matches (method, path substring, request-body substring) and fires (``times``
left, ``probability`` drawn from a seeded ``random.Random``) decides:

* ``drop()``: close the connection without answering (``after=True``: forward first, so the
  server did the work and only the answer is lost);
* ``respond(status, headers, body)``: answer this instead of forwarding (``after=True``:
  forward first, then answer this);
* ``delay(seconds)``: wait, then forward (to go past a client's timeout; a long delay is
  a server that accepts the request and never answers);
* ``stream(status, headers, pieces)``: answer with a body made as it is sent, never held
  whole: ``pieces(request)`` yields bytes (it may go on for ever), sent with
  ``length=`` as Content-Length, or chunked (``chunked=True``), or until the connection
  closes; ``pace=`` seconds between pieces (a trickle). With ``raw=True`` the pieces are
  written to the socket as they are, status line and headers included (to trickle those);
* ``rewrite(func)``: forward, then answer ``func(request, status, headers, body)`` (a
  ``(status, headers, body)`` tuple; ``request`` is the ``Seen`` record of the request);
  with ``forward=False`` the request is not forwarded and ``func`` gets ``(request, 0,
  [], b"")``.

Matching: ``method=``, ``path=`` (substring of the request target), ``contains=``
(substring of the request body) and ``when=`` (a predicate on ``(method, path, body)``).

No rule, or ``clear()``: pass through. ``counts`` counts the requests by method; ``log``
keeps one ``Seen`` per request (method, path, headers, body, what the proxy did).

Use as a context manager (``with FaultProxy(server.url) as proxy: ... proxy.url``);
``tls=(certfile, keyfile)`` serves HTTPS (the upstream is still plain HTTP).
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOST = "127.0.0.1"
UPSTREAM_TIMEOUT = 30.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

Headers = Sequence[tuple[str, str]]
RewriteFunc = Callable[
    ["Seen", int, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], bytes]
]
Predicate = Callable[[str, str, bytes], bool]


@dataclass
class Rule:
    action: str  # "drop" | "respond" | "delay" | "rewrite" | "pass"
    method: str | None = None
    path: str | None = None  # substring of the request target
    contains: bytes | None = None  # substring of the request body
    when: Predicate | None = None  # (method, path, body) -> does the rule apply?
    times: int | None = None  # None: forever
    probability: float = 1.0
    after: bool = False  # drop/respond: forward the request first
    forward: bool = True  # rewrite: forward the request (False: func makes the answer)
    status: int = 500
    headers: Headers = ()
    payload: bytes = b""
    seconds: float = 0.0
    func: RewriteFunc | None = None
    pieces: Callable[[Seen], Iterable[bytes]] | None = None  # stream: the body, as sent
    length: int | None = None  # stream: the Content-Length to announce
    chunked: bool = False  # stream: Transfer-Encoding chunked
    pace: float = 0.0  # stream: seconds between pieces
    raw: bool = False  # stream: pieces are the whole answer, status line and headers too
    fired: int = 0

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.path is not None and self.path not in path:
            return False
        if self.contains is not None and self.contains not in body:
            return False
        if self.when is not None and not self.when(method, path, body):
            return False
        return self.times is None or self.fired < self.times


@dataclass
class Seen:
    """One request as the proxy saw it, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    action: str = "pass"  # the rule's action ("drop-after" for after=True), or "pass"
    status: int | None = None  # what the client got (None: dropped or no answer)
    extra: dict[str, object] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__((HOST, 0), _Handler)

    def get_request(self):  # noqa: ANN201 - (socket, address)
        sock, addr = super().get_request()
        self.proxy._track(sock)
        return sock, addr

    def finish_request(self, request, client_address) -> None:  # noqa: ANN001
        ctx = self.proxy._tls
        if ctx is not None:  # the TLS handshake runs in the connection's own thread
            request.settimeout(10)
            try:
                tls = ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            tls.settimeout(None)
            self.proxy._track(tls)
            try:
                super().finish_request(tls, client_address)
            finally:
                self.proxy._untrack(tls)
                tls.close()
            return
        super().finish_request(request, client_address)

    def shutdown_request(self, request) -> None:  # noqa: ANN001
        self.proxy._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that went away is part of the game


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def __getattr__(self, name: str):  # noqa: ANN204 - every method goes to _serve
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    # -- reading ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        proxy = self.server.proxy
        method = self.command
        body = self._read_body()
        seen = Seen(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        rule = proxy._pick(method, self.path, body)
        seen.action = "pass" if rule is None else rule.action + ("-after" if rule.after else "")
        proxy._record(seen)
        try:
            if rule is None or rule.action == "pass":
                self._answer(seen, *self._forward(body))
            elif rule.action == "drop":
                if rule.after:
                    self._forward(body)
                self._drop()
            elif rule.action == "respond":
                if rule.after:
                    self._forward(body)
                self._answer(seen, rule.status, "", list(rule.headers), rule.payload)
            elif rule.action == "delay":
                if proxy._stopping.wait(rule.seconds):
                    self._drop()
                    return
                self._answer(seen, *self._forward(body))
            elif rule.action == "stream":
                self._stream(seen, rule)
            elif rule.action == "rewrite":
                assert rule.func is not None
                if rule.forward:
                    status, _reason, headers, data = self._forward(body)
                else:
                    status, headers, data = 0, [], b""
                status, headers, data = rule.func(seen, status, headers, data)
                self._answer(seen, status, "", headers, data)
            else:  # pragma: no cover - a typo in a test
                raise ValueError(rule.action)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        conn = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT
        )
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                if name.lower() == "accept-encoding":
                    continue  # plain answers from upstream: rules read and rewrite them
                conn.putheader(name, value)
            if body or self.headers.get("Content-Length") is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, list(resp.getheaders()), data
        except (OSError, http.client.HTTPException) as exc:
            text = f"fault proxy: upstream failed: {exc}".encode()
            return 502, "Bad Gateway", [("Content-Type", "text/plain")], text
        finally:
            conn.close()

    def _answer(
        self, seen: Seen, status: int, reason: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        seen.status = status
        self.send_response_only(status, reason or None)
        upstream_length = None
        for name, value in headers:
            low = name.lower()
            if low == "content-length":
                upstream_length = value
                continue
            if low in HOP_BY_HOP:
                continue
            self.send_header(name, value)
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self.command == "HEAD" and upstream_length is not None:
            self.send_header("Content-Length", upstream_length)
        elif not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(body)
        self.wfile.flush()

    def _stream(self, seen: Seen, rule: Rule) -> None:
        assert rule.pieces is not None
        stopping = self.server.proxy._stopping
        seen.status = rule.status
        if not rule.raw:
            self.send_response_only(rule.status)
            for name, value in rule.headers:
                self.send_header(name, value)
            if rule.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif rule.length is not None:
                self.send_header("Content-Length", str(rule.length))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
        sent = 0
        complete = False
        for piece in rule.pieces(seen):
            if stopping.is_set():
                break
            if rule.chunked and not rule.raw:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if piece else b"")
            else:
                self.wfile.write(piece)
            self.wfile.flush()
            sent += len(piece)
            if rule.pace and stopping.wait(rule.pace):
                break
        else:
            complete = True
            if rule.chunked and not rule.raw:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        seen.extra["sent"] = sent
        framed = rule.chunked or (rule.length is not None and sent == rule.length)
        if rule.raw or not complete or not framed:
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FaultProxy:
    """See the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        tls: tuple[Path | str, Path | str] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.random = random.Random(seed)
        self.rules: list[Rule] = []
        self.log: list[Seen] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self._tls = ctx
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{HOST}:{self.port}/"

    def start(self) -> FaultProxy:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            socks, self._sockets = list(self._sockets), set()
        for sock in socks:  # end kept-alive connections so their threads finish
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def drop(self, *, after: bool = False, **match: object) -> Rule:
        return self.add(Rule("drop", after=after, **match))  # type: ignore[arg-type]

    def respond(
        self,
        status: int,
        headers: Mapping[str, str] | Headers = (),
        body: bytes | str = b"",
        *,
        after: bool = False,
        **match: object,
    ) -> Rule:
        hdrs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        data = body.encode() if isinstance(body, str) else body
        return self.add(
            Rule("respond", status=status, headers=hdrs, payload=data, after=after, **match)  # type: ignore[arg-type]
        )

    def delay(self, seconds: float, **match: object) -> Rule:
        return self.add(Rule("delay", seconds=seconds, **match))  # type: ignore[arg-type]

    def stream(
        self,
        status: int,
        headers: Mapping[str, str] | Headers,
        pieces: Callable[[Seen], Iterable[bytes]],
        *,
        length: int | None = None,
        chunked: bool = False,
        pace: float = 0.0,
        raw: bool = False,
        **match: object,
    ) -> Rule:
        hdrs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        return self.add(
            Rule(
                "stream",
                status=status,
                headers=hdrs,
                pieces=pieces,
                length=length,
                chunked=chunked,
                pace=pace,
                raw=raw,
                **match,  # type: ignore[arg-type]
            )
        )

    def rewrite(self, func: RewriteFunc, *, forward: bool = True, **match: object) -> Rule:
        return self.add(Rule("rewrite", func=func, forward=forward, **match))  # type: ignore[arg-type]

    def clear(self) -> None:
        """Back to pure pass-through (the log and counts are kept)."""
        with self._lock:
            self.rules.clear()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()

    def seen(self, method: str | None = None, action: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self.log
                if (method is None or s.method == method) and (action is None or s.action == action)
            ]

    # -- used by the handler ---------------------------------------------------------------
    def _pick(self, method: str, path: str, body: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path, body):
                    continue
                if rule.probability < 1.0 and self.random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)
            self.counts[seen.method] += 1

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
