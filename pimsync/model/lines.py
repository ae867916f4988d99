"""Content lines: unfold a .ics/.vcf text into logical lines and a tree of components,
keeping every physical line as it was.

This layer knows the line grammar only as far as it needs to: where a logical line ends,
whether it has a colon, and BEGIN/END. Splitting a logical line into name, parameters
and value is ``vobject.base.parseLine``'s job (see :meth:`Line.parts`), imported lazily.

It never raises for bad input: problems are collected in :attr:`Document.errors`, each
tied to the innermost component that was open at the time, so that the caller can tell
which record they spoil and keep the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: A property name without group or parameters (``vobject.base.patterns["name"]``).
_PLAIN_NAME = re.compile("[a-zA-Z0-9_-]+")
#: A byte that was not valid UTF-8, as decoded with ``surrogateescape``.
_SURROGATE = re.compile("[\udc80-\udcff]")

ParsedLine = tuple[str, list[list[str]], str, "str | None"]


class LineSyntaxError(ValueError):
    """A logical line that ``vobject.base.parseLine`` cannot split."""

    def __init__(self, message: str, lineno: int) -> None:
        super().__init__(message)
        self.lineno = lineno


class Line:
    """One logical line: its unfolded text and the span of physical lines it came from."""

    __slots__ = ("text", "first", "last", "_parts")

    def __init__(self, text: str, first: int, last: int) -> None:
        self.text = text
        #: Index (0-based) of its first and last physical line in :attr:`Document.physical`.
        self.first = first
        self.last = last
        self._parts: ParsedLine | None = None

    @property
    def lineno(self) -> int:
        """1-based number of its first physical line."""
        return self.first + 1

    @property
    def name(self) -> str:
        """Upper-cased property name (with its group, if any), found without a full parse."""
        text = self.text
        end = len(text)
        for sep in (";", ":"):
            i = text.find(sep, 0, end)
            if i >= 0:
                end = i
        return text[:end].upper()

    def parts(self) -> ParsedLine:
        """``(name, params, value, group)`` as ``vobject.base.parseLine`` returns them
        (params: a list of ``[name, value...]``); parsed once, then cached."""
        parts = self._parts
        if parts is None:
            parts = self._parts = parse_line(self.text, self.lineno)
        return parts

    @property
    def value(self) -> str:
        return self.parts()[2]

    def __repr__(self) -> str:
        return f"Line({self.lineno}, {self.text[:40]!r})"


def parse_line(text: str, lineno: int = 0) -> ParsedLine:
    """Split one logical line with ``vobject.base.parseLine``; :class:`LineSyntaxError`
    if it does not fit the content-line grammar."""
    colon = text.find(":")
    if colon > 0 and _PLAIN_NAME.fullmatch(text, 0, colon):
        # no parameters and no group: exactly what parseLine returns, without its regex
        return (text[:colon].replace("_", "-"), [], text[colon + 1 :], None)
    if not _VOBJECT:
        from vobject.base import ParseError, parseLine

        _VOBJECT.extend((parseLine, ParseError))
    try:
        return _VOBJECT[0](text)  # type: ignore[no-any-return]
    except _VOBJECT[1]:
        raise LineSyntaxError(f"not a valid content line: {_shorten(text)!r}", lineno) from None


#: ``vobject.base.parseLine`` and its error, once imported.
_VOBJECT: list[Any] = []


class Component:
    """A BEGIN:X ... END:X block: its property lines and its sub-components."""

    __slots__ = ("name", "first", "last", "lines", "children", "parent", "depth")

    def __init__(self, name: str, first: int, parent: Component | None) -> None:
        self.name = name
        #: Physical line indexes of its BEGIN and END lines (``last`` is the last physical
        #: line seen when the END is missing).
        self.first = first
        self.last = first
        self.lines: list[Line] = []
        self.children: list[Component] = []
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1

    @property
    def lineno(self) -> int:
        return self.first + 1

    def root(self, depth: int) -> Component:
        """The ancestor (or self) at ``depth`` (0 = top level); self when not that deep."""
        comp: Component = self
        while comp.depth > depth and comp.parent is not None:
            comp = comp.parent
        return comp

    def walk(self) -> list[Component]:
        """This component and all below it, in document order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def find(self, name: str) -> Line | None:
        """Its first property line called ``name`` (upper case)."""
        for line in self.lines:
            if line.name == name:
                return line
        return None

    def __repr__(self) -> str:
        return f"Component({self.name}, line {self.lineno})"


