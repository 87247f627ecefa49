/*
 * Cross-reactor queue throughput: two real reactors (sz_reactor_init and
 * sz_reactor_run on two threads, one sz_xq_t matrix, as net/node.c does).
 * Reactor 0 produces <messages> sz_msg_t messages to reactor 1 through
 * sz_reactor_post(), which marks a doorbell (MSG_RING) only when the ring
 * went from empty to non-empty; reactor 1 consumes them, checks their
 * sequence numbers and recycles them.
 *
 * Two modes, one output line each (key=value):
 *   wakeups     the producer posts <burst> messages per loop iteration, then
 *               waits (spinning, bounded) until the consumer has handled
 *               them, so the consumer's inbox is empty and it goes back to
 *               sleep before the next burst: one doorbell per burst.
 *   continuous  the producer posts until the ring is full every iteration,
 *               so the consumer always finds work and never sleeps: almost
 *               no doorbells, and -ENOBUFS (back-pressure) on the producer.
 *
 * Messages come from a preallocated pool of 2 x <entries> slots that is
 * reused in sequence order: a successful push of message s proves that s -
 * <entries> was dequeued, hence s - 2 x <entries> was handled, so its slot
 * is free without any return path. The sequence check would catch a slot
 * reused too early (a jump or a repeat).
 *
 * Every loop is bounded: a run that takes longer than --timeout seconds is
 * stopped through SZ_CTRL_STOP from the main thread's ring and reported as
 * failed. Usage: bench_xq [--messages N] [--entries E] [--burst K]
 *                         [--mode wakeups|continuous|both] [--timeout S]
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/reactor.h"
#include "core/xq.h"

#define SZ_SPIN_CHECK_EVERY 1024 /* spins between two clock reads */

enum mode { MODE_WAKEUPS, MODE_CONTINUOUS };

/* 16 bytes: the runtime's message header and the sequence number. */
struct bmsg {
    sz_msg_t m;
    uint64_t seq;
};

/* Shared state of one run. Each field has one writer, named beside it. */
struct run {
    enum mode mode;
    uint64_t total; /* messages to send */
    uint32_t entries;
    uint32_t burst;
    struct bmsg *pool; /* pool_n slots, reused in order */
    uint64_t pool_n;

    /* producer (reactor 0) */
    uint64_t posted;
    uint64_t enobufs;
    uint64_t t_start_ns;
    uint64_t prod_cpu_ns;

    /* consumer (reactor 1): written by it, read by the producer's spin */
    uint64_t consumed __attribute__((aligned(64)));
    uint64_t expect;    /* next expected sequence number */
    uint64_t bad_order; /* messages whose seq was not the expected one */
    uint64_t t_end_ns;
    uint64_t cons_cpu_ns;
    long cons_vcsw; /* voluntary context switches: times the consumer slept */

    /* any thread */
    int abort __attribute__((aligned(64)));
    int done; /* threads finished */
    uint64_t deadline_ns;
};

static struct run R;
static sz_reactor_t reactors[2];
static sz_xq_t *bench_xq; /* the 2 x 2 matrix of the current run */
static int ring_fds[2];
static pthread_barrier_t barrier;
static int init_failed;

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Voluntary context switches of the calling thread (it blocked that many
 * times), or -1 when /proc is not readable. */
