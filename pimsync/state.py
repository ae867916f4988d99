"""The sync-state database: one SQLite file in ``state_dir``.

Per pair, collection and ident it keeps href, etag and hash on each side and the base
content (the record as it was after the last sync). Schema changes are numbered
migrations; ``PRAGMA user_version`` holds the schema version. Only one ``pimsync run``
uses a state directory at a time: an exclusive lock on ``state.lock`` beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pimsync.errors import LockTimeout, StateError
from pimsync.plan_types import Entry, Known, Pending, Side

DB_NAME = "state.sqlite"
LOCK_NAME = "state.lock"

#: Numbered migrations: MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE records (
        pair TEXT NOT NULL, collection TEXT NOT NULL, ident TEXT NOT NULL,
        a_href TEXT, a_etag TEXT, a_hash TEXT,
        b_href TEXT, b_etag TEXT, b_hash TEXT,
        base BLOB,
        PRIMARY KEY (pair, collection, ident)
    ) WITHOUT ROWID;
    CREATE TABLE pending (
        pair TEXT NOT NULL, collection TEXT NOT NULL, ident TEXT NOT NULL, side TEXT NOT NULL,
        hash TEXT, other TEXT, base BLOB,
        PRIMARY KEY (pair, collection, ident, side)
    );
    CREATE TABLE collections (
        pair TEXT NOT NULL, collection TEXT NOT NULL,
        a_token TEXT, b_token TEXT,
        last_sync REAL, last_status TEXT, summary TEXT,
        PRIMARY KEY (pair, collection)
    );
    CREATE TABLE failures (
        pair TEXT NOT NULL, collection TEXT NOT NULL, where_ TEXT NOT NULL,
        message TEXT NOT NULL, time REAL NOT NULL
    );
    CREATE INDEX failures_by_collection ON failures (pair, collection);
    """,
    # 2: what discovery found on a server, so that a run need not ask every time
    """
    CREATE TABLE discovery (
        storage TEXT NOT NULL PRIMARY KEY, url TEXT NOT NULL, found TEXT NOT NULL,
        time REAL NOT NULL
    );
    """,
    # 3: the collection metadata (displayname, color) as last synced: the base of its merge
    """
    ALTER TABLE collections ADD COLUMN meta TEXT;
    """,
    # 4: the losing versions of conflicts, for `pimsync conflicts`
    """
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, pair TEXT NOT NULL, collection TEXT NOT NULL,
        ident TEXT NOT NULL, time REAL NOT NULL, reason TEXT NOT NULL, side TEXT NOT NULL,
        properties TEXT NOT NULL, summary TEXT NOT NULL, kind TEXT NOT NULL, loser BLOB NOT NULL
    );
    """,
    # 5: each side's hrefs and etags, for the no-change check, without reading every row
    # (a row holds its base record, so a scan reads the whole table)
    """
    CREATE INDEX records_a ON records (pair, collection, a_href, a_etag);
    CREATE INDEX records_b ON records (pair, collection, b_href, b_etag);
    """,
    # 6: records written to a side that has not listed them since (a write a server may
    # have dropped), and quick ways to find those and the rows without a base
    """
    ALTER TABLE records ADD COLUMN a_unseen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN b_unseen INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX records_unseen ON records (pair, collection)
        WHERE a_unseen = 1 OR b_unseen = 1;
    CREATE INDEX records_without_base ON records (pair, collection, ident)
        WHERE base IS NULL;
    ALTER TABLE pending ADD COLUMN prior BLOB;
    ALTER TABLE pending ADD COLUMN action TEXT;
    """,
    # 7: what a server stored when it differs from what was written (the base): its own
    # re-serialisation, against which a later change on the server is found
    """
    ALTER TABLE records ADD COLUMN a_stored BLOB;
    ALTER TABLE records ADD COLUMN b_stored BLOB;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_KEEP = object()  # "leave the base as it is"


@dataclass(frozen=True)
class SavedConflict:
    """A conflict's losing version, kept until the user forgets it."""

    pair: str
    collection: str
    ident: str
    reason: str
    side: str  # the side whose version lost (it was replaced there)
    properties: tuple[str, ...]  # what differed, where known
    summary: str
    kind: str
    loser: bytes
    time: float = 0.0
    id: int = 0


