/*
 * The client stream machine (RFC 6120 §4–§8). Per connection it keeps one
 * struct c2s (the 64-byte parser, the session, a few flags); SASL and TLS
 * state exist only while used. Runs on the connection's reactor: the
 * accepting one until SASL succeeds, then the user's home reactor.
 *
 * A storage lookup in flight keeps the struct alive after the connection
 * closed (orphan): the lookup's callback frees it.
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
#include "net/sasl.h"
#include "net/sm.h"
#include "net/tls.h"

#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_TLS     "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL    "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND    "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_SM      "urn:xmpp:sm:3"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING    "urn:xmpp:ping"

enum stage {
    ST_HEADER = 0, /* waiting for a stream header (first or restarted) */
    ST_OPEN,       /* header answered, features sent */
    ST_TLS,        /* <proceed/> sent, TLS handshake running */
    ST_CLOSED,     /* stream error or end sent; input ignored */
};

#define F_HEADER_SENT 0x01 /* our header went out on the current stream */
#define F_AUTHED      0x02 /* SASL succeeded */
#define F_BOUND       0x04 /* resource bound, session in the router */
#define F_TLS         0x08 /* TLS handshake completed */
#define F_LOOKUP      0x10 /* storage lookup in flight */
#define F_ORPHAN      0x20 /* connection gone while the lookup runs */
#define F_SPOKE       0x40 /* SASL input arrived while a lookup or job held the exchange */
#define F_PINGED      0x80 /* bound, idle: our ping is out and nothing came in since */
#define F_UNBIND_LATER 0x100 /* the stream ended during a delivery: unbind at the end of the
                              * reactor iteration (see end_session()) */

struct c2s {
    sz_xml_parser_t xp;  /* 64 */
    sz_session_t sess;   /* 64; sess.jid is the full JID once bound */
    sz_conn_t *c;
    sz_tls_t *tls;
    sz_sasl_t *sasl;
    sz_jid_t *authed;    /* bare JID after SASL, until bound */
    uint8_t stage;
    uint8_t host;        /* index in conf->hosts */
    uint16_t flags;
    uint8_t failures;    /* SASL failures about the credentials */
    uint8_t soft_failures; /* other SASL failures (negotiation, syntax, abort) */
    uint32_t src;        /* 1 + source slot while counted as unauthenticated, else 0 */
    uint32_t src_hash;   /* 1 + source slot once known (for registration limits) */
    uint32_t last_in;    /* reactor clock (ms, low 32 bits) of the last input */
    uint32_t opened;     /* reactor clock (ms, low 32 bits) at connect: the pre-auth deadlines */
    sz_sm_t *sm;         /* XEP-0198 state once enabled, else NULL */
    /* TLS 1.3 tls-unique as OpenSSL peers compute it (sz_tls_io_t.finished):
     * length byte, then the bytes; from the handshake until authenticated,
     * only with tls.unique_on_tls13. */
    uint8_t *cb_unique;
};


static const sz_conf_t *conf;
static sz_c2s_accounts_t accounts;
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
static __thread unsigned pending; /* lookups in flight on this reactor */

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
    conf = c;
    sz_reactor_add_iteration_hook(flush_unbinds);
    if (acc)
        accounts = *acc;
    else
        memset(&accounts, 0, sizeof(accounts));
    sz_c2s_set_tls(t);
}

/* Takes one token from the bucket of source slot <slot> (a new connection
 * or a failed login): limits.source_rate_per_sec tokens a second, at most
 * limits.source_burst at once. False when the bucket is empty. */
static bool source_take(uint32_t slot)
{
    uint32_t rate = SZ_CONF_LIMIT(conf, source_rate_per_sec);
    if (rate == 0)
        return true;
    uint64_t step = 1000000u / rate ? 1000000u / rate : 1; /* µs per token */
    uint64_t tau = (uint64_t)(SZ_CONF_LIMIT(conf, source_burst) - 1) * step;
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
static void uncount_source(struct c2s *cs)
{
    if (cs->src) {
        __atomic_sub_fetch(&unauth_by_src[cs->src - 1], 1, __ATOMIC_RELAXED);
        cs->src = 0;
    }
}

unsigned sz_c2s_pending(void)
{
    return pending;
}

void sz_c2s_release(void)
{
    sz_tls_ctx_unref(__atomic_exchange_n(&tls_ctx, NULL, __ATOMIC_ACQ_REL));
}

static inline struct c2s *of_sess(sz_session_t *s)
{
    return (struct c2s *)((char *)s - offsetof(struct c2s, sess));
}

static const sz_conf_listen_t *listener(const struct c2s *cs)
{
    return &conf->listens[cs->c->listener];
}

/* ---- output -------------------------------------------------------------- */

/* Headroom kept under limits.max_output_bytes for the stream error that
 * tells a client which does not read why it is closed. */
#define OUTPUT_HEADROOM 512

static int raw_write(struct c2s *cs, const void *p, size_t n)
{
    if (cs->tls && (cs->flags & F_TLS))
        return sz_tls_output(cs->tls, p, n, &tls_io, cs);
    return sz_conn_send(cs->c, p, n);
}

static void stream_error(struct c2s *cs, const char *cond);

/* True (and the stream ended with policy-violation) when <n> more bytes
 * would pass the output cap: the one place the cap is enforced for c2s. */
static bool over_cap(struct c2s *cs, size_t n)
{
    uint32_t cap = __atomic_load_n(&sz_conn_max_output, __ATOMIC_RELAXED);
    if (cs->stage == ST_CLOSED || cs->c->out_bytes + n + OUTPUT_HEADROOM <= cap)
        return false;
    SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, output_overflow, 1);
    stream_error(cs, "policy-violation");
    return true;
}

