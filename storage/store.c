/*
 * Storage front end: request allocation, the worker threads and the way
 * back to the submitting thread. Touched by three kinds of threads:
 * submitters (reactors or blocking callers) allocate a request and push it
 * to a worker's queue; the worker runs it against its own backend
 * connection; the request then goes back to its submitter, which runs the
 * callback and frees it (memory returns to the thread that allocated it).
 *
 * Way back: a reactor's request is posted to the reactor's ring with
 * IORING_OP_MSG_RING from the worker's own small ring (user_data op
 * SZ_OP_STORAGE, pointer in the low 56 bits); a blocking caller waits on a
 * condition variable that lives on its stack.
 *
 * Queues (reactor -> worker): one list per worker under a mutex. Why not a
 * ck MPMC ring: the consumers are not reactors and must sleep when idle,
 * so a ring would still need a doorbell, and a bounded ring would add a
 * back-pressure path to every caller. The mutex is held only for a pointer
 * push or a list swap (never across SQLite work), so a reactor can wait on
 * it at most for a few instructions of another thread; requests cost
 * milliseconds of SQLite anyway. Requests about one account always go to
 * the same worker (hash of the bare JID), which keeps them in order.
 *
 * Doorbell (-> worker): an idle worker sleeps in io_uring_enter on its own
 * ring. A push that finds the list empty owes the worker a doorbell, a
 * MSG_RING data message with user_data BELL_UD. A reactor sends it at the
 * end of its iteration with its batched submit; the worker's ring defers
 * task work, so the message does not wake it at once: like a reactor it
 * sleeps on for up to node.batch_wait_us (sz_ring_wait_min), and one
 * wake-up serves every reactor that rang meanwhile. A non-reactor thread
 * rings through the store's own small ring, under a mutex. A doorbell is
 * only a hint: the worker looks at its list after every batch and before
 * every sleep, so a doorbell consumed early is never a lost wake-up.
 */
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/reactor.h"
#include "storage/backend.h"

#define WORKER_RING_ENTRIES 64 /* results posted back per submit */
#define WORKER_CQ_ENTRIES   1024 /* posts in flight plus doorbells rung meanwhile */
#define POST_RETRY_US       1000 /* reactor CQ full: the worker waits, never drops */
#define BELL_UD             UINT64_MAX /* user_data of a doorbell on a worker's ring */
#define BELL_WAIT_NR        64 /* doorbells that end a worker's minimum wait early */
#define IDLE_WAIT_S         3600 /* an idle worker's wait, re-entered hourly */

struct sz_store_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

struct worker {
    sz_store_t *s;
    unsigned id;
    pthread_t thread;
    bool started;
    struct io_uring ring; /* MSG_RING posts to reactors; doorbells arrive here */
    bool ring_ok;
    bool ring_disabled;   /* created disabled: the worker enables it (single issuer) */
    unsigned min_wait_us; /* batching of wake-ups (0: wake at the first doorbell) */
    void *conn;           /* backend connection; this worker only */

    pthread_mutex_t mu; /* guards head, tail, stop, ready */
    pthread_cond_t cv;  /* ready changed */
    sz_store_req_t *head, *tail;
    bool stop;
    int ready; /* 0: starting, 1: ring enabled, < 0: -errno */
} __attribute__((aligned(64)));

struct sz_store {
    const sz_store_backend_t *be;
    void *db;
    unsigned nworkers;
    struct worker *workers;
    unsigned rr;  /* round robin for keyless requests (atomic) */
    bool closing; /* atomic */
    pthread_mutex_t bell_mu; /* guards bell */
    struct io_uring bell;    /* doorbells from non-reactor threads */
    bool bell_ok;
};

static __thread unsigned inflight;
/* Reactor thread: workers handed a request since the last sz_store_flush()
 * while their queue was empty (they may be asleep). Bit i = worker i. */
static __thread uint64_t owed;
static __thread sz_store_t *owed_store;

unsigned sz_store_inflight(void)
{
    return inflight;
}

const char *sz_store_backend(const sz_store_t *s)
{
    return s->be->name;
}

/* ---- requests ------------------------------------------------------------ */

sz_store_req_t *sz_store_req_new(enum sz_store_op op, size_t tail)
{
    sz_store_req_t *q = sz_calloc(1, sizeof(*q) + tail);
    q->op = op;
    q->_ring_fd = -1;
    return q;
}

