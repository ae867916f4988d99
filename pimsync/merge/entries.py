"""The property lines of one component, read once: raw text, canonical form, identity."""

from __future__ import annotations

from dataclasses import dataclass

from pimsync.merge.rules import identity
from pimsync.model.lines import Component, Document
from pimsync.model.normalise import canonical_lines

CRLF = "\r\n"


class Unreadable(ValueError):
    """An input is not the one record the merge expects (no VCALENDAR, not one vCard)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One property line of one version of a component."""

    ident: str  # what makes two lines the same property (see rules.identity)
    name: str  # bare upper-case name
    raw: str  # its physical lines as written, joined with CRLF
    canon: tuple[str, ...]  # canonical form (empty for properties the hash ignores)
    text: str  # the unfolded logical line
    value: str  # its value as written
    index: int  # position among the component's property lines


def raw_lines(doc: Document, first: int, last: int, vcard: bool) -> str:
    """Physical lines ``first..last`` joined with CRLF. In a vCard a blank line that
    followed them is kept: it ends vCard 2.1 BASE64 data and quoted-printable values
    that end with a soft line break."""
    physical = doc.physical
    lines = physical[first : last + 1]
    if vcard and last + 1 < len(physical) and not physical[last + 1]:
        lines.append("")
    return CRLF.join(lines)


def read_entries(doc: Document, comp: Component, vcard: bool) -> list[Entry]:
    """Every property line of ``comp`` (not of its sub-components), in order. Raises
    ``LineSyntaxError`` for a line that does not parse."""
    out: list[Entry] = []
    for index, line in enumerate(comp.lines):
        name, _params, value, group = line.parts()
        upper = name.upper()
        out.append(
            Entry(
                ident=identity(upper, group, vcard),
                name=upper,
                raw=raw_lines(doc, line.first, line.last, vcard),
                canon=tuple(canonical_lines(line, vcard)),
                text=line.text,
                value=value,
                index=index,
            )
        )
    return out


def value_prefix(entry: Entry) -> str:
    """The logical line up to and including the colon before its value."""
    text = entry.text
    return text[: len(text) - len(entry.value)] if entry.value else text
