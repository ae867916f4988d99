"""A new user's first upload: every well-formed file of the shared corpus (real-world
calendars and address books from many clients) is one collection of a file storage,
synced with ``collections = "from a"`` to each test server through the real CLI.

Every collection must be created and every record stored, except the refusals listed
in ``REFUSED`` (a server's own limit, documented in docs/servers.md, "What servers
refuse"); the next run writes nothing, with one request per collection. The figures
are printed (``-s``)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from pimsync.cli import main
from pimsync.model import split
from pimsync.storage.dav import http as dav_http
from tests import servers as dav_servers

#: server -> corpus file -> why the server refuses (some of) its records: server limits,
#: each named in docs/servers.md. Nothing here may be pimsync's fault.
_V21 = (
    "vCard 2.1 (quoted-printable, CHARSET, bare TYPE values): its vobject cannot read or "
    "serialise it"
)
_NO_FN = "a card without FN, which vCard 3.0 and 4.0 require: its vobject refuses it"
_V21_CYRUS = "vCard 2.1 (it takes 3.0 and 4.0 only)"
_NO_N = "a vCard 3.0 without N (RFC 2426 requires one)"
_NOT_UTF8 = "bytes that are not UTF-8 (Shift_JIS): its PostgreSQL database refuses them"
REFUSED: dict[str, dict[str, str]] = {
    "radicale": {  # its answer is a bare 400; the reasons are from its log
        "ics/eds__invite-7.ics": "an override without its main component",
        "ics/ical4j__calconnect6.ics": "PERIOD values (its vobject does not support them)",
        "ics/icalendar__issue_1549_binary_attachment.ics": "a VEVENT without DTSTART",
        "ics/icalendar__issue_27_multiple_periods_in_freebusy_multiple_freebusies.ics": (
            "a VFREEBUSY with several periods"
        ),
        "vcf/aosp-vcard__v21_blackberry_photo.vcf": _V21,
        "vcf/aosp-vcard__v21_complicated.vcf": _V21,
        "vcf/aosp-vcard__v21_multiple_entry.vcf": _NO_FN,
        "vcf/aosp-vcard__v21_x_android_custom_after_photo.vcf": _NO_FN,
        "vcf/aosp-vcard__v30_comma_separated.vcf": _NO_FN,
        "vcf/ezvcard__John_Doe_ANDROID.vcf": _NO_FN + "; bad base64; non-UTF-8 bytes",
        "vcf/ezvcard__John_Doe_BLACK_BERRY.vcf": _V21,
        "vcf/ezvcard__John_Doe_LOTUS_NOTES.vcf": "a nested BEGIN:VCARD (AGENT)",
        "vcf/ezvcard__John_Doe_MS_OUTLOOK.vcf": _V21,
        "vcf/ezvcard__outlook-2003.vcf": _V21,
        "vcf/ezvcard__outlook-2007.vcf": _V21,
        "vcf/gammu__se-1.vcf": _NO_FN,
        "vcf/icaljs__vcard3.vcf": "two N properties",
        "vcf/kcontacts__vcard10.vcf": _NO_FN,
        "vcf/libical__issue339.vcf": _V21,
        "vcf/sabre-vobject__issue64.vcf": _NO_FN,
    },
    "xandikos": {  # a 500 for each
        "vcf/aosp-vcard__v21_complicated.vcf": _V21,
        "vcf/aosp-vcard__v21_japanese_2.vcf": _V21,
        "vcf/aosp-vcard__v21_multiple_entry.vcf": _NO_FN,
        "vcf/aosp-vcard__v21_x_android_custom_after_photo.vcf": _NO_FN,
        "vcf/aosp-vcard__v30_comma_separated.vcf": _NO_FN,
        "vcf/eds__libebook_vcard_5.vcf": "vCard 2.1 with non-ASCII values",
        "vcf/ezvcard__John_Doe_ANDROID.vcf": _NO_FN + "; bad base64; non-UTF-8 bytes",
        "vcf/ezvcard__John_Doe_LOTUS_NOTES.vcf": "a nested BEGIN:VCARD (AGENT)",
        "vcf/ezvcard__John_Doe_MS_OUTLOOK.vcf": _V21,
        "vcf/ezvcard__outlook-2003.vcf": _V21,
        "vcf/ezvcard__outlook-2007.vcf": _V21,
        "vcf/gammu__se-1.vcf": _NO_FN,
        "vcf/icaljs__vcard3.vcf": "two N properties",
        "vcf/kcontacts__vcard10.vcf": _NO_FN,
        "vcf/libical__issue339.vcf": _V21,
        "vcf/sabre-vobject__issue64.vcf": _NO_FN,
    },
    "cyrus": {  # 403, with the reason in a DAV:error body
        "ics/allenporter-ical__languages.ics": (
            "unique-scheduling-object-resource: an invitation with the UID of one already "
            "in another calendar of the user (the corpus has it twice; RFC 6638 3.2.4.1)"
        ),
        "ics/allenporter-ical__unknown_value_proton_mail.ics": "SUMMARY with a VALUE parameter",
        "ics/rie__discourse_no_dtend.ics": "DTEND not after DTSTART",
        "ics/rie__fablab_cottbus.ics": "empty CATEGORIES",
        "ics/rie__issue_62_moved_event.ics": "DTEND not after DTSTART",
        "ics/rie__issue_97_simple_journal.ics": "PRIORITY in a VJOURNAL (iTIP restrictions)",
        "ics/rie__three_events_one_edited.ics": "empty CLASS",
        "ics/vobject__tzid_8bit.ics": "DTEND not after DTSTART",
        "vcf/aosp-vcard__v21_blackberry_photo.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v21_complicated.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v21_japanese_2.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v21_multiple_entry.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v21_winmo_65.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v21_x_android_custom_after_photo.vcf": _V21_CYRUS,
        "vcf/aosp-vcard__v30_comma_separated.vcf": _NO_N,
        "vcf/eds__libebook_vcard_5.vcf": _V21_CYRUS,
        "vcf/ezvcard__fullcontact.vcf": (
            "a vCard 4.0 its restriction checks refuse (the answer does not say which part)"
        ),
        "vcf/ezvcard__John_Doe_ANDROID.vcf": _V21_CYRUS + "; " + _NO_N,
        "vcf/ezvcard__John_Doe_BLACK_BERRY.vcf": _V21_CYRUS,
        "vcf/ezvcard__John_Doe_MS_OUTLOOK.vcf": _V21_CYRUS,
        "vcf/ezvcard__outlook-2003.vcf": _V21_CYRUS,
        "vcf/ezvcard__outlook-2007.vcf": _V21_CYRUS,
        "vcf/gammu__se-1.vcf": _V21_CYRUS,
        "vcf/gammu__yahoo.vcf": _V21_CYRUS,
        "vcf/icaljs__escape_semicolon.vcf": _NO_N,
        "vcf/icaljs__vcard3.vcf": "two N properties",
        "vcf/kcontacts__vcard10.vcf": _V21_CYRUS,
        "vcf/libical__issue339.vcf": _V21_CYRUS,
        "vcf/rcmcarddav__IM-Nextcloud.vcf": _NO_N,
        "vcf/sabre-vobject__issue64.vcf": _NO_N,
    },
    "davical": {  # 500 "DAViCal Fatal Error"; the reasons are from its log
        "ics/ccs__OneEvent.ics": "a TZID that is no time zone (America/New_Yrok)",
        "ics/ical4j__calconnect6.ics": "PERIOD values in RDATE",
        "ics/icalendar__issue_1549_binary_attachment.ics": "a VEVENT without DTSTART",
        "ics/icalendar__issue_27_multiple_periods_in_freebusy_multiple_freebusies.ics": (
            "a VFREEBUSY (it cannot store one)"
        ),
        "vcf/aosp-vcard__v21_japanese_2.vcf": _NOT_UTF8,
        "vcf/aosp-vcard__v21_multiple_entry.vcf": _NOT_UTF8,
    },
}


def _well_formed(corpus: Path) -> list[tuple[str, str]]:
    with open(corpus / "INDEX.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["file"], r["kind"]) for r in rows if r.get("well_formed") == "yes"]


def _collection_name(file: str) -> str:
    stem = Path(file).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:60]


def _config(tmp: Path, server: dav_servers.DavServer) -> Path:
    login = ""
    if server.username is not None:
        login = f'username = "{server.username}"\npassword = "{server.password or "x"}"\n'
    base = server.url.rstrip("/")
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"
[storages.cal_files]
type = "file"
path = "ics/{{collection}}.ics"
[storages.card_files]
type = "file"
path = "vcf/{{collection}}.vcf"
[storages.cal_server]
type = "caldav"
url = "{base}{server.calendar_home}"
{login}
[storages.card_server]
type = "carddav"
url = "{base}{server.addressbook_home}"
{login}
[pairs.cal]
a = "cal_files"
b = "cal_server"
collections = "from a"
[pairs.card]
a = "card_files"
b = "card_server"
collections = "from a"
"""
    )
    return cfg


