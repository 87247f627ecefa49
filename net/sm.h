/*
 * XEP-0198 stream management state of one client stream: the count of
 * stanzas handled from the client ('h') and the queue of stanzas sent to
 * it that it has not acknowledged yet. The XML lives in net/c2s.c; this is
 * the bookkeeping.
 *
 * Threads: owned by the connection's state, used only on the reactor that
 * owns the connection.
 */
#ifndef SZ_NET_SM_H
#define SZ_NET_SM_H
#include <stdbool.h>
#include <stdint.h>

#include "core/stanza.h"

/** Unacknowledged stanzas after which the server asks for an ack (<r/>). */
#define SZ_SM_REQUEST_AFTER 8

/** Bytes of a resumption token (XEP-0198 §5 'id'): 128 random bits. */
#define SZ_SM_TOKEN_BYTES 16

typedef struct sz_sm sz_sm_t;

/** A new state, 'h' 0 both ways (never NULL: allocation aborts on OOM). */
sz_sm_t *sz_sm_new(void);

/**
 * A stanza was written to the client. <st> is a reference the queue takes
 * (NULL for a stanza the server made up for this client alone, such as an
 * iq answer: it is counted but nobody waits for it). The caller bounds the
 * queue (sz_sm_unacked()). Returns 1 when the caller should send <r/> now,
 * else 0.
 */
int sz_sm_sent(sz_sm_t *sm, sz_stanza_t *st);

/**
 * The client acknowledged <h> stanzas in all (XEP-0198 §4, modulo 2^32).
 * Releases those. Returns -1 when <h> counts more stanzas than were sent
 * (the queue is left as it was), 1 when enough remain unacknowledged that
 * the caller should ask again (<r/>), else 0.
 */
int sz_sm_acked(sz_sm_t *sm, uint32_t h);

/** One stanza from the client was handled. */
void sz_sm_handled(sz_sm_t *sm);

/** Stanzas handled from the client, modulo 2^32 (the 'h' of our <a/>). */
uint32_t sz_sm_h(const sz_sm_t *sm);

/** Stanzas sent to the client, modulo 2^32. */
uint32_t sz_sm_sent_count(const sz_sm_t *sm);

/** Stanzas sent and not yet acknowledged. */
uint32_t sz_sm_unacked(const sz_sm_t *sm);

/**
 * Frees <sm>. Each unacknowledged stanza that is queued is passed to
 * <undelivered>(<ctx>, st), which consumes it, oldest first; NULL
 * <undelivered> just drops them.
 */
void sz_sm_free(sz_sm_t *sm, void (*undelivered)(void *ctx, sz_stanza_t *st), void *ctx);

/**
 * Makes the stream resumable under token <tok> (SZ_SM_TOKEN_BYTES, copied;
 * NULL: not resumable any more, the token is forgotten).
 */
void sz_sm_set_token(sz_sm_t *sm, const uint8_t *tok);

/** True when the stream is resumable and its token is <tok>
 *  (SZ_SM_TOKEN_BYTES); compared in constant time. */
bool sz_sm_token_eq(const sz_sm_t *sm, const uint8_t *tok);

/** True when the stream has a resumption token. */
bool sz_sm_resumable(const sz_sm_t *sm);

/**
 * Resumption (XEP-0198 §5): the client says it handled <h> stanzas. Those
 * are released; every stanza still queued after them is taken out of the
 * queue, which then counts them as never sent, and passed to
 * <resend>(<ctx>, st) in send order (consumes <st>; it normally sends it
 * again, which queues it anew). Entries that were only counted are
 * dropped. Returns -1 when <h> counts more stanzas than were sent (nothing
 * changed), else the number of stanzas passed to <resend>.
 */
int sz_sm_resume(sz_sm_t *sm, uint32_t h, void (*resend)(void *ctx, sz_stanza_t *st), void *ctx);

/**
 * Test hook, owner reactor, while nothing is unacknowledged: sets the
 * count of stanzas handled from the client to <in_h> and of stanzas sent
 * and acknowledged to <out_h>, as if that many had passed each way, so a
 * test can cross 2^32 without sending 2^32 stanzas. Never called by the
 * server.
 */
void sz_sm_test_set_counts(sz_sm_t *sm, uint32_t in_h, uint32_t out_h);

#endif
