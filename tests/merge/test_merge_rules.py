"""One case per merge rule, for events and contacts: what the merged record must hold
(canonical lines per component), must not hold, and which conflicts are reported."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pimsync.merge import merge
from pimsync.model.record import Record
from tests.merge.helpers import (
    ALARM,
    BERLIN,
    CARD21,
    CARD30,
    CARD40,
    EVENT,
    OVERRIDE,
    card,
    checked,
    edit,
    event,
    ics,
    view,
)

V = "VEVENT"
OV = "VEVENT;RECURRENCE-ID=20261111T093000Z"
C = "VCARD"


@dataclass(frozen=True)
class Case:
    rule: str
    base: Record
    a: Record
    b: Record
    present: dict[str, set[str]] = field(default_factory=dict)  # label -> canonical lines
    absent: dict[str, set[str]] = field(default_factory=dict)
    conflicts: set[tuple[str, str]] = field(default_factory=set)  # (component, name)
    prefer: str = "a"
    gone: set[str] = field(default_factory=set)  # components that must not be there


# canonical forms (normalise.py); the raw lines are written without quotes
ANN = 'ATTENDEE;CN="Ann";PARTSTAT="accepted":mailto:ann@example.com'
BOB = 'ATTENDEE;CN="Bob";PARTSTAT="needs-action":mailto:bob@example.com'
BOB_YES = 'ATTENDEE;CN="Bob";PARTSTAT="accepted":mailto:bob@example.com'
BOB_NO = 'ATTENDEE;CN="Bob";PARTSTAT="declined":mailto:bob@example.com'
CAROL = 'ATTENDEE;CN="Carol":mailto:carol@example.com'
DAVE = 'ATTENDEE;CN="Dave":mailto:dave@example.com'
ALARM_CANON = "\n".join(
    ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", "TRIGGER:-PT900S", "END:VALARM"]
)
ALARM_5 = ALARM.replace("-PT15M", "-PT5M")
ALARM_5_CANON = ALARM_CANON.replace("-PT900S", "-PT300S")

EVENT_CASES = [
    Case(
        "single_valued_changed_on_one_side_each_both_kept",
        event(),
        event(edit(EVENT, {"LOCATION:": "LOCATION:Room 2"})),
        event(edit(EVENT, add=("DESCRIPTION:Bring slides",))),
        present={V: {"LOCATION:Room 2", "DESCRIPTION:Bring slides", "SUMMARY:Planning"}},
    ),
    Case(
        "single_valued_changed_alike_on_both_sides_no_conflict",
        event(),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}, add=("PRIORITY:1",))),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}, add=("CLASS:PRIVATE",))),
        present={V: {"SUMMARY:Review", "PRIORITY:1", "CLASS:PRIVATE"}},
    ),
    Case(
        "single_valued_changed_differently_conflict_prefer_a",
        event(),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:From A"})),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:From B"}, add=("PRIORITY:5",))),
        present={V: {"SUMMARY:From A", "PRIORITY:5"}},
        absent={V: {"SUMMARY:From B"}},
        conflicts={(V, "SUMMARY")},
    ),
    Case(
        "single_valued_changed_differently_conflict_prefer_b",
        event(),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:From A"})),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:From B"}, add=("PRIORITY:5",))),
        present={V: {"SUMMARY:From B", "PRIORITY:5"}},
        absent={V: {"SUMMARY:From A"}},
        conflicts={(V, "SUMMARY")},
        prefer="b",
    ),
    Case(
        "single_valued_added_on_one_side_added",
        event(),
        event(edit(EVENT, add=("URL:https://example.com/planning",))),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        present={V: {"URL:https://example.com/planning", "SUMMARY:Review"}},
    ),
    Case(
        "single_valued_removed_on_one_side_unchanged_on_other_removed",
        event(edit(EVENT, add=("DESCRIPTION:Old notes",))),
        event(EVENT),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}, add=("DESCRIPTION:Old notes",))),
        present={V: {"SUMMARY:Review"}},
        absent={V: {"DESCRIPTION:Old notes"}},
    ),
    Case(
        "single_valued_removed_on_one_side_changed_on_other_conflict",
        event(edit(EVENT, add=("DESCRIPTION:Old notes",))),
        event(EVENT),
        event(edit(EVENT, add=("DESCRIPTION:New notes",))),
        absent={V: {"DESCRIPTION:Old notes", "DESCRIPTION:New notes"}},
        conflicts={(V, "DESCRIPTION")},
    ),
    Case(
        "override_added_on_a_master_edited_on_b_both_kept",
        event(),
        event(overrides=(OVERRIDE,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Weekly planning"})),
        present={V: {"SUMMARY:Weekly planning"}, OV: {"SUMMARY:Planning (moved)"}},
    ),
    Case(
        "override_matched_by_recurrence_id_merged_property_by_property",
        event(overrides=(OVERRIDE,)),
        event(overrides=(edit(OVERRIDE, add=("LOCATION:Room 9",)),)),
        event(overrides=(edit(OVERRIDE, add=("DESCRIPTION:Moved for the fair",)),)),
        present={OV: {"LOCATION:Room 9", "DESCRIPTION:Moved for the fair"}},
    ),
    Case(
        "attendee_added_on_each_side_both_kept",
        event(),
        event(edit(EVENT, add=("ATTENDEE;CN=Carol:mailto:carol@example.com",))),
        event(edit(EVENT, add=("ATTENDEE;CN=Dave:mailto:dave@example.com",))),
        present={V: {ANN, BOB, CAROL, DAVE}},
    ),
    Case(
        "attendee_partstat_changed_on_one_side_kept",
        event(),
        event(edit(EVENT, add=("ATTENDEE;CN=Carol:mailto:carol@example.com",))),
        event(edit(EVENT, {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": BOB_YES.replace('"', "")})),
        present={V: {ANN, BOB_YES, CAROL}},
        absent={V: {BOB}},
    ),
    Case(
        "attendee_keyed_by_address_case_insensitive",
        event(),
        event(
            edit(
                EVENT,
                {
                    "ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": "ATTENDEE;PARTSTAT=ACCEPTED;"
                    "CN=Bob:MAILTO:Bob@Example.com"
                },
            )
        ),  # fmt: skip
        event(edit(EVENT, add=("ATTENDEE;CN=Carol:mailto:carol@example.com",))),
        present={V: {'ATTENDEE;CN="Bob";PARTSTAT="accepted":MAILTO:Bob@Example.com', CAROL}},
        absent={V: {BOB}},
    ),
    Case(
        "attendee_partstat_changed_differently_conflict_on_that_attendee",
        event(),
        event(edit(EVENT, {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": BOB_YES.replace('"', "")})),
        event(
            edit(
                EVENT,
                {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": BOB_NO.replace('"', "")},
                add=("ATTENDEE;CN=Dave:mailto:dave@example.com",),
            )
        ),  # fmt: skip
        present={V: {ANN, BOB_YES, DAVE}},
        absent={V: {BOB_NO, BOB}},
        conflicts={(V, "ATTENDEE")},
    ),
    Case(
        "attendee_removed_on_one_side_changed_on_other_conflict",
        event(),
        event(edit(EVENT, {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": None})),
        event(
            edit(
                EVENT,
                {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": BOB_NO.replace('"', "")},
                add=("ATTENDEE;CN=Dave:mailto:dave@example.com",),
            )
        ),  # fmt: skip
        present={V: {ANN, BOB_NO, DAVE}},
        conflicts={(V, "ATTENDEE")},
        prefer="b",
    ),
    Case(
        "attendee_removed_on_one_side_unchanged_on_other_removed",
        event(),
        event(edit(EVENT, {"ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob": None})),
        event(edit(EVENT, add=("ATTENDEE;CN=Dave:mailto:dave@example.com",))),
        present={V: {ANN, DAVE}},
        absent={V: {BOB}},
    ),
    Case(
        "exdate_added_on_both_sides_union",
        event(edit(EVENT, add=("EXDATE:20261118T093000Z",))),
        event(edit(EVENT, add=("EXDATE:20261118T093000Z,20261125T093000Z",))),
        event(edit(EVENT, add=("EXDATE:20261118T093000Z", "EXDATE:20261202T093000Z"))),
        present={
            V: {
                "EXDATE:20261118T093000Z",
                "EXDATE:20261125T093000Z",
                "EXDATE:20261202T093000Z",
                "SEQUENCE:1",
            }
        },  # fmt: skip
    ),
    Case(
        "rdate_removed_on_a_added_on_b",
        event(edit(EVENT, add=("RDATE:20261224T093000Z,20261231T093000Z",))),
        event(edit(EVENT, add=("RDATE:20261231T093000Z",))),
        event(edit(EVENT, add=("RDATE:20261224T093000Z,20261231T093000Z,20270107T093000Z",))),
        present={V: {"RDATE:20261231T093000Z", "RDATE:20270107T093000Z"}},
        absent={V: {"RDATE:20261224T093000Z"}},
    ),
    Case(
        "category_removed_on_a_added_on_b",
        event(),
        event(edit(EVENT, {"CATEGORIES:": "CATEGORIES:work"})),
        event(edit(EVENT, {"CATEGORIES:": "CATEGORIES:work,planning,urgent"})),
        present={V: {"CATEGORIES:work", "CATEGORIES:urgent"}},  # canonical: one per value
        absent={V: {"CATEGORIES:planning"}},
    ),
    Case(
        "categories_split_over_lines_merged_by_value",
        event(),
        event(edit(EVENT, {"CATEGORIES:": "CATEGORIES:work"}, add=("CATEGORIES:planning",))),
        event(edit(EVENT, {"CATEGORIES:": "CATEGORIES:planning"})),
        present={V: {"CATEGORIES:planning"}},
        absent={V: {"CATEGORIES:work"}},
    ),
    Case(
        "comment_repeated_merged_as_set",
        event(edit(EVENT, add=("COMMENT:one",))),
        event(edit(EVENT, add=("COMMENT:one", "COMMENT:two"))),
        event(edit(EVENT, add=("COMMENT:three",))),
        present={V: {"COMMENT:two", "COMMENT:three"}},
        absent={V: {"COMMENT:one"}},
    ),
    Case(
        "repeated_x_property_merged_as_set",
        event(edit(EVENT, add=("X-TAG:red",))),
        event(edit(EVENT, add=("X-TAG:red", "X-TAG:green"))),
        event(edit(EVENT, add=("X-TAG:red", "X-TAG:blue"))),
        present={V: {"X-TAG:red", "X-TAG:green", "X-TAG:blue"}},
    ),
    Case(
        "alarm_added_on_one_side_kept",
        event(),
        event(alarms=(ALARM,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        present={V: {ALARM_CANON, "SUMMARY:Review"}},
    ),
    Case(
        "alarm_added_on_both_sides_both_kept",
        event(),
        event(alarms=(ALARM,)),
        event(alarms=(ALARM_5,)),
        present={V: {ALARM_CANON, ALARM_5_CANON}},
    ),
    Case(
        "alarm_edited_on_one_side_removed_on_other",
        event(alarms=(ALARM,)),
        event(alarms=(ALARM_5,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        present={V: {ALARM_5_CANON, "SUMMARY:Review"}},
        absent={V: {ALARM_CANON}},
    ),
    Case(
        "component_deleted_on_one_side_edited_on_other_conflict_prefer_a_deletes",
        event(overrides=(OVERRIDE,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        event(overrides=(edit(OVERRIDE, {"SUMMARY:": "SUMMARY:Moved again"}),)),
        present={V: {"SUMMARY:Review"}},
        gone={OV},
        conflicts={(OV, "*")},
    ),
    Case(
        "component_deleted_on_one_side_edited_on_other_conflict_prefer_b_keeps",
        event(overrides=(OVERRIDE,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        event(overrides=(edit(OVERRIDE, {"SUMMARY:": "SUMMARY:Moved again"}),)),
        present={V: {"SUMMARY:Review"}, OV: {"SUMMARY:Moved again"}},
        conflicts={(OV, "*")},
        prefer="b",
    ),
    Case(
        "component_deleted_on_one_side_unchanged_on_other_deleted",
        event(overrides=(OVERRIDE,)),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        event(edit(EVENT, {"LOCATION:": "LOCATION:Room 2"}), overrides=(OVERRIDE,)),
        present={V: {"SUMMARY:Review", "LOCATION:Room 2"}},
        gone={OV},
    ),
    Case(
        "override_added_on_both_sides_merged_against_nothing",
        event(),
        event(overrides=(edit(OVERRIDE, add=("LOCATION:Room 9",)),)),
        event(overrides=(edit(OVERRIDE, add=("DESCRIPTION:Moved",)),)),
        present={OV: {"LOCATION:Room 9", "DESCRIPTION:Moved", "SUMMARY:Planning (moved)"}},
    ),
    Case(
        "sequence_bumped_when_merge_makes_a_new_schedule",
        event(),
        event(edit(EVENT, {"DTSTART:": "DTSTART:20261104T100000Z", "SEQUENCE:": "SEQUENCE:1"})),
        event(edit(EVENT, {"LOCATION:": "LOCATION:Room 2", "SEQUENCE:": "SEQUENCE:1"})),
        present={V: {"DTSTART:20261104T100000Z", "LOCATION:Room 2", "SEQUENCE:2"}},
    ),
    Case(
        "sequence_max_when_schedule_comes_from_one_side",
        event(),
        event(edit(EVENT, {"DTSTART:": "DTSTART:20261104T100000Z", "SEQUENCE:": "SEQUENCE:1"})),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        present={V: {"DTSTART:20261104T100000Z", "SUMMARY:Review", "SEQUENCE:1"}},
    ),
    Case(
        "sequence_added_when_neither_side_has_one_and_schedule_is_new",
        event(edit(EVENT, {"SEQUENCE:": None})),
        event(edit(EVENT, {"SEQUENCE:": None, "DTEND:": "DTEND:20261104T110000Z"})),
        event(edit(EVENT, {"SEQUENCE:": None, "RRULE:": "RRULE:FREQ=WEEKLY;COUNT=5"})),
        present={V: {"DTEND:20261104T110000Z", "RRULE:COUNT=5;FREQ=WEEKLY", "SEQUENCE:1"}},
    ),
    Case(
        "vtimezone_united_by_tzid",
        event(),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        event(
            overrides=(edit(OVERRIDE, {"DTSTART:": "DTSTART;TZID=Europe/Berlin:20261111T110000"}),),
            timezones=(BERLIN,),
        ),
        present={V: {"SUMMARY:Review"}, OV: {'DTSTART;TZID="Europe/Berlin":20261111T110000'}},
    ),
]

CARD_CASES = [
    Case(
        "vcard30_phone_changed_on_a_email_on_b_both_kept",
        card(),
        card(edit(CARD30, {"TEL;TYPE=CELL:": "TEL;TYPE=CELL:+1-555-0199"})),
        card(edit(CARD30, {"EMAIL;": "EMAIL;TYPE=INTERNET,HOME:ann@home.example"})),
        present={
            C: {
                'TEL;TYPE="cell":+1-555-0199',
                'EMAIL;TYPE="home","internet":ann@home.example',
                'TEL;TYPE="voice","work":+1-555-0101',
            }
        },  # fmt: skip
        absent={C: {'TEL;TYPE="cell":+1-555-0100', 'EMAIL;TYPE="home","internet":ann@example.com'}},
    ),
    Case(
        "vcard_single_valued_changed_differently_conflict_prefer_b",
        card(),
        card(edit(CARD30, {"FN:": "FN:Ann A. Example"})),
        card(edit(CARD30, {"FN:": "FN:Annie Example"}, add=("TITLE:Engineer",))),
        present={C: {"FN:Annie Example", "TITLE:Engineer"}},
        conflicts={(C, "FN")},
        prefer="b",
    ),
    Case(
        "vcard_tel_added_on_both_sides_both_kept",
        card(),
        card(edit(CARD30, add=("TEL;TYPE=HOME:+1-555-0102",))),
        card(edit(CARD30, add=("TEL;TYPE=FAX:+1-555-0103",))),
        present={C: {'TEL;TYPE="home":+1-555-0102', 'TEL;TYPE="fax":+1-555-0103'}},
    ),
    Case(
        "vcard_email_parameter_changed_on_one_side_kept",
        card(),
        card(edit(CARD30, {"EMAIL;": "EMAIL;TYPE=INTERNET,HOME;PREF=1:ann@example.com"})),
        card(edit(CARD30, {"ORG:": "ORG:Example Inc"})),
        present={C: {'EMAIL;PREF="1";TYPE="home","internet":ann@example.com', "ORG:Example Inc"}},
    ),
    Case(
        "vcard_categories_removed_on_a_added_on_b",
        card(),
        card(edit(CARD30, {"CATEGORIES:": "CATEGORIES:friends"})),
        card(edit(CARD30, {"CATEGORIES:": "CATEGORIES:friends,work,family"})),
        present={C: {"CATEGORIES:friends", "CATEGORIES:family"}},
        absent={C: {"CATEGORIES:work"}},
    ),
    Case(
        "vcard_property_removed_on_one_side_unchanged_on_other_removed",
        card(),
        card(edit(CARD30, {"NOTE:": None})),
        card(edit(CARD30, {"ORG:": "ORG:Example Inc"})),
        present={C: {"ORG:Example Inc"}},
        absent={C: {"NOTE:Met at the conference"}},
    ),
    Case(
        "vcard21_phone_on_a_quoted_printable_note_on_b",
        card(CARD21),
        card(edit(CARD21, {"TEL;HOME:": "TEL;HOME:+1-555-0177"})),
        card(
            edit(
                CARD21,
                {
                    "NOTE;": "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Th=C3=A9 =",
                    "second line": "vert",
                },
            )
        ),  # fmt: skip
        present={
            C: {
                'TEL;TYPE="home":+1-555-0177',
                "NOTE:Thé vert",
                'TEL;TYPE="cell","voice":+1-555-0100',
            }
        },  # fmt: skip
    ),
    Case(
        "vcard21_email_added_on_a_address_changed_on_b",
        card(CARD21),
        card(edit(CARD21, add=("EMAIL;INTERNET;WORK:ann@work.example",))),
        card(edit(CARD21, {"ADR;HOME:": "ADR;HOME:;;Elm Street 2;Springfield;;12345;USA"})),
        present={
            C: {
                'EMAIL;TYPE="internet","work":ann@work.example',
                'ADR;TYPE="home":;;Elm Street 2;Springfield;;12345;USA',
            }
        },  # fmt: skip
        absent={C: {'ADR;TYPE="home":;;Main Street 1;Springfield;;12345;USA'}},
    ),
    Case(
        "vcard40_email_added_on_a_org_and_impp_on_b",
        card(CARD40),
        card(edit(CARD40, add=("EMAIL;TYPE=home;PREF=1:ann@home.example",))),
        card(
            edit(CARD40, {"ORG:": "ORG:Example Inc", "IMPP;": "IMPP;PREF=2:xmpp:ann@example.com"})
        ),
        present={
            C: {
                'EMAIL;PREF="1";TYPE="home":ann@home.example',
                "ORG:Example Inc",
                'EMAIL;TYPE="work":ann@work.example',
                'IMPP;PREF="2":xmpp:ann@example.com',
                'TEL;TYPE="cell,voice":tel:+1-555-0100',
            }
        },  # fmt: skip
    ),
    Case(
        "vcard_version_changed_differently_conflict_prefer_side",
        card(CARD30),
        card(edit(CARD30, {"VERSION:": "VERSION:4.0"})),
        card(edit(CARD30, {"VERSION:": "VERSION:2.1"})),
        present={C: {"VERSION:2.1"}},
        conflicts={(C, "VERSION")},
        prefer="b",
    ),
    Case(
        "vcard_grouped_label_changed_on_a_phone_added_on_b",
        card(
            edit(
                CARD30,
                add=("item1.EMAIL;type=INTERNET:ann@lab.example", "item1.X-ABLabel:_$!<Other>!$_"),
            )
        ),  # fmt: skip
        card(
            edit(CARD30, add=("item1.EMAIL;type=INTERNET:ann@lab.example", "item1.X-ABLabel:Lab"))
        ),  # fmt: skip
        card(
            edit(
                CARD30,
                add=(
                    "item1.EMAIL;type=INTERNET:ann@lab.example",
                    "item1.X-ABLabel:_$!<Other>!$_",
                    "TEL;TYPE=HOME:+1-555-0102",
                ),
            )
        ),
        present={
            C: {
                "ITEM1.X-ABLABEL:Lab",
                'TEL;TYPE="home":+1-555-0102',
                'ITEM1.EMAIL;TYPE="internet":ann@lab.example',
            }
        },  # fmt: skip
    ),
]


@pytest.mark.parametrize("case", EVENT_CASES + CARD_CASES, ids=lambda c: c.rule)
def test_rule(case: Case) -> None:
    result = merge(case.base, case.a, case.b, prefer=case.prefer)  # type: ignore[arg-type]
    merged = checked(result, case.a)
    got = view(merged)
    for label, lines in case.present.items():
        assert label in got, f"{label} missing from {sorted(got)}"
        assert lines <= got[label], sorted(lines - got[label])
    for label, lines in case.absent.items():
        assert not lines & got.get(label, set()), sorted(lines & got.get(label, set()))
    for label in case.gone:
        assert label not in got
    assert {(c.component, c.name) for c in result.conflicts} == case.conflicts


# --------------------------------------------------------------------- rules on raw text


def test_unchanged_lines_kept_byte_for_byte_a_text_where_both_agree() -> None:
    folded = "DESCRIPTION:A long description that a client folded at an odd place\n  to test"
    base = event(edit(EVENT, add=(folded,)))
    a = event(edit(EVENT, {"LOCATION:": "location;language=en:Room 2"}, add=(folded,)))
    b = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}, add=(folded,)))
    merged = checked(merge(base, a, b), a)
    assert "location;language=en:Room 2\r\n" in merged.text
    assert "DESCRIPTION:A long description that a client folded at an odd place\r\n  to test" in (
        merged.text
    )
    assert "SUMMARY:Review\r\n" in merged.text


def test_server_rewrite_is_no_change() -> None:
    """b is what a server made of base (parameters reordered, quoted, refolded, VALUE
    added): none of it is a change, so a's edits come through without conflict."""
    base = event()
    a = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}))
    rewritten = edit(
        EVENT,
        {
            "ATTENDEE;PARTSTAT=ACCEPTED;CN=Ann": 'ATTENDEE;CN="Ann";PARTSTAT=accepted:mailto:an\n'
            " n@example.com",
            "DTSTART:": "DTSTART;VALUE=DATE-TIME:20261104T093000Z",
            "RRULE:": "RRULE:COUNT=10;FREQ=WEEKLY",
            "DTSTAMP:": "DTSTAMP:20261105T000000Z",
        },
    )
    b = event(rewritten)
    assert b.hash == base.hash
    result = merge(base, a, b)
    assert result.conflicts == ()
    assert result.record is a


