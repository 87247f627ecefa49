/*
 * The N x N ring matrix behind core/xq.h. Each pair has its own ck_ring
 * (head and tail on separate cache lines, from ck) and its own buffer;
 * pairs are allocated separately so two pairs never share a cache line.
 */
#include "core/xq.h"

#include <errno.h>
#include <stdlib.h>

#include <ck_pr.h>
#include <ck_ring.h>

#include "core/mem.h"

struct xq_pair {
    ck_ring_t ring;
    ck_ring_buffer_t *buf;
    uint64_t full; /* written by the producer only */
} CK_CC_CACHELINE;

struct sz_xq {
    unsigned n;
    unsigned rr[256];      /* per-consumer round-robin start, owner only */
    struct xq_pair *pairs; /* [src * n + dst] */
};

static inline struct xq_pair *pair(const sz_xq_t *q, unsigned src, unsigned dst)
{
    return &q->pairs[src * q->n + dst];
}

sz_xq_t *sz_xq_new(unsigned n, unsigned entries)
{
    sz_xq_t *q = sz_calloc(1, sizeof(*q));
    q->n = n;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(struct xq_pair) * n * n) != 0)
        mem = sz_malloc(sizeof(struct xq_pair) * n * n); /* aborts on OOM */
    q->pairs = mem;
    for (unsigned i = 0; i < n * n; i++) {
        struct xq_pair *p = &q->pairs[i];
        ck_ring_init(&p->ring, entries);
        p->buf = sz_calloc(entries, sizeof(ck_ring_buffer_t));
        p->full = 0;
    }
    return q;
}

void sz_xq_free(sz_xq_t *q)
{
    if (!q)
        return;
    for (unsigned i = 0; i < q->n * q->n; i++)
        sz_free(q->pairs[i].buf);
    free(q->pairs);
    sz_free(q);
}

int sz_xq_push(sz_xq_t *q, unsigned src, unsigned dst, void *msg, bool *wake)
{
    struct xq_pair *p = pair(q, src, dst);
    if (!ck_ring_enqueue_spsc(&p->ring, p->buf, msg)) {
        ck_pr_store_64(&p->full, p->full + 1);
        return -ENOBUFS;
    }
    /* Store (tail) -> full fence -> load (head): pairs with the fence in
     * sz_xq_idle(). If the ring now holds only our item, the consumer may
     * have found it empty and be going to sleep: it must be woken. */
    ck_pr_fence_memory();
    *wake = ck_ring_size(&p->ring) <= 1;
    return 0;
}

void *sz_xq_pop(sz_xq_t *q, unsigned src, unsigned dst)
{
    void *msg;
    struct xq_pair *p = pair(q, src, dst);
    return ck_ring_dequeue_spsc(&p->ring, p->buf, &msg) ? msg : NULL;
}

unsigned sz_xq_drain(sz_xq_t *q, unsigned dst, unsigned budget,
                     void (*fn)(void *ctx, unsigned src, void *msg), void *ctx)
{
    unsigned done = 0, n = q->n, empty = 0;
    unsigned src = q->rr[dst % 256];
    /* Round robin one message per source until all are empty or the
     * budget is spent. */
    while (done < budget && empty < n) {
        void *msg = sz_xq_pop(q, src, dst);
        if (msg) {
            fn(ctx, src, msg);
            done++;
            empty = 0;
        } else {
            empty++;
        }
        src = src + 1 == n ? 0 : src + 1;
    }
    q->rr[dst % 256] = src;
    return done;
}

bool sz_xq_idle(sz_xq_t *q, unsigned dst)
{
    /* Our last dequeue stored the head; fence before loading the tails. */
    ck_pr_fence_memory();
    for (unsigned src = 0; src < q->n; src++)
        if (ck_ring_size(&pair(q, src, dst)->ring) != 0)
            return false;
    return true;
}

unsigned sz_xq_depth(const sz_xq_t *q, unsigned src, unsigned dst)
{
    return ck_ring_size(&pair(q, src, dst)->ring);
}

uint64_t sz_xq_full_events(const sz_xq_t *q, unsigned src, unsigned dst)
{
    return ck_pr_load_64(&pair(q, src, dst)->full);
}

unsigned sz_xq_size(const sz_xq_t *q)
{
    return q->n;
}
