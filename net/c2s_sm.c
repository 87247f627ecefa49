/*
 * XEP-0198 stream management on a bound client stream: <enable/>, <r/> and
 * <a/>, the count of handled stanzas and the queue of unacknowledged ones
 * (net/sm.c), asking for acks, and what the client never acknowledged
 * going back to the router as undelivered. Runs on the user's home
 * reactor. cs->sm is NULL until <enable/>; the queue holds at most
 * limits.max_unacked_stanzas, past which the stream ends.
 *
 * Resumption (§5): <enable resume='true'/> gets a 128-bit random token.
 * When the connection breaks, or the idle ping goes unanswered (but not on
 * a stream end or any other stream error), the session detaches: it stays
 * bound in the router with its presence, its parser and TLS state are
 * freed, and stanzas for it wait in its queue.
 * A <resume/> with the token, from a stream authenticated as the same
 * account (so already on this, the home reactor), takes the session over
 * (c2s_take_over()). After limits.sm_resume_timeout_s, or when the queue
 * is full, the session ends as if the stream had: unavailable presence,
 * and the queue goes back to the router as undelivered (§4). Detached
 * sessions are listed per reactor, for the node's stop.
 */
#include "net/c2s_int.h"

#include <stddef.h>
#include <stdio.h>

#include <openssl/rand.h>

#include "core/durable.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/router.h"
#include "core/xml/tree.h"
#include "net/sm.h"

_Static_assert(sizeof(struct c2s_detached) <= sizeof(sz_xml_parser_t),
               "struct c2s: the detached state must fit where the parser was");

/* This reactor's detached sessions whose connection is gone. */
static __thread struct c2s *detached_head;

/* True (and the stream ended with policy-violation) when the client
 * already holds as many unacknowledged stanzas as allowed: one that never
 * acknowledges must not make the queue grow without bound. */
bool c2s_sm_full(struct c2s *cs)
{
    if (!cs->sm || sz_sm_unacked(cs->sm) < SZ_CONF_LIMIT(c2s_conf, max_unacked_stanzas))
        return false;
    c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
    return true;
}

/* Asks the client for an ack (XEP-0198 §4). Written past the output cap's
 * check, like the stanza it follows. */
static void sm_request(struct c2s *cs)
{
    static const char r[] = "<r xmlns='" NS_SM "'/>";
    c2s_raw_write(cs, r, sizeof(r) - 1);
}

/* Counts a stanza just written to the client (<st>: a reference to queue
 * until acknowledged, or NULL for one made for this client alone); asks
 * for an ack every SZ_SM_REQUEST_AFTER stanzas. */
void c2s_sm_sent(struct c2s *cs, sz_stanza_t *st)
{
    if (!cs->sm) {
        if (st)
            sz_stanza_unref(st);
        return;
    }
    if (sz_sm_sent(cs->sm, st) > 0)
        sm_request(cs);
}

/* <failed/> carrying stanza error condition <cond> bare, as XEP-0198 §3
 * and §5 write it: no <error> wrapper, so no error type. */
static void sm_failed(struct c2s *cs, enum sz_stanza_err cond)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf),
                     "<failed xmlns='" NS_SM "'><%s xmlns='" SZ_NS_STANZAS "'/></failed>",
                     sz_stanza_err_name(cond));
    c2s_write(cs, buf, (size_t)n);
}

/* 'resume' of <enable/> is an xs:boolean (XEP-0198 §10 schema). */
static bool wants_resume(const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
    const char *v = root ? sz_xml_attr(root, "resume", NULL, NULL) : NULL;
    bool yes = v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
    sz_xml_tree_free(t);
    return yes;
}

/* <enable/> on a bound stream (§3); with resume='true' and resumption on,
 * the session gets its token (§5). */
