"""Cyrus IMAP 3.6 with its CalDAV/CardDAV module (Debian's cyrus-imapd, cyrus-caldav).

``start_cyrus(tmp_path)`` runs Cyrus's ``master`` in the foreground with a
``cyrus.conf`` and an ``imapd.conf`` of its own (``-M``, ``-C``), which list only an
IMAP and an HTTP service, both on 127.0.0.1; no file of the system installation is
read or written (Debian's ``/etc/cyrus.conf`` listens on every interface).  See the
package docstring (tests/servers/__init__.py) for what the server does.
"""

from __future__ import annotations

import contextlib
import getpass
import imaplib
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from tests.servers import (
    C_CALENDAR,
    DAV_NS,
    HOST,
    START_TIMEOUT,
    DavServer,
    _owns_listener,
    _start,
    chown_tree,
    free_port,
    parse_multistatus,
    private_dir,
)

CYRUS_BIN = Path("/usr/lib/cyrus/bin")
SASLPASSWD = Path("/usr/sbin/saslpasswd2")
CYRUS_USER = "alice"
CYRUS_PASSWORD = "secret"
ADMIN = "admin"
REALM = "localhost"  # = servername: the SASL realm that sasldb entries are under


def missing() -> str | None:
    """Why Cyrus cannot be started here, or None."""
    for path in (CYRUS_BIN / "master", CYRUS_BIN / "httpd", CYRUS_BIN / "imapd", SASLPASSWD):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (run tests/servers/install.sh as root)"
    return None


