"""CalDAV benchmark: pimsync against vdirsyncer and against the floor the server allows.

Starts one Radicale on 127.0.0.1 and runs, on identical generated calendars (the events of
``bench_local.py``), three clients as child processes, so interpreter start-up and imports
count in every figure:

- **pimsync**: ``python -m pimsync --config CFG run``; a vdir storage (collection
  ``pim-N``) paired with a caldav storage (``/alice/``, ``collections = ["pim-N"]``);
- **vdirsyncer** (from PyPI, in its own venv, created if missing; only to measure
  against): ``vdirsyncer -c CFG sync``; a filesystem storage paired with a caldav storage,
  collection ``vds-N``; ``vdirsyncer discover`` runs once beforehand, untimed;
- **the floor**: a minimal ``http.client`` client (``python -c CODE SPEC``, interpreter
  start-up included) that sends only the requests a perfect tool must send.

Each tool has its own server collection and its own local vdir, both starting from the
same data. Phases:

1. First upload of the upload size (default 1,000) events from a local vdir to an empty
   server collection (made beforehand with MKCALENDAR): pimsync, vdirsyncer, and as the
   floor a plain serial PUT loop (``If-None-Match: *``, one connection per request).
2. For each size (default 1,000, 5,000, 20,000): collection ``pim-N`` is seeded straight
   into Radicale's storage directory and indexed by one untimed REPORT, then copied with
   Radicale's item cache as ``vds-N`` (and ``flr-N`` for the floor at the edit size), so
   Radicale indexes it once; each tool downloads its collection once (timed, shown as
   "first download"); then a no-change run of each tool and one sync-collection REPORT
   with a valid token (the floor), 3 times interleaved, median shown. pimsync's requests
   of a no-change run are also counted in-process (``pimsync.cli.main`` with
   ``HttpClient._send`` wrapped).
3. At the edit size (default 5,000): 10 SUMMARY edits in the local vdir and 10 on the
   server (PUT with ``If-Match`` by the benchmark), then one run of each tool; the floor is
   the REPORT with the previous token, one calendar-multiget of the hrefs that changed on
   the server and 10 PUTs with ``If-Match`` against a third collection with the same data
   and the same server edits. 3 rounds with different records, median shown.

Every request is counted from Radicale's log (level info names the method and the
User-Agent of each request). Every run is checked before its figure counts: exit 0
(pimsync: the summary line with the expected counts), both sides hold exactly the
expected records by UID with the expected SUMMARY each (the server side is read from
Radicale's storage directory), and a no-change run wrote nothing (no write request in the
log, no local file touched). A failed check stops the benchmark.

pimsync runs from a copy of ``pimsync/`` taken at the start (PYTHONPATH, PYTHONSAFEPATH),
so that work committed meanwhile does not mix versions. Radicale logs at level info and
its REPORT limit of 10,000 VEVENTs per answer is raised (vdirsyncer fetches a whole
collection in one multiget and fails above it).

Usage: python bench/bench_dav.py [--quick] [--sizes 1000,5000,20000] [--upload 1000]
                                 [--edit-size 5000] [--repeats 3] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bench_local as bl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import servers  # noqa: E402

USER = "alice"
PAIR = "bench"
EDITS = 10
DEFAULT_REPEATS = 3
REPEATS = DEFAULT_REPEATS  # set from --repeats
DEFAULT_SIZES = (1000, 5000, 20000)
QUICK_SIZES = (200, 500)
VDS_VENV = Path("/tmp/pimsync-bench/vdirsyncer-venv")
FLOOR_UA = "bench-floor"
WRITE_METHODS = frozenset({"PUT", "DELETE", "MKCOL", "MKCALENDAR", "PROPPATCH", "MOVE", "COPY"})
SYNC_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<d:sync-collection xmlns:d="DAV:">{token}<d:sync-level>1</d:sync-level>'
    "<d:prop><d:getetag/></d:prop></d:sync-collection>"
)

# The floor client: run as ``python -c FLOOR_CODE SPEC.json``; prints a JSON result.
# SPEC: host, port, auth, path; optional "token" (sync-collection REPORT with it, then one
# calendar-multiget of the changed hrefs that are not its own writes, "own": href -> etag);
# "puts": [[href, etag or null, file]] (PUT with If-Match, or If-None-Match: * when null).
FLOOR_CODE = r"""
import http.client, json, sys
import xml.etree.ElementTree as ET
from urllib.parse import unquote
with open(sys.argv[1]) as f:
    spec = json.load(f)
base = {"Authorization": spec["auth"], "User-Agent": "bench-floor"}
def req(method, path, body, headers):
    conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=120)
    conn.request(method, path, body=body, headers={**base, **headers})
    resp = conn.getresponse()
    data = resp.read()
    etag = resp.getheader("ETag")
    conn.close()
    return resp.status, data, etag
