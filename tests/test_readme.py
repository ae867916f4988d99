"""README.md tells the truth: its two set-up commands, the CI command, and the demo."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pimsync.cli import main
from pimsync.config import load_config
from pimsync.model import parse_record, split

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
DEMO = ROOT / "fixtures" / "demo"

# a fenced block: the opening fence with its info string, then everything up to the closing
# fence
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def sh_blocks() -> list[tuple[str, str]]:
    """(heading above it, body) of every ```sh block in README.md, in order."""
    text = README.read_text("utf-8")
    out = []
    for m in _FENCE.finditer(text):
        if m.group(1).strip() != "sh":
            continue
        headings = re.findall(r"^#+ +(.+?)\s*$", text[: m.start()], re.MULTILINE)
        out.append((headings[-1] if headings else "", m.group(2)))
    return out


def one_command(body: str) -> str:
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(lines) == 1, f"a set-up block must be one shell line, got {lines}"
    return lines[0]


def ci_command() -> str:
    lines = [line for line in CI_RUN.read_text("utf-8").splitlines() if line.strip()]
    return lines[-1]


def test_readme_has_exactly_two_sh_blocks():
    infos = [m.group(1).strip() for m in _FENCE.finditer(README.read_text("utf-8"))]
    shells = [info for info in infos if info in ("sh", "bash", "shell", "console", "zsh")]
    assert shells == ["sh", "sh"], "README.md gives exactly two shell commands"
    blocks = sh_blocks()
    assert [heading for heading, _ in blocks] == ["Try the demo", "Run the tests"]
    for _, body in blocks:
        one_command(body)


def test_demo_command_runs_the_demo_config():
    [(_, demo), _] = sh_blocks()
    command = one_command(demo)
    assert command.startswith("python3 -m venv .venv && ")
    assert command.endswith("pimsync --config fixtures/demo/config.toml run -v")


def test_test_command_is_exactly_what_ci_runs():
    [_, (_, tests)] = sh_blocks()
    assert one_command(tests) == ci_command()


def test_demo_config_loads_and_writes_only_under_work():
    config = load_config(DEMO / "config.toml")
    work = (DEMO / "work").absolute()
    written = [config.general.state_dir] + [
        s.path for s in config.storages.values() if s.type == "vdir"
    ]
    for path in written:
        assert path.is_relative_to(work), path
    # the demo's output stays out of git, so the repository stays clean
    assert "work/" in (DEMO / ".gitignore").read_text("utf-8").split()


def _vdir_records(directory: Path, kind: str) -> dict:
    files = sorted(directory.glob(f"*.{kind}"))
    records = {}
    for path in files:
        record = parse_record(path.read_bytes(), kind, str(path))
        records[record.ident] = record
    assert len(records) == len(files)
    return records


def test_demo_end_to_end(tmp_path, capsys):
    tmp = tmp_path / "demo"
    shutil.copytree(DEMO, tmp, ignore=shutil.ignore_patterns("work"))
    phone_ics = (tmp / "phone" / "personal.ics").read_bytes()
    phone_vcf = (tmp / "phone" / "contacts.vcf").read_bytes()
    argv = ["--config", str(tmp / "config.toml"), "run"]

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "calendars/personal: a +0 ~0 -0, b +4 ~0 -0, 0 errors" in out
    assert "contacts/contacts: a +0 ~0 -0, b +3 ~0 -0, 0 errors" in out

    # the vdirs hold exactly the phone's records, with the same content
    events = _vdir_records(tmp / "work" / "calendars" / "personal", "ics")
    cards = _vdir_records(tmp / "work" / "contacts" / "contacts", "vcf")
    from_phone_ics = {r.ident: r.hash for r in split(phone_ics, "ics", "phone").records}
    from_phone_vcf = {r.ident: r.hash for r in split(phone_vcf, "vcf", "phone").records}
    assert len(cards) == 3 and {i: r.hash for i, r in cards.items()} == from_phone_vcf
    assert len(events) == 4 and {i: r.hash for i, r in events.items()} == from_phone_ics
    # the recurring stand-up and its moved occurrence are one record, one file
    standup = events["5f2b9c0e-weekly-standup@phone.example"].text
    assert standup.count("BEGIN:VEVENT") == 2 and "RECURRENCE-ID" in standup
    # nothing needed writing on the phone side
    assert (tmp / "phone" / "personal.ics").read_bytes() == phone_ics
    assert (tmp / "phone" / "contacts.vcf").read_bytes() == phone_vcf

    files = [*tmp.rglob("*.ics"), *tmp.rglob("*.vcf")]
    assert len(files) == 2 + 7
    before = {p: p.stat().st_mtime_ns for p in files}

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "calendars/personal: a +0 ~0 -0, b +0 ~0 -0, 0 errors" in out
    assert "contacts/contacts: a +0 ~0 -0, b +0 ~0 -0, 0 errors" in out
    assert {p: p.stat().st_mtime_ns for p in files} == before
