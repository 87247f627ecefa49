/*
 * Tests for storage/store.c and storage/sqlite.c: blocking use from a plain
 * thread, asynchronous use from a real reactor (callbacks come back on the
 * reactor's thread, per-account order kept), concurrent writers in other
 * processes and threads, migrations of a new file, reopening, a file newer
 * than the build, and the messages for bad paths.
 *
 * Child mode: "test_storage_store --child PATH PREFIX N" opens PATH and
 * creates N accounts PREFIX<i>@example.org one by one (the other process
 * of the concurrent-writers test).
 */
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/reactor.h"
#include "core/xq.h"
#include "sz_test.h"

extern char **environ;

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

/* Fake but well-formed credentials; <seed> makes them distinguishable. */
static void fake_creds(sz_scram_creds_t *c, uint8_t seed)
{
    static const uint8_t klen[SZ_HASH_COUNT] = {20, 32, 64};
    memset(c, 0, sizeof(*c));
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        sz_scram_cred_t *x = &c->h[h];
        x->iterations = 4096 + seed;
        x->salt_len = SZ_SCRAM_SALT_BYTES;
        x->key_len = klen[h];
        for (int i = 0; i < SZ_SCRAM_SALT_BYTES; i++)
            x->salt[i] = (uint8_t)(seed + i + h);
        for (int i = 0; i < klen[h]; i++) {
            x->stored_key[i] = (uint8_t)(seed * 3 + i);
            x->server_key[i] = (uint8_t)(seed * 7 + i + h);
        }
    }
}

static bool creds_eq(const sz_scram_creds_t *a, const sz_scram_creds_t *b)
{
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        const sz_scram_cred_t *x = &a->h[h], *y = &b->h[h];
        if (x->iterations != y->iterations || x->salt_len != y->salt_len ||
            x->key_len != y->key_len || memcmp(x->salt, y->salt, x->salt_len) != 0 ||
            memcmp(x->stored_key, y->stored_key, x->key_len) != 0 ||
            memcmp(x->server_key, y->server_key, x->key_len) != 0)
            return false;
    }
    return true;
}

/* Workers' wake-up batching for the stores opened by open_at(). */
static unsigned open_wake_us;

static sz_store_t *open_at(const char *path, unsigned workers)
{
    char err[512] = "";
    sz_store_opts_t o = {.path = path, .workers = workers, .wake_batch_us = open_wake_us};
    sz_store_t *s = NULL;
    int ret = sz_store_open(&o, &s, err, sizeof(err));
    if (ret < 0)
        printf("# open %s: %s\n", path, err);
    return s;
}

/* Blocking-call results. */
struct res {
    int res;
    int calls;
    pthread_t thread;
    sz_scram_creds_t creds;
    uint64_t n;
    char names[64][64];
    size_t nnames;
    bool more;
};

static void on_done(void *arg, int res)
{
    struct res *r = arg;
    r->res = res;
    r->calls++;
    r->thread = pthread_self();
}

static void on_creds(void *arg, int res, const sz_scram_creds_t *c)
{
    struct res *r = arg;
    r->res = res;
    r->calls++;
    if (c)
        r->creds = *c;
}

static void on_count(void *arg, int res, uint64_t n)
{
    struct res *r = arg;
    r->res = res;
    r->calls++;
    r->n = n;
}

static void on_names(void *arg, int res, const sz_store_names_t *p)
{
    struct res *r = arg;
    r->res = res;
    r->calls++;
    r->nnames = 0;
    if (!p)
        return;
    for (size_t i = 0; i < p->n && i < 64; i++)
        snprintf(r->names[r->nnames++], sizeof(r->names[0]), "%s", p->names[i]);
    r->more = p->more;
}

static int create_sync(sz_store_t *s, const char *j, uint8_t seed)
{
    sz_scram_creds_t c;
    fake_creds(&c, seed);
    sz_jid_t *jj = jid(j);
    struct res r = {0};
    int ret = sz_store_account_create(s, jj, &c, on_done, &r);
    sz_jid_free(jj);
    if (ret < 0)
        return ret;
    return r.calls == 1 ? r.res : -999;
}

static int64_t count_sync(sz_store_t *s, const char *domain)
{
    struct res r = {0};
    if (sz_store_account_count(s, domain, on_count, &r) < 0 || r.res < 0)
        return -1;
    return (int64_t)r.n;
}

