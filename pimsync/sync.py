"""Sync one pair: pick its collections, read both sides, plan, execute, remember."""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pimsync import server_forms
from pimsync.errors import MalformedRecord, NotFound, PimsyncError, Unreachable
from pimsync.execute import Executor, Stats
from pimsync.interrupt import Interrupted, signal_name
from pimsync.model import prepare
from pimsync.model.record import Record
from pimsync.plan import Merge, Options, Plan, SideView, Skip, plan, plan_meta, settle
from pimsync.plan_types import Entry, Item, Side, other
from pimsync.state import StateDB
from pimsync.storage.base import Collection, Listing, Storage, checks_values

_T = TypeVar("_T")
MAX_PASSES = 3  # a write that met a changed record is re-read and re-planned this often


@dataclass(frozen=True)
class PairSettings:
    name: str
    collections: str | tuple[str, ...] = "all"
    options: Options = Options()


@dataclass
class CollectionResult:
    collection: str
    stats: Stats = field(default_factory=Stats)
    stopped: str | None = None  # why the collection was not synced
    dry_run: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.stats.errors or self.stopped or self.stats.retry)

    def summary(self) -> str:
        s = self.stats
        if self.stopped:
            return f"stopped: {self.stopped}"

        def side(x: Side) -> str:
            return f"+{s.created[x]} ~{s.updated[x]} -{s.deleted[x]}"

        text = f"a {side('a')}, b {side('b')}"
        extras = []
        if s.merged:
            extras.append(f"{s.merged} merged")
        if s.conflicts:
            extras.append(f"{s.conflicts} conflict{'s' * (s.conflicts != 1)}")
        if s.skipped:
            extras.append(f"{s.skipped} not written (read-only)")
        errors = len(s.errors) + len(s.retry)
        extras.append(f"{errors} error{'s' * (errors != 1)}")
        return f"{text}, {', '.join(extras)}"


@dataclass
class _Side:
    view: SideView
    token: str | None
    complete: bool  # every change this listing reported was read
    #: hrefs listed, then gone when read: the collection is read again (another pass)
    vanished: list[str] = field(default_factory=list)
    #: idents written by pimsync, unconfirmed, that this listing reports (changed or
    #: deleted since): the side kept them
    confirmed: list[str] = field(default_factory=list)


class Reporter:
    """Where the engine says what it does. The CLI replaces these."""

    def action(self, line: str) -> None:  # -v: every action
        pass

    def error(self, line: str) -> None:  # every problem, as it happens
        pass

    def collection_done(self, pair: str, result: CollectionResult) -> None:
        pass

    def progress(self, where: str, phase: str, done: int, total: int) -> None:
        """A long transfer advanced (the CLI draws a bar on a terminal)."""
        pass

    def skipped(self, where: str, exc: Unreachable) -> None:
        """``where`` was not synced: its server did not answer earlier in this run (said
        once per server, see :meth:`error`)."""
        pass