static int c2s_write(struct c2s *cs, const void *p, size_t n)
{
    if (over_cap(cs, n))
        return -ENOBUFS;
    return raw_write(cs, p, n);
}

static void c2s_writes(struct c2s *cs, const char *s)
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
    uint32_t idle = SZ_CONF_LIMIT(conf, idle_timeout_ms);
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
    sz_xb_attr(&xb, "from", conf->hosts[cs->host].domain);
    sz_xb_attr_n(&xb, "to", full, fl);
    sz_xb_attr(&xb, "type", "get");
    sz_xb_attr(&xb, "id", id);
    sz_xb_start(&xb, "ping", NS_PING);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0)
        return;
    sz_stanza_t *st = sz_stanza_from_xml(xml, len);
    sz_free(xml);
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
        stream_error(cs, "connection-timeout");
        return;
    }
    uint32_t idle = SZ_CONF_LIMIT(conf, idle_timeout_ms);
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
    sz_conn_set_timer(cs->c, SZ_CONF_LIMIT(conf, ping_timeout_ms));
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
    uint32_t total = SZ_CONF_LIMIT(conf, preauth_timeout_ms), spent = clock32() - cs->opened;
    return spent < total ? total - spent : 1;
}

static void arm_preauth(struct c2s *cs)
{
    sz_conn_set_timer(cs->c, preauth_left(cs));
}

static void arm_handshake(struct c2s *cs)
{
    uint32_t left = preauth_left(cs), hs = SZ_CONF_LIMIT(conf, handshake_timeout_ms);
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
                     id, conf->hosts[cs->host].domain);
    cs->flags |= F_HEADER_SENT;
    return (size_t)n;
}

static void send_header(struct c2s *cs)
{
    char buf[HEADER_MAX];
    raw_write(cs, buf, format_header(cs, buf));
}

/* ---- the end of a bound session ------------------------------------------ */

static void undelivered(void *ctx, sz_stanza_t *st);

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
        sz_sm_free(cs->sm, undelivered, r);
        cs->sm = NULL;
    }
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
static void stream_error_app(struct c2s *cs, const char *cond, const char *app)
{
    if (cs->stage == ST_CLOSED)
        return;
    if (!(cs->flags & F_HEADER_SENT))
        send_header(cs);
    char buf[384];
    int n = snprintf(buf, sizeof(buf),
                     "<stream:error><%s xmlns='" NS_STREAMS "'/>%s</stream:error></stream:stream>",
                     cond, app ? app : "");
    raw_write(cs, buf, (size_t)n); /* within the headroom kept by over_cap() */
    SZ_DEBUG("msg=\"stream error\" conn=%llu condition=%s", (unsigned long long)cs->c->id, cond);
    cs->stage = ST_CLOSED;
    if (cs->tls && (cs->flags & F_TLS))
        sz_tls_shutdown(cs->tls, &tls_io, cs);
    sz_conn_close(cs->c, true);
    end_session(cs);
}

static void stream_error(struct c2s *cs, const char *cond)
{
    stream_error_app(cs, cond, NULL);
}

static unsigned sasl_flags(const struct c2s *cs)
{
    unsigned f = 0;
    if (cs->flags & F_TLS) {
        f |= SZ_SASL_F_TLS;
        uint8_t cb[SZ_TLS_CB_MAX_BYTES > SZ_TLS_CB_UNIQUE_MAX_BYTES ? SZ_TLS_CB_MAX_BYTES
                                                                    : SZ_TLS_CB_UNIQUE_MAX_BYTES];
        size_t len = sizeof(cb);
        if (sz_tls_cb_exporter(cs->tls, NULL) == 0)
            f |= SZ_SASL_F_CB_EXPORTER;
        if (sz_tls_cb_server_end_point(cs->tls, cb, &len) == 0)
            f |= SZ_SASL_F_CB_ENDPOINT;
        /* tls-unique: advertised on TLS 1.2 (RFC 5929 §3); on TLS 1.3 only
         * accepted, and only with tls.unique_on_tls13 (see cs->cb_unique). */
        if (sz_tls_cb_unique(cs->tls, cb, &len) == 0)
            f |= SZ_SASL_F_CB_UNIQUE;
        else if (cs->cb_unique)
            f |= SZ_SASL_F_CB_UNIQUE | SZ_SASL_F_CB_UNLISTED;
    }
    if (listener(cs)->plain_without_tls)
        f |= SZ_SASL_F_PLAIN_NO_TLS;
    return f;
}

