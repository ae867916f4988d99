"""Archives end to end: export, verify, restore, retention, schedule, corruption."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from freezegun import freeze_time

from pimsync.cli import main
from pimsync.export.verify import verify
from pimsync.model import parse_record, split
from tests.conftest import CORPUS, make_card, make_event


def write_config(tmp: Path, extra: str = "", every: str = "1d", fmt: str = "tar.gz") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"

[storages.cal]
type = "vdir"
path = "cal"
fileext = ".ics"

[storages.cards]
type = "file"
path = "cards/{{collection}}.vcf"

[storages.copy]
type = "vdir"
path = "copy"
fileext = ".ics"

[pairs.p]
a = "cal"
b = "copy"

[exports.nightly]
storages = ["cal", "cards"]
path = "backups"
every = "{every}"
format = "{fmt}"
{extra}
"""
    )
    return cfg


@pytest.fixture
def home(tmp_path):
    (tmp_path / "cal" / "home").mkdir(parents=True)
    (tmp_path / "cal" / "work").mkdir(parents=True)
    (tmp_path / "cards").mkdir()
    for i in range(5):
        (tmp_path / "cal" / "home" / f"h{i}.ics").write_bytes(make_event(f"h{i}", f"Home {i}"))
    (tmp_path / "cal" / "work" / "w.ics").write_bytes(make_event("w", "Work"))
    (tmp_path / "cal" / "home" / "displayname").write_text("Home sweet home")
    (tmp_path / "cards" / "friends.vcf").write_bytes(
        b"".join(make_card(f"c{i}", f"Friend {i}") for i in range(3))
    )
    return tmp_path


def idents(path: Path, kind: str) -> dict[str, str]:
    return {r.ident: r.hash for r in split(path.read_bytes(), kind, str(path)).records}


def vdir_state(directory: Path) -> dict[str, str]:
    out = {}
    for p in directory.glob("*.ics"):
        r = parse_record(p.read_bytes(), "ics", str(p))
        out[r.ident] = r.hash
    return out


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_export_makes_a_verified_private_archive_any_app_can_import(home, fmt, capsys):
    cfg = write_config(home, fmt=fmt)
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((home / "backups").iterdir())
    assert archive.name.startswith("nightly-") and archive.name.endswith(fmt)
    assert archive.stat().st_mode & 0o777 == 0o600
    result = verify(archive)
    assert (result.collections, result.records) == (3, 9)
    opened = zipfile.ZipFile(archive) if fmt == "zip" else tarfile.open(archive)
    names = opened.namelist() if fmt == "zip" else opened.getnames()
    assert sorted(names) == ["cal/home.ics", "cal/work.ics", "cards/friends.vcf", "manifest.json"]
    read = opened.read if fmt == "zip" else (lambda n: opened.extractfile(n).read())
    manifest = json.loads(read("manifest.json"))
    home_entry = next(c for c in manifest["collections"] if c["collection"] == "home")
    assert home_entry["displayname"] == "Home sweet home" and home_entry["count"] == 5
    assert home_entry["settled"] is True
    assert {r["uid"] for r in home_entry["records"]} == {f"h{i}" for i in range(5)}
    # each collection file is one standard calendar / address book
    data = read("cal/home.ics")
    assert data.count(b"BEGIN:VCALENDAR") == 1
    assert {r.ident for r in split(data, "ics", "x").records} == {f"h{i}" for i in range(5)}
    assert split(read("cards/friends.vcf"), "vcf", "x").records[2].ident == "c2"
    assert "export nightly:" in capsys.readouterr().out


def test_restore_round_trip_after_a_wipe(home, capsys):
    cfg = write_config(home)
    before = vdir_state(home / "cal" / "home")
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((home / "backups").iterdir())
    for p in (home / "cal" / "home").glob("*.ics"):
        p.unlink()
    (home / "cal" / "home" / "h0.ics").write_bytes(make_event("h0", "changed since"))
    (home / "cal" / "home" / "extra.ics").write_bytes(make_event("extra", "not in the archive"))
    capsys.readouterr()
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "cal",
                 "--collection", "home"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "4 added, 1 updated, 0 deleted, 0 unchanged" in out
    after = vdir_state(home / "cal" / "home")
    assert {k: v for k, v in after.items() if k != "extra"} == before
    assert "extra" in after  # kept without --exact
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "cal",
                 "--collection", "home", "--exact"]) == 0  # fmt: skip
    assert vdir_state(home / "cal" / "home") == before


