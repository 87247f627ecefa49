/*
 * Private to the client stream machine (STYLE §3, the `<x>_types.h` idea):
 * the per-connection struct c2s and the helpers its three files share.
 * net/c2s.c is the stream itself (output, header and features, binding,
 * stanzas, input, connection callbacks, session ops), net/c2s_sasl.c the
 * SASL exchange, net/c2s_sm.c XEP-0198. Nothing outside those files
 * includes this header.
 *
 * Threads: everything here runs on the connection's current reactor, the
 * accepting one until SASL succeeds, then the user's home reactor. The
 * globals are written by the main thread before reactors start.
 */
#ifndef SZ_NET_C2S_INT_H
#define SZ_NET_C2S_INT_H

#include "net/c2s.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/router.h"
#include "core/stanza.h"
#include "core/timer.h"
#include "core/xml/errors.h"
#include "core/xml/parser.h"
#include "net/sasl.h"
#include "net/sm.h"
#include "net/tls.h"

#define NS_SM "urn:xmpp:sm:3"

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
#define F_DETACHED    0x200 /* XEP-0198 §5: the connection broke, the session stays bound
                             * and resumable (net/c2s_sm.c); c is NULL once it closed */

/* What a detached session keeps instead of its parser, which is freed
 * with the connection (the two share storage). */
struct c2s_detached {
    sz_timer_t timer;       /* limits.sm_resume_timeout_s */
    struct c2s *next;       /* this reactor's detached sessions */
    struct c2s **pprev;
};

/* One per connection (c->pstate), allocated at accept. A storage lookup in
 * flight (F_LOOKUP) keeps it alive after the connection closed (F_ORPHAN,
 * c NULL): the lookup's completion frees it with c2s_free_state(). */
struct c2s {
    union {
        sz_xml_parser_t xp;      /* 64; while the connection lives */
        struct c2s_detached det; /* 48; F_DETACHED with c NULL */
    };
    sz_session_t sess;   /* 80; sess.jid is the full JID once bound */
    sz_conn_t *c;
    sz_tls_t *tls;
    sz_sasl_t *sasl;
    sz_jid_t *authed;    /* bare JID after SASL, until bound */
    uint8_t stage;
    uint8_t host;        /* index in c2s_conf->hosts */
    uint16_t flags;
    uint8_t failures;    /* SASL failures about the credentials */
    uint8_t soft_failures; /* other SASL failures (negotiation, syntax, abort) */
    uint32_t src;        /* 1 + source slot while counted as unauthenticated, else 0 */
    uint32_t src_hash;   /* 1 + source slot once known (for registration limits) */
    uint32_t last_in;    /* reactor clock (ms, low 32 bits) of the last input */
    uint32_t opened;     /* reactor clock (ms, low 32 bits) at connect: the pre-auth deadlines */
    sz_sm_t *sm;         /* XEP-0198 state once enabled, else NULL */
    struct c2s_ackwait *ackwait; /* XEP-0198 <a/> waiting for storage commits (c2s_sm.c) */
    /* TLS 1.3 tls-unique as OpenSSL peers compute it (sz_tls_io_t.finished):
     * length byte, then the bytes; from the handshake until authenticated,
     * only with tls.unique_on_tls13. */
    uint8_t *cb_unique;
};

/* ---- net/c2s.c ----------------------------------------------------------- */

/* The configuration (sz_c2s_configure); set by the main thread before
 * reactors start, read-only after. */
extern const sz_conf_t *c2s_conf;
/* The account store (sz_c2s_configure); every member NULL without one. */
extern sz_c2s_accounts_t c2s_accounts;
/* Lookups and jobs in flight on this reactor (sz_c2s_pending); whoever sets
 * F_LOOKUP counts one, whoever clears it uncounts it. */
extern __thread unsigned c2s_pending;

/** The listener that accepted <cs>'s connection. Reactor thread. */
const sz_conf_listen_t *c2s_listener(const struct c2s *cs);

/** Reactor thread. Frees <cs> and everything it holds, once neither the
 *  connection nor a lookup uses it. */
void c2s_free_state(struct c2s *cs);

/** Reactor thread. Takes one token from the rate budget of source slot
 *  <slot> (a new connection, a failed login); false when none is left. */
bool c2s_source_take(uint32_t slot);

/** Reactor thread. <cs> stops counting as an unauthenticated connection
 *  of its source (authenticated or closed). Idempotent. */
void c2s_uncount_source(struct c2s *cs);

/** Reactor thread. Writes <n> bytes at <p> (copied) to the client, through
 *  TLS once it is up, bypassing the output cap. Returns 0 or -errno. */
int c2s_raw_write(struct c2s *cs, const void *p, size_t n);

/** Reactor thread. Like c2s_raw_write(), but ends the stream with
 *  policy-violation and returns -ENOBUFS when the output cap would be
 *  passed (the one place it is enforced for c2s). */
int c2s_write(struct c2s *cs, const void *p, size_t n);

/** Reactor thread. c2s_write() of the NUL-terminated <s>. */
void c2s_writes(struct c2s *cs, const char *s);