static int schema_version_of(const char *path)
{
    sqlite3 *h = NULL;
    int v = -1;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT max(version) FROM schema_version", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

/* ---- blocking use ------------------------------------------------------- */

SZ_TEST(migrate_new_file)
{
    snprintf(dbpath, sizeof(dbpath), "%s/a.db", tmpdir);
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    SZ_CHECK_STR(sz_store_backend(s), "sqlite");
    sz_store_close(s);
    SZ_CHECK(schema_version_of(dbpath) >= 2); /* later migrations may follow */
}

/* sz_store_call: the function runs on a worker thread, the callback after
 * it, on the caller (blocking caller here). */
struct call_rec {
    pthread_t caller, worker;
    int ran, done, res;
};

static void call_fn(void *arg)
{
    struct call_rec *c = arg;
    c->worker = pthread_self();
    c->ran++;
}

static void call_done(void *arg, int res)
{
    struct call_rec *c = arg;
    c->done += c->ran; /* 1 only if the function ran first */
    c->res = res;
}

SZ_TEST(call_on_worker)
{
    snprintf(dbpath, sizeof(dbpath), "%s/call.db", tmpdir);
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    struct call_rec c = {.caller = pthread_self(), .res = -1};
    SZ_CHECK_INT(sz_store_call(s, call_fn, call_done, &c), 0);
    SZ_CHECK_INT(c.ran, 1);
    SZ_CHECK_INT(c.done, 1);
    SZ_CHECK_INT(c.res, 0);
    SZ_CHECK(!pthread_equal(c.worker, c.caller));
    SZ_CHECK_INT(sz_store_call(s, NULL, call_done, &c), -EINVAL);
    sz_store_close(s);
}

SZ_TEST(sync_accounts)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    SZ_CHECK_INT(create_sync(s, "alice@example.org", 1), 0);
    SZ_CHECK_INT(create_sync(s, "alice@example.org", 2), -EEXIST);
    /* Normalized at the boundary: same account. */
    SZ_CHECK_INT(create_sync(s, "ALICE@Example.ORG/phone", 2), -EEXIST);
    SZ_CHECK_INT(create_sync(s, "bob@example.org", 3), 0);
    SZ_CHECK_INT(create_sync(s, "carol@other.example", 4), 0);

    sz_scram_creds_t want;
    fake_creds(&want, 1);
    sz_jid_t *a = jid("Alice@EXAMPLE.org");
    struct res r = {0};
    SZ_CHECK_INT(sz_store_account_get_creds(s, a, on_creds, &r), 0);
    SZ_CHECK_INT(r.calls, 1); /* before return, on this thread */
    SZ_CHECK_INT(r.res, 0);
    SZ_CHECK(creds_eq(&r.creds, &want));

    /* Password change. */
    fake_creds(&want, 9);
    memset(&r, 0, sizeof(r));
    SZ_CHECK_INT(sz_store_account_set_creds(s, a, &want, on_done, &r), 0);
    SZ_CHECK_INT(r.res, 0);
    SZ_CHECK(pthread_equal(r.thread, pthread_self()));
    memset(&r, 0, sizeof(r));
    sz_store_account_get_creds(s, a, on_creds, &r);
    SZ_CHECK(creds_eq(&r.creds, &want));

    /* A hash without credentials comes back with key_len 0. */
    sz_scram_creds_t partial = want;
    memset(&partial.h[SZ_HASH_SHA1], 0, sizeof(partial.h[0]));
    memset(&r, 0, sizeof(r));
    sz_store_account_set_creds(s, a, &partial, on_done, &r);
    SZ_CHECK_INT(r.res, 0);
    memset(&r, 0, sizeof(r));
    sz_store_account_get_creds(s, a, on_creds, &r);
    SZ_CHECK_INT(r.creds.h[SZ_HASH_SHA1].key_len, 0);
    SZ_CHECK(creds_eq(&r.creds, &partial));

    SZ_CHECK_INT(count_sync(s, "example.org"), 2);
    SZ_CHECK_INT(count_sync(s, "EXAMPLE.org"), 2);
    SZ_CHECK_INT(count_sync(s, NULL), 3);
    SZ_CHECK_INT(count_sync(s, "nobody.example"), 0);

    /* Delete, then everything about it says ENOENT. */
    memset(&r, 0, sizeof(r));
    SZ_CHECK_INT(sz_store_account_delete(s, a, on_done, &r), 0);
    SZ_CHECK_INT(r.res, 0);
    memset(&r, 0, sizeof(r));
    sz_store_account_delete(s, a, on_done, &r);
    SZ_CHECK_INT(r.res, -ENOENT);
    memset(&r, 0, sizeof(r));
    sz_store_account_get_creds(s, a, on_creds, &r);
    SZ_CHECK_INT(r.res, -ENOENT);
    memset(&r, 0, sizeof(r));
    sz_store_account_set_creds(s, a, &want, on_done, &r);
    SZ_CHECK_INT(r.res, -ENOENT);
    SZ_CHECK_INT(count_sync(s, "example.org"), 1);

    /* Invalid arguments fail before queueing, without a callback. */
    sz_jid_t *dom = jid("example.org");
    memset(&r, 0, sizeof(r));
    SZ_CHECK_INT(sz_store_account_create(s, dom, &want, on_done, &r), -EINVAL);
    SZ_CHECK_INT(sz_store_account_get_creds(s, NULL, on_creds, &r), -EINVAL);
    SZ_CHECK_INT(sz_store_account_list(s, "bad..domain", NULL, 10, on_names, &r), -EINVAL);
    SZ_CHECK_INT(sz_store_account_list(s, "example.org", NULL, 0, on_names, &r), -EINVAL);
    SZ_CHECK_INT(r.calls, 0);
    sz_jid_free(dom);
    sz_jid_free(a);
    sz_store_close(s);
}