@dataclass(frozen=True, slots=True)
class LineError:
    """A problem found while reading lines. ``component`` is the innermost component that
    was open (None: outside every component)."""

    lineno: int
    message: str
    component: Component | None


class Document:
    """A text read into physical lines, top-level components and errors."""

    __slots__ = ("physical", "components", "errors", "stray")

    def __init__(self, physical: list[str]) -> None:
        #: The physical lines, without their line endings.
        self.physical = physical
        self.components: list[Component] = []
        self.errors: list[LineError] = []
        #: Property lines found outside every component (not an error at this level).
        self.stray: list[Line] = []

    def raw(self, item: Line | Component) -> list[str]:
        """The physical lines of a logical line or a whole component, as they were."""
        return self.physical[item.first : item.last + 1]

    def raw_text(self, item: Line | Component) -> str:
        """Its physical lines joined with CRLF (no final line ending)."""
        return "\r\n".join(self.physical[item.first : item.last + 1])


def split_physical(text: str) -> list[str]:
    """Physical lines without their CRLF or LF endings (a lone CR stays in the line)."""
    physical = text.split("\n")
    if physical[-1] == "":
        physical.pop()
    if "\r" in text:
        physical = [p[:-1] if p.endswith("\r") else p for p in physical]
    return physical


def _is_qp(text: str, lineno: int) -> bool:
    """Whether a logical line's parameters say QUOTED-PRINTABLE (ENCODING=... or bare)."""
    try:
        params = parse_line(text, lineno)[1]
    except LineSyntaxError:
        return True  # what vobject's own reader assumes
    for param in params:
        name = param[0].upper()
        if name == "QUOTED-PRINTABLE" and len(param) == 1:
            return True
        if name == "ENCODING" and any(v.upper() == "QUOTED-PRINTABLE" for v in param[1:]):
            return True
    return False


def _logical_lines(
    physical: list[str], errors: list[tuple[int, str]]
) -> list[tuple[str, int, int]]:
    """Unfold: (logical text, first, last physical index) for every logical line.
    A line starting with space or tab continues the previous one; so does any line after
    a quoted-printable line ending in ``=`` (soft line break). Blank lines end a line."""
    out: list[tuple[str, int, int]] = []
    append = out.append
    text: str | None = None
    first = last = 0
    qp: bool | None = None  # whether the current logical line is quoted-printable
    for index, phys in enumerate(physical):
        if not phys:
            # a blank line ends the logical line (in vCard 2.1 it ends BASE64 data)
            if text is not None:
                append((text, first, last))
                text = None
            continue
        if text is not None:
            if text[-1] == "=":
                if qp is None:
                    qp = "QUOTED-PRINTABLE" in text.upper() and _is_qp(text, first + 1)
                if qp:
                    # quoted-printable soft line break: the next line continues this one
                    text = text[:-1] + phys
                    last = index
                    continue
            lead = phys[0]
            if lead == " " or lead == "\t":
                text += phys[1:]
                last = index
                continue
            append((text, first, last))
        else:
            lead = phys[0]
            if lead == " " or lead == "\t":
                errors.append(
                    (index + 1, "continuation line (starting with a space) that continues nothing")
                )
                continue
        text = phys
        first = last = index
        qp = None
    if text is not None:
        append((text, first, last))
    return out


