/*
 * Reactor: one thread, one io_uring, run to completion (DESIGN §2).
 * Each iteration: handle completions, fire timers, drain the inbound
 * cross-reactor queues, let the upper layer flush (sends), ring owed
 * doorbells, then one submit-and-wait bounded by the next timer.
 *
 * Completions are dispatched by the top 8 bits of user_data (the op) to a
 * handler table that upper layers fill at start-up. Connection ops encode
 * op:8 | gen:24 | slot:32 (STYLE §6); rare one-off ops may carry a pointer
 * in the low 56 bits instead.
 *
 * Everything here is owner-thread only unless it says otherwise.
 */
#ifndef SZ_CORE_REACTOR_H
#define SZ_CORE_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "core/bufring.h"
#include "core/stats.h"
#include "core/timer.h"
#include "core/xq.h"

enum sz_op {
    SZ_OP_NONE = 0,
    SZ_OP_WAKE,       /* doorbell from another reactor: nothing to do but wake */
    SZ_OP_CTRL,       /* control message from the main thread (cqe->res = enum sz_ctrl) */
    SZ_OP_ACCEPT,     /* multishot accept; slot = listener index */
    SZ_OP_RECV,       /* multishot recv */
    SZ_OP_SEND,       /* send / sendmsg */
    SZ_OP_CLOSE,      /* close_direct of a connection's slot */
    SZ_OP_SLOT_CLOSE, /* close_direct of a slot whose connection moved away */
    SZ_OP_MOVE_OUT,   /* MSG_RING SEND_FD completion on the sending reactor */
    SZ_OP_MOVE_IN,    /* handed-off descriptor arrived; low 56 bits = state pointer */
    SZ_OP_MOVE_FD,     /* hand-off: FIXED_FD_INSTALL done on the sending reactor */
    SZ_OP_MOVE_ARRIVE, /* hand-off arrived (MSG_RING data); low 56 bits = hand-off */
    SZ_OP_MOVE_INSTALL,/* hand-off: FILES_UPDATE done on the receiving reactor */
    SZ_OP_MOVE_DONE,   /* hand-off answered (or not sent); low 56 bits = hand-off */
    SZ_OP_MOVE_REPLY,  /* failed answer post of a hand-off */
    SZ_OP_CANCEL,     /* cancel requests */
    SZ_OP_PEER,       /* getsockopt(SO_PEERNAME) of a new connection; low 56 bits = op pointer */
    SZ_OP_SHUTDOWN,   /* shutdown(SHUT_WR) of a draining connection */
    SZ_OP_STORAGE,    /* storage request done; low 56 bits = the request (storage/store.h) */
    SZ_OP_STORE_BELL, /* failed doorbell to a storage worker; slot = worker index */
    SZ_OP_USER,       /* first op free for other layers */
    SZ_OP_MAX = 32,
};

enum sz_ctrl { SZ_CTRL_STOP = 1 };

#define SZ_UD_OP(ud)   ((unsigned)((ud) >> 56))
#define SZ_UD_GEN(ud)  ((uint32_t)((ud) >> 32) & 0xffffffu)
#define SZ_UD_SLOT(ud) ((uint32_t)(ud))
#define SZ_UD_PTR(ud)  ((void *)(uintptr_t)((ud) & ((1ull << 56) - 1)))

static inline uint64_t sz_ud(unsigned op, uint32_t gen, uint32_t slot)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffffu) << 32 | slot;
}

static inline uint64_t sz_ud_ptr(unsigned op, const void *p)
{
    return (uint64_t)op << 56 | ((uint64_t)(uintptr_t)p & ((1ull << 56) - 1));
}

typedef struct sz_reactor sz_reactor_t;
typedef struct sz_msg sz_msg_t;

/** Completion handler. <cqe> is valid only during the call. */
typedef void (*sz_cqe_fn)(sz_reactor_t *r, const struct io_uring_cqe *cqe);

/** A cross-reactor message; embed it first in the real message struct. */
struct sz_msg {
    /* Called on the destination reactor, which then owns the message. */
    void (*fn)(sz_reactor_t *r, unsigned src, sz_msg_t *m);
    /* Called instead, on the main thread, when the destination exited
     * before taking the message (the node stopping while another reactor
     * still posted): frees it and what it holds. NULL: sz_free(m). */
    void (*drop)(sz_msg_t *m);
};

typedef struct sz_reactor_opts {
    unsigned id, n;          /* this reactor, reactor count */
    uint32_t direct_slots;   /* sparse fixed-file table size */
    uint32_t recv_buffers;   /* provided buffers (power of two) */
    uint32_t recv_buffer_bytes;
    sz_xq_t *xq;             /* shared matrix */
    int *ring_fds;           /* array of n ring fds, filled as reactors start */
    int cpu;                 /* CPU to pin to, or -1 */
    uint32_t batch_wait_us;  /* 0: wake per completion; see sz_reactor_run */
} sz_reactor_opts_t;