SZ_TEST(list_pages)
{
    sz_store_t *s = open_at(dbpath, 1);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    char j[64];
    for (int i = 0; i < 25; i++) {
        snprintf(j, sizeof(j), "u%02d@list.example", i);
        SZ_CHECK_INT(create_sync(s, j, (uint8_t)i), 0);
    }
    struct res r = {0};
    SZ_CHECK_INT(sz_store_account_list(s, "list.example", NULL, 10, on_names, &r), 0);
    SZ_CHECK_INT(r.res, 0);
    SZ_CHECK_INT(r.nnames, 10);
    SZ_CHECK(r.more);
    SZ_CHECK_STR(r.names[0], "u00");
    SZ_CHECK_STR(r.names[9], "u09");
    char after[64];
    snprintf(after, sizeof(after), "%s", r.names[9]);
    sz_store_account_list(s, "list.example", after, 10, on_names, &r);
    SZ_CHECK_INT(r.nnames, 10);
    SZ_CHECK_STR(r.names[0], "u10");
    SZ_CHECK(r.more);
    snprintf(after, sizeof(after), "%s", r.names[9]);
    sz_store_account_list(s, "LIST.example", after, 10, on_names, &r);
    SZ_CHECK_INT(r.nnames, 5);
    SZ_CHECK_STR(r.names[4], "u24");
    SZ_CHECK(!r.more);
    /* Exactly a page left: no "more". */
    sz_store_account_list(s, "list.example", "u14", 10, on_names, &r);
    SZ_CHECK_INT(r.nnames, 10);
    SZ_CHECK(!r.more);
    sz_store_account_list(s, "empty.example", NULL, 10, on_names, &r);
    SZ_CHECK_INT(r.res, 0);
    SZ_CHECK_INT(r.nnames, 0);
    SZ_CHECK(!r.more);
    sz_store_close(s);
}

SZ_TEST(batch_create)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    enum { N = 500 };
    sz_store_new_account_t *items = sz_calloc(N, sizeof(*items));
    sz_jid_t **jids = sz_calloc(N, sizeof(*jids));
    sz_scram_creds_t c;
    fake_creds(&c, 5);
    char j[64];
    for (int i = 0; i < N; i++) {
        /* Two duplicates inside the batch and one already stored. */
        if (i == 10 || i == 11)
            snprintf(j, sizeof(j), "dup@batch.example");
        else if (i == 20)
            snprintf(j, sizeof(j), "bob@example.org");
        else
            snprintf(j, sizeof(j), "b%d@batch.example", i);
        jids[i] = jid(j);
        items[i].jid = jids[i];
        items[i].creds = &c;
    }
    struct res r = {0};
    SZ_CHECK_INT(sz_store_account_create_many(s, items, N, on_done, &r), 0);
    SZ_CHECK_INT(r.calls, 1);
    SZ_CHECK_INT(r.res, 0);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += items[i].res == 0;
    SZ_CHECK_INT(ok, N - 2);
    SZ_CHECK_INT(items[11].res, -EEXIST);
    SZ_CHECK_INT(items[20].res, -EEXIST);
    SZ_CHECK_INT(count_sync(s, "batch.example"), N - 2);
    SZ_CHECK_INT(sz_store_account_create_many(s, items, 0, on_done, &r), -EINVAL);
    for (int i = 0; i < N; i++)
        sz_jid_free(jids[i]);
    sz_free(jids);
    sz_free(items);
    sz_store_close(s);
}

