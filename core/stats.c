/*
 * Descriptor table for the per-reactor counters, generated from the same
 * X-macro as the struct, so a counter can never be exported under the
 * wrong offset.
 */
#include "core/stats.h"

#include <stddef.h>

const sz_stat_desc_t sz_stat_descs[] = {
#define SZ_STATS_DESC(name, type, metric, help) {metric, #type, help, offsetof(sz_stats_t, name)},
    SZ_STATS(SZ_STATS_DESC)
#undef SZ_STATS_DESC
    {NULL, NULL, NULL, 0},
};

uint64_t sz_stat_read(const sz_stats_t *st, unsigned offset)
{
    const uint64_t *p = (const uint64_t *)((const char *)st + offset);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
