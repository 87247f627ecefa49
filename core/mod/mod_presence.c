/*
 * Presence to and from contacts (RFC 6121 §4): broadcast of a user's
 * presence to the contacts that may see it (From or Both), probes at
 * initial presence and their answers, the pending subscription requests
 * delivered again after initial presence (§3.1.3), and directed presence
 * (§4.6) with the unavailable it is owed when the session goes away.
 * The user's own resources are the router's business.
 *
 * Per session: the directed-presence targets, a small list hanging off
 * the roster's session slot (core/mod/roster.h), only once the session
 * sent directed presence. Broadcasts are jobs on the user's roster queue,
 * so they wait for the roster to load and keep their order with
 * subscription changes.
 *
 * Threads: the user's home reactor.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/blocklist.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/xml/builder.h"

/* Directed-presence targets remembered per session (§4.6.3). Past it the
 * oldest is forgotten (it gets no unavailable), never the session. */
#define DIRECTED_MAX 256

/* What a broadcast job does (job->aux). */
#define B_INITIAL  0x1u /* initial presence: probes and pending requests too */
#define B_UNAVAIL  0x2u /* unavailable: also to the directed targets */
#define B_CONTACTS 0x4u /* to the From/Both contacts */

/* Directed targets: <n> NUL-terminated full or bare JIDs in <s>. */
struct dlist {
    uint32_t n, used, cap;
    char s[];
};

static bool dl_has(const struct dlist *d, const char *j, size_t len, size_t *off)
{
    size_t o = 0;
    for (uint32_t i = 0; d && i < d->n; i++) {
        size_t l = strlen(d->s + o);
        if (l == len && memcmp(d->s + o, j, len) == 0) {
            if (off)
                *off = o;
            return true;
        }
        o += l + 1;
    }
    return false;
}

static struct dlist *dl_add(struct dlist *d, const char *j, size_t len)
{
    if (dl_has(d, j, len, NULL))
        return d;
    if (d && d->n == DIRECTED_MAX) {
        size_t l = strlen(d->s) + 1;
        memmove(d->s, d->s + l, d->used - l);
        d->used -= (uint32_t)l;
        d->n--;
    }
    if (!d || d->used + len + 1 > d->cap) {
        uint32_t cap = (d ? d->cap * 2 : 64) + (uint32_t)len + 1;
        struct dlist *g = sz_realloc(d, sizeof(*g) + cap);
        if (!d)
            g->n = g->used = 0;
        g->cap = cap;
        d = g;
    }
    memcpy(d->s + d->used, j, len);
    d->s[d->used + len] = '\0';
    d->used += (uint32_t)len + 1;
    d->n++;
    return d;
}

static void dl_del(struct dlist *d, const char *j, size_t len)
{
    size_t off;
    if (!dl_has(d, j, len, &off))
        return;
    memmove(d->s + off, d->s + off + len + 1, d->used - off - len - 1);
    d->used -= (uint32_t)len + 1;
    d->n--;
}

/* ---- helpers for the subscription module ------------------------------------ */

static void route_to(sz_reactor_t *r, const sz_stanza_t *st, const char *to, size_t len)
{
    sz_stanza_t *out = sz_stanza_rewrite(st, to, len, NULL, 0);
    sz_router_route(r, out);
}

void sz_presence_send_current(sz_reactor_t *r, sz_user_t *u, const char *to, size_t len)
{
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->presence)
            route_to(r, s->presence, to, len);
}

void sz_presence_send_unavailable(sz_reactor_t *r, sz_user_t *u, const char *to, size_t len)
{
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next) {
        if (!s->available)
            continue;
        sz_stanza_t *st = sz_router_unavailable(s->jid);
        if (st) {
            route_to(r, st, to, len);
            sz_stanza_unref(st);
        }
    }
}

