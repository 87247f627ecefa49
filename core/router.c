/*
 * Local routing: the per-reactor user table and the delivery rules of
 * RFC 6121 §8.5. Features (the IQs the server answers, rosters, presence
 * to contacts...) are modules reached through the hook table
 * (core/hooks.h) at the points named there; this file names no feature
 * namespace. Reactor-local; a stanza for a user homed elsewhere is posted
 * to that reactor as a stanza reference.
 */
#include "core/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/xml/builder.h"
#include "core/xml/tree.h"

typedef struct router {
    sz_user_t **buckets;
    uint32_t mask;
    uint32_t nusers;
    uint64_t nsessions;
} router_t;

/* A stanza crossing to its recipient's home reactor. */
struct route_msg {
    sz_msg_t m;
    sz_stanza_t *st;
};

static sz_router_exists_fn exists_fn;
static void *exists_ctx;
static __thread unsigned pending;

/* A stanza held while the account lookup runs. */
struct held {
    sz_reactor_t *r;
    sz_stanza_t *st;
    sz_jid_t *to; /* the account's bare JID */
    int host;
};

static const char *const *served;
static const bool *served_register;
static unsigned nserved;

static void route(sz_reactor_t *r, sz_stanza_t *st);
static void session_ends(sz_reactor_t *r, sz_session_t *s, sz_user_t *u);

void sz_router_configure(const char *const *domains, unsigned n, const bool *register_enabled)
{
    served = domains;
    nserved = n;
    served_register = register_enabled;
}

static int served_index(const char *d, size_t len)
{
    for (unsigned i = 0; i < nserved; i++)
        if (strlen(served[i]) == len && memcmp(served[i], d, len) == 0)
            return (int)i;
    return -1;
}

int sz_router_host(const char *d, size_t len)
{
    return served_index(d, len);
}

const char *sz_router_host_name(int host)
{
    return host >= 0 && (unsigned)host < nserved ? served[host] : NULL;
}

bool sz_router_host_register(int host)
{
    return host >= 0 && (unsigned)host < nserved && served_register && served_register[host];
}

void sz_router_set_exists(sz_router_exists_fn fn, void *ctx)
{
    exists_fn = fn;
    exists_ctx = ctx;
}

unsigned sz_router_pending(void)
{
    return pending;
}

unsigned sz_router_home(const sz_jid_t *j, unsigned n)
{
    return (unsigned)(sz_jid_hash_bare(j) % n);
}

/* ---- user table ---------------------------------------------------------- */

/* Bucket index from the high bits: the low bits chose the home reactor and
 * are the same for every user of this reactor. */
static inline uint32_t bucket(const router_t *rt, uint64_t h)
{
    return (uint32_t)(h >> 32 ^ h >> 17) & rt->mask;
}

static sz_user_t *find_user(router_t *rt, const sz_jid_t *j)
{
    uint64_t h = sz_jid_hash_bare(j);
    for (sz_user_t *u = rt->buckets[bucket(rt, h)]; u; u = u->_hnext)
        if (u->_hash == h && sz_jid_bare_eq(u->bare, j))
            return u;
    return NULL;
}

static void grow(router_t *rt)
{
    uint32_t n = (rt->mask + 1) * 2;
    sz_user_t **b = sz_calloc(n, sizeof(*b));
    router_t tmp = {b, n - 1, 0, 0};
    for (uint32_t i = 0; i <= rt->mask; i++) {
        sz_user_t *u = rt->buckets[i];
        while (u) {
            sz_user_t *next = u->_hnext;
            uint32_t k = bucket(&tmp, u->_hash);
            u->_hnext = b[k];
            b[k] = u;
            u = next;
        }
    }
    sz_free(rt->buckets);
    rt->buckets = b;
    rt->mask = n - 1;
}

void sz_router_init(sz_reactor_t *r)
{
    router_t *rt = sz_calloc(1, sizeof(*rt));
    rt->mask = 1023;
    rt->buckets = sz_calloc(rt->mask + 1, sizeof(*rt->buckets));
    r->router = rt;
}

