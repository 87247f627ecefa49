/*
 * net/tls: a BoringSSL client (in this file) against the server object,
 * entirely in memory. Certificates are generated at start into a temporary
 * directory. BoringSSL's allocations are counted through its
 * OPENSSL_memory_* hooks, tagged by side (client or server), which gives the
 * idle per-connection figure printed by memory_idle.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/conf.h"
#include "net/tls.h"
#include "sz_test.h"

/* ---- allocation accounting ------------------------------------------ */

/* BoringSSL calls these when the executable defines them (weak symbols
 * in libcrypto). Each block has a 16-byte header: size and side. */
void *OPENSSL_memory_alloc(size_t size);
void OPENSSL_memory_free(void *ptr);
size_t OPENSSL_memory_get_size(void *ptr);

enum { SIDE_SERVER = 0, SIDE_CLIENT = 1 };
static int side = SIDE_SERVER;
static long live_bytes[2], live_allocs[2], live_je[2];

/* jemalloc's size class for <n> bytes (4 classes per doubling above 128). */
static size_t je_class(size_t n)
{
    if (n <= 8)
        return 8;
    if (n <= 128)
        return (n + 15) & ~(size_t)15;
    size_t p = 128;
    while (p * 2 < n)
        p *= 2;
    size_t step = p / 4;
    return (n + step - 1) / step * step;
}

/* In production OPENSSL_malloc puts an 8-byte size prefix in front of
 * every block; the jemalloc figure includes it. */
#define BSSL_PREFIX 8

void *OPENSSL_memory_alloc(size_t size)
{
    uint64_t *h = malloc(size + 16);
    if (!h)
        return NULL;
    h[0] = size;
    h[1] = (uint64_t)side;
    __atomic_add_fetch(&live_bytes[side], (long)size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&live_allocs[side], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&live_je[side], (long)je_class(size + BSSL_PREFIX), __ATOMIC_RELAXED);
    return h + 2;
}

void OPENSSL_memory_free(void *ptr)
{
    if (!ptr)
        return;
    uint64_t *h = (uint64_t *)ptr - 2;
    int s = (int)h[1];
    __atomic_sub_fetch(&live_bytes[s], (long)h[0], __ATOMIC_RELAXED);
    __atomic_sub_fetch(&live_allocs[s], 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&live_je[s], (long)je_class(h[0] + BSSL_PREFIX), __ATOMIC_RELAXED);
    free(h);
}

size_t OPENSSL_memory_get_size(void *ptr)
{
    return ((uint64_t *)ptr)[-2];
}

/* Runs <stmt> with the client's allocations tagged as such. */
#define CLIENT(stmt)                                                                               \
    do {                                                                                           \
        int side_ = side;                                                                          \
        side = SIDE_CLIENT;                                                                        \
        stmt;                                                                                      \
        side = side_;                                                                              \
    } while (0)

/* ---- certificates ---------------------------------------------------- */

static char dir[64];

struct cert {
    char cert_path[128], key_path[128];
    uint8_t leaf_der[4096];
    size_t leaf_len;
};

static struct cert cert_a, cert_b, cert_c, cert_a2;

static EVP_PKEY *gen_key(int curve)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(curve);
    EVP_PKEY *k = EVP_PKEY_new();
    if (!ec || !EC_KEY_generate_key(ec) || !k || !EVP_PKEY_assign_EC_KEY(k, ec))
        abort();
    return k;
}

