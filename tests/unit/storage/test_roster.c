/*
 * Tests for storage/roster.c and storage/sqlite_roster.c: roster items and
 * versions, names and groups kept exactly, the item limit, pending
 * subscription requests, the login read, the cascade on account deletion,
 * requests from a reactor (callbacks on its thread, per-owner order) and
 * blocking requests from plain threads. The upgrade of an older file is
 * in test_sqlite.c.
 */
#include "storage/roster.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/reactor.h"
#include "core/xq.h"
#include "storage/store.h"
#include "sz_test.h"

static char tmpdir[256];
static char dbpath[512];

/* ---- helpers ------------------------------------------------------------ */

static sz_jid_t *jid(const char *s)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse(s, strlen(s), &j) < 0)
        return NULL;
    return j;
}

static void fake_creds(sz_scram_creds_t *c, uint8_t seed)
{
    memset(c, 0, sizeof(*c));
    sz_scram_cred_t *x = &c->h[SZ_HASH_SHA256];
    x->iterations = 4096;
    x->salt_len = 16;
    x->key_len = 32;
    for (int i = 0; i < 32; i++) {
        x->salt[i % 16] = (uint8_t)(seed + i);
        x->stored_key[i] = (uint8_t)(seed * 3 + i);
        x->server_key[i] = (uint8_t)(seed * 7 + i);
    }
}

static sz_store_t *open_at(const char *path, unsigned workers)
{
    char err[512] = "";
    sz_store_opts_t o = {.path = path, .workers = workers};
    sz_store_t *s = NULL;
    if (sz_store_open(&o, &s, err, sizeof(err)) < 0)
        printf("# open %s: %s\n", path, err);
    return s;
}

static void on_done(void *arg, int res)
{
    *(int *)arg = res;
}

static int create_account(sz_store_t *s, const char *j)
{
    sz_scram_creds_t c;
    fake_creds(&c, 1);
    sz_jid_t *jj = jid(j);
    int res = -999;
    int ret = sz_store_account_create(s, jj, &c, on_done, &res);
    sz_jid_free(jj);
    return ret < 0 ? ret : res;
}

static int delete_account(sz_store_t *s, const char *j)
{
    sz_jid_t *jj = jid(j);
    int res = -999;
    int ret = sz_store_account_delete(s, jj, on_done, &res);
    sz_jid_free(jj);
    return ret < 0 ? ret : res;
}

/* A deep copy of what a callback was given. */
struct titem {
    char jid[128];
    bool has_name;
    char name[128];
    int sub;
    bool ask, approved;
    size_t ngroups;
    char groups[8][64];
    uint64_t ver;
};

struct tpend {
    char from[128];
    char stanza[512];
    size_t len;
};

struct rres {
    int res;
    int calls;
    pthread_t thread;
    uint64_t ver;
    bool has_roster, has_item, has_pending;
    size_t n;
    struct titem items[64];
    size_t np;
    struct tpend pend[16];
};

static void copy_item(struct titem *t, const sz_store_roster_item_t *it)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->jid, sizeof(t->jid), "%s", it->jid);
    t->has_name = it->name != NULL;
    if (it->name)
        snprintf(t->name, sizeof(t->name), "%s", it->name);
    t->sub = (int)it->sub;
    t->ask = it->ask;
    t->approved = it->approved;
    t->ngroups = it->ngroups;
    for (size_t i = 0; i < it->ngroups && i < 8; i++)
        snprintf(t->groups[i], sizeof(t->groups[i]), "%s", it->groups[i]);
    t->ver = it->ver;
}

static void start(struct rres *r, int res)
{
    r->res = res;
    r->calls++;
    r->thread = pthread_self();
}

static void copy_roster(struct rres *r, const sz_store_roster_t *ro)
{
    r->has_roster = ro != NULL;
    r->n = 0;
    if (!ro)
        return;
    r->ver = ro->ver;
    for (size_t i = 0; i < ro->n && i < 64; i++)
        copy_item(&r->items[r->n++], &ro->items[i]);
    if (ro->n == 0 && ro->items != NULL)
        r->n = 999; /* contract: NULL when empty */
}

static void copy_pending(struct rres *r, const sz_store_pendings_t *p)
{
    r->has_pending = p != NULL;
    r->np = 0;
    if (!p)
        return;
    for (size_t i = 0; i < p->n && i < 16; i++) {
        struct tpend *t = &r->pend[r->np++];
        snprintf(t->from, sizeof(t->from), "%s", p->items[i].from);
        snprintf(t->stanza, sizeof(t->stanza), "%s", p->items[i].stanza);
        t->len = p->items[i].stanza_len;
    }
}

