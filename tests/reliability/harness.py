"""The harness of the reliability suite (docs/reliability.md).

Everything here drives pimsync from the outside, as a user would: the real command line
(``python -m pimsync --config CFG run``) in a subprocess, killed with SIGKILL when a test
says so; the stores edited between runs like a laptop user (a vdir file rewritten), a
phone app (its ``.ics`` export rewritten) or a phone's CalDAV client (conditional PUTs);
and an oracle of what every record must hold once the runs have converged.

Sizes: ``PIMSYNC_RELIABILITY=full`` selects the long run (see ``FULL``);
``PIMSYNC_RELIABILITY_SEED`` overrides every test's seed; ``PIMSYNC_RELIABILITY_OUT``
names a JSON file the tests add their figures to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

import pimsync
from tests import faultproxy
from tests import servers as dav_servers
from tests.conftest import make_event

MODE = "full" if os.environ.get("PIMSYNC_RELIABILITY", "").strip().lower() == "full" else "ci"
FULL = MODE == "full"
OUT = os.environ.get("PIMSYNC_RELIABILITY_OUT") or None
PROJECT_ROOT = Path(pimsync.__file__).resolve().parents[1]
ADDRESS_SPACE_LIMIT = 4 << 30  # a backstop for the machine; the watchdog below acts first


def seed_for(default: int) -> int:
    """The seed of a test: its default, or ``PIMSYNC_RELIABILITY_SEED``."""
    value = os.environ.get("PIMSYNC_RELIABILITY_SEED")
    return int(value) if value else default


@contextlib.contextmanager
def reported(name: str, seed: int, figures: dict[str, object]) -> Iterator[None]:
    """On failure, say how to repeat the run and what it had done so far."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            exc.add_note(
                f"reliability {name}: seed {seed} (repeat: PIMSYNC_RELIABILITY_SEED={seed}"
                f"{' PIMSYNC_RELIABILITY=full' if FULL else ''}); figures so far: "
                f"{json.dumps(figures, default=str)}"
            )
        raise


def publish(capsys: pytest.CaptureFixture[str], name: str, figures: dict[str, object]) -> None:
    """Print a test's figures (past pytest's capture) and add them to PIMSYNC_RELIABILITY_OUT."""
    line = json.dumps(figures, default=str, sort_keys=True)
    with capsys.disabled():
        print(f"\n[reliability] {name}: {line}", flush=True)
    if OUT:
        path = Path(OUT)
        try:
            data = json.loads(path.read_text("utf-8")) if path.exists() else {}
        except (OSError, ValueError):
            data = {}
        data[name] = figures
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
        os.replace(tmp, path)


# --- the command line, in a subprocess ----------------------------------------------------


SUMMARY = re.compile(r"^(?P<where>[A-Za-z0-9_-]+/[^:\s]+): (?P<text>a \+\d+ ~\d+ -\d+, .*)$", re.M)
NO_CHANGE = "a +0 ~0 -0, b +0 ~0 -0, 0 errors"


@dataclass
class Run:
    args: tuple[str, ...]
    rc: int  # the exit status (-9 when killed)
    out: str
    err: str
    seconds: float
    kill_after: float | None  # the planned kill time
    killed: bool  # our SIGKILL ended it (the kill landed)
    timed_out: bool  # it outlived its deadline and was killed for that
    over_memory: bool  # the memory watchdog killed it
    peak_mb: float  # peak resident memory (VmHWM / ru_maxrss)

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def clean(self) -> bool:
        return self.rc == 0 and not (self.killed or self.timed_out or self.over_memory)

    def summaries(self) -> dict[str, str]:
        """pair/collection -> the summary line's text."""
        return {m["where"]: m["text"] for m in SUMMARY.finditer(self.out)}

    def count(self, word: str) -> int:
        """The sum of "N merged" (word="merged") or "N conflict(s)" over the summary lines."""
        pattern = re.compile(rf"(\d+) {word}")
        return sum(int(n) for text in self.summaries().values() for n in pattern.findall(text))

    def describe(self) -> str:
        state = "killed" if self.killed else f"rc {self.rc}"
        if self.timed_out:
            state = "TIMED OUT"
        if self.over_memory:
            state = "OVER MEMORY"
        return (
            f"$ pimsync {' '.join(self.args)}  [{state}, {self.seconds:.2f} s, "
            f"{self.peak_mb:.0f} MB]\n{self.out[-3000:]}{self.err[-3000:]}"
        )


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _child_setup() -> None:
    """In the child: die with the test process; a cap on address space for the machine."""
    dav_servers._die_with_parent()
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