static X509 *gen_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                      const EVP_MD *md)
{
    static long serial = 1;
    X509 *x = X509_new();

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509_set_pubkey(x, key);
    if (!X509_sign(x, issuer_key ? issuer_key : key, md))
        abort();
    return x;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f || fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* A leaf for <cn> signed by a throwaway CA with <md>; the chain file holds
 * the leaf then the CA certificate. */
static void make_cert(struct cert *c, const char *name, const char *cn, int curve, const EVP_MD *md)
{
    EVP_PKEY *ca_key = gen_key(NID_X9_62_prime256v1), *key = gen_key(curve);
    X509 *ca = gen_cert("stanzad test CA", ca_key, NULL, NULL, EVP_sha256());
    X509 *leaf = gen_cert(cn, key, ca, ca_key, md);

    snprintf(c->cert_path, sizeof c->cert_path, "%s/%s.crt", dir, name);
    snprintf(c->key_path, sizeof c->key_path, "%s/%s.key", dir, name);
    BIO *b = BIO_new_file(c->cert_path, "w");
    PEM_write_bio_X509(b, leaf);
    PEM_write_bio_X509(b, ca);
    BIO_free(b);
    b = BIO_new_file(c->key_path, "w");
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    BIO_free(b);
    uint8_t *der = NULL;
    int len = i2d_X509(leaf, &der);
    SZ_CHECK(len > 0 && (size_t)len <= sizeof c->leaf_der);
    memcpy(c->leaf_der, der, (size_t)len);
    c->leaf_len = (size_t)len;
    OPENSSL_free(der);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

/* ---- contexts ---------------------------------------------------------- */

static sz_conf_host_t conf_hosts[4];
static sz_conf_t conf;

static void set_hosts(const struct cert *const *certs, const char *const *domains, size_t n)
{
    memset(&conf, 0, sizeof conf);
    for (size_t i = 0; i < n; i++) {
        conf_hosts[i] = (sz_conf_host_t){
            .domain = (char *)domains[i],
            .tls_cert = certs[i] ? (char *)certs[i]->cert_path : NULL,
            .tls_key = certs[i] ? (char *)certs[i]->key_path : NULL,
        };
    }
    conf.hosts = conf_hosts;
    conf.nhosts = n;
}

/* a.example (cert_a, ECDSA-SHA256), b.example (cert_b, P-384
 * ECDSA-SHA384), c.example (cert_c, ECDSA-SHA1). */
static sz_tls_ctx_t *main_ctx(void)
{
    const struct cert *certs[] = {&cert_a, &cert_b, &cert_c};
    const char *domains[] = {"a.example", "b.example", "c.example"};
    sz_tls_ctx_t *x = NULL;
    char err[256] = "";

    set_hosts(certs, domains, 3);
    int rc = sz_tls_ctx_new(&conf, &x, err, sizeof err);
    if (rc != 0)
        printf("# sz_tls_ctx_new: %d %s\n", rc, err);
    SZ_CHECK_INT(rc, 0);
    return x;
}

/* ---- a client/server pair ---------------------------------------------- */

struct sbuf {
    uint8_t *p;
    size_t n, cap;
};

static void sbuf_add(struct sbuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

struct pair {
    SSL *cli;
    BIO *c_in;  /* server → client ciphertext */
    BIO *c_out; /* client → server ciphertext */
    sz_tls_t *srv;
    struct sbuf got;  /* plaintext received by the server */
    struct sbuf cgot; /* plaintext received by the client */
    size_t cipher_bytes;
    int hs_calls, plain_calls, plain_before_hs;
    int flags;         /* OR of sz_tls_input results */
    bool echo;         /* the server echoes what it receives */
    int refuse_output; /* io.cipher fails with this */
    int stop_plain;    /* io.plain returns -1 */
    uint8_t fin[64];   /* io.finished: the TLS 1.3 tls-unique value */
    size_t fin_len;
    int fin_calls, fin_after_hs;
    bool no_finished_cb; /* run with an io that has no finished callback */
};

static int srv_cipher(void *ud, const void *p, size_t n)
{
    struct pair *pp = ud;
    if (pp->refuse_output)
        return pp->refuse_output;
    pp->cipher_bytes += n;
    CLIENT(BIO_write(pp->c_in, p, (int)n));
    return 0;
}

static const sz_tls_io_t srv_io;

static int srv_plain(void *ud, const char *p, size_t n)
{
    struct pair *pp = ud;
    pp->plain_calls++;
    if (pp->hs_calls == 0)
        pp->plain_before_hs++;
    sbuf_add(&pp->got, p, n);
    if (pp->echo)
        SZ_CHECK_INT(sz_tls_output(pp->srv, p, n, &srv_io, pp), 0);
    return pp->stop_plain ? -1 : 0;
}

static int srv_handshake(void *ud, sz_tls_t *t)
{
    struct pair *pp = ud;
    pp->hs_calls++;
    SZ_CHECK(t == pp->srv);
    SZ_CHECK(sz_tls_handshake_done(t));
    return 0;
}

static void srv_finished(void *ud, const uint8_t *p, size_t n)
{
    struct pair *pp = ud;
    pp->fin_calls++;
    if (pp->hs_calls)
        pp->fin_after_hs++;
    SZ_CHECK(n > 0 && n <= sizeof pp->fin);
    if (n <= sizeof pp->fin) {
        memcpy(pp->fin, p, n);
        pp->fin_len = n;
    }
}

static const sz_tls_io_t srv_io = {srv_cipher, srv_plain, srv_handshake, srv_finished};
static const sz_tls_io_t srv_io_nofin = {srv_cipher, srv_plain, srv_handshake, NULL};

static SSL_SESSION *last_session;

static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
    SSL_SESSION_free(last_session);
    last_session = s; /* keeps the reference */
    return 1;
}

static SSL_CTX *client_ctx(uint16_t max_version)
{
    SSL_CTX *c;
    CLIENT({
        c = SSL_CTX_new(TLS_method());
        SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(c, max_version);
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(c, on_new_session);
    });
    return c;
}

static void client_ctx_free(SSL_CTX *c)
{
    CLIENT(SSL_CTX_free(c));
}

/* <alpn> is in wire format (length-prefixed names), or NULL. */
static void pair_init(struct pair *pp, SSL_CTX *cctx, sz_tls_ctx_t *sctx, enum sz_tls_kind kind,
                      const char *sni, const char *alpn, size_t alpn_len, SSL_SESSION *resume)
{
    memset(pp, 0, sizeof *pp);
    CLIENT({
        pp->cli = SSL_new(cctx);
        pp->c_in = BIO_new(BIO_s_mem());
        pp->c_out = BIO_new(BIO_s_mem());
        SSL_set_bio(pp->cli, pp->c_in, pp->c_out);
        SSL_set_connect_state(pp->cli);
        if (sni)
            SSL_set_tlsext_host_name(pp->cli, sni);
        if (alpn)
            SSL_set_alpn_protos(pp->cli, (const uint8_t *)alpn, alpn_len);
        if (resume)
            SSL_set_session(pp->cli, resume);
    });
    pp->srv = sz_tls_new(sctx, kind);
}

static void pair_free(struct pair *pp)
{
    sz_tls_free(pp->srv);
    CLIENT(SSL_free(pp->cli));
    free(pp->got.p);
    free(pp->cgot.p);
    ERR_clear_error();
}

/* Moves what the client wrote into the server, <chunk> bytes per call.
 * Returns the OR of the results, or the first error. */
static int feed_server(struct pair *pp, size_t chunk)
{
    static uint8_t buf[1 << 16];
    int flags = 0;

    for (;;) {
        int n;
        CLIENT(n = BIO_read(pp->c_out, buf, sizeof buf));
        if (n <= 0)
            break;
        for (size_t off = 0; off < (size_t)n; off += chunk) {
            size_t k = (size_t)n - off < chunk ? (size_t)n - off : chunk;
            int r = sz_tls_input(pp->srv, buf + off, k, pp->no_finished_cb ? &srv_io_nofin : &srv_io,
                                 pp);
            if (r < 0)
                return r;
            flags |= r;
        }
    }
    pp->flags |= flags;
    return flags;
}

/* Reads what the client can read; returns SSL_get_error of the last read. */
static int client_read(struct pair *pp)
{
    uint8_t buf[16384];
    int r, e;

    for (;;) {
        CLIENT(r = SSL_read(pp->cli, buf, sizeof buf));
        if (r <= 0)
            break;
        sbuf_add(&pp->cgot, buf, (size_t)r);
    }
    CLIENT(e = SSL_get_error(pp->cli, r));
    return e;
}

static void client_write(struct pair *pp, const void *p, size_t n)
{
    int r;
    CLIENT(r = SSL_write(pp->cli, p, (int)n));
    SZ_CHECK_INT(r, (int)n);
}

/* Runs the handshake to its end on both sides. Returns 0, the server's
 * error, or -ECONNABORTED when the client failed. */
static int handshake(struct pair *pp, size_t chunk)
{
    for (int i = 0; i < 16; i++) {
        int r, e;
        CLIENT(r = SSL_do_handshake(pp->cli));
        CLIENT(e = SSL_get_error(pp->cli, r));
        if (r != 1 && e != SSL_ERROR_WANT_READ)
            return -ECONNABORTED;
        int f = feed_server(pp, chunk);
        if (f < 0)
            return f;
        if (r == 1 && sz_tls_handshake_done(pp->srv)) {
            client_read(pp); /* session tickets */
            return 0;
        }
    }
    return -ETIMEDOUT;
}

static const uint8_t *client_leaf(struct pair *pp, size_t *len)
{
    const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(pp->cli);
    if (!chain || sk_CRYPTO_BUFFER_num(chain) == 0)
        return NULL;
    CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
    *len = CRYPTO_BUFFER_len(leaf);
    return CRYPTO_BUFFER_data(leaf);
}

static bool leaf_is(struct pair *pp, const struct cert *c)
{
    size_t len = 0;
    const uint8_t *p = client_leaf(pp, &len);
    return p && len == c->leaf_len && memcmp(p, c->leaf_der, len) == 0;
}

/* A client→server→client round trip of <msg>. */
static void roundtrip(struct pair *pp, const char *msg, size_t chunk)
{
    size_t got0 = pp->got.n, cgot0 = pp->cgot.n, n = strlen(msg);
    client_write(pp, msg, n);
    SZ_CHECK(feed_server(pp, chunk) >= 0);
    SZ_CHECK_INT(pp->got.n - got0, n);
    SZ_CHECK(pp->got.n >= got0 + n && memcmp(pp->got.p + got0, msg, n) == 0);
    SZ_CHECK_INT(sz_tls_output(pp->srv, msg, n, &srv_io, pp), 0);
    client_read(pp);
    SZ_CHECK_INT(pp->cgot.n - cgot0, n);
    SZ_CHECK(pp->cgot.n >= cgot0 + n && memcmp(pp->cgot.p + cgot0, msg, n) == 0);
}

static const char alpn_xmpp[] = "\x02h2\x0bxmpp-client";
static const char alpn_h2[] = "\x02h2\x08http/1.1";

/* ---- tests ---------------------------------------------------------------- */

SZ_TEST(handshake_tls13)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;

    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_STR(sz_tls_version_name(pp.srv), "unknown");
    SZ_CHECK(sz_tls_host(pp.srv) == NULL);
    SZ_CHECK_INT(sz_tls_output(pp.srv, "x", 1, &srv_io, &pp), -EAGAIN);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK_INT(pp.flags, SZ_TLS_HANDSHAKE_DONE);
    SZ_CHECK_INT(pp.hs_calls, 1);
    SZ_CHECK_STR(sz_tls_version_name(pp.srv), "TLSv1.3");
    SZ_CHECK_STR(sz_tls_sni(pp.srv), "a.example");
    SZ_CHECK_STR(sz_tls_host(pp.srv), "a.example");
    SZ_CHECK(sz_tls_alpn(pp.srv) == NULL);
    SZ_CHECK(!sz_tls_resumed(pp.srv));
    SZ_CHECK(sz_tls_error(pp.srv) == NULL);
    SZ_CHECK(leaf_is(&pp, &cert_a));
    /* The whole chain went out: leaf and intermediate. */
    SZ_CHECK_INT(sk_CRYPTO_BUFFER_num(SSL_get0_peer_certificates(pp.cli)), 2);
    SZ_CHECK(last_session && SSL_SESSION_is_resumable(last_session));
    roundtrip(&pp, "<stream:stream to='a.example'>", SIZE_MAX);
    /* The flag comes once. */
    pp.flags = 0;
    roundtrip(&pp, "<presence/>", SIZE_MAX);
    SZ_CHECK_INT(pp.flags, 0);
    SZ_CHECK_INT(pp.hs_calls, 1);
    SZ_CHECK_INT(pp.plain_before_hs, 0);
    pair_free(&pp);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(finished_and_data_together)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    int r;

    /* The client's Finished and its first stream header arrive in one
     * read: the handshake callback runs before that plaintext. */
    pair_init(&pp, cc, x, SZ_TLS_DIRECT, "a.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
    CLIENT(r = SSL_do_handshake(pp.cli));
    SZ_CHECK(r != 1);
    SZ_CHECK_INT(feed_server(&pp, SIZE_MAX), 0);
    CLIENT(r = SSL_do_handshake(pp.cli));
    SZ_CHECK_INT(r, 1);
    client_write(&pp, "<stream:stream>", 15);
    SZ_CHECK_INT(feed_server(&pp, SIZE_MAX), SZ_TLS_HANDSHAKE_DONE);
    SZ_CHECK_INT(pp.hs_calls, 1);
    SZ_CHECK_INT(pp.plain_before_hs, 0);
    SZ_CHECK(pp.got.n == 15 && memcmp(pp.got.p, "<stream:stream>", 15) == 0);
    pair_free(&pp);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(handshake_tls12)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_2_VERSION);
    struct pair pp;
    uint8_t cb[32];

    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "b.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK_STR(sz_tls_version_name(pp.srv), "TLSv1.2");
    SZ_CHECK_STR(sz_tls_host(pp.srv), "b.example");
    SZ_CHECK(leaf_is(&pp, &cert_b));
    SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, cb), -ENOTSUP);
    /* ECDHE with an AEAD. */
    const SSL_CIPHER *c = SSL_get_current_cipher(pp.cli);
    SZ_CHECK(c && SSL_CIPHER_is_aead(c) && SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe);
    roundtrip(&pp, "<iq type='get' id='1'/>", 1);
    pair_free(&pp);

    /* Older than 1.2 is refused. */
    SSL_CTX *old = client_ctx(TLS1_1_VERSION);
    pair_init(&pp, old, x, SZ_TLS_STARTTLS, "b.example", NULL, 0, NULL);
    SZ_CHECK(handshake(&pp, SIZE_MAX) < 0);
    SZ_CHECK(sz_tls_error(pp.srv) != NULL);
    printf("# TLS 1.1 client: %s\n", sz_tls_error(pp.srv) ? sz_tls_error(pp.srv) : "-");
    pair_free(&pp);
    client_ctx_free(old);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(sni)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    static const struct {
        const char *sni;
        const struct cert *want;
        const char *host;
    } cases[] = {
        {"a.example", &cert_a, "a.example"},     {"b.example", &cert_b, "b.example"},
        {"B.Example", &cert_b, "b.example"},     {"c.example", &cert_c, "c.example"},
        {"other.example", &cert_a, "a.example"}, {NULL, &cert_a, "a.example"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pair pp;
        pair_init(&pp, cc, x, SZ_TLS_DIRECT, cases[i].sni, NULL, 0, NULL);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        if (!leaf_is(&pp, cases[i].want))
            printf("# case %zu: wrong certificate\n", i);
        SZ_CHECK(leaf_is(&pp, cases[i].want));
        SZ_CHECK_STR(sz_tls_host(pp.srv), cases[i].host);
        if (cases[i].sni)
            SZ_CHECK_STR(sz_tls_sni(pp.srv), cases[i].sni);
        else
            SZ_CHECK(sz_tls_sni(pp.srv) == NULL);
        roundtrip(&pp, "<presence/>", SIZE_MAX);
        pair_free(&pp);
    }
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(alpn)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    const uint8_t *sel;
    unsigned sel_len;

    /* Direct TLS, xmpp-client offered among others: selected. */
    pair_init(&pp, cc, x, SZ_TLS_DIRECT, "a.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK_STR(sz_tls_alpn(pp.srv), "xmpp-client");
    SSL_get0_alpn_selected(pp.cli, &sel, &sel_len);
    SZ_CHECK(sel_len == 11 && memcmp(sel, "xmpp-client", 11) == 0);
    pair_free(&pp);

    /* Direct TLS, ALPN without xmpp-client: no_application_protocol. */
    pair_init(&pp, cc, x, SZ_TLS_DIRECT, "a.example", alpn_h2, sizeof alpn_h2 - 1, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), -EPROTO);
    printf("# ALPN h2 only: %s\n", sz_tls_error(pp.srv) ? sz_tls_error(pp.srv) : "-");
    SZ_CHECK(sz_tls_error(pp.srv) != NULL);
    {
        /* The client receives the alert. */
        int r;
        CLIENT(r = SSL_do_handshake(pp.cli));
        SZ_CHECK(r != 1);
        uint32_t e = ERR_peek_last_error();
        SZ_CHECK_INT(ERR_GET_REASON(e), SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
        ERR_clear_error();
    }
    pair_free(&pp);

    /* Direct TLS, no ALPN at all: accepted. */
    pair_init(&pp, cc, x, SZ_TLS_DIRECT, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK(sz_tls_alpn(pp.srv) == NULL);
    pair_free(&pp);

    /* STARTTLS negotiates no ALPN, whatever is offered. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK(sz_tls_alpn(pp.srv) == NULL);
    SSL_get0_alpn_selected(pp.cli, &sel, &sel_len);
    SZ_CHECK_INT(sel_len, 0);
    pair_free(&pp);
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", alpn_h2, sizeof alpn_h2 - 1, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    pair_free(&pp);

    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(bytewise)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;

    for (int v = 0; v < 2; v++) {
        SSL_CTX *c = v ? client_ctx(TLS1_2_VERSION) : cc;
        pair_init(&pp, c, x, SZ_TLS_DIRECT, "b.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
        /* The handshake itself one byte per call, too. */
        SZ_CHECK_INT(handshake(&pp, 1), 0);
        SZ_CHECK_INT(pp.hs_calls, 1);
        roundtrip(&pp, "<message to='x@b.example'><body>byte by byte</body></message>", 1);
        /* Several records in one write, fed one byte at a time. */
        size_t got0 = pp.got.n;
        client_write(&pp, "one", 3);
        client_write(&pp, "two", 3);
        client_write(&pp, "three", 5);
        SZ_CHECK(feed_server(&pp, 1) >= 0);
        SZ_CHECK_INT(pp.got.n - got0, 11);
        SZ_CHECK(memcmp(pp.got.p + got0, "onetwothree", 11) == 0);
        pair_free(&pp);
        if (v)
            client_ctx_free(c);
    }
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(large)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    size_t n = 1 << 20;
    uint8_t *data = malloc(n);

    RAND_bytes(data, n);
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    /* Client → server: 1 MiB in odd-sized writes, fed in odd chunks. */
    for (size_t off = 0; off < n;) {
        size_t k = n - off < 40000 ? n - off : 40000;
        client_write(&pp, data + off, k);
        off += k;
        SZ_CHECK(feed_server(&pp, 7919) >= 0);
    }
    SZ_CHECK_INT(pp.got.n, n);
    SZ_CHECK(pp.got.n == n && memcmp(pp.got.p, data, n) == 0);
    /* Server → client: 1 MiB in one call. */
    size_t before = pp.cipher_bytes;
    SZ_CHECK_INT(sz_tls_output(pp.srv, data, n, &srv_io, &pp), 0);
    SZ_CHECK(pp.cipher_bytes - before > n);
    client_read(&pp);
    SZ_CHECK_INT(pp.cgot.n, n);
    SZ_CHECK(pp.cgot.n == n && memcmp(pp.cgot.p, data, n) == 0);
    pair_free(&pp);

    /* Echo from inside the plaintext callback (nested sz_tls_output). */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    pp.echo = true;
    client_write(&pp, data, 100000);
    SZ_CHECK(feed_server(&pp, 3000) >= 0);
    client_read(&pp);
    SZ_CHECK(pp.cgot.n == 100000 && memcmp(pp.cgot.p, data, 100000) == 0);
    pair_free(&pp);

    free(data);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(close_notify)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    int r;

    /* Client closes first. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    client_write(&pp, "</stream:stream>", 16);
    CLIENT(r = SSL_shutdown(pp.cli));
    SZ_CHECK_INT(r, 0);
    SZ_CHECK_INT(feed_server(&pp, SIZE_MAX), SZ_TLS_PEER_CLOSED);
    SZ_CHECK(pp.got.n == 16 && memcmp(pp.got.p, "</stream:stream>", 16) == 0);
    /* Anything later is ignored. */
    SZ_CHECK_INT(sz_tls_input(pp.srv, "junk", 4, &srv_io, &pp), SZ_TLS_PEER_CLOSED);
    /* The server may still answer, then close. */
    SZ_CHECK_INT(sz_tls_output(pp.srv, "</stream:stream>", 16, &srv_io, &pp), 0);
    SZ_CHECK_INT(sz_tls_shutdown(pp.srv, &srv_io, &pp), 0);
    SZ_CHECK_INT(sz_tls_output(pp.srv, "x", 1, &srv_io, &pp), -EPIPE);
    SZ_CHECK_INT(client_read(&pp), SSL_ERROR_ZERO_RETURN);
    SZ_CHECK(pp.cgot.n == 16);
    SZ_CHECK(sz_tls_error(pp.srv) == NULL);
    pair_free(&pp);

    /* Server closes first; a second shutdown sends nothing. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK_INT(sz_tls_shutdown(pp.srv, &srv_io, &pp), 0);
    size_t sent = pp.cipher_bytes;
    SZ_CHECK_INT(sz_tls_shutdown(pp.srv, &srv_io, &pp), 0);
    SZ_CHECK_INT(pp.cipher_bytes, sent);
    SZ_CHECK_INT(client_read(&pp), SSL_ERROR_ZERO_RETURN);
    CLIENT(SSL_shutdown(pp.cli));
    SZ_CHECK_INT(feed_server(&pp, SIZE_MAX), SZ_TLS_PEER_CLOSED);
    pair_free(&pp);

    /* Shutdown before the handshake sends nothing. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(sz_tls_shutdown(pp.srv, &srv_io, &pp), 0);
    SZ_CHECK_INT(pp.cipher_bytes, 0);
    pair_free(&pp);

    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(corrupt_record)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    uint8_t buf[4096];
    int n;

    for (int v = 0; v < 2; v++) {
        SSL_CTX *c = v ? client_ctx(TLS1_2_VERSION) : cc;
        pair_init(&pp, c, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        client_write(&pp, "<presence/>", 11);
        CLIENT(n = BIO_read(pp.c_out, buf, sizeof buf));
        SZ_CHECK(n > 20);
        buf[n - 3] ^= 0x40; /* in the tag */
        size_t sent = pp.cipher_bytes;
        SZ_CHECK_INT(sz_tls_input(pp.srv, buf, (size_t)n, &srv_io, &pp), -EPROTO);
        SZ_CHECK(sz_tls_error(pp.srv) != NULL);
        printf("# corrupted record (%s): %s\n", v ? "TLS 1.2" : "TLS 1.3",
               sz_tls_error(pp.srv) ? sz_tls_error(pp.srv) : "-");
        SZ_CHECK(pp.cipher_bytes > sent); /* the bad_record_mac alert */
        SZ_CHECK_INT(pp.got.n, 0);
        /* Failed for good. */
        SZ_CHECK_INT(sz_tls_input(pp.srv, buf, (size_t)n, &srv_io, &pp), -EPROTO);
        SZ_CHECK_INT(sz_tls_output(pp.srv, "x", 1, &srv_io, &pp), -EPROTO);
        SZ_CHECK_INT(sz_tls_shutdown(pp.srv, &srv_io, &pp), -EPROTO);
        pair_free(&pp);
        if (v)
            client_ctx_free(c);
    }
    /* The error queue does not leak into the next connection. */
    SZ_CHECK_INT(ERR_peek_error(), 0);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(garbage)
{
    sz_tls_ctx_t *x = main_ctx();
    static const char xml[] = "<?xml version='1.0'?><stream:stream to='a.example' "
                              "xmlns='jabber:client' version='1.0'>";
    uint8_t rnd[512];
    sz_tls_t *t;
    struct pair dummy;

    memset(&dummy, 0, sizeof dummy);
    dummy.c_in = BIO_new(BIO_s_mem());
    /* Plain XMPP on the Direct TLS port. */
    t = sz_tls_new(x, SZ_TLS_DIRECT);
    dummy.srv = t;
    SZ_CHECK_INT(sz_tls_input(t, xml, sizeof xml - 1, &srv_io, &dummy), -EPROTO);
    printf("# plaintext XML: %s\n", sz_tls_error(t) ? sz_tls_error(t) : "-");
    SZ_CHECK(sz_tls_error(t) != NULL);
    SZ_CHECK(!sz_tls_handshake_done(t));
    sz_tls_free(t);
    /* Pseudo-random bytes from a fixed seed (reproducible: a random first
     * byte that starts another record kind can legitimately wait for more
     * input), fed one at a time: no crash, an error at some point. */
    uint32_t seed = 0x9e3779b9u;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof rnd; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            rnd[i] = (uint8_t)seed;
        }
        t = sz_tls_new(x, SZ_TLS_STARTTLS);
        dummy.srv = t;
        int r = 0;
        for (size_t i = 0; i < sizeof rnd && r >= 0; i++)
            r = sz_tls_input(t, rnd + i, 1, &srv_io, &dummy);
        /* A handshake record type first byte (22) followed by random
         * lengths may legitimately still be waiting for more. */
        SZ_CHECK(r < 0 || (rnd[0] == 22 && r == 0));
        sz_tls_free(t);
    }
    /* Empty input is fine. */
    t = sz_tls_new(x, SZ_TLS_STARTTLS);
    dummy.srv = t;
    SZ_CHECK_INT(sz_tls_input(t, "", 0, &srv_io, &dummy), 0);
    sz_tls_free(t);
    BIO_free(dummy.c_in);
    ERR_clear_error();
    sz_tls_ctx_unref(x);
}

