"""Every record of the well-formed corpus through the merge: with itself, with an edit on
one side, and with different edits on both sides of every component (so that every
line of every real-world record goes through the property-by-property merge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pimsync.merge import merge
from pimsync.merge.calendar import merge_calendar
from pimsync.merge.card import merge_card
from pimsync.model.lines import parse
from pimsync.model.normalise import record_components, text_hash
from pimsync.model.record import Kind, Record
from pimsync.model.split import parse_record, split

CORPUS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus").resolve()
#: Lines never removed by the edits (identity, validity; SEQUENCE is computed, not merged).
KEEP = frozenset(
    {"UID", "DTSTART", "DTSTAMP", "RECURRENCE-ID", "VERSION", "FN", "N", "TZID", "SEQUENCE"}
)


def _well_formed() -> list[tuple[str, Kind]]:
    rows = (CORPUS / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split("\t")
    out: list[tuple[str, Kind]] = []
    for row in rows[1:]:
        fields = dict(zip(header, row.split("\t"), strict=True))
        if fields["well_formed"] == "yes":
            out.append((fields["file"], "ics" if fields["kind"] == "ics" else "vcf"))
    return out


def _records(name: str, kind: Kind) -> list[Record]:
    result = split((CORPUS / name).read_bytes(), kind, name)
    # standalone, as a storage hands it over
    return [parse_record(r.to_bytes(), kind, f"{name}#{r.ident}") for r in result.records]


def _engine(kind: Kind):  # type: ignore[no-untyped-def]
    return merge_card if kind == "vcf" else merge_calendar


def _edited(record: Record, add: str | None = None, remove: bool = False) -> str:
    """The record's text with ``add`` (a property line) added to every component, and/or
    the last removable property line of its first component removed."""
    doc = parse(record.text)
    physical = list(doc.physical)
    comps = [c for c in record_components(record.kind, doc.components) if c.name != "VTIMEZONE"]
    drop: set[int] = set()
    if remove:
        for line in reversed(comps[0].lines):
            if line.parts()[0].upper() not in KEEP:
                drop.update(range(line.first, line.last + 1))
                break
    # before the first property line (ics: before any sub-component), before END (vcf)
    where = [c.last if record.kind == "vcf" or not c.lines else c.lines[0].first for c in comps]
    out: list[str] = []
    for index, text in enumerate(physical):
        if add and index in where:
            out.append(add)
        if index not in drop:
            out.append(text)
    return "\r\n".join(out) + "\r\n"


def _as_record(text: str, like: Record) -> Record:
    return parse_record(text.encode("utf-8", "surrogateescape"), like.kind, "edited")


@pytest.mark.parametrize(("name", "kind"), _well_formed())
def test_corpus_record_merged_with_itself(name: str, kind: Kind) -> None:
    for record in _records(name, kind):
        assert merge(record, record, record).record == record
        text, conflicts = _engine(kind)(record.text, record.text, record.text, "a")
        assert conflicts == []
        assert text_hash(kind, text) == record.hash


@pytest.mark.parametrize(("name", "kind"), _well_formed())
def test_corpus_record_edited_on_one_side(name: str, kind: Kind) -> None:
    for record in _records(name, kind):
        edited = _as_record(_edited(record, add="X-PIMSYNC-MERGE:one side", remove=True), record)
        if record.uid is not None:
            assert merge(record, edited, record).record == edited
            assert merge(record, record, edited).record == edited
        for args in (
            (record.text, edited.text, record.text),
            (record.text, record.text, edited.text),
        ):
            text, conflicts = _engine(kind)(*args, "a")
            assert conflicts == []
            assert text_hash(kind, text) == edited.hash


@pytest.mark.parametrize(("name", "kind"), _well_formed())
def test_corpus_record_edited_on_both_sides(name: str, kind: Kind) -> None:
    """a adds a line to every component; b adds another one and removes a line: every
    component is merged line by line, and the result is both edits, nothing else."""
    for record in _records(name, kind):
        a = _as_record(_edited(record, add="X-PIMSYNC-A:from a"), record)
        b = _as_record(_edited(record, add="X-PIMSYNC-B:from b", remove=True), record)
        both = _edited(_as_record(_edited(record, add="X-PIMSYNC-B:from b", remove=True), record),
                       add="X-PIMSYNC-A:from a")  # fmt: skip
        expected = text_hash(kind, both)
        text, conflicts = _engine(kind)(record.text, a.text, b.text, "a")
        assert conflicts == []
        assert text_hash(kind, text) == expected
        if record.uid is None:
            continue  # its ident is its content: merged, it is another record
        result = merge(record, a, b)
        assert result.conflicts == ()
        assert result.record is not None and result.record.hash == expected
        assert result.record.ident == record.ident
        swapped = merge(record, b, a, prefer="b")
        assert swapped.record is not None and swapped.record.hash == expected
