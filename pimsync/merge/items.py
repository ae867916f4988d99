"""The items of a multi-valued property: what is added, removed or changed one by one."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pimsync.merge.canon import calendar_address, head_param, split_canonical, split_list
from pimsync.merge.entries import Entry
from pimsync.merge.rules import ADDRESS_KEYED, TYPE_KEYED, is_list


@dataclass(frozen=True, slots=True)
class Piece:
    """One occurrence of an item: a whole line, or one value of a list line."""

    entry: Entry  # the line it comes from
    head: str | None  # list value: the canonical head of its line; None: a whole line
    value: str  # list value: as written
    canon: str  # list value: its canonical form


@dataclass(frozen=True, slots=True)
class Item:
    """One item of one version: an ATTENDEE, a TEL, a category, an EXDATE... Repeats of
    the same key are one item whose version says how often (so that a repeat is merged
    like any other change)."""

    key: Hashable  # the same item in every version
    version: tuple[str, ...]  # canonical lines of its occurrences, sorted
    pieces: tuple[Piece, ...]


def _line_key(entry: Entry, vcard: bool) -> Hashable:
    """The key of an item that is a whole line."""
    head, value = split_canonical(entry.canon[0]) if entry.canon else ("", "")
    if not vcard and entry.name in ADDRESS_KEYED:
        return ("address", calendar_address(value))
    if vcard and entry.name in TYPE_KEYED:
        return ("typed", value, head_param(head, "TYPE"))
    return ("value", value)


Found = tuple[Hashable, tuple[str, ...], Piece]


def _list_items(entry: Entry) -> list[Found] | None:
    """The values of a list line as items; None when they cannot be told apart from
    what is written (quoted-printable, escapes the canonical form changed)."""
    pairs: list[tuple[str, str]] = []
    for line in entry.canon:
        head, value = split_canonical(line)
        pairs.extend((head, piece) for piece in split_list(value))
    values = split_list(entry.value)
    if len(values) != len(pairs) or "QUOTED-PRINTABLE" in entry.text.upper():
        return None
    return [
        ((head, canon), (f"{head}:{canon}",), Piece(entry, head, value, canon))
        for (head, canon), value in zip(pairs, values, strict=True)
    ]


def _whole(entry: Entry, key: Hashable) -> Found:
    return (key, entry.canon, Piece(entry, None, entry.value, ""))


def itemize(entries: list[Entry], vcard: bool) -> dict[Hashable, Item]:
    """The items of one version of a property, by key (in document order)."""
    found: list[Found] = []
    for entry in entries:
        if not is_list(entry.name, vcard):
            found.append(_whole(entry, _line_key(entry, vcard)))
            continue
        listed = _list_items(entry)
        found.extend(listed if listed is not None else [_whole(entry, ("line", entry.canon))])
    grouped: dict[Hashable, tuple[list[str], list[Piece]]] = {}
    for key, canon, piece in found:
        lines, pieces = grouped.setdefault(key, ([], []))
        lines.extend(canon)
        pieces.append(piece)
    return {
        key: Item(key, tuple(sorted(lines)), tuple(pieces))
        for key, (lines, pieces) in grouped.items()
    }