def parse(text: str) -> Document:
    """Read ``text`` (decoded with ``surrogateescape``) into a :class:`Document`."""
    physical = split_physical(text)
    doc = Document(physical)
    errors = doc.errors
    check_cr = "\r" in text
    check_bytes = _SURROGATE.search(text) is not None
    stack: list[Component] = []
    top = doc.components
    stray = doc.stray
    current: Component | None = None  # == stack[-1]
    early: list[tuple[int, str]] = []
    for logical, first, last in _logical_lines(physical, early):
        problems: list[str] | None = None
        if check_cr and "\r" in logical:
            problems = [
                "lone CR (carriage return without line feed): CR-only or CR CR LF "
                "line endings are not allowed"
            ]
            logical = logical.replace("\r", "")
        colon = logical.find(":")
        if colon < 0:
            problems = problems or []
            problems.append(f"line without a colon: {_shorten(logical)!r}")
            for problem in problems:
                errors.append(LineError(first + 1, problem, current))
            continue
        if check_bytes and _SURROGATE.search(logical):
            if "CHARSET" not in logical[:colon].upper():
                problems = problems or []
                problems.append(f"invalid UTF-8 in a line without CHARSET: {_shorten(logical)!r}")
        # problems of a BEGIN or END line belong to the component it begins or ends
        target = current
        keyword = logical[:colon].upper() if colon == 5 or colon == 3 else ""
        if keyword == "BEGIN":
            target = Component(logical[6:].strip().upper(), first, current)
            if current is not None:
                current.children.append(target)
            else:
                top.append(target)
            stack.append(target)
            current = target
        elif keyword == "END":
            name = logical[4:].strip().upper()
            if current is not None and current.name == name:
                current.last = last
                stack.pop()
                current = stack[-1] if stack else None
            elif any(c.name == name for c in stack):
                while stack[-1].name != name:
                    unclosed = stack.pop()
                    unclosed.last = first - 1
                    errors.append(
                        LineError(
                            unclosed.lineno,
                            f"BEGIN:{unclosed.name} at line {unclosed.lineno} is closed "
                            f"by END:{name} at line {first + 1}: END:{unclosed.name} missing",
                            unclosed,
                        )
                    )
                target = stack.pop()
                target.last = last
                current = stack[-1] if stack else None
            else:
                problems = problems or []
                problems.append(f"END:{name} without a matching BEGIN:{name}")
        elif current is not None:
            current.lines.append(Line(logical, first, last))
        else:
            stray.append(Line(logical, first, last))
        if problems:
            for problem in problems:
                errors.append(LineError(first + 1, problem, target))
    end = len(physical) - 1
    while stack:
        comp = stack.pop()
        comp.last = end
        errors.append(
            LineError(
                comp.lineno,
                f"BEGIN:{comp.name} at line {comp.lineno} has no END:{comp.name} (truncated?)",
                comp,
            )
        )
    for lineno, message in early:
        errors.append(LineError(lineno, message, _open_at(top, lineno - 1)))
    errors.sort(key=lambda e: e.lineno)
    return doc


def _open_at(components: list[Component], index: int) -> Component | None:
    """The innermost component whose span holds physical line ``index``."""
    found: Component | None = None
    level = components
    while True:
        for comp in level:
            if comp.first <= index <= comp.last:
                found = comp
                level = comp.children
                break
        else:
            return found


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def param_dict(params: list[list[str]]) -> dict[str, list[str]]:
    """``parseLine`` params as ``{NAME: [values...]}`` (repeated names merged)."""
    out: dict[str, list[str]] = {}
    for param in params:
        out.setdefault(param[0].upper(), []).extend(param[1:])
    return out


def fold(line: str, width: int = 75) -> list[str]:
    """Fold one logical line into physical lines of at most ``width`` octets (RFC 5545
    3.1), never splitting a UTF-8 sequence."""
    if len(line) <= width // 4 or len(line.encode("utf-8", "surrogateescape")) <= width:
        return [line]
    out: list[str] = []
    current: list[str] = []
    size = 0
    limit = width
    for char in line:
        n = len(char.encode("utf-8", "surrogateescape"))
        if size + n > limit:
            out.append("".join(current))
            current, size, limit = [" "], 1, width
        current.append(char)
        size += n
    out.append("".join(current))
    return out
