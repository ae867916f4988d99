"""A hostile server, end to end through the command line, against a vdir already synced.

Each case puts a loopback front (``HostileProxy``: FaultProxy rules, plus a hook for
answers a proxy cannot buffer) before Radicale, after a first clean sync of a few
records, with a local edit and a new local record waiting to go up. Then ``pimsync run``
(and ``pimsync discover``, which asks the server again) meet the hostile answers:
external entities pointing at a local marker file and at another loopback listener, an
entity bomb, a redirect loop, a redirect to another host (that listener must never get
the Authorization header), hostile hrefs in listings, ETags that change on every
request, an HTML page where XML is due, a 201 for a PUT of a record the server then never
lists, a 2 GiB answer, an endless chunked answer, and silence.

After each: every local record is as it was (none lost, none changed), nothing was
written outside the stores, the password and the marker appear in no output, no file
and no request to anyone, each command ended within its bound, with its peak memory under
200 MB, without a traceback; and once the server is healthy again one run syncs all.
"""

from __future__ import annotations

import random
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from tests.conftest import make_event
from tests.faultproxy import FaultProxy
from tests.reliability.harness import (
    Cli,
    DavSide,
    HostileProxy,
    Run,
    changes,
    files_containing,
    prop,
    publish,
    snapshot,
    start_radicale_with_password,
)
from tests.servers import CALDAV_NS, DAV_NS
from tests.test_dav_sync import dav_storage_toml

PEAK_MB = 200  # the bound on a run's resident memory
WATCHDOG_MB = 512  # a run past this is killed at once (and fails the bound)
BOUND_S = 60.0  # the bound on one command's duration (generous: the machine is noisy)
TWO_GIB = 2 << 30
XML = [("Content-Type", "application/xml; charset=utf-8")]
OK = "<d:status>HTTP/1.1 200 OK</d:status>"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("radicale", reason="Radicale (a test dependency) is not installed")
    password = f"pw-{uuid.uuid4().hex}-Hostile"
    srv = start_radicale_with_password(tmp_path_factory.mktemp("radicale-hostile"), password)
    yield srv
    srv.stop()


class Env:
    """A vdir ``pc`` with one calendar synced with Radicale through a HostileProxy."""

    def __init__(self, tmp: Path, server, timeout: float) -> None:
        self.tmp, self.server = tmp, server
        self.col = f"h{uuid.uuid4().hex[:10]}"
        self.col_path = server.make_collection(self.col, "ics")
        self.proxy = HostileProxy(server.url, seed=7).start()
        self.other = FaultProxy(server.url).start()  # "another host": never forwards
        self.other.respond(
            401, {"WWW-Authenticate": 'Basic realm="elsewhere"', "Content-Type": "text/plain"}
        )
        self.dir = tmp / "pc" / self.col
        self.dir.mkdir(parents=True)
        (self.dir / "displayname").write_text(self.col)  # as the server has it
        self.marker_text = f"MARKER-{uuid.uuid4().hex}"
        self.marker = tmp / "marker.txt"
        self.marker.write_text(self.marker_text)
        front = SimpleNamespace(
            url=self.proxy.url.rstrip("/") + server.home("ics"),
            username=server.username,
            password=server.password,
        )
        self.cfg = tmp / "config.toml"
        self.cfg.write_text(
            '[general]\nstate_dir = "state"\n\n'
            '[storages.pc]\ntype = "vdir"\npath = "pc"\nfileext = ".ics"\n\n'
            f"{dav_storage_toml('server', front, 'ics', f'timeout = {timeout}')}\n"
            f'[pairs.p]\na = "pc"\nb = "server"\ncollections = ["{self.col}"]\n'
        )
        self.cli = Cli(tmp, self.cfg)
        self.dav = DavSide(server)

    def stop(self) -> None:
        self.proxy.stop()
        self.other.stop()

    @property
    def other_url(self) -> str:
        return self.other.url.rstrip("/")

    def local_uids(self) -> set[str]:
        return {prop(p.read_text("utf-8", "replace"), "UID") or p.name for p in self.ics_files()}

    def ics_files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.ics") if not p.name.startswith("."))

    def server_uids(self) -> set[str]:
        return set(self.dav.texts(self.col))


# --- the cases ------------------------------------------------------------------------------