void sz_presence_cut_directed(sz_reactor_t *r, sz_roster_t *ro)
{
    sz_user_t *u = sz_roster_user(ro);
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next) {
        struct dlist *d = sz_roster_sdata(s);
        size_t off = 0;
        for (uint32_t i = 0; d && i < d->n;) {
            const char *j = d->s + off;
            size_t jl = strlen(j);
            sz_jid_buf_t jb;
            sz_jid_t *t = sz_roster_jid(j, jl, &jb);
            size_t tbl;
            const char *tb = t ? sz_jid_bare(t, &tbl) : NULL;
            if (!tb || !sz_blocking_blocks(u, j, jl) || (sz_roster_bits(ro, tb, tbl) & SZ_RC_FROM)) {
                off += jl + 1;
                i++;
                continue;
            }
            sz_stanza_t *st = sz_router_unavailable(s->jid);
            if (st) {
                route_to(r, st, j, jl);
                sz_stanza_unref(st);
            }
            dl_del(d, j, jl); /* the next target moves to <off> */
        }
    }
}

/* ---- broadcasts (§4.2, §4.4, §4.5, §4.6.3) ------------------------------------- */

static void on_pending(void *arg, int res, const sz_store_pendings_t *p)
{
    sz_roster_job_t *job = arg;
    sz_roster_t *ro = job->data;
    job->data = NULL;
    sz_session_t *s = res == 0 ? sz_roster_session_of(sz_roster_user(ro), job->st) : NULL;
    for (size_t i = 0; s && s->available && i < p->n; i++) {
        sz_stanza_t *st = p->items[i].stanza_len
                              ? sz_stanza_from_xml(p->items[i].stanza, p->items[i].stanza_len)
                              : NULL;
        if (st) {
            sz_router_deliver(s, st);
            sz_stanza_unref(st);
        }
    }
    sz_roster_job_done(ro, job);
}

static bool job_bcast(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    struct dlist *d = job->data;
    size_t ol;
    const char *o = sz_jid_bare(sz_roster_owner(ro), &ol);
    bool pend = false;
    size_t n = res == 0 ? sz_roster_count(ro) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t cl;
        unsigned b;
        const char *c = sz_roster_at(ro, i, &cl, &b);
        /* XEP-0191 §3.3: a contact the user blocks neither gets its
         * presence nor is probed (core/mod/blocklist.h). */
        bool blocked = sz_blocking_blocks(sz_roster_user(ro), c, cl);
        /* §4.2.2, §4.4.2, §4.5.2: only contacts the user lets see its
         * presence (From, Both) get it. */
        if ((job->aux & B_CONTACTS) && (b & SZ_RC_FROM) && !blocked)
            route_to(job->r, job->st, c, cl);
        /* §4.3.1: initial presence probes the contacts the user sees
         * (To, Both), from the bare JID. */
        if ((job->aux & B_INITIAL) && (b & SZ_RC_TO) && !blocked)
            sz_roster_send(job->r, "probe", o, ol, c, cl);
        pend |= (b & SZ_RC_PEND_IN) != 0;
    }
    if (job->aux & B_UNAVAIL) {
        /* §4.6.3: the entities that got directed presence and no
         * broadcast now get unavailable. */
        size_t off = 0;
        for (uint32_t i = 0; d && i < d->n; i++) {
            const char *j = d->s + off;
            size_t jl = strlen(j);
            off += jl + 1;
            sz_jid_buf_t jb;
            sz_jid_t *t = sz_roster_jid(j, jl, &jb);
            size_t tbl;
            const char *tb = t ? sz_jid_bare(t, &tbl) : NULL;
            if (tb && (job->aux & B_CONTACTS) && (sz_roster_bits(ro, tb, tbl) & SZ_RC_FROM))
                continue; /* covered by the broadcast */
            route_to(job->r, job->st, j, jl);
        }
    }
    if ((job->aux & B_INITIAL) && pend) {
        /* §3.1.3: requests still unanswered, again, to this resource. */
        job->data = ro; /* borrowed */
        sz_free(d);
        if (sz_store_pending_list(sz_roster_store(), sz_roster_owner(ro), on_pending, job) == 0)
            return false;
        job->data = NULL;
    }
    return true;
}

static sz_roster_t *roster_of(sz_reactor_t *r, sz_user_t *u)
{
    return sz_roster_of(r, u, u->bare);
}

/* PRESENCE_BROADCAST: the user's presence without 'to' (the router has
 * updated the session and told the user's own resources). */
