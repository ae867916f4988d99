"""kill -9 at random points of real runs, through the command line, then convergence.

Two setups: a vdir paired with a Radicale account (htpasswd password), and a vdir paired
with a phone's export (one .ics file per calendar). Each starts with a calendar on each
side only (so the first run uploads one and downloads the other), and later gets new
calendars on either side (more first syncs). Between runs the laptop user edits
SUMMARY of random records in the vdir, the phone edits LOCATION of random records on
its side (on the server through conditional PUTs, in the file by rewriting it), both
create records and delete a few, and some records are edited on both sides in the same
round (the merge has to combine them). Runs are killed with SIGKILL after a random,
seeded delay drawn over the estimated duration of an uninterrupted run of that size,
measured first on a scratch copy. Then uninterrupted runs, and the verdict: both sides
hold exactly the oracle's records (none lost, none resurrected, none doubled, no
``-conflict-`` copy), each with its last SUMMARY and last LOCATION; the next run writes
nothing; nothing was written outside the stores; the password was never printed.

``PIMSYNC_RELIABILITY=full`` runs the long version (see PLANS); docs/reliability.md.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.reliability.harness import (
    MODE,
    NO_CHANGE,
    Cli,
    DavSide,
    Edits,
    Expect,
    FileSide,
    Oracle,
    Side,
    VdirSide,
    changes,
    files_containing,
    fingerprint,
    new_event,
    publish,
    reported,
    seed_for,
    snapshot,
    spread,
    start_radicale_with_password,
    user_round,
    verify,
)
from tests.test_cli import write_config
from tests.test_dav_sync import dav_storage_toml


@dataclass(frozen=True)
class KillPlan:
    records: int  # per calendar at the start (two calendars, one on each side)
    kills: int  # SIGKILLs that must land
    first_sync_kills: int  # of which at least this many during a first sync
    new_collection_every: int  # rounds between two new calendars (one side, then the other)
    new_collection_records: int
    clean_every: int  # an uninterrupted run (after edits) every this many rounds
    max_attempts: int  # killed runs tried at most (a kill lands only if the run is not over)
    edits: Edits


PLANS = {
    ("radicale", "ci"): KillPlan(60, 10, 2, 6, 30, 3, 40, Edits(0.05, 2, 1, 1)),
    ("radicale", "full"): KillPlan(300, 100, 15, 6, 100, 3, 400, Edits(0.04, 3, 2, 1)),
    ("file", "ci"): KillPlan(400, 10, 2, 6, 200, 3, 40, Edits(0.03, 3, 2, 1)),
    ("file", "full"): KillPlan(3000, 100, 15, 6, 1000, 3, 400, Edits(0.02, 5, 3, 2)),
}
ESTIMATE_MARGIN = 1.2  # draw kill delays up to a little past the estimated end of the run


class Scenario:
    """One pair (vdir "laptop" = side a; the server or the phone's files = side b), its
    config, its command line and its oracle, all under TMP."""

    def __init__(self, tmp: Path, setup: str, server=None) -> None:
        self.tmp, self.setup, self.server = tmp, setup, server
        tmp.mkdir(parents=True, exist_ok=True)
        self.tag = uuid.uuid4().hex[:6]
        self.a = VdirSide(tmp / "vdir")
        self.a.root.mkdir()
        if setup == "radicale":
            self.b: Side = DavSide(server)
            home = SimpleNamespace(
                url=server.url.rstrip("/") + server.home("ics"),
                username=server.username,
                password=server.password,
            )
            self.cfg = tmp / "config.toml"
            self.cfg.write_text(
                '[general]\nstate_dir = "state"\n\n'
                '[storages.laptop]\ntype = "vdir"\npath = "vdir"\nfileext = ".ics"\n\n'
                f"{dav_storage_toml('server', home, 'ics')}\n"
                '[pairs.cal]\na = "laptop"\nb = "server"\n'
            )
            self.stores = [tmp / "vdir", tmp / "state"]
        else:
            (tmp / "phone").mkdir()
            self.b = FileSide(tmp / "phone")
            self.cfg = write_config(tmp, conflict="merge")
            self.stores = [tmp / "vdir", tmp / "phone", tmp / "state"]
        self.cli = Cli(tmp, self.cfg)
        self.oracle = Oracle(self.tag)
        self.sides = {"a": self.a, "b": self.b}

    def add_collection(self, side_name: str, col: str, n: int) -> None:
        """A new calendar with N records on one side (an import, or a new phone calendar)."""
        side = self.sides[side_name]
        self.oracle.collections.add(col)
        if isinstance(side, DavSide):  # a bulk import into the account
            files = {}
            for _ in range(n):
                uid = self.oracle.new_uid(side_name)
                summary, location = f"S0 {uid}", f"L0 {uid}"
                files[f"{uid}.ics"] = new_event(uid, summary, location, self.oracle.tick())
                self.oracle.records[uid] = Expect(col, summary, location, side_name)
                self.oracle.counts["creates"] += 1
            side.server.seed(col, "ics", files)
            return
        side.begin()
        side.make_collection(col)
        for _ in range(n):
            self.oracle.create(side, side_name, col)
        side.commit()

    def watched(self) -> list[Path]:
        return [p for side in self.sides.values() for p in side.watched()]


@dataclass
class Estimate:
    first: float  # an uninterrupted first sync of the two starting calendars
    incr: float  # an uninterrupted run after one round of edits
    first_records: int

    def new_collection(self, n: int) -> float:
        return self.incr + max(self.first - self.incr, 0.0) * n / self.first_records


def calibrate(tmp: Path, setup: str, plan: KillPlan, rng: random.Random, server=None) -> Estimate:
    """Time uninterrupted runs of the same size on a scratch copy (only the times count
    here: the campaign judges the runs)."""
    sc = Scenario(tmp, setup, server)
    sc.add_collection("a", f"cal-a-{sc.tag}", plan.records)
    sc.add_collection("b", f"cal-b-{sc.tag}", plan.records)
    first = sc.cli("run")
    assert first.rc in (0, 1) and first.summaries(), first.describe()  # it did the work
    sc.oracle.converged()
    user_round(rng, sc.oracle, sc.a, sc.b, replace(plan.edits, deletes=0))
    incr = sc.cli("run")
    assert incr.rc in (0, 1) and incr.summaries(), incr.describe()
    if server is not None:  # leave the account to the real scenario
        for col in sc.oracle.collections:
            server.request("DELETE", sc.b.path(col))
    return Estimate(first.seconds, incr.seconds, 2 * plan.records)


def campaign(
    sc: Scenario, plan: KillPlan, est: Estimate, rng: random.Random, figures: dict
) -> list[str]:
    """Kill runs at random points until PLAN's kills have landed, then converge and judge.
    Returns what went wrong (empty: nothing); FIGURES gets the figures."""
    figures["logs"] = str(sc.cli.logs)  # every run's output, and journal.txt: every edit
    try:
        return _campaign(sc, plan, est, rng, figures)
    finally:
        (sc.cli.logs / "journal.txt").write_text("\n".join(sc.oracle.journal) + "\n")


def run_and_note(sc: Scenario, *args: str, kill_after: float | None = None):
    run = sc.cli(*args, kill_after=kill_after)
    state = "KILLED" if run.killed else f"rc {run.rc}"
    delay = "" if kill_after is None else f", kill planned at {kill_after:.3f} s"
    n = len(sc.cli.runs) - 1
    sc.oracle.journal.append(
        f"-- run {n:04d} {' '.join(args)}: {state} after {run.seconds:.3f} s{delay}"
    )
    return run


def _campaign(
    sc: Scenario, plan: KillPlan, est: Estimate, rng: random.Random, figures: dict
) -> list[str]:
    started = time.monotonic()
    cli, oracle = sc.cli, sc.oracle
    problems: list[str] = []

    def uninterrupted(*args: str, why: str):
        """A run nobody kills: it must end cleanly (a failure is noted, and we go on)."""
        run = run_and_note(sc, *args)
        if run.clean:
            if args[0] == "run":
                oracle.converged()
        else:
            problems.append(f"{why} failed (run {len(cli.runs) - 1}):\n{run.describe()}")
        return run

    sc.add_collection("a", f"cal-a-{sc.tag}", plan.records)
    sc.add_collection("b", f"cal-b-{sc.tag}", plan.records)
    outside_before = snapshot(sc.tmp, skip=[*sc.stores, cli.logs])
    budget = est.first * ESTIMATE_MARGIN
    in_first_sync = True
    landed = first_kills = with_writes = attempts = rounds = new_cols = 0
    delays: list[float] = []
    fractions: list[float] = []
    figures.update(estimate_s=[round(est.first, 2), round(est.incr, 2)])
    while attempts < plan.max_attempts and (
        landed < plan.kills or first_kills < plan.first_sync_kills
    ):
        if attempts:
            user_round(rng, oracle, sc.a, sc.b, plan.edits)
            rounds += 1
        if rounds and rounds % plan.new_collection_every == 0 and not in_first_sync:
            new_cols += 1
            side = "b" if new_cols % 2 else "a"
            sc.add_collection(side, f"new{new_cols}-{side}-{sc.tag}", plan.new_collection_records)
            if isinstance(sc.sides[side], DavSide):  # made by another client: look again
                uninterrupted("discover", why="pimsync discover after a new server calendar")
            in_first_sync = True
            budget = est.new_collection(plan.new_collection_records) * ESTIMATE_MARGIN
        attempts += 1
        delay = rng.uniform(0, budget)
        before = fingerprint(*sc.watched())
        run = run_and_note(sc, "run", kill_after=delay)
        if run.killed:
            landed += 1
            first_kills += in_first_sync
            with_writes += fingerprint(*sc.watched()) != before
            delays.append(delay)
            fractions.append(delay / budget)
        elif run.clean:  # it ended before the kill
            oracle.converged()
            in_first_sync = False
            budget = est.incr * ESTIMATE_MARGIN
        else:
            problems.append(f"a run that was not killed failed:\n{run.describe()}")
        if rounds and rounds % plan.clean_every == 0 and run.killed:
            user_round(rng, oracle, sc.a, sc.b, plan.edits)
            if uninterrupted("run", why="the run after a kill").clean:
                in_first_sync = False
                budget = est.incr * ESTIMATE_MARGIN
        figures.update(kills=landed, kill_attempts=attempts, runs=len(cli.runs))

    final = uninterrupted("run", why="the final run")
    if not final.clean:  # judge the data all the same, after one more run
        final = uninterrupted("run", why="the run after the final run")
    verdict = verify(oracle, sc.sides)
    problems += verdict.problems()
    again = run_and_note(sc, "run")
    lines = again.summaries()
    if not again.clean or sorted(lines) != sorted(f"cal/{c}" for c in oracle.collections):
        problems.append(f"the run after convergence failed:\n{again.describe()}")
    elif any(text != NO_CHANGE for text in lines.values()):
        problems.append(f"the run after convergence wrote something:\n{again.describe()}")
    problems += [f"after one more run: {p}" for p in verify(oracle, sc.sides).problems()]
    outside = changes(outside_before, snapshot(sc.tmp, skip=[*sc.stores, cli.logs]))
    if outside:
        problems.append(f"written outside the stores: {outside}")
    merges = sum(r.count("merged") for r in cli.runs)
    figures.update(
        kills=landed,
        kills_first_sync=first_kills,
        kills_incremental=landed - first_kills,
        kills_after_a_write=with_writes,
        kill_attempts=attempts,
        kill_delay_s=spread(delays),
        kill_delay_fraction_of_run=spread(fractions),
        rounds=rounds,
        collections=len(oracle.collections),
        records=len(oracle.records),
        records_alive=len(oracle.alive()),
        edits=dict(oracle.counts),
        runs=len(cli.runs),
        failed_runs=sum(not r.clean and not r.killed for r in cli.runs),
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated) + len(verdict.conflict_copies),
        resurrected_or_unknown=len(verdict.extra),
        edits_lost=len(verdict.edits_lost),
        merges=merges,
        conflicts=sum(r.count("conflict") for r in cli.runs),
        temp_files_left=len(sc.a.leftovers()) + len(sc.b.leftovers()),
        seconds=round(time.monotonic() - started, 1),
    )
    if landed < plan.kills:
        problems.append(f"only {landed} of {attempts} kills landed: raise the sizes")
    if first_kills < plan.first_sync_kills:
        problems.append(f"only {first_kills} kills landed in a first sync")
    if merges < 1:
        problems.append("no merge ran: the rounds should edit some records on both sides")
    return problems


@pytest.fixture
def radicale_pw(tmp_path_factory, request):
    """A Radicale of its own (its account holds only this test's calendars) with a
    password worth looking for in the output."""
    pytest.importorskip("radicale", reason="Radicale (a test dependency) is not installed")
    password = f"pw-{uuid.uuid4().hex}-Rel"
    server = start_radicale_with_password(tmp_path_factory.mktemp("radicale-kill"), password)
    request.addfinalizer(server.stop)
    return server


def test_kill9_vdir_radicale_converges(tmp_path, tmp_path_factory, radicale_pw, capsys):
    seed = seed_for(9101)
    rng = random.Random(seed)
    plan = PLANS[("radicale", MODE)]
    figures: dict = {"setup": "vdir <-> radicale", "mode": MODE, "seed": seed}
    with reported("kill9 vdir-radicale", seed, figures):
        calib = random.Random(seed + 1)
        est = calibrate(tmp_path_factory.mktemp("calib"), "radicale", plan, calib, radicale_pw)
        sc = Scenario(tmp_path / "pair", "radicale", radicale_pw)
        problems = campaign(sc, plan, est, rng, figures)
        basic = (radicale_pw.auth_header() or "Basic ?").split(" ", 1)[1]
        leaked = []
        for secret in (radicale_pw.password, basic):  # as typed, and as sent
            leaked += [i for i, r in enumerate(sc.cli.runs) if secret in r.text]
            stored = files_containing(sc.tmp, secret, skip=[sc.cfg])
            if stored:
                problems.append(f"the password was written to {stored}")
        if leaked:
            problems.append(f"the password was printed by runs {sorted(set(leaked))}")
        figures["secret_printed"] = len(set(leaked))
        publish(capsys, f"test_kill9_vdir_radicale_converges[{MODE}]", figures)
        assert not problems, "\n\n".join(problems)


def test_kill9_file_vdir_converges(tmp_path, tmp_path_factory, capsys):
    seed = seed_for(9202)
    rng = random.Random(seed)
    plan = PLANS[("file", MODE)]
    figures: dict = {"setup": "vdir <-> file", "mode": MODE, "seed": seed}
    with reported("kill9 file-vdir", seed, figures):
        est = calibrate(tmp_path_factory.mktemp("calib"), "file", plan, random.Random(seed + 1))
        sc = Scenario(tmp_path / "pair", "file")
        problems = campaign(sc, plan, est, rng, figures)
        publish(capsys, f"test_kill9_file_vdir_converges[{MODE}]", figures)
        assert not problems, "\n\n".join(problems)
