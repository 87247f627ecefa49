/*
 * The final report: merged counters, histograms and errors of all worker
 * threads, /proc samples of the server and of the tool itself, printed as
 * a summary table and written as JSON. Main thread, after the workers
 * were joined.
 */
#ifndef SB_REPORT_H
#define SB_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "bench/stanza_bench/sb.h"

/* One /proc sample of a process. */
typedef struct sb_sample {
    bool ok;
    double cpu_s;     /* utime + stime, all threads, from /proc/PID/stat */
    uint64_t rss_kib; /* VmRSS from /proc/PID/status */
} sb_sample_t;

typedef struct sb_report {
    sb_run_t *run;
    unsigned procs;                 /* --procs: merged from this many processes; 0: one */
    pid_t server_pid;               /* 0: not sampled */
    sb_sample_t srv[3], self[3];    /* before logins, after logins, at the end */
    uint64_t t_ramp_end, t_phase2, t_end; /* ns */
    /* merged */
    sb_counters_t c;
    sb_hist_t *login_h, *deliver_h;
    sb_errtab_t errs;
} sb_report_t;

/** Samples process <pid> (0: marks <s> not ok). */
void sb_sample(pid_t pid, sb_sample_t *s);

/** Merges the workers' results into <r> (sb_report_init, then
 * sb_report_add for each worker thread). */
void sb_report_build(sb_report_t *r);

/** Empties the merged part of <r> (allocates its histograms). */
void sb_report_init(sb_report_t *r);

/** Adds one worker's (or one process's) results to <r>: counters are
 * summed except the latest login time and the worst send lag (maxima). */
void sb_report_add(sb_report_t *r, const sb_counters_t *c, const sb_hist_t *login_h,
                   const sb_hist_t *deliver_h, const sb_errtab_t *errs);

/** The summary table. */
void sb_report_print(const sb_report_t *r, FILE *f);

/** Writes the JSON report to <path>; 0 or -1 (errno set). */
int sb_report_json(const sb_report_t *r, const char *path);

void sb_report_free(sb_report_t *r);

#endif