xml_type = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
out = {"etags": {}}
path = spec["path"]
if spec.get("token") is not None:
    body = ('<?xml version="1.0" encoding="utf-8"?>\n<d:sync-collection xmlns:d="DAV:">'
            "<d:sync-token>" + spec["token"] + "</d:sync-token><d:sync-level>1</d:sync-level>"
            "<d:prop><d:getetag/></d:prop></d:sync-collection>")
    status, data, _ = req("REPORT", path, body.encode(), xml_type)
    if status != 207:
        sys.exit(f"REPORT: {status} {data[:300]!r}")
    root = ET.fromstring(data)
    changed = {}
    for r in root.iter("{DAV:}response"):
        href = unquote(r.findtext("{DAV:}href") or "")
        if href != path:
            changed[href] = r.findtext(".//{DAV:}getetag")
    out["token"] = root.findtext("{DAV:}sync-token")
    out["changed"] = sorted(changed)
    own = spec.get("own", {})
    fetch = [h for h, e in changed.items() if e is None or own.get(h) != e]
    out["fetched"] = 0
    if fetch:
        refs = "".join("<d:href>" + h + "</d:href>" for h in fetch)
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<c:calendar-multiget xmlns:d="DAV:" '
                'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                "<c:calendar-data/></d:prop>" + refs + "</c:calendar-multiget>")
        status, data, _ = req("REPORT", path, body.encode(), xml_type)
        if status != 207:
            sys.exit(f"multiget: {status} {data[:300]!r}")
        tag = "{urn:ietf:params:xml:ns:caldav}calendar-data"
        out["fetched"] = sum(1 for d in ET.fromstring(data).iter(tag) if d.text)
for href, etag, name in spec.get("puts", []):
    with open(name, "rb") as f:
        data = f.read()
    cond = {"If-Match": etag} if etag else {"If-None-Match": "*"}
    status, body, new = req("PUT", href, data, {"Content-Type": "text/calendar; charset=utf-8",
                                                **cond})
    if status not in (200, 201, 204):
        sys.exit(f"PUT {href}: {status} {body[:300]!r}")
    out["etags"][href] = new
print(json.dumps(out))
"""


class BenchError(bl.BenchError):
    """A run failed or left the stores in a wrong state: no figure for it."""


# ------------------------------------------------------------------------------ server


@dataclass
class Radicale:
    """The running server, and its log read as a counter of requests per client."""

    dav: servers.DavServer
    _offset: int = 0

    @property
    def port(self) -> int:
        return self.dav.port

    @property
    def url(self) -> str:
        return self.dav.url

    def collection_dir(self, name: str) -> Path:
        return self.dav.root / "collection-root" / USER / name

    def mark(self) -> None:
        """Start counting requests from now on."""
        self._offset = self.dav.log_path.stat().st_size

    _REQ = re.compile(r"\[INFO\] ([A-Z]+) request for '([^']*)'.* using '(.*?)'(?: HTTP/[\d.]+)?$")

    def requests_since_mark(self) -> dict[str, Counter[str]]:
        """User-Agent family (pimsync, vdirsyncer, floor, other) -> method -> count."""
        time.sleep(0.05)  # the log line is written before the answer; let it reach the file
        with open(self.dav.log_path, "rb") as f:
            f.seek(self._offset)
            text = f.read().decode("utf-8", "replace")
        out: dict[str, Counter[str]] = {}
        for line in text.splitlines():
            m = self._REQ.search(line)
            if m is None:
                continue
            ua = m.group(3)
            who = (
                "pimsync"
                if ua.startswith("pimsync/")
                else "vdirsyncer"
                if ua.startswith("vdirsyncer/")
                else "floor"
                if ua == FLOOR_UA
                else "other"
            )
            out.setdefault(who, Counter())[m.group(1)] += 1
        return out


def start_server(base: Path) -> Radicale:
    """Radicale as ``tests.servers.start_radicale`` starts it, but logging each request."""
    root = base / "storage"
    root.mkdir(parents=True, exist_ok=True)
    config = base / "radicale.conf"

    def command(port: int) -> list[str]:
        config.write_text(
            f"[server]\nhosts = {servers.HOST}:{port}\ndelay_on_error = 0\n"
            "[auth]\ntype = none\ndelay = 0\n[rights]\ntype = owner_only\n"
            f"[storage]\nfilesystem_folder = {root}\n[web]\ntype = none\n"
            "[logging]\nlevel = info\n"
            # Radicale refuses a REPORT answer holding more than 10,000 VEVENTs (400, "REPORT
            # occurrences limit"); vdirsyncer fetches a whole collection in one multiget, so
            # at 20,000 events it fails with the default. The limit costs nothing otherwise.
            "[reporting]\nmax_expand_occurrence = 1000000\n"
        )
        return [sys.executable, "-m", "radicale", "--config", str(config)]

    dav = servers._start(
        "radicale",
        base,
        command,
        root=root,
        username=USER,
        password=None,
        calendar_home=f"/{USER}/",
        addressbook_home=f"/{USER}/",
        env={"RADICALE_CONFIG": str(config)},
    )
    try:
        resp = dav.propfind(f"/{USER}/", "<D:resourcetype/>", depth="0")
        if resp.status != 207:
            raise BenchError(f"Radicale principal not ready: {resp.status}\n{dav.log_tail()}")
    except BaseException:
        dav.stop()
        raise
    return Radicale(dav)


def sync_report(server: Radicale, name: str, token: str = "") -> tuple[str, dict[str, str]]:
    """A sync-collection REPORT from the benchmark: (new token, href -> etag)."""
    tok = f"<d:sync-token>{token}</d:sync-token>" if token else "<d:sync-token/>"
    resp = server.dav.request(
        "REPORT",
        f"/{USER}/{name}/",
        SYNC_BODY.format(token=tok),
        {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        timeout=1800,  # the first listing of a seeded collection indexes it: minutes at 20,000
    )
    if resp.status != 207:
        raise BenchError(f"REPORT /{USER}/{name}/: {resp.status} {resp.text[:300]}")
    new = servers.sync_token_of(resp.body)
    if not new:
        raise BenchError(f"REPORT /{USER}/{name}/: no sync-token")
    etags = {
        href: props[f"{{{servers.DAV_NS}}}getetag"].text or ""
        for href, props in servers.parse_multistatus(resp.body).items()
        if f"{{{servers.DAV_NS}}}getetag" in props and not href.endswith("/")
    }
    return new, etags


def read_server(server: Radicale, name: str) -> dict[str, str]:
    """UID -> SUMMARY of the records of collection NAME, read from Radicale's storage."""
    return bl.read_vdir(server.collection_dir(name))


