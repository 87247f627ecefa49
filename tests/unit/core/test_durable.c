/*
 * Tests for core/durable.c on one reactor (no ring is needed: a barrier
 * then waits only for this reactor's writes): a barrier completes once
 * every write begun before it has ended, in whatever order they end, and
 * not for writes begun after it; nothing in flight means no barrier;
 * a cancelled barrier never calls back.
 */
#include "core/durable.h"

#include <string.h>

#include "sz_test.h"

static sz_reactor_t r1;

static void on_done(void *arg)
{
    (*(int *)arg)++;
}

SZ_TEST(waits_for_writes_begun_before)
{
    int called = 0;
    SZ_CHECK(sz_durable_barrier(&r1, on_done, &called) == NULL); /* nothing in flight */
    sz_durable_t a, b, c;
    sz_durable_begin(&r1, &a);
    sz_durable_begin(&r1, &b);
    SZ_CHECK(sz_durable_barrier(&r1, on_done, &called) != NULL);
    sz_durable_begin(&r1, &c); /* after the barrier: not waited for */
    SZ_CHECK_INT(sz_durable_pending(), 3);
    sz_durable_end(&r1, &b); /* out of order */
    SZ_CHECK_INT(called, 0);
    sz_durable_end(&r1, &a);
    SZ_CHECK_INT(called, 1);
    /* A second barrier waits for c only. */
    int second = 0;
    SZ_CHECK(sz_durable_barrier(&r1, on_done, &second) != NULL);
    SZ_CHECK_INT(second, 0);
    sz_durable_end(&r1, &c);
    SZ_CHECK_INT(second, 1);
    SZ_CHECK_INT(called, 1);
    SZ_CHECK_INT(sz_durable_pending(), 0);
}

SZ_TEST(cancelled_never_calls_back)
{
    int called = 0;
    sz_durable_t a;
    sz_durable_begin(&r1, &a);
    sz_durable_wait_t *w = sz_durable_barrier(&r1, on_done, &called);
    SZ_CHECK(w != NULL);
    sz_durable_cancel(w);
    sz_durable_end(&r1, &a); /* frees the barrier (ASan checks) */
    SZ_CHECK_INT(called, 0);
}

int main(void)
{
    memset(&r1, 0, sizeof(r1));
    r1.id = 0;
    r1.n = 1;
    SZ_RUN(waits_for_writes_begun_before);
    SZ_RUN(cancelled_never_calls_back);
    return sz_test_done();
}