def test_server_rewrite_on_one_side_edit_on_the_other_no_conflict() -> None:
    base = event()
    a = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}))
    b = event(
        edit(
            EVENT,
            {
                "ATTENDEE;PARTSTAT=ACCEPTED;CN=Ann": 'ATTENDEE;CN="Ann";PARTSTAT=accepted:mailto:'
                "ann@example.com",
                "DTSTART:": "DTSTART;VALUE=DATE-TIME:20261104T093000Z",
            },
            add=("DESCRIPTION:Added on b",),
        )
    )
    result = merge(base, a, b)
    assert result.conflicts == ()
    got = view(checked(result, a))["VEVENT"]
    assert {"SUMMARY:Review", "DESCRIPTION:Added on b", ANN, "SEQUENCE:0"} <= got


def test_timestamps_newest_of_a_and_b() -> None:
    base = event()
    a = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review", "DTSTAMP:": "DTSTAMP:20261102T000000Z"},
                   add=("LAST-MODIFIED:20261103T000000Z",)))  # fmt: skip
    b = event(edit(EVENT, {"LOCATION:": "LOCATION:Room 2", "DTSTAMP:": "DTSTAMP:20261105T000000Z"},
                   add=("LAST-MODIFIED:20261102T120000Z",)))  # fmt: skip
    text = checked(merge(base, a, b), a).text
    assert "DTSTAMP:20261105T000000Z\r\n" in text
    assert "LAST-MODIFIED:20261103T000000Z\r\n" in text
    assert text.count("DTSTAMP") == 1 and text.count("LAST-MODIFIED") == 1


