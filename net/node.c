/*
 * Node start-up and shutdown. Each reactor thread creates its own ring
 * (the ring's single issuer must be the thread that submits), registers
 * its tables, arms its accepts, then waits on a barrier so that every ring
 * fd is published before any reactor can post to another. A failure in any
 * thread makes all of them exit before running.
 */
#include "net/node.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/hooks.h"
#include "core/router.h"
#include "core/xml/parser.h"
#include "net/c2s.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/proto.h"

#define SLOT_RESERVE 256 /* process fds kept for listeners, rings, logs, storage */

struct sz_node {
    const sz_conf_t *conf;
    unsigned n;
    sz_reactor_t *reactors; /* n, cache-line aligned */
    int *ring_fds;
    sz_xq_t *xq;
    sz_listener_t *listeners;
    const sz_proto_t **protos; /* per listener */
    unsigned nlisteners;
    pthread_t *threads;
    const char **domains; /* served domains, for the router */
    bool *reg;            /* per domain: in-band registration enabled */
    unsigned *accepts; /* per reactor: accepts armed (owner reactor only) */
    struct rearm *rearm; /* per (reactor, listener): delayed re-arm after an error */
    uint32_t slots;
    struct io_uring ctrl; /* main thread's ring, for control messages */
    pthread_barrier_t barrier;
    int failed;
    bool stopping;
    uint64_t started_ms;
};

static sz_node_t *current;

#define ACCEPT_RETRY_MS 100

struct rearm {
    sz_timer_t t;
    unsigned idx;
};

