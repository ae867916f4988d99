"""SEQUENCE of a merged iCalendar component, and the timestamps the hash ignores."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pimsync.merge.entries import Entry
from pimsync.merge.output import Out, taken
from pimsync.merge.rules import SCHEDULING, SEQUENCE

_NOT_DIGIT = re.compile(r"\D")


def _scheduling(lines: Iterable[Out | Entry]) -> tuple[str, ...]:
    """The scheduling-relevant part of a component: its canonical DTSTART, RRULE..."""
    return tuple(sorted(c for line in lines if line.name in SCHEDULING for c in line.canon))


def _number(entries: list[Entry]) -> int | None:
    for entry in entries:
        try:
            return int(entry.value.strip())
        except ValueError:
            continue
    return None


def sequence_lines(merged: list[Out], a_entries: list[Entry], b_entries: list[Entry]) -> list[Out]:
    """The SEQUENCE line(s) of the merged component: max(a's, b's), plus one when the
    merged scheduling properties (DTSTART, RRULE, LOCATION...) match neither side's: the
    merge made a change no attendee has seen. None when neither side has one and there
    is nothing to bump."""
    seq_a = [e for e in a_entries if e.name == SEQUENCE]
    seq_b = [e for e in b_entries if e.name == SEQUENCE]
    merged_sched = _scheduling(merged)
    bump = merged_sched != _scheduling(a_entries) and merged_sched != _scheduling(b_entries)
    number_a = _number(seq_a)
    number_b = _number(seq_b)
    if not bump and number_a is None and number_b is None:
        return taken(seq_a, "a") if seq_a else taken(seq_b, "b")
    target = max(number_a or 0, number_b or 0) + (1 if bump else 0)
    if number_a == target:
        return taken(seq_a, "a")
    if number_b == target:
        return taken(seq_b, "b")
    text = f"{SEQUENCE}:{target}"
    return [Out(text, (text,), SEQUENCE, SEQUENCE, "new", -1)]


def _stamp(entries: list[Entry]) -> str:
    """A timestamp as digits only, padded: comparable across basic and extended forms."""
    return max((_NOT_DIGIT.sub("", e.value)[:14].ljust(14, "0") for e in entries), default="")


def newest_lines(a_entries: list[Entry], b_entries: list[Entry]) -> list[Out]:
    """DTSTAMP, LAST-MODIFIED, REV: the newer side's (a's on a tie or when b has none)."""
    if a_entries and (not b_entries or _stamp(a_entries) >= _stamp(b_entries)):
        return taken(a_entries, "a")
    return taken(b_entries, "b")
