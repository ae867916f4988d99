"""Passwords for caldav/carddav storages: ``password``, ``password_command`` or ``keyring``.

:func:`get_password` returns a :class:`Secret` (which prints as ``***``) or None when the
storage has no credentials. Every problem is a :class:`CredentialError` whose message
starts with the dotted config key (``storages.NAME.password_command: ...``) and never
contains the password or the standard output of the password command.

Results are cached per storage name for the life of the process, so a password command
runs (and a keyring is asked) once per run however many collections use the storage.
``keyring`` is imported only when a storage uses it (it costs about 0.08 s).
"""

from __future__ import annotations

import hmac
import threading
from typing import Any, NoReturn, SupportsIndex

from pimsync.config import StorageConfig
from pimsync.errors import PimsyncError

__all__ = [
    "PASSWORD_COMMAND_TIMEOUT",
    "CredentialError",
    "Secret",
    "clear_cache",
    "get_password",
]


#: Seconds a ``password_command`` may run before it is killed (read at call time).
PASSWORD_COMMAND_TIMEOUT: float = 30.0

_HIDDEN = "***"
_MAX_STDERR = 200  # characters of the command's first stderr line shown in an error


class CredentialError(PimsyncError):
    """A password could not be obtained (command failed, keyring entry missing...).

    The message names the storage's config key; it never contains the password.
    """


class Secret:
    """A password that does not show itself: ``str``, ``repr`` and f-strings give ``***``.

    :meth:`reveal` returns the clear text. A Secret cannot be pickled.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The password in clear text. Pass it on; do not print or log it."""
        return self._value

    def __str__(self) -> str:
        return _HIDDEN

    def __repr__(self) -> str:
        return f"Secret({_HIDDEN!r})"

    def __format__(self, format_spec: str) -> str:
        return format(_HIDDEN, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled (it would write the password in clear)")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        self.__reduce__()

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


# --------------------------------------------------------------------------- cache

# storage name -> (where the password came from, Secret or the error to raise again)
_cache: dict[str, tuple[tuple[object, ...], Secret | CredentialError]] = {}
_cache_lock = threading.Lock()
_name_locks: dict[str, threading.Lock] = {}


def clear_cache() -> None:
    """Forget every cached password and error (tests; a long-lived process)."""
    with _cache_lock:
        _cache.clear()
        _name_locks.clear()


def _source(storage: StorageConfig) -> tuple[object, ...]:
    if storage.password_command is not None:
        return ("password_command", tuple(storage.password_command))
    return ("keyring", storage.keyring, storage.username)


# --------------------------------------------------------------------------- get_password


def get_password(storage: StorageConfig) -> Secret | None:
    """The password of *storage*, or None when it sets none of password,
    password_command, keyring.

    ``password_command`` runs once per process and ``keyring`` is asked once per process
    for each storage name (a failure is remembered too and raised again). Raise
    :class:`CredentialError` when the password cannot be obtained.
    """
    if storage.password is not None:
        return Secret(storage.password)
    if storage.password_command is None and storage.keyring is None:
        return None
    source = _source(storage)
    with _cache_lock:
        name_lock = _name_locks.setdefault(storage.name, threading.Lock())
    with name_lock:  # two collections of one storage asking at once: run the command once
        cached = _cache.get(storage.name)
        if cached is not None and cached[0] == source:
            result = cached[1]
        else:
            try:
                if storage.password_command is not None:
                    result = _from_command(storage.name, storage.password_command)
                else:
                    assert storage.keyring is not None
                    result = _from_keyring(storage.name, storage.keyring, storage.username)
            except CredentialError as e:
                result = CredentialError(e.message, where=e.where)  # no traceback kept
            _cache[storage.name] = (source, result)
    if isinstance(result, CredentialError):
        raise CredentialError(result.message, where=result.where)
    return result


def _from_command(name: str, argv: tuple[str, ...]) -> Secret:
    key = f"storages.{name}.password_command"
    if not argv or not argv[0]:
        raise CredentialError(f'{key}: empty command; use a list like ["pass", "show", "dav"]')
    program = argv[0]
    timeout = PASSWORD_COMMAND_TIMEOUT
    import subprocess  # only here: about 20 ms of start-up a run without it does not pay

    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialError(
            f"{key}: program {program!r} not found; check the command and your PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialError(
            f"{key}: {program!r} did not finish within {timeout:g} s and was stopped "
            "(its standard input is closed: it cannot prompt for anything)"
        ) from None
    except OSError as e:
        raise CredentialError(
            f"{key}: cannot run {program!r}: {e.strerror or type(e).__name__}"
        ) from None

    first, _, _ = proc.stdout.partition(b"\n")
    first = first.removesuffix(b"\r")
    err_line = _first_stderr_line(proc.stderr, hide=first)
    if proc.returncode != 0:
        if proc.returncode < 0:
            status = f"was killed by signal {-proc.returncode}"
        else:
            status = f"exited with status {proc.returncode}"
        raise CredentialError(f"{key}: {program!r} {status}: {err_line}")
    if not first:
        what = "printed nothing" if not proc.stdout else "printed an empty first line"
        raise CredentialError(
            f"{key}: {program!r} exited with status 0 but {what}; the password must be "
            f"the first line of its output (stderr: {err_line})"
        )
    try:
        password = first.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(
            f"{key}: {program!r} printed a first line that is not valid UTF-8"
        ) from None
    return Secret(password)


def _first_stderr_line(stderr: bytes, *, hide: bytes) -> str:
    """The first non-blank line of *stderr*, shortened, with *hide* (the password) removed."""
    for raw in stderr.splitlines():
        if not raw.strip():
            continue
        if hide:
            raw = raw.replace(hide, _HIDDEN.encode())
        line = raw.decode("utf-8", "replace").strip()
        if len(line) > _MAX_STDERR:
            line = line[:_MAX_STDERR] + "..."
        return line
    return "(no error output)"


def _from_keyring(name: str, service: str, username: str | None) -> Secret:
    key = f"storages.{name}.keyring"
    if not username:
        raise CredentialError(
            f"{key}: storages.{name}.username is not set; a keyring entry is looked up by "
            "service and username, so set username too"
        )
    import keyring  # lazily: costs about 0.08 s, and most runs need no password
    from keyring.errors import KeyringError, NoKeyringError

    try:
        password = keyring.get_password(service, username)
    except NoKeyringError:
        raise CredentialError(
            f"{key}: no keyring backend is available (usual on a headless machine or over "
            f"SSH without a desktop session), so the password for service {service!r} "
            f"cannot be read. Use password_command instead, e.g. "
            f'password_command = ["pass", "show", "{service}"], or install a keyring backend'
        ) from None
    except KeyringError as e:
        raise CredentialError(
            f"{key}: the keyring could not be read ({type(e).__name__}: {e})"
        ) from None
    if password is None:
        import shlex

        raise CredentialError(
            f"{key}: the keyring has no password for service {service!r} and user "
            f"{username!r}; store it with: keyring set {shlex.quote(service)} "
            f"{shlex.quote(username)}"
        )
    return Secret(password)
