/*
 * The roster of each user as the IM modules share it (core/mod/roster.h):
 * a compact cache of the committed subscription state of every contact,
 * the per-user job queue that orders everything touching it, the pushes
 * of changed items (RFC 6121 §2.1.6), and the two flags and pointer a
 * session carries. The feature modules on top are mod_roster.c (the
 * jabber:iq:roster protocol), mod_subscription.c and mod_presence.c.
 *
 * Owns: one entry per user with work or a bound resource (user slot, or a
 * reactor-local list while the user is offline). Names and groups are not
 * cached: a roster get reads storage, and a state change reads the one
 * item it rewrites.
 *
 * Invariants: jobs of one user run one at a time in submission order;
 * the cache changes only when storage reports a commit (pending inbound
 * requests excepted: they are not part of the roster version); a client
 * is answered after its write is committed (DESIGN §5).
 *
 * Threads: the user's home reactor only.
 */
#include "core/mod/roster.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/xml/builder.h"

#define NS_ROSTER "jabber:iq:roster"

/* ---- the cache: one allocation per user ------------------------------------- */

/* One contact: its bare JID at <off> in the string area (NUL-terminated)
 * and its SZ_RC_* bits. 8 bytes. */
struct rc_item {
    uint32_t off;
    uint16_t len;
    uint8_t bits;
    uint8_t _pad;
};

/* Header, then <cap> items, then <scap> bytes of strings (<used> in use).
 * A 20-contact roster of 25-byte JIDs is about 16 + 160 + 520 bytes. */
struct rc {
    uint32_t n, cap, used, scap;
    struct rc_item it[];
};

static char *rc_strs(const struct rc *c)
{
    return (char *)&c->it[c->cap];
}

static struct rc *rc_new(uint32_t cap, uint32_t scap)
{
    struct rc *c = sz_malloc(sizeof(*c) + cap * sizeof(struct rc_item) + scap);
    c->n = 0;
    c->cap = cap;
    c->used = 0;
    c->scap = scap;
    return c;
}

static long rc_find(const struct rc *c, const char *s, size_t len)
{
    if (!c)
        return -1;
    const char *strs = rc_strs(c);
    for (uint32_t i = 0; i < c->n; i++)
        if (c->it[i].len == len && memcmp(strs + c->it[i].off, s, len) == 0)
            return (long)i;
    return -1;
}

/* Appends without checking for room (callers grow first). */
static void rc_push(struct rc *c, const char *s, size_t len, unsigned bits)
{
    char *strs = rc_strs(c);
    memcpy(strs + c->used, s, len);
    strs[c->used + len] = '\0';
    c->it[c->n++] = (struct rc_item){c->used, (uint16_t)len, (uint8_t)bits, 0};
    c->used += (uint32_t)len + 1;
}

/* Sets the bits of <s>: inserts, updates, or removes when <bits> is 0. */
static void rc_set(struct rc **cp, const char *s, size_t len, unsigned bits)
{
    struct rc *c = *cp;
    long i = rc_find(c, s, len);
    if (i >= 0 && bits) {
        c->it[i].bits = (uint8_t)bits;
        return;
    }
    if (i >= 0) {
        /* Remove: close the gap in the strings, then move the last item
         * into the hole (order does not matter). */
        uint32_t off = c->it[i].off, sz = c->it[i].len + 1u;
        char *strs = rc_strs(c);
        memmove(strs + off, strs + off + sz, c->used - off - sz);
        c->used -= sz;
        for (uint32_t k = 0; k < c->n; k++)
            if (c->it[k].off > off)
                c->it[k].off -= sz;
        c->it[i] = c->it[--c->n];
        return;
    }
    if (!bits)
        return;
    if (c->n == c->cap || c->used + len + 1 > c->scap) {
        uint32_t cap = c->n == c->cap ? c->cap * 2 + 4 : c->cap;
        uint32_t scap = c->used + len + 1 > c->scap ? c->scap * 2 + (uint32_t)len + 64 : c->scap;
        struct rc *g = rc_new(cap, scap);
        memcpy(g->it, c->it, c->n * sizeof(struct rc_item));
        memcpy(rc_strs(g), rc_strs(c), c->used);
        g->n = c->n;
        g->used = c->used;
        sz_free(c);
        *cp = c = g;
    }
    rc_push(c, s, len, bits);
}

/* ---- entries ------------------------------------------------------------------- */

enum { RO_EMPTY = 0, RO_LOADING, RO_READY };