def test_restore_creates_a_missing_collection(home, capsys):
    cfg = write_config(home)
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((home / "backups").iterdir())
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "copy"]) == 0
    assert vdir_state(home / "copy" / "work") == vdir_state(home / "cal" / "work")
    assert "(collection created)" in capsys.readouterr().out
    # a vCard archive cannot go into a calendar storage
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "copy",
                 "--collection", "friends"]) == 1  # fmt: skip


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_a_damaged_archive_fails_verify(home, damage, capsys):
    cfg = write_config(home)
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((home / "backups").iterdir())
    raw = gzip.decompress(archive.read_bytes())
    if damage == "flip":
        i = raw.index(b"SUMMARY:Home 3") + 9
        raw = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        archive.write_bytes(gzip.compress(raw))
    elif damage == "truncate":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    else:
        tar = tarfile.open(fileobj=io.BytesIO(raw))
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as new:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                if member.name == "manifest.json":
                    data = data.replace(b'"count": 5', b'"count": 6')
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
        archive.write_bytes(out.getvalue())
    capsys.readouterr()
    assert main(["--config", str(cfg), "archive", "verify", str(archive)]) == 1
    err = capsys.readouterr().err
    assert str(archive) in err
    expected = {"flip": "checksum mismatch", "truncate": "", "manifest": "manifest says"}[damage]
    assert expected in err


def test_run_exports_when_due_and_retention_keeps_its_tiers(home, capsys):
    cfg = write_config(home, extra="keep = { last = 2, daily = 3 }", every="1d")
    (home / "backups").mkdir()
    foreign = home / "backups" / "notes.txt"
    foreign.write_text("mine")
    other = home / "backups" / "weekly-20260101T000000Z.tar.gz"
    other.write_text("another export's archive")
    made = []
    for day in range(1, 8):
        for hour in (0, 6, 12):
            with freeze_time(f"2026-03-{day:02d} {hour:02d}:00:00"):
                assert main(["--config", str(cfg), "run"]) == 0
            made = sorted(p.name for p in (home / "backups").glob("nightly-*"))
    # one archive a day (every = 1d); 2 newest + newest of 3 newest days = 3 kept
    assert made == [
        "nightly-20260305T000000Z.tar.gz",
        "nightly-20260306T000000Z.tar.gz",
        "nightly-20260307T000000Z.tar.gz",
    ]
    assert foreign.read_text() == "mine" and other.exists()
    assert main(["--config", str(cfg), "archive", "list"]) == 0
    assert "export nightly (" in (out := capsys.readouterr().out) and "3 archives" in out


def test_a_failed_export_leaves_earlier_archives_untouched(home, capsys, monkeypatch):
    cfg = write_config(home)
    assert main(["--config", str(cfg), "export"]) == 0
    [first] = list((home / "backups").iterdir())
    before = first.read_bytes()
    from pimsync.errors import StorageError
    from pimsync.storage.vdir import VdirCollection

    real_list = VdirCollection.list

    def failing(self, token=None):
        if self.id == "work":  # the second collection: half the archive is written
            raise StorageError("disk on fire", where=str(self.path))
        return real_list(self, token)

    monkeypatch.setattr(VdirCollection, "list", failing)
    with freeze_time("2030-01-01"):
        assert main(["--config", str(cfg), "export"]) == 1
    err = capsys.readouterr().err
    assert "disk on fire" in err and "earlier archives are untouched" in err
    assert [p.name for p in (home / "backups").iterdir()] == [first.name]  # no temp file left
    assert first.read_bytes() == before


def test_unreadable_records_make_an_incomplete_archive_and_prune_nothing(home, capsys):
    cfg = write_config(home, extra="keep = { last = 1 }")
    with freeze_time("2026-01-01"):
        assert main(["--config", str(cfg), "export"]) == 0
    (home / "cards" / "friends.vcf").write_bytes(
        make_card("ok", "Fine") + b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken\r\nFN:x\r\n"
    )
    with freeze_time("2026-01-02"):
        assert main(["--config", str(cfg), "export"]) == 1
    err = capsys.readouterr().err
    assert "incomplete archive" in err and "friends.vcf" in err
    assert len(list((home / "backups").iterdir())) == 2  # the older one was not pruned