def server_edit(
    server: Radicale, name: str, events: dict[str, bl.Event], uids: list[str], suffix: str
) -> dict[str, str]:
    """Change the SUMMARY of seeded records on the server (PUT with If-Match)."""
    new: dict[str, str] = {}
    for uid in uids:
        href = f"/{USER}/{name}/{uid}.ics"
        etags = server.dav.etags(href)
        if len(etags) != 1:
            raise BenchError(f"{href}: no etag on the server ({etags})")
        current = read_server_record(server, name, uid)
        ev = dataclasses.replace(events[uid], summary=f"{current} {suffix}")
        resp = server.dav.put(
            href, (ev.file_text() + bl.CRLF).encode(), if_match=next(iter(etags.values()))
        )
        if resp.status not in (200, 201, 204):
            raise BenchError(f"PUT {href}: {resp.status} {resp.text[:300]}")
        new[uid] = ev.summary
    return new


def local_edit(folder: Path, uids: list[str], suffix: str) -> dict[str, str]:
    """Change the SUMMARY of the local files holding ``uids`` (as a user's editor would);
    unlike ``bench_local.edit_vdir`` it takes LF as well as CRLF line endings, because
    the tools store what the server sent."""
    wanted = set(uids)
    new: dict[str, str] = {}
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.name.endswith(".ics"):
            continue
        path = Path(entry.path)
        text = bl._read(path)
        found: dict[str, str] = {}
        bl._events_in(text, entry.path, found, [0])
        [(uid, old)] = found.items()
        if uid not in wanted:
            continue
        new[uid] = f"{old} {suffix}"
        line = re.compile(rf"^SUMMARY:{re.escape(bl._escape(old))}(\r?\n)", re.M)
        escaped = bl._escape(new[uid])
        text, count = line.subn(lambda m, s=escaped: f"SUMMARY:{s}{m.group(1)}", text)
        if count != 1:
            raise BenchError(f"{path}: SUMMARY line of {uid} not found")
        path.write_bytes(text.encode("utf-8"))
    if set(new) != wanted:
        raise BenchError(f"{folder}: could not find {sorted(wanted - set(new))}")
    return new


def read_server_record(server: Radicale, name: str, uid: str) -> str:
    found: dict[str, str] = {}
    path = server.collection_dir(name) / f"{uid}.ics"
    bl._events_in(bl._read(path), str(path), found, [0])
    return found[uid]


# ------------------------------------------------------------------------------ tools


@dataclass
class Run:
    wall: float
    peak_mb: float
    requests: Counter[str]  # method -> count, from Radicale's log
    output: str

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def describe(requests: Counter[str]) -> str:
    return " ".join(f"{m}×{c}" for m, c in sorted(requests.items())) or "none"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.exists():
        return {}
    return {e.name: (e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(folder)}


@dataclass
class Tool:
    """One client (pimsync or vdirsyncer) with its own config, local vdir and collection."""

    family: str  # "pimsync" | "vdirsyncer"
    root: Path
    collection: str
    server: Radicale
    env: dict[str, str]
    vdirsyncer: Path | None = None
    expected: dict[str, str] = field(default_factory=dict)  # UID -> SUMMARY on both sides
    runs: int = 0

    @property
    def config(self) -> Path:
        return self.root / ("config.toml" if self.family == "pimsync" else "config")

    @property
    def local_dir(self) -> Path:
        return self.root / "local" / self.collection

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.local_dir.mkdir(parents=True, exist_ok=True)
        url = f"{self.server.url}{USER}/"
        if self.family == "pimsync":
            self.config.write_text(
                f'[general]\nstate_dir = "{self.root / "state"}"\n\n'
                f'[storages.local]\ntype = "vdir"\npath = "{self.root / "local"}"\n'
                'fileext = ".ics"\n\n'
                f'[storages.server]\ntype = "caldav"\nurl = "{url}"\n'
                f'username = "{USER}"\npassword = "x"\n\n'
                f'[pairs.{PAIR}]\na = "local"\nb = "server"\n'
                f'collections = ["{self.collection}"]\nconflict = "newest"\n'
            )
        else:
            self.config.write_text(
                f'[general]\nstatus_path = "{self.root / "status"}/"\n\n'
                f'[pair {PAIR}]\na = "bench_local"\nb = "bench_server"\n'
                f'collections = ["{self.collection}"]\n\n'
                f'[storage bench_local]\ntype = "filesystem"\npath = "{self.root / "local"}/"\n'
                'fileext = ".ics"\n\n'
                f'[storage bench_server]\ntype = "caldav"\nurl = "{url}"\n'
                f'username = "{USER}"\npassword = "x"\n'
            )

    def command(self, verb: str = "run") -> list[str]:
        if self.family == "pimsync":
            return [sys.executable, "-m", "pimsync", "--config", str(self.config), verb]
        assert self.vdirsyncer is not None
        return [str(self.vdirsyncer), "-c", str(self.config), verb]

    def discover(self) -> None:
        """vdirsyncer only: find the collections once (untimed)."""
        log = self.root / "discover.log"
        cmd = self.command("discover")
        with open(log, "wb") as out:
            code = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            ).returncode
        if code != 0:
            raise BenchError(f"{' '.join(cmd)} exited {code}:\n{log.read_text()}")

    def sync(self, label: str, writes: tuple[int, int], no_change: bool = False) -> Run:
        """One timed run; ``writes`` = (records written locally, records written to the
        server) as pimsync's summary line must say (a ~/+ and b ~/+)."""
        self.runs += 1
        log = self.root / f"run-{self.runs}.log"
        before = snapshot(self.local_dir) if no_change else {}
        self.server.mark()
        code, wall, peak = bl.run_child(
            self.command("run" if self.family == "pimsync" else "sync"), log, self.env
        )
        requests = self.server.requests_since_mark().get(self.family, Counter())
        output = log.read_text("utf-8", "replace")
        where = f"{self.family} {label} ({self.collection})"
        if code != 0:
            raise BenchError(f"{where}: exited {code}:\n{output[-3000:]}")
        if self.family == "pimsync":
            check_summary(where, self.collection, output, writes)
        elif re.search(r"^(error|critical|warning):", output, re.M | re.I):
            raise BenchError(f"{where}: vdirsyncer reported problems:\n{output[-3000:]}")
        if no_change:
            written = sum(c for m, c in requests.items() if m in WRITE_METHODS)
            if written:
                raise BenchError(f"{where}: wrote to the server: {describe(requests)}")
            if snapshot(self.local_dir) != before:
                raise BenchError(f"{where}: touched local files")
        self.check(where)
        return Run(wall, peak, requests, output)

    def check(self, where: str) -> None:
        for side, found in (
            ("local", bl.read_vdir(self.local_dir)),
            ("server", read_server(self.server, self.collection)),
        ):
            if len(found) != len(self.expected):
                raise BenchError(
                    f"{where}: {side} holds {len(found)} records, expected {len(self.expected)}"
                )
            wrong = [u for u, s in self.expected.items() if found.get(u) != s]
            if wrong:
                raise BenchError(
                    f"{where}: {side}: {len(wrong)} records differ, e.g. {wrong[0]}: "
                    f"{found.get(wrong[0])!r} instead of {self.expected[wrong[0]]!r}"
                )


