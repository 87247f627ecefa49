/*
 * Allocation wrappers. jemalloc is linked as the process allocator (see the
 * root meson.build), so these are thin: they exist to make OOM fatal in one
 * place, so callers never test for NULL (STYLE §4).
 */
#ifndef SZ_CORE_MEM_H
#define SZ_CORE_MEM_H

#include <stddef.h>

/** Any thread. Never returns NULL: aborts the process on OOM. */
void *sz_malloc(size_t n);
/** Any thread. Zeroed <n>*<sz> bytes; aborts on OOM or overflow. */
void *sz_calloc(size_t n, size_t sz);
/** Any thread. Like realloc(); aborts on OOM. */
void *sz_realloc(void *p, size_t n);
/** Any thread. Copies <s> (NUL-terminated); aborts on OOM. NULL gives NULL. */
char *sz_strdup(const char *s);
/** Any thread. Copies <n> bytes of <s> and adds a NUL; aborts on OOM. */
char *sz_strndup(const char *s, size_t n);
/** Any thread; free(<p>). NULL is fine. */
void sz_free(void *p);

#endif
