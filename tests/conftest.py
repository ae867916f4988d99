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
    assert CORPUS.is_dir(), f"the shared corpus is expected at {CORPUS}"
    return CORPUS