_SUMMARY = (
    r"^{pair}/{col}: a \+(\d+) ~(\d+) -(\d+), b \+(\d+) ~(\d+) -(\d+), (?:.*, )?(\d+) errors?$"
)


def check_summary(where: str, collection: str, output: str, writes: tuple[int, int]) -> None:
    """Local writes are a creations (first download) or a updates; likewise b."""
    m = re.search(_SUMMARY.format(pair=PAIR, col=re.escape(collection)), output, re.M)
    if m is None:
        raise BenchError(f"{where}: no summary line in the output:\n{output[-3000:]}")
    a_new, a_upd, a_del, b_new, b_upd, b_del, errors = (int(g) for g in m.groups())
    if (a_new + a_upd, b_new + b_upd, a_del, b_del, errors) != (*writes, 0, 0, 0):
        raise BenchError(f"{where}: expected writes a {writes[0]}, b {writes[1]}: {m.group(0)}")


def count_pimsync_in_process(tool: Tool) -> tuple[Counter[str], int]:
    """One no-change run of pimsync inside this process, with ``HttpClient._send`` wrapped:
    method -> requests, and the sum of the clients' own ``requests`` counters."""
    import pimsync
    from pimsync import cli
    from pimsync.storage.dav import http as dav_http

    if not pimsync.__file__ or not pimsync.__file__.startswith(str(tool.root.parent)):
        raise BenchError(f"imported pimsync from {pimsync.__file__}, not from the snapshot")

    methods: Counter[str] = Counter()
    clients: list[dav_http.HttpClient] = []
    orig_send = dav_http.HttpClient._send
    orig_init = dav_http.HttpClient.__init__

    def counting_send(self, method, url, body, headers):  # type: ignore[no-untyped-def]
        methods[method] += 1
        return orig_send(self, method, url, body, headers)

    def recording_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        orig_init(self, *args, **kwargs)
        clients.append(self)

    out = io.StringIO()
    dav_http.HttpClient._send = counting_send  # type: ignore[method-assign]
    dav_http.HttpClient.__init__ = recording_init  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["--config", str(tool.config), "run"])
    finally:
        dav_http.HttpClient._send = orig_send  # type: ignore[method-assign]
        dav_http.HttpClient.__init__ = orig_init  # type: ignore[method-assign]
    if code != 0:
        raise BenchError(f"pimsync in-process run exited {code}:\n{out.getvalue()}")
    check_summary("pimsync in-process", tool.collection, out.getvalue(), (0, 0))
    return methods, sum(c.requests for c in clients)


# ------------------------------------------------------------------------------ floor


def floor_run(
    server: Radicale, work: Path, spec: dict[str, object], env: dict[str, str]
) -> tuple[Run, dict[str, object]]:
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / f"floor-{time.monotonic_ns()}.json"
    spec = {"host": servers.HOST, "port": server.port, "auth": auth_header(), **spec}
    spec_path.write_text(json.dumps(spec))
    log = spec_path.with_suffix(".log")
    server.mark()
    code, wall, peak = bl.run_child([sys.executable, "-c", FLOOR_CODE, str(spec_path)], log, env)
    requests = server.requests_since_mark().get("floor", Counter())
    output = log.read_text("utf-8", "replace")
    if code != 0:
        raise BenchError(f"floor client exited {code}:\n{output[-3000:]}")
    return Run(wall, peak, requests, output), json.loads(output.strip().splitlines()[-1])


def auth_header() -> str:
    return "Basic " + base64.b64encode(f"{USER}:x".encode()).decode("ascii")


# ------------------------------------------------------------------------------ setup


