/*
 * XEP-0352 Client State Indication (urn:xmpp:csi:0): the stream feature
 * (§2) and the <inactive/> and <active/> nonzas (§3) on bound streams.
 * While a session is inactive, presence updates to it (available and
 * unavailable presence, §5 "suppress or delay presence updates") are held
 * at SZ_HOOK_DELIVER, the latest one per sender full JID; everything
 * else (messages, iqs, subscription requests and answers, errors) is
 * urgent: what is held is written first, in order, then the urgent stanza.
 * <active/> writes everything held. At most limits.csi_max_held senders
 * are held: a presence from one sender more writes them all and itself.
 *
 * Per session, in a session slot: NULL while active (the default, and the
 * only state the delivery hook pays for: one load), CSI_INACTIVE while
 * inactive with nothing held, else a pointer to the held list, allocated
 * at the first held presence and freed when it is written or the session
 * ends.
 * Threads: the session's home reactor.
 */
#include <errno.h>
#include <string.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"

#define NS_CSI "urn:xmpp:csi:0"

/* Slot value of an inactive session that holds nothing (a pointer from
 * sz_malloc is never 1). */
#define CSI_INACTIVE ((void *)1)

/* Without a configuration (tests of the modules alone): the default of
 * limits.csi_max_held. */
#define CSI_DEFAULT_MAX 256

/* One held presence: a hash of its 'from' and a reference to it. */
struct entry {
    uint64_t key;
    sz_stanza_t *st;
};

/* The held presences of one session, in the order their senders were
 * first held. 8 bytes + 16 per slot of <cap>. */
struct held {
    uint32_t n, cap;
    struct entry e[];
};

static unsigned sslot;
static const sz_conf_t *conf;

/* Writes and forgets everything <s> holds; <s> stays inactive. */
static void flush(sz_session_t *s)
{
    struct held *h = s->slot[sslot];
    if (!h || h == CSI_INACTIVE)
        return;
    /* Detached before writing: a write that ends the stream must not see
     * a half-flushed list. */
    s->slot[sslot] = CSI_INACTIVE;
    for (uint32_t i = 0; i < h->n; i++) {
        sz_router_write(s, h->e[i].st);
        sz_stanza_unref(h->e[i].st);
    }
    sz_free(h);
}

/* Forgets what <s> holds without writing it (the session ends). */
static void drop(sz_session_t *s)
{
    struct held *h = s->slot[sslot];
    s->slot[sslot] = NULL;
    if (!h || h == CSI_INACTIVE)
        return;
    for (uint32_t i = 0; i < h->n; i++)
        sz_stanza_unref(h->e[i].st);
    sz_free(h);
}

/* Presence that only tells availability: no type, or unavailable (RFC
 * 6121 §4.7.1). Subscription stanzas and errors are not updates. */
static bool is_update(const sz_stanza_t *st)
{
    char t[16];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TYPE, t, sizeof(t));
    return n == -ENOENT || (n == 11 && memcmp(t, "unavailable", 11) == 0);
}

static bool same_from(const sz_stanza_t *a, const sz_stanza_t *b)
{
    size_t la, lb;
    const char *fa = sz_stanza_attr_raw(a, SZ_XML_A_FROM, &la, NULL);
    const char *fb = sz_stanza_attr_raw(b, SZ_XML_A_FROM, &lb, NULL);
    return fa && fb && la == lb && memcmp(fa, fb, la) == 0;
}

/* Holds <st> for inactive <s>: replaces the held presence of the same
 * sender, or appends. False when the list is full (the caller flushes and
 * writes <st> at once). <r> is the reactor (NULL in tests without one). */
static bool hold(sz_reactor_t *r, sz_session_t *s, sz_stanza_t *st)
{
    size_t fl;
    const char *from = sz_stanza_attr_raw(st, SZ_XML_A_FROM, &fl, NULL);
    if (!from)
        return false; /* the router always stamps one; nothing to coalesce on */
    uint64_t key = sz_jid_hash_bytes(from, fl);
    struct held *h = s->slot[sslot];
    if (h == CSI_INACTIVE)
        h = NULL;
    for (uint32_t i = 0; h && i < h->n; i++) {
        if (h->e[i].key == key && same_from(h->e[i].st, st)) {
            sz_stanza_unref(h->e[i].st);
            h->e[i].st = sz_stanza_ref(st);
            return true;
        }
    }
    uint32_t max = conf ? SZ_CONF_LIMIT(conf, csi_max_held) : CSI_DEFAULT_MAX;
    if (h && h->n >= max) {
        /* The one enforcement point of limits.csi_max_held. */
        if (r)
            SZ_STAT_ADD(&r->stats, csi_overflow, 1);
        SZ_DEBUG("msg=\"csi: held presences at limits.csi_max_held, flushed\" held=%u", h->n);
        return false;
    }
    if (!h || h->n == h->cap) {
        uint32_t cap = h ? h->cap * 2 : 4;
        if (cap > max)
            cap = max;
        struct held *g = sz_realloc(h, sizeof(*g) + (size_t)cap * sizeof(g->e[0]));
        if (!h)
            g->n = 0;
        g->cap = cap;
        h = g;
        s->slot[sslot] = h;
    }
    h->e[h->n++] = (struct entry){key, sz_stanza_ref(st)};
    return true;
}

/* SZ_HOOK_DELIVER: runs for every stanza written to any session. */
static int on_deliver(sz_hook_ctx_t *ctx)
{
    sz_session_t *s = ctx->sess;
    if (!s->slot[sslot])
        return SZ_PASS; /* active */
    if (ctx->kind == SZ_STANZA_PRESENCE && is_update(ctx->st) && hold(ctx->r, s, ctx->st))
        return SZ_HANDLED;
    /* Urgent, or the list is full: what is held goes first. */
    flush(s);
    return SZ_PASS;
}

/* <inactive/> and <active/> (§3); nothing else is defined in the
 * namespace. Both may be repeated (§3: the client sends its state when it
 * changes; a repeat changes nothing). */
static int on_nonza(sz_hook_ctx_t *ctx)
{
    sz_session_t *s = ctx->from;
    size_t nl;
    const char *name = sz_stanza_name(ctx->st, &nl);
    if (nl == 8 && memcmp(name, "inactive", 8) == 0) {
        if (!s->slot[sslot])
            s->slot[sslot] = CSI_INACTIVE;
        return 0;
    }
    if (nl == 6 && memcmp(name, "active", 6) == 0) {
        flush(s);
        s->slot[sslot] = NULL;
        return 0;
    }
    return SZ_STREAM_UNSUPPORTED_STANZA_TYPE; /* RFC 6120 §4.9.3.24 */
}

static void on_unbound(sz_hook_ctx_t *ctx)
{
    drop(ctx->from);
}

void sz_mod_csi_register(const sz_mod_env_t *env)
{
    conf = env->conf;
    sslot = sz_hooks_sess_slot();
    sz_hooks_add(SZ_HOOK_DELIVER, on_deliver);
    sz_hooks_nonza(NS_CSI, on_nonza);
    sz_hooks_on(SZ_EV_UNBOUND, on_unbound);
    /* §2: offered after authentication. */
    sz_hooks_stream_feature("<csi xmlns='" NS_CSI "'/>", true, NULL);
}
