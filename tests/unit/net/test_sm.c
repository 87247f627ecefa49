/*
 * net/sm: XEP-0198 bookkeeping. Counters wrap modulo 2^32 (§4), an ack
 * releases exactly the stanzas it covers, an ack above what was sent is
 * refused without touching the queue, the server asks for an ack every
 * SZ_SM_REQUEST_AFTER stanzas and not again while one is pending, and the
 * stanzas never acknowledged come back in send order when the state ends.
 * Resumption (§5): the token matches only itself and only while set, and
 * a resume releases what the client handled and hands back the rest in
 * order, counting it as unsent, even across the wrap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sm.h"
#include "sz_test.h"

static sz_stanza_t *mk(unsigned i)
{
    char xml[64];
    int n = snprintf(xml, sizeof(xml), "<message id='%u'/>", i);
    return sz_stanza_from_xml(xml, (size_t)n);
}

static unsigned got[64], ngot;

static void collect(void *ctx, sz_stanza_t *st)
{
    (void)ctx;
    char id[16];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    SZ_CHECK(n > 0);
    if (n > 0 && ngot < 64) {
        id[n] = 0;
        got[ngot++] = (unsigned)atoi(id);
    }
    sz_stanza_unref(st);
}

static void test_counts_and_acks(void)
{
    sz_sm_t *sm = sz_sm_new();
    SZ_CHECK_INT(sz_sm_h(sm), 0);
    sz_sm_handled(sm);
    sz_sm_handled(sm);
    SZ_CHECK_INT(sz_sm_h(sm), 2);
    int asks = 0;
    for (unsigned i = 0; i < 20; i++)
        asks += sz_sm_sent(sm, (i % 3) ? mk(i) : NULL);
    /* One request at the 8th stanza, none while it is unanswered. */
    SZ_CHECK_INT(asks, 1);
    SZ_CHECK_INT(sz_sm_sent_count(sm), 20);
    SZ_CHECK_INT(sz_sm_unacked(sm), 20);
    SZ_CHECK_INT(sz_sm_acked(sm, 21), -1); /* more than sent */
    SZ_CHECK_INT(sz_sm_unacked(sm), 20);
    /* 5 acknowledged, 15 remain: ask again. */
    SZ_CHECK_INT(sz_sm_acked(sm, 5), 1);
    SZ_CHECK_INT(sz_sm_unacked(sm), 15);
    SZ_CHECK_INT(sz_sm_acked(sm, 4), -1); /* going back counts as too high */
    SZ_CHECK_INT(sz_sm_acked(sm, 15), 0); /* 5 left: below the threshold */
    SZ_CHECK_INT(sz_sm_unacked(sm), 5);
    ngot = 0;
    sz_sm_free(sm, collect, NULL);
    /* 15..19 without the NULL entries (multiples of 3), in order. */
    SZ_CHECK_INT(ngot, 3);
    SZ_CHECK(got[0] == 16 && got[1] == 17 && got[2] == 19);
}

static void test_wraps(void)
{
    /* Both counters start 3 below 2^32 (sz_sm_test_set_counts), so the
     * stanzas below cross 2^32 for real: 6 sent are numbered 2^32 - 2 ..
     * 2^32 - 1, then 0 .. 3 (XEP-0198 §4: counters wrap to zero). */
    sz_sm_t *sm = sz_sm_new();
    sz_sm_test_set_counts(sm, UINT32_MAX - 2, UINT32_MAX - 2);
    SZ_CHECK_INT(sz_sm_h(sm), UINT32_MAX - 2);
    SZ_CHECK_INT(sz_sm_sent_count(sm), UINT32_MAX - 2);
    for (unsigned i = 0; i < 4; i++)
        sz_sm_handled(sm);
    SZ_CHECK_INT(sz_sm_h(sm), 1); /* 2^32 - 3 + 4, modulo 2^32 */
    for (unsigned i = 0; i < 6; i++)
        sz_sm_sent(sm, mk(i));
    SZ_CHECK_INT(sz_sm_sent_count(sm), 3);
    SZ_CHECK_INT(sz_sm_unacked(sm), 6);
    /* An ack before the wrap: the first stanza (2^32 - 2) only. */
    SZ_CHECK_INT(sz_sm_acked(sm, UINT32_MAX - 1), 0);
    SZ_CHECK_INT(sz_sm_unacked(sm), 5);
    /* An ack past the wrap: 2^32 - 1, 0 and 1 released, 2 left. */
    SZ_CHECK_INT(sz_sm_acked(sm, 1), 0);
    SZ_CHECK_INT(sz_sm_unacked(sm), 2);
    SZ_CHECK_INT(sz_sm_sent_count(sm), 3);
    /* Going back over the wrap, or past what was sent, is refused. */
    SZ_CHECK_INT(sz_sm_acked(sm, UINT32_MAX), -1);
    SZ_CHECK_INT(sz_sm_acked(sm, 4), -1);
    SZ_CHECK_INT(sz_sm_unacked(sm), 2);
    ngot = 0;
    sz_sm_free(sm, collect, NULL);
    /* The two never acknowledged, in send order. */
    SZ_CHECK_INT(ngot, 2);
    SZ_CHECK(got[0] == 4 && got[1] == 5);

    /* A fresh state: an ack of 2^32 - 1 is not "4 more". */
    sm = sz_sm_new();
    for (unsigned i = 0; i < 5; i++)
        sz_sm_sent(sm, mk(i));
    SZ_CHECK_INT(sz_sm_acked(sm, UINT32_MAX), -1);
    SZ_CHECK_INT(sz_sm_acked(sm, 5), 0);
    sz_sm_free(sm, NULL, NULL);

    /* Acknowledging everything exactly at the wrap leaves an empty queue. */
    sm = sz_sm_new();
    sz_sm_test_set_counts(sm, 0, UINT32_MAX - 1);
    sz_sm_sent(sm, NULL);
    sz_sm_sent(sm, NULL);
    SZ_CHECK_INT(sz_sm_sent_count(sm), 0);
    SZ_CHECK_INT(sz_sm_acked(sm, 0), 0);
    SZ_CHECK_INT(sz_sm_unacked(sm), 0);
    sz_sm_free(sm, NULL, NULL);
}