def test_point_in_time_rereads_what_changed_while_reading(home, monkeypatch):
    from pimsync.export import archive as archive_mod
    from pimsync.storage.vdir import VdirCollection, VdirStorage

    real_get = VdirCollection.get
    changed = []

    def get(self, hrefs, **kw):
        if not changed and self.id == "home":
            changed.append(True)  # another program edits h1 while we read
            (home / "cal" / "home" / "h1.ics").write_bytes(make_event("h1", "edited meanwhile"))
        return real_get(self, hrefs, **kw)

    monkeypatch.setattr(VdirCollection, "get", get)
    storage = VdirStorage("cal", home / "cal", ".ics", "ics", False)
    entry, spool = archive_mod.snapshot(storage, "home", home)
    data = b"".join(spool.chunks())
    spool.close()
    assert entry.settled and entry.count == 5
    assert b"edited meanwhile" in data and data.count(b"UID:h1") == 1


def test_whole_corpus_exported_and_reimported_with_nothing_lost(tmp_path, capsys):
    import shutil

    index = [line.split("\t") for line in (CORPUS / "INDEX.tsv").read_text().splitlines()[1:]]
    (tmp_path / "src").mkdir()
    expected: dict[tuple[str, str], dict[str, str]] = {}
    for row in index:
        if row[4].strip() != "yes":
            continue
        src = CORPUS / row[0]
        kind = row[1]
        name = src.stem.replace(".", "_")
        shutil.copy(src, tmp_path / "src" / f"{name}.{kind}")
        expected[(kind, name)] = idents(src, kind)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        """
[storages.ics]
type = "file"
path = "src/{collection}.ics"
[storages.vcf]
type = "file"
path = "src/{collection}.vcf"
[storages.back_ics]
type = "file"
path = "back/{collection}.ics"
[storages.back_vcf]
type = "file"
path = "back/{collection}.vcf"
[exports.all]
storages = ["ics", "vcf"]
path = "backups"
"""
    )
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((tmp_path / "backups").iterdir())
    (tmp_path / "back").mkdir()
    for kind in ("ics", "vcf"):
        assert main(["--config", str(cfg), "archive", "restore", str(archive),
                     "--to", f"back_{kind}"]) == 0, capsys.readouterr().err  # fmt: skip
    for (kind, name), records in expected.items():
        back = tmp_path / "back" / f"{name}.{kind}"
        assert idents(back, kind) == records, name


def test_verify_needs_no_config_and_notes_an_incomplete_archive(home, capsys, monkeypatch):
    cfg = write_config(home)
    (home / "cards" / "friends.vcf").write_bytes(
        make_card("ok", "Fine") + b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken\r\nFN:x\r\n"
    )
    assert main(["--config", str(cfg), "export"]) == 1
    [archive] = list((home / "backups").iterdir())
    monkeypatch.setenv("PIMSYNC_CONFIG", str(home / "no-such-config.toml"))
    capsys.readouterr()
    assert main(["archive", "verify", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "ok, made" in out and "3 collections, 7 records" in out
    assert "incomplete: 1 record could not be read" in out


def test_restore_chooses_the_source_storage_and_keeps_names(tmp_path, capsys):
    for side in ("a", "b"):
        (tmp_path / side / "home").mkdir(parents=True)
        (tmp_path / side / "home" / "displayname").write_text(f"Home on {side}")
        (tmp_path / side / "home" / f"{side}.ics").write_bytes(make_event(side, f"only on {side}"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        """
[storages.a]
type = "vdir"
path = "a"
fileext = ".ics"
[storages.b]
type = "vdir"
path = "b"
fileext = ".ics"
[storages.fresh]
type = "vdir"
path = "fresh"
fileext = ".ics"
[exports.both]
storages = ["a", "b"]
path = "backups"
"""
    )
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((tmp_path / "backups").iterdir())
    capsys.readouterr()
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "fresh"]) == 1
    assert "choose one with --from STORAGE" in capsys.readouterr().err
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "fresh",
                 "--from", "b"]) == 0  # fmt: skip
    assert vdir_state(tmp_path / "fresh" / "home").keys() == {"b"}
    assert (tmp_path / "fresh" / "home" / "displayname").read_text() == "Home on b"