class Cli:
    """``cli("run")`` runs ``python -m pimsync --config CFG run`` and returns a Run.

    The child gets a private HOME, XDG directories and TMPDIR under TMP (created empty, so
    a write there shows up in an "outside the store" snapshot), the test's TMP as its
    working directory, and the same pimsync the test imports. Its output goes to files
    in LOGS (not to pipes: a killed child leaves what it had printed).
    """

    def __init__(self, tmp: Path, cfg: Path, *, logs: Path | None = None) -> None:
        self.tmp, self.cfg = tmp, cfg
        self.logs = logs or tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        home = tmp / "home"
        (tmp / "tmp").mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIMSYNC")}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            TMPDIR=str(tmp / "tmp"),
            PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]),
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.runs: list[Run] = []

    def __call__(
        self,
        *args: str,
        kill_after: float | None = None,
        timeout: float = 120.0,
        mem_cap_mb: float = 1024.0,
    ) -> Run:
        n = len(self.runs)
        verbose = ("-v",) if args and args[0] == "run" else ()  # every action, for the report
        argv = [sys.executable, "-m", "pimsync", "--config", str(self.cfg), *args, *verbose]
        out_path, err_path = self.logs / f"{n:04d}.out", self.logs / f"{n:04d}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.tmp,
                env=self.env,
                preexec_fn=_child_setup,
            )
        cap_kb = int(mem_cap_mb * 1024)
        peak_kb = 0
        why = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - started
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            if kill_after is not None and elapsed >= kill_after:
                why = "kill"
            elif elapsed >= timeout:
                why = "timeout"
            elif peak_kb > cap_kb:
                why = "memory"
            if why is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            pause = 0.005 if kill_after is None else min(0.005, max(kill_after - elapsed, 0))
            time.sleep(pause)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        by_sigkill = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        run = Run(
            args=tuple(args),
            rc=proc.returncode,
            out=out_path.read_text("utf-8", "replace"),
            err=err_path.read_text("utf-8", "replace"),
            seconds=seconds,
            kill_after=kill_after,
            killed=by_sigkill and why == "kill",
            timed_out=by_sigkill and why == "timeout",
            over_memory=by_sigkill and why == "memory",
            peak_mb=max(peak_kb, usage.ru_maxrss) / 1024,
        )
        self.runs.append(run)
        return run


# --- what is on disk ----------------------------------------------------------------------


def snapshot(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[object, ...]]:
    """Every directory and file under ROOT but SKIP: kind, size, mtime and content hash."""
    skipped = {Path(p) for p in skip}
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if here / n not in skipped)
        for name in dirnames:
            out[str((here / name).relative_to(root)) + "/"] = ("dir",)
        for name in filenames:
            path = here / name
            if path in skipped:
                continue
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"
            out[str(path.relative_to(root))] = ("file", st.st_size, st.st_mtime_ns, digest)
    return out


