/*
 * TLS for client connections over BoringSSL, fed from memory (net/tls.h).
 *
 * Contexts are built on the main thread and shared read-only by every
 * reactor; a connection's sz_tls_t and SSL are touched only by the thread
 * that owns the connection at the time.
 *
 * Invariants that keep an idle connection small (DESIGN §3):
 *  - No per-connection BIO: each thread owns one BIO whose read and write
 *    functions use the thread's current call (struct call, set for the
 *    duration of every sz_tls_* call that enters BoringSSL). An SSL is
 *    pointed at the calling thread's BIO on each call, so a connection that
 *    moved to another reactor switches BIO there.
 *  - BoringSSL reads each record exactly (header, then body) into a buffer
 *    it frees once the record is consumed, and frees its write buffer once
 *    our write function took the bytes, which it always does at once.
 *  - Handshake configuration (certificates, cipher lists, ALPN) is shed when
 *    the handshake completes; what callers query afterwards lives in the
 *    handshake result (version, SNI, ALPN, exporter secret) or in the
 *    context (host index → channel-binding hash).
 *  - Plaintext is read into a per-thread scratch buffer.
 */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/mem.h"

/* PEM files larger than this are refused (a chain is a few KiB). */
#define PEM_MAX_BYTES (1u << 20)

#define ALPN_XMPP "xmpp-client"

/* One host that has a certificate. */
struct host {
    char *domain;
    CRYPTO_BUFFER **chain; /* leaf first */
    size_t nchain;
    EVP_PKEY *key;
    uint8_t sid_ctx[SHA256_DIGEST_LENGTH]; /* session id context: SHA-256 of
                                              the domain, so a ticket of one
                                              host never resumes on another */
    uint8_t cbep[SZ_TLS_CB_MAX_BYTES];     /* tls-server-end-point of the leaf */
    uint8_t cbep_len;                      /* 0: not defined for this leaf */
    size_t conf_index;                     /* in conf->hosts, for messages */
};

struct sz_tls_ctx {
    int refs; /* atomic */
    SSL_CTX *ssl_ctx;
    struct host *hosts; /* [0] is the default (no or unknown SNI) */
    size_t nhosts;
};

enum {
    F_DONE = 1 << 0,        /* handshake completed */
    F_PEER_CLOSED = 1 << 1, /* close_notify received */
    F_SHUTDOWN = 1 << 2,    /* our close_notify sent */
};

/* Layout: 32 bytes on LP64, the whole per-connection cost outside
 * BoringSSL. */
struct sz_tls {
    SSL *ssl;
    sz_tls_ctx_t *ctx; /* referenced */
    const char *err;   /* static reason of the fatal error, or NULL */
    uint16_t host;     /* index into ctx->hosts + 1; 0 until chosen */
    uint8_t kind;      /* enum sz_tls_kind */
    uint8_t flags;     /* F_* */
};

/* The sz_tls_* call in progress on this thread; calls nest when a callback
 * calls sz_tls_output. */
struct call {
    sz_tls_t *t;
    const sz_tls_io_t *io;
    void *ud;
    const uint8_t *in; /* ciphertext not yet handed to BoringSSL */
    size_t left;
    int out_err; /* io->cipher refused output */
    struct call *prev;
};

static _Thread_local struct call *cur;
static _Thread_local BIO *thread_bio;
static _Thread_local unsigned char scratch[SZ_TLS_SCRATCH_BYTES];

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static pthread_key_t bio_key;