static bool tls_offered(const struct c2s *cs)
{
    const sz_conf_listen_t *l = listener(cs);
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
        bool tls_required = listener(cs)->kind == SZ_LISTEN_C2S &&
                            listener(cs)->tls == SZ_TLS_STARTTLS_REQUIRED && !(cs->flags & F_TLS);
        if (tls_offered(cs))
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                                  tls_required ? "<required/>" : "");
        /* RFC 6120 §5.3.1: while TLS is mandatory, it is the only feature. */
        if (!tls_required) {
            unsigned f = sasl_flags(cs);
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
    for (size_t i = 0; i < conf->nhosts; i++)
        if (strlen(conf->hosts[i].domain) == len && memcmp(conf->hosts[i].domain, d, len) == 0)
            return (int)i;
    return -1;
}

static int on_header(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct c2s *cs = ud;
    if (cs->stage != ST_HEADER) {
        stream_error(cs, "not-well-formed");
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
        stream_error(cs, "host-unknown");
        return 1;
    }
    cs->host = (uint8_t)host;
    /* version: absent means pre-1.0 (RFC 6120 §4.7.5), which we do not speak. */
    const sz_xml_str_t *v = &h->attr[SZ_XML_A_VERSION];
    if (!v->off || v->len < 3 || span[v->off] != '1' || span[v->off + 1] != '.') {
        stream_error(cs, "unsupported-version");
        return 1;
    }
    cs->stage = ST_OPEN;
    /* The client speaks XMPP: the rest of the pre-auth time is its own. */
    if (!(cs->flags & F_BOUND))
        arm_preauth(cs);
    send_header_and_features(cs);
    return 0;
}

/* ---- SASL -------------------------------------------------------------- */

static void sasl_result(struct c2s *cs, enum sz_sasl_result res, const sz_sasl_out_t *out);

static void sasl_failure(struct c2s *cs, const char *cond, bool counts, const char *scram_error);

/* Frees what a connection's c2s state holds once nothing else uses it. */
static void free_state(struct c2s *cs)
{
    sz_xml_parser_free(&cs->xp);
    sz_tls_free(cs->tls);
    sz_sasl_free(cs->sasl);
    sz_jid_free(cs->authed);
    sz_sm_free(cs->sm, NULL, NULL);
    sz_free(cs->cb_unique);
    sz_free(cs);
}

/* SASL input that arrived while a lookup or a job held the exchange: the
 * client spoke out of turn (RFC 6120 §6.4), which fails the exchange now
 * that it is ours again. <checked>: the password was verified meanwhile
 * (PLAIN), so the failure counts like a wrong one, and speaking out of turn
 * buys no extra guesses. Returns true when it did. */
static bool spoke_out_of_turn(struct c2s *cs, bool checked)
{
    if (!(cs->flags & F_SPOKE))
        return false;
    cs->flags &= (uint16_t)~F_SPOKE;
    sz_sasl_free(cs->sasl);
    cs->sasl = NULL;
    sasl_failure(cs, "malformed-request", checked, NULL);
    return true;
}

/* PLAIN verification on a storage worker. While it runs the reactor does
 * not touch cs->sasl (F_LOOKUP). */
struct plain_job {
    struct c2s *cs;
    enum sz_sasl_creds_status status;
    bool have_creds;
    enum sz_sasl_result r;
    sz_sasl_out_t out;
    sz_scram_creds_t creds;
};

static void plain_work(void *arg)
{
    struct plain_job *job = arg;
    job->r = sz_sasl_creds(job->cs->sasl, job->status, job->have_creds ? &job->creds : NULL,
                           &job->out);
}

static void plain_done(void *arg, int res)
{
    struct plain_job *job = arg;
    struct c2s *cs = job->cs;
    (void)res;
    cs->flags &= (uint16_t)~F_LOOKUP;
    pending--;
    if (cs->flags & F_ORPHAN)
        free_state(cs);
    else if (cs->stage != ST_CLOSED && !spoke_out_of_turn(cs, true))
        sasl_result(cs, job->r, &job->out);
    memset(&job->creds, 0, sizeof(job->creds));
    sz_free(job);
}

static void on_creds(void *arg, int res, const sz_scram_creds_t *creds)
{
    struct c2s *cs = arg;
    cs->flags &= (uint16_t)~F_LOOKUP;
    pending--;
    if (cs->flags & F_ORPHAN) {
        free_state(cs);
        return;
    }
    if (!cs->sasl || cs->stage == ST_CLOSED)
        return; /* the exchange ended meanwhile: a late answer is dropped */
    if (spoke_out_of_turn(cs, false))
        return;
    enum sz_sasl_creds_status status = res == 0         ? SZ_SASL_CREDS_FOUND
                                       : res == -ENOENT ? SZ_SASL_CREDS_NOT_FOUND
                                                        : SZ_SASL_CREDS_UNAVAILABLE;
    /* PLAIN derives from the password (PBKDF2, milliseconds): on a worker. */
    if (sz_sasl_mech(cs->sasl) == SZ_SASL_PLAIN && accounts.offload) {
        struct plain_job *job = sz_calloc(1, sizeof(*job));
        job->cs = cs;
        job->status = status;
        if (res == 0 && creds) {
            job->creds = *creds;
            job->have_creds = true;
        }
        cs->flags |= F_LOOKUP;
        pending++;
        if (accounts.offload(accounts.ctx, plain_work, plain_done, job) == 0)
            return;
        cs->flags &= (uint16_t)~F_LOOKUP;
        pending--;
        sz_free(job);
    }
    sz_sasl_out_t out;
    enum sz_sasl_result r = sz_sasl_creds(cs->sasl, status, res == 0 ? creds : NULL, &out);
    sasl_result(cs, r, &out);
}

