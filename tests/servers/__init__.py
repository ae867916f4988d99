"""Real CalDAV/CardDAV servers (Radicale, Xandikos, Cyrus, DAViCal) for the test suite.

Each server runs as subprocesses bound to 127.0.0.1 on a free port, with its data,
config and logs in temporary directories, each process in a session (and process group)
of its own that ``DavServer.stop`` ends by PID, group and all.  Only the standard
library is used to talk to them (``http.client``), so these helpers do not depend on
the code under test.  Radicale and Xandikos are Python packages (test extras); Cyrus
and DAViCal are Debian packages that ``tests/servers/install.sh`` installs (as root,
with no system service started); without them their tests are skipped.

Radicale 3.9 (``start_radicale``):

* principal and both homes: ``/alice/``; collections ``/alice/NAME/``;
* storage: ``ROOT/collection-root/alice/NAME/`` (one file per record plus
  ``.Radicale.props``);
* with ``[auth] type = none`` Radicale takes the user name from the Basic
  ``Authorization`` header whatever the password; without the header the user is
  anonymous.  ``owner_only`` rights do not check the user when auth is ``none``,
  so anonymous requests to ``/alice/...`` work too, but the principal collection
  ``/alice/`` is only auto-created on a request *from* user ``alice``, and
  ``current-user-principal`` is only reported to a logged-in user.  Hence the
  server object keeps ``username="alice"`` (``password=None``) and
  ``DavServer.request`` sends ``alice:`` as Basic credentials; ``start_radicale``
  makes one such request so that ``/alice/`` exists before any test runs.
* ``[auth] delay`` defaults to 1 s and delays *every* 401 and 403 answer (an
  invalid sync token is a 403 on Radicale), so it is set to 0;
  ``[server] delay_on_error`` (1 s on 5xx) is set to 0 as well.

Xandikos 0.4.10 (``start_xandikos``):

* principal ``/user/``, calendar home ``/user/calendars/``, address-book home
  ``/user/contacts/``; ``--defaults`` creates ``/user/calendars/calendar/``,
  ``/user/contacts/addressbook/`` (and ``/user/inbox/``, ``/user/outbox/``);
* storage: ``ROOT/user/calendars/NAME/`` (``ROOT/user/contacts/NAME/``) is a git
  repository with a work tree; the server reads the git *index*, not the files,
  so seeding commits through dulwich (a dependency of xandikos), once per call;
* XML request bodies need a Content-Type (415 otherwise): ``DavServer.request``
  adds ``application/xml`` to bodies starting with ``<``;
* no authentication (its htpasswd mode requires TLS).

Cyrus IMAP 3.6.1 with cyrus-caldav (``start_cyrus``, tests/servers/cyrus.py):

* ``master -C imapd.conf -M cyrus.conf -D`` (foreground) with both files of its own:
  services ``imap`` and ``http`` on 127.0.0.1 only; as user ``cyrus`` when we are root,
  data in a private ``pimsync-cyrus-data-*`` directory of the system's temporary
  directory (pytest's are root-only), linked from tmp_path, removed by ``stop``;
* principal ``/dav/principals/user/alice/``, homes ``/dav/calendars/user/alice/`` and
  ``/dav/addressbooks/user/alice/``; ``/.well-known/caldav|carddav`` answer 301 to
  ``/dav/calendars`` and ``/dav/addressbooks`` on the same host; ``/`` is no DAV
  resource (OPTIONS has no DAV header) but a PROPFIND there reports
  ``current-user-principal``;
* real Basic auth (``allowplaintext: yes``) against a sasldb in the data directory:
  alice / secret, a wrong password is a 401;
* the DAV homes exist only once the user's INBOX does: ``start_cyrus`` creates
  ``user/alice`` over IMAP as the admin (``admin``, a random password); until then
  every request of alice's is a 500 ("could not autoprovision calendars ...: Invalid
  user").  Her first DAV request then makes calendar ``Default`` (displayname
  "personal"), the scheduling ``Inbox`` and ``Outbox``, and address book ``Default``;
* scheduling is off (``caldav_allowscheduling: off``, ``sendmail: /bin/true``): no
  iTIP processing, no mail;
* refused (as found so far): a timed VEVENT without DTEND or DURATION (403
  valid-calendar-data "DTEND must occur after DTSTART"); a VCALENDAR with METHOD (403
  "Failed iTIP restrictions for ORGANIZER property ..."); an event or a card without
  UID (403 "Missing UID property" / "Missing mandatory UID property"); two UIDs in one
  resource (403 "Mismatched UIDs"); a card without FN (403 "Failed restriction
  checks"); vCard 2.1 (403 supported-address-data "Unsupported vCard version"); an
  empty ``<C:mkcalendar/>`` or ``<D:mkcol/>`` body (500 "assertion failed:
  imap/http_dav.c: 5797", *after* making the collection); an event whose UID another
  resource of *any* calendar of the user holds (403 unique-scheduling-object-resource
  naming it), so conftest deletes the calendars each test made;
* events are re-serialised (libical): lines refolded, RRULE parts reordered,
  multi-valued CATEGORIES split into one property per value; cards are kept as sent;
* an unknown sync token is a 403 valid-sync-token; the DELETE of a collection answers
  404 although it deleted it (default ``delete_mode: delayed``);
* Cyrus logs to syslog only: a small LD_PRELOAD library (``syslog_to_file.c``, built
  when a C compiler is there) writes its lines to ``DATA/syslog``, in ``log_tail``.

DAViCal 1.1.12 (``start_davical``, tests/servers/davical.py):

* a private PostgreSQL 15 cluster (``initdb`` into the private data directory,
  ``postgres`` as user ``postgres`` with ``listen_addresses=''`` and its socket in that
  directory, fsync off); the database made by DAViCal's ``create-database.sh``; alice
  added by SQL (password stored as ``**secret``, plain); Apache (``apache2 -f CONF
  -DFOREGROUND``, mod_php, prefork) with ``Listen 127.0.0.1:PORT``, pid file, logs and
  runtime files under tmp_path; DAViCal reads Debian's ``/etc/davical/config.php``
  (``dbname=davical user=davical_app``, no host): ``PGHOST``/``PGPORT`` in Apache's
  environment point libpq at the private socket;
* principal, calendar home and address-book home are one URL: ``/caldav.php/alice/``;
  collections ``/caldav.php/alice/NAME/``; alice starts with no collection;
  ``/.well-known/caldav|carddav`` are rewritten to ``/caldav.php/.well-known/...``,
  which answers 301 to ``/caldav.php/``; ``/`` (index.php) answers PROPFIND with
  ``current-user-principal`` and allows only OPTIONS, PROPFIND and REPORT;
* real Basic auth: alice / secret, a wrong password is a 401;
* refused (as found so far): an empty ``<C:mkcalendar/>`` or ``<D:mkcol/>`` body (500
  "Call to a member function GetContent() on null At line 62 of .../caldav-MKCOL.php",
  nothing made); accepted: METHOD, no UID, two UIDs, vCard 2.1, a card without FN, the
  same UID twice in one collection;
* an update PUT answers 204 without ETag; an address book's Allow leaves out PUT
  (PUTs work); a REV is added to every card; events are kept as sent; an unknown sync
  token gets the full listing and a new token (207), not a 403;
* logs: Apache's error log (PHP warnings, DAViCal's own), its access log and
  PostgreSQL's, all in ``log_tail``.

Seeding (``DavServer.seed``): Radicale and Xandikos are written on disk, Cyrus and
DAViCal get PUTs (their records live in databases).
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import fcntl
import functools
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
SEED_CONNECTIONS = 4  # PUTs at once when seeding over HTTP (Cyrus, DAViCal)

ServerKind = Literal["radicale", "xandikos", "cyrus", "davical"]
RecordKind = Literal["ics", "vcf"]

RADICALE_USER = "alice"
RADICALE_PASSWORD = "secret"
XANDIKOS_PRINCIPAL = "/user/"

_RUNNING: dict[int, DavServer] = {}


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(eq=False)
class DavServer:
    kind: ServerKind
    url: str  # "http://127.0.0.1:PORT/"
    username: str | None
    password: str | None  # None: the server does not check passwords
    pid: int
    root: Path  # storage directory
    calendar_home: str  # URL path, ends with "/"
    addressbook_home: str  # URL path, ends with "/"
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    #: the signal that stops the main process in an orderly way
    stop_signal: int = signal.SIGTERM
    #: more processes of this server (PostgreSQL under DAViCal), stopped after the main one
    helpers: list[Helper] = field(default_factory=list, repr=False)
    #: called once the processes are gone (remove private data directories)
    cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)
    #: more logs that log_tail shows (PostgreSQL's, Apache's access log)
    extra_logs: tuple[Path, ...] = ()

    # -- addressing -------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def home(self, kind: RecordKind) -> str:
        return self.calendar_home if kind == "ics" else self.addressbook_home

    def collection_path(self, name: str, kind: RecordKind) -> str:
        """URL path of collection NAME in the home for KIND (ends with "/")."""
        _check_name(name)
        return f"{self.home(kind)}{name}/"

    # -- HTTP -------------------------------------------------------------

    def auth_header(self, username: str | None = None, password: str | None = None) -> str | None:
        """Basic credentials for this server (or the ones given), None if no user."""
        user = self.username if username is None else username
        if user is None:
            return None
        pw = (self.password or "") if password is None else password
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        auth: bool = True,
        username: str | None = None,
        password: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Response:
        """One request on a fresh connection (Radicale closes it after each one)."""
        hdrs = dict(headers or {})
        if auth and not _has_header(hdrs, "Authorization"):
            value = self.auth_header(username, password)
            if value is not None:
                hdrs["Authorization"] = value
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body and body.lstrip().startswith(b"<") and not _has_header(hdrs, "Content-Type"):
            # Xandikos answers 415 to an XML body without a Content-Type.
            hdrs["Content-Type"] = 'application/xml; charset="utf-8"'
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            merged: dict[str, str] = {}
            for name, value in resp.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return Response(resp.status, resp.reason, merged, data)
        finally:
            conn.close()

    def put(
        self,
        path: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> Response:
        """PUT a record; the Content-Type follows the name (.ics / .vcf)."""
        ctype = "text/vcard" if path.endswith(".vcf") else "text/calendar"
        headers = {"Content-Type": f"{ctype}; charset=utf-8"}
        if if_match is not None:
            headers["If-Match"] = if_match
        if if_none_match:
            headers["If-None-Match"] = "*"
        return self.request("PUT", path, data, headers)

    def propfind(
        self,
        path: str,
        props: str = "<D:getetag/>",
        depth: str = "1",
        *,
        auth: bool = True,
        username: str | None = None,
        password: str | None = None,
    ) -> Response:
        """PROPFIND with PROPS (XML elements, prefix D: is DAV:, C: CalDAV, CR: CardDAV)."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV_NS}" xmlns:CR="{CARDDAV_NS}">'
            f"<D:prop>{props}</D:prop></D:propfind>"
        )
        return self.request(
            "PROPFIND",
            path,
            body,
            {"Depth": depth},
            auth=auth,
            username=username,
            password=password,
        )

    def etags(self, path: str) -> dict[str, str]:
        """href -> etag of the records in collection PATH (PROPFIND depth 1)."""
        resp = self.propfind(path)
        if resp.status != 207:
            raise RuntimeError(f"PROPFIND {path} on {self.kind}: {resp.status} {resp.text[:500]}")
        return {
            href: props[f"{{{DAV_NS}}}getetag"].text or ""
            for href, props in parse_multistatus(resp.body).items()
            if f"{{{DAV_NS}}}getetag" in props and not href.endswith("/")
        }

    def sync_collection(self, path: str, token: str = "") -> Response:
        """RFC 6578 sync-collection REPORT (sync-level 1, getetag)."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{_xml_escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>"
        )
        return self.request("REPORT", path, body, {"Depth": "0"})

    # -- collections ------------------------------------------------------

    def make_collection(self, name: str, kind: RecordKind, displayname: str | None = None) -> str:
        """Create an empty calendar (ics) or address book (vcf); return its URL path."""
        path = self.collection_path(name, kind)
        dn = displayname or name
        if kind == "ics":
            body = (
                '<?xml version="1.0" encoding="utf-8"?>\n'
                '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                f"<D:set><D:prop><D:displayname>{_xml_escape(dn)}</D:displayname>"
                "</D:prop></D:set></C:mkcalendar>"
            )
            method = "MKCALENDAR"
        elif kind == "vcf":
            body = (
                '<?xml version="1.0" encoding="utf-8"?>\n'
                '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
                "<D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/>"
                f"</D:resourcetype><D:displayname>{_xml_escape(dn)}</D:displayname>"
                "</D:prop></D:set></D:mkcol>"
            )
            method = "MKCOL"
        else:
            raise ValueError(f"kind must be 'ics' or 'vcf', not {kind!r}")
        resp = self.request(
            method, path, body, {"Content-Type": 'application/xml; charset="utf-8"'}
        )
        if resp.status != 201:
            raise RuntimeError(f"{method} {path} on {self.kind}: {resp.status} {resp.text[:500]}")
        return path

    def delete_collection(self, path: str) -> None:
        """DELETE collection PATH: 200 or 204, or Cyrus's 404.

        Cyrus answers 404 to the DELETE of a collection although it deletes it; then a
        PROPFIND must find nothing there.  (Xandikos still answers a PROPFIND on the
        path of a collection it deleted, as a plain collection.)
        """
        resp = self.request("DELETE", path)
        if resp.status == 404 and self.kind == "cyrus":
            after = self.propfind(path, "<D:resourcetype/>", depth="0")
            if after.status != 404:
                raise RuntimeError(f"{path} still there on cyrus after DELETE: {after.status}")
        elif resp.status not in (200, 204):
            raise RuntimeError(f"DELETE {path} on {self.kind}: {resp.status} {resp.text[:500]}")

    def seed(self, collection: str, kind: RecordKind, files: Mapping[str, bytes]) -> str:
        """Write records into collection COLLECTION.

        COLLECTION is a name under the home for KIND; it is created if missing.
        FILES maps resource names ("x.ics") to their bytes.  Returns the
        collection's URL path.  Radicale and Xandikos: straight into their storage,
        much faster than PUT for large collections.  Cyrus and DAViCal keep their
        records in databases, so they get plain PUTs (over one connection).
        """
        if kind not in ("ics", "vcf"):
            raise ValueError(f"kind must be 'ics' or 'vcf', not {kind!r}")
        for name in files:
            _check_name(name)
        path = self.collection_path(collection, kind)
        if self.kind == "radicale":
            _seed_radicale(self.root, path, kind, files)
        elif self.kind == "xandikos":
            _seed_xandikos(self.root, path, kind, files)
        else:
            _seed_http(self, collection, path, kind, files)
        return path

    # -- lifecycle --------------------------------------------------------

    def alive(self) -> bool:
        """True while the server and every helper process of it run."""
        if self._proc is not None:
            main = self._proc.poll() is None
        else:
            main = pid_exists(self.pid)
        return main and all(h.alive() for h in self.helpers)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and all it started; idempotent.

        The main process gets ``stop_signal`` (SIGKILL after TIMEOUT); then whatever is
        left of its process group (each server runs in a session of its own, so its
        children share the group) is killed; then the helpers the same way, last
        started first; then the cleanups run (private data directories go).
        """
        proc = self._proc
        try:
            if proc is not None:
                _stop_process(proc, self.stop_signal, timeout)
            elif pid_exists(self.pid):  # not our child: signal by PID and poll
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, self.stop_signal)
                deadline = time.monotonic() + timeout
                while pid_exists(self.pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                with contextlib.suppress(ProcessLookupError):
                    if pid_exists(self.pid):
                        os.kill(self.pid, signal.SIGKILL)
            for helper in reversed(self.helpers):
                helper.stop(timeout)
        finally:
            _RUNNING.pop(self.pid, None)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            while self.cleanups:
                cleanup = self.cleanups.pop()
                with contextlib.suppress(Exception):
                    cleanup()

    def log_tail(self, lines: int = 40) -> str:
        """The last LINES lines of the server's log, then of each extra log (headed)."""
        parts = []
        for n, path in enumerate((self.log_path, *self.extra_logs)):
            try:
                text = path.read_text("utf-8", "replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if n == 0:
                parts.append(tail)
            elif tail:
                parts.append(f"--- {path.name}\n{tail}")
        return "\n".join(parts)

    def __enter__(self) -> DavServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# starting servers


def start_radicale(tmp_path: Path, *, auth: bool = False) -> DavServer:
    """Start Radicale on 127.0.0.1; user alice (password "secret" if AUTH)."""
    base = Path(tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    root = base / "storage"
    root.mkdir(exist_ok=True)
    config = base / "radicale.conf"
    if auth:
        htpasswd = base / "htpasswd"
        htpasswd.write_text(f"{RADICALE_USER}:{RADICALE_PASSWORD}\n")
        auth_section = (
            f"type = htpasswd\nhtpasswd_filename = {htpasswd}\nhtpasswd_encryption = plain\n"
        )
    else:
        auth_section = "type = none\n"

    def command(port: int) -> list[str]:
        config.write_text(
            "[server]\n"
            f"hosts = {HOST}:{port}\n"
            "delay_on_error = 0\n"
            "[auth]\n"
            f"{auth_section}"
            "delay = 0\n"
            "[rights]\n"
            "type = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {root}\n"
            "[web]\n"
            "type = none\n"
            "[logging]\n"
            "level = warning\n"
        )
        return [sys.executable, "-m", "radicale", "--config", str(config)]

    server = _start(
        "radicale",
        base,
        command,
        root=root,
        username=RADICALE_USER,
        password=RADICALE_PASSWORD if auth else None,
        calendar_home=f"/{RADICALE_USER}/",
        addressbook_home=f"/{RADICALE_USER}/",
        env={},
    )
    try:
        # A request from alice creates her principal collection /alice/.
        resp = server.propfind(f"/{RADICALE_USER}/", "<D:resourcetype/>", depth="0")
        if resp.status != 207:
            raise RuntimeError(f"Radicale principal not ready: {resp.status}\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise
    return server


def start_xandikos(tmp_path: Path) -> DavServer:
    """Start Xandikos on 127.0.0.1 without auth; principal /user/ with defaults."""
    base = Path(tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    root = base / "storage"
    root.mkdir(exist_ok=True)
    state = base / "state"
    state.mkdir(exist_ok=True)

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "xandikos", "serve",
            "-d", str(root),
            "-l", HOST,
            "-p", str(port),
            "--current-user-principal", XANDIKOS_PRINCIPAL,
            "--defaults",
            "--no-detect-systemd",
            "--state-dir", str(state),
        ]  # fmt: skip

    return _start(
        "xandikos",
        base,
        command,
        root=root,
        username=None,
        password=None,
        calendar_home=f"{XANDIKOS_PRINCIPAL}calendars/",
        addressbook_home=f"{XANDIKOS_PRINCIPAL}contacts/",
        env={"XDG_DATA_HOME": str(state), "XDG_CONFIG_HOME": str(state)},
    )


def _start(
    kind: ServerKind,
    base: Path,
    command: Callable[[int], list[str]],
    *,
    root: Path,
    username: str | None,
    password: str | None,
    calendar_home: str,
    addressbook_home: str,
    env: Mapping[str, str],
    attempts: int = 5,
    run_as: str | None = None,
    stop_signal: int = signal.SIGTERM,
    log_path: Path | None = None,
    retry_any_exit: bool = False,
    timeout: float = START_TIMEOUT,
    ready_auth: bool = True,
) -> DavServer:
    """Start COMMAND(port) until it listens on 127.0.0.1:port (new port on a lost race).

    RUN_AS: a user name to run as (only when we are root).  A process that exits
    before it listens is tried again on another port if its log says the port was in
    use, or always with RETRY_ANY_EXIT (a server that logs to syslog says nothing).
    READY_AUTH: whether the OPTIONS request that tells the server is up is sent
    with the user's credentials (Cyrus answers 500 to her until her INBOX exists).
    """
    log_path = log_path or base / f"{kind}.log"
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        argv = command(port)
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed by DavServer.stop
        log_file.write(f"\n=== {' '.join(argv)}\n".encode())
        log_file.flush()
        proc = spawn(argv, log_file, cwd=base, env=env, run_as=run_as, parent_death=stop_signal)
        server = DavServer(
            kind=kind,
            url=f"http://{HOST}:{port}/",
            username=username,
            password=password,
            pid=proc.pid,
            root=root,
            calendar_home=calendar_home,
            addressbook_home=addressbook_home,
            log_path=log_path,
            _proc=proc,
            _log_file=log_file,
            stop_signal=stop_signal,
        )
        _RUNNING[proc.pid] = server
        try:
            if _wait_ready(server, timeout, auth=ready_auth):
                return server
        except BaseException:
            server.stop()
            raise
        # The process died: most likely someone took the port in between.
        server.stop()
        last_error = server.log_tail()
        if retry_any_exit:
            continue
        if "in use" not in last_error.lower() and "errno 98" not in last_error.lower():
            break
    raise RuntimeError(f"{kind} did not start; log tail:\n{last_error}")


def spawn(
    argv: list[str],
    log_file: IO[bytes] | int,
    *,
    cwd: Path,
    env: Mapping[str, str],
    run_as: str | None = None,
    parent_death: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start ARGV in a session (and process group) of its own, output to LOG_FILE.

    It gets PARENT_DEATH when the test process dies, even by SIGKILL.  RUN_AS (a user
    name) is honoured when we are root: the process starts as that user with its
    primary group and no supplementary groups.
    """
    creds: dict[str, object] = {}
    if run_as is not None and os.geteuid() == 0:
        pw = pwd.getpwnam(run_as)
        creds = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = {"HOME": str(cwd), "USER": run_as, "LOGNAME": run_as, **env}
    return subprocess.Popen(  # type: ignore[call-overload]
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # a ^C in the terminal goes to pytest only
        preexec_fn=(
            functools.partial(_die_with_parent, parent_death)
            if sys.platform.startswith("linux")
            else None
        ),
        **creds,
    )


@dataclass(eq=False)
class Helper:
    """One more process of a server (PostgreSQL under DAViCal), in its own session."""

    name: str
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes] | None = None
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        try:
            _stop_process(self.proc, self.stop_signal, timeout)
        finally:
            if self.log_file is not None:
                self.log_file.close()
                self.log_file = None


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """SIG to PROC, SIGKILL to its group after TIMEOUT, then kill what is left of the
    group (PROC leads a session and group of its own: its children are in the group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    kill_group(proc.pid, timeout)


def kill_group(pgid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGKILL every process left in process group PGID; wait until none is."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of group {pgid} outlived SIGKILL: {group_members(pgid)}")
        time.sleep(0.02)


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group PGID."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            members.append(int(entry))
    return members


def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In the child: get SIG when the test process dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, sig)  # PR_SET_PDEATHSIG


def private_dir(base: Path, name: str, owner: str | None) -> tuple[Path, Callable[[], None]]:
    """A directory for the data of a server that runs as user OWNER, and its remover.

    Not root (or no OWNER): BASE/NAME.  Root: pytest's temporary directories are
    private to root (mode 0700 up the tree), so the directory is made with mkdtemp in
    the system's temporary directory, owned by OWNER, with a symlink BASE/NAME to it;
    the remover deletes it (a server's data is not kept after it stops).
    """
    link = base / name
    if owner is None or os.geteuid() != 0:
        link.mkdir(parents=True, exist_ok=True)
        return link, lambda: None
    path = Path(tempfile.mkdtemp(prefix=f"pimsync-{name}-"))
    path.chmod(0o755)
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    with contextlib.suppress(OSError):
        link.unlink(missing_ok=True)
        link.symlink_to(path)

    def remove() -> None:
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            link.unlink(missing_ok=True)

    return path, remove


def chown_tree(path: Path, owner: str | None) -> None:
    """Give PATH and everything under it to user OWNER (and its group), if we are root."""
    if owner is None or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _wait_ready(server: DavServer, timeout: float, *, auth: bool = True) -> bool:
    """True when the server answers OPTIONS; False if it exited; raise on timeout.

    It must be *our* process that listens on the port (checked through /proc), so
    that a port taken by someone else in the meantime is never mistaken for ours.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        if _owns_listener(server.pid, server.port):
            try:
                with socket.create_connection((HOST, server.port), timeout=0.5):
                    pass
                resp = server.request("OPTIONS", "/", timeout=2.0, auth=auth)
                if resp.status < 500:
                    return True
            except OSError:
                pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(
        f"{server.kind} did not answer on {server.url} within {timeout:.0f} s; "
        f"log tail:\n{server.log_tail()}"
    )


def _owns_listener(pid: int, port: int) -> bool:
    """True if process PID holds a socket listening on PORT (True if /proc can't tell)."""
    inodes = {fields[9] for fields in _listen_rows(port)}
    if not os.path.isdir(f"/proc/{pid}/fd"):
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pid_exists(pid: int) -> bool:
    """True if a process PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@atexit.register
def _stop_all() -> None:
    """Last resort if a session finaliser did not run."""
    for server in list(_RUNNING.values()):
        with contextlib.suppress(Exception):
            server.stop(timeout=2.0)


# ---------------------------------------------------------------------------
# seeding


def _seed_radicale(root: Path, path: str, kind: RecordKind, files: Mapping[str, bytes]) -> None:
    """Radicale: files in collection-root/USER/NAME/ plus .Radicale.props.

    Written under Radicale's own storage lock (flock on ROOT/.Radicale.lock) and
    each file through a temporary name, so a running server never sees half a
    collection.  Radicale indexes the files (and re-serialises them in its item
    cache) at the next listing.
    """
    tag = "VCALENDAR" if kind == "ics" else "VADDRESSBOOK"
    folder = root / "collection-root" / path.strip("/")
    with _radicale_lock(root):
        if folder.exists():
            props_file = folder / ".Radicale.props"
            props = json.loads(props_file.read_text("utf-8")) if props_file.exists() else {}
            if props.get("tag") != tag:
                raise ValueError(f"{path} exists and is not a {tag} collection")
            target = folder
        else:
            folder.parent.mkdir(parents=True, exist_ok=True)
            target = folder.parent / f".Radicale.tmp-seed-{uuid.uuid4().hex}"
            target.mkdir()
            (target / ".Radicale.props").write_text(json.dumps({"tag": tag}), "utf-8")
        for name, data in files.items():
            if target is folder:  # live collection: never show a half-written file
                tmp = target / f".Radicale.tmp-{name}"
                tmp.write_bytes(data)
                os.replace(tmp, target / name)
            else:
                (target / name).write_bytes(data)
        if target is not folder:
            os.rename(target, folder)


@contextlib.contextmanager
def _radicale_lock(root: Path) -> Iterator[None]:
    with open(root / ".Radicale.lock", "w+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _seed_xandikos(root: Path, path: str, kind: RecordKind, files: Mapping[str, bytes]) -> None:
    """Xandikos: one commit into the collection's git repository.

    A Xandikos collection is a non-bare git repository (TreeGitStore) whose type
    (calendar|addressbook) is in a committed ``.xandikos`` file, as for one made by
    MKCALENDAR/MKCOL.  The server serves what the git index holds, so plain files
    are not enough: write the work-tree files, add them to the index and commit
    once, under dulwich's index lock like the server does.  Records are stored and
    served as given, whereas a PUT re-serialises an .ics.
    """
    import dulwich.repo  # dependency of xandikos
    from dulwich.index import index_entry_from_stat, locked_index
    from dulwich.objects import Blob
    from xandikos.store import STORE_TYPE_ADDRESSBOOK, STORE_TYPE_CALENDAR
    from xandikos.store.git import TreeGitStore

    store_type = STORE_TYPE_CALENDAR if kind == "ics" else STORE_TYPE_ADDRESSBOOK
    folder = root / path.strip("/")
    if folder.exists():
        store = TreeGitStore.open_from_path(str(folder))
        if store.get_type() != store_type:
            raise ValueError(f"{path} exists and is not a {store_type} collection")
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".seed-{uuid.uuid4().hex}"
        store = TreeGitStore.create(str(tmp))
        store.set_type(store_type)
        store.repo.close()
        os.rename(tmp, folder)
        store = TreeGitStore.open_from_path(str(folder))
    repo: dulwich.repo.Repo = store.repo
    try:
        with locked_index(repo.index_path()) as index:
            for name, data in files.items():
                p = folder / name
                p.write_bytes(data)
                blob = Blob.from_string(data)
                repo.object_store.add_object(blob)
                index[name.encode("utf-8")] = index_entry_from_stat(os.lstat(p), blob.id)
            tree = index.commit(repo.object_store)
            repo.get_worktree().commit(message=f"Seed {len(files)} records".encode(), tree=tree)
    finally:
        repo.close()


def _seed_http(
    server: DavServer, name: str, path: str, kind: RecordKind, files: Mapping[str, bytes]
) -> None:
    """Cyrus, DAViCal: make the collection if missing, then PUT each record.

    The PUTs go over SEED_CONNECTIONS keep-alive connections at once (a new one
    after the server closed one).  A record the server refuses raises RuntimeError
    with its answer.
    """
    want = C_CALENDAR if kind == "ics" else CR_ADDRESSBOOK
    resp = server.propfind(path, "<D:resourcetype/>", depth="0")
    if resp.status == 404:
        server.make_collection(name, kind)
    elif resp.status != 207:
        raise RuntimeError(f"PROPFIND {path} on {server.kind}: {resp.status} {resp.text[:500]}")
    else:
        types = parse_multistatus(resp.body).get(path, {}).get(f"{{{DAV_NS}}}resourcetype")
        if types is None or types.find(want) is None:
            raise ValueError(f"{path} exists and is not a {want} collection")
    ctype = "text/calendar" if kind == "ics" else "text/vcard"
    headers = {"Content-Type": f"{ctype}; charset=utf-8"}
    auth = server.auth_header()
    if auth is not None:
        headers["Authorization"] = auth
    local = threading.local()
    conns: list[http.client.HTTPConnection] = []

    def put(item: tuple[str, bytes]) -> None:
        res, data = item
        href = path + urllib.parse.quote(res)
        for attempt in (1, 2):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(
                    HOST, server.port, timeout=REQUEST_TIMEOUT
                )
                conns.append(conn)
            try:
                conn.request("PUT", href, body=data, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise
                continue
            if answer.will_close:
                conn.close()
                local.conn = None
            if answer.status not in (200, 201, 204):
                raise RuntimeError(
                    f"PUT {href} on {server.kind}: {answer.status} "
                    f"{body.decode('utf-8', 'replace')[:500]}"
                )
            return

    try:
        with concurrent.futures.ThreadPoolExecutor(SEED_CONNECTIONS) as pool:
            for _ in pool.map(put, files.items()):
                pass
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------------------
# small helpers

DAV_NS = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
C_CALENDAR = f"{{{CALDAV_NS}}}calendar"
CR_ADDRESSBOOK = f"{{{CARDDAV_NS}}}addressbook"


def parse_multistatus(body: bytes) -> dict[str, dict[str, ET.Element]]:
    """href -> {Clark name: element} of the 200 OK properties in a multistatus."""
    out: dict[str, dict[str, ET.Element]] = {}
    for response in ET.fromstring(body).iter(f"{{{DAV_NS}}}response"):
        href = urllib.parse.unquote(response.findtext(f"{{{DAV_NS}}}href") or "")
        props = out.setdefault(href, {})
        for propstat in response.iter(f"{{{DAV_NS}}}propstat"):
            status = propstat.findtext(f"{{{DAV_NS}}}status") or ""
            if " 200 " not in status:
                continue
            for prop in propstat.iter(f"{{{DAV_NS}}}prop"):
                for child in prop:
                    props[child.tag] = child
    return out


def sync_token_of(body: bytes) -> str | None:
    """The top-level sync-token of a sync-collection multistatus."""
    token = ET.fromstring(body).find(f"{{{DAV_NS}}}sync-token")
    return None if token is None else (token.text or "")


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"not a plain resource/collection name: {name!r}")


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(k.lower() == name.lower() for k in headers)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def listening_sockets(port: int) -> list[str]:
    """Local addresses (kernel hex form, e.g. "0100007F:1F90") in LISTEN state on PORT."""
    return [fields[1] for fields in _listen_rows(port)]


def _listen_rows(port: int) -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):  # 0A = LISTEN
                rows.append(fields)
    return rows


# The servers that are Debian packages (tests/servers/install.sh installs them).
from tests.servers.cyrus import start_cyrus  # noqa: E402
from tests.servers.davical import start_davical  # noqa: E402

__all__ = ["start_cyrus", "start_davical"]
