/*
 * Client TLS of the simulated sessions (BoringSSL): STARTTLS (RFC 6120
 * §5) and Direct TLS (XEP-0368, ALPN "xmpp-client"), TLS 1.2 or 1.3, SNI
 * = the XMPP domain, certificate verification only with --ca.
 *
 * One SSL_CTX for the process, built by the main thread before the
 * workers start; a session's SSL is touched only by its owner thread.
 * Nothing per session is sized for the worst case: no BIO per session (one
 * per thread, reading the provided buffer in place and writing into the
 * session's output queue), BoringSSL's record buffers freed when empty,
 * decrypted bytes in one scratch buffer per thread, the handshake
 * configuration shed after the handshake, and the server's certificate
 * shared by all sessions through a CRYPTO_BUFFER pool.
 */
#ifndef SB_TLS_H
#define SB_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "bench/stanza_bench/sb.h"

/* RFC 9266: tls-exporter channel binding data, bytes. */
#define SB_TLS_EXPORTER_BYTES 32

/**
 * Main thread, before sb_engine_start. Builds the client context from
 * <cf> (tls mode, version, CA file, domain). Returns 0, or -1 with a
 * message in <err>.
 */
int sb_tls_init(const sb_conf_t *cf, char *err, size_t errlen);

/** Main thread, after sb_engine_join: frees the context. */
void sb_tls_exit(void);

/**
 * Owner thread. Creates <s>'s SSL and sends the ClientHello (through
 * sb_send_raw). The state becomes SB_ST_TLS; once the handshake is done,
 * sb_xmpp_connected() opens the stream. Returns 0, or -1 after counting
 * the error (the caller closes the session).
 */
int sb_tls_start(sb_thread_t *t, sb_sess_t *s);

/**
 * Owner thread. Ciphertext <p>, <n> bytes, received on <s>: drives the
 * handshake and hands the plaintext to sb_xmpp_input(). Errors are counted
 * as "tls:<reason>" and close the session.
 */
void sb_tls_input(sb_thread_t *t, sb_sess_t *s, const char *p, size_t n);

/** Owner thread. Encrypts <n> bytes of <p> and queues the records. */
void sb_tls_send(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n);

/**
 * Owner thread. The tls-exporter channel binding of <s> (RFC 9266):
 * 0, or -1 when the handshake is not done or did not negotiate TLS 1.3.
 */
int sb_tls_exporter(const sb_sess_t *s, uint8_t out[SB_TLS_EXPORTER_BYTES]);

/** Owner thread. Frees <s>'s SSL (NULL is fine); never from inside sb_tls_input. */
void sb_tls_free(sb_sess_t *s);

/** Owner thread, at its exit: frees the thread's BIO. */
void sb_tls_thread_exit(void);

#endif
