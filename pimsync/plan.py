"""The planner: a pure function from (side a, side b, state) to a list of actions.

No file, socket or database is touched here: every decision is a unit test, and
``--dry-run`` is "plan, print, stop". The decision table is in docs/sync-algorithm.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pimsync.model.record import Record
from pimsync.plan_types import Entry, Item, Known, Pending, Side, other

ConflictPolicy = Literal["merge", "a wins", "b wins", "newest", "keep both"]
CONFLICT_POLICIES: tuple[str, ...] = ("merge", "a wins", "b wins", "newest", "keep both")


@dataclass(frozen=True, slots=True)
class SideView:
    """One side of a collection as the planner sees it.

    ``items`` maps ident to what the side holds now. ``skip`` holds idents that could not be
    read on this side (malformed, duplicated): nothing is done to them on either side.
    ``uncertain`` is set when something unreadable could not be tied to an ident: then no
    deletion is propagated from this side.
    """

    items: Mapping[str, Item]
    skip: frozenset[str] = frozenset()
    uncertain: bool = False
    read_only: bool = False


#: Deletions on one side never stopped by a fractional ``max_delete``: "more than a few"
MASS_DELETE_FLOOR = 5


@dataclass(frozen=True, slots=True)
class Options:
    conflict: ConflictPolicy = "merge"
    force_delete: bool = False
    #: what settles a true conflict inside a merge, or a conflict with no base
    fallback: ConflictPolicy = "newest"
    #: the mass-deletion guard: a run that would delete more than this of a side's records
    #: (a fraction of them, or a count when an int) stops the collection; 1.0 turns it off
    max_delete: float | int = 0.5


# actions -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Copy:
    """Write ``source`` (held by the other side) to side ``to``: create when ``target`` is
    None, else replace ``target``. ``again``: the side did not keep what an earlier run
    wrote to it (it never listed it): written again, and reported."""

    ident: str
    to: Side
    source: Item
    target: Item | None
    reason: str = ""
    details: tuple[str, ...] = ()  # for a conflict: what differed
    again: bool = False
    #: what the source side holds, where the record written differs from it (a server's
    #: change applied to the local version: see ``pimsync.server_forms``)
    source_form: bytes | None = None

    def __str__(self) -> str:
        verb = "create" if self.target is None else "update"
        why = f" ({self.reason})" if self.reason else ""
        return f"{verb} {self.ident} on {self.to}, from {other(self.to)}{why}"


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``target`` from side ``on`` (the other side deleted it)."""

    ident: str
    on: Side
    target: Item
    reason: str = ""

    def __str__(self) -> str:
        return f"delete {self.ident} on {self.on}"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Create ``record`` (a renamed copy of a conflicting version) on every writable side."""

    ident: str
    record: Record
    sides: tuple[Side, ...]
    reason: str = ""
    origin: str = ""  # the ident whose conflicting version this keeps

    def __str__(self) -> str:
        return f"create {self.ident} on {' and '.join(self.sides)} ({self.reason})"


@dataclass(frozen=True, slots=True)
class SaveState:
    """Record what both sides hold without writing anything."""

    ident: str
    a: Known | None
    b: Known | None
    reason: str = ""
    # the record content when at hand (the new base if both sides now agree)
    record: Record | None = None
    #: the new base as bytes, when it is known without a record at hand (a write of a
    #: crashed run that proves to have landed)
    base: bytes | None = None
    #: recorded before any write of the batch (what a crashed run's write changed, when
    #: a new write of the same record follows: its note replaces the old one)
    first: bool = False

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"record state of {self.ident}{why}"


@dataclass(frozen=True, slots=True)
class Rebase:
    """A merged record that a crashed run wrote to one side only: ``merged`` is what it
    wrote; ``prior_a`` / ``prior_b`` what each side held before (None: that side held the
    merged record already). Each side's edits since are replayed onto ``merged``."""

    merged: bytes
    prior_a: bytes | None
    prior_b: bytes | None


