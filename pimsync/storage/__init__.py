"""Storage adapters behind one small interface (see ``base``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pimsync.errors import ConfigError

if TYPE_CHECKING:
    from pimsync.config import StorageConfig
    from pimsync.state import StateDB
    from pimsync.storage.base import Storage
    from pimsync.storage.dav.auth import Authenticator

#: How long the collections found on a server are trusted before asking again (seconds).
#: ``pimsync discover`` asks at once.
DISCOVERY_MAX_AGE = 24 * 3600.0


SUPPORTED = ("vdir", "file", "caldav", "carddav", "webcal")

#: units of a size in the config (lower case) and their factors
_UNITS = {
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "b": 1,
    "": 1,
}
SIZE_HELP = (
    'use a whole number of bytes or a size like "64 MiB", "500 KB" or "1 GiB" '
    "(units: B, KB, MB, GB = powers of 1000; KiB, MiB, GiB = powers of 1024)"
)


def parse_size(value: object) -> int:
    """A size in bytes from a config value: an int, or a string like ``"64 MiB"``,
    ``"500 KB"``, ``"1.5 GiB"``. ValueError (saying what is allowed) otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(SIZE_HELP)
    if isinstance(value, int):
        return value
    import re  # config checking only

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a size; {SIZE_HELP}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(size: int) -> str:
    """A size for messages: ``"32 MiB"``, ``"500 KB"``, ``"100 bytes"``; the exact form
    with the smallest number, else MiB (or KiB, GiB) with one decimal."""
    units = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
    units += (("GB", 10**9), ("MB", 10**6), ("KB", 10**3))
    exact = [(size // f, u) for u, f in units if size >= f and size % f == 0]
    if exact:
        n, unit = min(exact)
        return f"{n} {unit}"
    for unit, factor in units[:3]:
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


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
        from pimsync.storage.dav.http import HttpClient
        from pimsync.storage.dav.storage import DavStorage, Found

        assert cfg.url is not None
        client = HttpClient(
            cfg.url,
            auth=_authenticator(cfg),
            timeout=cfg.timeout,
            max_connections=cfg.connections,
            name=cfg.name,
            max_response_size=cfg.max_response_size,
            max_record_size=cfg.max_record_size,
            max_request_time=cfg.max_request_time,
            **_transport(cfg),
        )
        cached = db.discovered(cfg.name, cfg.url, DISCOVERY_MAX_AGE) if db is not None else None
        found = [Found.from_json(f) for f in cached] if cached is not None else None
        return DavStorage(cfg.name, client, cfg.kind, cfg.read_only, found)
    if cfg.type == "webcal":
        from pimsync.storage.dav.http import HttpClient
        from pimsync.storage.webcal import WebcalStorage

        assert cfg.url is not None
        client = HttpClient(
            cfg.url,
            timeout=cfg.timeout,
            name=cfg.name,
            max_response_size=cfg.max_response_size,
            max_request_time=cfg.max_request_time,
            **_transport(cfg),
        )
        return WebcalStorage(cfg.name, client)
    check_supported(cfg)
    raise AssertionError(cfg.type)


def _authenticator(cfg: StorageConfig) -> Authenticator | None:
    """How a caldav/carddav storage logs in: a Bearer token, a password, or not at all.
    A password command runs here (once per run); a token command too."""
    from pimsync.credentials import get_password, get_token
    from pimsync.storage.dav.auth import BearerAuth, PasswordAuth

    if cfg.token_command is not None:
        get_token(cfg)  # fails the storage at once if there is no token

        def token(refresh: bool) -> str:
            return get_token(cfg, refresh=refresh).reveal()

        return BearerAuth(token)
    secret = get_password(cfg)
    if cfg.username is None:
        return None
    return PasswordAuth(cfg.username, secret.reveal() if secret is not None else "", cfg.auth)


def _transport(cfg: StorageConfig) -> dict[str, object]:
    """The HttpClient settings of TLS and proxies."""
    from pimsync.storage.dav.proxy import parse_proxy

    proxy: object = "environment"
    if cfg.proxy is not None:
        proxy = parse_proxy(cfg.proxy, f"storages.{cfg.name}.proxy") if cfg.proxy else None
    return {
        "verify": cfg.verify,
        "fingerprint": cfg.verify_fingerprint,
        "client_cert": cfg.client_cert,
        "client_key": cfg.client_key,
        "proxy": proxy,
    }


def remember_discovery(storages: Iterable[Storage], db: StateDB) -> None:
    """Keep what DAV storages discovered in this run for the next runs."""
    for storage in storages:
        if getattr(storage, "discovered", False):
            found = [f.to_json() for f in storage.found()]  # type: ignore[attr-defined]
            with db.transaction():
                db.save_discovery(storage.name, storage.url, found)  # type: ignore[attr-defined]