def changes(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> list:
    """What differs between two snapshots: ["new: x", "changed: y", "gone: z"]."""
    out = [f"new: {k}" for k in sorted(after.keys() - before.keys())]
    out += [f"gone: {k}" for k in sorted(before.keys() - after.keys())]
    out += [f"changed: {k}" for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return out


def fingerprint(*roots: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap stat-only picture of some trees, to tell whether a run wrote anything."""
    items = []
    for root in roots:
        for dirpath, _dirs, filenames in os.walk(root):
            for name in filenames:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(dirpath, name))
                    items.append((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


def files_containing(root: Path, needle: str, skip: Iterable[Path] = ()) -> list[Path]:
    """Files under ROOT whose name or content holds NEEDLE (and are not in SKIP)."""
    skipped = {Path(p) for p in skip}
    raw = needle.encode()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path in skipped:
                continue
            if needle in name:
                found.append(path)
            elif name in filenames and path.is_file():
                with contextlib.suppress(OSError):
                    if raw in path.read_bytes():
                        found.append(path)
    return found


# --- iCalendar text, edited the way apps do ------------------------------------------------

_FOLD = re.compile(r"\r?\n[ \t]")
_BLOCK = re.compile(r"BEGIN:VEVENT\r?\n.*?END:VEVENT\r?\n?", re.S)
EPOCH = datetime(2027, 1, 1, tzinfo=UTC)


def unfold(text: str) -> str:
    return _FOLD.sub("", text)


def prop(text: str, name: str) -> str | None:
    """The value of the first property NAME in TEXT (unfolded, parameters ignored)."""
    m = re.search(rf"^{name}(?:;[^:\r\n]*)?:(.*?)\r?$", unfold(text), re.M | re.I)
    return m.group(1) if m else None


def set_props(text: str, values: dict[str, str]) -> str:
    """TEXT with each property NAME of VALUES in its VEVENT set to the value (replacing
    the first one, dropping repeats, or adding it before END:VEVENT): what an app does
    when it saves an edit. The rest of the lines stay as they were."""
    out: list[str] = []
    done: set[str] = set()
    inside = False
    for line in unfold(text).splitlines():
        upper = line.upper()
        if upper == "BEGIN:VEVENT":
            inside, done = True, set()
        name = re.split(r"[;:]", line, maxsplit=1)[0].upper()
        if inside and name in values:
            if name not in done:
                out.append(f"{name}:{values[name]}")
                done.add(name)
            continue
        if upper == "END:VEVENT" and inside:
            out.extend(f"{n}:{v}" for n, v in values.items() if n not in done)
            inside = False
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def stamp(tick: int) -> str:
    return (EPOCH + timedelta(seconds=tick)).strftime("%Y%m%dT%H%M%SZ")


def new_event(uid: str, summary: str, location: str, modified: str) -> bytes:
    return make_event(uid, summary, extra=f"LOCATION:{location}\r\nLAST-MODIFIED:{modified}\r\n")


def vevent_blocks(text: str) -> list[str]:
    return [m.group(0).rstrip("\r\n") + "\r\n" for m in _BLOCK.finditer(unfold(text))]


def events_of(data: bytes, where: str) -> list[tuple[str, str, str]]:
    """(UID, SUMMARY, LOCATION) of every VEVENT, read with icalendar (not with pimsync)."""
    import icalendar

    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # noqa: BLE001 - a broken file is a finding, with its name
        raise AssertionError(f"{where}: not a readable calendar: {exc}") from exc
    return [
        (str(c.get("UID", "")), str(c.get("SUMMARY", "")), str(c.get("LOCATION", "")))
        for c in cal.walk("VEVENT")
    ]


# --- the two sides of a pair, as their users see them --------------------------------------

Holding = dict[str, list[tuple[str, str, str]]]  # UID -> [(summary, location, where)]


class VdirSide:
    """A vdir on the laptop: one file per record, edited by rewriting the file."""

    label = "vdir"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._where: dict[str, dict[str, Path]] = {}

    def collections(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def _files(self, col: str) -> list[Path]:
        return sorted(p for p in (self.root / col).glob("*.ics") if not p.name.startswith("."))

    def texts(self, col: str) -> dict[str, str]:
        out: dict[str, str] = {}
        where: dict[str, Path] = {}
        for path in self._files(col):
            text = path.read_text("utf-8", "replace")
            uid = prop(text, "UID") or f"?{path.name}"
            out.setdefault(uid, text)
            where.setdefault(uid, path)
        self._where[col] = where
        return out

    def begin(self) -> None:
        pass

    def put(self, col: str, uid: str, text: str) -> None:
        path = self._where.get(col, {}).get(uid) or self.root / col / f"{uid}.ics"
        tmp = path.with_name(f".{path.name}.edit")
        tmp.write_bytes(text.encode())
        os.replace(tmp, path)

    def edit(self, col: str, uid: str, text: str, values: dict[str, str]) -> None:
        self.put(col, uid, set_props(text, values))

    def delete(self, col: str, uid: str) -> None:
        self._where[col].pop(uid).unlink()

    def commit(self) -> None:
        pass

    def holdings(self, col: str) -> Holding:
        out: Holding = {}
        for path in self._files(col):
            for uid, summary, location in events_of(path.read_bytes(), str(path)):
                out.setdefault(uid, []).append((summary, location, path.name))
        return out

    def leftovers(self) -> list[str]:
        """Hidden files in the collections (temp files a killed run left behind)."""
        return sorted(
            str(p.relative_to(self.root))
            for col in self.collections()
            for p in (self.root / col).iterdir()
            if p.name.startswith(".")
        )

    def make_collection(self, col: str) -> None:
        (self.root / col).mkdir(parents=True)

    def watched(self) -> list[Path]:
        return [self.root]


class FileSide:
    """A phone's export: one .ics file per calendar, rewritten whole on every save."""

    label = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, tuple[str, dict[str, str]]] = {}
        self._dirty: set[str] = set()

    def _path(self, col: str) -> Path:
        return self.root / f"{col}.ics"

    def collections(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.stem for p in self.root.glob("*.ics") if not p.name.startswith(".")}

    def texts(self, col: str) -> dict[str, str]:
        text = unfold(self._path(col).read_bytes().decode("utf-8", "replace"))
        start = text.find("BEGIN:VEVENT")
        head = text[:start] if start >= 0 else text[: text.rfind("END:VCALENDAR")]
        blocks: dict[str, str] = {}
        for block in vevent_blocks(text):
            blocks.setdefault(prop(block, "UID") or f"?{len(blocks)}", block)
        self._loaded[col] = (head if head.endswith("\n") else head + "\r\n", blocks)
        return dict(blocks)

    def begin(self) -> None:
        self._loaded.clear()
        self._dirty.clear()

    def put(self, col: str, uid: str, text: str) -> None:
        if col not in self._loaded:
            if self._path(col).exists():
                self.texts(col)
            else:
                self._loaded[col] = (
                    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\n",
                    {},
                )
        [block] = vevent_blocks(text)
        self._loaded[col][1][uid] = block
        self._dirty.add(col)

    def edit(self, col: str, uid: str, text: str, values: dict[str, str]) -> None:
        self.put(col, uid, set_props(text, values))

    def delete(self, col: str, uid: str) -> None:
        del self._loaded[col][1][uid]
        self._dirty.add(col)

    def commit(self) -> None:
        for col in sorted(self._dirty):
            head, blocks = self._loaded[col]
            data = head + "".join(blocks.values()) + "END:VCALENDAR\r\n"
            path = self._path(col)
            tmp = path.with_name(f".{path.name}.export")
            tmp.write_bytes(data.encode())
            os.replace(tmp, path)
        self._dirty.clear()

    def holdings(self, col: str) -> Holding:
        out: Holding = {}
        path = self._path(col)
        for uid, summary, location in events_of(path.read_bytes(), str(path)):
            out.setdefault(uid, []).append((summary, location, path.name))
        return out

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith("."))

    def make_collection(self, col: str) -> None:
        self._loaded[col] = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\n", {})
        self._dirty.add(col)  # written at commit()

    def watched(self) -> list[Path]:
        return [self.root]


CALENDAR_QUERY = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
    '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
)