void sz_router_destroy(sz_reactor_t *r)
{
    router_t *rt = r->router;
    if (!rt)
        return;
    for (uint32_t i = 0; i <= rt->mask; i++) {
        sz_user_t *u = rt->buckets[i];
        while (u) {
            sz_user_t *next = u->_hnext;
            sz_jid_free(u->bare);
            sz_free(u);
            u = next;
        }
    }
    sz_free(rt->buckets);
    sz_free(rt);
    r->router = NULL;
}

uint64_t sz_router_sessions(const sz_reactor_t *r)
{
    const router_t *rt = r->router;
    return rt ? __atomic_load_n(&rt->nsessions, __ATOMIC_RELAXED) : 0;
}

sz_session_t *sz_router_bind(sz_reactor_t *r, sz_session_t *s)
{
    router_t *rt = r->router;
    sz_user_t *u = find_user(rt, s->jid);
    sz_session_t *old = NULL;
    if (!u) {
        if (rt->nusers > rt->mask)
            grow(rt);
        u = sz_calloc(1, sizeof(*u));
        u->_hash = sz_jid_hash_bare(s->jid);
        u->bare = sz_jid_bare_dup(s->jid);
        uint32_t k = bucket(rt, u->_hash);
        u->_hnext = rt->buckets[k];
        rt->buckets[k] = u;
        rt->nusers++;
    } else {
        for (sz_session_t **pp = &u->sessions; *pp; pp = &(*pp)->next) {
            if (sz_jid_full_eq((*pp)->jid, s->jid)) {
                old = *pp;
                *pp = old->next;
                old->next = NULL;
                old->user = NULL;
                __atomic_store_n(&rt->nsessions, rt->nsessions - 1, __ATOMIC_RELAXED);
                /* The replaced session ends: its last presence is withdrawn
                 * from the user's other resources and contacts (RFC 6121
                 * §4.5.2). */
                session_ends(r, old, u);
                break;
            }
        }
    }
    s->user = u;
    s->next = u->sessions;
    u->sessions = s;
    __atomic_store_n(&rt->nsessions, rt->nsessions + 1, __ATOMIC_RELAXED);
    size_t dl;
    const char *dom = sz_jid_domain(s->jid, &dl);
    sz_hook_ctx_t ctx = {.r = r, .from = s, .user = u, .host = served_index(dom, dl),
                         .kind = SZ_STANZA_OTHER};
    sz_hooks_event(SZ_EV_BOUND, &ctx);
    return old;
}

sz_user_t *sz_router_user(sz_reactor_t *r, const sz_jid_t *bare)
{
    return find_user(r->router, bare);
}

static void drop_user_if_empty(sz_reactor_t *r, sz_user_t *u)
{
    router_t *rt = r->router;
    if (u->sessions)
        return;
    sz_hook_ctx_t ctx = {.r = r, .user = u, .host = -1, .kind = SZ_STANZA_OTHER};
    sz_hooks_event(SZ_EV_USER_GONE, &ctx);
    for (sz_user_t **pp = &rt->buckets[bucket(rt, u->_hash)]; *pp; pp = &(*pp)->_hnext) {
        if (*pp == u) {
            *pp = u->_hnext;
            break;
        }
    }
    rt->nusers--;
    sz_jid_free(u->bare);
    sz_free(u);
}

/* ---- building server stanzas ----------------------------------------------- */