SZ_TEST(channel_binding)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION), *cc12 = client_ctx(TLS1_2_VERSION);
    static const char label[] = "EXPORTER-Channel-Binding";
    static const struct {
        const char *sni;
        const struct cert *c;
        const EVP_MD *(*md)(void);
    } cases[] = {
        {"a.example", &cert_a, EVP_sha256}, /* ECDSA-SHA256 */
        {"b.example", &cert_b, EVP_sha384}, /* ECDSA-SHA384: its own hash */
        {"c.example", &cert_c, EVP_sha256}, /* ECDSA-SHA1: SHA-256 instead */
    };

    for (size_t i = 0; i < 3; i++) {
        struct pair pp;
        uint8_t s[32], c[32], ep[SZ_TLS_CB_MAX_BYTES], want[EVP_MAX_MD_SIZE];
        size_t ep_len = 0;
        unsigned want_len = 0;

        pair_init(&pp, cc, x, SZ_TLS_DIRECT, cases[i].sni, NULL, 0, NULL);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, s), -EAGAIN);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, NULL), -EAGAIN);
        SZ_CHECK_INT(sz_tls_cb_server_end_point(pp.srv, ep, &ep_len), -EAGAIN);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, NULL), 0);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, s), 0);
        CLIENT(SZ_CHECK(
            SSL_export_keying_material(pp.cli, c, 32, label, sizeof label - 1, NULL, 0, 0)));
        SZ_CHECK(memcmp(s, c, 32) == 0);
        SZ_CHECK_INT(sz_tls_cb_server_end_point(pp.srv, ep, &ep_len), 0);
        size_t leaf_len = 0;
        const uint8_t *leaf = client_leaf(&pp, &leaf_len);
        SZ_CHECK(leaf != NULL);
        EVP_Digest(leaf, leaf_len, want, &want_len, cases[i].md(), NULL);
        SZ_CHECK_INT(ep_len, want_len);
        SZ_CHECK(ep_len == want_len && memcmp(ep, want, ep_len) == 0);
        pair_free(&pp);

        /* TLS 1.2: tls-server-end-point only. */
        pair_init(&pp, cc12, x, SZ_TLS_DIRECT, cases[i].sni, NULL, 0, NULL);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, s), -ENOTSUP);
        SZ_CHECK_INT(sz_tls_cb_exporter(pp.srv, NULL), -ENOTSUP);
        SZ_CHECK_INT(sz_tls_cb_server_end_point(pp.srv, ep, &ep_len), 0);
        SZ_CHECK(ep_len == want_len && memcmp(ep, want, ep_len) == 0);
        pair_free(&pp);
    }
    client_ctx_free(cc);
    client_ctx_free(cc12);
    sz_tls_ctx_unref(x);
}