class DavSide:
    """A phone's CalDAV account: read with a calendar-query, written with conditional PUTs
    and DELETEs (If-Match the etag it read, If-None-Match for a new record)."""

    label = "server"

    def __init__(self, server: dav_servers.DavServer) -> None:
        self.server = server
        self._where: dict[str, dict[str, tuple[str, str]]] = {}

    def path(self, col: str) -> str:
        return self.server.collection_path(col, "ics")

    def collections(self) -> set[str]:
        home = self.server.home("ics")
        resp = self.server.propfind(home, "<D:resourcetype/>", depth="1")
        assert resp.status == 207, (resp.status, resp.text[:300])
        cal = f"{{{dav_servers.CALDAV_NS}}}calendar"
        out = set()
        for href, props in dav_servers.parse_multistatus(resp.body).items():
            rt = props.get(f"{{{dav_servers.DAV_NS}}}resourcetype")
            if href.rstrip("/") != home.rstrip("/") and rt is not None and rt.find(cal) is not None:
                out.add(href.rstrip("/").rsplit("/", 1)[-1])
        return out

    def fetch(self, col: str) -> dict[str, tuple[str, bytes]]:
        """href -> (etag, body) of every record of collection COL."""
        resp = self.server.request("REPORT", self.path(col), CALENDAR_QUERY, {"Depth": "1"})
        assert resp.status == 207, (resp.status, resp.text[:300])
        data = f"{{{dav_servers.CALDAV_NS}}}calendar-data"
        etag = f"{{{dav_servers.DAV_NS}}}getetag"
        return {
            href: (
                (props[etag].text or "") if etag in props else "",
                (props[data].text or "").encode(),
            )
            for href, props in dav_servers.parse_multistatus(resp.body).items()
            if data in props
        }

    def texts(self, col: str) -> dict[str, str]:
        out: dict[str, str] = {}
        where: dict[str, tuple[str, str]] = {}
        for href, (etag, body) in sorted(self.fetch(col).items()):
            text = body.decode("utf-8", "replace")
            uid = prop(text, "UID") or f"?{href}"
            out.setdefault(uid, text)
            where.setdefault(uid, (href, etag))
        self._where[col] = where
        return out

    def begin(self) -> None:
        pass

    def put(self, col: str, uid: str, text: str) -> None:
        known = self._where.get(col, {}).get(uid)
        if known is not None:
            resp = self.server.put(known[0], text.encode(), if_match=known[1])
        else:
            href = f"{self.path(col)}{urllib.parse.quote(uid)}.ics"
            resp = self.server.put(href, text.encode(), if_none_match=True)
        assert resp.status in (200, 201, 204), (col, uid, resp.status, resp.text[:300])

    def edit(self, col: str, uid: str, text: str, values: dict[str, str]) -> None:
        """Like a phone: a conditional PUT; if the server's copy changed meanwhile (a killed
        run's last request may still be landing), read it again and redo the edit."""
        href, etag = self._where[col][uid]
        for _ in range(5):
            resp = self.server.put(href, set_props(text, values).encode(), if_match=etag)
            if resp.status != 412:
                break
            time.sleep(0.05)
            current = self.server.request("GET", href)
            assert current.status == 200, (col, uid, current.status)
            text, etag = current.text, current.header("etag") or ""
        assert resp.status in (200, 201, 204), (col, uid, resp.status, resp.text[:300])

    def delete(self, col: str, uid: str) -> None:
        href, etag = self._where[col].pop(uid)
        for _ in range(5):
            resp = self.server.request("DELETE", href, headers={"If-Match": etag})
            if resp.status != 412:
                break
            time.sleep(0.05)
            etag = self.server.request("GET", href).header("etag") or ""
        assert resp.status in (200, 204), (col, uid, resp.status, resp.text[:300])

    def commit(self) -> None:
        pass

    def holdings(self, col: str) -> Holding:
        out: Holding = {}
        for href, (_etag, body) in self.fetch(col).items():
            for uid, summary, location in events_of(body, href):
                out.setdefault(uid, []).append((summary, location, href))
        return out

    def leftovers(self) -> list[str]:
        return []

    def make_collection(self, col: str) -> None:
        self.server.make_collection(col, "ics")

    def watched(self) -> list[Path]:
        return [self.server.root / "collection-root"]