struct sz_reactor {
    struct io_uring ring;
    unsigned id, n;
    uint32_t direct_slots;
    int cpu;
    unsigned setup_flags; /* io_uring setup flags in effect */
    bool ring_registered;   /* ring fd registered: enter by index */
    uint32_t batch_wait_us; /* 0 = wake per completion, else see sz_reactor_run */
    sz_wheel_t wheel;
    sz_bufring_t bufs;
    sz_xq_t *xq;
    int *ring_fds;
    uint64_t wake_mask[4]; /* destinations owed a doorbell this iteration */
    bool stopping;         /* STOP received; loop ends once quiesced */

    /* Upper-layer hooks, set before sz_reactor_run(). */
    void *net;                                  /* upper layer's per-reactor state */
    void *router;                               /* core/router.c user table */
    void (*on_flush)(sz_reactor_t *r);          /* end of every iteration */
    void (*on_stop)(sz_reactor_t *r);           /* STOP arrived (once) */
    bool (*quiesced)(sz_reactor_t *r);          /* nothing in flight: safe to exit */

    sz_stats_t stats __attribute__((aligned(64)));
};

/**
 * Global, main thread before any reactor starts: the handler for <op>
 * (an enum sz_op value below SZ_OP_MAX).
 */
void sz_reactor_set_handler(unsigned op, sz_cqe_fn fn);

/**
 * Global, main thread before any reactor starts: <fn> runs on every
 * reactor at the end of each loop iteration, after on_flush and before the
 * doorbells (e.g. waking other threads once for all the work handed to
 * them during the iteration). Adding the same <fn> again does nothing.
 * At most SZ_REACTOR_HOOKS; returns 0 or -ENOSPC.
 */
#define SZ_REACTOR_HOOKS 4
int sz_reactor_add_iteration_hook(void (*fn)(void));

/**
 * Reactor thread (the ring's single issuer). Sets up the ring (single
 * issuer, deferred task running where the kernel has them), the sparse
 * direct-descriptor table, the provided-buffer ring and the wheel, then
 * publishes the ring fd in opts->ring_fds[id]. Returns 0 or -errno; on
 * failure nothing is left allocated.
 */
int sz_reactor_init(sz_reactor_t *r, const sz_reactor_opts_t *o);

/** Reactor thread. Runs the loop until STOP and quiesced. */
void sz_reactor_run(sz_reactor_t *r);

/** Reactor thread, after run returned. Frees the ring and buffers. */
void sz_reactor_destroy(sz_reactor_t *r);

/**
 * Owner thread. Returns a free SQE, submitting pending ones first when the
 * SQ is full. Never NULL.
 */
struct io_uring_sqe *sz_reactor_sqe(sz_reactor_t *r);

/**
 * Owner thread. Sends <m> to reactor <dst> through the (id, dst) queue;
 * the doorbell is rung at the end of this iteration if needed. On success
 * the destination owns <m>. Returns 0, or -ENOBUFS when the queue is full
 * (caller keeps <m> and must retry later: back-pressure).
 */
int sz_reactor_post(sz_reactor_t *r, unsigned dst, sz_msg_t *m);

/** Owner thread. Current time in ms, refreshed once per iteration. */
static inline uint64_t sz_reactor_now(const sz_reactor_t *r)
{
    return r->wheel.now;
}

/** The calling thread's reactor, or NULL on a non-reactor thread. */
sz_reactor_t *sz_reactor_self(void);

/**
 * Any thread with its own ring <from> (e.g. the main thread's control
 * ring). Posts control <ctrl> to the reactor whose ring fd is <ring_fd>.
 * Returns 0 or -errno.
 */
int sz_reactor_ctrl(struct io_uring *from, int ring_fd, enum sz_ctrl ctrl);

/**
 * The thread that owns <ring>. Waits (submitting nothing) until <wait_nr>
 * completions are pending or <ts> (required) passes, but once the first
 * completion is pending sleeps on for up to <min_wait_us> more in all
 * (IORING_FEAT_MIN_TIMEOUT, Linux 6.12; 0: no minimum). A thread that has
 * slept longer than <min_wait_us> therefore wakes at the first completion.
 * With <registered>, enters through the ring's registered descriptor.
 * Returns the io_uring_enter result or -errno (-ETIME when <ts> passed).
 */
int sz_ring_wait_min(struct io_uring *ring, bool registered, unsigned wait_nr,
                     unsigned min_wait_us, struct __kernel_timespec *ts);

/** True when the kernel of <ring> supports a minimum wait (Linux 6.12). */
bool sz_ring_has_min_wait(const struct io_uring *ring);

#endif