static void test_grows_in_order(void)
{
    sz_sm_t *sm = sz_sm_new();
    /* Interleave sends and acks so the ring wraps while it grows. */
    unsigned next = 0, acked = 0;
    for (unsigned step = 0; step < 10; step++) {
        for (unsigned i = 0; i < 7; i++)
            sz_sm_sent(sm, mk(next++ % 1000));
        acked += 4;
        sz_sm_acked(sm, acked);
    }
    SZ_CHECK_INT(sz_sm_unacked(sm), next - acked);
    ngot = 0;
    sz_sm_free(sm, collect, NULL);
    SZ_CHECK_INT(ngot, next - acked);
    for (unsigned i = 0; i < ngot; i++)
        SZ_CHECK_INT(got[i], acked + i);
}

/* Resends as the stream does: back into the same queue. */
static void requeue(void *ctx, sz_stanza_t *st)
{
    sz_sm_t *sm = ctx;
    char id[16];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    if (n > 0 && ngot < 64) {
        id[n] = 0;
        got[ngot++] = (unsigned)atoi(id);
    }
    sz_sm_sent(sm, st);
}

static void test_token_and_resume(void)
{
    uint8_t tok[SZ_SM_TOKEN_BYTES], other[SZ_SM_TOKEN_BYTES];
    for (unsigned i = 0; i < SZ_SM_TOKEN_BYTES; i++)
        tok[i] = other[i] = (uint8_t)(i * 37 + 1);
    other[SZ_SM_TOKEN_BYTES - 1] ^= 1;
    sz_sm_t *sm = sz_sm_new();
    SZ_CHECK(!sz_sm_resumable(sm));
    uint8_t zero[SZ_SM_TOKEN_BYTES] = {0};
    SZ_CHECK(!sz_sm_token_eq(sm, zero)); /* no token: nothing matches */
    sz_sm_set_token(sm, tok);
    SZ_CHECK(sz_sm_resumable(sm));
    SZ_CHECK(sz_sm_token_eq(sm, tok));
    SZ_CHECK(!sz_sm_token_eq(sm, other));
    sz_sm_set_token(sm, NULL);
    SZ_CHECK(!sz_sm_resumable(sm));
    SZ_CHECK(!sz_sm_token_eq(sm, tok));

    /* 3 below 2^32, 6 sent (one only counted), 1 acknowledged; the client
     * then resumes saying it handled 3 in all. */
    sz_sm_test_set_counts(sm, 0, UINT32_MAX - 2);
    for (unsigned i = 0; i < 6; i++)
        sz_sm_sent(sm, i == 4 ? NULL : mk(i));
    SZ_CHECK_INT(sz_sm_acked(sm, UINT32_MAX - 1), 0);
    SZ_CHECK_INT(sz_sm_resume(sm, 4, requeue, sm), -1); /* more than sent (0..3) */
    SZ_CHECK_INT(sz_sm_unacked(sm), 5);
    ngot = 0;
    SZ_CHECK_INT(sz_sm_resume(sm, 0, requeue, sm), 2);
    /* Stanzas 3 and 5 again (4 was only counted); numbered from 0 on. */
    SZ_CHECK_INT(ngot, 2);
    SZ_CHECK(got[0] == 3 && got[1] == 5);
    SZ_CHECK_INT(sz_sm_unacked(sm), 2);
    SZ_CHECK_INT(sz_sm_sent_count(sm), 2);
    SZ_CHECK_INT(sz_sm_acked(sm, 2), 0);
    SZ_CHECK_INT(sz_sm_unacked(sm), 0);
    /* Nothing left: a resume passes nothing. */
    SZ_CHECK_INT(sz_sm_resume(sm, 2, requeue, sm), 0);
    sz_sm_free(sm, NULL, NULL);
}

int main(void)
{
    SZ_RUN(counts_and_acks);
    SZ_RUN(wraps);
    SZ_RUN(grows_in_order);
    SZ_RUN(token_and_resume);
    return sz_test_done();
}