sz_store_str_t sz_store_put_str(char **at, const char *p, size_t len)
{
    sz_store_str_t out = {*at, len};
    if (len)
        memcpy(*at, p, len);
    (*at)[len] = '\0';
    *at += len + 1;
    return out;
}

static void req_free(sz_store_req_t *q)
{
    if (q->_release)
        q->_release(q);
    if (q->op == SZ_STORE_ACCOUNT_LIST) {
        for (size_t i = 0; i < q->u.list.n; i++)
            sz_free(q->u.list.names[i]);
        sz_free(q->u.list.names);
    }
    /* Salted keys are not passwords, but still need not linger. */
    if (q->op == SZ_STORE_ACCOUNT_CREATE || q->op == SZ_STORE_ACCOUNT_SET_CREDS ||
        q->op == SZ_STORE_ACCOUNT_GET_CREDS)
        explicit_bzero(&q->u.acct.creds, sizeof(q->u.acct.creds));
    sz_free(q);
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

static void complete_creds(sz_store_req_t *q)
{
    q->_cb.creds(q->_arg, q->res, q->res == 0 ? &q->u.acct.creds : NULL);
}

static void complete_count(sz_store_req_t *q)
{
    q->_cb.count(q->_arg, q->res, q->res == 0 ? q->u.count.n : 0);
}

static void complete_names(sz_store_req_t *q)
{
    sz_store_names_t page = {
        .n = q->u.list.n,
        .names = (const char *const *)q->u.list.names,
        .more = q->u.list.more,
    };
    q->_cb.names(q->_arg, q->res, q->res == 0 ? &page : NULL);
}

/* ---- workers ------------------------------------------------------------- */

/* Queues <q>. Returns true on the empty -> non-empty transition, the only
 * one after which the worker may be asleep and must be signalled. */
static bool push(struct worker *w, sz_store_req_t *q)
{
    pthread_mutex_lock(&w->mu);
    q->_next = NULL;
    bool was_empty = w->head == NULL;
    if (w->tail)
        w->tail->_next = q;
    else
        w->head = q;
    w->tail = q;
    pthread_mutex_unlock(&w->mu);
    return was_empty;
}

/* Any thread but <w>'s: rings <w>'s doorbell through the store's ring and
 * waits for the message to be queued there. */
static void wake(sz_store_t *s, struct worker *w)
{
    pthread_mutex_lock(&s->bell_mu);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->bell);
    io_uring_prep_msg_ring(sqe, w->ring.ring_fd, 0, BELL_UD, 0);
    int ret = io_uring_submit_and_wait(&s->bell, 1);
    struct io_uring_cqe *cqe = NULL;
    if (ret >= 0)
        ret = io_uring_wait_cqe(&s->bell, &cqe);
    if (ret >= 0) {
        ret = cqe->res;
        io_uring_cqe_seen(&s->bell, cqe);
    }
    pthread_mutex_unlock(&s->bell_mu);
    if (ret < 0)
        SZ_ERROR("msg=\"storage worker doorbell failed\" worker=%u err=\"%s\"", w->id,
                 strerror(-ret));
}

void sz_store_flush(void)
{
    sz_store_t *s = owed_store;
    sz_reactor_t *r = sz_reactor_self();
    while (owed) {
        unsigned i = (unsigned)__builtin_ctzll(owed);
        owed &= owed - 1;
        /* Goes out with the reactor's submit; no completion unless it fails. */
        struct io_uring_sqe *sqe = sz_reactor_sqe(r);
        io_uring_prep_msg_ring(sqe, s->workers[i].ring.ring_fd, 0, BELL_UD, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = sz_ud(SZ_OP_STORE_BELL, 0, i);
    }
}

/* Reactor side: a doorbell could not be queued (the worker's ring refused
 * it). Ring again the slow way rather than leave the worker asleep. */
static void on_bell_failed(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    (void)r;
    sz_store_t *s = owed_store;
    unsigned i = SZ_UD_SLOT(cqe->user_data);
    SZ_WARN("msg=\"storage doorbell from reactor failed\" worker=%u err=\"%s\"", i,
            strerror(-cqe->res));
    if (s && i < s->nworkers)
        wake(s, &s->workers[i]);
}

/* Worker: the next completion that is not a doorbell (doorbells are only
 * hints, see above). Returns 0 and sets *<ud>, *<res>, or -errno. */
static int next_post(struct worker *w, uint64_t *ud, int *res)
{
    for (;;) {
        struct io_uring_cqe *cqe;
        int ret = io_uring_wait_cqe(&w->ring, &cqe);
        if (ret < 0)
            return ret;
        *ud = cqe->user_data;
        *res = cqe->res;
        io_uring_cqe_seen(&w->ring, cqe);
        if (*ud != BELL_UD)
            return 0;
    }
}

/* Worker, its list found empty: sleeps until a doorbell is pending. */
static void wait_bell(struct worker *w)
{
    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, n = 0, bells = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            bells += cqe->user_data == BELL_UD; /* posts are all reaped by now */
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        if (bells)
            return;
        struct __kernel_timespec far = {.tv_sec = IDLE_WAIT_S, .tv_nsec = 0};
        int ret = sz_ring_wait_min(&w->ring, false, w->min_wait_us ? BELL_WAIT_NR : 1,
                                   w->min_wait_us, &far);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            SZ_ERROR("msg=\"storage worker wait failed\" err=\"%s\"", strerror(-ret));
            usleep(POST_RETRY_US); /* never spin */
            return;
        }
    }
}

