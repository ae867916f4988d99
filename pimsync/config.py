"""The config file: find it, read it (TOML), check it, and turn it into typed dataclasses.

Every problem is a :class:`~pimsync.errors.ConfigError` whose ``where`` is the config file
(``file:line`` for TOML syntax errors) and whose message starts with the dotted key
(``pairs.calendars.conflict: ...``) and says what is allowed.

This module is imported on every run: it uses the standard library only (and
:mod:`pimsync.export.schedule`, which does too, for ``every =`` intervals, and
:mod:`pimsync.storage` for sizes like ``max_response_size = "64 MiB"``), and imports
``platformdirs`` (for the default ``state_dir``) and ``difflib`` (for "did you mean")
only when they are needed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pimsync.errors import ConfigError
from pimsync.export.schedule import ARCHIVE_FORMATS, DEFAULT_ARCHIVE_FORMAT, parse_interval

__all__ = [
    "ARCHIVE_FORMATS",
    "CONFLICT_FALLBACKS",
    "CONFLICT_POLICIES",
    "COLLECTIONS_KEYWORDS",
    "Config",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "EXAMPLE_CONFIG",
    "ExportConfig",
    "GeneralConfig",
    "KeepPolicy",
    "PairConfig",
    "STORAGE_TYPES",
    "StorageConfig",
    "default_state_dir",
    "find_config",
    "load_config",
]

STORAGE_TYPES: tuple[str, ...] = ("vdir", "file", "caldav", "carddav", "webcal")
CONFLICT_FALLBACKS: tuple[str, ...] = ("a wins", "b wins", "newest", "keep both")
CONFLICT_POLICIES: tuple[str, ...] = ("merge", *CONFLICT_FALLBACKS)
COLLECTIONS_KEYWORDS: tuple[str, ...] = ("all", "from a", "from b")
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECTIONS = 4  # requests to one server at once
COLLECTION_PLACEHOLDER = "{collection}"

# file extension -> kind of records ("ics" or "vcf")
_EXT_KIND: dict[str, str] = {".ics": "ics", ".vcf": "vcf", ".vcard": "vcf"}
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")
_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END = " (at end of document)"

EXAMPLE_CONFIG = """\
[storages.laptop]
type = "vdir"
path = "~/.calendars"          # one sub-directory per calendar
fileext = ".ics"

[storages.backup]
type = "file"
path = "~/calendar-backup/{collection}.ics"   # one file per calendar