static long thread_vcsw(void)
{
    FILE *f = fopen("/proc/thread-self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* ---- consumer (reactor 1) ---------------------------------------------- */

static void on_msg(sz_reactor_t *r, unsigned src, sz_msg_t *m)
{
    (void)r;
    (void)src;
    struct bmsg *b = (struct bmsg *)m;
    if (b->seq != R.expect)
        R.bad_order++;
    R.expect = b->seq + 1;
    /* The slot is recycled by the producer once the ring proves we are
     * past it; publishing the count lets the wakeups mode wait for us. */
    __atomic_store_n(&R.consumed, R.consumed + 1, __ATOMIC_RELEASE);
}

static void consumer_flush(sz_reactor_t *r)
{
    if (R.consumed >= R.total && !r->stopping) {
        R.t_end_ns = now_ns(CLOCK_MONOTONIC);
        r->stopping = true; /* no quiesced hook: the loop ends now */
    }
}

/* ---- producer (reactor 0) ---------------------------------------------- */

static void on_nop(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    (void)r;
    (void)cqe;
}

/* Keeps the producer's loop from sleeping: a NOP completes at once, so the
 * next submit-and-wait returns after sending the doorbells. */
static void keep_awake(sz_reactor_t *r)
{
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_nop(sqe);
    sqe->user_data = sz_ud(SZ_OP_USER, 0, 0);
}

/* Posts one message; false on back-pressure (the message stays ours and is
 * posted again later, same slot, same seq). */
static bool post_next(sz_reactor_t *r)
{
    struct bmsg *b = &R.pool[R.posted % R.pool_n];
    b->m.fn = on_msg;
    b->seq = R.posted;
    if (sz_reactor_post(r, 1, &b->m) < 0) {
        R.enobufs++;
        return false;
    }
    R.posted++;
    return true;
}

/* Spins until the consumer has handled everything posted; false when the
 * run was aborted or the deadline passed. */
static bool wait_drained(void)
{
    for (uint64_t spins = 0;; spins++) {
        if (__atomic_load_n(&R.consumed, __ATOMIC_ACQUIRE) >= R.posted)
            return true;
        __builtin_ia32_pause();
        if (spins % SZ_SPIN_CHECK_EVERY == 0 && (__atomic_load_n(&R.abort, __ATOMIC_RELAXED) ||
                                                 now_ns(CLOCK_MONOTONIC) > R.deadline_ns))
            return false;
    }
}

static void producer_flush(sz_reactor_t *r)
{
    if (r->stopping)
        return;
    if (R.t_start_ns == 0)
        R.t_start_ns = now_ns(CLOCK_MONOTONIC);
    if (R.mode == MODE_WAKEUPS) {
        if (!wait_drained()) {
            r->stopping = true;
            return;
        }
        for (uint32_t i = 0; i < R.burst && R.posted < R.total; i++)
            if (!post_next(r))
                break; /* cannot happen with burst < entries; counted */
    } else {
        /* Fill the ring; the first refusal ends this iteration. */
        for (uint32_t i = 0; i < R.entries && R.posted < R.total; i++)
            if (!post_next(r))
                break;
    }
    if (R.posted >= R.total)
        r->stopping = true; /* the doorbell of this iteration still goes out */
    else
        keep_awake(r);
}

/* ---- threads ----------------------------------------------------------- */

static void *reactor_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    sz_reactor_t *r = &reactors[id];
    sz_reactor_opts_t o = {
        .id = id,
        .n = 2,
        .direct_slots = 16, /* no connections here */
        .recv_buffers = 16,
        .recv_buffer_bytes = 512,
        .xq = bench_xq,
        .ring_fds = ring_fds,
        .cpu = -1,
    };
    int ret = sz_reactor_init(r, &o);
    if (ret < 0) {
        __atomic_store_n(&init_failed, ret, __ATOMIC_RELEASE);
        pthread_barrier_wait(&barrier);
        return NULL;
    }
    if (id == 0)
        r->on_flush = producer_flush;
    else
        r->on_flush = consumer_flush;
    pthread_barrier_wait(&barrier);
    if (__atomic_load_n(&init_failed, __ATOMIC_ACQUIRE) == 0) {
        long vcsw0 = thread_vcsw();
        uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        sz_reactor_run(r);
        uint64_t cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        if (id == 0) {
            R.prod_cpu_ns = cpu;
        } else {
            R.cons_cpu_ns = cpu;
            long vcsw1 = thread_vcsw();
            R.cons_vcsw = vcsw0 >= 0 && vcsw1 >= 0 ? vcsw1 - vcsw0 : -1;
        }
    }
    sz_reactor_destroy(r);
    __atomic_add_fetch(&R.done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* One run of <mode>; prints its line and returns 0, or 1 on any failure. */
static int run_once(enum mode mode, uint64_t total, uint32_t entries, uint32_t burst,
                    unsigned timeout_s)
{
    memset(&R, 0, sizeof(R));
    memset(reactors, 0, sizeof(reactors));
    R.mode = mode;
    R.total = total;
    R.entries = entries;
    R.burst = burst;
    R.pool_n = 2ull * entries;
    R.pool = sz_calloc(R.pool_n, sizeof(struct bmsg));
    R.deadline_ns = now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_s * 1000000000u;
    init_failed = 0;
    bench_xq = sz_xq_new(2, entries);

    struct io_uring ctrl;
    int ret = io_uring_queue_init(8, &ctrl, 0);
    if (ret < 0) {
        fprintf(stderr, "bench_xq: io_uring unavailable: %s\n", strerror(-ret));
        sz_xq_free(bench_xq);
        sz_free(R.pool);
        return 1;
    }
    pthread_barrier_init(&barrier, NULL, 3);
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reactor_main, (void *)(uintptr_t)i);
    pthread_barrier_wait(&barrier);

    bool timed_out = false;
    if (init_failed == 0) {
        /* Bounded wait: 1 ms steps until both threads end or the deadline. */
        while (__atomic_load_n(&R.done, __ATOMIC_ACQUIRE) < 2) {
            if (now_ns(CLOCK_MONOTONIC) > R.deadline_ns) {
                timed_out = true;
                break;
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (timed_out) {
        /* The producer first: once it has exited, no doorbell can target
         * the consumer's ring after that ring is gone. */
        __atomic_store_n(&R.abort, 1, __ATOMIC_RELAXED);
        sz_reactor_ctrl(&ctrl, ring_fds[0], SZ_CTRL_STOP);
        pthread_join(th[0], NULL);
        sz_reactor_ctrl(&ctrl, ring_fds[1], SZ_CTRL_STOP);
        pthread_join(th[1], NULL);
    } else {
        for (unsigned i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&barrier);
    io_uring_queue_exit(&ctrl);

    int fail = 0;
    if (init_failed) {
        fprintf(stderr, "bench_xq: reactor init failed: %s\n", strerror(-init_failed));
        fail = 1;
    } else {
        uint64_t doorbells = SZ_STAT_GET(&reactors[0].stats, doorbells);
        uint64_t wakes_in = SZ_STAT_GET(&reactors[1].stats, cqes);
        double secs = (double)(R.t_end_ns - R.t_start_ns) / 1e9;
        bool ok = !timed_out && R.consumed == total && R.bad_order == 0 && R.expect == total;
        uint64_t bursts = mode == MODE_WAKEUPS ? (total + burst - 1) / burst : 0;
        printf("mode=%s messages=%llu entries=%u burst=%u seconds=%.3f msgs_per_s=%.0f "
               "us_per_burst=%.2f doorbells=%llu doorbells_per_msg=%.6f consumer_wakeup_cqes=%llu "
               "consumer_sleeps=%ld consumer_loops=%llu enobufs=%llu queue_full_events=%llu "
               "received=%llu out_of_order=%llu in_order_once=%s "
               "producer_cpu_ns_per_msg=%.1f consumer_cpu_ns_per_msg=%.1f%s\n",
               mode == MODE_WAKEUPS ? "wakeups" : "continuous", (unsigned long long)total, entries,
               mode == MODE_WAKEUPS ? burst : entries, timed_out ? 0.0 : secs,
               timed_out ? 0.0 : (double)total / secs,
               bursts && !timed_out ? secs * 1e6 / (double)bursts : 0.0,
               (unsigned long long)doorbells, (double)doorbells / (double)total,
               (unsigned long long)wakes_in, R.cons_vcsw,
               (unsigned long long)SZ_STAT_GET(&reactors[1].stats, loops),
               (unsigned long long)R.enobufs, (unsigned long long)sz_xq_full_events(bench_xq, 0, 1),
               (unsigned long long)R.consumed, (unsigned long long)R.bad_order, ok ? "yes" : "no",
               (double)R.prod_cpu_ns / (double)total, (double)R.cons_cpu_ns / (double)total,
               timed_out ? " timeout=yes" : "");
        fflush(stdout);
        fail = !ok;
    }
    sz_xq_free(bench_xq);
    bench_xq = NULL;
    sz_free(R.pool);
    return fail;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_xq [--messages N] [--entries E] [--burst K]\n"
                    "                [--mode wakeups|continuous|both] [--timeout S]\n"
                    "  N messages per mode (default 10000000), E ring slots per pair\n"
                    "  (power of two, default 4096), K messages per burst in wakeups\n"
                    "  mode (default 64, < E), S seconds before a run is stopped\n"
                    "  (default 60)\n");
}

int main(int argc, char **argv)
{
    uint64_t total = 10000000;
    unsigned long entries = 4096, burst = 64, timeout_s = 60;
    int modes = 3; /* bit 0 wakeups, bit 1 continuous */
    /* Options come in pairs: --name value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        char *end = NULL;
        if (strcmp(a, "--messages") == 0)
            total = strtoull(v, &end, 10);
        else if (strcmp(a, "--entries") == 0)
            entries = strtoul(v, &end, 10);
        else if (strcmp(a, "--burst") == 0)
            burst = strtoul(v, &end, 10);
        else if (strcmp(a, "--timeout") == 0)
            timeout_s = strtoul(v, &end, 10);
        else if (strcmp(a, "--mode") == 0) {
            modes = strcmp(v, "wakeups") == 0      ? 1
                    : strcmp(v, "continuous") == 0 ? 2
                    : strcmp(v, "both") == 0       ? 3
                                                   : 0;
            end = modes ? (char *)v + strlen(v) : (char *)v;
        } else {
            usage();
            return 2;
        }
        if (!end || *end || end == v) {
            usage();
            return 2;
        }
    }
    if (total == 0 || entries < 16 || entries > (1u << 20) || (entries & (entries - 1)) ||
        burst == 0 || burst >= entries || timeout_s == 0 || timeout_s > 3600) {
        usage();
        return 2;
    }
    /* Reactor start/stop lines would interleave with the figures. */
    sz_log_set_level(SZ_LOG_WARN);
    sz_reactor_set_handler(SZ_OP_USER, on_nop);

    int fail = 0;
    if (modes & 1)
        fail |=
            run_once(MODE_WAKEUPS, total, (uint32_t)entries, (uint32_t)burst, (unsigned)timeout_s);
    if (modes & 2)
        fail |= run_once(MODE_CONTINUOUS, total, (uint32_t)entries, (uint32_t)burst,
                         (unsigned)timeout_s);
    return fail;
}