static void *must(void *p)
{
    /* BoringSSL returns NULL only on allocation failure here; OOM is fatal
     * everywhere in the node (core/mem.h). */
    if (!p) {
        fprintf(stderr, "level=error msg=\"out of memory (BoringSSL)\"\n");
        abort();
    }
    return p;
}

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
    /* No retry flag on failure: a transport that cannot queue output
     * fails the connection rather than leaving a record half-sent. */
    if (!c || c->out_err)
        return -1;
    int r = c->io->cipher(c->ud, p, (size_t)len);
    if (r < 0) {
        c->out_err = r;
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long larg, void *parg)
{
    /* BoringSSL flushes after each flight and fails the handshake when the
     * flush does; everything is passed on in bio_write already. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void bio_key_free(void *b)
{
    BIO_free(b);
}

static void bio_init_once(void)
{
    bio_method = must(BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "sz_tls"));
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    if (pthread_key_create(&bio_key, bio_key_free) != 0)
        abort();
}

/* Points <ssl> at this thread's BIO (created on first use; the thread's
 * reference is dropped when the thread exits, SSLs hold their own). */
static void bind_bio(SSL *ssl)
{
    BIO *b = thread_bio;

    if (!b) {
        pthread_once(&bio_once, bio_init_once);
        b = must(BIO_new(bio_method));
        BIO_set_init(b, 1);
        pthread_setspecific(bio_key, b);
        thread_bio = b;
    }
    if (SSL_get_rbio(ssl) == b)
        return;
    BIO_up_ref(b);
    BIO_up_ref(b);
    SSL_set0_rbio(ssl, b);
    SSL_set0_wbio(ssl, b);
}

static void enter(struct call *c, sz_tls_t *t, const sz_tls_io_t *io, void *ud, const void *in,
                  size_t n)
{
    *c = (struct call){.t = t, .io = io, .ud = ud, .in = in, .left = n, .prev = cur};
    cur = c;
    bind_bio(t->ssl);
}

static void leave(struct call *c)
{
    cur = c->prev;
}

/* Records the fatal error of a failed BoringSSL call and empties the
 * thread's error queue, so the next connection starts clean. */
static int fail(sz_tls_t *t, struct call *c, const char *why)
{
    if (!t->err) {
        uint32_t e = ERR_peek_last_error();
        if (c && c->out_err)
            t->err = "transport refused output";
        else if (why)
            t->err = why;
        else if (e && ERR_reason_error_string(e))
            t->err = ERR_reason_error_string(e);
        else
            t->err = "TLS error";
    }
    ERR_clear_error();
    return -EPROTO;
}

/* Maps the result <r> of SSL_do_handshake/SSL_read: 0 when all input was
 * consumed, SZ_TLS_PEER_CLOSED, or -EPROTO. */
static int read_result(sz_tls_t *t, struct call *c, int r)
{
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        /* The BIO says "retry" only once the input is used up. */
        if (c->out_err)
            break;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        t->flags |= F_PEER_CLOSED;
        ERR_clear_error();
        return SZ_TLS_PEER_CLOSED;
    default:
        break;
    }
    return fail(t, c, NULL);
}

/* ---- handshake callbacks --------------------------------------------- */

static enum ssl_select_cert_result_t select_cert(const SSL_CLIENT_HELLO *hello)
{
    struct call *c = cur;

    if (!c || c->t->ssl != hello->ssl)
        return ssl_select_cert_error;
    sz_tls_t *t = c->t;
    const sz_tls_ctx_t *x = t->ctx;
    const char *name = SSL_get_servername(hello->ssl, TLSEXT_NAMETYPE_host_name);
    size_t i = 0;

