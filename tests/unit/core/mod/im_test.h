/*
 * Harness of the IM module tests (test_roster.c, test_subscription.c,
 * test_presence.c): one reactor (n = 1) on its own thread running the
 * router with the real module list, a temporary SQLite store, and fake
 * sessions that record what they are delivered.
 *
 * The test bodies run on the reactor thread, between loop runs: each
 * action is followed by settle(), which runs the loop until no module
 * holds a stanza and no storage request is in flight, so storage
 * callbacks come back on the reactor as in the server.
 *
 * Delivered stanzas are kept as text with every ' turned into ", so
 * checks need not care which quote the writer used.
 */
#ifndef SZ_TESTS_IM_TEST_H
#define SZ_TESTS_IM_TEST_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/reactor.h"
#include "core/router.h"
#include "core/xq.h"
#include "storage/roster.h"
#include "storage/store.h"
#include "sz_test.h"

#define IM_DOMAIN "example.org"
#define FS_MAX    128

/* A fake bound session: what it was delivered, in order. */
typedef struct fs {
    sz_session_t s;
    char *out[FS_MAX];
    unsigned n;
} fs_t;

static sz_reactor_t im_r;
static sz_store_t *im_store;
static char im_dir[256];
static int im_init_ret;

static void fs_deliver(sz_session_t *s, sz_stanza_t *st)
{
    fs_t *f = (fs_t *)s;
    size_t len;
    const char *raw = sz_stanza_raw(st, &len);
    char *c = strndup(raw, len);
    for (char *p = c; *p; p++)
        if (*p == '\'')
            *p = '"';
    if (f->n < FS_MAX)
        f->out[f->n++] = c;
    else
        free(c);
    sz_stanza_unref(st);
}

static void fs_kick(sz_session_t *s, enum sz_stream_err cond)
{
    (void)s;
    (void)cond;
}

static const sz_session_ops_t fs_ops = {fs_deliver, fs_kick};

static bool im_quiet(sz_reactor_t *r)
{
    (void)r;
    return sz_hooks_pending() == 0 && sz_store_inflight() == 0 && sz_router_pending() == 0;
}

/* The router's account check (as main.c does it): the credentials read. */
struct im_exists {
    void (*cb)(void *arg, int res);
    void *arg;
};

static void im_exists_done(void *arg, int res, const sz_scram_creds_t *c)
{
    struct im_exists *q = arg;
    (void)c;
    q->cb(q->arg, res == 0 ? 1 : res == -ENOENT ? 0 : res);
    free(q);
}

static int im_exists(void *ctx, const sz_jid_t *jid, void (*cb)(void *arg, int res), void *arg)
{
    struct im_exists *q = malloc(sizeof(*q));
    q->cb = cb;
    q->arg = arg;
    int ret = sz_store_account_get_creds(ctx, jid, im_exists_done, q);
    if (ret < 0)
        free(q);
    return ret;
}

/* Runs the loop until the modules and storage are idle. */
static void settle(void)
{
    im_r.stopping = true;
    sz_reactor_run(&im_r);
}

static void fs_clear(fs_t *f)
{
    for (unsigned i = 0; i < f->n; i++)
        free(f->out[i]);
    f->n = 0;
}

/* Binds a fake session for full JID <full>. */
static void fs_bind(fs_t *f, const char *full)
{
    memset(f, 0, sizeof(*f));
    sz_jid_t *j = NULL;
    SZ_ASSERT(sz_jid_parse(full, strlen(full), &j) == 0);
    f->s.jid = j;
    f->s.ops = &fs_ops;
    SZ_ASSERT(sz_router_bind(&im_r, &f->s) == NULL);
    settle();
}

static void fs_unbind(fs_t *f)
{
    sz_router_unbind(&im_r, &f->s);
    sz_jid_free(f->s.jid);
    f->s.jid = NULL;
    settle();
    fs_clear(f);
}

/* The client of <f> sends <fmt...>, whose 'from' must be f's full JID
 * (c2s stamps it); then the loop settles. */
static void fs_send(fs_t *f, const char *fmt, ...)
{
    char xml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(xml, sizeof(xml), fmt, ap);
    va_end(ap);
    sz_stanza_t *st = sz_stanza_from_xml(xml, strlen(xml));
    SZ_ASSERT(st);
    char to[1024];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, to, sizeof(to));
    sz_jid_buf_t jb;
    sz_jid_t *j = NULL;
    if (n >= 0)
        SZ_ASSERT(sz_jid_parse_into(to, (size_t)n, &jb, sizeof(jb), &j, NULL) == 0);
    sz_router_from_client(&im_r, &f->s, st, j);
    settle();
}

