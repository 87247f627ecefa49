/*
 * Storage API (DESIGN §5): one asynchronous interface in front of blocking
 * backends (SQLite now, Redis later). A caller submits a request and gets
 * its result in a typed callback; the request runs on one of the store's
 * worker threads, never on a reactor.
 *
 * Where the callback runs:
 * - Submitted on a reactor thread (sz_reactor_self() != NULL): the worker
 *   posts the finished request back to THAT reactor's ring with MSG_RING
 *   (user_data op SZ_OP_STORAGE) and the callback runs there, in a later
 *   loop iteration. Never before the submitting function returns.
 * - Submitted on any other thread (main thread before the node starts,
 *   stanzactl, tests): the call blocks until the worker is done and runs
 *   the callback on the calling thread before it returns.
 *
 * Ordering: requests about the same account (same bare JID) run on the same
 * worker in submission order, so their callbacks come back in that order.
 * Requests without an account key (count, list, batches) may overtake
 * others.
 *
 * Every submitting function returns 0 when the request was accepted: the
 * callback then runs exactly once. It returns -errno (and never calls the
 * callback) when the arguments are invalid (-EINVAL) or the store is
 * closing (-ESHUTDOWN). Results given to a callback (creds, names, ...)
 * live only during the call.
 *
 * Account keys are normalized JIDs (core/jid.h): the bare part of <jid>
 * (local@domain, resource ignored) must have a localpart. Domains given as
 * strings are prepared with sz_jid_prep() here.
 *
 * The credential record is net/scram.h's sz_scram_creds_t: that header is
 * the shared contract (types only); storage never calls into net/.
 */
#ifndef SZ_STORAGE_STORE_H
#define SZ_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "net/scram.h"

typedef struct sz_store sz_store_t;

#define SZ_STORE_WORKERS_DEFAULT 2
#define SZ_STORE_WORKERS_MAX     64
#define SZ_STORE_BUSY_MS_DEFAULT 5000  /* wait for another process's write lock */
#define SZ_STORE_LIST_MAX        1000  /* names per list page */
#define SZ_STORE_BATCH_MAX       10000 /* accounts per create_many transaction */

typedef struct sz_store_opts {
    const char *backend; /* "sqlite" (NULL means "sqlite") */
    const char *path;    /* database file (storage.path); its directory must exist */
    unsigned workers;    /* worker threads (connections); 0 means the default */
    unsigned busy_ms;    /* lock wait before -EBUSY; 0 means the default */
    unsigned wake_batch_us; /* an idle worker, once rung, sleeps on up to this long
                             * for more (node.batch_wait_us); 0: wakes at once */
} sz_store_opts_t;

/**
 * Main thread (or any single non-reactor thread), before any request.
 * Opens the backend, brings the schema to the current version (migrations
 * run once, in one transaction, safe against another process doing the
 * same), opens one connection per worker and starts the workers. On
 * success stores the store in *<out> (caller owns; sz_store_close) and
 * returns 0. On failure returns -errno and writes a one-line message
 * naming the path into <err>, e.g.
 *   storage.path: directory /var/lib/x does not exist (for /var/lib/x/d.db)
 * Nothing is left running on failure.
 */
int sz_store_open(const sz_store_opts_t *o, sz_store_t **out, char *err, size_t errlen);

/**
 * The thread that opened <s>, after every request has completed (reactors
 * quiesced, see sz_store_inflight). Stops the workers (they finish what is
 * queued), closes the connections and frees <s>. NULL is fine.
 */
void sz_store_close(sz_store_t *s);

/**
 * Main thread, before reactors start. Installs the SZ_OP_STORAGE
 * completion handler in the reactor handler table. Needed once per process
 * that submits from reactors.
 */
void sz_store_register_handlers(void);

/**
 * Calling thread. Requests this thread submitted asynchronously whose
 * callbacks have not run yet. A reactor must not stop (quiesced hook) nor
 * the store be closed while this is non-zero on any reactor: the worker
 * would post to a ring that no longer exists.
 */
unsigned sz_store_inflight(void);

/**
 * Reactor thread, end of each loop iteration (registered by
 * sz_store_register_handlers as a reactor iteration hook). Wakes, once,
 * each worker this reactor handed a request to while the worker's queue
 * was empty; requests submitted during one iteration thus cost one
 * wake-up per worker rather than one each.
 */
