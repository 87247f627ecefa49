/* Unit tests for core/xq.c: per-pair FIFO order, nothing lost over 10M
 * items between two threads, full-ring back-pressure, the empty->non-empty
 * wake signal, and round-robin draining. */
#include "core/xq.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdint.h>

#include "sz_test.h"

#define ITEMS 10000000ull

SZ_TEST(order_and_backpressure_single_thread)
{
    sz_xq_t *q = sz_xq_new(3, 16);
    bool wake = false;
    /* First push into an empty ring asks for a wake-up, later ones not. */
    SZ_CHECK_INT(sz_xq_push(q, 0, 1, (void *)1, &wake), 0);
    SZ_CHECK(wake);
    SZ_CHECK_INT(sz_xq_push(q, 0, 1, (void *)2, &wake), 0);
    SZ_CHECK(!wake);
    /* Capacity is entries - 1; the next push is refused, not dropped. */
    for (uintptr_t i = 3; i <= 15; i++)
        SZ_CHECK_INT(sz_xq_push(q, 0, 1, (void *)i, &wake), 0);
    SZ_CHECK_INT(sz_xq_depth(q, 0, 1), 15);
    SZ_CHECK_INT(sz_xq_push(q, 0, 1, (void *)16, &wake), -ENOBUFS);
    SZ_CHECK_INT(sz_xq_full_events(q, 0, 1), 1);
    SZ_CHECK(!sz_xq_idle(q, 1));
    SZ_CHECK(sz_xq_idle(q, 2));
    for (uintptr_t i = 1; i <= 15; i++)
        SZ_CHECK(sz_xq_pop(q, 0, 1) == (void *)i);
    SZ_CHECK(sz_xq_pop(q, 0, 1) == NULL);
    SZ_CHECK(sz_xq_idle(q, 1));
    /* Other pairs are independent. */
    SZ_CHECK_INT(sz_xq_depth(q, 1, 0), 0);
    SZ_CHECK_INT(sz_xq_full_events(q, 1, 0), 0);
    sz_xq_free(q);
}

static uintptr_t drained[4];
static void count_msg(void *ctx, unsigned src, void *msg)
{
    (void)ctx;
    (void)msg;
    drained[src]++;
}

SZ_TEST(drain_round_robin)
{
    sz_xq_t *q = sz_xq_new(4, 64);
    bool wake;
    for (unsigned src = 0; src < 3; src++)
        for (uintptr_t i = 1; i <= 20; i++)
            sz_xq_push(q, src, 3, (void *)i, &wake);
    /* A budget of 30 is shared fairly: 10 from each source. */
    SZ_CHECK_INT(sz_xq_drain(q, 3, 30, count_msg, NULL), 30);
    SZ_CHECK_INT(drained[0], 10);
    SZ_CHECK_INT(drained[1], 10);
    SZ_CHECK_INT(drained[2], 10);
    SZ_CHECK_INT(sz_xq_drain(q, 3, 1000, count_msg, NULL), 30);
    SZ_CHECK(sz_xq_idle(q, 3));
    sz_xq_free(q);
}

struct pc {
    sz_xq_t *q;
    uint64_t full, wakes, bad, got;
    volatile int *sleeping;
};