@dataclass(frozen=True, slots=True)
class Merge:
    """Changed on both sides: to be merged against the base (see :func:`settle`).
    ``base``: the base when a landed write of a crashed run brought it (else the state's);
    ``rebase``: set for a merge a crashed run wrote to one side only."""

    ident: str
    a: Item
    b: Item
    entry: Entry
    base: bytes | None = None
    rebase: Rebase | None = None
    #: the content a crashed run was copying to a side (``alt_side``) that was edited
    #: since: the base instead of the state's if that side's version holds the copy's
    #: changes (the copy landed, then the side was edited), see :func:`settle`
    alt_base: bytes | None = None
    alt_side: Side = "b"

    def __str__(self) -> str:
        return f"merge {self.ident} (changed on both sides)"


@dataclass(frozen=True, slots=True)
class MergeWrite:
    """Write the merged record to every side that does not hold it yet."""

    ident: str
    record: Record
    a: Item
    b: Item
    reason: str = "merged"
    details: tuple[str, ...] = ()  # properties that conflicted (settled by the fallback)
    lost: Record | None = None  # the version that lost those conflicts, to keep
    lost_side: Side = "b"

    def __str__(self) -> str:
        sides = [s for s, item in (("a", self.a), ("b", self.b)) if item.hash != self.record.hash]
        why = f" ({self.reason})" if self.reason != "merged" else ""
        return f"merge {self.ident}: update {' and '.join(sides)}{why}"


@dataclass(frozen=True, slots=True)
class Skip:
    """A write that a read-only side would need. Nothing is done and nothing is noted in
    the state, so the difference is seen, and reported, on every run until it is gone."""

    ident: str
    on: Side
    what: str  # create, update or delete
    reason: str = ""

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"not written: {self.what} {self.ident} on {self.on}, which is read-only{why}"


@dataclass(frozen=True, slots=True)
class Forget:
    """Both sides have deleted the record: drop it from the state."""

    ident: str

    def __str__(self) -> str:
        return f"forget {self.ident} (deleted on both sides)"


Action = Copy | Delete | Duplicate | SaveState | Skip | Forget | Merge | MergeWrite


