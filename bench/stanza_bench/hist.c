/*
 * Log-linear latency histogram (see hist.h). Index layout, with S =
 * SB_HIST_SUB_BITS: values below 2^(S+1) map to themselves (exact). A
 * larger value v with its top bit at position m has shift = m - S, and its
 * top S+1 bits (v >> shift) lie in [2^S, 2^(S+1)); the index is
 * shift * 2^S + (v >> shift), which continues the exact range without a
 * gap. Owner thread only.
 */
#include "bench/stanza_bench/hist.h"

#include <string.h>

void sb_hist_reset(sb_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned sb_hist_index(uint64_t v)
{
    if (v > SB_HIST_MAX_NS)
        v = SB_HIST_MAX_NS;
    if (v < (UINT64_C(2) << SB_HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SB_HIST_SUB_BITS;
    return (shift << SB_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

uint64_t sb_hist_bucket_lo(unsigned i)
{
    if (i < (2u << SB_HIST_SUB_BITS))
        return i;
    /* i = shift * 2^S + sub with sub in [2^S, 2^(S+1)) */
    unsigned shift = (i >> SB_HIST_SUB_BITS) - 1;
    uint64_t sub = (i & ((1u << SB_HIST_SUB_BITS) - 1)) | (1u << SB_HIST_SUB_BITS);
    return sub << shift;
}

uint64_t sb_hist_bucket_width(unsigned i)
{
    if (i < (2u << SB_HIST_SUB_BITS))
        return 1;
    return UINT64_C(1) << ((i >> SB_HIST_SUB_BITS) - 1);
}

void sb_hist_add(sb_hist_t *h, uint64_t v)
{
    if (v > SB_HIST_MAX_NS)
        h->overflow++;
    h->b[sb_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void sb_hist_merge(sb_hist_t *dst, const sb_hist_t *src)
{
    if (!src->count)
        return;
    for (unsigned i = 0; i < SB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->overflow += src->overflow;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sb_hist_pct(const sb_hist_t *h, double p)
{
    if (!h->count)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* rank of the value: ceil(p/100 * count), at least 1 */
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = sb_hist_bucket_lo(i) + (sb_hist_bucket_width(i) - 1) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double sb_hist_mean(const sb_hist_t *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
