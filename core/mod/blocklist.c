/*
 * The blocklist of each user (core/mod/blocklist.h): the cache of blocked
 * JIDs with their parts pre-split for the XEP-0016 §2.1 match, the load
 * from storage (started when a resource binds), the job queue that waits
 * for it, and the resources that get the pushes.
 *
 * Owns: one entry per online user (user slot), plus short-lived entries of
 * offline owners with work queued (a reactor-local list).
 *
 * Invariants: jobs of one user run one at a time in submission order; the
 * cache changes only after storage reports a commit.
 *
 * Threads: the user's home reactor only.
 */
#include "core/mod/blocklist.h"

#include "core/durable.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/xml/builder.h"

/* One blocked JID: the normalized string and the lengths of its parts
 * (0: absent). The domain starts after "local@" when there is a local. */
struct bl_item {
    char *jid;
    uint16_t len, llen, dlen, rlen;
};

enum { BL_EMPTY = 0, BL_LOADING, BL_READY };

/* One user's entry. 96 bytes on LP64. */
struct sz_blocklist {
    sz_blocklist_t *dnext; /* detached list (offline owner) */
    sz_user_t *user;       /* NULL while the owner is offline */
    sz_jid_t *owner;       /* bare */
    struct bl_item *items;
    uint32_t n, cap;
    sz_session_t **interested; /* resources that asked for the list */
    uint32_t ni, icap;
    sz_blocklist_job_t *head, *tail;
    sz_blocklist_job_t *running;
    uint8_t state;
    bool busy;
    bool kicking;
};

/* What every online user carries, besides its owner JID and its items:
 * keep it small (DESIGN §1). */
_Static_assert(sizeof(struct sz_blocklist) <= 96, "sz_blocklist grew: check the per-user budget");

static sz_store_t *store;
static const sz_conf_t *conf;
static unsigned max_items = SZ_BLOCKLIST_MAX_ITEMS_DEFAULT;
static unsigned uslot;

static __thread sz_blocklist_t *detached;
static __thread uint32_t push_seq;

sz_store_t *sz_blocklist_store(void)
{
    return store;
}

unsigned sz_blocklist_max_items(void)
{
    /* limits.max_blocklist_items is reloadable: read at each use. */
    return conf ? SZ_CONF_LIMIT(conf, max_blocklist_items) : max_items;
}

void sz_mod_blocking_set_max_items(unsigned n)
{
    max_items = n;
}

sz_user_t *sz_blocklist_user(const sz_blocklist_t *bl)
{
    return bl->user;
}

const sz_jid_t *sz_blocklist_owner(const sz_blocklist_t *bl)
{
    return bl->owner;
}

bool sz_blocklist_ready(const sz_blocklist_t *bl)
{
    return bl->state == BL_READY && !bl->busy && !bl->head;
}

/* ---- entries -------------------------------------------------------------------- */

static void unlink_detached(sz_blocklist_t *bl)
{
    for (sz_blocklist_t **pp = &detached; *pp; pp = &(*pp)->dnext)
        if (*pp == bl) {
            *pp = bl->dnext;
            break;
        }
    bl->dnext = NULL;
}

static void attach(sz_blocklist_t *bl, sz_user_t *u)
{
    unlink_detached(bl);
    bl->user = u;
    u->slot[uslot] = bl;
}

sz_blocklist_t *sz_blocklist_find(const sz_user_t *u, const sz_jid_t *owner)
{
    if (u && u->slot[uslot])
        return u->slot[uslot];
    for (sz_blocklist_t *bl = detached; bl; bl = bl->dnext)
        if (sz_jid_bare_eq(bl->owner, owner))
            return bl;
    return NULL;
}

sz_blocklist_t *sz_blocklist_of(sz_user_t *u, const sz_jid_t *owner)
{
    sz_blocklist_t *bl = sz_blocklist_find(u, owner);
    if (bl) {
        if (u && !bl->user)
            attach(bl, u);
        return bl;
    }
    bl = sz_calloc(1, sizeof(*bl));
    bl->owner = sz_jid_bare_dup(owner);
    if (u) {
        attach(bl, u);
    } else {
        bl->dnext = detached;
        detached = bl;
    }
    return bl;
}