/* The client's view of the two Finished messages, from its own message
 * callback. */
struct fins {
    uint8_t sent[64], got[64];
    size_t sent_len, got_len;
};

static void client_msg(int is_write, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
    struct fins *f = arg;
    const uint8_t *p = buf;
    if (content_type != SSL3_RT_HANDSHAKE || len < 4 || p[0] != SSL3_MT_FINISHED || len - 4 > 64)
        return;
    memcpy(is_write ? f->sent : f->got, p + 4, len - 4);
    *(is_write ? &f->sent_len : &f->got_len) = len - 4;
}

/* A handshake with the client's Finished messages recorded into <f>. */
static void pair_fins(struct pair *pp, SSL_CTX *cc, sz_tls_ctx_t *x, SSL_SESSION *resume,
                      struct fins *f, size_t chunk)
{
    memset(f, 0, sizeof *f);
    pair_init(pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, resume);
    CLIENT({
        SSL_set_msg_callback(pp->cli, client_msg);
        SSL_set_msg_callback_arg(pp->cli, f);
    });
    SZ_CHECK_INT(handshake(pp, chunk), 0);
}

SZ_TEST(tls_unique)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION), *cc12 = client_ctx(TLS1_2_VERSION);
    struct pair pp;
    struct fins f;
    uint8_t u[SZ_TLS_CB_UNIQUE_MAX_BYTES], cu[64];
    size_t ulen = 0, culen = 0;

    /* TLS 1.3, full handshake: the client's Finished (what OpenSSL's
     * SSL_get_finished gives the client), passed on once, before the
     * handshake callback; fed whole and byte by byte. */
    for (size_t chunk = SIZE_MAX; chunk; chunk = chunk == 1 ? 0 : 1) {
        SSL_SESSION_free(last_session);
        last_session = NULL;
        pair_fins(&pp, cc, x, NULL, &f, chunk);
        SZ_CHECK(!sz_tls_resumed(pp.srv));
        SZ_CHECK_INT(pp.fin_calls, 1);
        SZ_CHECK_INT(pp.fin_after_hs, 0);
        SZ_CHECK_INT(f.sent_len, 32); /* SHA-256 suites: a 32-byte verify_data */
        SZ_CHECK(pp.fin_len == f.sent_len && memcmp(pp.fin, f.sent, f.sent_len) == 0);
        SZ_CHECK(memcmp(f.sent, f.got, 32) != 0);
        /* RFC 9266 §1: no standard tls-unique on TLS 1.3. */
        SZ_CHECK_INT(sz_tls_cb_unique(pp.srv, u, &ulen), -ENOTSUP);
        /* Nothing more after the handshake (the callback is gone). */
        roundtrip(&pp, "<presence/>", SIZE_MAX);
        SZ_CHECK_INT(pp.fin_calls, 1);
        pair_free(&pp);
    }
    /* TLS 1.3, resumed: the server's Finished, as OpenSSL takes
     * SSL_get_peer_finished on a resumed client. */
    SZ_CHECK(last_session != NULL);
    SSL_SESSION *s13 = last_session;
    last_session = NULL;
    pair_fins(&pp, cc, x, s13, &f, SIZE_MAX);
    SZ_CHECK(sz_tls_resumed(pp.srv));
    SZ_CHECK_INT(pp.fin_calls, 1);
    SZ_CHECK(f.got_len > 0 && pp.fin_len == f.got_len && memcmp(pp.fin, f.got, f.got_len) == 0);
    pair_free(&pp);
    CLIENT(SSL_SESSION_free(s13));

    /* No finished callback: nothing breaks. */
    memset(&pp, 0, sizeof pp);
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    pp.no_finished_cb = true;
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    SZ_CHECK_INT(pp.fin_calls, 0);
    pair_free(&pp);

    /* TLS 1.2 (extended master secret, BoringSSL's default): RFC 5929
     * tls-unique from sz_tls_cb_unique, equal to the client's; no callback.
     * Full handshake, then resumed (the server's Finished comes first). */
    SSL_SESSION_free(last_session);
    last_session = NULL;
    SZ_CHECK_INT(sz_tls_cb_unique(pp.srv = sz_tls_new(x, SZ_TLS_STARTTLS), u, &ulen), -EAGAIN);
    sz_tls_free(pp.srv);
    for (int resumed = 0; resumed < 2; resumed++) {
        SSL_SESSION *s12 = resumed ? last_session : NULL;
        if (resumed)
            last_session = NULL;
        pair_fins(&pp, cc12, x, s12, &f, SIZE_MAX);
        SZ_CHECK(sz_tls_resumed(pp.srv) == (resumed != 0));
        SZ_CHECK_INT(pp.fin_calls, 0);
        SZ_CHECK_INT(sz_tls_cb_unique(pp.srv, u, &ulen), 0);
        CLIENT(SZ_CHECK(SSL_get_tls_unique(pp.cli, cu, &culen, sizeof cu)));
        SZ_CHECK_INT(ulen, 12);
        SZ_CHECK(ulen == culen && memcmp(u, cu, ulen) == 0);
        SZ_CHECK(memcmp(u, resumed ? f.got : f.sent, 12) == 0);
        pair_free(&pp);
        if (s12)
            CLIENT(SSL_SESSION_free(s12));
    }
    client_ctx_free(cc);
    client_ctx_free(cc12);
    sz_tls_ctx_unref(x);
}