def _rewrite_multistatus(
    body: bytes, *, dtd: str = "", extra: str = "", drop: Callable[[str], bool] = lambda h: False
) -> bytes:
    """BODY (a multistatus) with a DTD in front, the responses whose href DROP picks taken
    out, and EXTRA (raw XML) added at the end."""
    root = ET.fromstring(body)
    for r in list(root):
        if r.tag == f"{{{DAV_NS}}}response" and drop(
            unquote(r.findtext(f"{{{DAV_NS}}}href") or "")
        ):
            root.remove(r)
    text = ET.tostring(root, encoding="unicode")
    end = text.rindex("</")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}{text[:end]}{extra}{text[end:]}'.encode()


def _response(href: str, *, etag: str = "", data: str = "", displayname: str = "") -> str:
    props = f"<d:getetag>{etag}</d:getetag>" if etag else ""
    if data:
        props += f'<c:calendar-data xmlns:c="{CALDAV_NS}">{data}</c:calendar-data>'
    if displayname:
        props += (
            f"<d:displayname>{displayname}</d:displayname><d:resourcetype><d:collection/>"
            f'<c:calendar xmlns:c="{CALDAV_NS}"/></d:resourcetype>'
        )
    return (
        f'<d:response xmlns:d="DAV:"><d:href>{href}</d:href>'
        f"<d:propstat><d:prop>{props}</d:prop>{OK}</d:propstat></d:response>"
    )


