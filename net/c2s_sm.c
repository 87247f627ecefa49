/*
 * XEP-0198 stream management on a bound client stream, without resumption:
 * <enable/>, <r/> and <a/>, the count of handled stanzas and the queue of
 * unacknowledged ones (net/sm.c), asking for acks, and what the client
 * never acknowledged going back to the router as undelivered. Runs on the
 * user's home reactor. cs->sm is NULL until <enable/>; the queue holds at
 * most limits.max_unacked_stanzas, past which the stream ends.
 */
#include "net/c2s_int.h"

#include <stdio.h>

#include "core/durable.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/router.h"
#include "core/xml/tree.h"
#include "net/sm.h"

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

/* A top-level element in urn:xmpp:sm:3 after authentication. Without
 * resumption: <enabled/> never carries 'resume' or 'id' (XEP-0198 §5). */
void c2s_on_sm(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    if (c2s_name_is(span, h, "enable")) {
        /* §3: only after resource binding, and once. */
        if (!(cs->flags & F_BOUND) || cs->sm) {
            sm_failed(cs, SZ_STANZA_ERR_UNEXPECTED_REQUEST);
            return;
        }
        cs->sm = sz_sm_new();
        SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, sm_enabled, 1);
        c2s_writes(cs, "<enabled xmlns='" NS_SM "'/>");
    } else if (c2s_name_is(span, h, "resume")) {
        /* §5: no resumable sessions here; a bound stream cannot resume. */
        sm_failed(cs, (cs->flags & F_BOUND) ? SZ_STANZA_ERR_UNEXPECTED_REQUEST
                                            : SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED);
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
