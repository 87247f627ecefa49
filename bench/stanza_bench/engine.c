/*
 * The load engine: one io_uring per worker thread, driving that thread's
 * simulated sessions (user j lives on thread j % threads). Connects are
 * io_uring connects from sockets bound to a source address of the range
 * (IP_BIND_ADDRESS_NO_PORT, so every source address has its own port
 * space); each socket has one multishot recv into the thread's provided
 * buffer ring, so no session owns a receive buffer; sends go out one at a
 * time per socket from a small queue (keeps their order on the wire).
 *
 * Schedules are open loop: login j is due at t_ramp0 + j / login_rate and
 * message g at t_msg0 + g / msg_rate whatever the server does; a send that
 * goes out late keeps its intended time, so lateness shows as latency.
 *
 * user_data of a completion: op (8 bits) | session generation (8) |
 * session index in the thread (32): a completion for an older socket of
 * the slot is recognised and dropped (nginx's "instance" idea).
 */
#include "bench/stanza_bench/sb.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/stanza_bench/sched.h"
#include "bench/stanza_bench/tls.h"

enum { OP_CONNECT = 1, OP_RECV, OP_SEND };

#define F_RECV 0x01 /* multishot recv armed */
#define F_SEND 0x02 /* the head of the output queue is in flight */
#define F_CONN 0x04 /* connect in flight */

#define BGID          7
#define SWEEP_NS      100000000ull  /* login timeouts checked every 100 ms */
#define IVAL_NS       1000000000ull /* live p99 interval */
#define MAX_WAIT_NS   50000000ull   /* the loop looks at the phase at least this often */
#define RING_ENTRIES  1024
#define FINAL_ACK_NS  1000000000ull /* --sm: at most this long for the final acks */

_Static_assert(sizeof(sb_sess_t) <= 128, "sb_sess_t grew past 128 bytes");

/* One queued output: bytes [off, len) still to send. */
struct sb_obuf {
    struct sb_obuf *next;
    uint32_t len, off;
    char data[];
};

uint64_t sb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sb_pattern(const char *pat, uint32_t n, char *out, size_t cap)
{
    const char *p = strstr(pat, "{N}");
    if (!p)
        snprintf(out, cap, "%s", pat);
    else
        snprintf(out, cap, "%.*s%u%s", (int)(p - pat), pat, n, p + 3);
}

void sb_err(sb_thread_t *t, const char *name)
{
    __atomic_store_n(&t->c.errors, t->c.errors + 1, __ATOMIC_RELAXED);
    sb_errtab_t *e = &t->errs;
    for (unsigned i = 0; i < e->n; i++) {
        if (strcmp(e->e[i].name, name) == 0) {
            e->e[i].count++;
            return;
        }
    }
    if (e->n == SB_ERR_KINDS) {
        e->other++;
        return;
    }
    snprintf(e->e[e->n].name, sizeof(e->e[e->n].name), "%s", name);
    e->e[e->n++].count = 1;
}

static inline void inc(uint64_t *c)
{
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

static inline uint64_t ud_make(unsigned op, const sb_thread_t *t, const sb_sess_t *s)
{
    return (uint64_t)op << 56 | (uint64_t)s->gen << 48 | (uint64_t)(s - t->sess);
}

/* An SQE, submitting first when the submission queue is full. */
static struct io_uring_sqe *get_sqe(sb_thread_t *t)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    while (!sqe) {
        io_uring_submit(&t->ring);
        sqe = io_uring_get_sqe(&t->ring);
    }
    return sqe;
}

static void arm_recv(sb_thread_t *t, sb_sess_t *s)
{
    struct io_uring_sqe *sqe = get_sqe(t);
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, ud_make(OP_RECV, t, s));
    s->flags |= F_RECV;
}

static void submit_send(sb_thread_t *t, sb_sess_t *s)
{
    struct sb_obuf *b = s->oq;
    struct io_uring_sqe *sqe = get_sqe(t);
    io_uring_prep_send(sqe, s->fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_make(OP_SEND, t, s));
    s->flags |= F_SEND;
}

