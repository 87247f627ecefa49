/*
 * Durability barriers: when may the server count a client's stanza as
 * handled (the XEP-0198 'h' it acknowledges) although the stanza's effect
 * is a storage write still in flight, maybe on another reactor?
 *
 * A module that turns a routed stanza into a write that must survive a
 * crash before the sender hears that it was handled (offline messages,
 * XEP-0160) brackets the write with sz_durable_begin() / sz_durable_end()
 * on the reactor that submits it, the begin in the same turn in which the
 * router handed it the stanza. A stream that is asked for an ack sets a
 * barrier on its reactor: it completes once every such write begun for a
 * stanza this reactor had routed before the barrier has ended (committed
 * or failed and bounced). Stanzas cross reactors through FIFO rings, and
 * the barrier crosses the same rings behind them, so each other reactor
 * answers after it has taken in everything this one sent it before and
 * once its writes begun up to then have ended. The barrier first waits for
 * the writes (and holds, below) begun on its own reactor, and only then
 * crosses to the others, so a stanza a hold routes on before it ends is
 * ahead of the barrier in every ring. A barrier may wait on
 * writes of other streams as well; it never waits for less.
 *
 * Threads: every function on a reactor thread, about that reactor; the
 * callback runs on the reactor that set the barrier.
 */
#ifndef SZ_CORE_DURABLE_H
#define SZ_CORE_DURABLE_H

#include <stdint.h>

#include "core/reactor.h"

/* One write in flight, embedded in its owner's request (never moved while
 * begun). Fields private. */
typedef struct sz_durable {
    struct sz_durable *_next, *_prev;
    uint64_t _seq;
} sz_durable_t;

/** A write of <d> begins on this reactor <r>. */
void sz_durable_begin(sz_reactor_t *r, sz_durable_t *d);

/** The write of <d> has ended (committed, or failed and answered):
 *  barriers waiting for it may complete, here or on other reactors. */
void sz_durable_end(sz_reactor_t *r, sz_durable_t *d);

/**
 * A module that holds a client's stanza on this reactor (waiting for its
 * own storage read) before routing it on brackets the hold with
 * sz_durable_begin()/sz_durable_end() on the reactor that holds it, and
 * routes it on between sz_durable_inherit(<d>) and sz_durable_inherit(NULL):
 * a write begun meanwhile on this reactor takes <d>'s place in the order,
 * so barriers waiting for the hold wait for that write too. <d> must be in
 * flight. Reactor thread.
 */
void sz_durable_inherit(sz_durable_t *d);

typedef struct sz_durable_wait sz_durable_wait_t;

/**
 * Sets a barrier on reactor <r>: <fn>(<arg>) runs on <r>, later (never
 * before this returns), once every write begun anywhere for a stanza <r>
 * routed before this call has ended. Returns the barrier, or NULL when
 * there is nothing to wait for (one reactor and no write in flight): then
 * <fn> is never called and the caller goes on at once.
 */
sz_durable_wait_t *sz_durable_barrier(sz_reactor_t *r, void (*fn)(void *arg), void *arg);

/** <r>'s thread: <w>'s callback will not run (its owner goes away). The
 *  barrier frees itself once the other reactors have answered. */
void sz_durable_cancel(sz_durable_wait_t *w);

/** Writes begun and not ended on this reactor (tests, metrics). */
unsigned sz_durable_pending(void);

#endif