SZ_TEST(reopen_keeps_data)
{
    sz_store_t *s = open_at(dbpath, 3);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    SZ_CHECK_INT(count_sync(s, "list.example"), 25);
    SZ_CHECK_INT(create_sync(s, "bob@example.org", 1), -EEXIST);
    sz_store_close(s);
    SZ_CHECK(schema_version_of(dbpath) >= 2); /* later migrations may follow */
}

/* ---- reactor use -------------------------------------------------------- */

#define ASYNC_N 300

struct rx {
    sz_reactor_t r;
    pthread_t thread;
    sz_store_t *s;
    const char *domain;
    sz_jid_t *jids[ASYNC_N];
    sz_scram_creds_t c1, c2;
    int pending;
    int ok_create, ok_set, ok_get, wrong_thread, early;
    bool submitted;
    int64_t count;
    sz_timer_t deadline;
    bool timed_out;
    int init_ret;
};

static struct rx rx;

static void rx_maybe_stop(void)
{
    if (rx.submitted && rx.pending == 0) {
        sz_timer_cancel(&rx.r.wheel, &rx.deadline);
        rx.r.stopping = true;
    }
}

static void rx_check_thread(void)
{
    if (!pthread_equal(pthread_self(), rx.thread) || sz_reactor_self() != &rx.r)
        rx.wrong_thread++;
    if (!rx.submitted)
        rx.early++; /* a callback ran before its submit returned */
}

static void rx_on_create(void *arg, int res)
{
    rx_check_thread();
    rx.ok_create += res == 0;
    rx.pending--;
    rx_maybe_stop();
}

static void rx_on_set(void *arg, int res)
{
    rx_check_thread();
    rx.ok_set += res == 0;
    rx.pending--;
    rx_maybe_stop();
}

static void rx_on_get(void *arg, int res, const sz_scram_creds_t *c)
{
    rx_check_thread();
    /* Same account, same worker, submission order: the get sees the set. */
    rx.ok_get += res == 0 && c && creds_eq(c, &rx.c2);
    rx.pending--;
    rx_maybe_stop();
}

static void rx_on_count(void *arg, int res, uint64_t n)
{
    rx_check_thread();
    rx.count = res == 0 ? (int64_t)n : -1;
    rx.pending--;
    rx_maybe_stop();
}

static void rx_on_deadline(sz_timer_t *t)
{
    rx.timed_out = true;
    rx.r.stopping = true;
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
    for (int i = 0; i < ASYNC_N; i++) {
        int ret = sz_store_account_create(rx.s, rx.jids[i], &rx.c1, rx_on_create, NULL);
        rx.pending += ret == 0;
        ret = sz_store_account_set_creds(rx.s, rx.jids[i], &rx.c2, rx_on_set, NULL);
        rx.pending += ret == 0;
        ret = sz_store_account_get_creds(rx.s, rx.jids[i], rx_on_get, NULL);
        rx.pending += ret == 0;
    }
    rx.pending += sz_store_account_count(rx.s, rx.domain, rx_on_count, NULL) == 0;
    rx.submitted = true;
    sz_timer_arm(&rx.r.wheel, &rx.deadline, sz_reactor_now(&rx.r) + 20000, rx_on_deadline);
    rx_maybe_stop();
    sz_reactor_run(&rx.r);
    sz_reactor_destroy(&rx.r);
    sz_xq_free(xq);
    return NULL;
}

/* Once with workers that wake at the first doorbell, once with workers
 * that batch their wake-ups (the doorbells then wait for their wait). */