def test_a_record_with_a_bad_value_is_kept_flagged_and_restored(home, capsys):
    """An export keeps records as the storage serves them: a date icalendar rejects is
    not a reason to leave a record out of a backup. verify names it; restore puts it back."""
    bad = make_event("odd", "Odd date").replace(b"DTSTART:20261201", b"DTSTART:20261399")
    (home / "cal" / "home" / "odd.ics").write_bytes(bad)
    cfg = write_config(home)
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((home / "backups").iterdir())
    capsys.readouterr()
    assert main(["archive", "verify", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "3 collections, 10 records" in out
    [warning] = [line for line in out.splitlines() if "warning" in line]
    assert "cal/home.ics: UID odd:" in warning and "DTSTART" in warning and "kept" in warning
    assert verify(archive).warnings == (warning.split("warning: ", 1)[1],)
    (home / "cal" / "home" / "odd.ics").unlink()
    assert main(["--config", str(cfg), "archive", "restore", str(archive), "--to", "cal",
                 "--collection", "home"]) == 0  # fmt: skip
    assert "1 added" in capsys.readouterr().out
    assert (home / "cal" / "home" / "odd.ics").read_bytes() == bad


def test_uid_digest_is_a_multiset_fingerprint():
    from pimsync.export.verify import uid_digest

    assert uid_digest(["a", "b", None]) == uid_digest([None, "b", "a"])
    assert uid_digest(["a", "a"]) != uid_digest(["a"])
    assert uid_digest(["a", "a", "b"]) != uid_digest(["a", "b", "b"])
    assert uid_digest([None]) != uid_digest([""]) != uid_digest([])


def test_the_check_before_the_rename_compares_with_what_was_written(home):
    import dataclasses

    from pimsync.export.archive import write_archive
    from pimsync.export.reader import ArchiveError
    from pimsync.export.verify import Expected, check_written, uid_digest
    from pimsync.storage.vdir import VdirStorage

    storage = VdirStorage("cal", home / "cal", ".ics", "ics", False)
    written = write_archive("t", [storage], home / "out")
    assert written.errors == []
    manifest = json.loads(tarfile.open(written.path).extractfile("manifest.json").read())
    home_entry = next(c for c in manifest["collections"] if c["collection"] == "home")
    good = Expected(
        home_entry["file"], "ics", home_entry["sha256"], 5, uid_digest(f"h{i}" for i in range(5))
    )
    with tarfile.open(written.path) as tar:
        manifest_sha = hashlib.sha256(tar.extractfile("manifest.json").read()).hexdigest()
    check_written(written.path, [good], manifest_sha)
    with pytest.raises(ArchiveError, match="manifest.json: checksum mismatch"):
        check_written(written.path, [good], "0" * 64)
    other_uids = dataclasses.replace(good, uids=uid_digest(["h0", "h1", "h2", "h3", "x"]))
    with pytest.raises(ArchiveError, match="UIDs differ"):
        check_written(written.path, [other_uids], manifest_sha)
    with pytest.raises(ArchiveError, match="6 records|5 records, the manifest says 6"):
        check_written(written.path, [dataclasses.replace(good, count=6)], manifest_sha)
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        check_written(written.path, [dataclasses.replace(good, sha256="1" * 64)], manifest_sha)


def test_an_unreadable_record_is_reported_once_even_when_the_collection_is_read_again(
    home, monkeypatch
):
    from pimsync.export import archive as archive_mod
    from pimsync.storage.vdir import VdirCollection, VdirStorage

    (home / "cal" / "home" / "broken.ics").write_bytes(b"BEGIN:VCALENDAR\r\nnot a line\r\n")
    real_get = VdirCollection.get
    asked: list[str] = []

    def get(self, hrefs, **kw):
        first = not asked
        asked.extend(hrefs)
        yield from real_get(self, hrefs, **kw)
        if first:  # another program edits h1 after it was read: a second round reads it
            (home / "cal" / "home" / "h1.ics").write_bytes(make_event("h1", "edited meanwhile"))

    monkeypatch.setattr(VdirCollection, "get", get)
    storage = VdirStorage("cal", home / "cal", ".ics", "ics", False)
    entry, spool = archive_mod.snapshot(storage, "home", home)
    spool.close()
    assert entry.settled and entry.count == 5
    assert asked.count("broken.ics") == 1 and asked.count("h1.ics") == 2
    assert len(entry.errors) == 1 and "broken.ics" in entry.errors[0]