@pytest.fixture
def sent(monkeypatch):
    requests: list[tuple[str, str]] = []
    real = dav_http.HttpClient._send

    def counting(self, method, url, body, headers):
        requests.append((method, url))
        return real(self, method, url, body, headers)

    monkeypatch.setattr(dav_http.HttpClient, "_send", counting)
    return requests


def test_the_whole_corpus_goes_up_and_the_next_run_writes_nothing(
    tmp_path, corpus, dav_server, sent, capsys
):
    files = _well_formed(corpus)
    expected: dict[tuple[str, str], set[str]] = {}  # (kind, collection) -> idents
    origin: dict[tuple[str, str], str] = {}
    for file, kind in files:
        name = _collection_name(file)
        target = tmp_path / kind / f"{name}.{kind}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / file, target)
        res = split(target.read_bytes(), kind, str(target))  # type: ignore[arg-type]
        expected[(kind, name)] = {r.ident for r in res.records}
        origin[(kind, name)] = file
    cfg = _config(tmp_path, dav_server)
    try:
        rc = main(["--config", str(cfg), "run"])
        first = capsys.readouterr()
        # every collection is there, with what the server accepted
        stored_count = refused_count = 0
        problems = []
        refusals = REFUSED[dav_server.kind]
        for (kind, name), idents in sorted(expected.items()):
            path = dav_server.collection_path(name, kind)  # type: ignore[arg-type]
            etags = dav_server.etags(path)
            stored = len(etags)
            stored_count += stored
            if stored < len(idents):
                refused_count += len(idents) - stored
                if origin[(kind, name)] not in refusals:
                    problems.append(f"{origin[(kind, name)]}: {stored} of {len(idents)} stored")
        with capsys.disabled():  # the figures of docs/servers.md (pytest -s)
            print(
                f"\n[corpus] {dav_server.kind}: {len(expected)} collections, "
                f"{sum(len(i) for i in expected.values())} records, {stored_count} stored, "
                f"{refused_count} refused; first run exit {rc}"
            )
        assert not problems, "\n".join(problems) + "\n" + first.out[-4000:] + first.err[-4000:]
        if not refusals:
            assert rc == 0, first.out[-4000:] + first.err[-4000:]
        for file in refusals:  # each refusal is reported, naming the collection
            assert f"/{_collection_name(file)}: " in first.out + first.err, file
        # the next run: nothing to write, one request per collection (the refused records
        # are tried again, in their collections only)
        sent.clear()
        rc2 = main(["--config", str(cfg), "run"])
        second = capsys.readouterr()
        refused_paths = {
            dav_server.collection_path(_collection_name(f), k)  # type: ignore[arg-type]
            for (k, _n), f in origin.items()
            if f in refusals
        }
        other = [(m, u) for m, u in sent if not any(p in u for p in refused_paths)]
        writes = [(m, u) for m, u in other if m in ("PUT", "DELETE", "MKCALENDAR", "MKCOL")]
        assert not writes, writes[:10]
        clean = len(expected) - len(refused_paths)
        with capsys.disabled():
            print(f"[corpus] {dav_server.kind}: next run {len(sent)} requests, exit {rc2}")
        assert len(other) <= clean, (len(other), clean, other[:20])
        assert second.out.count(" +0 ~0 -0, b +0 ~0 -0, 0 errors") == clean, second.out
    finally:
        for kind, name in expected:
            try:
                dav_server.request("DELETE", dav_server.collection_path(name, kind))  # type: ignore[arg-type]
            except OSError:
                pass
