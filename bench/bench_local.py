"""Local-sync benchmark: time and peak memory of ``pimsync run`` on local stores.

Runs the real CLI as a child process (``python -m pimsync --config CFG run``), so
interpreter start-up and imports count, on generated calendars of N events:

1. vdir -> vdir:  a vdir with N files, synced to an empty vdir.
2. vdir -> file:  a vdir with N files, synced to a single .ics file (absent at first).
3. file -> vdir:  one .ics file with N events, synced to an empty vdir.

For each scenario it measures the first sync, a run with nothing changed, a run after 10
SUMMARY edits on side a and, where one side is a single file, a run after 10 edits on the
other side too. After every run it checks that pimsync exited 0, that its summary line
counts what was expected, and that both sides hold exactly N records (by UID) with the
expected SUMMARY each; a run that fails a check stops the benchmark.

The no-change run is also repeated under ``strace -f -e trace=openat`` (when strace is
installed) to count how many .ics files in the stores were opened: reading no record
content means 0.

Usage: python bench/bench_local.py [--records N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CRLF = "\r\n"
EDITS = 10
NO_CHANGE_REPEATS = 3
COLLECTION = "cal"  # vdir sub-directory name == single file's stem

VTIMEZONE_BERLIN = CRLF.join(
    [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "DTSTART:19700329T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "DTSTART:19701025T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]
)
CALENDAR_HEAD = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//pimsync//bench_local//EN"]

_WORDS = (
    "Projekt Besprechung Abstimmung Planung Budget Quartal Review Kunde Angebot Termin "
    "Agenda Protokoll Entwurf Freigabe Team Workshop Präsentation Zahlen Ergebnisse nächste "
    "Schritte Raum Anfahrt Unterlagen bitte mitbringen Rückfragen vorab per Mail Zeitplan "
    "Meilenstein Risiko offene Punkte Entscheidung Vorbereitung Übergabe Straße Größe"
).split()
_TOPICS = (
    "Team meeting",
    "Dentist",
    "Quarterly review",
    "Lunch with Anna",
    "Sprint planning",
    "Yoga",
    "Call with customer",
    "Parents' evening",
    "Car service",
    "Birthday party",
)
_PLACES = (
    "Alexanderplatz 1, 10178 Berlin",
    "Room 4.12",
    "Café Einstein, Kurfürstenstraße 58",
    "Online (video call)",
    "Hauptbahnhof, Gleis 7",
)


# ------------------------------------------------------------------------------- data


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 character."""
    out: list[str] = []
    current, size, limit = [], 0, 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append("".join(current))
            current, size, limit = [" "], 1, 75
        current.append(ch)
        size += n
    out.append("".join(current))
    return CRLF.join(out)


@dataclass
class Event:
    uid: str
    summary: str
    location: str
    description: str
    start: str  # local time in Europe/Berlin, YYYYMMDDTHHMMSS
    end: str
    rrule: str | None

    def vevent_lines(self) -> list[str]:
        lines = [
            "BEGIN:VEVENT",
            f"UID:{self.uid}",
            "DTSTAMP:20240102T103000Z",
            f"DTSTART;TZID=Europe/Berlin:{self.start}",
            f"DTEND;TZID=Europe/Berlin:{self.end}",
            f"SUMMARY:{_escape(self.summary)}",
            f"LOCATION:{_escape(self.location)}",
            f"DESCRIPTION:{_escape(self.description)}",
        ]
        if self.rrule:
            lines.append(f"RRULE:{self.rrule}")
        lines.append("END:VEVENT")
        return [_fold(line) for line in lines]

    def file_text(self) -> str:
        """The event as a standalone .ics file (as a vdir holds it)."""
        return CRLF.join([*CALENDAR_HEAD, VTIMEZONE_BERLIN, *self.vevent_lines(), "END:VCALENDAR"])