static void lookup(struct c2s *cs, const sz_sasl_out_t *out)
{
    char jid[SZ_JID_INPUT_MAX_BYTES + 1];
    int n = snprintf(jid, sizeof(jid), "%.*s@%s", (int)out->user_len, out->user,
                     conf->hosts[cs->host].domain);
    sz_jid_t *j = NULL;
    if (!accounts.get_creds || n <= 0 || (size_t)n >= sizeof(jid) ||
        sz_jid_parse(jid, (size_t)n, &j) < 0) {
        sz_sasl_out_t o2;
        enum sz_sasl_result r = sz_sasl_creds(cs->sasl, accounts.get_creds
                                                            ? SZ_SASL_CREDS_NOT_FOUND
                                                            : SZ_SASL_CREDS_UNAVAILABLE,
                                              NULL, &o2);
        sasl_result(cs, r, &o2);
        return;
    }
    cs->flags |= F_LOOKUP;
    pending++;
    int ret = accounts.get_creds(accounts.ctx, j, on_creds, cs);
    sz_jid_free(j);
    if (ret < 0) {
        pending--;
        cs->flags &= (uint16_t)~F_LOOKUP;
        sz_sasl_out_t o2;
        sasl_result(cs, sz_sasl_creds(cs->sasl, SZ_SASL_CREDS_UNAVAILABLE, NULL, &o2), &o2);
    }
}

/* Writes <failure><cond/></failure>, with <scram_error> (a SCRAM
 * server-error message, "e=...", trusted and short; see sz_sasl_out_t) as
 * its <text/>, and counts it. RFC 6120 §6.4.5 allows a configurable number
 * of retries, then a stream error. Only failures about the credentials
 * (<counts>) use up SZ_C2S_MAX_AUTH_FAILURES, and each also takes a token
 * from the source's rate budget, so password guessing is bounded per
 * stream and per address. The rest (a mechanism or channel-binding type
 * the client may change, encoding, syntax, abort) reveal nothing about the
 * password: a client walking down its list of mechanisms must not be cut
 * off by them, but may not loop forever either
 * (SZ_C2S_MAX_SOFT_FAILURES). */
static void sasl_failure(struct c2s *cs, const char *cond, bool counts, const char *scram_error)
{
    char buf[320];
    int n = snprintf(buf, sizeof(buf), "<failure xmlns='" NS_SASL "'><%s/>%s%s%s</failure>", cond,
                     scram_error ? "<text xml:lang='en'>" : "", scram_error ? scram_error : "",
                     scram_error ? "</text>" : "");
    c2s_write(cs, buf, (size_t)n);
    if (counts) {
        if (cs->src_hash && !source_take(cs->src_hash - 1)) {
            SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, source_rate_limited, 1);
            SZ_DEBUG("msg=\"source over its rate after a failed login\" conn=%llu",
                     (unsigned long long)cs->c->id);
            stream_error(cs, "policy-violation");
        } else if (sz_sasl_count_failure(&cs->failures, SZ_C2S_MAX_AUTH_FAILURES)) {
            stream_error(cs, "policy-violation");
        }
    } else if (sz_sasl_count_failure(&cs->soft_failures, SZ_C2S_MAX_SOFT_FAILURES)) {
        stream_error(cs, "policy-violation");
    }
}

static void send_b64_element(struct c2s *cs, const char *name, const uint8_t *data, size_t len)
{
    size_t cap = sz_sasl_b64_encoded_len(len) + 96;
    char *buf = sz_malloc(cap);
    int n = snprintf(buf, cap, "<%s xmlns='" NS_SASL "'>", name);
    if (len)
        n += (int)sz_sasl_b64_encode(data, len, buf + n);
    n += snprintf(buf + n, cap - (size_t)n, "</%s>", name);
    c2s_write(cs, buf, (size_t)n);
    sz_free(buf);
}