def snapshot_pimsync(root: Path) -> tuple[Path, str]:
    """Copy pimsync's sources as they are now: every run measures the same code, even when
    the working tree changes during the benchmark. Returns the folder for PYTHONPATH and a
    description (commit, uncommitted changes)."""
    src = root / "pimsync-src"
    shutil.copytree(REPO / "pimsync", src / "pimsync", ignore=shutil.ignore_patterns("__pycache__"))

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = [line for line in git("status", "--porcelain", "--", "pimsync").splitlines()]
    return src, f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        f" + uncommitted changes in {len(dirty)} files under pimsync/" if dirty else ""
    )


def tree_digest(folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def ensure_vdirsyncer(venv_dir: Path) -> Path:
    exe = venv_dir / "bin" / "vdirsyncer"
    if not exe.exists():
        print(f"installing vdirsyncer from PyPI into {venv_dir} (not the project venv)")
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        subprocess.run(
            [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "-q", "vdirsyncer"],
            check=True,
        )
    version = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"vdirsyncer: {version} ({exe})")
    return exe


def seed(server: Radicale, name: str, events: Iterable[bl.Event]) -> None:
    server.dav.seed(
        name, "ics", {f"{ev.uid}.ics": (ev.file_text() + bl.CRLF).encode() for ev in events}
    )


def clone(server: Radicale, source: str, target: str) -> None:
    """Copy a seeded and indexed collection, with Radicale's item cache, under Radicale's
    storage lock: the copy holds the same files and need not be indexed again (Radicale
    checks a cache entry against the hash of the file, which is the same)."""
    src, dst = server.collection_dir(source), server.collection_dir(target)
    with servers._radicale_lock(server.dav.root):
        tmp = dst.parent / f".Radicale.tmp-clone-{target}"
        shutil.copytree(src, tmp)
        os.rename(tmp, dst)