SZ_TEST(resumption)
{
    sz_tls_ctx_t *x = main_ctx();

    for (int v = 0; v < 2; v++) {
        SSL_CTX *cc = client_ctx(v ? TLS1_2_VERSION : TLS1_3_VERSION);
        struct pair pp;
        SSL_SESSION *s;

        SSL_SESSION_free(last_session);
        last_session = NULL;
        pair_init(&pp, cc, x, SZ_TLS_DIRECT, "b.example", NULL, 0, NULL);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        roundtrip(&pp, "<r/>", SIZE_MAX);
        pair_free(&pp);
        s = last_session;
        last_session = NULL;
        SZ_CHECK(s != NULL);

        /* Same host: resumed from the ticket (no server-side cache). */
        pair_init(&pp, cc, x, SZ_TLS_DIRECT, "b.example", NULL, 0, s);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        SZ_CHECK(sz_tls_resumed(pp.srv));
        SZ_CHECK_STR(sz_tls_host(pp.srv), "b.example");
        roundtrip(&pp, "<r/>", SIZE_MAX);
        pair_free(&pp);

        /* Another host: a full handshake with that host's certificate. */
        pair_init(&pp, cc, x, SZ_TLS_DIRECT, "a.example", NULL, 0, s);
        SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
        SZ_CHECK(!sz_tls_resumed(pp.srv));
        SZ_CHECK(leaf_is(&pp, &cert_a));
        pair_free(&pp);

        CLIENT(SSL_SESSION_free(s));
        client_ctx_free(cc);
    }
    sz_tls_ctx_unref(x);
}