def make_events(n: int, seed: int = 20240102) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        day = 1 + i % 28
        month = 1 + (i // 28) % 12
        hour = 8 + rng.randrange(10)
        minutes = rng.choice((0, 15, 30, 45))
        start = f"2024{month:02d}{day:02d}T{hour:02d}{minutes:02d}00"
        end = f"2024{month:02d}{day:02d}T{hour + 1:02d}{minutes:02d}00"
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 200:
            words.append(rng.choice(_WORDS))
        description = " ".join(words).capitalize() + "."
        events.append(
            Event(
                uid=f"{uuid.UUID(int=rng.getrandbits(128), version=4)}@bench.pimsync.example",
                summary=f"{rng.choice(_TOPICS)} #{i}",
                location=rng.choice(_PLACES),
                description=description,
                start=start,
                end=end,
                rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=20" if i % 10 == 0 else None,
            )
        )
    return events


def write_vdir(collection_dir: Path, events: list[Event]) -> None:
    collection_dir.mkdir(parents=True, exist_ok=True)
    for ev in events:
        (collection_dir / f"{ev.uid}.ics").write_bytes((ev.file_text() + CRLF).encode())


def single_file_text(events: list[Event]) -> str:
    lines = [*CALENDAR_HEAD, VTIMEZONE_BERLIN]
    for ev in events:
        lines.extend(ev.vevent_lines())
    lines.append("END:VCALENDAR")
    return CRLF.join(lines) + CRLF


# ------------------------------------------------------------------------ reading back

_UNFOLD = re.compile(r"\r?\n[ \t]")


def _read(path: Path) -> str:
    """A file's text with its line endings as they are (``read_text`` would turn CRLF to LF)."""
    return path.read_bytes().decode("utf-8")


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _events_in(text: str, where: str, found: dict[str, str], seen: list[int]) -> None:
    """Collect UID -> SUMMARY of every VEVENT in ``text``; count UIDs in ``seen[0]``."""
    uid = summary = None
    in_event = False
    for line in _UNFOLD.sub("", text).splitlines():
        if line == "BEGIN:VEVENT":
            in_event, uid, summary = True, None, None
        elif line == "END:VEVENT":
            if uid is None or summary is None:
                raise BenchError(f"{where}: VEVENT without UID or SUMMARY")
            found[uid] = summary
            seen[0] += 1
            in_event = False
        elif in_event and line.startswith("UID:"):
            uid = line[4:]
        elif in_event and line.startswith("SUMMARY"):
            summary = _unescape(line.split(":", 1)[1])


def read_vdir(collection_dir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    seen = [0]
    files = 0
    for entry in os.scandir(collection_dir):
        if entry.name.startswith(".") or not entry.name.endswith(".ics"):
            continue
        files += 1
        before = seen[0]
        _events_in(_read(Path(entry.path)), entry.path, found, seen)
        if seen[0] != before + 1:
            raise BenchError(f"{entry.path}: holds {seen[0] - before} events, expected 1")
    if seen[0] != len(found):
        raise BenchError(f"{collection_dir}: {seen[0]} events but {len(found)} distinct UIDs")
    return found


def read_single_file(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    seen = [0]
    _events_in(_read(path), str(path), found, seen)
    if seen[0] != len(found):
        raise BenchError(f"{path}: {seen[0]} events but {len(found)} distinct UIDs")
    return found


# ----------------------------------------------------------------------------- editing


def edit_vdir(collection_dir: Path, uids: list[str], suffix: str) -> dict[str, str]:
    """Change the SUMMARY of the files holding ``uids``; return the new summaries."""
    wanted = set(uids)
    new: dict[str, str] = {}
    for entry in os.scandir(collection_dir):
        if entry.name.startswith(".") or not entry.name.endswith(".ics"):
            continue
        path = Path(entry.path)
        text = _read(path)
        found: dict[str, str] = {}
        _events_in(text, entry.path, found, [0])
        [(uid, old)] = found.items()
        if uid in wanted:
            new[uid] = f"{old} {suffix}"
            old_line, new_line = f"SUMMARY:{_escape(old)}\r\n", f"SUMMARY:{_escape(new[uid])}\r\n"
            if text.count(old_line) != 1:
                raise BenchError(f"{path}: SUMMARY line of {uid} not found")
            path.write_bytes(text.replace(old_line, new_line).encode("utf-8"))
    if set(new) != wanted:
        raise BenchError(f"{collection_dir}: could not find {sorted(wanted - set(new))}")
    return new


def edit_single_file(path: Path, uids: list[str], suffix: str) -> dict[str, str]:
    """Change the SUMMARY of ``uids`` inside one .ics file; return the new summaries."""
    text = _read(path)
    current: dict[str, str] = {}
    _events_in(text, str(path), current, [0])
    new: dict[str, str] = {}
    for uid in uids:
        old = current[uid]
        new[uid] = f"{old} {suffix}"
        # the SUMMARY line that follows this UID line (both are short: not folded)
        pattern = re.compile(
            rf"(UID:{re.escape(uid)}\r?\n(?:[^\r\n]*\r?\n)*?)SUMMARY:{re.escape(_escape(old))}\r?\n"
        )
        replacement = f"SUMMARY:{_escape(new[uid])}\r\n"
        text, count = pattern.subn(lambda m, line=replacement: m.group(1) + line, text, count=1)
        if count != 1:
            raise BenchError(f"{path}: SUMMARY of {uid} not found")
    path.write_bytes(text.encode("utf-8"))
    return new


# ------------------------------------------------------------------------------ runner


class BenchError(Exception):
    """A run failed or left the stores in a wrong state: no figure for it."""


@dataclass
class Result:
    scenario: str
    run: str
    wall: float
    peak_mb: float
    slowest: float | None = None  # repeated runs: the slowest of them (wall is the median)


@dataclass
class Side:
    kind: str  # "vdir" or "file"
    path: Path  # vdir: the storage directory; file: the .ics file

    @property
    def store_dir(self) -> Path:
        return self.path if self.kind == "vdir" else self.path.parent

    def read(self) -> dict[str, str]:
        if self.kind == "vdir":
            return read_vdir(self.path / COLLECTION)
        return read_single_file(self.path)

    def edit(self, uids: list[str], suffix: str) -> dict[str, str]:
        if self.kind == "vdir":
            return edit_vdir(self.path / COLLECTION, uids, suffix)
        return edit_single_file(self.path, uids, suffix)

    def config(self, name: str) -> str:
        if self.kind == "vdir":
            return f'[storages.{name}]\ntype = "vdir"\npath = "{self.path}"\nfileext = ".ics"\n'
        return f'[storages.{name}]\ntype = "file"\npath = "{self.path}"\n'


@dataclass
class Scenario:
    name: str
    root: Path
    a: Side
    b: Side
    env: dict[str, str] = field(default_factory=dict)  # the child's environment
    expected: dict[str, str] = field(default_factory=dict)  # UID -> SUMMARY on both sides

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def write_config(self) -> None:
        self.config_path.write_text(
            f'[general]\nstate_dir = "{self.root / "state"}"\n\n'
            f"{self.a.config('side_a')}\n{self.b.config('side_b')}\n"
            '[pairs.bench]\na = "side_a"\nb = "side_b"\ncollections = "all"\n'
            'conflict = "newest"\n'
        )

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pimsync", "--config", str(self.config_path), "run"]


_SUMMARY = re.compile(
    r"^bench/" + COLLECTION + r": a \+(\d+) ~(\d+) -(\d+), b \+(\d+) ~(\d+) -(\d+), "
    r"(?:.*, )?(\d+) errors?$",
    re.M,
)


def child_env(root: Path, bytecode_cache: bool) -> dict[str, str]:
    """The environment of every pimsync run. With ``bytecode_cache`` Python caches compiled
    modules (as an installed package has them) in a directory of the benchmark's own, so the
    source tree is not touched; without it every run compiles pimsync's modules again."""
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_child(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``cmd``; return its exit code, wall time (s) and its own peak RSS (MB)."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4: keep Popen from waiting for it again
    return code, wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def check_run(
    sc: Scenario, code: int, log: Path, writes: tuple[int, int, int, int, int, int]
) -> None:
    """Exit 0, the expected summary counts, N records with the expected SUMMARY each side."""
    output = log.read_text("utf-8", "replace")
    if code != 0:
        raise BenchError(f"{sc.name}: pimsync exited {code}:\n{output}")
    m = _SUMMARY.search(output)
    if m is None:
        raise BenchError(f"{sc.name}: no summary line in the output:\n{output}")
    counts = tuple(int(g) for g in m.groups())
    if counts[:6] != writes or counts[6] != 0:
        raise BenchError(
            f"{sc.name}: expected a +{writes[0]} ~{writes[1]} -{writes[2]}, "
            f"b +{writes[3]} ~{writes[4]} -{writes[5]}, 0 errors; pimsync said: {m.group(0)}"
        )
    for label, side in (("a", sc.a), ("b", sc.b)):
        found = side.read()
        if len(found) != len(sc.expected):
            raise BenchError(
                f"{sc.name}: side {label} holds {len(found)} records, expected {len(sc.expected)}"
            )
        wrong = [uid for uid, s in sc.expected.items() if found.get(uid) != s]
        if wrong:
            raise BenchError(
                f"{sc.name}: side {label}: {len(wrong)} records differ, e.g. {wrong[0]}: "
                f"{found.get(wrong[0])!r} instead of {sc.expected[wrong[0]]!r}"
            )


_OPENAT = re.compile(r'\bopenat\([^,]*, "((?:[^"\\]|\\.)*)"')


def count_opens(sc: Scenario, strace: str) -> tuple[int, int]:
    """Run the no-change sync under strace; return the number of .ics files opened in the
    two stores and the number of all other paths opened in them (directories included)."""
    trace = sc.root / "strace.txt"
    log = sc.root / "strace-run.log"
    cmd = [strace, "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *sc.command()]
    with open(log, "wb") as out:
        code = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=sc.env, check=False
        ).returncode
    check_run(sc, code, log, (0, 0, 0, 0, 0, 0))
    stores = tuple(str(side.store_dir) + os.sep for side in (sc.a, sc.b))
    ics = other = 0
    for line in trace.read_text("utf-8", "replace").splitlines():
        m = _OPENAT.search(line)
        if m is None or not (m.group(1) + os.sep).startswith(stores):
            continue
        if m.group(1).endswith(".ics"):
            ics += 1
        else:
            other += 1
    return ics, other


def find_strace() -> str | None:
    found = shutil.which("strace")
    if found is None:
        print("strace not found: open counts are skipped (apt-get install -y strace)")
    return found


# ---------------------------------------------------------------------------- scenarios


def pick(uids: list[str], count: int, offset: int) -> list[str]:
    """``count`` UIDs spread over the whole collection."""
    step = max(1, len(uids) // count)
    return [uids[(offset + i * step) % len(uids)] for i in range(count)]


def run_scenario(
    sc: Scenario,
    events: list[Event],
    strace: str | None,
    results: list[Result],
    opens: dict[str, tuple[int, int]],
) -> None:
    n = len(events)
    sc.expected = {ev.uid: ev.summary for ev in events}
    uids = [ev.uid for ev in events]
    sc.write_config()
    print(f"\n## {sc.name}  ({sc.root})")

    runs = 0

    def measure(run: str, writes: tuple[int, int, int, int, int, int]) -> Result:
        nonlocal runs
        runs += 1
        log = sc.root / f"run-{runs}.log"
        code, wall, peak = run_child(sc.command(), log, sc.env)
        check_run(sc, code, log, writes)
        print(f"  {run:<28} {wall:8.3f} s {peak:8.1f} MB  ok")
        return Result(sc.name, run, wall, peak)

    results.append(measure("first sync", (0, 0, 0, n, 0, 0)))

    tries = [measure(f"no change #{i + 1}", (0, 0, 0, 0, 0, 0)) for i in range(NO_CHANGE_REPEATS)]
    median = statistics.median(r.wall for r in tries)
    results.append(
        Result(
            sc.name,
            f"no change (median of {NO_CHANGE_REPEATS})",
            median,
            max(r.peak_mb for r in tries),
            max(r.wall for r in tries),
        )
    )
    if strace:
        opens[sc.name] = count_opens(sc, strace)
        ics, other = opens[sc.name]
        print(f"  no change under strace: {ics} .ics files opened in the stores ({other} other)")

    edit_runs: list[tuple[str, Side, tuple[int, int, int, int, int, int]]] = [
        (f"{EDITS} edits on a ({sc.a.kind})", sc.a, (0, 0, 0, 0, EDITS, 0)),
    ]
    if "file" in (sc.a.kind, sc.b.kind):
        edit_runs.append((f"{EDITS} edits on b ({sc.b.kind})", sc.b, (0, EDITS, 0, 0, 0, 0)))
    for i, (label, side, writes) in enumerate(edit_runs):
        changed = side.edit(pick(uids, EDITS, offset=7 + 13 * i), f"(edited {i + 1})")
        sc.expected.update(changed)
        results.append(measure(label, writes))


def warm_up(root: Path, env: dict[str, str]) -> None:
    """Sync a few records once, unmeasured, so that every module pimsync uses is compiled
    (and cached, unless --no-bytecode-cache) before the first measured run."""
    events = make_events(20, seed=1)
    sc = Scenario("warm-up", root, Side("vdir", root / "a"), Side("file", root / "b" / "cal.ics"))
    sc.env, sc.expected = env, {ev.uid: ev.summary for ev in events}
    write_vdir(sc.a.path / COLLECTION, events)
    sc.write_config()
    code, _, _ = run_child(sc.command(), root / "run.log", env)
    check_run(sc, code, root / "run.log", (0, 0, 0, len(events), 0, 0))


def build_scenarios(root: Path, events: list[Event]) -> list[tuple[Scenario, Callable[[], None]]]:
    """Each scenario with a function that lays out its data."""
    out: list[tuple[Scenario, Callable[[], None]]] = []

    r1 = root / "vdir-vdir"
    s1 = Scenario("vdir ↔ vdir", r1, Side("vdir", r1 / "a"), Side("vdir", r1 / "b"))

    def setup1() -> None:
        write_vdir(s1.a.path / COLLECTION, events)
        s1.b.path.mkdir(parents=True)

    out.append((s1, setup1))

    r2 = root / "vdir-file"
    s2 = Scenario(
        "vdir → file", r2, Side("vdir", r2 / "a"), Side("file", r2 / "b" / f"{COLLECTION}.ics")
    )

    def setup2() -> None:
        write_vdir(s2.a.path / COLLECTION, events)  # the file on b is absent: pimsync makes it

    out.append((s2, setup2))

    r3 = root / "file-vdir"
    s3 = Scenario(
        "file → vdir", r3, Side("file", r3 / "a" / f"{COLLECTION}.ics"), Side("vdir", r3 / "b")
    )

    def setup3() -> None:
        s3.a.path.parent.mkdir(parents=True)
        s3.a.path.write_bytes(single_file_text(events).encode())
        s3.b.path.mkdir(parents=True)

    out.append((s3, setup3))
    return out


# --------------------------------------------------------------------------------- main


def machine() -> str:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), RAM {mem}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def markdown_table(results: list[Result]) -> str:
    rows = ["| scenario | run | wall s | peak MB |", "|---|---|---:|---:|"]
    rows += [f"| {r.scenario} | {r.run} | {r.wall:.2f} | {r.peak_mb:.0f} |" for r in results]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10000, metavar="N", help="default 10000")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="let every run compile pimsync's modules again (PYTHONDONTWRITEBYTECODE=1)",
    )
    args = parser.parse_args()
    if args.records < EDITS:
        parser.error(f"--records must be at least {EDITS}")

    root = Path(tempfile.mkdtemp(prefix="pimsync-bench-"))
    print(f"pimsync local-sync benchmark: {args.records} records, data in {root}")
    print(machine())
    env = child_env(root, not args.no_bytecode_cache)
    print(
        "bytecode: compiled on every run (PYTHONDONTWRITEBYTECODE=1)"
        if args.no_bytecode_cache
        else f"bytecode: cached in {env['PYTHONPYCACHEPREFIX']} (warmed up before measuring)"
    )
    strace = find_strace()
    events = make_events(args.records)
    sample = (events[1].file_text() + CRLF).encode()
    single = single_file_text(events).encode()
    print(
        f"record size: {len(sample)} bytes as a vdir file (with its VTIMEZONE), "
        f"{len(single) / len(events):.0f} bytes per record in the single file"
    )
    results: list[Result] = []
    opens: dict[str, tuple[int, int]] = {}
    try:
        warm_up(root / "warm-up", env)
        for sc, setup in build_scenarios(root, events):
            sc.env = env
            setup()
            run_scenario(sc, events, strace, results, opens)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        print(f"data kept in {root}", file=sys.stderr)
        return 1

    print(f"\n### Results ({args.records} records)\n")
    print(markdown_table(results))
    if opens:
        print("\n.ics files opened in the stores during a no-change run (strace):\n")
        for name, (ics, other) in opens.items():
            print(f"- {name}: {ics} (other paths in the stores: {other})")

    no_change = [r for r in results if r.slowest is not None]
    slowest = max(no_change, key=lambda r: r.slowest or 0.0)
    peak = max(results, key=lambda r: r.peak_mb)
    unread = all(ics == 0 for ics, _ in opens.values()) if opens else None
    print("\nTargets:")
    print(
        f"- no-change run under 1 s: {'met' if (slowest.slowest or 0) < 1 else 'NOT met'} "
        f"(slowest single run: {slowest.scenario}, {slowest.slowest:.2f} s)"
    )
    if unread is None:
        print("- no-change run reads no record content: not measured (no strace)")
    else:
        worst = max(opens.items(), key=lambda kv: kv[1][0])
        print(
            f"- no-change run reads no record content: {'met' if unread else 'NOT met'} "
            f"(most .ics opens: {worst[0]}, {worst[1][0]})"
        )
    print(
        f"- peak memory under 200 MB: {'met' if peak.peak_mb < 200 else 'NOT met'} "
        f"(highest: {peak.scenario}, {peak.run}, {peak.peak_mb:.0f} MB)"
    )
    if args.keep:
        print(f"\ndata kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