static int on_broadcast(sz_hook_ctx_t *ctx)
{
    sz_session_t *s = ctx->from;
    if (!s || !s->user || !sz_roster_store())
        return SZ_PASS;
    unsigned f = sz_roster_sflags(s), what;
    void *directed = NULL;
    if (!ctx->type) {
        what = B_CONTACTS | (f & SZ_RS_AVAILABLE ? 0 : B_INITIAL);
        sz_roster_sflags_set(s, SZ_RS_AVAILABLE, 0);
    } else if (strcmp(ctx->type, "unavailable") == 0 && (f & SZ_RS_AVAILABLE)) {
        what = B_CONTACTS | B_UNAVAIL;
        sz_roster_sflags_set(s, 0, SZ_RS_AVAILABLE);
        directed = sz_roster_sdata(s);
        sz_roster_sdata_set(s, NULL);
    } else {
        return SZ_PASS;
    }
    sz_roster_job_t *job = sz_roster_job_new(ctx->r, job_bcast, ctx->st);
    job->aux = what;
    job->data = directed;
    sz_roster_submit(roster_of(ctx->r, s->user), job);
    return SZ_PASS;
}

/* SZ_EV_UNBOUND: the session ends; §4.5.2 owes its contacts (if it was
 * available) and its directed targets (§4.6.3) an unavailable. */
static void on_unbound(sz_hook_ctx_t *ctx)
{
    /* The router has unlinked <s> already: its user is ctx->user. */
    sz_session_t *s = ctx->from;
    sz_user_t *u = ctx->user;
    if (!s || !u)
        return;
    unsigned f = sz_roster_sflags(s);
    struct dlist *d = sz_roster_sdata(s);
    sz_roster_sflags_set(s, 0, SZ_RS_INTERESTED | SZ_RS_VER | SZ_RS_AVAILABLE);
    sz_roster_sdata_set(s, NULL);
    bool avail = (f & SZ_RS_AVAILABLE) != 0;
    if ((!avail && !(d && d->n)) || !sz_roster_store()) {
        sz_free(d);
        return;
    }
    sz_stanza_t *st = sz_router_unavailable(s->jid);
    if (!st) {
        sz_free(d);
        return;
    }
    sz_roster_job_t *job = sz_roster_job_new(ctx->r, job_bcast, st);
    sz_stanza_unref(st);
    job->aux = B_UNAVAIL | (avail ? B_CONTACTS : 0);
    job->data = d;
    sz_roster_submit(roster_of(ctx->r, u), job);
}

/* FROM_CLIENT: directed presence (§4.6.2) is routed as it is; the
 * targets of available presence are remembered, those of unavailable
 * forgotten. */
static int on_directed(sz_hook_ctx_t *ctx)
{
    sz_session_t *s = ctx->from;
    if (ctx->kind != SZ_STANZA_PRESENCE || !ctx->to || !s || !s->user)
        return SZ_PASS;
    bool unavail = ctx->type && strcmp(ctx->type, "unavailable") == 0;
    if (ctx->type && !unavail)
        return SZ_PASS;
    if (sz_jid_bare_eq(ctx->to, s->jid))
        return SZ_PASS; /* the user's own resources */
    size_t tl;
    const char *t = sz_jid_full(ctx->to, &tl);
    struct dlist *d = sz_roster_sdata(s);
    if (unavail)
        dl_del(d, t, tl);
    else
        sz_roster_sdata_set(s, dl_add(d, t, tl));
    return SZ_PASS;
}

/* ---- probes (§4.3.2) ---------------------------------------------------------------- */

/* Answers probe <st> to user <ro>'s owner from <p>/<pl> (bare), whose
 * item bits are <b>. */
static void answer_probe(sz_reactor_t *r, sz_roster_t *ro, const sz_jid_t *owner,
                         const sz_stanza_t *st, unsigned b)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    ssize_t fl = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    size_t ol;
    const char *o = sz_jid_bare(owner, &ol);
    if (fl < 0)
        return;
    if (!(b & SZ_RC_FROM)) {
        /* Not authorised to see the user's presence: nothing is revealed;
         * 'unsubscribed' tells the prober's server its state is stale. */
        sz_roster_send(r, "unsubscribed", o, ol, dec, (size_t)fl);
        return;
    }
    bool any = false;
    sz_user_t *u = ro ? sz_roster_user(ro) : NULL;
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->presence) {
            route_to(r, s->presence, dec, (size_t)fl);
            any = true;
        }
    if (!any)
        sz_roster_send(r, "unavailable", o, ol, dec, (size_t)fl);
}

