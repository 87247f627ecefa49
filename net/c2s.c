/*
 * The client stream machine (RFC 6120 §4–§8) without its SASL exchange
 * (net/c2s_sasl.c) and XEP-0198 (net/c2s_sm.c): output and its cap, stream
 * headers and features, STARTTLS, resource binding, stanzas to the router,
 * input, the connection callbacks and the session ops the router calls.
 * Runs on the connection's reactor: the accepting one until SASL succeeds,
 * then the user's home reactor. struct c2s and the shared helpers are in
 * net/c2s_int.h.
 *
 * Features are modules (core/mod/, reached through core/hooks.h): the
 * stream offers their stream features and hands them the one iq allowed
 * before authentication (XEP-0077 registration, core/mod/mod_register.c).
 */
#include "net/c2s.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/hooks.h"
#include "core/jid.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/router.h"
#include "core/stanza.h"
#include "core/xml/builder.h"
#include "core/xml/parser.h"
#include "core/xml/tree.h"
#include "net/c2s_int.h"
#include "net/sasl.h"
#include "net/sm.h"
#include "net/tls.h"

#define NS_TLS     "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_BIND    "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_PING    "urn:xmpp:ping"

const sz_conf_t *c2s_conf;
sz_c2s_accounts_t c2s_accounts;
static sz_tls_ctx_t *tls_ctx;

/* Node-wide per-source counters, indexed by a hash of the peer address.
 * Fixed size and lock-free: addresses that collide share a budget, which
 * only ever makes a limit stricter. RFC 6120 sets no such limits; they are
 * policy, shaped for carrier-grade NAT (thousands of users behind one
 * address): abuse is bounded by a rate (src_tat) and by deadlines
 * (limits.handshake_timeout_ms, limits.preauth_timeout_ms), and the
 * concurrent count (unauth_by_src) is only a high backstop. */
#define SRC_SLOTS 65536u
static uint32_t unauth_by_src[SRC_SLOTS];
/* Token bucket per source as a generic cell rate algorithm: the
 * theoretical arrival time (µs, monotonic) of the next token, one word
 * updated by compare-and-swap. */
static uint64_t src_tat[SRC_SLOTS];
__thread unsigned c2s_pending;

static const sz_session_ops_t session_ops;
static const sz_tls_io_t tls_io;
static void flush_unbinds(void);

void sz_c2s_set_tls(struct sz_tls_ctx *t)
{
    sz_tls_ctx_t *old = __atomic_exchange_n(&tls_ctx, t ? sz_tls_ctx_ref(t) : NULL, __ATOMIC_ACQ_REL);
    sz_tls_ctx_unref(old);
}

void sz_c2s_configure(const sz_conf_t *c, const sz_c2s_accounts_t *acc, struct sz_tls_ctx *t)
{
    c2s_conf = c;
    sz_reactor_add_iteration_hook(flush_unbinds);
    if (acc)
        c2s_accounts = *acc;
    else
        memset(&c2s_accounts, 0, sizeof(c2s_accounts));
    sz_c2s_set_tls(t);
}

/* Takes one token from the bucket of source slot <slot> (a new connection
 * or a failed login): limits.source_rate_per_sec tokens a second, at most
 * limits.source_burst at once. False when the bucket is empty. */
