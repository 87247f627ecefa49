/*
 * Latency histogram with bounded memory (log-linear buckets, the layout of
 * HdrHistogram with 256 sub-buckets): values 0..255 ns are exact; above,
 * each power-of-two range is split into 128 equal buckets, so a bucket is
 * at most 1/128 of its lower bound wide. A percentile is reported as the
 * middle of its bucket, hence within 1/256 (0.39%) of the true value.
 * Values up to SB_HIST_MAX_NS (about 68.7 s) are recorded; larger ones
 * land in the last bucket and are counted in <overflow>; min and max are
 * exact.
 *
 * Fixed size (about 30 KiB), no allocation. Not thread-safe: one owner
 * thread records; merge owned copies at the end (sb_hist_merge).
 */
#ifndef SB_HIST_H
#define SB_HIST_H

#include <stdint.h>

#define SB_HIST_SUB_BITS 7                                    /* 128 buckets per octave */
#define SB_HIST_TOP_BIT  36                                   /* values < 2^36 ns */
#define SB_HIST_MAX_NS   ((UINT64_C(1) << SB_HIST_TOP_BIT) - 1)
#define SB_HIST_BUCKETS  ((SB_HIST_TOP_BIT - SB_HIST_SUB_BITS + 1) << SB_HIST_SUB_BITS)

typedef struct sb_hist {
    uint64_t count, overflow;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;        /* for the mean */
    uint64_t b[SB_HIST_BUCKETS];
} sb_hist_t;

/** Empties <h>. */
void sb_hist_reset(sb_hist_t *h);

/** Records one value <v> (ns). */
void sb_hist_add(sb_hist_t *h, uint64_t v);

/** Adds every value of <src> to <dst>. */
void sb_hist_merge(sb_hist_t *dst, const sb_hist_t *src);

/**
 * The value at percentile <p> (0 < p <= 100): the smallest recorded value
 * v such that at least p% of the values are <= v, reported as the middle
 * of v's bucket (clamped to [min, max]); 100 gives the exact max. 0 when
 * empty.
 */
uint64_t sb_hist_pct(const sb_hist_t *h, double p);

/** Mean of the recorded values; 0 when empty. */
double sb_hist_mean(const sb_hist_t *h);

/* Bucket index of <v> and the bounds of bucket <i>, for tests. */
unsigned sb_hist_index(uint64_t v);
uint64_t sb_hist_bucket_lo(unsigned i);
uint64_t sb_hist_bucket_width(unsigned i);

#endif
