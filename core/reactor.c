/*
 * The reactor loop. One thread owns one ring; every completion, timer and
 * inbound message of that thread is handled here, in this order per
 * iteration: completions, timers, cross-reactor inbox, upper-layer flush,
 * iteration hooks, doorbells, submit-and-wait. Nothing here blocks except that wait.
 */
#include "core/reactor.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"

#define SQ_ENTRIES    4096
#define CQ_ENTRIES    65536
#define BATCH_WAIT_NR 64 /* completions that end a batching wait early */
#define IDLE_WAIT_S   3600 /* batching wait with no timer due: re-checked hourly */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15) /* Linux 6.12; newer than liburing 2.3's headers */
#endif
#define XQ_BUDGET     1024 /* messages drained per iteration before other work runs */

static sz_cqe_fn handlers[SZ_OP_MAX];
static void (*hooks[SZ_REACTOR_HOOKS])(void);
static unsigned nhooks;
static __thread sz_reactor_t *self;

void sz_reactor_set_handler(unsigned op, sz_cqe_fn fn)
{
    if (op < SZ_OP_MAX)
        handlers[op] = fn;
}

int sz_reactor_add_iteration_hook(void (*fn)(void))
{
    for (unsigned i = 0; i < nhooks; i++)
        if (hooks[i] == fn)
            return 0;
    if (nhooks == SZ_REACTOR_HOOKS)
        return -ENOSPC;
    hooks[nhooks++] = fn;
    return 0;
}

sz_reactor_t *sz_reactor_self(void)
{
    return self;
}

