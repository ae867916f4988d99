"""Writing the merged items of a list property (CATEGORIES, EXDATE, RDATE...): whole
lines of one side where they fit, else one new line per parameter set."""

from __future__ import annotations

from collections.abc import Hashable

from pimsync.merge.entries import CRLF, Entry, value_prefix
from pimsync.merge.items import Item
from pimsync.merge.output import Origin, Out, taken
from pimsync.merge.result import Side
from pimsync.model.lines import Line, fold
from pimsync.model.normalise import canonical_lines


def _entries(items: dict[Hashable, Item]) -> list[Entry]:
    seen: dict[int, Entry] = {}
    for item in items.values():
        seen.setdefault(item.entry.index, item.entry)
    return list(seen.values())


def render_list(
    chosen: list[tuple[Item, Origin]],
    items: tuple[dict[Hashable, Item], dict[Hashable, Item], dict[Hashable, Item]],
    prefer: Side,
    vcard: bool,
) -> list[Out]:
    """Lines for the ``chosen`` items of one list property. ``items``: the items of
    base, a and b. When the result is exactly a's items (b's), a's (b's) lines are kept
    as they are; otherwise the values are written anew, one line per head: base's
    values in base's order, then the added ones sorted (so that the result does not
    depend on which side is a)."""
    base_items, a_items, b_items = items
    keys = {item.key for item, _origin in chosen}
    fits_a = keys == a_items.keys()
    fits_b = keys == b_items.keys()
    if fits_a and (prefer == "a" or not fits_b):
        return taken(_entries(a_items), "a")
    if fits_b:
        return taken(_entries(b_items), "b")
    out: list[Out] = []
    heads: dict[str, list[tuple[Item, Origin]]] = {}
    for item, origin in chosen:
        if item.head is None:  # a line whose values could not be told apart
            out.extend(taken([item.entry], origin))
        else:
            heads.setdefault(item.head, []).append((item, origin))
    base_order = {key: n for n, key in enumerate(base_items)}
    for group in heads.values():
        out.append(_new_line(group, base_order, vcard))
    return out


def _new_line(
    group: list[tuple[Item, Origin]], base_order: dict[Hashable, int], vcard: bool
) -> Out:
    kept = sorted((i for i, _o in group if i.key in base_order), key=lambda i: base_order[i.key])
    added = sorted((i for i, _o in group if i.key not in base_order), key=_added_order)
    source = next((i for i, origin in group if origin == "a"), group[0][0]).entry
    text = value_prefix(source) + ",".join(item.piece for item in (*kept, *added))
    canon = tuple(canonical_lines(Line(text, 0, 0), vcard))
    return Out(CRLF.join(fold(text)), canon, source.name, source.ident, "new", -1)


def _added_order(item: Item) -> tuple[str, str]:
    return (item.canon_piece, item.piece)
