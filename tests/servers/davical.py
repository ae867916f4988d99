"""DAViCal 1.1 (Debian's davical) under Apache with mod_php, on a private PostgreSQL.

``start_davical(tmp_path)`` makes a PostgreSQL cluster of its own (``initdb`` into a
temporary directory, a server that listens on a Unix socket in that directory only:
``listen_addresses=''``), creates the DAViCal database in it with DAViCal's own
``create-database.sh``, adds user alice by SQL, and runs ``apache2 -f CONF
-DFOREGROUND`` with a configuration of its own (``Listen 127.0.0.1:PORT``, pid file,
logs and runtime files in the temporary directory).  Nothing of the system's
PostgreSQL cluster or Apache configuration is used.  See the package docstring
(tests/servers/__init__.py) for what the server does.
"""

from __future__ import annotations

import glob
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from tests.servers import (
    HOST,
    START_TIMEOUT,
    DavServer,
    Helper,
    _start,
    chown_tree,
    private_dir,
    spawn,
)

PG_VERSIONS = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
DAVICAL = Path("/usr/share/davical")
DAVICAL_USER = "alice"
DAVICAL_PASSWORD = "secret"
PG_PORT = 5432  # only names the socket file: the cluster listens on no TCP port


def missing() -> str | None:
    """Why DAViCal cannot be started here, or None."""
    needs = [APACHE, DAVICAL / "htdocs" / "caldav.php", DAVICAL / "dba" / "create-database.sh"]
    for path in needs:
        if not path.exists():
            return f"{path} is missing (run tests/servers/install.sh as root)"
    if not PG_VERSIONS:
        return "PostgreSQL's server is missing (run tests/servers/install.sh as root)"
    if not glob.glob(str(MODULES / "libphp*.so")):
        return "Apache's mod_php is missing (run tests/servers/install.sh as root)"
    return None