static void sasl_result(struct c2s *cs, enum sz_sasl_result res, const sz_sasl_out_t *out)
{
    switch (res) {
    case SZ_SASL_CONTINUE:
        send_b64_element(cs, "challenge", out->data, out->len);
        return;
    case SZ_SASL_NEED_CREDS:
        lookup(cs, out);
        return;
    case SZ_SASL_SUCCESS: {
        char jid[SZ_JID_INPUT_MAX_BYTES + 1];
        int n = snprintf(jid, sizeof(jid), "%.*s@%s", (int)out->user_len, out->user,
                         conf->hosts[cs->host].domain);
        sz_jid_t *j = NULL;
        if (n <= 0 || (size_t)n >= sizeof(jid) || sz_jid_parse(jid, (size_t)n, &j) < 0) {
            stream_error(cs, "internal-server-error");
            return;
        }
        send_b64_element(cs, "success", out->data, out->len);
        sz_sasl_free(cs->sasl);
        cs->sasl = NULL;
        sz_free(cs->cb_unique); /* channel binding is for SASL only */
        cs->cb_unique = NULL;
        cs->authed = j;
        cs->flags |= F_AUTHED;
        uncount_source(cs);
        /* RFC 6120 §6.4.6: the client restarts the stream. */
        cs->stage = ST_HEADER;
        cs->flags &= (uint16_t)~F_HEADER_SENT;
        sz_xml_parser_reset(&cs->xp);
        sz_xml_limits_t lim = {SZ_CONF_LIMIT(conf, max_stanza_bytes),
                               (uint16_t)SZ_CONF_LIMIT(conf, max_depth),
                               (uint16_t)SZ_CONF_LIMIT(conf, max_attrs)};
        sz_xml_parser_set_limits(&cs->xp, &lim);
        SZ_DEBUG("msg=\"authenticated\" conn=%llu jid=%s", (unsigned long long)cs->c->id, jid);
        /* Every resource of a user lives on its home reactor (DESIGN §2).
         * <success/> is queued and goes out from there. */
        sz_reactor_t *r = sz_conn_reactor(cs->c);
        unsigned home = sz_router_home(j, r->n);
        if (home != r->id)
            sz_conn_move(cs->c, home);
        return;
    }
    case SZ_SASL_FAILURE: {
        /* <out> points into the exchange: take what is needed first. */
        bool counts = out->counts;
        const char *e = out->scram_error; /* static */
        SZ_DEBUG("msg=\"sasl failure\" conn=%llu condition=%s detail=\"%s\"",
                 (unsigned long long)cs->c->id, sz_sasl_err_name(out->err),
                 out->text ? out->text : "");
        sz_sasl_free(cs->sasl);
        cs->sasl = NULL;
        sasl_failure(cs, sz_sasl_err_name(out->err), counts, e);
        return;
    }
    }
}

static bool name_is(const char *span, const sz_xml_head_t *h, const char *name)
{
    return h->name.len == strlen(name) && memcmp(span + h->name.off, name, h->name.len) == 0;
}

static void on_sasl(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
    size_t tl = 0;
    const char *text = root ? sz_xml_text(root, &tl) : NULL;
    sz_sasl_out_t out;
    enum sz_sasl_result r;
    if (!root) {
        stream_error(cs, "bad-format");
        goto done;
    }
    if (name_is(span, h, "auth")) {
        if (cs->sasl || (cs->flags & F_LOOKUP)) {
            stream_error(cs, "policy-violation"); /* a second exchange mid-way */
            goto done;
        }
        if (listener(cs)->kind == SZ_LISTEN_C2S && listener(cs)->tls == SZ_TLS_STARTTLS_REQUIRED &&
            !(cs->flags & F_TLS)) {
            sasl_failure(cs, "encryption-required", false, NULL);
            goto done;
        }
        size_t ml = 0;
        const char *mech = sz_xml_attr(root, "mechanism", NULL, &ml);
        uint8_t *ir = NULL;
        ptrdiff_t irlen = 0;
        if (tl) {
            ir = sz_malloc(sz_sasl_b64_decoded_max(tl) + 1);
            irlen = sz_sasl_text_decode(text, tl, ir, sz_sasl_b64_decoded_max(tl) + 1);
            if (irlen < 0) {
                sz_free(ir);
                sasl_failure(cs, "incorrect-encoding", false, NULL);
                goto done;
            }
        }
        uint8_t cb_exp[SZ_TLS_CB_EXPORTER_BYTES], cb_ep[64], cb_un[SZ_TLS_CB_UNIQUE_MAX_BYTES];
        size_t cb_ep_len = sizeof(cb_ep), cb_un_len = sizeof(cb_un);
        unsigned f = sasl_flags(cs);
        sz_sasl_opts_t o = {.flags = f, .domain = conf->hosts[cs->host].domain,
                            .domain_len = strlen(conf->hosts[cs->host].domain),
                            .fake_iterations = SZ_CONF_LIMIT(conf, scram_iterations)};
        if (conf->node.secret) {
            o.secret = (const uint8_t *)conf->node.secret;
            o.secret_len = strlen(conf->node.secret);
        }
        /* The binding data is read only by a -PLUS exchange: other
         * mechanisms need the flags alone (the downgrade check), so the
         * exporter (an HKDF) is derived only for those. */
        bool plus = mech && ml > 5 && memcmp(mech + ml - 5, "-PLUS", 5) == 0;
        if (plus && (f & SZ_SASL_F_CB_EXPORTER) && sz_tls_cb_exporter(cs->tls, cb_exp) == 0)
            o.cb_exporter = cb_exp;
        if ((f & SZ_SASL_F_CB_ENDPOINT) &&
            sz_tls_cb_server_end_point(cs->tls, cb_ep, &cb_ep_len) == 0) {
            o.cb_endpoint = cb_ep;
            o.cb_endpoint_len = cb_ep_len;
        }
        if (plus && (f & SZ_SASL_F_CB_UNIQUE)) {
            if (cs->cb_unique) {
                o.cb_unique = cs->cb_unique + 1;
                o.cb_unique_len = cs->cb_unique[0];
            } else if (sz_tls_cb_unique(cs->tls, cb_un, &cb_un_len) == 0) {
                o.cb_unique = cb_un;
                o.cb_unique_len = cb_un_len;
            }
        }
        cs->sasl = sz_sasl_new(&o);
        r = sz_sasl_start(cs->sasl, mech ? mech : "", mech ? ml : 0, tl ? ir : NULL,
                          (size_t)irlen, &out);
        sz_free(ir);
        sasl_result(cs, r, &out);
    } else if (name_is(span, h, "response") || name_is(span, h, "abort")) {
        if (!cs->sasl) {
            stream_error(cs, "not-authorized"); /* RFC 6120 §6.4: no exchange running */
            goto done;
        }
        if (cs->flags & F_LOOKUP) {
            /* The exchange is held by a lookup or a worker: answer when it
             * comes back (see spoke_out_of_turn()). */
            cs->flags |= F_SPOKE;
            goto done;
        }
        if (name_is(span, h, "abort")) {
            r = sz_sasl_fail(cs->sasl, SZ_SASL_ERR_ABORTED, &out);
        } else {
            uint8_t *resp = sz_malloc(sz_sasl_b64_decoded_max(tl) + 1);
            ptrdiff_t rl = sz_sasl_text_decode(text ? text : "", tl, resp,
                                               sz_sasl_b64_decoded_max(tl) + 1);
            r = rl < 0 ? sz_sasl_fail(cs->sasl, SZ_SASL_ERR_INCORRECT_ENCODING, &out)
                       : sz_sasl_step(cs->sasl, resp, (size_t)rl, &out);
            sz_free(resp);
        }
        sasl_result(cs, r, &out);
    } else {
        stream_error(cs, "unsupported-stanza-type");
    }
done:
    sz_xml_tree_free(t);
}

