"""Archive-export benchmark: time and peak memory of ``pimsync export`` from Radicale.

Starts one Radicale on 127.0.0.1 (``tests.servers.start_radicale``) and seeds, straight into
its storage directory, one calendar per size (default 1,000 and 10,000 events, the events
of ``bench_local.py``: ~0.6 KB of VEVENT, ~0.9 KB per resource with its VTIMEZONE) and,
unless ``--contacts 0``, one address book of 10,000 vCards (~0.47 KB each). Radicale
indexes each collection at one untimed listing.

For every collection, 3 times interleaved (median shown):

- **export**: ``python -m pimsync --config CFG export`` as a child process, interpreter
  start-up included; the config has one caldav (carddav) storage whose ``url`` is the
  collection itself (pimsync then archives just that collection) and one
  ``[exports.bench]`` writing a tar.gz into the benchmark's temp dir (a fresh directory per
  run). Wall time, and the child's peak RSS from ``os.wait4``, both taken by a small
  launcher process (see ``LAUNCH_CODE`` for why).
- **listing** (the reference): one full multiget listing of the same collection by a
  minimal child process (``python -c CODE``, interpreter start-up included) that uses only
  ``http.client`` and ``xml.etree``: one sync-collection REPORT with an empty token (Depth
  1), then calendar-multiget (addressbook-multiget) REPORTs of 100 hrefs each
  (``--listing-batch``), one after the other, each answer parsed and its records counted.

Every child imports a copy of ``pimsync/`` taken when the benchmark starts (the commit is
printed), so that the figures belong to one version of the code even if the work tree
changes meanwhile.

Checks before a figure counts: the export exits 0 and names its archive; ``pimsync archive
verify`` on it exits 0 and counts 1 collection and N records; the manifest lists exactly
the seeded UIDs, no unreadable record and a settled collection; the listing lists and
fetches N records. A failed check stops the benchmark. No measured run overlaps another
benchmark (any other ``bench_*.py`` process): the benchmark waits for it to end, and makes
again a run during which one was seen.

Targets (the issue's): peak memory at 10,000 events within 20 % of the peak at 1,000
(largest peak of the 3 runs at each size), and the export at 10,000 events within 2× of
the listing (medians). If one is missed, or with ``--profile``, an export of each calendar
is run once more in-process with each phase of ``write_archive`` timed and its memory
recorded (``PHASES_CODE``), without and with ``tracemalloc``, and the export of the largest
calendar under cProfile: as ``python -m cProfile -m pimsync export`` runs it, and with the
multigets' thread pool replaced by a serial executor (cProfile sees only the main thread).

Usage: python bench/bench_export.py [--sizes 1000,10000] [--contacts 10000] [--repeats 3]
                                    [--listing-batch 100] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import bench_local as bl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import servers  # noqa: E402

USER = servers.RADICALE_USER
EXPORT = "bench"
DEFAULT_SIZES = (1000, 10000)
DEFAULT_CONTACTS = 10000
PEAK_RATIO_TARGET = 1.2
TIME_RATIO_TARGET = 2.0
CRLF = "\r\n"
MAX_RETRIES = 20
LOCK = Path(tempfile.gettempdir()) / "pimsync-bench-export.lock"  # one run at a time

# The reference client: ``python -c LISTING_CODE SPEC.json``; prints a JSON result.
# SPEC: host, port, auth, path, kind ("ics" or "vcf"), batch.
LISTING_CODE = r"""
import http.client, json, sys, time
import xml.etree.ElementTree as ET
from urllib.parse import unquote
from xml.sax.saxutils import escape
with open(sys.argv[1]) as f:
    spec = json.load(f)
headers = {"Authorization": spec["auth"], "Depth": "1",
           "Content-Type": "application/xml; charset=utf-8"}