static void sm_enable(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    cs->sm = sz_sm_new();
    SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, sm_enabled, 1);
    uint32_t max = SZ_CONF_LIMIT(c2s_conf, sm_resume_timeout_s);
    if (max == 0 || !wants_resume(span, len, h)) {
        c2s_writes(cs, "<enabled xmlns='" NS_SM "'/>");
        return;
    }
    /* §5 and §9: the id must not be guessable, so 128 random bits; it is
     * only ever looked up among the sessions of the account that
     * authenticated the resuming stream. */
    uint8_t tok[SZ_SM_TOKEN_BYTES];
    RAND_bytes(tok, sizeof(tok));
    sz_sm_set_token(cs->sm, tok);
    char id[2 * SZ_SM_TOKEN_BYTES + 1], buf[160];
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < SZ_SM_TOKEN_BYTES; i++) {
        id[2 * i] = hex[tok[i] >> 4];
        id[2 * i + 1] = hex[tok[i] & 15];
    }
    id[2 * SZ_SM_TOKEN_BYTES] = '\0';
    int n = snprintf(buf, sizeof(buf),
                     "<enabled xmlns='" NS_SM "' id='%s' resume='true' max='%u'/>", id, max);
    c2s_write(cs, buf, (size_t)n);
}

/* 32 hex digits (either case) into a token; false for anything else. */
static bool parse_token(const char *s, uint8_t tok[SZ_SM_TOKEN_BYTES])
{
    if (!s || strlen(s) != 2 * SZ_SM_TOKEN_BYTES)
        return false;
    for (unsigned i = 0; i < 2 * SZ_SM_TOKEN_BYTES; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0'
              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            tok[i / 2] = (uint8_t)(v << 4);
        else
            tok[i / 2] |= (uint8_t)v;
    }
    return true;
}

static void resend(void *ctx, sz_stanza_t *st)
{
    c2s_deliver(ctx, st);
}

/* <resume previd h/> (§5) on an authenticated stream not bound yet. */
static void sm_resume(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_reactor_t *r = sz_conn_reactor(cs->c);
    if (SZ_CONF_LIMIT(c2s_conf, sm_resume_timeout_s) == 0) {
        sm_failed(cs, SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED);
        return;
    }
    sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
    uint32_t acked;
    if (!root || !sz_xml_attr_u32(root, "h", &acked)) {
        /* 'h' is required (§10 schema), as for <a/>. */
        sz_xml_tree_free(t);
        c2s_stream_error(cs, SZ_STREAM_INVALID_XML);
        return;
    }
    uint8_t tok[SZ_SM_TOKEN_BYTES];
    bool ok = parse_token(sz_xml_attr(root, "previd", NULL, NULL), tok);
    sz_xml_tree_free(t);
    /* The session is only ever on the account's home reactor, where SASL
     * moved this stream; if that move failed, it cannot be found. */
    struct c2s *old = ok && sz_router_home(cs->authed, r->n) == r->id
                          ? c2s_find_resumable(r, cs->authed, tok)
                          : NULL;
    if (!old) {
        /* §5: unknown, expired, already resumed, or another account's:
         * one answer for all, which tells nothing about other sessions. */
        SZ_STAT_ADD(&r->stats, sm_resume_failed, 1);
        sm_failed(cs, SZ_STANZA_ERR_ITEM_NOT_FOUND);
        return;
    }
    if (acked - (sz_sm_sent_count(old->sm) - sz_sm_unacked(old->sm)) > sz_sm_unacked(old->sm)) {
        /* §4: an 'h' above what was sent. The session stays detached. */
        char app[160];
        snprintf(app, sizeof(app),
                 "<handled-count-too-high xmlns='" NS_SM "' h='%u' send-count='%u'/>", acked,
                 sz_sm_sent_count(old->sm));
        c2s_stream_error_app(cs, SZ_STREAM_UNDEFINED_CONDITION, app);
        return;
    }
    c2s_take_over(cs, old);
    SZ_STAT_ADD(&r->stats, sm_resumed, 1);
    /* A token resumes once: a second <resume/> with it, or one replayed
     * by anybody who saw it, fails with item-not-found. The stream keeps
     * acknowledging, without a new token (§5 has no way to give one). */
    sz_sm_set_token(cs->sm, NULL);
    char buf[2 * SZ_SM_TOKEN_BYTES + 96], id[2 * SZ_SM_TOKEN_BYTES + 1];
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < SZ_SM_TOKEN_BYTES; i++) {
        id[2 * i] = hex[tok[i] >> 4];
        id[2 * i + 1] = hex[tok[i] & 15];
    }
    id[2 * SZ_SM_TOKEN_BYTES] = '\0';
    int n = snprintf(buf, sizeof(buf), "<resumed xmlns='" NS_SM "' previd='%s' h='%u'/>", id,
                     sz_sm_h(cs->sm));
    c2s_write(cs, buf, (size_t)n);
    /* Everything after the client's 'h' goes out again, in order, then
     * what arrived while detached, which is queued behind it (§5). */
    if (cs->stage != ST_CLOSED)
        sz_sm_resume(cs->sm, acked, resend, cs);
}