/* ---- stream management (XEP-0198) ------------------------------------------ */

/* True (and the stream ended with policy-violation) when the client
 * already holds as many unacknowledged stanzas as allowed: one that never
 * acknowledges must not make the queue grow without bound. */
static bool sm_full(struct c2s *cs)
{
    if (!cs->sm || sz_sm_unacked(cs->sm) < SZ_CONF_LIMIT(conf, max_unacked_stanzas))
        return false;
    stream_error(cs, "policy-violation");
    return true;
}

/* Asks the client for an ack (XEP-0198 §4). Written past the output cap's
 * check, like the stanza it follows. */
static void sm_request(struct c2s *cs)
{
    static const char r[] = "<r xmlns='" NS_SM "'/>";
    raw_write(cs, r, sizeof(r) - 1);
}

/* Counts a stanza just written to the client (<st>: a reference to queue
 * until acknowledged, or NULL for one made for this client alone); asks
 * for an ack every SZ_SM_REQUEST_AFTER stanzas. */
static void sm_sent(struct c2s *cs, sz_stanza_t *st)
{
    if (!cs->sm) {
        if (st)
            sz_stanza_unref(st);
        return;
    }
    if (sz_sm_sent(cs->sm, st) > 0)
        sm_request(cs);
}

static void sm_failed(struct c2s *cs, const char *cond)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf),
                     "<failed xmlns='" NS_SM "'><%s xmlns='" NS_STANZAS "'/></failed>", cond);
    c2s_write(cs, buf, (size_t)n);
}

/* A top-level element in urn:xmpp:sm:3 after authentication. Without
 * resumption: <enabled/> never carries 'resume' or 'id' (XEP-0198 §5). */
static void on_sm(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    char buf[96];
    if (name_is(span, h, "enable")) {
        /* §3: only after resource binding, and once. */
        if (!(cs->flags & F_BOUND) || cs->sm) {
            sm_failed(cs, "unexpected-request");
            return;
        }
        cs->sm = sz_sm_new();
        SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, sm_enabled, 1);
        c2s_writes(cs, "<enabled xmlns='" NS_SM "'/>");
    } else if (name_is(span, h, "resume")) {
        /* §5: no resumable sessions here; a bound stream cannot resume. */
        sm_failed(cs, (cs->flags & F_BOUND) ? "unexpected-request" : "feature-not-implemented");
    } else if (name_is(span, h, "r") && cs->sm) {
        int n = snprintf(buf, sizeof(buf), "<a xmlns='" NS_SM "' h='%u'/>", sz_sm_h(cs->sm));
        c2s_write(cs, buf, (size_t)n);
    } else if (name_is(span, h, "a") && cs->sm) {
        sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
        const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
        uint32_t acked;
        if (!root || !sz_xml_attr_u32(root, "h", &acked)) {
            stream_error(cs, "invalid-xml");
        } else {
            int ret = sz_sm_acked(cs->sm, acked);
            if (ret < 0) {
                /* §4: an 'h' above what was sent ends the stream. */
                char app[160];
                snprintf(app, sizeof(app),
                         "<handled-count-too-high xmlns='" NS_SM "' h='%u' send-count='%u'/>",
                         acked, sz_sm_sent_count(cs->sm));
                stream_error_app(cs, "undefined-condition", app);
            } else if (ret > 0) {
                sm_request(cs);
            }
        }
        sz_xml_tree_free(t);
    } else {
        /* <r/>, <a/> before <enable/>, or an unknown element. */
        stream_error(cs, "unsupported-stanza-type");
    }
}

static void undelivered(void *ctx, sz_stanza_t *st)
{
    sz_reactor_t *r = ctx;
    SZ_STAT_ADD(&r->stats, sm_unacked, 1);
    sz_router_undelivered(r, st);
}

/* ---- binding ------------------------------------------------------------- */