static void async_from_reactor_with(unsigned wake_us, const char *domain)
{
    memset(&rx, 0, sizeof(rx));
    rx.domain = domain;
    open_wake_us = wake_us;
    rx.s = open_at(dbpath, 3);
    open_wake_us = 0;
    SZ_CHECK(rx.s != NULL);
    if (!rx.s)
        return;
    fake_creds(&rx.c1, 40);
    fake_creds(&rx.c2, 41);
    char j[64];
    for (int i = 0; i < ASYNC_N; i++) {
        snprintf(j, sizeof(j), "a%d@%s", i, domain);
        rx.jids[i] = jid(j);
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
        SZ_CHECK_INT(rx.ok_create, ASYNC_N);
        SZ_CHECK_INT(rx.ok_set, ASYNC_N);
        SZ_CHECK_INT(rx.ok_get, ASYNC_N);
        /* The count may run before or after the creates (no key). */
        SZ_CHECK(rx.count >= 0 && rx.count <= ASYNC_N);
        SZ_CHECK_INT(count_sync(rx.s, domain), ASYNC_N);
    }
    for (int i = 0; i < ASYNC_N; i++)
        sz_jid_free(rx.jids[i]);
    sz_store_close(rx.s);
}

SZ_TEST(async_from_reactor)
{
    async_from_reactor_with(0, "async.example");
    async_from_reactor_with(5000, "async2.example");
}

/* ---- concurrency -------------------------------------------------------- */

#define WRITERS_N 200

struct writer_arg {
    sz_store_t *s;
    int id;
    int ok;
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    char j[64];
    for (int i = 0; i < WRITERS_N; i++) {
        snprintf(j, sizeof(j), "t%d-%d@threads.example", a->id, i);
        a->ok += create_sync(a->s, j, (uint8_t)i) == 0;
    }
    return NULL;
}

SZ_TEST(blocking_callers_on_threads)
{
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    struct writer_arg a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct writer_arg){s, i, 0};
        pthread_create(&t[i], NULL, writer_main, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        SZ_CHECK_INT(a[i].ok, WRITERS_N);
    }
    SZ_CHECK_INT(count_sync(s, "threads.example"), 4 * WRITERS_N);
    sz_store_close(s);
}

static int child_main(const char *path, const char *prefix, int n)
{
    sz_store_t *s = open_at(path, 1);
    if (!s)
        return 3;
    char j[128];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        snprintf(j, sizeof(j), "%s%d@procs.example", prefix, i);
        int ret = create_sync(s, j, (uint8_t)i);
        if (ret < 0) {
            printf("# child %s: %s: %s\n", prefix, j, strerror(-ret));
            bad++;
        }
    }
    sz_store_close(s);
    return bad ? 1 : 0;
}

static pid_t spawn_child(const char *prefix, int n)
{
    char nbuf[16];
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    char *argv[] = {
        (char *)"/proc/self/exe", (char *)"--child", dbpath, (char *)prefix, nbuf, NULL};
    pid_t pid = -1;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        return -1;
    return pid;
}

