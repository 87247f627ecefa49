/*
 * Helpers for the iq handlers that answer on an account's behalf
 * (RFC 6121 §8.5.2.1.3, §8.5.2.2.3: vCard, private XML, last activity):
 * who sent the request, and a request held while storage answers.
 * Internal to core/mod/. Threads: the reactor running the handler.
 */
#ifndef SZ_CORE_MOD_ACCOUNT_IQ_H
#define SZ_CORE_MOD_ACCOUNT_IQ_H

#include <stdbool.h>

#include "core/hooks.h"

/** The JID in <st>'s 'from' (stamped by c2s, RFC 6120 §8.1.2.1), parsed
 *  into <jb>; NULL when absent or not a JID. */
sz_jid_t *sz_mod_sender(const sz_stanza_t *st, sz_jid_buf_t *jb);

/** Whether the iq of <ctx> (scope SZ_IQ_ACCOUNT) came from the account it
 *  is addressed to: one of its own resources, with or without 'to'. */
bool sz_mod_from_owner(const sz_hook_ctx_t *ctx);

/* A request waiting for storage: its reactor, a reference to the stanza,
 * and room for the module's own small state. */
typedef struct sz_mod_held {
    sz_reactor_t *r;
    sz_stanza_t *st;
    unsigned flags; /* the module's */
} sz_mod_held_t;

/** Takes a reference to ctx->st and counts in sz_hooks_hold(). */
sz_mod_held_t *sz_mod_hold(const sz_hook_ctx_t *ctx, unsigned flags);

/** Drops what sz_mod_hold() took and frees <h>. */
void sz_mod_unhold(sz_mod_held_t *h);

/** Answers <h>'s iq with a result holding <inner> (trusted XML of <len>
 *  bytes, or NULL), or with stanza error <e> when <e> is not 0; then
 *  sz_mod_unhold(<h>). */
void sz_mod_held_answer(sz_mod_held_t *h, const char *inner, size_t len, enum sz_stanza_err e);

#endif