/* An iq result or error for request id <id> (decoded; NULL: none), built
 * with the escaping builder. <inner> is trusted serialized XML or NULL;
 * <etype>/<cond> make it an error. */
static void answer(struct c2s *cs, const char *kind, const char *id, size_t idlen,
                   const char *inner, const char *etype, const char *cond)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 256);
    sz_xb_start(&xb, kind, NULL);
    sz_xb_attr(&xb, "type", cond ? "error" : "result");
    if (id)
        sz_xb_attr_n(&xb, "id", id, idlen);
    if (inner)
        sz_xb_raw(&xb, inner, strlen(inner));
    if (cond) {
        sz_xb_start(&xb, "error", NULL);
        sz_xb_attr(&xb, "type", etype);
        sz_xb_empty(&xb, cond, "urn:ietf:params:xml:ns:xmpp-stanzas");
        sz_xb_end(&xb);
    }
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) == 0) {
        if (!sm_full(cs) && c2s_write(cs, xml, len) >= 0)
            sm_sent(cs, NULL);
        sz_free(xml);
    }
}

static void iq_answer(struct c2s *cs, const char *id, size_t idlen, const char *inner,
                      const char *etype, const char *cond)
{
    answer(cs, "iq", id, idlen, inner, etype, cond);
}

/* A stanza error for <st> (any kind) straight to the client. */
static void stanza_error(struct c2s *cs, const sz_stanza_t *st, const char *type, const char *cond)
{
    static const char *const kinds[] = {"message", "presence", "iq"};
    char id[1024];
    ssize_t il = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    enum sz_stanza_kind k = sz_stanza_kind(st);
    answer(cs, kinds[k <= SZ_STANZA_IQ ? k : SZ_STANZA_IQ], il >= 0 ? id : NULL,
           il >= 0 ? (size_t)il : 0, NULL, type, cond);
}

static void iq_reply(struct c2s *cs, const sz_stanza_t *st, const char *inner)
{
    char id[1024];
    ssize_t il = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    iq_answer(cs, il >= 0 ? id : NULL, il >= 0 ? (size_t)il : 0, inner, NULL, NULL);
}

static void iq_error(struct c2s *cs, const sz_stanza_t *st, const char *type, const char *cond)
{
    char id[1024];
    ssize_t il = sz_stanza_attr(st, SZ_XML_A_ID, id, sizeof(id));
    iq_answer(cs, il >= 0 ? id : NULL, il >= 0 ? (size_t)il : 0, NULL, type, cond);
}

static void bind_resource(struct c2s *cs, sz_stanza_t *st, const sz_xml_node_t *bind)
{
    sz_reactor_t *r = sz_conn_reactor(cs->c);
    if (sz_router_home(cs->authed, r->n) != r->id) {
        /* The move to the home reactor failed (no free slot there). */
        stream_error(cs, "resource-constraint");
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
        iq_error(cs, st, "modify", "bad-request"); /* RFC 6120 §7.7.2.1 */
        return;
    }
    cs->sess.jid = full;
    cs->sess.ops = &session_ops;
    sz_session_t *old = sz_router_bind(r, &cs->sess);
    cs->flags |= F_BOUND;
    sz_jid_free(cs->authed);
    cs->authed = NULL;
    watch_idle(cs);
    if (old)
        old->ops->kick(old, "conflict"); /* RFC 6120 §7.7.2.2: the new one wins */
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
            stream_error(cs, "invalid-from");
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
                stanza_error(cs, st, "modify", "jid-malformed");
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
    if (e)
        iq_answer(cs, id, idlen, NULL, sz_stanza_err_type_name(sz_stanza_err_default_type(e)),
                  sz_stanza_err_name(e));
    else
        iq_answer(cs, id, idlen, inner, NULL, NULL);
}

static bool pre_hold(void *p)
{
    struct c2s *cs = p;
    if (cs->flags & F_LOOKUP)
        return false;
    cs->flags |= F_LOOKUP;
    pending++;
    return true;
}

static void pre_release(void *p)
{
    struct c2s *cs = p;
    cs->flags &= (uint16_t)~F_LOOKUP;
    pending--;
    if (cs->flags & F_ORPHAN)
        free_state(cs);
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
        stream_error(cs, "not-authorized");
        return;
    }
    if (!get && !set) {
        iq_error(cs, st, "modify", "bad-request");
        return;
    }
    const sz_conf_listen_t *l = listener(cs);
    sz_preauth_t pre = {cs, &pre_ops, cs->src_hash,
                        (cs->flags & F_TLS) || l->kind != SZ_LISTEN_C2S ||
                            l->tls != SZ_TLS_STARTTLS_REQUIRED};
    sz_hook_ctx_t ctx = {.r = sz_conn_reactor(cs->c), .st = st, .host = cs->host,
                         .kind = SZ_STANZA_IQ, .type = get ? "get" : "set", .pre = &pre};
    int ret = fn(&ctx, payload, set);
    if (ret == SZ_PASS) {
        stream_error(cs, "not-authorized");
    } else if (ret < 0) {
        enum sz_stanza_err e = (enum sz_stanza_err)-ret;
        iq_error(cs, st, sz_stanza_err_type_name(sz_stanza_err_default_type(e)),
                 sz_stanza_err_name(e));
    }
}

