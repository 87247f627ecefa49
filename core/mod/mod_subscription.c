/*
 * Presence subscriptions (RFC 6121 §3) and pre-approval (§3.4): the state
 * machine of Appendix A on both ends. Outbound subscribe, subscribed,
 * unsubscribe and unsubscribed from a user are stamped with the bare JIDs
 * (§3.1.2), change the user's item, are pushed and then routed; inbound
 * ones to a local user change the user's item on the user's home reactor,
 * online or not (storage then), and are delivered, stored as pending,
 * auto-answered or ignored as the tables say.
 *
 * Each stanza is a job on the user's roster queue (core/mod/roster.h), so
 * it sees the state the previous one committed, and is routed or delivered
 * only after its change is committed. Contacts on other reactors are
 * reached through sz_router_route like any stanza.
 *
 * Threads: the home reactor of the user whose item changes.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"

enum sub_type { T_SUBSCRIBE = 1, T_SUBSCRIBED, T_UNSUBSCRIBE, T_UNSUBSCRIBED };

/* What a job does once its change (if any) is committed; job->aux holds
 * the type in its low byte and these above it. */
#define A_ROUTE      0x100u  /* route the stanza (outbound) */
#define A_DELIVER    0x200u  /* deliver it to the available resources (inbound) */
#define A_CURRENT    0x400u  /* send the user's current presence to the contact (§3.1.5) */
#define A_UNAVAIL    0x800u  /* send unavailable from each resource to the contact (§3.2.2) */
#define A_REPLY_SUBD 0x1000u /* answer 'subscribed' on the user's behalf (§3.1.3) */
#define A_CLEAR_PEND 0x2000u /* forget the contact's pending request */
#define A_OUT        0x4000u /* outbound: the contact is the 'to' (else the 'from') */

static int sub_type(const char *t)
{
    if (!t)
        return 0;
    if (strcmp(t, "subscribe") == 0)
        return T_SUBSCRIBE;
    if (strcmp(t, "subscribed") == 0)
        return T_SUBSCRIBED;
    if (strcmp(t, "unsubscribe") == 0)
        return T_UNSUBSCRIBE;
    if (strcmp(t, "unsubscribed") == 0)
        return T_UNSUBSCRIBED;
    return 0;
}

/* The bare JID of attribute <which> of <st>, parsed into <jb>: a pointer
 * to it (not NUL-terminated when the attribute had a resource) and its
 * length in *<len>; NULL when absent or malformed. */
static const char *peer(const sz_stanza_t *st, enum sz_xml_attr_idx which, sz_jid_buf_t *jb,
                        size_t *len)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_t *j = NULL;
    ssize_t n = sz_stanza_attr(st, which, dec, sizeof(dec));
    if (n < 0 || sz_jid_parse_into(dec, (size_t)n, jb, sizeof(*jb), &j, NULL) < 0)
        return NULL;
    return sz_jid_bare(j, len);
}

/* The actions of <job->aux>, in the order the RFC lists them. */
static void after(sz_roster_t *ro, sz_roster_job_t *job)
{
    sz_jid_buf_t jb;
    size_t cl, ol;
    unsigned a = job->aux;
    const char *c = peer(job->st, a & A_OUT ? SZ_XML_A_TO : SZ_XML_A_FROM, &jb, &cl);
    const char *o = sz_jid_bare(sz_roster_owner(ro), &ol);
    if (!c)
        return;
    sz_user_t *u = sz_roster_user(ro);
    if (a & A_CLEAR_PEND)
        sz_roster_pending_clear(ro, c, cl);
    if (a & A_ROUTE) {
        /* §3.1.2 (and §3.2.2, §3.3.2): bare JIDs both ways. */
        sz_router_route(job->r, sz_stanza_rewrite(job->st, c, cl, o, ol));
    }
    if (a & A_DELIVER)
        sz_roster_deliver_available(u, job->st);
    if (a & A_REPLY_SUBD)
        sz_roster_send(job->r, "subscribed", o, ol, c, cl);
    if (a & A_CURRENT)
        sz_presence_send_current(job->r, u, c, cl);
    if (a & A_UNAVAIL)
        sz_presence_send_unavailable(job->r, u, c, cl);
}

/* The item could not be written: an outbound stanza goes back to the
 * user's resource as an error (not-allowed when the roster is full),
 * an inbound one is dropped. */
