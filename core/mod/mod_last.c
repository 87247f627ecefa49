/*
 * XEP-0012 Last Activity (jabber:iq:last), answered by the server:
 * - to the server (§5): its uptime in 'seconds', no text;
 * - to an account's bare JID (§3): 0 seconds when the account has an
 *   available resource, else the seconds since its last session ended and
 *   the status text of its last unavailable presence, as recorded at that
 *   logout (storage/last.h); only to the account itself and to contacts
 *   allowed to see its presence (subscription 'from' or 'both' in the
 *   account's roster, RFC 6121 §3), anyone else gets <forbidden/> (§3,
 *   §8). The check reads the roster cache through the account's roster
 *   queue when the account has a roster entry here, else the one item
 *   from storage. An account never logged out since it exists has nothing to tell:
 *   <item-not-found/> (RFC 6120 §8.3.3.7).
 * - to a full JID (§4): the client answers; the router delivers it as any
 *   iq (RFC 6121 §8.5.3.1), or answers for an unknown resource.
 *
 * Recording: the status of the last unavailable presence each user sent
 * waits in a user slot (only while one is set: most users' is empty) with
 * the session that sent it; when the user's last session ends, the time
 * and that status (if that session sent it) are written.
 *
 * Threads: the account's home reactor (roster cache, user slot, storage
 * answers); the uptime is read on any reactor.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/account_iq.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/xml/builder.h"
#include "storage/last.h"

#define NS_LAST   "jabber:iq:last"
#define NS_CLIENT "jabber:client"

/* Status text kept per logout; a longer one is cut on a character
 * boundary (the XEP leaves its length to the server). */
#define STATUS_MAX_BYTES 1024

_Static_assert(STATUS_MAX_BYTES <= SZ_STORE_LAST_STATUS_MAX, "status bound");

static sz_store_t *store;
static unsigned uslot;
static struct timespec started; /* CLOCK_MONOTONIC at registration */

/* The user slot: the status of the last unavailable presence and the
 * session that sent it (still bound). */
struct ustatus {
    sz_session_t *sess;
    char text[];
};

/* ---- answers ------------------------------------------------------------------ */

