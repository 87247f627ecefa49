/*
 * XEP-0160 offline messages (RFC 6121 §8.5.2.2, §8.5.3.2.1):
 * - Storing (TO_BARE): a message of type normal or chat (or an unknown
 *   type, which RFC 6121 §5.2.2 reads as normal) to an account with no
 *   available resource of non-negative priority is stored with a XEP-0203
 *   <delay from='<domain>' stamp='…'/> (XEP-0160 §4) in the account's
 *   queue (storage/offline.h). Headline, groupchat and error messages are
 *   left to the router (§8.5.2.2.1: dropped, refused, dropped). The
 *   account check, the quota (limits.max_offline_messages) and the insert
 *   are one write; only once it has committed is the message handled:
 *   refused with <service-unavailable/> (§8.5.2.2.1, §8.5.1, XEP-0160 §5)
 *   when the account does not exist, the queue is full or storage fails,
 *   and in every case counted as durable for the sender's XEP-0198 acks
 *   (core/durable.h) only then.
 * - Delivering (PRESENCE_BROADCAST): when a session of the account becomes
 *   available with non-negative priority (its initial presence, or a
 *   change from a negative priority; XEP-0160 §4), the queue is read in
 *   order and written to the highest-priority available resource, then
 *   exactly what was written is deleted (by id: messages stored after the
 *   read stay). One read chain per account at a time, kept in a user
 *   slot: a second resource coming online meanwhile starts none, so
 *   nothing is delivered twice; messages to the account's bare JID that
 *   arrive during the chain wait in it and go out after the stored ones,
 *   so the order holds.
 * - Disco: 'msgoffline' on the server (XEP-0160 §3).
 * Threads: the account's home reactor (TO_BARE, presence, user slot,
 * storage answers).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/durable.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/xml/builder.h"
#include "core/xml/write.h"
#include "storage/offline.h"

#define NS_DELAY   "urn:xmpp:delay"
#define NS_CLIENT  "jabber:client"
#define NS_XML     "http://www.w3.org/XML/1998/namespace"
#define FEATURE    "msgoffline"

/* Messages per read: bounds the memory of one storage answer. */
#define TAKE_BATCH 200

static sz_store_t *store;
static const sz_conf_t *conf;
static unsigned uslot;

/* ---- storing ------------------------------------------------------------------ */

/* A message being stored. */
struct put {
    sz_durable_t d; /* counted until the write has ended */
    sz_reactor_t *r;
    sz_stanza_t *st;
};

static uint32_t quota(void)
{
    return conf ? SZ_CONF_LIMIT(conf, max_offline_messages) : 1000;
}

static int8_t best_priority(const sz_user_t *u)
{
    int best = SZ_PRIO_NONE;
    for (const sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->priority > best)
            best = s->priority;
    return (int8_t)(best < -128 ? -128 : best);
}

static bool reachable(const sz_user_t *u)
{
    for (const sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->priority >= 0)
            return true;
    return false;
}

/* Whether <root> carries a <delay/> of <domain> already (a message this
 * server stored once, delivered, and got back unacknowledged). */
static bool has_own_delay(const sz_xml_node_t *root, const char *domain)
{
    for (const sz_xml_node_t *d = sz_xml_child(root, "delay", NS_DELAY); d;
         d = sz_xml_next(d, "delay", NS_DELAY)) {
        size_t fl;
        const char *f = sz_xml_attr(d, "from", NULL, &fl);
        if (f && fl == strlen(domain) && memcmp(f, domain, fl) == 0)
            return true;
    }
    return false;
}

