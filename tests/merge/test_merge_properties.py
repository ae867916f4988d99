"""Hypothesis: properties of the merge over generated events and cards with random edits
on each side."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pimsync.merge import merge
from pimsync.merge.result import Side
from pimsync.model.record import Record
from tests.merge.generators import card_focus, cards, edited_card, edited_event, event_focus, events
from tests.merge.helpers import checked, view_lines

Triple = tuple[Record, Record, Record]
#: MERGE_EXAMPLES=5000 for a longer hunt.
EXAMPLES = int(os.environ.get("MERGE_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def triples(draw: st.DrawFn) -> Triple:
    """A base and two independently edited versions of it (an event or a card), each
    side maybe rewritten as a server would (same hash, other text)."""
    styles = draw(st.lists(st.booleans(), min_size=2, max_size=2))
    if draw(st.booleans()):
        event, focus = draw(events()), draw(event_focus())
        x, y = draw(edited_event(event, focus)), draw(edited_event(event, focus))
        return event.render(), x.render(styles[0]), y.render(styles[1])
    card, focus = draw(cards()), draw(card_focus())
    x, y = draw(edited_card(card, focus)), draw(edited_card(card, focus))
    return card.render(), x.render(styles[0]), y.render(styles[1])


sides = st.sampled_from(["a", "b"])


def _name(line: str) -> str:
    """A canonical line's property (with group), or a sub-component's name."""
    if line.startswith("BEGIN:"):
        return line.split("\n", 1)[0][6:]
    cut = min((i for i in (line.find(";"), line.find(":")) if i >= 0), default=len(line))
    return line[:cut]


def _by_property(lines: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """Canonical lines by property (sorted, repeats kept)."""
    out: dict[str, list[str]] = {}
    for line in lines or ():
        out.setdefault(_name(line), []).append(line)
    return {name: tuple(group) for name, group in out.items()}


@SETTINGS
@given(triples())
def test_taking_the_only_change(triple: Triple) -> None:
    base, x, y = triple
    assert checked(merge(base, x, base), x).hash == x.hash
    assert checked(merge(base, base, y), y).hash == y.hash


@SETTINGS
@given(triples(), sides)
def test_changes_made_on_one_side_only_are_kept(triple: Triple, prefer: Side) -> None:
    base, x, y = triple
    merged = checked(merge(base, x, y, prefer), x)
    vb, vx, vy, vm = view_lines(base), view_lines(x), view_lines(y), view_lines(merged)
    for label in vb.keys() | vx.keys() | vy.keys():
        cb, cx, cy, cm = (v.get(label) for v in (vb, vx, vy, vm))
        if cx != cb and cy == cb:
            assert cm == cx, label
        elif cy != cb and cx == cb:
            assert cm == cy, label
        elif cx is not None and cy is not None:
            pb, px, py, pm = (_by_property(c) for c in (cb, cx, cy, cm))
            for name in (px.keys() | py.keys() | pb.keys()) - {"SEQUENCE"}:
                gb, gx, gy, gm = (p.get(name) for p in (pb, px, py, pm))
                if gx != gb and gy == gb:
                    assert gm == gx, (label, name)
                elif gy != gb and gx == gb:
                    assert gm == gy, (label, name)


@SETTINGS
@given(triples(), sides)
def test_conflicts_only_where_both_sides_changed(triple: Triple, prefer: Side) -> None:
    base, x, y = triple
    result = merge(base, x, y, prefer)
    checked(result, x)
    vb, vx, vy = view_lines(base), view_lines(x), view_lines(y)
    for conflict in result.conflicts:
        cb, cx, cy = (v.get(conflict.component) for v in (vb, vx, vy))
        if conflict.name == "*":
            assert cb is not None and (cx is None) != (cy is None)
            assert (cx or cy) != cb
            continue
        pb, px, py = (_by_property(c) for c in (cb, cx, cy))
        related = [n for n in px.keys() | py.keys() | pb.keys() if n.endswith(conflict.name)]
        assert any(px.get(n) != pb.get(n) and py.get(n) != pb.get(n) for n in related), conflict


@SETTINGS
@given(triples())
def test_symmetry(triple: Triple) -> None:
    base, x, y = triple
    one = merge(base, x, y, prefer="a")
    other = merge(base, y, x, prefer="b")
    assert checked(one, x).hash == checked(other, y).hash
    assert {(c.component, c.name, c.base, c.a, c.b) for c in one.conflicts} == {
        (c.component, c.name, c.base, c.b, c.a) for c in other.conflicts
    }


@SETTINGS
@given(triples(), sides)
def test_idempotence(triple: Triple, prefer: Side) -> None:
    """Merging again what was merged changes nothing (a sync that crashed after the
    merge and runs again)."""
    base, x, y = triple
    merged = checked(merge(base, x, y, prefer), x)
    assert checked(merge(base, merged, y), x).hash == merged.hash
    assert checked(merge(base, x, merged, prefer="b"), x).hash == merged.hash