def start_davical(tmp_path: Path) -> DavServer:
    """Start PostgreSQL and Apache with DAViCal; user alice / secret, no collections."""
    reason = missing()
    if reason is not None:
        raise RuntimeError(f"DAViCal is not installed: {reason}")
    base = Path(tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    pg_user = "postgres" if root else None
    data, remove = private_dir(base, "davical-data", pg_user)
    helpers: list[Helper] = []
    try:
        postgres = _start_postgres(base, data, pg_user)
        helpers.append(postgres)
        sock = data / "sock"
        pg_env = {"PGHOST": str(sock), "PGPORT": str(PG_PORT), "PGUSER": "postgres"}
        _run(
            [str(DAVICAL / "dba" / "create-database.sh"), "davical", secrets.token_hex(12)],
            base / "create-database.log",
            data,
            pg_env,
            pg_user,
        )
        _psql(
            "INSERT INTO usr (active, email_ok, updated, username, password, fullname, email)"
            f" VALUES (TRUE, current_date, current_date, '{DAVICAL_USER}',"
            f" '**{DAVICAL_PASSWORD}', 'Alice', 'alice@example.net');"
            "INSERT INTO principal (type_id, user_no, displayname, default_privileges)"
            f" SELECT 1, user_no, 'Alice', 0::BIT(24) FROM usr WHERE username = '{DAVICAL_USER}';",
            base / "create-database.log",
            data,
            pg_env,
            pg_user,
        )
        apache_dir = base / "apache"
        apache_dir.mkdir(exist_ok=True)
        conf = apache_dir / "httpd.conf"
        php = sorted(glob.glob(str(MODULES / "libphp*.so")))[-1]

        def command(port: int) -> list[str]:
            conf.write_text(_httpd_conf(apache_dir, port, php, root))
            return [str(APACHE), "-f", str(conf), "-DFOREGROUND"]

        server = _start(
            "davical",
            base,
            command,
            root=data,
            username=DAVICAL_USER,
            password=DAVICAL_PASSWORD,
            calendar_home=f"/caldav.php/{DAVICAL_USER}/",
            addressbook_home=f"/caldav.php/{DAVICAL_USER}/",
            # DAViCal reads Debian's /etc/davical/config.php, whose connection string
            # ("dbname=davical user=davical_app") names no host: libpq takes these.
            env={"PGHOST": str(sock), "PGPORT": str(PG_PORT)},
            log_path=apache_dir / "error.log",
        )
    except BaseException:
        for helper in reversed(helpers):
            helper.stop()
        remove()
        raise
    server.helpers.extend(helpers)
    server.cleanups.append(remove)
    server.extra_logs = (apache_dir / "access.log", base / "postgres.log")
    return server


def _start_postgres(base: Path, data: Path, pg_user: str | None) -> Helper:
    """initdb into DATA/pg, then postgres on the socket DATA/sock only."""
    bindir = Path(PG_VERSIONS[-1]).parent
    pgdata = data / "pg"
    sock = data / "sock"
    sock.mkdir(exist_ok=True)
    chown_tree(data, pg_user)
    _run(
        [str(bindir / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
        base / "initdb.log",
        data,
        {},
        pg_user,
    )  # fmt: skip
    log_path = base / "postgres.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Helper.stop
    proc = spawn(
        [str(bindir / "postgres"), "-D", str(pgdata), "-k", str(sock), "-p", str(PG_PORT),
         "-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "log_min_messages=warning"],
        log_file,
        cwd=data,
        env={},
        run_as=pg_user,
        parent_death=signal.SIGINT,  # "fast" shutdown: no waiting for clients
    )  # fmt: skip
    helper = Helper("postgres", proc, log_file, stop_signal=signal.SIGINT)
    deadline = time.monotonic() + START_TIMEOUT
    pidfile = pgdata / "postmaster.pid"
    while True:
        if not helper.alive():
            helper.stop()
            raise RuntimeError(f"PostgreSQL exited:\n{log_path.read_text('utf-8', 'replace')}")
        try:
            lines = pidfile.read_text().splitlines()
        except OSError:
            lines = []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return helper
        if time.monotonic() > deadline:
            helper.stop()
            raise RuntimeError(f"PostgreSQL not ready:\n{log_path.read_text('utf-8', 'replace')}")
        time.sleep(0.05)


def _run(argv: list[str], log: Path, cwd: Path, env: dict[str, str], user: str | None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n=== {' '.join(argv)}\n".encode())
        out.flush()
        proc = spawn(argv, out, cwd=cwd, env={"PGOPTIONS": "", **env}, run_as=user)
        try:
            rc = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -1
    if rc != 0:
        tail = "\n".join(log.read_text("utf-8", "replace").splitlines()[-30:])
        raise RuntimeError(f"{argv[0]} failed ({rc}):\n{tail}")


def _psql(sql: str, log: Path, cwd: Path, env: dict[str, str], user: str | None) -> None:
    _run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", "-c", sql, "davical"], log, cwd, env, user)


def _httpd_conf(apache_dir: Path, port: int, php: str, root: bool) -> str:
    user = "User www-data\nGroup www-data\n" if root else ""
    modules = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so"
        for name in ("mpm_prefork", "authz_core", "mime", "dir", "rewrite", "env")
    )
    htdocs = DAVICAL / "htdocs"
    return f"""\
ServerRoot {apache_dir}
ServerName {HOST}
Listen {HOST}:{port}
PidFile {apache_dir}/httpd.pid
DefaultRuntimeDir {apache_dir}
Mutex file:{apache_dir} default
ErrorLog {apache_dir}/error.log
LogLevel warn
LogFormat "%h %t \\"%r\\" %>s %b %D" short
CustomLog {apache_dir}/access.log short
{user}{modules}
LoadModule php_module {php}
TypesConfig /etc/mime.types
StartServers 2
MinSpareServers 2
MaxSpareServers 6
MaxRequestWorkers 16
KeepAlive On
KeepAliveTimeout 15
Timeout 60
DocumentRoot {htdocs}
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory {htdocs}>
  DirectoryIndex index.php
  AllowOverride None
  Require all granted
</Directory>
<FilesMatch "\\.php$">
  SetHandler application/x-httpd-php
</FilesMatch>
AcceptPathInfo On
RewriteEngine On
# /.well-known/caldav|carddav: DAViCal answers them under caldav.php only
RewriteRule ^/\\.well-known/(.*)$ /caldav.php/.well-known/$1 [NC,PT]
"""
