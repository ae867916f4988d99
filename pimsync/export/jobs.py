"""Exports as the user configured them: which are due, making one, and retention."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pimsync.errors import PimsyncError
from pimsync.export.retention import to_keep
from pimsync.export.schedule import is_due, parse_archive_name

if TYPE_CHECKING:
    from pimsync.config import Config, ExportConfig


def archives(export: ExportConfig) -> list[tuple[datetime, Path]]:
    """This export's archives, oldest first (only files named as pimsync names them)."""
    try:
        names = os.listdir(export.path)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        when = parse_archive_name(export.name, name)
        if when is not None and (export.path / name).is_file():
            found.append((when, export.path / name))
    return sorted(found)


def due(config: Config, now: datetime | None = None) -> list[ExportConfig]:
    now = now or datetime.now(UTC)
    out = []
    for export in config.exports.values():
        made = archives(export)
        if is_due(export.every, made[-1][0] if made else None, now):
            out.append(export)
    return out


def prune(export: ExportConfig, log: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Delete the archives the retention policy does not keep. Never touches a file that
    is not one of this export's archives; runs only after a new archive verified."""
    made = archives(export)
    keep = to_keep([when for when, _ in made], export.keep)
    removed = []
    for when, path in made:
        if when not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
            log(f"{export.name}: removed {path.name} (retention)")
    return removed


def make_export(
    config: Config,
    export: ExportConfig,
    *,
    now: datetime | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Path:
    from pimsync.export.archive import write_archive
    from pimsync.storage import open_storage

    storages = [open_storage(config.storages[name]) for name in export.storages]
    written = write_archive(export.name, storages, export.path, fmt=export.format, now=now, log=log)
    path, missing = written.path, written.errors
    if missing:
        # the archive keeps all that could be read, but older archives may hold what
        # this one lacks: nothing is pruned, and the caller reports the problem
        raise IncompleteExport(
            f"{len(missing)} record{'s' * (len(missing) != 1)} could not be read and "
            f"{'is' if len(missing) == 1 else 'are'} not in it "
            f"(first: {missing[0]}); no older archive was removed",
            where=str(path),
        )
    prune(export, log)
    return path


class IncompleteExport(PimsyncError):
    """An archive was made, but some records could not be read into it."""


def unreadable(path: Path) -> list[str]:
    """The errors an archive's manifest notes (records that could not be read)."""
    from pimsync.export.reader import Archive

    with Archive(path) as archive:
        return [e for c in archive.manifest()["collections"] for e in c.get("errors", [])]