struct sz_roster {
    sz_roster_t *dnext;            /* detached list (offline owner) */
    sz_user_t *user;               /* NULL while the owner is offline */
    sz_jid_t *owner;               /* bare */
    struct rc *rc;                 /* NULL until loaded */
    const sz_store_roster_t *snap; /* the just-loaded roster, during the first job only */
    sz_roster_job_t *head, *tail;
    sz_roster_job_t *running; /* job inside its fn */
    uint64_t ver;
    uint8_t state;
    bool busy;    /* a job is under way */
    bool kicking; /* kick() is on the stack */
};

static sz_store_t *store;
static const sz_conf_t *conf;
static unsigned max_items = SZ_ROSTER_MAX_ITEMS_DEFAULT; /* without a configuration (tests) */
static unsigned uslot, sslot;

/* Entries of offline owners with work in flight. Short-lived and few (a
 * subscription request to someone not logged in), so a list. */
static __thread sz_roster_t *detached;
static __thread uint32_t push_seq;

sz_store_t *sz_roster_store(void)
{
    return store;
}

unsigned sz_roster_max_items(void)
{
    /* limits.max_roster_items is reloadable: read at each use. */
    return conf ? SZ_CONF_LIMIT(conf, max_roster_items) : max_items;
}

sz_user_t *sz_roster_user(const sz_roster_t *ro)
{
    return ro->user;
}

const sz_jid_t *sz_roster_owner(const sz_roster_t *ro)
{
    return ro->owner;
}

uint64_t sz_roster_ver(const sz_roster_t *ro)
{
    return ro->ver;
}

size_t sz_roster_mem(const sz_roster_t *ro)
{
    return malloc_usable_size((void *)ro) + malloc_usable_size(ro->owner) +
           (ro->rc ? malloc_usable_size(ro->rc) : 0);
}

bool sz_roster_ready(const sz_roster_t *ro)
{
    return ro->state == RO_READY && !ro->busy && !ro->head;
}

sz_roster_t *sz_roster_find(const sz_user_t *u)
{
    return u ? u->slot[uslot] : NULL;
}

sz_roster_t *sz_roster_find_owner(const sz_user_t *u, const sz_jid_t *owner)
{
    if (u && u->slot[uslot])
        return u->slot[uslot];
    for (sz_roster_t *ro = detached; ro; ro = ro->dnext)
        if (sz_jid_bare_eq(ro->owner, owner))
            return ro;
    return NULL;
}

static void attach(sz_roster_t *ro, sz_user_t *u)
{
    for (sz_roster_t **pp = &detached; *pp; pp = &(*pp)->dnext)
        if (*pp == ro) {
            *pp = ro->dnext;
            break;
        }
    ro->dnext = NULL;
    ro->user = u;
    u->slot[uslot] = ro;
}

sz_roster_t *sz_roster_of(sz_reactor_t *r, sz_user_t *u, const sz_jid_t *owner)
{
    (void)r;
    if (u && u->slot[uslot])
        return u->slot[uslot];
    for (sz_roster_t *ro = detached; ro; ro = ro->dnext)
        if (sz_jid_bare_eq(ro->owner, owner)) {
            if (u)
                attach(ro, u);
            return ro;
        }
    sz_roster_t *ro = sz_calloc(1, sizeof(*ro));
    ro->owner = sz_jid_bare_dup(owner);
    if (u) {
        attach(ro, u);
    } else {
        ro->dnext = detached;
        detached = ro;
    }
    return ro;
}

/* Frees <ro> when its owner is offline and nothing is left to do. */
static void maybe_free(sz_roster_t *ro)
{
    if (ro->user || ro->head || ro->busy || ro->kicking || ro->state == RO_LOADING)
        return;
    for (sz_roster_t **pp = &detached; *pp; pp = &(*pp)->dnext)
        if (*pp == ro) {
            *pp = ro->dnext;
            break;
        }
    sz_free(ro->rc);
    sz_jid_free(ro->owner);
    sz_free(ro);
}

/* ---- jobs ------------------------------------------------------------------------- */

sz_roster_job_t *sz_roster_job_new(sz_reactor_t *r, sz_roster_job_fn fn, sz_stanza_t *st)
{
    sz_roster_job_t *job = sz_calloc(1, sizeof(*job));
    job->fn = fn;
    job->r = r;
    job->st = st ? sz_stanza_ref(st) : NULL;
    sz_hooks_hold();
    return job;
}

