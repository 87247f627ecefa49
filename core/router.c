/*
 * Local routing: the per-reactor user table and the delivery rules of
 * RFC 6121 §8.5, plus the IQs the server answers itself (XEP-0199 ping,
 * XEP-0030 disco, XEP-0092 version). Reactor-local; a stanza for a user
 * homed elsewhere is posted to that reactor as a stanza reference.
 */
#include "core/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/xml/builder.h"
#include "core/xml/tree.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING    "urn:xmpp:ping"
#define NS_INFO    "http://jabber.org/protocol/disco#info"
#define NS_ITEMS   "http://jabber.org/protocol/disco#items"
#define NS_VERSION "jabber:iq:version"
#define NS_REGISTER "jabber:iq:register"

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
    int host;
};

static const char *const *served;
static const bool *served_register;
static unsigned nserved;

static void route(sz_reactor_t *r, sz_stanza_t *st);
static void broadcast_unavailable(sz_session_t *s, sz_user_t *u);

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
                 * from the user's other resources (RFC 6121 §4.5.2). */
                broadcast_unavailable(old, u);
                break;
            }
        }
    }
    s->user = u;
    s->next = u->sessions;
    u->sessions = s;
    __atomic_store_n(&rt->nsessions, rt->nsessions + 1, __ATOMIC_RELAXED);
    return old;
}

static void drop_user_if_empty(router_t *rt, sz_user_t *u)
{
    if (u->sessions)
        return;
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
    if (e) {
        sz_xb_start(&xb, "error", NULL);
        sz_xb_attr(&xb, "type", sz_stanza_err_type_name(sz_stanza_err_default_type(e)));
        sz_xb_empty(&xb, sz_stanza_err_name(e), NS_STANZAS);
        sz_xb_end(&xb);
    }
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) == 0) {
        sz_stanza_t *out = sz_stanza_from_xml(xml, len);
        sz_free(xml);
        if (out)
            route(r, out);
    }
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

static void iq_result(sz_reactor_t *r, const sz_stanza_t *st, const char *inner, size_t inner_len)
{
    reply(r, st, "result", inner, inner_len, 0);
}

/* ---- IQs answered by the server (RFC 6120 §8.2.3: exactly one payload) ---- */

static bool node_is(const sz_xml_node_t *n, const char *name, const char *ns)
{
    return n && n->kind == SZ_XML_ELEM && strlen(name) == n->name_len &&
           memcmp(n->name, name, n->name_len) == 0 && n->ns && strlen(ns) == n->ns_len &&
           memcmp(n->ns, ns, n->ns_len) == 0;
}

/* Answers an iq get/set addressed to the server (<account> false) or to a
 * user's bare JID on the user's behalf (<account> true). */
static void server_iq(sz_reactor_t *r, sz_stanza_t *st, bool account, int host)
{
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    bool get = type && strcmp(type, "get") == 0, set = type && strcmp(type, "set") == 0;
    if (!get && !set)
        return; /* result/error to the server: nothing to do (RFC 6120 §8.2.3) */
    const sz_xml_node_t *root = sz_stanza_tree(st), *payload = NULL;
    unsigned nchildren = 0;
    for (const sz_xml_node_t *c = root ? root->children : NULL; c; c = c->next)
        if (c->kind == SZ_XML_ELEM) {
            payload = payload ? payload : c;
            nchildren++;
        }
    if (nchildren != 1)
        return bounce(r, st, SZ_STANZA_ERR_BAD_REQUEST);
    if (node_is(payload, "ping", NS_PING)) {
        if (!get)
            return bounce(r, st, SZ_STANZA_ERR_BAD_REQUEST);
        return iq_result(r, st, NULL, 0);
    }
    if (node_is(payload, "query", NS_INFO) && get) {
        if (sz_xml_attr(payload, "node", NULL, NULL))
            return bounce(r, st, SZ_STANZA_ERR_ITEM_NOT_FOUND);
        char buf[1024];
        int n;
        if (account)
            n = snprintf(buf, sizeof(buf),
                         "<query xmlns='" NS_INFO "'><identity category='account' type='registered'/>"
                         "<feature var='" NS_INFO "'/><feature var='" NS_ITEMS "'/>"
                         "<feature var='" NS_PING "'/></query>");
        else
            n = snprintf(buf, sizeof(buf),
                         "<query xmlns='" NS_INFO "'><identity category='server' type='im' name='"
                         SZ_PRODUCT_NAME "'/><feature var='" NS_INFO "'/><feature var='" NS_ITEMS
                         "'/><feature var='" NS_PING "'/><feature var='" NS_VERSION "'/>%s</query>",
                         host >= 0 && served_register && served_register[host]
                             ? "<feature var='" NS_REGISTER "'/>"
                             : "");
        return iq_result(r, st, buf, (size_t)n);
    }
    if (node_is(payload, "query", NS_ITEMS) && get) {
        if (sz_xml_attr(payload, "node", NULL, NULL))
            return bounce(r, st, SZ_STANZA_ERR_ITEM_NOT_FOUND);
        static const char items[] = "<query xmlns='" NS_ITEMS "'/>";
        return iq_result(r, st, items, sizeof(items) - 1);
    }
    if (!account && node_is(payload, "query", NS_VERSION) && get) {
        static const char ver[] = "<query xmlns='" NS_VERSION "'><name>" SZ_PRODUCT_NAME
                                  "</name><version>" SZ_PRODUCT_VERSION "</version></query>";
        return iq_result(r, st, ver, sizeof(ver) - 1);
    }
    bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
}

