/*
 * OOM policy in one place: an allocation failure aborts the node with a log
 * line. Budgets (limits) are enforced before allocating, never by failing here.
 */
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "level=error msg=\"out of memory\" bytes=%zu\n", n);
    abort();
}

void *sz_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sz_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        oom(n * sz);
    return p;
}

void *sz_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *sz_strndup(const char *s, size_t n)
{
    char *d = sz_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sz_strdup(const char *s)
{
    return s ? sz_strndup(s, strlen(s)) : NULL;
}

void sz_free(void *p)
{
    free(p);
}