sz_node_t *sz_node_current(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

uint32_t sz_node_auto_slots(uint64_t rlimit_nofile, unsigned nreactors, unsigned nlisteners)
{
    /* The kernel bounds each ring's table by RLIMIT_NOFILE, not the sum:
     * direct descriptors are not process fds (DESIGN §9). Keep a reserve
     * so the count stays meaningful if the limit is shared with files. */
    uint64_t reserve = SLOT_RESERVE + (uint64_t)nreactors * (nlisteners + 1);
    uint64_t s = rlimit_nofile > reserve + 64 ? rlimit_nofile - reserve : 64;
    if (s > (1u << 20))
        s = 1u << 20; /* IORING_MAX_FIXED_FILES */
    return (uint32_t)s;
}

static const sz_proto_t *proto_for(enum sz_listen_kind k)
{
    switch (k) {
    case SZ_LISTEN_ADMIN:
        return &sz_proto_admin;
    case SZ_LISTEN_ECHO:
        return &sz_proto_echo;
    case SZ_LISTEN_C2S:
    case SZ_LISTEN_C2S_TLS:
        break;
    }
    return &sz_proto_c2s;
}

/* ---- reactor-side hooks ------------------------------------------------ */

static void on_rearm(sz_timer_t *t)
{
    struct rearm *ra = (struct rearm *)t;
    sz_reactor_t *r = sz_reactor_self();
    sz_node_t *node = sz_node_current();
    sz_listener_t *l = &node->listeners[ra->idx];
    if (!r->stopping && l->fds[r->id] >= 0)
        sz_listener_arm(r, l, ra->idx);
}

/* One accept result. Returns true on an error that should pause accepting
 * for a while (never spin on a persistent error). */
static bool accepted(sz_reactor_t *r, sz_node_t *node, unsigned idx, int res)
{
    if (res >= 0) {
        sz_conns_adopt(r, (uint32_t)res, idx,
                       strchr(node->listeners[idx].conf->address, ':') ? AF_INET6 : AF_INET);
        return false;
    }
    if (res == -ENFILE) {
        /* No free direct-descriptor slot: the kernel has already closed
         * the new socket. Existing connections are unaffected. */
        SZ_STAT_ADD(&r->stats, refused, 1);
        return false;
    }
    if (res == -ECANCELED || res == -EAGAIN)
        return false;
    SZ_WARN("msg=\"accept failed\" listener=%u err=\"%s\"", idx, strerror(-res));
    return true;
}

/* Stopping and nothing of listener <idx> left in flight: close the socket. */
static void accept_close(sz_reactor_t *r, sz_node_t *node, unsigned idx)
{
    sz_listener_t *l = &node->listeners[idx];
    if (l->fds[r->id] >= 0) {
        close(l->fds[r->id]);
        l->fds[r->id] = -1;
    }
    node->accepts[r->id]--;
}

/* The armed multishot request of listener <idx> ended: re-arm it (later,
 * after an error), or when stopping close once no burst is in flight. */
static void accept_ended(sz_reactor_t *r, sz_node_t *node, unsigned idx, bool retry_later)
{
    sz_listener_t *l = &node->listeners[idx];
    l->st[r->id].ended = true;
    if (!r->stopping && l->fds[r->id] >= 0) {
        if (retry_later) {
            struct rearm *ra = &node->rearm[r->id * node->nlisteners + idx];
            ra->idx = idx;
            sz_timer_arm(&r->wheel, &ra->t, sz_reactor_now(r) + ACCEPT_RETRY_MS, on_rearm);
        } else {
            sz_listener_arm(r, l, idx);
        }
        return;
    }
    if (l->st[r->id].inflight == 0)
        accept_close(r, node, idx);
}

static void on_accept(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_node_t *node = sz_node_current();
    unsigned idx = SZ_UD_SLOT(cqe->user_data);
    sz_listener_t *l = &node->listeners[idx];
    sz_accept_state_t *st = &l->st[r->id];
    switch (SZ_UD_GEN(cqe->user_data)) {
    case SZ_ACCEPT_ONE: /* readiness mode: one of a burst */
        if (accepted(r, node, idx, cqe->res) || cqe->res == -EAGAIN)
            st->empty = true;
        if (--st->inflight)
            return;
        if (st->ended && (r->stopping || l->fds[r->id] < 0))
            accept_close(r, node, idx);
        else if (!st->empty && !r->stopping)
            sz_listener_burst(r, l, idx); /* every one got a connection: maybe more */
        return;
    case SZ_ACCEPT_READY: /* readiness mode: the socket has connections */
        if (cqe->res > 0 && st->inflight == 0 && !r->stopping)
            sz_listener_burst(r, l, idx);
        if (cqe->flags & IORING_CQE_F_MORE)
            return;
        if (cqe->res < 0 && cqe->res != -ECANCELED)
            SZ_WARN("msg=\"listener poll failed\" listener=%u err=\"%s\"", idx,
                    strerror(-cqe->res));
        accept_ended(r, node, idx, cqe->res < 0 && cqe->res != -ECANCELED);
        return;
    default: { /* SZ_ACCEPT_MULTI */
        bool retry_later = accepted(r, node, idx, cqe->res);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            accept_ended(r, node, idx, retry_later);
        return;
    }
    }
}

static void on_stop(sz_reactor_t *r)
{
    sz_node_t *node = sz_node_current();
    for (unsigned i = 0; i < node->nlisteners; i++) {
        sz_timer_cancel(&r->wheel, &node->rearm[r->id * node->nlisteners + i].t);
        sz_accept_state_t *st = &node->listeners[i].st[r->id];
        if (st->ended) { /* waiting for a re-arm: nothing to cancel */
            if (st->inflight == 0 && node->listeners[i].fds[r->id] >= 0)
                accept_close(r, node, i);
        } else {
            sz_listener_stop(r, &node->listeners[i], i);
        }
    }
    sz_conns_shutdown(r);
    sz_c2s_stop(r);
}

static bool quiesced(sz_reactor_t *r)
{
    sz_node_t *node = sz_node_current();
    return node->accepts[r->id] == 0 && sz_conns_quiesced(r) && sz_c2s_pending() == 0 &&
           sz_router_pending() == 0 && sz_hooks_pending() == 0;
}

struct start_arg {
    sz_node_t *node;
    unsigned id;
};

static void *reactor_main(void *arg)
{
    struct start_arg *sa = arg;
    sz_node_t *node = sa->node;
    unsigned id = sa->id;
    sz_free(sa);
    sz_reactor_t *r = &node->reactors[id];
    sz_reactor_opts_t o = {
        .id = id,
        .n = node->n,
        .direct_slots = node->slots,
        .recv_buffers = node->conf->node.recv_buffers,
        .recv_buffer_bytes = node->conf->node.recv_buffer_bytes,
        .xq = node->xq,
        .ring_fds = node->ring_fds,
        .cpu = node->conf->node.pin_threads ? (int)id : -1,
        .batch_wait_us = node->conf->node.batch_wait_us,
    };
    int ret = sz_reactor_init(r, &o);
    if (ret < 0) {
        __atomic_store_n(&node->failed, ret, __ATOMIC_RELEASE);
        pthread_barrier_wait(&node->barrier);
        return NULL;
    }
    sz_conns_init(r, node->protos, node->nlisteners);
    sz_router_init(r);
    r->on_flush = sz_conns_flush;
    r->on_stop = on_stop;
    r->quiesced = quiesced;
    for (unsigned i = 0; i < node->nlisteners; i++) {
        sz_listener_arm(r, &node->listeners[i], i);
        node->accepts[id]++;
    }
    pthread_barrier_wait(&node->barrier);
    if (__atomic_load_n(&node->failed, __ATOMIC_ACQUIRE) == 0) {
        SZ_INFO("msg=\"reactor running\" direct_slots=%u ring_flags=0x%x", r->direct_slots,
                r->setup_flags);
        sz_reactor_run(r);
    }
    sz_conns_destroy(r);
    sz_router_destroy(r);
    sz_reactor_destroy(r);
    sz_xml_scratch_free(); /* the parser's per-thread scratch area */
    return NULL;
}

/* ---- main-thread API ------------------------------------------------- */

static void drop_msg(void *ctx, unsigned src, void *msg)
{
    sz_msg_t *m = msg;
    (void)ctx;
    (void)src;
    if (m->drop)
        m->drop(m);
    else
        sz_free(m);
}

static void free_node(sz_node_t *node)
{
    for (unsigned i = 0; i < node->nlisteners; i++)
        sz_listener_close(&node->listeners[i]);
    sz_free(node->listeners);
    sz_free(node->protos);
    sz_free(node->accepts);
    sz_free(node->threads);
    sz_free(node->domains);
    sz_free(node->reg);
    sz_free(node->rearm);
    sz_free(node->ring_fds);
    free(node->reactors);
    sz_xq_free(node->xq);
    sz_free(node);
}

sz_node_t *sz_node_start(const sz_conf_t *conf, char *err, size_t errlen)
{
    sz_node_t *node = sz_calloc(1, sizeof(*node));
    node->conf = conf;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    node->n = conf->node.reactors ? conf->node.reactors : (unsigned)(cpus > 0 ? cpus : 1);
    if (node->n > 256)
        node->n = 256;
    node->nlisteners = (unsigned)conf->nlistens;

    /* Use the whole allowed descriptor limit (soft up to hard). */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (conf->node.max_conns_per_reactor) {
        if (conf->node.max_conns_per_reactor > rl.rlim_cur) {
            snprintf(err, errlen,
                     "%s: node.max_conns_per_reactor: %u exceeds RLIMIT_NOFILE %llu (the kernel "
                     "bounds each ring's descriptor table by it)",
                     conf->path ? conf->path : "config", conf->node.max_conns_per_reactor,
                     (unsigned long long)rl.rlim_cur);
            sz_free(node);
            return NULL;
        }
        node->slots = conf->node.max_conns_per_reactor;
    } else {
        node->slots = sz_node_auto_slots(rl.rlim_cur, node->n, node->nlisteners);
    }

    node->listeners = sz_calloc(node->nlisteners ? node->nlisteners : 1, sizeof(sz_listener_t));
    node->protos = sz_calloc(node->nlisteners ? node->nlisteners : 1, sizeof(sz_proto_t *));
    for (unsigned i = 0; i < node->nlisteners; i++) {
        node->protos[i] = proto_for(conf->listens[i].kind);
        if (sz_listener_open(&node->listeners[i], &conf->listens[i], node->n, err, errlen) < 0) {
            free_node(node);
            return NULL;
        }
    }
    node->accepts = sz_calloc(node->n, sizeof(unsigned));
    node->threads = sz_calloc(node->n, sizeof(pthread_t));
    node->rearm = sz_calloc((size_t)node->n * (node->nlisteners ? node->nlisteners : 1),
                            sizeof(struct rearm));
    node->ring_fds = sz_calloc(node->n, sizeof(int));
    node->xq = sz_xq_new(node->n, conf->node.queue_entries);
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(sz_reactor_t) * node->n) != 0) {
        snprintf(err, errlen, "out of memory");
        free_node(node);
        return NULL;
    }
    memset(mem, 0, sizeof(sz_reactor_t) * node->n);
    node->reactors = mem;
    int ret = io_uring_queue_init(8, &node->ctrl, 0);
    if (ret < 0) {
        snprintf(err, errlen, "io_uring unavailable: %s", strerror(-ret));
        free_node(node);
        return NULL;
    }

    node->domains = sz_calloc(conf->nhosts ? conf->nhosts : 1, sizeof(char *));
    node->reg = sz_calloc(conf->nhosts ? conf->nhosts : 1, sizeof(bool));
    for (size_t i = 0; i < conf->nhosts; i++) {
        node->domains[i] = conf->hosts[i].domain;
        node->reg[i] = conf->hosts[i].register_enabled;
    }
    sz_router_configure(node->domains, (unsigned)conf->nhosts, node->reg);
    sz_conns_register_handlers();
    if (conf->node.handoff == SZ_HANDOFF_SEND_FD)
        sz_conns_handoff_by_send_fd();
    sz_reactor_set_handler(SZ_OP_ACCEPT, on_accept);
    sz_conn_max_output = conf->limits.max_output_bytes;
    sz_admin_timeout_ms = conf->limits.admin_timeout_ms;
    node->started_ms = sz_now_ms();
    __atomic_store_n(&current, node, __ATOMIC_RELEASE);

    pthread_barrier_init(&node->barrier, NULL, node->n + 1);
    for (unsigned i = 0; i < node->n; i++) {
        struct start_arg *sa = sz_malloc(sizeof(*sa));
        sa->node = node;
        sa->id = i;
        pthread_create(&node->threads[i], NULL, reactor_main, sa);
    }
    pthread_barrier_wait(&node->barrier);
    if (node->failed) {
        for (unsigned i = 0; i < node->n; i++)
            pthread_join(node->threads[i], NULL);
        snprintf(err, errlen, "reactor start failed: %s", strerror(-node->failed));
        pthread_barrier_destroy(&node->barrier);
        io_uring_queue_exit(&node->ctrl);
        __atomic_store_n(&current, NULL, __ATOMIC_RELEASE);
        free_node(node);
        return NULL;
    }
    SZ_INFO("msg=\"node started\" reactors=%u listeners=%u direct_slots_per_reactor=%u "
            "rlimit_nofile=%llu",
            node->n, node->nlisteners, node->slots, (unsigned long long)rl.rlim_cur);
    return node;
}

