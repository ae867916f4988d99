"""Merging one component (properties, then sub-components such as VALARMs)."""

from __future__ import annotations

from functools import cached_property

from pimsync.merge.entries import CRLF, Entry, read_entries
from pimsync.merge.properties import Context, merge_properties
from pimsync.merge.result import PropertyConflict
from pimsync.merge.threeway import pick, union_keys
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


def _by_text(versions: list[Version]) -> dict[str, list[Version]]:
    out: dict[str, list[Version]] = {}
    for version in versions:
        out.setdefault(version.canon, []).append(version)
    return out


def merge_children(
    base: list[Version], a: list[Version], b: list[Version], ctx: Context
) -> tuple[list[str], list[PropertyConflict]]:
    """Sub-components (VALARM...) as a set of canonical texts: the side that changed
    them; when both did, base − removed + added (an edited alarm is a removed one and
    an added one). Raw texts, a's order first. Copies of one text count like a property
    value: both sides changing their number differently is a conflict."""
    choice = pick(*(sorted(v.canon for v in side) for side in (base, a, b)))
    if choice != "conflict":
        return [v.raw for v in (a if choice == "a" else b)], []
    in_base, in_a, in_b = _by_text(base), _by_text(a), _by_text(b)
    out: list[str] = []
    conflicts: list[PropertyConflict] = []
    for key in union_keys(in_a, in_b, in_base):
        copies = [side.get(key, []) for side in (in_base, in_a, in_b)]
        choice = pick(*(len(c) for c in copies))
        if choice == "conflict":
            name = next(c[0].comp.name for c in copies if c)
            old, mine, theirs = ((key,) * len(c) for c in copies)
            conflicts.append(PropertyConflict(ctx.label, name, old, mine, theirs))
            choice = ctx.prefer
        out.extend(v.raw for v in copies[1 if choice == "a" else 2])
    return out, conflicts


def merge_component(
    base: Version | None, a: Version, b: Version, ctx: Context
) -> tuple[str, list[PropertyConflict]]:
    """A component present in a and b (base: None when both added it): the raw text of
    the merged component and the conflicts met."""
    if a.canon == b.canon:
        return a.raw, []
    if base is not None:
        if a.canon == base.canon and not ctx.a_form:
            return b.raw, []
        if b.canon == base.canon:
            return a.raw, []
    outs, conflicts = merge_properties(base.entries if base else [], a.entries, b.entries, ctx)
    children, found = merge_children(
        base.children() if base else [], a.children(), b.children(), ctx
    )
    lines = [a.begin, *(out.raw for out in outs), *children, a.end]
    return CRLF.join(lines), conflicts + found
