"""The record hash: SHA-256 of a canonical form that ignores what servers and clients
change without a user's edit.

Not part of the hash: line folding and line endings (including vCard 2.1 quoted-printable
soft line breaks), the order of properties in a component, of parameters in a property,
of values in a parameter (``TYPE=home,work`` == ``TYPE=home;TYPE=work`` == vCard 2.1
``HOME;WORK``), of RRULE/EXRULE parts and of EXDATE/RDATE/FREEBUSY/CATEGORIES/
RESOURCES values, of sub-components and of a record's components; whether such values
share one line or each has its own (``CATEGORIES:a,b`` == ``CATEGORIES:a`` and
``CATEGORIES:b``, as Cyrus stores them); an RRULE ``INTERVAL=1`` (the default, which
Cyrus leaves out); the case of property and parameter names
(and of enumerated parameter values such as TYPE or PARTSTAT); quoting of parameter
values, and an empty value (``X-TITLE=""``) against none (``X-TITLE``); the VCALENDAR
wrapper and every VTIMEZONE; PRODID, DTSTAMP, LAST-MODIFIED and REV.

Nor what CalDAV/CardDAV servers change when they re-serialise a record (vobject,
icalendar), so that writing a record and reading it back gives the same hash:

- the VALUE parameter (``DTSTART;VALUE=DATE:20060611`` == ``DTSTART:20060611``): a
  real edit changes the value itself. VALUE only chooses how the value is compared;
- escapes in values. In every value ``\\N`` == ``\\n``, and a backslash before any
  character other than ``\\``, ``;``, ``,``, ``n`` or ``N`` (not a valid escape)
  stands for that character (``\\"`` == ``"``). In a single-valued TEXT property
  (SUMMARY, DESCRIPTION, NOTE, FN...: :data:`TEXT_PROPERTIES`) the value is compared
  as the text it stands for (``\\,`` == ``,`` and ``\\;`` == ``;``: no separator
  means anything there). In a property whose value is not TEXT (URIs, addresses,
  dates, numbers: :data:`NON_TEXT_PROPERTIES`, or any VALUE other than TEXT) escapes
  are dropped (``tel:+1-555\\;ext=5`` == ``tel:+1-555;ext=5``). Lists and structured
  values (CATEGORIES, N, ADR, X- properties...) keep ``\\,`` and ``\\;`` apart from
  ``,`` and ``;``, which separate their values;
- the spelling of a duration (TRIGGER, DURATION, REFRESH-INTERVAL, VALUE=DURATION and
  the durations of RDATE/FREEBUSY periods): ``-P0DT0H10M0S`` == ``-PT10M`` and
  ``P1W`` == ``P7D`` == ``PT168H`` (compared as a signed number of seconds, as the
  servers' libraries convert them);
- trailing empty components of a structured value (N, ADR, ORG, GENDER,
  REQUEST-STATUS): ``N:Holmes;Sherlock;;Mr;;`` == ``N:Holmes;Sherlock;;Mr``. A
  missing trailing component is an empty one there. Not done for other values, where
  the number of components may mean something (GEO, X- properties);
- ``+`` signs and trailing zeros in GEO (``+51.7688200`` == ``51.76882``);
- vCard 2.1 quoted-printable and CHARSET: a quoted-printable value is compared decoded
  (with its CHARSET, UTF-8 when there is none), line breaks in it as ``\\n``; a value
  with a CHARSET that is not valid UTF-8 is compared decoded with that charset. The
  ENCODING (quoted-printable, 7bit, 8bit) and CHARSET parameters are then left out;
  ``ENCODING=BASE64`` == ``ENCODING=b``.

Everything else is part of it: in particular what a server loses or changes stays
visible: a vCard 2.1 TYPE vobject drops, a value vobject cuts at an unescaped comma,
trailing white space it drops, the backslash icalendar keeps from an invalid escape
(``\\"`` read as a backslash and a quote, written ``\\\\"``), a UTC time icalendar
turns into a local one.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache

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

# How a value is compared (see the module docstring).
_LIST = 0  # list, structured or unknown TEXT: only invalid escapes and \N canonicalised
_TEXT = 1  # one TEXT value: compared as the text it stands for
_NON_TEXT = 2  # not TEXT: escapes dropped
_DURATION = 3  # a duration (escapes dropped)
_STRUCTURED = 4  # structured TEXT: as _LIST, without trailing empty components
_RECUR = 5  # RRULE/EXRULE: parts sorted
_MULTI = 6  # EXDATE/RDATE/FREEBUSY: one canonical line per value
_GEO = 7  # GEO: numbers canonicalised
_VALUES = 8  # CATEGORIES/RESOURCES: one canonical line per comma-separated value

#: Single-valued TEXT properties (iCalendar and vCard): ``\,`` == ``,``, ``\;`` == ``;``.
TEXT_PROPERTIES = frozenset(
    {
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
        "COMMENT",
        "CONTACT",
        "STATUS",
        "CLASS",
        "TRANSP",
        "ACTION",
        "NAME",
        "COLOR",
        "TZNAME",
        "TZID",
        "FN",
        "NOTE",
        "TITLE",
        "ROLE",
        "LABEL",
        "SORT-STRING",
        "MAILER",
    }
)
#: Properties whose value is not TEXT (URI, CAL-ADDRESS, dates, numbers...): escapes
#: are no part of such a value (servers that treat it as TEXT add them).
NON_TEXT_PROPERTIES = frozenset(
    {
        # iCalendar
        "ATTACH",
        "ATTENDEE",
        "ORGANIZER",
        "URL",
        "UID",
        "RELATED-TO",
        "TZURL",
        "DTSTART",
        "DTEND",
        "DUE",
        "RECURRENCE-ID",
        "COMPLETED",
        "CREATED",
        "PERCENT-COMPLETE",
        "PRIORITY",
        "SEQUENCE",
        "REPEAT",
        "TZOFFSETFROM",
        "TZOFFSETTO",
        "IMAGE",
        "CONFERENCE",
        "SOURCE",
        # vCard
        "TEL",
        "EMAIL",
        "PHOTO",
        "LOGO",
        "SOUND",
        "KEY",
        "IMPP",
        "MEMBER",
        "RELATED",
        "FBURL",
        "CALADRURI",
        "CALURI",
        "BDAY",
        "ANNIVERSARY",
        "CLIENTPIDMAP",
        "LANG",
        "KIND",
    }
)
#: Structured values whose trailing empty components may be left out.
STRUCTURED_PROPERTIES = frozenset({"N", "ADR", "ORG", "GENDER", "REQUEST-STATUS"})

_VALUE_KINDS: dict[str, int] = {
    **dict.fromkeys(TEXT_PROPERTIES, _TEXT),
    **dict.fromkeys(NON_TEXT_PROPERTIES, _NON_TEXT),
    **dict.fromkeys(STRUCTURED_PROPERTIES, _STRUCTURED),
    **dict.fromkeys(("TRIGGER", "DURATION", "REFRESH-INTERVAL"), _DURATION),
    **dict.fromkeys(("RRULE", "EXRULE"), _RECUR),
    **dict.fromkeys(("EXDATE", "RDATE", "FREEBUSY"), _MULTI),
    **dict.fromkeys(("CATEGORIES", "RESOURCES"), _VALUES),
    "GEO": _GEO,
}
#: Properties whose value needs work even when it has no backslash and no parameters.
_SPECIAL_VALUES = frozenset(
    name for name, kind in _VALUE_KINDS.items() if kind not in (_TEXT, _NON_TEXT)
)
#: Kinds a VALUE parameter (other than TEXT) does not change.
_KEEP_KIND = frozenset({_RECUR, _MULTI, _GEO, _DURATION, _VALUES})
#: An RRULE part that says what its absence says (RFC 5545 3.3.10: INTERVAL defaults to 1).
_DEFAULT_RECUR_PARTS = frozenset({"INTERVAL=1"})

_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: Replacements for ``\x`` by kind (any other x: itself).
_KEEP_SEPARATORS = {"n": "\\n", "N": "\\n", "\\": "\\\\", ";": "\\;", ",": "\\,"}
_AS_TEXT = {"n": "\\n", "N": "\\n", "\\": "\\\\"}
_DROP = {"n": "\\n", "N": "\\n"}
#: A duration (RFC 5545 3.3.6; at most 12 digits a number, or int() may refuse it).
_DURATION_RE = re.compile(
    r"([+-]?)P(?:(\d{1,12})W)?(?:(\d{1,12})D)?"
    r"(?:T(?:(\d{1,12})H)?(?:(\d{1,12})M)?(?:(\d{1,12})S)?)?"
)
#: A decimal number without exponent (GEO); bounded, unlike what Decimal accepts.
_DECIMAL = re.compile(r"[+-]?\d{1,30}(?:\.\d{0,30})?")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_NO_OP_ENCODINGS = frozenset({"quoted-printable", "7bit", "8bit"})


def _unescape_with(table: dict[str, str]) -> Callable[[re.Match[str]], str]:
    get = table.get

    def replace(match: re.Match[str]) -> str:
        char = match[1]
        return get(char, char)

    return replace


_KEEP_SEPARATORS_SUB = _unescape_with(_KEEP_SEPARATORS)
_AS_TEXT_SUB = _unescape_with(_AS_TEXT)
_DROP_SUB = _unescape_with(_DROP)


@lru_cache(maxsize=4096)  # few distinct durations (alarms), hashed over and over
def _duration(value: str) -> str:
    """A duration as ``[-]PT<seconds>S``; anything that is not a duration as it is."""
    match = _DURATION_RE.fullmatch(value)
    if match is None or value[-1] in "PT":
        return value
    sign, weeks, days, hours, minutes, seconds = match.groups()
    total = (
        ((int(weeks or 0) * 7 + int(days or 0)) * 24 + int(hours or 0)) * 3600
        + int(minutes or 0) * 60
        + int(seconds or 0)
    )
    return f"{'-' if sign == '-' and total else ''}PT{total}S"


def _number(text: str) -> str:
    """A decimal number without ``+`` and trailing zeros (anything else as it is)."""
    if _DECIMAL.fullmatch(text) is None:
        return text
    return format(Decimal(text).normalize(), "f")


def _strip_empty_components(value: str) -> str:
    """Without trailing unescaped ``;``."""
    while value.endswith(";"):
        end = len(value) - 1
        start = end
        while start > 0 and value[start - 1] == "\\":
            start -= 1
        if (end - start) % 2:  # an escaped semicolon: part of the text
            break
        value = value[:end]
    return value


def _as_text(value: str) -> str:
    """A TEXT value with ``\\,`` and ``\\;`` decoded, ``\\N`` as ``\\n``, invalid escapes
    dropped (``\\\\`` and ``\\n`` kept: the result stays unambiguous)."""
    if "\\\\" not in value:  # every backslash starts an escape: str.replace is enough
        text = value.replace("\\,", ",")
        if "\\" not in text:  # the common case: only escaped commas
            return text
        text = text.replace("\\;", ";").replace("\\N", "\\n")
        if text.count("\\") == text.count("\\n"):
            return text
    return _ESCAPE.sub(_AS_TEXT_SUB, value)


def _keep_separators(value: str) -> str:
    """A list or structured TEXT value with ``\\N`` as ``\\n`` and invalid escapes dropped."""
    if "\\\\" not in value:
        text = value.replace("\\N", "\\n")
        if text.count("\\") == text.count("\\n") + text.count("\\,") + text.count("\\;"):
            return text
    return _ESCAPE.sub(_KEEP_SEPARATORS_SUB, value)


def _plain_value(name: str, value: str) -> str:
    """The canonical value of a property without parameters or group whose value has a
    backslash (and whose name is not in :data:`_SPECIAL_VALUES`)."""
    kind = _VALUE_KINDS.get(name, _LIST)
    if kind == _TEXT:
        return _as_text(value)
    if kind == _NON_TEXT:
        return _ESCAPE.sub(_DROP_SUB, value)
    return _keep_separators(value)


def _canonical_value(kind: int, value: str) -> list[str]:
    """The canonical value(s) of a property value of a given kind."""
    if kind == _TEXT:
        return [_as_text(value) if "\\" in value else value]
    if kind == _LIST:
        return [_keep_separators(value) if "\\" in value else value]
    if kind == _STRUCTURED:
        return [_strip_empty_components(_keep_separators(value) if "\\" in value else value)]
    if kind == _VALUES:
        if "\\" not in value:
            return value.split(",")
        return [_keep_separators(v) for v in _split_unescaped(value, ",")]
    if "\\" in value:
        value = _ESCAPE.sub(_DROP_SUB, value)
    if kind == _NON_TEXT:
        return [value]
    if kind == _DURATION:
        return [_duration(value)]
    if kind == _RECUR:
        parts = [p for p in value.upper().split(";") if p not in _DEFAULT_RECUR_PARTS]
        return [";".join(sorted(parts))]
    if kind == _MULTI:
        return [_period(v) if "/" in v else v for v in value.split(",")]
    # _GEO: "lat;lon" (a geo: URI as it is)
    if ":" in value:
        return [value]
    return [";".join(_number(v) for v in value.split(";"))]


def _split_unescaped(value: str, separator: str) -> list[str]:
    """``value`` split at each ``separator`` that no backslash escapes."""
    pieces: list[str] = []
    start = 0
    i = 0
    end = len(value)
    while i < end:
        char = value[i]
        if char == "\\":
            i += 2
            continue
        if char == separator:
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    return pieces


def _period(value: str) -> str:
    start, _, end = value.partition("/")
    return start + "/" + _duration(end)


def _decode(value: str, charset: set[str] | None, quoted_printable: bool) -> str:
    """A quoted-printable value decoded (with its charset, else UTF-8), line breaks as
    ``\\n``; or a value that is not valid UTF-8 decoded with its charset."""
    name = min(charset) if charset else "utf-8"
    if quoted_printable:
        data = binascii.a2b_qp(value.encode("utf-8", "surrogateescape"))
    elif _NOT_UTF8.search(value) is not None:
        data = value.encode("utf-8", "surrogateescape")
    else:
        return value
    try:
        text = data.decode(name, "surrogateescape")
    except (LookupError, ValueError):  # an unknown charset, or not a text encoding
        text = data.decode("utf-8", "surrogateescape")
    if quoted_printable:
        text = _NEWLINE.sub("\\\\n", text)
    return text


def canonical_lines(line: Line, vcard: bool) -> list[str]:
    """The canonical form of one property (several for a multi-valued EXDATE/RDATE/
    FREEBUSY; none for an ignored property). Raises ``LineSyntaxError`` for a line that
    does not parse."""
    name, params, value, group = line.parts()
    name = name.upper()
    if name in IGNORED_PROPERTIES:
        return []
    return _canonical(name, params, value, group, vcard)


def _canonical(
    name: str, params: list[list[str]], value: str, group: str | None, vcard: bool
) -> list[str]:
    head = name
    kind = _VALUE_KINDS.get(name, _LIST)
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
        if "VALUE" in merged:
            value_type = merged.pop("VALUE")
            if value_type == {"text"}:
                if kind == _NON_TEXT or kind == _DURATION:
                    kind = _LIST
            elif value_type == {"duration"}:
                kind = _DURATION
            elif value_type and kind not in _KEEP_KIND:
                kind = _NON_TEXT
        if "ENCODING" in merged or "CHARSET" in merged:
            encoding = merged.pop("ENCODING", None)
            charset = merged.pop("CHARSET", None)
            if encoding and not encoding <= _NO_OP_ENCODINGS:  # BASE64: kept
                merged["ENCODING"] = {"b" if e == "base64" else e for e in encoding}
            value = _decode(value, charset, encoding is not None and "quoted-printable" in encoding)
        pieces = [name]
        for pname in sorted(merged):
            values_set = merged[pname]
            values_set.discard("")
            if values_set:
                pieces.append(";" + pname + '="' + '","'.join(sorted(values_set)) + '"')
            else:
                pieces.append(";" + pname)
        head = "".join(pieces)
    if group:
        head = group.upper() + "." + head
    head += ":"
    if kind <= _NON_TEXT and "\\" not in value:
        return [head + value]
    return [head + v for v in _canonical_value(kind, value)]


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
        elif "\\" in value:
            append(name + ":" + _plain_value(name, value))
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
