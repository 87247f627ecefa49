/*
 * A node: the reactors, their listeners and the cross-reactor queues of one
 * process, started from a config and stopped on a signal. One node per
 * process. sz_node_start/stop/reload are main-thread only; the read-only
 * accessors may be called from any thread while the node runs (the admin
 * endpoint calls them from a reactor).
 */
#ifndef SZ_NET_NODE_H
#define SZ_NET_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/reactor.h"

typedef struct sz_node sz_node_t;

/**
 * Main thread. Sizes the direct-descriptor tables from RLIMIT_NOFILE,
 * binds every listener, starts the reactors and waits until all are
 * running. <conf> must outlive the node. Returns the node, or NULL with a
 * one-line message in <err> (nothing left running or allocated).
 */
sz_node_t *sz_node_start(const sz_conf_t *conf, char *err, size_t errlen);

/** Main thread. Stops accepting, closes every connection (with a flush),
 * joins the reactors and frees everything. */
void sz_node_stop(sz_node_t *node);

/** Main thread. Applies the reloadable values of <conf> (log level,
 * limits) that live outside the config (the log threshold, the output
 * cap); the reactors read the other limits from the config at each use.
 * <conf> may be freed after. */
void sz_node_reload(sz_node_t *node, const sz_conf_t *conf);

/* ---- read-only views, any thread ---- */
unsigned sz_node_nreactors(const sz_node_t *node);
const sz_reactor_t *sz_node_reactor(const sz_node_t *node, unsigned i);
const sz_xq_t *sz_node_xq(const sz_node_t *node);
uint64_t sz_node_uptime_ms(const sz_node_t *node);
bool sz_node_stopping(const sz_node_t *node);

/** The running node of this process (NULL before start / after stop). */
sz_node_t *sz_node_current(void);

/** Direct-descriptor slots per reactor for <rlimit_nofile> and <nlisteners>
 * listeners when node.max_conns_per_reactor is auto (0). Pure. */
uint32_t sz_node_auto_slots(uint64_t rlimit_nofile, unsigned nreactors, unsigned nlisteners);

#endif