/* Hands <q> back to a reactor: one MSG_RING whose CQE lands on the
 * reactor's ring as user_data (SZ_OP_STORAGE, q), res 0. */
static void prep_post(struct io_uring_sqe *sqe, sz_store_req_t *q)
{
    io_uring_prep_msg_ring(sqe, q->_ring_fd, 0, sz_ud_ptr(SZ_OP_STORAGE, q), 0);
    sqe->user_data = (uint64_t)(uintptr_t)q;
}

/* Posts <q> alone, retrying while the reactor's completion queue is full. */
static void post_to_reactor(struct worker *w, sz_store_req_t *q)
{
    for (;;) {
        prep_post(io_uring_get_sqe(&w->ring), q);
        int ret = io_uring_submit_and_wait(&w->ring, 1);
        uint64_t ud;
        int res;
        if (ret >= 0)
            ret = next_post(w, &ud, &res);
        if (ret >= 0)
            ret = res;
        if (ret >= 0)
            return;
        /* A full completion queue on the reactor (-EOVERFLOW) is
         * back-pressure: wait, never drop a result. */
        if (ret == -EOVERFLOW || ret == -EAGAIN || ret == -EBUSY || ret == -EINTR) {
            usleep(POST_RETRY_US);
            continue;
        }
        /* The ring is gone (the contract of sz_store_inflight was broken):
         * the request cannot be delivered nor safely freed here. */
        SZ_ERROR("msg=\"storage result lost: reactor ring unreachable\" err=\"%s\"",
                 strerror(-ret));
        return;
    }
}

/* Posts the reactor requests of the list <q> (linked by _next, which the
 * reactor may reuse once posted) with one submit per WORKER_RING_ENTRIES;
 * a post that fails goes again alone through post_to_reactor(). */
static void post_batch(struct worker *w, sz_store_req_t *q)
{
    while (q) {
        unsigned n = 0;
        while (q && n < WORKER_RING_ENTRIES) {
            sz_store_req_t *next = q->_next;
            prep_post(io_uring_get_sqe(&w->ring), q);
            n++;
            q = next;
        }
        int ret = io_uring_submit_and_wait(&w->ring, n);
        if (ret < 0 && ret != -EINTR)
            SZ_WARN("msg=\"storage post submit failed\" err=\"%s\"", strerror(-ret));
        while (n) {
            uint64_t ud;
            int res;
            if (next_post(w, &ud, &res) < 0)
                continue; /* -EINTR: the posts are submitted; wait again */
            n--;
            if (res < 0)
                post_to_reactor(w, (sz_store_req_t *)(uintptr_t)ud);
        }
    }
}

/* Wakes a blocking caller waiting for <q>. */
static void finish_wait(sz_store_req_t *q)
{
    struct sz_store_wait *wt = q->_wait;
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
    /* the caller may free <q> from here on */
}

