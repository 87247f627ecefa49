/*
 * Durability barriers (core/durable.h). Per reactor: the writes in flight
 * in begin order (a list, since they end in any order) and the barriers
 * waiting on them, each with the sequence number begun last when it
 * arrived; a barrier is released when no write at or below that number
 * is still in flight. A barrier set on reactor A waits for A itself and
 * for one answer from each other reactor, asked through the cross-reactor
 * rings. A post that finds a ring full is retried from a 1 ms timer, in
 * order, so it never overtakes the stanzas it must follow.
 */
#include "core/durable.h"

#include <stdbool.h>
#include <stddef.h>

#include "core/mem.h"
#include "core/timer.h"

struct sz_durable_wait {
    void (*fn)(void *arg); /* NULL once cancelled */
    void *arg;
    unsigned remaining;    /* reactors yet to answer, this one included */
};

/* A barrier's request to one reactor and, reused, the answer back. */
struct bmsg {
    sz_msg_t m;
    struct bmsg *next;     /* in a waiting or retry list */
    sz_durable_wait_t *w;  /* lives on <src>, only touched there */
    uint64_t target;       /* released when nothing <= target is in flight */
    unsigned src, dst;     /* the reactor that set the barrier, the one to post to */
    bool fanout;           /* the barrier's own part: once released here, cross to the others */
};

/* This reactor's state. */
static __thread sz_durable_t *head, *tail; /* writes in flight, oldest first */
static __thread uint64_t last_seq;         /* sequence number of the last begin */
static __thread unsigned npending;
static __thread struct bmsg *waiting, *waiting_tail; /* barriers here, in target order */
static __thread struct bmsg *retry, *retry_tail;     /* posts that found a ring full */
static __thread sz_timer_t retry_timer;
static __thread sz_durable_t *inherit;     /* sz_durable_inherit() */

static void post(sz_reactor_t *r, struct bmsg *b);
static void on_request(sz_reactor_t *r, unsigned src, sz_msg_t *m);

static void answered(sz_durable_wait_t *w)
{
    if (--w->remaining > 0)
        return;
    if (w->fn)
        w->fn(w->arg);
    sz_free(w);
}

/* On the barrier's reactor: one reactor has answered. */
static void on_answer(sz_reactor_t *r, unsigned src, sz_msg_t *m)
{
    (void)r;
    (void)src;
    struct bmsg *b = (struct bmsg *)m;
    sz_durable_wait_t *w = b->w;
    sz_free(b);
    answered(w);
}

/* The node stops with a request or an answer still queued: all reactors
 * have been joined, so the barrier's count is safe to touch here. */
static void drop_bmsg(sz_msg_t *m)
{
    struct bmsg *b = (struct bmsg *)m;
    sz_durable_wait_t *w = b->w;
    sz_free(b);
    w->fn = NULL;
    answered(w);
}

/* Barrier <b> is satisfied on this reactor: answer its source. */
static void release(sz_reactor_t *r, struct bmsg *b)
{
    if (b->src == r->id) {
        sz_durable_wait_t *w = b->w;
        bool fanout = b->fanout;
        sz_free(b);
        /* This reactor's own writes and holds are done: now the others,
         * behind everything this reactor routed up to here. */
        for (unsigned i = 0; fanout && i < r->n; i++) {
            if (i == r->id)
                continue;
            struct bmsg *o = sz_calloc(1, sizeof(*o));
            o->m.fn = on_request;
            o->w = w;
            o->src = r->id;
            o->dst = i;
            post(r, o);
        }
        answered(w);
        return;
    }
    b->m.fn = on_answer;
    b->dst = b->src;
    post(r, b);
}

static uint64_t oldest_in_flight(void)
{
    return head ? head->_seq : last_seq + 1;
}

static void release_ready(sz_reactor_t *r)
{
    uint64_t oldest = oldest_in_flight();
    while (waiting && waiting->target < oldest) {
        struct bmsg *b = waiting;
        waiting = b->next;
        if (!waiting)
            waiting_tail = NULL;
        release(r, b);
    }
}

/* Barrier <b> reached this reactor: everything routed here before it has
 * been taken in, so the writes it waits for are those begun so far. */
static void arrive(sz_reactor_t *r, struct bmsg *b)
{
    b->target = last_seq;
    b->next = NULL;
    if (waiting_tail)
        waiting_tail->next = b;
    else
        waiting = b;
    waiting_tail = b;
    release_ready(r);
}

static void on_request(sz_reactor_t *r, unsigned src, sz_msg_t *m)
{
    (void)src;
    arrive(r, (struct bmsg *)m);
}

static void on_retry(sz_timer_t *t)
{
    (void)t;
    sz_reactor_t *r = sz_reactor_self();
    struct bmsg *b = retry;
    retry = retry_tail = NULL;
    while (b) {
        struct bmsg *next = b->next;
        post(r, b);
        b = next;
    }
}

/* Posts <b> to b->dst, behind any earlier post still waiting for room. */
static void post(sz_reactor_t *r, struct bmsg *b)
{
    b->next = NULL;
    b->m.drop = drop_bmsg;
    if (!retry && sz_reactor_post(r, b->dst, &b->m) == 0)
        return;
    if (retry_tail)
        retry_tail->next = b;
    else
        retry = b;
    retry_tail = b;
    if (!sz_timer_armed(&retry_timer))
        sz_timer_arm(&r->wheel, &retry_timer, sz_reactor_now(r) + 1, on_retry);
}

void sz_durable_inherit(sz_durable_t *d)
{
    inherit = d;
}

void sz_durable_begin(sz_reactor_t *r, sz_durable_t *d)
{
    (void)r;
    if (inherit) {
        /* In the place of the hold that routes it on (same sequence
         * number, right behind it): the list stays in sequence order. */
        d->_seq = inherit->_seq;
        d->_prev = inherit;
        d->_next = inherit->_next;
        if (inherit->_next)
            inherit->_next->_prev = d;
        else
            tail = d;
        inherit->_next = d;
        npending++;
        return;
    }
    d->_seq = ++last_seq;
    d->_next = NULL;
    d->_prev = tail;
    if (tail)
        tail->_next = d;
    else
        head = d;
    tail = d;
    npending++;
}

void sz_durable_end(sz_reactor_t *r, sz_durable_t *d)
{
    if (d->_prev)
        d->_prev->_next = d->_next;
    else
        head = d->_next;
    if (d->_next)
        d->_next->_prev = d->_prev;
    else
        tail = d->_prev;
    d->_next = d->_prev = NULL;
    npending--;
    release_ready(r);
}

sz_durable_wait_t *sz_durable_barrier(sz_reactor_t *r, void (*fn)(void *arg), void *arg)
{
    if (r->n <= 1 && !head)
        return NULL;
    sz_durable_wait_t *w = sz_malloc(sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    w->remaining = r->n;
    /* This reactor's part first; it crosses to the others when released
     * (see release()). */
    struct bmsg *self = sz_calloc(1, sizeof(*self));
    self->w = w;
    self->src = self->dst = r->id;
    self->fanout = true;
    arrive(r, self);
    return w;
}

void sz_durable_cancel(sz_durable_wait_t *w)
{
    if (w)
        w->fn = NULL;
}

unsigned sz_durable_pending(void)
{
    return npending;
}
