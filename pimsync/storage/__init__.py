"""Storage adapters behind one small interface (see ``base``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pimsync.errors import ConfigError

if TYPE_CHECKING:
    from pimsync.config import StorageConfig
    from pimsync.storage.base import Storage


def open_storage(cfg: StorageConfig) -> Storage:
    """Build the adapter a storage's config asks for."""
    if cfg.type == "vdir":
        from pimsync.storage.vdir import VdirStorage

        assert cfg.path is not None and cfg.fileext is not None
        return VdirStorage(cfg.name, cfg.path, cfg.fileext, cfg.kind, cfg.read_only)
    if cfg.type == "file":
        from pimsync.storage.singlefile import SingleFileStorage

        assert cfg.path is not None
        return SingleFileStorage(cfg.name, cfg.path, cfg.kind, cfg.read_only)
    raise ConfigError(
        f"storages.{cfg.name}.type: {cfg.type!r} is not available in this version of pimsync; "
        'use "vdir" or "file"'
    )