static void job_free(sz_roster_job_t *job)
{
    sz_stanza_unref(job->st);
    sz_free(job->data);
    sz_free(job);
    sz_hooks_release();
}

static void load(sz_roster_t *ro);

/* Runs queued jobs while the cache is loaded and no job is under way.
 * <snap> is the roster just loaded, offered to the first job only. */
static void kick_with(sz_roster_t *ro, const sz_store_roster_t *snap)
{
    if (ro->kicking)
        return;
    ro->kicking = true;
    while (ro->head && !ro->busy) {
        if (ro->state == RO_EMPTY) {
            load(ro); /* may complete at once off a reactor (tests) */
            continue;
        }
        if (ro->state == RO_LOADING)
            break;
        sz_roster_job_t *job = ro->head;
        ro->head = job->next;
        if (!ro->head)
            ro->tail = NULL;
        ro->busy = true;
        ro->running = job;
        ro->snap = snap;
        snap = NULL;
        bool done = job->fn(ro, job, 0);
        ro->running = NULL;
        ro->snap = NULL;
        if (done || job->finished) {
            job_free(job);
            ro->busy = false;
        }
    }
    ro->kicking = false;
    maybe_free(ro); /* <ro> may be gone from here */
}

static void kick(sz_roster_t *ro)
{
    kick_with(ro, NULL);
}

void sz_roster_submit(sz_roster_t *ro, sz_roster_job_t *job)
{
    job->next = NULL;
    if (ro->tail)
        ro->tail->next = job;
    else
        ro->head = job;
    ro->tail = job;
    kick(ro);
}

void sz_roster_job_done(sz_roster_t *ro, sz_roster_job_t *job)
{
    if (ro->running == job) {
        job->finished = true; /* called back before its fn returned */
        return;
    }
    job_free(job);
    ro->busy = false;
    kick(ro);
}

/* ---- loading ------------------------------------------------------------------------ */

static unsigned item_bits(const sz_store_roster_item_t *it)
{
    unsigned b = SZ_RC_ITEM;
    if (it->sub == SZ_STORE_SUB_TO || it->sub == SZ_STORE_SUB_BOTH)
        b |= SZ_RC_TO;
    if (it->sub == SZ_STORE_SUB_FROM || it->sub == SZ_STORE_SUB_BOTH)
        b |= SZ_RC_FROM;
    if (it->ask)
        b |= SZ_RC_ASK;
    if (it->approved)
        b |= SZ_RC_APPROVED;
    return b;
}

static void on_loaded(void *arg, int res, const sz_store_roster_t *roster,
                      const sz_store_pendings_t *p)
{
    sz_roster_t *ro = arg;
    if (res < 0) {
        SZ_WARN("msg=\"roster load failed\" err=%d", res);
        ro->state = RO_EMPTY;
        /* The queued jobs cannot run: each answers an error and goes. */
        sz_roster_job_t *job;
        while ((job = ro->head)) {
            ro->head = job->next;
            if (!ro->head)
                ro->tail = NULL;
            job->fn(ro, job, res);
            job_free(job);
        }
        if (!ro->kicking)
            maybe_free(ro);
        return;
    }
    /* Exact size: an idle user's cache carries no slack. */
    size_t bytes = 0, n = roster->n;
    for (size_t i = 0; i < roster->n; i++)
        bytes += strlen(roster->items[i].jid) + 1;
    for (size_t i = 0; i < p->n; i++)
        bytes += strlen(p->items[i].from) + 1, n++;
    struct rc *c = rc_new((uint32_t)n, (uint32_t)bytes);
    for (size_t i = 0; i < roster->n; i++) {
        size_t len = strlen(roster->items[i].jid);
        if (len <= UINT16_MAX)
            rc_push(c, roster->items[i].jid, len, item_bits(&roster->items[i]));
    }
    for (size_t i = 0; i < p->n; i++) {
        size_t len = strlen(p->items[i].from);
        long k = rc_find(c, p->items[i].from, len);
        if (k >= 0)
            c->it[k].bits |= SZ_RC_PEND_IN;
        else if (len <= UINT16_MAX)
            rc_push(c, p->items[i].from, len, SZ_RC_PEND_IN);
    }
    sz_free(ro->rc);
    ro->rc = c;
    ro->ver = roster->ver;
    ro->state = RO_READY;
    /* A roster get next in line answers from what was just read. */
    kick_with(ro, roster);
}

static void load(sz_roster_t *ro)
{
    ro->state = RO_LOADING;
    int ret = store ? sz_store_roster_login(store, ro->owner, on_loaded, ro) : -ENOSYS;
    if (ret < 0)
        on_loaded(ro, ret, NULL, NULL);
}

