"""pimsync.credentials: password, password_command, keyring; secrets never shown."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import logging
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from pimsync import credentials
from pimsync.config import StorageConfig
from pimsync.credentials import CredentialError, Secret, get_password
from pimsync.errors import PimsyncError
from tests.conftest import make_event

PASSWORD = "hunter2-S3cr3t!"


def dav(name: str = "server", **kw) -> StorageConfig:
    return StorageConfig(name=name, type="caldav", url="https://dav.example.org/", **kw)


def script(tmp_path: Path, body: str, name: str = "pw.py") -> tuple[str, ...]:
    path = tmp_path / name
    path.write_text("import sys, time, pathlib\n" + textwrap.dedent(body))
    return (sys.executable, str(path))


def assert_hidden(exc: BaseException, secret: str = PASSWORD) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    if isinstance(exc, PimsyncError):
        assert secret not in exc.message


@pytest.fixture(autouse=True)
def _fresh_cache():
    credentials.clear_cache()
    yield
    credentials.clear_cache()


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring for tests; a negative priority: never chosen by autodetection."""

    priority = -1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.reads = 0

    def get_password(self, service, username):
        self.reads += 1
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    old = keyring.get_keyring()
    mem = MemoryKeyring()
    keyring.set_keyring(mem)
    try:
        yield mem
    finally:
        keyring.set_keyring(old)


@pytest.fixture
def fail_keyring():
    old = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(old)


# --------------------------------------------------------------------------- Secret


def test_secret_hides_itself_everywhere(caplog):
    s = Secret(PASSWORD)
    assert s.reveal() == PASSWORD
    assert str(s) == "***"
    assert repr(s) == "Secret('***')"
    assert f"{s}" == "***"
    assert f"{s!r}" == "Secret('***')"
    assert f"{s:>5}" == "  ***"
    assert "{}".format(s) == "***"  # noqa: UP032 (str.format on purpose)
    assert "%s %r" % (s, s) == "*** Secret('***')"  # noqa: UP031
    assert PASSWORD not in repr([s, {"pw": s}])
    with caplog.at_level(logging.DEBUG):
        log = logging.getLogger("pimsync.test")
        log.info("password is %s", s)
        log.info("password is %r", s)
        log.info(s)
        log.info("dict %s", {"password": s})
    assert caplog.records
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


def test_secret_cannot_be_pickled_but_copies():
    s = Secret(PASSWORD)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled") as info:
            pickle.dumps(s, protocol=protocol)
        assert_hidden(info.value)
    with pytest.raises(TypeError):
        pickle.dumps({"pw": s})
    assert copy.copy(s) is s and copy.deepcopy(s) is s


def test_secret_equality_and_type():
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- password


def test_no_credentials_gives_none():
    assert get_password(dav()) is None
    assert get_password(dav(username="alice")) is None


def test_password_in_config():
    secret = get_password(dav(username="alice", password=PASSWORD))
    assert isinstance(secret, Secret) and secret.reveal() == PASSWORD
    assert PASSWORD not in repr(secret) and PASSWORD not in f"{secret}"