void sb_send(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n)
{
    if (s->state == SB_ST_CLOSED || s->fd < 0 || n == 0)
        return;
    if (s->ssl)
        sb_tls_send(t, s, p, n); /* its records come back through sb_send_raw */
    else
        sb_send_raw(t, s, p, n);
}

void sb_send_raw(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n)
{
    if (s->state == SB_ST_CLOSED || s->fd < 0 || n == 0)
        return;
    /* Coalesce into the queue's tail when it is not in flight yet. */
    struct sb_obuf *tail = s->oq_tail;
    if (tail && (tail != s->oq || !(s->flags & F_SEND)) && tail->len + n <= 512) {
        /* the tail was allocated with 512 bytes of room, see below */
        memcpy(tail->data + tail->len, p, n);
        tail->len += (uint32_t)n;
    } else {
        size_t room = n < 512 ? 512 : n;
        struct sb_obuf *b = malloc(sizeof(*b) + room);
        if (!b)
            abort();
        b->next = NULL;
        b->len = (uint32_t)n;
        b->off = 0;
        memcpy(b->data, p, n);
        if (tail)
            tail->next = b;
        else
            s->oq = b;
        s->oq_tail = b;
    }
    __atomic_store_n(&t->c.bytes_out, t->c.bytes_out + n, __ATOMIC_RELAXED);
    if (!(s->flags & F_SEND))
        submit_send(t, s);
}

/* Frees the output queue except a head that is in flight. */
static void drop_output(sb_sess_t *s)
{
    struct sb_obuf *b = s->oq, *keep = NULL;
    if (b && (s->flags & F_SEND)) {
        keep = b;
        b = b->next;
        keep->next = NULL;
    }
    while (b) {
        struct sb_obuf *n = b->next;
        free(b);
        b = n;
    }
    s->oq = s->oq_tail = keep;
}

/* Closes the fd of a closed session once no operation references it.
 * Never called while the session's parser is feeding (callbacks end a
 * session with sb_close, and the completion handler releases it after). */
static void release(sb_sess_t *s)
{
    if (s->state != SB_ST_CLOSED || (s->flags & (F_RECV | F_SEND | F_CONN)) || s->fd < 0)
        return;
    sz_xml_parser_free(&s->xp);
    sb_tls_free(s);
    close(s->fd);
    s->fd = -1;
    s->gen++;
}

void sb_close(sb_thread_t *t, sb_sess_t *s)
{
    if (s->state == SB_ST_CLOSED)
        return;
    if (s->state != SB_ST_ONLINE && s->state != SB_ST_IDLE)
        inc(&t->c.failed);
    else if (s->state == SB_ST_ONLINE &&
             __atomic_load_n(&t->run->phase, __ATOMIC_RELAXED) < SB_PH_STOP)
        inc(&t->c.dropped);
    s->state = SB_ST_CLOSED;
    sb_auth_free(s->auth);
    s->auth = NULL;
    drop_output(s);
    /* shutdown() ends the multishot recv (it completes with 0), after
     * which release() closes the descriptor. Output still queued (our
     * closing tag) goes out first: only the read side is shut then. */
    if (s->fd >= 0)
        shutdown(s->fd, s->oq ? SHUT_RD : SHUT_RDWR);
}

/* sb_close() outside any parser callback. */
static void close_now(sb_thread_t *t, sb_sess_t *s)
{
    sb_close(t, s);
    release(s);
}

void sb_online(sb_thread_t *t, sb_sess_t *s)
{
    uint64_t now = sb_now_ns();
    s->state = SB_ST_ONLINE;
    sb_hist_add(&t->login_h, now > s->t_start ? now - s->t_start : 0);
    __atomic_store_n(&t->run->online[s->user], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&t->c.last_online_ns, now, __ATOMIC_RELAXED);
    inc(&t->c.online);
}