    if (name) {
        for (i = 0; i < x->nhosts; i++)
            if (strcasecmp(name, x->hosts[i].domain) == 0)
                break;
        if (i == x->nhosts)
            i = 0;
    }
    t->host = (uint16_t)(i + 1);
    /* The context carries host 0's chain, key and session id context;
     * any other host replaces them for this handshake only (shed after). */
    if (i != 0) {
        const struct host *h = &x->hosts[i];
        if (!SSL_set_chain_and_key(hello->ssl, h->chain, h->nchain, h->key, NULL) ||
            !SSL_set_session_id_context(hello->ssl, h->sid_ctx, sizeof h->sid_ctx))
            return ssl_select_cert_error;
    }
    return ssl_select_cert_success;
}

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
                       unsigned inlen, void *arg)
{
    struct call *c = cur;

    /* STARTTLS negotiates nothing: the stream is already XMPP. */
    if (!c || c->t->kind != SZ_TLS_DIRECT)
        return SSL_TLSEXT_ERR_NOACK;
    /* Called only when the client offered ALPN: it must include ours
     * (XEP-0368 §3; RFC 7301 no_application_protocol otherwise). */
    CBS list, proto;
    CBS_init(&list, in, inlen);
    while (CBS_len(&list) > 0) {
        if (!CBS_get_u8_length_prefixed(&list, &proto))
            break;
        if (CBS_len(&proto) == sizeof ALPN_XMPP - 1 &&
            memcmp(CBS_data(&proto), ALPN_XMPP, sizeof ALPN_XMPP - 1) == 0) {
            *out = CBS_data(&proto);
            *outlen = (uint8_t)CBS_len(&proto);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- building a context ---------------------------------------------- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

/* Reads <path> into a memory BIO (the caller frees it), or writes the
 * error for "hosts[<i>].<key> <path>" and returns NULL. */
static BIO *read_pem(const char *path, size_t i, const char *key, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    BIO *b = NULL;

    if (fd < 0) {
        snprintf(err, errlen, "hosts[%zu].%s %s: cannot open: %s", i, key, path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX_BYTES) {
        snprintf(err, errlen, "hosts[%zu].%s %s: not a regular file of at most %u bytes", i, key,
                 path, PEM_MAX_BYTES);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    buf = sz_malloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "hosts[%zu].%s %s: cannot read: %s", i, key, path,
                     r < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
    /* BIO_new_mem_buf does not copy: copy into the BIO's own buffer. */
    b = must(BIO_new(BIO_s_mem()));
    if (BIO_write(b, buf, (int)n) != (int)n) {
        BIO_free(b);
        b = NULL;
        snprintf(err, errlen, "hosts[%zu].%s %s: cannot buffer", i, key, path);
    }
out:
    sz_free(buf);
    close(fd);
    return b;
}

static bool pem_eof(void)
{
    uint32_t e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

static const char *reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    return r ? r : "unknown error";
}

/* tls-server-end-point (RFC 5929 §4.1) of <leaf> into <h>. */
static void end_point_hash(struct host *h, X509 *leaf, const uint8_t *der, size_t len)
{
    int md_nid = NID_undef, pk_nid = NID_undef;
    const EVP_MD *md = NULL;
    unsigned out = 0;

    h->cbep_len = 0;
    if (!OBJ_find_sigid_algs(X509_get_signature_nid(leaf), &md_nid, &pk_nid))
        return;
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        md_nid = NID_sha256;
    /* NID_undef: Ed25519 or RSA-PSS, no single hash: not defined here. */
    if (md_nid == NID_undef || !(md = EVP_get_digestbynid(md_nid)))
        return;
    if (EVP_MD_size(md) <= sizeof h->cbep && EVP_Digest(der, len, h->cbep, &out, md, NULL))
        h->cbep_len = (uint8_t)out;
}

/* Loads host <i>'s chain and key into <h>. Returns 0 or -EINVAL with the
 * error in <err>. */
static int load_host(struct host *h, const sz_conf_host_t *ch, size_t i, char *err, size_t errlen)
{
    BIO *b = NULL;
    X509 *leaf = NULL, *x;
    uint8_t *der = NULL;
    int rc = -EINVAL;

    h->domain = sz_strdup(ch->domain);
    h->conf_index = i;
    SHA256((const uint8_t *)ch->domain, strlen(ch->domain), h->sid_ctx);

    if (!(b = read_pem(ch->tls_cert, i, "tls_cert", err, errlen)))
        goto fail;
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL))) {
        int len = i2d_X509(x, &der);
        if (len <= 0) {
            X509_free(x);
            snprintf(err, errlen, "hosts[%zu].tls_cert %s: certificate %zu: %s", i, ch->tls_cert,
                     h->nchain + 1, reason());
            goto fail;
        }
        h->chain = sz_realloc(h->chain, (h->nchain + 1) * sizeof *h->chain);
        h->chain[h->nchain++] = must(CRYPTO_BUFFER_new(der, (size_t)len, NULL));
        if (!leaf) {
            leaf = x;
            end_point_hash(h, leaf, der, (size_t)len);
        } else {
            X509_free(x);
        }
        OPENSSL_free(der);
        der = NULL;
    }
    if (!pem_eof() || !leaf) {
        if (!leaf && pem_eof())
            snprintf(err, errlen, "hosts[%zu].tls_cert %s: no certificate found", i, ch->tls_cert);
        else
            snprintf(err, errlen, "hosts[%zu].tls_cert %s: certificate %zu: %s", i, ch->tls_cert,
                     h->nchain + 1, reason());
        goto fail;
    }
    BIO_free(b);

    if (!(b = read_pem(ch->tls_key, i, "tls_key", err, errlen)))
        goto fail;
    ERR_clear_error();
    if (!(h->key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL))) {
        if (pem_eof())
            snprintf(err, errlen, "hosts[%zu].tls_key %s: no private key found", i, ch->tls_key);
        else
            snprintf(err, errlen, "hosts[%zu].tls_key %s: %s (encrypted keys are not supported)", i,
                     ch->tls_key, reason());
        goto fail;
    }
    if (!X509_check_private_key(leaf, h->key)) {
        snprintf(err, errlen, "hosts[%zu].tls_key %s: does not match the certificate in %s", i,
                 ch->tls_key, ch->tls_cert);
        goto fail;
    }
    rc = 0;
fail:
    ERR_clear_error();
    X509_free(leaf);
    BIO_free(b);
    return rc;
}

static void free_host(struct host *h)
{
    for (size_t j = 0; j < h->nchain; j++)
        CRYPTO_BUFFER_free(h->chain[j]);
    sz_free(h->chain);
    EVP_PKEY_free(h->key);
    sz_free(h->domain);
}

static void ctx_free(sz_tls_ctx_t *x)
{
    SSL_CTX_free(x->ssl_ctx);
    for (size_t i = 0; i < x->nhosts; i++)
        free_host(&x->hosts[i]);
    sz_free(x->hosts);
    sz_free(x);
}

/* TLS 1.2 suites: ECDHE with AEAD only (forward secrecy, no CBC). AES-GCM
 * and ChaCha20 are equally preferred, so the client picks what its CPU does
 * fast. TLS 1.3 suites are BoringSSL's fixed set. */
static const char cipher_list[] = "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]:"
                                  "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

int sz_tls_ctx_new(const sz_conf_t *conf, sz_tls_ctx_t **out, char *err, size_t errlen)
{
    sz_tls_ctx_t *x = sz_calloc(1, sizeof *x);
    SSL_CTX *s;
    int rc = -EINVAL;

    x->refs = 1;
    x->hosts = sz_calloc(conf->nhosts ? conf->nhosts : 1, sizeof *x->hosts);
    for (size_t i = 0; i < conf->nhosts; i++) {
        const sz_conf_host_t *ch = &conf->hosts[i];
        if (!ch->tls_cert && !ch->tls_key)
            continue;
        if (!ch->tls_cert || !ch->tls_key) {
            snprintf(err, errlen, "hosts[%zu]: tls_cert and tls_key must be given together", i);
            goto fail;
        }
        rc = load_host(&x->hosts[x->nhosts], ch, i, err, errlen);
        x->nhosts++; /* counted even on failure, so ctx_free frees it */
        if (rc < 0)
            goto fail;
    }
    if (x->nhosts == 0) {
        snprintf(err, errlen, "hosts: no host has tls_cert and tls_key");
        rc = -ENOENT;
        goto fail;
    }
    rc = -EINVAL;

    s = x->ssl_ctx = must(SSL_CTX_new(TLS_method()));
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
        !SSL_CTX_set_strict_cipher_list(s, cipher_list)) {
        snprintf(err, errlen, "tls: cannot configure versions or ciphers: %s", reason());
        goto fail;
    }
    SSL_CTX_set_options(s, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Stateless tickets only: a server-side session cache would hold
     * sessions of clients long gone, per node. The ticket key is random
     * per context and rotated by BoringSSL; a reload starts a new one, so
     * tickets issued before it fall back to a full handshake. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_select_certificate_cb(s, select_cert);
    SSL_CTX_set_alpn_select_cb(s, select_alpn, NULL);

    /* Each chain is tried on the context (checks the key type is usable),
     * in reverse, so host 0's chain is the one left for handshakes. */
    for (size_t i = x->nhosts; i-- > 0;) {
        struct host *h = &x->hosts[i];
        if (!SSL_CTX_set_chain_and_key(s, h->chain, h->nchain, h->key, NULL)) {
            snprintf(err, errlen, "hosts[%zu].tls_key: unusable for TLS: %s", h->conf_index,
                     reason());
            goto fail;
        }
    }
    if (!SSL_CTX_set_session_id_context(s, x->hosts[0].sid_ctx, sizeof x->hosts[0].sid_ctx)) {
        snprintf(err, errlen, "tls: cannot set the session id context: %s", reason());
        goto fail;
    }
    ERR_clear_error();
    *out = x;
    return 0;

fail:
    ERR_clear_error();
    ctx_free(x);
    *out = NULL;
    return rc;
}

sz_tls_ctx_t *sz_tls_ctx_ref(sz_tls_ctx_t *ctx)
{
    __atomic_fetch_add(&ctx->refs, 1, __ATOMIC_RELAXED);
    return ctx;
}

void sz_tls_ctx_unref(sz_tls_ctx_t *ctx)
{
    if (ctx && __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ctx_free(ctx);
}

/* ---- connections ------------------------------------------------------ */

/* Handshake messages as they are read and written, during the handshake
 * only (the callback is removed once it completes: BoringSSL would call it
 * for every record header). It passes on the TLS 1.3 Finished that
 * OpenSSL-based peers use as tls-unique (net/tls.h, sz_tls_io_t.finished);
 * the thread's current call says whose it is. */
static void on_msg(int is_write, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    const uint8_t *p = buf;
    struct call *c = cur;

    (void)version;
    (void)arg;
    /* A handshake message: type (1 byte), length (3), body; Finished's body
     * is its verify_data (RFC 8446 §4.4.4). */
    if (content_type != SSL3_RT_HANDSHAKE || len < 4 || p[0] != SSL3_MT_FINISHED)
        return;
    if (!c || c->t->ssl != ssl || !c->io->finished || SSL_version(ssl) != TLS1_3_VERSION)
        return;
    /* The server reads the client's Finished and writes its own: a full
     * handshake wants the one read, a resumed one the one written. */
    if ((is_write != 0) != (SSL_session_reused(ssl) != 0))
        return;
    if (len - 4 <= SZ_TLS_CB_UNIQUE_MAX_BYTES)
        c->io->finished(c->ud, p + 4, len - 4);
}

sz_tls_t *sz_tls_new(sz_tls_ctx_t *ctx, enum sz_tls_kind kind)
{
    sz_tls_t *t = sz_malloc(sizeof *t);

    *t = (sz_tls_t){.ssl = must(SSL_new(ctx->ssl_ctx)), .ctx = sz_tls_ctx_ref(ctx), .kind = kind};
    SSL_set_accept_state(t->ssl);
    /* Drop certificates, cipher and ALPN lists from this SSL as soon as the
     * handshake completes: they are the bulk of a fresh SSL. */
    SSL_set_shed_handshake_config(t->ssl, 1);
    SSL_set_msg_callback(t->ssl, on_msg);
    return t;
}

void sz_tls_free(sz_tls_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    sz_tls_ctx_unref(t->ctx);
    sz_free(t);
}

int sz_tls_input(sz_tls_t *t, const void *p, size_t n, const sz_tls_io_t *io, void *ud)
{
    struct call c;
    int res = 0, r;

    if (t->err)
        return -EPROTO;
    if (t->flags & F_PEER_CLOSED)
        return SZ_TLS_PEER_CLOSED;
    enter(&c, t, io, ud, p, n);
    if (!(t->flags & F_DONE)) {
        r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            res = read_result(t, &c, r);
            goto out;
        }
        t->flags |= F_DONE;
        SSL_set_msg_callback(t->ssl, NULL);
        res |= SZ_TLS_HANDSHAKE_DONE;
        if (io->handshake && io->handshake(ud, t) < 0) {
            res |= SZ_TLS_STOPPED;
            goto out;
        }
        if (t->err) {
            res = -EPROTO;
            goto out;
        }
    }
    /* Read until BoringSSL asks for more input, which it does only once
     * all of <p> went in: nothing of it is left behind. */
    for (;;) {
        r = SSL_read(t->ssl, scratch, sizeof scratch);
        if (r <= 0) {
            r = read_result(t, &c, r);
            res = r < 0 ? r : res | r;
            break;
        }
        if (io->plain(ud, (const char *)scratch, (size_t)r) < 0) {
            res |= SZ_TLS_STOPPED;
            break;
        }
        /* The callback's own sz_tls_output may have failed. */
        if (t->err) {
            res = -EPROTO;
            break;
        }
    }
    /* BoringSSL queues what it owes the peer outside a handshake flight
     * (TLS 1.3 NewSessionTickets, the answer to a KeyUpdate) until our next
     * write, so that a client that does not read cannot stall a server.
     * Our transport never blocks, and an idle connection would otherwise
     * keep the queued messages (and the client its ticket) indefinitely: a
     * zero-length write sends them, and sends nothing when nothing waits. */
    if (res >= 0 && (t->flags & F_DONE) && !(t->flags & F_SHUTDOWN) && !t->err &&
        SSL_write(t->ssl, NULL, 0) < 0)
        res = fail(t, &c, NULL);
out:
    leave(&c);
    return res;
}

int sz_tls_output(sz_tls_t *t, const void *p, size_t n, const sz_tls_io_t *io, void *ud)
{
    struct call c;
    const uint8_t *q = p;
    int rc = 0;

    if (t->err)
        return -EPROTO;
    if (!(t->flags & F_DONE))
        return -EAGAIN;
    if (t->flags & F_SHUTDOWN)
        return -EPIPE;
    enter(&c, t, io, ud, NULL, 0);
    while (n > 0) {
        /* Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write writes all of
         * a chunk or fails; chunks keep the length within int. */
        int k = n > (1u << 30) ? (1 << 30) : (int)n;
        int r = SSL_write(t->ssl, q, k);
        if (r <= 0) {
            rc = fail(t, &c, NULL);
            break;
        }
        q += r;
        n -= (size_t)r;
    }
    leave(&c);
    return rc;
}

int sz_tls_shutdown(sz_tls_t *t, const sz_tls_io_t *io, void *ud)
{
    struct call c;
    int rc = 0;

    if (t->err)
        return -EPROTO;
    if (!(t->flags & F_DONE) || (t->flags & F_SHUTDOWN))
        return 0;
    t->flags |= F_SHUTDOWN;
    enter(&c, t, io, ud, NULL, 0);
    /* 0: our close_notify went out, the peer's has not come; 1: both. */
    if (SSL_shutdown(t->ssl) < 0)
        rc = fail(t, &c, NULL);
    leave(&c);
    return rc;
}

bool sz_tls_handshake_done(const sz_tls_t *t)
{
    return t->flags & F_DONE;
}

const char *sz_tls_error(const sz_tls_t *t)
{
    return t->err;
}

int sz_tls_cb_exporter(const sz_tls_t *t, uint8_t out[SZ_TLS_CB_EXPORTER_BYTES])
{
    static const char label[] = "EXPORTER-Channel-Binding";

    if (!(t->flags & F_DONE))
        return -EAGAIN;
    /* RFC 9266 §3: only TLS 1.3 exporters are bound to the handshake. */
    if (SSL_version(t->ssl) != TLS1_3_VERSION)
        return -ENOTSUP;
    if (!out)
        return 0; /* a question only: the derivation costs HMACs */
    /* In TLS 1.3 an absent context is the empty context (RFC 8446 §7.5). */
    if (!SSL_export_keying_material(t->ssl, out, SZ_TLS_CB_EXPORTER_BYTES, label, sizeof label - 1,
                                    NULL, 0, 0)) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

int sz_tls_cb_server_end_point(const sz_tls_t *t, uint8_t *out, size_t *len)
{
    if (!(t->flags & F_DONE) || t->host == 0)
        return -EAGAIN;
    const struct host *h = &t->ctx->hosts[t->host - 1];
    if (h->cbep_len == 0)
        return -ENOTSUP;
    memcpy(out, h->cbep, h->cbep_len);
    *len = h->cbep_len;
    return 0;
}

int sz_tls_cb_unique(const sz_tls_t *t, uint8_t *out, size_t *len)
{
    if (!(t->flags & F_DONE))
        return -EAGAIN;
    /* RFC 9266 §1: not defined for TLS 1.3; see on_msg() for what OpenSSL
     * peers use there. */
    if (SSL_version(t->ssl) != TLS1_2_VERSION || !SSL_get_extms_support(t->ssl))
        return -ENOTSUP;
    if (!SSL_get_tls_unique(t->ssl, out, len, SZ_TLS_CB_UNIQUE_MAX_BYTES) || *len == 0)
        return -ENOTSUP;
    return 0;
}

const char *sz_tls_version_name(const sz_tls_t *t)
{
    if (!(t->flags & F_DONE))
        return "unknown";
    switch (SSL_version(t->ssl)) {
    case TLS1_3_VERSION:
        return "TLSv1.3";
    case TLS1_2_VERSION:
        return "TLSv1.2";
    default:
        return "unknown";
    }
}

const char *sz_tls_sni(const sz_tls_t *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *sz_tls_alpn(const sz_tls_t *t)
{
    const uint8_t *p;
    unsigned n;

    SSL_get0_alpn_selected(t->ssl, &p, &n);
    /* select_alpn never picks anything else. */
    return n ? ALPN_XMPP : NULL;
}

const char *sz_tls_host(const sz_tls_t *t)
{
    return (t->flags & F_DONE) && t->host ? t->ctx->hosts[t->host - 1].domain : NULL;
}

bool sz_tls_resumed(const sz_tls_t *t)
{
    return (t->flags & F_DONE) && SSL_session_reused(t->ssl);
}