static void failed(sz_roster_job_t *job, int res)
{
    if (res == -ENOSPC)
        SZ_DEBUG("msg=\"subscription refused: roster full\"");
    else
        SZ_WARN("msg=\"subscription state not stored\" err=%d", res);
    if (job->aux & A_OUT)
        sz_router_bounce(job->r, job->st,
                         res == -ENOSPC ? SZ_STANZA_ERR_NOT_ALLOWED
                                        : SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

static void on_updated(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res == 0)
        after(ro, job);
    else
        failed(job, res);
    sz_roster_job_done(ro, job);
}

/* Gives the contact the item bits <nb>, then runs the actions. */
static bool update_then(sz_roster_t *ro, sz_roster_job_t *job, const char *c, size_t cl,
                        unsigned nb)
{
    int ret = sz_roster_update(ro, job, c, cl, nb, on_updated);
    if (ret == 1)
        return false;
    if (ret == 0)
        after(ro, job);
    else
        failed(job, ret);
    return true;
}

/* ---- outbound (Appendix A.2): from the user, on the user's reactor ------------ */

static bool job_out(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res < 0) {
        failed(job, res); /* the roster cannot be read */
        return true;
    }
    sz_jid_buf_t jb;
    size_t cl;
    const char *c = peer(job->st, SZ_XML_A_TO, &jb, &cl);
    if (!c)
        return true;
    unsigned b = sz_roster_bits(ro, c, cl), nb = b & SZ_RC_ITEM_BITS;
    unsigned a = A_OUT;
    switch (job->aux & 0xff) {
    case T_SUBSCRIBE:
        /* §3.1.2: the contact goes into the roster, Pending Out unless
         * the user is subscribed already; the request is routed in every
         * state (a repeated one may have been lost). */
        nb |= SZ_RC_ITEM;
        if (!(b & SZ_RC_TO))
            nb |= SZ_RC_ASK;
        a |= A_ROUTE;
        break;
    case T_UNSUBSCRIBE:
        /* §3.3.2: To and Pending Out end; routed in every state. */
        nb &= ~(SZ_RC_TO | SZ_RC_ASK);
        a |= A_ROUTE;
        break;
    case T_SUBSCRIBED:
        if (b & SZ_RC_PEND_IN) {
            /* §3.1.5: approval of a pending request: From, routed, and
             * the contact gets the user's current presence. */
            nb = (nb | SZ_RC_FROM | SZ_RC_ITEM) & ~SZ_RC_APPROVED;
            a |= A_ROUTE | A_CURRENT | A_CLEAR_PEND;
        } else if (!(b & SZ_RC_FROM)) {
            /* §3.4.2: no request to approve: a pre-approval, kept on the
             * item (created if need be), not routed. */
            nb |= SZ_RC_ITEM | SZ_RC_APPROVED;
        }
        /* From already: nothing changes, nothing is routed (A.2.3). */
        break;
    case T_UNSUBSCRIBED:
        if (b & SZ_RC_FROM) {
            /* §3.2.2: the contact's subscription is cancelled; it learns
             * so and sees the user go unavailable. */
            nb &= ~(SZ_RC_FROM | SZ_RC_APPROVED);
            a |= A_ROUTE | A_UNAVAIL | A_CLEAR_PEND;
        } else if (b & SZ_RC_PEND_IN) {
            /* §3.2.1 / A.2.4: a pending request is denied. */
            nb &= ~SZ_RC_APPROVED;
            a |= A_ROUTE | A_CLEAR_PEND;
        } else {
            /* §3.4.2: cancels a pre-approval if any; never routed. */
            nb &= ~SZ_RC_APPROVED;
        }
        break;
    default:
        return true;
    }
    job->aux = (job->aux & 0xff) | a;
    return update_then(ro, job, c, cl, nb);
}

/* FROM_CLIENT: a subscription stanza from the user. */
static int on_out(sz_hook_ctx_t *ctx)
{
    int t = ctx->kind == SZ_STANZA_PRESENCE && ctx->to ? sub_type(ctx->type) : 0;
    sz_session_t *s = ctx->from;
    if (!t || !s || !s->user || !sz_roster_store())
        return SZ_PASS;
    /* The user is always subscribed to itself (§4.2.2): nothing to do. */
    if (sz_jid_bare_eq(ctx->to, s->jid))
        return SZ_HANDLED;
    /* The stanza keeps the resource's full JID until it is routed, so an
     * error can reach the resource. */
    sz_roster_t *ro = sz_roster_of(ctx->r, s->user, s->user->bare);
    sz_roster_job_t *job = sz_roster_job_new(ctx->r, job_out, ctx->st);
    job->aux = (uint32_t)t | A_OUT;
    sz_roster_submit(ro, job);
    return SZ_HANDLED;
}