static const char *errno_name(int e)
{
    switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EPIPE: return "EPIPE";
    case ENOBUFS: return "ENOBUFS";
    case ECANCELED: return "ECANCELED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    default: return "other";
    }
}

static void sys_err(sb_thread_t *t, const char *what, int e)
{
    char name[56];
    snprintf(name, sizeof(name), "%s:%s", what, errno_name(e));
    sb_err(t, name);
}

/* Starts the login of sess[k], intended at <when>. */
static void launch(sb_thread_t *t, uint32_t k, uint64_t when)
{
    const sb_conf_t *cf = &t->run->conf;
    sb_sess_t *s = &t->sess[k];
    s->t_start = when;
    s->state = SB_ST_CONNECTING;
    inc(&t->c.launched);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sys_err(t, "socket", errno);
        close_now(t, s);
        return;
    }
    s->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cf->src_lo) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        uint32_t span = cf->src_hi - cf->src_lo + 1;
        src.sin_addr.s_addr = htonl(cf->src_lo + s->user % span);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            sys_err(t, "bind", errno);
            close_now(t, s);
            return;
        }
    }
    sz_xml_parser_init(&s->xp, NULL, &sb_xmpp_ops, s);
    sz_xml_parser_set_content_ns(&s->xp, 1u << SZ_XML_NS_CLIENT);
    struct io_uring_sqe *sqe = get_sqe(t);
    /* the address is the run's, constant for the whole run */
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&cf->server, sizeof(cf->server));
    io_uring_sqe_set_data64(sqe, ud_make(OP_CONNECT, t, s));
    s->flags |= F_CONN;
}

__thread sb_thread_t *sb_cur;

static void on_cqe(sb_thread_t *t, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    unsigned op = (unsigned)(ud >> 56);
    uint8_t gen = (uint8_t)(ud >> 48);
    uint32_t k = (uint32_t)ud;
    int res = cqe->res;
    bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (k >= t->nsess || t->sess[k].gen != gen) {
        /* a completion of an earlier socket of this slot */
        if (has_buf) {
            sz_bufring_take(&t->br, bid);
            sz_bufring_put(&t->br, bid);
        }
        return;
    }
    sb_sess_t *s = &t->sess[k];
    switch (op) {
    case OP_CONNECT:
        s->flags &= (uint8_t)~F_CONN;
        if (s->state == SB_ST_CLOSED)
            break;
        if (res < 0) {
            sys_err(t, "connect", -res);
            sb_close(t, s);
            break;
        }
        inc(&t->c.connected);
        arm_recv(t, s);
        if (t->run->conf.tls != SB_TLS_DIRECT)
            sb_xmpp_connected(t, s);
        else if (sb_tls_start(t, s) < 0) /* XEP-0368: TLS first */
            sb_close(t, s);
        break;
    case OP_RECV:
        if (!(cqe->flags & IORING_CQE_F_MORE))
            s->flags &= (uint8_t)~F_RECV;
        if (res > 0) {
            char *p = sz_bufring_take(&t->br, bid);
            __atomic_store_n(&t->c.bytes_in, t->c.bytes_in + (uint64_t)res, __ATOMIC_RELAXED);
            if (s->state != SB_ST_CLOSED && s->ssl)
                sb_tls_input(t, s, p, (size_t)res);
            else if (s->state != SB_ST_CLOSED)
                sb_xmpp_input(t, s, p, (size_t)res);
            sz_bufring_put(&t->br, bid);
        } else if (has_buf) {
            sz_bufring_take(&t->br, bid);
            sz_bufring_put(&t->br, bid);
        }
        if (s->state == SB_ST_CLOSED)
            break;
        if (res == 0) {
            sb_err(t, s->state == SB_ST_ONLINE ? "closed-by-server" : "closed-by-server-in-login");
            sb_close(t, s);
        } else if (res < 0 && res != -ENOBUFS) {
            sys_err(t, "recv", -res);
            sb_close(t, s);
        } else if (!(s->flags & F_RECV)) {
            /* ENOBUFS (all provided buffers out) is flow control: re-arm */
            arm_recv(t, s);
        }
        break;
    case OP_SEND: {
        s->flags &= (uint8_t)~F_SEND;
        struct sb_obuf *b = s->oq;
        if (res < 0 || s->state == SB_ST_CLOSED) {
            if (res < 0 && s->state != SB_ST_CLOSED)
                sys_err(t, "send", -res);
            /* the head is ours again: drop it with the rest */
            if (b) {
                s->oq = b->next;
                if (!s->oq)
                    s->oq_tail = NULL;
                free(b);
            }
            sb_close(t, s);
            drop_output(s);
            break;
        }
        b->off += (uint32_t)res;
        if (b->off >= b->len) {
            s->oq = b->next;
            if (!s->oq)
                s->oq_tail = NULL;
            free(b);
        }
        if (s->oq)
            submit_send(t, s);
        break;
    }
    default:
        break;
    }
    release(s);
}