static void on_roster(void *arg, int res, const sz_store_roster_t *ro)
{
    struct rres *r = arg;
    start(r, res);
    copy_roster(r, ro);
}

static void on_item(void *arg, int res, uint64_t ver, const sz_store_roster_item_t *it)
{
    struct rres *r = arg;
    start(r, res);
    r->ver = ver;
    r->has_item = it != NULL;
    r->n = 0;
    if (it)
        copy_item(&r->items[r->n++], it);
}

static void on_ver(void *arg, int res, uint64_t ver)
{
    struct rres *r = arg;
    start(r, res);
    r->ver = ver;
}

static void on_pending(void *arg, int res, const sz_store_pendings_t *p)
{
    struct rres *r = arg;
    start(r, res);
    copy_pending(r, p);
}

static void on_login(void *arg, int res, const sz_store_roster_t *ro, const sz_store_pendings_t *p)
{
    struct rres *r = arg;
    start(r, res);
    copy_roster(r, ro);
    copy_pending(r, p);
}

static void on_rdone(void *arg, int res)
{
    start(arg, res);
}

/* Blocking wrappers: each returns the callback's result (or the submit's
 * error), with the details in *<r>. */
static int get(sz_store_t *s, const char *owner, struct rres *r)
{
    memset(r, 0, sizeof(*r));
    sz_jid_t *o = jid(owner);
    int ret = sz_store_roster_get(s, o, on_roster, r);
    sz_jid_free(o);
    return ret < 0 ? ret : r->calls == 1 ? r->res : -999;
}

static int get_item(sz_store_t *s, const char *owner, const char *contact, struct rres *r)
{
    memset(r, 0, sizeof(*r));
    sz_jid_t *o = jid(owner);
    int ret = sz_store_roster_get_item(s, o, contact, on_item, r);
    sz_jid_free(o);
    return ret < 0 ? ret : r->calls == 1 ? r->res : -999;
}

static int put(sz_store_t *s, const char *owner, const sz_store_roster_item_t *it, unsigned max,
               uint64_t *ver)
{
    struct rres r = {0};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_roster_put(s, o, it, max, on_ver, &r);
    sz_jid_free(o);
    if (ver)
        *ver = r.ver;
    return ret < 0 ? ret : r.calls == 1 ? r.res : -999;
}

/* Puts a plain item (no name, no groups, subscription none). */
static int put_plain(sz_store_t *s, const char *owner, const char *contact, unsigned max,
                     uint64_t *ver)
{
    sz_store_roster_item_t it = {.jid = contact};
    return put(s, owner, &it, max, ver);
}

static int remove_item(sz_store_t *s, const char *owner, const char *contact, uint64_t *ver)
{
    struct rres r = {0};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_roster_remove(s, o, contact, on_ver, &r);
    sz_jid_free(o);
    if (ver)
        *ver = r.ver;
    return ret < 0 ? ret : r.calls == 1 ? r.res : -999;
}

static int pend_add(sz_store_t *s, const char *owner, const char *from, const char *xml)
{
    struct rres r = {0};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_pending_add(s, o, from, xml, xml ? strlen(xml) : 0, on_rdone, &r);
    sz_jid_free(o);
    return ret < 0 ? ret : r.calls == 1 ? r.res : -999;
}

static int pend_remove(sz_store_t *s, const char *owner, const char *from)
{
    struct rres r = {0};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_pending_remove(s, o, from, on_rdone, &r);
    sz_jid_free(o);
    return ret < 0 ? ret : r.calls == 1 ? r.res : -999;
}

static int pend_list(sz_store_t *s, const char *owner, struct rres *r)
{
    memset(r, 0, sizeof(*r));
    sz_jid_t *o = jid(owner);
    int ret = sz_store_pending_list(s, o, on_pending, r);
    sz_jid_free(o);
    return ret < 0 ? ret : r->calls == 1 ? r->res : -999;
}

static int login(sz_store_t *s, const char *owner, struct rres *r)
{
    memset(r, 0, sizeof(*r));
    sz_jid_t *o = jid(owner);
    int ret = sz_store_roster_login(s, o, on_login, r);
    sz_jid_free(o);
    return ret < 0 ? ret : r->calls == 1 ? r->res : -999;
}

static const struct titem *find(const struct rres *r, const char *contact)
{
    for (size_t i = 0; i < r->n && i < 64; i++)
        if (strcmp(r->items[i].jid, contact) == 0)
            return &r->items[i];
    return NULL;
}

