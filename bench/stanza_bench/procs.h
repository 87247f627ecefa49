/*
 * --procs N: the run split over N forked processes, so that one machine
 * can hold more sessions than one process's descriptor limit. Child i
 * gets a contiguous share of the users (--first moves along; one2one
 * shares are whole pairs), the same share of the login and message rates,
 * and its own slice of the --src range; every child starts its login ramp
 * at the same instant (the parent's choice, CLOCK_MONOTONIC is shared).
 * Each child runs the scenario like a single process and, instead of
 * printing, writes its merged counters, histograms, errors and /proc
 * samples to a pipe; the parent merges them into one report.
 *
 * Within a child, one2one pairs and roster contacts are users of the same
 * child. Main thread of the parent, before any worker thread exists.
 */
#ifndef SB_PROCS_H
#define SB_PROCS_H

#include "bench/stanza_bench/report.h"

/**
 * Forks <procs> children. In child i, <run>->conf is cut to its share and
 * <child>(<run>, i, fd) runs the scenario and must send its report with
 * sb_procs_put(fd, ...); its return value is the child's exit status.
 * In the parent, fills <rep> (its run is <run>, with the whole
 * configuration) with the merged results; the caller prints it and calls
 * sb_report_free. Returns the worst child's exit status (1 when a child
 * died or sent no report).
 */
int sb_procs_run(sb_run_t *run, unsigned procs, int (*child)(sb_run_t *run, unsigned i, int fd),
                 sb_report_t *rep);

/** Child side: writes <rep> (built) and the run's times to <fd>. 0 or -1. */
int sb_procs_put(int fd, const sb_report_t *rep);

/** The first login's intended time shared by all children; 0 when not
 * under --procs (the run then picks its own). */
extern uint64_t sb_procs_t0;

#endif