static int on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct c2s *cs = ud;
    if (cs->stage != ST_OPEN)
        return 1;
    /* STARTTLS (RFC 6120 §5.4.2). */
    if (h->ns_id == SZ_XML_NS_TLS && name_is(span, h, "starttls")) {
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
            on_sasl(cs, span, len, h);
            return cs->stage == ST_OPEN ? 0 : 1;
        }
        /* XEP-0077: registration is the one stanza allowed before
         * authentication, through the module that serves it. */
        if (h->ns_id == SZ_XML_NS_CLIENT && name_is(span, h, "iq")) {
            sz_stanza_t *st = sz_stanza_new(span, len, h);
            on_preauth_iq(cs, st);
            sz_stanza_unref(st);
            return cs->stage == ST_OPEN ? 0 : 1;
        }
        /* RFC 6120 §4.9.3.12: nothing else before authentication. */
        stream_error(cs, "not-authorized");
        return 1;
    }
    if (h->ns_id == SZ_XML_NS_SM) {
        on_sm(cs, span, len, h);
        return cs->stage == ST_OPEN ? 0 : 1;
    }
    if (h->ns_id != SZ_XML_NS_CLIENT || h->name.len < 2 ||
        !(name_is(span, h, "message") || name_is(span, h, "presence") || name_is(span, h, "iq"))) {
        stream_error(cs, "unsupported-stanza-type");
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
            stream_error(cs, "not-authorized");
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
            stream_error(cs, sz_stream_err_name((enum sz_stream_err)-k));
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
    if (!conf->tls.unique_on_tls13 || n == 0 || n > UINT8_MAX || cs->cb_unique)
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
    sz_xml_limits_t lim = {SZ_C2S_PREAUTH_STANZA_BYTES, (uint16_t)SZ_CONF_LIMIT(conf, max_depth),
                           (uint16_t)SZ_CONF_LIMIT(conf, max_attrs)};
    if (lim.max_stanza_bytes > SZ_CONF_LIMIT(conf, max_stanza_bytes))
        lim.max_stanza_bytes = SZ_CONF_LIMIT(conf, max_stanza_bytes);
    sz_xml_parser_init(&cs->xp, &lim, &xml_ops, cs);
    sz_xml_parser_set_content_ns(&cs->xp, 1u << SZ_XML_NS_CLIENT);
    cs->opened = clock32();
    arm_handshake(cs);
    if (listener(cs)->kind == SZ_LISTEN_C2S_TLS) {
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
        stream_error(cs, "connection-timeout");
}

static void c2s_shutdown(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    if (cs->stage == ST_CLOSED || (cs->tls && !(cs->flags & F_TLS)))
        sz_conn_close(c, false);
    else
        stream_error(cs, "system-shutdown");
}

/* The peer closed TCP or the connection broke (a reset): no stream end
 * can follow, so the session ends now. */
static void c2s_eof(sz_conn_t *c)
{
    struct c2s *cs = c->pstate;
    cs->stage = ST_CLOSED;
    sz_conn_close(c, false);
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
    uncount_source(cs);
    if (cs->flags & F_UNBIND_LATER)
        forget_unbind(cs);
    if (cs->flags & F_BOUND)
        unbind_now(cs); /* also handles what XEP-0198 left unacknowledged */
    if (cs->sm) {
        sz_sm_free(cs->sm, undelivered, sz_conn_reactor(c));
        cs->sm = NULL;
    }
    if (cs->flags & F_LOOKUP) {
        /* A lookup or a worker job still holds this state (and maybe the
         * SASL exchange): its completion frees everything. */
        cs->flags |= F_ORPHAN;
        cs->c = NULL;
        return;
    }
    free_state(cs);
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
    if (!source_take(slot)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, source_rate_limited, 1);
        SZ_DEBUG("msg=\"source over its connection rate\" conn=%llu", (unsigned long long)c->id);
        stream_error(cs, "policy-violation");
        return;
    }
    cs->src = slot + 1;
    uint32_t n = __atomic_add_fetch(&unauth_by_src[slot], 1, __ATOMIC_RELAXED);
    if (n > SZ_CONF_LIMIT(conf, max_unauth_per_source)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, source_limited, 1);
        SZ_DEBUG("msg=\"source over its unauthenticated connections\" conn=%llu",
                 (unsigned long long)c->id);
        stream_error(cs, "policy-violation");
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
    size_t len;
    const char *raw = sz_stanza_raw(st, &len);
    bool had_sm = cs->sm != NULL;
    delivering++;
    /* A stream already ending, or a client that does not read (policy-
     * violation once its queue would pass the cap): not delivered. With
     * stream management the sender learns it (XEP-0198 §4); without, the
     * stanza is lost as with any broken TCP connection. */
    if (cs->stage == ST_CLOSED || !cs->c || over_cap(cs, len) || sm_full(cs)) {
        if (had_sm)
            undelivered(sz_reactor_self(), st);
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
        sm_sent(cs, st); /* keeps the reference until acknowledged */
    } else {
        sz_stanza_unref(st);
    }
    delivering--;
}

static void sess_kick(sz_session_t *s, const char *cond)
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
    }
    stream_error(cs, cond);
}

static const sz_session_ops_t session_ops = {sess_deliver, sess_kick};