def _entities(env: Env, *, bomb: bool) -> tuple[str, str]:
    """A DTD, and the entity references to use: external entities (a local file, a
    system file, a URL on another loopback listener), or a billion laughs."""
    if bomb:
        levels = ['<!ENTITY lol0 "lol">']
        for i in range(1, 10):
            levels.append(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">')
        return "<!DOCTYPE multistatus [\n" + "\n".join(levels) + "\n]>\n", "&lol9;"
    dtd = (
        "<!DOCTYPE multistatus [\n"
        f'<!ENTITY s SYSTEM "file://{env.marker}">\n'
        '<!ENTITY e SYSTEM "file:///etc/passwd">\n'
        f'<!ENTITY r SYSTEM "{env.other_url}/xxe-fetched">\n'
        f'<!ENTITY % p SYSTEM "{env.other_url}/xxe-parameter"> %p;\n'
        "]>\n"
    )
    return dtd, "&s;&e;&r;"


def _entity_case(bomb: bool) -> Callable[[Env], None]:
    def install(env: Env) -> None:
        dtd, refs = _entities(env, bomb=bomb)
        p = env.col_path
        event = make_event("xxe-1", refs, extra=f"DESCRIPTION:{refs}\r\n").decode()

        def listing(seen, status, headers, body):
            if status != 207:
                return status, headers, body
            if b"calendar-multiget" in seen.body:
                extra = _response(f"{p}xxe-1.ics", etag=f'"{refs}"', data=event)
                extra += _response(f"{p}xxe-{refs}.ics", etag=f'"{refs}"', data=refs)
                return 207, XML, _rewrite_multistatus(body, dtd=dtd, extra=extra, drop=_xxe)
            extra = _response(f"{p}xxe-1.ics", etag=f'"{refs}"')
            extra += _response(f"{p}xxe-{refs}.ics", etag=f'"2{refs}"')
            if seen.method == "PROPFIND":
                extra += _response(f"{env.server.home('ics')}xxe-{refs}/", displayname=refs)
            return 207, XML, _rewrite_multistatus(body, dtd=dtd, extra=extra)

        env.proxy.rewrite(listing, method="REPORT")
        env.proxy.rewrite(listing, method="PROPFIND")

    return install


def _xxe(href: str) -> bool:
    return "/xxe-" in href


def redirect_loop(env: Env) -> None:
    def loop(seen, status, headers, body):
        target = "/loop-b/" if "/loop-a/" in seen.path else "/loop-a/"
        code = (301, 302, 307, 308)[len(env.proxy.log) % 4]
        return code, [("Location", env.proxy.url.rstrip("/") + target)], b""

    env.proxy.rewrite(loop, forward=False)


def redirect_other_host(env: Env) -> None:
    def away(seen, status, headers, body):
        return 307, [("Location", env.other_url + seen.path)], b""

    env.proxy.rewrite(away, forward=False)


def hostile_hrefs(env: Env) -> None:
    p = env.col_path
    m = uuid.uuid4().hex[:10]
    parent = p.rstrip("/").rsplit("/", 1)[0] + "/"
    odd = [
        f"{p}../escape-{m}.ics",
        f"{p}..%2Fescape2-{m}.ics",
        f"{p}%2E%2E%2Fescape3-{m}.ics",
        f"{p}..%2F..%2F..%2F..%2F..%2F..%2Ftmp%2Fpwned-{m}.ics",
        f"{p}sub%2Fnested-{m}.ics",
        f"{p}../../../../../../../tmp/pwned2-{m}.ics",
        f"{parent}other-{m}/evil.ics",
        f"{env.other_url}{p}abs-{m}.ics",
        f"{p}long-{'x' * 20000}-{m}.ics",
        f"{p}{'..%2F' * 4000}deep-{m}.ics",
        f"{p}..",
        f"{p}%2e%2e",
    ]
    uids = [
        f"../../pwned-{m}",
        f"/tmp/pwned-{m}",
        f"%2e%2e%2fpwned-{m}",
        f"long-{'u' * 10000}-{m}",
        "..",
    ]
    uid_of: dict[str, str] = {}

    def etag(href: str) -> str:
        return f'"odd-{abs(hash(href)) % 10**8}"'

    def is_odd(href: str) -> bool:
        return not re.fullmatch(re.escape(p) + r"[A-Za-z0-9._@-]+\.ics", href) or m in href

    def listing(seen, status, headers, body):
        if status != 207:
            return status, headers, body
        if b"calendar-multiget" not in seen.body:
            extra = "".join(_response(h, etag=etag(h)) for h in odd)
            return 207, XML, _rewrite_multistatus(body, extra=extra)
        asked = [h.text or "" for h in ET.fromstring(seen.body).iter(f"{{{DAV_NS}}}href")]
        extra = ""
        for href in asked:
            if is_odd(href):
                uid = uid_of.setdefault(href, uids[len(uid_of) % len(uids)] + f"-{len(uid_of)}")
                data = make_event(uid, "from an odd href").decode()
                extra += _response(href, etag=etag(href), data=data)
        return 207, XML, _rewrite_multistatus(body, extra=extra, drop=is_odd)

    def odd_write(method: str, path: str, body: bytes) -> bool:
        name = unquote(path)[len(p) :] if unquote(path).startswith(p) else ""
        plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name
        return method in ("PUT", "DELETE", "MOVE", "COPY") and not plain

    env.proxy.respond(403, {"Content-Type": "text/plain"}, "odd href refused", when=odd_write)
    env.proxy.rewrite(listing, method="REPORT")
    env.odd_write = odd_write  # type: ignore[attr-defined]


def changing_etags(env: Env) -> None:
    rng = random.Random(11)
    pattern = re.compile(rb"(<(?:[\w-]+:)?getetag(?:\s[^>]*)?>)([^<]*)(</)")

    def fresh() -> str:
        return f'"hostile-{rng.getrandbits(48):012x}"'

    def rewrite(seen, status, headers, body):
        headers = [(k, fresh() if k.lower() == "etag" else v) for k, v in headers]
        if status == 207:
            body = pattern.sub(lambda mo: mo[1] + fresh().encode() + mo[3], body)
        return status, headers, body

    env.proxy.rewrite(rewrite)


def html_page(env: Env) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>"
        '<form method="post"><input name="password" type="password"></form></body></html>'
    )
    env.proxy.respond(200, {"Content-Type": "text/html; charset=utf-8"}, page)


def put_201_never_listed(env: Env) -> None:
    """The new record's PUT is answered 201 (with an ETag) and never reaches the server:
    every later listing lacks it, as if the server had thrown it away."""
    env.proxy.respond(201, {"ETag": '"ghost-1"'}, b"", method="PUT", contains=b"UID:fresh-1")


def _stream(env: Env, head: bytes, chunks: Callable[[], bytes | None]) -> None:
    def hook(handler, body):
        handler.wfile.write(head)
        while not env.proxy.stopping.is_set():
            data = chunks()
            if data is None:
                break
            handler.wfile.write(data)
        handler.wfile.flush()

    env.proxy.hook = (lambda method, path, body: True, hook)


_BLOCK = (
    b"<d:response><d:href>/alice/x/y.ics</d:href><d:propstat><d:prop><d:getetag>"
    b'"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>'
) * 4096
_PRELUDE = b'<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">'


