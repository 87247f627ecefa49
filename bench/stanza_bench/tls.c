/*
 * Client TLS over BoringSSL (see tls.h). The worker threads share one
 * SSL_CTX (read-only once built); each thread has one BIO whose read and
 * write functions act on the thread's current call (struct call, set for
 * the duration of every sb_tls_* call that enters BoringSSL): reads copy
 * from the received buffer in place, writes go to the session's output
 * queue at once, so BoringSSL's write buffer is empty, and freed, after
 * each record, and its read buffer after each record it consumed.
 *
 * What an idle TLS session keeps: the SSL and its record keys, the
 * established session (whose certificate chain is a reference into the
 * context's CRYPTO_BUFFER pool), and nothing else; without --ca the
 * context uses TLS_with_buffers_method, so no X509 object is ever parsed.
 */
#include "bench/stanza_bench/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>

/* Plaintext bytes per SSL_read: one full record. */
#define SCRATCH_BYTES (16 * 1024)

static const uint8_t alpn_xmpp[] = "\x0bxmpp-client";

/* The call in progress on this thread; nested when a plaintext callback
 * sends (sb_tls_send inside sb_tls_input), always for the same session. */
struct call {
    sb_thread_t *t;
    sb_sess_t *s;
    const char *in; /* ciphertext not yet handed to BoringSSL */
    size_t left;
    struct call *prev;
};

static SSL_CTX *ctx;
static CRYPTO_BUFFER_POOL *pool;
static BIO_METHOD *bio_method;
static const char *sni; /* the run's domain */

static __thread struct call *cur;
static __thread BIO *thread_bio;
static __thread char *scratch;

/* ---- the per-thread BIO ---------------------------------------------- */

static int bio_read(BIO *b, char *out, int len)
{
    struct call *c = cur;

    BIO_clear_retry_flags(b);
    if (!c || c->left == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = (size_t)len < c->left ? (size_t)len : c->left;
    memcpy(out, c->in, k);
    c->in += k;
    c->left -= k;
    return (int)k;
}

static int bio_write(BIO *b, const char *p, int len)
{
    struct call *c = cur;

    BIO_clear_retry_flags(b);
    if (!c)
        return -1;
    /* The output queue takes everything: a record never waits in
     * BoringSSL's buffer. */
    sb_send_raw(c->t, c->s, p, (size_t)len);
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long larg, void *parg)
{
    (void)b;
    (void)larg;
    (void)parg;
    /* BoringSSL flushes after each flight; bio_write passed it on already. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO *get_bio(void)
{
    if (!thread_bio) {
        thread_bio = BIO_new(bio_method);
        if (!thread_bio)
            abort();
        BIO_set_init(thread_bio, 1);
    }
    return thread_bio;
}

void sb_tls_thread_exit(void)
{
    BIO_free(thread_bio); /* SSLs still alive hold their own references */
    thread_bio = NULL;
    free(scratch);
    scratch = NULL;
}

/* ---- the context --------------------------------------------------------- */

static enum ssl_verify_result_t accept_any(SSL *ssl, uint8_t *alert)
{
    (void)ssl;
    (void)alert;
    return ssl_verify_ok;
}

int sb_tls_init(const sb_conf_t *cf, char *err, size_t errlen)
{
    if (cf->tls == SB_TLS_NONE)
        return 0;
    sni = cf->domain;
    /* Without verification no X509 object is needed: the buffers method
     * keeps certificates as pooled CRYPTO_BUFFERs only. */
    ctx = SSL_CTX_new(cf->ca ? TLS_method() : TLS_with_buffers_method());
    pool = CRYPTO_BUFFER_POOL_new();
    bio_method = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "sb_tls");
    if (!ctx || !pool || !bio_method)
        abort();
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    SSL_CTX_set0_buffer_pool(ctx, pool);
    if (!SSL_CTX_set_min_proto_version(ctx, cf->tls_version) ||
        !SSL_CTX_set_max_proto_version(ctx, cf->tls_version)) {
        snprintf(err, errlen, "--tls-version: not supported by this BoringSSL");
        return -1;
    }
    /* Every login is a full handshake: the cost being measured is the
     * server's for new clients, and a session cache would cost memory. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cf->ca) {
        if (!SSL_CTX_load_verify_locations(ctx, cf->ca, NULL)) {
            const char *r = ERR_reason_error_string(ERR_peek_last_error());
            snprintf(err, errlen, "--ca %s: %s", cf->ca, r ? r : "cannot load");
            ERR_clear_error();
            return -1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER, accept_any);
    }
    return 0;
}

void sb_tls_exit(void)
{
    SSL_CTX_free(ctx);
    ctx = NULL;
    CRYPTO_BUFFER_POOL_free(pool); /* the context held its own reference */
    pool = NULL;
    BIO_meth_free(bio_method);
    bio_method = NULL;
}

/* ---- sessions -------------------------------------------------------------- */