/* <query xmlns='jabber:iq:last' seconds='<secs>'>status</query>. */
static void answer(sz_reactor_t *r, const sz_stanza_t *st, uint64_t secs, const char *status)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, secs);
    sz_xb_t xb;
    sz_xb_init(&xb, 128 + (status ? strlen(status) : 0));
    sz_xb_start(&xb, "query", NS_LAST);
    sz_xb_attr(&xb, "seconds", buf);
    if (status && *status)
        sz_xb_text(&xb, status, strlen(status));
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0) {
        sz_router_bounce(r, st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    sz_router_iq_result(r, st, xml, len);
    sz_free(xml);
}

static int on_server_last(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    (void)payload;
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST; /* §2: a get */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    answer(ctx->r, ctx->st, (uint64_t)(now.tv_sec - started.tv_sec), NULL); /* §5 */
    return SZ_HANDLED;
}

static void on_read(void *arg, int res, int64_t when, const char *status)
{
    sz_mod_held_t *h = arg;
    if (res == -ENOENT) {
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_ITEM_NOT_FOUND);
        return;
    }
    if (res < 0) {
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    answer(h->r, h->st, now > when ? (uint64_t)(now - when) : 0, status);
    sz_mod_unhold(h);
}

static bool any_available(const sz_user_t *u)
{
    for (const sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available)
            return true;
    return false;
}

/* Authorized: 0 seconds when online (§3), else the stored record. */
static void reply_last(sz_reactor_t *r, sz_stanza_t *st, const sz_user_t *u, const sz_jid_t *owner)
{
    if (any_available(u)) {
        answer(r, st, 0, NULL);
        return;
    }
    sz_hook_ctx_t ctx = {.r = r, .st = st};
    sz_mod_held_t *h = sz_mod_hold(&ctx, 0);
    if (sz_store_last_get(store, owner, on_read, h) < 0)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* A roster job: is the requester allowed to see the owner's presence? */
static bool job_check(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    if (res < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    sz_jid_buf_t jb;
    sz_jid_t *from = sz_mod_sender(job->st, &jb);
    size_t bl;
    const char *b = from ? sz_jid_bare(from, &bl) : NULL;
    if (!b || !(sz_roster_bits(ro, b, bl) & SZ_RC_FROM)) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_FORBIDDEN); /* §3, §8 */
        return true;
    }
    reply_last(job->r, job->st, sz_roster_user(ro), sz_roster_owner(ro));
    return true;
}

/* A permission check by a single roster item read. */
struct itemq {
    sz_mod_held_t *h;
    sz_jid_t *owner;
};

static void itemq_free(struct itemq *iq)
{
    sz_mod_unhold(iq->h);
    sz_jid_free(iq->owner);
    sz_free(iq);
}

static void on_item(void *arg, int res, uint64_t ver, const sz_store_roster_item_t *item)
{
    struct itemq *iq = arg;
    sz_mod_held_t *h = iq->h;
    (void)ver;
    if (res == 0 && (item->sub == SZ_STORE_SUB_FROM || item->sub == SZ_STORE_SUB_BOTH))
        /* The account may have come online meanwhile: look again. */
        reply_last(h->r, h->st, sz_router_user(h->r, iq->owner), iq->owner);
    else if (res == 0 || res == -ENOENT)
        sz_router_bounce(h->r, h->st, SZ_STANZA_ERR_FORBIDDEN); /* §3, §8 */
    else
        sz_router_bounce(h->r, h->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
    itemq_free(iq);
}

static int on_account_last(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    (void)payload;
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    if (!store || !sz_roster_store())
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    if (sz_mod_from_owner(ctx)) {
        /* The account may always see its own presence. */
        reply_last(ctx->r, ctx->st, ctx->user, ctx->to);
        return SZ_HANDLED;
    }
    sz_roster_t *ro = sz_roster_find_owner(ctx->user, ctx->to);
    if (ro) {
        /* The roster queue orders the check after every subscription
         * change already under way for this account. */
        sz_roster_submit(ro, sz_roster_job_new(ctx->r, job_check, ctx->st));
        return SZ_HANDLED;
    }
    /* No roster entry: nothing of this account's roster is in flight
     * here, and storage runs one owner's requests in order, so reading
     * the one item is as current as the cache would be, without loading
     * the whole roster of an offline account for one query. */
    sz_jid_buf_t jb;
    sz_jid_t *from = sz_mod_sender(ctx->st, &jb);
    size_t bl;
    const char *b = from ? sz_jid_bare(from, &bl) : NULL;
    if (!b)
        return -SZ_STANZA_ERR_FORBIDDEN;
    char *contact = sz_strndup(b, bl);
    struct itemq *iq = sz_malloc(sizeof(*iq));
    iq->h = sz_mod_hold(ctx, 0);
    iq->owner = sz_jid_bare_dup(ctx->to);
    int ret = sz_store_roster_get_item(sz_roster_store(), ctx->to, contact, on_item, iq);
    sz_free(contact);
    if (ret < 0) {
        itemq_free(iq);
        return -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
    }
    return SZ_HANDLED;
}

/* ---- recording ---------------------------------------------------------------- */

/* The status text of presence <st>: the <status/> without xml:lang, else
 * the first (RFC 6121 §4.7.2.2); NULL when none. */
static const char *status_of(sz_stanza_t *st, size_t *len)
{
    const sz_xml_node_t *root = sz_stanza_tree(st);
    const sz_xml_node_t *first = root ? sz_xml_child(root, "status", NS_CLIENT) : NULL;
    const sz_xml_node_t *pick = first;
    for (const sz_xml_node_t *s = first; s; s = sz_xml_next(s, "status", NS_CLIENT))
        if (!sz_xml_attr(s, "lang", "http://www.w3.org/XML/1998/namespace", NULL)) {
            pick = s;
            break;
        }
    if (!pick)
        return NULL;
    const char *t = sz_xml_text(pick, len);
    if (*len > STATUS_MAX_BYTES) {
        *len = STATUS_MAX_BYTES;
        while (*len > 0 && ((unsigned char)t[*len] & 0xC0) == 0x80)
            (*len)--; /* not inside a UTF-8 sequence */
    }
    return *len ? t : NULL;
}

static void forget(sz_user_t *u)
{
    sz_free(u->slot[uslot]);
    u->slot[uslot] = NULL;
}

/* PRESENCE_BROADCAST: remembers the status of an unavailable presence,
 * forgets it when that resource is available again. */
static int on_broadcast(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->user;
    struct ustatus *us = u ? u->slot[uslot] : NULL;
    if (!u || !ctx->from)
        return SZ_PASS;
    if (!ctx->type) {
        if (us && us->sess == ctx->from)
            forget(u);
        return SZ_PASS;
    }
    if (strcmp(ctx->type, "unavailable") != 0)
        return SZ_PASS;
    forget(u);
    size_t len = 0;
    const char *t = status_of(ctx->st, &len);
    if (t) {
        us = sz_malloc(sizeof(*us) + len + 1);
        us->sess = ctx->from;
        memcpy(us->text, t, len);
        us->text[len] = '\0';
        u->slot[uslot] = us;
    }
    return SZ_PASS;
}

static void on_last_written(void *arg, int res)
{
    (void)arg;
    if (res < 0 && res != -ENOENT)
        SZ_WARN("msg=\"last activity write failed\" err=%d", res);
    sz_hooks_release();
}

/* SZ_EV_UNBOUND: the session has left ctx->user's list already. */
static void on_unbound(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->user;
    if (!u || !ctx->from)
        return;
    struct ustatus *us = u->slot[uslot];
    bool mine = us && us->sess == ctx->from;
    if (!u->sessions && store) {
        /* The last session ends: that is the logout XEP-0012 §3 counts
         * from. */
        sz_hooks_hold();
        if (sz_store_last_set(store, u->bare, (int64_t)time(NULL), mine ? us->text : NULL,
                              on_last_written, NULL) < 0)
            sz_hooks_release();
    }
    if (mine)
        forget(u);
}

static void on_user_gone(sz_hook_ctx_t *ctx)
{
    if (ctx->user)
        forget(ctx->user);
}

void sz_mod_last_register(const sz_mod_env_t *env)
{
    store = env->store;
    clock_gettime(CLOCK_MONOTONIC, &started);
    uslot = sz_hooks_user_slot();
    sz_hooks_iq("query", NS_LAST, SZ_IQ_SERVER, on_server_last);
    sz_hooks_iq("query", NS_LAST, SZ_IQ_ACCOUNT, on_account_last);
    sz_hooks_add(SZ_HOOK_PRESENCE_BROADCAST, on_broadcast);
    sz_hooks_on(SZ_EV_UNBOUND, on_unbound);
    sz_hooks_on(SZ_EV_USER_GONE, on_user_gone);
    /* XEP-0012 §6: the server (uptime) and the accounts it answers for. */
    sz_hooks_disco_feature(NS_LAST, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, NULL);
}
