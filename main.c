/*
 * stanzad: command line, signals, and the node's life. The main thread
 * owns no connection; after start-up it only waits for signals:
 * SIGTERM/SIGINT stop the node cleanly (exit 0), SIGHUP reopens the log
 * and reloads what can be reloaded from the config file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/router.h"
#include "net/c2s.h"
#include "net/node.h"
#include "net/tls.h"
#include "storage/store.h"

#define SZ_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "usage: stanzad --config FILE      run a node\n"
               "       stanzad --check-config FILE check a config file and exit\n"
               "       stanzad --version\n");
}

static sz_conf_t *load(const char *path)
{
    sz_conf_t *c = NULL;
    char err[1024];
    if (sz_conf_load(path, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return c;
}

/* The account lookup handed to c2s: storage completes on the calling
 * reactor, as c2s requires. */
static int creds_lookup(void *ctx, const sz_jid_t *jid, sz_c2s_creds_cb cb, void *arg)
{
    return sz_store_account_get_creds(ctx, jid, cb, arg);
}

/* Account existence for the router: creds found means it exists. */
struct exists_req {
    void (*cb)(void *arg, int res);
    void *arg;
};

static void exists_done(void *arg, int res, const sz_scram_creds_t *creds)
{
    struct exists_req *q = arg;
    (void)creds;
    q->cb(q->arg, res == 0 ? 1 : res == -ENOENT ? 0 : res);
    sz_free(q);
}

static int account_exists(void *ctx, const sz_jid_t *jid, void (*cb)(void *arg, int res), void *arg)
{
    struct exists_req *q = sz_malloc(sizeof(*q));
    q->cb = cb;
    q->arg = arg;
    int ret = sz_store_account_get_creds(ctx, jid, exists_done, q);
    if (ret < 0)
        sz_free(q);
    return ret;
}

static int offload(void *ctx, void (*fn)(void *arg), sz_c2s_done_cb cb, void *arg)
{
    return sz_store_call(ctx, fn, cb, arg);
}

/* TLS context from the hosts' certificates; NULL (and no error) when no
 * host has one. Returns -1 after printing the error. */
static int load_tls(const sz_conf_t *conf, sz_tls_ctx_t **out)
{
    char err[1024];
    *out = NULL;
    int ret = sz_tls_ctx_new(conf, out, err, sizeof(err));
    if (ret == -ENOENT)
        return 0;
    if (ret < 0) {
        fprintf(stderr, "%s: %s\n", conf->path, err);
        return -1;
    }
    return 0;
}

static void reload(sz_node_t *node, sz_conf_t *cur)
{
    char err[1024];
    sz_conf_t *next = NULL;
    if (sz_conf_load(cur->path, &next, err, sizeof(err)) < 0) {
        SZ_ERROR("msg=\"reload failed, keeping the running config\" error=\"%s\"", err);
        return;
    }
    char note[512] = "";
    int fixed = sz_conf_apply_reload(cur, next, note, sizeof(note));
    sz_conf_free(next);
    int ret = sz_log_open(cur->node.log_file);
    if (ret < 0)
        SZ_ERROR("msg=\"cannot reopen log\" path=\"%s\" err=\"%s\"", cur->node.log_file,
                 strerror(-ret));
    sz_node_reload(node, cur);
    /* Certificates: new connections use the new context, live ones keep
     * theirs. A bad file keeps the old context. */
    sz_tls_ctx_t *tls = NULL;
    if (load_tls(cur, &tls) < 0) {
        SZ_ERROR("msg=\"certificates not reloaded, keeping the running ones\"");
    } else if (tls) {
        sz_c2s_set_tls(tls);
        sz_tls_ctx_unref(tls);
    }
    if (fixed > 0)
        SZ_WARN("msg=\"changed keys need a restart\" keys=\"%s\"", note);
    SZ_INFO("msg=\"reloaded\" path=\"%s\"", cur->path);
}

static int run(const char *path)
{
    sz_conf_t *conf = load(path);
    if (!conf)
        return 1;
    sz_log_set_level(conf->node.log_level);
    int ret = sz_log_open(conf->node.log_file);
    if (ret < 0) {
        fprintf(stderr, "%s: node.log_file: cannot open %s: %s\n", path, conf->node.log_file,
                strerror(-ret));
        sz_conf_free(conf);
        return 1;
    }
    /* Signals are taken synchronously by this thread only: block them
     * before any reactor thread exists, so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    sz_tls_ctx_t *tls = NULL;
    if (load_tls(conf, &tls) < 0) {
        sz_conf_free(conf);
        return 1;
    }
    sz_store_t *store = NULL;
    sz_store_opts_t so = {.backend = conf->storage.backend,
                          .path = conf->storage.path,
                          .wake_batch_us = conf->node.batch_wait_us};
    if (sz_store_open(&so, &store, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        sz_tls_ctx_unref(tls);
        sz_conf_free(conf);
        return 1;
    }
    sz_store_register_handlers();
    sz_c2s_accounts_t acc = {creds_lookup, offload, store};
    sz_c2s_configure(conf, &acc, tls);
    sz_router_set_exists(account_exists, store);
    sz_mod_env_t mods = {conf, store, sz_scram_derive_all};
    sz_mods_register(&mods);
    sz_tls_ctx_unref(tls); /* c2s holds its own reference */
    sz_node_t *node = sz_node_start(conf, err, sizeof(err));
    if (!node) {
        fprintf(stderr, "stanzad: %s\n", err);
        sz_c2s_release();
        sz_store_close(store);
        sz_conf_free(conf);
        sz_log_open(NULL);
        return 1;
    }
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (sig == SIGHUP) {
            reload(node, conf);
            continue;
        }
        SZ_INFO("msg=\"signal received, stopping\" signal=%s", sig == SIGINT ? "INT" : "TERM");
        break;
    }
    sz_node_stop(node);
    sz_c2s_release();
    sz_store_close(store);
    sz_conf_free(conf);
    sz_log_open(NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("stanzad %s\n", SZ_VERSION);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check-config") == 0) {
        sz_conf_t *c = load(argv[2]);
        if (!c)
            return 1;
        printf("%s: ok\n", argv[2]);
        sz_conf_free(c);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--config") == 0)
        return run(argv[2]);
    usage(stderr);
    return 2;
}
