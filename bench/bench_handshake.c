/*
 * bench_handshake: the server CPU of one TLS handshake, without a network.
 *
 * The server side is stanzad's own (net/tls.c: the context sz_tls_ctx_new
 * builds from a stanzad config, certificate chosen by SNI, session tickets
 * as configured there); the client is a plain BoringSSL client in this
 * process. Both talk through two memory queues, so no socket, wake-up or
 * XMPP work is counted: what remains is the handshake's fixed cost (key
 * exchange, certificate signature, key schedule, records, tickets), the
 * part of a TLS login that no server design can avoid.
 *
 * Only the server's calls are timed, with the thread's CPU clock
 * (CLOCK_THREAD_CPUTIME_ID) read around each sz_tls_new/sz_tls_input/
 * sz_tls_free; the client's work is not counted. Prints one key=value line:
 * the mean and percentiles of the server's CPU time per handshake.
 *
 *   bench_handshake --config stanzad.yaml [--handshakes N] [--sni NAME]
 *                   [--tls-version 1.2|1.3] [--direct]
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/conf.h"
#include "net/tls.h"

/* A queue of bytes from the server to the client. */
struct pipe {
    uint8_t buf[65536];
    size_t len;
};

static int on_cipher(void *ud, const void *p, size_t n)
{
    struct pipe *q = ud;
    if (n > sizeof(q->buf) - q->len)
        return -1;
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    return 0;
}

static int on_plain(void *ud, const char *p, size_t n)
{
    (void)ud, (void)p, (void)n;
    return 0;
}

/* No certificate check: the client's cost is not what is measured. */
static enum ssl_verify_result_t accept_any(SSL *ssl, uint8_t *alert)
{
    (void)ssl, (void)alert;
    return ssl_verify_ok;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_handshake --config FILE [--handshakes N] [--sni NAME]\n"
                    "                       [--tls-version 1.2|1.3] [--direct]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *config = NULL, *sni = "localhost";
    long n = 2000;
    int version = TLS1_3_VERSION;
    bool direct = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"handshakes", required_argument, NULL, 'n'},
        {"sni", required_argument, NULL, 's'},     {"tls-version", required_argument, NULL, 'v'},
        {"direct", no_argument, NULL, 'd'},        {NULL, 0, NULL, 0},
    };
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'n': n = strtol(optarg, NULL, 10); break;
        case 's': sni = optarg; break;
        case 'v':
            if (strcmp(optarg, "1.2") == 0)
                version = TLS1_2_VERSION;
            else if (strcmp(optarg, "1.3") != 0)
                usage();
            break;
        case 'd': direct = true; break;
        default: usage();
        }
    }
    if (!config || n < 1)
        usage();

    char err[512];
    sz_conf_t *conf;
    sz_tls_ctx_t *sctx;
    if (sz_conf_load(config, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (sz_tls_ctx_new(conf, &sctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_handshake: %s\n", err[0] ? err : "no host has a certificate");
        return 1;
    }

    /* The client: BoringSSL's defaults (as stanza-bench and most clients),
     * one version, no certificate check, no session reuse. */
    SSL_CTX *cctx = SSL_CTX_new(TLS_with_buffers_method());
    SSL_CTX_set_min_proto_version(cctx, (uint16_t)version);
    SSL_CTX_set_max_proto_version(cctx, (uint16_t)version);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_custom_verify(cctx, SSL_VERIFY_PEER, accept_any);
    static const uint8_t alpn[] = "\x0bxmpp-client";

    uint64_t *ns = calloc((size_t)n, sizeof(*ns));
    struct pipe *q = calloc(1, sizeof(*q));
    sz_tls_io_t io = {.cipher = on_cipher, .plain = on_plain};
    long done = 0;
    for (long i = 0; i < n; i++) {
        SSL *c = SSL_new(cctx);
        BIO *cb, *nb; /* cb: the client's end; nb: ours */
        BIO_new_bio_pair(&cb, 0, &nb, 0);
        SSL_set_bio(c, cb, cb);
        SSL_set_connect_state(c);
        SSL_set_tlsext_host_name(c, sni);
        if (direct)
            SSL_set_alpn_protos(c, alpn, sizeof(alpn) - 1);

        uint64_t t0 = cpu_ns();
        sz_tls_t *t = sz_tls_new(sctx, direct ? SZ_TLS_DIRECT : SZ_TLS_STARTTLS);
        uint64_t spent = cpu_ns() - t0;
        bool ok = false;
        for (int round = 0; round < 8; round++) {
            int r = SSL_do_handshake(c);
            if (r != 1 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ) {
                ERR_print_errors_fp(stderr); /* the client refused the server */
                break;
            }
            uint8_t in[16384];
            int got = BIO_read(nb, in, sizeof(in));
            if (got <= 0) {
                ok = r == 1 && sz_tls_handshake_done(t);
                if (ok)
                    break;
                continue;
            }
            q->len = 0;
            t0 = cpu_ns();
            int sr = sz_tls_input(t, in, (size_t)got, &io, q);
            spent += cpu_ns() - t0;
            if (sr < 0) {
                fprintf(stderr, "bench_handshake: server: %s\n", sz_tls_error(t));
                break;
            }
            if (q->len && BIO_write(nb, q->buf, (int)q->len) != (int)q->len)
                break;
        }
        /* The client reads the tickets the server sent after its Finished. */
        uint8_t sink[256];
        SSL_read(c, sink, sizeof(sink));
        t0 = cpu_ns();
        sz_tls_free(t);
        spent += cpu_ns() - t0;
        SSL_free(c);
        BIO_free(nb);
        if (!ok) {
            fprintf(stderr, "bench_handshake: handshake %ld failed\n", i);
            return 1;
        }
        ns[done++] = spent;
    }

    qsort(ns, (size_t)done, sizeof(*ns), cmp_u64);
    double sum = 0;
    for (long i = 0; i < done; i++)
        sum += (double)ns[i];
    printf("bench=handshake handshakes=%ld version=%s mode=%s server_cpu_us_mean=%.1f "
           "p50=%.1f p90=%.1f p99=%.1f\n",
           done, version == TLS1_3_VERSION ? "1.3" : "1.2", direct ? "direct" : "starttls",
           sum / (double)done / 1e3, (double)ns[done / 2] / 1e3,
           (double)ns[done * 9 / 10] / 1e3, (double)ns[done * 99 / 100] / 1e3);
    free(ns);
    free(q);
    SSL_CTX_free(cctx);
    sz_tls_ctx_unref(sctx);
    sz_conf_free(conf);
    return 0;
}