def read_side(
    col: Collection,
    side: Side,
    entries: Mapping[str, Entry],
    token: str | None,
    read_only: bool,
    errors: list[str],
    progress: Callable[[str, int, int], None] | None = None,
    listing: Listing | None = None,
    also_read: Container[str] = (),
) -> _Side:
    """List a collection and read what changed since the state; build the planner's view.
    ``also_read``: hrefs to read even if unchanged (to store a missing base)."""
    if listing is None:
        listing = col.list(token)
    known: dict[str, tuple[str, str, str]] = {}  # href -> (ident, etag, hash)
    unseen: list[str] = []  # written by pimsync, not listed by this side since
    confirmed: list[str] = []  # of those, listed (or reported deleted): the side kept them
    for ident, entry in entries.items():
        k = entry.side(side)
        if k is not None:
            known[k.href] = (ident, k.etag, k.hash)
            if k.unseen:
                unseen.append(k.href)
    if listing.delta:
        current: dict[str, str] = {href: etag for href, (_, etag, _) in known.items()}
        for href, etag in listing.items.items():
            if etag is None:
                current.pop(href, None)
            else:
                current[href] = etag
        for href in unseen:
            # the token predates pimsync's write: a server that kept the record reports it
            # as a change (or, deleted since, as a deletion); one that does not has not
            # kept it
            if href not in listing.items:
                current.pop(href, None)
            else:
                confirmed.append(known[href][0])
    else:
        current = {href: etag for href, etag in listing.items.items() if etag is not None}
        confirmed = [known[h][0] for h in unseen if h in current]

    items: dict[str, Item] = {}
    hrefs_of: dict[str, list[str]] = {}
    skip: set[str] = set()
    uncertain = False
    changed: list[str] = []
    vanished: list[str] = []

    def unreadable(href: str | None, exc: PimsyncError, uid: str | None) -> None:
        """A record that exists but cannot be read is never taken as deleted: its ident is
        left alone on both sides; if it cannot be told which ident it is, no deletion is
        propagated from this side."""
        nonlocal uncertain
        errors.append(f"{side}: {exc}")
        ident = known[href][0] if href in known else uid
        if ident is None:
            uncertain = True
        else:
            skip.add(ident)

    for href, exc in listing.unreadable.items():
        current.pop(href, None)
        unreadable(href, exc, None)
    for href, etag in current.items():
        k = known.get(href)
        if k is not None and k[1] == etag and href not in also_read:
            items[k[0]] = Item(href, etag, k[2])
            hrefs_of.setdefault(k[0], []).append(href)
        else:
            changed.append(href)

    for exc in listing.errors:
        unreadable(None, exc, exc.uid)
    if changed:
        for n, fetched in enumerate(col.get(changed, values=checks_values(col)), 1):
            if progress is not None and (n % 50 == 0 or n == len(changed)):
                progress(f"reading {side}", n, len(changed))
            if fetched.record is not None:
                record = fetched.record
                items[record.ident] = Item(fetched.href, fetched.etag, record.hash, record)
                hrefs_of.setdefault(record.ident, []).append(fetched.href)
            elif isinstance(fetched.error, NotFound):
                # listed, then gone when read (an editor replacing the file, a phone's
                # write on the server): not a deletion. Left alone in this pass; the
                # collection is listed again in the next one.
                vanished.append(fetched.href)
                if fetched.href in known:
                    skip.add(known[fetched.href][0])
                else:
                    uncertain = True
            else:
                assert fetched.error is not None
                uid = fetched.error.uid if isinstance(fetched.error, MalformedRecord) else None
                unreadable(fetched.href, fetched.error, uid)
    for ident, hrefs in hrefs_of.items():
        if len(hrefs) > 1:
            errors.append(
                f"{side}: {col.where}: UID {ident!r} is used by {len(hrefs)} records: "
                f"{', '.join(sorted(hrefs))}; none of them is synced until only one is left"
            )
            skip.add(ident)
            items.pop(ident, None)
    complete = not uncertain and not skip
    view = SideView(items, frozenset(skip), uncertain, read_only)
    return _Side(view, listing.token, complete, vanished, confirmed)