def start_cyrus(tmp_path: Path) -> DavServer:
    """Start Cyrus on 127.0.0.1; user alice / secret, her INBOX and DAV homes made."""
    reason = missing()
    if reason is not None:
        raise RuntimeError(f"Cyrus is not installed: {reason}")
    base = Path(tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    run_as = "cyrus" if root else None
    data, remove = private_dir(base, "cyrus-data", run_as)
    try:
        for sub in ("conf/db", "conf/log", "conf/msg", "conf/ptclient", "conf/quota",
                    "conf/sieve", "conf/socket", "conf/user", "spool", "run/lock",
                    "run/proc", "run/socket"):  # fmt: skip
            (data / sub).mkdir(parents=True, exist_ok=True)
        admin_password = secrets.token_hex(12)
        sasldb = data / "sasldb2"
        for user, password in ((ADMIN, admin_password), (CYRUS_USER, CYRUS_PASSWORD)):
            subprocess.run(
                [str(SASLPASSWD), "-p", "-c", "-f", str(sasldb), "-u", REALM, user],
                input=password.encode(),
                check=True,
                capture_output=True,
                timeout=30,
            )
        imapd_conf = data / "imapd.conf"
        cyrus_conf = data / "cyrus.conf"
        cyrus_user = "cyrus" if root else getpass.getuser()
        imapd_conf.write_text(_imapd_conf(data, sasldb, cyrus_user))
        imap_port = 0

        def command(port: int) -> list[str]:
            nonlocal imap_port
            imap_port = free_port()
            while imap_port == port:
                imap_port = free_port()
            cyrus_conf.write_text(_cyrus_conf(imapd_conf, port, imap_port))
            chown_tree(data, run_as)
            return [
                str(CYRUS_BIN / "master"),
                "-C", str(imapd_conf),
                "-M", str(cyrus_conf),
                "-p", str(data / "run" / "master.pid"),
                "-D",  # in the foreground (no -d), stdout and stderr kept: to our log
            ]  # fmt: skip

        server = _start(
            "cyrus",
            base,
            command,
            root=data,
            username=CYRUS_USER,
            password=CYRUS_PASSWORD,
            calendar_home=f"/dav/calendars/user/{CYRUS_USER}/",
            addressbook_home=f"/dav/addressbooks/user/{CYRUS_USER}/",
            env=_syslog_env(data),
            run_as=run_as,
            retry_any_exit=True,  # master logs a failed bind to syslog only
            ready_auth=False,
        )
    except BaseException:
        remove()
        raise
    server.cleanups.append(remove)
    server.extra_logs = (data / "syslog",)
    try:
        _make_inbox(server, imap_port, admin_password)
        for kind in ("ics", "vcf"):  # the first request of the user makes her homes
            resp = server.propfind(server.home(kind), "<D:resourcetype/>", depth="0")
            if resp.status != 207:
                raise RuntimeError(
                    f"Cyrus home {server.home(kind)}: {resp.status} {resp.text[:300]}"
                )
    except BaseException:
        server.stop()
        raise
    return server


def calendars(server: DavServer) -> set[str]:
    """URL paths of the calendars in alice's calendar home."""
    resp = server.propfind(server.calendar_home, "<D:resourcetype/>", depth="1")
    if resp.status != 207:
        raise RuntimeError(f"PROPFIND {server.calendar_home}: {resp.status} {resp.text[:300]}")
    return {
        href
        for href, props in parse_multistatus(resp.body).items()
        if href != server.calendar_home
        and (types := props.get(f"{{{DAV_NS}}}resourcetype")) is not None
        and types.find(C_CALENDAR) is not None
    }


def delete_calendars(server: DavServer, keep: set[str]) -> None:
    """DELETE every calendar of alice's but KEEP (their UIDs are free again after it).

    Cyrus answers 404 to the DELETE of a collection although it deleted it (with the
    default delete_mode "delayed" it renames the mailbox to DELETED.*), see
    DavServer.delete_collection.
    """
    for path in calendars(server) - keep:
        server.delete_collection(path)


def _syslog_env(data: Path) -> dict[str, str]:
    """LD_PRELOAD of syslog_to_file.c (built here if a C compiler is found): Cyrus's
    syslog lines go to DATA/syslog; without a compiler they are lost."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return {}
    shim = data / "syslog_to_file.so"
    source = Path(__file__).with_name("syslog_to_file.c")
    built = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(shim), str(source)],
        capture_output=True,
        timeout=60,
    )
    if built.returncode != 0:
        return {}
    return {"LD_PRELOAD": str(shim), "PIMSYNC_SYSLOG_FILE": str(data / "syslog")}


def _make_inbox(server: DavServer, imap_port: int, admin_password: str) -> None:
    """Create user/alice (her INBOX) over IMAP as the admin: DAV homes need it."""
    deadline = time.monotonic() + START_TIMEOUT
    while not _owns_listener(server.pid, imap_port):
        if time.monotonic() > deadline or not server.alive():
            raise RuntimeError(f"Cyrus IMAP did not listen on {imap_port}\n{server.log_tail()}")
        time.sleep(0.05)
    imap = imaplib.IMAP4(HOST, imap_port, timeout=30)
    try:
        imap.login(ADMIN, admin_password)
        typ, answer = imap.create(f"user/{CYRUS_USER}")
        if typ != "OK":
            raise RuntimeError(f"Cyrus: CREATE user/{CYRUS_USER}: {typ} {answer!r}")
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def _imapd_conf(data: Path, sasldb: Path, cyrus_user: str) -> str:
    return f"""\
configdirectory: {data}/conf
defaultpartition: default
partition-default: {data}/spool
proc_path: {data}/run/proc
mboxname_lockpath: {data}/run/lock
lmtpsocket: {data}/run/socket/lmtp
idlesocket: {data}/run/socket/idle
notifysocket: {data}/run/socket/notify
sievedir: {data}/conf/sieve
cyrus_user: {cyrus_user}
servername: {REALM}
admins: {ADMIN}
unixhierarchysep: yes
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {sasldb}
sasl_mech_list: PLAIN LOGIN
httpmodules: caldav carddav
caldav_allowscheduling: off
sendmail: /bin/true
syslog_prefix: pimsync-cyrus
"""


def _cyrus_conf(imapd_conf: Path, http_port: int, imap_port: int) -> str:
    bin_ = CYRUS_BIN
    c = f"-C {imapd_conf}"
    return f"""\
START {{
  recover cmd="{bin_}/ctl_cyrusdb {c} -r"
}}
SERVICES {{
  imap cmd="{bin_}/imapd {c}" listen="{HOST}:{imap_port}" prefork=0
  http cmd="{bin_}/httpd {c}" listen="{HOST}:{http_port}" prefork=1
}}
EVENTS {{
  checkpoint cmd="{bin_}/ctl_cyrusdb {c} -c" period=30
}}
"""
