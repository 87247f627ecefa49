/*
 * The per-second CSV series and the merge of --procs children's series
 * (csv.h). Main thread (or the parent process) only.
 */
#include "bench/stanza_bench/csv.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

FILE *sb_csv_open(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(SB_CSV_HEADER, f);
        fflush(f);
    }
    return f;
}

void sb_csv_write(FILE *f, const sb_csv_row_t *r)
{
    fprintf(f, "%.3f,%s,%llu,%.1f,%.1f,%.1f,%.3f,%.3f,%llu\n", r->t_s, r->phase,
            (unsigned long long)r->connected, r->logins_per_s, r->sent_per_s, r->received_per_s,
            r->p50_ms, r->p99_ms, (unsigned long long)r->errors);
    fflush(f);
}

/* Phases in run order (the names main.c writes). */
static const char *const phases[] = {"init", "ramp", "hold", "messages", "drain", "stop"};
#define NPHASES 6

static int phase_rank(const char *s)
{
    for (int i = 0; i < NPHASES; i++)
        if (strcmp(s, phases[i]) == 0)
            return i;
    return NPHASES - 1;
}

/* One merged second. */
struct sec {
    bool used;
    int phase;
    double t_s;
    uint64_t connected, errors;
    double logins, sent, recv, p50, p99;
};

int sb_csv_merge(const char *out, char *const *parts, unsigned n)
{
    size_t cap = 0;
    struct sec *v = NULL;
    for (unsigned i = 0; i < n; i++) {
        FILE *f = fopen(parts[i], "r");
        if (!f) {
            free(v);
            return -1;
        }
        char line[512], ph[32];
        while (fgets(line, sizeof(line), f)) {
            sb_csv_row_t r;
            unsigned long long con, err;
            if (sscanf(line, "%lf,%31[^,],%llu,%lf,%lf,%lf,%lf,%lf,%llu", &r.t_s, ph, &con,
                       &r.logins_per_s, &r.sent_per_s, &r.received_per_s, &r.p50_ms, &r.p99_ms,
                       &err) != 9 || r.t_s < 0 || r.t_s > 1e7)
                continue; /* the header */
            /* rows are written on a one-second grid from a common origin */
            size_t k = (size_t)llround(r.t_s);
            if (k >= cap) {
                size_t nc = k + 64;
                struct sec *nv = realloc(v, nc * sizeof(*v));
                if (!nv)
                    abort();
                memset(nv + cap, 0, (nc - cap) * sizeof(*v));
                v = nv;
                cap = nc;
            }
            struct sec *s = &v[k];
            int rank = phase_rank(ph);
            if (!s->used || rank < s->phase)
                s->phase = rank;
            if (!s->used || r.t_s > s->t_s)
                s->t_s = r.t_s;
            s->used = true;
            s->connected += con;
            s->errors += err;
            s->logins += r.logins_per_s;
            s->sent += r.sent_per_s;
            s->recv += r.received_per_s;
            s->p50 = fmax(s->p50, r.p50_ms);
            s->p99 = fmax(s->p99, r.p99_ms);
        }
        fclose(f);
    }
    FILE *f = sb_csv_open(out);
    if (!f) {
        free(v);
        return -1;
    }
    for (size_t k = 0; k < cap; k++) {
        if (!v[k].used)
            continue;
        sb_csv_row_t r = {v[k].t_s, phases[v[k].phase], v[k].connected, v[k].logins, v[k].sent,
                          v[k].recv, v[k].p50, v[k].p99, v[k].errors};
        sb_csv_write(f, &r);
    }
    free(v);
    return fclose(f) == 0 ? 0 : -1;
}
