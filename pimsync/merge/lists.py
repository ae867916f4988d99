"""Writing the merged items of a list property (CATEGORIES, EXDATE, RDATE...): whole
lines of one side where they fit, else one new line per parameter set."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from pimsync.merge.entries import CRLF, Entry, value_prefix
from pimsync.merge.items import Item, Piece
from pimsync.merge.output import Origin, Out, taken
from pimsync.merge.result import Side
from pimsync.model.lines import Line, fold
from pimsync.model.normalise import canonical_lines

Items = dict[Hashable, Item]


def entries_of(items: Iterable[Item]) -> list[Entry]:
    """The lines the items come from, each once, in document order."""
    seen: dict[int, Entry] = {}
    for item in items:
        for piece in item.pieces:
            seen.setdefault(piece.entry.index, piece.entry)
    return [seen[index] for index in sorted(seen)]


def _versions(items: Iterable[Item]) -> dict[Hashable, tuple[str, ...]]:
    return {item.key: item.version for item in items}


def render_list(
    chosen: list[tuple[Item, Origin]], items: tuple[Items, Items, Items], prefer: Side, vcard: bool
) -> list[Out]:
    """Lines for the ``chosen`` items of one list property. ``items``: the items of
    base, a and b. When the result is exactly a's items (b's), a's (b's) lines are kept
    as they are; otherwise the values are written anew, one line per head: base's
    values in base's order, then the added ones sorted (so that the result does not
    depend on which side is a)."""
    base_items, a_items, b_items = items
    result = _versions(item for item, _origin in chosen)
    fits_a = result == _versions(a_items.values())
    fits_b = result == _versions(b_items.values())
    if fits_a and (prefer == "a" or not fits_b):
        return taken(entries_of(a_items.values()), "a")
    if fits_b:
        return taken(entries_of(b_items.values()), "b")
    out: list[Out] = []
    heads: dict[str, list[tuple[Item, Piece, Origin]]] = {}
    for item, origin in chosen:
        for piece in item.pieces:
            if piece.head is None:  # a line whose values could not be told apart
                out.extend(taken([piece.entry], origin))
            else:
                heads.setdefault(piece.head, []).append((item, piece, origin))
    base_order = {key: n for n, key in enumerate(base_items)}
    for group in heads.values():
        out.append(_new_line(group, base_order, vcard))
    return out


def _new_line(
    group: list[tuple[Item, Piece, Origin]], base_order: dict[Hashable, int], vcard: bool
) -> Out:
    kept = [(i, p) for i, p, _o in group if i.key in base_order]
    added = [(i, p) for i, p, _o in group if i.key not in base_order]
    kept.sort(key=lambda pair: base_order[pair[0].key])
    added.sort(key=lambda pair: (pair[1].canon, pair[1].value))
    source = next((p for _i, p, origin in group if origin == "a"), group[0][1]).entry
    text = value_prefix(source) + ",".join(piece.value for _item, piece in (*kept, *added))
    canon = tuple(canonical_lines(Line(text, 0, 0), vcard))
    return Out(CRLF.join(fold(text)), canon, source.name, source.ident, "new", -1)
