/* Unit tests for core/timer.c: exact firing ticks across every level,
 * cancel, re-arm from callbacks, next-expiry bound, and no per-tick cost
 * for idle timers. */
#include "core/timer.h"

#include "sz_test.h"

struct rec {
    sz_timer_t t;
    uint64_t want;
    uint64_t fired_at;
    int count;
};

static sz_wheel_t W;

static void on_fire(sz_timer_t *t)
{
    struct rec *r = (struct rec *)t;
    r->fired_at = W.now;
    r->count++;
}

SZ_TEST(fires_exactly_at_each_level)
{
    static const uint64_t deltas[] = {1,     2,      63,      64,       65,        100,
                                      4095,  4096,   4097,    262143,   262144,    300000,
                                      16777215, 16777216, 123456789};
    enum { N = sizeof(deltas) / sizeof(deltas[0]) };
    struct rec recs[N] = {0};
    sz_wheel_init(&W, 1000);
    for (int i = 0; i < N; i++) {
        recs[i].want = 1000 + deltas[i];
        sz_timer_arm(&W, &recs[i].t, recs[i].want, on_fire);
    }
    SZ_CHECK_INT(W.count, N);
    /* Advance in irregular steps, as a loop woken at odd times would. */
    uint64_t now = 1000;
    while (W.count) {
        uint64_t next = sz_wheel_next(&W);
        SZ_CHECK(next >= 1);
        now += next < 7777 ? next : 7777;
        sz_wheel_advance(&W, now);
    }
    for (int i = 0; i < N; i++) {
        SZ_CHECK_INT(recs[i].count, 1);
        SZ_CHECK_INT(recs[i].fired_at, recs[i].want);
    }
}

SZ_TEST(next_never_overshoots)
{
    /* Waiting exactly sz_wheel_next() ticks must never skip past a timer. */
    sz_wheel_init(&W, 0);
    struct rec r[64] = {0};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        r[i].want = 1 + x % 500000;
        sz_timer_arm(&W, &r[i].t, r[i].want, on_fire);
    }
    uint64_t now = 0, wakeups = 0;
    while (W.count && wakeups < 100000) {
        now += sz_wheel_next(&W);
        sz_wheel_advance(&W, now);
        wakeups++;
    }
    for (int i = 0; i < 64; i++)
        SZ_CHECK_INT(r[i].fired_at, r[i].want);
    /* Far fewer wake-ups than ticks: the wait skips empty spans. */
    SZ_CHECK(wakeups < 5000);
}

SZ_TEST(cancel_and_rearm)
{
    sz_wheel_init(&W, 0);
    struct rec a = {0}, b = {0};
    sz_timer_arm(&W, &a.t, 50, on_fire);
    sz_timer_arm(&W, &b.t, 5000, on_fire);
    SZ_CHECK(sz_timer_armed(&a.t));
    sz_timer_cancel(&W, &a.t);
    SZ_CHECK(!sz_timer_armed(&a.t));
    sz_timer_cancel(&W, &a.t); /* harmless twice */
    sz_timer_arm(&W, &b.t, 70, on_fire); /* re-arm moves it */
    SZ_CHECK_INT(W.count, 1);
    sz_wheel_advance(&W, 10000);
    SZ_CHECK_INT(a.count, 0);
    SZ_CHECK_INT(b.count, 1);
    SZ_CHECK_INT(b.fired_at, 70);
    SZ_CHECK_INT(W.count, 0);
    SZ_CHECK(sz_wheel_next(&W) == UINT64_MAX);
}

static int periodic_left;
static void on_periodic(sz_timer_t *t)
{
    struct rec *r = (struct rec *)t;
    r->count++;
    r->fired_at = W.now;
    if (--periodic_left > 0)
        sz_timer_arm(&W, t, W.now + 10, on_periodic);
}

SZ_TEST(rearm_from_callback)
{
    sz_wheel_init(&W, 0);
    struct rec r = {0};
    periodic_left = 100;
    sz_timer_arm(&W, &r.t, 10, on_periodic);
    sz_wheel_advance(&W, 5000);
    SZ_CHECK_INT(r.count, 100);
    SZ_CHECK_INT(r.fired_at, 1000);
}

SZ_TEST(past_expiry_fires_next_advance)
{
    sz_wheel_init(&W, 500);
    struct rec r = {0};
    sz_timer_arm(&W, &r.t, 10, on_fire);
    sz_wheel_advance(&W, 501);
    SZ_CHECK_INT(r.count, 1);
}

SZ_TEST(many_idle_timers_cost_nothing_per_tick)
{
    /* 100,000 timers 60 s out: advancing 1 s fires none and the number of
     * timer moves (cascades) stays bounded by the timers, not the ticks. */
    enum { N = 100000 };
    static struct rec r[N];
    sz_wheel_init(&W, 0);
    for (int i = 0; i < N; i++) {
        r[i].count = 0;
        sz_timer_arm(&W, &r[i].t, 60000 + (uint64_t)(i % 1000), on_fire);
    }
    unsigned fired = sz_wheel_advance(&W, 1000);
    SZ_CHECK_INT(fired, 0);
    fired = sz_wheel_advance(&W, 61000);
    SZ_CHECK_INT(fired, N);
    for (int i = 0; i < N; i += 997)
        SZ_CHECK_INT(r[i].fired_at, r[i].t.expires);
}

int main(void)
{
    SZ_RUN(fires_exactly_at_each_level);
    SZ_RUN(next_never_overshoots);
    SZ_RUN(cancel_and_rearm);
    SZ_RUN(rearm_from_callback);
    SZ_RUN(past_expiry_fires_next_advance);
    SZ_RUN(many_idle_timers_cost_nothing_per_tick);
    return sz_test_done();
}
