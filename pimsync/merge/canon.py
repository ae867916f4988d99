"""Reading canonical lines (``pimsync.model.normalise``) back: head and value, one
parameter, list values."""

from __future__ import annotations


def split_canonical(line: str) -> tuple[str, str]:
    """A canonical line as ``(head, value)``: the head is the name with its parameters
    (values quoted, so a colon in them is no separator)."""
    colon = line.find(":")
    if colon < 0:
        return line, ""
    if '"' not in line[:colon]:
        return line[:colon], line[colon + 1 :]
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:index], line[index + 1 :]
    return line, ""


def head_param(head: str, name: str) -> str:
    """The text of parameter ``name`` in a canonical head (``'TYPE="home","voice"'``),
    or '' when it has none."""
    marker = ";" + name
    start = head.find(marker)
    while start >= 0:
        end = start + len(marker)
        if end == len(head) or head[end] in "=;":
            return _param_at(head, start + 1)
        start = head.find(marker, end)
    return ""


def _param_at(head: str, start: int) -> str:
    """The parameter text starting at ``start``, up to the next unquoted ``;``."""
    quoted = False
    for index in range(start, len(head)):
        char = head[index]
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return head[start:index]
    return head[start:]


def split_list(value: str) -> list[str]:
    """A value split at its unescaped commas (escapes kept in the pieces)."""
    if "\\" not in value:
        return value.split(",")
    pieces: list[str] = []
    start = 0
    index = 0
    size = len(value)
    while index < size:
        char = value[index]
        if char == "\\":
            index += 2
            continue
        if char == ",":
            pieces.append(value[start:index])
            start = index + 1
        index += 1
    pieces.append(value[start:])
    return pieces


def calendar_address(value: str) -> str:
    """A calendar address as a key: case-insensitive, ``mailto:`` left out."""
    lowered = value.strip().lower()
    return lowered[7:] if lowered.startswith("mailto:") else lowered
