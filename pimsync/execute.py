"""The executor: runs a plan's actions against two collections and commits state after
each write succeeded.

Order for every batch of actions: note the intended writes as *pending* in the state
database; write; flush the collections that buffer writes; then, in one transaction, store
the new state of every action that succeeded and drop its pending note. A crash anywhere
leaves either the old state (the write is seen as a change next run), or a pending note
that the next run recognises (see ``plan.effective_entries``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pimsync import interrupt
from pimsync.errors import PimsyncError, PreconditionFailed, StorageError
from pimsync.interrupt import NotStarted
from pimsync.model.record import Record
from pimsync.plan import Action, Copy, Delete, Duplicate, Forget, MergeWrite, SaveState, Skip
from pimsync.plan_types import Entry, Item, Known, Pending, Side, other
from pimsync.state import SavedConflict, StateDB
from pimsync.storage.base import Collection, checks_values

BATCH = 200


@dataclass
class Stats:
    """What a collection's sync did, for the summary line."""

    created: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    deleted: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    conflicts: int = 0
    merged: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    retry: set[str] = field(default_factory=set)  # idents whose write met a precondition

    def add(self, other_stats: Stats) -> None:
        for key in ("created", "updated", "deleted"):
            mine, theirs = getattr(self, key), getattr(other_stats, key)
            for side in ("a", "b"):
                mine[side] += theirs[side]
        self.conflicts += other_stats.conflicts
        self.merged += other_stats.merged
        self.skipped += other_stats.skipped
        self.errors.extend(other_stats.errors)

    @property
    def writes(self) -> int:
        return sum(sum(d.values()) for d in (self.created, self.updated, self.deleted))


@dataclass
class _Outcome:
    action: Action
    entry: Entry | None = None  # None: forget the ident
    base: bytes | None = None  # new base content (None: keep)
    sides: tuple[Side, ...] = ()  # sides written
    error: PimsyncError | None = None
    #: what a side stored, where it differs from the base (read back from a server)
    stored: dict[Side, bytes] = field(default_factory=dict)