bool c2s_source_take(uint32_t slot)
{
    uint32_t rate = SZ_CONF_LIMIT(c2s_conf, source_rate_per_sec);
    if (rate == 0)
        return true;
    uint64_t step = 1000000u / rate ? 1000000u / rate : 1; /* µs per token */
    uint64_t tau = (uint64_t)(SZ_CONF_LIMIT(c2s_conf, source_burst) - 1) * step;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    uint64_t old = __atomic_load_n(&src_tat[slot], __ATOMIC_RELAXED), next;
    do {
        uint64_t tat = old > now ? old : now;
        if (tat - now > tau)
            return false;
        next = tat + step;
    } while (!__atomic_compare_exchange_n(&src_tat[slot], &old, next, false, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return true;
}

/* The connection stops counting as unauthenticated (authenticated or
 * closed). */
void c2s_uncount_source(struct c2s *cs)
{
    if (cs->src) {
        __atomic_sub_fetch(&unauth_by_src[cs->src - 1], 1, __ATOMIC_RELAXED);
        cs->src = 0;
    }
}

unsigned sz_c2s_pending(void)
{
    return c2s_pending;
}

void sz_c2s_release(void)
{
    sz_tls_ctx_unref(__atomic_exchange_n(&tls_ctx, NULL, __ATOMIC_ACQ_REL));
}

static inline struct c2s *of_sess(sz_session_t *s)
{
    return (struct c2s *)((char *)s - offsetof(struct c2s, sess));
}

const sz_conf_listen_t *c2s_listener(const struct c2s *cs)
{
    return &c2s_conf->listens[cs->c->listener];
}

/* Frees what a connection's c2s state holds once nothing else uses it. */
void c2s_free_state(struct c2s *cs)
{
    sz_xml_parser_free(&cs->xp);
    sz_tls_free(cs->tls);
    sz_sasl_free(cs->sasl);
    sz_jid_free(cs->authed);
    sz_sm_free(cs->sm, NULL, NULL);
    c2s_sm_ackwait_drop(cs);
    sz_free(cs->cb_unique);
    sz_free(cs);
}


/* ---- output -------------------------------------------------------------- */

/* Headroom kept under limits.max_output_bytes for the stream error that
 * tells a client which does not read why it is closed. */
#define OUTPUT_HEADROOM 512

int c2s_raw_write(struct c2s *cs, const void *p, size_t n)
{
    if (cs->tls && (cs->flags & F_TLS))
        return sz_tls_output(cs->tls, p, n, &tls_io, cs);
    return sz_conn_send(cs->c, p, n);
}

/* True (and the stream ended with policy-violation) when <n> more bytes
 * would pass the output cap: the one place the cap is enforced for c2s. */
static bool over_cap(struct c2s *cs, size_t n)
{
    uint32_t cap = __atomic_load_n(&sz_conn_max_output, __ATOMIC_RELAXED);
    if (cs->stage == ST_CLOSED || cs->c->out_bytes + n + OUTPUT_HEADROOM <= cap)
        return false;
    SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, output_overflow, 1);
    c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
    return true;
}

int c2s_write(struct c2s *cs, const void *p, size_t n)
{
    if (over_cap(cs, n))
        return -ENOBUFS;
    return c2s_raw_write(cs, p, n);
}

void c2s_writes(struct c2s *cs, const char *s)
{
    c2s_write(cs, s, strlen(s));
}

/* Writes <nbytes> random bytes as 2 * <nbytes> lowercase hex digits and a
 * NUL into <out> (stream ids, server-generated resources). */
static void random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[32];
    if (nbytes > sizeof(rnd))
        nbytes = sizeof(rnd);
    RAND_bytes(rnd, nbytes);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

/* ---- idle streams (RFC 6120 §4.6) --------------------------------------- */

static void sess_deliver(sz_session_t *s, sz_stanza_t *st);

/* The reactor clock in ms, low 32 bits: differences are exact below 49
 * days, and limits.idle_timeout_ms is at most one. */
static uint32_t clock32(void)
{
    return (uint32_t)sz_reactor_now(sz_reactor_self());
}

/* Once bound, the connection timer watches for silence: after
 * limits.idle_timeout_ms without input the client gets a XEP-0199 ping
 * (§4.2, server to client), and after limits.ping_timeout_ms more without
 * input the stream ends with <connection-timeout/> (RFC 6120 §4.9.3.4).
 * A live client costs nothing per stanza: input only stamps last_in, and
 * the timer, when it fires, re-arms itself for the rest of the period. */
static void watch_idle(struct c2s *cs)
{
    uint32_t idle = SZ_CONF_LIMIT(c2s_conf, idle_timeout_ms);
    cs->last_in = clock32();
    if (idle)
        sz_conn_set_timer(cs->c, idle);
    else
        sz_conn_cancel_timer(cs->c);
}

/* <iq type='get'><ping/></iq> from the server to the bound full JID,
 * through the session's own delivery (TLS, XEP-0198 counting, the output
 * cap). The answer needs no matching: any input counts. */
static void send_idle_ping(struct c2s *cs)
{
    char id[5 + 16 + 1] = "ping-";
    random_hex(id + 5, 8);
    size_t fl;
    const char *full = sz_jid_full(cs->sess.jid, &fl);
    sz_xb_t xb;
    sz_xb_init(&xb, 160 + fl);
    sz_xb_start(&xb, "iq", NULL);
    sz_xb_attr(&xb, "from", c2s_conf->hosts[cs->host].domain);
    sz_xb_attr_n(&xb, "to", full, fl);
    sz_xb_attr(&xb, "type", "get");
    sz_xb_attr(&xb, "id", id);
    sz_xb_start(&xb, "ping", NS_PING);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    sz_stanza_t *st = sz_stanza_from_xb(&xb);
    if (st)
        sess_deliver(&cs->sess, st);
}

/* The connection timer of a bound stream fired. */
static void idle_check(struct c2s *cs)
{
    sz_reactor_t *r = sz_conn_reactor(cs->c);
    if (cs->flags & F_PINGED) {
        SZ_STAT_ADD(&r->stats, idle_timeouts, 1);
        SZ_DEBUG("msg=\"idle stream timed out\" conn=%llu", (unsigned long long)cs->c->id);
        /* A peer silent past our ping is most likely a connection that
         * broke without a reset (a phone that lost its network): a
         * resumable session detaches as on a TCP drop (XEP-0198 §5), after
         * the stream error that a live client would read. */
        c2s_sm_detach(cs);
        c2s_stream_error(cs, SZ_STREAM_CONNECTION_TIMEOUT);
        return;
    }
    uint32_t idle = SZ_CONF_LIMIT(c2s_conf, idle_timeout_ms);
    if (idle == 0)
        return; /* turned off by a reload */
    uint32_t quiet = clock32() - cs->last_in;
    if (quiet < idle) {
        sz_conn_set_timer(cs->c, idle - quiet);
        return;
    }
    send_idle_ping(cs);
    if (cs->stage == ST_CLOSED)
        return; /* the ping passed the output cap: the stream is ending */
    SZ_STAT_ADD(&r->stats, idle_pings, 1);
    cs->flags |= F_PINGED;
    sz_conn_set_timer(cs->c, SZ_CONF_LIMIT(c2s_conf, ping_timeout_ms));
}

/* ---- pre-auth deadlines --------------------------------------------------- */

/* Two deadlines run from connect (cs->opened) until a resource is bound:
 * limits.preauth_timeout_ms for the whole, and the shorter
 * limits.handshake_timeout_ms for each stretch where the client has yet to
 * show it speaks XMPP: from connect, and again from <proceed/>, until the
 * next stream header is answered (the TLS handshake included). So a
 * connection that sends nothing, or stalls in TLS, is gone after seconds,
 * while a real client keeps the full time for SASL and binding. */
static uint32_t preauth_left(const struct c2s *cs)
{
    uint32_t total = SZ_CONF_LIMIT(c2s_conf, preauth_timeout_ms), spent = clock32() - cs->opened;
    return spent < total ? total - spent : 1;
}

static void arm_preauth(struct c2s *cs)
{
    sz_conn_set_timer(cs->c, preauth_left(cs));
}

static void arm_handshake(struct c2s *cs)
{
    uint32_t left = preauth_left(cs), hs = SZ_CONF_LIMIT(c2s_conf, handshake_timeout_ms);
    sz_conn_set_timer(cs->c, hs < left ? hs : left);
}

/* Room for our stream header: the fixed text and id (under 256 bytes) and
 * the served domain, a domainpart of at most 1023 bytes (RFC 7622 §3.2,
 * checked when the config is read). */
#define HEADER_MAX (256 + 1024)

/* Our stream header (RFC 6120 §4.7) into <buf> (HEADER_MAX bytes);
 * returns its length. */
static size_t format_header(struct c2s *cs, char *buf)
{
    char id[25];
    random_hex(id, 12);
    int n = snprintf(buf, HEADER_MAX,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%s' "
                     "version='1.0' xml:lang='en'>",
                     id, c2s_conf->hosts[cs->host].domain);
    cs->flags |= F_HEADER_SENT;
    return (size_t)n;
}

static void send_header(struct c2s *cs)
{
    char buf[HEADER_MAX];
    c2s_raw_write(cs, buf, format_header(cs, buf));
}

/* ---- the end of a bound session ------------------------------------------ */

/* Streams that ended while the router was delivering to some session of
 * this reactor: their unbind waits for the end of the iteration, because
 * unlinking a session (and maybe freeing its user) under a loop over the
 * user's sessions would break that loop. Entries may be NULL (closed
 * meanwhile). */
static __thread struct c2s **unbind_q;
static __thread unsigned unbind_n, unbind_cap;
static __thread unsigned delivering; /* depth of sess_deliver() calls */

static void unbind_now(struct c2s *cs)
{
    cs->flags &= (uint16_t)~(F_BOUND | F_UNBIND_LATER);
    sz_reactor_t *r = sz_reactor_self();
    /* The session leaves the router now, not when the connection is freed
     * (after the lingering close, up to seconds later): its contacts and
     * other resources get the unavailable presence at the moment the
     * stream ends (RFC 6121 §4.5.2), and stanzas for it from here on take
     * the no-such-resource path (§8.5.3.2) instead of a dead stream. */
    sz_router_unbind(r, &cs->sess);
    sz_jid_free(cs->sess.jid);
    cs->sess.jid = NULL;
    if (cs->sm) {
        /* What the client never acknowledged is treated as sent to an
         * unavailable resource (XEP-0198 §4). */
        sz_sm_free(cs->sm, c2s_undelivered, r);
        cs->sm = NULL;
    }
    /* A detached session that ends (deadline, queue full, replaced):
     * nothing else holds it once its connection is gone. */
    c2s_sm_undetach(cs);
}

/* The stream of <cs> ended (or its connection is going): a bound session
 * is unbound at once, or at the end of this reactor iteration when a
 * delivery is running. */
static void end_session(struct c2s *cs)
{
    if (!(cs->flags & F_BOUND) || (cs->flags & F_UNBIND_LATER))
        return;
    if (delivering == 0) {
        unbind_now(cs);
        return;
    }
    if (unbind_n == unbind_cap) {
        unbind_cap = unbind_cap ? 2 * unbind_cap : 16;
        unbind_q = sz_realloc(unbind_q, unbind_cap * sizeof(*unbind_q));
    }
    unbind_q[unbind_n++] = cs;
    cs->flags |= F_UNBIND_LATER;
}

void c2s_end_session(struct c2s *cs)
{
    end_session(cs);
}

/* Reactor iteration hook: the unbinds end_session() deferred. */
static void flush_unbinds(void)
{
    if (!unbind_q)
        return;
    /* An unbind may end further streams (delivering is 0 here, so they
     * unbind at once and never append). */
    for (unsigned i = 0; i < unbind_n; i++)
        if (unbind_q[i])
            unbind_now(unbind_q[i]);
    unbind_n = 0;
    /* Deferrals are rare (a client overrun during a delivery): no memory
     * is kept between them, nor left behind when the reactor exits. */
    sz_free(unbind_q);
    unbind_q = NULL;
    unbind_cap = 0;
    /* Iteration hooks run after this iteration's flush: what the unbinds
     * wrote (the unavailable presence to the user's other resources) would
     * otherwise wait for the next wake-up. */
    sz_conns_flush(sz_reactor_self());
}

/* <cs> is being freed while its unbind waits. */
static void forget_unbind(struct c2s *cs)
{
    for (unsigned i = 0; i < unbind_n; i++)
        if (unbind_q[i] == cs)
            unbind_q[i] = NULL;
}

/* Sends <stream:error> with <cond> (RFC 6120 §4.9) and the closing tag,
 * then closes after the output is flushed. <app> (trusted XML, short) is
 * an application-specific condition (§4.9.4) or NULL. */
void c2s_stream_error_app(struct c2s *cs, enum sz_stream_err cond, const char *app)
{
    if (cs->stage == ST_CLOSED)
        return;
    if (!(cs->flags & F_HEADER_SENT))
        send_header(cs);
    char buf[384];
    int n = sz_stream_err_format(buf, sizeof(buf), cond, app);
    if (n > 0)
        c2s_raw_write(cs, buf, (size_t)n); /* within the headroom kept by over_cap() */
    SZ_DEBUG("msg=\"stream error\" conn=%llu condition=%s", (unsigned long long)cs->c->id,
             sz_stream_err_name(cond));
    cs->stage = ST_CLOSED;
    if (cs->tls && (cs->flags & F_TLS))
        sz_tls_shutdown(cs->tls, &tls_io, cs);
    sz_conn_close(cs->c, true);
    if (!(cs->flags & F_DETACHED)) /* else it waits for a resumption */
        end_session(cs);
}

void c2s_stream_error(struct c2s *cs, enum sz_stream_err cond)
{
    c2s_stream_error_app(cs, cond, NULL);
}

static bool tls_offered(const struct c2s *cs)
{
    const sz_conf_listen_t *l = c2s_listener(cs);
    return l->kind == SZ_LISTEN_C2S && l->tls != SZ_TLS_NONE && !cs->tls &&
           __atomic_load_n(&tls_ctx, __ATOMIC_ACQUIRE) != NULL;
}

/* Our stream header and the features of this stage, in one write (one
 * TLS record). */
static void send_header_and_features(struct c2s *cs)
{
    char buf[HEADER_MAX + 2048];
    size_t n = format_header(cs, buf);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "<stream:features>");
    if (cs->flags & F_AUTHED) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              "<bind xmlns='" NS_BIND "'/><session xmlns='" NS_SESSION
                              "'><optional/></session><sm xmlns='" NS_SM "'/>");
        /* What the feature modules offer (roster versioning, ...). */
        n += sz_hooks_stream_features(true, cs->host, buf + n, sizeof(buf) - n);
    } else {
        bool tls_required = c2s_listener(cs)->kind == SZ_LISTEN_C2S &&
                            c2s_listener(cs)->tls == SZ_TLS_STARTTLS_REQUIRED &&
                            !(cs->flags & F_TLS);
        if (tls_offered(cs))
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                                  tls_required ? "<required/>" : "");
        /* RFC 6120 §5.3.1: while TLS is mandatory, it is the only feature. */
        if (!tls_required) {
            unsigned f = c2s_sasl_flags(cs);
            n += sz_sasl_mechs(f, buf + n, sizeof(buf) - n);
            n += sz_sasl_cb_types(f, buf + n, sizeof(buf) - n);
            /* What the feature modules offer before authentication. */
            n += sz_hooks_stream_features(false, cs->host, buf + n, sizeof(buf) - n);
        }
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "</stream:features>");
    c2s_write(cs, buf, n);
}