/* Index of the first stanza of <f> (from <from> on) holding every
 * NULL-terminated needle, or -1. */
static int fs_find_from(const fs_t *f, unsigned from, ...)
{
    for (unsigned i = from; i < f->n; i++) {
        va_list ap;
        va_start(ap, from);
        bool all = true;
        for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
            if (!strstr(f->out[i], s)) {
                all = false;
                break;
            }
        va_end(ap);
        if (all)
            return (int)i;
    }
    return -1;
}

#define fs_find(f, ...) fs_find_from((f), 0, __VA_ARGS__, (const char *)NULL)
#define fs_has(f, ...)  (fs_find((f), __VA_ARGS__) >= 0)

static void fs_dump(const fs_t *f)
{
    for (unsigned i = 0; i < f->n; i++)
        printf("#   [%u] %s\n", i, f->out[i]);
}

/* Checks that <f> got a stanza with every needle; dumps what it got if not. */
#define CHECK_GOT(f, ...)                                                                          \
    do {                                                                                           \
        if (!fs_has((f), __VA_ARGS__)) {                                                           \
            printf("# %s:%d: no stanza with " #__VA_ARGS__ "\n", __FILE__, __LINE__);              \
            fs_dump(f);                                                                            \
            sz_t_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NOT(f, ...)                                                                          \
    do {                                                                                           \
        if (fs_has((f), __VA_ARGS__)) {                                                            \
            printf("# %s:%d: unexpected stanza with " #__VA_ARGS__ "\n", __FILE__, __LINE__);      \
            fs_dump(f);                                                                            \
            sz_t_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

/* ---- setup ------------------------------------------------------------------ */

static void im_done(void *arg, int r)
{
    *(int *)arg = r;
}

static void im_account(const char *bare)
{
    sz_scram_creds_t c;
    memset(&c, 0, sizeof(c));
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        c.h[h].iterations = 4096;
        c.h[h].salt_len = SZ_SCRAM_SALT_BYTES;
        c.h[h].key_len = 20;
    }
    sz_jid_t *j = NULL;
    SZ_ASSERT(sz_jid_parse(bare, strlen(bare), &j) == 0);
    int res = 1;
    SZ_ASSERT(sz_store_account_create(im_store, j, &c, im_done, &res) == 0);
    SZ_ASSERT(res == 0);
    sz_jid_free(j);
}

static void (*im_body)(void);

static void *im_thread(void *arg)
{
    (void)arg;
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
    im_init_ret = sz_reactor_init(&im_r, &o);
    if (im_init_ret < 0) {
        sz_xq_free(xq);
        return NULL;
    }
    im_r.quiesced = im_quiet;
    sz_router_init(&im_r);
    im_body();
    settle();
    sz_router_destroy(&im_r);
    sz_xml_scratch_free(); /* the parser's per-thread buffers */
    sz_reactor_destroy(&im_r);
    sz_xq_free(xq);
    return NULL;
}

/* Opens the store, creates the accounts <users> (NULL-terminated bare
 * JIDs), registers the modules, runs <body> on the reactor thread. */
static int im_main(const char *name, const char *const *users, void (*body)(void))
{
    snprintf(im_dir, sizeof(im_dir), "/tmp/sz_%s_XXXXXX", name);
    if (!mkdtemp(im_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/im.db", im_dir);
    sz_store_opts_t so = {.path = path, .workers = 2};
    if (sz_store_open(&so, &im_store, err, sizeof(err)) < 0) {
        printf("# store: %s\n", err);
        return 1;
    }
    sz_store_register_handlers();
    for (unsigned i = 0; users[i]; i++)
        im_account(users[i]);
    static const char *const domains[] = {IM_DOMAIN};
    static const bool reg[] = {false};
    sz_router_configure(domains, 1, reg);
    sz_router_set_exists(im_exists, im_store);
    sz_mod_env_t env = {.conf = NULL, .store = im_store};
    sz_mods_register(&env);
    im_body = body;
    pthread_t t;
    pthread_create(&t, NULL, im_thread, NULL);
    pthread_join(t, NULL);
    int ret = 0;
    if (im_init_ret < 0) {
        printf("# reactor init failed (%s): skipped\n", strerror(-im_init_ret));
        ret = SZ_TEST_SKIP;
    } else {
        ret = sz_test_done();
    }
    sz_store_close(im_store);
    sz_hooks_reset();
    unlink(path);
    char aux[600];
    snprintf(aux, sizeof(aux), "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof(aux), "%s-shm", path);
    unlink(aux);
    rmdir(im_dir);
    return ret;
}

#endif