static void enter(struct call *c, sb_thread_t *t, sb_sess_t *s, const char *in, size_t n)
{
    *c = (struct call){.t = t, .s = s, .in = in, .left = n, .prev = cur};
    cur = c;
}

static void leave(struct call *c)
{
    cur = c->prev;
}

/* Counts the failure of the last BoringSSL call as "tls:<reason>". */
static void count_failure(sb_thread_t *t, const char *what)
{
    uint32_t e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    char name[56];
    snprintf(name, sizeof(name), "tls:%s", r ? r : what);
    ERR_clear_error();
    sb_err(t, name);
}

int sb_tls_start(sb_thread_t *t, sb_sess_t *s)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        abort();
    s->ssl = ssl;
    BIO *b = get_bio();
    BIO_up_ref(b);
    BIO_up_ref(b);
    SSL_set0_rbio(ssl, b);
    SSL_set0_wbio(ssl, b);
    SSL_set_connect_state(ssl);
    /* Certificates, cipher and ALPN lists go once the handshake is done. */
    SSL_set_shed_handshake_config(ssl, 1);
    if (!SSL_set_tlsext_host_name(ssl, sni) ||
        (t->run->conf.ca && !SSL_set1_host(ssl, sni)) ||
        (t->run->conf.tls == SB_TLS_DIRECT &&
         SSL_set_alpn_protos(ssl, alpn_xmpp, sizeof(alpn_xmpp) - 1) != 0)) {
        count_failure(t, "setup");
        return -1;
    }
    s->state = SB_ST_TLS;
    struct call c;
    enter(&c, t, s, NULL, 0);
    int r = SSL_do_handshake(ssl);
    leave(&c);
    if (r != 1 && SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
        count_failure(t, "client-hello");
        return -1;
    }
    return 0;
}

/* The handshake is done: checks ALPN (Direct TLS) and opens the stream. */
static void established(sb_thread_t *t, sb_sess_t *s)
{
    if (t->run->conf.tls == SB_TLS_DIRECT) {
        const uint8_t *p;
        unsigned n;
        SSL_get0_alpn_selected(s->ssl, &p, &n);
        /* XEP-0368: a server may not answer ALPN, but must not pick
         * another protocol. */
        if (n && (n != sizeof(alpn_xmpp) - 2 || memcmp(p, alpn_xmpp + 1, n) != 0)) {
            sb_err(t, "tls:alpn-mismatch");
            sb_close(t, s);
            return;
        }
    }
    sb_xmpp_connected(t, s);
}

void sb_tls_input(sb_thread_t *t, sb_sess_t *s, const char *p, size_t n)
{
    SSL *ssl = s->ssl;
    struct call c;
    int r;

    enter(&c, t, s, p, n);
    if (s->state == SB_ST_TLS) {
        r = SSL_do_handshake(ssl);
        if (r != 1) {
            if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
                count_failure(t, "handshake");
                sb_close(t, s);
            }
            goto out;
        }
        established(t, s);
    }
    if (!scratch && !(scratch = malloc(SCRATCH_BYTES)))
        abort();
    /* Read until BoringSSL wants more input, which it does only once all
     * of <p> went in: nothing is left behind in the provided buffer. */
    while (s->state != SB_ST_CLOSED) {
        r = SSL_read(ssl, scratch, SCRATCH_BYTES);
        if (r > 0) {
            sb_xmpp_input(t, s, scratch, (size_t)r);
            continue;
        }
        switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_WANT_READ:
            break;
        case SSL_ERROR_ZERO_RETURN:
            /* close_notify: the end of the stream was counted by the
             * parser, if it came first; the server's FIN follows. */
            ERR_clear_error();
            break;
        default:
            count_failure(t, "read");
            sb_close(t, s);
            break;
        }
        break;
    }
out:
    leave(&c);
}

void sb_tls_send(sb_thread_t *t, sb_sess_t *s, const void *p, size_t n)
{
    if (s->state == SB_ST_TLS) {
        /* nothing is sent before the handshake is done */
        sb_err(t, "client:send-during-handshake");
        return;
    }
    struct call c;
    enter(&c, t, s, NULL, 0);
    /* Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write writes all or
     * fails; our sends are far below INT_MAX. */
    int r = SSL_write(s->ssl, p, (int)n);
    leave(&c);
    if (r <= 0) {
        count_failure(t, "write");
        sb_close(t, s);
    }
}

int sb_tls_exporter(const sb_sess_t *s, uint8_t out[SB_TLS_EXPORTER_BYTES])
{
    static const char label[] = "EXPORTER-Channel-Binding";

    if (!s->ssl || !SSL_is_init_finished(s->ssl) || SSL_version(s->ssl) != TLS1_3_VERSION)
        return -1;
    /* RFC 9266 §2: no context, which TLS 1.3 treats as the empty one. */
    if (!SSL_export_keying_material(s->ssl, out, SB_TLS_EXPORTER_BYTES, label, sizeof(label) - 1,
                                    NULL, 0, 0)) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

void sb_tls_free(sb_sess_t *s)
{
    SSL_free(s->ssl);
    s->ssl = NULL;
}
