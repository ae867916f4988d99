"""kill -9 at random moments of real runs: the next run converges, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from pimsync.model import parse_record, split
from tests.conftest import make_event
from tests.test_cli import write_config

N = 3000


def _sides(tmp):
    a = {}
    for p in (tmp / "vdir" / "home").glob("*.ics"):
        r = parse_record(p.read_bytes(), "ics", str(p))
        assert r.ident not in a
        a[r.ident] = r.hash
    path = tmp / "phone" / "home.ics"
    records = split(path.read_bytes(), "ics", str(path)).records if path.exists() else []
    b = {r.ident: r.hash for r in records}
    assert len(b) == len(records)
    return a, b


def _run(cfg, kill_after: float | None = None) -> int | None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_after is None:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        return 0
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode


def test_kill_9_at_random_points_then_converge(tmp_path):
    rng = random.Random(1234)
    home = tmp_path / "vdir" / "home"
    home.mkdir(parents=True)
    (tmp_path / "phone").mkdir()
    cfg = write_config(tmp_path)
    for i in range(N):
        (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"first {i}"))
    killed = 0
    for round_ in range(6):
        # some edits on both sides between the interrupted runs
        for i in rng.sample(range(N), 1000):
            (home / f"e{i}.ics").write_bytes(make_event(f"e{i}", f"round {round_} {i}"))
        if rng.random() < 0.5:
            victim = home / f"e{rng.randrange(N)}.ics"
            if victim.exists():
                victim.unlink()
        rc = _run(cfg, kill_after=rng.uniform(0.1, 0.7))
        killed += rc == -signal.SIGKILL
    assert killed >= 2, "the runs finished before they could be killed: raise N"
    _run(cfg)
    a, b = _sides(tmp_path)
    assert a == b
    # every record that was not deleted is there, with its last edit
    assert len(a) >= N - 6
    for i in range(N):
        path = home / f"e{i}.ics"
        if path.exists():
            assert parse_record(path.read_bytes(), "ics", "x").hash == a[f"e{i}"]
    _run(cfg)
    assert _sides(tmp_path) == (a, b)
