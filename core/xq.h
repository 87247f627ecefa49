/*
 * Cross-reactor queues: one SPSC ck_ring per ordered pair (src, dst) of
 * reactors, carrying pointers. Only reactor <src> pushes into (src, dst) and
 * only reactor <dst> pops from it, so no locks and no CAS are needed.
 *
 * Wakeups: a push reports whether the ring went from empty to non-empty;
 * only then must the producer ring the consumer's doorbell (the reactor
 * batches doorbells to one per destination per loop iteration). The
 * consumer calls sz_xq_idle() before sleeping. Both sides issue a full fence
 * between their store and their load (Dekker), so either the consumer sees
 * the item or the producer sees the ring empty and rings: no lost wakeup.
 *
 * A full ring is back-pressure: the push fails and the caller keeps the
 * message; nothing is ever dropped.
 */
#ifndef SZ_CORE_XQ_H
#define SZ_CORE_XQ_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sz_xq sz_xq_t;

/**
 * Main thread, before reactors start. <n> reactors, <entries> slots per
 * ring (power of two, >= 4; usable capacity is entries - 1). Returns the
 * matrix (caller owns; sz_xq_free) — never NULL.
 */
sz_xq_t *sz_xq_new(unsigned n, unsigned entries);

/** Main thread, after reactors stopped. Remaining items are not freed. */
void sz_xq_free(sz_xq_t *q);

/**
 * Reactor <src> only. Pushes <msg> for reactor <dst>. On success returns 0
 * and sets *<wake> when <dst> must be woken (its ring was empty). Returns
 * -ENOBUFS when the ring is full (the caller still owns <msg>; the pair's
 * full counter is incremented).
 */
int sz_xq_push(sz_xq_t *q, unsigned src, unsigned dst, void *msg, bool *wake);

/** Reactor <dst> only. Pops one message from (src, dst), or NULL if empty. */
void *sz_xq_pop(sz_xq_t *q, unsigned src, unsigned dst);

/**
 * Reactor <dst> only. Pops up to <budget> messages over all sources (round
 * robin, so one busy sender cannot starve the others), calling <fn>(<ctx>,
 * src, msg) for each. Returns the number handled.
 */
unsigned sz_xq_drain(sz_xq_t *q, unsigned dst, unsigned budget,
                     void (*fn)(void *ctx, unsigned src, void *msg), void *ctx);

/**
 * Reactor <dst> only, just before it sleeps. Fences, then returns true when
 * every inbound ring of <dst> is empty (safe to sleep).
 */
bool sz_xq_idle(sz_xq_t *q, unsigned dst);

/** Any thread (approximate). Items waiting in (src, dst). */
unsigned sz_xq_depth(const sz_xq_t *q, unsigned src, unsigned dst);

/** Any thread (approximate). Times a push to (src, dst) found it full. */
uint64_t sz_xq_full_events(const sz_xq_t *q, unsigned src, unsigned dst);

/** Number of reactors the matrix was made for. */
unsigned sz_xq_size(const sz_xq_t *q);

#endif
