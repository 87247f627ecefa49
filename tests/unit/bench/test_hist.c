/* Unit tests for bench/stanza_bench/hist.c: bucket layout (contiguous,
 * at most 1/128 wide relative to the value), and percentiles of known
 * distributions within 1% of the exact order statistic, from 1 us to 60 s,
 * merging, and values past the top. */
#include "bench/stanza_bench/hist.c"

#include <math.h>
#include <stdlib.h>

#include "sz_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
    /* xorshift64*: deterministic, enough for test data */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static double unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Exact value at percentile p: the ceil(p/100 * n)-th smallest. */
static uint64_t exact(const uint64_t *sorted, size_t n, double p)
{
    double r = p / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static sb_hist_t H, H2;

/* Records <v> (n values) and checks p50..max against the sorted values. */
static int check_dist(const char *name, uint64_t *v, size_t n)
{
    sb_hist_reset(&H);
    for (size_t i = 0; i < n; i++)
        sb_hist_add(&H, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    static const double ps[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    int bad = 0;
    for (unsigned i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        uint64_t want = exact(v, n, ps[i]), got = sb_hist_pct(&H, ps[i]);
        double err = fabs((double)got - (double)want) / (double)(want ? want : 1);
        if (err > 0.01) {
            printf("# %s p%g: got %llu want %llu (error %.4f)\n", name, ps[i],
                   (unsigned long long)got, (unsigned long long)want, err);
            bad++;
        }
    }
    if (H.count != n || H.min != v[0] || H.max != v[n - 1])
        bad++;
    return bad;
}

#define N 200000

SZ_TEST(buckets_are_contiguous_and_narrow)
{
    SZ_CHECK_INT(sb_hist_index(0), 0);
    SZ_CHECK_INT(sb_hist_index(255), 255);
    SZ_CHECK_INT(sb_hist_index(256), 256);
    SZ_CHECK_INT(sb_hist_index(SB_HIST_MAX_NS), SB_HIST_BUCKETS - 1);
    uint64_t expect_lo = 0;
    int bad = 0;
    for (unsigned i = 0; i < SB_HIST_BUCKETS; i++) {
        uint64_t lo = sb_hist_bucket_lo(i), w = sb_hist_bucket_width(i);
        if (lo != expect_lo)
            bad++;
        if (lo >= 256 && (double)w / (double)lo > 1.0 / 128.0)
            bad++;
        if (sb_hist_index(lo) != i || sb_hist_index(lo + w - 1) != i)
            bad++;
        expect_lo = lo + w;
    }
    SZ_CHECK_INT(bad, 0);
    SZ_CHECK(expect_lo == SB_HIST_MAX_NS + 1);
    /* the table covers 60 s in ns, in about 30 KiB */
    SZ_CHECK(SB_HIST_MAX_NS >= 60000000000ull);
    SZ_CHECK(sizeof(sb_hist_t) < 32 * 1024);
}

SZ_TEST(uniform_1us_to_1s)
{
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = 1000 + next_u64() % 999999001ull;
    SZ_CHECK_INT(check_dist("uniform", v, N), 0);
    free(v);
}

SZ_TEST(exponential_mean_1ms)
{
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = 1000 + (uint64_t)(-log(1.0 - unit()) * 1e6);
    SZ_CHECK_INT(check_dist("exponential", v, N), 0);
    free(v);
}

SZ_TEST(log_uniform_1us_to_60s)
{
    uint64_t *v = malloc(N * sizeof(*v));
    double lo = log(1e3), hi = log(60e9);
    for (size_t i = 0; i < N; i++)
        v[i] = (uint64_t)exp(lo + (hi - lo) * unit());
    SZ_CHECK_INT(check_dist("log-uniform", v, N), 0);
    free(v);
}

SZ_TEST(bimodal_with_stall_tail)
{
    /* 99% fast (50-150 us), 1% stalled (2-3 s): the tail shows in p99.9 */
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = i % 100 == 7 ? 2000000000ull + next_u64() % 1000000000ull
                            : 50000 + next_u64() % 100000;
    SZ_CHECK_INT(check_dist("bimodal", v, N), 0);
    free(v);
}

SZ_TEST(small_exact_values)
{
    sb_hist_reset(&H);
    for (uint64_t x = 1; x <= 100; x++)
        sb_hist_add(&H, x);
    SZ_CHECK_INT(sb_hist_pct(&H, 50), 50);
    SZ_CHECK_INT(sb_hist_pct(&H, 99), 99);
    SZ_CHECK_INT(sb_hist_pct(&H, 100), 100);
    SZ_CHECK_INT(sb_hist_pct(&H, 0.001), 1);
    SZ_CHECK(fabs(sb_hist_mean(&H) - 50.5) < 1e-9);
    sb_hist_reset(&H);
    SZ_CHECK_INT(sb_hist_pct(&H, 50), 0);
    SZ_CHECK_INT(H.count, 0);
}

SZ_TEST(merge_equals_one_histogram)
{
    sb_hist_t *all = malloc(sizeof(*all));
    sb_hist_reset(all);
    sb_hist_reset(&H);
    sb_hist_reset(&H2);
    for (int i = 0; i < 50000; i++) {
        uint64_t x = 1000 + next_u64() % 100000000ull;
        sb_hist_add(all, x);
        sb_hist_add(i & 1 ? &H : &H2, x);
    }
    sb_hist_merge(&H, &H2);
    SZ_CHECK_INT(H.count, all->count);
    SZ_CHECK_INT(H.min, all->min);
    SZ_CHECK_INT(H.max, all->max);
    SZ_CHECK(memcmp(H.b, all->b, sizeof(H.b)) == 0);
    SZ_CHECK_INT(sb_hist_pct(&H, 99), sb_hist_pct(all, 99));
    free(all);
}

SZ_TEST(values_past_the_top)
{
    sb_hist_reset(&H);
    sb_hist_add(&H, 1000);
    sb_hist_add(&H, 100000000000ull); /* 100 s */
    SZ_CHECK_INT(H.overflow, 1);
    SZ_CHECK_INT(H.max, 100000000000ull);
    SZ_CHECK_INT(sb_hist_pct(&H, 100), 100000000000ull);
    SZ_CHECK(sb_hist_pct(&H, 50) >= 1000 && sb_hist_pct(&H, 50) <= 1004); /* its bucket */
}

int main(void)
{
    SZ_RUN(buckets_are_contiguous_and_narrow);
    SZ_RUN(uniform_1us_to_1s);
    SZ_RUN(exponential_mean_1ms);
    SZ_RUN(log_uniform_1us_to_60s);
    SZ_RUN(bimodal_with_stall_tail);
    SZ_RUN(small_exact_values);
    SZ_RUN(merge_equals_one_histogram);
    SZ_RUN(values_past_the_top);
    return sz_test_done();
}