/* ---- stream header ---------------------------------------------------- */

static int host_of(const char *d, size_t len)
{
    for (size_t i = 0; i < c2s_conf->nhosts; i++)
        if (strlen(c2s_conf->hosts[i].domain) == len &&
            memcmp(c2s_conf->hosts[i].domain, d, len) == 0)
            return (int)i;
    return -1;
}

static int on_header(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct c2s *cs = ud;
    if (cs->stage != ST_HEADER) {
        c2s_stream_error(cs, SZ_STREAM_NOT_WELL_FORMED);
        return 1;
    }
    /* 'to' names the served domain (RFC 6120 §4.7.2). */
    char to[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_buf_t jb;
    sz_jid_t *j = NULL;
    int host = -1;
    const sz_xml_str_t *a = &h->attr[SZ_XML_A_TO];
    if (a->off) {
        ssize_t n = sz_xml_unescape(span + a->off, a->len, to, sizeof(to), true);
        if (n > 0 && sz_jid_parse_into(to, (size_t)n, &jb, sizeof(jb), &j, NULL) == 0 &&
            !sz_jid_has_local(j) && sz_jid_is_bare(j)) {
            size_t dl;
            const char *d = sz_jid_domain(j, &dl);
            host = host_of(d, dl);
        }
    }
    if (host < 0 || ((cs->flags & (F_TLS | F_AUTHED)) && host != cs->host)) {
        if (host >= 0)
            cs->host = (uint8_t)host;
        c2s_stream_error(cs, SZ_STREAM_HOST_UNKNOWN);
        return 1;
    }
    cs->host = (uint8_t)host;
    /* version: absent means pre-1.0 (RFC 6120 §4.7.5), which we do not speak. */
    const sz_xml_str_t *v = &h->attr[SZ_XML_A_VERSION];
    if (!v->off || v->len < 3 || span[v->off] != '1' || span[v->off + 1] != '.') {
        c2s_stream_error(cs, SZ_STREAM_UNSUPPORTED_VERSION);
        return 1;
    }
    cs->stage = ST_OPEN;
    /* The client speaks XMPP: the rest of the pre-auth time is its own. */
    if (!(cs->flags & F_BOUND))
        arm_preauth(cs);
    send_header_and_features(cs);
    return 0;
}

/* ---- binding ------------------------------------------------------------- */

/* A <kind> result or error for request id <id> (decoded; NULL: none),
 * straight to the client, built with the escaping builder. <inner> is
 * trusted serialized XML or NULL; <e> makes it a stanza error. */
static void answer(struct c2s *cs, const char *kind, const char *id, size_t idlen,
                   const char *inner, enum sz_stanza_err e)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 256);
    sz_xb_start(&xb, kind, NULL);
    sz_xb_attr(&xb, "type", e ? "error" : "result");
    if (id)
        sz_xb_attr_n(&xb, "id", id, idlen);
    if (inner)
        sz_xb_raw(&xb, inner, strlen(inner));
    if (e)
        sz_stanza_err_build(&xb, e, SZ_STANZA_ERRT_DEFAULT);
    sz_xb_end(&xb);
    if (cs->sm && sz_sm_resumable(cs->sm)) {
        /* Kept as a stanza until acknowledged: a resumed stream gets it
         * again (XEP-0198 §5), like everything else it was sent. */
        sz_stanza_t *st = sz_stanza_from_xb(&xb);
        if (st)
            c2s_deliver(cs, st);
        return;
    }
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) == 0) {
        if (!c2s_sm_full(cs) && c2s_write(cs, xml, len) >= 0)
            c2s_sm_sent(cs, NULL);
        sz_free(xml);
    }
}

