/*
 * Connections: the per-reactor slot table, the receive path (multishot recv
 * into the reactor's provided buffers), the output queue (flushed once per
 * loop iteration), timers, closing, and handoff of a live connection to
 * another reactor.
 *
 * A connection lives on exactly one reactor at a time and is touched only
 * by that reactor's thread. Its slot is its direct-descriptor index in that
 * reactor's ring, and completions carry op|gen|slot: a completion whose gen
 * does not match the slot's current gen belongs to an earlier connection and
 * is dropped (its provided buffer, if any, still goes back to the ring).
 *
 * Memory: an idle connection is one sz_conn_t (104 bytes, 112 allocated)
 * plus its 24-byte
 * slot entry; no receive buffer, no output buffer, no protocol state unless
 * the protocol allocates some.
 */
#ifndef SZ_NET_CONN_H
#define SZ_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/reactor.h"
#include "core/timer.h"

typedef struct sz_conn sz_conn_t;
typedef struct sz_obuf sz_obuf_t;

/** Protocol callbacks. All run on the connection's current reactor. */
typedef struct sz_proto {
    const char *name;
    /* Output produced by the server itself, bounded by its own size, not
     * by what the peer sends: exempt from limits.max_output_bytes. */
    bool uncapped;
    /* Accepted. Not called again when the connection moves. */
    void (*on_open)(sz_conn_t *c);
    /* <n> bytes received; <p> is valid only during the call (it is a
     * provided buffer that goes back to the ring right after). */
    void (*on_data)(sz_conn_t *c, const char *p, size_t n);
    /* The peer closed its side, or a read failed. NULL: close. */
    void (*on_eof)(sz_conn_t *c);
    /* The connection timer fired. NULL: close. */
    void (*on_timer)(sz_conn_t *c);
    /* The node is stopping: say goodbye (e.g. a stream end) and close with
     * flush. NULL: close with flush. */
    void (*on_shutdown)(sz_conn_t *c);
    /* Arrived on this reactor by handoff. */
    void (*on_moved)(sz_conn_t *c);
    /* Last call before the connection is freed: release protocol state. */
    void (*on_close)(sz_conn_t *c);
    /* Optional: the peer's address, soon after on_open (a direct descriptor
     * has no fd for getpeername(); it is read with an io_uring socket
     * command). <sa> is valid only during the call. Not called when the
     * kernel cannot tell (then the protocol never learns it). */
    void (*on_peer)(sz_conn_t *c, const struct sockaddr *sa, unsigned len);
} sz_proto_t;

enum sz_conn_state {
    SZ_CONN_ACTIVE = 0,
    SZ_CONN_MOVING,   /* waiting for in-flight I/O to end, then handed off */
    SZ_CONN_DRAINING, /* closing after the output queue is sent */
    SZ_CONN_CLOSING,  /* cancelling I/O, then close_direct, then freed */
};

/* Layout: 104 bytes on LP64 (checked in conn.c); jemalloc rounds to 112. */
struct sz_conn {
    sz_timer_t timer;        /* protocol timer (idle, deadlines) */
    const sz_proto_t *proto;
    void *pstate;            /* protocol-owned state, NULL when idle if possible */
    sz_obuf_t *out_head, *out_tail;
    sz_conn_t *dirty_next;   /* flush list link */
    uint64_t id;             /* node-unique, for logs */
    uint32_t out_bytes;      /* queued, not yet sent */
    uint32_t slot;           /* direct-descriptor index on the current reactor */
    uint32_t gen;            /* generation of <slot> */
    uint16_t reactor;        /* current reactor */
    uint16_t move_to;        /* target while MOVING */
    uint16_t flags;          /* SZ_CF_* (private) */
    uint8_t state;           /* enum sz_conn_state */
    uint8_t listener;        /* index of the listener that accepted it */
};

/** Owner reactor. The reactor the calling thread runs (asserts it is one). */
sz_reactor_t *sz_conn_reactor(const sz_conn_t *c);

