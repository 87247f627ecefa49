/*
 * Rosters (RFC 6121 §2) with versioning (RFC 6121 §2.6, XEP-0237): the
 * jabber:iq:roster get and set of a user's own resources, answered after
 * storage has read or committed, and the pushes that follow a change.
 * The roster itself (cache, job queue, pushes) is core/mod/roster.c.
 *
 * A roster get reads storage (names and groups are not cached), unless
 * the client's 'ver' is current (an empty result) or the roster was just
 * loaded for this very request. A set is checked against the §2.3.3
 * rules before it queues, and answered once committed.
 *
 * Threads: the user's home reactor.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/xml/builder.h"

#define NS_ROSTER "jabber:iq:roster"

/* Limits of one item in a roster set (RFC 6121 §2.3.3: "a server-
 * configured limit" for names and groups; not-acceptable past them). */
#define NAME_MAX_BYTES  1024
#define GROUP_MAX_BYTES 1024
#define GROUPS_MAX      64

/* ---- roster get (RFC 6121 §2.1.3, §2.6) -------------------------------------------------- */

/* Whether the query of <st> carries 'ver', and if so whether it names
 * version <cur> (XEP-0237 §3: our versions are decimal counters). */
static bool query_ver(sz_stanza_t *st, uint64_t cur, bool *has)
{
    const sz_xml_node_t *root = sz_stanza_tree(st);
    const sz_xml_node_t *q = root ? sz_xml_child(root, "query", NS_ROSTER) : NULL;
    size_t len;
    const char *v = q ? sz_xml_attr(q, "ver", NULL, &len) : NULL;
    *has = v != NULL;
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64, cur);
    return v && (size_t)n == len && memcmp(v, buf, len) == 0;
}

static void answer_roster(sz_roster_t *ro, sz_roster_job_t *job, const sz_store_roster_t *roster)
{
    bool has_ver;
    query_ver(job->st, 0, &has_ver);
    sz_xb_t xb;
    sz_xb_init(&xb, 256 + roster->n * 96);
    sz_xb_start(&xb, "query", NS_ROSTER);
    if (has_ver) {
        char ver[24];
        snprintf(ver, sizeof(ver), "%" PRIu64, roster->ver);
        sz_xb_attr(&xb, "ver", ver);
    }
    for (size_t i = 0; i < roster->n; i++)
        sz_roster_xb_item(&xb, roster->items[i].jid, &roster->items[i]);
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    sz_router_iq_result(job->r, job->st, xml, len);
    sz_free(xml);
    /* Interested from now on: the result holds every change committed
     * before this read, pushes carry every later one (§2.1.6). */
    sz_session_t *s = sz_roster_session_of(sz_roster_user(ro), job->st);
    if (s)
        sz_roster_sflags_set(s, SZ_RS_INTERESTED | (has_ver ? SZ_RS_VER : 0), 0);
}

static void on_roster_read(void *arg, int res, const sz_store_roster_t *roster)
{
    sz_roster_job_t *job = arg;
    sz_roster_t *ro = job->data;
    job->data = NULL;
    if (res < 0)
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
    else
        answer_roster(ro, job, roster);
    sz_roster_job_done(ro, job);
}