/* Each wake-up takes the whole queue: requests that piled up while the
 * worker was busy cost one lock, and their results go back to reactors
 * with one submit. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* The first submitter of a single-issuer ring must be its only one.
     * (liburing 2.3 declares io_uring_enable_rings but does not export it.) */
    int ret = 0;
    if (w->ring_disabled &&
        syscall(__NR_io_uring_register, w->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        ret = -errno;
    pthread_mutex_lock(&w->mu);
    w->ready = ret < 0 ? ret : 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (ret < 0)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        sz_store_req_t *q = w->head;
        bool stop = w->stop;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        if (!q) {
            if (stop)
                break; /* nothing left queued */
            wait_bell(w);
            continue;
        }
        sz_store_req_t *post = NULL, **tail = &post;
        while (q) {
            sz_store_req_t *next = q->_next;
            if (q->op == SZ_STORE_CALL) {
                q->u.call.fn(q->_arg);
                q->res = 0;
            } else {
                w->s->be->exec(w->conn, q);
            }
            if (q->_wait) {
                finish_wait(q);
            } else {
                q->_next = NULL;
                *tail = q;
                tail = &q->_next;
            }
            q = next;
        }
        post_batch(w, post);
    }
    return NULL;
}

/* On a reactor the callback runs later there; elsewhere this blocks and
 * runs it now. */
int sz_store_submit(sz_store_t *s, sz_store_req_t *q, uint64_t key)
{
    if (__atomic_load_n(&s->closing, __ATOMIC_ACQUIRE)) {
        req_free(q);
        return -ESHUTDOWN;
    }
    unsigned idx = key ? (unsigned)(key % s->nworkers)
                       : __atomic_fetch_add(&s->rr, 1, __ATOMIC_RELAXED) % s->nworkers;
    struct worker *w = &s->workers[idx];
    sz_reactor_t *r = sz_reactor_self();
    if (r) {
        q->_ring_fd = r->ring.ring_fd;
        inflight++;
        if (push(w, q)) {
            owed |= 1ull << idx; /* woken in sz_store_flush(), once per iteration */
            owed_store = s;
        }
        return 0;
    }
    struct sz_store_wait wt;
    pthread_mutex_init(&wt.mu, NULL);
    pthread_cond_init(&wt.cv, NULL);
    wt.done = false;
    q->_wait = &wt;
    if (push(w, q))
        wake(s, w);
    pthread_mutex_lock(&wt.mu);
    while (!wt.done)
        pthread_cond_wait(&wt.cv, &wt.mu);
    pthread_mutex_unlock(&wt.mu);
    pthread_cond_destroy(&wt.cv);
    pthread_mutex_destroy(&wt.mu);
    q->_complete(q);
    req_free(q);
    return 0;
}

/* Reactor side: a worker posted a finished request back to us. */
static void on_storage(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    (void)r;
    sz_store_req_t *q = SZ_UD_PTR(cqe->user_data);
    if (inflight > 0)
        inflight--;
    q->_complete(q);
    req_free(q);
}

void sz_store_register_handlers(void)
{
    sz_reactor_set_handler(SZ_OP_STORAGE, on_storage);
    sz_reactor_set_handler(SZ_OP_STORE_BELL, on_bell_failed);
    sz_reactor_add_iteration_hook(sz_store_flush);
}

/* ---- open / close -------------------------------------------------------- */

static const sz_store_backend_t *find_backend(const char *name)
{
    if (!name || strcmp(name, "sqlite") == 0)
        return &sz_store_sqlite;
    return NULL;
}

static void stop_workers(sz_store_t *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (w->started) {
            pthread_mutex_lock(&w->mu);
            w->stop = true;
            int ready = w->ready;
            pthread_mutex_unlock(&w->mu);
            if (ready > 0)
                wake(s, w);
            pthread_join(w->thread, NULL);
            w->started = false;
        }
        if (w->conn)
            s->be->conn_close(w->conn);
        if (w->ring_ok)
            io_uring_queue_exit(&w->ring);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    if (s->bell_ok)
        io_uring_queue_exit(&s->bell);
    s->bell_ok = false;
    pthread_mutex_destroy(&s->bell_mu);
}

/* A worker's ring: single issuer with deferred task work where the kernel
 * has it (6.1), so doorbells wait for the worker's own wait; created
 * disabled, because the worker thread, not this one, is its issuer. */
static int worker_ring_init(struct worker *w, unsigned min_wait_us)
{
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
    p.cq_entries = WORKER_CQ_ENTRIES;
    int ret = io_uring_queue_init_params(WORKER_RING_ENTRIES, &w->ring, &p);
    if (ret == -EINVAL) {
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = WORKER_CQ_ENTRIES;
        ret = io_uring_queue_init_params(WORKER_RING_ENTRIES, &w->ring, &p);
    } else if (ret == 0) {
        w->ring_disabled = true;
    }
    if (ret < 0)
        return ret;
    w->min_wait_us = sz_ring_has_min_wait(&w->ring) ? min_wait_us : 0;
    return 0;
}

