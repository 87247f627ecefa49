/*
 * Timer wheel. A timer is placed in the lowest level whose span covers its
 * distance from now; when level 0 wraps, the next slot of level 1 is
 * cascaded (re-placed) into lower levels, and so on up. Owner-thread only.
 *
 * Invariant: a timer in level L slot s has (expires >> 6L) & 63 == s and
 * expires - now < 64^(L+1) at the time it was placed.
 */
#include "core/timer.h"

#include <string.h>
#include <time.h>

#define BITS 6
#define MASK (SZ_WHEEL_SLOTS - 1)

uint64_t sz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sz_wheel_init(sz_wheel_t *w, uint64_t now)
{
    memset(w, 0, sizeof(*w));
    w->now = now;
}

/* <min> is the earliest tick the slot may be for: now+1 when arming (the
 * current slot was processed already), now when cascading (the current
 * level-0 slot is processed right after the cascade). */
static void link_in(sz_wheel_t *w, sz_timer_t *t, uint64_t min)
{
    uint64_t exp = t->expires;
    /* A timer in the past goes to the slot processed next, so it fires on
     * the next advance rather than a whole revolution later. */
    if (exp < min)
        exp = min;
    uint64_t delta = exp - w->now;
    int lvl = 0;
    while (lvl < SZ_WHEEL_LEVELS - 1 && delta >= (1ull << (BITS * (lvl + 1))))
        lvl++;
    if (lvl == SZ_WHEEL_LEVELS - 1 && delta >= (1ull << (BITS * SZ_WHEEL_LEVELS)))
        exp = w->now + (1ull << (BITS * SZ_WHEEL_LEVELS)) - 1; /* clamp ~2 years */
    sz_timer_t **head = &w->slot[lvl][(exp >> (BITS * lvl)) & MASK];
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    t->pprev = head;
    *head = t;
}

static void unlink_timer(sz_timer_t *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

void sz_timer_arm(sz_wheel_t *w, sz_timer_t *t, uint64_t expires, sz_timer_fn fn)
{
    if (t->pprev)
        unlink_timer(t);
    else
        w->count++;
    t->expires = expires;
    t->fn = fn;
    link_in(w, t, w->now + 1);
}

void sz_timer_cancel(sz_wheel_t *w, sz_timer_t *t)
{
    if (!t->pprev)
        return;
    unlink_timer(t);
    w->count--;
}

/* Re-place every timer of level <lvl> slot <idx> relative to the new now. */
static void cascade(sz_wheel_t *w, int lvl, unsigned idx)
{
    sz_timer_t *t = w->slot[lvl][idx];
    w->slot[lvl][idx] = NULL;
    while (t) {
        sz_timer_t *next = t->next;
        t->next = NULL;
        t->pprev = NULL;
        link_in(w, t, w->now);
        t = next;
    }
}

unsigned sz_wheel_advance(sz_wheel_t *w, uint64_t now)
{
    unsigned fired = 0;
    if (w->count == 0) {
        /* Nothing armed: jump, no per-tick work at all. */
        if (now > w->now)
            w->now = now;
        return 0;
    }
    while (w->now < now) {
        w->now++;
        unsigned idx = w->now & MASK;
        /* Level 0 wrapped: cascade the due slot of level 1, and of each
         * higher level whose lower levels all wrapped at this tick. */
        if (idx == 0) {
            for (int lvl = 1; lvl < SZ_WHEEL_LEVELS; lvl++) {
                unsigned li = (w->now >> (BITS * lvl)) & MASK;
                cascade(w, lvl, li);
                if (li != 0)
                    break;
            }
        }
        sz_timer_t **head = &w->slot[0][idx];
        while (*head) {
            sz_timer_t *t = *head;
            unlink_timer(t);
            w->count--;
            fired++;
            t->fn(t); /* may re-arm t or others; the loop re-reads the head */
        }
        if (w->count == 0 && w->now < now) {
            w->now = now;
            break;
        }
    }
    return fired;
}

uint64_t sz_wheel_next(const sz_wheel_t *w)
{
    if (w->count == 0)
        return UINT64_MAX;
    /* Level 0: the first non-empty slot ahead gives the exact expiry. */
    unsigned cur = w->now & MASK;
    for (unsigned k = 1; k < SZ_WHEEL_SLOTS; k++)
        if (w->slot[0][(cur + k) & MASK])
            return k;
    /* Higher levels: a non-empty slot is cascaded when the lower levels
     * wrap onto it; the earliest such moment bounds the wait. */
    uint64_t best = UINT64_MAX;
    for (int lvl = 1; lvl < SZ_WHEEL_LEVELS; lvl++) {
        uint64_t base = w->now >> (BITS * lvl);
        for (unsigned k = 1; k <= SZ_WHEEL_SLOTS; k++) {
            if (w->slot[lvl][(base + k) & MASK]) {
                uint64_t at = (base + k) << (BITS * lvl);
                if (at - w->now < best)
                    best = at - w->now;
                break;
            }
        }
    }
    /* Nothing found can only mean timers in the slot being processed;
     * the next level-0 wrap is a safe bound. */
    return best == UINT64_MAX ? SZ_WHEEL_SLOTS - cur : best;
}