static void items_free(sz_blocklist_t *bl)
{
    for (uint32_t i = 0; i < bl->n; i++)
        sz_free(bl->items[i].jid);
    bl->n = 0;
}

/* Frees <bl> when its owner is offline and nothing is left to do. */
static void maybe_free(sz_blocklist_t *bl)
{
    if (bl->user || bl->head || bl->busy || bl->kicking || bl->state == BL_LOADING)
        return;
    unlink_detached(bl);
    items_free(bl);
    sz_free(bl->items);
    sz_free(bl->interested);
    sz_jid_free(bl->owner);
    sz_free(bl);
}

/* ---- jobs ------------------------------------------------------------------------ */

sz_blocklist_job_t *sz_blocklist_job_new(sz_reactor_t *r, sz_blocklist_job_fn fn,
                                         sz_stanza_t *st)
{
    sz_blocklist_job_t *job = sz_calloc(1, sizeof(*job));
    job->fn = fn;
    job->r = r;
    job->st = st ? sz_stanza_ref(st) : NULL;
    /* A held stanza may become an offline-storage write when it goes on:
     * acks wait for the hold as for a write (core/durable.h). */
    if (job->st)
        sz_durable_begin(r, &job->dur);
    sz_hooks_hold();
    return job;
}

static void job_free(sz_blocklist_job_t *job)
{
    if (job->st)
        sz_durable_end(job->r, &job->dur);
    sz_stanza_unref(job->st);
    sz_free(job->data);
    sz_free(job);
    sz_hooks_release();
}

static void load(sz_blocklist_t *bl);

/* Runs <job>'s step; a write it begins takes the hold's place among the
 * writes acks wait for (core/durable.h). */
static bool run(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res)
{
    if (!job->st)
        return job->fn(bl, job, res);
    sz_durable_inherit(&job->dur);
    bool done = job->fn(bl, job, res);
    sz_durable_inherit(NULL);
    return done;
}

static void kick(sz_blocklist_t *bl)
{
    if (bl->kicking)
        return;
    bl->kicking = true;
    while (bl->head && !bl->busy) {
        if (bl->state == BL_EMPTY) {
            load(bl); /* may complete at once off a reactor (tests) */
            continue;
        }
        if (bl->state == BL_LOADING)
            break;
        sz_blocklist_job_t *job = bl->head;
        bl->head = job->next;
        if (!bl->head)
            bl->tail = NULL;
        bl->busy = true;
        bl->running = job;
        bool done = run(bl, job, 0);
        bl->running = NULL;
        if (done || job->finished) {
            job_free(job);
            bl->busy = false;
        }
    }
    bl->kicking = false;
    maybe_free(bl); /* <bl> may be gone from here */
}

void sz_blocklist_submit(sz_blocklist_t *bl, sz_blocklist_job_t *job)
{
    job->next = NULL;
    if (bl->tail)
        bl->tail->next = job;
    else
        bl->head = job;
    bl->tail = job;
    kick(bl);
}

void sz_blocklist_job_done(sz_blocklist_t *bl, sz_blocklist_job_t *job)
{
    if (bl->running == job) {
        job->finished = true; /* called back before its fn returned */
        return;
    }
    job_free(job);
    bl->busy = false;
    kick(bl);
}

/* ---- the cache ------------------------------------------------------------------- */

