"""Passwords for caldav/carddav storages: ``password``, ``password_command`` or ``keyring``.

:func:`get_password` returns a :class:`Secret` (which prints as ``***``) or None when the
storage has no credentials. Every problem is a :class:`CredentialError` whose message
starts with the dotted config key (``storages.NAME.password_command: ...``) and never
contains the password, nor anything the password command printed (stdout or stderr): it
says the command's exit status (or signal) instead. Nor is a keyring backend's error
text shown (only its type), for the same reason.

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
    "get_token",
]


#: Seconds a ``password_command`` may run before it is killed (read at call time).
PASSWORD_COMMAND_TIMEOUT: float = 30.0

_HIDDEN = "***"
#: Said in place of a password command's output, which is never shown.
_WITHHELD = (
    "(its output is not shown: it may hold the password; run the command yourself to see it)"
)
_SILENT = "(it printed nothing)"


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
        _tokens.clear()


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


# --------------------------------------------------------------------------- get_token

# storage name -> the last token its token_command printed
_tokens: dict[str, Secret] = {}


def get_token(storage: StorageConfig, refresh: bool = False) -> Secret:
    """The access token ``storage.token_command`` prints (the first line of its output),
    run once per process and storage; ``refresh``: the server refused the last one (it
    expired), run the command again. Raise :class:`CredentialError` (never with anything
    the command printed) when there is no token."""
    assert storage.token_command is not None
    with _cache_lock:
        name_lock = _name_locks.setdefault(f"token:{storage.name}", threading.Lock())
    with name_lock:
        token = None if refresh else _tokens.get(storage.name)
        if token is None:
            token = _from_command(
                storage.name, storage.token_command, "token_command", "access token"
            )
            _tokens[storage.name] = token
        return token


def _from_command(
    name: str, argv: tuple[str, ...], option: str = "password_command", what: str = "password"
) -> Secret:
    key = f"storages.{name}.{option}"
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

    # Nothing the command printed is ever shown, on stdout or stderr: a failing command
    # may print the password on either (``pass`` piped through a wrapper, a script that
    # echoes what it read, ``gpg`` with a verbose option...), and a redaction can only
    # hide what it knows. Its status is said instead; the user can run it to see more.
    first, _, _ = proc.stdout.partition(b"\n")
    first = first.removesuffix(b"\r")
    if what != "password":
        first = first.strip()  # a token has no spaces at its ends; a password may
    withheld = _WITHHELD.replace("the password", f"the {what}")
    if proc.returncode != 0:
        if proc.returncode < 0:
            status = f"was killed by signal {-proc.returncode}{_signal_name(-proc.returncode)}"
        else:
            status = f"exited with status {proc.returncode}"
        said = withheld if proc.stdout or proc.stderr else _SILENT
        raise CredentialError(f"{key}: {program!r} {status} {said}")
    if not first:
        printed = "printed nothing" if not proc.stdout else "printed an empty first line"
        said = f" {withheld}" if proc.stdout or proc.stderr else ""
        raise CredentialError(
            f"{key}: {program!r} exited with status 0 but {printed} on its standard output; "
            f"the {what} must be the first line of its standard output{said}"
        )
    try:
        password = first.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(
            f"{key}: {program!r} printed a first line that is not valid UTF-8 {withheld}"
        ) from None
    return Secret(password)


def _signal_name(number: int) -> str:
    import signal

    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""


def _from_keyring(name: str, service: str, username: str | None) -> Secret:
    key = f"storages.{name}.keyring"
    if not username:
        raise CredentialError(
            f"{key}: storages.{name}.username is not set; a keyring entry is looked up by "
            "service and username, so set username too"
        )
    import keyring  # lazily: costs about 0.08 s, and most runs need no password
    from keyring.errors import NoKeyringError

    try:
        password = keyring.get_password(service, username)
    except NoKeyringError:
        raise CredentialError(
            f"{key}: no keyring backend is available (usual on a headless machine or over "
            f"SSH without a desktop session), so the password for service {service!r} "
            f"cannot be read. Use password_command instead, e.g. "
            f'password_command = ["pass", "show", "{service}"], or install a keyring backend'
        ) from None
    except Exception as e:  # KeyringError, or a backend's own (D-Bus, Keychain...) error
        # its text is the backend's, not ours: like a password command's output, it is not
        # shown (a backend could put what it read in it); the type says what kind it is
        import shlex

        command = f"keyring get {shlex.quote(service)} {shlex.quote(username)}"
        raise CredentialError(
            f"{key}: the keyring could not be read ({type(e).__name__}; its message is not "
            f"shown: it may hold the password; run `{command}` yourself to see it)"
        ) from None
    if password is None:
        import shlex

        raise CredentialError(
            f"{key}: the keyring has no password for service {service!r} and user "
            f"{username!r}; store it with: keyring set {shlex.quote(service)} "
            f"{shlex.quote(username)}"
        )
    return Secret(password)
