"""Command line: ``pimsync [--config PATH] [-v|-vv|--quiet] COMMAND``.

``-v`` prints every action; ``-vv`` also every HTTP request and answer, on stderr (see
``pimsync.storage.dav.http.DEBUG``: credentials and cookies withheld).

Exit status: 0 everything synced; 1 some records, collections or pairs failed; 2 bad usage
or bad config; 130 / 143 stopped by SIGINT / SIGTERM (what landed is recorded).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from pimsync import __version__
from pimsync.errors import ConfigError, LockTimeout, PimsyncError, StateError, Unreachable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with our own wording
        self.print_usage(sys.stderr)
        print(f"pimsync: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="print every action; -vv: also every HTTP request and answer, on stderr (for "
        "bug reports: credentials and cookies are withheld, record data is not)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only errors"
    )
    parser = _Parser(
        prog="pimsync",
        description="Two-way sync of calendars and contacts.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"pimsync {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default: $PIMSYNC_CONFIG, else $XDG_CONFIG_HOME/pimsync/config.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    run = sub.add_parser("run", parents=[common], help="sync the pairs (all, or those named)")
    run.add_argument("pairs", nargs="*", metavar="PAIR", help="pairs to sync (default: all)")
    run.add_argument("--dry-run", action="store_true", help="print what would be done, do nothing")
    run.add_argument(
        "--force-delete",
        action="store_true",
        help="propagate deletions even when a side lists no records at all, or when a run "
        "would delete more than the pair's max_delete (half of a collection by default)",
    )
    sub.add_parser("status", parents=[common], help="what the last runs did, per collection")
    sub.add_parser("check", parents=[common], help="validate the config and look at every storage")
    sub.add_parser(
        "discover", parents=[common], help="find the collections of every storage (asks servers)"
    )
    conflicts = sub.add_parser(
        "conflicts", parents=[common], help="the losing versions of conflicts: list, show, restore"
    )
    conflicts.add_argument(
        "action", nargs="?", default="list", choices=("list", "show", "restore", "forget")
    )
    conflicts.add_argument("id", nargs="?", type=int, metavar="ID")
    export = sub.add_parser("export", parents=[common], help="make archives now (all, or named)")
    export.add_argument("exports", nargs="*", metavar="EXPORT")
    archive = sub.add_parser("archive", parents=[common], help="list, verify or restore archives")
    asub = archive.add_subparsers(dest="archive_command", metavar="ACTION", parser_class=_Parser)
    asub.required = True
    alist = asub.add_parser("list", parents=[common], help="the archives of every export")
    alist.add_argument("exports", nargs="*", metavar="EXPORT")
    averify = asub.add_parser("verify", parents=[common], help="check an archive")
    averify.add_argument("file", metavar="FILE")
    arestore = asub.add_parser("restore", parents=[common], help="put an archive back")
    arestore.add_argument("file", metavar="FILE")
    arestore.add_argument(
        "--to", required=True, metavar="STORAGE", help="the storage to restore to"
    )
    arestore.add_argument("--collection", metavar="C", help="only this collection")
    arestore.add_argument(
        "--from", dest="source", metavar="STORAGE",
        help="only the collections archived from this storage",
    )  # fmt: skip
    arestore.add_argument(
        "--exact", action="store_true", help="also delete records the archive does not hold"
    )
    return parser


class ConsoleReporter:
    def __init__(self, out: TextIO, err: TextIO, verbose: bool | int, quiet: bool) -> None:
        self.out, self.err = out, err
        self.verbose, self.quiet = verbose, quiet
        self.dry_run = False
        self._skipped: dict[str, tuple[str, list[str]]] = {}

    #: transfers shorter than this draw no bar
    PROGRESS_MIN = 100

    def action(self, line: str) -> None:
        if self.verbose:
            self._clear()
            print(line, file=self.out)

    def progress(self, where: str, phase: str, done: int, total: int) -> None:
        """A bar on a terminal (stderr) for long transfers; nothing under cron or systemd."""
        if self.quiet or total < self.PROGRESS_MIN or not self.err.isatty():
            return
        width = 30
        filled = width * done // total
        bar = "#" * filled + "-" * (width - filled)
        self.err.write(f"\r{where}: {phase} [{bar}] {done}/{total}\x1b[K")
        self.err.flush()
        self._bar = True

    def _clear(self) -> None:
        if getattr(self, "_bar", False):
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._bar = False

    def error(self, line: str) -> None:
        self._clear()
        print(f"error: {line}", file=self.err)

    def skipped(self, where: str, exc: object) -> None:
        """A collection or pair not synced because its server did not answer earlier in
        the run: one line per server at the end (:meth:`report_skipped`)."""
        origin = getattr(exc, "origin", "") or "the server"
        message = str(getattr(exc, "message", exc)).removeprefix("skipped: ")
        self._skipped.setdefault(origin, (message, []))[1].append(where)

    def report_skipped(self) -> None:
        for message, wheres in self._skipped.values():
            self.error(f"{message}: skipped {', '.join(wheres)}")
        self._skipped.clear()

    def collection_done(self, pair: str, result: object) -> None:
        self._clear()
        if not self.quiet:
            from pimsync.sync import CollectionResult

            assert isinstance(result, CollectionResult)
            if result.stopped:
                return  # already said as an error
            if self.dry_run:
                print(
                    f"{pair}/{result.collection}: dry run, "
                    f"{plural(len(result.dry_run), 'action')} planned, nothing written",
                    file=self.out,
                )
            else:
                print(f"{pair}/{result.collection}: {result.summary()}", file=self.out)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    quiet = getattr(args, "quiet", False)
    if verbose and quiet:
        print("pimsync: error: -v and --quiet exclude each other", file=sys.stderr)
        return EXIT_USAGE
    reporter = ConsoleReporter(sys.stdout, sys.stderr, verbose, quiet)
    if verbose >= 2:
        _debug_http(reporter)
    if args.command == "archive" and args.archive_command == "verify":
        return _verify(args.file)  # an archive is checked without any config
    from pimsync import interrupt

    try:
        with interrupt.handling():
            return _command(args, reporter)
    except interrupt.Interrupted as exc:
        reporter._clear()
        print(
            f"pimsync: stopped by {interrupt.signal_name(exc.signum)}; what was written is "
            "recorded, the next run goes on from there",
            file=sys.stderr,
        )
        import threading

        if threading.active_count() > 1:  # a write abandoned in flight: do not wait for it
            import os

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_status)
        return exc.exit_status


def _debug_http(reporter: ConsoleReporter) -> None:
    """-vv: every HTTP request and answer on stderr."""
    from pimsync.storage.dav import http

    def line(text: str) -> None:
        reporter._clear()
        print(text, file=reporter.err, flush=True)

    http.DEBUG = line


def _command(args: argparse.Namespace, reporter: ConsoleReporter) -> int:
    try:
        from pimsync.config import find_config, load_config

        config = load_config(find_config(args.config))
        if args.command == "run":
            return _run(config, args, reporter)
        if args.command == "status":
            return _status(config)
        if args.command == "discover":
            return _discover(config)
        if args.command == "conflicts":
            return _conflicts(config, args, reporter)
        if args.command == "export":
            return _export(config, args.exports, reporter)
        if args.command == "archive":
            return _archive(config, args, reporter)
        return _check(config)
    except ConfigError as exc:
        print(f"pimsync: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LockTimeout, StateError) as exc:
        print(f"pimsync: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("pimsync: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pimsync archive list | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(config: object, args: argparse.Namespace, reporter: ConsoleReporter) -> int:
    from pimsync.config import Config
    from pimsync.plan import Options
    from pimsync.state import StateDB
    from pimsync.storage import check_supported, open_storage, remember_discovery
    from pimsync.sync import PairSettings, sync_pair

    assert isinstance(config, Config)
    reporter.dry_run = args.dry_run
    unknown = [p for p in args.pairs if p not in config.pairs]
    if unknown:
        print(
            f"pimsync: no pair named {', '.join(map(repr, unknown))} in {config.path}; "
            f"pairs: {', '.join(config.pairs)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    names = args.pairs or list(config.pairs)
    for name in names:  # a storage this version cannot use: exit 2 before anything syncs
        for n in (config.pairs[name].a, config.pairs[name].b):
            check_supported(config.storages[n])
    failed = False
    state = StateDB(
        config.general.state_dir, lock_timeout=config.general.lock_timeout, readonly=args.dry_run
    )
    with state as db:
        opened: dict[str, object] = {}
        for name in names:
            pair = config.pairs[name]
            try:
                for n in (pair.a, pair.b):
                    if n not in opened:
                        opened[n] = open_storage(config.storages[n], db)
                settings = PairSettings(
                    name,
                    pair.collections,
                    Options(
                        pair.conflict,  # type: ignore[arg-type]
                        fallback=pair.conflict_fallback,  # type: ignore[arg-type]
                        max_delete=pair.max_delete,
                    ),
                )
                results = sync_pair(
                    settings,
                    {"a": opened[pair.a], "b": opened[pair.b]},  # type: ignore[arg-type]
                    db,
                    reporter,  # type: ignore[arg-type]
                    dry_run=args.dry_run,
                    force_delete=args.force_delete,
                )
            except ConfigError:
                raise
            except Unreachable as exc:  # its server timed out earlier in the run
                reporter.skipped(name, exc)
                failed = True
                continue
            except PimsyncError as exc:
                # one broken storage or server fails only the pairs that use it
                reporter.error(f"{name}: {exc}")
                failed = True
                continue
            failed = failed or any(r.failed for r in results)
        reporter.report_skipped()
        if not args.dry_run:
            remember_discovery(opened.values(), db)  # type: ignore[arg-type]
    # exports that are due, after the sync and outside the state lock: an export never
    # keeps another run from syncing
    if not args.dry_run and not args.pairs:
        from pimsync.export.jobs import due

        names = [e.name for e in due(config)]
        if names and _export(config, names, reporter) != EXIT_OK:
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _export(config: object, names: list[str], reporter: ConsoleReporter) -> int:
    from pimsync.config import Config
    from pimsync.export.jobs import IncompleteExport, make_export

    assert isinstance(config, Config)
    unknown = [n for n in names if n not in config.exports]
    if unknown:
        known = ", ".join(config.exports) or "none"
        print(f"pimsync: no export named {', '.join(map(repr, unknown))}; exports: {known}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    failed = False
    for name in names or list(config.exports):
        try:
            path = make_export(config, config.exports[name], log=reporter.action)
        except IncompleteExport as exc:
            reporter.error(f"export {name}: incomplete archive {exc}")
            failed = True
            continue
        except PimsyncError as exc:
            reporter.error(f"export {name}: {exc} (earlier archives are untouched)")
            failed = True
            continue
        if not reporter.quiet:
            print(f"export {name}: {path}", file=reporter.out)
    return EXIT_FAILED if failed else EXIT_OK


def _archive(config: object, args: argparse.Namespace, reporter: ConsoleReporter) -> int:
    from pathlib import Path

    from pimsync.config import Config

    assert isinstance(config, Config)
    if args.archive_command == "list":
        from pimsync.export.jobs import archives

        unknown = [n for n in args.exports if n not in config.exports]
        if unknown:
            print(f"pimsync: no export named {', '.join(map(repr, unknown))}", file=sys.stderr)
            return EXIT_USAGE
        for name in args.exports or list(config.exports):
            export = config.exports[name]
            made = archives(export)
            print(f"export {name} ({export.path}): {len(made)} archives")
            for when, path in made:
                size = path.stat().st_size
                print(f"  {when.strftime('%Y-%m-%d %H:%M:%S')} UTC  {size:>10} bytes  {path}")
        return EXIT_OK
    path = Path(args.file).expanduser()
    from pimsync.export.restore import restore
    from pimsync.storage import open_storage

    if args.to not in config.storages:
        print(f"pimsync: no storage named {args.to!r}; storages: {', '.join(config.storages)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE

    def done(result: object) -> None:
        print(f"{args.to}/{result.summary()}")  # type: ignore[attr-defined]
        for error in result.errors:  # type: ignore[attr-defined]
            reporter.error(f"{args.to}/{result.collection}: {error}")  # type: ignore[attr-defined]

    try:
        results = restore(
            path,
            open_storage(config.storages[args.to]),
            collection=args.collection,
            source=args.source,
            exact=args.exact,
            log=reporter.action,
            done=done,
        )
    except PimsyncError as exc:
        print(f"pimsync: archive restore: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if any(r.errors for r in results) else EXIT_OK


def _conflicts(config: object, args: argparse.Namespace, reporter: ConsoleReporter) -> int:
    from pimsync.config import Config
    from pimsync.state import StateDB

    assert isinstance(config, Config)
    if args.action != "list" and args.id is None:
        print(f"pimsync: conflicts {args.action} needs an ID (see `pimsync conflicts`)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    general = config.general
    if args.action in ("list", "show"):
        with StateDB(general.state_dir, readonly=True) as db:
            found = db.conflicts(args.id)
            if args.action == "show" and found:
                current = db.base(found[0].pair, found[0].collection, found[0].ident)
    else:
        with StateDB(general.state_dir, lock_timeout=general.lock_timeout) as db:
            found = db.conflicts(args.id)
            if found and args.action == "forget":
                db.forget_conflict(found[0].id)
                print(f"conflict {found[0].id} forgotten")
                return EXIT_OK
    if args.id is not None and not found:
        print(f"pimsync: no conflict {args.id} (see `pimsync conflicts`)", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "list":
        if not found:
            print("no conflicts kept")
        for c in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.time))
            what = f" ({', '.join(c.properties)})" if c.properties else ""
            print(f"{c.id}: {c.pair}/{c.collection} {c.ident} {c.summary!r}, {when}: "
                  f"{c.reason}; {c.side}'s version lost{what}")  # fmt: skip
        return EXIT_OK
    c = found[0]
    if args.action == "show":
        import difflib

        lost = c.loser.decode("utf-8", "replace").splitlines()
        now = (current or b"").decode("utf-8", "replace").splitlines()
        print(f"conflict {c.id}: {c.pair}/{c.collection} {c.ident}: {c.reason}")
        for line in difflib.unified_diff(lost, now, f"lost version ({c.side})",
                                         "current version", lineterm=""):  # fmt: skip
            print(line)
        return EXIT_OK
    return _restore_conflict(config, c, reporter)


def _restore_conflict(config: object, c: object, reporter: ConsoleReporter) -> int:
    """Write the kept version back on the side it lost on; a sync of the pair takes it
    to the other side like any edit."""
    from pimsync.config import Config
    from pimsync.model import parse_record
    from pimsync.plan import Options
    from pimsync.state import SavedConflict, StateDB
    from pimsync.storage import open_storage
    from pimsync.sync import PairSettings, sync_pair

    assert isinstance(config, Config) and isinstance(c, SavedConflict)
    pair = config.pairs.get(c.pair)
    if pair is None:
        print(f"pimsync: pair {c.pair!r} is no longer in the config", file=sys.stderr)
        return EXIT_FAILED
    general = config.general
    with StateDB(general.state_dir, lock_timeout=general.lock_timeout) as db:
        try:
            storage = open_storage(config.storages[pair.a if c.side == "a" else pair.b], db)
            record = parse_record(c.loser, storage.kind, f"conflict {c.id}")
            col = storage.collection(c.collection)
            entry = db.entries(c.pair, c.collection).get(c.ident)
            known = entry.side(c.side) if entry else None  # type: ignore[arg-type]
            if known is None:
                col.create(record)
            else:
                col.update(known.href, record, known.etag)
            col.flush()
        except PimsyncError as exc:
            reporter.error(f"conflict {c.id}: cannot restore: {exc}")
            return EXIT_FAILED
        try:
            storages = {n: open_storage(config.storages[n], db) for n in (pair.a, pair.b)}
            settings = PairSettings(
                c.pair,
                (c.collection,),
                Options(
                    pair.conflict,  # type: ignore[arg-type]
                    fallback=pair.conflict_fallback,  # type: ignore[arg-type]
                    max_delete=pair.max_delete,
                ),
            )
            results = sync_pair(settings, {"a": storages[pair.a], "b": storages[pair.b]}, db,
                                reporter)  # type: ignore[arg-type]  # fmt: skip
        except PimsyncError as exc:
            results = []
            reporter.error(f"conflict {c.id}: {exc}")
        if not results or any(r.failed for r in results):
            print(f"conflict {c.id}: the kept version is back on {c.side}; the sync to the other "
                  "side did not finish: it goes on with the next `pimsync run`")  # fmt: skip
            return EXIT_FAILED
        with db.transaction():
            db.forget_conflict(c.id)
    print(f"conflict {c.id} restored: the kept version of {c.ident} is back on both sides")
    return EXIT_OK


def _verify(file: str) -> int:
    from pathlib import Path

    from pimsync.export.jobs import unreadable
    from pimsync.export.verify import verify

    path = Path(file).expanduser()
    try:
        result = verify(path)
    except PimsyncError as exc:
        print(f"pimsync: archive verify: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{path}: ok, made {result.created}, {plural(result.collections, 'collection')}, "
        f"{plural(result.records, 'record')}"
    )
    for warning in result.warnings:
        print(f"{path}: warning: {warning}")
    missing = unreadable(path)
    if missing:
        print(f"{path}: note: incomplete: {plural(len(missing), 'record')} could not be read "
              f"when it was made (first: {missing[0]})")  # fmt: skip
    return EXIT_OK


def _status(config: object) -> int:
    from pimsync.config import Config
    from pimsync.state import StateDB

    assert isinstance(config, Config)
    with StateDB(config.general.state_dir, readonly=True) as db:
        rows = db.status()
    if not rows:
        print(f"nothing synced yet (state in {config.general.state_dir})")
        return EXIT_OK
    failed = False
    for row in rows:
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.last_sync))
            if row.last_sync
            else "never"
        )
        status = row.last_status or "-"
        print(f"{row.pair}/{row.collection}: {row.records} records, last sync {when}, {status}")
        if row.summary and status != "stopped":
            print(f"    last run: {row.summary}")
        for failure in row.failures:
            print(f"    failure: {failure}")
        failed = failed or status not in ("ok", "-")
    return EXIT_FAILED if failed else EXIT_OK


def _discover(config: object) -> int:
    from pimsync.config import Config
    from pimsync.state import StateDB
    from pimsync.storage import check_supported, open_storage, remember_discovery

    assert isinstance(config, Config)
    for cfg in config.storages.values():
        check_supported(cfg)
    failed = False
    with StateDB(config.general.state_dir, lock_timeout=config.general.lock_timeout) as db:
        for name, cfg in config.storages.items():
            try:
                storage = open_storage(cfg)  # no cache: ask the server now
                infos = storage.collections()
            except PimsyncError as exc:
                print(f"storage {name}: error: {exc}", file=sys.stderr)
                failed = True
                continue
            print(f"storage {name} ({cfg.type}, {cfg.path or cfg.url}): "
                  f"{plural(len(infos), 'collection')}")  # fmt: skip
            for info in infos:
                extra = [f"{k} {v!r}" for k, v in (("name", info.displayname),
                                                     ("color", info.color)) if v]  # fmt: skip
                print(f"  {info.id}" + (f" ({', '.join(extra)})" if extra else ""))
            remember_discovery([storage], db)
    return EXIT_FAILED if failed else EXIT_OK


def _check(config: object) -> int:
    from pimsync.config import Config
    from pimsync.storage import check_supported, open_storage

    assert isinstance(config, Config)
    for cfg in config.storages.values():
        check_supported(cfg)
    print(f"config {config.path}: ok")
    failed = False
    found: dict[str, set[str]] = {}
    for name, cfg in config.storages.items():
        where = cfg.path or cfg.url
        try:
            ids = [c.id for c in open_storage(cfg).collections()]
        except ConfigError:
            raise
        except PimsyncError as exc:
            print(f"storage {name} ({cfg.type}, {where}): error: {exc}", file=sys.stderr)
            failed = True
            continue
        found[name] = set(ids)
        ro = ", read-only" if cfg.read_only else ""
        listed = ", ".join(ids) if ids else "none yet"
        print(
            f"storage {name} ({cfg.type}, {where}{ro}): {plural(len(ids), 'collection')}: {listed}"
        )
    from pimsync.sync import pick_collections

    for name, pair in config.pairs.items():
        if pair.a in found and pair.b in found:
            cols = pick_collections(pair.collections, found[pair.a], found[pair.b])
            shown = ", ".join(cols) if cols else "none"
            print(
                f"pair {name}: {pair.a} <-> {pair.b}, conflict {pair.conflict!r}, "
                f"collections: {shown}"
            )
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
