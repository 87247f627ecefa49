/*
 * Client streams (RFC 6120): the stream machine behind the c2s and c2s-tls
 * listeners — stream headers and features, STARTTLS and Direct TLS,
 * SASL, resource binding, then stanzas to the router. After SASL succeeds
 * the connection moves to the user's home reactor, where it is bound.
 */
#ifndef SZ_NET_C2S_H
#define SZ_NET_C2S_H

#include "core/conf.h"
#include "net/conn.h"

#include "core/jid.h"
#include "net/scram.h"

struct sz_tls_ctx;

/* Account credential lookup, injected by main.c so that net/ does not
 * depend on storage/ (DESIGN §7). Must complete <cb>(<arg>, res, creds) on
 * the calling reactor, later (never before returning 0); res is 0, -ENOENT
 * (no such account) or another -errno. Returns 0 or -errno (then <cb> is
 * never called). */
typedef void (*sz_c2s_creds_cb)(void *arg, int res, const sz_scram_creds_t *creds);
typedef void (*sz_c2s_done_cb)(void *arg, int res);
typedef struct sz_c2s_accounts {
    /* Credentials of <jid>: res 0, -ENOENT or -errno. */
    int (*get_creds)(void *ctx, const sz_jid_t *jid, sz_c2s_creds_cb cb, void *arg);
    /* Run <fn>(<arg>) off the reactor, then <cb>(<arg>, 0) back on it:
     * for key derivation (PBKDF2), which would stall every other client
     * of the reactor. NULL: such work runs inline. */
    int (*offload)(void *ctx, void (*fn)(void *arg), sz_c2s_done_cb cb, void *arg);
    void *ctx;
} sz_c2s_accounts_t;

/** The protocol of c2s and c2s-tls listeners. */
extern const sz_proto_t sz_proto_c2s;

/**
 * Main thread, before reactors start. <conf> must outlive the node;
 * <accounts> (copied; NULL: every login fails with temporary-auth-failure)
 * reaches the account store; <tls> is the certificate context (NULL: no TLS
 * is offered and c2s-tls connections are closed). Takes a reference on
 * <tls>.
 */
void sz_c2s_configure(const sz_conf_t *conf, const sz_c2s_accounts_t *accounts,
                      struct sz_tls_ctx *tls);

/** Main thread (SIGHUP). New connections use <tls>; live ones keep theirs. */
void sz_c2s_set_tls(struct sz_tls_ctx *tls);

/** Reactor thread. Credential lookups this thread started that have not
 *  completed: the reactor must not exit before they have. */
unsigned sz_c2s_pending(void);

/** Reactor thread <r>, when the node stops: every session of <r> that
 *  waits detached for a XEP-0198 resumption ends now (unavailable
 *  presence, its queue undelivered). */
void sz_c2s_stop(sz_reactor_t *r);

/** Main thread, after the node stopped: drops the TLS context reference. */
void sz_c2s_release(void);

/** Stanza size limit before authentication. */
#define SZ_C2S_PREAUTH_STANZA_BYTES 16384
/** SASL failures about the credentials (a wrong password or proof)
 *  allowed per connection before policy-violation (RFC 6120 §6.4.5). */
#define SZ_C2S_MAX_AUTH_FAILURES 3
/** Other SASL failures (mechanism or channel-binding negotiation, bad
 *  encoding or syntax, abort) allowed per connection before
 *  policy-violation: enough to walk down any client's mechanism list. */
#define SZ_C2S_MAX_SOFT_FAILURES 16

#endif