def two_gib(env: Env) -> None:
    left = [TWO_GIB - len(_PRELUDE)]

    def chunks() -> bytes | None:
        if left[0] <= 0:
            return None
        data = _BLOCK[: left[0]]
        left[0] -= len(data)
        return data

    head = (
        "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml; charset=utf-8\r\n"
        f"Content-Length: {TWO_GIB}\r\n\r\n"
    ).encode() + _PRELUDE
    _stream(env, head, chunks)


def endless_chunked(env: Env) -> None:
    chunk = f"{len(_BLOCK):x}\r\n".encode() + _BLOCK + b"\r\n"
    head = (
        b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(_PRELUDE):x}\r\n".encode()
        + _PRELUDE
        + b"\r\n"
    )
    _stream(env, head, lambda: chunk)


def silence(env: Env) -> None:
    """The connection is accepted and the request read; then not one byte, ever."""

    def hook(handler, body):
        env.proxy.stopping.wait(600)

    env.proxy.hook = (lambda method, path, body: True, hook)


@dataclass(frozen=True)
class Case:
    install: Callable[[Env], None]
    commands: tuple[tuple[str, ...], ...] = (("run",), ("discover",))
    timeout: float = 2.0  # the storage's `timeout` in the config
    new_local_files: bool = False  # records from the hostile listing may appear locally


CASES = {
    "xxe": Case(_entity_case(bomb=False), new_local_files=True),
    "billion-laughs": Case(_entity_case(bomb=True), new_local_files=True),
    "redirect-loop": Case(redirect_loop),
    "redirect-to-another-host": Case(redirect_other_host),
    "hostile-hrefs": Case(hostile_hrefs, new_local_files=True),
    "etags-change-on-every-request": Case(changing_etags, commands=(("run",), ("run",))),
    "html-instead-of-xml": Case(html_page),
    "put-201-then-never-listed": Case(put_201_never_listed, commands=(("run",),) * 3),
    "2-gib-answer": Case(two_gib),
    "endless-chunked-answer": Case(endless_chunked),
    "silence": Case(silence, commands=(("run",),), timeout=1.0),
}


# --- the test -------------------------------------------------------------------------------


def _passwd_line() -> str | None:
    try:
        lines = Path("/etc/passwd").read_text().splitlines()
    except OSError:
        return None
    return next((line for line in lines if line.strip() and ":" in line), None)


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_server_loses_nothing_leaks_nothing_and_ends(tmp_path, server, case, capsys):
    spec = CASES[case]
    env = Env(tmp_path, server, spec.timeout)
    try:
        _check(env, case, spec, capsys)
    finally:
        env.stop()


