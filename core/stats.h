/*
 * Per-reactor counters. Each reactor writes only its own block (plain
 * relaxed stores, no read-modify-write atomics); the admin endpoint reads
 * every block with relaxed loads. A reading is therefore a consistent value
 * per counter, not a snapshot across counters.
 */
#ifndef SZ_CORE_STATS_H
#define SZ_CORE_STATS_H

#include <stdint.h>

#define SZ_STATS(X)                                                                              \
    X(conns_open, gauge, "connections_open", "Connections currently open")                      \
    X(accepted, counter, "connections_accepted_total", "Connections accepted")                 \
    X(refused, counter, "connections_refused_total",                                            \
      "Connections refused because no direct-descriptor slot was free")                         \
    X(closed, counter, "connections_closed_total", "Connections closed")                       \
    X(source_limited, counter, "connections_source_limited_total",                              \
      "Client connections refused by limits.max_unauth_per_source")                             \
    X(source_rate_limited, counter, "connections_source_rate_limited_total",                    \
      "Client connections refused, or streams ended after a failed login, by "                  \
      "limits.source_rate_per_sec and limits.source_burst")                                     \
    X(handshake_timeouts, counter, "handshake_timeouts_total",                                  \
      "Client connections closed before their stream header was answered, TLS included "       \
      "(limits.handshake_timeout_ms)")                                                          \
    X(bytes_in, counter, "bytes_in_total", "Bytes received")                                   \
    X(bytes_out, counter, "bytes_out_total", "Bytes sent")                                     \
    X(slots_used, gauge, "direct_slots_used", "Direct-descriptor slots in use")               \
    X(handoff_out, counter, "handoffs_out_total", "Connections handed to another reactor")    \
    X(handoff_in, counter, "handoffs_in_total", "Connections received from another reactor")  \
    X(handoff_failed, counter, "handoffs_failed_total",                                        \
      "Handoffs that failed (the connection stayed)")                                           \
    X(recv_enobufs, counter, "recv_buffer_exhausted_total",                                    \
      "Receives stopped because the provided-buffer ring was empty")                          \
    X(output_overflow, counter, "output_overflow_total",                                       \
      "Connections closed for exceeding limits.max_output_bytes")                             \
    X(loops, counter, "loop_iterations_total", "Event loop iterations")                       \
    X(cqes, counter, "completions_total", "io_uring completions handled")                     \
    X(xq_msgs, counter, "queue_messages_in_total", "Cross-reactor messages received")         \
    X(doorbells, counter, "queue_doorbells_total", "Cross-reactor wakeups sent")              \
    X(timers_fired, counter, "timers_fired_total", "Timers fired")                            \
    X(admin_requests, counter, "admin_requests_total", "Admin HTTP requests answered")        \
    X(admin_bad, counter, "admin_bad_requests_total", "Admin HTTP requests rejected and closed") \
    X(sm_enabled, counter, "sm_enabled_total", "Client streams that enabled XEP-0198")           \
    X(sm_unacked, counter, "sm_unacked_total",                                                 \
      "Stanzas a client never acknowledged, returned to their senders (XEP-0198)")              \
    X(sm_detached, gauge, "sm_detached_sessions",                                             \
      "Sessions whose connection broke, waiting for a XEP-0198 resumption")                     \
    X(sm_resumed, counter, "sm_resumed_total", "XEP-0198 resumptions that succeeded")          \
    X(sm_resume_failed, counter, "sm_resume_failed_total",                                     \
      "XEP-0198 resumptions refused (unknown, used or expired id)")                             \
    X(sm_resume_expired, counter, "sm_resume_expired_total",                                   \
      "Detached sessions ended by limits.sm_resume_timeout_s or a full queue")                  \
    X(csi_overflow, counter, "csi_held_overflow_total",                                        \
      "Inactive sessions (XEP-0352) flushed at limits.csi_max_held held presences")              \
    X(idle_pings, counter, "idle_pings_total",                                                 \
      "XEP-0199 pings sent to clients silent for limits.idle_timeout_ms")                       \
    X(idle_timeouts, counter, "idle_timeouts_total",                                           \
      "Client streams closed with connection-timeout after an unanswered idle ping")

typedef struct sz_stats {
#define SZ_STATS_FIELD(name, type, metric, help) uint64_t name;
    SZ_STATS(SZ_STATS_FIELD)
#undef SZ_STATS_FIELD
} sz_stats_t;

/* Owner reactor only. */
#define SZ_STAT_ADD(st, field, n)                                                                \
    __atomic_store_n(&(st)->field, (st)->field + (uint64_t)(n), __ATOMIC_RELAXED)
#define SZ_STAT_SUB(st, field, n)                                                                \
    __atomic_store_n(&(st)->field, (st)->field - (uint64_t)(n), __ATOMIC_RELAXED)
/* Any thread. */
#define SZ_STAT_GET(st, field) __atomic_load_n(&(st)->field, __ATOMIC_RELAXED)

typedef struct sz_stat_desc {
    const char *metric; /* without the stanzad_ prefix */
    const char *type;   /* "counter" or "gauge" */
    const char *help;
    unsigned offset;
} sz_stat_desc_t;

/** Table of every counter, for exporters. Terminated by metric == NULL. */
extern const sz_stat_desc_t sz_stat_descs[];

/** Any thread. Reads the counter at <offset> of <st> (relaxed). */
uint64_t sz_stat_read(const sz_stats_t *st, unsigned offset);

#endif