def timed(what: str, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    print(f"  {what}: {took:.2f} s")
    return took


# ------------------------------------------------------------------------------ phases


@dataclass
class Row:
    phase: str
    pim: float
    vds: float
    floor: float | None
    pim_req: str
    vds_req: str
    floor_req: str = ""
    note: str = ""


def median_runs(runs: list[Run]) -> float:
    return statistics.median(r.wall for r in runs)


def req_text(runs: list[Run]) -> str:
    totals = sorted({r.total for r in runs})
    return "/".join(map(str, totals))


def phase_upload(ctx: Context, n: int) -> None:
    print(f"\n## first upload of {n:,} events")
    events = bl.make_events(n, seed=4242)
    expected = {ev.uid: ev.summary for ev in events}
    tools = {}
    for family, prefix in (("pimsync", "pim"), ("vdirsyncer", "vds")):
        t = ctx.tool(family, f"{prefix}-up{n}")
        t.expected = dict(expected)
        ctx.server.dav.make_collection(t.collection, "ics")
        bl.write_vdir(t.local_dir, events)
        tools[family] = t
    floor_col = f"put-up{n}"
    ctx.server.dav.make_collection(floor_col, "ics")
    files = ctx.root / "upload-files"
    bl.write_vdir(files, events)
    tools["vdirsyncer"].discover()

    spec = {
        "path": f"/{USER}/{floor_col}/",
        "puts": [
            [f"/{USER}/{floor_col}/{ev.uid}.ics", None, str(files / f"{ev.uid}.ics")]
            for ev in events
        ],
    }
    floor, _ = floor_run(ctx.server, ctx.root / "floor", spec, ctx.env)
    if read_server(ctx.server, floor_col) != expected:
        raise BenchError("PUT loop: the server does not hold the expected records")
    print(f"  PUT loop      {floor.wall:8.2f} s  {describe(floor.requests)}")
    pim = tools["pimsync"].sync("first upload", (0, n))
    print(f"  pimsync       {pim.wall:8.2f} s  {describe(pim.requests)}  {pim.peak_mb:.0f} MB")
    vds = tools["vdirsyncer"].sync("first upload", (0, n))
    print(f"  vdirsyncer    {vds.wall:8.2f} s  {describe(vds.requests)}  {vds.peak_mb:.0f} MB")
    ctx.upload = (pim, vds, floor)
    ctx.rows.append(
        Row(
            f"first upload, {n:,}",
            pim.wall,
            vds.wall,
            floor.wall,
            str(pim.total),
            str(vds.total),
            str(floor.total),
            "floor: serial PUT loop",
        )
    )


def phase_size(ctx: Context, n: int, edit: bool, profile: bool) -> None:
    print(f"\n## {n:,} events")
    events = bl.make_events(n)
    by_uid = {ev.uid: ev for ev in events}
    expected = {ev.uid: ev.summary for ev in events}
    pim = ctx.tool("pimsync", f"pim-{n}")
    vds = ctx.tool("vdirsyncer", f"vds-{n}")
    flr = f"flr-{n}"
    names = [pim.collection, vds.collection] + ([flr] if edit else [])
    tokens: dict[str, str] = {}
    etags: dict[str, dict[str, str]] = {}

    def index(name: str) -> None:
        tokens[name], etags[name] = sync_report(ctx.server, name)
        if len(etags[name]) != n:
            raise BenchError(f"{name}: Radicale lists {len(etags[name])} records, not {n}")

    timed(f"seeding {names[0]} into Radicale's storage", lambda: seed(ctx.server, names[0], events))
    timed(f"Radicale indexes {names[0]} (first REPORT, untimed)", lambda: index(names[0]))
    for name in names[1:]:
        timed(
            f"cloning it as {name}, with Radicale's cache",
            lambda name=name: clone(ctx.server, names[0], name),
        )
        timed(f"listing {name} (untimed)", lambda name=name: index(name))

    for t in (pim, vds):
        t.expected = dict(expected)
    vds.discover()
    first_p = pim.sync("first download", (n, 0))
    print(f"  first download: pimsync {first_p.wall:.2f} s ({describe(first_p.requests)})")
    first_v = vds.sync("first download", (n, 0))
    print(f"  first download: vdirsyncer {first_v.wall:.2f} s ({describe(first_v.requests)})")
    if profile and edit:
        again = Tool(
            "pimsync",
            ctx.root / f"{pim.collection}-profiled-download",
            pim.collection,
            ctx.server,
            ctx.env,
            expected=dict(expected),
        )
        again.write_config()
        ctx.profiles.append((f"first download, {n:,} events", profile_pimsync(ctx, again, (n, 0))))
    ctx.rows.append(
        Row(
            f"first download, {n:,}",
            first_p.wall,
            first_v.wall,
            None,
            str(first_p.total),
            str(first_v.total),
            note="seeded server → empty vdir",
        )
    )

    p_runs: list[Run] = []
    v_runs: list[Run] = []
    f_runs: list[Run] = []
    for i in range(REPEATS):
        p = pim.sync(f"no change #{i + 1}", (0, 0), no_change=True)
        v = vds.sync(f"no change #{i + 1}", (0, 0), no_change=True)
        f, result = floor_run(
            ctx.server,
            ctx.root / "floor",
            {"path": f"/{USER}/{pim.collection}/", "token": tokens[pim.collection]},
            ctx.env,
        )
        if result["changed"]:
            raise BenchError(f"floor: no-change REPORT reported changes: {result['changed'][:3]}")
        p_runs.append(p)
        v_runs.append(v)
        f_runs.append(f)
        print(
            f"  no change #{i + 1}: pimsync {p.wall:.3f} s ({describe(p.requests)}, "
            f"{p.peak_mb:.0f} MB), vdirsyncer {v.wall:.3f} s ({describe(v.requests)}, "
            f"{v.peak_mb:.0f} MB), floor {f.wall:.3f} s ({describe(f.requests)})"
        )
    methods, own_counter = count_pimsync_in_process(pim)
    print(
        f"  pimsync no-change run in-process: {describe(methods)} "
        f"(HttpClient.requests: {own_counter})"
    )
    ctx.nochange[n] = (p_runs, v_runs, f_runs, methods)
    ctx.rows.append(
        Row(
            f"no change, {n:,} (median of {REPEATS})",
            median_runs(p_runs),
            median_runs(v_runs),
            median_runs(f_runs),
            f"{sum(methods.values())} (log: {req_text(p_runs)})",
            req_text(v_runs),
            req_text(f_runs),
        )
    )
    if profile:
        ctx.profiles.append((f"no-change run, {n:,} events", profile_pimsync(ctx, pim)))

    if edit:
        phase_edits(ctx, n, events, by_uid, pim, vds, flr, tokens[flr], etags[flr], profile)


def phase_edits(
    ctx: Context,
    n: int,
    events: list[bl.Event],
    by_uid: dict[str, bl.Event],
    pim: Tool,
    vds: Tool,
    flr: str,
    token: str,
    flr_etags: dict[str, str],
    profile: bool,
) -> None:
    uids = [ev.uid for ev in events]
    step = n // EDITS
    if step < 2 * (REPEATS + 1):
        raise BenchError(f"--edit-size {n} is too small for {REPEATS + 1} rounds of edits")
    flr_expected = {ev.uid: ev.summary for ev in events}
    own: dict[str, str] = {}
    p_runs: list[Run] = []
    v_runs: list[Run] = []
    f_runs: list[Run] = []
    rounds = REPEATS + (1 if profile else 0)
    for r in range(rounds):
        local = [uids[k * step + 2 * r] for k in range(EDITS)]
        remote = [uids[k * step + 2 * r + 1] for k in range(EDITS)]
        profiling = r == REPEATS
        tools = (pim,) if profiling else (pim, vds)
        for t in tools:
            t.expected.update(local_edit(t.local_dir, local, f"(local edit {r + 1})"))
            t.expected.update(
                server_edit(ctx.server, t.collection, by_uid, remote, f"(server edit {r + 1})")
            )
        if profiling:
            ctx.profiles.append(
                (
                    f"run after {EDITS} local + {EDITS} server edits, {n:,} events",
                    profile_pimsync(ctx, pim, (EDITS, EDITS)),
                )
            )
            break
        # the floor: the same server edits on its own copy, then the local edits as PUTs
        flr_expected.update(server_edit(ctx.server, flr, by_uid, remote, f"(server edit {r + 1})"))
        work = ctx.root / "floor" / f"edits-{r}"
        work.mkdir(parents=True, exist_ok=True)
        puts = []
        for uid in local:
            ev = dataclasses.replace(
                by_uid[uid], summary=f"{flr_expected[uid]} (local edit {r + 1})"
            )
            flr_expected[uid] = ev.summary
            path = work / f"{uid}.ics"
            path.write_bytes((ev.file_text() + bl.CRLF).encode())
            href = f"/{USER}/{flr}/{uid}.ics"
            puts.append([href, flr_etags[href], str(path)])

        p = pim.sync(f"{EDITS}+{EDITS} edits #{r + 1}", (EDITS, EDITS))
        v = vds.sync(f"{EDITS}+{EDITS} edits #{r + 1}", (EDITS, EDITS))
        f, result = floor_run(
            ctx.server,
            work,
            {"path": f"/{USER}/{flr}/", "token": token, "own": own, "puts": puts},
            ctx.env,
        )
        if result["fetched"] != EDITS:
            raise BenchError(
                f"floor fetched {result['fetched']} records, expected {EDITS}: {result['changed']}"
            )
        if read_server(ctx.server, flr) != flr_expected:
            raise BenchError("floor: the server does not hold the expected records")
        token = str(result["token"])
        new_etags = dict(result["etags"])  # type: ignore[call-overload]
        own = new_etags
        flr_etags.update(new_etags)
        p_runs.append(p)
        v_runs.append(v)
        f_runs.append(f)
        print(
            f"  {EDITS}+{EDITS} edits #{r + 1}: pimsync {p.wall:.3f} s ({describe(p.requests)}),"
            f" vdirsyncer {v.wall:.3f} s ({describe(v.requests)}), floor {f.wall:.3f} s "
            f"({describe(f.requests)})"
        )
    ctx.edits = (n, p_runs, v_runs, f_runs)
    ctx.rows.append(
        Row(
            f"{EDITS} local + {EDITS} server edits, {n:,} (median of {REPEATS})",
            median_runs(p_runs),
            median_runs(v_runs),
            median_runs(f_runs),
            req_text(p_runs),
            req_text(v_runs),
            req_text(f_runs),
        )
    )


def profile_pimsync(ctx: Context, tool: Tool, writes: tuple[int, int] = (0, 0)) -> str:
    """Run pimsync once under ``python -m cProfile``; return the top of the profile."""
    out = tool.root / f"profile-{tool.runs}.pstats"
    cmd = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(out),
        "-m",
        "pimsync",
        "--config",
        str(tool.config),
        "run",
    ]
    log = tool.root / f"profile-{tool.runs}.log"
    code, wall, _ = bl.run_child(cmd, log, tool.env)
    if code != 0:
        raise BenchError(f"profiled run exited {code}:\n{log.read_text()}")
    check_summary("profiled run", tool.collection, log.read_text(), writes)
    tool.check("profiled run")
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.strip_dirs().sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    return f"(wall under the profiler {wall:.2f} s, {out})\n{text.getvalue()}"