/* Tries the best ring setup first and falls back for older kernels. */
static int setup_ring(sz_reactor_t *r)
{
    static const unsigned variants[] = {
        /* SINGLE_ISSUER: only this thread submits, so the kernel skips
         * locking. DEFER_TASKRUN: completion work runs when we wait, not
         * at interrupt time, batching it. SUBMIT_ALL: one bad SQE does not
         * abort the batch. CQSIZE: room for multishot bursts. */
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
    };
    int ret = -EINVAL;
    for (unsigned i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = variants[i];
        p.cq_entries = CQ_ENTRIES;
        ret = io_uring_queue_init_params(SQ_ENTRIES, &r->ring, &p);
        if (ret == 0) {
            r->setup_flags = p.flags;
            return 0;
        }
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

int sz_reactor_init(sz_reactor_t *r, const sz_reactor_opts_t *o)
{
    memset(r, 0, sizeof(*r));
    r->id = o->id;
    r->n = o->n;
    r->xq = o->xq;
    r->ring_fds = o->ring_fds;
    r->direct_slots = o->direct_slots;
    r->cpu = o->cpu;
    self = r;
    sz_log_set_thread((int)r->id);

    if (o->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o->cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
            SZ_WARN("msg=\"cannot pin thread\" cpu=%d", o->cpu);
    }

    int ret = setup_ring(r);
    if (ret < 0) {
        SZ_ERROR("msg=\"io_uring setup failed\" err=\"%s\"", strerror(-ret));
        return ret;
    }
    /* Direct descriptors live in this per-ring table, not in the process
     * fd table: capacity is per ring (DESIGN §9). The kernel bounds the
     * table by RLIMIT_NOFILE; the caller sized it below that. */
    ret = io_uring_register_files_sparse(&r->ring, o->direct_slots);
    if (ret < 0) {
        SZ_ERROR("msg=\"cannot register direct descriptor table\" slots=%u err=\"%s\"",
                 o->direct_slots, strerror(-ret));
        goto fail_ring;
    }
    ret = sz_bufring_init(&r->bufs, &r->ring, 0, o->recv_buffers, o->recv_buffer_bytes);
    if (ret < 0) {
        SZ_ERROR("msg=\"cannot register provided buffer ring\" err=\"%s\"", strerror(-ret));
        goto fail_ring;
    }
    /* Registering the ring fd saves an fget/fput on every io_uring_enter. */
    r->ring_registered = io_uring_register_ring_fd(&r->ring) == 1;
    /* The batching wait needs IORING_FEAT_MIN_TIMEOUT; older kernels
     * reject the non-zero field, so fall back to waking per completion. */
    if (o->batch_wait_us && !sz_ring_has_min_wait(&r->ring))
        SZ_INFO("msg=\"no wake-up batching: node.batch_wait_us needs Linux 6.12 "
                "(IORING_FEAT_MIN_TIMEOUT); waking per completion\"");
    else
        r->batch_wait_us = o->batch_wait_us;
    sz_wheel_init(&r->wheel, sz_now_ms());
    __atomic_store_n(&r->ring_fds[r->id], r->ring.ring_fd, __ATOMIC_RELEASE);
    return 0;

fail_ring:
    io_uring_queue_exit(&r->ring);
    return ret;
}

void sz_reactor_destroy(sz_reactor_t *r)
{
    sz_bufring_destroy(&r->bufs, &r->ring);
    io_uring_queue_exit(&r->ring);
    self = NULL;
}

struct io_uring_sqe *sz_reactor_sqe(sz_reactor_t *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    while (!sqe) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

int sz_reactor_post(sz_reactor_t *r, unsigned dst, sz_msg_t *m)
{
    bool wake = false;
    int ret = sz_xq_push(r->xq, r->id, dst, m, &wake);
    if (ret == 0 && wake)
        r->wake_mask[dst >> 6] |= 1ull << (dst & 63);
    return ret;
}

int sz_reactor_ctrl(struct io_uring *from, int ring_fd, enum sz_ctrl ctrl)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(from);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_msg_ring(sqe, ring_fd, (unsigned)ctrl, sz_ud(SZ_OP_CTRL, 0, 0), 0);
    int ret = io_uring_submit_and_wait(from, 1);
    if (ret < 0)
        return ret;
    struct io_uring_cqe *cqe;
    ret = io_uring_wait_cqe(from, &cqe);
    if (ret < 0)
        return ret;
    ret = cqe->res < 0 ? cqe->res : 0;
    io_uring_cqe_seen(from, cqe);
    return ret;
}

/* One MSG_RING per destination owed a wakeup, whatever the number of
 * messages queued to it this iteration. The source CQE is skipped. */
static void ring_doorbells(sz_reactor_t *r)
{
    for (unsigned w = 0; w < 4; w++) {
        while (r->wake_mask[w]) {
            unsigned bit = (unsigned)__builtin_ctzll(r->wake_mask[w]);
            r->wake_mask[w] &= r->wake_mask[w] - 1;
            unsigned dst = w * 64 + bit;
            struct io_uring_sqe *sqe = sz_reactor_sqe(r);
            int fd = __atomic_load_n(&r->ring_fds[dst], __ATOMIC_ACQUIRE);
            io_uring_prep_msg_ring(sqe, fd, 0, sz_ud(SZ_OP_WAKE, 0, 0), 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            sqe->user_data = sz_ud(SZ_OP_WAKE, 0, 1);
            SZ_STAT_ADD(&r->stats, doorbells, 1);
        }
    }
}

static void on_xq_msg(void *ctx, unsigned src, void *msg)
{
    sz_reactor_t *r = ctx;
    sz_msg_t *m = msg;
    m->fn(r, src, m);
}

static void on_ctrl(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    if (cqe->res == SZ_CTRL_STOP && !r->stopping) {
        SZ_INFO("msg=\"stopping\"");
        r->stopping = true;
        if (r->on_stop)
            r->on_stop(r);
    }
}

static unsigned handle_cqes(sz_reactor_t *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        unsigned op = SZ_UD_OP(cqe->user_data);
        if (op == SZ_OP_CTRL)
            on_ctrl(r, cqe);
        else if (op == SZ_OP_WAKE) {
            /* While stopping, the destination may have exited already (its
             * ring is closed): what it was rung for is dropped by the node. */
            if (cqe->res < 0 && SZ_UD_SLOT(cqe->user_data) == 1 && !r->stopping)
                SZ_WARN("msg=\"doorbell failed\" err=\"%s\"", strerror(-cqe->res));
        } else if (op < SZ_OP_MAX && handlers[op])
            handlers[op](r, cqe);
        else
            SZ_WARN("msg=\"completion without handler\" op=%u res=%d", op, cqe->res);
        n++;
    }
    io_uring_cq_advance(&r->ring, n);
    return n;
}

/*
 * Waits like submit_and_wait, but once the first completion is pending the
 * kernel keeps the thread asleep for up to batch_wait_us more, collecting
 * the completions that arrive meanwhile (IORING_FEAT_MIN_TIMEOUT, Linux
 * 6.12). Each wake-up then serves several stanzas: at moderate rates the
 * sleep/wake cost per stanza, not the stanza work, dominates a reactor's
 * CPU. The kernel's minimum wait counts from the start of the wait, so a
 * reactor that slept longer than batch_wait_us (idle) handles the next
 * completion at once: only sustained load is batched. <tsp> bounds the
 * wait for the first completion (timers); NULL waits indefinitely.
 */
static int batch_wait(sz_reactor_t *r, struct __kernel_timespec *tsp)
{
    /* Without any timeout the kernel ends the wait when the minimum wait
     * expires, even with nothing to do: an idle reactor would wake every
     * batch_wait_us. With a (distant) timeout it instead sleeps on until
     * the first completion, which then wakes it at once. */
    struct __kernel_timespec far = {.tv_sec = IDLE_WAIT_S, .tv_nsec = 0};
    if (!tsp)
        tsp = &far;
    if (io_uring_sq_ready(&r->ring)) {
        int ret = io_uring_submit(&r->ring);
        if (ret < 0)
            return ret;
    }
    return sz_ring_wait_min(&r->ring, r->ring_registered, BATCH_WAIT_NR, r->batch_wait_us, tsp);
}

int sz_ring_wait_min(struct io_uring *ring, bool registered, unsigned wait_nr,
                     unsigned min_wait_us, struct __kernel_timespec *ts)
{
    struct io_uring_getevents_arg arg = {
        .sigmask = 0,
        .sigmask_sz = _NSIG / 8,
        .pad = min_wait_us, /* min_wait_usec in newer headers */
        .ts = (uint64_t)(uintptr_t)ts,
    };
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    int fd = ring->ring_fd;
    if (registered) {
        flags |= IORING_ENTER_REGISTERED_RING;
        fd = ring->enter_ring_fd;
    }
    long ret = syscall(__NR_io_uring_enter, fd, 0u, wait_nr, flags, &arg, sizeof(arg));
    return ret < 0 ? -errno : (int)ret;
}

bool sz_ring_has_min_wait(const struct io_uring *ring)
{
    return (ring->features & IORING_FEAT_MIN_TIMEOUT) != 0;
}

void sz_reactor_run(sz_reactor_t *r)
{
    for (;;) {
        /* The clock first: handlers arm timers relative to the wheel's
         * now, which must not lag by however long we slept. */
        unsigned fired = sz_wheel_advance(&r->wheel, sz_now_ms());
        if (fired)
            SZ_STAT_ADD(&r->stats, timers_fired, fired);

        unsigned n = handle_cqes(r);
        SZ_STAT_ADD(&r->stats, cqes, n);
        SZ_STAT_ADD(&r->stats, loops, 1);

        unsigned msgs = sz_xq_drain(r->xq, r->id, XQ_BUDGET, on_xq_msg, r);
        if (msgs)
            SZ_STAT_ADD(&r->stats, xq_msgs, msgs);

        if (r->on_flush)
            r->on_flush(r);
        for (unsigned i = 0; i < nhooks; i++)
            hooks[i]();
        ring_doorbells(r);

        if (r->stopping && (!r->quiesced || r->quiesced(r))) {
            io_uring_submit(&r->ring);
            break;
        }

        /* Sleep only when nothing is pending: no completions waiting and
         * (after the fence in sz_xq_idle) no inbound message. */
        struct __kernel_timespec zero = {0, 0}, ts, *tsp = &zero;
        if (io_uring_cq_ready(&r->ring) == 0 && sz_xq_idle(r->xq, r->id)) {
            uint64_t next = sz_wheel_next(&r->wheel);
            if (r->stopping && next > 100)
                next = 100; /* re-check quiescence while draining */
            if (next == UINT64_MAX) {
                tsp = NULL;
            } else {
                ts.tv_sec = (long long)(next / 1000);
                ts.tv_nsec = (long long)(next % 1000) * 1000000;
                tsp = &ts;
            }
        }
        struct io_uring_cqe *cqe;
        int ret;
        if (r->batch_wait_us && !r->stopping && tsp != &zero)
            ret = batch_wait(r, tsp); /* work pending (zero): no batching wait */
        else if (tsp)
            ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
        else
            ret = io_uring_submit_and_wait(&r->ring, 1);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
            SZ_WARN("msg=\"io_uring wait failed\" err=\"%s\"", strerror(-ret));
    }
}
