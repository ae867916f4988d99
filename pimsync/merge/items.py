"""The items of a multi-valued property: what is added, removed or changed one by one."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace

from pimsync.merge.canon import calendar_address, head_param, split_canonical, split_list
from pimsync.merge.entries import Entry
from pimsync.merge.rules import ADDRESS_KEYED, TYPE_KEYED, is_list
from pimsync.merge.threeway import numbered


@dataclass(frozen=True, slots=True)
class Item:
    """One item of one version: a whole line (an ATTENDEE, a TEL...) or one value of a
    list (a category, an EXDATE)."""

    key: Hashable  # the same item in every version (unique within one version)
    version: tuple[str, ...]  # canonical form: the item changed when it differs
    entry: Entry  # the line it comes from
    head: str | None  # list value: the canonical head of its line; None: a whole line
    piece: str  # list value: the value as written
    canon_piece: str  # list value: its canonical form


def _line_key(entry: Entry, vcard: bool) -> Hashable:
    """The key of an item that is a whole line."""
    head, value = split_canonical(entry.canon[0]) if entry.canon else ("", "")
    if not vcard and entry.name in ADDRESS_KEYED:
        return ("address", calendar_address(value))
    if vcard and entry.name in TYPE_KEYED:
        return ("typed", value, head_param(head, "TYPE"))
    return ("value", value)


def _list_items(entry: Entry) -> list[tuple[Hashable, Item]] | None:
    """The values of a list line as items; None when they cannot be told apart from
    what is written (quoted-printable, escapes the canonical form changed)."""
    pairs: list[tuple[str, str]] = []
    for line in entry.canon:
        head, value = split_canonical(line)
        pairs.extend((head, piece) for piece in split_list(value))
    pieces = split_list(entry.value)
    if len(pieces) != len(pairs) or "QUOTED-PRINTABLE" in entry.text.upper():
        return None
    return [
        ((head, canon_piece), Item((), (f"{head}:{canon_piece}",), entry, head, piece, canon_piece))
        for (head, canon_piece), piece in zip(pairs, pieces, strict=True)
    ]


def _whole(entry: Entry) -> Item:
    return Item((), entry.canon, entry, None, entry.value, "")


def itemize(entries: list[Entry], vcard: bool) -> dict[Hashable, Item]:
    """The items of one version of a property, by key (in document order)."""
    found: list[tuple[Hashable, Item]] = []
    for entry in entries:
        if not is_list(entry.name, vcard):
            found.append((_line_key(entry, vcard), _whole(entry)))
            continue
        listed = _list_items(entry)
        if listed is None:
            found.append((("line", entry.canon), _whole(entry)))
        else:
            found.extend(listed)
    keys = numbered(key for key, _item in found)
    return {key: replace(item, key=key) for key, (_k, item) in zip(keys, found, strict=True)}
