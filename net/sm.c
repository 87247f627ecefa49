/*
 * XEP-0198 bookkeeping: a ring of stanza references in send order. Entry i
 * (from head) is stanza number acked + i + 1 of the stream; NULL entries
 * are stanzas only counted.
 */
#include "net/sm.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define INITIAL_CAP 8

struct sz_sm {
    uint32_t in_h;      /* stanzas handled from the client */
    uint32_t acked;     /* the client's last 'h' */
    uint32_t n;         /* queued: sent, not acknowledged */
    uint32_t head, cap; /* ring of cap entries (a power of two) */
    bool asked;         /* our <r/> is unanswered */
    bool resumable;     /* tok is set (XEP-0198 §5) */
    uint8_t tok[SZ_SM_TOKEN_BYTES];
    sz_stanza_t **q;
};

sz_sm_t *sz_sm_new(void)
{
    return sz_calloc(1, sizeof(sz_sm_t));
}

static void grow(sz_sm_t *sm)
{
    uint32_t cap = sm->cap ? sm->cap * 2 : INITIAL_CAP;
    sz_stanza_t **q = sz_malloc(cap * sizeof(*q));
    for (uint32_t i = 0; i < sm->n; i++)
        q[i] = sm->q[(sm->head + i) & (sm->cap - 1)];
    sz_free(sm->q);
    sm->q = q;
    sm->head = 0;
    sm->cap = cap;
}

static bool ask(sz_sm_t *sm)
{
    if (sm->asked || sm->n < SZ_SM_REQUEST_AFTER)
        return false;
    sm->asked = true;
    return true;
}

int sz_sm_sent(sz_sm_t *sm, sz_stanza_t *st)
{
    if (sm->n == sm->cap)
        grow(sm);
    sm->q[(sm->head + sm->n) & (sm->cap - 1)] = st;
    sm->n++;
    return ask(sm) ? 1 : 0;
}

int sz_sm_acked(sz_sm_t *sm, uint32_t h)
{
    uint32_t k = h - sm->acked; /* wraps as the counters do (§4) */
    if (k > sm->n)
        return -1;
    for (uint32_t i = 0; i < k; i++) {
        sz_stanza_t *st = sm->q[sm->head];
        if (st)
            sz_stanza_unref(st);
        sm->head = (sm->head + 1) & (sm->cap - 1);
    }
    sm->n -= k;
    sm->acked = h;
    sm->asked = false;
    return ask(sm) ? 1 : 0;
}

void sz_sm_handled(sz_sm_t *sm)
{
    sm->in_h++;
}

uint32_t sz_sm_h(const sz_sm_t *sm)
{
    return sm->in_h;
}

uint32_t sz_sm_sent_count(const sz_sm_t *sm)
{
    return sm->acked + sm->n;
}

uint32_t sz_sm_unacked(const sz_sm_t *sm)
{
    return sm->n;
}

void sz_sm_free(sz_sm_t *sm, void (*undelivered)(void *ctx, sz_stanza_t *st), void *ctx)
{
    if (!sm)
        return;
    for (uint32_t i = 0; i < sm->n; i++) {
        sz_stanza_t *st = sm->q[(sm->head + i) & (sm->cap - 1)];
        if (!st)
            continue;
        if (undelivered)
            undelivered(ctx, st);
        else
            sz_stanza_unref(st);
    }
    sz_free(sm->q);
    sz_free(sm);
}

void sz_sm_set_token(sz_sm_t *sm, const uint8_t *tok)
{
    sm->resumable = tok != NULL;
    if (tok)
        memcpy(sm->tok, tok, SZ_SM_TOKEN_BYTES);
    else
        memset(sm->tok, 0, SZ_SM_TOKEN_BYTES);
}

bool sz_sm_token_eq(const sz_sm_t *sm, const uint8_t *tok)
{
    /* Constant time: how far a guess matched must not show in timing. */
    uint8_t d = 0;
    for (unsigned i = 0; i < SZ_SM_TOKEN_BYTES; i++)
        d |= (uint8_t)(sm->tok[i] ^ tok[i]);
    return sm->resumable && d == 0;
}

bool sz_sm_resumable(const sz_sm_t *sm)
{
    return sm->resumable;
}

int sz_sm_resume(sz_sm_t *sm, uint32_t h, void (*resend)(void *ctx, sz_stanza_t *st), void *ctx)
{
    if (sz_sm_acked(sm, h) < 0)
        return -1;
    /* Take the rest out first: <resend> queues into <sm> again. */
    sz_stanza_t **q = sm->q;
    uint32_t n = sm->n, head = sm->head, cap = sm->cap;
    sm->q = NULL;
    sm->n = sm->head = sm->cap = 0;
    sm->asked = false;
    int sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        sz_stanza_t *st = q[(head + i) & (cap - 1)];
        if (st) {
            resend(ctx, st);
            sent++;
        }
    }
    sz_free(q);
    return sent;
}

void sz_sm_test_set_counts(sz_sm_t *sm, uint32_t in_h, uint32_t out_h)
{
    if (sm->n)
        abort(); /* the queue's numbering would no longer match acked */
    sm->in_h = in_h;
    sm->acked = out_h;
}
