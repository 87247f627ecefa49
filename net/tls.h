/*
 * TLS for client connections (BoringSSL), transport-agnostic: ciphertext
 * goes in through sz_tls_input, plaintext comes out through a callback, and
 * every byte to send (handshake flights, alerts, tickets, encrypted data)
 * leaves through another callback. No socket, no io_uring, no buffer of the
 * transport is kept, so c2s feeds it straight from proto->on_data and sends
 * with sz_conn_send.
 *
 * Memory (DESIGN §1, §3): an idle connection is one SSL object (handshake
 * configuration shed), its two record-protection contexts, SNI and ALPN
 * strings, plus a 32-byte sz_tls_t. There is no per-connection BIO (one
 * BIO per thread serves every connection), no read or write buffer while
 * idle (BoringSSL holds a partial record only until it is complete, and a
 * record being written only until io->cipher took it), nothing queued
 * (tickets and KeyUpdate answers are sent before sz_tls_input returns), and
 * plaintext is decrypted into one per-thread 16 KiB scratch buffer.
 * Measured by tests/unit/net/test_tls.c (memory_idle), TLS 1.3, P-256
 * certificate, AES-128-GCM: 2512 bytes in 8 BoringSSL blocks, about
 * 2.75 KB with BoringSSL's size prefixes in jemalloc size classes,
 * sz_tls_t included.
 *
 * Call sequence, STARTTLS (c2s listener):
 *   1. client sends <starttls/>; c2s drops any bytes that follow it in the
 *      same read (command injection), queues <proceed/>, then
 *      t = sz_tls_new(ctx, SZ_TLS_STARTTLS);
 *   2. on_data: r = sz_tls_input(t, p, n, &io, c); plaintext arrives via
 *      io.plain, bytes to send via io.cipher (sz_conn_send). io.handshake
 *      runs once, before the first plaintext: restart the stream there
 *      (fresh parser, features again); r also has SZ_TLS_HANDSHAKE_DONE.
 *   3. output: sz_tls_output(t, p, n, &io, c) instead of sz_conn_send.
 *   4. r < 0: log sz_tls_error(t), close with flush (a fatal alert may be
 *      queued). r & SZ_TLS_PEER_CLOSED: answer </stream:stream> through
 *      sz_tls_output, sz_tls_shutdown, close with flush.
 *   5. on_close: sz_tls_free(t).
 * Direct TLS (XEP-0368, c2s-tls listener): the same from on_open with
 *   t = sz_tls_new(ctx, SZ_TLS_DIRECT); the stream starts once
 *   io.handshake ran; sz_tls_alpn(t) is "xmpp-client" or NULL.
 *
 * Threads: a sz_tls_ctx_t is shared by every reactor (refcount is atomic);
 * a sz_tls_t is touched by one thread at a time, its connection's owner,
 * and may move to another reactor with its connection between calls.
 */
#ifndef SZ_NET_TLS_H
#define SZ_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"

typedef struct sz_tls_ctx sz_tls_ctx_t;
typedef struct sz_tls sz_tls_t;

/* Largest tls-server-end-point value (SHA-512). */
#define SZ_TLS_CB_MAX_BYTES 64
/* tls-exporter length (RFC 9266). */
#define SZ_TLS_CB_EXPORTER_BYTES 32
/* Largest tls-unique value: a Finished verify_data (12 bytes in TLS 1.2,
 * the handshake hash length, at most SHA-384's 48, in TLS 1.3). */
#define SZ_TLS_CB_UNIQUE_MAX_BYTES 64
/* Per-thread plaintext scratch buffer: one TLS record's plaintext. */
#define SZ_TLS_SCRATCH_BYTES 16384

enum sz_tls_kind {
    SZ_TLS_STARTTLS, /* c2s after <proceed/>: no ALPN */
    SZ_TLS_DIRECT,   /* c2s-tls (XEP-0368): ALPN xmpp-client */
};

/* Flags of a successful sz_tls_input. */
enum {
    SZ_TLS_HANDSHAKE_DONE = 1 << 0, /* the handshake completed during this call */
    SZ_TLS_PEER_CLOSED = 1 << 1,    /* close_notify received; no more plaintext */
    SZ_TLS_STOPPED = 1 << 2,        /* a callback returned < 0; the rest of the
                                       input was dropped */
};