/* The answer to <st> (any kind, with its id): a result with <inner> or,
 * when <e> is set, a stanza error. Every error c2s answers itself has the
 * type RFC 6120 §8.3.3 pairs with its condition. */
static void answer_to(struct c2s *cs, const sz_stanza_t *st, const char *inner,
                      enum sz_stanza_err e)
{
    static const char *const kinds[] = {"message", "presence", "iq"};
    char id[1024];
    ssize_t il = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    enum sz_stanza_kind k = sz_stanza_kind(st);
    answer(cs, kinds[k <= SZ_STANZA_IQ ? k : SZ_STANZA_IQ], il >= 0 ? id : NULL,
           il >= 0 ? (size_t)il : 0, inner, e);
}

/* An iq result for <st>, with <inner> (trusted XML) or NULL. */
static void iq_reply(struct c2s *cs, const sz_stanza_t *st, const char *inner)
{
    answer_to(cs, st, inner, 0);
}

/* Stanza error <e> for <st> (any kind) straight to the client. */
static void stanza_error(struct c2s *cs, const sz_stanza_t *st, enum sz_stanza_err e)
{
    answer_to(cs, st, NULL, e);
}

static void bind_resource(struct c2s *cs, sz_stanza_t *st, const sz_xml_node_t *bind)
{
    sz_reactor_t *r = sz_conn_reactor(cs->c);
    if (sz_router_home(cs->authed, r->n) != r->id) {
        /* The move to the home reactor failed (no free slot there). */
        c2s_stream_error(cs, SZ_STREAM_RESOURCE_CONSTRAINT);
        return;
    }
    const sz_xml_node_t *res = sz_xml_child(bind, "resource", NS_BIND);
    size_t rl = 0;
    const char *rtext = res ? sz_xml_text(res, &rl) : NULL;
    char gen[24];
    if (!rtext || rl == 0) {
        /* Server-generated resource (RFC 6120 §7.6). */
        random_hex(gen, 8);
        rtext = gen;
        rl = 16;
    }
    sz_jid_t *full = NULL;
    if (sz_jid_with_resource(cs->authed, rtext, rl, &full) < 0) {
        stanza_error(cs, st, SZ_STANZA_ERR_BAD_REQUEST); /* RFC 6120 §7.7.2.1 */
        return;
    }
    cs->sess.jid = full;
    cs->sess.ops = &session_ops;
    sz_session_t *old = sz_router_bind(r, &cs->sess);
    cs->flags |= F_BOUND;
    sz_jid_free(cs->authed);
    cs->authed = NULL;
    watch_idle(cs);
    /* RFC 6120 §7.7.2.2: the new one wins. */
    if (old)
        old->ops->kick(old, SZ_STREAM_CONFLICT);
    size_t fl;
    const char *fj = sz_jid_full(full, &fl);
    sz_xb_t xb;
    sz_xb_init(&xb, 128 + fl);
    sz_xb_start(&xb, "bind", NS_BIND);
    sz_xb_leaf(&xb, "jid", NULL, fj, fl);
    sz_xb_end(&xb);
    char *inner;
    size_t il;
    if (sz_xb_finish(&xb, &inner, &il) == 0) {
        iq_reply(cs, st, inner);
        sz_free(inner);
    }
}