def sync_collection(
    pair: PairSettings,
    collection: str,
    cols: dict[Side, Collection],
    read_only: dict[Side, bool],
    db: StateDB,
    reporter: Reporter,
    *,
    dry_run: bool = False,
) -> CollectionResult:
    """Sync one collection. A record that changed between reading and writing is read and
    planned again (up to MAX_PASSES passes); it is never overwritten blindly."""
    result = CollectionResult(collection)
    name = pair.name
    where = f"{name}/{collection}"
    try:
        sync_meta(pair, collection, cols, read_only, db, reporter, dry_run=dry_run)
    except PimsyncError as exc:  # metadata is not worth stopping the records for
        result.stats.errors.append(f"collection metadata: {exc}")
        reporter.error(f"{where}: collection metadata: {exc}")

    def progress(phase: str, done: int, total: int) -> None:
        reporter.progress(where, phase, done, total)

    waits = _waiting_side(cols)
    for attempt in range(1, MAX_PASSES + 1):
        tokens = dict(zip(("a", "b"), db.tokens(name, collection)))
        reader = _Reader(db, name, collection, cols, tokens, read_only, progress)
        unchanged: dict[Side, bool] = {}
        listings = _list_sides(db, name, collection, cols, tokens, waits, unchanged, reader)
        if (
            attempt == 1
            and not dry_run
            and _nothing_changed(db, name, collection, listings, unchanged)
        ):
            # the common case: no record content read, no plan made
            with db.transaction():
                db.set_tokens(name, collection, listings["a"].token, listings["b"].token)
                db.seen_all(name, collection)  # both sides listed what was written to them
                db.finish_run(name, collection, "ok", result.summary(), [])
            return result
        prepare(
            {cols["a"].kind, cols["b"].kind},
            values=checks_values(cols["a"]) or checks_values(cols["b"]),
        )
        entries = reader.entries()
        sides = {s: reader.read(s, listings[s]) for s in ("a", "b")}
        entries = _seen(db, name, collection, entries, sides, write=not dry_run)
        read_errors = reader.errors["a"] + reader.errors["b"]
        the_plan: Plan = plan(
            sides["a"].view, sides["b"].view, entries, db.pending(name, collection), pair.options,
            reader.without_base,
        )  # fmt: skip
        if forms_for := server_forms.wanted(the_plan):
            the_plan = server_forms.apply_as_changes(
                the_plan, {i: db.forms(name, collection, i) for i in forms_for}
            )
        the_plan = settle(
            the_plan, load_bases(db, name, collection, the_plan, sides["a"].view.items),
            sides["a"].view, sides["b"].view, pair.options,
        )  # fmt: skip
        executor = None
        if the_plan.stop:
            result.stopped = the_plan.stop
        elif dry_run:
            result.dry_run = [str(a) for a in the_plan.actions]
            for line in result.dry_run:
                reporter.action(f"{where}: would {line}")
        else:
            executor = Executor(
                cols, db, name, collection, lambda x: reporter.action(f"{where}: {x}"), progress
            )
            stats = executor.run(the_plan.actions)
            for line in stats.errors:
                reporter.error(f"{where}: {line}")
            retry, stats.retry = stats.retry, set()
            result.stats.add(stats)
            vanished = [(s, h) for s in ("a", "b") for h in sides[s].vanished]
            if (retry or vanished) and attempt < MAX_PASSES:
                continue  # read again and plan those records anew
            result.stats.retry = retry
            read_errors += [
                f"{s}: {cols[s].where}: {h} was listed, then gone when it was read, in every "
                "attempt; left alone on both sides" for s, h in vanished
            ]  # fmt: skip
        for line in read_errors:
            reporter.error(f"{where}: {line}")
        result.stats.errors[:0] = read_errors
        if executor is not None:
            clean = not result.failed
            # A side's token may only move on when everything it reported is now in the
            # state: a change that could not be written (read-only) must be seen again.
            held_back = {other(a.on) for a in the_plan.actions if isinstance(a, Skip)}
            confirmed = _confirm_writes(db, name, collection, cols, executor, sides)
            new_tokens = {
                s: confirmed.get(s) or executor.tokens.get(s, sides[s].token)
                if clean and sides[s].complete and s not in held_back
                else None
                for s in ("a", "b")
            }
            with db.transaction():
                db.set_tokens(name, collection, new_tokens["a"], new_tokens["b"])
                if clean:
                    db.clear_pending(name, collection)
        break
    if result.stopped:
        reporter.error(f"{where}: {result.stopped}")
    if not dry_run:
        failures = result.stats.errors + ([result.stopped] if result.stopped else [])
        failures += [f"{ident}: changed during every attempt" for ident in result.stats.retry]
        status = "stopped" if result.stopped else ("errors" if result.failed else "ok")
        with db.transaction():
            db.finish_run(name, collection, status, result.summary(), failures)
    return result