static bool job_get(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    bool has_ver;
    if (query_ver(job->st, sz_roster_ver(ro), &has_ver)) {
        /* RFC 6121 §2.6.3: the client's copy is current: an empty result,
         * and pushes from here on. */
        sz_router_iq_result(job->r, job->st, NULL, 0);
        sz_session_t *s = sz_roster_session_of(sz_roster_user(ro), job->st);
        if (s)
            sz_roster_sflags_set(s, SZ_RS_INTERESTED | SZ_RS_VER, 0);
        return true;
    }
    if (sz_roster_snapshot(ro)) {
        answer_roster(ro, job, sz_roster_snapshot(ro));
        return true;
    }
    job->data = ro; /* borrowed: not freed with the job (cleared before) */
    if (sz_store_roster_get(sz_roster_store(), sz_roster_owner(ro), on_roster_read, job) < 0) {
        job->data = NULL;
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    return false;
}

/* ---- roster set (RFC 6121 §2.1.5, §2.3-§2.5) ---------------------------------------------- */

/* The one <item/> of a roster set, checked by check_set(). */
struct set_item {
    const sz_xml_node_t *item;
    sz_jid_t *jid; /* in <jb> */
    sz_jid_buf_t jb;
    bool remove;
};

static bool is_elem(const sz_xml_node_t *n, const char *name)
{
    return n->kind == SZ_XML_ELEM && n->name_len == strlen(name) &&
           memcmp(n->name, name, n->name_len) == 0 && n->ns && n->ns_len == strlen(NS_ROSTER) &&
           memcmp(n->ns, NS_ROSTER, n->ns_len) == 0;
}

/* The §2.3.3 error rules, in the RFC's order. Returns 0 or
 * -SZ_STANZA_ERR_*. <owner> is the user's bare JID. */
static int check_set(const sz_xml_node_t *query, const sz_jid_t *owner, struct set_item *si)
{
    si->item = NULL;
    unsigned nitems = 0;
    for (const sz_xml_node_t *c = query->children; c; c = c->next)
        if (c->kind == SZ_XML_ELEM) {
            if (!is_elem(c, "item"))
                return -SZ_STANZA_ERR_BAD_REQUEST;
            si->item = c;
            nitems++;
        }
    /* §2.1.5 rule 1, §2.3.3: exactly one item. */
    if (nitems != 1)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    size_t jl;
    const char *j = sz_xml_attr(si->item, "jid", NULL, &jl);
    if (!j)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    if (sz_jid_parse_into(j, jl, &si->jb, sizeof(si->jb), &si->jid, NULL) < 0)
        return -SZ_STANZA_ERR_JID_MALFORMED;
    /* Items are contacts' bare JIDs (§2.1.2.3, §3: subscriptions are
     * between bare JIDs). */
    if (!sz_jid_is_bare(si->jid))
        return -SZ_STANZA_ERR_BAD_REQUEST;
    /* RFC 6121 gives no rule for the user's own JID; the user is always
     * subscribed to itself (§4.2.2's own-resource broadcast), so an item
     * for it could only mislead. Refused as deployed servers do. */
    if (sz_jid_bare_eq(si->jid, owner))
        return -SZ_STANZA_ERR_NOT_ALLOWED;
    /* §2.1.5 rule 2: any subscription value other than "remove" is
     * ignored; so are 'ask' and 'approved' (§2.1.2.1, §2.1.2.2). */
    size_t sl;
    const char *sub = sz_xml_attr(si->item, "subscription", NULL, &sl);
    si->remove = sub && sl == 6 && memcmp(sub, "remove", 6) == 0;
    if (si->remove)
        return 0; /* §2.5.1: only the jid matters */
    size_t nl;
    if (sz_xml_attr(si->item, "name", NULL, &nl) && nl > NAME_MAX_BYTES)
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    unsigned ng = 0;
    for (const sz_xml_node_t *g = si->item->children; g; g = g->next) {
        if (!is_elem(g, "group"))
            continue;
        size_t gl;
        const char *gt = sz_xml_text(g, &gl);
        /* §2.3.3: an empty group or one past the limit: not-acceptable. */
        if (gl == 0 || gl > GROUP_MAX_BYTES || ++ng > GROUPS_MAX)
            return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
        /* §2.3.3: the same group twice: bad-request. */
        for (const sz_xml_node_t *h = si->item->children; h != g; h = h->next) {
            size_t hl;
            const char *ht = is_elem(h, "group") ? sz_xml_text(h, &hl) : NULL;
            if (ht && hl == gl && memcmp(ht, gt, gl) == 0)
                return -SZ_STANZA_ERR_BAD_REQUEST;
        }
    }
    return 0;
}

static void on_set_written(sz_roster_t *ro, sz_roster_job_t *job, int res, const char *item,
                           size_t item_len)
{
    if (res == -ENOSPC) {
        /* The configured roster size is reached (limits.max_roster_items). */
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_NOT_ALLOWED);
        return;
    }
    if (res < 0) {
        sz_router_bounce(job->r, job->st,
                         res == -ENOENT && job->aux ? SZ_STANZA_ERR_ITEM_NOT_FOUND
                                                    : SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    /* §2.3.2: the result to the sender, then the push to every
     * interested resource (the sender included). */
    sz_router_iq_result(job->r, job->st, NULL, 0);
    sz_roster_push(ro, item, item_len);
}

/* A roster set write in flight. */
struct setw {
    sz_roster_t *ro;
    sz_roster_job_t *job;
    char *item;
    size_t item_len;
    unsigned old;  /* bits before */
    unsigned bits; /* bits after (0: removed) */
    uint16_t len;
    char jid[];
};

static void on_set_done(void *arg, int res, uint64_t ver)
{
    struct setw *w = arg;
    sz_roster_t *ro = w->ro;
    sz_roster_job_t *job = w->job;
    if (res == 0) {
        sz_roster_commit(ro, w->jid, w->len, w->bits | (w->old & SZ_RC_PEND_IN), ver);
    }
    on_set_written(ro, job, res, w->item, w->item_len);
    if (res == 0 && !w->bits) {
        /* §2.5.2: a removed contact loses the subscriptions both ways. */
        size_t ol;
        const char *o = sz_jid_bare(sz_roster_owner(ro), &ol);
        if (w->old & (SZ_RC_TO | SZ_RC_ASK))
            sz_roster_send(job->r, "unsubscribe", o, ol, w->jid, w->len);
        if (w->old & SZ_RC_FROM) {
            sz_roster_send(job->r, "unsubscribed", o, ol, w->jid, w->len);
            sz_presence_send_unavailable(job->r, sz_roster_user(ro), w->jid, w->len);
        }
    }
    sz_free(w->item);
    sz_free(w);
    sz_roster_job_done(ro, job);
}

static bool job_set(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    const sz_xml_node_t *root = sz_stanza_tree(job->st);
    const sz_xml_node_t *q = root ? sz_xml_child(root, "query", NS_ROSTER) : NULL;
    struct set_item si;
    if (!q || check_set(q, sz_roster_owner(ro), &si) < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_BAD_REQUEST);
        return true;
    }
    size_t jl;
    const char *jid = sz_jid_bare(si.jid, &jl);
    unsigned old = sz_roster_bits(ro, jid, jl);
    if (si.remove && !(old & SZ_RC_ITEM)) {
        /* §2.5.3: removing an item that is not there. */
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_ITEM_NOT_FOUND);
        return true;
    }
    struct setw *w = sz_calloc(1, sizeof(*w) + jl + 1);
    w->ro = ro;
    w->job = job;
    w->old = old;
    w->len = (uint16_t)jl;
    memcpy(w->jid, jid, jl);
    job->aux = si.remove;
    int ret;
    if (si.remove) {
        w->bits = 0;
        w->item = sz_roster_item_xml(w->jid, NULL, &w->item_len);
        ret =
            sz_store_roster_remove(sz_roster_store(), sz_roster_owner(ro), w->jid, on_set_done, w);
    } else {
        /* §2.4: name and groups are replaced as given; the subscription
         * state is the server's. */
        const char *groups[GROUPS_MAX];
        size_t ng = 0;
        for (const sz_xml_node_t *g = si.item->children; g; g = g->next)
            if (is_elem(g, "group"))
                groups[ng++] = sz_xml_text(g, NULL);
        w->bits = (old & SZ_RC_ITEM_BITS) | SZ_RC_ITEM;
        sz_store_roster_item_t it = {
            .jid = w->jid,
            .name = sz_xml_attr(si.item, "name", NULL, NULL),
            .sub = sz_roster_sub(w->bits),
            .ask = (w->bits & SZ_RC_ASK) != 0,
            .approved = (w->bits & SZ_RC_APPROVED) != 0,
            .ngroups = ng,
            .groups = ng ? groups : NULL,
        };
        w->item = sz_roster_item_xml(w->jid, &it, &w->item_len);
        ret = sz_store_roster_put(sz_roster_store(), sz_roster_owner(ro), &it,
                                  sz_roster_max_items(), on_set_done, w);
    }
    if (ret < 0) {
        sz_free(w->item);
        sz_free(w);
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    return false;
}

/* ---- the iq handler ---------------------------------------------------------------------- */

static int on_roster_iq(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    /* §2.1.3, §2.1.5: only the account's own resources read or change
     * its roster; a stanza from elsewhere is forbidden. An iq that named
     * the user's bare JID explicitly arrives without ctx->from: its
     * stamped 'from' identifies the session then. */
    sz_session_t *s = ctx->from;
    if (!s && ctx->user)
        s = sz_roster_session_of(ctx->user, ctx->st);
    if (!s || !s->user || !ctx->to || !sz_jid_bare_eq(s->jid, ctx->to))
        return -SZ_STANZA_ERR_FORBIDDEN;
    if (set) {
        struct set_item si;
        int ret = check_set(payload, s->user->bare, &si);
        if (ret < 0)
            return ret;
    }
    if (!sz_roster_store())
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    sz_roster_t *ro = sz_roster_of(ctx->r, s->user, s->user->bare);
    sz_roster_submit(ro, sz_roster_job_new(ctx->r, set ? job_set : job_get, ctx->st));
    return SZ_HANDLED;
}

void sz_mod_roster_register(const sz_mod_env_t *env)
{
    sz_roster_setup(env);
    sz_hooks_iq("query", NS_ROSTER, SZ_IQ_ACCOUNT, on_roster_iq);
    /* RFC 6121 §2.6.1 / XEP-0237: roster versioning is offered. */
    sz_hooks_stream_feature("<ver xmlns='urn:xmpp:features:rosterver'/>", true, NULL);
}