SZ_TEST(key_update)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    int r;

    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    for (int i = 0; i < 3; i++) {
        CLIENT(r = SSL_key_update(pp.cli, SSL_KEY_UPDATE_REQUESTED));
        SZ_CHECK_INT(r, 1);
        /* The server answers with its own KeyUpdate at once, not at its
         * next write (nothing stays queued on an idle connection). */
        client_write(&pp, "<ku/>", 5);
        size_t sent = pp.cipher_bytes;
        SZ_CHECK(feed_server(&pp, SIZE_MAX) >= 0);
        printf("# key update answer: %zu bytes\n", pp.cipher_bytes - sent);
        SZ_CHECK(pp.cipher_bytes > sent);
        client_read(&pp);
        roundtrip(&pp, "<after-key-update/>", i == 1 ? 1 : SIZE_MAX);
    }
    /* Input that owes the peer nothing sends nothing. */
    client_write(&pp, "<quiet/>", 8);
    size_t sent = pp.cipher_bytes;
    SZ_CHECK(feed_server(&pp, SIZE_MAX) >= 0);
    SZ_CHECK_INT(pp.cipher_bytes, sent);
    pair_free(&pp);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(callbacks_stop_and_refuse)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;

    /* io.plain asks to stop: the rest of the input is dropped. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    pp.stop_plain = 1;
    client_write(&pp, "first", 5);
    client_write(&pp, "second", 6);
    SZ_CHECK_INT(feed_server(&pp, SIZE_MAX), SZ_TLS_STOPPED);
    SZ_CHECK_INT(pp.plain_calls, 1);
    pair_free(&pp);

    /* io.cipher refuses output during the handshake: failed. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    pp.refuse_output = -ENOBUFS;
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), -EPROTO);
    SZ_CHECK_STR(sz_tls_error(pp.srv), "transport refused output");
    pair_free(&pp);

    /* ... or on output. */
    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    pp.refuse_output = -ENOBUFS;
    SZ_CHECK_INT(sz_tls_output(pp.srv, "abc", 3, &srv_io, &pp), -EPROTO);
    SZ_CHECK_STR(sz_tls_error(pp.srv), "transport refused output");
    pair_free(&pp);
    SZ_CHECK_INT(ERR_peek_error(), 0);

    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