/* Decoded attribute into a heap string (NULL when absent). */
static char *attr_dup(const sz_stanza_t *st, enum sz_xml_attr_idx which)
{
    size_t len;
    if (!sz_stanza_attr_raw(st, which, &len, NULL))
        return NULL;
    char *buf = sz_malloc(len + 1);
    ssize_t n = sz_stanza_attr(st, which, buf, len + 1);
    if (n < 0) {
        sz_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The decoded 'type' attribute into <buf> (no allocation: routing reads it
 * for every stanza), or NULL when absent. A value too long for <buf> is no
 * RFC 6120/6121 type and reads as "?", which matches none. */
#define TYPE_BUF 16
static const char *type_of(const sz_stanza_t *st, char buf[TYPE_BUF])
{
    size_t len;
    if (!sz_stanza_attr_raw(st, SZ_XML_A_TYPE, &len, NULL))
        return NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TYPE, buf, TYPE_BUF - 1);
    if (n < 0)
        return "?";
    buf[n] = '\0';
    return buf;
}

static const char *const kind_names[] = {"message", "presence", "iq"};

/* Answers <st> to its sender: the same kind with 'to' and 'from' swapped
 * and its id, of type <type>, with <inner> (trusted serialized XML) or,
 * when <e> is set, a stanza error (RFC 6120 §8.3), then routes it. */
static void reply(sz_reactor_t *r, const sz_stanza_t *st, const char *type, const char *inner,
                  size_t inner_len, enum sz_stanza_err e)
{
    char *from = attr_dup(st, SZ_XML_A_FROM);
    if (!from)
        return; /* nobody to answer */
    char *to = attr_dup(st, SZ_XML_A_TO), *id = attr_dup(st, SZ_XML_A_ID);
    sz_xb_t xb;
    sz_xb_init(&xb, 256 + inner_len);
    sz_xb_start(&xb, kind_names[sz_stanza_kind(st)], NULL);
    sz_xb_attr(&xb, "type", type);
    if (id)
        sz_xb_attr(&xb, "id", id);
    if (to)
        sz_xb_attr(&xb, "from", to);
    sz_xb_attr(&xb, "to", from);
    if (inner)
        sz_xb_raw(&xb, inner, inner_len);
    if (e)
        sz_stanza_err_build(&xb, e, SZ_STANZA_ERRT_DEFAULT);
    sz_xb_end(&xb);
    sz_stanza_t *out = sz_stanza_from_xb(&xb);
    if (out)
        route(r, out);
    sz_free(from);
    sz_free(to);
    sz_free(id);
}

/* Sends stanza error <e> back to the sender of <st>, unless <st> is itself
 * an error or an iq result (never answer those, RFC 6120 §8.3.1). */
static void bounce(sz_reactor_t *r, const sz_stanza_t *st, enum sz_stanza_err e)
{
    enum sz_stanza_kind k = sz_stanza_kind(st);
    if (k > SZ_STANZA_IQ)
        return;
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    bool quiet = type && (strcmp(type, "error") == 0 ||
                          (k == SZ_STANZA_IQ && strcmp(type, "result") == 0));
    if (!quiet)
        reply(r, st, "error", NULL, 0, e);
}


/* ---- IQs the server answers (RFC 6120 §8.2.3: exactly one payload) ---- */

/* A hook's stanza error, sent back unless the stanza is an error or a
 * result itself (bounce() checks). */
static void hook_error(sz_reactor_t *r, const sz_stanza_t *st, int ret)
{
    if (ret < 0 && -ret < SZ_STANZA_ERR_COUNT)
        bounce(r, st, (enum sz_stanza_err)-ret);
}

/* An iq get/set addressed to the server (<scope> SZ_IQ_SERVER) or to a
 * user's account (SZ_IQ_ACCOUNT), answered by the module that registered
 * its payload. <ctx> holds everything but the type, which is read here. */
static void server_iq(sz_hook_ctx_t *ctx, unsigned scope)
{
    sz_stanza_t *st = ctx->st;
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    bool get = type && strcmp(type, "get") == 0, set = type && strcmp(type, "set") == 0;
    if (!get && !set)
        return; /* result/error to the server: nothing to do (RFC 6120 §8.2.3) */
    ctx->type = type;
    ctx->kind = SZ_STANZA_IQ;
    const sz_xml_node_t *root = sz_stanza_tree(st), *payload = NULL;
    unsigned nchildren = 0;
    for (const sz_xml_node_t *c = root ? root->children : NULL; c; c = c->next)
        if (c->kind == SZ_XML_ELEM) {
            payload = payload ? payload : c;
            nchildren++;
        }
    if (nchildren != 1)
        return bounce(ctx->r, st, SZ_STANZA_ERR_BAD_REQUEST);
    sz_iq_fn fn = sz_hooks_iq_find(payload, scope);
    int ret = fn ? fn(ctx, payload, set) : -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    hook_error(ctx->r, st, ret);
}

/* ---- delivery on the home reactor ----------------------------------------- */

/* Every delivery to a client passes SZ_HOOK_DELIVER first, where a module
 * may hold the stanza (XEP-0352) and write it later with
 * sz_router_write(). */
static void deliver(sz_session_t *s, sz_stanza_t *st)
{
    sz_hook_ctx_t ctx = {.r = sz_reactor_self(), .st = st, .user = s->user, .sess = s,
                         .host = -1, .kind = sz_stanza_kind(st)};
    if (sz_hooks_run(SZ_HOOK_DELIVER, &ctx) == SZ_HANDLED)
        return;
    s->ops->deliver(s, sz_stanza_ref(st));
}

void sz_router_deliver(sz_session_t *s, sz_stanza_t *st)
{
    deliver(s, st);
}

void sz_router_write(sz_session_t *s, sz_stanza_t *st)
{
    s->ops->deliver(s, sz_stanza_ref(st));
}

static int8_t highest_priority(const sz_user_t *u)
{
    int best = -129;
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->priority > best)
            best = s->priority;
    return (int8_t)(best < -128 ? -128 : best);
}