/* One pass of the schedules; returns the next time (ns) anything is due. */
static uint64_t schedule(sb_thread_t *t, uint64_t now, int phase)
{
    sb_run_t *run = t->run;
    const sb_conf_t *cf = &run->conf;
    const unsigned T = cf->threads;
    uint64_t next = now + MAX_WAIT_NS;
    uint64_t g, when;
    if (phase == SB_PH_RAMP) {
        /* login j (0-based user) is due at t_ramp0 + j / login_rate (sched.c) */
        sb_sched_t ls = {run->t_ramp0, cf->login_rate, sb_sessions(cf), T, t->id};
        uint64_t k = t->next_login;
        while (sb_sched_pop(&ls, &k, now, &g, &when, &next) == 1)
            launch(t, t->next_login++, when);
    }
    if ((phase == SB_PH_MSG || phase == SB_PH_DRAIN) && t->nsenders) {
        /* roster-presence: one event is one presence update, sent as
         * directed presence to each of the sender's <contacts> */
        bool roster = cf->scenario == SB_SC_ROSTER;
        uint64_t per = roster ? cf->contacts : 1;
        sb_sched_t ms = {run->t_msg0, cf->msg_rate, run->nmsgs, T, t->id};
        while (sb_sched_pop(&ms, &t->next_msg, now, &g, &when, &next) == 1) {
            if (now - when > t->c.max_lag_ns)
                __atomic_store_n(&t->c.max_lag_ns, now - when, __ATOMIC_RELAXED);
            sb_sess_t *s = &t->sess[t->senders[(t->next_msg - 1) % t->nsenders]];
            __atomic_store_n(&t->c.sent, t->c.sent + per, __ATOMIC_RELAXED);
            if (s->state != SB_ST_ONLINE)
                sb_err(t, "message-sender-offline"); /* counted sent, will be lost */
            else if (roster)
                sb_xmpp_send_presence(t, s, when, g);
            else
                sb_xmpp_send_message(t, s, when, g);
        }
    }
    if (now >= t->next_sweep) {
        t->next_sweep = now + SWEEP_NS;
        uint64_t lim = (uint64_t)(cf->login_timeout * 1e9);
        for (uint32_t k = 0; k < t->next_login; k++) {
            sb_sess_t *s = &t->sess[k];
            if (s->state > SB_ST_IDLE && s->state < SB_ST_ONLINE && now > s->t_start + lim) {
                sb_err(t, "login-timeout");
                close_now(t, s);
            }
        }
    }
    if (now >= t->next_ival) {
        t->next_ival = now + IVAL_NS;
        __atomic_store_n(&t->c.ival_p99_ns, sb_hist_pct(&t->ival_h, 99.0), __ATOMIC_RELAXED);
        __atomic_store_n(&t->c.ival_p50_ns, sb_hist_pct(&t->ival_h, 50.0), __ATOMIC_RELAXED);
        sb_hist_reset(&t->ival_h);
    }
    if (t->next_sweep < next)
        next = t->next_sweep;
    return next;
}