/* ---- cache access ---------------------------------------------------------------------- */

unsigned sz_roster_bits(const sz_roster_t *ro, const char *jid, size_t len)
{
    long i = ro->rc ? rc_find(ro->rc, jid, len) : -1;
    return i >= 0 ? ro->rc->it[i].bits : 0;
}

size_t sz_roster_count(const sz_roster_t *ro)
{
    return ro->rc ? ro->rc->n : 0;
}

const char *sz_roster_at(const sz_roster_t *ro, size_t i, size_t *len, unsigned *bits)
{
    const struct rc_item *it = &ro->rc->it[i];
    *len = it->len;
    *bits = it->bits;
    return rc_strs(ro->rc) + it->off;
}

static void cache_set(sz_roster_t *ro, const char *jid, size_t len, unsigned bits)
{
    if (!ro->rc)
        ro->rc = rc_new(4, 128);
    if (len <= UINT16_MAX)
        rc_set(&ro->rc, jid, len, bits);
}

/* ---- sessions --------------------------------------------------------------------------- */

/* The session slot holds mod_presence's pointer (8-byte aligned) with
 * the SZ_RS_* flags in its low bits: an idle session costs no
 * allocation. */
#define SFLAG_MASK ((uintptr_t)0x7)

unsigned sz_roster_sflags(const sz_session_t *s)
{
    return (unsigned)((uintptr_t)s->slot[sslot] & SFLAG_MASK);
}

void sz_roster_sflags_set(sz_session_t *s, unsigned set, unsigned clear)
{
    uintptr_t v = (uintptr_t)s->slot[sslot];
    v = (v & ~(uintptr_t)clear) | set;
    s->slot[sslot] = (void *)v;
}

void *sz_roster_sdata(const sz_session_t *s)
{
    return (void *)((uintptr_t)s->slot[sslot] & ~SFLAG_MASK);
}

void sz_roster_sdata_set(sz_session_t *s, void *p)
{
    SZ_ASSERT(((uintptr_t)p & SFLAG_MASK) == 0);
    s->slot[sslot] = (void *)((uintptr_t)p | ((uintptr_t)s->slot[sslot] & SFLAG_MASK));
}

sz_session_t *sz_roster_session_of(const sz_user_t *u, const sz_stanza_t *st)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_buf_t jb;
    sz_jid_t *from = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    if (!u || n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &from, NULL) < 0)
        return NULL;
    for (sz_session_t *s = u->sessions; s; s = s->next)
        if (sz_jid_full_eq(s->jid, from))
            return s;
    return NULL;
}

/* ---- stanzas ------------------------------------------------------------------------------ */

void sz_roster_deliver_available(sz_user_t *u, sz_stanza_t *st)
{
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available)
            sz_router_deliver(s, st);
}

void sz_roster_send(sz_reactor_t *r, const char *type, const char *from, size_t flen,
                    const char *to, size_t tlen)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 64 + flen + tlen);
    sz_xb_start(&xb, "presence", NULL);
    sz_xb_attr(&xb, "type", type);
    sz_xb_attr_n(&xb, "from", from, flen);
    sz_xb_attr_n(&xb, "to", to, tlen);
    sz_xb_end(&xb);
    sz_stanza_t *st = sz_stanza_from_xb(&xb);
    if (st)
        sz_router_route(r, st);
}

sz_jid_t *sz_roster_jid(const char *b, size_t len, sz_jid_buf_t *jb)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse_into(b, len, jb, sizeof(*jb), &j, NULL) < 0)
        return NULL;
    return j;
}

static const char *const sub_names[] = {"none", "to", "from", "both"};

enum sz_store_sub sz_roster_sub(unsigned bits)
{
    return (enum sz_store_sub)((bits & SZ_RC_TO ? 1 : 0) | (bits & SZ_RC_FROM ? 2 : 0));
}

/* One <item/> (RFC 6121 §2.1.2) into <xb>. <it> NULL: a removal. */
void sz_roster_xb_item(struct sz_xb *xb, const char *jid, const sz_store_roster_item_t *it)
{
    sz_xb_start(xb, "item", NULL);
    sz_xb_attr(xb, "jid", jid);
    if (!it) {
        sz_xb_attr(xb, "subscription", "remove");
        sz_xb_end(xb);
        return;
    }
    if (it->name)
        sz_xb_attr(xb, "name", it->name);
    sz_xb_attr(xb, "subscription", sub_names[it->sub & 3]);
    if (it->ask)
        sz_xb_attr(xb, "ask", "subscribe");
    if (it->approved)
        sz_xb_attr(xb, "approved", "true");
    for (size_t g = 0; g < it->ngroups; g++)
        sz_xb_leaf(xb, "group", NULL, it->groups[g], strlen(it->groups[g]));
    sz_xb_end(xb);
}