void sz_node_stop(sz_node_t *node)
{
    __atomic_store_n(&node->stopping, true, __ATOMIC_RELEASE);
    sz_conns_stop_all();
    for (unsigned i = 0; i < node->n; i++) {
        int ret = sz_reactor_ctrl(&node->ctrl, node->ring_fds[i], SZ_CTRL_STOP);
        if (ret < 0)
            SZ_ERROR("msg=\"cannot stop reactor\" reactor=%u err=\"%s\"", i, strerror(-ret));
    }
    for (unsigned i = 0; i < node->n; i++)
        pthread_join(node->threads[i], NULL);
    /* A reactor that was still closing sessions may have posted to one
     * that had already exited (the unavailable presence of a user's last
     * session to a contact homed there): nobody will take those messages
     * now, so they are dropped here, the only thread left. */
    for (unsigned i = 0; i < node->n; i++)
        sz_xq_drain(node->xq, i, UINT_MAX, drop_msg, NULL);
    pthread_barrier_destroy(&node->barrier);
    io_uring_queue_exit(&node->ctrl);
    __atomic_store_n(&current, NULL, __ATOMIC_RELEASE);
    free_node(node);
    SZ_INFO("msg=\"node stopped\"");
}

void sz_node_reload(sz_node_t *node, const sz_conf_t *conf)
{
    sz_log_set_level(conf->node.log_level);
    __atomic_store_n(&sz_conn_max_output, conf->limits.max_output_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&sz_admin_timeout_ms, conf->limits.admin_timeout_ms, __ATOMIC_RELAXED);
    /* Nothing to tell the reactors: they read every reloadable value
     * (limits.*, through SZ_CONF_LIMIT) atomically where it is used, so the
     * new values apply from their next use on. */
    (void)node;
}

unsigned sz_node_nreactors(const sz_node_t *node)
{
    return node->n;
}

const sz_reactor_t *sz_node_reactor(const sz_node_t *node, unsigned i)
{
    return &node->reactors[i];
}

const sz_xq_t *sz_node_xq(const sz_node_t *node)
{
    return node->xq;
}

uint64_t sz_node_uptime_ms(const sz_node_t *node)
{
    return sz_now_ms() - node->started_ms;
}

bool sz_node_stopping(const sz_node_t *node)
{
    return __atomic_load_n(&node->stopping, __ATOMIC_ACQUIRE);
}