/* ---- stanzas after binding ------------------------------------------------ */

/* RFC 6120 §8.1.2.1: the server stamps 'from' with the full JID; a 'from'
 * naming anybody else is invalid-from. Returns the stanza to route (a new
 * one when rewritten) or NULL after a stream error. Consumes <st>. */
static sz_stanza_t *stamp_from(struct c2s *cs, sz_stanza_t *st)
{
    size_t fl, rl;
    const char *full = sz_jid_full(cs->sess.jid, &fl);
    const char *raw = sz_stanza_attr_raw(st, SZ_XML_A_FROM, &rl, NULL);
    if (raw && rl == fl && memcmp(raw, full, fl) == 0)
        return st;
    if (raw) {
        char dec[SZ_JID_INPUT_MAX_BYTES + 1];
        sz_jid_buf_t jb;
        sz_jid_t *j = NULL;
        ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
        if (n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &j, NULL) < 0 ||
            !(sz_jid_full_eq(j, cs->sess.jid) ||
              (sz_jid_is_bare(j) && sz_jid_bare_eq(j, cs->sess.jid)))) {
            sz_stanza_unref(st);
            c2s_stream_error(cs, SZ_STREAM_INVALID_FROM);
            return NULL;
        }
    }
    sz_stanza_t *st2 = sz_stanza_rewrite(st, NULL, 0, full, fl);
    sz_stanza_unref(st);
    return st2;
}

static void on_stanza(struct c2s *cs, sz_stanza_t *st)
{
    sz_reactor_t *r = sz_conn_reactor(cs->c);
    st = stamp_from(cs, st);
    if (!st)
        return;
    size_t tl;
    sz_jid_buf_t jb;
    sz_jid_t *to = NULL;
    if (sz_stanza_attr_raw(st, SZ_XML_A_TO, &tl, NULL)) {
        char dec[SZ_JID_INPUT_MAX_BYTES + 1];
        ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec));
        if (n < 0 || sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &to, NULL) < 0) {
            /* RFC 6120 §8.3.3.8, answered straight to the client. Errors are
             * never answered with errors. */
            char type[8];
            ssize_t tn = sz_stanza_attr(st, SZ_XML_A_TYPE, type, sizeof(type));
            bool is_error = tn == 5 && memcmp(type, "error", 5) == 0;
            if (!is_error)
                stanza_error(cs, st, SZ_STANZA_ERR_JID_MALFORMED);
            sz_stanza_unref(st);
            return;
        }
    }
    sz_router_from_client(r, &cs->sess, st, to);
}

/* ---- iqs before authentication (XEP-0077 registration) ------------------- */

/* The stream as a module sees it before authentication (core/hooks.h). */
static void pre_answer(void *p, const char *id, size_t idlen, const char *inner,
                       enum sz_stanza_err e)
{
    struct c2s *cs = p;
    if ((cs->flags & F_ORPHAN) || cs->stage == ST_CLOSED)
        return;
    answer(cs, "iq", id, idlen, e ? NULL : inner, e);
}

static bool pre_hold(void *p)
{
    struct c2s *cs = p;
    if (cs->flags & F_LOOKUP)
        return false;
    cs->flags |= F_LOOKUP;
    c2s_pending++;
    return true;
}

static void pre_release(void *p)
{
    struct c2s *cs = p;
    cs->flags &= (uint16_t)~F_LOOKUP;
    c2s_pending--;
    if (cs->flags & F_ORPHAN)
        c2s_free_state(cs);
}

static const sz_preauth_ops_t pre_ops = {pre_answer, pre_hold, pre_release};

/* An iq before authentication: a module that handles its payload in the
 * SZ_IQ_PREAUTH scope answers it; anything else is refused with
 * not-authorized (RFC 6120 §4.9.3.12), as is an iq the module passes. */
static void on_preauth_iq(struct c2s *cs, sz_stanza_t *st)
{
    const sz_xml_node_t *root = sz_stanza_tree(st), *payload = NULL;
    for (const sz_xml_node_t *c = root ? root->children : NULL; c; c = c->next)
        if (c->kind == SZ_XML_ELEM) {
            payload = c;
            break;
        }
    char type[8];
    ssize_t tn = sz_stanza_attr(st, SZ_XML_A_TYPE, type, sizeof(type));
    bool get = tn == 3 && memcmp(type, "get", 3) == 0, set = tn == 3 && memcmp(type, "set", 3) == 0;
    sz_iq_fn fn = sz_hooks_iq_find(payload, SZ_IQ_PREAUTH);
    if (!fn) {
        c2s_stream_error(cs, SZ_STREAM_NOT_AUTHORIZED);
        return;
    }
    if (!get && !set) {
        stanza_error(cs, st, SZ_STANZA_ERR_BAD_REQUEST);
        return;
    }
    const sz_conf_listen_t *l = c2s_listener(cs);
    sz_preauth_t pre = {cs, &pre_ops, cs->src_hash,
                        (cs->flags & F_TLS) || l->kind != SZ_LISTEN_C2S ||
                            l->tls != SZ_TLS_STARTTLS_REQUIRED};
    sz_hook_ctx_t ctx = {.r = sz_conn_reactor(cs->c), .st = st, .host = cs->host,
                         .kind = SZ_STANZA_IQ, .type = get ? "get" : "set", .pre = &pre};
    int ret = fn(&ctx, payload, set);
    if (ret == SZ_PASS) {
        c2s_stream_error(cs, SZ_STREAM_NOT_AUTHORIZED);
    } else if (ret < 0) {
        stanza_error(cs, st, (enum sz_stanza_err)-ret);
    }
}

/* A nonza on a bound stream, for the module registered for its
 * namespace; a stream error it answers ends the stream. */
static void on_nonza(struct c2s *cs, sz_nonza_fn fn, const char *span, size_t len,
                     const sz_xml_head_t *h)
{
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    sz_hook_ctx_t ctx = {.r = sz_conn_reactor(cs->c), .st = st, .from = &cs->sess,
                         .user = cs->sess.user, .host = cs->host, .kind = SZ_STANZA_OTHER};
    int ret = fn(&ctx);
    sz_stanza_unref(st);
    if (ret > 0)
        c2s_stream_error(cs, (enum sz_stream_err)ret);
}