/* RFC 6121 §8.5.2.1.1: a message to the bare JID goes to the available
 * resources of the highest non-negative priority <best>, a headline to
 * every available resource of non-negative priority. */
static bool gets_bare(const sz_session_t *s, bool headline, int8_t best)
{
    return s->available && best >= 0 && (headline ? s->priority >= 0 : s->priority == best);
}

bool sz_router_gets_bare_message(const sz_user_t *u, const sz_session_t *s, bool headline)
{
    return gets_bare(s, headline, highest_priority(u));
}

/* The context of a hook or IQ handler for <st> on this reactor. */
static sz_hook_ctx_t hook_ctx(sz_reactor_t *r, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    return (sz_hook_ctx_t){.r = r, .st = st, .to = to, .host = host,
                           .kind = sz_stanza_kind(st)};
}

static void on_exists(void *arg, int res)
{
    struct held *h = arg;
    pending--;
    if (res > 0) {
        /* Still no session? A bind may have happened meanwhile. */
        sz_hook_ctx_t ctx = hook_ctx(h->r, h->st, h->to, h->host);
        ctx.user = find_user(h->r->router, h->to);
        server_iq(&ctx, SZ_IQ_ACCOUNT);
    } else {
        bounce(h->r, h->st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
    }
    sz_stanza_unref(h->st);
    sz_jid_free(h->to);
    sz_free(h);
}

/* An IQ for a user with no session: answer once storage says whether the
 * account exists. */
static void ask_exists(sz_reactor_t *r, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    if (!exists_fn) {
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    }
    struct held *h = sz_malloc(sizeof(*h));
    h->r = r;
    h->st = sz_stanza_ref(st);
    h->to = sz_jid_bare_dup(to);
    h->host = host;
    pending++;
    if (exists_fn(exists_ctx, h->to, on_exists, h) < 0) {
        pending--;
        sz_stanza_unref(h->st);
        sz_jid_free(h->to);
        sz_free(h);
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
    }
}

/* RFC 6121 §8.5.2: a stanza to the bare JID of a local user; <to> may
 * carry a resource that is not bound (§8.5.3.2.1 sends some such stanzas
 * here). */
static void to_bare_as(sz_reactor_t *r, sz_user_t *u, sz_stanza_t *st, const sz_jid_t *to,
                       int host, bool undelivered)
{
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    const char *t = type ? type : "";
    sz_hook_ctx_t ctx = hook_ctx(r, st, to, host);
    ctx.user = u;
    ctx.type = type;
    ctx.undelivered = undelivered;
    int ret = sz_hooks_run(SZ_HOOK_TO_BARE, &ctx);
    if (ret != SZ_PASS) {
        hook_error(r, st, ret);
        return;
    }
    switch (sz_stanza_kind(st)) {
    case SZ_STANZA_MESSAGE: {
        if (strcmp(t, "error") == 0)
            break; /* §8.5.2.1.1: errors to a bare JID are dropped */
        if (strcmp(t, "groupchat") == 0) {
            bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
            break;
        }
        int8_t best = highest_priority(u);
        if (!u || best < 0) {
            /* No available resource with non-negative priority, and no
             * module (offline storage, XEP-0160) took it at TO_BARE
             * (§8.5.2.2.1): chat/normal bounce, headline is silently
             * dropped. */
            if (strcmp(t, "headline") != 0)
                bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
            break;
        }
        bool headline = strcmp(t, "headline") == 0;
        for (sz_session_t *s = u->sessions; s; s = s->next)
            if (gets_bare(s, headline, best))
                deliver(s, st);
        sz_hooks_run(SZ_HOOK_DELIVERED, &ctx);
        break;
    }
    case SZ_STANZA_PRESENCE:
        /* Probes and subscription requests are the presence modules'
         * business; what they pass is delivered to every available
         * resource (§8.5.2.1.2). Unknown users: ignore (§8.5.1). */
        if (strcmp(t, "probe") == 0 || strcmp(t, "error") == 0 || !u)
            break;
        for (sz_session_t *s = u->sessions; s; s = s->next)
            if (s->available)
                deliver(s, st);
        break;
    case SZ_STANZA_IQ: {
        /* §8.5.2.1.3 / §8.5.2.2.3: the server answers on the user's behalf,
         * online or not; only an account that does not exist gets
         * service-unavailable (§8.5.1). A resource that is not bound gets
         * service-unavailable from to_full(). */
        sz_jid_buf_t jb;
        sz_jid_t *bare = NULL;
        size_t bl;
        const char *b = sz_jid_bare(to, &bl);
        if (sz_jid_parse_into(b, bl, &jb, sizeof(jb), &bare, NULL) < 0)
            break;
        if (u) {
            ctx.to = bare;
            server_iq(&ctx, SZ_IQ_ACCOUNT);
        } else if (strcmp(t, "get") == 0 || strcmp(t, "set") == 0) {
            ask_exists(r, st, bare, host);
        }
        break;
    }
    default:
        break;
    }
}

static void to_bare(sz_reactor_t *r, sz_user_t *u, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    to_bare_as(r, u, st, to, host, false);
}

/* RFC 6121 §8.5.3: a stanza to a full JID of a local user. */
static void to_full(sz_reactor_t *r, sz_user_t *u, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    const char *t = type ? type : "";
    sz_hook_ctx_t ctx = hook_ctx(r, st, to, host);
    ctx.user = u;
    ctx.type = type;
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next) {
        if (sz_jid_full_eq(s->jid, to)) {
            ctx.sess = s;
            int ret = sz_hooks_run(SZ_HOOK_TO_FULL, &ctx);
            if (ret == SZ_PASS) {
                deliver(s, st);
                if (sz_stanza_kind(st) == SZ_STANZA_MESSAGE)
                    sz_hooks_run(SZ_HOOK_DELIVERED, &ctx);
            } else {
                hook_error(r, st, ret);
            }
            return;
        }
    }
    /* No such resource (§8.5.3.2). */
    int ret = sz_hooks_run(SZ_HOOK_NO_RESOURCE, &ctx);
    if (ret != SZ_PASS) {
        hook_error(r, st, ret);
        return;
    }
    switch (sz_stanza_kind(st)) {
    case SZ_STANZA_MESSAGE:
        if (strcmp(t, "groupchat") == 0)
            bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
        else if (strcmp(t, "error") != 0)
            to_bare(r, u, st, to, host); /* normal, chat, headline: as if to the bare JID */
        break;
    case SZ_STANZA_PRESENCE:
        /* Subscription stanzas go to the bare JID; others are dropped. */
        if (strncmp(t, "subscribe", 9) == 0 || strncmp(t, "unsubscribe", 11) == 0)
            to_bare(r, u, st, to, host);
        break;
    case SZ_STANZA_IQ:
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
        break;
    default:
        break;
    }
}