static void *producer(void *arg)
{
    struct pc *pc = arg;
    for (uint64_t i = 1; i <= ITEMS;) {
        bool wake = false;
        if (sz_xq_push(pc->q, 0, 1, (void *)(uintptr_t)i, &wake) == 0) {
            pc->wakes += wake;
            i++;
        } else {
            pc->full++; /* back-pressure: retry, never drop */
            sched_yield();
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct pc *pc = arg;
    uint64_t expect = 1;
    while (expect <= ITEMS) {
        void *m = sz_xq_pop(pc->q, 0, 1);
        if (!m) {
            sched_yield();
            continue;
        }
        if ((uint64_t)(uintptr_t)m != expect)
            pc->bad++;
        expect = (uint64_t)(uintptr_t)m + 1;
        pc->got++;
    }
    return NULL;
}

SZ_TEST(ten_million_items_two_threads)
{
    struct pc pc = {0};
    pc.q = sz_xq_new(2, 1024);
    pthread_t a, b;
    pthread_create(&b, NULL, consumer, &pc);
    pthread_create(&a, NULL, producer, &pc);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    SZ_CHECK_INT(pc.got, ITEMS);
    SZ_CHECK_INT(pc.bad, 0);
    SZ_CHECK(sz_xq_idle(pc.q, 1));
    printf("# full events %llu, wake signals %llu\n", (unsigned long long)pc.full,
           (unsigned long long)pc.wakes);
    SZ_CHECK_INT(sz_xq_full_events(pc.q, 0, 1), pc.full);
    sz_xq_free(pc.q);
}

/* Lost-wakeup check: the consumer "sleeps" (spins on a flag) only after
 * sz_xq_idle() said the inbox is empty, and only a push reporting <wake>
 * may end the sleep. If the protocol could lose a wake-up, the consumer
 * would sleep forever with items queued; the producer detects that. */
struct sleepy {
    sz_xq_t *q;
    int asleep;  /* consumer announced sleep */
    int doorbell;
    uint64_t got, stuck;
};

#define SLEEPY_ITEMS 1000000ull

static void *sleepy_consumer(void *arg)
{
    struct sleepy *s = arg;
    while (s->got < SLEEPY_ITEMS) {
        while (sz_xq_pop(s->q, 0, 1))
            s->got++;
        if (s->got >= SLEEPY_ITEMS)
            break;
        __atomic_store_n(&s->asleep, 1, __ATOMIC_SEQ_CST);
        if (!sz_xq_idle(s->q, 1)) {
            __atomic_store_n(&s->asleep, 0, __ATOMIC_SEQ_CST);
            continue;
        }
        /* Sleep until the doorbell. */
        while (!__atomic_exchange_n(&s->doorbell, 0, __ATOMIC_ACQ_REL))
            sched_yield();
        __atomic_store_n(&s->asleep, 0, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

SZ_TEST(no_lost_wakeup)
{
    struct sleepy s = {0};
    s.q = sz_xq_new(2, 64);
    pthread_t c;
    pthread_create(&c, NULL, sleepy_consumer, &s);
    for (uint64_t i = 1; i <= SLEEPY_ITEMS;) {
        bool wake = false;
        if (sz_xq_push(s.q, 0, 1, (void *)(uintptr_t)i, &wake) == 0) {
            i++;
            if (wake)
                __atomic_store_n(&s.doorbell, 1, __ATOMIC_RELEASE);
        }
        /* Bursts of 1..8 items so the ring often drains to empty. */
        if ((i & 7) == 0)
            for (volatile int k = 0; k < 50; k++)
                ;
    }
    /* Bounded wait for the consumer to finish; a lost wake-up would leave
     * it asleep with items queued. */
    for (int spins = 0; spins < 2000 && __atomic_load_n(&s.got, __ATOMIC_RELAXED) < SLEEPY_ITEMS;
         spins++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    uint64_t got = __atomic_load_n(&s.got, __ATOMIC_RELAXED);
    SZ_CHECK_INT(got, SLEEPY_ITEMS);
    if (got < SLEEPY_ITEMS) {
        /* Unstick it so the test can end, then report. */
        __atomic_store_n(&s.doorbell, 1, __ATOMIC_RELEASE);
    }
    pthread_join(c, NULL);
    sz_xq_free(s.q);
}

int main(void)
{
    SZ_RUN(order_and_backpressure_single_thread);
    SZ_RUN(drain_round_robin);
    SZ_RUN(ten_million_items_two_threads);
    SZ_RUN(no_lost_wakeup);
    return sz_test_done();
}