static bool part_eq(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static bool item_parse(struct bl_item *it, const char *jid, size_t len);

void sz_blocklist_add(sz_blocklist_t *bl, const char *jid, size_t len)
{
    struct bl_item it;
    if (sz_blocklist_has(bl, jid, len) || !item_parse(&it, jid, len))
        return;
    if (bl->n == bl->cap) {
        bl->cap = bl->cap ? bl->cap * 2 : 4;
        bl->items = sz_realloc(bl->items, bl->cap * sizeof(*bl->items));
    }
    it.jid = sz_strndup(jid, len);
    bl->items[bl->n++] = it;
}

void sz_blocklist_del(sz_blocklist_t *bl, const char *jid, size_t len)
{
    for (uint32_t i = 0; i < bl->n; i++)
        if (bl->items[i].len == len && memcmp(bl->items[i].jid, jid, len) == 0) {
            sz_free(bl->items[i].jid);
            bl->items[i] = bl->items[--bl->n];
            return;
        }
}

void sz_blocklist_clear(sz_blocklist_t *bl)
{
    items_free(bl);
}

size_t sz_blocklist_count(const sz_blocklist_t *bl)
{
    return bl->n;
}

const char *sz_blocklist_at(const sz_blocklist_t *bl, size_t i, size_t *len)
{
    *len = bl->items[i].len;
    return bl->items[i].jid;
}

bool sz_blocklist_has(const sz_blocklist_t *bl, const char *jid, size_t len)
{
    for (uint32_t i = 0; i < bl->n; i++)
        if (bl->items[i].len == len && memcmp(bl->items[i].jid, jid, len) == 0)
            return true;
    return false;
}

/* Whether item <it> matches the JID of parts <l>, <d>, <res>. */
static bool item_match(const struct bl_item *it, const char *l, size_t ll, const char *d, size_t dl,
                       const char *res, size_t rl)
{
    const char *id = it->jid + (it->llen ? it->llen + 1u : 0u);
    const char *ir = id + it->dlen + 1;
    if (!part_eq(id, it->dlen, d, dl))
        return false;
    if (it->llen && !part_eq(it->jid, it->llen, l, ll))
        return false; /* user@domain[/resource]: that user only */
    if (it->rlen && !part_eq(ir, it->rlen, res, rl))
        return false; /* .../resource: that resource only */
    return true;
}

/* The parts of <it>, a normalized JID; false when it is none. */
static bool item_parse(struct bl_item *it, const char *jid, size_t len)
{
    sz_jid_buf_t jb;
    sz_jid_t *j = NULL;
    if (len > UINT16_MAX || sz_jid_parse_into(jid, len, &jb, sizeof(jb), &j, NULL) < 0)
        return false;
    size_t ll = 0, dl = 0, rl = 0;
    if (sz_jid_has_local(j))
        (void)sz_jid_local(j, &ll);
    (void)sz_jid_domain(j, &dl);
    if (!sz_jid_is_bare(j))
        (void)sz_jid_resource(j, &rl);
    *it = (struct bl_item){(char *)jid, (uint16_t)len, (uint16_t)ll, (uint16_t)dl, (uint16_t)rl};
    return true;
}

bool sz_blocklist_item_match(const char *item, size_t len, const sz_jid_t *j)
{
    struct bl_item it;
    if (!item_parse(&it, item, len))
        return false;
    size_t ll = 0, dl, rl = 0;
    const char *l = sz_jid_has_local(j) ? sz_jid_local(j, &ll) : "";
    const char *d = sz_jid_domain(j, &dl);
    const char *res = sz_jid_is_bare(j) ? "" : sz_jid_resource(j, &rl);
    return item_match(&it, l, ll, d, dl, res, rl);
}

bool sz_blocklist_match(const sz_blocklist_t *bl, const sz_jid_t *j)
{
    size_t ll = 0, dl, rl = 0;
    const char *l = sz_jid_has_local(j) ? sz_jid_local(j, &ll) : "";
    const char *d = sz_jid_domain(j, &dl);
    const char *res = sz_jid_is_bare(j) ? "" : sz_jid_resource(j, &rl);
    for (uint32_t i = 0; bl && i < bl->n; i++)
        if (item_match(&bl->items[i], l, ll, d, dl, res, rl))
            return true;
    return false;
}

bool sz_blocking_blocks(const sz_user_t *u, const char *jid, size_t len)
{
    const sz_blocklist_t *bl = u ? u->slot[uslot] : NULL;
    if (!bl || bl->state != BL_READY || bl->n == 0)
        return false;
    sz_jid_buf_t jb;
    sz_jid_t *j = NULL;
    if (sz_jid_parse_into(jid, len, &jb, sizeof(jb), &j, NULL) < 0)
        return false;
    return sz_blocklist_match(bl, j);
}

/* ---- loading ------------------------------------------------------------------------ */

static void on_loaded(void *arg, int res, const sz_store_blocklist_t *l)
{
    sz_blocklist_t *bl = arg;
    if (res < 0) {
        SZ_WARN("msg=\"blocklist load failed\" err=%d", res);
        bl->state = BL_EMPTY;
        /* The queued jobs cannot run: each answers an error and goes. */
        sz_blocklist_job_t *job;
        while ((job = bl->head)) {
            bl->head = job->next;
            if (!bl->head)
                bl->tail = NULL;
            run(bl, job, res);
            job_free(job);
        }
        if (!bl->kicking)
            maybe_free(bl);
        return;
    }
    items_free(bl);
    for (size_t i = 0; i < l->n; i++)
        sz_blocklist_add(bl, l->items[i], strlen(l->items[i]));
    bl->state = BL_READY;
    kick(bl);
}

static void load(sz_blocklist_t *bl)
{
    bl->state = BL_LOADING;
    int ret = store ? sz_store_blocklist_get(store, bl->owner, on_loaded, bl) : -ENOSYS;
    if (ret < 0)
        on_loaded(bl, ret, NULL);
}

/* ---- pushes ------------------------------------------------------------------------- */

void sz_blocklist_interest(sz_blocklist_t *bl, sz_session_t *s)
{
    for (uint32_t i = 0; i < bl->ni; i++)
        if (bl->interested[i] == s)
            return;
    if (bl->ni == bl->icap) {
        bl->icap = bl->icap ? bl->icap * 2 : 2;
        bl->interested = sz_realloc(bl->interested, bl->icap * sizeof(*bl->interested));
    }
    bl->interested[bl->ni++] = s;
}

void sz_blocklist_push(sz_blocklist_t *bl, const char *payload, size_t len)
{
    char id[24];
    for (uint32_t i = 0; i < bl->ni; i++) {
        sz_session_t *s = bl->interested[i];
        size_t fl;
        const char *full = sz_jid_full(s->jid, &fl);
        snprintf(id, sizeof(id), "block%" PRIu32, ++push_seq);
        sz_xb_t xb;
        sz_xb_init(&xb, 96 + fl + len);
        sz_xb_start(&xb, "iq", NULL);
        sz_xb_attr(&xb, "type", "set");
        sz_xb_attr(&xb, "id", id);
        sz_xb_attr_n(&xb, "to", full, fl);
        sz_xb_raw(&xb, payload, len);
        sz_xb_end(&xb);
        sz_stanza_t *st = sz_stanza_from_xb(&xb);
        if (st) {
            sz_router_deliver(s, st);
            sz_stanza_unref(st);
        }
    }
}

/* ---- events ----------------------------------------------------------------------- */

/* A resource bound: the cache loads now, so that it is usually ready by
 * the first stanza that needs it. */
static void on_bound(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->from ? ctx->from->user : ctx->user;
    if (!u || !store)
        return;
    sz_blocklist_t *bl = sz_blocklist_of(u, u->bare);
    if (bl->state == BL_EMPTY && !bl->head)
        load(bl); /* storage counts it in flight until it answers */
}

/* A session ends: no more pushes to it. */
static void on_unbound(sz_hook_ctx_t *ctx)
{
    sz_blocklist_t *bl = ctx->user ? ctx->user->slot[uslot] : NULL;
    for (uint32_t i = 0; bl && i < bl->ni; i++)
        if (bl->interested[i] == ctx->from) {
            bl->interested[i] = bl->interested[--bl->ni];
            break;
        }
}

static void on_user_gone(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->user;
    sz_blocklist_t *bl = u ? u->slot[uslot] : NULL;
    if (!bl)
        return;
    u->slot[uslot] = NULL;
    bl->user = NULL;
    bl->ni = 0;
    bl->dnext = detached;
    detached = bl;
    maybe_free(bl);
}

void sz_blocklist_setup(const sz_mod_env_t *env)
{
    store = env->store;
    conf = env->conf;
    uslot = sz_hooks_user_slot();
    sz_hooks_on(SZ_EV_BOUND, on_bound);
    sz_hooks_on(SZ_EV_UNBOUND, on_unbound);
    sz_hooks_on(SZ_EV_USER_GONE, on_user_gone);
}