int sz_store_open(const sz_store_opts_t *o, sz_store_t **out, char *err, size_t errlen)
{
    const sz_store_backend_t *be = find_backend(o->backend);
    if (!be) {
        snprintf(err, errlen, "storage.backend: unknown backend \"%s\" (known: sqlite)",
                 o->backend);
        return -EINVAL;
    }
    unsigned n = o->workers ? o->workers : SZ_STORE_WORKERS_DEFAULT;
    if (n > SZ_STORE_WORKERS_MAX) {
        snprintf(err, errlen, "storage.workers: must be between 1 and %u", SZ_STORE_WORKERS_MAX);
        return -EINVAL;
    }
    sz_store_t *s = sz_calloc(1, sizeof(*s));
    s->be = be;
    int ret = be->open(o, &s->db, err, errlen);
    if (ret < 0) {
        sz_free(s);
        return ret;
    }
    s->nworkers = n;
    pthread_mutex_init(&s->bell_mu, NULL);
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(struct worker) * n) != 0)
        abort(); /* OOM is fatal, as in sz_malloc */
    memset(mem, 0, sizeof(struct worker) * n);
    s->workers = mem;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        w->s = s;
        w->id = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
    }
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        ret = worker_ring_init(w, o->wake_batch_us);
        if (ret < 0) {
            snprintf(err, errlen, "storage: io_uring unavailable for worker %u: %s", i,
                     strerror(-ret));
            goto fail;
        }
        w->ring_ok = true;
        ret = be->conn_open(s->db, &w->conn, err, errlen);
        if (ret < 0)
            goto fail;
    }
    ret = io_uring_queue_init(4, &s->bell, 0);
    if (ret < 0) {
        snprintf(err, errlen, "storage: io_uring unavailable: %s", strerror(-ret));
        goto fail;
    }
    s->bell_ok = true;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        ret = -pthread_create(&w->thread, NULL, worker_main, w);
        if (ret < 0) {
            snprintf(err, errlen, "storage: cannot start worker %u: %s", i, strerror(-ret));
            goto fail;
        }
        w->started = true;
    }
    /* A doorbell to a ring not enabled yet would fail: wait for each. */
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        pthread_mutex_lock(&w->mu);
        while (!w->ready)
            pthread_cond_wait(&w->cv, &w->mu);
        ret = w->ready < 0 ? w->ready : 0;
        pthread_mutex_unlock(&w->mu);
        if (ret < 0) {
            snprintf(err, errlen, "storage: cannot enable the ring of worker %u: %s", i,
                     strerror(-ret));
            goto fail;
        }
    }
    *out = s;
    return 0;

fail:
    stop_workers(s);
    be->close(s->db);
    free(s->workers);
    sz_free(s);
    return ret;
}

void sz_store_close(sz_store_t *s)
{
    if (!s)
        return;
    __atomic_store_n(&s->closing, true, __ATOMIC_RELEASE);
    stop_workers(s);
    s->be->close(s->db);
    free(s->workers);
    sz_free(s);
}

/* ---- accounts ------------------------------------------------------------ */

sz_store_req_t *sz_store_req_acct(enum sz_store_op op, const sz_jid_t *jid, size_t extra,
                                  char **at)
{
    if (!jid || !sz_jid_has_local(jid))
        return NULL;
    size_t ll, dl;
    const char *l = sz_jid_local(jid, &ll);
    const char *d = sz_jid_domain(jid, &dl);
    sz_store_req_t *q = sz_store_req_new(op, ll + dl + 2 + extra);
    char *p = (char *)(q + 1);
    q->local = sz_store_put_str(&p, l, ll);
    q->domain = sz_store_put_str(&p, d, dl);
    if (at)
        *at = p;
    return q;
}

static sz_store_req_t *acct_req(enum sz_store_op op, const sz_jid_t *jid)
{
    return sz_store_req_acct(op, jid, 0, NULL);
}

/* Prepares the domain <d> into <buf>; returns its length or -EINVAL. */
static int prep_domain(const char *d, char *buf, size_t cap)
{
    size_t len = 0;
    if (!d || sz_jid_prep(SZ_JID_PART_DOMAIN, d, strlen(d), buf, cap, &len, NULL) < 0)
        return -EINVAL;
    return (int)len;
}