/**
 * Transport callbacks, passed to every call together with <ud>. They run
 * synchronously, before the call that triggers them returns, on the
 * calling thread. cipher and plain are required.
 */
typedef struct sz_tls_io {
    /* Ciphertext to send. <p> is valid only during the call: copy it
     * (sz_conn_send). Return 0, or < 0 when it cannot be queued: the TLS
     * object then fails (sz_tls_error: "transport refused output"). */
    int (*cipher)(void *ud, const void *p, size_t n);
    /* Decrypted application data, in the per-thread scratch buffer, valid
     * only during the call. May call sz_tls_output and sz_tls_shutdown on
     * the same object, never sz_tls_free. Return 0 to go on, < 0 to stop. */
    int (*plain)(void *ud, const char *p, size_t n);
    /* Optional (NULL: none). The handshake completed; called once, before
     * the first plaintext. May call sz_tls_output and the accessors below.
     * Return 0 to go on, < 0 to stop (e.g. policy on the version or SNI). */
    int (*handshake)(void *ud, sz_tls_t *t);
    /* Optional (NULL: none). TLS 1.3 only, during the handshake, before
     * <handshake>: the verify_data <p>/<n> (valid only during the call) of
     * the Finished message that an OpenSSL-based peer takes as tls-unique
     * for this connection: the client's in a full handshake, the server's
     * in a resumed one (RFC 5929 §3.1's "first Finished" rule as OpenSSL
     * applies it; RFC 9266 leaves tls-unique undefined for TLS 1.3). At
     * most SZ_TLS_CB_UNIQUE_MAX_BYTES, called at most once. The caller
     * keeps it if it wants it: nothing is kept here. */
    void (*finished)(void *ud, const uint8_t *p, size_t n);
} sz_tls_io_t;

/* ---- contexts ------------------------------------------------------- */

/**
 * Main thread (startup, SIGHUP). Builds a context holding the certificate
 * chain and key of every host of <conf> that has tls_cert/tls_key (PEM; the
 * leaf first, then its intermediates). The certificate is chosen by SNI
 * (exact domain, case-insensitive); no SNI or an unknown name gets the first
 * such host. TLS 1.2 and 1.3, ECDHE with AEAD ciphers, stateless session
 * tickets (no server-side cache). <conf> is only read during the call.
 * Returns 0 and stores the context (refcount 1) in *<out>; or -ENOENT (no
 * host has a certificate), -EINVAL (unreadable, invalid or mismatched
 * cert/key) with one line in <err>, e.g.
 *   hosts[0].tls_cert var/tls/x.pem: no certificate found
 */
int sz_tls_ctx_new(const sz_conf_t *conf, sz_tls_ctx_t **out, char *err, size_t errlen);

/** Any thread. Adds a reference to <ctx> and returns it. */
sz_tls_ctx_t *sz_tls_ctx_ref(sz_tls_ctx_t *ctx);

/** Any thread. Drops a reference; the last one frees it. NULL is fine. */
void sz_tls_ctx_unref(sz_tls_ctx_t *ctx);

/* ---- connections ---------------------------------------------------- */

/**
 * Connection's reactor. A server-side TLS object using <ctx> (it takes a
 * reference, so a reload may drop the old context while this connection
 * lives on). Never returns NULL (aborts on OOM, like sz_malloc).
 */
sz_tls_t *sz_tls_new(sz_tls_ctx_t *ctx, enum sz_tls_kind kind);

/** Connection's reactor. Frees <t> (no close_notify: see sz_tls_shutdown).
 * NULL is fine. Not from inside one of <t>'s callbacks. */
void sz_tls_free(sz_tls_t *t);

/**
 * Connection's reactor. Consumes all <n> ciphertext bytes at <p> (the
 * caller's buffer, read only during the call; a partial record is kept
 * inside until the rest arrives). Drives the handshake, then delivers
 * plaintext through <io>->plain; may call <io>->cipher (handshake flights,
 * session tickets, alerts, key-update answers) and <io>->handshake before
 * it returns. When <io>->plain stops the call, the ciphertext after the
 * record it came from is dropped (meant for closing: a stopped connection
 * is not resumed).
 * Returns >= 0, a mask of SZ_TLS_HANDSHAKE_DONE, SZ_TLS_PEER_CLOSED and
 * SZ_TLS_STOPPED; or -EPROTO on a fatal TLS error (reason in
 * sz_tls_error; an alert may have been passed to <io>->cipher: close with
 * flush). After an error every call returns -EPROTO again; after
 * PEER_CLOSED, input is ignored and PEER_CLOSED returned again.
 */