static int on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct c2s *cs = ud;
    if (cs->stage != ST_OPEN)
        return 1;
    /* STARTTLS (RFC 6120 §5.4.2). */
    if (h->ns_id == SZ_XML_NS_TLS && c2s_name_is(span, h, "starttls")) {
        if (!tls_offered(cs) || (cs->flags & F_AUTHED)) {
            c2s_writes(cs, "<failure xmlns='" NS_TLS "'/></stream:stream>");
            cs->stage = ST_CLOSED;
            sz_conn_close(cs->c, true);
            return 1;
        }
        c2s_writes(cs, "<proceed xmlns='" NS_TLS "'/>");
        cs->tls = sz_tls_new(__atomic_load_n(&tls_ctx, __ATOMIC_ACQUIRE), SZ_TLS_STARTTLS);
        cs->stage = ST_TLS;
        arm_handshake(cs);
        return 1; /* the rest of this chunk is TLS */
    }
    if (!(cs->flags & F_AUTHED)) {
        if (h->ns_id == SZ_XML_NS_SASL) {
            c2s_on_sasl(cs, span, len, h);
            return cs->stage == ST_OPEN ? 0 : 1;
        }
        /* XEP-0077: registration is the one stanza allowed before
         * authentication, through the module that serves it. */
        if (h->ns_id == SZ_XML_NS_CLIENT && c2s_name_is(span, h, "iq")) {
            sz_stanza_t *st = sz_stanza_new(span, len, h);
            on_preauth_iq(cs, st);
            sz_stanza_unref(st);
            return cs->stage == ST_OPEN ? 0 : 1;
        }
        /* RFC 6120 §4.9.3.12: nothing else before authentication. */
        c2s_stream_error(cs, SZ_STREAM_NOT_AUTHORIZED);
        return 1;
    }
    if (h->ns_id == SZ_XML_NS_SM) {
        c2s_on_sm(cs, span, len, h);
        return cs->stage == ST_OPEN ? 0 : 1;
    }
    if ((cs->flags & F_BOUND) && h->ns_id != SZ_XML_NS_CLIENT && h->ns) {
        /* A nonza a module handles (core/hooks.h sz_hooks_nonza). */
        sz_nonza_fn fn = sz_hooks_nonza_find(h->ns, h->ns_len);
        if (fn) {
            on_nonza(cs, fn, span, len, h);
            return cs->stage == ST_OPEN ? 0 : 1;
        }
    }
    if (h->ns_id != SZ_XML_NS_CLIENT || h->name.len < 2 ||
        !(c2s_name_is(span, h, "message") || c2s_name_is(span, h, "presence") ||
          c2s_name_is(span, h, "iq"))) {
        c2s_stream_error(cs, SZ_STREAM_UNSUPPORTED_STANZA_TYPE);
        return 1;
    }
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    if (!(cs->flags & F_BOUND)) {
        /* Only resource binding until bound (RFC 6120 §7.1). */
        const sz_xml_node_t *root = sz_stanza_kind(st) == SZ_STANZA_IQ ? sz_stanza_tree(st) : NULL;
        const sz_xml_node_t *bind = root ? sz_xml_child(root, "bind", NS_BIND) : NULL;
        char type[8];
        ssize_t tn = sz_stanza_attr(st, SZ_XML_A_TYPE, type, sizeof(type));
        if (bind && tn == 3 && memcmp(type, "set", 3) == 0)
            bind_resource(cs, st, bind);
        else
            c2s_stream_error(cs, SZ_STREAM_NOT_AUTHORIZED);
        sz_stanza_unref(st);
        return cs->stage == ST_OPEN ? 0 : 1;
    }
    if (cs->sm)
        sz_sm_handled(cs->sm); /* XEP-0198 §4: counted when taken in */
    /* Legacy session establishment (RFC 3921 §3), answered for old clients. */
    if (sz_stanza_kind(st) == SZ_STANZA_IQ) {
        const sz_xml_node_t *root = sz_stanza_tree(st);
        if (root && sz_xml_child(root, "session", NS_SESSION)) {
            iq_reply(cs, st, NULL);
            sz_stanza_unref(st);
            return 0;
        }
    }
    on_stanza(cs, st);
    return cs->stage == ST_OPEN ? 0 : 1;
}

static int on_end(void *ud)
{
    struct c2s *cs = ud;
    /* RFC 6120 §4.4: answer the closing tag with ours, then close. */
    if (cs->stage != ST_CLOSED) {
        if (!(cs->flags & F_HEADER_SENT))
            send_header(cs);
        c2s_writes(cs, "</stream:stream>");
        cs->stage = ST_CLOSED;
        if (cs->tls && (cs->flags & F_TLS))
            sz_tls_shutdown(cs->tls, &tls_io, cs);
        sz_conn_close(cs->c, true);
        end_session(cs);
    }
    return 1;
}

static const sz_xml_ops_t xml_ops = {on_header, on_element, on_end};

/* ---- input ------------------------------------------------------------------ */

static int feed_plain(struct c2s *cs, const char *p, size_t n)
{
    /* A callback stops the feed after a stream restart (SASL success),
     * STARTTLS or the end of the stream; feed the rest accordingly. */
    while (n && cs->stage != ST_CLOSED && cs->stage != ST_TLS) {
        ssize_t k = sz_xml_parser_feed(&cs->xp, p, n);
        if (k < 0) {
            c2s_stream_error(cs, (enum sz_stream_err)-k);
            return -1;
        }
        if (k == 0)
            break;
        p += k;
        n -= (size_t)k;
    }
    /* Bytes after <starttls/> in the same read were sent before the client
     * saw <proceed/>: plaintext that must not reach the TLS stream
     * (STARTTLS command injection). They are dropped. */
    (void)n;
    return cs->stage == ST_CLOSED ? -1 : 0;
}

static int tls_cipher(void *ud, const void *p, size_t n)
{
    struct c2s *cs = ud;
    return sz_conn_send(cs->c, p, n);
}

static int tls_plain(void *ud, const char *p, size_t n)
{
    return feed_plain(ud, p, n);
}

static int tls_handshake(void *ud, sz_tls_t *t)
{
    struct c2s *cs = ud;
    cs->flags |= F_TLS;
    /* RFC 6120 §5.4.3.3: a new stream over TLS. */
    cs->stage = ST_HEADER;
    cs->flags &= (uint16_t)~F_HEADER_SENT;
    sz_xml_parser_reset(&cs->xp);
    return 0;
}

/* The TLS 1.3 Finished that OpenSSL-based clients send as tls-unique
 * (slixmpp's default SCRAM-SHA-*-PLUS does): kept only when
 * tls.unique_on_tls13 says so, and only until SASL ends. */