static int submit_done(sz_store_t *s, sz_store_req_t *q, const sz_jid_t *jid, sz_store_done_fn cb,
                       void *arg)
{
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(jid) | 1);
}

int sz_store_call(sz_store_t *s, void (*fn)(void *arg), sz_store_done_fn cb, void *arg)
{
    if (!fn || !cb)
        return -EINVAL;
    sz_store_req_t *q = sz_store_req_new(SZ_STORE_CALL, 0);
    q->u.call.fn = fn;
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, 0);
}

int sz_store_account_create(sz_store_t *s, const sz_jid_t *jid, const sz_scram_creds_t *creds,
                            sz_store_done_fn cb, void *arg)
{
    if (!cb || !creds)
        return -EINVAL;
    sz_store_req_t *q = acct_req(SZ_STORE_ACCOUNT_CREATE, jid);
    if (!q)
        return -EINVAL;
    q->u.acct.creds = *creds;
    return submit_done(s, q, jid, cb, arg);
}

int sz_store_account_delete(sz_store_t *s, const sz_jid_t *jid, sz_store_done_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = acct_req(SZ_STORE_ACCOUNT_DELETE, jid);
    if (!q)
        return -EINVAL;
    return submit_done(s, q, jid, cb, arg);
}

int sz_store_account_set_creds(sz_store_t *s, const sz_jid_t *jid, const sz_scram_creds_t *creds,
                               sz_store_done_fn cb, void *arg)
{
    if (!cb || !creds)
        return -EINVAL;
    sz_store_req_t *q = acct_req(SZ_STORE_ACCOUNT_SET_CREDS, jid);
    if (!q)
        return -EINVAL;
    q->u.acct.creds = *creds;
    return submit_done(s, q, jid, cb, arg);
}

int sz_store_account_get_creds(sz_store_t *s, const sz_jid_t *jid, sz_store_creds_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = acct_req(SZ_STORE_ACCOUNT_GET_CREDS, jid);
    if (!q)
        return -EINVAL;
    q->_complete = complete_creds;
    q->_cb.creds = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(jid) | 1);
}

int sz_store_account_list(sz_store_t *s, const char *domain, const char *after, unsigned limit,
                          sz_store_names_fn cb, void *arg)
{
    char d[SZ_JID_PART_MAX_BYTES + 1];
    int dl = prep_domain(domain, d, sizeof(d));
    if (!cb || dl < 0 || limit == 0 || limit > SZ_STORE_LIST_MAX)
        return -EINVAL;
    size_t al = after ? strlen(after) : 0;
    sz_store_req_t *q = sz_store_req_new(SZ_STORE_ACCOUNT_LIST, (size_t)dl + al + 2);
    char *at = (char *)(q + 1);
    q->domain = sz_store_put_str(&at, d, (size_t)dl);
    q->u.list.after = sz_store_put_str(&at, after, al);
    q->u.list.limit = limit;
    q->_complete = complete_names;
    q->_cb.names = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, 0);
}

int sz_store_account_count(sz_store_t *s, const char *domain, sz_store_count_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    char d[SZ_JID_PART_MAX_BYTES + 1];
    int dl = 0;
    if (domain && (dl = prep_domain(domain, d, sizeof(d))) < 0)
        return -EINVAL;
    sz_store_req_t *q = sz_store_req_new(SZ_STORE_ACCOUNT_COUNT, (size_t)dl + 1);
    if (domain) {
        char *at = (char *)(q + 1);
        q->domain = sz_store_put_str(&at, d, (size_t)dl);
    }
    q->_complete = complete_count;
    q->_cb.count = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, 0);
}

int sz_store_account_create_many(sz_store_t *s, sz_store_new_account_t *items, size_t n,
                                 sz_store_done_fn cb, void *arg)
{
    if (!cb || !items || n == 0 || n > SZ_STORE_BATCH_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].jid || !sz_jid_has_local(items[i].jid) || !items[i].creds)
            return -EINVAL;
        items[i].res = 0;
    }
    sz_store_req_t *q = sz_store_req_new(SZ_STORE_ACCOUNT_CREATE_MANY, 0);
    q->u.many.items = items;
    q->u.many.n = n;
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, 0);
}