def _seen(
    db: StateDB,
    pair: str,
    collection: str,
    entries: dict[str, Entry],
    sides: Mapping[Side, _Side],
    *,
    write: bool,
) -> dict[str, Entry]:
    """The entries with the records a side listed (or reported deleted) no longer
    unconfirmed there, in the state too: the side kept what pimsync wrote, and a deletion
    it reports is one, not a write it dropped. (Cleared now, not when the token moves
    past the write, or a later run would take the record as dropped.)"""
    if not any(sides[s].confirmed for s in ("a", "b")):
        return entries
    if write:
        with db.transaction():
            for s in ("a", "b"):
                if sides[s].confirmed:
                    db.seen(pair, collection, s, sides[s].confirmed)
    out = dict(entries)
    for s in ("a", "b"):
        for ident in sides[s].confirmed:
            entry = out[ident]
            known = entry.side(s)
            if known is not None:
                known = replace(known, unseen=False)
                out[ident] = replace(entry, **{s: known})
    return out


def _confirm_writes(
    db: StateDB,
    pair: str,
    collection: str,
    cols: Mapping[Side, Collection],
    executor: Executor,
    sides: Mapping[Side, _Side],
) -> dict[Side, str]:
    """List again each server side this pass created records on (one request where the
    server has sync tokens): what it lists is confirmed kept. A record it does not list
    stays unconfirmed, and the next run writes it again if the server still does not list
    it (see plan row 18). Returns the sides whose token may move past the writes: those
    whose changes since the listing are exactly pimsync's own writes, so that a record a
    phone deletes later is reported by the server as a deletion. (Updates need no such
    listing: the next run's changes since the old token report an updated record either
    as changed or, if it was deleted meanwhile, as deleted.)"""
    out: dict[Side, str] = {}
    for s in ("a", "b"):
        written = executor.unconfirmed.get(s)
        if not written or s not in executor.created:
            continue
        try:
            listing = cols[s].list(sides[s].token)
        except PimsyncError:
            continue  # not confirmed now: the next run looks
        seen = [ident for href, (ident, _) in written.items() if listing.items.get(href)]
        with db.transaction():
            db.seen(pair, collection, s, seen)
        own = all(
            href in written and etag == written[href][1] for href, etag in listing.items.items()
        )
        if listing.delta and own and len(seen) == len(written) and listing.token:
            out[s] = listing.token
    return out


