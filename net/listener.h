/*
 * Listeners: one SO_REUSEPORT socket per (listener, reactor), so the kernel
 * spreads new connections over the reactors; each reactor runs a multishot
 * accept on its own socket, straight into its direct-descriptor table.
 */
#ifndef SZ_NET_LISTENER_H
#define SZ_NET_LISTENER_H

#include <stddef.h>

#include "core/conf.h"
#include "core/reactor.h"

typedef struct sz_listener {
    const sz_conf_listen_t *conf;
    unsigned n;  /* reactors */
    int *fds;    /* one listening socket per reactor; -1 once closed */
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

/** Reactor thread. Arms the multishot accept of listener <idx> on <r>. */
void sz_listener_arm(sz_reactor_t *r, sz_listener_t *l, unsigned idx);

/** Reactor thread. Stops accepting on <r>: cancels the accept; the socket
 * is closed when the accept's last completion arrives. */
void sz_listener_stop(sz_reactor_t *r, sz_listener_t *l, unsigned idx);

#endif
