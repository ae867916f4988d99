"""Merging a vCard record (2.1, 3.0 or 4.0): one component, its properties."""

from __future__ import annotations

from pimsync.merge.components import Version, merge_component
from pimsync.merge.entries import CRLF, Unreadable
from pimsync.merge.properties import Context
from pimsync.merge.result import PropertyConflict, Side
from pimsync.model.lines import parse


def _card(text: str) -> Version:
    doc = parse(text)
    cards = [c for c in doc.components if c.name == "VCARD"]
    if len(cards) != 1:
        raise Unreadable(f"{len(cards)} vCards where one was expected")
    return Version(doc, cards[0], True)


def merge_card(
    base_text: str, a_text: str, b_text: str, prefer: Side, *, a_form: bool = False
) -> tuple[str, list[PropertyConflict]]:
    """The merged card's text (CRLF line endings) and the conflicts met. ``a_form``: see
    ``Context.a_form``."""
    base, a, b = _card(base_text), _card(a_text), _card(b_text)
    text, conflicts = merge_component(base, a, b, Context(True, prefer, "VCARD", a_form))
    return text + CRLF, conflicts
