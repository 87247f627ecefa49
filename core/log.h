/*
 * Logging: one key=value line per event on stderr (or node.log_file),
 * prefixed with time, level and the calling reactor's id. Each line is
 * written with a single write(2), so lines of different threads never
 * interleave. Any thread may log.
 */
#ifndef SZ_CORE_LOG_H
#define SZ_CORE_LOG_H

#include <stdarg.h>

enum sz_log_level { SZ_LOG_DEBUG = 0, SZ_LOG_INFO, SZ_LOG_WARN, SZ_LOG_ERROR, SZ_LOG_OFF };

/* Current threshold; read without a lock, written by sz_log_set_level(). */
extern int sz_log_level;

/** Any thread. Lines below <lvl> are dropped (arguments are not evaluated). */
#define SZ_LOG(lvl, ...)                                                                         \
    do {                                                                                         \
        if ((lvl) < __atomic_load_n(&sz_log_level, __ATOMIC_RELAXED))                           \
            break;                                                                               \
        sz_log_write((lvl), __VA_ARGS__);                                                        \
    } while (0)

#define SZ_DEBUG(...) SZ_LOG(SZ_LOG_DEBUG, __VA_ARGS__)
#define SZ_INFO(...)  SZ_LOG(SZ_LOG_INFO, __VA_ARGS__)
#define SZ_WARN(...)  SZ_LOG(SZ_LOG_WARN, __VA_ARGS__)
#define SZ_ERROR(...) SZ_LOG(SZ_LOG_ERROR, __VA_ARGS__)

/** Any thread. <fmt> is the key=value body, e.g. "msg=accepted conn=%u". */
void sz_log_write(int lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Any thread. Logs "assertion failed" with <expr>, <file> and <line>
 *  at error level, then aborts. */
void sz_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Always-on check of a cheap invariant (STYLE §4). */
#define SZ_ASSERT(x)                                                                             \
    do {                                                                                         \
        if (__builtin_expect(!(x), 0))                                                           \
            sz_assert_fail(#x, __FILE__, __LINE__);                                              \
    } while (0)

/** Any thread. Sets the threshold. */
void sz_log_set_level(int lvl);

/** Parses "error|warn|info|debug"; returns the level or -1. */
int sz_log_parse_level(const char *s);

/**
 * Main thread only. Sends output to <path> (append) or to stderr when NULL.
 * Called again on SIGHUP to reopen after rotation. Returns 0 or -errno
 * (the previous destination stays in use on failure).
 */
int sz_log_open(const char *path);

/** Per-thread tag printed as reactor=<id>; -1 (the default) prints "main". */
void sz_log_set_thread(int reactor_id);

#endif