/* The serialized <item/> of <it>, or of a removal; caller frees. */
char *sz_roster_item_xml(const char *jid, const sz_store_roster_item_t *it, size_t *len)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 256);
    sz_roster_xb_item(&xb, jid, it);
    char *xml;
    if (sz_xb_finish(&xb, &xml, len) < 0)
        return NULL;
    return xml;
}

/* RFC 6121 §2.1.6: a push of <item>/<len> (serialized) to every
 * interested resource, with the roster version for those that use
 * versioning (§2.6.3). */
void sz_roster_push(sz_roster_t *ro, const char *item, size_t len)
{
    char ver[24], id[24];
    if (!item)
        return;
    snprintf(ver, sizeof(ver), "%" PRIu64, ro->ver);
    for (sz_session_t *s = ro->user ? ro->user->sessions : NULL; s; s = s->next) {
        unsigned f = sz_roster_sflags(s);
        if (!(f & SZ_RS_INTERESTED))
            continue;
        size_t fl;
        const char *full = sz_jid_full(s->jid, &fl);
        snprintf(id, sizeof(id), "push%" PRIu32, ++push_seq);
        sz_xb_t xb;
        sz_xb_init(&xb, 128 + fl + len);
        sz_xb_start(&xb, "iq", NULL);
        sz_xb_attr(&xb, "type", "set");
        sz_xb_attr(&xb, "id", id);
        sz_xb_attr_n(&xb, "to", full, fl);
        sz_xb_start(&xb, "query", NS_ROSTER);
        if (f & SZ_RS_VER)
            sz_xb_attr(&xb, "ver", ver);
        sz_xb_raw(&xb, item, len);
        sz_xb_end(&xb);
        sz_xb_end(&xb);
        sz_stanza_t *st = sz_stanza_from_xb(&xb);
        if (st) {
            sz_router_deliver(s, st);
            sz_stanza_unref(st);
        }
    }
}

/* ---- writes ------------------------------------------------------------------------------- */

/* One sz_roster_update in flight. */
struct upd {
    sz_roster_t *ro;
    sz_roster_job_t *job;
    sz_roster_upd_fn cb;
    char *item; /* serialized item of the push */
    size_t item_len;
    unsigned bits;
    uint16_t len;
    char jid[];
};

static void upd_end(struct upd *u, int res)
{
    u->cb(u->ro, u->job, res);
    sz_free(u->item);
    sz_free(u);
}

static void on_upd_written(void *arg, int res, uint64_t ver)
{
    struct upd *u = arg;
    sz_roster_t *ro = u->ro;
    if (res == 0) {
        ro->ver = ver;
        unsigned keep = sz_roster_bits(ro, u->jid, u->len) & SZ_RC_PEND_IN;
        cache_set(ro, u->jid, u->len, (u->bits & SZ_RC_ITEM ? u->bits : 0) | keep);
        sz_roster_push(ro, u->item, u->item_len);
    }
    upd_end(u, res);
}

/* Writes <u->bits> over the stored item <old> (NULL: a new item). */
static void upd_put(struct upd *u, const sz_store_roster_item_t *old)
{
    sz_roster_t *ro = u->ro;
    sz_store_roster_item_t it = {.jid = u->jid};
    if (old) {
        it.name = old->name;
        it.ngroups = old->ngroups;
        it.groups = old->groups;
    }
    it.sub = sz_roster_sub(u->bits);
    it.ask = (u->bits & SZ_RC_ASK) != 0;
    it.approved = (u->bits & SZ_RC_APPROVED) != 0;
    u->item = sz_roster_item_xml(u->jid, &it, &u->item_len);
    int ret = sz_store_roster_put(store, ro->owner, &it, old ? 0 : sz_roster_max_items(),
                                  on_upd_written, u);
    if (ret < 0)
        upd_end(u, ret);
}

static void on_upd_read(void *arg, int res, uint64_t ver, const sz_store_roster_item_t *item)
{
    struct upd *u = arg;
    (void)ver;
    if (res == 0)
        upd_put(u, item);
    else if (res == -ENOENT)
        upd_put(u, NULL); /* gone meanwhile (another node?): write it anew */
    else
        upd_end(u, res);
}