def test_vcard_rev_newest_of_a_and_b() -> None:
    a = card(edit(CARD30, {"ORG:": "ORG:A Corp", "REV:": "REV:2026-03-01T10:00:00Z"}))
    b = card(edit(CARD30, {"NOTE:": "NOTE:b", "REV:": "REV:20260201T000000Z"}))
    text = checked(merge(card(), a, b), a).text
    assert "REV:2026-03-01T10:00:00Z\r\n" in text and "REV:2026020" not in text


def test_vcalendar_wrapper_lines_from_a() -> None:
    base = event()
    a = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}))
    text = a.text.replace(
        "PRODID:-//pimsync tests//merge//EN", "PRODID:-//client a//EN\r\nX-WR-CALNAME:A"
    )
    a = type(a)(a.ident, a.kind, text, a.hash, a.uid)
    b = event(edit(EVENT, {"LOCATION:": "LOCATION:Room 2"}))
    merged = checked(merge(base, a, b), a)
    assert merged.text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//client a//EN\r\n"
                                  "X-WR-CALNAME:A\r\n")  # fmt: skip


def test_vcard_version_line_stays_first() -> None:
    a = card(edit(CARD30, {"ORG:": "ORG:A Corp"}))
    b = card(edit(CARD30, {"NOTE:": "NOTE:b"}, add=("TEL:+1-555-0111",)))
    merged = checked(merge(card(), a, b), a)
    assert merged.text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n")