/* The message phase starts: this thread's senders are its online users
 * whose partner (user j ^ 1) is online too; with --resources, only each
 * user's first resource sends, and its partner's first resource must be
 * online; for roster-presence, every online user (its contacts may be
 * offline: their presence is lost). */
static void pick_senders(sb_thread_t *t)
{
    sb_run_t *run = t->run;
    t->senders = calloc(t->nsess ? t->nsess : 1, sizeof(*t->senders));
    if (!t->senders)
        abort();
    for (uint32_t k = 0; k < t->nsess; k++) {
        uint32_t j = t->sess[k].user, p = j ^ 1u; /* resource 0 is session j < users */
        if (t->sess[k].state == SB_ST_ONLINE &&
            (run->conf.scenario == SB_SC_ROSTER ||
             (j < run->conf.users && p < run->conf.users &&
              __atomic_load_n(&run->online[p], __ATOMIC_RELAXED))))
            t->senders[t->nsenders++] = k;
    }
    sb_sched_t ms = {run->t_msg0, run->conf.msg_rate, run->nmsgs, run->conf.threads, t->id};
    uint64_t share = t->nsenders ? sb_sched_share(&ms) : 0;
    if (run->conf.scenario == SB_SC_ROSTER)
        share *= run->conf.contacts; /* counted per directed presence */
    __atomic_store_n(&t->c.planned, share, __ATOMIC_RELAXED);
    __atomic_store_n(&t->c.picked, 1, __ATOMIC_RELEASE);
}

static int setup(sb_thread_t *t)
{
    struct io_uring_params p = {0};
    /* One thread owns the ring: SINGLE_ISSUER and DEFER_TASKRUN let the
     * kernel run completions only when we wait, in our context. */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_CQSIZE;
    p.cq_entries = RING_ENTRIES * 8;
    int ret = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
    if (ret == -EINVAL) {
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = RING_ENTRIES * 8;
        ret = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
    }
    if (ret < 0)
        return ret;
    ret = sz_bufring_init(&t->br, &t->ring, BGID, t->run->conf.bufs, t->run->conf.buf_size);
    if (ret < 0) {
        io_uring_queue_exit(&t->ring);
        return ret;
    }
    return 0;
}

/* Submits, waits up to <ns> for a completion (0: none), and handles
 * what completed. With --lazy-recv it waits the whole <ns>: the ring is
 * DEFER_TASKRUN and a socket's readiness is queued as lazy task work, which
 * wakes the waiter only once as many completions are pending as it asked
 * for, so asking for more than can come leaves the sender (the server, on
 * loopback) with no wake-up to pay for. */
static void run_ring(sb_thread_t *t, uint64_t ns)
{
    struct __kernel_timespec ts = {.tv_sec = (long long)(ns / 1000000000ull),
                                   .tv_nsec = (long long)(ns % 1000000000ull)};
    struct io_uring_cqe *cqe;
    unsigned want = !ns ? 0 : t->run->conf.lazy_recv ? RING_ENTRIES * 8 : 1;
    io_uring_submit_and_wait_timeout(&t->ring, &cqe, want, &ts, NULL);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&t->ring, head, cqe)
    {
        on_cqe(t, cqe);
        n++;
    }
    io_uring_cq_advance(&t->ring, n);
}

/* --sm, at the end of the run: each session with stream management on
 * acks what it received (XEP-0198 §4 allows an <a/> at any time), so a
 * server that keeps unacked stanzas for resending or for offline storage
 * (Prosody's mod_smacks does) knows they were all delivered before the
 * connection goes. Waits until these sends are out, up to FINAL_ACK_NS. */
