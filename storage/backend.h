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
 * Adding an operation (offline, MAM, vCards, PEP, MUC config): one enum
 * value, one member of the args union, one submit function (store.c, or
 * its own file as roster.c) with its typed callback, one case in each
 * backend's exec(). Results the backend allocates are freed by the
 * request's _release hook on the submitting thread.
 */
#ifndef SZ_STORAGE_BACKEND_H
#define SZ_STORAGE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "storage/blocklist.h"
#include "storage/last.h"
#include "storage/offline.h"
#include "storage/roster.h"
#include "storage/store.h"
#include "storage/xmlstore.h"

enum sz_store_op {
    SZ_STORE_ACCOUNT_CREATE = 1,
    SZ_STORE_ACCOUNT_CREATE_MANY,
    SZ_STORE_ACCOUNT_DELETE,
    SZ_STORE_ACCOUNT_SET_CREDS,
    SZ_STORE_ACCOUNT_GET_CREDS,
    SZ_STORE_ACCOUNT_LIST,
    SZ_STORE_ACCOUNT_COUNT,
    SZ_STORE_CALL, /* run a caller's function on the worker (no backend) */
    SZ_STORE_ROSTER_GET,
    SZ_STORE_ROSTER_GET_ITEM,
    SZ_STORE_ROSTER_PUT,
    SZ_STORE_ROSTER_REMOVE,
    SZ_STORE_PENDING_ADD,
    SZ_STORE_PENDING_REMOVE,
    SZ_STORE_PENDING_LIST,
    SZ_STORE_ROSTER_LOGIN, /* ROSTER_GET and PENDING_LIST in one snapshot */
    SZ_STORE_BLOCKLIST_GET, /* storage/blocklist.h */
    SZ_STORE_BLOCKLIST_ADD,
    SZ_STORE_BLOCKLIST_REMOVE,
    SZ_STORE_XML_GET,      /* storage/xmlstore.h */
    SZ_STORE_XML_PUT,
    SZ_STORE_LAST_SET,     /* storage/last.h */
    SZ_STORE_LAST_GET,
    SZ_STORE_OFFLINE_PUT,  /* storage/offline.h */
    SZ_STORE_OFFLINE_TAKE,
    SZ_STORE_OFFLINE_COUNT,
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
        sz_store_roster_fn roster;
        sz_store_roster_item_fn item;
        sz_store_roster_ver_fn ver;
        sz_store_pending_fn pending;
        sz_store_roster_login_fn login;
        sz_store_blocklist_fn blocklist;
        sz_store_xml_fn xml;
        sz_store_last_fn last;
        sz_store_offline_fn offline;
    } _cb;
    void *_arg;
    void (*_release)(sz_store_req_t *q); /* frees backend results, or NULL */

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
        /* Roster and pending ops; the key above is the owner. */
        struct {
            sz_store_str_t contact; /* in: item jid (put, get_item, remove) or requester */
            sz_store_str_t name;    /* in (put): p is NULL for "no name" */
            sz_store_str_t groups;  /* in (put): ngroups names, each NUL-terminated,
                                     * back to back; len counts the NULs */
            size_t ngroups;
            sz_store_str_t stanza; /* in (pending_add) */
            enum sz_store_sub sub; /* in (put) */
            bool ask, approved;    /* in (put) */
            unsigned max_items;    /* in (put), 0: no limit */
            uint64_t ver;          /* out: see sz_store_roster_*_fn */
            /* out: appended with sz_store_roster_add_item / _add_pending */
            sz_store_roster_item_t *items;
            size_t n, cap;
            sz_store_pending_t *pend;
            size_t npend, pcap;
        } roster;
        /* Blocklist ops; the key above is the owner. */
        struct {
            sz_store_str_t items; /* in (add, remove): n JIDs, each NUL-terminated,
                                   * back to back */
            size_t n;             /* in; 0 in remove: all */
            unsigned max_items;   /* in (add), 0: no limit */
            char **out;           /* out (get): sz_store_blocklist_add_result */
            size_t nout, cap;
        } block;
        /* Per-account XML documents (storage/xmlstore.h); the key above
         * is the owner. */
        struct {
            unsigned kind;          /* in: enum sz_store_xml_kind */
            sz_store_str_t name;    /* in (get) */
            sz_store_str_t *docs;   /* in (put): 2n slices, name i at 2i and its xml at
                                     * 2i+1 (xml.p NULL: remove); array sz_malloc'd,
                                     * bytes in the tail */
            size_t n;
            uint64_t max_bytes;     /* in (put), 0: no bound */
            char *out;              /* out (get): sz_malloc'd, NUL-terminated */
            size_t out_len;
        } xml;
        /* Last activity (storage/last.h); the key above is the owner. */
        struct {
            int64_t when;           /* in (set), out (get) */
            sz_store_str_t status;  /* in (set): p NULL for none */
            char *out_status;       /* out (get): sz_malloc'd, or NULL */
        } last;
        /* Offline messages (storage/offline.h); the key above is the
         * owner. */
        struct {
            sz_store_str_t xml;     /* in (put) */
            uint32_t max;           /* in: quota (put), read limit (take) */
            uint64_t upto;          /* in (take): delete ids <= upto; out (count) */
            sz_store_offline_msg_t *msgs; /* out (take): array and each xml
                                           * sz_malloc'd */
            size_t n;
        } offline;
    } u;
};

/*
 * Backend helpers for roster results (worker thread, storage/roster.c):
 * append one item or pending request to <q>'s results, copying the
 * strings. <name> NULL means "no name". <groups> is the packed form of
 * the request (names each followed by NUL), <glen> bytes. Returns 0, or
 * -EIO when <groups> is not in that form or <sub> is out of range (a
 * corrupt row; nothing appended).
 */
int sz_store_roster_add_item(sz_store_req_t *q, const char *jid, size_t jlen, const char *name,
                             size_t nlen, unsigned sub, bool ask, bool approved,
                             const char *groups, size_t glen, uint64_t ver);
void sz_store_roster_add_pending(sz_store_req_t *q, const char *from, size_t flen,
                                 const char *stanza, size_t slen);

/* Backend helper for blocklist reads (worker thread, storage/blocklist.c):
 * appends a copy of <jid>/<len> to <q>'s results. */
void sz_store_blocklist_add_result(sz_store_req_t *q, const char *jid, size_t len);

/*
 * Front-end internals shared by the files of storage/ that submit
 * requests (store.c, roster.c); submitting thread.
 */
/* A request with <tail> extra bytes for key strings. */
sz_store_req_t *sz_store_req_new(enum sz_store_op op, size_t tail);
/* A request keyed by the bare part of <jid> (needs a localpart, else
 * NULL), with <extra> more tail bytes whose start goes to *<at> (may be
 * NULL when <extra> is 0). */
sz_store_req_t *sz_store_req_acct(enum sz_store_op op, const sz_jid_t *jid, size_t extra,
                                  char **at);
/* Copies <len> bytes of <p> into the tail at *<at>, NUL-terminates, and
 * advances *<at>. */
sz_store_str_t sz_store_put_str(char **at, const char *p, size_t len);
/* Queues <q> (with _complete, _cb and _arg set) to the worker chosen by
 * <key> (0: round robin); the store.h contract (blocks off reactors).
 * Consumes <q> on every path. */
int sz_store_submit(sz_store_t *s, sz_store_req_t *q, uint64_t key);

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