static bool prober(const sz_stanza_t *st, sz_jid_buf_t *jb, const char **b, size_t *bl)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_t *j = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    if (n < 0 || sz_jid_parse_into(dec, (size_t)n, jb, sizeof(*jb), &j, NULL) < 0)
        return false;
    *b = sz_jid_bare(j, bl);
    return true;
}

static bool job_probe(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    sz_jid_buf_t jb;
    const char *b;
    size_t bl;
    if (res < 0 || !prober(job->st, &jb, &b, &bl))
        return true;
    answer_probe(job->r, ro, sz_roster_owner(ro), job->st, sz_roster_bits(ro, b, bl));
    return true;
}

/* A probe to a user who is offline and has no work queued: one item
 * read, no cache. */
struct probe_read {
    sz_reactor_t *r;
    sz_stanza_t *st;
    sz_jid_t *owner;
};

static void on_probe_item(void *arg, int res, uint64_t ver, const sz_store_roster_item_t *it)
{
    struct probe_read *p = arg;
    (void)ver;
    unsigned b = 0;
    if (res == 0 && (it->sub == SZ_STORE_SUB_FROM || it->sub == SZ_STORE_SUB_BOTH))
        b = SZ_RC_FROM;
    if (res == 0 || res == -ENOENT)
        answer_probe(p->r, NULL, p->owner, p->st, b);
    sz_stanza_unref(p->st);
    sz_jid_free(p->owner);
    sz_free(p);
    sz_hooks_release();
}

/* TO_BARE, TO_FULL, NO_RESOURCE: a probe to a local user, answered for
 * the bare JID (RFC 6121 §4.3.2, §8.5.3). */
static int on_probe(sz_hook_ctx_t *ctx)
{
    if (ctx->kind != SZ_STANZA_PRESENCE || !ctx->to || !ctx->type ||
        strcmp(ctx->type, "probe") != 0 || !sz_jid_has_local(ctx->to) || !sz_roster_store())
        return SZ_PASS;
    sz_jid_buf_t ob, pb;
    size_t ol, bl;
    const char *o = sz_jid_bare(ctx->to, &ol), *b;
    sz_jid_t *owner = sz_roster_jid(o, ol, &ob);
    if (!owner || !prober(ctx->st, &pb, &b, &bl))
        return SZ_HANDLED;
    if (bl == ol && memcmp(b, o, ol) == 0)
        return SZ_HANDLED; /* the user's own resources know already */
    sz_roster_t *ro = sz_roster_find_owner(ctx->user, owner);
    if (ro || ctx->user) {
        if (!ro)
            ro = sz_roster_of(ctx->r, ctx->user, owner);
        sz_roster_submit(ro, sz_roster_job_new(ctx->r, job_probe, ctx->st));
        return SZ_HANDLED;
    }
    char *c = sz_strndup(b, bl);
    struct probe_read *p = sz_malloc(sizeof(*p));
    p->r = ctx->r;
    p->st = sz_stanza_ref(ctx->st);
    p->owner = sz_jid_bare_dup(owner);
    sz_hooks_hold();
    if (sz_store_roster_get_item(sz_roster_store(), owner, c, on_probe_item, p) < 0) {
        sz_stanza_unref(p->st);
        sz_jid_free(p->owner);
        sz_free(p);
        sz_hooks_release();
    }
    sz_free(c);
    return SZ_HANDLED;
}

void sz_mod_presence_register(const sz_mod_env_t *env)
{
    (void)env;
    sz_hooks_add(SZ_HOOK_PRESENCE_BROADCAST, on_broadcast);
    sz_hooks_add(SZ_HOOK_FROM_CLIENT, on_directed);
    sz_hooks_add(SZ_HOOK_TO_BARE, on_probe);
    sz_hooks_add(SZ_HOOK_TO_FULL, on_probe);
    sz_hooks_add(SZ_HOOK_NO_RESOURCE, on_probe);
    sz_hooks_on(SZ_EV_UNBOUND, on_unbound);
}
