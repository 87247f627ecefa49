/*
 * Helpers shared by the account iq handlers (core/mod/account_iq.h).
 * Reactor threads; no state of their own.
 */
#include "core/mod/account_iq.h"

#include "core/mem.h"

sz_jid_t *sz_mod_sender(const sz_stanza_t *st, sz_jid_buf_t *jb)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_t *j = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    if (n < 0 || sz_jid_parse_into(dec, (size_t)n, jb, sizeof(*jb), &j, NULL) < 0)
        return NULL;
    return j;
}

bool sz_mod_from_owner(const sz_hook_ctx_t *ctx)
{
    sz_jid_buf_t jb;
    sz_jid_t *from = sz_mod_sender(ctx->st, &jb);
    return from && ctx->to && sz_jid_has_local(ctx->to) && sz_jid_bare_eq(from, ctx->to);
}

sz_mod_held_t *sz_mod_hold(const sz_hook_ctx_t *ctx, unsigned flags)
{
    sz_mod_held_t *h = sz_malloc(sizeof(*h));
    h->r = ctx->r;
    h->st = sz_stanza_ref(ctx->st);
    h->flags = flags;
    sz_hooks_hold();
    return h;
}

void sz_mod_unhold(sz_mod_held_t *h)
{
    sz_stanza_unref(h->st);
    sz_free(h);
    sz_hooks_release();
}

void sz_mod_held_answer(sz_mod_held_t *h, const char *inner, size_t len, enum sz_stanza_err e)
{
    if (e)
        sz_router_bounce(h->r, h->st, e);
    else
        sz_router_iq_result(h->r, h->st, inner, len);
    sz_mod_unhold(h);
}