@dataclass(frozen=True, slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    #: set when the collection must not be synced (the empty-side guard); says why
    stop: str | None = None


# planning ------------------------------------------------------------------------------
def effective_entries(
    state: Mapping[str, Entry], pending: Sequence[Pending], a: SideView, b: SideView
) -> tuple[dict[str, Entry], dict[str, bytes | None]]:
    """Apply pending writes whose outcome is visible: if a side now holds what a crashed
    run was writing there, that write happened and its result is the last synced state.
    Returns the entries to plan with and the idents whose stored entry is stale, each with
    its new base (the content written) where both sides now hold it, else None."""
    views = {"a": a, "b": b}
    landed: dict[str, dict[Side, Pending]] = {}
    edited: dict[str, Pending] = {}  # a create that landed, and was edited since
    for p in pending:
        if p.merged:
            continue  # see _merged_notes
        current = views[p.side].items.get(p.ident)
        if (current is None and p.hash is None) or (current and current.hash == p.hash):
            landed.setdefault(p.ident, {})[p.side] = p
        elif (
            p.action == "create"
            and current is not None
            and (state.get(p.ident) is None or state[p.ident].side(p.side) is None)
            and (source := views[other(p.side)].items.get(p.ident)) is not None
            and source.hash != p.hash
        ):
            # a copy to a side that did not hold the record, which both sides now hold in
            # other versions: edited on both sides since (or made anew on the target side,
            # which nothing can tell apart): a change on both sides, merged against what
            # was being copied, never one side's version taken silently
            edited[p.ident] = p
    if not landed and not edited:
        return dict(state), {}
    entries = dict(state)
    bases: dict[str, bytes | None] = {}
    for ident, p in edited.items():
        if ident in landed:
            continue
        sides_e: dict[Side, Known] = {}
        for side in ("a", "b"):
            current = views[side].items[ident]
            # the hash both sides held after the copy: what differs now is an edit
            sides_e[side] = Known(current.href, "", p.hash)  # type: ignore[arg-type]
        entries[ident] = Entry(ident, sides_e["a"], sides_e["b"])
        bases[ident] = p.base
    for ident, by_side in landed.items():
        old = state.get(ident)
        sides: dict[Side, Known | None] = {}
        for side in ("a", "b"):
            current = views[side].items.get(ident)
            if side in by_side:
                sides[side] = current.known() if current else None
                continue
            p = next(iter(by_side.values()))
            held = p.source_hash
            if held is None:
                sides[side] = None
            elif current is not None and current.hash == held:
                sides[side] = current.known()
            else:
                prior = old.side(side) if old else None
                href = prior.href if prior else (current.href if current else "")
                etag = prior.etag if prior else ""
                sides[side] = Known(href, etag, held)
        entries[ident] = Entry(ident, sides["a"], sides["b"])
        ka, kb = sides["a"], sides["b"]
        written = next((p for p in by_side.values() if p.base is not None), None)
        same = ka is not None and kb is not None and ka.hash == kb.hash
        bases[ident] = written.base if written and same and ka.hash == written.hash else None
    return entries, bases


def _status(known: Known | None, item: Item | None) -> str:
    if known is None:
        return "absent" if item is None else "new"
    if item is None:
        # written by pimsync, never listed since: the side did not keep it (a server that
        # answered 201 and dropped it), which is not a deletion by its user
        return "dropped" if known.unseen else "deleted"
    return "same" if item.hash == known.hash else "changed"


def _guard(view: SideView, side: Side, state: Mapping[str, Entry]) -> str | None:
    if view.items or view.skip or view.uncertain:
        return None
    had = sum(1 for e in state.values() if e.side(side) is not None)
    if had == 0:
        return None
    return (
        f"side {side} lists no records, but {had} were there after the last sync; "
        "nothing was changed. If they were deleted on purpose, run again with "
        "--force-delete to delete them on the other side too"
    )


def _mass_delete(
    actions: Sequence[Action], state: Mapping[str, Entry], options: Options
) -> str | None:
    """The guard against mass deletion: more than ``max_delete`` of a side's records (a
    fraction of them, and more than a few; or a count) would be deleted."""
    limit = options.max_delete
    for side in ("a", "b"):
        n = sum(1 for act in actions if isinstance(act, Delete) and act.on == side)
        if n == 0:
            continue
        had = sum(1 for e in state.values() if e.side(side) is not None)  # type: ignore[arg-type]
        if isinstance(limit, int) and not isinstance(limit, bool):
            too_many, allowed = n > limit, f"max_delete = {limit}"
        else:
            too_many = n > MASS_DELETE_FLOOR and n > limit * had
            allowed = f"more than max_delete = {limit:g} of them"
        if too_many:
            return (
                f"this run would delete {n} of the {had} records on side {side} ({allowed}); "
                "nothing was changed. If they were deleted on the other side on purpose, run "
                "again with --force-delete (or raise the pair's max_delete)"
            )
    return None


def plan(
    a: SideView,
    b: SideView,
    state: Mapping[str, Entry],
    pending: Sequence[Pending] = (),
    options: Options = Options(),
    without_base: Collection[str] = (),
) -> Plan:
    """Decide, for every ident on either side or in the state, what to do.

    ``without_base``: idents whose state row lacks its base; where one side's record is
    at hand and both sides still hold what the state says, it is stored as the base."""
    if not options.force_delete:
        for side, view in (("a", a), ("b", b)):
            reason = _guard(view, side, state)  # type: ignore[arg-type]
            if reason:
                return Plan(stop=reason)
    entries, stale = effective_entries(state, pending, a, b)
    planner = _Planner(a, b, options)
    planner.without_base = without_base
    planner.bases = stale
    planner.alt_bases = {
        p.ident: p
        for p in pending
        if p.action == "update" and p.base is not None and p.ident not in stale
    }
    redundant = _redundant_conflict_copies(pending, a, b)
    losers = _redundant_losers(pending, a, b)
    replays = _merged_notes(pending)
    early: list[Action] = []
    idents = set(a.items) | set(b.items) | set(entries)
    for ident in sorted(idents):
        if ident in a.skip or ident in b.skip:
            continue
        if ident in replays and planner.replay(ident, replays[ident], state.get(ident)):
            continue
        if ident in redundant:
            side = redundant[ident]
            item = (a if side == "a" else b).items[ident]
            planner.actions.append(
                Delete(ident, side, item, "conflict copy of an interrupted run, no longer needed")
            )
            continue
        if ident in losers:
            side, copy = losers[ident]
            item = (a if side == "a" else b).items[ident]
            why = f"its version is kept as {copy}; the other side deleted the record"
            planner.actions.append(Delete(ident, side, item, why))
            continue
        before = len(planner.actions)
        planner.decide(ident, entries.get(ident), state.get(ident), ident in stale,
                       stale.get(ident))  # fmt: skip
        entry = entries.get(ident)
        if (
            ident in stale
            and entry is not None
            and any(not isinstance(act, SaveState) for act in planner.actions[before:])
        ):
            # a write of a crashed run landed and a new write of the record follows: what
            # landed is recorded first, so that a crash now does not forget it
            early.append(
                SaveState(ident, entry.a, entry.b, "a write of a crashed run landed",
                          base=stale[ident], first=True)
            )  # fmt: skip
    if not options.force_delete:
        reason = _mass_delete(planner.actions, state, options)
        if reason:
            return Plan(stop=reason)
    return Plan(actions=early + planner.actions)


def _merged_notes(pending: Sequence[Pending]) -> dict[str, dict[Side, Pending]]:
    """The pending notes of merged records' writes, per ident and side."""
    out: dict[str, dict[Side, Pending]] = {}
    for p in pending:
        if p.merged:
            out.setdefault(p.ident, {})[p.side] = p
    return out


def _redundant_losers(
    pending: Sequence[Pending], a: SideView, b: SideView
) -> dict[str, tuple[Side, str]]:
    """A "keep both" that a crashed run left half-done the other way round: the copy of
    the losing version reached both sides, the winner did not replace the loser, and the
    user then deleted the winner. The loser's version is there twice (under its UID and as
    the copy): the one under its UID is removed. Returns ident -> (side, the copy's UID)."""
    from pimsync.model import with_uid

    views: dict[Side, SideView] = {"a": a, "b": b}
    out: dict[str, tuple[Side, str]] = {}
    for p in pending:
        if p.action != "duplicate" or p.hash is None:
            continue
        origin, mark, _ = p.ident.rpartition("-conflict-")
        if not mark or not origin or origin in out:
            continue
        if not all(
            (c := views[s].items.get(p.ident)) is not None and c.hash == p.hash for s in ("a", "b")
        ):
            continue  # not on both sides: see _redundant_conflict_copies
        holders = [s for s in ("a", "b") if origin in views[s].items]
        if len(holders) != 1 or views[holders[0]].read_only:
            continue
        side = holders[0]
        loser = views[side].items[origin]
        if loser.record is None or with_uid(loser.record, p.ident).hash != p.hash:
            continue  # it holds another version: not a copy of the kept one
        out[origin] = (side, p.ident)
    return out


def _redundant_conflict_copies(
    pending: Sequence[Pending], a: SideView, b: SideView
) -> dict[str, Side]:
    """ "Keep both" copies that a crashed run wrote to one side only, and that are no
    longer needed: the side holding the copy no longer holds its own version of the
    record, and the other side still holds the kept version itself. Completing such a
    copy would leave that version twice, under two UIDs; removing it loses nothing (the
    version stays under its UID, and syncs to the first side as any new record).
    Returns ident -> the side to remove the copy from."""
    from pimsync.model import with_uid

    views: dict[Side, SideView] = {"a": a, "b": b}
    noted: dict[str, set[Side]] = {}
    for p in pending:
        if p.action == "duplicate" or (p.action is None and p.hash is not None and p.other is None):
            # a record new on both sides: a "keep both" copy
            noted.setdefault(p.ident, set()).add(p.side)
    for p in pending:  # a later run that was completing such a copy on the other side
        if p.action == "create" and p.ident in noted:
            noted[p.ident].add(p.side)
    out: dict[str, Side] = {}
    for ident, sides in noted.items():
        origin, mark, _ = ident.rpartition("-conflict-")
        if not mark or not origin or sides != {"a", "b"}:
            continue
        holders = [s for s in ("a", "b") if ident in views[s].items]
        if len(holders) != 1:
            continue
        side = holders[0]
        kept_from = views[other(side)].items.get(origin)
        if (
            views[side].read_only
            or origin in views[side].items
            or kept_from is None
            or kept_from.record is None
            or with_uid(kept_from.record, ident).hash != views[side].items[ident].hash
        ):
            continue
        out[ident] = side
    return out


class _Planner:
    def __init__(self, a: SideView, b: SideView, options: Options) -> None:
        self.views: dict[Side, SideView] = {"a": a, "b": b}
        self.options = options
        self.actions: list[Action] = []
        self.without_base: Collection[str] = ()
        #: bases brought by the landed writes of a crashed run
        self.bases: Mapping[str, bytes | None] = {}
        #: what a crashed run was copying, where it cannot be told whether it landed
        self.alt_bases: Mapping[str, Pending] = {}

    def _alt_base(self, ident: str, A: Item, B: Item) -> tuple[bytes | None, Side]:
        """What a crashed run was copying to a side that now holds neither it nor what it
        held before: edited since, after the copy landed or instead of it."""
        p = self.alt_bases.get(ident)
        if p is None:
            return None, "b"
        target = A if p.side == "a" else B
        return (p.base if target.hash not in (p.hash, p.other) else None), p.side

    def replay(self, ident: str, notes: Mapping[Side, Pending], stored: Entry | None) -> bool:
        """A merged record a crashed run was writing. Landed on every side it was written
        to, and nothing edited since: it is the synced state. Otherwise the merge is
        replayed (see :class:`Rebase`). False: decide as usual (a side lacks the record)."""
        A = self.views["a"].items.get(ident)
        B = self.views["b"].items.get(ident)
        if A is None or B is None or stored is None:
            return False
        note = next(iter(notes.values()))
        assert note.hash is not None and note.base is not None
        if A.hash == B.hash == note.hash:
            self.save(ident, A, B, "a merge of a crashed run landed", base=note.base)
            return True
        if any(v.read_only for v in self.views.values()):
            return False
        prior = {s: notes[s].prior if s in notes else None for s in ("a", "b")}
        if any(s in notes and prior[s] is None for s in ("a", "b")):
            return False
        rebase = Rebase(note.base, prior["a"], prior["b"])
        self.actions.append(Merge(ident, A, B, stored, None, rebase))
        return True

    def save(
        self,
        ident: str,
        a: Item | Known | None,
        b: Item | Known | None,
        reason: str = "",
        record: Record | None = None,
        base: bytes | None = None,
    ) -> None:
        ka = a.known() if isinstance(a, Item) else a
        kb = b.known() if isinstance(b, Item) else b
        self.actions.append(SaveState(ident, ka, kb, reason, record, base))

    def copy(
        self,
        ident: str,
        to: Side,
        source: Item,
        target: Item | None,
        known_to: Known | None,
        reason: str = "",
        details: tuple[str, ...] = (),
        again: bool = False,
    ) -> None:
        if self.views[to].read_only:
            what = "create" if target is None else "update"
            self.actions.append(Skip(ident, to, what, reason))
            return
        self.actions.append(Copy(ident, to, source, target, reason, details, again))

    def decide(
        self,
        ident: str,
        entry: Entry | None,
        stored: Entry | None,
        stale: bool,
        landed_base: bytes | None = None,
    ) -> None:
        A = self.views["a"].items.get(ident)
        B = self.views["b"].items.get(ident)
        if entry is None:
            if A is not None and B is not None:
                if A.hash == B.hash:
                    self.save(ident, A, B, "same on both sides", A.record or B.record)
                else:
                    self.conflict(ident, A, B, None, "differs on both sides, never synced")
            elif A is not None:
                self.copy(ident, "b", A, None, None)
            elif B is not None:
                self.copy(ident, "a", B, None, None)
            return

        sa, sb = _status(entry.a, A), _status(entry.b, B)
        if "dropped" in (sa, sb):
            self.dropped(ident, A, B, sa, sb)
            return
        changed_a, changed_b = sa in ("new", "changed"), sb in ("new", "changed")
        if changed_a and changed_b:
            assert A is not None and B is not None
            if A.hash == B.hash:
                self.save(ident, A, B, "same change on both sides", A.record or B.record)
            else:
                self.conflict(ident, A, B, entry, "changed on both sides")
        elif changed_a:
            assert A is not None
            self.copy(ident, "b", A, B, entry.b, "edit wins over delete" if sb == "deleted" else "")
        elif changed_b:
            assert B is not None
            self.copy(ident, "a", B, A, entry.a, "edit wins over delete" if sa == "deleted" else "")
        elif sa == "deleted" or sb == "deleted":
            gone: Side = "a" if sa == "deleted" else "b"
            keep = B if gone == "a" else A
            if keep is None:
                self.actions.append(Forget(ident))
            elif self.views[gone].uncertain:
                return  # something unreadable on that side may be this record: wait
            elif self.views[other(gone)].read_only:
                self.actions.append(Skip(ident, other(gone), "delete"))
            else:
                self.actions.append(Delete(ident, other(gone), keep))
        elif sa == "same" and sb == "absent":
            assert A is not None
            self.copy(ident, "b", A, None, None)
        elif sb == "same" and sa == "absent":
            assert B is not None
            self.copy(ident, "a", B, None, None)
        elif sa == "absent" and sb == "absent":
            self.actions.append(Forget(ident))
        else:  # both the same: note moved etags or hrefs so that the next run is stat-only
            ka = A.known() if A else None
            kb = B.known() if B else None
            record = (A.record if A else None) or (B.record if B else None)
            heal = ident in self.without_base and record is not None
            if stale or stored is None or ka != stored.a or kb != stored.b or heal:
                # the record, if read, is the base (stored when both sides hold it)
                self.save(ident, ka, kb, record=record, base=landed_base)

    def dropped(self, ident: str, A: Item | None, B: Item | None, sa: str, sb: str) -> None:
        """A side does not list what pimsync wrote to it (and never listed it since): it did
        not keep it. Not a deletion: written again from the other side, and reported."""
        gone: Side = "a" if sa == "dropped" else "b"
        keep = B if gone == "a" else A
        if keep is None:  # the other side has deleted it meanwhile (or dropped it too)
            self.actions.append(Forget(ident))
            return
        reason = "the side never listed what an earlier run wrote to it; written again"
        self.copy(ident, gone, keep, None, None, reason, again=True)

    def conflict(
        self,
        ident: str,
        A: Item,
        B: Item,
        entry: Entry | None,
        why: str,
        policy: ConflictPolicy | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        policy = policy or self.options.conflict
        if policy == "merge":
            readable = A.record is not None and B.record is not None
            if entry is not None and readable and not any(v.read_only for v in self.views.values()):
                base = self.bases.get(ident)
                alt, alt_side = self._alt_base(ident, A, B)
                self.actions.append(Merge(ident, A, B, entry, base, None, alt, alt_side))
                return
            policy = self.options.fallback  # no base (never synced), or a read-only side
            why += "; no base to merge against" if entry is None else ""
        winner: Side
        if policy == "a wins":
            winner = "a"
        elif policy == "b wins":
            winner = "b"
        elif policy == "newest":
            winner = "b" if _newer(B.record, A.record) else "a"
        else:  # keep both: a's version stays under this ident, b's becomes a new record
            winner = "a"
        loser = other(winner)
        items = {"a": A, "b": B}
        known = {"a": entry.a if entry else None, "b": entry.b if entry else None}
        reason = f"conflict: {why}; {policy}" + (f" ({winner})" if policy == "newest" else "")
        if policy == "keep both" and not self.keep_both(ident, B, reason):
            return
        self.copy(ident, loser, items[winner], items[loser], known[loser], reason, details)

    def keep_both(self, ident: str, loser: Item, reason: str) -> bool:
        """Keep the losing version as a new record before the winner replaces it. The copy
        is planned first, and the executor replaces nothing whose copy failed. Returns
        False when the version cannot be kept (then nothing is overwritten)."""
        from pimsync.model import with_uid

        if loser.record is None:  # cannot happen: a conflicting version is always read
            return False
        for length in (8, 16, 64):
            new_uid = f"{ident}-conflict-{loser.hash[:length]}"
            copy = with_uid(loser.record, new_uid)
            there = [v.items[new_uid] for v in self.views.values() if new_uid in v.items]
            if not there:
                break
            if any(item.hash == copy.hash for item in there):
                # kept by an earlier (interrupted) run, on one side at least (edited on the
                # other since, maybe): it syncs by itself; a second copy would keep it twice
                return True
        else:
            return False
        sides = tuple(s for s in ("a", "b") if not self.views[s].read_only)
        if not sides:
            return False
        self.actions.append(Duplicate(new_uid, copy, sides, reason, origin=ident))
        return True


def settle(
    the_plan: Plan,
    bases: Mapping[str, Record | None],
    a: SideView,
    b: SideView,
    options: Options = Options(),
) -> Plan:
    """Turn the plan's Merge actions into writes: merge each record against its base (the
    content both sides held after the last sync). A true conflict inside the merge (one
    property changed differently on both sides) is settled by ``options.fallback`` and the
    losing version is kept; no base, or nothing mergeable: the fallback policy as a whole."""
    from pimsync.merge import merge

    merges = [act for act in the_plan.actions if isinstance(act, Merge)]
    if not merges:
        return the_plan
    planner = _Planner(a, b, options)
    for act in merges:
        A, B = act.a, act.b
        fallback = options.fallback
        prefer: Side = "b" if fallback == "b wins" or (
            fallback == "newest" and _newer(B.record, A.record)
        ) else "a"  # fmt: skip
        if act.rebase is not None:
            replayed = _replay(act, act.rebase)
            if replayed is None:
                why = "a merge of a crashed run cannot be replayed"
                planner.conflict(act.ident, A, B, act.entry, why, fallback)
                continue
            base, ra, rb = replayed
        else:
            base = bases.get(act.ident)
            assert A.record is not None and B.record is not None
            ra, rb = A.record, B.record
        if base is None:
            planner.conflict(act.ident, A, B, act.entry, "changed on both sides; no base kept",
                             options.fallback)  # fmt: skip
            continue
        if act.alt_base is not None:
            base = _landed_copy(base, act.alt_base, rb if act.alt_side == "b" else ra)
        result = merge(base, ra, rb, prefer)
        if result.record is None:
            planner.conflict(act.ident, A, B, act.entry, "changed on both sides; cannot merge",
                             fallback)  # fmt: skip
            continue
        merged = result.record
        details = tuple(
            f"{c.component} {c.name}" if c.name != "*" else f"{c.component} (deleted on one side)"
            for c in result.conflicts
        )
        lost_side: Side = "b" if prefer == "a" else "a"
        lost = (B if prefer == "a" else A).record if result.conflicts else None
        why = f"conflict in {', '.join(details)}; {fallback}" if details else "merged"
        if details and fallback == "keep both":
            assert lost is not None
            planner.keep_both(act.ident, B if prefer == "a" else A, why)
            lost = None
        if merged.hash == A.hash:
            planner.copy(act.ident, "b", A, B, act.entry.b, why, details)
        elif merged.hash == B.hash:
            planner.copy(act.ident, "a", B, A, act.entry.a, why, details)
        else:
            planner.actions.append(
                MergeWrite(act.ident, merged, A, B, why, details, lost, lost_side)
            )
    kept = [act for act in the_plan.actions if not isinstance(act, Merge)]
    return Plan(actions=kept + planner.actions, stop=the_plan.stop)


def _landed_copy(base: Record, copied: bytes, target: Record) -> Record:
    """The base for a record a crashed run was copying to a side that was edited since:
    the copied content if that side's version holds the copy's changes (the copy landed,
    then the side was edited: merging the copy into it changes nothing), else the state's
    base (the copy did not land)."""
    from pimsync.errors import MalformedRecord
    from pimsync.merge import merge
    from pimsync.model import parse_record

    try:
        copy = parse_record(copied, base.kind, "copy")
    except MalformedRecord:
        return base
    check = merge(base, copy, target, "b")
    return (
        copy
        if check.clean and check.record is not None and check.record.hash == target.hash
        else base
    )


def _replay(act: Merge, rebase: Rebase) -> tuple[Record, Record, Record] | None:
    """A merge a crashed run wrote to one side only, with edits made since: each side's
    edits (against what it held, the merged record if the write landed there, else its
    version before) are replayed onto the merged record. Returns (merged, a's version,
    b's version) to merge against the merged record, or None when a side's edits do not
    replay cleanly (a true conflict: the fallback settles it)."""
    from pimsync.errors import MalformedRecord
    from pimsync.merge import merge
    from pimsync.model import parse_record

    kind = (act.a.record or act.b.record).kind if (act.a.record or act.b.record) else "ics"
    try:
        merged = parse_record(rebase.merged, kind, "merged")
        out: list[Record] = []
        for item, prior_bytes in ((act.a, rebase.prior_a), (act.b, rebase.prior_b)):
            if item.hash == merged.hash:
                out.append(merged)
                continue
            prior = parse_record(prior_bytes, kind, "prior") if prior_bytes is not None else None
            if prior is not None and item.hash == prior.hash:
                out.append(merged)  # not written there, not edited: it gets the merge
                continue
            if item.record is None:
                return None
            if prior is None:  # it held the merged record: its edits are against that
                out.append(item.record)
                continue
            # edited since: against its version before if the write did not land, against
            # the merged record if it did (then the merge's own changes are on both sides)
            result = merge(prior, merged, item.record, "b")
            if result.record is None or result.conflicts:
                return None
            out.append(result.record)
    except MalformedRecord:
        return None
    return merged, out[0], out[1]


def _newer(x: Record | None, y: Record | None) -> bool:
    """Is x newer than y (LAST-MODIFIED / REV, then DTSTAMP, then SEQUENCE)? Ties: no."""
    if x is None or y is None:
        return False
    from pimsync.model import newest_key

    return newest_key(x) > newest_key(y)


# collection metadata -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetaPlan:
    """What to write of a collection's metadata (displayname, color) on each side, and the
    values to remember as the base for next time."""

    set_a: dict[str, str | None]
    set_b: dict[str, str | None]
    base: dict[str, str | None]


def plan_meta(
    a: Mapping[str, str | None],
    b: Mapping[str, str | None],
    base: Mapping[str, str | None] | None,
    keys: Sequence[str],
    policy: ConflictPolicy = "newest",
    read_only: tuple[bool, bool] = (False, False),
) -> MetaPlan:
    """The three-way rule of records, per metadata key: changed on one side only → copied
    to the other; changed on both (or never synced and different) → b's value if the policy
    is "b wins", else a's; never synced and one side has none → the value. A read-only side
    is never written and keeps its base."""
    set_a: dict[str, str | None] = {}
    set_b: dict[str, str | None] = {}
    new_base: dict[str, str | None] = {}
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if va == vb:
            new_base[key] = va
            continue
        known = base is not None and key in base
        old = base.get(key) if base is not None else None
        if known and va == old:
            winner = "b"
        elif known and vb == old:
            winner = "a"
        elif not known and (va is None or vb is None):
            winner = "a" if vb is None else "b"  # never synced: a value beats none
        else:
            winner = "b" if policy == "b wins" else "a"
        value = vb if winner == "b" else va
        target_ro = read_only[0] if winner == "b" else read_only[1]
        if target_ro:
            if known:
                new_base[key] = old
            continue
        (set_a if winner == "b" else set_b)[key] = value
        new_base[key] = value
    return MetaPlan(set_a, set_b, new_base)
