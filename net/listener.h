/*
 * Listeners: one SO_REUSEPORT socket per (listener, reactor), so the kernel
 * spreads new connections over the reactors; each reactor accepts on its
 * own socket, straight into its direct-descriptor table.
 *
 * Two accept modes per reactor:
 * - multishot accept (default): one completion per connection. The kernel
 *   waits on a listening socket exclusively, and an exclusive wait always
 *   wakes the reactor at once, whatever its batching window.
 * - readiness (when the reactor batches, node.batch_wait_us > 0): a
 *   multishot POLL_ADD, whose wake-ups respect the batching window, and on
 *   readiness a burst of single accepts that never wait
 *   (IORING_ACCEPT_DONTWAIT, Linux 6.10; batching needs 6.12 anyway). A
 *   burst that accepted every time is followed by another; one that met
 *   the empty backlog (-EAGAIN) waits for the next readiness; bursts start
 *   at two accepts and double while every accept gets a connection. Completions
 *   arrive in the order the kernel posted them, so readiness seen while a
 *   burst is in flight can be ignored: that burst ran later and saw it.
 */
#ifndef SZ_NET_LISTENER_H
#define SZ_NET_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/reactor.h"

/* Accept state of one (listener, reactor); that reactor's thread only. */
typedef struct sz_accept_state {
    uint16_t inflight; /* single accepts of the readiness mode not completed yet */
    uint16_t burst;    /* size of the last burst */
    bool empty;        /* one of them met the empty backlog */
    bool ended;        /* the armed multishot request ended (no IORING_CQE_F_MORE) */
} sz_accept_state_t;

/* user_data gen field of SZ_OP_ACCEPT completions */
enum { SZ_ACCEPT_MULTI = 0, SZ_ACCEPT_READY = 1, SZ_ACCEPT_ONE = 2 };

typedef struct sz_listener {
    const sz_conf_listen_t *conf;
    unsigned n;             /* reactors */
    int *fds;               /* one listening socket per reactor; -1 once closed */
    sz_accept_state_t *st;  /* one per reactor */
} sz_listener_t;

/**
 * Main thread, before reactors start. Binds <n> SO_REUSEPORT sockets to
 * <cl>'s address and port and listens. First probes the address with a
 * plain bind, so a port held by any other socket (even another stanzad
 * with SO_REUSEPORT) is an error rather than silently shared. Returns 0,
 * or -errno with a one-line message in <err>.
 */
int sz_listener_open(sz_listener_t *l, const sz_conf_listen_t *cl, unsigned n, char *err,
                     size_t errlen);

/** Main thread, after reactors stopped. Closes what is still open. */
void sz_listener_close(sz_listener_t *l);

/** Reactor thread. Arms listener <idx> on <r>: a multishot accept, or the
 * readiness poll when <r> batches its wake-ups. */
void sz_listener_arm(sz_reactor_t *r, sz_listener_t *l, unsigned idx);

/** Reactor thread, readiness mode. Queues a burst of single accepts that
 * complete at once (a connection each, or -EAGAIN); counted in inflight. */
void sz_listener_burst(sz_reactor_t *r, sz_listener_t *l, unsigned idx);

/** Reactor thread. Stops accepting on <r>: cancels the accept (or poll);
 * the socket is closed once its last completion, and the last completion
 * of any burst, has arrived. */
void sz_listener_stop(sz_reactor_t *r, sz_listener_t *l, unsigned idx);

#endif