/* XEP-0082 DateTime of now, UTC with milliseconds. */
static void stamp_now(char buf[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* The message as stored: its element written back on its own (the stream
 * it came on declares nothing it needs), plus our <delay/> unless it has
 * one. Returns 0 with *<out> (sz_free) or -errno. */
static int stored_form(sz_stanza_t *st, const char *domain, char **out, size_t *len)
{
    const sz_xml_node_t *root = sz_stanza_tree(st);
    if (!root)
        return -EINVAL;
    size_t rl;
    sz_stanza_raw(st, &rl);
    sz_xb_t xb;
    sz_xb_init(&xb, rl + 160);
    sz_xb_start(&xb, "message", NULL);
    for (uint32_t i = 0; i < root->nattrs; i++) {
        const sz_xml_attr_t *a = &root->attrs[i];
        if (!a->ns) {
            char name[64];
            if (a->name_len >= sizeof(name))
                continue;
            memcpy(name, a->name, a->name_len);
            name[a->name_len] = '\0';
            sz_xb_attr_n(&xb, name, a->value, a->value_len);
        } else if (a->ns_len == sizeof(NS_XML) - 1 && memcmp(a->ns, NS_XML, a->ns_len) == 0 &&
                   a->name_len == 4 && memcmp(a->name, "lang", 4) == 0) {
            sz_xb_attr_n(&xb, "xml:lang", a->value, a->value_len);
        }
        /* Other namespaced attributes on a message: none is defined. */
    }
    for (const sz_xml_node_t *c = root->children; c; c = c->next) {
        if (c->kind == SZ_XML_ELEM)
            sz_xml_write(&xb, c, NS_CLIENT);
        else
            sz_xb_text(&xb, c->text, c->text_len);
    }
    if (!has_own_delay(root, domain)) {
        char stamp[32];
        stamp_now(stamp);
        sz_xb_start(&xb, "delay", NS_DELAY);
        sz_xb_attr(&xb, "from", domain);
        sz_xb_attr(&xb, "stamp", stamp);
        sz_xb_end(&xb);
    }
    sz_xb_end(&xb);
    return sz_xb_finish(&xb, out, len);
}

static void on_put(void *arg, int res)
{
    struct put *p = arg;
    if (res < 0) {
        /* Not stored: the sender learns it (RFC 6121 §8.5.2.2.1; §8.5.1
         * for an account that does not exist; XEP-0160 §5 for a full
         * queue). */
        if (res != -ENOENT && res != -EDQUOT)
            SZ_WARN("msg=\"offline message not stored\" err=%d", res);
        sz_router_bounce(p->r, p->st, SZ_STANZA_ERR_SERVICE_UNAVAILABLE);
    }
    /* Stored (committed) or answered: handled, for the sender's acks. */
    sz_durable_end(p->r, &p->d);
    sz_stanza_unref(p->st);
    sz_free(p);
    sz_hooks_release();
}

static int store_message(sz_hook_ctx_t *ctx)
{
    uint32_t max = quota();
    const char *domain = sz_router_host_name(ctx->host);
    if (!store || max == 0 || !domain)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    char *xml;
    size_t len;
    if (stored_form(ctx->st, domain, &xml, &len) < 0)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    struct put *p = sz_malloc(sizeof(*p));
    p->r = ctx->r;
    p->st = sz_stanza_ref(ctx->st);
    /* Begun before this hook returns, so a barrier set by the sender's
     * reactor after it routed the message finds the write here. */
    sz_durable_begin(ctx->r, &p->d);
    sz_hooks_hold();
    int ret = sz_store_offline_put(store, ctx->to, xml, len, max, on_put, p);
    sz_free(xml);
    if (ret < 0) {
        sz_durable_end(ctx->r, &p->d);
        sz_stanza_unref(p->st);
        sz_free(p);
        sz_hooks_release();
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    }
    return SZ_HANDLED;
}

/* ---- delivering --------------------------------------------------------------- */

/* A read chain of one account: the user slot points to it while the user
 * entry exists; detached (u NULL) when the user's last session went. */
struct chain {
    sz_reactor_t *r;
    sz_user_t *u;
    sz_jid_t *owner;
    sz_stanza_t **held; /* messages to the bare JID that came during it */
    size_t nheld, cap;
};

/* TO_BARE while a chain runs for a reachable user: the message waits for
 * the stored ones. */
static void hold_message(struct chain *c, sz_stanza_t *st)
{
    if (c->nheld == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->held = sz_realloc(c->held, c->cap * sizeof(*c->held));
    }
    c->held[c->nheld++] = sz_stanza_ref(st);
}

/* Ends <c>: the messages it held are routed again (delivered now, or
 * stored if the user went away meanwhile). */
static void chain_end(struct chain *c)
{
    if (c->u)
        c->u->slot[uslot] = NULL;
    for (size_t i = 0; i < c->nheld; i++)
        sz_router_route(c->r, c->held[i]);
    sz_free(c->held);
    sz_jid_free(c->owner);
    sz_free(c);
    sz_hooks_release();
}

/* The session stored messages go to: available, the highest priority
 * (non-negative), the newest of equals. NULL when none. */
static sz_session_t *target(sz_user_t *u)
{
    int8_t best = best_priority(u);
    if (!u || best < 0)
        return NULL;
    for (sz_session_t *s = u->sessions; s; s = s->next)
        if (s->available && s->priority == best)
            return s;
    return NULL;
}

static void on_take(void *arg, int res, const sz_store_offline_msg_t *msgs, size_t n);

static void take(struct chain *c, uint64_t upto, unsigned limit)
{
    if (sz_store_offline_take(store, c->owner, upto, limit, on_take, c) < 0) {
        SZ_WARN("msg=\"offline messages not read\" err=submit");
        chain_end(c);
    }
}

static void on_take(void *arg, int res, const sz_store_offline_msg_t *msgs, size_t n)
{
    struct chain *c = arg;
    sz_session_t *s = c->u ? target(c->u) : NULL;
    if (res < 0 || n == 0 || !s) {
        /* Failed, done, or nobody to write to any more: what was not
         * written stays stored for the next time. */
        if (res < 0)
            SZ_WARN("msg=\"offline messages not read\" err=%d", res);
        chain_end(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sz_stanza_t *st = sz_stanza_from_xml(msgs[i].xml, msgs[i].len);
        if (st) {
            sz_router_deliver(s, st);
            sz_stanza_unref(st);
        } else {
            SZ_WARN("msg=\"stored offline message unreadable, dropped\" id=%llu",
                    (unsigned long long)msgs[i].id);
        }
    }
    /* Delete what was written; read on while batches come full. */
    take(c, msgs[n - 1].id, n == TAKE_BATCH ? TAKE_BATCH : 0);
}

/* PRESENCE_BROADCAST: a session became reachable. */
static int on_broadcast(sz_hook_ctx_t *ctx)
{
    sz_session_t *s = ctx->from;
    sz_user_t *u = ctx->user;
    if (ctx->type || !s || !u || !store || s->priority < 0 || ctx->prev_priority >= 0)
        return SZ_PASS;
    if (u->slot[uslot])
        return SZ_PASS; /* a chain runs: it delivers to whoever is best when it reads */
    struct chain *c = sz_calloc(1, sizeof(*c));
    c->r = ctx->r;
    c->u = u;
    c->owner = sz_jid_bare_dup(u->bare);
    u->slot[uslot] = c;
    sz_hooks_hold();
    take(c, 0, TAKE_BATCH);
    return SZ_PASS;
}

static void on_user_gone(sz_hook_ctx_t *ctx)
{
    struct chain *c = ctx->user ? ctx->user->slot[uslot] : NULL;
    if (c) {
        c->u = NULL; /* it stops at its next answer */
        ctx->user->slot[uslot] = NULL;
    }
}

/* TO_BARE: messages for an account that cannot take them now. */
static int on_to_bare(sz_hook_ctx_t *ctx)
{
    if (ctx->kind != SZ_STANZA_MESSAGE)
        return SZ_PASS;
    const char *t = ctx->type ? ctx->type : "normal";
    if (strcmp(t, "headline") == 0 || strcmp(t, "groupchat") == 0 || strcmp(t, "error") == 0)
        return SZ_PASS; /* §8.5.2.1.1, §8.5.2.2.1: not stored */
    sz_user_t *u = ctx->user;
    if (reachable(u)) {
        struct chain *c = u->slot[uslot];
        if (c && !ctx->undelivered) {
            hold_message(c, ctx->st);
            return SZ_HANDLED;
        }
        return SZ_PASS; /* delivered now (§8.5.2.1.1) */
    }
    return store_message(ctx);
}

void sz_mod_offline_register(const sz_mod_env_t *env)
{
    store = env->store;
    conf = env->conf;
    uslot = sz_hooks_user_slot();
    sz_hooks_add(SZ_HOOK_TO_BARE, on_to_bare);
    sz_hooks_add(SZ_HOOK_PRESENCE_BROADCAST, on_broadcast);
    sz_hooks_on(SZ_EV_USER_GONE, on_user_gone);
    sz_hooks_disco_feature(FEATURE, SZ_IQ_SERVER, NULL);
}
