"""The three-way rule itself, on comparable versions of one thing (None: absent)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Literal, TypeVar

Pick = Literal["a", "b", "conflict"]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def pick(base: V | None, a: V | None, b: V | None) -> Pick:
    """Which side's version to take: the side that changed it (against ``base``); "a"
    when both sides agree; "conflict" when both changed it differently (an edit against
    a removal included)."""
    if a == b:
        return "a"
    if a == base:
        return "b"
    if b == base:
        return "a"
    return "conflict"


def union_keys(*orders: Iterable[K]) -> list[K]:
    """Every key, in order of first appearance (a's order first, then b's, then base's)."""
    seen: dict[K, None] = {}
    for order in orders:
        for key in order:
            seen.setdefault(key, None)
    return list(seen)


def numbered(keys: Iterable[K]) -> list[tuple[K, int]]:
    """Keys made unique by their occurrence: ``x, y, x`` gives ``(x,0), (y,0), (x,1)``."""
    counts: dict[K, int] = {}
    out: list[tuple[K, int]] = []
    for key in keys:
        count = counts.get(key, 0)
        counts[key] = count + 1
        out.append((key, count))
    return out
