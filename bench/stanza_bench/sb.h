/*
 * stanza-bench internals shared by its files: the run configuration, the
 * per-thread engine state, the simulated session and the counters the
 * main thread reads while the workers run.
 *
 * Threads: user j (0-based) belongs to worker thread j % threads for the
 * whole run; only that thread touches its session. The main thread only
 * reads the relaxed-atomic counters and the phase, and merges histograms
 * and error tables after the workers have been joined.
 */
#ifndef SB_SB_H
#define SB_SB_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "bench/stanza_bench/auth.h"
#include "bench/stanza_bench/hist.h"
#include "core/bufring.h"
#include "core/xml/parser.h"

/* roster-presence: one2one's phases, with presence updates instead of
 * messages: directed presence to each of <contacts> contacts, or with
 * <broadcast> one presence that the server fans out to the roster. */
enum sb_scenario { SB_SC_CONNECT = 0, SB_SC_ONE2ONE, SB_SC_ROSTER };

/* --tls: how a session gets TLS (tls.c). */
enum sb_tls_mode { SB_TLS_NONE = 0, SB_TLS_STARTTLS, SB_TLS_DIRECT };

/* Run phases, set by the main thread (sb_run_t.phase). */
enum sb_phase {
    SB_PH_INIT = 0,
    SB_PH_RAMP,  /* logins are launched on schedule */
    SB_PH_HOLD,  /* connect: everybody idle */
    SB_PH_MSG,   /* one2one: messages sent on schedule */
    SB_PH_DRAIN, /* one2one: waiting for messages in flight */
    SB_PH_STOP,  /* workers close everything and exit */
};

typedef struct sb_conf {
    enum sb_scenario scenario;
    struct sockaddr_in server;
    const char *domain;
    const char *user_pattern, *pass_pattern, *resource;
    uint32_t src_lo, src_hi; /* source IPv4 range, host order; 0: no bind */
    unsigned threads;
    uint32_t users, first; /* user{first} .. user{first+users-1} */
    double login_rate;     /* logins/s, all threads together */
    double duration;       /* hold (connect) or message phase (one2one), s */
    double msg_rate;       /* messages/s (roster-presence: presence updates/s), all threads */
    uint32_t msg_size;     /* body bytes */
    enum sb_mech mech;
    double login_timeout, loss_timeout; /* s */
    uint32_t bufs, buf_size;           /* provided buffers per thread */
    uint64_t tick_ns;                  /* minimum timed sleep, 0: exact */
    bool lazy_recv;                    /* --lazy-recv: arrivals wait for the next tick */
    uint32_t contacts;                 /* roster-presence: contacts per user */
    bool broadcast;                    /* roster-presence: one broadcast per update (the
                                        * server's roster does the fan-out) */
    enum sb_tls_mode tls;
    uint16_t tls_version;              /* TLS1_2_VERSION or TLS1_3_VERSION */
    const char *ca;                    /* PEM CA file: verify the server; NULL: no check */
    bool sm;                           /* --sm: enable XEP-0198 when the server offers it */
    uint32_t resources;                /* one2one: sessions per user (resource "<resource><i>"
                                        * when above 1), default 1 */
    bool carbons;                      /* one2one --carbons: enable XEP-0280 at login */
} sb_conf_t;

/* Sessions of a run: one per user and resource. Session j is resource
 * j / users of user j % users, so that the first resources, the senders of
 * one2one, spread over the threads like the users without --resources. */
static inline uint32_t sb_sessions(const sb_conf_t *cf)
{
    return cf->users * (cf->resources ? cf->resources : 1);
}

