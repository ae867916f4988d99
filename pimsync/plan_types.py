"""Plain data shared by the planner, the state database and the executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pimsync.model.record import Record

Side = Literal["a", "b"]


def other(side: Side) -> Side:
    return "b" if side == "a" else "a"


@dataclass(frozen=True, slots=True)
class Known:
    """What the state remembers of a record on one side after the last sync."""

    href: str
    etag: str
    hash: str
    #: pimsync wrote this record to a side that has not listed it since (a server's 201
    #: is no proof that it kept it): its absence there is not a deletion
    unseen: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """The state of one ident: what each side held after the last sync (None: nothing)."""

    ident: str
    a: Known | None
    b: Known | None

    def side(self, side: Side) -> Known | None:
        return self.a if side == "a" else self.b


@dataclass(frozen=True, slots=True)
class Pending:
    """A write that was started but whose outcome never reached the state (a crash).

    ``hash`` is what was written to ``side`` (None: a delete); ``other`` is, for a copy
    (``action`` "create" or "update"), the hash ``side`` held before (None: nothing), and
    otherwise the hash the other side held when the write was planned. If ``side`` now
    holds ``hash``, the write happened, and both are taken as the last synced state.
    """

    ident: str
    side: Side
    hash: str | None
    other: str | None
    #: the content written (for a write that proves to have landed: the new base)
    base: bytes | None = None
    #: for a merged record: what ``side`` held before (the merge is replayed from it when
    #: a side was edited before the next run, see ``plan.Merge.rebase``)
    prior: bytes | None = None
    #: the write: "create" or "update" (a copy), "merge", "delete", "duplicate"; None in
    #: notes of versions before this field
    action: str | None = None

    @property
    def source_hash(self) -> str | None:
        """The hash the side not written held when the write was planned."""
        return self.hash if self.action in ("create", "update") else self.other

    @property
    def merged(self) -> bool:
        """Is this the note of a merged record's write (not a copy, delete or duplicate)?"""
        return self.action == "merge"


@dataclass(frozen=True, slots=True)
class Item:
    """A record as currently listed on one side; ``record`` is its content when it was read."""

    href: str
    etag: str
    hash: str
    record: Record | None = None

    def known(self) -> Known:
        return Known(self.href, self.etag, self.hash)