Side = VdirSide | FileSide | DavSide


# --- the oracle, and a round of edits ------------------------------------------------------


@dataclass
class Expect:
    collection: str
    summary: str  # the last SUMMARY written on side a
    location: str  # the last LOCATION written on side b
    created_on: str
    alive: bool = True


@dataclass
class Oracle:
    """What every record must hold once the runs have converged.

    Side a only ever changes SUMMARY, side b only LOCATION, so the expected record is
    unambiguous: a's last SUMMARY and b's last LOCATION. A record is deleted only if it
    was on both sides at the last clean run and the other side has not edited it since;
    a deleted record is never edited again. So a deletion is never beaten by an edit."""

    tag: str
    records: dict[str, Expect] = field(default_factory=dict)
    collections: set[str] = field(default_factory=set)
    synced: set[str] = field(default_factory=set)
    touched: dict[str, set[str]] = field(default_factory=lambda: {"a": set(), "b": set()})
    clock: int = 0
    serial: int = 0
    journal: list[str] = field(default_factory=list)  # every edit and run, for a failure
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "summary edits": 0,
            "location edits": 0,
            "creates": 0,
            "deletes": 0,
        }
    )

    def tick(self) -> str:
        self.clock += 1
        return stamp(self.clock)

    def new_uid(self, side: str) -> str:
        self.serial += 1
        return f"{side}{self.serial:05d}-{self.tag}"

    def alive(self, col: str | None = None) -> set[str]:
        return {
            uid
            for uid, r in self.records.items()
            if r.alive and (col is None or r.collection == col)
        }

    def converged(self) -> None:
        """A run ended cleanly: both sides hold what the oracle says."""
        self.journal.append("-- converged")
        self.synced = self.alive()
        self.touched = {"a": set(), "b": set()}

    def create(self, side: Side, side_name: str, col: str) -> str:
        uid = self.new_uid(side_name)
        summary, location = f"S0 {uid}", f"L0 {uid}"
        side.put(col, uid, new_event(uid, summary, location, self.tick()).decode())
        self.records[uid] = Expect(col, summary, location, side_name)
        self.touched[side_name].add(uid)
        self.counts["creates"] += 1
        self.journal.append(f"{side_name}: create {col}/{uid}")
        return uid


