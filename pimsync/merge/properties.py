"""Merging the property lines of one component (an event, an override, a card)."""

from __future__ import annotations

from dataclasses import dataclass

from pimsync.merge.entries import Entry
from pimsync.merge.items import Item, itemize
from pimsync.merge.lists import entries_of, render_list
from pimsync.merge.output import Origin, Out, place, taken
from pimsync.merge.result import PropertyConflict, Side
from pimsync.merge.rules import FIRST, NEWEST, SEQUENCE, is_list, is_set
from pimsync.merge.sequence import newest_lines, sequence_lines
from pimsync.merge.threeway import pick, union_keys


@dataclass(frozen=True, slots=True)
class Context:
    """What every rule needs to know besides the versions."""

    vcard: bool
    prefer: Side
    label: str  # the component, for conflicts ("VEVENT;RECURRENCE-ID=...")
    #: keep a's lines where a property is the same on a and base (b changed others): for a
    #: server's change applied to the local version, whose form differs from the base's
    a_form: bool = False


Group = list[Entry]


def _groups(entries: list[Entry]) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for entry in entries:
        out.setdefault(entry.ident, []).append(entry)
    return out


def _signature(group: Group) -> tuple[str, ...]:
    return tuple(sorted(c for entry in group for c in entry.canon))


def merge_properties(
    base: list[Entry], a: list[Entry], b: list[Entry], ctx: Context
) -> tuple[list[Out], list[PropertyConflict]]:
    """The merged property lines, in a's order, and the conflicts met. For iCalendar,
    SEQUENCE is computed (see ``sequence_lines``) rather than merged."""
    groups = (_groups(base), _groups(a), _groups(b))
    outs: list[Out] = []
    conflicts: list[PropertyConflict] = []
    sequence = not ctx.vcard
    for ident in union_keys(groups[1], groups[2], groups[0]):
        versions = tuple(g.get(ident, []) for g in groups)
        name = next(group[0].name for group in versions if group)
        if sequence and name == SEQUENCE:
            continue
        outs.extend(_merge_group(ident, name, versions, ctx, conflicts))
    if sequence:
        outs.extend(sequence_lines(outs, a, b))
    return place(outs, a), conflicts


def _merge_group(
    ident: str,
    name: str,
    versions: tuple[Group, Group, Group],
    ctx: Context,
    conflicts: list[PropertyConflict],
) -> list[Out]:
    """The lines of one property: the side that changed it; item by item when both
    did and it is multi-valued; the preferred side's (and a conflict) otherwise."""
    base, a, b = versions
    if name in NEWEST:
        return newest_lines(a, b)
    if name in FIRST:
        return taken(a, "a") if a else taken(b, "b")
    sig_base, sig_a, sig_b = _signature(base), _signature(a), _signature(b)
    choice = pick(sig_base, sig_a, sig_b)
    if choice == "a":
        return taken(a, "a")
    if choice == "b":
        return taken(b, "b")
    if is_set(name, ctx.vcard) or max(len(base), len(a), len(b)) > 1:
        return _merge_items(ident, name, versions, ctx, conflicts)
    conflicts.append(PropertyConflict(ctx.label, ident, sig_base, sig_a, sig_b))
    return taken(a, "a") if ctx.prefer == "a" else taken(b, "b")


def _merge_items(
    ident: str,
    name: str,
    versions: tuple[Group, Group, Group],
    ctx: Context,
    conflicts: list[PropertyConflict],
) -> list[Out]:
    """A multi-valued property, item by item: base − removed + added, and for an item
    in both with different parameters the side that changed it."""
    base, a, b = (itemize(group, ctx.vcard) for group in versions)
    chosen: list[tuple[Item, Origin]] = []
    for key in union_keys(a, b, base):
        item_a, item_b = a.get(key), b.get(key)
        old, mine, theirs = (i.version if i else None for i in (base.get(key), item_a, item_b))
        choice = pick(old, mine, theirs)
        if choice == "conflict":
            conflicts.append(
                PropertyConflict(ctx.label, ident, old or (), mine or (), theirs or ())
            )
            choice = ctx.prefer
        item = item_a if choice == "a" else item_b
        if item is not None:
            chosen.append((item, choice))
    if is_list(name, ctx.vcard):
        return render_list(chosen, (base, a, b), ctx.prefer, ctx.vcard)
    return [out for item, origin in chosen for out in taken(entries_of([item]), origin)]
