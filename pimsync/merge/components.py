"""Merging one component (properties, then sub-components such as VALARMs)."""

from __future__ import annotations

from functools import cached_property

from pimsync.merge.entries import CRLF, Entry, read_entries
from pimsync.merge.properties import Context, merge_properties
from pimsync.merge.result import PropertyConflict, Side
from pimsync.merge.threeway import numbered, pick, union_keys
from pimsync.model.lines import Component, Document
from pimsync.model.normalise import canonical_component


class Version:
    """One version of one component, with what the merge asks of it, computed once."""

    def __init__(self, doc: Document, comp: Component, vcard: bool) -> None:
        self.doc = doc
        self.comp = comp
        self.vcard = vcard

    @cached_property
    def canon(self) -> str:
        return canonical_component(self.comp, self.vcard)

    @cached_property
    def entries(self) -> list[Entry]:
        return read_entries(self.doc, self.comp, self.vcard)

    @property
    def raw(self) -> str:
        return self.doc.raw_text(self.comp)

    @property
    def begin(self) -> str:
        return self.doc.physical[self.comp.first]

    @property
    def end(self) -> str:
        return self.doc.physical[self.comp.last]

    def children(self) -> list[Version]:
        return [Version(self.doc, child, self.vcard) for child in self.comp.children]


def whole(version: Version | None) -> tuple[str, ...]:
    """A component's canonical lines, for a conflict on it ("*")."""
    return tuple(version.canon.split("\n")) if version is not None else ()


def merge_children(
    base: list[Version], a: list[Version], b: list[Version], prefer: Side
) -> list[str]:
    """Sub-components (VALARM...) as a set of canonical texts: the side that changed
    them; when both did, base − removed + added (an edited alarm is a removed one and
    an added one). Raw texts, a's order first."""
    sets = [dict(zip(numbered(v.canon for v in side), side, strict=True)) for side in (base, a, b)]
    in_base, in_a, in_b = sets
    choice = pick(sorted(in_base), sorted(in_a), sorted(in_b))
    if choice != "conflict":
        return [v.raw for v in (a if choice == "a" else b)]
    out: list[str] = []
    for key in union_keys(in_a, in_b, in_base):
        kept = (key in in_a and key in in_b) or (
            key not in in_base and (key in in_a or key in in_b)
        )
        if kept:
            out.append((in_a.get(key) or in_b[key]).raw)
    return out


def merge_component(
    base: Version | None, a: Version, b: Version, ctx: Context
) -> tuple[str, list[PropertyConflict]]:
    """A component present in a and b (base: None when both added it): the raw text of
    the merged component and the conflicts met."""
    if a.canon == b.canon:
        return a.raw, []
    if base is not None:
        if a.canon == base.canon:
            return b.raw, []
        if b.canon == base.canon:
            return a.raw, []
    outs, conflicts = merge_properties(base.entries if base else [], a.entries, b.entries, ctx)
    children = merge_children(
        base.children() if base else [], a.children(), b.children(), ctx.prefer
    )
    lines = [a.begin, *(out.raw for out in outs), *children, a.end]
    return CRLF.join(lines), conflicts