[pairs.calendars]
a = "laptop"
b = "backup"
collections = "all"            # all | "from a" | "from b" | ["home", "work"]
conflict = "merge"             # merge | "a wins" | "b wins" | newest | "keep both"
"""

_TOP_LEVEL = ("general", "storages", "pairs", "exports")
_GENERAL_KEYS = ("state_dir", "lock_timeout")
_PAIR_KEYS = ("a", "b", "collections", "conflict", "conflict_fallback", "max_delete")
#: the mass-deletion guard's default: more than half of a side's records (see plan.py)
DEFAULT_MAX_DELETE = 0.5
_EXPORT_KEYS = ("storages", "path", "every", "keep", "format")
_KEEP_KEYS = ("last", "daily", "weekly", "monthly")
_DAV_KEYS = (
    "type",
    "url",
    "username",
    "password",
    "password_command",
    "keyring",
    "token_command",
    "auth",
    "verify",
    "verify_fingerprint",
    "client_cert",
    "client_key",
    "proxy",
    "timeout",
    "connections",
    "max_response_size",
    "max_record_size",
    "max_request_time",
    "read_only",
)
_STORAGE_KEYS: dict[str, tuple[str, ...]] = {
    "vdir": ("type", "path", "fileext", "read_only"),
    "file": ("type", "path", "read_only"),
    "caldav": _DAV_KEYS,
    "carddav": _DAV_KEYS,
    "webcal": (
        "type",
        "url",
        "verify",
        "verify_fingerprint",
        "client_cert",
        "client_key",
        "proxy",
        "timeout",
        "max_response_size",
        "max_request_time",
        "read_only",
    ),
}
#: how a caldav/carddav storage logs in with a password (``auth``)
AUTH_SCHEMES: tuple[str, ...] = ("auto", "basic", "digest")
_ALL_STORAGE_KEYS = tuple(dict.fromkeys(k for keys in _STORAGE_KEYS.values() for k in keys))


# --------------------------------------------------------------------------- dataclasses


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the sync state lives when ``general.state_dir`` is not set.

    ``platformdirs.user_data_dir("pimsync")``; ``$XDG_DATA_HOME/pimsync`` when
    ``XDG_DATA_HOME`` is set in *env* (platformdirs honours it on every platform).
    """
    xdg = env.get("XDG_DATA_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "pimsync"
    import platformdirs  # only needed when state_dir is not set

    return Path(platformdirs.user_data_dir("pimsync"))


@dataclass(frozen=True)
class GeneralConfig:
    """``[general]``: where the state database lives, how long to wait for its lock (s)."""

    state_dir: Path = field(default_factory=default_state_dir)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT


@dataclass(frozen=True, repr=False)
class StorageConfig:
    """``[storages.NAME]``. Paths are absolute (``{collection}`` kept as is for type "file");
    ``url`` is set for caldav/carddav/webcal only (a ``webcal://`` URL is stored as
    ``https://``); credentials (at most one of password, password_command, keyring) for
    caldav/carddav only; webcal is always ``read_only``. ``repr`` hides the password.
    """

    name: str
    type: str
    path: Path | None = None
    fileext: str | None = None
    read_only: bool = False
    url: str | None = None
    username: str | None = None
    password: str | None = None
    password_command: tuple[str, ...] | None = None
    keyring: str | None = None
    #: a program printing an OAuth access token, sent as ``Authorization: Bearer``
    token_command: tuple[str, ...] | None = None
    #: with a password: "auto" (Basic, Digest when the server asks only for it), "basic"
    #: or "digest" (never Basic)
    auth: str = "auto"
    verify: bool | Path = True
    #: the SHA-256 fingerprint of the server's certificate: 64 lower-case hex digits
    verify_fingerprint: str | None = None
    #: a PEM file with the client certificate (and its key, unless ``client_key``)
    client_cert: Path | None = None
    client_key: Path | None = None
    #: None: the environment's proxy; "": none; else the proxy's URL
    proxy: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    connections: int = DEFAULT_CONNECTIONS
    #: bytes of one answer from the server (caldav/carddav/webcal)
    max_response_size: int = 64 << 20
    #: bytes of one record read from a caldav/carddav server
    max_record_size: int = 32 << 20
    #: seconds one request may take in all (``timeout``: each silence)
    max_request_time: float = 600.0

    @property
    def kind(self) -> str:
        """``"ics"`` (calendars) or ``"vcf"`` (contacts)."""
        if self.type in ("caldav", "webcal"):
            return "ics"
        if self.type == "carddav":
            return "vcf"
        if self.type == "vdir" and (self.fileext or "").lower() in _EXT_KIND:
            return _EXT_KIND[(self.fileext or "").lower()]
        if self.type == "file" and self.path is not None and _file_ext(self.path.name):
            return _EXT_KIND[_file_ext(self.path.name)]
        raise ValueError(f"storage {self.name!r}: cannot tell whether it holds ics or vcf")

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "password" and value is not None:
                parts.append("password='***'")
            elif f.name == "proxy" and value:
                from pimsync.storage.dav.proxy import without_credentials

                parts.append(f"proxy={without_credentials(value)!r}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"StorageConfig({', '.join(parts)})"


@dataclass(frozen=True)
class PairConfig:
    """``[pairs.NAME]``: ``a``/``b`` name storages of the same kind; ``collections`` is
    "all", "from a", "from b" or a tuple of collection names."""

    name: str
    a: str
    b: str
    collections: str | tuple[str, ...] = "all"
    conflict: str = "merge"
    conflict_fallback: str = "newest"
    #: a fraction of a side's records (float) or a count (int) that one run may delete
    max_delete: float | int = DEFAULT_MAX_DELETE


@dataclass(frozen=True)
class KeepPolicy:
    """``keep = { last = 7, daily = 30, weekly = 8, monthly = 12 }``: how many archives of an
    export to keep, by tier; a key left out is 0. The newest archive is always kept. See
    :func:`pimsync.export.retention.to_keep` for the rule."""

    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@dataclass(frozen=True)
class ExportConfig:
    """``[exports.NAME]``: archive the named ``storages`` (at least one, defined, no
    duplicates) into the directory ``path`` (absolute). ``every`` is how long after the last
    archive ``pimsync run`` makes a new one (None: only ``pimsync export`` does); ``keep``
    None keeps every archive; ``format`` is one of :data:`ARCHIVE_FORMATS`."""

    name: str
    storages: tuple[str, ...]
    path: Path
    every: timedelta | None = None
    keep: KeepPolicy | None = None
    format: str = DEFAULT_ARCHIVE_FORMAT


@dataclass(frozen=True)
class Config:
    """The whole config file; ``path`` is the file it was read from. At least one of
    ``pairs`` and ``exports`` is non-empty."""

    path: Path
    general: GeneralConfig
    storages: dict[str, StorageConfig]
    pairs: dict[str, PairConfig]
    exports: dict[str, ExportConfig] = field(default_factory=dict)


# --------------------------------------------------------------------------- find_config


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "")
    return Path(home) if home else Path.home()


def find_config(cli_path: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """The config file to use: ``--config PATH``, else ``$PIMSYNC_CONFIG``, else
    ``$XDG_CONFIG_HOME/pimsync/config.toml`` (``~/.config`` when that is unset).

    The first of these that is given is chosen; if it does not exist, ConfigError says
    every place looked at, in order, and shows an example config.
    """
    looked: list[str] = []
    if cli_path:
        chosen = Path(cli_path)
        looked.append(f"--config {chosen}")
    else:
        looked.append("--config: not given")
        env_path = env.get("PIMSYNC_CONFIG", "")
        if env_path:
            chosen = Path(env_path)
            looked.append(f"$PIMSYNC_CONFIG={env_path}")
        else:
            looked.append("$PIMSYNC_CONFIG: not set")
            xdg = env.get("XDG_CONFIG_HOME", "")
            if xdg and os.path.isabs(xdg):
                chosen = Path(xdg) / "pimsync" / "config.toml"
                looked.append(f"$XDG_CONFIG_HOME/pimsync/config.toml = {chosen}")
            else:
                chosen = _home(env) / ".config" / "pimsync" / "config.toml"
                why = "not set" if not xdg else f"{xdg!r} is not an absolute path, ignored"
                looked.append(
                    f"$XDG_CONFIG_HOME/pimsync/config.toml ($XDG_CONFIG_HOME {why}, "
                    f"so ~/.config) = {chosen}"
                )
    if chosen.is_file():
        return chosen
    problem = "is a directory, not a file" if chosen.is_dir() else "does not exist"
    places = "\n".join(f"  {i}. {line}" for i, line in enumerate(looked, 1))
    example = "\n".join(f"    {line}" if line else "" for line in EXAMPLE_CONFIG.splitlines())
    raise ConfigError(
        f"no config file: {chosen} {problem}.\n"
        f"Looked at, in order:\n{places}\n"
        f"Create {chosen} (or pass --config PATH); a minimal example:\n\n{example}"
    )


# --------------------------------------------------------------------------- load_config


def load_config(path: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Read, check and type the config file at *path*; raise ConfigError on any problem."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror or e}", where=where) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError("not valid UTF-8", where=f"{where}:{line}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS_RE.search(msg)
        if m:
            msg = msg[: m.start()]
            raise ConfigError(
                f"invalid TOML: {msg} (column {m.group(2)})", where=f"{where}:{m.group(1)}"
            ) from e
        if msg.endswith(_TOML_END):
            line = text.count("\n") + 1
            msg = msg[: -len(_TOML_END)]
            raise ConfigError(f"invalid TOML: {msg} (at the end)", where=f"{where}:{line}") from e
        raise ConfigError(f"invalid TOML: {msg}", where=where) from e
    return _Loader(path, env).load(data)


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _show(value: object) -> str:
    """A value as it would be written in TOML (close enough for error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _quoted(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _file_ext(name: str) -> str:
    """The record extension a file name ends with ("" when none of .ics/.vcf/.vcard)."""
    lower = name.lower()
    for ext in _EXT_KIND:
        if lower.endswith(ext) and len(lower) > len(ext):
            return ext
    return ""


class _Loader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.where = str(path)
        self.base_dir = path.absolute().parent

    # -- errors and generic checks

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{key}: {message}", where=self.where)

    def check_keys(
        self, key: str, table: dict[str, Any], allowed: tuple[str, ...], what: str = ""
    ) -> None:
        for k in table:
            if k in allowed:
                continue
            hint = ""
            import difflib  # error path only

            close = difflib.get_close_matches(k, allowed, n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
            dotted = f"{key}.{k}" if key else k
            raise self.error(dotted, f"unknown key{hint}; allowed keys{what}: {', '.join(allowed)}")

    def table(self, key: str, value: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table ([{key}]), got {_toml_type(value)}")
        return value

    def string(self, key: str, value: object, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_toml_type(value)} ({_show(value)})")
        if not empty_ok and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def boolean(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.error(
                key, f"expected true or false, got {_toml_type(value)} ({_show(value)})"
            )
        return value

    def number(self, key: str, value: object, *, allow_zero: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(
                key, f"expected a number of seconds, got {_toml_type(value)} ({_show(value)})"
            )
        if value != value or value in (float("inf"), float("-inf")):  # nan, inf
            raise self.error(key, f"{value!r} is not allowed; use a finite number of seconds")
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise self.error(key, f"{value!r} is not allowed; use a number of seconds {bound}")
        return float(value)

    def choice(self, key: str, value: object, allowed: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            raise self.error(
                key,
                f"expected a string, got {_toml_type(value)} ({_show(value)}); "
                f"use one of {_quoted(allowed)}",
            )
        if value not in allowed:
            raise self.error(key, f"{value!r} is not allowed; use one of {_quoted(allowed)}")
        return value

    def name(self, key: str, name: str) -> str:
        if not _NAME_RE.fullmatch(name):
            raise self.error(
                key,
                f"{name!r} is not a valid name; use only letters A-Z a-z, digits, '_' and '-'",
            )
        return name

    def path_value(self, key: str, value: object) -> Path:
        """Expand ``$VAR``/``${VAR}`` (from env) and ``~``; relative to the config's dir."""
        text = self.string(key, value)

        def var(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name not in self.env:
                raise self.error(key, f"environment variable ${name} is not set (in {text!r})")
            return self.env[name]

        text = _VAR_RE.sub(var, text)
        if text == "~" or text.startswith("~/"):
            text = str(_home(self.env)) + text[1:]
        elif text.startswith("~"):
            text = os.path.expanduser(text)
        p = Path(text)
        return p if p.is_absolute() else self.base_dir / p

    def url(self, key: str, value: object, *, webcal: bool = False) -> str:
        text = self.string(key, value).strip()
        lower = text.lower()
        if webcal and lower.startswith(("webcal://", "webcals://")):
            text = "https://" + text.split("://", 1)[1]
            lower = text.lower()
        schemes = '"http://", "https://"' + (', "webcal://"' if webcal else "")
        authority = text.split("://", 1)[1].split("/", 1)[0] if "://" in text else ""
        if "@" in authority:  # never repeat what may be a password
            raise self.error(
                key,
                "a user name or password inside the URL is not allowed; put them in "
                "username and password (or password_command, keyring)",
            )
        if not lower.startswith(("http://", "https://")):
            raise self.error(key, f"{text!r} is not allowed; use a URL starting with {schemes}")
        if not authority:
            raise self.error(key, f"{text!r} has no host name")
        return text

    # -- sections

    def load(self, data: dict[str, Any]) -> Config:
        for k in data:
            if k not in _TOP_LEVEL:
                hint = ""
                if k in _GENERAL_KEYS:
                    hint = " (did you mean to put it under [general]?)"
                raise self.error(
                    k, f"unknown top-level key{hint}; allowed tables: {', '.join(_TOP_LEVEL)}"
                )
        general = self.general(data.get("general", {}))
        storages: dict[str, StorageConfig] = {}
        for name, value in self.table("storages", data.get("storages", {})).items():
            storages[name] = self.storage(name, value)
        pairs: dict[str, PairConfig] = {}
        for name, value in self.table("pairs", data.get("pairs", {})).items():
            pairs[name] = self.pair(name, value, storages)
        exports: dict[str, ExportConfig] = {}
        for name, value in self.table("exports", data.get("exports", {})).items():
            exports[name] = self.export(name, value, storages)
        if not pairs and not exports:
            raise self.error(
                "pairs",
                "no pairs defined (and no exports); add at least one [pairs.NAME] table with "
                'a = "STORAGE" and b = "STORAGE", or an [exports.NAME] table with '
                'storages = ["STORAGE"] and path = "DIRECTORY"',
            )
        return Config(
            path=self.path, general=general, storages=storages, pairs=pairs, exports=exports
        )

    def general(self, value: object) -> GeneralConfig:
        t = self.table("general", value)
        self.check_keys("general", t, _GENERAL_KEYS)
        state_dir = (
            self.path_value("general.state_dir", t["state_dir"])
            if "state_dir" in t
            else default_state_dir(self.env)
        )
        lock_timeout = (
            self.number("general.lock_timeout", t["lock_timeout"], allow_zero=True)
            if "lock_timeout" in t
            else DEFAULT_LOCK_TIMEOUT
        )
        return GeneralConfig(state_dir=state_dir, lock_timeout=lock_timeout)

    def storage(self, name: str, value: object) -> StorageConfig:
        key = f"storages.{name}"
        self.name(key, name)
        t = self.table(key, value)
        if "type" not in t:
            raise self.error(f"{key}.type", f"missing; use one of {_quoted(STORAGE_TYPES)}")
        stype = self.choice(f"{key}.type", t["type"], STORAGE_TYPES)
        allowed = _STORAGE_KEYS[stype]
        for k in t:
            if k not in allowed and k in _ALL_STORAGE_KEYS:
                raise ConfigError(
                    f'{key}.{k} is not used by type "{stype}"; '
                    f"allowed keys for this type: {', '.join(allowed)}",
                    where=self.where,
                )
        self.check_keys(key, t, allowed, f' for type "{stype}"')

        def require(k: str, hint: str) -> object:
            if k not in t:
                raise self.error(f"{key}.{k}", f'missing; type "{stype}" needs {hint}')
            return t[k]

        read_only = self.boolean(f"{key}.read_only", t["read_only"]) if "read_only" in t else False
        kw: dict[str, Any] = {}
        if stype == "vdir":
            path = self.path_value(f"{key}.path", require("path", "a directory"))
            if COLLECTION_PLACEHOLDER in str(path):
                raise self.error(
                    f"{key}.path",
                    f'{COLLECTION_PLACEHOLDER} is only for type "file"; a vdir path is the '
                    "directory that holds one sub-directory per collection",
                )
            kw["path"] = path
            kw["fileext"] = self.choice(
                f"{key}.fileext", require("fileext", '".ics" or ".vcf"'), tuple(_EXT_KIND)
            )
        elif stype == "file":
            kw["path"] = self.file_path(
                f"{key}.path", require("path", "a file path ending in .ics or .vcf")
            )
        else:
            kw["url"] = self.url(
                f"{key}.url",
                require("url", "a URL (http:// or https://)"),
                webcal=stype == "webcal",
            )
            if "verify" in t:
                verify = t["verify"]
                kw["verify"] = (
                    verify
                    if isinstance(verify, bool)
                    else self.path_value(f"{key}.verify", self._verify_str(key, verify))
                )
            self.transport(key, t, kw)
            if "timeout" in t:
                kw["timeout"] = self.number(f"{key}.timeout", t["timeout"], allow_zero=False)
            if "connections" in t:
                value = t["connections"]
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
                    raise self.error(
                        f"{key}.connections",
                        f"{_show(value)} is not allowed; use a whole number from 1 to 32",
                    )
                kw["connections"] = value
            for k in ("max_response_size", "max_record_size"):
                if k in t:
                    from pimsync.storage import SIZE_HELP, format_size, parse_size

                    try:
                        size = parse_size(t[k])
                    except ValueError as e:
                        if isinstance(t[k], str):
                            raise self.error(f"{key}.{k}", str(e)) from e
                        got = f"{_toml_type(t[k])} ({_show(t[k])})"
                        raise self.error(
                            f"{key}.{k}", f"expected a size, got {got}; {SIZE_HELP}"
                        ) from e
                    if size < 1024:
                        raise self.error(
                            f"{key}.{k}",
                            f"{_show(t[k])} is not allowed ({format_size(size)}); use a size "
                            'of at least 1 KiB, like "64 MiB"',
                        )
                    kw[k] = size
            if "max_request_time" in t:
                kw["max_request_time"] = self.number(
                    f"{key}.max_request_time", t["max_request_time"], allow_zero=False
                )
            if stype == "webcal":
                if "read_only" in t and not read_only:
                    raise self.error(
                        f"{key}.read_only",
                        'false is not allowed: type "webcal" is always read-only; '
                        "remove read_only or set it to true",
                    )
                read_only = True
            else:
                self.credentials(key, t, kw)
        return StorageConfig(name=name, type=stype, read_only=read_only, **kw)

    def transport(self, key: str, t: dict[str, Any], kw: dict[str, Any]) -> None:
        """proxy, client_cert, client_key, verify_fingerprint (kw has url, verify)."""
        https = str(kw["url"]).lower().startswith("https://")
        if "proxy" in t:
            kw["proxy"] = self.proxy(f"{key}.proxy", t["proxy"])
        if "client_key" in t and "client_cert" not in t:
            raise self.error(
                f"{key}.client_key",
                "needs client_cert too (the file with the certificate); a single PEM file "
                "with both the certificate and the key is given as client_cert alone",
            )
        for k in ("client_cert", "client_key"):
            if k in t:
                if not https:
                    raise self.error(f"{key}.{k}", "a client certificate is for https:// URLs only")
                kw[k] = self.path_value(f"{key}.{k}", t[k])
        if "verify_fingerprint" in t:
            k = f"{key}.verify_fingerprint"
            if not https:
                raise self.error(k, "a certificate fingerprint is for https:// URLs only")
            if "verify" in t:
                raise self.error(
                    f"{key}.verify",
                    f"{key}.verify and {k} are both set; with verify_fingerprint the "
                    "certificate is checked by its fingerprint alone (not by a CA, nor its "
                    "host name): remove verify",
                )
            kw["verify_fingerprint"] = self.fingerprint(k, t["verify_fingerprint"])

    def proxy(self, key: str, value: object) -> str:
        allowed = 'use a URL like "http://proxy.example:3128", or "" for no proxy at all'
        if not isinstance(value, str):  # not shown: it may hold a password
            raise self.error(key, f"expected a string, got {_toml_type(value)}; {allowed}")
        if not value.strip():
            return ""
        from pimsync.storage.dav.proxy import ProxyURLError, parse_proxy

        try:
            parse_proxy(value, key)
        except ProxyURLError as e:
            raise self.error(key, str(e)) from None
        return value.strip()

    def fingerprint(self, key: str, value: object) -> str:
        how = (
            "the SHA-256 fingerprint of the server's certificate: 64 hex digits, with or "
            'without colons ("AB:CD:..."), as `openssl x509 -noout -fingerprint -sha256 '
            "-in CERT.pem` prints it"
        )
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_toml_type(value)}; use {how}")
        text = re.sub(r"[\s:]", "", value).lower()
        if re.fullmatch(r"[0-9a-f]+", text or "-") and len(text) in (32, 40):
            algorithm = "an MD5" if len(text) == 32 else "a SHA-1"
            raise self.error(
                key, f"this looks like {algorithm} fingerprint, which is not accepted; use {how}"
            )
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise self.error(key, f"{value!r} is not allowed; use {how}")
        return text

    def _verify_str(self, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.error(
                f"{key}.verify",
                f"expected true, false or the path of a CA bundle (a string), "
                f"got {_toml_type(value)} ({_show(value)})",
            )
        return value

    def credentials(self, key: str, t: dict[str, Any], kw: dict[str, Any]) -> None:
        given = [k for k in ("password", "password_command", "keyring") if k in t]
        if "token_command" in t:
            others = [k for k in ("username", *given, "auth") if k in t]
            if others:
                raise self.error(
                    f"{key}.token_command",
                    f"{key}.token_command and {' and '.join(f'{key}.{k}' for k in others)} "
                    "are both set; token_command sends an access token (Authorization: "
                    "Bearer) instead of a user name and password: use either token_command, "
                    "or username with one of password, password_command, keyring",
                )
            kw["token_command"] = self.command(f"{key}.token_command", t["token_command"])
            return
        if len(given) > 1:
            raise self.error(
                f"{key}.{given[1]}",
                f"{' and '.join(f'{key}.{k}' for k in given)} are both set; "
                "use at most one of password, password_command, keyring",
            )
        if "auth" in t:
            kw["auth"] = self.choice(f"{key}.auth", t["auth"], AUTH_SCHEMES)
        if "username" in t:
            kw["username"] = self.string(f"{key}.username", t["username"])
        if "password" in t:
            if not isinstance(t["password"], str):  # never repeat what may be a password
                raise self.error(
                    f"{key}.password",
                    f"expected a string, got {_toml_type(t['password'])} (its value is not "
                    'shown); quote it: password = "..."',
                )
            kw["password"] = self.string(f"{key}.password", t["password"])
        if "keyring" in t:
            kw["keyring"] = self.string(f"{key}.keyring", t["keyring"])
        if "password_command" in t:
            kw["password_command"] = self.command(f"{key}.password_command", t["password_command"])

    def command(self, k: str, cmd: object) -> tuple[str, ...]:
        """A program and its arguments (password_command, token_command)."""
        example = (
            '["pass", "show", "dav"]'
            if k.endswith("password_command")
            else ('["oauth2-token", "google"]')
        )
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise self.error(
                k,
                f"expected a list of strings like {example}, got {_toml_type(cmd)} ({_show(cmd)})",
            )
        if not cmd or not cmd[0].strip():
            raise self.error(k, f"must be a non-empty list of strings like {example}")
        return tuple(cmd)

    def file_path(self, key: str, value: object) -> Path:
        raw = self.string(key, value)
        if raw.count(COLLECTION_PLACEHOLDER) > 1:
            raise self.error(key, f"{COLLECTION_PLACEHOLDER} may appear at most once")
        path = self.path_value(key, raw)
        name = path.name
        if COLLECTION_PLACEHOLDER in str(path.parent):
            raise self.error(
                key,
                f"{COLLECTION_PLACEHOLDER} is allowed only in the file name (the last part "
                f'of the path), like "~/calendars/{COLLECTION_PLACEHOLDER}.ics"',
            )
        other = [p for p in _PLACEHOLDER_RE.findall(name) if p != COLLECTION_PLACEHOLDER]
        if other:
            raise self.error(
                key, f"unknown placeholder {other[0]}; the only one allowed is {{collection}}"
            )
        if not _file_ext(name):
            raise self.error(
                key, f"{name!r} is not allowed; the file name must end in .ics, .vcf or .vcard"
            )
        return path

    def pair(self, name: str, value: object, storages: dict[str, StorageConfig]) -> PairConfig:
        key = f"pairs.{name}"
        self.name(key, name)
        t = self.table(key, value)
        self.check_keys(key, t, _PAIR_KEYS)
        defined = ", ".join(storages) or "(none)"
        sides: dict[str, StorageConfig] = {}
        for side in ("a", "b"):
            if side not in t:
                raise self.error(f"{key}.{side}", f"missing; name one of the storages: {defined}")
            sname = self.string(f"{key}.{side}", t[side])
            if sname not in storages:
                raise self.error(
                    f"{key}.{side}", f"no storage named {sname!r}; defined storages: {defined}"
                )
            sides[side] = storages[sname]
        a, b = sides["a"], sides["b"]
        if a.name == b.name:
            raise self.error(
                f"{key}.b", f"a and b are both {a.name!r}; a pair needs two different storages"
            )
        if a.kind != b.kind:
            raise self.error(
                key,
                f"storages {a.name!r} ({a.kind}) and {b.name!r} ({b.kind}) hold different "
                "kinds of records; a pair must join two calendar (ics) storages or two "
                "contacts (vcf) storages",
            )
        collections = self.collections(f"{key}.collections", t.get("collections", "all"))
        conflict = "merge"
        if "conflict" in t:
            conflict = self.choice(f"{key}.conflict", t["conflict"], CONFLICT_POLICIES)
        fallback = "newest"
        if "conflict_fallback" in t:
            fallback = self.choice(
                f"{key}.conflict_fallback", t["conflict_fallback"], CONFLICT_FALLBACKS
            )
        max_delete: float | int = DEFAULT_MAX_DELETE
        if "max_delete" in t:
            max_delete = self.max_delete(f"{key}.max_delete", t["max_delete"])
        return PairConfig(
            name=name,
            a=a.name,
            b=b.name,
            collections=collections,
            conflict=conflict,
            conflict_fallback=fallback,
            max_delete=max_delete,
        )

    def max_delete(self, key: str, value: object) -> float | int:
        allowed = (
            "use a fraction of a side's records greater than 0 and at most 1.0 (like 0.5; "
            "1.0 turns the guard off) or a whole number of records (like 20)"
        )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_toml_type(value)}; {allowed}")
        if isinstance(value, int):
            if value < 0:
                raise self.error(key, f"{value} is not allowed; {allowed}")
            return value
        if not 0 < value <= 1:
            raise self.error(key, f"{_show(value)} is not allowed; {allowed}")
        return value

    def collections(self, key: str, value: object) -> str | tuple[str, ...]:
        allowed = f'use one of {_quoted(COLLECTIONS_KEYWORDS)} or a list of names like ["home"]'
        if isinstance(value, str):
            if value in COLLECTIONS_KEYWORDS:
                return value
            raise self.error(key, f"{value!r} is not allowed; {allowed}")
        if not isinstance(value, list):
            raise self.error(
                key, f"expected a string or a list, got {_toml_type(value)}; {allowed}"
            )
        if not value:
            raise self.error(key, f"the list is empty; {allowed}")
        seen: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise self.error(
                    key,
                    f"expected collection names (strings), got {_toml_type(item)} ({_show(item)})",
                )
            if not item.strip() or item.startswith(".") or any(c in item for c in "/\\\0"):
                raise self.error(
                    key,
                    f"{item!r} is not a valid collection name; it must be non-empty, not "
                    "start with '.' and contain no '/' or '\\'",
                )
            if item in seen:
                raise self.error(key, f"{item!r} is listed twice")
            seen.add(item)
        return tuple(value)

    def export(self, name: str, value: object, storages: dict[str, StorageConfig]) -> ExportConfig:
        key = f"exports.{name}"
        self.name(key, name)
        t = self.table(key, value)
        self.check_keys(key, t, _EXPORT_KEYS)
        defined = ", ".join(storages) or "(none)"
        if "storages" not in t:
            raise self.error(
                f"{key}.storages",
                f'missing; a list of the storages to archive, like ["NAME"]; '
                f"defined storages: {defined}",
            )
        names = self.export_storages(f"{key}.storages", t["storages"], storages)
        if "path" not in t:
            raise self.error(f"{key}.path", "missing; the directory the archives are written to")
        path = self.path_value(f"{key}.path", t["path"])
        if COLLECTION_PLACEHOLDER in str(path):
            raise self.error(
                f"{key}.path",
                f'{COLLECTION_PLACEHOLDER} is only for storages of type "file"; an export path '
                "is the directory the archives are written to",
            )
        every = self.interval(f"{key}.every", t["every"]) if "every" in t else None
        keep = self.keep(f"{key}.keep", t["keep"]) if "keep" in t else None
        fmt = (
            self.choice(f"{key}.format", t["format"], ARCHIVE_FORMATS)
            if "format" in t
            else DEFAULT_ARCHIVE_FORMAT
        )
        return ExportConfig(
            name=name, storages=names, path=path, every=every, keep=keep, format=fmt
        )

    def export_storages(
        self, key: str, value: object, storages: dict[str, StorageConfig]
    ) -> tuple[str, ...]:
        defined = ", ".join(storages) or "(none)"
        allowed = f"name one or more of the storages: {defined}"
        if not isinstance(value, list):
            raise self.error(
                key,
                f'expected a list of storage names like ["laptop"], got {_toml_type(value)} '
                f"({_show(value)}); {allowed}",
            )
        if not value:
            raise self.error(key, f"the list is empty; {allowed}")
        seen: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise self.error(
                    key, f"expected storage names (strings), got {_toml_type(item)} ({_show(item)})"
                )
            if item not in storages:
                raise self.error(key, f"no storage named {item!r}; defined storages: {defined}")
            if item in seen:
                raise self.error(key, f"{item!r} is listed twice")
            seen.add(item)
        return tuple(value)

    def interval(self, key: str, value: object) -> timedelta:
        if not isinstance(value, str):
            raise self.error(
                key,
                f'expected a string like "1d", got {_toml_type(value)} ({_show(value)}); '
                'use "30m", "6h", "1d", "2w" or "1d12h"',
            )
        try:
            return parse_interval(value)
        except ValueError as e:
            raise self.error(key, str(e)) from e

    def keep(self, key: str, value: object) -> KeepPolicy:
        example = "{ last = 7, daily = 30, weekly = 8, monthly = 12 }"
        if not isinstance(value, dict):
            raise self.error(
                key, f"expected a table like {example}, got {_toml_type(value)} ({_show(value)})"
            )
        self.check_keys(key, value, _KEEP_KEYS)
        counts: dict[str, int] = {}
        for k, n in value.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise self.error(
                    f"{key}.{k}", f"{_show(n)} is not allowed; use a whole number >= 0"
                )
            counts[k] = n
        return KeepPolicy(**counts)
