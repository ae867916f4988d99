"""What a server may send is bounded: the size of an answer and of a record, the time one
request takes, the wait for a server that never answers, and what a listing or a
discovery may make pimsync believe (a member without an etag is not a deletion; two server
collections never silently share one local collection).

End to end through ``tests.faultproxy.FaultProxy`` in front of a real Radicale or Xandikos
(the helpers of ``tests/test_dav_faults.py``), or against small hostile servers on
127.0.0.1. Memory is measured as the peak RSS of ``python -m pimsync`` run as a child
process (``os.wait4``), under an address-space limit so that a regression fails fast
instead of filling the machine.
"""

from __future__ import annotations

import http.server
import itertools
import os
import socket
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pimsync.cli import main
from tests import test_dav_faults as faults
from tests.conftest import make_event
from tests.test_dav_faults import CALDAV, DAV, PLAIN, snapshot, synced_env, writes

# the fixtures of the fault tests, by name: a vdir and a caldav storage behind a proxy
env, proxy_for, fast_backoff = faults.env, faults.proxy_for, faults.fast_backoff

XML = {"Content-Type": "application/xml; charset=utf-8"}
GIB = 1 << 30
MIB = 1 << 20
OK = "<d:status>HTTP/1.1 200 OK</d:status>"
HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">'
#: the child's address space: far more than pimsync needs, far less than a 2 GiB read
ADDRESS_SPACE = int(1.5 * GIB)


# --- running the real CLI as a child --------------------------------------------------------


@dataclass
class Child:
    rc: int | None  # None: killed after the time limit
    out: str
    err: str
    peak_mb: float  # peak RSS of the child
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


# A small parent for the pimsync child: its peak RSS (RUSAGE_CHILDREN) is then pimsync's own,
# not that of the test process it was forked from. Both run under an address-space limit.
_MEASURED = (
    "import os, resource, subprocess, sys\n"
    "limit, report = int(sys.argv[1]), sys.argv[2]\n"
    "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "rc = subprocess.call([sys.executable, '-m', 'pimsync', *sys.argv[3:]])\n"
    "with open(report, 'w') as f:\n"
    "    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


def run_cli(cfg: Path, *args: str, limit: float = 120, address_space: int = ADDRESS_SPACE) -> Child:
    """``python -m pimsync --config CFG run ARGS`` in a child (under an address-space
    limit); its exit status, output, peak RSS and wall time. Killed after ``limit`` s."""
    import signal
    import subprocess

    report = cfg.parent / f"rss-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-c", _MEASURED, str(address_space), str(report)]
    command += ["--config", str(cfg), "run", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cfg.parent,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=limit)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.monotonic() - started
    peak = int(report.read_text()) / 1024 if report.exists() else float("nan")
    return Child(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), peak, seconds)