int sz_roster_update(sz_roster_t *ro, sz_roster_job_t *job, const char *jid, size_t len,
                     unsigned bits, sz_roster_upd_fn cb)
{
    unsigned old = sz_roster_bits(ro, jid, len);
    bits &= SZ_RC_ITEM_BITS;
    if ((old & SZ_RC_ITEM_BITS) == bits)
        return 0;
    if (!store || len > UINT16_MAX)
        return -EINVAL;
    struct upd *u = sz_calloc(1, sizeof(*u) + len + 1);
    u->ro = ro;
    u->job = job;
    u->cb = cb;
    u->bits = bits;
    u->len = (uint16_t)len;
    memcpy(u->jid, jid, len);
    int ret;
    if (!(bits & SZ_RC_ITEM)) {
        u->item = sz_roster_item_xml(u->jid, NULL, &u->item_len);
        ret = sz_store_roster_remove(store, ro->owner, u->jid, on_upd_written, u);
    } else if (old & SZ_RC_ITEM) {
        /* put replaces the whole item: read its name and groups first.
         * The queue is held, so nothing else writes in between. */
        ret = sz_store_roster_get_item(store, ro->owner, u->jid, on_upd_read, u);
    } else {
        upd_put(u, NULL);
        return 1;
    }
    if (ret < 0) {
        sz_free(u->item);
        sz_free(u);
        return ret;
    }
    return 1;
}

static void on_pending_written(void *arg, int res)
{
    (void)arg;
    if (res < 0 && res != -ENOENT)
        SZ_WARN("msg=\"pending subscription write failed\" err=%d", res);
    sz_hooks_release();
}

void sz_roster_pending_set(sz_roster_t *ro, const char *jid, size_t len, const sz_stanza_t *st)
{
    unsigned b = sz_roster_bits(ro, jid, len);
    cache_set(ro, jid, len, b | SZ_RC_PEND_IN);
    char *c = sz_strndup(jid, len);
    size_t sl;
    const char *raw = sz_stanza_raw(st, &sl);
    sz_hooks_hold();
    if (!store || sz_store_pending_add(store, ro->owner, c, raw, sl, on_pending_written, NULL) < 0)
        sz_hooks_release();
    sz_free(c);
}

void sz_roster_pending_clear(sz_roster_t *ro, const char *jid, size_t len)
{
    unsigned b = sz_roster_bits(ro, jid, len);
    if (!(b & SZ_RC_PEND_IN))
        return;
    cache_set(ro, jid, len, b & ~SZ_RC_PEND_IN);
    char *c = sz_strndup(jid, len);
    sz_hooks_hold();
    if (!store || sz_store_pending_remove(store, ro->owner, c, on_pending_written, NULL) < 0)
        sz_hooks_release();
    sz_free(c);
}

/* ---- events ------------------------------------------------------------------------------- */

static void on_bound(sz_hook_ctx_t *ctx)
{
    /* Work queued while the user was offline continues on the entry. */
    sz_user_t *u = ctx->from ? ctx->from->user : ctx->user;
    if (!u || u->slot[uslot])
        return;
    for (sz_roster_t *ro = detached; ro; ro = ro->dnext)
        if (sz_jid_bare_eq(ro->owner, u->bare)) {
            attach(ro, u);
            return;
        }
}

static void on_user_gone(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->user;
    sz_roster_t *ro = u ? u->slot[uslot] : NULL;
    if (!ro)
        return;
    u->slot[uslot] = NULL;
    ro->user = NULL;
    ro->dnext = detached;
    detached = ro;
    maybe_free(ro);
}

const sz_store_roster_t *sz_roster_snapshot(const sz_roster_t *ro)
{
    return ro->snap;
}

void sz_roster_commit(sz_roster_t *ro, const char *jid, size_t len, unsigned bits, uint64_t ver)
{
    ro->ver = ver;
    cache_set(ro, jid, len, bits);
}

void sz_roster_setup(const sz_mod_env_t *env)
{
    store = env->store;
    conf = env->conf;
    uslot = sz_hooks_user_slot();
    sslot = sz_hooks_sess_slot();
    sz_hooks_on(SZ_EV_BOUND, on_bound);
    sz_hooks_on(SZ_EV_USER_GONE, on_user_gone);
}

void sz_mod_roster_set_max_items(unsigned n)
{
    max_items = n;
}
