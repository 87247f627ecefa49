/*
 * The per-second series (--csv FILE): one row a second while the run
 * lasts, written by the main thread from the workers' relaxed counters.
 * Columns:
 *   t_s, phase, connected, logins_per_s, sent_per_s, received_per_s,
 *   p50_ms, p99_ms, errors
 * t_s is seconds since the run's start (the same origin for every process
 * of --procs); connected is sessions online now (logins done minus
 * sessions the server dropped); the rates are over the last second;
 * p50/p99 are the delivery latency of the last second (the worst worker
 * thread's, as in the live line); errors is the total so far.
 * bench/plot draws it.
 */
#ifndef SB_CSV_H
#define SB_CSV_H

#include <stdint.h>
#include <stdio.h>

#define SB_CSV_HEADER \
    "t_s,phase,connected,logins_per_s,sent_per_s,received_per_s,p50_ms,p99_ms,errors\n"

typedef struct sb_csv_row {
    double t_s;
    const char *phase;
    uint64_t connected;
    double logins_per_s, sent_per_s, received_per_s;
    double p50_ms, p99_ms;
    uint64_t errors;
} sb_csv_row_t;

/** Creates <path> and writes the header; NULL (errno set) on failure. */
FILE *sb_csv_open(const char *path);

/** Appends one row and flushes it (a run cut short keeps its rows). */
void sb_csv_write(FILE *f, const sb_csv_row_t *r);

/**
 * Merges the series of <n> processes (<parts>, each written by
 * sb_csv_open/sb_csv_write with the same time origin) into <out>: rows of
 * the same second are summed (connected, rates, errors), the latencies
 * are the worst process's, and the phase is the earliest any process is
 * in. Returns 0, or -1 (errno set) when a file cannot be read or written.
 */
int sb_csv_merge(const char *out, char *const *parts, unsigned n);

#endif