/* ---- inbound (Appendix A.3): to a local user, on its home reactor -------------- */

static bool job_in(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res < 0)
        return true;
    sz_jid_buf_t jb;
    size_t cl;
    const char *c = peer(job->st, SZ_XML_A_FROM, &jb, &cl);
    if (!c)
        return true;
    unsigned b = sz_roster_bits(ro, c, cl), nb = b & SZ_RC_ITEM_BITS;
    unsigned a = 0;
    switch (job->aux & 0xff) {
    case T_SUBSCRIBE:
        if (b & SZ_RC_FROM) {
            /* §3.1.3: subscribed already: answered for the user, not
             * delivered. */
            a |= A_REPLY_SUBD;
        } else if (b & SZ_RC_APPROVED) {
            /* §3.4.2: pre-approved: From at once, answered, and the
             * contact gets the user's current presence. */
            nb = (nb | SZ_RC_FROM) & ~SZ_RC_APPROVED;
            a |= A_REPLY_SUBD | A_CURRENT;
        } else {
            /* §3.1.3: Pending In, stored (again at each login until
             * answered) and delivered to the available resources. */
            sz_roster_pending_set(ro, c, cl, job->st);
            sz_roster_deliver_available(sz_roster_user(ro), job->st);
            return true;
        }
        break;
    case T_UNSUBSCRIBE:
        /* §3.3.3: the contact's subscription (or request) ends. */
        nb &= ~SZ_RC_FROM;
        if (b & (SZ_RC_FROM | SZ_RC_PEND_IN))
            a |= A_DELIVER | A_CLEAR_PEND;
        break;
    case T_SUBSCRIBED:
        /* §3.1.6: only an outstanding request becomes To; otherwise the
         * stanza is ignored (A.3.3). */
        if ((b & SZ_RC_ASK) && !(b & SZ_RC_TO)) {
            nb = (nb | SZ_RC_TO) & ~SZ_RC_ASK;
            a |= A_DELIVER;
        }
        break;
    case T_UNSUBSCRIBED:
        /* §3.2.3: To or Pending Out ends; ignored otherwise (A.3.4). */
        if (b & (SZ_RC_TO | SZ_RC_ASK)) {
            nb &= ~(SZ_RC_TO | SZ_RC_ASK);
            a |= A_DELIVER;
        }
        break;
    default:
        return true;
    }
    job->aux = (job->aux & 0xff) | a;
    return update_then(ro, job, c, cl, nb);
}

/* TO_BARE, TO_FULL: a subscription stanza to a local user. RFC 6121
 * §8.5.3.1: to a full JID it is handled as to the bare JID. (To an unbound
 * resource the router sends it to the bare JID itself, §8.5.3.2.) */
static int on_in(sz_hook_ctx_t *ctx)
{
    int t = ctx->kind == SZ_STANZA_PRESENCE && ctx->to ? sub_type(ctx->type) : 0;
    if (!t || !sz_roster_store() || !sz_jid_has_local(ctx->to))
        return SZ_PASS;
    sz_jid_buf_t jb, fb;
    size_t bl, fl;
    const char *b = sz_jid_bare(ctx->to, &bl);
    sz_jid_t *owner = sz_roster_jid(b, bl, &jb);
    const char *from = peer(ctx->st, SZ_XML_A_FROM, &fb, &fl);
    if (!owner || !from)
        return SZ_HANDLED; /* no sender to act for: dropped */
    if (fl == bl && memcmp(from, b, bl) == 0)
        return SZ_HANDLED; /* to oneself: see on_out() */
    sz_roster_t *ro = sz_roster_of(ctx->r, ctx->user, owner);
    sz_roster_job_t *job = sz_roster_job_new(ctx->r, job_in, ctx->st);
    job->aux = (uint32_t)t;
    sz_roster_submit(ro, job);
    return SZ_HANDLED;
}

void sz_mod_subscription_register(const sz_mod_env_t *env)
{
    (void)env;
    sz_hooks_add(SZ_HOOK_FROM_CLIENT, on_out);
    sz_hooks_add(SZ_HOOK_TO_BARE, on_in);
    sz_hooks_add(SZ_HOOK_TO_FULL, on_in);
    /* RFC 6121 §3.4.1: pre-approvals are offered. */
    sz_hooks_stream_feature("<sub xmlns='urn:xmpp:features:pre-approval'/>", true, NULL);
}