@dataclass(frozen=True, slots=True)
class CollectionState:
    pair: str
    collection: str
    a_token: str | None
    b_token: str | None
    last_sync: float | None
    last_status: str | None
    summary: str | None
    records: int
    failures: list[str]


def _lock(path: Path, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                try:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                finally:
                    os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise LockTimeout(
                    f"another pimsync{who} is using this state; waited {timeout:g} s. "
                    "Try again when it has finished (general.lock_timeout sets the wait).",
                    where=str(path),
                ) from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class StateDB:
    """Access to the state database. Use as a context manager.

    ``readonly`` opens it without the lock and without creating anything (``status``,
    ``--dry-run``); a database that does not exist yet then reads as empty."""

    def __init__(self, state_dir: Path, *, lock_timeout: float = 10.0, readonly: bool = False):
        self.path = state_dir / DB_NAME
        self._lock_fd: int | None = None
        if not readonly:
            try:
                state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StateError(f"cannot create: {exc.strerror}", where=str(state_dir)) from exc
            self._lock_fd = _lock(state_dir / LOCK_NAME, lock_timeout)
        try:
            self.db = self._open(readonly)
        except BaseException:
            self.close()
            raise

    def _open(self, readonly: bool) -> sqlite3.Connection:
        if not self.path.exists():
            if readonly:
                db = sqlite3.connect(":memory:", isolation_level=None)
                self._migrate(db)
                return db
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        try:
            if readonly:
                uri = self.path.as_uri() + "?mode=ro"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5)
            else:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(f"unusable state database: {exc}", where=str(self.path)) from exc
        if version > SCHEMA_VERSION:
            raise StateError(
                f"written by a newer pimsync (schema {version}, this one knows {SCHEMA_VERSION})",
                where=str(self.path),
            )
        if version < SCHEMA_VERSION:
            if readonly:
                raise StateError("needs an upgrade: run `pimsync run` first", where=str(self.path))
            self._migrate(db)
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction. A failure to write the database (a full disk, an I/O error)
        is a :class:`StateError` naming the file: nothing is lost by it, since a write is
        noted as pending before it is made and recognised by the next run."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            raise StateError(
                f"cannot record the sync state ({exc}); nothing was lost: what this run "
                "wrote is noted and the next run recognises it. Free some space (or fix "
                "the disk) and run again",
                where=str(self.path),
            ) from exc

    # records -------------------------------------------------------------------------
    def entries(self, pair: str, collection: str) -> dict[str, Entry]:
        rows = self.db.execute(
            "SELECT ident, a_href, a_etag, a_hash, a_unseen, b_href, b_etag, b_hash, b_unseen "
            "FROM records WHERE pair = ? AND collection = ?",
            (pair, collection),
        )
        out: dict[str, Entry] = {}
        for ident, ah, ae, ax, au, bh, be, bx, bu in rows:
            a = Known(ah, ae, ax, bool(au)) if ah is not None else None
            b = Known(bh, be, bx, bool(bu)) if bh is not None else None
            out[ident] = Entry(ident, a, b)
        return out

    def unseen(self, pair: str, collection: str, side: Side) -> list[str]:
        """The hrefs pimsync wrote to a side that it has not listed since."""
        column = "a" if side == "a" else "b"
        rows = self.db.execute(
            f"SELECT {column}_href FROM records WHERE pair = ? AND collection = ? "  # noqa: S608
            f"AND (a_unseen = 1 OR b_unseen = 1) AND {column}_unseen = 1",
            (pair, collection),
        )
        return [r[0] for r in rows]

    def seen(self, pair: str, collection: str, side: Side, idents: Iterable[str]) -> None:
        """A side has listed these records that pimsync wrote to it."""
        column = "a" if side == "a" else "b"
        self.db.executemany(
            f"UPDATE records SET {column}_unseen = 0 WHERE pair = ? AND collection = ? "  # noqa: S608
            "AND ident = ?",
            [(pair, collection, ident) for ident in idents],
        )

    def seen_all(self, pair: str, collection: str) -> None:
        """Both sides have listed every record written to them."""
        self.db.execute(
            "UPDATE records SET a_unseen = 0, b_unseen = 0 WHERE pair = ? AND collection = ? "
            "AND (a_unseen = 1 OR b_unseen = 1)",
            (pair, collection),
        )

    def without_base(self, pair: str, collection: str) -> list[str]:
        """Idents whose two sides were the same after the last sync but whose base (the
        content then) is missing: the next run that reads one of them stores it."""
        rows = self.db.execute(
            "SELECT ident FROM records WHERE pair = ? AND collection = ? AND base IS NULL "
            "AND a_hash = b_hash",
            (pair, collection),
        )
        return [r[0] for r in rows]

    def has_entries(self, pair: str, collection: str) -> bool:
        """Does the state remember any record of this collection? (One index seek.)"""
        row = self.db.execute(
            "SELECT 1 FROM records WHERE pair = ? AND collection = ? LIMIT 1", (pair, collection)
        ).fetchone()
        return row is not None

    def side_etags(self, pair: str, collection: str, side: Side) -> dict[str, str]:
        """href -> etag of one side as last synced (cheap: for the no-change check)."""
        column = "a" if side == "a" else "b"
        rows = self.db.execute(
            f"SELECT {column}_href, {column}_etag FROM records "  # noqa: S608 - fixed names
            f"WHERE pair = ? AND collection = ? AND {column}_href IS NOT NULL",
            (pair, collection),
        )
        return dict(rows)

    def base(self, pair: str, collection: str, ident: str) -> bytes | None:
        row = self.db.execute(
            "SELECT base FROM records WHERE pair = ? AND collection = ? AND ident = ?",
            (pair, collection, ident),
        ).fetchone()
        return row[0] if row else None

    def forms(self, pair: str, collection: str, ident: str) -> tuple[bytes | None, ...]:
        """The base and what each side stored where it differs from it: (base, a, b)."""
        row = self.db.execute(
            "SELECT base, a_stored, b_stored FROM records WHERE pair = ? AND collection = ? "
            "AND ident = ?",
            (pair, collection, ident),
        ).fetchone()
        return tuple(row) if row else (None, None, None)

    def set_stored(
        self, pair: str, collection: str, ident: str, side: Side, data: bytes | None
    ) -> None:
        """What a side stored of a record, where it differs from the base (None: the
        same). A new base (``put`` with one) clears both."""
        column = "a_stored" if side == "a" else "b_stored"
        self.db.execute(
            f"UPDATE records SET {column} = ? WHERE pair = ? AND collection = ? "  # noqa: S608
            "AND ident = ?",
            (data, pair, collection, ident),
        )

    def put(self, pair: str, collection: str, entry: Entry, base: object = _KEEP) -> None:
        a, b = entry.a, entry.b
        values = (
            a.href if a else None, a.etag if a else None, a.hash if a else None,
            int(a.unseen) if a else 0,
            b.href if b else None, b.etag if b else None, b.hash if b else None,
            int(b.unseen) if b else 0,
        )  # fmt: skip
        if base is _KEEP:
            self.db.execute(
                "INSERT INTO records (pair, collection, ident, a_href, a_etag, a_hash, "
                "a_unseen, b_href, b_etag, b_hash, b_unseen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (pair, collection, ident) DO UPDATE SET a_href = excluded.a_href, "
                "a_etag = excluded.a_etag, a_hash = excluded.a_hash, "
                "a_unseen = excluded.a_unseen, b_href = excluded.b_href, "
                "b_etag = excluded.b_etag, b_hash = excluded.b_hash, "
                "b_unseen = excluded.b_unseen",
                (pair, collection, entry.ident, *values),
            )
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO records (pair, collection, ident, a_href, a_etag, "
                "a_hash, a_unseen, b_href, b_etag, b_hash, b_unseen, base) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pair, collection, entry.ident, *values, base),
            )

    def forget(self, pair: str, collection: str, ident: str) -> None:
        self.db.execute(
            "DELETE FROM records WHERE pair = ? AND collection = ? AND ident = ?",
            (pair, collection, ident),
        )

    # pending writes ------------------------------------------------------------------
    def pending(self, pair: str, collection: str) -> list[Pending]:
        rows = self.db.execute(
            "SELECT ident, side, hash, other, base, prior, action FROM pending "
            "WHERE pair = ? AND collection = ?",
            (pair, collection),
        )
        return [Pending(*row) for row in rows]

    def add_pending(self, pair: str, collection: str, rows: Iterable[Pending]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO pending (pair, collection, ident, side, hash, other, base, "
            "prior, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (pair, collection, p.ident, p.side, p.hash, p.other, p.base, p.prior, p.action)
                for p in rows
            ],
        )

    def clear_pending(self, pair: str, collection: str, ident: str | None = None) -> None:
        if ident is None:
            self.db.execute(
                "DELETE FROM pending WHERE pair = ? AND collection = ?", (pair, collection)
            )
        else:
            self.db.execute(
                "DELETE FROM pending WHERE pair = ? AND collection = ? AND ident = ?",
                (pair, collection, ident),
            )

    # collections ---------------------------------------------------------------------
    def tokens(self, pair: str, collection: str) -> tuple[str | None, str | None]:
        row = self.db.execute(
            "SELECT a_token, b_token FROM collections WHERE pair = ? AND collection = ?",
            (pair, collection),
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def set_tokens(
        self, pair: str, collection: str, a_token: str | None, b_token: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO collections (pair, collection, a_token, b_token) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (pair, collection) DO UPDATE SET a_token = excluded.a_token, "
            "b_token = excluded.b_token",
            (pair, collection, a_token, b_token),
        )

    def finish_run(
        self, pair: str, collection: str, status: str, summary: str, failures: list[str]
    ) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO collections (pair, collection, last_sync, last_status, summary) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pair, collection) DO UPDATE SET "
            "last_sync = excluded.last_sync, last_status = excluded.last_status, "
            "summary = excluded.summary",
            (pair, collection, now, status, summary),
        )
        self.db.execute(
            "DELETE FROM failures WHERE pair = ? AND collection = ?", (pair, collection)
        )
        self.db.executemany(
            "INSERT INTO failures (pair, collection, where_, message, time) "
            "VALUES (?, ?, '', ?, ?)",
            [(pair, collection, message, now) for message in failures],
        )

    def meta(self, pair: str, collection: str) -> dict[str, str | None] | None:
        import json

        row = self.db.execute(
            "SELECT meta FROM collections WHERE pair = ? AND collection = ?", (pair, collection)
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def set_meta(self, pair: str, collection: str, meta: dict[str, str | None]) -> None:
        import json

        self.db.execute(
            "INSERT INTO collections (pair, collection, meta) VALUES (?, ?, ?) "
            "ON CONFLICT (pair, collection) DO UPDATE SET meta = excluded.meta",
            (pair, collection, json.dumps(meta, sort_keys=True)),
        )

    # conflicts -----------------------------------------------------------------------
    def add_conflict(self, conflict: SavedConflict) -> int | None:
        """Keep a losing version; return its id, or None if the same version of that
        record is kept already (a write planned again after a crash keeps it once)."""
        import json

        c = conflict
        same = self.db.execute(
            "SELECT 1 FROM conflicts WHERE pair = ? AND collection = ? AND ident = ? "
            "AND side = ? AND loser = ?",
            (c.pair, c.collection, c.ident, c.side, c.loser),
        ).fetchone()
        if same is not None:
            return None
        cur = self.db.execute(
            "INSERT INTO conflicts (pair, collection, ident, time, reason, side, properties, "
            "summary, kind, loser) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.pair, c.collection, c.ident, c.time or time.time(), c.reason, c.side,
             json.dumps(list(c.properties)), c.summary, c.kind, c.loser),
        )  # fmt: skip
        return cur.lastrowid

    def conflicts(self, conflict_id: int | None = None) -> list[SavedConflict]:
        import json

        sql = (
            "SELECT id, pair, collection, ident, time, reason, side, properties, summary, kind, "
            "loser FROM conflicts"
        )
        rows = (
            self.db.execute(sql + " WHERE id = ?", (conflict_id,))
            if conflict_id is not None
            else self.db.execute(sql + " ORDER BY id")
        )
        return [
            SavedConflict(p, c, i, r, s, tuple(json.loads(props)), summ, k, loser, t, cid)
            for cid, p, c, i, t, r, s, props, summ, k, loser in rows
        ]

    def forget_conflict(self, conflict_id: int) -> bool:
        return self.db.execute("DELETE FROM conflicts WHERE id = ?", (conflict_id,)).rowcount > 0

    # discovery -----------------------------------------------------------------------
    def discovered(self, storage: str, url: str, max_age: float) -> list[dict] | None:
        """The collections found on a server by an earlier run, if not older than max_age
        seconds and found from the same URL."""
        import json

        row = self.db.execute(
            "SELECT url, found, time FROM discovery WHERE storage = ?", (storage,)
        ).fetchone()
        if row is None or row[0] != url or time.time() - row[2] > max_age:
            return None
        return json.loads(row[1])

    def save_discovery(self, storage: str, url: str, found: list[dict]) -> None:
        import json

        self.db.execute(
            "INSERT OR REPLACE INTO discovery (storage, url, found, time) VALUES (?, ?, ?, ?)",
            (storage, url, json.dumps(found), time.time()),
        )

    def known_collections(self, pair: str) -> list[str]:
        found = {
            r[0]
            for r in self.db.execute("SELECT collection FROM collections WHERE pair = ?", (pair,))
        }
        # the collections of the records: one index seek per collection, not a scan of
        # every record (rows hold their base, so a scan reads the whole table)
        row = self.db.execute(
            "SELECT collection FROM records WHERE pair = ? ORDER BY collection LIMIT 1", (pair,)
        ).fetchone()
        while row is not None:
            found.add(row[0])
            row = self.db.execute(
                "SELECT collection FROM records WHERE pair = ? AND collection > ? "
                "ORDER BY collection LIMIT 1",
                (pair, row[0]),
            ).fetchone()
        return sorted(found)

    def status(self) -> list[CollectionState]:
        counts = dict(
            ((p, c), n)
            for p, c, n in self.db.execute(
                "SELECT pair, collection, count(*) FROM records GROUP BY pair, collection"
            )
        )
        failures: dict[tuple[str, str], list[str]] = {}
        for p, c, message in self.db.execute(
            "SELECT pair, collection, message FROM failures ORDER BY rowid"
        ):
            failures.setdefault((p, c), []).append(message)
        rows = self.db.execute(
            "SELECT pair, collection, a_token, b_token, last_sync, last_status, summary "
            "FROM collections ORDER BY pair, collection"
        ).fetchall()
        seen = {(r[0], r[1]) for r in rows}
        out = [
            CollectionState(
                *r, records=counts.get((r[0], r[1]), 0), failures=failures.get((r[0], r[1]), [])
            )
            for r in rows
        ]
        for key, n in sorted(counts.items()):
            if key not in seen:
                out.append(CollectionState(*key, None, None, None, None, None, n, []))
        return out