class _Reader:
    """One pass's reading: the state's entries, loaded once, and each side read once
    (on the thread that owns the state database)."""

    def __init__(
        self,
        db: StateDB,
        pair: str,
        collection: str,
        cols: Mapping[Side, Collection],
        tokens: Mapping[Side, str | None],
        read_only: Mapping[Side, bool],
        progress: Callable[[str, int, int], None],
    ) -> None:
        self.db, self.pair, self.collection = db, pair, collection
        self.cols, self.tokens, self.read_only, self.progress = cols, tokens, read_only, progress
        self.errors: dict[Side, list[str]] = {"a": [], "b": []}
        self._entries: dict[str, Entry] | None = None
        self._sides: dict[Side, _Side] = {}
        #: rows without a base (a crash of an older version): read on one side to heal
        self.without_base: frozenset[str] = frozenset()
        #: the side read for that: a local one where there is one
        remote = {s: bool(getattr(cols[s], "remote", False)) for s in ("a", "b")}
        self._heal_side: Side = "b" if remote["a"] and not remote["b"] else "a"

    def entries(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = self.db.entries(self.pair, self.collection)
            self.without_base = frozenset(self.db.without_base(self.pair, self.collection))
        return self._entries

    def read(self, side: Side, listing: Listing) -> _Side:
        if side not in self._sides:
            entries = self.entries()
            also: set[str] = set()
            if side == self._heal_side:
                for ident in self.without_base:
                    k = entries[ident].side(side) if ident in entries else None
                    if k is not None:
                        also.add(k.href)
            self._sides[side] = read_side(
                self.cols[side], side, entries, self.tokens[side], self.read_only[side],
                self.errors[side], self.progress, listing, also,
            )  # fmt: skip
        return self._sides[side]


def _meta_for(source: Collection | None, cid: str) -> dict[str, str]:
    """The name and color for a collection made to pair with ``source`` (the collection
    id as the name where it has none: a server would show its path)."""
    meta: dict[str, str] = {}
    if source is not None:
        for key in source.meta_keys:
            value = source.get_meta(key)
            if value:
                meta[key] = value
    meta.setdefault("displayname", cid)
    return meta


def _waiting_side(cols: Mapping[Side, Collection]) -> Side | None:
    """The side that waits on a server (``remote``), if any: its requests run on a
    thread while the other side's work goes on."""
    for side in ("b", "a"):
        if getattr(cols[side], "remote", False):
            return side
    return None


def _both(work: Callable[[Side], _T], waits: Side | None) -> dict[Side, _T]:
    """``work`` for both sides; the side that waits on a server on a thread meanwhile."""
    if waits is None:
        return {"a": work("a"), "b": work("b")}
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pimsync-side")
    try:
        later = pool.submit(work, waits)
        here = work(other(waits))
        result = {waits: later.result(), other(waits): here}
    except BaseException:  # a failure or a signal to stop: do not wait for the server
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return result


def _list_sides(
    db: StateDB,
    pair: str,
    collection: str,
    cols: Mapping[Side, Collection],
    tokens: Mapping[Side, str | None],
    waits: Side | None,
    unchanged: dict[Side, bool],
    reader: _Reader,
) -> dict[Side, Listing]:
    """List both sides. While a server answers, the other side is listed, and if it
    changed, also read (after starting to load the parsers its records need, see
    model.prepare). ``unchanged`` is told what was found out about the other side (see
    :func:`_nothing_changed`)."""

    def work(s: Side) -> Listing:
        listing = cols[s].list(tokens[s])
        if waits is not None and s != waits:
            unchanged[s] = _side_unchanged(db, pair, collection, s, listing)
            if not unchanged[s]:
                prepare({cols["a"].kind, cols["b"].kind}, values=checks_values(cols[s]))
                reader.read(s, listing)
        return listing

    return _both(work, waits)


def _side_unchanged(db: StateDB, pair: str, collection: str, side: Side, listing: Listing) -> bool:
    """Does a side list exactly what the state remembers of it? A delta listing counts
    as unchanged when every change it reports is one the state knows already (the writes
    of the last run, which a token taken before them reports again)."""
    if listing.errors or listing.unreadable:
        return False
    if listing.delta:
        # what pimsync wrote here in the last run must be among the changes the server
        # reports since the token (taken before those writes); else it may have dropped it
        if any(listing.items.get(h) is None for h in db.unseen(pair, collection, side)):
            return False
        if not listing.items:
            return True
        known = db.side_etags(pair, collection, side)
        return all(
            known.get(h) == e if e is not None else h not in known for h, e in listing.items.items()
        )
    current = {h: e for h, e in listing.items.items() if e is not None}
    return current == db.side_etags(pair, collection, side)


def _nothing_changed(
    db: StateDB,
    pair: str,
    collection: str,
    listings: Mapping[Side, Listing],
    unchanged: Mapping[Side, bool] | None = None,
) -> bool:
    """Does every side list exactly what the state remembers (and nothing is pending, no
    write is waiting to be listed, no row lacks its base)? ``unchanged``: what is known
    already of some sides."""
    if db.pending(pair, collection) or db.without_base(pair, collection):
        return False
    known = unchanged or {}
    return all(
        known[s] if s in known else _side_unchanged(db, pair, collection, s, listing)
        for s, listing in listings.items()
    )


def load_bases(
    db: StateDB, pair: str, collection: str, the_plan: Plan, items: Mapping[str, Item]
) -> dict[str, Record | None]:
    """The base (content after the last sync) of every record the plan wants merged."""
    from pimsync.model import parse_record

    out: dict[str, Record | None] = {}
    for action in the_plan.actions:
        if isinstance(action, Merge) and action.rebase is None:
            # a landed write of a crashed run brought a newer base than the state's; where
            # a server stored its own form of the base, its changes are found against that
            # (the other side's differences from it are then its rewrite, kept as written)
            base, stored_a, stored_b = db.forms(pair, collection, action.ident)
            raw = action.base or stored_b or stored_a or base
            kind = action.a.record.kind if action.a.record else "ics"
            try:
                out[action.ident] = parse_record(raw, kind, "base") if raw else None
            except MalformedRecord:
                out[action.ident] = None
    return out


def sync_meta(
    pair: PairSettings,
    collection: str,
    cols: dict[Side, Collection],
    read_only: dict[Side, bool],
    db: StateDB,
    reporter: Reporter,
    *,
    dry_run: bool = False,
) -> None:
    """Sync displayname and color (where both sides keep them) by the three-way rule."""
    keys = [k for k in cols["a"].meta_keys if k in cols["b"].meta_keys]
    if not keys:
        return
    values = {s: {k: cols[s].get_meta(k) for k in keys} for s in ("a", "b")}
    base = db.meta(pair.name, collection)
    todo = plan_meta(
        values["a"], values["b"], base, keys, pair.options.conflict,
        (read_only["a"], read_only["b"]),
    )  # fmt: skip
    where = f"{pair.name}/{collection}"
    for side, changes in (("a", todo.set_a), ("b", todo.set_b)):
        for key, value in changes.items():
            verb = "would set" if dry_run else "set"
            reporter.action(f"{where}: {verb} {key} to {value!r} on {side}")
            if not dry_run:
                cols[side].set_meta(key, value)  # type: ignore[index]
    if not dry_run and todo.base != base:
        with db.transaction():
            db.set_meta(pair.name, collection, todo.base)


def pick_collections(setting: str | tuple[str, ...], a: set[str], b: set[str]) -> list[str]:
    if setting == "all":
        return sorted(a | b)
    if setting == "from a":
        return sorted(a)
    if setting == "from b":
        return sorted(b)
    return list(setting)


def sync_pair(
    pair: PairSettings,
    storages: dict[Side, Storage],
    db: StateDB,
    reporter: Reporter,
    *,
    dry_run: bool = False,
    force_delete: bool = False,
) -> list[CollectionResult]:
    infos = {s: {c.id: c for c in storages[s].collections()} for s in ("a", "b")}
    known = set(db.known_collections(pair.name))
    for s in ("a", "b"):
        missing = {c for c in known if c not in infos[s] and db.has_entries(pair.name, c)}
        if missing and _cached(storages[s]):
            # the server's collections were remembered from an earlier run: a collection
            # that is not among them may be one this list never saw (an interrupted run
            # created it). Ask the server itself before saying anything is gone.
            storages[s].discover()  # type: ignore[attr-defined]
            infos[s] = {c.id: c for c in storages[s].collections()}
    present = {s: set(infos[s]) for s in ("a", "b")}
    wanted = pick_collections(pair.collections, present["a"], present["b"])
    results = []
    for cid in wanted:
        cols: dict[Side, Collection] = {}
        created: list[Side] = []
        problem = next(
            (
                infos[s][cid].problem
                for s in ("a", "b")
                if cid in infos[s] and infos[s][cid].problem
            ),
            None,
        )  # listed but unusable on one side: nothing is done on either side
        for s in ("a", "b"):
            if problem:
                break
            storage = storages[s]  # type: ignore[index]
            if cid in present[s]:
                cols[s] = storage.collection(cid)  # type: ignore[index]
                continue
            if cid in known and db.has_entries(pair.name, cid) and not force_delete:
                problem = (
                    f"collection {cid!r} is gone from storage {storage.name!r} ({s}) but was "
                    "synced before; nothing was changed. To delete its records on the other "
                    "side too, run again with --force-delete"
                )
                break
            if storage.read_only:
                problem = f"collection {cid!r} does not exist in read-only storage {storage.name!r}"
                break
            if dry_run:
                reporter.action(f"{pair.name}/{cid}: would create collection on {s}")
                cols[s] = _EmptyCollection(cid, storage.kind)  # type: ignore[index]
                continue
            try:
                source = cols.get(other(s))  # type: ignore[call-overload]
                if source is None and cid in present[other(s)]:
                    source = storages[other(s)].collection(cid)  # type: ignore[index]
                cols[s] = storage.create_collection(cid, _meta_for(source, cid))  # type: ignore[index]
                created.append(s)  # type: ignore[arg-type]
                reporter.action(f"{pair.name}/{cid}: created collection on {s} ({storage.name})")
                # remembered at once: a run interrupted during the first upload must not
                # find it missing from the list of the server's collections next time
                from pimsync.storage import remember_discovery

                remember_discovery([storage], db)
            except PimsyncError as exc:
                problem = f"cannot create collection {cid!r} in {storage.name!r}: {exc}"
                break
        if not problem:
            for s in created:  # a new collection takes the other side's name and color
                source = cols[other(s)]
                for key in (k for k in cols[s].meta_keys if k in source.meta_keys):
                    try:
                        value = source.get_meta(key)
                        if (
                            value is None
                            and key == "displayname"
                            and getattr(cols[s], "names_unnamed", False)
                        ):
                            value = cid  # else the server shows its path as the name
                        if value is not None and cols[s].get_meta(key) != value:
                            cols[s].set_meta(key, value)  # (not set as it was made)
                    except PimsyncError as exc:
                        reporter.error(f"{pair.name}/{cid}: cannot set {key} on {s}: {exc}")
        if problem:
            result = CollectionResult(cid, stopped=problem)
            reporter.error(f"{pair.name}/{cid}: {problem}")
            if not dry_run:
                with db.transaction():
                    db.finish_run(pair.name, cid, "stopped", result.summary(), [problem])
        else:
            read_only = {s: storages[s].read_only for s in ("a", "b")}
            options = pair.options
            if force_delete and not options.force_delete:
                options = replace(options, force_delete=True)
            settings = PairSettings(pair.name, pair.collections, options)
            try:
                result = sync_collection(
                    settings,
                    cid,
                    cols,
                    read_only,
                    db,
                    reporter,
                    dry_run=dry_run,  # type: ignore[arg-type]
                )
            except Unreachable as exc:  # its server timed out earlier: said once
                result = CollectionResult(cid, stopped=str(exc))
                reporter.skipped(f"{pair.name}/{cid}", exc)
            except PimsyncError as exc:
                why = _gone(exc, cid, cols, storages) or str(exc)
                result = CollectionResult(cid, stopped=why)
                reporter.error(f"{pair.name}/{cid}: {why}")
            except Interrupted as exc:
                if not dry_run:  # `pimsync status` tells; what landed is in the state
                    why = f"interrupted by {signal_name(exc.signum)}"
                    with db.transaction():
                        db.finish_run(pair.name, cid, "interrupted", why, [why])
                raise
        reporter.collection_done(pair.name, result)
        results.append(result)
    return results


def _gone(
    exc: PimsyncError, cid: str, cols: Mapping[Side, Collection], storages: Mapping[Side, Storage]
) -> str | None:
    """If a server answered 404 for the collection, ask it for its collections again:
    when it no longer lists this one, say so (and what --force-delete would do)."""
    if getattr(exc, "status", None) not in (404, 410):
        return None
    for s in ("a", "b"):
        storage = storages[s]  # type: ignore[index]
        where = str(exc.where or "")
        if not where.startswith(cols[s].where) or not hasattr(storage, "discover"):  # type: ignore[index]
            continue
        try:
            storage.discover()
        except PimsyncError:
            return None
        if cid not in {c.id for c in storage.collections()}:
            return (
                f"collection {cid!r} is gone from storage {storage.name!r} ({s}): the server "
                "no longer has it; nothing was changed. To delete its records on the other "
                "side too, run again with --force-delete"
            )
    return None


def _cached(storage: Storage) -> bool:
    """Does this storage list collections it remembered from an earlier run (a server's,
    from the discovery cache) rather than ones it asked for in this run?"""
    return getattr(storage, "discovered", True) is False and hasattr(storage, "discover")


class _EmptyCollection:
    """Stands for a collection that a dry run would create."""

    def __init__(self, cid: str, kind: str) -> None:
        from pimsync.storage.base import Listing

        self.id = cid
        self.kind = kind
        self.where = f"(new collection {cid})"
        self.meta_keys: tuple[str, ...] = ()
        self._listing = Listing(items={})

    def list(self, token: str | None = None) -> object:
        return self._listing

    def get(self, hrefs: object, *, values: bool = True) -> list[object]:
        return []