int sz_tls_input(sz_tls_t *t, const void *p, size_t n, const sz_tls_io_t *io, void *ud);

/**
 * Connection's reactor, after the handshake completed. Encrypts <n> bytes
 * at <p> (read only during the call) and passes all the records to
 * <io>->cipher before it returns. Returns 0; -EAGAIN before the handshake
 * completed; -EPIPE after sz_tls_shutdown; -EPROTO once failed (including
 * when <io>->cipher refused output).
 */
int sz_tls_output(sz_tls_t *t, const void *p, size_t n, const sz_tls_io_t *io, void *ud);

/**
 * Connection's reactor. Sends close_notify through <io>->cipher (once;
 * later calls do nothing). Does not wait for the peer's. Returns 0, or
 * -EPROTO when failed. Before the handshake completed it sends nothing.
 */
int sz_tls_shutdown(sz_tls_t *t, const sz_tls_io_t *io, void *ud);

/** Connection's reactor. Whether the handshake completed. */
bool sz_tls_handshake_done(const sz_tls_t *t);

/** Connection's reactor. Reason of the fatal error, for logs (static
 * string), or NULL when none. */
const char *sz_tls_error(const sz_tls_t *t);

/* ---- after the handshake -------------------------------------------- */

/**
 * Connection's reactor. RFC 9266 tls-exporter channel binding: 32 bytes of
 * the exporter with label "EXPORTER-Channel-Binding" and an empty context,
 * into <out>. Returns 0; -ENOTSUP unless TLS 1.3 (RFC 9266 §3); -EAGAIN
 * before the handshake completed. With <out> NULL it derives nothing and
 * only says whether the binding is defined (0, -ENOTSUP or -EAGAIN).
 */
int sz_tls_cb_exporter(const sz_tls_t *t, uint8_t out[SZ_TLS_CB_EXPORTER_BYTES]);

/**
 * Connection's reactor. RFC 5929 tls-server-end-point: the hash of the
 * certificate this connection presented (SHA-256 when it is signed with
 * MD5 or SHA-1, else its signature hash), into <out> (room for
 * SZ_TLS_CB_MAX_BYTES), its length into *<len>. Returns 0; -ENOTSUP when
 * the signature has no single hash (Ed25519, RSA-PSS); -EAGAIN before the
 * handshake completed.
 */
int sz_tls_cb_server_end_point(const sz_tls_t *t, uint8_t *out, size_t *len);

/**
 * Connection's reactor. RFC 5929 §3 tls-unique on TLS 1.2: the first
 * Finished message's verify_data of the handshake (the client's, or the
 * server's when the session was resumed), into <out> (room for
 * SZ_TLS_CB_UNIQUE_MAX_BYTES), its length into *<len>. Returns 0;
 * -ENOTSUP on TLS 1.3 (see sz_tls_io_t.finished) or when the handshake did
 * not use the extended master secret (RFC 7627: without it a
 * man-in-the-middle can make two connections share the value, the "triple
 * handshake"); -EAGAIN before the handshake completed.
 */
int sz_tls_cb_unique(const sz_tls_t *t, uint8_t *out, size_t *len);

/** Connection's reactor. "TLSv1.3", "TLSv1.2", or "unknown" before the
 * handshake. Static string. */
const char *sz_tls_version_name(const sz_tls_t *t);

/** Connection's reactor. The server name the client asked for (SNI), or
 * NULL. Owned by <t>, valid while it lives. */
const char *sz_tls_sni(const sz_tls_t *t);

/** Connection's reactor. The negotiated ALPN protocol ("xmpp-client"), or
 * NULL. Static string. */
const char *sz_tls_alpn(const sz_tls_t *t);

/** Connection's reactor. The domain of the host whose certificate was
 * presented; NULL before the handshake. Owned by the context. */
const char *sz_tls_host(const sz_tls_t *t);

/** Connection's reactor. Whether the session was resumed (ticket). */
bool sz_tls_resumed(const sz_tls_t *t);

#endif
