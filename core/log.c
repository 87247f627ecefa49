/*
 * Line logger. The destination fd is swapped atomically on reopen, so
 * threads that are mid-write finish on the old fd, which is closed only
 * after a grace period (one reopen later): a SIGHUP never breaks a line.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sz_log_level = SZ_LOG_INFO;
static int log_fd = STDERR_FILENO;
static int log_old_fd = -1;
static __thread int log_thread = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sz_log_set_level(int lvl)
{
    __atomic_store_n(&sz_log_level, lvl, __ATOMIC_RELAXED);
}

int sz_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void sz_log_set_thread(int reactor_id)
{
    log_thread = reactor_id;
}

int sz_log_open(const char *path)
{
    int fd = STDERR_FILENO;
    if (path) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            return -errno;
    }
    int prev = __atomic_exchange_n(&log_fd, fd, __ATOMIC_ACQ_REL);
    /* Close the fd replaced by the previous reopen, not this one: a writer
     * that loaded <prev> a moment ago may still be using it. */
    if (log_old_fd > STDERR_FILENO)
        close(log_old_fd);
    log_old_fd = prev;
    return 0;
}

void sz_log_write(int lvl, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[lvl < 0 ? 0 : lvl > 3 ? 3 : lvl]);
    if (log_thread >= 0)
        n += snprintf(line + n, sizeof(line) - n, "reactor=%d ", log_thread);
    else
        n += snprintf(line + n, sizeof(line) - n, "reactor=main ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 1)
        n = sizeof(line) - 1; /* truncated: still one whole line */
    line[n++] = '\n';
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    ssize_t w = write(fd, line, n);
    (void)w; /* nowhere to report a failed log write */
}

void sz_assert_fail(const char *expr, const char *file, int line)
{
    sz_log_write(SZ_LOG_ERROR, "msg=\"assertion failed\" expr=\"%s\" file=%s line=%d", expr, file,
                 line);
    abort();
}