static void tls_finished(void *ud, const uint8_t *p, size_t n)
{
    struct c2s *cs = ud;
    if (!c2s_conf->tls.unique_on_tls13 || n == 0 || n > UINT8_MAX || cs->cb_unique)
        return;
    cs->cb_unique = sz_malloc(n + 1);
    cs->cb_unique[0] = (uint8_t)n;
    memcpy(cs->cb_unique + 1, p, n);
}

static const sz_tls_io_t tls_io = {tls_cipher, tls_plain, tls_handshake, tls_finished};

static void feed_tls(struct c2s *cs, const char *p, size_t n)
{
    int ret = sz_tls_input(cs->tls, p, n, &tls_io, cs);
    if (ret < 0) {
        SZ_DEBUG("msg=\"tls failed\" conn=%llu reason=\"%s\"", (unsigned long long)cs->c->id,
                 sz_tls_error(cs->tls));
        cs->stage = ST_CLOSED;
        sz_conn_close(cs->c, true); /* an alert may be queued */
        end_session(cs);
    } else if ((ret & SZ_TLS_PEER_CLOSED) && cs->stage != ST_CLOSED) {
        /* close_notify: end our stream too, then close. */
        if (cs->flags & F_HEADER_SENT)
            c2s_writes(cs, "</stream:stream>");
        sz_tls_shutdown(cs->tls, &tls_io, cs);
        cs->stage = ST_CLOSED;
        sz_conn_close(cs->c, true);
        end_session(cs);
    }
}

/* ---- connection callbacks ------------------------------------------------- */

static void c2s_open(sz_conn_t *c)
{
    struct c2s *cs = sz_calloc(1, sizeof(*cs));
    cs->c = c;
    c->pstate = cs;
    sz_xml_limits_t lim = {SZ_C2S_PREAUTH_STANZA_BYTES,
                           (uint16_t)SZ_CONF_LIMIT(c2s_conf, max_depth),
                           (uint16_t)SZ_CONF_LIMIT(c2s_conf, max_attrs)};
    if (lim.max_stanza_bytes > SZ_CONF_LIMIT(c2s_conf, max_stanza_bytes))
        lim.max_stanza_bytes = SZ_CONF_LIMIT(c2s_conf, max_stanza_bytes);
    sz_xml_parser_init(&cs->xp, &lim, &xml_ops, cs);
    sz_xml_parser_set_content_ns(&cs->xp, 1u << SZ_XML_NS_CLIENT);
    cs->opened = clock32();
    arm_handshake(cs);
    if (c2s_listener(cs)->kind == SZ_LISTEN_C2S_TLS) {
        sz_tls_ctx_t *ctx = __atomic_load_n(&tls_ctx, __ATOMIC_ACQUIRE);
        if (!ctx) {
            cs->stage = ST_CLOSED;
            sz_conn_close(c, false);
            return;
        }
        cs->tls = sz_tls_new(ctx, SZ_TLS_DIRECT);
        cs->stage = ST_TLS;
    }
}

static void c2s_data(sz_conn_t *c, const char *p, size_t n)
{
    struct c2s *cs = c->pstate;
    if (cs->stage == ST_CLOSED)
        return;
    /* Any byte is a sign of life, whitespace keepalives included (RFC 6120
     * §4.6.1): the idle check reads these instead of re-arming a timer on
     * every read. */
    cs->last_in = clock32();
    cs->flags &= (uint16_t)~F_PINGED;
    if (cs->tls)
        feed_tls(cs, p, n);
    else
        feed_plain(cs, p, n);
}

static void c2s_timer(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    /* Before authentication, these two stages are the ones arm_handshake()
     * covers: no stream header answered yet, or TLS still running. */
    if (!(cs->flags & F_AUTHED) && (cs->stage == ST_HEADER || cs->stage == ST_TLS)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, handshake_timeouts, 1);
        SZ_DEBUG("msg=\"no stream header in time\" conn=%llu", (unsigned long long)c->id);
    }
    if ((cs->flags & F_BOUND) && cs->stage != ST_CLOSED)
        idle_check(cs);
    else if (cs->tls && !(cs->flags & F_TLS))
        sz_conn_close(c, false); /* mid-handshake: no stream to write to */
    else
        c2s_stream_error(cs, SZ_STREAM_CONNECTION_TIMEOUT);
}

static void c2s_shutdown(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    if (cs->stage == ST_CLOSED || (cs->tls && !(cs->flags & F_TLS)))
        sz_conn_close(c, false);
    else
        c2s_stream_error(cs, SZ_STREAM_SYSTEM_SHUTDOWN);
}

/* The peer closed TCP or the connection broke (a reset): no stream end
 * can follow, so the session ends now, unless XEP-0198 lets the client
 * resume it (§5): then it detaches and waits. */
static void c2s_eof(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    if (cs->flags & F_DETACHED)
        return; /* closing already, its session kept (c2s_close) */
    bool was_open = cs->stage != ST_CLOSED;
    cs->stage = ST_CLOSED;
    sz_conn_close(c, false);
    if (was_open && c2s_sm_detach(cs))
        return;
    end_session(cs);
}

static void c2s_moved(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    cs->c = c;
    if (!(cs->flags & F_BOUND))
        arm_preauth(cs); /* the same deadline, counted from connect */
}

static void c2s_close(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    c->pstate = NULL;
    if (!cs)
        return;
    c2s_uncount_source(cs);
    if ((cs->flags & F_DETACHED) && !(cs->flags & F_UNBIND_LATER)) {
        /* The session outlives its connection (XEP-0198 §5). */
        cs->c = NULL;
        sz_xml_parser_free(&cs->xp);
        sz_tls_free(cs->tls);
        cs->tls = NULL;
        sz_free(cs->cb_unique);
        cs->cb_unique = NULL;
        c2s_sm_detached(cs);
        return;
    }
    if (cs->flags & F_UNBIND_LATER)
        forget_unbind(cs);
    if (cs->flags & F_BOUND)
        unbind_now(cs); /* also handles what XEP-0198 left unacknowledged */
    if (cs->sm) {
        sz_sm_free(cs->sm, c2s_undelivered, sz_conn_reactor(c));
        cs->sm = NULL;
    }
    if (cs->flags & F_LOOKUP) {
        /* A lookup or a worker job still holds this state (and maybe the
         * SASL exchange): its completion frees everything. */
        cs->flags |= F_ORPHAN;
        cs->c = NULL;
        return;
    }
    c2s_free_state(cs);
}