class Executor:
    def __init__(
        self,
        cols: dict[Side, Collection],
        db: StateDB | None,
        pair: str,
        collection: str,
        log: Callable[[str], None] = lambda line: None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.cols = cols
        self.db = db
        self.pair = pair
        self.collection = collection
        self.log = log
        self.progress = progress
        self.stats = Stats()
        #: idents whose "keep both" copy failed: their winner must not replace anything
        self._blocked: set[str] = set()
        #: tokens returned by flushes: what a side's token is after our own writes
        self.tokens: dict[Side, str] = {}
        #: writes that landed on a side that has yet to list them: href -> (ident, etag)
        self.unconfirmed: dict[Side, dict[str, tuple[str, str]]] = {"a": {}, "b": {}}
        #: the sides (unconfirmed ones) where records were created, not only updated
        self.created: set[Side] = set()

    def run(self, actions: Sequence[Action]) -> Stats:
        """Run the actions in batches. A signal to stop (see ``interrupt``) lets the batch
        in progress finish its writes in flight and commit what landed, then raises
        :class:`~pimsync.interrupt.Interrupted`."""
        for start in range(0, len(actions), BATCH):
            interrupt.check()
            with interrupt.finishing():
                self._batch(actions[start : start + BATCH])
            interrupt.check()
            if self.progress is not None:
                self.progress("writing", min(start + BATCH, len(actions)), len(actions))
        return self.stats

    # --------------------------------------------------------------------------------
    def _load_sources(self, actions: Sequence[Action]) -> dict[str, Item]:
        """Read the content of copy sources that the planner did not have at hand."""
        wanted: dict[Side, list[str]] = {"a": [], "b": []}
        for action in actions:
            if isinstance(action, Copy) and action.source.record is None:
                wanted[other(action.to)].append(action.source.href)
        loaded: dict[str, Item] = {}
        for side, hrefs in wanted.items():
            if not hrefs:
                continue
            col = self.cols[side]
            for fetched in col.get(hrefs, values=checks_values(col)):
                if fetched.record is not None:
                    loaded[f"{side}:{fetched.href}"] = Item(
                        fetched.href, fetched.etag, fetched.record.hash, fetched.record
                    )
        return loaded

    def _batch(self, actions: Sequence[Action]) -> None:
        loaded = self._load_sources(actions)
        prepared: list[Action] = []
        for action in actions:
            if isinstance(action, Copy) and action.source.record is None:
                item = loaded.get(f"{other(action.to)}:{action.source.href}")
                if item is None or item.hash != action.source.hash:
                    self.stats.retry.add(action.ident)  # it changed since it was listed
                    continue
                action = replace(action, source=item)
            prepared.append(action)
        prepared = self._give_uids(prepared)

        kept: dict[str, int] = {}  # ident -> id of the losing version kept for it
        if self.db is not None:
            notes = [note for action in prepared for note in _pending(action)]
            losers = [(a.ident, lost) for a in prepared if (lost := _lost_version(a))]
            first = [a for a in prepared if isinstance(a, SaveState) and a.first]
            if notes or losers or first:
                # the losing version of a conflict is kept before the winner replaces it:
                # a run killed after the write still has it (withdrawn if the write fails)
                with self.db.transaction():
                    for action in first:  # what a crashed run's writes changed
                        outcome = self._apply(action)
                        if outcome.entry is None:
                            continue
                        if outcome.base is not None:
                            self.db.put(self.pair, self.collection, outcome.entry, outcome.base)
                        else:
                            self.db.put(self.pair, self.collection, outcome.entry)
                    self.db.add_pending(self.pair, self.collection, notes)
                    for ident, lost in losers:
                        saved = replace(lost, pair=self.pair, collection=self.collection)
                        conflict_id = self.db.add_conflict(saved)
                        if conflict_id is not None:
                            kept[ident] = conflict_id

        outcomes: list[_Outcome] = []
        # "keep both" copies first: the winner replaces nothing whose copy failed
        for outcome in self._apply_all([a for a in prepared if isinstance(a, Duplicate)]):
            if outcome.error is not None:
                self._blocked.add(outcome.action.origin)  # type: ignore[union-attr]
            outcomes.append(outcome)
        rest: list[Action] = []
        for action in prepared:
            if isinstance(action, Skip):
                self.log(str(action))
                self.stats.skipped += 1
                self.stats.conflicts += action.reason.startswith("conflict")
            elif isinstance(action, Copy) and action.ident in self._blocked:
                self.stats.retry.add(action.ident)
            elif not isinstance(action, Duplicate):
                rest.append(action)
        outcomes.extend(self._apply_all(rest))

        for side, col in self.cols.items():
            if not any(side in o.sides for o in outcomes if o.error is None):
                continue
            try:
                token = col.flush()
                if token is not None:
                    self.tokens[side] = token
            except PimsyncError as exc:
                for o in outcomes:
                    if side in o.sides and o.error is None:
                        o.error = exc

        self._read_back(outcomes)
        if self.db is not None:
            with self.db.transaction():
                for o in outcomes:
                    if o.error is not None:
                        if o.action.ident in kept and _replaced_nothing(o):
                            self.db.forget_conflict(kept[o.action.ident])
                        continue
                    ident = o.action.ident
                    for side in o.sides:
                        known = o.entry.side(side) if o.entry is not None else None
                        if known is not None and known.unseen:
                            self.unconfirmed[side][known.href] = (ident, known.etag)
                            if isinstance(o.action, Duplicate) or (
                                isinstance(o.action, Copy) and o.action.target is None
                            ):
                                self.created.add(side)
                    if o.entry is None:
                        self.db.forget(self.pair, self.collection, ident)
                    elif o.base is not None:
                        self.db.put(self.pair, self.collection, o.entry, o.base)
                    else:
                        self.db.put(self.pair, self.collection, o.entry)
                    if o.entry is not None:
                        for side, data in o.stored.items():
                            self.db.set_stored(self.pair, self.collection, ident, side, data)
                    self.db.clear_pending(self.pair, self.collection, ident)
        for o in outcomes:
            self._count(o)

    def _read_back(self, outcomes: list[_Outcome]) -> None:
        """What a server stored of the records just written to it, one multiget per
        side: servers rewrite what they store (Cyrus keeps a vCard 4.0 as 3.0, reorders
        RRULE parts), and a later change there is found against that form, not against
        what pimsync wrote (see ``pimsync.server_forms``). A record read back with
        another etag than the PUT answered was changed since (a phone): not taken.
        Without an etag in the PUT answer, the one read is taken."""
        for side, col in self.cols.items():
            if not _unconfirmed(col):
                continue
            written: dict[str, _Outcome] = {}
            for o in outcomes:
                known = o.entry.side(side) if o.entry is not None else None
                if o.error is None and side in o.sides and known is not None and o.base:
                    written[known.href] = o
            if not written:
                continue
            try:
                fetched = list(col.get(list(written), values=False))
            except PimsyncError:
                continue  # not known now: a later change there is taken as it is
            for f in fetched:
                o = written.get(f.href)
                if o is None or f.record is None or o.entry is None:
                    continue
                known = o.entry.side(side)
                if known is None or (known.etag and f.etag != known.etag):
                    continue
                etag = known.etag or f.etag
                if f.record.hash != known.hash or etag != known.etag:
                    known = replace(known, hash=f.record.hash, etag=etag)
                    o.entry = replace(o.entry, **{side: known})
                data = f.record.to_bytes()
                if data != o.base:
                    o.stored[side] = data

    def _give_uids(self, actions: list[Action]) -> list[Action]:
        """A record without UID that is about to go to a server gets one first, on the
        side it comes from: a UID derived from its content, written there with a
        conditional write, then the record with it goes to the server. CardDAV and
        CalDAV servers need one (Cyrus refuses such a record; DAViCal invents a UID the
        local copy would never carry, and the next run would take the two for different
        records). One at a time, before the batch's writes."""
        out: list[Action] = []
        touched: dict[Side, list[int]] = {}  # side -> positions in out of its actions
        for action in actions:
            record = action.source.record if isinstance(action, Copy) else None
            if (
                not isinstance(action, Copy)
                or action.target is not None
                or record is None
                or record.uid is not None
                or not _unconfirmed(self.cols[action.to])
            ):
                out.append(action)
                continue
            from pimsync.model import content_uid, summary, with_uid

            source_side = other(action.to)
            col = self.cols[source_side]
            uid = content_uid(record)
            named = summary(record)
            try:
                given = with_uid(record, uid)
                with interrupt.writing():
                    etag = col.update(action.source.href, given, action.source.etag)
            except PreconditionFailed:
                self.stats.retry.add(action.ident)
                continue
            except (PimsyncError, ValueError) as exc:
                self.stats.errors.append(
                    f"{action.source.href}{f' ({named})' if named else ''}: has no UID, which "
                    f"the server of side {action.to} needs, and pimsync could not add one on "
                    f"side {source_side} ({col.where}): {exc}. Add a UID line to it (any "
                    "unique text, e.g. a UUID), or let your address book or calendar app do it"
                )
                continue
            self.stats.updated[source_side] += 1
            self.log(
                f"give UID {uid} to {action.source.href}{f' ({named})' if named else ''} on "
                f"{source_side}: a server needs one"
            )
            if self.db is not None and action.ident != uid:
                with self.db.transaction():  # the record goes on under its UID
                    self.db.forget(self.pair, self.collection, action.ident)
            href = given.ident if getattr(col, "keyed_by_ident", False) else action.source.href
            touched.setdefault(source_side, []).append(len(out))
            out.append(replace(action, ident=uid, source=Item(href, etag, given.hash, given)))
        for side, positions in touched.items():
            try:  # on that side before any of them goes to the server
                self.cols[side].flush()
            except PimsyncError as exc:
                for i in positions:
                    self.stats.errors.append(f"{out[i]}: cannot add its UID: {exc}")
                out = [a for i, a in enumerate(out) if i not in set(positions)]
        return out

    def _apply_all(self, actions: list[Action]) -> list[_Outcome]:
        """Apply actions; those that write to a collection that takes several writes at
        once (a server) run on that many threads. Independent idents only."""
        by_side: dict[Side | None, list[Action]] = {"a": [], "b": [], None: []}
        for action in actions:
            target = action.to if isinstance(action, Copy) else (
                action.on if isinstance(action, Delete) else None
            )  # fmt: skip
            by_side[target].append(action)
        out: list[_Outcome] = [self._apply(a) for a in by_side[None]]
        concurrent = {s: getattr(self.cols[s], "concurrent_writes", 1) for s in ("a", "b")}
        parallel = [s for s in ("a", "b") if by_side[s] and concurrent[s] > 1]
        if not parallel:
            for side in ("a", "b"):
                out.extend(self._apply(a) for a in by_side[side])
            return out
        # a server's writes (even a single one) run on threads, and the other side's are
        # made here meanwhile
        from concurrent.futures import ThreadPoolExecutor

        workers = sum(min(concurrent[s], len(by_side[s])) for s in parallel)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pimsync-write")
        try:
            futures = {s: [pool.submit(self._apply, a) for a in by_side[s]] for s in parallel}
            here = {s: [self._apply(a) for a in by_side[s]] for s in ("a", "b") if s not in futures}
            for side in ("a", "b"):
                out.extend(here[side] if side in here else [f.result() for f in futures[side]])
        except BaseException:  # stopped at once: abandon the writes in flight, start no more
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return out

    def _count(self, o: _Outcome) -> None:
        action = o.action
        if isinstance(o.error, NotStarted):
            return  # the run is stopping: planned again next time
        if o.error is not None:
            if isinstance(o.error, PreconditionFailed):
                self.stats.retry.add(action.ident)
                self.log(f"{action}: changed meanwhile, planning it again ({o.error})")
            else:
                self.stats.errors.append(f"{action}{_named(action)}: {o.error}")
            return
        self.log(str(action))
        if isinstance(action, Copy):
            counter = self.stats.created if action.target is None else self.stats.updated
            counter[action.to] += 1
            if action.again:
                self.stats.errors.append(
                    f"{action.ident}: side {action.to} ({self.cols[action.to].where}) did not "
                    "keep it: an earlier run wrote it there and got a success answer, but the "
                    "side never listed it since. Written again; the other side's copy is kept. "
                    "(If it was deleted there on purpose right after the sync, delete it again.)"
                )
            if action.reason.startswith("conflict"):
                self.stats.conflicts += 1
        elif isinstance(action, Delete):
            self.stats.deleted[action.on] += 1
        elif isinstance(action, Duplicate):
            for side in o.sides:
                self.stats.created[side] += 1
        elif isinstance(action, MergeWrite):
            for side in o.sides:
                self.stats.updated[side] += 1
            self.stats.merged += 1
            self.stats.conflicts += bool(action.details)

    def _apply(self, action: Action) -> _Outcome:
        try:
            if isinstance(action, Copy):
                with interrupt.writing():
                    return self._copy(action)
            if isinstance(action, Delete):
                with interrupt.writing():
                    self.cols[action.on].delete(action.target.href, action.target.etag)
                return _Outcome(action, None, sides=(action.on,))
            if isinstance(action, Duplicate):
                with interrupt.writing():
                    return self._duplicate(action)
            if isinstance(action, MergeWrite):
                with interrupt.writing():
                    return self._merge_write(action)
            if isinstance(action, SaveState):
                entry = Entry(action.ident, action.a, action.b)
                base = None
                if action.a and action.b and action.a.hash == action.b.hash:
                    if action.record is not None and action.record.hash == action.a.hash:
                        base = action.record.to_bytes()
                    elif action.base is not None:
                        base = action.base
                return _Outcome(action, entry, base)
            if isinstance(action, Forget):
                return _Outcome(action, None)
            raise TypeError(action)
        except PimsyncError as exc:
            return _Outcome(action, error=exc)
        except OSError as exc:  # an adapter let one slip through: still report, go on
            return _Outcome(action, error=StorageError(str(exc)))

    def _copy(self, action: Copy) -> _Outcome:
        record = action.source.record
        assert record is not None
        col = self.cols[action.to]
        if action.target is None:
            href, etag = col.create(record)
        else:
            etag = col.update(action.target.href, record, action.target.etag)
            href = action.target.href
        written = Known(href, etag, record.hash, _unconfirmed(col))
        sides = {action.to: written, other(action.to): action.source.known()}
        entry = Entry(action.ident, sides["a"], sides["b"])
        outcome = _Outcome(action, entry, record.to_bytes(), sides=(action.to,))
        if action.source_form is not None:
            outcome.stored[other(action.to)] = action.source_form
        return outcome

    def _merge_write(self, action: MergeWrite) -> _Outcome:
        """The merged record to both sides (where it differs). Its pending notes keep what
        each side held: if only one side got it, the next run replays the merge from there
        (see ``plan.Merge.rebase``), even when a side was edited again meanwhile."""
        record = action.record
        known: dict[Side, Known] = {}
        written: list[Side] = []
        for side, item in (("a", action.a), ("b", action.b)):
            if item.hash == record.hash:
                known[side] = item.known()
                continue
            etag = self.cols[side].update(item.href, record, item.etag)
            known[side] = Known(item.href, etag, record.hash, _unconfirmed(self.cols[side]))
            written.append(side)
        entry = Entry(action.ident, known["a"], known["b"])
        return _Outcome(action, entry, record.to_bytes(), sides=tuple(written))

    def _duplicate(self, action: Duplicate) -> _Outcome:
        record: Record = action.record
        known: dict[Side, Known | None] = {"a": None, "b": None}
        for side in action.sides:
            href, etag = self.cols[side].create(record)
            known[side] = Known(href, etag, record.hash, _unconfirmed(self.cols[side]))
        entry = Entry(action.ident, known["a"], known["b"])
        return _Outcome(action, entry, record.to_bytes(), sides=action.sides)


def _unconfirmed(col: Collection) -> bool:
    """Is a write to this collection unconfirmed until the collection lists it? A server's
    success answer is no proof that it kept the record (local writes are checked: the file
    is fsynced and stat'ed)."""
    return bool(getattr(col, "remote", False))


def _replaced_nothing(o: _Outcome) -> bool:
    """Did a failed write surely leave the target as it was? A refused conditional copy
    did; after any other failure (a timeout, one side of a merge written) the losing
    version stays kept: a spare copy costs nothing, a lost one is lost."""
    if isinstance(o.error, NotStarted):
        return True
    return isinstance(o.action, Copy) and isinstance(o.error, PreconditionFailed)


def _lost_version(action: Action) -> SavedConflict | None:
    """The version a conflict's winner replaced, to keep for `pimsync conflicts`
    ("keep both" keeps it as a record of its own instead)."""
    from pimsync.model import summary

    if isinstance(action, MergeWrite) and action.lost is not None:
        record, side = action.lost, action.lost_side
    elif isinstance(action, Copy) and action.reason.startswith("conflict"):
        if "keep both" in action.reason or action.target is None:
            return None
        record, side = action.target.record, action.to
    else:
        return None
    if record is None:
        return None
    return SavedConflict(
        "", "", action.ident, action.reason, side, action.details, summary(record), record.kind,
        record.to_bytes(),
    )  # fmt: skip


def _pending(action: Action) -> list[Pending]:
    if isinstance(action, Copy):
        record = action.source.record
        assert record is not None
        what = "create" if action.target is None else "update"
        before = action.target.hash if action.target is not None else None  # it replaces
        return [Pending(action.ident, action.to, record.hash, before, record.to_bytes(),
                        None, what)]  # fmt: skip
    if isinstance(action, Delete):
        return [Pending(action.ident, action.on, None, None, None, None, "delete")]
    if isinstance(action, Duplicate):
        # a new record: neither side held it when the write was planned
        body = action.record.to_bytes()
        h = action.record.hash
        return [Pending(action.ident, s, h, None, body, None, "duplicate") for s in action.sides]
    if isinstance(action, MergeWrite):
        # each side to be written, with what it held: if the run dies after one of the
        # writes and a side is edited before the next run, the merge is replayed from there
        merged = action.record.to_bytes()
        return [
            Pending(action.ident, side, action.record.hash, item.hash, merged,
                    item.record.to_bytes() if item.record is not None else None, "merge")
            for side, item in (("a", action.a), ("b", action.b))
            if item.hash != action.record.hash
        ]  # fmt: skip
    return []


def _named(action: Action) -> str:
    """The record's SUMMARY or FN, for an error message: ' ("Team lunch")', or ''."""
    record = (
        action.source.record
        if isinstance(action, Copy)
        else action.record
        if isinstance(action, MergeWrite | Duplicate)
        else None
    )
    if record is None:
        return ""
    from pimsync.model import summary

    text = summary(record)
    if not text:
        return ""
    text = text if len(text) <= 60 else text[:59] + "…"
    return f" ({text!r})"
