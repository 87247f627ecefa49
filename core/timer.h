/*
 * Hierarchical timer wheel (Varghese & Lauck, scheme 7): 6 levels of 64
 * slots with a 1 ms tick cover 2^36 ms. Arming and cancelling are O(1);
 * advancing costs O(expired timers + cascades), and a timer cascades at most
 * once per level, so idle connections cost nothing per tick.
 *
 * One wheel per reactor; every function is owner-thread only. Timers are
 * embedded in their owner's struct (intrusive), so the wheel allocates
 * nothing.
 */
#ifndef SZ_CORE_TIMER_H
#define SZ_CORE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define SZ_WHEEL_LEVELS 6
#define SZ_WHEEL_SLOTS  64

typedef struct sz_timer sz_timer_t;
typedef void (*sz_timer_fn)(sz_timer_t *t);

/* Exactly 32 bytes on LP64. Zero-initialised means "not armed". */
struct sz_timer {
    sz_timer_t *next;
    sz_timer_t **pprev; /* NULL when not armed */
    uint64_t expires;   /* absolute tick (ms) */
    sz_timer_fn fn;
};

typedef struct sz_wheel {
    uint64_t now; /* last tick processed */
    uint32_t count; /* armed timers */
    sz_timer_t *slot[SZ_WHEEL_LEVELS][SZ_WHEEL_SLOTS];
} sz_wheel_t;

/** Owner thread. Starts the wheel at tick <now>. */
void sz_wheel_init(sz_wheel_t *w, uint64_t now);

/**
 * Owner thread. Arms <t> to call <fn>(<t>) at tick <expires> (a past tick
 * fires on the next advance). Re-arms if already armed. The wheel does not
 * own <t>; the caller must cancel it before freeing it.
 */
void sz_timer_arm(sz_wheel_t *w, sz_timer_t *t, uint64_t expires, sz_timer_fn fn);

/** Owner thread. Disarms <t>; harmless if not armed. */
void sz_timer_cancel(sz_wheel_t *w, sz_timer_t *t);

static inline bool sz_timer_armed(const sz_timer_t *t)
{
    return t->pprev != 0;
}

/**
 * Owner thread. Moves the wheel to tick <now>, calling every timer that
 * expires at or before it. Callbacks may arm or cancel any timer (including
 * their own). Returns the number of timers fired.
 */
unsigned sz_wheel_advance(sz_wheel_t *w, uint64_t now);

/**
 * Owner thread. Ticks from w->now until the wheel next has work (a timer
 * fires or a slot cascades); UINT64_MAX when no timer is armed. Use it as
 * the upper bound of the reactor's wait.
 */
uint64_t sz_wheel_next(const sz_wheel_t *w);

/** Monotonic clock in ms (the wheel's tick unit). Any thread. */
uint64_t sz_now_ms(void);

#endif
