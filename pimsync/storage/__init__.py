"""Storage adapters behind one small interface (see ``base``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pimsync.errors import ConfigError

if TYPE_CHECKING:
    from pimsync.config import StorageConfig
    from pimsync.state import StateDB
    from pimsync.storage.base import Storage

#: How long the collections found on a server are trusted before asking again (seconds).
#: ``pimsync discover`` asks at once.
DISCOVERY_MAX_AGE = 24 * 3600.0


SUPPORTED = ("vdir", "file", "caldav", "carddav", "webcal")


def check_supported(cfg: StorageConfig) -> None:
    """ConfigError for a storage type this version cannot use."""
    if cfg.type not in SUPPORTED:
        raise ConfigError(
            f"storages.{cfg.name}.type: {cfg.type!r} is not available in this version of "
            f"pimsync; use one of {', '.join(map(repr, SUPPORTED))}"
        )


def open_storage(cfg: StorageConfig, db: StateDB | None = None) -> Storage:
    """Build the adapter a storage's config asks for. DAV storages reuse what an earlier
    run discovered (kept in the state database) while it is fresh."""
    if cfg.type == "vdir":
        from pimsync.storage.vdir import VdirStorage

        assert cfg.path is not None and cfg.fileext is not None
        return VdirStorage(cfg.name, cfg.path, cfg.fileext, cfg.kind, cfg.read_only)
    if cfg.type == "file":
        from pimsync.storage.singlefile import SingleFileStorage

        assert cfg.path is not None
        return SingleFileStorage(cfg.name, cfg.path, cfg.kind, cfg.read_only)
    if cfg.type in ("caldav", "carddav"):
        from pimsync.credentials import get_password
        from pimsync.storage.dav.http import HttpClient
        from pimsync.storage.dav.storage import DavStorage, Found

        assert cfg.url is not None
        secret = get_password(cfg)
        client = HttpClient(
            cfg.url,
            username=cfg.username,
            password=secret.reveal() if secret is not None else None,
            verify=cfg.verify,
            timeout=cfg.timeout,
            max_connections=cfg.connections,
        )
        cached = db.discovered(cfg.name, cfg.url, DISCOVERY_MAX_AGE) if db is not None else None
        found = [Found.from_json(f) for f in cached] if cached is not None else None
        return DavStorage(cfg.name, client, cfg.kind, cfg.read_only, found)
    if cfg.type == "webcal":
        from pimsync.storage.dav.http import HttpClient
        from pimsync.storage.webcal import WebcalStorage

        assert cfg.url is not None
        return WebcalStorage(cfg.name, HttpClient(cfg.url, verify=cfg.verify, timeout=cfg.timeout))
    check_supported(cfg)
    raise AssertionError(cfg.type)


def remember_discovery(storages: Iterable[Storage], db: StateDB) -> None:
    """Keep what DAV storages discovered in this run for the next runs."""
    for storage in storages:
        if getattr(storage, "discovered", False):
            found = [f.to_json() for f in storage.found()]  # type: ignore[attr-defined]
            with db.transaction():
                db.save_discovery(storage.name, storage.url, found)  # type: ignore[attr-defined]
