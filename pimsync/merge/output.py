"""Lines of a merged component, and the order they are written in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pimsync.merge.entries import Entry

Origin = Literal["a", "b", "new"]


@dataclass(frozen=True, slots=True)
class Out:
    """One property line of the merged component."""

    raw: str  # physical lines joined with CRLF
    canon: tuple[str, ...]
    name: str
    ident: str
    origin: Origin  # a's line, b's line or a line made by the merge
    index: int  # its position in a's (b's) component; -1 for a new line


def taken(entries: list[Entry], origin: Origin) -> list[Out]:
    """Lines taken as they are from one side."""
    return [Out(e.raw, e.canon, e.name, e.ident, origin, e.index) for e in entries]


def place(outs: list[Out], a_entries: list[Entry]) -> list[Out]:
    """The merged lines in a's order: a's lines where a had them; a line of b (or a new
    one) after the last kept line of a of the same property, else where a had that
    property, else at the end, in the order given."""
    first: dict[str, int] = {}
    for entry in a_entries:
        first.setdefault(entry.ident, entry.index)
    last_kept: dict[str, int] = {}
    for out in outs:
        if out.origin == "a":
            last_kept[out.ident] = max(out.index, last_kept.get(out.ident, -1))
    end = len(a_entries)
    keyed: list[tuple[tuple[int, int, int], Out]] = []
    for position, out in enumerate(outs):
        if out.origin == "a":
            key = (out.index, 0, position)
        else:
            anchor = last_kept.get(out.ident, first.get(out.ident, end))
            key = (anchor, 1, position)
        keyed.append((key, out))
    keyed.sort(key=lambda pair: pair[0])
    return [out for _key, out in keyed]