/* Counters a worker writes and the main thread reads (relaxed atomics). */
typedef struct sb_counters {
    uint64_t launched;  /* connects started */
    uint64_t connected; /* TCP connects done */
    uint64_t online;    /* bound, initial presence sent */
    uint64_t failed;    /* logins that ended without going online */
    uint64_t dropped;   /* online sessions closed by the server */
    uint64_t sent, received, late, bounced; /* messages */
    uint64_t errors;    /* every counted error, all kinds */
    uint64_t bytes_in, bytes_out;
    uint64_t last_online_ns; /* time of the latest login, monotonic */
    uint64_t ival_p99_ns;    /* delivery p99 of the last second */
    uint64_t ival_p50_ns;    /* delivery p50 of the last second */
    uint64_t max_lag_ns;     /* latest send behind its intended time */
    uint64_t planned;        /* messages this thread will send (set with picked) */
    uint64_t picked;         /* 1 once the message phase's senders are chosen */
    /* --sm (XEP-0198): sessions by outcome, then <r/> received, <a/> sent
     * (answers and final acks) and <a/> received */
    uint64_t sm_enabled, sm_failed, sm_unsupported;
    uint64_t sm_requests, sm_acks_sent, sm_acks_received;
    /* roster-presence: roster gets answered with a result, and the items
     * those results held (errors are counted by condition) */
    uint64_t roster_results, roster_items;
    /* one2one --carbons: enable answered with a result, and the XEP-0280
     * copies received (<sent/> or <received/>, never counted as deliveries) */
    uint64_t carbons_enabled, carbons_received;
} sb_counters_t;

/* Errors by condition, e.g. "stream:policy-violation". */
#define SB_ERR_KINDS 64
typedef struct sb_errtab {
    unsigned n;
    uint64_t other; /* errors of kinds beyond the table */
    struct {
        char name[56];
        uint64_t count;
    } e[SB_ERR_KINDS];
} sb_errtab_t;

/* Stream management of one session (sb_sess_t.sm), --sm only. */
enum sb_sm {
    SB_SM_NONE = 0, /* not asked, or not offered after SASL */
    SB_SM_OFFERED,  /* <sm xmlns='urn:xmpp:sm:3'/> in the features after SASL */
    SB_SM_ON,       /* <enabled/> received: stanzas are counted both ways */
    SB_SM_FAILED,   /* <failed/> received: the session goes on without */
};

/*
 * One simulated user. Idle and online, it costs this struct only (no
 * receive buffer: recv uses the thread's provided buffers; the parser
 * copies only an element split across reads). 128 bytes or less on LP64
 * (static_assert in engine.c); 124 with the stream management counters.
 */
typedef struct sb_sess {
    sz_xml_parser_t xp;          /* 64 */
    struct sb_obuf *oq, *oq_tail; /* output queue; the head is in flight */
    sb_auth_t *auth;             /* during SASL only */
    struct ssl_st *ssl;          /* TLS sessions only (tls.c) */
    uint64_t t_start;            /* intended login time, ns */
    int fd;                      /* -1 when closed */
    uint32_t user;               /* 0-based session index: resource * users + user */
    uint32_t sm_in;              /* XEP-0198 'h': stanzas received since <enabled/>, mod 2^32 */
    uint32_t sm_out;             /* stanzas sent since <enable/>, mod 2^32 */
    uint8_t state;               /* enum in engine.c */
    uint8_t flags;
    uint8_t gen;                 /* drops completions of an earlier fd */
    uint8_t sm;                  /* enum sb_sm */
} sb_sess_t;

typedef struct sb_run sb_run_t;

typedef struct sb_thread {
    sb_run_t *run;
    unsigned id;
    pthread_t th;
    struct io_uring ring;
    sz_bufring_t br;
    sb_sess_t *sess; /* sess[k] is user k * threads + id */
    uint32_t nsess;
    uint32_t next_login;   /* next k to launch */
    uint32_t *senders;     /* one2one: indexes into sess[] */
    uint32_t nsenders;
    uint64_t next_msg;     /* next k: global message k * threads + id */
    uint64_t next_sweep;   /* ns */
    uint64_t next_ival;    /* ns */
    int err;               /* setup error (-errno) */
    sb_counters_t c;
    sb_hist_t login_h, deliver_h, ival_h;
    sb_errtab_t errs;
} sb_thread_t;