def listing_block(href: str, size: int = 1 << 16) -> bytes:
    """About SIZE bytes of listing responses, all for the same member (so that what the
    reader keeps does not grow with the answer: only the reading could)."""
    one = (
        f'<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"spam"</d:getetag>'
        f"</d:prop>{OK}</d:propstat></d:response>"
    ).encode()
    return one * (size // len(one) + 1)


def listing_stream(href: str, total: int | None) -> Callable[[object], Iterator[bytes]]:
    """A never-ending (or TOTAL bytes long) listing, made as it is sent."""

    def pieces(_seen: object) -> Iterator[bytes]:
        block = listing_block(href)
        sent = len(HEAD)
        yield HEAD
        while total is None or sent < total:
            piece = block if total is None else block[: total - sent]
            sent += len(piece)
            yield piece

    return pieces


# --- 1. bounded answers: size ------------------------------------------------------------


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "until-close"])
def test_a_2_gib_listing_is_not_read_whole(env, announced):
    """A listing of 2 GiB. Announced by its Content-Length, it is refused at once (with the
    defaults); sent without a length (until the connection closes), it is parsed as it
    arrives up to max_response_size (16 MiB here: parsing 64 MiB takes some seconds),
    then dropped, in constant memory."""
    limit = "64 MiB" if announced else "16 MiB"
    e, proxy = synced_env(
        env, 2, storage_extra="" if announced else f'max_response_size = "{limit}"'
    )
    before = snapshot(e.tmp / "pc")
    href = f"{e.col_path}ev-0.ics"
    length = 2 * GIB if announced else None
    proxy.stream(207, XML, listing_stream(href, 2 * GIB), length=length, method="REPORT")
    run = run_cli(e.cfg, limit=180)
    assert run.rc == 1, run.text
    assert "Traceback" not in run.text and "MemoryError" not in run.text, run.err
    assert f"max_response_size ({limit})" in run.err, run.err
    what = "announces 2 GiB" if announced else "is still going"
    assert f"REPORT: the answer {what}, more than max_response_size" in run.err, run.err
    assert "storages.server.max_response_size" in run.err and e.col_url in run.err, run.err
    assert run.peak_mb < 150, run.peak_mb
    assert run.seconds < 120, run.seconds
    assert len(proxy.seen("REPORT")) == 1  # not repeated
    assert snapshot(e.tmp / "pc") == before
    assert writes(proxy) == []


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_an_endless_chunked_listing_stops_at_max_response_size(env):
    e, proxy = synced_env(env, 2, storage_extra='max_response_size = "8 MiB"')
    before = snapshot(e.tmp / "pc")
    href = f"{e.col_path}ev-0.ics"
    proxy.stream(207, XML, listing_stream(href, None), chunked=True, method="REPORT")
    run = run_cli(e.cfg, limit=60)
    assert run.rc == 1, run.text
    assert "REPORT" in run.err and e.col_url in run.err, run.err
    assert "max_response_size (8 MiB)" in run.err, run.err
    assert "storages.server.max_response_size" in run.err, run.err
    assert run.peak_mb < 150, run.peak_mb
    assert run.seconds < 30, run.seconds
    sent = proxy.seen("REPORT")[0].extra.get("sent", 0)
    assert sent < 64 * MIB, sent  # the reader stopped, and closed the connection
    assert snapshot(e.tmp / "pc") == before


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_a_slow_trickle_is_cut_at_max_request_time(env):
    """One byte a second never trips the per-read timeout; max_request_time ends it."""
    e, proxy = synced_env(env, 2, storage_extra="timeout = 5\nmax_request_time = 3")
    before = snapshot(e.tmp / "pc")
    body = HEAD + listing_block(f"{e.col_path}ev-0.ics", 1000)
    proxy.stream(
        207,
        XML,
        lambda _seen: (body[i : i + 1] for i in range(len(body))),
        length=len(body),
        pace=1.0,
        method="REPORT",
    )
    run = run_cli(e.cfg, limit=40)
    assert run.rc == 1, run.text
    assert "max_request_time (3 s)" in run.err and e.col_url in run.err, run.err
    assert "storages.server.max_request_time" in run.err, run.err
    assert run.seconds < 15, run.seconds
    assert len(proxy.seen("REPORT")) == 1
    assert snapshot(e.tmp / "pc") == before


# --- 2. records larger than max_record_size ----------------------------------------------


