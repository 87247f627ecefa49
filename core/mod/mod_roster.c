/*
 * Rosters (RFC 6121 §2) with versioning (RFC 6121 §2.6, XEP-0237), and the
 * roster cache and job queue the presence modules share (core/mod/roster.h).
 *
 * Owns: one entry per user with work or a bound resource (user slot, or a
 * reactor-local list while the user is offline), a compact cache of the
 * committed subscription state of every contact, and two flags per
 * session. Names and groups are not cached: a roster get reads storage
 * (XEP-0237 lets a client that is up to date skip even that), and a state
 * change reads the one item it rewrites.
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

/* Limits of one item in a roster set (RFC 6121 §2.3.3: "a server-
 * configured limit" for names and groups; not-acceptable past them). */
#define NAME_MAX_BYTES   1024
#define GROUP_MAX_BYTES  1024
#define GROUPS_MAX       64

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
    sz_roster_t *dnext;             /* detached list (offline owner) */
    sz_user_t *user;                /* NULL while the owner is offline */
    sz_jid_t *owner;                /* bare */
    struct rc *rc;                  /* NULL until loaded */
    const sz_store_roster_t *snap;  /* the just-loaded roster, during the first job only */
    sz_roster_job_t *head, *tail;
    sz_roster_job_t *running;       /* job inside its fn */
    uint64_t ver;
    uint8_t state;
    bool busy;                      /* a job is under way */
    bool kicking;                   /* kick() is on the stack */
};

static sz_store_t *store;
static unsigned max_items = SZ_ROSTER_MAX_ITEMS_DEFAULT;
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
    return max_items;
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
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0)
        return;
    sz_stanza_t *st = sz_stanza_from_xml(xml, len);
    sz_free(xml);
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

static enum sz_store_sub sub_of(unsigned bits)
{
    return (enum sz_store_sub)((bits & SZ_RC_TO ? 1 : 0) | (bits & SZ_RC_FROM ? 2 : 0));
}

/* One <item/> (RFC 6121 §2.1.2) into <xb>. <it> NULL: a removal. */
static void xb_item(sz_xb_t *xb, const char *jid, const sz_store_roster_item_t *it)
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
static char *item_xml(const char *jid, const sz_store_roster_item_t *it, size_t *len)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 256);
    xb_item(&xb, jid, it);
    char *xml;
    if (sz_xb_finish(&xb, &xml, len) < 0)
        return NULL;
    return xml;
}

/* RFC 6121 §2.1.6: a push of <item>/<len> (serialized) to every
 * interested resource, with the roster version for those that use
 * versioning (§2.6.3). */
static void push(sz_roster_t *ro, const char *item, size_t len)
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
        char *xml;
        size_t xl;
        if (sz_xb_finish(&xb, &xml, &xl) < 0)
            continue;
        sz_stanza_t *st = sz_stanza_from_xml(xml, xl);
        sz_free(xml);
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
    char *item;      /* serialized item of the push */
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
        push(ro, u->item, u->item_len);
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
    it.sub = sub_of(u->bits);
    it.ask = (u->bits & SZ_RC_ASK) != 0;
    it.approved = (u->bits & SZ_RC_APPROVED) != 0;
    u->item = item_xml(u->jid, &it, &u->item_len);
    int ret = sz_store_roster_put(store, ro->owner, &it, old ? 0 : max_items, on_upd_written, u);
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
        u->item = item_xml(u->jid, NULL, &u->item_len);
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
        xb_item(&xb, roster->items[i].jid, &roster->items[i]);
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
    sz_session_t *s = sz_roster_session_of(ro->user, job->st);
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
    if (query_ver(job->st, ro->ver, &has_ver)) {
        /* RFC 6121 §2.6.3: the client's copy is current: an empty result,
         * and pushes from here on. */
        sz_router_iq_result(job->r, job->st, NULL, 0);
        sz_session_t *s = sz_roster_session_of(ro->user, job->st);
        if (s)
            sz_roster_sflags_set(s, SZ_RS_INTERESTED | SZ_RS_VER, 0);
        return true;
    }
    if (ro->snap) {
        answer_roster(ro, job, ro->snap);
        return true;
    }
    job->data = ro; /* borrowed: not freed with the job (cleared before) */
    if (sz_store_roster_get(store, ro->owner, on_roster_read, job) < 0) {
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
        sz_router_bounce(job->r, job->st, res == -ENOENT && job->aux
                                              ? SZ_STANZA_ERR_ITEM_NOT_FOUND
                                              : SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    /* §2.3.2: the result to the sender, then the push to every
     * interested resource (the sender included). */
    sz_router_iq_result(job->r, job->st, NULL, 0);
    push(ro, item, item_len);
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
        ro->ver = ver;
        cache_set(ro, w->jid, w->len, w->bits | (w->old & SZ_RC_PEND_IN));
    }
    on_set_written(ro, job, res, w->item, w->item_len);
    if (res == 0 && !w->bits) {
        /* §2.5.2: a removed contact loses the subscriptions both ways. */
        size_t ol;
        const char *o = sz_jid_bare(ro->owner, &ol);
        if (w->old & (SZ_RC_TO | SZ_RC_ASK))
            sz_roster_send(job->r, "unsubscribe", o, ol, w->jid, w->len);
        if (w->old & SZ_RC_FROM) {
            sz_roster_send(job->r, "unsubscribed", o, ol, w->jid, w->len);
            sz_presence_send_unavailable(job->r, ro->user, w->jid, w->len);
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
    if (!q || check_set(q, ro->owner, &si) < 0) {
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
        w->item = item_xml(w->jid, NULL, &w->item_len);
        ret = sz_store_roster_remove(store, ro->owner, w->jid, on_set_done, w);
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
            .sub = sub_of(w->bits),
            .ask = (w->bits & SZ_RC_ASK) != 0,
            .approved = (w->bits & SZ_RC_APPROVED) != 0,
            .ngroups = ng,
            .groups = ng ? groups : NULL,
        };
        w->item = item_xml(w->jid, &it, &w->item_len);
        ret = sz_store_roster_put(store, ro->owner, &it, max_items, on_set_done, w);
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
    if (!store)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    sz_roster_t *ro = sz_roster_of(ctx->r, s->user, s->user->bare);
    sz_roster_submit(ro, sz_roster_job_new(ctx->r, set ? job_set : job_get, ctx->st));
    return SZ_HANDLED;
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

void sz_mod_roster_register(const sz_mod_env_t *env)
{
    store = env->store;
    /* limits.max_roster_items is not a configuration key yet: the
     * default applies until core/conf.c reads it. */
    max_items = SZ_ROSTER_MAX_ITEMS_DEFAULT;
    uslot = sz_hooks_user_slot();
    sslot = sz_hooks_sess_slot();
    sz_hooks_iq("query", NS_ROSTER, SZ_IQ_ACCOUNT, on_roster_iq);
    /* RFC 6121 §2.6.1 / XEP-0237: roster versioning is offered. */
    sz_hooks_stream_feature("<ver xmlns='urn:xmpp:features:rosterver'/>", true, NULL);
    sz_hooks_on(SZ_EV_BOUND, on_bound);
    sz_hooks_on(SZ_EV_USER_GONE, on_user_gone);
}

void sz_mod_roster_set_max_items(unsigned n)
{
    max_items = n;
}
