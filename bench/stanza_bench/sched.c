/*
 * Open-loop schedule arithmetic (sched.h). The due time is computed from
 * the event's index each time, never by adding an interval to the previous
 * due time, so rounding never accumulates and a late pop never shifts the
 * events after it. Any thread; pure.
 */
#include "bench/stanza_bench/sched.h"

uint64_t sb_sched_due(const sb_sched_t *sc, uint64_t g)
{
    /* g / rate in ns; a double holds g * 1e9 exactly enough up to about
     * 2^53 ns (104 days), far beyond any run */
    return sc->t0 + (uint64_t)((double)g * 1e9 / sc->rate);
}

int sb_sched_pop(const sb_sched_t *sc, uint64_t *k, uint64_t now, uint64_t *g, uint64_t *when,
                 uint64_t *wake)
{
    uint64_t gi = *k * sc->stride + sc->offset;
    if (gi >= sc->n)
        return -1;
    uint64_t t = sb_sched_due(sc, gi);
    if (t > now) {
        if (t < *wake)
            *wake = t;
        return 0;
    }
    /* Due (or overdue): it goes now, stamped with when it was due. */
    *g = gi;
    *when = t;
    (*k)++;
    return 1;
}

uint64_t sb_sched_share(const sb_sched_t *sc)
{
    if (sc->offset >= sc->n)
        return 0;
    return (sc->n - sc->offset + sc->stride - 1) / sc->stride;
}
