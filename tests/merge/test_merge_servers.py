"""Merged records are accepted by every test server that accepts their unmerged input
(Cyrus refuses vCard 2.1 altogether), and read back unchanged (by hash) wherever the
server keeps the unmerged input unchanged too (Radicale drops vCard 2.1 bare TYPEs of
any card, merged or not)."""

from __future__ import annotations

import pytest

from pimsync.merge import merge
from pimsync.model.record import Record
from pimsync.model.split import parse_record
from tests.merge.helpers import (
    ALARM,
    BERLIN,
    CARD21,
    CARD30,
    CARD40,
    EVENT,
    OVERRIDE,
    card,
    edit,
    event,
)

CARD21_NOTE = "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Caf=C3=A9 au lait"


def _event_merge() -> tuple[Record, Record]:
    base = event(overrides=(OVERRIDE,))
    a = event(
        edit(EVENT, {"LOCATION:": "LOCATION:Room 2", "CATEGORIES:": "CATEGORIES:work"},
             add=("ATTENDEE;CN=Carol:mailto:carol@example.com", "EXDATE:20261118T093000Z")),
        # the second override's DTEND moves with its DTSTART: Cyrus checks that an event
        # ends after it starts (403 valid-calendar-object-resource otherwise)
        overrides=(OVERRIDE, edit(OVERRIDE, {"RECURRENCE-ID:": "RECURRENCE-ID:20261125T093000Z",
                                             "DTSTART:": "DTSTART:20261125T100000Z",
                                             "DTEND:": "DTEND:20261125T110000Z"})),
        alarms=(ALARM,),
    )  # fmt: skip
    b = event(
        edit(EVENT, {"DTSTART:": "DTSTART;TZID=Europe/Berlin:20261104T103000",
                     "DTEND:": "DTEND;TZID=Europe/Berlin:20261104T113000",
                     "CATEGORIES:": "CATEGORIES:work,planning,urgent"},
             add=("EXDATE;TZID=Europe/Berlin:20261202T103000",)),
        overrides=(edit(OVERRIDE, {"SUMMARY:": "SUMMARY:Moved by b"}),),
        timezones=(BERLIN,),
    )  # fmt: skip
    result = merge(base, a, b)
    assert result.record is not None and result.conflicts == ()
    return a, result.record


def _card_merge(body: str) -> tuple[Record, Record]:
    first = body.split("\n")[1]
    a = card(edit(body, add=("TEL;TYPE=HOME:+1-555-0177" if "3.0" in body else "TEL:+1-555-0177",)))
    b = card(edit(body, {first: first + " Jr."}, add=("TITLE:Engineer",)))
    result = merge(card(body), a, b)
    assert result.record is not None and result.conflicts == ()
    return a, result.record


MERGES = {
    "event": _event_merge,
    # Xandikos refuses quoted-printable soft line breaks in any card: none here
    "card21": lambda: _card_merge(edit(CARD21, {"NOTE;": CARD21_NOTE, "second line": None})),
    "card30": lambda: _card_merge(CARD30),
    "card40": lambda: _card_merge(CARD40),
}


def _put(server, collection: str, name: str, record: Record):  # type: ignore[no-untyped-def]
    path = f"{collection}{name}.{record.kind}"
    return path, server.put(path, record.to_bytes(), if_none_match=True)


def _get(server, path: str, record: Record) -> Record:  # type: ignore[no-untyped-def]
    back = server.request("GET", path)
    assert back.status == 200
    return parse_record(back.body, record.kind, f"{server.kind}:{path}")


@pytest.mark.parametrize("which", sorted(MERGES))
def test_merged_record_accepted_by_server(dav_server, dav_collection, which: str) -> None:
    a, merged = MERGES[which]()
    # The unmerged input first: a server that refuses it (Cyrus refuses every vCard 2.1,
    # 403 supported-address-data) must refuse the merged record the same way, and
    # accept the merged record wherever it accepts the input.
    path, response = _put(dav_server, dav_collection(dav_server, a.kind), "input", a)
    if response.status not in (201, 204):
        _, refused = _put(dav_server, dav_collection(dav_server, merged.kind), which, merged)
        assert (refused.status, refused.text) == (response.status, response.text)
        return
    kept = _get(dav_server, path, a).hash == a.hash
    # the same UID may be once per collection (on Cyrus, once in all of a user's
    # calendars): the input goes before the merged record is written
    assert dav_server.request("DELETE", path).status in (200, 204)
    path, response = _put(dav_server, dav_collection(dav_server, merged.kind), which, merged)
    assert response.status in (201, 204), response.text
    again = _get(dav_server, path, merged)
    assert again.uid == merged.uid
    if kept:
        assert again.hash == merged.hash
