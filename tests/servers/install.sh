#!/usr/bin/env bash
# Install the Debian packages of the real CalDAV/CardDAV test servers that are not
# Python packages: Cyrus IMAP 3.6 (with its CalDAV/CardDAV module) and DAViCal 1.1
# (PostgreSQL, Apache with mod_php), plus what the transport tests use (Apache's ssl,
# auth_digest, proxy, proxy_http and deflate modules, all in the apache2 package, and
# tinyproxy).  Run as root; idempotent; exits at once when everything is installed.
#
# The tests start every server themselves, as subprocesses on 127.0.0.1 with their
# data in temporary directories (tests/servers/).  No system service is wanted:
#   * during the installation /usr/sbin/policy-rc.d answers 101 ("action forbidden"),
#     so no postinst script starts Cyrus, Apache, tinyproxy, saslauthd or an MTA;
#   * PostgreSQL is told not to create its main cluster (createcluster.conf,
#     create_main_cluster = false) before it is installed.
# Cyrus needs some mail transport agent; where there is none, dma (no daemon) is taken.
set -euo pipefail

packages=(
    cyrus-imapd cyrus-caldav cyrus-admin sasl2-bin
    davical postgresql apache2 libapache2-mod-php php-pgsql php-xml php-curl
    tinyproxy
)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install.sh: the test servers' packages are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi
if [ ! -e /usr/sbin/sendmail ]; then
    missing+=(dma)
fi
echo "install.sh: installing ${missing[*]}"

# No postinst may start a service: policy-rc.d answers 101.  An existing one is set
# aside and put back afterwards; one we created is removed.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ] || [ -L "$policy" ]; then
    backup="$(mktemp /usr/sbin/policy-rc.d.pimsync-XXXXXX)"
    cp -a "$policy" "$backup"
fi
restore_policy() {
    if [ -n "$backup" ]; then
        mv -f "$backup" "$policy"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# pimsync tests/servers/install.sh: no service starts while packages install\nexit 101\n' >"$policy"
chmod 755 "$policy"

# PostgreSQL: no main cluster (the tests run a private one in a temporary directory).
conf=/etc/postgresql-common/createcluster.conf
mkdir -p "$(dirname "$conf")"
if [ -f "$conf" ] && grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=' "$conf"; then
    sed -i -E 's/^[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"
else
    echo "create_main_cluster = false" >>"$conf"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"

for module in mod_ssl mod_auth_digest mod_proxy mod_proxy_http mod_deflate; do
    test -f "/usr/lib/apache2/modules/$module.so"
done
compgen -G "/usr/lib/apache2/modules/libphp*.so" >/dev/null
echo "install.sh: done"