@dataclass(frozen=True)
class Edits:
    fraction: float  # of the records a side holds, edited per round (at least one)
    both: int  # records edited on both sides in the same round: merges
    creates: int  # new records per side per round
    deletes: int  # deletions per side per round (where allowed)
    min_alive: int = 5  # never delete below this many records in a collection


def user_round(rng: random.Random, oracle: Oracle, a: Side, b: Side, edits: Edits) -> dict:
    """One round of edits between two runs, in a random order: SUMMARY on side a,
    LOCATION on side b, new records on both, a few deletions."""
    sides = {"a": a, "b": b}
    for side in sides.values():
        side.begin()
    now: dict[str, dict[str, dict[str, str]]] = {
        s: {col: side.texts(col) for col in sorted(side.collections() & oracle.collections)}
        for s, side in sides.items()
    }

    def present(s: str, uid: str) -> bool:
        return uid in now[s].get(oracle.records[uid].collection, {})

    ops: list[tuple[str, str, str]] = []
    for s, other in (("a", "b"), ("b", "a")):
        eligible = sorted(
            uid
            for uid in oracle.synced
            if oracle.records[uid].alive and uid not in oracle.touched[other] and present(s, uid)
        )
        rng.shuffle(eligible)
        for uid in eligible[: edits.deletes]:
            rec = oracle.records[uid]
            if len(oracle.alive(rec.collection)) > edits.min_alive:
                rec.alive = False  # decided now, so that nobody edits it below
                ops.append(("delete", s, uid))
    held = {s: sorted(uid for uid in oracle.alive() if present(s, uid)) for s in sides}
    both = sorted(set(held["a"]) & set(held["b"]))
    chosen = {"a": set(rng.sample(both, min(edits.both, len(both))))}
    chosen["b"] = set(chosen["a"])
    for s in sides:
        k = max(1, round(edits.fraction * len(held[s]))) if held[s] else 0
        chosen[s] |= set(rng.sample(held[s], min(k, len(held[s]))))
    ops += [("summary", "a", uid) for uid in sorted(chosen["a"])]
    ops += [("location", "b", uid) for uid in sorted(chosen["b"])]
    for s in sides:
        cols = sorted(now[s])
        ops += [("create", s, rng.choice(cols)) for _ in range(edits.creates if cols else 0)]
    rng.shuffle(ops)
    for what, s, arg in ops:
        side = sides[s]
        if what == "create":
            oracle.create(side, s, arg)
            continue
        rec = oracle.records[arg]
        if what == "delete":
            side.delete(rec.collection, arg)
            oracle.counts["deletes"] += 1
            oracle.journal.append(f"{s}: delete {rec.collection}/{arg}")
            continue
        modified = oracle.tick()
        key = "SUMMARY" if what == "summary" else "LOCATION"
        value = f"{key[0]}{oracle.clock} {arg}"
        text = now[s][rec.collection][arg]
        side.edit(rec.collection, arg, text, {key: value, "LAST-MODIFIED": modified})
        if what == "summary":
            rec.summary = value
        else:
            rec.location = value
        oracle.touched[s].add(arg)
        oracle.counts[f"{what} edits"] += 1
        oracle.journal.append(f"{s}: {key} {rec.collection}/{arg} = {value!r} at {modified}")
    for side in sides.values():
        side.commit()
    return {"ops": len(ops), "merges planned": len(chosen["a"] & chosen["b"])}


# --- the verdict ---------------------------------------------------------------------------


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)  # alive in the oracle, missing on a side
    extra: list[str] = field(default_factory=list)  # on a side, but deleted or never made
    duplicated: list[str] = field(default_factory=list)  # one UID, several files/resources
    conflict_copies: list[str] = field(default_factory=list)  # "-conflict-" records
    edits_lost: list[str] = field(default_factory=list)  # SUMMARY or LOCATION not the last
    missing_collections: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        for name in ("missing_collections", "lost", "extra", "duplicated", "conflict_copies"):
            items = getattr(self, name)
            if items:
                out.append(f"{name} ({len(items)}): {items[:12]}")
        if self.edits_lost:
            out.append(f"edits_lost ({len(self.edits_lost)}): {self.edits_lost[:12]}")
        return out