static void c2s_peer(sz_conn_t *c, const struct sockaddr *sa, unsigned len)
{
    struct c2s *cs = c->pstate;
    const void *a = NULL;
    size_t alen = 0;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
        alen = 4;
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        alen = 16;
    }
    if (!a)
        return;
    uint32_t slot = (uint32_t)(sz_jid_hash_bytes(a, alen) % SRC_SLOTS);
    cs->src_hash = slot + 1;
    if (cs->flags & F_AUTHED || cs->stage == ST_CLOSED)
        return;
    /* The rate first: a source past its burst is refused whatever it holds. */
    if (!c2s_source_take(slot)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, source_rate_limited, 1);
        SZ_DEBUG("msg=\"source over its connection rate\" conn=%llu", (unsigned long long)c->id);
        c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
        return;
    }
    cs->src = slot + 1;
    uint32_t n = __atomic_add_fetch(&unauth_by_src[slot], 1, __ATOMIC_RELAXED);
    if (n > SZ_CONF_LIMIT(c2s_conf, max_unauth_per_source)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, source_limited, 1);
        SZ_DEBUG("msg=\"source over its unauthenticated connections\" conn=%llu",
                 (unsigned long long)c->id);
        c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
    }
}

const sz_proto_t sz_proto_c2s = {
    .on_peer = c2s_peer,
    .name = "c2s",
    .on_open = c2s_open,
    .on_data = c2s_data,
    .on_eof = c2s_eof,
    .on_timer = c2s_timer,
    .on_shutdown = c2s_shutdown,
    .on_moved = c2s_moved,
    .on_close = c2s_close,
};

/* ---- session ops (router → client) ------------------------------------ */

static void release_stanza(void *ref)
{
    sz_stanza_unref(ref);
}

static void sess_deliver(sz_session_t *s, sz_stanza_t *st)
{
    struct c2s *cs = of_sess(s);
    if (cs->flags & F_DETACHED) {
        delivering++;
        c2s_sm_hold(cs, st); /* kept for a resumption */
        delivering--;
        return;
    }
    size_t len;
    const char *raw = sz_stanza_raw(st, &len);
    bool had_sm = cs->sm != NULL;
    delivering++;
    /* A stream already ending, or a client that does not read (policy-
     * violation once its queue would pass the cap): not delivered. With
     * stream management the sender learns it (XEP-0198 §4); without, the
     * stanza is lost as with any broken TCP connection. */
    if (cs->stage == ST_CLOSED || !cs->c || over_cap(cs, len) || c2s_sm_full(cs)) {
        if (had_sm)
            c2s_undelivered(sz_reactor_self(), st);
        else
            sz_stanza_unref(st);
        delivering--;
        return;
    }
    int ret;
    if (cs->tls)
        ret = sz_tls_output(cs->tls, raw, len, &tls_io, cs);
    else
        ret = sz_conn_send_ref(cs->c, raw, len, release_stanza, sz_stanza_ref(st)); /* zero copy */
    if (ret < 0) {
        /* The bytes could not be queued (a broken TLS state, a connection
         * going away): the stanza did not reach the client, so it is not
         * counted for XEP-0198 and the stream ends, since the client can
         * no longer be told anything reliably. The sender learns it
         * (RFC 6121 §8.5.3.2.1 treats it like a resource that went away). */
        SZ_DEBUG("msg=\"delivery failed\" conn=%llu err=%d", (unsigned long long)cs->c->id, ret);
        cs->stage = ST_CLOSED;
        sz_conn_close(cs->c, false);
        end_session(cs);
        sz_router_undelivered(sz_reactor_self(), st);
    } else if (cs->sm) {
        c2s_sm_sent(cs, st); /* keeps the reference until acknowledged */
    } else {
        sz_stanza_unref(st);
    }
    delivering--;
}

static void sess_kick(sz_session_t *s, enum sz_stream_err cond)
{
    struct c2s *cs = of_sess(s);
    /* A replaced session was unlinked by the router already: it is no
     * longer bound, and its last presence goes with it. */
    if ((cs->flags & F_BOUND) && !s->user) {
        cs->flags &= (uint16_t)~F_BOUND;
        sz_jid_free(s->jid);
        s->jid = NULL;
        s->available = false;
        if (s->presence) {
            sz_stanza_unref(s->presence);
            s->presence = NULL;
        }
        if (cs->flags & F_DETACHED) {
            /* Nobody to tell: what it held goes back as undelivered. */
            sz_sm_free(cs->sm, c2s_undelivered, sz_reactor_self());
            cs->sm = NULL;
            c2s_sm_undetach(cs);
            return;
        }
    }
    if (cs->flags & F_DETACHED) {
        end_session(cs);
        return;
    }
    c2s_stream_error(cs, cond);
}

void c2s_deliver(struct c2s *cs, sz_stanza_t *st)
{
    sess_deliver(&cs->sess, st);
}

struct c2s *c2s_find_resumable(sz_reactor_t *r, const sz_jid_t *bare, const uint8_t *tok)
{
    sz_user_t *u = sz_router_user(r, bare);
    for (sz_session_t *s = u ? u->sessions : NULL; s; s = s->next) {
        if (s->ops != &session_ops)
            continue; /* not a client stream of this file */
        struct c2s *cs = of_sess(s);
        /* A stream that ended without detaching is no longer resumable,
         * whatever its unbind still waits for. */
        if (!(cs->flags & F_BOUND) || (cs->flags & F_UNBIND_LATER) || !cs->sm ||
            (cs->stage == ST_CLOSED && !(cs->flags & F_DETACHED)))
            continue;
        if (sz_sm_token_eq(cs->sm, tok))
            return cs;
    }
    return NULL;
}

void c2s_take_over(struct c2s *cs, struct c2s *old)
{
    sz_reactor_t *r = sz_reactor_self();
    cs->sess.ops = &session_ops;
    sz_router_takeover(r, &old->sess, &cs->sess);
    cs->sm = old->sm;
    old->sm = NULL;
    old->flags &= (uint16_t)~F_BOUND;
    cs->flags |= F_BOUND;
    sz_jid_free(cs->authed);
    cs->authed = NULL;
    watch_idle(cs);
    if (old->flags & F_DETACHED) {
        c2s_sm_undetach(old); /* frees it when its connection is gone */
    } else {
        /* XEP-0198 §5: the former stream, which the server still had
         * open, gets a conflict stream error and is closed. */
        c2s_stream_error(old, SZ_STREAM_CONFLICT);
    }
}

static const sz_session_ops_t session_ops = {sess_deliver, sess_kick};