/* On the home reactor of <to>'s bare JID. Consumes <st>. */
static void deliver_home(sz_reactor_t *r, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    sz_user_t *u = find_user(r->router, to);
    if (sz_jid_is_bare(to))
        to_bare(r, u, st, to, host);
    else
        to_full(r, u, st, to, host);
    sz_stanza_unref(st);
}

/* The node stopped before the destination took it (see sz_msg.drop). */
static void drop_route_msg(sz_msg_t *m)
{
    struct route_msg *rm = (struct route_msg *)m;
    sz_stanza_unref(rm->st);
    sz_free(rm);
}

static void on_route_msg(sz_reactor_t *r, unsigned src, sz_msg_t *m)
{
    struct route_msg *rm = (struct route_msg *)m;
    sz_stanza_t *st = rm->st;
    sz_free(rm);
    route(r, st);
}

/* A stanza to a served domain (RFC 6120 §10.3): the server answers iq
 * requests to the bare domain through the IQ table; anything else goes
 * to the modules, then gets the §8.5.1-style default (an iq request or a
 * message is refused with service-unavailable, presence is dropped). */
static void to_domain(sz_reactor_t *r, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    sz_hook_ctx_t ctx = hook_ctx(r, st, to, host);
    char tbuf[TYPE_BUF];
    ctx.type = type_of(st, tbuf);
    int ret = sz_hooks_run(SZ_HOOK_TO_DOMAIN, &ctx);
    if (ret != SZ_PASS) {
        hook_error(r, st, ret);
        return;
    }
    enum sz_stanza_kind k = sz_stanza_kind(st);
    if (k == SZ_STANZA_IQ && sz_jid_is_bare(to))
        server_iq(&ctx, SZ_IQ_SERVER);
    else if (k == SZ_STANZA_IQ || k == SZ_STANZA_MESSAGE)
        /* RFC 6120 §8.2.3: an iq request is always answered, also one to
         * domain/resource, which names no entity here. */
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
}