/* ---- delivery on the home reactor ----------------------------------------- */

static void deliver(sz_session_t *s, sz_stanza_t *st)
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

static void on_exists(void *arg, int res)
{
    struct held *h = arg;
    pending--;
    if (res > 0)
        server_iq(h->r, h->st, true, h->host);
    else
        bounce(h->r, h->st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
    sz_stanza_unref(h->st);
    sz_free(h);
}

/* An IQ for a user with no session: answer once storage says whether the
 * account exists. */
static void ask_exists(sz_reactor_t *r, sz_stanza_t *st, int host)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_buf_t jb;
    sz_jid_t *to = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec));
    if (!exists_fn || n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &to, NULL) < 0) {
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    }
    struct held *h = sz_malloc(sizeof(*h));
    h->r = r;
    h->st = sz_stanza_ref(st);
    h->host = host;
    pending++;
    if (exists_fn(exists_ctx, to, on_exists, h) < 0) {
        pending--;
        sz_stanza_unref(h->st);
        sz_free(h);
        bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
    }
}

/* RFC 6121 §8.5.2: a stanza to the bare JID of a local user. */
static void to_bare(sz_reactor_t *r, sz_user_t *u, sz_stanza_t *st, int host)
{
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    const char *t = type ? type : "";
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
            /* No available resource with non-negative priority and no
             * offline storage yet (§8.5.2.2.1): chat/normal bounce,
             * headline is silently dropped. */
            if (strcmp(t, "headline") != 0)
                bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
            break;
        }
        bool headline = strcmp(t, "headline") == 0;
        for (sz_session_t *s = u->sessions; s; s = s->next)
            if (s->available && (headline ? s->priority >= 0 : s->priority == best))
                deliver(s, st);
        break;
    }
    case SZ_STANZA_PRESENCE:
        if (strcmp(t, "probe") == 0 || strcmp(t, "error") == 0 || !u)
            break; /* probes need rosters (not yet); unknown users: ignore (§8.5.1) */
        for (sz_session_t *s = u->sessions; s; s = s->next)
            if (s->available)
                deliver(s, st);
        break;
    case SZ_STANZA_IQ:
        /* §8.5.2.1.3 / §8.5.2.2.3: the server answers on the user's behalf,
         * online or not; only an account that does not exist gets
         * service-unavailable (§8.5.1). */
        if (u)
            server_iq(r, st, true, host);
        else if (strcmp(t, "get") == 0 || strcmp(t, "set") == 0)
            ask_exists(r, st, host);
        break;
    default:
        break;
    }
}

/* RFC 6121 §8.5.3: a stanza to a full JID of a local user. */
static void to_full(sz_reactor_t *r, sz_user_t *u, sz_stanza_t *st, const sz_jid_t *to, int host)
{
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next) {
        if (sz_jid_full_eq(s->jid, to)) {
            deliver(s, st);
            return;
        }
    }
    /* No such resource (§8.5.3.2). */
    char tbuf[TYPE_BUF];
    const char *type = type_of(st, tbuf);
    const char *t = type ? type : "";
    switch (sz_stanza_kind(st)) {
    case SZ_STANZA_MESSAGE:
        if (strcmp(t, "groupchat") == 0)
            bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
        else if (strcmp(t, "error") != 0)
            to_bare(r, u, st, host); /* normal, chat, headline: as if to the bare JID */
        break;
    case SZ_STANZA_PRESENCE:
        /* Subscription stanzas go to the bare JID; others are dropped. */
        if (strncmp(t, "subscribe", 9) == 0 || strncmp(t, "unsubscribe", 11) == 0)
            to_bare(r, u, st, host);
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
        to_bare(r, u, st, host);
    else
        to_full(r, u, st, to, host);
    sz_stanza_unref(st);
}