def test_vcard21_quoted_printable_soft_break_kept_with_its_blank_line() -> None:
    """A quoted-printable value that ends with a soft line break is ended by a blank
    line; the merged card keeps it, or the next property would join the value."""
    body = edit(CARD21, {"NOTE;": "NOTE;ENCODING=QUOTED-PRINTABLE:Line one=0D=0A=", "second": ""})
    base = card(body)
    a = card(edit(body, {"TEL;HOME:": "TEL;HOME:+1-555-0177"}))
    b = card(edit(body, {"FN:": "FN:Ann B. Example"}))
    merged = checked(merge(base, a, b), a)
    assert "NOTE;ENCODING=QUOTED-PRINTABLE:Line one=0D=0A=\r\n\r\n" in merged.text
    assert {"FN:Ann B. Example", 'TEL;TYPE="home":+1-555-0177'} <= view(merged)["VCARD"]


def test_one_side_unchanged_returns_the_other() -> None:
    base, changed = event(), event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}))
    assert merge(base, changed, base).record is changed
    assert merge(base, base, changed).record is changed
    assert merge(base, changed, changed).record is changed


def test_conflict_values_are_canonical_lines() -> None:
    result = merge(
        event(),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:A"})),
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:B"})),
    )
    (conflict,) = result.conflicts
    assert (conflict.base, conflict.a, conflict.b) == (
        ("SUMMARY:Planning",),
        ("SUMMARY:A",),
        ("SUMMARY:B",),
    )