static void final_acks(sb_thread_t *t)
{
    uint32_t queued = 0;
    for (uint32_t k = 0; k < t->nsess; k++)
        queued += sb_xmpp_final_ack(t, &t->sess[k]);
    uint64_t end = sb_now_ns() + FINAL_ACK_NS;
    while (queued) {
        uint64_t now = sb_now_ns();
        if (now >= end)
            break;
        run_ring(t, end - now < 10000000ull ? end - now : 10000000ull);
        queued = 0;
        for (uint32_t k = 0; k < t->nsess; k++)
            queued += t->sess[k].oq != NULL;
    }
}

static void *worker(void *arg)
{
    sb_thread_t *t = arg;
    sb_cur = t;
    sb_hist_reset(&t->login_h);
    sb_hist_reset(&t->deliver_h);
    sb_hist_reset(&t->ival_h);
    int ret = setup(t);
    if (ret < 0) {
        t->err = ret;
        return NULL;
    }
    for (;;) {
        int phase = __atomic_load_n(&t->run->phase, __ATOMIC_ACQUIRE);
        if (phase == SB_PH_STOP)
            break;
        if ((phase == SB_PH_MSG || phase == SB_PH_DRAIN) && !t->c.picked)
            pick_senders(t);
        uint64_t now = sb_now_ns();
        uint64_t next = schedule(t, now, phase);
        /* --tick-us: a timed wake-up comes at most once per tick, so due
         * sends are batched; each keeps its intended time, so the delay
         * (up to one tick) is counted in the latency. */
        if (t->run->conf.tick_ns && next < now + t->run->conf.tick_ns)
            next = now + t->run->conf.tick_ns;
        now = sb_now_ns();
        uint64_t wait = next > now ? next - now : 0;
        run_ring(t, wait);
    }
    if (t->run->conf.sm)
        final_acks(t);
    /* Closing the sockets ends the sessions (the server sees EOF); the
     * ring's exit cancels what is still armed. */
    for (uint32_t k = 0; k < t->nsess; k++) {
        sb_sess_t *s = &t->sess[k];
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        sb_auth_free(s->auth);
        s->auth = NULL;
        sz_xml_parser_free(&s->xp);
        sb_tls_free(s);
    }
    sz_bufring_destroy(&t->br, &t->ring);
    io_uring_queue_exit(&t->ring);
    for (uint32_t k = 0; k < t->nsess; k++) {
        sb_sess_t *s = &t->sess[k];
        s->flags = 0;
        drop_output(s);
    }
    sz_xml_scratch_free();
    sb_xmpp_thread_exit();
    sb_tls_thread_exit();
    return NULL;
}

int sb_engine_start(sb_run_t *run)
{
    const sb_conf_t *cf = &run->conf;
    run->t = calloc(cf->threads, sizeof(*run->t));
    uint32_t nsess = sb_sessions(cf);
    run->online = calloc(nsess ? nsess : 1, 1);
    if (!run->t || !run->online)
        abort();
    for (unsigned i = 0; i < cf->threads; i++) {
        sb_thread_t *t = &run->t[i];
        t->run = run;
        t->id = i;
        t->nsess = nsess / cf->threads + (i < nsess % cf->threads ? 1 : 0);
        t->sess = calloc(t->nsess ? t->nsess : 1, sizeof(*t->sess));
        if (!t->sess)
            abort();
        for (uint32_t k = 0; k < t->nsess; k++) {
            t->sess[k].fd = -1;
            t->sess[k].user = k * cf->threads + i;
        }
    }
    for (unsigned i = 0; i < cf->threads; i++) {
        int ret = pthread_create(&run->t[i].th, NULL, worker, &run->t[i]);
        if (ret)
            return -ret;
    }
    return 0;
}

void sb_engine_join(sb_run_t *run)
{
    for (unsigned i = 0; i < run->conf.threads; i++) {
        pthread_join(run->t[i].th, NULL);
        free(run->t[i].senders);
        run->t[i].senders = NULL;
    }
}
