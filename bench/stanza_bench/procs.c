/*
 * --procs N (procs.h): fork, share out the users, rates and source
 * addresses, collect one fixed-size record per child through a pipe, and
 * merge. The record is the child's own memory layout (same binary, same
 * machine), so no encoding is needed; it is about 65 KiB, more than a
 * pipe holds, so the parent reads each pipe to its end before it waits
 * for the children.
 */
#include "bench/stanza_bench/procs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REC_MAGIC 0x73627265u /* "sbre" */

uint64_t sb_procs_t0;

/* What a child sends back. */
struct rec {
    uint32_t magic;
    uint64_t t_ramp0, t_msg0, nmsgs, t_ramp_end, t_phase2, t_end;
    sb_sample_t srv[3], self[3];
    sb_counters_t c;
    sb_errtab_t errs;
    sb_hist_t login_h, deliver_h;
};

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static size_t read_all(int fd, void *p, size_t n)
{
    char *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, b + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

int sb_procs_put(int fd, const sb_report_t *rep)
{
    struct rec *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->magic = REC_MAGIC;
    r->t_ramp0 = rep->run->t_ramp0;
    r->t_msg0 = rep->run->t_msg0;
    r->nmsgs = rep->run->nmsgs;
    r->t_ramp_end = rep->t_ramp_end;
    r->t_phase2 = rep->t_phase2;
    r->t_end = rep->t_end;
    memcpy(r->srv, rep->srv, sizeof(r->srv));
    memcpy(r->self, rep->self, sizeof(r->self));
    r->c = rep->c;
    r->errs = rep->errs;
    r->login_h = *rep->login_h;
    r->deliver_h = *rep->deliver_h;
    int rc = write_all(fd, r, sizeof(*r));
    free(r);
    return rc;
}

/* Cuts <cf> (the whole run) to child <i>'s share of <procs>. */
static void cut(sb_conf_t *cf, unsigned i, unsigned procs)
{
    /* one2one pairs user 2k with 2k+1: shares are whole pairs, and the
     * last child takes an odd user left over */
    uint32_t unit = cf->scenario == SB_SC_ONE2ONE ? 2 : 1;
    uint32_t units = cf->users / unit, before = 0, mine = 0;
    for (unsigned k = 0; k <= i; k++) {
        uint32_t n = (units / procs + (k < units % procs ? 1 : 0)) * unit;
        if (k == procs - 1)
            n += cf->users % unit;
        if (k < i)
            before += n;
        else
            mine = n;
    }
    double share = (double)mine / (double)cf->users;
    cf->login_rate *= share;
    cf->msg_rate *= share;
    cf->first += before;
    cf->users = mine;
    if (cf->src_lo) {
        /* each child its own slice of the source addresses, when there
         * are enough of them; otherwise they share the range */
        uint32_t span = cf->src_hi - cf->src_lo + 1;
        if (span >= procs) {
            uint32_t lo = cf->src_lo + (uint32_t)((uint64_t)span * i / procs);
            uint32_t hi = cf->src_lo + (uint32_t)((uint64_t)span * (i + 1) / procs) - 1;
            cf->src_lo = lo;
            cf->src_hi = hi;
        }
    }
}

/* Merges a child's /proc samples: the server's first sample is the
 * earliest (least CPU), its later ones the latest (most CPU); the tool's
 * are sums over the children. */
static void merge_samples(sb_report_t *rep, const struct rec *r, bool first)
{
    for (int k = 0; k < 3; k++) {
        const sb_sample_t *s = &r->srv[k];
        sb_sample_t *d = &rep->srv[k];
        if (first || (s->ok && (k == 0 ? s->cpu_s < d->cpu_s : s->cpu_s > d->cpu_s)))
            *d = *s;
        if (first) {
            rep->self[k] = r->self[k];
        } else {
            rep->self[k].ok = rep->self[k].ok && r->self[k].ok;
            rep->self[k].cpu_s += r->self[k].cpu_s;
            rep->self[k].rss_kib += r->self[k].rss_kib;
        }
    }
}

int sb_procs_run(sb_run_t *run, unsigned procs, int (*child)(sb_run_t *run, unsigned i, int fd),
                 sb_report_t *rep)
{
    pid_t *pids = calloc(procs, sizeof(*pids));
    int *fds = calloc(procs, sizeof(*fds));
    if (!pids || !fds)
        abort();
    /* every child's ramp starts here: time for the forks and the rings */
    sb_procs_t0 = 0;
    uint64_t t0 = sb_now_ns() + 200000000ull + 20000000ull * procs;
    fflush(NULL);
    for (unsigned i = 0; i < procs; i++) {
        int p[2];
        if (pipe(p) < 0) {
            fprintf(stderr, "stanza-bench: pipe: %s\n", strerror(errno));
            procs = i;
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            for (unsigned k = 0; k < i; k++)
                close(fds[k]);
            sb_procs_t0 = t0;
            cut(&run->conf, i, procs);
            int rc = child(run, i, p[1]);
            close(p[1]);
            fflush(NULL);
            _exit(rc);
        }
        close(p[1]);
        if (pid < 0) {
            fprintf(stderr, "stanza-bench: fork: %s\n", strerror(errno));
            close(p[0]);
            procs = i;
            break;
        }
        pids[i] = pid;
        fds[i] = p[0];
    }
    rep->run = run;
    rep->procs = procs;
    sb_report_init(rep);
    struct rec *r = malloc(sizeof(*r));
    if (!r)
        abort();
    int worst = 0;
    bool any = false;
    for (unsigned i = 0; i < procs; i++) {
        size_t got = read_all(fds[i], r, sizeof(*r));
        close(fds[i]);
        if (got != sizeof(*r) || r->magic != REC_MAGIC) {
            fprintf(stderr, "stanza-bench: process %u of %u sent no report\n", i + 1, procs);
            worst = 1;
            continue;
        }
        sb_report_add(rep, &r->c, &r->login_h, &r->deliver_h, &r->errs);
        merge_samples(rep, r, !any);
        if (!any || r->t_ramp0 < run->t_ramp0)
            run->t_ramp0 = r->t_ramp0;
        if (!any || r->t_msg0 < run->t_msg0)
            run->t_msg0 = r->t_msg0;
        if (!any || r->t_phase2 < rep->t_phase2)
            rep->t_phase2 = r->t_phase2;
        if (r->t_ramp_end > rep->t_ramp_end)
            rep->t_ramp_end = r->t_ramp_end;
        if (r->t_end > rep->t_end)
            rep->t_end = r->t_end;
        run->nmsgs += r->nmsgs;
        any = true;
    }
    free(r);
    for (unsigned i = 0; i < procs; i++) {
        int st = 0;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        if (!WIFEXITED(st))
            fprintf(stderr, "stanza-bench: process %u of %u died (signal %d)\n", i + 1, procs,
                    WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        if (rc > worst)
            worst = rc;
    }
    free(pids);
    free(fds);
    return worst;
}