/* ---- acks after storage commits ------------------------------------------ */

/* An <a/> owed to the client once the storage writes its stanzas caused
 * (offline messages) have committed: 'h' counts a stanza as handled, so
 * it must not count one whose write could still be lost (core/durable.h).
 * One at a time per stream; <r/>s arriving meanwhile are answered when it
 * completes. */
struct c2s_ackwait {
    struct c2s *cs;
    sz_durable_wait_t *w;
    uint32_t h;       /* the 'h' this barrier covers */
    uint32_t answers; /* <a/>s owed with that 'h' */
    uint32_t later;   /* <r/>s that came while it ran: a new barrier follows */
};

static void sm_write_a(struct c2s *cs, uint32_t h)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "<a xmlns='" NS_SM "' h='%u'/>", h);
    c2s_write(cs, buf, (size_t)n);
}

static void ackwait_start(struct c2s *cs, uint32_t answers);

static void on_durable(void *arg)
{
    struct c2s_ackwait *aw = arg;
    struct c2s *cs = aw->cs;
    uint32_t h = aw->h, answers = aw->answers, later = aw->later;
    cs->ackwait = NULL;
    sz_free(aw);
    if (!cs->sm || cs->stage == ST_CLOSED || !cs->c)
        return; /* the stream ended meanwhile: nobody to tell */
    for (uint32_t i = 0; i < answers; i++)
        sm_write_a(cs, h);
    if (later)
        ackwait_start(cs, later);
}

/* Answers <answers> <r/>s with the current 'h' once it is durable. */
static void ackwait_start(struct c2s *cs, uint32_t answers)
{
    uint32_t h = sz_sm_h(cs->sm);
    struct c2s_ackwait *aw = sz_malloc(sizeof(*aw));
    *aw = (struct c2s_ackwait){.cs = cs, .h = h, .answers = answers};
    aw->w = sz_durable_barrier(sz_conn_reactor(cs->c), on_durable, aw);
    if (!aw->w) {
        sz_free(aw); /* nothing in flight: durable already */
        for (uint32_t i = 0; i < answers; i++)
            sm_write_a(cs, h);
        return;
    }
    cs->ackwait = aw;
}

/* <r/> (XEP-0198 §4). */
static void sm_answer_r(struct c2s *cs)
{
    if (cs->ackwait)
        cs->ackwait->later++;
    else
        ackwait_start(cs, 1);
}

void c2s_sm_ackwait_drop(struct c2s *cs)
{
    if (!cs->ackwait)
        return;
    sz_durable_cancel(cs->ackwait->w);
    sz_free(cs->ackwait);
    cs->ackwait = NULL;
}

/* A top-level element in urn:xmpp:sm:3 after authentication. */
void c2s_on_sm(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    if (c2s_name_is(span, h, "enable")) {
        /* §3: only after resource binding, and once. */
        if (!(cs->flags & F_BOUND) || cs->sm) {
            sm_failed(cs, SZ_STANZA_ERR_UNEXPECTED_REQUEST);
            return;
        }
        sm_enable(cs, span, len, h);
    } else if (c2s_name_is(span, h, "resume")) {
        /* §5: instead of binding; a bound stream cannot resume. */
        if (cs->flags & F_BOUND)
            sm_failed(cs, SZ_STANZA_ERR_UNEXPECTED_REQUEST);
        else
            sm_resume(cs, span, len, h);
    } else if (c2s_name_is(span, h, "r") && cs->sm) {
        sm_answer_r(cs);
    } else if (c2s_name_is(span, h, "a") && cs->sm) {
        sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
        const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
        uint32_t acked;
        if (!root || !sz_xml_attr_u32(root, "h", &acked)) {
            c2s_stream_error(cs, SZ_STREAM_INVALID_XML);
        } else {
            int ret = sz_sm_acked(cs->sm, acked);
            if (ret < 0) {
                /* §4: an 'h' above what was sent ends the stream. */
                char app[160];
                snprintf(app, sizeof(app),
                         "<handled-count-too-high xmlns='" NS_SM "' h='%u' send-count='%u'/>",
                         acked, sz_sm_sent_count(cs->sm));
                c2s_stream_error_app(cs, SZ_STREAM_UNDEFINED_CONDITION, app);
            } else if (ret > 0) {
                sm_request(cs);
            }
        }
        sz_xml_tree_free(t);
    } else {
        /* <r/>, <a/> before <enable/>, or an unknown element. */
        c2s_stream_error(cs, SZ_STREAM_UNSUPPORTED_STANZA_TYPE);
    }
}