SZ_TEST(concurrent_processes)
{
    /* Two other processes write one account per transaction while this one
     * writes batches and single accounts to the same file: with WAL and the
     * busy timeout nobody fails and nothing is lost. */
    pid_t p1 = spawn_child("x", WRITERS_N);
    pid_t p2 = spawn_child("y", WRITERS_N);
    SZ_CHECK(p1 > 0 && p2 > 0);
    sz_store_t *s = open_at(dbpath, 2);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    enum { B = 50 };
    sz_store_new_account_t items[B];
    sz_jid_t *jids[B];
    sz_scram_creds_t c;
    fake_creds(&c, 77);
    char j[64];
    int ok = 0;
    for (int round = 0; round < WRITERS_N / B; round++) {
        for (int i = 0; i < B; i++) {
            snprintf(j, sizeof(j), "z%d@procs.example", round * B + i);
            jids[i] = jid(j);
            items[i] = (sz_store_new_account_t){.jid = jids[i], .creds = &c};
        }
        struct res r = {0};
        SZ_CHECK_INT(sz_store_account_create_many(s, items, B, on_done, &r), 0);
        SZ_CHECK_INT(r.res, 0);
        for (int i = 0; i < B; i++) {
            ok += items[i].res == 0;
            sz_jid_free(jids[i]);
        }
        snprintf(j, sizeof(j), "w%d@procs.example", round);
        ok += create_sync(s, j, 1) == 0;
    }
    SZ_CHECK_INT(ok, WRITERS_N + WRITERS_N / B);
    int st1 = -1, st2 = -1;
    if (p1 > 0)
        waitpid(p1, &st1, 0);
    if (p2 > 0)
        waitpid(p2, &st2, 0);
    SZ_CHECK(WIFEXITED(st1) && WEXITSTATUS(st1) == 0);
    SZ_CHECK(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
    SZ_CHECK_INT(count_sync(s, "procs.example"), 3 * WRITERS_N + WRITERS_N / B);
    sz_store_close(s);
}

/* ---- schema and path errors --------------------------------------------- */

static int open_err(const char *path, char *err, size_t errlen)
{
    sz_store_opts_t o = {.path = path};
    sz_store_t *s = NULL;
    err[0] = '\0';
    int ret = sz_store_open(&o, &s, err, errlen);
    if (ret == 0)
        sz_store_close(s);
    printf("# %s -> %d: %s\n", path, ret, err);
    return ret;
}

SZ_TEST(newer_schema_refused)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/future.db", tmpdir);
    sz_store_t *s = open_at(p, 1);
    SZ_CHECK(s != NULL);
    sz_store_close(s);
    sqlite3 *h = NULL;
    SZ_CHECK_INT(sqlite3_open(p, &h), SQLITE_OK);
    SZ_CHECK_INT(sqlite3_exec(h, "INSERT INTO schema_version VALUES (99, 0)", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(h);
    char err[512];
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -EPROTO);
    SZ_CHECK(strstr(err, "schema version 99") != NULL);
    SZ_CHECK(strstr(err, p) != NULL);
}

SZ_TEST(bad_paths)
{
    char p[600], err[512];
    snprintf(p, sizeof(p), "%s/missing/dir/x.db", tmpdir);
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -ENOENT);
    SZ_CHECK(strstr(err, "missing/dir does not exist") != NULL);
    SZ_CHECK(strstr(err, "storage.path") == err);

    /* A directory where the file should be. */
    snprintf(p, sizeof(p), "%s/adir", tmpdir);
    mkdir(p, 0700);
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -EISDIR);
    SZ_CHECK(strstr(err, p) != NULL);

    /* A file that is not a database. */
    snprintf(p, sizeof(p), "%s/garbage.db", tmpdir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite file\n", f);
    fclose(f);
    SZ_CHECK(open_err(p, err, sizeof(err)) < 0);
    SZ_CHECK(strstr(err, "not an SQLite database") != NULL);
    SZ_CHECK(strstr(err, p) != NULL);

    /* A parent that is a file. */
    snprintf(p, sizeof(p), "%s/garbage.db/x.db", tmpdir);
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -ENOTDIR);

    SZ_CHECK_INT(open_err("", err, sizeof(err)), -EINVAL);

    sz_store_opts_t o = {.path = dbpath, .backend = "postgres"};
    sz_store_t *s = NULL;
    SZ_CHECK_INT(sz_store_open(&o, &s, err, sizeof(err)), -EINVAL);
    SZ_CHECK(strstr(err, "postgres") != NULL);

    if (geteuid() == 0) {
        printf("# running as root: permission checks skipped\n");
        return;
    }
    /* Unwritable file, unwritable directory. */
    snprintf(p, sizeof(p), "%s/ro.db", tmpdir);
    s = open_at(p, 1);
    sz_store_close(s);
    chmod(p, 0400);
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -EACCES);
    SZ_CHECK(strstr(err, "not writable") != NULL && strstr(err, p) != NULL);
    chmod(p, 0600);
    snprintf(p, sizeof(p), "%s/rodir", tmpdir);
    mkdir(p, 0500);
    snprintf(p, sizeof(p), "%s/rodir/x.db", tmpdir);
    SZ_CHECK_INT(open_err(p, err, sizeof(err)), -EACCES);
    SZ_CHECK(strstr(err, "rodir is not writable") != NULL);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3], atoi(argv[4]));
    sz_log_set_level(SZ_LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_store_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    sz_store_register_handlers();
    SZ_RUN(migrate_new_file);
    SZ_RUN(call_on_worker);
    SZ_RUN(sync_accounts);
    SZ_RUN(list_pages);
    SZ_RUN(batch_create);
    SZ_RUN(reopen_keeps_data);
    SZ_RUN(async_from_reactor);
    SZ_RUN(blocking_callers_on_threads);
    SZ_RUN(concurrent_processes);
    SZ_RUN(newer_schema_refused);
    SZ_RUN(bad_paths);
    rm_rf(tmpdir);
    return sz_test_done();
}