/**
 * Owner reactor. Queues a copy of <p>[0..<n>) for sending; it goes out at
 * the end of this loop iteration. Returns 0, -ENOBUFS when the queue would
 * exceed limits.max_output_bytes (nothing queued; the protocol decides:
 * back-pressure or policy-violation), or -EPIPE when the connection is
 * closing.
 */
int sz_conn_send(sz_conn_t *c, const void *p, size_t n);

/**
 * Owner reactor. Queues <n> bytes at <p> without copying; <release>(<ref>)
 * is called once they are sent or dropped. Same returns as sz_conn_send;
 * on failure <release> is called before returning.
 */
int sz_conn_send_ref(sz_conn_t *c, const void *p, size_t n, void (*release)(void *ref),
                     void *ref);

/**
 * Owner reactor. Closes <c>. With <flush>, queued output is sent first
 * (bounded by a 5 s deadline, 1 s while the node stops), then FIN, and
 * input is read and dropped until the peer's EOF (a lingering close, so the
 * peer never gets RST over unread data and loses our last bytes). The connection is
 * freed later, after every in-flight operation completed; proto->on_close
 * is called then. Idempotent.
 */
void sz_conn_close(sz_conn_t *c, bool flush);

/**
 * Owner reactor. Hands <c> to reactor <dst>: reading stops, in-flight I/O
 * ends, then the descriptor (as a process descriptor installed from the
 * slot, or MSG_RING SEND_FD before Linux 6.8) and the connection state go
 * to <dst>, where proto->on_moved runs. Data already received is handled
 * here first; queued output goes along. The caller must not touch <c>
 * after this call returns 0 (it may already be on its way). Returns 0,
 * -EINVAL (bad <dst> or same reactor), or -EBUSY (closing or moving).
 * If the destination has no free slot the connection stays here and keeps
 * working (counted in handoffs_failed_total).
 */
int sz_conn_move(sz_conn_t *c, unsigned dst);

/** Owner reactor. (Re)arms the connection timer <ms> from now. */
void sz_conn_set_timer(sz_conn_t *c, uint64_t ms);

/** Owner reactor. Disarms the connection timer. */
void sz_conn_cancel_timer(sz_conn_t *c);

/* ---- used by the listener and node code ------------------------------ */

/** Per-reactor connection state (sz_reactor_t.net). */
typedef struct sz_conns sz_conns_t;

/**
 * Reactor thread, after sz_reactor_init. Creates the slot table for
 * r->direct_slots entries and stores it in r->net. <protos>[i] is the
 * protocol of listener i (<nlisteners> entries); the array must outlive
 * the reactor.
 */
void sz_conns_init(sz_reactor_t *r, const sz_proto_t *const *protos, unsigned nlisteners);

/** Reactor thread, once per iteration: sends queued output, advances
 * closing and moving connections. */
void sz_conns_flush(sz_reactor_t *r);

/** Reactor thread: the node is stopping; every connection gets
 * proto->on_shutdown (or a flushing close). */
void sz_conns_shutdown(sz_reactor_t *r);

/** Reactor thread, after the loop ended. Frees the table. */
void sz_conns_destroy(sz_reactor_t *r);

/**
 * Reactor thread. Adopts the accepted direct descriptor <slot> as a new
 * connection of listener <listener>, whose sockets are of address <family>.
 * Returns the connection.
 */
sz_conn_t *sz_conns_adopt(sz_reactor_t *r, uint32_t slot, unsigned listener, int family);

/** Main thread, before telling any reactor to stop: no handoff starts
 *  from now on (a moving connection is closed where it is instead). */
void sz_conns_stop_all(void);

/** Reactor thread. In-flight work that must end before the reactor exits. */
bool sz_conns_quiesced(sz_reactor_t *r);

/** Main thread, before reactors start: registers the completion handlers. */
void sz_conns_register_handlers(void);

/** Main thread, before reactors start: connections move between reactors
 *  with MSG_RING SEND_FD even where the kernel could install descriptors
 *  (node.handoff: send_fd). */
void sz_conns_handoff_by_send_fd(void);

/** Live per-connection output cap (limits.max_output_bytes); any thread. */
extern uint32_t sz_conn_max_output;

#endif