def _check(env: Env, case: str, spec: Case, capsys) -> None:
    for i in range(4):
        (env.dir / f"ev-{i}.ics").write_bytes(make_event(f"ev-{i}", f"event {i}"))
    first = env.cli("run")
    assert first.clean, first.describe()
    assert env.server_uids() == {f"ev-{i}" for i in range(4)}
    # waiting to go up: an edit and a new record
    (env.dir / "ev-0.ics").write_bytes(make_event("ev-0", "edited on the laptop"))
    (env.dir / "fresh-1.ics").write_bytes(make_event("fresh-1", "new on the laptop"))
    local_before = {p.name: p.read_bytes() for p in env.ics_files()}
    stores = [env.tmp / "pc", env.tmp / "state", env.cli.logs]
    outside_before = snapshot(env.tmp, skip=stores)
    env.proxy.reset_log()

    spec.install(env)
    hostile: list[Run] = [
        env.cli(*cmd, timeout=BOUND_S, mem_cap_mb=WATCHDOG_MB) for cmd in spec.commands
    ]
    env.proxy.clear()
    env.proxy.hook = None
    problems: list[str] = []

    for run in hostile:
        what = f"`pimsync {' '.join(run.args)}`"
        if run.timed_out:
            problems.append(f"{what} did not end within {BOUND_S:.0f} s")
        if run.over_memory or run.peak_mb >= PEAK_MB:
            problems.append(f"{what} peaked at {run.peak_mb:.0f} MB (bound {PEAK_MB} MB)")
        if not (run.timed_out or run.over_memory) and run.rc not in (0, 1):
            problems.append(f"{what} exited {run.rc}")
        if "Traceback" in run.err or "MemoryError" in run.err:
            problems.append(f"{what} crashed: {run.err[-600:]}")
    writes = [s for s in env.proxy.log if s.method in ("PUT", "DELETE")]
    odd_write = getattr(env, "odd_write", None)
    if odd_write is not None:
        bad = [(s.method, s.path[:120]) for s in writes if odd_write(s.method, s.path, s.body)]
        if bad:
            problems.append(f"writes to hrefs outside the collection: {bad}")

    def local_intact(when: str) -> None:
        now = {p.name: p.read_bytes() for p in env.ics_files()}
        lost = sorted(n for n in local_before if n not in now)
        changed = sorted(n for n in local_before if n in now and now[n] != local_before[n])
        if lost or changed:
            problems.append(f"{when}: local records lost {lost}, changed {changed}")
        new = sorted(set(now) - set(local_before))
        if new and not spec.new_local_files:
            problems.append(f"{when}: new local files {new}")
        odd = [p for p in env.tmp.joinpath("pc").rglob("*") if p.is_file() and p.parent != env.dir]
        bad_names = [n for n in new if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*\.ics", n)]
        if odd or bad_names:
            problems.append(f"{when}: files outside the collection {odd}, odd names {bad_names}")

    local_intact("after the hostile server")
    outside = changes(outside_before, snapshot(env.tmp, skip=stores))
    if outside:
        problems.append(f"written outside the stores: {outside}")

    # the server is healthy again: the first run may report what it found (exit 1), the
    # one after it must be clean, and then the server holds every local record
    heal = [env.cli("run", timeout=BOUND_S)]
    if heal[0].rc != 0:
        heal.append(env.cli("run", timeout=BOUND_S))
    if heal[0].rc not in (0, 1) or "Traceback" in heal[0].err or not heal[-1].clean:
        problems.append(
            "the runs against the healthy server failed:\n" + "\n".join(r.describe() for r in heal)
        )
    local_intact("after the server healed")
    missing = sorted(env.local_uids() - env.server_uids())
    if missing:
        problems.append(f"after the server healed, not on the server: {missing}")

    runs = [first, *hostile, *heal]
    password = env.server.password
    basic = (env.server.auth_header() or "Basic ?").split(" ", 1)[1]
    secrets = {"password": password, "basic credentials": basic, "marker": env.marker_text}
    if case in ("xxe", "billion-laughs"):
        secrets["/etc/passwd"] = _passwd_line() or password
    for label, secret in secrets.items():
        printed = [" ".join(r.args) for r in runs if secret in r.text]
        if printed:
            problems.append(f"the {label} was printed by {printed}")
        credential = label in ("password", "basic credentials")
        skip = [env.cfg] if credential else [env.marker] if label == "marker" else []
        stored = files_containing(env.tmp, secret, skip=skip)
        if stored:
            problems.append(f"the {label} was written to {stored}")
        # the password goes to the configured server (in the Authorization header) only
        receivers = (env.other,) if credential else (env.proxy, env.other)
        sent = [
            s.path[:100]
            for proxy in receivers
            for s in proxy.log
            if secret in s.path or secret.encode() in s.body or secret in str(s.headers)
        ]
        if sent:
            problems.append(f"the {label} was sent where it does not belong: {sent}")
    leaked = [s.path[:100] for s in env.other.log if "authorization" in s.headers]
    if leaked:
        problems.append(f"another host got the Authorization header: {leaked}")
    fetched = [s.path[:100] for s in env.other.log if "xxe" in s.path]
    if fetched:
        problems.append(f"an external entity was fetched: {fetched}")

    figures = {
        "case": case,
        "runs": [
            {
                "command": " ".join(r.args),
                "rc": r.rc,
                "seconds": round(r.seconds, 2),
                "peak_mb": round(r.peak_mb, 1),
                "timed_out": r.timed_out,
                "over_memory": r.over_memory,
            }
            for r in hostile
        ],
        "requests_seen": len(env.proxy.log),
        "other_host_requests": len(env.other.log),
        "healing_runs": [r.rc for r in heal],
        "problems": len(problems),
    }
    publish(capsys, f"test_hostile_server_loses_nothing_leaks_nothing_and_ends[{case}]", figures)
    details = "\n".join(r.describe() for r in hostile)
    assert not problems, "\n".join(problems) + "\n\n" + details