/* Rows of <table> for owner <local>@<domain>, read with SQLite directly. */
static int rows_of(const char *path, const char *table, const char *local, const char *domain)
{
    sqlite3 *h = NULL;
    int n = -1;
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE localpart = ?1 AND domain = ?2", table);
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

/* ---- blocking use ------------------------------------------------------- */

SZ_TEST(empty_roster)
{
    snprintf(dbpath, sizeof(dbpath), "%s/r.db", tmpdir);
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    SZ_CHECK_INT(create_account(s, "alice@example.org"), 0);
    struct rres r;
    SZ_CHECK_INT(get(s, "alice@example.org", &r), 0);
    SZ_CHECK(r.has_roster);
    SZ_CHECK_INT(r.ver, 0);
    SZ_CHECK_INT(r.n, 0);
    SZ_CHECK(pthread_equal(r.thread, pthread_self()));
    SZ_CHECK_INT(get_item(s, "alice@example.org", "bob@example.org", &r), -ENOENT);
    SZ_CHECK(!r.has_item);
    SZ_CHECK_INT(r.ver, 0);
    SZ_CHECK_INT(pend_list(s, "alice@example.org", &r), 0);
    SZ_CHECK(r.has_pending);
    SZ_CHECK_INT(r.np, 0);
    SZ_CHECK_INT(login(s, "alice@example.org", &r), 0);
    SZ_CHECK(r.has_roster && r.has_pending);
    SZ_CHECK_INT(r.ver, 0);
    SZ_CHECK_INT(r.n + r.np, 0);
    /* An owner without an account reads as empty, and cannot be written. */
    SZ_CHECK_INT(get(s, "nobody@example.org", &r), 0);
    SZ_CHECK_INT(r.n, 0);
    SZ_CHECK_INT(put_plain(s, "nobody@example.org", "bob@example.org", 0, NULL), -ENOENT);
    SZ_CHECK_INT(pend_add(s, "nobody@example.org", "bob@example.org", "<presence/>"), -ENOENT);
    SZ_CHECK_INT(rows_of(dbpath, "roster_version", "nobody", "example.org"), 0);

    /* Invalid arguments fail before queueing, without a callback. */
    sz_jid_t *o = jid("alice@example.org"), *dom = jid("example.org");
    struct rres z = {0};
    sz_store_roster_item_t it = {.jid = "bob@example.org"};
    SZ_CHECK_INT(sz_store_roster_put(s, dom, &it, 0, on_ver, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_put(s, NULL, &it, 0, on_ver, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_put(s, o, NULL, 0, on_ver, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, NULL, &z), -EINVAL);
    it.jid = "";
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    it.jid = NULL;
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    it.jid = "bob@example.org";
    it.sub = (enum sz_store_sub)4;
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    it.sub = SZ_STORE_SUB_NONE;
    it.ngroups = 1; /* and groups NULL */
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    const char *g1[] = {NULL};
    it.groups = g1;
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    it.ngroups = SZ_STORE_ROSTER_GROUPS_MAX + 1;
    SZ_CHECK_INT(sz_store_roster_put(s, o, &it, 0, on_ver, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_get(s, dom, on_roster, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_get_item(s, o, "", on_item, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_remove(s, o, NULL, on_ver, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_pending_add(s, o, "b@x", "a\0b", 3, on_rdone, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_pending_add(s, o, "b@x", NULL, 3, on_rdone, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_pending_list(s, dom, on_pending, &z), -EINVAL);
    SZ_CHECK_INT(sz_store_roster_login(s, o, NULL, &z), -EINVAL);
    SZ_CHECK_INT(z.calls, 0);
    sz_jid_free(o);
    sz_jid_free(dom);
    sz_store_close(s);
}

SZ_TEST(versions)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    const char *a = "alice@example.org";
    uint64_t v = 0;
    SZ_CHECK_INT(put_plain(s, a, "bob@example.org", 0, &v), 0);
    SZ_CHECK_INT(v, 1);
    SZ_CHECK_INT(put_plain(s, a, "carol@example.org", 0, &v), 0);
    SZ_CHECK_INT(v, 2);
    struct rres r;
    SZ_CHECK_INT(get(s, a, &r), 0);
    SZ_CHECK_INT(r.ver, 2);
    SZ_CHECK_INT(r.n, 2);
    const struct titem *b = find(&r, "bob@example.org"), *c = find(&r, "carol@example.org");
    SZ_CHECK(b && b->ver == 1);
    SZ_CHECK(c && c->ver == 2);

    /* Replacing bob changes every field and stamps him with the new version. */
    sz_store_roster_item_t it = {.jid = "bob@example.org", .sub = SZ_STORE_SUB_BOTH,
                                 .approved = true};
    SZ_CHECK_INT(put(s, a, &it, 0, &v), 0);
    SZ_CHECK_INT(v, 3);
    SZ_CHECK_INT(get_item(s, a, "bob@example.org", &r), 0);
    SZ_CHECK_INT(r.ver, 3);
    SZ_CHECK(r.has_item && r.items[0].ver == 3 && r.items[0].sub == SZ_STORE_SUB_BOTH &&
             r.items[0].approved && !r.items[0].ask);
    SZ_CHECK_INT(get_item(s, a, "carol@example.org", &r), 0);
    SZ_CHECK_INT(r.items[0].ver, 2);

    SZ_CHECK_INT(remove_item(s, a, "carol@example.org", &v), 0);
    SZ_CHECK_INT(v, 4);
    SZ_CHECK_INT(remove_item(s, a, "carol@example.org", &v), -ENOENT);
    SZ_CHECK_INT(v, 4); /* the current version, unchanged */
    SZ_CHECK_INT(get_item(s, a, "carol@example.org", &r), -ENOENT);
    SZ_CHECK_INT(r.ver, 4);
    SZ_CHECK_INT(get(s, a, &r), 0);
    SZ_CHECK_INT(r.ver, 4);
    SZ_CHECK_INT(r.n, 1);
    SZ_CHECK_STR(r.items[0].jid, "bob@example.org");

    /* Contacts are compared bytewise: the caller normalizes. */
    SZ_CHECK_INT(get_item(s, a, "Bob@example.org", &r), -ENOENT);
    /* Another owner's roster is its own. */
    SZ_CHECK_INT(create_account(s, "dave@example.org"), 0);
    SZ_CHECK_INT(get(s, "dave@example.org", &r), 0);
    SZ_CHECK_INT(r.ver + r.n, 0);
    SZ_CHECK_INT(put_plain(s, "dave@example.org", "bob@example.org", 0, &v), 0);
    SZ_CHECK_INT(v, 1);
    sz_store_close(s);

    /* Versions and items survive a reopen, and keep counting up. */
    s = open_at(dbpath, 1);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    SZ_CHECK_INT(get(s, a, &r), 0);
    SZ_CHECK_INT(r.ver, 4);
    SZ_CHECK_INT(r.n, 1);
    SZ_CHECK_INT(put_plain(s, a, "carol@example.org", 0, &v), 0);
    SZ_CHECK_INT(v, 5);
    sz_store_close(s);
}

SZ_TEST(names_and_groups)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    const char *a = "alice@example.org";
    /* Not sorted, non-ASCII, an empty name (the caller's business), and a
     * name that would sort first: all kept as given, in order. */
    const char *groups[] = {"Friends", "Ünïcødé 🎉 グループ", "", "Amis", "a,b;c\"d<e>"};
    sz_store_roster_item_t it = {
        .jid = "erin@example.net",
        .name = "Ζωή 名前 🙂",
        .sub = SZ_STORE_SUB_TO,
        .ask = true,
        .ngroups = 5,
        .groups = groups,
    };
    SZ_CHECK_INT(put(s, a, &it, 0, NULL), 0);
    struct rres r;
    SZ_CHECK_INT(get_item(s, a, "erin@example.net", &r), 0);
    const struct titem *e = &r.items[0];
    SZ_CHECK(e->has_name);
    SZ_CHECK_STR(e->name, "Ζωή 名前 🙂");
    SZ_CHECK_INT(e->sub, SZ_STORE_SUB_TO);
    SZ_CHECK(e->ask && !e->approved);
    SZ_CHECK_INT(e->ngroups, 5);
    for (int i = 0; i < 5; i++)
        SZ_CHECK_STR(e->groups[i], groups[i]);

    /* Empty name vs no name; no groups. */
    sz_store_roster_item_t f = {.jid = "frank@example.net", .name = "",
                                .sub = SZ_STORE_SUB_FROM};
    SZ_CHECK_INT(put(s, a, &f, 0, NULL), 0);
    sz_store_roster_item_t g = {.jid = "gina@example.net", .name = NULL};
    SZ_CHECK_INT(put(s, a, &g, 0, NULL), 0);
    SZ_CHECK_INT(get(s, a, &r), 0);
    const struct titem *fi = find(&r, "frank@example.net"), *gi = find(&r, "gina@example.net");
    SZ_CHECK(fi && fi->has_name && fi->name[0] == '\0' && fi->ngroups == 0);
    SZ_CHECK(fi && fi->sub == SZ_STORE_SUB_FROM);
    SZ_CHECK(gi && !gi->has_name && gi->ngroups == 0 && gi->sub == SZ_STORE_SUB_NONE);
    e = find(&r, "erin@example.net");
    SZ_CHECK(e && e->ngroups == 5 && strcmp(e->groups[1], groups[1]) == 0);

    /* A replace drops the name and the groups it no longer has. */
    const char *one[] = {"Work"};
    it.name = NULL;
    it.ngroups = 1;
    it.groups = one;
    it.ask = false;
    SZ_CHECK_INT(put(s, a, &it, 0, NULL), 0);
    SZ_CHECK_INT(get_item(s, a, "erin@example.net", &r), 0);
    SZ_CHECK(!r.items[0].has_name);
    SZ_CHECK_INT(r.items[0].ngroups, 1);
    SZ_CHECK_STR(r.items[0].groups[0], "Work");
    SZ_CHECK(!r.items[0].ask);
    sz_store_close(s);
}

SZ_TEST(max_items)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    const char *o = "max@example.org";
    SZ_CHECK_INT(create_account(s, o), 0);
    uint64_t v = 0;
    SZ_CHECK_INT(put_plain(s, o, "a@x.example", 2, &v), 0);
    SZ_CHECK_INT(put_plain(s, o, "b@x.example", 2, &v), 0);
    SZ_CHECK_INT(v, 2);
    /* A new contact over the limit: refused, nothing changes. */
    SZ_CHECK_INT(put_plain(s, o, "c@x.example", 2, &v), -ENOSPC);
    struct rres r;
    SZ_CHECK_INT(get(s, o, &r), 0);
    SZ_CHECK_INT(r.ver, 2);
    SZ_CHECK_INT(r.n, 2);
    SZ_CHECK(find(&r, "c@x.example") == NULL);
    /* Updating a contact at the limit works. */
    sz_store_roster_item_t it = {.jid = "a@x.example", .name = "A"};
    SZ_CHECK_INT(put(s, o, &it, 2, &v), 0);
    SZ_CHECK_INT(v, 3);
    /* A higher limit or none lets it in. */
    SZ_CHECK_INT(put_plain(s, o, "c@x.example", 3, &v), 0);
    SZ_CHECK_INT(put_plain(s, o, "d@x.example", 3, &v), -ENOSPC);
    SZ_CHECK_INT(put_plain(s, o, "d@x.example", 0, &v), 0);
    SZ_CHECK_INT(v, 5);
    /* After a removal there is room again. */
    SZ_CHECK_INT(put_plain(s, o, "e@x.example", 4, NULL), -ENOSPC);
    SZ_CHECK_INT(remove_item(s, o, "d@x.example", NULL), 0);
    SZ_CHECK_INT(put_plain(s, o, "e@x.example", 4, &v), 0);
    SZ_CHECK_INT(v, 7);
    /* The limit counts this owner's items only. */
    SZ_CHECK_INT(create_account(s, "max2@example.org"), 0);
    SZ_CHECK_INT(put_plain(s, "max2@example.org", "a@x.example", 1, NULL), 0);
    SZ_CHECK_INT(put_plain(s, "max2@example.org", "b@x.example", 1, NULL), -ENOSPC);
    sz_store_close(s);
}

SZ_TEST(pending)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    const char *o = "pend@example.org";
    SZ_CHECK_INT(create_account(s, o), 0);
    const char *x1 = "<presence from='x@remote.example' to='pend@example.org' type='subscribe'>"
                     "<status>Hi, it’s X 👋</status></presence>";
    const char *x2 = "<presence type='subscribe'><status>again</status></presence>";
    SZ_CHECK_INT(pend_add(s, o, "x@remote.example", x1), 0);
    SZ_CHECK_INT(pend_add(s, o, "y@remote.example", NULL), 0);
    SZ_CHECK_INT(pend_add(s, o, "z@remote.example", "<presence type='subscribe'/>"), 0);
    struct rres r;
    SZ_CHECK_INT(pend_list(s, o, &r), 0);
    SZ_CHECK_INT(r.np, 3);
    SZ_CHECK_STR(r.pend[0].from, "x@remote.example");
    SZ_CHECK_STR(r.pend[0].stanza, x1);
    SZ_CHECK_INT(r.pend[0].len, strlen(x1));
    SZ_CHECK_STR(r.pend[1].from, "y@remote.example");
    SZ_CHECK_STR(r.pend[1].stanza, "");
    SZ_CHECK_INT(r.pend[1].len, 0);
    /* Replacing keeps one request per requester, now the latest. */
    SZ_CHECK_INT(pend_add(s, o, "x@remote.example", x2), 0);
    SZ_CHECK_INT(pend_list(s, o, &r), 0);
    SZ_CHECK_INT(r.np, 3);
    SZ_CHECK_STR(r.pend[0].from, "y@remote.example");
    SZ_CHECK_STR(r.pend[2].from, "x@remote.example");
    SZ_CHECK_STR(r.pend[2].stanza, x2);
    /* Pending requests do not touch the roster version. */
    SZ_CHECK_INT(get(s, o, &r), 0);
    SZ_CHECK_INT(r.ver, 0);
    /* Answered: removed. */
    SZ_CHECK_INT(pend_remove(s, o, "x@remote.example"), 0);
    SZ_CHECK_INT(pend_remove(s, o, "x@remote.example"), -ENOENT);
    SZ_CHECK_INT(pend_list(s, o, &r), 0);
    SZ_CHECK_INT(r.np, 2);
    SZ_CHECK_STR(r.pend[0].from, "y@remote.example");
    SZ_CHECK_STR(r.pend[1].from, "z@remote.example");
    /* Another owner sees none of them. */
    SZ_CHECK_INT(pend_list(s, "alice@example.org", &r), 0);
    SZ_CHECK_INT(r.np, 0);

    /* The login read: roster and pending together. */
    uint64_t v;
    SZ_CHECK_INT(put_plain(s, o, "w@remote.example", 0, &v), 0);
    SZ_CHECK_INT(login(s, o, &r), 0);
    SZ_CHECK_INT(r.ver, 1);
    SZ_CHECK_INT(r.n, 1);
    SZ_CHECK_STR(r.items[0].jid, "w@remote.example");
    SZ_CHECK_INT(r.np, 2);
    SZ_CHECK_STR(r.pend[1].from, "z@remote.example");
    SZ_CHECK_STR(r.pend[1].stanza, "<presence type='subscribe'/>");
    sz_store_close(s);
}

SZ_TEST(account_delete_cascades)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    const char *o = "gone@example.org";
    SZ_CHECK_INT(create_account(s, o), 0);
    SZ_CHECK_INT(create_account(s, "stays@example.org"), 0);
    for (int i = 0; i < 3; i++) {
        char c[64];
        snprintf(c, sizeof(c), "c%d@example.net", i);
        SZ_CHECK_INT(put_plain(s, o, c, 0, NULL), 0);
        SZ_CHECK_INT(put_plain(s, "stays@example.org", c, 0, NULL), 0);
    }
    SZ_CHECK_INT(pend_add(s, o, "p@example.net", "<presence type='subscribe'/>"), 0);
    SZ_CHECK_INT(pend_add(s, "stays@example.org", "p@example.net", NULL), 0);
    SZ_CHECK_INT(rows_of(dbpath, "roster_items", "gone", "example.org"), 3);
    SZ_CHECK_INT(rows_of(dbpath, "roster_version", "gone", "example.org"), 1);
    SZ_CHECK_INT(rows_of(dbpath, "roster_pending", "gone", "example.org"), 1);

    SZ_CHECK_INT(delete_account(s, o), 0);
    SZ_CHECK_INT(rows_of(dbpath, "roster_items", "gone", "example.org"), 0);
    SZ_CHECK_INT(rows_of(dbpath, "roster_version", "gone", "example.org"), 0);
    SZ_CHECK_INT(rows_of(dbpath, "roster_pending", "gone", "example.org"), 0);
    /* Only that account's rows. */
    SZ_CHECK_INT(rows_of(dbpath, "roster_items", "stays", "example.org"), 3);
    SZ_CHECK_INT(rows_of(dbpath, "roster_pending", "stays", "example.org"), 1);

    /* The same name again starts from nothing. */
    SZ_CHECK_INT(create_account(s, o), 0);
    struct rres r;
    SZ_CHECK_INT(login(s, o, &r), 0);
    SZ_CHECK_INT(r.ver, 0);
    SZ_CHECK_INT(r.n + r.np, 0);
    sz_store_close(s);
}

/* ---- reactor use -------------------------------------------------------- */

#define RX_OWNERS 8
#define RX_PUTS   25

struct rx_owner {
    sz_jid_t *jid;
    uint64_t next_ver; /* versions must come back 1, 2, ... in order */
    int bad_order;
    int ok_get, ok_item, ok_remove, ok_pend, ok_login;
};

struct rx {
    sz_reactor_t r;
    pthread_t thread;
    sz_store_t *s;
    struct rx_owner owners[RX_OWNERS];
    int pending;
    int wrong_thread, early, failed;
    bool submitted;
    sz_timer_t deadline;
    bool timed_out;
    int init_ret;
};

static struct rx rx;

static void rx_done_one(void)
{
    if (!pthread_equal(pthread_self(), rx.thread) || sz_reactor_self() != &rx.r)
        rx.wrong_thread++;
    if (!rx.submitted)
        rx.early++;
    if (--rx.pending == 0 && rx.submitted) {
        sz_timer_cancel(&rx.r.wheel, &rx.deadline);
        rx.r.stopping = true;
    }
}

static void rx_on_put(void *arg, int res, uint64_t ver)
{
    struct rx_owner *o = arg;
    rx.failed += res != 0;
    o->bad_order += ver != ++o->next_ver;
    rx_done_one();
}

static void rx_on_item(void *arg, int res, uint64_t ver, const sz_store_roster_item_t *it)
{
    struct rx_owner *o = arg;
    /* Queued after every put of this owner: sees all of them. */
    o->ok_item += res == 0 && ver == RX_PUTS && it && strcmp(it->jid, "c3@example.net") == 0 &&
                  it->ver == 4 && it->ngroups == 1 && strcmp(it->groups[0], "G") == 0;
    rx_done_one();
}

static void rx_on_remove(void *arg, int res, uint64_t ver)
{
    struct rx_owner *o = arg;
    o->ok_remove += res == 0 && ver == RX_PUTS + 1;
    rx_done_one();
}

static void rx_on_pend(void *arg, int res)
{
    struct rx_owner *o = arg;
    o->ok_pend += res == 0;
    rx_done_one();
}

static void rx_on_login(void *arg, int res, const sz_store_roster_t *ro,
                        const sz_store_pendings_t *p)
{
    struct rx_owner *o = arg;
    o->ok_login += res == 0 && ro && ro->ver == RX_PUTS + 1 && ro->n == RX_PUTS - 1 && p &&
                   p->n == 1 && strcmp(p->items[0].stanza, "<presence type='subscribe'/>") == 0;
    rx_done_one();
}

static void rx_on_get(void *arg, int res, const sz_store_roster_t *ro)
{
    struct rx_owner *o = arg;
    o->ok_get += res == 0 && ro && ro->ver == RX_PUTS + 1 && ro->n == RX_PUTS - 1;
    rx_done_one();
}

static void rx_on_deadline(sz_timer_t *t)
{
    rx.timed_out = true;
    rx.r.stopping = true;
}

static void rx_submit_all(void)
{
    static const char *const g[] = {"G"};
    /* Owners interleaved, so their requests share workers. */
    for (int i = 0; i < RX_PUTS; i++) {
        for (int k = 0; k < RX_OWNERS; k++) {
            char c[64];
            snprintf(c, sizeof(c), "c%d@example.net", i);
            sz_store_roster_item_t it = {.jid = c, .ngroups = 1, .groups = g};
            /* <c> dies at return: the submit copied it. */
            rx.pending += sz_store_roster_put(rx.s, rx.owners[k].jid, &it, 0, rx_on_put,
                                              &rx.owners[k]) == 0;
        }
    }
    const char *xml = "<presence type='subscribe'/>";
    for (int k = 0; k < RX_OWNERS; k++) {
        struct rx_owner *o = &rx.owners[k];
        rx.pending += sz_store_roster_get_item(rx.s, o->jid, "c3@example.net", rx_on_item, o) == 0;
        rx.pending += sz_store_roster_remove(rx.s, o->jid, "c0@example.net", rx_on_remove, o) == 0;
        rx.pending += sz_store_pending_add(rx.s, o->jid, "p@example.net", xml, strlen(xml),
                                           rx_on_pend, o) == 0;
        rx.pending += sz_store_roster_login(rx.s, o->jid, rx_on_login, o) == 0;
        rx.pending += sz_store_roster_get(rx.s, o->jid, rx_on_get, o) == 0;
    }
}

static void *rx_main(void *arg)
{
    int ring_fds[1] = {-1};
    sz_xq_t *xq = sz_xq_new(1, 16);
    sz_reactor_opts_t o = {
        .id = 0,
        .n = 1,
        .direct_slots = 16,
        .recv_buffers = 16,
        .recv_buffer_bytes = 1024,
        .xq = xq,
        .ring_fds = ring_fds,
        .cpu = -1,
    };
    rx.init_ret = sz_reactor_init(&rx.r, &o);
    if (rx.init_ret < 0) {
        sz_xq_free(xq);
        return NULL;
    }
    rx.thread = pthread_self();
    rx_submit_all();
    rx.submitted = true;
    sz_timer_arm(&rx.r.wheel, &rx.deadline, sz_reactor_now(&rx.r) + 20000, rx_on_deadline);
    if (rx.pending == 0)
        rx.r.stopping = true;
    sz_reactor_run(&rx.r);
    sz_reactor_destroy(&rx.r);
    sz_xq_free(xq);
    return NULL;
}

SZ_TEST(async_from_reactor)
{
    memset(&rx, 0, sizeof(rx));
    snprintf(dbpath, sizeof(dbpath), "%s/rx.db", tmpdir);
    rx.s = open_at(dbpath, 3);
    SZ_CHECK(rx.s != NULL);
    if (!rx.s)
        return;
    for (int k = 0; k < RX_OWNERS; k++) {
        char j[64];
        snprintf(j, sizeof(j), "o%d@rx.example", k);
        SZ_CHECK_INT(create_account(rx.s, j), 0);
        rx.owners[k].jid = jid(j);
    }
    pthread_t t;
    pthread_create(&t, NULL, rx_main, NULL);
    pthread_join(t, NULL);
    if (rx.init_ret < 0) {
        printf("# reactor init failed (%s): skipped\n", strerror(-rx.init_ret));
    } else {
        SZ_CHECK(!rx.timed_out);
        SZ_CHECK_INT(rx.pending, 0);
        SZ_CHECK_INT(rx.wrong_thread, 0);
        SZ_CHECK_INT(rx.early, 0);
        SZ_CHECK_INT(rx.failed, 0);
        int order = 0, item = 0, rem = 0, pend = 0, log = 0, get_ok = 0;
        for (int k = 0; k < RX_OWNERS; k++) {
            struct rx_owner *o = &rx.owners[k];
            order += o->bad_order;
            item += o->ok_item;
            rem += o->ok_remove;
            pend += o->ok_pend;
            log += o->ok_login;
            get_ok += o->ok_get;
        }
        SZ_CHECK_INT(order, 0);
        SZ_CHECK_INT(item, RX_OWNERS);
        SZ_CHECK_INT(rem, RX_OWNERS);
        SZ_CHECK_INT(pend, RX_OWNERS);
        SZ_CHECK_INT(log, RX_OWNERS);
        SZ_CHECK_INT(get_ok, RX_OWNERS);
    }
    for (int k = 0; k < RX_OWNERS; k++)
        sz_jid_free(rx.owners[k].jid);
    sz_store_close(rx.s);
}

/* ---- blocking callers on plain threads ---------------------------------- */

#define TH_N    4
#define TH_PUTS 50

struct th_arg {
    sz_store_t *s;
    int id;
    int ok, wrong_thread;
};

static void *th_main(void *p)
{
    struct th_arg *a = p;
    sz_jid_t *shared = jid("shared@th.example");
    for (int i = 0; i < TH_PUTS; i++) {
        char c[64];
        snprintf(c, sizeof(c), "t%d-%d@example.net", a->id, i);
        sz_store_roster_item_t it = {.jid = c};
        struct rres r = {0};
        if (sz_store_roster_put(a->s, shared, &it, 0, on_ver, &r) == 0 && r.calls == 1 &&
            r.res == 0)
            a->ok++;
        /* The callback ran on this thread before the call returned. */
        a->wrong_thread += r.calls == 1 && !pthread_equal(r.thread, pthread_self());
    }
    sz_jid_free(shared);
    return NULL;
}

SZ_TEST(blocking_from_threads)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    SZ_CHECK_INT(create_account(s, "shared@th.example"), 0);
    struct th_arg a[TH_N];
    pthread_t t[TH_N];
    for (int i = 0; i < TH_N; i++) {
        a[i] = (struct th_arg){.s = s, .id = i};
        pthread_create(&t[i], NULL, th_main, &a[i]);
    }
    for (int i = 0; i < TH_N; i++) {
        pthread_join(t[i], NULL);
        SZ_CHECK_INT(a[i].ok, TH_PUTS);
        SZ_CHECK_INT(a[i].wrong_thread, 0);
    }
    /* Every put of the shared owner got its own version. */
    struct rres *r = sz_calloc(1, sizeof(*r));
    SZ_CHECK_INT(get(s, "shared@th.example", r), 0);
    SZ_CHECK_INT(r->ver, TH_N * TH_PUTS);
    sz_free(r);
    /* Item versions straight from the table: all distinct, 1..N. */
    struct {
        size_t n;
        uint8_t seen[TH_N * TH_PUTS + 1];
        int dup;
    } v = {0};
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT version FROM roster_items WHERE localpart = 'shared'",
                               -1, &st, NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW) {
                int64_t x = sqlite3_column_int64(st, 0);
                v.n++;
                if (x < 1 || x > TH_N * TH_PUTS || v.seen[x]++)
                    v.dup++;
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    SZ_CHECK_INT(v.n, TH_N * TH_PUTS);
    SZ_CHECK_INT(v.dup, 0);
    sz_store_close(s);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    sz_log_set_level(SZ_LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_roster_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    sz_store_register_handlers();
    SZ_RUN(empty_roster);
    SZ_RUN(versions);
    SZ_RUN(names_and_groups);
    SZ_RUN(max_items);
    SZ_RUN(pending);
    SZ_RUN(account_delete_cascades);
    SZ_RUN(async_from_reactor);
    SZ_RUN(blocking_from_threads);
    rm_rf(tmpdir);
    return sz_test_done();
}