def verify(oracle: Oracle, sides: dict[str, Side]) -> Verdict:
    v = Verdict()
    for side in sides.values():
        present = side.collections()
        for col in sorted(oracle.collections):
            if col not in present:
                v.missing_collections.append(f"{side.label}/{col}")
                held: Holding = {}
            else:
                held = side.holdings(col)
            expected = oracle.alive(col)
            v.lost += [f"{side.label}/{col}/{uid}" for uid in sorted(expected - held.keys())]
            for uid in sorted(held.keys() - expected):
                bucket = v.conflict_copies if "-conflict-" in uid else v.extra
                bucket.append(f"{side.label}/{col}/{uid}")
            for uid, items in sorted(held.items()):
                if len(items) > 1:
                    v.duplicated.append(f"{side.label}/{col}/{uid} x{len(items)}")
                if uid not in expected:
                    continue
                rec = oracle.records[uid]
                summary, location, where = items[0]
                if summary != rec.summary:
                    v.edits_lost.append(
                        f"{side.label}/{where}: SUMMARY {summary!r} != {rec.summary!r}"
                    )
                if location != rec.location:
                    v.edits_lost.append(
                        f"{side.label}/{where}: LOCATION {location!r} != {rec.location!r}"
                    )
    return v


def spread(values: list[float]) -> list[float]:
    """min, median, max, rounded (for the figures)."""
    if not values:
        return []
    return [round(min(values), 2), round(statistics.median(values), 2), round(max(values), 2)]


# --- a Radicale whose password is worth looking for ----------------------------------------


def start_radicale_with_password(tmp: Path, password: str) -> dav_servers.DavServer:
    """tests.servers' Radicale with htpasswd auth, the password changed to PASSWORD (a
    distinctive string, so that finding it in an output means it leaked)."""
    server = dav_servers.start_radicale(tmp, auth=True)
    try:
        (tmp / "htpasswd").write_text(f"{dav_servers.RADICALE_USER}:{password}\n")
        server.password = password
        deadline = time.monotonic() + 10
        while server.propfind(server.home("ics"), "<D:resourcetype/>", depth="0").status != 207:
            assert time.monotonic() < deadline, "Radicale did not take the new password"
            time.sleep(0.05)
        wrong = server.propfind(server.home("ics"), "<D:resourcetype/>", "0", password="secret")
        assert wrong.status == 401, wrong.status
    except BaseException:
        server.stop()
        raise
    return server


# --- a hostile front for Radicale ----------------------------------------------------------

Hook = Callable[[faultproxy._Handler, bytes], None]


class _HookHandler(faultproxy._Handler):
    """FaultProxy's handler, plus a hook that gets the raw connection: for answers the
    proxy cannot buffer (2 GiB, endless) or never gives (silence)."""

    def _serve(self) -> None:
        body = faultproxy._Handler._read_body(self)
        self._body = body
        proxy = self.server.proxy
        hook = getattr(proxy, "hook", None)
        if hook is None or not hook[0](self.command, self.path, body):
            super()._serve()
            return
        seen = faultproxy.Seen(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        seen.action = "hook"
        proxy._record(seen)
        self.close_connection = True
        with contextlib.suppress(OSError):
            hook[1](self, body)

    def _read_body(self) -> bytes:
        return self._body


class _HookServer(faultproxy._Server):
    def __init__(self, proxy: faultproxy.FaultProxy) -> None:
        self.proxy = proxy
        ThreadingHTTPServer.__init__(self, (faultproxy.HOST, 0), _HookHandler)


class HostileProxy(faultproxy.FaultProxy):
    """A FaultProxy (rules, log) whose ``hook = (predicate, func)`` takes over matching
    requests: ``func(handler, body)`` writes whatever it likes to ``handler.wfile``."""

    hook: tuple[Callable[[str, str, bytes], bool], Hook] | None = None

    def start(self) -> HostileProxy:
        self._stopping.clear()
        self._server = _HookServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def stopping(self) -> threading.Event:
        return self._stopping