def report(body):
    conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=600)
    conn.request("REPORT", spec["path"], body=body.encode(), headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 207:
        sys.exit(f"REPORT: {resp.status} {data[:300]!r}")
    return ET.fromstring(data)
t0 = time.perf_counter()
root = report('<?xml version="1.0" encoding="utf-8"?>\n<d:sync-collection xmlns:d="DAV:">'
              "<d:sync-token/><d:sync-level>1</d:sync-level>"
              "<d:prop><d:getetag/></d:prop></d:sync-collection>")
hrefs = []
for r in root.iter("{DAV:}response"):
    href = r.findtext("{DAV:}href") or ""
    if unquote(href) != spec["path"] and r.findtext(".//{DAV:}getetag"):
        hrefs.append(href)
if spec["kind"] == "ics":
    ns, report_name = "urn:ietf:params:xml:ns:caldav", "calendar-multiget"
    data_name = "calendar-data"
else:
    ns, report_name = "urn:ietf:params:xml:ns:carddav", "addressbook-multiget"
    data_name = "address-data"
data_tag = "{" + ns + "}" + data_name
sync_s = time.perf_counter() - t0
fetched = size = requests = 0
batch = spec["batch"]
for start in range(0, len(hrefs), batch):
    refs = "".join("<d:href>" + escape(h) + "</d:href>" for h in hrefs[start:start + batch])
    root = report('<?xml version="1.0" encoding="utf-8"?>\n<x:' + report_name
                  + ' xmlns:d="DAV:" xmlns:x="' + ns + '"><d:prop><d:getetag/><x:' + data_name
                  + "/></d:prop>" + refs + "</x:" + report_name + ">")
    requests += 1
    for d in root.iter(data_tag):
        if d.text:
            fetched += 1
            size += len(d.text)
print(json.dumps({"listed": len(hrefs), "fetched": fetched, "chars": size,
                  "requests": requests + 1, "sync_s": sync_s,
                  "multiget_s": time.perf_counter() - t0 - sync_s}))
"""

# The phase run: ``python -c PHASES_CODE CONFIG OUT.json [tracemalloc]``: ``pimsync export``
# in-process, with the steps of write_archive wrapped. Per step (calls of the same step are
# summed): wall time, RSS when it first started, the process's RSS high-water mark and RSS
# when it last ended and, with ``tracemalloc``, the peak of Python's own allocations while
# it ran (libxml2's memory is not traced; tracing slows everything down several times, so
# the times of that run are not the real ones). Steps nest: "snapshot" holds the listings
# and the reading; the reading (a generator) includes the spool writes between its yields.
PHASES_CODE = r"""
import json, resource, sys, time, tracemalloc
trace = len(sys.argv) > 3
if trace:
    tracemalloc.start()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
phases, stack = {}, []
def fold():
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        for p in stack:
            p["py_peak"] = max(p["py_peak"], peak)
        tracemalloc.reset_peak()
def enter(label):
    p = phases.get(label)
    if p is None:
        p = phases[label] = {"phase": label, "calls": 0, "s": 0.0, "rss_before": rss(),
                             "py_peak": 0.0}
    fold()
    stack.append(p)
    p["calls"] += 1
    return p, time.perf_counter()
def leave(p, t0):
    p["s"] += time.perf_counter() - t0
    fold()
    stack.remove(p)
    p["maxrss"], p["rss"] = maxrss(), rss()
def wrap(owner, name, label):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        p, t0 = enter(label)
        try:
            return original(*args, **kwargs)
        finally:
            leave(p, t0)
    setattr(owner, name, wrapper)
def wrap_gen(owner, name, label):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        p, t0 = enter(label)
        try:
            yield from original(*args, **kwargs)
        finally:
            leave(p, t0)
    setattr(owner, name, wrapper)
start = {"phase": "interpreter start-up (before any pimsync import)", "calls": 1, "s": 0.0,
         "rss_before": rss(), "maxrss": maxrss(), "rss": rss(), "py_peak": 0.0}
from pimsync.export import archive, jobs
import pimsync.export.verify as verify_mod
from pimsync.storage.dav.collection import DavCollection
wrap(archive, "snapshot", "snapshot (the next three)")
wrap(DavCollection, "list", "listings: sync-collection before and after reading")
wrap_gen(DavCollection, "get", "reading: multigets, parse_record (incl. the spool writes)")
wrap(archive._Spool, "add", "spool.add: Joiner.add re-parses, writes to the spool")
wrap(archive._Writer, "add", "writer.add: spool, then manifest, into the tar.gz")
wrap(archive._Writer, "close", "writer.close: flush, fsync")
wrap(verify_mod, "check_written", "check before the rename: re-read the archive")
wrap(jobs, "prune", "prune (retention)")
from pimsync.cli import main
t0 = time.perf_counter()
code = main(["--config", sys.argv[1], "export"])
total = time.perf_counter() - t0
with open(sys.argv[2], "w") as f:
    json.dump({"code": code, "main_s": total, "phases": [start, *phases.values()],
               "maxrss": maxrss()}, f)
sys.exit(code)
"""

# ``python -c PROFILE_SERIAL_CODE CONFIG OUT.pstats``: ``pimsync export`` under cProfile with
# the thread pool of the multigets replaced by a serial stand-in.
PROFILE_SERIAL_CODE = r"""
import cProfile, sys
import pimsync.storage.dav.collection as collection
class Serial:
    def __init__(self, max_workers=None):
        pass
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return None
    def map(self, fn, items):
        return map(fn, items)
collection.ThreadPoolExecutor = Serial
from pimsync.cli import main
profile = cProfile.Profile()
code = profile.runcall(main, ["--config", sys.argv[1], "export"])
profile.dump_stats(sys.argv[2])
sys.exit(code)
"""


class BenchError(bl.BenchError):
    """A run failed or its result is wrong: no figure for it."""


# Every measured child is started by this small launcher (``python -c LAUNCH_CODE RESULT LOG
# CMD...``), which times it and reads its peak RSS with ``os.wait4``. Linux carries the RSS
# high-water mark of the memory a process replaces at exec over into its ``ru_maxrss``, and
# a child started by ``subprocess`` (vfork or fork) replaces a view of the benchmark's own
# memory (all the generated records): ``os.wait4`` on a direct child would report at least
# the benchmark's RSS. Through the launcher the floor is the launcher's own RSS (~10 MB,
# below that of any Python child), and its start-up is not in the wall time.
LAUNCH_CODE = r"""
import json, os, subprocess, sys, time
result, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(log, "wb") as out:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
proc.returncode = os.waitstatus_to_exitcode(status)
with open(result, "w") as f:
    json.dump({"code": proc.returncode, "wall": wall, "maxrss_kb": usage.ru_maxrss}, f)
"""


def _ancestors() -> set[int]:
    """This process and its ancestors (a ``timeout`` or shell that started it)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(re.search(r"^PPid:\s*(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return pids


def other_benchmarks() -> list[str]:
    """Command lines of the other ``bench_*.py`` processes on this machine (another
    benchmark running at the same time would distort every figure). Other runs of this
    benchmark are left out: they wait for :data:`LOCK` before they load the machine."""
    found = []
    mine = _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        names = [a for a in args if re.search(rb"bench_\w+\.py$", a)]
        if names and not any(n.endswith(b"bench_export.py") for n in names):
            found.append(b" ".join(args).decode("utf-8", "replace").strip())
    return found


def snapshot_code(root: Path, env: dict[str, str]) -> str:
    """Copy pimsync's package into ``root`` and make every child import that copy (run in
    ``root`` with it first on PYTHONPATH): the figures then belong to one version of the
    code, even if the work tree changes during the benchmark. Return a description."""
    code = root / "code"
    shutil.copytree(
        REPO / "pimsync", code / "pimsync", ignore=shutil.ignore_patterns("__pycache__")
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    env["BENCH_CWD"] = str(root)
    where = subprocess.run(
        [sys.executable, "-c", "import pimsync; print(pimsync.__file__)"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).is_relative_to(code):
        raise BenchError(f"the children import pimsync from {where}, not from {code}")

    def git(*args: str) -> str:  # read-only queries
        cmd = ["git", "--no-optional-locks", "-C", str(REPO), *args]  # never writes the index
        out = subprocess.run(cmd, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else "?"

    changed = [line for line in git("status", "--porcelain", "--", "pimsync").splitlines() if line]
    state = f", plus uncommitted changes in {len(changed)} files" if changed else ""
    commit = git("rev-parse", "--short", "HEAD")
    return f"pimsync: a copy of {REPO / 'pimsync'} at commit {commit}{state}, in {code}"


def wait_quiet() -> None:
    """Wait until no other benchmark runs."""
    waited = False
    while others := other_benchmarks():
        if not waited:
            print(f"  (waiting: another benchmark runs: {others[0][:100]})", flush=True)
            waited = True
        time.sleep(5)


def run_child(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``cmd`` through the launcher when no other benchmark runs; return its exit code,
    wall time (s) and its own peak RSS (MB). A run during which another benchmark was seen
    (polled every second) is thrown away and made again."""
    result = log.with_suffix(".run.json")
    for _ in range(MAX_RETRIES):
        wait_quiet()
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH_CODE, str(result), str(log), *cmd],
            env=env,
            cwd=env["BENCH_CWD"],
        )
        disturbed: list[str] = []
        while proc.poll() is None:
            disturbed = disturbed or other_benchmarks()
            time.sleep(1.0)
        if proc.returncode != 0:
            raise BenchError(f"launcher exited {proc.returncode} for {' '.join(cmd)[:200]}")
        if not disturbed:
            data = json.loads(result.read_text())
            return data["code"], data["wall"], data["maxrss_kb"] / 1024  # KiB on Linux
        print(f"  (another benchmark started meanwhile, {disturbed[0][:100]}: run again)")
    raise BenchError(f"no undisturbed run in {MAX_RETRIES} tries")


# ------------------------------------------------------------------------------- data


_FIRST = (
    "Anna Jonas Lea Paul Marie Felix Sophie Lukas Emma Maximilian Mia Leon Hannah Elias "
    "Lena Noah Clara Finn Ida Jörg Åsa Zoë"
).split()
_LAST = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter "
    "Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger"
).split()
_ORGS = ("Acme GmbH", "Stadtwerke Berlin", "Praxis Dr. Weber", "Universität Potsdam", "")
_STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Am Markt")
_CITIES = (("10115", "Berlin"), ("14467", "Potsdam"), ("80331", "München"), ("50667", "Köln"))


def make_contacts(n: int, seed: int = 20240103) -> list[tuple[str, bytes]]:
    """N vCards 3.0 (UID, bytes), ~0.45 KB each: name, organisation, two phones, e-mail,
    an address, a birthday for some and a note."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        uid = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}@bench.pimsync.example"
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        plz, city = rng.choice(_CITIES)
        org = rng.choice(_ORGS)
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 60:
            words.append(rng.choice(bl._WORDS))
        lines = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            "PRODID:-//pimsync//bench_export//EN",
            f"UID:{uid}",
            f"FN:{first} {last} #{i}",
            f"N:{last};{first};;;",
            *([f"ORG:{bl._escape(org)}"] if org else []),
            f"EMAIL;TYPE=INTERNET,HOME:{first.lower()}.{last.lower()}{i}@example.org",
            f"TEL;TYPE=CELL:+49 1{rng.randrange(10**9, 10**10)}",
            f"TEL;TYPE=HOME:+49 30 {rng.randrange(10**6, 10**7)}",
            f"ADR;TYPE=HOME:;;{rng.choice(_STREETS)} {rng.randrange(1, 200)};{city};;{plz};"
            "Deutschland",
            *(
                [
                    f"BDAY:{1950 + rng.randrange(60)}-{rng.randrange(1, 13):02d}-"
                    f"{rng.randrange(1, 29):02d}"
                ]
                if i % 3 == 0
                else []
            ),
            f"NOTE:{bl._escape(' '.join(words).capitalize())}.",
            "REV:20240103T101500Z",
            "END:VCARD",
        ]
        out.append((uid, (CRLF.join(bl._fold(line) for line in lines) + CRLF).encode()))
    return out


@dataclass
class Collection:
    label: str  # "10,000 events"
    name: str  # collection name on the server
    kind: str  # "ics" or "vcf"
    files: dict[str, bytes]  # resource name -> bytes, as seeded
    uids: set[str]
    n: int
    exports: list[Run] = field(default_factory=list)
    listings: list[Run] = field(default_factory=list)
    archive_mb: float = 0.0

    @property
    def path(self) -> str:
        return f"/{USER}/{self.name}/"


@dataclass
class Run:
    wall: float
    peak_mb: float
    detail: str = ""


def events_collection(n: int) -> Collection:
    events = bl.make_events(n)
    files = {f"{ev.uid}.ics": (ev.file_text() + CRLF).encode() for ev in events}
    return Collection(f"{n:,} events", f"exp-{n}", "ics", files, {ev.uid for ev in events}, n)


def contacts_collection(n: int) -> Collection:
    cards = make_contacts(n)
    files = {f"{uid}.vcf": data for uid, data in cards}
    return Collection(f"{n:,} contacts", f"card-{n}", "vcf", files, {u for u, _ in cards}, n)


# ----------------------------------------------------------------------------- server


def index(server: servers.DavServer, col: Collection) -> None:
    """One listing (untimed): Radicale reads and caches every seeded record."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<d:sync-collection xmlns:d="DAV:">'
        "<d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop>"
        "</d:sync-collection>"
    )
    resp = server.request(
        "REPORT",
        col.path,
        body,
        {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        timeout=1800,
    )
    if resp.status != 207:
        raise BenchError(f"REPORT {col.path}: {resp.status} {resp.text[:300]}")
    listed = [h for h in servers.parse_multistatus(resp.body) if h != col.path]
    if len(listed) != col.n:
        raise BenchError(f"{col.path}: Radicale lists {len(listed)} records, not {col.n}")


# ----------------------------------------------------------------------------- export


@dataclass
class Bench:
    root: Path
    server: servers.DavServer
    env: dict[str, str]
    listing_batch: int = 100
    runs: int = 0

    def config(self, col: Collection, archives: Path) -> Path:
        """A config with the collection's URL as a caldav/carddav storage and one export."""
        self.runs += 1
        cfg = self.root / "configs" / f"{col.name}-{self.runs}.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        kind = "caldav" if col.kind == "ics" else "carddav"
        cfg.write_text(
            f'[general]\nstate_dir = "{self.root / "state" / col.name}"\n\n'
            f'[storages.server]\ntype = "{kind}"\nurl = "{self.server.url.rstrip("/")}'
            f'{col.path}"\nusername = "{USER}"\npassword = "x"\n\n'
            f'[exports.{EXPORT}]\nstorages = ["server"]\npath = "{archives}"\n'
        )
        return cfg

    def export(self, col: Collection, label: str) -> Run:
        """One timed export, then its checks; the archive is deleted afterwards."""
        archives = self.root / "archives" / f"{col.name}-{self.runs + 1}"
        cfg = self.config(col, archives)
        log = cfg.with_suffix(".log")
        cmd = [sys.executable, "-m", "pimsync", "--config", str(cfg), "export"]
        code, wall, peak = run_child(cmd, log, self.env)
        output = log.read_text("utf-8", "replace")
        if code != 0:
            raise BenchError(f"{col.label}, {label}: pimsync export exited {code}:\n{output}")
        m = re.search(rf"^export {EXPORT}: (.+)$", output, re.M)
        if m is None:
            raise BenchError(f"{col.label}, {label}: no archive named in the output:\n{output}")
        path = Path(m.group(1).strip())
        self.check_archive(col, path, cfg)
        col.archive_mb = path.stat().st_size / 2**20
        shutil.rmtree(archives)
        return Run(wall, peak)

    def check_archive(self, col: Collection, path: Path, cfg: Path) -> None:
        where = f"{col.label}: {path}"
        if not path.is_file():
            raise BenchError(f"{where}: no such archive")
        proc = subprocess.run(
            [sys.executable, "-m", "pimsync", "--config", str(cfg), "archive", "verify", str(path)],
            capture_output=True,
            cwd=self.env["BENCH_CWD"],
            text=True,
            env=self.env,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"{where}: archive verify exited {proc.returncode}: {proc.stderr}")
        m = re.search(r": ok, made \S+, (\d+) collections?, (\d+) records?$", proc.stdout.strip())
        if m is None or (int(m.group(1)), int(m.group(2))) != (1, col.n):
            raise BenchError(
                f"{where}: archive verify said {proc.stdout.strip()!r}, "
                f"expected 1 collection and {col.n} records"
            )
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            manifest = json.load(member)
        (entry,) = manifest["collections"]
        uids = {r["uid"] for r in entry["records"]}
        if uids != col.uids or entry["count"] != col.n:
            raise BenchError(
                f"{where}: the manifest lists {entry['count']} records, "
                f"{len(uids ^ col.uids)} UIDs differ from the seeded"
            )
        if entry["errors"] or not entry["settled"]:
            raise BenchError(f"{where}: errors {entry['errors'][:3]}, settled {entry['settled']}")

    def listing(self, col: Collection) -> Run:
        """One full multiget listing by the minimal http.client child."""
        self.runs += 1
        spec_path = self.root / "configs" / f"listing-{col.name}-{self.runs}.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec = {
            "host": servers.HOST,
            "port": self.server.port,
            "auth": self.server.auth_header(),
            "path": col.path,
            "kind": col.kind,
            "batch": self.listing_batch,
        }
        spec_path.write_text(json.dumps(spec))
        log = spec_path.with_suffix(".log")
        cmd = [sys.executable, "-c", LISTING_CODE, str(spec_path)]
        code, wall, peak = run_child(cmd, log, self.env)
        output = log.read_text("utf-8", "replace")
        if code != 0:
            raise BenchError(f"{col.label}: listing client exited {code}:\n{output[-2000:]}")
        result = json.loads(output.strip().splitlines()[-1])
        if result["listed"] != col.n or result["fetched"] != col.n:
            raise BenchError(
                f"{col.label}: the listing found {result['listed']} records and "
                f"fetched {result['fetched']}, expected {col.n}"
            )
        return Run(
            wall,
            peak,
            f"{result['requests']} requests; in the client: sync-collection "
            f"{result['sync_s']:.2f} s, multigets {result['multiget_s']:.2f} s",
        )

    # -- profiling ---------------------------------------------------------------------

    def profile(self, col: Collection) -> str:
        """cProfile of one export, as it runs and with the multigets in the main thread."""
        out: list[str] = []
        for serial in (False, True):
            archives = self.root / "archives" / f"profile-{col.name}-{int(serial)}"
            cfg = self.config(col, archives)
            prof = self.root / f"export-{col.name}{'-serial' if serial else ''}.pstats"
            if serial:
                cmd = [sys.executable, "-c", PROFILE_SERIAL_CODE, str(cfg), str(prof)]
            else:
                cmd = [sys.executable, "-m", "cProfile", "-o", str(prof)]
                cmd += ["-m", "pimsync", "--config", str(cfg), "export"]
            code, wall, peak = run_child(cmd, cfg.with_suffix(".log"), self.env)
            if code != 0:
                raise BenchError(f"profiled export exited {code}")
            shutil.rmtree(archives)
            text = io.StringIO()
            stats = pstats.Stats(str(prof), stream=text)
            stats.sort_stats("cumulative").print_stats(30 if not serial else 40)
            if serial:
                stats.sort_stats("tottime").print_stats(25)
            what = (
                "the multigets' thread pool replaced by a serial executor, so that cProfile "
                "(which sees only the main thread) sees them; imports not included"
                if serial
                else "python -m cProfile -m pimsync export (cProfile sees only the main "
                "thread: multigets run in worker threads show as lock waits)"
            )
            out.append(
                f"### cProfile of one export of {col.label}: {what} (wall under the "
                f"profiler {wall:.2f} s, peak {peak:.0f} MB; {prof})\n{text.getvalue()}"
            )
        return "\n".join(out)

    def phases(self, col: Collection) -> str:
        """Two in-process exports with each phase recorded, without and with tracemalloc."""
        out: list[str] = []
        for trace in (False, True):
            archives = self.root / "archives" / f"phases-{col.name}-{int(trace)}"
            cfg = self.config(col, archives)
            result = self.root / f"phases-{col.name}-{int(trace)}.json"
            cmd = [sys.executable, "-c", PHASES_CODE, str(cfg), str(result)]
            if trace:
                cmd.append("tracemalloc")
            code, wall, peak = run_child(cmd, cfg.with_suffix(".log"), self.env)
            if code != 0:
                raise BenchError(f"phase run exited {code}: {cfg.with_suffix('.log').read_text()}")
            shutil.rmtree(archives)
            out.append(phase_table(col.label, json.loads(result.read_text()), trace, wall, peak))
        return "\n".join(out)


def phase_table(label: str, data: dict, trace: bool, wall: float, peak: float) -> str:
    title = "with tracemalloc (times inflated by tracing)" if trace else "no tracing"
    rows = [
        f"### Phases of one in-process export of {label}, {title}: process wall "
        f"{wall:.2f} s, peak RSS {peak:.0f} MB, main() {data['main_s']:.2f} s",
        "",
        "| phase | calls | s | RSS at start, MB | RSS at end, MB | RSS high-water at end, MB |"
        + (" Python peak during, MB |" if trace else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if trace else ""),
    ]
    for p in data["phases"]:
        row = (
            f"| {p['phase']} | {p['calls']} | {p['s']:.2f} | {p['rss_before']:.1f} "
            f"| {p['rss']:.1f} | {p['maxrss']:.1f} |"
        )
        if trace:
            row += f" {p['py_peak']:.1f} |"
        rows.append(row)
    return "\n".join(rows) + "\n"


# -------------------------------------------------------------------------------- main


def markdown_table(cols: list[Collection]) -> str:
    rows = [
        "| size | export s | export peak MB | listing s | export/listing |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in cols:
        e = statistics.median(r.wall for r in c.exports)
        lst = statistics.median(r.wall for r in c.listings)
        peak = max(r.peak_mb for r in c.exports)
        rows.append(f"| {c.label} | {e:.2f} | {peak:.0f} | {lst:.2f} | {e / lst:.2f}× |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="calendar sizes, comma-separated (default 1000,10000)",
    )
    parser.add_argument(
        "--contacts",
        type=int,
        default=DEFAULT_CONTACTS,
        metavar="N",
        help="address book size, 0 for none (default 10000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the largest export even if the targets are met",
    )
    parser.add_argument(
        "--listing-batch", type=int, default=100, help="hrefs per multiget of the listing"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if len(sizes) < 1 or min(sizes) < 1:
        parser.error("--sizes: positive record counts")

    root = Path(tempfile.mkdtemp(prefix="pimsync-bench-export-"))
    print(f"pimsync archive-export benchmark, data in {root}")
    print(bl.machine())
    env = bl.child_env(root, bytecode_cache=True)
    print(snapshot_code(root, env))
    lock = open(LOCK, "a")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"  (waiting for another run of this benchmark: {LOCK})", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    wait_quiet()
    server = servers.start_radicale(root / "radicale")
    print(f"Radicale on {server.url} (storage {server.root})")
    bench = Bench(root, server, env, args.listing_batch)
    cols: list[Collection] = []
    try:
        warm = events_collection(20)
        warm.name, warm.label = "exp-warm", "warm-up"
        cols_to_run = [events_collection(n) for n in sizes]
        if args.contacts:
            cols_to_run.append(contacts_collection(args.contacts))
        for col in [warm, *cols_to_run]:
            sample = next(iter(col.files.values()))
            if col is not warm:
                print(
                    f"{col.label}: {len(sample)} bytes per record (first one), "
                    f"{sum(map(len, col.files.values())) / col.n:.0f} on average"
                )
            wait_quiet()  # seeding and indexing load the machine too
            start = time.perf_counter()
            server.seed(col.name, col.kind, col.files)  # type: ignore[arg-type]
            seeded = time.perf_counter()
            index(server, col)
            print(
                f"  {col.label}: seeded into Radicale's storage in {seeded - start:.1f} s, "
                f"indexed by Radicale (first listing, untimed) in "
                f"{time.perf_counter() - seeded:.1f} s"
            )
            col.files = {}  # not needed any more
        # compile pimsync's modules into the benchmark's bytecode cache before measuring
        bench.export(warm, "warm-up")
        bench.listing(warm)
        for col in cols_to_run:
            print(f"\n## {col.label}")
            for i in range(args.repeats):
                e = bench.export(col, f"run {i + 1}")
                lst = bench.listing(col)
                col.exports.append(e)
                col.listings.append(lst)
                print(
                    f"  #{i + 1}: export {e.wall:6.2f} s {e.peak_mb:6.1f} MB | listing "
                    f"{lst.wall:6.2f} s {lst.peak_mb:6.1f} MB ({lst.detail})  ok"
                )
            print(f"  archive: {col.archive_mb:.2f} MB (tar.gz)")
            cols.append(col)

        print(
            f"\n### Results (median of {args.repeats} for times; peak: the largest of the runs)\n"
        )
        print(markdown_table(cols))
        events = [c for c in cols if c.kind == "ics"]
        small, large = events[0], events[-1]
        peak_small = max(r.peak_mb for r in small.exports)
        peak_large = max(r.peak_mb for r in large.exports)
        e_large = statistics.median(r.wall for r in large.exports)
        l_large = statistics.median(r.wall for r in large.listings)
        peak_ok = peak_large / peak_small <= PEAK_RATIO_TARGET
        time_ok = e_large / l_large <= TIME_RATIO_TARGET
        print("\nTargets:")
        print(
            f"- peak memory at {large.n:,} within 20 % of the peak at {small.n:,}: "
            f"{'met' if peak_ok else 'NOT met'} ({peak_large:.1f} MB / {peak_small:.1f} MB "
            f"= {peak_large / peak_small:.2f})"
        )
        print(
            f"- export at {large.n:,} within 2× of one full multiget listing: "
            f"{'met' if time_ok else 'NOT met'} ({e_large:.2f} s / {l_large:.2f} s "
            f"= {e_large / l_large:.2f}×)"
        )
        if args.profile or not (peak_ok and time_ok):
            print(f"\nprofiling: the phases at each size, cProfile at {large.n:,} ...\n")
            for col in events:
                print(bench.phases(col))
            print(bench.profile(large))
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        print(f"data kept in {root}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    if args.keep:
        print(f"\ndata kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