struct thread_arg {
    struct pair *pp;
    int rc;
};

static void *other_reactor(void *p)
{
    struct thread_arg *a = p;
    a->rc = 0;
    client_write(a->pp, "moved", 5);
    if (feed_server(a->pp, 2) < 0)
        a->rc = -1;
    if (sz_tls_output(a->pp->srv, "here", 4, &srv_io, a->pp) != 0)
        a->rc = -2;
    return NULL;
}

SZ_TEST(moves_between_threads)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair pp;
    pthread_t th;
    struct thread_arg a = {&pp, 1};

    pair_init(&pp, cc, x, SZ_TLS_STARTTLS, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&pp, SIZE_MAX), 0);
    roundtrip(&pp, "<before/>", SIZE_MAX);
    /* The connection continues on another thread (a handoff), which has
     * its own BIO, then comes back. */
    SZ_CHECK_INT(pthread_create(&th, NULL, other_reactor, &a), 0);
    pthread_join(th, NULL);
    SZ_CHECK_INT(a.rc, 0);
    client_read(&pp);
    SZ_CHECK(pp.got.n >= 14 && memcmp(pp.got.p + pp.got.n - 5, "moved", 5) == 0);
    SZ_CHECK(pp.cgot.n >= 13 && memcmp(pp.cgot.p + pp.cgot.n - 4, "here", 4) == 0);
    roundtrip(&pp, "<after/>", SIZE_MAX);
    pair_free(&pp);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(reload)
{
    sz_tls_ctx_t *x1 = main_ctx(), *x2 = NULL;
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair live, fresh;
    char err[256];
    uint8_t ep1[SZ_TLS_CB_MAX_BYTES], ep2[SZ_TLS_CB_MAX_BYTES];
    size_t n1 = 0, n2 = 0;

    pair_init(&live, cc, x1, SZ_TLS_DIRECT, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&live, SIZE_MAX), 0);
    SZ_CHECK_INT(sz_tls_cb_server_end_point(live.srv, ep1, &n1), 0);

    /* SIGHUP: a new certificate for a.example; the node swaps contexts and
     * drops its reference to the old one. */
    const struct cert *certs[] = {&cert_a2, &cert_b};
    const char *domains[] = {"a.example", "b.example"};
    set_hosts(certs, domains, 2);
    SZ_CHECK_INT(sz_tls_ctx_new(&conf, &x2, err, sizeof err), 0);
    sz_tls_ctx_unref(x1);

    /* The live connection keeps working on the old context. */
    roundtrip(&live, "<still-here/>", SIZE_MAX);
    roundtrip(&live, "<still-here/>", 1);
    SZ_CHECK_INT(sz_tls_cb_server_end_point(live.srv, ep2, &n2), 0);
    SZ_CHECK(n1 == n2 && memcmp(ep1, ep2, n1) == 0);
    SZ_CHECK_STR(sz_tls_host(live.srv), "a.example");

    /* New connections get the new certificate. */
    pair_init(&fresh, cc, x2, SZ_TLS_DIRECT, "a.example", NULL, 0, NULL);
    SZ_CHECK_INT(handshake(&fresh, SIZE_MAX), 0);
    SZ_CHECK(leaf_is(&fresh, &cert_a2));
    SZ_CHECK(leaf_is(&live, &cert_a));
    roundtrip(&fresh, "<new/>", SIZE_MAX);

    /* The old context goes when its last connection does (ASan checks). */
    pair_free(&live);
    pair_free(&fresh);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x2);
}

static int ctx_error(const struct cert *const *certs, const char *const *domains, size_t n,
                     char *err, size_t errlen)
{
    sz_tls_ctx_t *x = (sz_tls_ctx_t *)1;
    set_hosts(certs, domains, n);
    err[0] = 0;
    int rc = sz_tls_ctx_new(&conf, &x, err, errlen);
    if (rc == 0)
        sz_tls_ctx_unref(x);
    else
        SZ_CHECK(x == NULL);
    SZ_CHECK(strchr(err, '\n') == NULL);
    if (err[0])
        printf("# %s\n", err);
    return rc;
}