# ------------------------------------------------------------------------------ main


@dataclass
class Context:
    root: Path
    server: Radicale
    env: dict[str, str]
    vdirsyncer: Path
    rows: list[Row] = field(default_factory=list)
    upload: tuple[Run, Run, Run] | None = None
    nochange: dict[int, tuple[list[Run], list[Run], list[Run], Counter[str]]] = field(
        default_factory=dict
    )
    edits: tuple[int, list[Run], list[Run], list[Run]] | None = None
    profiles: list[tuple[str, str]] = field(default_factory=list)

    def tool(self, family: str, collection: str) -> Tool:
        t = Tool(
            family,
            self.root / collection,
            collection,
            self.server,
            self.env,
            self.vdirsyncer if family == "vdirsyncer" else None,
        )
        t.write_config()
        return t


def warm_up(ctx: Context) -> None:
    """Sync 20 records with both tools, unmeasured, so that their modules are compiled
    (into the benchmark's bytecode cache) before the first measured run."""
    events = bl.make_events(20, seed=1)
    for family, name in (("pimsync", "pim-warm"), ("vdirsyncer", "vds-warm")):
        seed(ctx.server, name, events)
        t = ctx.tool(family, name)
        t.expected = {ev.uid: ev.summary for ev in events}
        if family == "vdirsyncer":
            t.discover()
        t.sync("warm-up", (20, 0))
        t.sync("warm-up", (0, 0), no_change=True)
    _, _ = floor_run(ctx.server, ctx.root / "floor", {"path": f"/{USER}/pim-warm/"}, ctx.env)