void sz_store_flush(void);

/** Backend name ("sqlite"). Any thread. */
const char *sz_store_backend(const sz_store_t *s);

/* ---- callbacks --------------------------------------------------------- */

/** Result only: 0 or -errno. */
typedef void (*sz_store_done_fn)(void *arg, int res);
/** <creds> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_creds_fn)(void *arg, int res, const sz_scram_creds_t *creds);
/** <n> is valid when <res> is 0. */
typedef void (*sz_store_count_fn)(void *arg, int res, uint64_t n);

/* One page of names, sorted by byte order. */
typedef struct sz_store_names {
    size_t n;
    const char *const *names; /* n NUL-terminated localparts */
    bool more;                /* further names follow the last one */
} sz_store_names_t;

/** <page> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_names_fn)(void *arg, int res, const sz_store_names_t *page);

/* ---- accounts ---------------------------------------------------------- */

/**
 * Creates account <jid> with <creds>. <jid> and <creds> are copied before
 * return. Result: 0, -EEXIST (already there), -EBUSY (lock wait expired),
 * -EIO.
 */
/**
 * Runs <fn>(<arg>) on a storage worker, then <cb>(<arg>, 0) as for any
 * request: CPU-heavy work a reactor must not do itself (key derivation).
 * <arg> belongs to the caller, who must not touch what <fn> uses until
 * <cb> runs. Returns 0, -EINVAL or -ESHUTDOWN (then nothing runs).
 */
int sz_store_call(sz_store_t *s, void (*fn)(void *arg), sz_store_done_fn cb, void *arg);

int sz_store_account_create(sz_store_t *s, const sz_jid_t *jid, const sz_scram_creds_t *creds,
                            sz_store_done_fn cb, void *arg);

/** Deletes account <jid>, and in the same transaction everything stored
 * for it (roster, roster version, pending subscription requests:
 * storage/roster.h; vCard and private XML: storage/xmlstore.h; last
 * activity: storage/last.h). Result: 0, -ENOENT, -EBUSY, -EIO. */
int sz_store_account_delete(sz_store_t *s, const sz_jid_t *jid, sz_store_done_fn cb, void *arg);

/** Replaces the credentials of <jid> (password change). Result: 0,
 * -ENOENT, -EBUSY, -EIO. */
int sz_store_account_set_creds(sz_store_t *s, const sz_jid_t *jid, const sz_scram_creds_t *creds,
                               sz_store_done_fn cb, void *arg);

/** Reads the credentials of <jid>. Result: 0, -ENOENT, -EBUSY, -EIO. A
 * hash without stored credentials has key_len 0. */
int sz_store_account_get_creds(sz_store_t *s, const sz_jid_t *jid, sz_store_creds_fn cb, void *arg);

/**
 * One page of the localparts of <domain> (NUL-terminated, prepared here),
 * those sorting strictly after <after> (NULL or "" for the first page),
 * at most <limit> names (1..SZ_STORE_LIST_MAX). Pass the last name of a
 * page as <after> to get the next one. Result: 0, -EBUSY, -EIO.
 */
int sz_store_account_list(sz_store_t *s, const char *domain, const char *after, unsigned limit,
                          sz_store_names_fn cb, void *arg);

/** Number of accounts of <domain> (NUL-terminated), or of all domains when
 * <domain> is NULL. Result: 0, -EBUSY, -EIO. */
int sz_store_account_count(sz_store_t *s, const char *domain, sz_store_count_fn cb, void *arg);

/* One account of a batch; <res> is the per-account output. */
typedef struct sz_store_new_account {
    const sz_jid_t *jid;
    const sz_scram_creds_t *creds;
    int res; /* out: 0, -EEXIST */
} sz_store_new_account_t;

/**
 * Creates the <n> accounts of <items> (1..SZ_STORE_BATCH_MAX) in one
 * transaction: bulk imports. An account that exists already (or appears
 * twice) gets -EEXIST in its <res> and does not abort the others. <items>
 * and what it points to are borrowed until the callback has run (the
 * worker writes each <res>); on a non-reactor thread that is simply until
 * return. Result of the batch: 0 (see each res), or -EBUSY / -EIO when the
 * transaction failed and nothing was written.
 */
int sz_store_account_create_many(sz_store_t *s, sz_store_new_account_t *items, size_t n,
                                 sz_store_done_fn cb, void *arg);

#endif