/* Routes any stanza by its 'to'; consumes <st>. Called on any reactor. */
static void route(sz_reactor_t *r, sz_stanza_t *st)
{
    size_t tl;
    const char *raw = sz_stanza_attr_raw(st, SZ_XML_A_TO, &tl, NULL);
    sz_jid_buf_t jb;
    sz_jid_t *to = NULL;
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    if (raw) {
        ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec));
        if (n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &to, NULL) < 0) {
            bounce(r, st, SZ_STANZA_ERR_JID_MALFORMED);
            sz_stanza_unref(st);
            return;
        }
    }
    if (!to) {
        sz_stanza_unref(st); /* server stanzas always carry a 'to' */
        return;
    }
    size_t dl;
    const char *dom = sz_jid_domain(to, &dl);
    int host = served_index(dom, dl);
    if (host < 0) {
        sz_hook_ctx_t ctx = hook_ctx(r, st, to, -1);
        int ret = sz_hooks_run(SZ_HOOK_TO_REMOTE, &ctx);
        /* No server-to-server yet: a remote domain cannot be reached. */
        if (ret == SZ_PASS)
            bounce(r, st, SZ_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
        else
            hook_error(r, st, ret);
        sz_stanza_unref(st);
        return;
    }
    if (!sz_jid_has_local(to)) {
        to_domain(r, st, to, host);
        sz_stanza_unref(st);
        return;
    }
    unsigned home = sz_router_home(to, r->n);
    if (home == r->id) {
        deliver_home(r, st, to, host);
        return;
    }
    struct route_msg *rm = sz_malloc(sizeof(*rm));
    rm->m.fn = on_route_msg;
    rm->m.drop = drop_route_msg;
    rm->st = st;
    if (sz_reactor_post(r, home, &rm->m) < 0) {
        /* The ring to that reactor is full: back-pressure reaches the
         * sender as a retryable error rather than a silent loss. */
        sz_free(rm);
        bounce(r, st, SZ_STANZA_ERR_RESOURCE_CONSTRAINT);
        sz_stanza_unref(st);
    }
}

void sz_router_route(sz_reactor_t *r, sz_stanza_t *st)
{
    route(r, st);
}

void sz_router_iq_result(sz_reactor_t *r, const sz_stanza_t *st, const char *inner, size_t len)
{
    reply(r, st, "result", inner, len, 0);
}

void sz_router_bounce(sz_reactor_t *r, const sz_stanza_t *st, enum sz_stanza_err e)
{
    bounce(r, st, e);
}

/* ---- from a client ------------------------------------------------------------ */

static void broadcast_own(sz_reactor_t *r, sz_session_t *from, sz_stanza_t *st, bool include_self)
{
    for (sz_session_t *s = from->user ? from->user->sessions : NULL; s; s = s->next)
        if (s->available && (include_self || s != from))
            deliver(s, st);
}

static int parse_priority(sz_stanza_t *st)
{
    const sz_xml_node_t *root = sz_stanza_tree(st);
    const sz_xml_node_t *p = root ? sz_xml_child(root, "priority", "jabber:client") : NULL;
    if (!p)
        return 0;
    size_t len;
    const char *txt = sz_xml_text(p, &len);
    char buf[8];
    if (!txt || len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, txt, len);
    buf[len] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || v < -128 || v > 127)
        return 0; /* RFC 6121 §4.7.2.3: an integer between -128 and +127 */
    return (int)v;
}

