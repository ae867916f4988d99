/* LD_PRELOAD shim for the test servers: syslog() appends to the file named by
 * $PIMSYNC_SYSLOG_FILE instead of /dev/log, which a test machine may not have
 * (Cyrus logs only to syslog).  Debug messages are left out.  Built by tests/servers/cyrus.py with the C compiler,
 * when there is one; without it Cyrus runs as well, its log is just lost. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

static const char *ident = "";

void vsyslog(int pri, const char *fmt, va_list ap) {
    const char *path = getenv("PIMSYNC_SYSLOG_FILE");
    char buf[8192];
    int n, m, fd;
    if (!path || LOG_PRI(pri) == LOG_DEBUG) return;
    n = snprintf(buf, sizeof buf, "%s[%d]: ", ident, (int)getpid());
    if (n < 0 || n >= (int)sizeof buf - 2) return;
    m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    if (m < 0) return;
    n += m < (int)(sizeof buf - n - 1) ? m : (int)(sizeof buf - n - 2);
    buf[n++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, buf, n) < 0) { /* nothing to do */ }
    close(fd);
}

void syslog(int pri, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...) {
    va_list ap;
    (void)flag;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
    (void)flag;
    vsyslog(pri, fmt, ap);
}

void openlog(const char *id, int option, int facility) {
    (void)option;
    (void)facility;
    if (id) ident = id;
}

void closelog(void) {}
