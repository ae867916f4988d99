"""The record hash: SHA-256 of a canonical form that ignores what servers and clients
change without a user's edit.

Not part of the hash: line folding and line endings (including vCard 2.1 quoted-printable
soft line breaks), the order of properties in a component, of parameters in a property,
of values in a parameter (``TYPE=home,work`` == ``TYPE=home;TYPE=work`` == vCard 2.1
``HOME;WORK``), of RRULE/EXRULE parts and of EXDATE/RDATE values, of sub-components and
of a record's components; the case of property and parameter names (and of enumerated
parameter values such as TYPE or PARTSTAT); quoting of parameter values; the VCALENDAR
wrapper and every VTIMEZONE; PRODID, DTSTAMP, LAST-MODIFIED and REV.

Everything else is part of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pimsync.model.lines import Component, Line, parse
from pimsync.model.record import Kind

#: Properties that servers and clients rewrite without a user's edit.
IGNORED_PROPERTIES = frozenset({"PRODID", "DTSTAMP", "LAST-MODIFIED", "REV"})
#: Components left out of the hash (servers replace them; users never edit them).
IGNORED_COMPONENTS = frozenset({"VTIMEZONE"})
#: Parameters whose values are enumerations, compared without regard to case.
CASELESS_PARAMS = frozenset(
    {
        "TYPE",
        "VALUE",
        "ENCODING",
        "CHARSET",
        "CUTYPE",
        "ROLE",
        "PARTSTAT",
        "RSVP",
        "RELTYPE",
        "FBTYPE",
        "RANGE",
        "RELATED",
        "SCHEDULE-AGENT",
        "SCHEDULE-FORCE-SEND",
        "DISPLAY",
        "FEATURE",
        "CALSCALE",
        "KIND",
    }
)
#: vCard 2.1 bare parameters that stand for ENCODING (every other bare one is a TYPE).
_BARE_ENCODINGS = frozenset({"QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT", "B"})
_SORTED_PARTS = frozenset({"RRULE", "EXRULE"})
_SPLIT_VALUES = frozenset({"EXDATE", "RDATE"})
_SPECIAL_VALUES = _SORTED_PARTS | _SPLIT_VALUES


def canonical_lines(line: Line, vcard: bool) -> list[str]:
    """The canonical form of one property (several for a multi-valued EXDATE/RDATE; none
    for an ignored property). Raises ``LineSyntaxError`` for a line that does not parse."""
    name, params, value, group = line.parts()
    name = name.upper()
    if name in IGNORED_PROPERTIES:
        return []
    return _canonical(name, params, value, group, vcard)


def _canonical(
    name: str, params: list[list[str]], value: str, group: str | None, vcard: bool
) -> list[str]:
    head = name
    if params:
        merged: dict[str, set[str]] = {}
        for param in params:
            pname = param[0].upper()
            if len(param) > 1:
                values = param[1:]
            elif vcard:  # vCard 2.1 bare parameter: TEL;HOME;VOICE or ;QUOTED-PRINTABLE
                values = [pname]
                pname = "ENCODING" if pname in _BARE_ENCODINGS else "TYPE"
            else:
                values = []
            if pname in CASELESS_PARAMS:
                values = [v.lower() for v in values]
            bucket = merged.get(pname)
            if bucket is None:
                merged[pname] = set(values)
            else:
                bucket.update(values)
        pieces = [name]
        for pname in sorted(merged):
            values_set = merged[pname]
            if values_set:
                pieces.append(";" + pname + '="' + '","'.join(sorted(values_set)) + '"')
            else:
                pieces.append(";" + pname)
        head = "".join(pieces)
    if group:
        head = group.upper() + "." + head
    if name in _SORTED_PARTS:
        return [head + ":" + ";".join(sorted(value.upper().split(";")))]
    if name in _SPLIT_VALUES:
        return [head + ":" + v for v in value.split(",")]
    return [head + ":" + value]


def canonical_component(comp: Component, vcard: bool) -> str:
    """A component's canonical text: sorted canonical properties, then its sub-components'
    canonical texts, sorted."""
    props: list[str] = []
    append = props.append
    for line in comp.lines:
        name, params, value, group = line.parts()
        name = name.upper()
        if name in IGNORED_PROPERTIES:
            continue
        if params or group or name in _SPECIAL_VALUES:
            props.extend(_canonical(name, params, value, group, vcard))
        else:  # the common case, kept cheap
            append(name + ":" + value)
    props.sort()
    parts = [f"BEGIN:{comp.name}", *props]
    if comp.children:
        parts.extend(sorted(canonical_component(c, vcard) for c in comp.children))
    parts.append(f"END:{comp.name}")
    return "\n".join(parts)


def record_hash(kind: Kind, components: Iterable[Component]) -> str:
    """SHA-256 (hex) of a record given its components (a VCARD; or the children of its
    VCALENDAR: VTIMEZONEs among them are skipped)."""
    vcard = kind == "vcf"
    texts = sorted(
        canonical_component(c, vcard) for c in components if c.name not in IGNORED_COMPONENTS
    )
    joined = "\n\n".join(texts)
    return hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()


def record_components(kind: Kind, top: Iterable[Component]) -> list[Component]:
    """The components a record's hash is made of, given the top-level components of its
    text: the VCALENDARs' children (for ics; any other top-level component as itself)
    or the cards."""
    out: list[Component] = []
    for comp in top:
        if kind == "ics" and comp.name == "VCALENDAR":
            out.extend(comp.children)
        else:
            out.append(comp)
    return out


def text_hash(kind: Kind, text: str) -> str:
    """The hash of a record's text (no validation beyond what hashing needs)."""
    return record_hash(kind, record_components(kind, parse(text).components))