/* RFC 6121 §4.5.2: a session that ends without unavailable presence gets
 * one generated, for the user's other available resources. <s> is already
 * unlinked from <u>. */
sz_stanza_t *sz_router_unavailable(const sz_jid_t *full)
{
    size_t fl;
    const char *f = sz_jid_full(full, &fl);
    sz_xb_t xb;
    sz_xb_init(&xb, 64 + fl);
    sz_xb_start(&xb, "presence", NULL);
    sz_xb_attr(&xb, "type", "unavailable");
    sz_xb_attr_n(&xb, "from", f, fl);
    sz_xb_end(&xb);
    return sz_stanza_from_xb(&xb);
}

static void broadcast_unavailable(sz_session_t *s, sz_user_t *u)
{
    if (!s->available)
        return;
    s->available = false;
    sz_stanza_t *st = sz_router_unavailable(s->jid);
    if (!st)
        return;
    for (sz_session_t *o = u->sessions; o; o = o->next)
        if (o->available)
            deliver(o, st);
    sz_stanza_unref(st);
}

/* A session leaves <u> (unbound or replaced): the modules hear of it while
 * its availability and last presence are as they were, then the user's
 * other resources get its unavailable presence. */
static void session_ends(sz_reactor_t *r, sz_session_t *s, sz_user_t *u)
{
    sz_hook_ctx_t ctx = {.r = r, .from = s, .user = u, .host = -1, .kind = SZ_STANZA_PRESENCE};
    size_t dl;
    const char *dom = sz_jid_domain(s->jid, &dl);
    ctx.host = served_index(dom, dl);
    sz_hooks_event(SZ_EV_UNBOUND, &ctx);
    broadcast_unavailable(s, u);
    if (s->presence) {
        sz_stanza_unref(s->presence);
        s->presence = NULL;
    }
}