struct sb_run {
    sb_conf_t conf;
    int phase;              /* enum sb_phase; atomic */
    uint64_t t_ramp0;       /* ns, intended time of user 0's login */
    uint64_t t_msg0;        /* ns, intended time of message 0 */
    uint64_t nmsgs;         /* messages to send in the message phase */
    uint8_t *online;        /* per user: 1 once online (atomic bytes) */
    sb_thread_t *t;
};

/** Monotonic clock, ns. */
uint64_t sb_now_ns(void);

/** Counts one error of kind <name> in <t>'s table. Owner thread. */
void sb_err(sb_thread_t *t, const char *name);

/** Formats pattern <pat> with "{N}" replaced by <n> into <out>. */
void sb_pattern(const char *pat, uint32_t n, char *out, size_t cap);

/** Starts the worker threads of <run> (after conf is set); 0 or -errno. */
int sb_engine_start(sb_run_t *run);

/** Joins the workers (after phase STOP). */
void sb_engine_join(sb_run_t *run);

/* Protocol side (xmpp.c), called by the engine on the owner thread. */
/** The TCP connection is up: sends the stream header. */
void sb_xmpp_connected(sb_thread_t *t, sb_sess_t *s);
/** Bytes received on <s>. */
void sb_xmpp_input(sb_thread_t *t, sb_sess_t *s, const char *p, size_t n);
/** Sends one one2one message from <s> to its partner, intended at <when>. */
void sb_xmpp_send_message(sb_thread_t *t, sb_sess_t *s, uint64_t when, uint64_t seq);
/** roster-presence: one presence update of <s>, intended at <when>:
 * directed presence to each of its contacts (users j+1 .. j+contacts,
 * modulo users), or with --broadcast one presence without 'to'. */
void sb_xmpp_send_presence(sb_thread_t *t, sb_sess_t *s, uint64_t when, uint64_t seq);
/** --sm, when the run stops: queues the final <a h='N'/> of <s> if it has
 * stream management on and is online; returns true if it queued one. */
bool sb_xmpp_final_ack(sb_thread_t *t, sb_sess_t *s);
/** Frees the calling worker's protocol buffers (at its exit). */
void sb_xmpp_thread_exit(void);
extern const sz_xml_ops_t sb_xmpp_ops;
/** The worker thread running on this thread (parser callbacks use it). */
extern __thread sb_thread_t *sb_cur;

/* Engine side (engine.c), called by the protocol. */
/** Queues <n> bytes of <p> (copied) for sending on <s>, through TLS
 * once <s> has it. */
void sb_send(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n);
/** Queues <n> bytes of <p> (copied) as they are: TLS records (tls.c). */
void sb_send_raw(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n);
/** Ends <s>: no more input is handled; its fd is closed once idle.
 * <login_failed>: the session never went online (counts a failed login). */
void sb_close(sb_thread_t *t, sb_sess_t *s);
/** Marks <s> online (login latency recorded). */
void sb_online(sb_thread_t *t, sb_sess_t *s);

/* Session states (sb_sess_t.state). */
enum sb_state {
    SB_ST_IDLE = 0,   /* not launched */
    SB_ST_CONNECTING, /* TCP connect in flight */
    SB_ST_TLS,        /* TLS handshake (Direct TLS, or after <proceed/>) */
    SB_ST_FEAT1,      /* header sent; waiting for the server's features */
    SB_ST_STARTTLS,   /* <starttls/> sent; waiting for <proceed/> */
    SB_ST_AUTH,       /* SASL exchange running */
    SB_ST_FEAT2,      /* restarted after SASL; waiting for features */
    SB_ST_BIND,       /* bind iq sent */
    SB_ST_SM,         /* --sm: bound, <enable/> sent; waiting for <enabled/> or <failed/> */
    SB_ST_ONLINE,     /* bound, presence sent */
    SB_ST_CLOSED,     /* done or failed */
};

#endif