def _big_event(uid: str, summary: str, size: int) -> str:
    line = "X-PAD:" + "x" * 66 + "\r\n"
    return make_event(uid, summary, extra=line * (size // len(line))).decode()


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_a_40_mb_record_is_reported_by_href_and_the_others_are_synced(env):
    """Defaults (max_record_size 32 MiB): one record of 40 MB in a multiget with others.
    It is named, not read and left alone; the others of the batch are synced."""
    e, proxy = synced_env(env, 3)
    records = e.server_records()
    hrefs = sorted(records)
    big = hrefs[1]  # ev-1, known on both sides
    assert e.server.put(big, make_event("ev-1", "edited on the server")).status in (200, 204)
    for uid in ("ev-3", "ev-4"):
        assert e.server.put(f"{e.col_path}{uid}.ics", make_event(uid, "new")).status == 201
    local_before = (e.dir / "ev-1.ics").read_bytes()
    asked: list[list[str]] = []

    def multiget(seen, status, headers, body):
        wanted = [h.text or "" for h in ET.fromstring(seen.body).iter(f"{{{DAV}}}href")]
        asked.append(wanted)
        if status != 207 or big not in wanted:
            return status, headers, body
        root = ET.fromstring(body)
        for resp in root.iter(f"{{{DAV}}}response"):
            if resp.findtext(f"{{{DAV}}}href") == big:
                data = resp.find(f".//{{{CALDAV}}}calendar-data")
                data.text = _big_event("ev-1", "edited on the server", 40_000_000)
        return 207, headers, ET.tostring(root)

    proxy.rewrite(multiget, method="REPORT", contains=b"calendar-multiget")
    run = e.run()
    assert run.rc == 1, run.text
    line = next(x for x in run.err.splitlines() if "max_record_size" in x)
    assert f"{e.url.rstrip('/')}{big}" in line and "larger than max_record_size (32 MiB)" in line
    assert "storages.server.max_record_size" in line
    assert sorted(e.local_uids()) == ["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"]
    assert (e.dir / "ev-1.ics").read_bytes() == local_before  # left alone
    assert len(e.server_records()) == 5  # nothing deleted on the server either
    assert writes(proxy) == []
    assert big in asked[0] and all(big not in a for a in asked[1:]), asked

    proxy.clear()
    again = e.run()
    assert again.rc == 0, again.text
    assert b"edited on the server" in (e.dir / "ev-1.ics").read_bytes()


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_a_multiget_answer_over_max_response_size_is_asked_again_in_halves(env):
    e, proxy = synced_env(env, 0, storage_extra='max_response_size = "1 MiB"')
    for i in range(6):  # 6 x 300 KB: one multiget answer of about 1.8 MB
        uid = f"mid-{i}"
        body = _big_event(uid, f"medium {i}", 300_000).encode()
        assert e.server.put(f"{e.col_path}{uid}.ics", body).status == 201
    huge = _big_event("huge", "too large for one answer", 1_500_000).encode()
    assert e.server.put(f"{e.col_path}huge.ics", huge).status == 201
    run = e.run()
    assert run.rc == 1, run.text
    errors = [x for x in run.err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and f"{e.col_url}huge.ics" in errors[0], run.err
    assert "larger than max_response_size (1 MiB)" in errors[0], run.err
    assert e.local_uids() == [f"mid-{i}" for i in range(6)]
    multigets = [s for s in proxy.seen("REPORT") if b"calendar-multiget" in s.body]
    assert len(multigets) > 1


# --- 3. listed but unreadable is never a deletion ------------------------------------------


_TOKEN_ERROR = (
    '<?xml version="1.0" encoding="utf-8"?>\n<d:error xmlns:d="DAV:"><d:valid-sync-token/>'
    "</d:error>"
)


def _member_without_etag(href: str, how: str) -> Callable:
    """Rewrite a listing so that the response for the member HREF has no usable etag."""
    broken = {
        "no getetag": OK,
        "a 500 status": "<d:status>HTTP/1.1 500 Internal Server Error</d:status>",
        "a failed propstat": "<d:propstat><d:prop><d:getetag/></d:prop>"
        "<d:status>HTTP/1.1 403 Forbidden</d:status></d:propstat>",
    }[how]

    def rewrite(seen, status, headers, body):
        if status != 207:
            return status, headers, body
        parts = []
        for child in ET.fromstring(body):
            text = child.findtext(f"{{{DAV}}}href") or ""
            if child.tag == f"{{{DAV}}}response" and text.endswith(href):
                parts.append(f"<d:response><d:href>{text}</d:href>{broken}</d:response>")
            else:
                parts.append(ET.tostring(child, encoding="unicode"))
        answer = f'<d:multistatus xmlns:d="DAV:">{"".join(parts)}</d:multistatus>'
        return 207, headers, answer.encode()

    return rewrite


@pytest.mark.parametrize("how", ["no getetag", "a 500 status", "a failed propstat"])
def test_a_member_listed_without_an_etag_is_not_deleted(env, how):
    e, proxy = synced_env(env, 3)
    assert e.run().rc == 0  # the server has listed what pimsync wrote to it
    before = snapshot(e.tmp / "pc")
    # the stored token is refused: a full listing, in which ev-1 comes without an etag
    proxy.respond(412, XML, _TOKEN_ERROR, method="REPORT", contains=b"<d:sync-token>", times=1)
    proxy.rewrite(_member_without_etag("ev-1.ics", how), method="REPORT", contains=b"sync-token/>")
    run = e.run()
    assert "ev-1.ics" in run.err, run.text
    assert snapshot(e.tmp / "pc") == before  # ev-1 not deleted, nothing rewritten
    assert e.server_uids() == ["ev-0", "ev-1", "ev-2"]
    assert writes(proxy) == []
    proxy.clear()
    again = e.run()
    assert again.rc == 0, again.text
    assert e.local_uids() == ["ev-0", "ev-1", "ev-2"]


def test_a_propfind_listing_reports_a_member_without_an_etag(dav_server, dav_collection, proxy_for):
    from pimsync.storage.dav.collection import DavCollection
    from pimsync.storage.dav.http import HttpClient

    path = dav_collection(dav_server, "ics")
    for uid in ("a", "b"):
        assert dav_server.put(f"{path}{uid}.ics", make_event(uid)).status == 201
    proxy = proxy_for(dav_server)
    proxy.respond(501, PLAIN, "no sync-collection here", method="REPORT")
    proxy.rewrite(_member_without_etag("b.ics", "no getetag"), method="PROPFIND")
    client = HttpClient(proxy.url, username=dav_server.username, password=dav_server.password)
    listing = DavCollection(client, path, "c", "ics").list(None)
    assert list(listing.items) == [f"{path}a.ics"]
    assert list(listing.unreadable) == [f"{path}b.ics"]
    assert "without an etag" in str(listing.unreadable[f"{path}b.ics"])


def test_what_a_listing_names_without_an_etag_is_unreadable_never_dropped(hostile):
    from pimsync.storage.dav.collection import DavCollection

    p = "/alice/cal/"
    entries = [
        f"<d:response><d:href>{p}</d:href>{OK}</d:response>",
        f'<d:response><d:href>{p}ok.ics</d:href><d:propstat><d:prop><d:getetag>"1"'
        f"</d:getetag></d:prop>{OK}</d:propstat></d:response>",
        f"<d:response><d:href>{p}no-etag.ics</d:href>{OK}</d:response>",
        f"<d:response><d:href>{p}broken.ics</d:href>"
        "<d:status>HTTP/1.1 503 Service Unavailable</d:status></d:response>",
        f"<d:response><d:href>{p}gone.ics</d:href>"
        "<d:status>HTTP/1.1 404 Not Found</d:status></d:response>",
        f"<d:response><d:href>{p}sub/</d:href>{OK}</d:response>",  # not a record
        f"<d:response><d:href>/alice/other/x.ics</d:href>{OK}</d:response>",  # not a member
        f"<d:response><d:href>{p}{'l' * 5000}.ics</d:href>{OK}</d:response>",
        "<d:sync-token>t-2</d:sync-token>",
    ]
    body = HEAD + "".join(entries).encode() + b"</d:multistatus>"

    def script(h) -> None:
        h.send_response(207)
        h.send_header("Content-Type", "application/xml; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server = hostile(script)
    col = DavCollection(_client(server.url), p, "cal", "ics")
    for token, items in ((None, {f"{p}ok.ics": '"1"'}), ("sync:t-1", None)):
        listing = col.list(token)
        if items is None:  # a delta: the 404 is a deletion the server reports
            items = {f"{p}ok.ics": '"1"', f"{p}gone.ics": None}
        assert listing.items == items
        assert listing.token == "sync:t-2"
        bad = listing.unreadable
        assert sorted(h for h in bad if not h.endswith("…")) == [
            f"{p}broken.ics",
            f"{p}no-etag.ics",
        ]
        assert len(bad) == 3
        assert "status 503" in str(bad[f"{p}broken.ics"])
        assert "without an etag" in str(bad[f"{p}no-etag.ics"])
        assert any("longer than 4096" in str(e) for e in bad.values())


# --- 4. a server that never answers ------------------------------------------------------


@pytest.mark.parametrize("dav_server", ["radicale"], indirect=True)
def test_a_silent_server_costs_one_timeout_and_one_retry_per_run(
    tmp_path, dav_server, dav_collection, proxy_for, capsys
):
    proxy = proxy_for(dav_server)
    names = []
    for _ in range(4):
        path = dav_collection(dav_server, "ics")
        names.append(path.rstrip("/").rsplit("/", 1)[-1])
        (tmp_path / "pc" / names[-1]).mkdir(parents=True)
        (tmp_path / "pc" / names[-1] / "displayname").write_text(names[-1])
    cols = ", ".join(f'"{n}"' for n in names)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"
[storages.server]
type = "caldav"
url = "{proxy.url.rstrip("/")}{dav_server.calendar_home}"
username = "{dav_server.username}"
password = "x"
timeout = 1
[pairs.p]
a = "pc"
b = "server"
collections = [{cols}]
"""
    )
    assert main(["--config", str(cfg), "run"]) == 0  # healthy: discovery is remembered
    before = snapshot(tmp_path / "pc")
    proxy.reset_log()
    proxy.delay(3600)  # accepts, reads the request, never answers
    capsys.readouterr()
    started = time.monotonic()
    rc = main(["--config", str(cfg), "run"])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert rc == 1, err
    assert len(proxy.log) == 2, [(s.method, s.path) for s in proxy.log]  # one try, one retry
    assert "no answer within 1 s; tried 2 times, 2" in err, err
    assert elapsed < 8, elapsed  # 4 x (4 tries x 1 s) before
    assert snapshot(tmp_path / "pc") == before
    # one message for the timeout, one for the collections skipped after it
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, err
    first = next(n for n in names if f"p/{n}: " in lines[0])
    skipped = ", ".join(f"p/{n}" for n in names if n != first)
    assert "did not answer earlier in this run (waited 2" in lines[1], err
    assert lines[1].endswith(f": skipped {skipped}"), err


# --- 5. the HTTP client against hostile servers ------------------------------------------


class Hostile:
    """A loopback HTTP server; ``script(handler)`` answers each request as the test likes
    (the request line, headers and body are read already; it writes to handler.wfile)."""

    def __init__(self, script: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.stop_event = threading.Event()
        self.requests = 0
        self.closed = threading.Event()  # a write failed: the client closed the connection
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    hostile.closed.set()
                    self.close_connection = True

            def __getattr__(self, name: str):  # noqa: ANN204 - every do_METHOD
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                hostile.requests += 1
                script(self)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile():
    made: list[Hostile] = []

    def make(script) -> Hostile:
        made.append(Hostile(script))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _client(url: str, **kw):
    from pimsync.storage.dav.http import Backoff, HttpClient

    kw.setdefault("backoff", Backoff(attempts=4, base=0.01))
    return HttpClient(url, name="srv", **kw)


def test_a_2_gib_content_length_fails_at_once_and_the_connection_is_closed(hostile):
    from pimsync.storage.dav.http import ResponseTooLarge

    def script(h) -> None:
        h.send_response(207)
        h.send_header("Content-Length", str(2 * GIB))
        h.end_headers()
        zeros = b"\0" * (1 << 16)
        for _ in range(2 * GIB // len(zeros)):
            h.wfile.write(zeros)

    server = hostile(script)
    client = _client(server.url, max_response_size=MIB)
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge) as caught:
        client.request("REPORT", "/cal/")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"{server.url}cal/: REPORT: ")
    assert "max_response_size (1 MiB)" in message and "storages.srv.max_response_size" in message
    assert server.closed.wait(5)  # the client hung up: never returned to the pool
    assert all(not conns for conns in client._idle.values())
    assert server.requests == 1  # not repeated


def test_an_endless_chunked_stream_stops_at_the_limit(hostile):
    from pimsync.storage.dav.http import ResponseTooLarge

    def script(h) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        piece = b"y" * 4096
        while True:  # until the client hangs up
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    server = hostile(script)
    client = _client(server.url, max_response_size=2 * MIB)
    seen = []

    def consume(resp) -> int:
        for chunk in resp.chunks():
            seen.append(len(chunk))
        return sum(seen)

    with pytest.raises(ResponseTooLarge, match=r"GET: the answer is still going, more than"):
        client.stream("GET", "/feed", None, None, consume)
    assert 2 * MIB - 65536 <= sum(seen) <= 2 * MIB
    assert server.closed.wait(5)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickle_ends_at_max_request_time(hostile, where):
    from pimsync.storage.dav.http import RequestTooSlow

    def script(h) -> None:
        if where == "headers":
            h.wfile.write(b"HTTP/1.1 200 OK\r\n")
            lines = (b"X-Slow: %d\r\n" % i for i in itertools.count())
        else:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            lines = itertools.repeat(b".")
        for line in lines:
            h.wfile.write(line)
            h.wfile.flush()
            if server.stop_event.wait(0.2):
                return

    server = hostile(script)
    client = _client(server.url, timeout=1, max_request_time=1.5)
    started = time.monotonic()
    with pytest.raises(RequestTooSlow) as caught:
        client.request("GET", "/slow")
    assert time.monotonic() - started < 5
    assert "max_request_time (1.5 s)" in str(caught.value)
    assert "storages.srv.max_request_time" in str(caught.value)
    assert server.requests == 1


def test_a_silent_server_is_asked_twice_then_skipped_by_every_rebased_client(hostile):
    from pimsync.storage.dav.http import HttpError, ServerUnreachable

    server = hostile(lambda h: server.stop_event.wait(30))
    client = _client(server.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HttpError) as caught:
        client.request("PROPFIND", "/alice/")
    assert time.monotonic() - started < 3
    assert not isinstance(caught.value, ServerUnreachable)
    assert "no answer within 0.5 s; tried 2 times, 1" in str(caught.value)
    assert server.requests == 2
    origin = server.url.rstrip("/")
    for other in (client, client.rebased(server.url + "alice/calendars/")):
        started = time.monotonic()
        with pytest.raises(ServerUnreachable) as skipped:
            other.request("REPORT", "/alice/calendars/work/")
        assert time.monotonic() - started < 0.1
        assert skipped.value.origin == origin
        assert f"skipped: {origin} did not answer earlier in this run (waited 1" in str(
            skipped.value
        )
    assert server.requests == 2


def test_a_refused_connection_is_retried_then_the_server_is_skipped():
    from pimsync.storage.dav.http import HttpError, ServerUnreachable

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}/")
    with pytest.raises(HttpError, match=r"refused.*tried 4 times"):
        client.request("GET", "/a")
    with pytest.raises(ServerUnreachable, match="refused the connection earlier in this run"):
        client.request("GET", "/b")


def test_a_connection_lost_while_streaming_starts_the_callback_again(hostile):
    calls = []

    def script(h) -> None:
        body = b"0123456789" * 10
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if server.requests == 1:
            h.wfile.write(body[:50])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(body)

    server = hostile(script)
    client = _client(server.url)

    def consume(resp) -> bytes:
        calls.append(resp.status)
        return b"".join(resp.chunks())

    assert client.stream("GET", "/x", None, None, consume) == b"0123456789" * 10
    assert calls == [200, 200] and server.requests == 2
    # read to its end: the connection is kept for the next request
    assert client.request("GET", "/y").body == b"0123456789" * 10
    assert sum(len(c) for c in client._idle.values()) == 1


# --- 6. webcal: read whole, but bounded ----------------------------------------------------


def _webcal_config(tmp: Path, url: str, extra: str = "") -> Path:
    (tmp / "cal").mkdir(exist_ok=True)
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.holidays]
type = "webcal"
url = "{url}"
{extra}
[storages.cal]
type = "vdir"
path = "cal"
fileext = ".ics"
[pairs.h]
a = "holidays"
b = "cal"
"""
    )
    return cfg


def test_a_2_gib_feed_is_refused_with_the_defaults(tmp_path, hostile):
    def script(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/calendar")
        h.send_header("Content-Length", str(2 * GIB))
        h.end_headers()
        piece = make_event("x") * 200
        for _ in range(2 * GIB // len(piece)):
            h.wfile.write(piece)

    server = hostile(script)
    run = run_cli(_webcal_config(tmp_path, server.url + "holidays.ics"), limit=60)
    assert run.rc == 1, run.text
    assert "max_response_size (64 MiB)" in run.err, run.err
    assert "storages.holidays.max_response_size" in run.err, run.err
    assert "Traceback" not in run.err
    assert run.peak_mb < 150, run.peak_mb
    assert run.seconds < 20, run.seconds


def test_an_endless_feed_stops_at_its_max_response_size(tmp_path, hostile):
    def script(h) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        piece = make_event("x") * 200
        while True:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    server = hostile(script)
    cfg = _webcal_config(tmp_path, server.url + "holidays.ics", 'max_response_size = "4 MiB"')
    run = run_cli(cfg, limit=60)
    assert run.rc == 1, run.text
    assert "max_response_size (4 MiB)" in run.err, run.err
    assert run.peak_mb < 150, run.peak_mb
    assert run.seconds < 20, run.seconds


# --- 7. collections: %2F, and two that map to one id ---------------------------------------


def _collection(href: str) -> str:
    return (
        f"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:resourcetype><d:collection/>"
        f"<c:calendar/></d:resourcetype><d:displayname>{href}</d:displayname></d:prop>{OK}"
        "</d:propstat></d:response>"
    )


def _dav_home(hostile, *collections: str) -> Hostile:
    """A stand-in server: / names the home /alice/, which lists these collections."""

    def script(h) -> None:
        if h.command != "PROPFIND":
            h.send_response(405)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if h.headers.get("Depth") == "0":
            inner = (
                "<d:response><d:href>/</d:href><d:propstat><d:prop><c:calendar-home-set>"
                f"<d:href>/alice/</d:href></c:calendar-home-set></d:prop>{OK}</d:propstat>"
                "</d:response>"
            )
        else:
            inner = "".join(_collection(c) for c in ("/alice/", *collections))
        body = (
            f'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="{CALDAV}">{inner}'
            "</d:multistatus>"
        ).encode()
        h.send_response(207)
        h.send_header("Content-Type", "application/xml; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return hostile(script)


def test_an_encoded_slash_in_a_collection_name_stays_another_collection(hostile):
    from pimsync.storage.dav.http import HttpClient
    from pimsync.storage.dav.storage import DavStorage

    server = _dav_home(hostile, "/alice/c1/", "/alice/evil%2Fc1/")
    storage = DavStorage("server", HttpClient(server.url), "ics")
    infos = {c.id: c for c in storage.collections()}
    assert sorted(infos) == ["c1", "evil/c1"]
    assert all(c.problem is None for c in infos.values())
    assert storage.collection("c1").path == "/alice/c1/"
    assert storage.collection("evil/c1").path == "/alice/evil%2Fc1/"


def test_two_server_collections_that_map_to_one_id_are_both_left_out(hostile, tmp_path, capsys):
    from pimsync.errors import StorageError
    from pimsync.storage.dav.http import HttpClient
    from pimsync.storage.dav.storage import DavStorage, Found

    server = _dav_home(hostile, "/alice/c1/", "/alice/%63%31/", "/alice/other/")
    storage = DavStorage("server", HttpClient(server.url), "ics")
    infos = {c.id: c for c in storage.collections()}
    assert sorted(infos) == ["c1", "other"]
    assert infos["other"].problem is None
    problem = infos["c1"].problem
    assert problem == (
        "two collections on the server map to the collection 'c1': /alice/c1/ and "
        "/alice/%63%31/; neither is synced until one is renamed"
    )
    with pytest.raises(StorageError, match="two collections on the server map to"):
        storage.collection("c1")
    # the discovery cache keeps it
    cached = [Found.from_json(f.to_json()) for f in storage.found()]
    again = DavStorage("server", HttpClient(server.url), "ics", found=cached)
    assert {c.id: c.problem for c in again.collections()} == {"c1": problem, "other": None}

    # end to end: the engine stops that collection with the message, the other syncs
    (tmp_path / "pc" / "c1").mkdir(parents=True)
    (tmp_path / "pc" / "c1" / "local.ics").write_bytes(make_event("local"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"
[storages.server]
type = "caldav"
url = "{server.url}"
[pairs.p]
a = "pc"
b = "server"
collections = ["c1"]
"""
    )
    before = server.requests
    capsys.readouterr()
    assert main(["--config", str(cfg), "run"]) == 1
    err = capsys.readouterr().err
    assert "two collections on the server map to the collection 'c1'" in err, err
    assert server.requests - before == 2  # discovery only: nothing read or written there
    assert (tmp_path / "pc" / "c1" / "local.ics").exists()


# --- 8. the new settings in the config ---------------------------------------------------


def _storage_config(tmp_path: Path, lines: str, stype: str = "caldav"):
    from pimsync.config import load_config

    cfg = tmp_path / f"c-{uuid.uuid4().hex[:6]}.toml"
    cfg.write_text(
        f"""
[storages.s]
type = "{stype}"
url = "https://dav.example.org/x.ics"
{lines}
[storages.v]
type = "vdir"
path = "v"
fileext = ".ics"
[pairs.p]
a = "s"
b = "v"
"""
    )
    return load_config(cfg).storages["s"]


def test_the_limits_have_defaults_and_take_sizes(tmp_path):
    s = _storage_config(tmp_path, "")
    assert (s.max_response_size, s.max_record_size, s.max_request_time) == (
        64 * MIB,
        32 * MIB,
        600.0,
    )
    s = _storage_config(
        tmp_path,
        'max_response_size = "64 MiB"\nmax_record_size = "500 KB"\nmax_request_time = 90',
    )
    assert (s.max_response_size, s.max_record_size, s.max_request_time) == (
        64 * MIB,
        500_000,
        90.0,
    )
    assert _storage_config(tmp_path, 'max_response_size = "1 GiB"').max_response_size == GIB
    assert _storage_config(tmp_path, "max_record_size = 4096").max_record_size == 4096
    w = _storage_config(tmp_path, 'max_response_size = "8 MiB"\nmax_request_time = 5', "webcal")
    assert (w.max_response_size, w.max_request_time) == (8 * MIB, 5.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('max_response_size = "64 MB/s"', "storages.s.max_response_size: '64 MB/s' is not a size"),
        ('max_response_size = "lots"', 'like "64 MiB", "500 KB" or "1 GiB"'),
        ("max_record_size = 10", "storages.s.max_record_size: 10 is not allowed"),
        ("max_record_size = true", "storages.s.max_record_size: expected a size, got a boolean"),
        ("max_request_time = 0", "storages.s.max_request_time: 0 is not allowed"),
        ('max_request_time = "5"', "storages.s.max_request_time: expected a number of seconds"),
    ],
)
def test_bad_limits_name_the_key_and_what_is_allowed(tmp_path, line, message):
    from pimsync.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _storage_config(tmp_path, line)
    assert message in str(caught.value)


def test_webcal_has_no_max_record_size(tmp_path):
    from pimsync.errors import ConfigError

    with pytest.raises(ConfigError, match='max_record_size is not used by type "webcal"'):
        _storage_config(tmp_path, "max_record_size = 4096", "webcal")