static void on_route_msg(sz_reactor_t *r, unsigned src, sz_msg_t *m)
{
    struct route_msg *rm = (struct route_msg *)m;
    sz_stanza_t *st = rm->st;
    sz_free(rm);
    route(r, st);
}

/* Routes any stanza whose 'to' names a local user or a served domain;
 * consumes <st>. Called on any reactor. */
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
        /* No server-to-server yet: a remote domain cannot be reached. */
        bounce(r, st, SZ_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
        sz_stanza_unref(st);
        return;
    }
    if (!sz_jid_has_local(to)) {
        if (sz_jid_is_bare(to) && sz_stanza_kind(st) == SZ_STANZA_IQ)
            server_iq(r, st, false, host);
        else if (sz_stanza_kind(st) == SZ_STANZA_MESSAGE)
            bounce(r, st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
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
    rm->st = st;
    if (sz_reactor_post(r, home, &rm->m) < 0) {
        /* The ring to that reactor is full: back-pressure reaches the
         * sender as a retryable error rather than a silent loss. */
        sz_free(rm);
        bounce(r, st, SZ_STANZA_ERR_RESOURCE_CONSTRAINT);
        sz_stanza_unref(st);
    }
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
static void broadcast_unavailable(sz_session_t *s, sz_user_t *u)
{
    if (!s->available)
        return;
    s->available = false;
    size_t fl;
    const char *full = sz_jid_full(s->jid, &fl);
    char *xml = NULL;
    size_t len = 0;
    sz_xb_t xb;
    sz_xb_init(&xb, 128);
    sz_xb_start(&xb, "presence", NULL);
    sz_xb_attr(&xb, "type", "unavailable");
    sz_xb_attr_n(&xb, "from", full, fl);
    sz_xb_end(&xb);
    if (sz_xb_finish(&xb, &xml, &len) < 0)
        return;
    sz_stanza_t *st = sz_stanza_from_xml(xml, len);
    sz_free(xml);
    if (!st)
        return;
    for (sz_session_t *o = u->sessions; o; o = o->next)
        if (o->available)
            deliver(o, st);
    sz_stanza_unref(st);
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
    broadcast_unavailable(s, u);
    if (s->presence) {
        sz_stanza_unref(s->presence);
        s->presence = NULL;
    }
    drop_user_if_empty(rt, u);
}

void sz_router_from_client(sz_reactor_t *r, sz_session_t *from, sz_stanza_t *st,
                           const sz_jid_t *to)
{
    enum sz_stanza_kind k = sz_stanza_kind(st);
    if (k == SZ_STANZA_PRESENCE && !to) {
        /* Presence broadcast (RFC 6121 §4.2, §4.4, §4.5). Without rosters the
         * audience is the user's own available resources. */
        char tbuf[TYPE_BUF];
        const char *type = type_of(st, tbuf);
        if (!type) {
            bool initial = !from->available;
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
        } else if (strcmp(type, "unavailable") == 0 && from->available) {
            broadcast_own(r, from, st, true);
            from->available = false;
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
            size_t dl;
            const char *dom = sz_jid_domain(from->jid, &dl);
            server_iq(r, st, true, served_index(dom, dl));
            sz_stanza_unref(st);
            return;
        }
        /* A message without 'to' is addressed to the sender's bare JID. */
        sz_jid_t *bare = sz_jid_bare_dup(from->jid);
        size_t bl;
        const char *b = sz_jid_bare(bare, &bl);
        sz_stanza_t *st2 = sz_stanza_rewrite(st, b, bl, NULL, 0);
        sz_jid_free(bare);
        sz_stanza_unref(st);
        if (st2)
            route(r, st2);
        return;
    }
    route(r, st);
}

void sz_router_undelivered(sz_reactor_t *r, sz_stanza_t *st)
{
    if (sz_stanza_kind(st) != SZ_STANZA_PRESENCE)
        bounce(r, st, SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE);
    sz_stanza_unref(st);
}