def markdown_table(rows: list[Row]) -> str:
    out = [
        "| phase | pimsync s | vdirsyncer s | ratio (vdirsyncer/pimsync) | floor s "
        "| pimsync/floor | requests (pimsync / vdirsyncer / floor) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        floor = f"{r.floor:.3f}" if r.floor is not None else "–"
        rel = f"{r.pim / r.floor:.2f}×" if r.floor else "–"
        reqs = f"{r.pim_req} / {r.vds_req}" + (f" / {r.floor_req}" if r.floor_req else "")
        phase = r.phase + (f" ({r.note})" if r.note else "")
        out.append(
            f"| {phase} | {r.pim:.3f} | {r.vds:.3f} | {r.vds / r.pim:.2f}× | {floor} | {rel} "
            f"| {reqs} |"
        )
    return "\n".join(out)


def verdicts(ctx: Context, sizes: list[int], edit_size: int) -> list[str]:
    out: list[str] = []

    def say(ok: bool, text: str) -> None:
        out.append(f"- {text}: **{'met' if ok else 'NOT met'}**")

    ref = 5000 if 5000 in ctx.nochange else max(ctx.nochange)
    p_runs, v_runs, f_runs, methods = ctx.nochange[ref]
    p, v, f = median_runs(p_runs), median_runs(v_runs), median_runs(f_runs)
    others = ", ".join(
        f"{n:,}: {median_runs(c[0]) / median_runs(c[2]):.2f}×"
        for n, c in sorted(ctx.nochange.items())
    )
    say(
        p <= 1.5 * f,
        f"no-change run within 1.5× of the floor at {ref:,} events "
        f"({p:.3f} s vs {f:.3f} s = {p / f:.2f}×; at each size: {others})",
    )
    say(
        v >= 3 * p,
        f"no-change run at least 3× faster than vdirsyncer at {ref:,} events "
        f"({v:.3f} s vs {p:.3f} s = {v / p:.2f}×)",
    )
    counts = {
        n: (sum(c[3].values()), sorted({r.total for r in c[0]}))
        for n, c in sorted(ctx.nochange.items())
    }
    one = all(total == 1 and logged == [1] for total, logged in counts.values())
    say(
        one,
        "one request per unchanged collection ("
        + ", ".join(
            f"{n:,}: {total} in-process, {'/'.join(map(str, logged))} in Radicale's log"
            for n, (total, logged) in counts.items()
        )
        + ")",
    )
    own = {n: median_runs(c[0]) - median_runs(c[2]) for n, c in sorted(ctx.nochange.items())}
    lo, hi = min(own), max(own)
    flat = own[hi] <= max(1.5 * own[lo], own[lo] + 0.05)
    slope = (own[hi] - own[lo]) / (hi - lo) * 1e6 if hi > lo else 0.0
    say(
        flat,
        "pimsync's own cost (median no-change run minus the floor) flat as the "
        "collection grows, i.e. at the largest size at most max(1.5×, +0.05 s) of the "
        "smallest ("
        + ", ".join(f"{n:,}: {c:.3f} s" for n, c in own.items())
        + f"; {slope:.1f} µs per extra record)",
    )
    if ctx.edits is not None:
        n, pe, ve, fe = ctx.edits
        p, v, f = median_runs(pe), median_runs(ve), median_runs(fe)
        say(
            p <= 1.5 * f,
            f"run after {EDITS}+{EDITS} edits within 1.5× of its floor at "
            f"{n:,} ({p:.3f} s vs {f:.3f} s = {p / f:.2f}×)",
        )
        say(
            v >= 2 * p,
            f"run after {EDITS}+{EDITS} edits at least 2× faster than vdirsyncer "
            f"at {n:,} ({v:.3f} s vs {p:.3f} s = {v / p:.2f}×)",
        )
    if ctx.upload is not None:
        pu, vu, fu = ctx.upload
        say(
            pu.wall <= vu.wall,
            f"first upload no slower than vdirsyncer ({pu.wall:.2f} s vs "
            f"{vu.wall:.2f} s = {pu.wall / vu.wall:.2f}×)",
        )
        say(
            pu.wall <= 1.2 * fu.wall,
            f"first upload within 1.2× of a plain serial PUT loop "
            f"({pu.wall:.2f} s vs {fu.wall:.2f} s = {pu.wall / fu.wall:.2f}×)",
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="no-change sizes, comma-separated (default 1000,5000,20000)",
    )
    parser.add_argument(
        "--upload",
        type=int,
        default=1000,
        metavar="N",
        help="events in the first-upload phase (default 1000; 0 skips it)",
    )
    parser.add_argument(
        "--edit-size",
        type=int,
        default=None,
        metavar="N",
        help="size of the edit phase (default 5000, else the largest size)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="sizes 200,500, upload 200: to check the script works"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run pimsync under cProfile (no-change at each size, and "
        "one extra round of edits) and print the top of each profile",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        metavar="K",
        help="runs per median (default 3)",
    )
    parser.add_argument("--vdirsyncer-venv", type=Path, default=VDS_VENV)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    global REPEATS
    REPEATS = max(1, args.repeats)
    if args.quick:
        sizes, upload = list(QUICK_SIZES), 200
    else:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        upload = args.upload
    edit_size = args.edit_size or (5000 if 5000 in sizes else max(sizes))
    if edit_size not in sizes:
        sizes.append(edit_size)
    sizes.sort()

    root = Path(tempfile.mkdtemp(prefix="pimsync-bench-dav-"))
    started = time.perf_counter()
    print(
        f"pimsync CalDAV benchmark: upload {upload:,}, sizes {sizes}, edits at {edit_size:,}; "
        f"data in {root}"
    )
    print(bl.machine())
    print("load average at the start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    vds_exe = ensure_vdirsyncer(args.vdirsyncer_venv)
    env = bl.child_env(root, bytecode_cache=True)
    src, described = snapshot_pimsync(root)
    live_digest = tree_digest(REPO / "pimsync")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    env["PYTHONSAFEPATH"] = "1"  # no current directory on sys.path: it may be the repository
    sys.path.insert(0, str(src))  # the in-process request count uses the snapshot too
    print(f"pimsync: {described}; measured from a copy in {src}")
    where = subprocess.run(
        [sys.executable, "-c", "import pimsync; print(pimsync.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(src)):
        print(f"pimsync imports from {where}, not from the copy {src}", file=sys.stderr)
        return 1
    server = start_server(root / "radicale")
    radicale_version = subprocess.run(
        [sys.executable, "-c", "import radicale; print(radicale.VERSION)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"Radicale {radicale_version} on {server.url} (pid {server.dav.pid})")
    ctx = Context(root, server, env, vds_exe)
    try:
        warm_up(ctx)
        if upload:
            phase_upload(ctx, upload)
        for n in sizes:
            phase_size(ctx, n, n == edit_size, args.profile)
    except (bl.BenchError, OSError) as exc:
        print(f"\nBENCHMARK FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"data kept in {root}; Radicale log: {server.dav.log_path}", file=sys.stderr)
        return 1
    finally:
        server.dav.stop()

    print(f"\n### Results (whole benchmark {time.perf_counter() - started:.0f} s)\n")
    if tree_digest(REPO / "pimsync") != live_digest:
        print(
            "note: pimsync's working tree changed during the run; every run used the copy "
            "taken at the start\n"
        )
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + "\n")
    print(markdown_table(ctx.rows))
    print("\nTargets:")
    print("\n".join(verdicts(ctx, sizes, edit_size)))
    for title, text in ctx.profiles:
        print(f"\n### Profile of pimsync: {title}\n\n{text}")
    if args.keep:
        print(f"\ndata kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