def test_credentials_does_not_import_keyring():
    probe = (
        "import sys; from pimsync.config import StorageConfig;"
        "from pimsync.credentials import get_password;"
        "s = StorageConfig(name='x', type='caldav', url='https://h/', password='p');"
        "assert get_password(s).reveal() == 'p';"
        "print('keyring' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


# --------------------------------------------------------------------------- password_command


def test_password_command_first_line(tmp_path):
    cmd = script(tmp_path, f"print({PASSWORD!r}); print('second line')\n")
    secret = get_password(dav(password_command=cmd))
    assert secret is not None and secret.reveal() == PASSWORD


def test_password_command_keeps_spaces_strips_newline_only(tmp_path):
    cmd = script(tmp_path, "sys.stdout.write('  spaced pw \\r\\n')\n")
    secret = get_password(dav(password_command=cmd))
    assert secret is not None and secret.reveal() == "  spaced pw "


def test_password_command_without_trailing_newline(tmp_path):
    cmd = script(tmp_path, f"sys.stdout.write({PASSWORD!r})\n")
    assert get_password(dav(password_command=cmd)).reveal() == PASSWORD


def test_password_command_stdin_is_closed(tmp_path):
    cmd = script(tmp_path, "data = sys.stdin.read(); print('empty' if data == '' else 'open')\n")
    assert get_password(dav(password_command=cmd)).reveal() == "empty"


def test_password_command_prints_nothing(tmp_path):
    cmd = script(tmp_path, "pass\n")
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", password_command=cmd))
    msg = str(info.value)
    assert msg.startswith("storages.nas.password_command: ")
    assert sys.executable in msg and "printed nothing" in msg


def test_password_command_empty_first_line(tmp_path):
    cmd = script(tmp_path, f"print(); print({PASSWORD!r})\n")
    with pytest.raises(CredentialError, match="empty first line") as info:
        get_password(dav(password_command=cmd))
    assert_hidden(info.value)


WITHHELD = "its output is not shown: it may hold the password; run the command yourself"


def test_password_command_fails_with_stderr(tmp_path):
    cmd = script(
        tmp_path,
        f"""\
        print({PASSWORD!r})
        sys.stderr.write('\\n  gpg: decryption failed: No secret key\\nmore detail\\n')
        sys.exit(3)
        """,
    )
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", password_command=cmd))
    msg = str(info.value)
    assert isinstance(info.value, PimsyncError)
    assert msg == (
        f"storages.nas.password_command: {sys.executable!r} exited with status 3 "
        f"({WITHHELD} to see it)"
    )
    # the command's output is never echoed, not even its error output
    assert "gpg" not in msg and "more detail" not in msg
    assert_hidden(info.value)


def test_password_in_stderr_is_redacted(tmp_path):
    """The command's error output is not shown at all: not the password, nor a variant of
    it a redaction could not know of (here the password without its last character)."""
    cmd = script(
        tmp_path,
        f"""\
        print({PASSWORD!r})
        sys.stderr.write('oops, the password is ' + {PASSWORD!r} + '\\n')
        sys.stderr.write({PASSWORD[:-1]!r} + '\\n')
        sys.exit(1)
        """,
    )
    with pytest.raises(CredentialError) as info:
        get_password(dav(password_command=cmd))
    assert "exited with status 1" in str(info.value) and WITHHELD in str(info.value)
    assert "oops" not in str(info.value)
    assert_hidden(info.value)
    assert_hidden(info.value, PASSWORD[:-1])


def test_password_on_stderr_only_exit_0_is_not_shown(tmp_path):
    cmd = script(tmp_path, f"sys.stderr.write({PASSWORD!r} + '\\n')\n")
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", password_command=cmd))
    msg = str(info.value)
    assert "exited with status 0 but printed nothing on its standard output" in msg
    assert WITHHELD in msg
    assert_hidden(info.value)


def test_password_on_stderr_failing_without_stdout_is_not_shown(tmp_path):
    """A failing command has an empty stdout: the old redaction hid nothing then."""
    cmd = script(tmp_path, f"sys.stderr.write({PASSWORD!r} + '\\n'); sys.exit(1)\n")
    with pytest.raises(CredentialError) as info:
        get_password(dav(password_command=cmd))
    assert "exited with status 1" in str(info.value) and WITHHELD in str(info.value)
    assert_hidden(info.value)


def test_password_command_killed_by_a_signal(tmp_path):
    cmd = script(
        tmp_path,
        f"""\
        import os, signal
        print({PASSWORD!r}, flush=True)
        sys.stderr.write({PASSWORD!r})
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    with pytest.raises(CredentialError) as info:
        get_password(dav(password_command=cmd))
    assert "was killed by signal 9 (SIGKILL)" in str(info.value)
    assert WITHHELD in str(info.value)
    assert_hidden(info.value)


def test_password_command_failing_silently_says_so(tmp_path):
    with pytest.raises(CredentialError) as info:
        get_password(dav(password_command=script(tmp_path, "sys.exit(4)\n")))
    assert str(info.value).endswith("exited with status 4 (it printed nothing)")


def test_password_command_not_utf8_first_line(tmp_path):
    cmd = script(
        tmp_path,
        f"sys.stdout.buffer.write(b'\\xff' + {PASSWORD.encode()!r} + b'\\n')\n"
        f"sys.stderr.write({PASSWORD!r})\n",
    )
    with pytest.raises(CredentialError) as info:
        get_password(dav(password_command=cmd))
    assert "not valid UTF-8" in str(info.value) and WITHHELD in str(info.value)
    assert_hidden(info.value)


def test_password_command_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "PASSWORD_COMMAND_TIMEOUT", 0.5)
    cmd = script(tmp_path, f"print({PASSWORD!r}, flush=True); time.sleep(30)\n")
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", password_command=cmd))
    msg = str(info.value)
    assert "storages.nas.password_command" in msg and sys.executable in msg
    assert "did not finish within 0.5 s" in msg
    assert_hidden(info.value)
    assert info.value.__cause__ is None


def test_password_command_missing_program(tmp_path):
    missing = str(tmp_path / "no-such-password-program")
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", password_command=(missing, "show", "dav")))
    msg = str(info.value)
    assert "storages.nas.password_command" in msg
    assert repr(missing) in msg and "not found" in msg


def test_password_command_not_executable(tmp_path):
    prog = tmp_path / "not-executable"
    prog.write_text("#!/bin/sh\necho x\n")
    prog.chmod(0o644)
    with pytest.raises(CredentialError, match="cannot run") as info:
        get_password(dav(password_command=(str(prog),)))
    assert "storages.server.password_command" in str(info.value)


def test_password_command_runs_once_per_storage(tmp_path):
    runs = tmp_path / "runs"
    cmd = script(
        tmp_path,
        f"""\
        with open({str(runs)!r}, 'a') as f:
            f.write('run\\n')
        print({PASSWORD!r})
        """,
    )
    storage = dav("nas", password_command=cmd)
    secrets = [get_password(storage) for _ in range(5)]
    # an equal config object (re-read config, same storage) shares the cache
    secrets.append(get_password(dav("nas", password_command=cmd)))
    assert all(s is not None and s.reveal() == PASSWORD for s in secrets)
    assert runs.read_text().count("run") == 1
    get_password(dav("other", password_command=cmd))  # another storage: its own run
    assert runs.read_text().count("run") == 2
    credentials.clear_cache()
    get_password(storage)
    assert runs.read_text().count("run") == 3


def test_failure_is_cached_too(tmp_path):
    runs = tmp_path / "runs"
    cmd = script(
        tmp_path,
        f"""\
        with open({str(runs)!r}, 'a') as f:
            f.write('run\\n')
        sys.stderr.write('locked\\n')
        sys.exit(2)
        """,
    )
    for _ in range(3):
        with pytest.raises(CredentialError, match=r"status 2 \(its output is not shown") as info:
            get_password(dav(password_command=cmd))
        assert "locked" not in str(info.value)
    assert runs.read_text().count("run") == 1


def test_changed_command_is_not_served_from_cache(tmp_path):
    one = script(tmp_path, "print('one')\n", "one.py")
    two = script(tmp_path, "print('two')\n", "two.py")
    assert get_password(dav(password_command=one)).reveal() == "one"
    assert get_password(dav(password_command=two)).reveal() == "two"


# --------------------------------------------------------------------------- keyring


def test_keyring_entry(memory_keyring):
    memory_keyring.set_password("dav-service", "alice", PASSWORD)
    storage = dav(username="alice", keyring="dav-service")
    secret = get_password(storage)
    assert secret is not None and secret.reveal() == PASSWORD
    assert get_password(storage).reveal() == PASSWORD
    assert memory_keyring.reads == 1  # cached


def test_keyring_missing_entry(memory_keyring):
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", username="alice", keyring="dav-service"))
    msg = str(info.value)
    assert "storages.nas.keyring" in msg
    assert "keyring set dav-service alice" in msg


def test_keyring_missing_entry_quotes_command(memory_keyring):
    with pytest.raises(CredentialError) as info:
        get_password(dav(username="alice smith", keyring="my dav"))
    assert "keyring set 'my dav' 'alice smith'" in str(info.value)


def test_keyring_needs_username(memory_keyring):
    with pytest.raises(CredentialError, match=r"storages\.nas\.username is not set"):
        get_password(dav("nas", keyring="dav-service"))
    assert memory_keyring.reads == 0


def test_no_keyring_backend(fail_keyring):
    with pytest.raises(CredentialError) as info:
        get_password(dav("nas", username="alice", keyring="dav-service"))
    msg = str(info.value)
    assert "storages.nas.keyring" in msg
    assert "no keyring backend is available" in msg
    assert "password_command" in msg
    assert info.value.__cause__ is None


def test_keyring_secret_never_shown(memory_keyring, caplog):
    memory_keyring.set_password("svc", "bob", PASSWORD)
    with caplog.at_level(logging.DEBUG):
        secret = get_password(dav(username="bob", keyring="svc"))
        logging.getLogger("pimsync").info("got %s / %r", secret, secret)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(secret) and PASSWORD not in f"{secret}"


class BrokenKeyring(MemoryKeyring):
    """A keyring whose backend fails with a message that holds what it read."""

    error: type[Exception] = keyring.errors.KeyringLocked

    def get_password(self, service, username):
        raise self.error(f"cannot decode entry {PASSWORD!r} for {username}")


@pytest.mark.parametrize("error", [keyring.errors.KeyringLocked, ValueError])
def test_keyring_error_text_is_not_shown(error):
    old = keyring.get_keyring()
    broken = BrokenKeyring()
    broken.error = error
    keyring.set_keyring(broken)
    try:
        with pytest.raises(CredentialError) as info:
            get_password(dav("nas", username="bob", keyring="my svc"))
    finally:
        keyring.set_keyring(old)
    msg = str(info.value)
    assert msg.startswith("storages.nas.keyring: the keyring could not be read ")
    assert error.__name__ in msg and "keyring get 'my svc' bob" in msg
    assert "cannot decode" not in msg
    assert_hidden(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


# --------------------------------------------------------------------------- the real CLI

CLI_SECRET = "hunter2-SECRET"
COMMANDS = ("run", "check", "discover", "export")


def cli_config(tmp_path: Path, server, command: list[str]) -> Path:
    """A vdir paired with a CalDAV storage whose password comes from *command*, and an
    export of that storage."""
    col = f"c{uuid.uuid4().hex[:10]}"
    (tmp_path / "pc" / col).mkdir(parents=True)
    (tmp_path / "pc" / col / "x.ics").write_bytes(make_event(f"x-{col}", "Dentist"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[general]
state_dir = "state"

[storages.pc]
type = "vdir"
path = "pc"
fileext = ".ics"

[storages.server]
type = "caldav"
url = "{server.url}"
username = "alice"
password_command = {json.dumps(command)}

[pairs.p]
a = "pc"
b = "server"
collections = ["{col}"]

[exports.nightly]
storages = ["server"]
path = "backups"
"""
    )
    return cfg


def pimsync(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pimsync", "--config", str(cfg), *args],
        cwd=cfg.parent, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def assert_never_shown(proc: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in proc.stdout, proc.stdout
        assert secret not in proc.stderr, proc.stderr


def files_hold(directory: Path, secret: bytes) -> list[Path]:
    """Files under *directory* whose bytes (or, for an archive, unpacked members) hold
    *secret*."""
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                data += gzip.decompress(data)
            if secret in data:
                found.append(path)
    return found


FAILING = {
    # the password on both outputs, then a failure (the redaction of old hid this one)
    "stdout+stderr, exit 1": f"echo {CLI_SECRET} >&2; echo {CLI_SECRET}; exit 1",
    # a failing command prints nothing on stdout: nothing was known to redact
    "stderr only, exit 1": f"echo {CLI_SECRET} >&2; exit 1",
    # exit 0 but the password went to stderr only
    "stderr only, exit 0": f"echo {CLI_SECRET} >&2",
    "stderr, empty first line, exit 0": f"echo; echo {CLI_SECRET}; echo {CLI_SECRET}x >&2",
    "stderr, killed": f"echo {CLI_SECRET} >&2; echo {CLI_SECRET}; kill -9 $$",
}


@pytest.mark.parametrize("script_text", FAILING.values(), ids=FAILING.keys())
def test_cli_never_shows_a_failing_password_command_output(tmp_path, radicale, script_text):
    cfg = cli_config(tmp_path, radicale, ["sh", "-c", script_text])
    for command in COMMANDS:
        for verbosity in ((), ("-v",)):
            proc = pimsync(cfg, command, *verbosity)
            assert_never_shown(proc, CLI_SECRET)
            assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
            assert "storages.server.password_command: 'sh' " in proc.stderr, proc.stderr
            assert "not shown" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())


def test_cli_never_shows_a_working_password(tmp_path, radicale):
    """Exit 0, the password on stdout (used) and on stderr (ignored): everything syncs
    and is archived; the password is in no output, not in the state database, not in
    the archive, nor is the Authorization header made of it."""
    cfg = cli_config(tmp_path, radicale, ["sh", "-c", f"echo {CLI_SECRET} >&2; echo {CLI_SECRET}"])
    basic = base64.b64encode(f"alice:{CLI_SECRET}".encode()).decode()
    for command in COMMANDS:
        proc = pimsync(cfg, command, "-v")
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert_never_shown(proc, CLI_SECRET, basic)
    [archive] = (tmp_path / "backups").iterdir()
    assert b"Dentist" in gzip.decompress(archive.read_bytes())
    for secret in (CLI_SECRET.encode(), basic.encode()):
        assert files_hold(tmp_path / "state", secret) == []
        assert files_hold(tmp_path / "backups", secret) == []


def test_cli_refused_password_is_never_shown(tmp_path, radicale_auth):
    """The server refuses the password the command printed (stderr has it too)."""
    cfg = cli_config(
        tmp_path, radicale_auth, ["sh", "-c", f"echo {CLI_SECRET} >&2; echo {CLI_SECRET}"]
    )
    for command in COMMANDS:
        proc = pimsync(cfg, command, "-v")
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "401" in proc.stderr and "Traceback" not in proc.stderr
        assert_never_shown(proc, CLI_SECRET)
    assert files_hold(tmp_path / "state", CLI_SECRET.encode()) == []
