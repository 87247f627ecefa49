/*
 * Contract between the storage front end (store.c) and its backends
 * (sqlite.c, later redis.c). Private to storage/: callers of the store see
 * only storage/store.h.
 *
 * A request is one allocation made on the submitting thread: the header
 * below, the operation's arguments and results, and a tail holding copies
 * of the key strings. The front end queues it to a worker; the worker
 * calls the backend's exec() with its own connection, which fills <res>
 * and the results; the front end then hands it back to the submitting
 * thread, runs the callback there and frees it there.
 *
 * Adding an operation (rosters, offline, MAM, vCards, PEP, MUC config):
 * one enum value, one member of the args union, one submit function in
 * store.c with its typed callback, one case in each backend's exec().
 */
#ifndef SZ_STORAGE_BACKEND_H
#define SZ_STORAGE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

enum sz_store_op {
    SZ_STORE_ACCOUNT_CREATE = 1,
    SZ_STORE_ACCOUNT_CREATE_MANY,
    SZ_STORE_ACCOUNT_DELETE,
    SZ_STORE_ACCOUNT_SET_CREDS,
    SZ_STORE_ACCOUNT_GET_CREDS,
    SZ_STORE_ACCOUNT_LIST,
    SZ_STORE_ACCOUNT_COUNT,
    SZ_STORE_CALL, /* run a caller's function on the worker (no backend) */
    SZ_STORE_OP_COUNT
};

/* A string slice into the request's tail, NUL-terminated there. */
typedef struct sz_store_str {
    const char *p;
    size_t len;
} sz_store_str_t;

typedef struct sz_store_req sz_store_req_t;

struct sz_store_req {
    /* ---- front end (store.c) ---- */
    sz_store_req_t *_next;                /* worker queue link */
    int _ring_fd;                         /* submitting reactor's ring, -1 for a blocking caller */
    struct sz_store_wait *_wait;          /* blocking caller's wake-up, else NULL */
    void (*_complete)(sz_store_req_t *q); /* runs the typed callback */
    union {
        sz_store_done_fn done;
        sz_store_creds_fn creds;
        sz_store_count_fn count;
        sz_store_names_fn names;
    } _cb;
    void *_arg;

    /* ---- shared with the backend ---- */
    enum sz_store_op op;
    int res; /* backend output: 0 or -errno */

    /* Account key (single-account ops) or domain (list, count; domain.p
     * is NULL for "all domains"). */
    sz_store_str_t local, domain;

    union {
        struct {
            sz_scram_creds_t creds; /* in: create/set; out: get */
        } acct;
        struct {
            sz_store_new_account_t *items; /* borrowed from the caller */
            size_t n;
        } many;
        struct {
            sz_store_str_t after; /* in: p may be NULL */
            unsigned limit;       /* in */
            char **names;         /* out: backend allocates (sz_malloc), front end frees */
            size_t n;             /* out */
            bool more;            /* out */
        } list;
        struct {
            uint64_t n; /* out */
        } count;
        struct {
            void (*fn)(void *arg); /* in: runs on the worker */
        } call;
    } u;
};

/*
 * A backend. open, close, conn_open and conn_close run on the thread that
 * opens/closes the store (so start-up errors are reported synchronously);
 * between conn_open and conn_close a connection is used by exactly one
 * worker thread, through exec. exec may block (that is what workers are
 * for) and must set q->res.
 */
typedef struct sz_store_backend {
    const char *name;
    /* Prepares the database (creates, migrates). Returns 0 or -errno with a
     * one-line message in <err>. *<db> is the backend's shared state. */
    int (*open)(const sz_store_opts_t *o, void **db, char *err, size_t errlen);
    void (*close)(void *db);
    /* Per worker. Returns 0 or -errno with a message in <err>. */
    int (*conn_open)(void *db, void **conn, char *err, size_t errlen);
    void (*conn_close)(void *conn);
    void (*exec)(void *conn, sz_store_req_t *q);
} sz_store_backend_t;

extern const sz_store_backend_t sz_store_sqlite;

#endif
