"""Compressed answers: pimsync asks for gzip, Radicale sends it, and what is decoded is
bounded by the same limits as a plain answer (a gzip bomb stops at ``max_response_size``
after reading a few hundred KiB, with little memory)."""

from __future__ import annotations

import gzip
import http.server
import random
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import pytest

from pimsync.storage.dav import http as dav_http
from pimsync.storage.dav.collection import DavCollection
from pimsync.storage.dav.http import HttpClient, HttpError, ResponseTooLarge
from tests.conftest import make_event

MIB = 1 << 20


def test_radicale_answers_gzipped_and_the_records_are_read_decoded(
    radicale, dav_collection, monkeypatch
):
    path = dav_collection(radicale, "ics")
    files = {f"g{i}.ics": make_event(f"g{i}", f"gzip event {i}") for i in range(300)}
    radicale.seed(path.strip("/").split("/")[-1], "ics", files)
    lines: list[str] = []
    monkeypatch.setattr(dav_http, "DEBUG", lines.append)
    client = HttpClient(radicale.url, username="alice", password="x")
    col = DavCollection(client, path, "c", "ics")
    listing = col.list(None)
    assert len(listing.items) == 300
    got = list(col.get(list(listing.items)))
    assert sorted(f.record.ident for f in got) == sorted(f"g{i}" for i in range(300))
    assert any("Accept-Encoding: gzip, deflate" in line for line in lines)
    assert any("Content-Encoding: gzip" in line for line in lines), "Radicale did not gzip"
    import re

    sizes = [
        (int(m.group(1)), int(m.group(2)))
        for m in (re.search(r"body: (\d+) bytes \(decoded from (\d+) gzip bytes", x) for x in lines)
        if m
    ]
    assert len(sizes) == 2  # the listing and the multiget, both gzipped
    decoded, wire = (sum(s[i] for s in sizes) for i in (0, 1))
    assert wire == client.wire_bytes and wire < decoded / 4, sizes


class Hostile:
    """A one-route server: every request gets ``answer(handler)``'s status, headers and
    body pieces (sent as they are made, chunked unless a Content-Length is given)."""

    def __init__(self, answer: Callable[[], tuple[int, dict[str, str], Iterator[bytes]]]):
        self.sent = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, headers, pieces = answer()
                self.send_response(status)
                chunked = "Content-Length" not in headers
                for k, v in headers.items():
                    self.send_header(k, v)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for piece in pieces:
                        outer.sent += len(piece)
                        if chunked:
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        else:
                            self.wfile.write(piece)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_REPORT = do_PROPFIND = handle_one  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def bomb(total: int, unit: bytes = b"\0" * MIB) -> Iterator[bytes]:
    """A gzip stream of ``total`` bytes of ``unit``, compressed as it is sent."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for _ in range(total // len(unit)):
        out = z.compress(unit)
        if out:
            yield out
    yield z.flush()


@pytest.fixture
def hostile():
    made: list[Hostile] = []

    def make(answer):
        server = Hostile(answer)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def test_a_gzip_bomb_stops_at_max_response_size(hostile):
    server = hostile(lambda: (200, {"Content-Encoding": "gzip"}, bomb(4096 * MIB)))
    client = HttpClient(server.url, max_response_size=8 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match=r"decodes to still more.*max_response_size"):
            client.request("GET", "/feed.ics", whole=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.wire_bytes < MIB  # 4 GiB of zeros: about 4 MiB of gzip, read in part
    assert peak < 24 * MIB, peak  # the 8 MiB read whole, in pieces of at most 64 KiB


def test_a_gzip_bomb_listing_stops_at_the_limit_while_it_is_parsed(hostile):
    head = b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">'
    entry = (
        b'<d:response><d:href>/c/a.ics</d:href><d:propstat><d:prop><d:getetag>"x"'
        b"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )
    block = entry * (MIB // len(entry))

    def pieces() -> Iterator[bytes]:
        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        yield z.compress(head)
        for _ in range(2048):  # 2 GiB decoded
            out = z.compress(block)
            if out:
                yield out

    server = hostile(lambda: (207, {"Content-Encoding": "gzip"}, pieces()))
    client = HttpClient(server.url, max_response_size=16 * MIB)
    with pytest.raises(ResponseTooLarge, match="max_response_size"):
        DavCollection(client, "/c/", "c", "ics").list(None)
    assert client.wire_bytes < 4 * MIB


@pytest.mark.parametrize("kind", ["deflate", "raw deflate", "gzip, two members"])
def test_deflate_and_multi_member_gzip_are_decoded(hostile, kind):
    data = b"BEGIN:VCALENDAR\r\n" * 5000
    if kind == "deflate":
        body, encoding = zlib.compress(data), "deflate"
    elif kind == "raw deflate":
        z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body, encoding = z.compress(data) + z.flush(), "deflate"
    else:
        half = len(data) // 2
        body, encoding = gzip.compress(data[:half]) + gzip.compress(data[half:]), "gzip"
    server = hostile(lambda: (200, {"Content-Encoding": encoding}, iter([body])))
    assert HttpClient(server.url).request("GET", "/", whole=None).body == data


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all" * 10, "is corrupt"),
        ("gzip", gzip.compress(random.Random(1).randbytes(100000))[:5000], "ends in the middle"),
        ("br", b"\x0b\x02\x80hello", "Content-Encoding 'br', which pimsync did not ask for"),
    ],
)
def test_a_broken_or_unasked_encoding_is_an_error(hostile, encoding, body, message):
    server = hostile(lambda: (200, {"Content-Encoding": encoding}, iter([body])))
    with pytest.raises(HttpError, match=message):
        HttpClient(server.url).request("GET", "/", whole=None)


def test_the_debug_log_changes_no_limit(hostile, monkeypatch):
    monkeypatch.setattr(dav_http, "DEBUG", lambda line: None)
    server = hostile(lambda: (200, {"Content-Encoding": "gzip"}, bomb(256 * MIB)))
    client = HttpClient(server.url, max_response_size=2 * MIB)
    with pytest.raises(ResponseTooLarge):
        client.request("GET", "/", whole=None)