def test_component_conflict_lists_its_canonical_lines() -> None:
    base = event(overrides=(OVERRIDE,))
    result = merge(
        base,
        event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"})),
        event(overrides=(edit(OVERRIDE, {"SUMMARY:": "SUMMARY:Moved again"}),)),
    )
    (conflict,) = result.conflicts
    assert conflict.a == ()
    assert "SUMMARY:Planning (moved)" in conflict.base and "SUMMARY:Moved again" in conflict.b


def test_kinds_must_agree() -> None:
    with pytest.raises(ValueError):
        merge(event(), event(), card())


def test_record_without_uid_is_not_merged() -> None:
    """Its ident is its content: a merged version would be another record."""

    def bare(summary: str, location: str) -> Record:
        lines = ["BEGIN:VEVENT", "DTSTAMP:20260101T000000Z", "DTSTART:20260101T100000Z",
                 f"SUMMARY:{summary}", f"LOCATION:{location}", "END:VEVENT"]  # fmt: skip
        return ics("\n".join(lines))

    result = merge(bare("s", "l"), bare("t", "l"), bare("s", "m"))
    assert result.record is None
    assert [(c.component, c.name) for c in result.conflicts] == [("VCALENDAR", "*")]


def test_sequence_kept_when_conflict_resolves_to_one_side() -> None:
    base = event()
    a = event(edit(EVENT, {"DTSTART:": "DTSTART:20261104T100000Z", "SEQUENCE:": "SEQUENCE:1"}))
    b = event(edit(EVENT, {"DTSTART:": "DTSTART:20261104T110000Z", "SEQUENCE:": "SEQUENCE:3"}))
    result = merge(base, a, b)
    assert [(c.component, c.name) for c in result.conflicts] == [("VEVENT", "DTSTART")]
    got = view(checked(result, a))["VEVENT"]
    assert {"DTSTART:20261104T100000Z", "SEQUENCE:3"} <= got  # a's schedule: no bump


def test_unreadable_input_gives_no_record() -> None:
    good = event(edit(EVENT, {"SUMMARY:": "SUMMARY:Review"}))
    broken = Record(good.ident, "ics", "BEGIN:VEVENT\r\nEND:VEVENT\r\n", "not-a-hash", good.uid)
    result = merge(event(), good, broken)
    assert result.record is None
    assert [(c.component, c.name) for c in result.conflicts] == [("VCALENDAR", "*")]
