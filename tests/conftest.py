"""Shared test helpers: the corpus location and small record factories."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()


def make_event(uid: str, summary: str = "Event", *, component: str = "VEVENT",
               extra: str = "") -> bytes:  # fmt: skip
    """A small standalone VCALENDAR holding one VEVENT or VTODO."""
    when = "DTSTART:20261201T100000Z\r\n" if component == "VEVENT" else "DUE:20261201T100000Z\r\n"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pimsync tests//EN\r\n"
        f"BEGIN:{component}\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n{when}"
        f"SUMMARY:{summary}\r\n{extra}END:{component}\r\nEND:VCALENDAR\r\n"
    ).encode()


def make_card(uid: str, name: str = "Someone", *, extra: str = "") -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
        f"{extra}END:VCARD\r\n"
    ).encode()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS} (../shared beside the clone)")
    return CORPUS


# --- Real CalDAV/CardDAV servers (see tests/servers.py) ------------------------------------
# One Radicale and one Xandikos per pytest process, started on first use, bound to
# 127.0.0.1 on a free port, storage under tmp_path_factory, stopped by a finaliser at session end.

import uuid  # noqa: E402

from tests import servers as dav_servers  # noqa: E402


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Radicale 3.9, auth none, user alice: homes /alice/."""
    server = dav_servers.start_radicale(tmp_path_factory.mktemp("radicale"))
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="session")
def radicale_auth(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Radicale 3.9 with htpasswd (plain) auth: alice / secret."""
    server = dav_servers.start_radicale(tmp_path_factory.mktemp("radicale-auth"), auth=True)
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="session")
def xandikos(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Xandikos 0.4.10, no auth: homes /user/calendars/ and /user/contacts/."""
    server = dav_servers.start_xandikos(tmp_path_factory.mktemp("xandikos"))
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(params=["radicale", "xandikos"])
def dav_server(request: pytest.FixtureRequest):
    """Each session server in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def dav_collection(request: pytest.FixtureRequest):
    """Factory: ``dav_collection(server, kind)`` makes a fresh, uniquely named, empty
    calendar ("ics") or address book ("vcf") and returns its URL path; it is deleted
    (best effort) after the test."""
    made: list[tuple[dav_servers.DavServer, str]] = []

    def make(
        server: dav_servers.DavServer, kind: dav_servers.RecordKind, name: str | None = None
    ) -> str:
        if name is None:
            stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
            name = f"{stem[:40].strip('-')}-{uuid.uuid4().hex[:8]}"
        path = server.make_collection(name, kind)
        made.append((server, path))
        return path

    yield make
    for server, path in made:
        if server.alive():
            try:
                server.request("DELETE", path)
            except OSError:
                pass