void c2s_undelivered(void *ctx, sz_stanza_t *st)
{
    sz_reactor_t *r = ctx;
    SZ_STAT_ADD(&r->stats, sm_unacked, 1);
    sz_router_undelivered(r, st);
}

/* ---- detached sessions (§5) ---------------------------------------------- */

bool c2s_sm_detach(struct c2s *cs)
{
    sz_reactor_t *r = sz_reactor_self();
    if (!(cs->flags & F_BOUND) || (cs->flags & (F_UNBIND_LATER | F_DETACHED | F_LOOKUP)) ||
        !cs->sm || !sz_sm_resumable(cs->sm) || r->stopping ||
        SZ_CONF_LIMIT(c2s_conf, sm_resume_timeout_s) == 0)
        return false;
    cs->flags |= F_DETACHED;
    cs->flags &= (uint16_t)~F_PINGED;
    SZ_STAT_ADD(&r->stats, sm_detached, 1);
    SZ_DEBUG("msg=\"session detached\" conn=%llu", (unsigned long long)cs->c->id);
    return true;
}

static void detached_expired(sz_timer_t *t)
{
    struct c2s *cs = (struct c2s *)((char *)t - offsetof(struct c2s, det.timer));
    SZ_STAT_ADD(&sz_reactor_self()->stats, sm_resume_expired, 1);
    /* Unbinds (unavailable presence, the queue undelivered) and frees. */
    c2s_end_session(cs);
}

void c2s_sm_detached(struct c2s *cs)
{
    sz_reactor_t *r = sz_reactor_self();
    memset(&cs->det, 0, sizeof(cs->det));
    cs->det.next = detached_head;
    if (detached_head)
        detached_head->det.pprev = &cs->det.next;
    cs->det.pprev = &detached_head;
    detached_head = cs;
    if (r->stopping) {
        c2s_end_session(cs); /* the node stops: nobody will resume */
        return;
    }
    uint64_t ms = (uint64_t)SZ_CONF_LIMIT(c2s_conf, sm_resume_timeout_s) * 1000u;
    sz_timer_arm(&r->wheel, &cs->det.timer, r->wheel.now + ms, detached_expired);
}

void c2s_sm_hold(struct c2s *cs, sz_stanza_t *st)
{
    if (!cs->sm || sz_sm_unacked(cs->sm) >= SZ_CONF_LIMIT(c2s_conf, max_unacked_stanzas)) {
        /* The queue is full: the session ends as on its deadline. */
        SZ_STAT_ADD(&sz_reactor_self()->stats, sm_resume_expired, 1);
        c2s_undelivered(sz_reactor_self(), st);
        c2s_end_session(cs);
        return;
    }
    sz_sm_sent(cs->sm, st);
}

bool c2s_sm_undetach(struct c2s *cs)
{
    if (!(cs->flags & F_DETACHED))
        return false;
    cs->flags &= (uint16_t)~F_DETACHED;
    sz_reactor_t *r = sz_reactor_self();
    SZ_STAT_SUB(&r->stats, sm_detached, 1);
    if (cs->c)
        return false; /* c2s_close() frees it */
    if (cs->det.pprev) {
        sz_timer_cancel(&r->wheel, &cs->det.timer);
        *cs->det.pprev = cs->det.next;
        if (cs->det.next)
            cs->det.next->det.pprev = cs->det.pprev;
    }
    memset(&cs->det, 0, sizeof(cs->det)); /* an empty parser for c2s_free_state() */
    c2s_free_state(cs);
    return true;
}

void sz_c2s_stop(sz_reactor_t *r)
{
    (void)r;
    /* Each end unlists its session (and may end no other detached one). */
    while (detached_head)
        c2s_end_session(detached_head);
}
