/*
 * Open-loop schedules: event g of a stream is due at t0 + g / rate, fixed
 * before the run starts and never moved by what the target does. A worker
 * owns the events g = k * stride + offset (k = 0, 1, ...) of a stream of
 * n events; it pops every event that is due, each with its *intended*
 * time, so an event popped late (the target or the tool stalled) keeps
 * the time it was due at, and latency measured from it includes the stall
 * (no coordinated omission).
 *
 * Pure arithmetic: no clock, no state but the caller's counter <k>.
 */
#ifndef SB_SCHED_H
#define SB_SCHED_H

#include <stdint.h>

typedef struct sb_sched {
    uint64_t t0;     /* intended time of event 0, ns */
    double rate;     /* events/s, all workers together (> 0) */
    uint64_t n;      /* events in the stream (UINT64_MAX: unbounded) */
    uint32_t stride; /* workers sharing the stream (>= 1) */
    uint32_t offset; /* this worker's first event (< stride) */
} sb_sched_t;

/** Intended time (ns) of global event <g>. */
uint64_t sb_sched_due(const sb_sched_t *sc, uint64_t g);

/**
 * The next event of the caller's share, whose index in the share is *<k>.
 * Returns 1 when it is due at or before <now>: sets *<g> (global index)
 * and *<when> (its intended time, never <now>) and advances *<k>. Returns
 * 0 when it is due later: lowers *<wake> to its time when that is
 * earlier. Returns -1 when the share is exhausted (g >= n).
 */
int sb_sched_pop(const sb_sched_t *sc, uint64_t *k, uint64_t now, uint64_t *g, uint64_t *when,
                 uint64_t *wake);

/** Events of the share of <sc> (offset, stride) among its n events. */
uint64_t sb_sched_share(const sb_sched_t *sc);

#endif