void sz_router_unbind(sz_reactor_t *r, sz_session_t *s)
{
    router_t *rt = r->router;
    sz_user_t *u = s->user;
    if (!u)
        return;
    for (sz_session_t **pp = &u->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    s->next = NULL;
    s->user = NULL;
    __atomic_store_n(&rt->nsessions, rt->nsessions - 1, __ATOMIC_RELAXED);
    session_ends(r, s, u);
    drop_user_if_empty(r, u);
}

void sz_router_takeover(sz_reactor_t *r, sz_session_t *old, sz_session_t *s)
{
    (void)r;
    sz_user_t *u = old->user;
    SZ_ASSERT(u != NULL);
    sz_session_t **pp = &u->sessions;
    while (*pp != old)
        pp = &(*pp)->next; /* <old> is linked: the loop ends on it */
    /* The session goes on unchanged (no event, no presence): only the
     * struct that carries it changes. Modules find sessions through the
     * user's list, never through a pointer kept across calls. */
    const sz_session_ops_t *ops = s->ops;
    *s = *old;
    s->ops = ops;
    *pp = s;
    memset(old, 0, sizeof(*old));
}

void sz_router_from_client(sz_reactor_t *r, sz_session_t *from, sz_stanza_t *st,
                           const sz_jid_t *to)
{
    enum sz_stanza_kind k = sz_stanza_kind(st);
    size_t dl;
    const char *dom = sz_jid_domain(from->jid, &dl);
    char tbuf[TYPE_BUF];
    sz_hook_ctx_t ctx = {.r = r, .st = st, .to = to, .from = from, .user = from->user,
                         .host = served_index(dom, dl), .kind = k, .type = type_of(st, tbuf)};
    int ret = sz_hooks_run(SZ_HOOK_FROM_CLIENT, &ctx);
    if (ret != SZ_PASS) {
        hook_error(r, st, ret);
        sz_stanza_unref(st);
        return;
    }
    if (k == SZ_STANZA_PRESENCE && !to) {
        /* Presence broadcast (RFC 6121 §4.2, §4.4, §4.5): the user's own
         * available resources here, contacts through the modules. */
        const char *type = ctx.type;
        if (!type) {
            bool initial = !from->available;
            ctx.prev_priority = initial ? SZ_PRIO_NONE : from->priority;
            from->available = true;
            from->priority = (int8_t)parse_priority(st);
            if (from->presence)
                sz_stanza_unref(from->presence);
            from->presence = sz_stanza_ref(st);
            broadcast_own(r, from, st, true);
            if (initial) {
                /* The new resource learns its siblings' presence. */
                for (sz_session_t *s = from->user ? from->user->sessions : NULL; s; s = s->next)
                    if (s != from && s->available && s->presence)
                        deliver(from, s->presence);
            }
            sz_hooks_run(SZ_HOOK_PRESENCE_BROADCAST, &ctx);
        } else if (strcmp(type, "unavailable") == 0 && from->available) {
            broadcast_own(r, from, st, true);
            from->available = false;
            sz_hooks_run(SZ_HOOK_PRESENCE_BROADCAST, &ctx);
            if (from->presence) {
                sz_stanza_unref(from->presence);
                from->presence = NULL;
            }
        }
        /* Subscription states and probes without 'to' are meaningless. */
        sz_stanza_unref(st);
        return;
    }
    if (!to) {
        if (k == SZ_STANZA_IQ) {
            /* RFC 6120 §10.3.3: no 'to' means the user's account. */
            sz_jid_buf_t jb;
            sz_jid_t *bare = NULL;
            size_t bl;
            const char *b = sz_jid_bare(from->jid, &bl);
            if (sz_jid_parse_into(b, bl, &jb, sizeof(jb), &bare, NULL) == 0) {
                ctx.to = bare;
                server_iq(&ctx, SZ_IQ_ACCOUNT);
            }
            sz_stanza_unref(st);
            return;
        }
        /* A message without 'to' is addressed to the sender's bare JID. */
        size_t bl;
        const char *b = sz_jid_bare(from->jid, &bl);
        sz_stanza_t *st2 = sz_stanza_rewrite(st, b, bl, NULL, 0);
        sz_stanza_unref(st);
        if (st2)
            route(r, st2);
        return;
    }
    route(r, st);
}

/* Depth of undelivered() on this reactor: a message that comes back
 * undelivered while it is being re-routed as undelivered (it reached
 * another stream that is ending too, or the same one before its deferred
 * unbind) goes to the modules as to a user with no resource, so it can
 * never go round in a loop. */
static __thread unsigned undelivered_depth;

/* RFC 6121 §8.5.3.2.1 for message <st> to <to>, on <to>'s home reactor:
 * normal, chat and headline as if sent to the bare JID (the user's other
 * resources, else the modules' offline storage, else the §8.5.2.2.1
 * default); groupchat gets an error back; errors are dropped. */
static void undelivered_message(sz_reactor_t *r, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    const char *t = type ? type : "";
    if (strcmp(t, "error") == 0)
        return;
    if (strcmp(t, "groupchat") == 0) {
        bounce(r, st, SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE);
        return;
    }
    undelivered_depth++;
    sz_user_t *u = undelivered_depth > 1 ? NULL : find_user(r->router, to);
    to_bare_as(r, u, st, to, host, true);
    undelivered_depth--;
}

void sz_router_undelivered(sz_reactor_t *r, sz_stanza_t *st)
{
    enum sz_stanza_kind k = sz_stanza_kind(st);
    if (k == SZ_STANZA_MESSAGE) {
        size_t tl;
        sz_jid_buf_t jb;
        sz_jid_t *to = NULL;
        char dec[SZ_JID_INPUT_MAX_BYTES + 1];
        ssize_t n = sz_stanza_attr_raw(st, SZ_XML_A_TO, &tl, NULL)
                        ? sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec))
                        : -1;
        if (n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &to, NULL) < 0 ||
            !sz_jid_has_local(to)) {
            sz_stanza_unref(st); /* it was delivered, so this cannot happen */
            return;
        }
        size_t dl;
        const char *dom = sz_jid_domain(to, &dl);
        int host = served_index(dom, dl);
        if (host >= 0 && sz_router_home(to, r->n) == r->id)
            undelivered_message(r, st, to, host);
        else
            return route(r, st); /* its home reactor applies §8.5.3.2 */
    } else if (k != SZ_STANZA_PRESENCE) {
        bounce(r, st, SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE);
    }
    sz_stanza_unref(st);
}