/**
 * Reactor thread. Ends the stream with <stream:error> <cond> (RFC 6120
 * §4.9) and the closing tag, then closes after the output is flushed and
 * ends a bound session. <app> (trusted XML, short; NULL: none) is an
 * application-specific condition (§4.9.4). No-op once the stream is closed.
 */
void c2s_stream_error_app(struct c2s *cs, enum sz_stream_err cond, const char *app);

/** Reactor thread. c2s_stream_error_app() without an application condition. */
void c2s_stream_error(struct c2s *cs, enum sz_stream_err cond);

/** Reactor thread. Ends the bound session of <cs> now, or at the end of
 *  the reactor iteration while a delivery runs (the router may be looping
 *  over the user's sessions). A detached session whose connection is gone
 *  is freed with it. */
void c2s_end_session(struct c2s *cs);

/**
 * Home reactor of <bare>. The bound session of <bare> that is resumable
 * with token <tok> (SZ_SM_TOKEN_BYTES) and not ending, or NULL. Only
 * sessions of <bare> are searched: a token is bound to its account.
 */
struct c2s *c2s_find_resumable(sz_reactor_t *r, const sz_jid_t *bare, const uint8_t *tok);

/**
 * Home reactor. Resumption (XEP-0198 §5): <cs> (authenticated as the same
 * account, not bound) takes over the session of <old>: the full JID, the
 * place in the router, the presence and the XEP-0198 state. <old>'s
 * transport, if it still looks alive, gets <conflict/> and is closed; a
 * detached <old> is freed. Writes nothing to <cs>.
 */
void c2s_take_over(struct c2s *cs, struct c2s *old);

/** Reactor thread. Writes <st> (consumed) to the client of <cs> as the
 *  router would, counted for XEP-0198. */
void c2s_deliver(struct c2s *cs, sz_stanza_t *st);

/** True when the top-level element of <span> with header <h> is named <name>. */
static inline bool c2s_name_is(const char *span, const sz_xml_head_t *h, const char *name)
{
    return h->name.len == strlen(name) && memcmp(span + h->name.off, name, h->name.len) == 0;
}

/* ---- net/c2s_sasl.c ------------------------------------------------------ */

/** Reactor thread. The SZ_SASL_F_* flags of <cs>'s stream: TLS, which
 *  channel bindings it can give, PLAIN without TLS. */
unsigned c2s_sasl_flags(const struct c2s *cs);

/**
 * Reactor thread. A top-level element in the SASL namespace before
 * authentication (<span>/<len>, header <h>, valid during the call only).
 * May end the stream, start a lookup (F_LOOKUP) or, on success, restart
 * the stream and hand the connection to the user's home reactor.
 */
void c2s_on_sasl(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h);

/* ---- net/c2s_sm.c -------------------------------------------------------- */

/** Reactor thread. True (and the stream ended with policy-violation) when
 *  the client holds as many unacknowledged stanzas as allowed. */
bool c2s_sm_full(struct c2s *cs);

/** Reactor thread. Counts a stanza just written to the client. Consumes
 *  <st> (kept until acknowledged; NULL for one made for this client alone)
 *  and asks for an ack now and then. Without XEP-0198, just drops <st>. */
void c2s_sm_sent(struct c2s *cs, sz_stanza_t *st);

/** Reactor thread. A top-level element in urn:xmpp:sm:3 after
 *  authentication (<span>/<len>, header <h>, valid during the call only). */
void c2s_on_sm(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h);

/** Reactor thread. The connection of bound <cs> broke (a TCP drop, or no
 *  answer to the idle ping; not a stream end): when its stream is
 *  resumable the session detaches (F_DETACHED: closing the stream no
 *  longer ends it) and true is returned; false means it ends as usual. */
bool c2s_sm_detach(struct c2s *cs);

/** Reactor thread. The connection of detached <cs> is gone (c2s_close):
 *  its parser state is freed by the caller; this starts the resumption
 *  deadline and lists <cs> as detached on this reactor. */
void c2s_sm_detached(struct c2s *cs);

/** Reactor thread. <cs> is detached: <st> (consumed) waits in its queue
 *  for a resumption; past limits.max_unacked_stanzas the session ends as on
 *  the deadline, and <st> with it. */
void c2s_sm_hold(struct c2s *cs, sz_stanza_t *st);

/** Reactor thread. <cs> is no longer detached (its session ended or moved
 *  to a resuming stream): clears F_DETACHED (no-op without it) and, when
 *  its connection is gone, frees <cs> (stops its deadline, unlists it).
 *  Returns true when <cs> was freed. */
bool c2s_sm_undetach(struct c2s *cs);
/** Reactor thread, when <cs> is freed: an <a/> still waiting for storage
 *  commits is never written. */
void c2s_sm_ackwait_drop(struct c2s *cs);

/** Reactor thread <ctx> (an sz_reactor_t *, the calling one), as the
 *  sz_sm_free() callback: <st> (consumed) was never acknowledged, so it
 *  goes back to the router as undelivered. */
void c2s_undelivered(void *ctx, sz_stanza_t *st);

#endif