SZ_TEST(config_errors)
{
    char err[512], want[512];
    struct cert missing, garbage, swapped, keyless, chainbad;
    const char *doms[] = {"a.example", "b.example"};

    /* The certificate file does not exist. */
    missing = cert_a;
    snprintf(missing.cert_path, sizeof missing.cert_path, "%s/missing.pem", dir);
    const struct cert *c1[] = {&cert_a, &missing};
    SZ_CHECK_INT(ctx_error(c1, doms, 2, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "hosts[1].tls_cert %s: cannot open: No such file or directory",
             missing.cert_path);
    SZ_CHECK_STR(err, want);

    /* A file without any certificate. */
    garbage = cert_a;
    snprintf(garbage.cert_path, sizeof garbage.cert_path, "%s/garbage.pem", dir);
    write_file(garbage.cert_path, "hello\n", 6);
    const struct cert *c2[] = {&garbage};
    SZ_CHECK_INT(ctx_error(c2, doms, 1, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "hosts[0].tls_cert %s: no certificate found", garbage.cert_path);
    SZ_CHECK_STR(err, want);

    /* The key file has no key (it is the certificate). */
    keyless = cert_a;
    strcpy(keyless.key_path, cert_a.cert_path);
    const struct cert *c3[] = {&keyless};
    SZ_CHECK_INT(ctx_error(c3, doms, 1, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "hosts[0].tls_key %s: no private key found", keyless.key_path);
    SZ_CHECK_STR(err, want);

    /* The key of another certificate. */
    swapped = cert_b;
    strcpy(swapped.key_path, cert_a.key_path);
    const struct cert *c4[] = {&cert_a, &swapped};
    SZ_CHECK_INT(ctx_error(c4, doms, 2, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "hosts[1].tls_key %s: does not match the certificate in %s",
             swapped.key_path, swapped.cert_path);
    SZ_CHECK_STR(err, want);

    /* A damaged second certificate in the chain. */
    chainbad = cert_a;
    snprintf(chainbad.cert_path, sizeof chainbad.cert_path, "%s/chainbad.pem", dir);
    {
        FILE *f = fopen(cert_a.cert_path, "r");
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        char *second = strstr(buf + 1, "-----BEGIN CERTIFICATE-----");
        SZ_CHECK(second != NULL);
        if (second)
            second[40] = second[40] == 'A' ? 'B' : 'A', second[41] = '!';
        write_file(chainbad.cert_path, buf, n);
    }
    const struct cert *c5[] = {&chainbad};
    SZ_CHECK_INT(ctx_error(c5, doms, 1, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "hosts[0].tls_cert %s: certificate 2: ", chainbad.cert_path);
    SZ_CHECK(strncmp(err, want, strlen(want)) == 0);

    /* No host has a certificate. */
    const struct cert *c6[] = {NULL, NULL};
    SZ_CHECK_INT(ctx_error(c6, doms, 2, err, sizeof err), -ENOENT);

    /* Hosts without certificates are skipped; the first with one is the
     * default. */
    const struct cert *c7[] = {NULL, &cert_b};
    SZ_CHECK_INT(ctx_error(c7, doms, 2, err, sizeof err), 0);
}

/* One connection's figure, after warm-up: the thread's BIO, error queue and
 * the context's lazily made ticket key exist already. */
static void measure(const char *what, uint16_t version, bool data, size_t nconn)
{
    sz_tls_ctx_t *x = main_ctx();
    SSL_CTX *cc = client_ctx(version);
    struct pair *pp = calloc(nconn, sizeof *pp);

    pair_init(&pp[0], cc, x, SZ_TLS_DIRECT, "a.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
    SZ_CHECK_INT(handshake(&pp[0], SIZE_MAX), 0);
    roundtrip(&pp[0], "<warm-up/>", SIZE_MAX);
    pair_free(&pp[0]);

    long b0 = live_bytes[SIDE_SERVER], a0 = live_allocs[SIDE_SERVER], j0 = live_je[SIDE_SERVER];
    for (size_t i = 0; i < nconn; i++) {
        pair_init(&pp[i], cc, x, SZ_TLS_DIRECT, "a.example", alpn_xmpp, sizeof alpn_xmpp - 1, NULL);
        SZ_CHECK_INT(handshake(&pp[i], SIZE_MAX), 0);
        if (data) {
            roundtrip(&pp[i], "<message to='b@a.example'><body>hello</body></message>", 1);
            char big[20000];
            memset(big, 'x', sizeof big);
            big[sizeof big - 1] = 0;
            roundtrip(&pp[i], big, 1000);
        }
    }
    long b = (live_bytes[SIDE_SERVER] - b0) / (long)nconn;
    long a = (live_allocs[SIDE_SERVER] - a0) / (long)nconn;
    long j = (live_je[SIDE_SERVER] - j0) / (long)nconn;
    /* sz_tls_t is 32 bytes (jemalloc class 32). */
    printf("# idle TLS connection, %s: %ld bytes requested from BoringSSL in %ld blocks, "
           "%ld with its size prefixes in jemalloc size classes, +32 sz_tls_t = %ld\n",
           what, b, a, j, j + 32);
    SZ_CHECK(j + 32 <= 4608);
    for (size_t i = 0; i < nconn; i++)
        pair_free(&pp[i]);
    /* Everything returns. */
    SZ_CHECK_INT(live_bytes[SIDE_SERVER], b0);
    free(pp);
    client_ctx_free(cc);
    sz_tls_ctx_unref(x);
}

SZ_TEST(memory_idle)
{
    measure("TLS 1.3 after handshake", TLS1_3_VERSION, false, 50);
    measure("TLS 1.3 after traffic", TLS1_3_VERSION, true, 50);
    measure("TLS 1.2 after traffic", TLS1_2_VERSION, true, 50);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sz_tls_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_cert(&cert_a, "a", "a.example", NID_X9_62_prime256v1, EVP_sha256());
    make_cert(&cert_b, "b", "b.example", NID_secp384r1, EVP_sha384());
    make_cert(&cert_c, "c", "c.example", NID_X9_62_prime256v1, EVP_sha1());
    make_cert(&cert_a2, "a2", "a.example", NID_X9_62_prime256v1, EVP_sha256());

    SZ_RUN(handshake_tls13);
    SZ_RUN(finished_and_data_together);
    SZ_RUN(handshake_tls12);
    SZ_RUN(sni);
    SZ_RUN(alpn);
    SZ_RUN(bytewise);
    SZ_RUN(large);
    SZ_RUN(close_notify);
    SZ_RUN(corrupt_record);
    SZ_RUN(garbage);
    SZ_RUN(channel_binding);
    SZ_RUN(tls_unique);
    SZ_RUN(resumption);
    SZ_RUN(key_update);
    SZ_RUN(callbacks_stop_and_refuse);
    SZ_RUN(moves_between_threads);
    SZ_RUN(reload);
    SZ_RUN(config_errors);
    SZ_RUN(memory_idle);

    SSL_SESSION_free(last_session);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return sz_test_done();
}
