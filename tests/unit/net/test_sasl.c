/*
 * net/sasl: the server side of SCRAM and PLAIN. Replays the published
 * SCRAM-SHA-1 (RFC 5802 §5) and SCRAM-SHA-256 (RFC 7677 §3) exchanges with
 * a forced server nonce, runs SCRAM-SHA-512 and the -PLUS variants against
 * a client written here, reaches every RFC 6120 §6.5 failure condition, and
 * checks the fake-credential path, the feature lists and base64.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "net/sasl.h"
#include "net/scram.h"
#include "sz_test.h"

#define DOMAIN "example.com"
#define TLS_CB (SZ_SASL_F_TLS | SZ_SASL_F_CB_EXPORTER | SZ_SASL_F_CB_ENDPOINT)

static const uint8_t exporter[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t endpoint[48] = {0xaa, 0xbb, 0xcc, [47] = 0x99}; /* a SHA-384 */
static const uint8_t secret[] = "test fake-credential secret";
/* tls-unique: a TLS 1.2 Finished (12 bytes) or a TLS 1.3 one (32). */
static const uint8_t unique12[12] = {0x51, 0x52, 0x53, [11] = 0x5c};
static const uint8_t unique13[32] = {0x61, 0x62, [31] = 0x7f};
static const uint8_t *unique_data = unique12;
static size_t unique_len = sizeof unique12;

static sz_sasl_opts_t opts_for(unsigned flags)
{
    sz_sasl_opts_t o = {
        .flags = flags,
        .domain = DOMAIN,
        .domain_len = strlen(DOMAIN),
        .cb_exporter = exporter,
        .cb_endpoint = endpoint,
        .cb_endpoint_len = sizeof endpoint,
        .cb_unique = unique_data,
        .cb_unique_len = unique_len,
        .secret = secret,
        .secret_len = sizeof secret - 1,
        .fake_iterations = 4096,
    };
    return o;
}

/* Account "user" with password "pencil" (4096 iterations, fixed salts). */
static sz_scram_creds_t creds_pencil;

static void make_creds(void)
{
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        uint8_t salt[16];
        memset(salt, 0x40 + h, sizeof salt);
        sz_scram_derive((enum sz_hash)h, "pencil", 6, salt, sizeof salt, 4096, &creds_pencil.h[h]);
    }
}

static const EVP_MD *md_of(enum sz_hash h)
{
    return h == SZ_HASH_SHA1 ? EVP_sha1() : h == SZ_HASH_SHA256 ? EVP_sha256() : EVP_sha512();
}

static bool out_eq(const sz_sasl_out_t *o, const char *s)
{
    return o->len == strlen(s) && memcmp(o->data, s, o->len) == 0;
}

static enum sz_sasl_result start_s(sz_sasl_t *s, const char *mech, const char *ir,
                                   sz_sasl_out_t *out)
{
    return sz_sasl_start(s, mech, strlen(mech), (const uint8_t *)ir, ir ? strlen(ir) : 0, out);
}

static enum sz_sasl_result step_s(sz_sasl_t *s, const char *resp, sz_sasl_out_t *out)
{
    return sz_sasl_step(s, (const uint8_t *)resp, strlen(resp), out);
}

/* ------------------------------------------------------------------------ */
/* A SCRAM client, as RFC 5802 §3 describes it                              */

struct client {
    enum sz_hash h;
    const char *password;
    char gs2[64];
    const uint8_t *cb;
    size_t cb_len;
    char cfb[256];      /* client-first-message-bare */
    char final[1024];   /* client-final-message */
    char expect_v[128]; /* server-final-message it expects */
};

/* client-first-message into <out> */
static void c_first(struct client *c, const char *gs2, const char *user, const char *cnonce,
                    char *out)
{
    snprintf(c->gs2, sizeof c->gs2, "%s", gs2);
    snprintf(c->cfb, sizeof c->cfb, "n=%s,r=%s", user, cnonce);
    sprintf(out, "%s%s", gs2, c->cfb);
}

/* Builds c->final and c->expect_v from the server-first message <sf>/<n>;
 * <ext> (",x=..." or NULL) goes before the proof. */
static void c_final(struct client *c, const uint8_t *sf, size_t n, const char *ext)
{
    char sfirst[512], nonce[256] = "", salt_b64[128] = "";
    unsigned iter = 0;
    snprintf(sfirst, sizeof sfirst, "%.*s", (int)n, (const char *)sf);
    sscanf(sfirst, "r=%255[^,],s=%127[^,],i=%u", nonce, salt_b64, &iter);
    uint8_t salt[64], salted[64], ck[64], sk[64], svk[64], sig[64], proof[64];
    ptrdiff_t sl = sz_sasl_b64_decode(salt_b64, strlen(salt_b64), salt, sizeof salt);
    size_t kl = sz_hash_len(c->h);
    const EVP_MD *md = md_of(c->h);
    unsigned int ml;
    PKCS5_PBKDF2_HMAC(c->password, strlen(c->password), salt, (size_t)sl, iter, md, kl, salted);
    HMAC(md, salted, kl, (const uint8_t *)"Client Key", 10, ck, &ml);
    EVP_Digest(ck, kl, sk, NULL, md, NULL);
    HMAC(md, salted, kl, (const uint8_t *)"Server Key", 10, svk, &ml);

    uint8_t cbin[256];
    size_t gl = strlen(c->gs2);
    memcpy(cbin, c->gs2, gl);
    if (c->cb_len)
        memcpy(cbin + gl, c->cb, c->cb_len);
    char cb64[400], wp[800], am[2000];
    sz_sasl_b64_encode(cbin, gl + c->cb_len, cb64);
    snprintf(wp, sizeof wp, "c=%s,r=%s%s", cb64, nonce, ext ? ext : "");
    snprintf(am, sizeof am, "%s,%s,%s", c->cfb, sfirst, wp);
    HMAC(md, sk, kl, (const uint8_t *)am, strlen(am), sig, &ml);
    for (size_t i = 0; i < kl; i++)
        proof[i] = ck[i] ^ sig[i];
    char p64[100];
    sz_sasl_b64_encode(proof, kl, p64);
    snprintf(c->final, sizeof c->final, "%s,p=%s", wp, p64);
    HMAC(md, svk, kl, (const uint8_t *)am, strlen(am), sig, &ml);
    strcpy(c->expect_v, "v=");
    sz_sasl_b64_encode(sig, kl, c->expect_v + 2);
}

/*
 * Runs a whole SCRAM exchange: <mech>, client <gs2> header, password <pw>,
 * server flags <flags>, account lookup answer <st>. Returns the final result
 * and its output in *<out> (valid until *<sp> is freed by the caller).
 */
static enum sz_sasl_result run_scram(sz_sasl_t **sp, unsigned flags, const char *mech,
                                     enum sz_hash h, const char *gs2, const uint8_t *cb,
                                     size_t cb_len, const char *user, const char *pw,
                                     enum sz_sasl_creds_status st, sz_sasl_out_t *out,
                                     struct client *c)
{
    sz_sasl_opts_t o = opts_for(flags);
    sz_sasl_t *s = *sp = sz_sasl_new(&o);
    *c = (struct client){.h = h, .password = pw, .cb = cb, .cb_len = cb_len};
    char cf[512];
    c_first(c, gs2, user, "clientnonce0123", cf);
    enum sz_sasl_result r = start_s(s, mech, cf, out);
    if (r != SZ_SASL_NEED_CREDS)
        return r;
    r = sz_sasl_creds(s, st, &creds_pencil, out);
    if (r != SZ_SASL_CONTINUE)
        return r;
    c_final(c, out->data, out->len, NULL);
    return step_s(s, c->final, out);
}

/* ------------------------------------------------------------------------ */
/* Published examples                                                       */

SZ_TEST(rfc5802_sha1)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    sz_sasl_test_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &out),
                 SZ_SASL_NEED_CREDS);
    SZ_CHECK_STR(out.user, "user");
    SZ_CHECK_INT(out.user_len, 4);
    SZ_CHECK_INT(sz_sasl_mech(s), SZ_SASL_SCRAM_SHA_1);

    sz_scram_creds_t cr;
    memset(&cr, 0, sizeof cr);
    uint8_t salt[16];
    ptrdiff_t sl = sz_sasl_b64_decode("QSXCR+Q6sek8bf92", 16, salt, sizeof salt);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "pencil", 6, salt, (size_t)sl, 4096, &cr.h[0]), 0);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &cr, &out), SZ_SASL_CONTINUE);
    SZ_CHECK(
        out_eq(&out, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"));
    SZ_CHECK_INT(step_s(s,
                        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                        &out),
                 SZ_SASL_SUCCESS);
    SZ_CHECK(out_eq(&out, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));
    SZ_CHECK_STR(out.user, "user");
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NONE);
    /* the exchange is over */
    SZ_CHECK_INT(step_s(s, "c=biws", &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
}

SZ_TEST(rfc7677_sha256)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    sz_sasl_test_set_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &out),
                 SZ_SASL_NEED_CREDS);
    sz_scram_creds_t cr;
    memset(&cr, 0, sizeof cr);
    uint8_t salt[16];
    ptrdiff_t sl = sz_sasl_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof salt);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pencil", 6, salt, (size_t)sl, 4096, &cr.h[1]), 0);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &cr, &out), SZ_SASL_CONTINUE);
    SZ_CHECK(out_eq(&out, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                          "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    SZ_CHECK_INT(step_s(s,
                        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                        &out),
                 SZ_SASL_SUCCESS);
    SZ_CHECK(out_eq(&out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
    sz_sasl_free(s);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */

SZ_TEST(scram_all_hashes)
{
    static const struct {
        const char *mech;
        enum sz_hash h;
    } m[] = {{"SCRAM-SHA-1", SZ_HASH_SHA1},
             {"SCRAM-SHA-256", SZ_HASH_SHA256},
             {"SCRAM-SHA-512", SZ_HASH_SHA512}};
    for (size_t i = 0; i < 3; i++) {
        sz_sasl_t *s;
        sz_sasl_out_t out;
        struct client c;
        /* "n": the client does not bind; fine even when we could */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "n,,", NULL, 0, "user", "pencil",
                               SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        SZ_CHECK(out_eq(&out, c.expect_v));
        SZ_CHECK_STR(out.user, "user");
        sz_sasl_free(s);
        /* "y" without -PLUS on offer: fine */
        SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, m[i].mech, m[i].h, "y,,", NULL, 0, "user",
                               "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        sz_sasl_free(s);
        /* wrong password */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "n,,", NULL, 0, "user", "pencil2",
                               SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
        SZ_CHECK(out.data == NULL && out.len == 0);
        sz_sasl_free(s);
    }
}

SZ_TEST(scram_plus)
{
    static const struct {
        const char *mech;
        enum sz_hash h;
    } m[] = {{"SCRAM-SHA-1-PLUS", SZ_HASH_SHA1},
             {"SCRAM-SHA-256-PLUS", SZ_HASH_SHA256},
             {"SCRAM-SHA-512-PLUS", SZ_HASH_SHA512}};
    uint8_t wrong[48];
    memcpy(wrong, endpoint, sizeof wrong);
    wrong[47] ^= 1;
    for (size_t i = 0; i < 3; i++) {
        sz_sasl_t *s;
        sz_sasl_out_t out;
        struct client c;
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-exporter,,", exporter, 32,
                               "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        SZ_CHECK(out_eq(&out, c.expect_v));
        sz_sasl_free(s);
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-server-end-point,,", endpoint,
                               sizeof endpoint, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        SZ_CHECK(out_eq(&out, c.expect_v));
        sz_sasl_free(s);
        /* with an authzid */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-exporter,a=user@example.com,",
                               exporter, 32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        sz_sasl_free(s);
        /* mismatching data: the client's TLS session is another one */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-server-end-point,,", wrong,
                               sizeof wrong, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
        SZ_CHECK_STR(out.text, "channel-bindings-dont-match");
        sz_sasl_free(s);
        /* the exporter's data under the end-point name */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-server-end-point,,", exporter,
                               32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
        sz_sasl_free(s);
        /* no binding data at all in c= */
        SZ_CHECK_INT(run_scram(&s, TLS_CB, m[i].mech, m[i].h, "p=tls-exporter,,", NULL, 0, "user",
                               "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
        sz_sasl_free(s);
    }
    /* only the types on offer */
    sz_sasl_t *s;
    sz_sasl_out_t out;
    struct client c;
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT, "SCRAM-SHA-256-PLUS",
                           SZ_HASH_SHA256, "p=tls-exporter,,", exporter, 32, "user", "pencil",
                           SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    SZ_CHECK_STR(out.text, "unsupported-channel-binding-type");
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, TLS_CB, "SCRAM-SHA-256-PLUS", SZ_HASH_SHA256, "p=tls-unique,,",
                           exporter, 32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS | SZ_SASL_F_CB_EXPORTER, "SCRAM-SHA-256-PLUS",
                           SZ_HASH_SHA256, "p=tls-exporter,,", exporter, 32, "user", "pencil",
                           SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_SUCCESS);
    sz_sasl_free(s);
}

SZ_TEST(tls_unique)
{
    static const struct {
        const char *mech;
        enum sz_hash h;
    } m[] = {{"SCRAM-SHA-1-PLUS", SZ_HASH_SHA1},
             {"SCRAM-SHA-256-PLUS", SZ_HASH_SHA256},
             {"SCRAM-SHA-512-PLUS", SZ_HASH_SHA512}};
    const unsigned tls12 = SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT | SZ_SASL_F_CB_UNIQUE;
    const unsigned tls13_on = TLS_CB | SZ_SASL_F_CB_UNIQUE | SZ_SASL_F_CB_UNLISTED;
    sz_sasl_t *s;
    sz_sasl_out_t out;
    struct client c;
    char buf[SZ_SASL_CB_XML_MAX];

    /* TLS 1.2 (RFC 5929 §3): listed in XEP-0440 and accepted. */
    sz_sasl_cb_types(tls12, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                      "<channel-binding type='tls-server-end-point'/>"
                      "<channel-binding type='tls-unique'/>"
                      "</sasl-channel-binding>");
    /* tls-unique alone is enough to offer -PLUS */
    SZ_CHECK(sz_sasl_mech_mask(SZ_SASL_F_TLS | SZ_SASL_F_CB_UNIQUE) &
             (1u << SZ_SASL_SCRAM_SHA_256_PLUS));
    for (size_t i = 0; i < 3; i++) {
        SZ_CHECK_INT(run_scram(&s, tls12, m[i].mech, m[i].h, "p=tls-unique,,", unique12, 12,
                               "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        SZ_CHECK(out_eq(&out, c.expect_v));
        sz_sasl_free(s);
    }
    /* other data under its name: the bindings do not match */
    SZ_CHECK_INT(run_scram(&s, tls12, "SCRAM-SHA-256-PLUS", SZ_HASH_SHA256, "p=tls-unique,,",
                           endpoint, 12, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    SZ_CHECK_STR(out.scram_error, "e=channel-bindings-dont-match");
    SZ_CHECK(!out.counts);
    sz_sasl_free(s);
    /* c= naming another gs2 header than the client-first message had */
    SZ_CHECK_INT(run_scram(&s, tls12, "SCRAM-SHA-256-PLUS", SZ_HASH_SHA256, "p=tls-unique,,",
                           unique12, 12, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_SUCCESS);
    sz_sasl_free(s);
    {
        sz_sasl_opts_t o = opts_for(tls12);
        s = sz_sasl_new(&o);
        c = (struct client){.h = SZ_HASH_SHA256, .password = "pencil", .cb = unique12,
                            .cb_len = 12};
        char cf[512];
        c_first(&c, "p=tls-unique,,", "user", "nonce9", cf);
        SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256-PLUS", cf, &out), SZ_SASL_NEED_CREDS);
        SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &creds_pencil, &out),
                     SZ_SASL_CONTINUE);
        snprintf(c.gs2, sizeof c.gs2, "p=tls-server-end-point,,");
        c_final(&c, out.data, out.len, NULL);
        SZ_CHECK_INT(step_s(s, c.final, &out), SZ_SASL_FAILURE);
        SZ_CHECK_STR(out.scram_error, "e=channel-bindings-dont-match");
        sz_sasl_free(s);
    }

    /* TLS 1.3 with tls.unique_on_tls13 (the default): accepted with the
     * client's Finished, never listed (RFC 9266 §1). */
    unique_data = unique13;
    unique_len = sizeof unique13;
    sz_sasl_cb_types(tls13_on, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                      "<channel-binding type='tls-exporter'/>"
                      "<channel-binding type='tls-server-end-point'/>"
                      "</sasl-channel-binding>");
    for (size_t i = 0; i < 3; i++) {
        SZ_CHECK_INT(run_scram(&s, tls13_on, m[i].mech, m[i].h, "p=tls-unique,,", unique13, 32,
                               "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                     SZ_SASL_SUCCESS);
        SZ_CHECK(out_eq(&out, c.expect_v));
        sz_sasl_free(s);
    }
    /* ... the other types still work beside it */
    SZ_CHECK_INT(run_scram(&s, tls13_on, "SCRAM-SHA-512-PLUS", SZ_HASH_SHA512, "p=tls-exporter,,",
                           exporter, 32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_SUCCESS);
    sz_sasl_free(s);

    /* TLS 1.3 with it off: RFC 5802 §7 unsupported-channel-binding-type,
     * before any credential work, and it does not count. */
    SZ_CHECK_INT(run_scram(&s, TLS_CB, "SCRAM-SHA-512-PLUS", SZ_HASH_SHA512, "p=tls-unique,,",
                           unique13, 32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    SZ_CHECK_STR(out.scram_error, "e=unsupported-channel-binding-type");
    SZ_CHECK(!out.counts);
    sz_sasl_free(s);
    /* the flag without data, or data without the flag: not usable */
    {
        sz_sasl_opts_t o = opts_for(tls13_on);
        o.cb_unique = NULL;
        s = sz_sasl_new(&o);
        SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256-PLUS", "p=tls-unique,,n=user,r=abc", &out),
                     SZ_SASL_FAILURE);
        SZ_CHECK_STR(out.scram_error, "e=unsupported-channel-binding-type");
        sz_sasl_free(s);
        o = opts_for(TLS_CB);
        s = sz_sasl_new(&o);
        SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256-PLUS", "p=tls-unique,,n=user,r=abc", &out),
                     SZ_SASL_FAILURE);
        SZ_CHECK_STR(out.scram_error, "e=unsupported-channel-binding-type");
        sz_sasl_free(s);
    }
    /* an unknown type */
    SZ_CHECK_INT(run_scram(&s, tls13_on, "SCRAM-SHA-256-PLUS", SZ_HASH_SHA256, "p=tls-foo,,",
                           unique13, 32, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_STR(out.scram_error, "e=unsupported-channel-binding-type");
    sz_sasl_free(s);
    unique_data = unique12;
    unique_len = sizeof unique12;
}

SZ_TEST(downgrade)
{
    /* RFC 5802 §6: "y" says "I could bind but you cannot"; we offered
     * -PLUS, so someone removed it on the way. */
    sz_sasl_t *s;
    sz_sasl_out_t out;
    struct client c;
    SZ_CHECK_INT(run_scram(&s, TLS_CB, "SCRAM-SHA-256", SZ_HASH_SHA256, "y,,", NULL, 0, "user",
                           "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT, "SCRAM-SHA-1", SZ_HASH_SHA1,
                           "y,,", NULL, 0, "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    /* a flag without its data: the binding cannot be chosen, but what was
     * advertised still counts for the downgrade check */
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT);
    o.cb_endpoint = NULL;
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", "y,,n=user,r=abc", &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1-PLUS", "p=tls-server-end-point,,n=user,r=abc", &out),
                 SZ_SASL_FAILURE);
    SZ_CHECK_STR(out.text, "unsupported-channel-binding-type");
    sz_sasl_free(s);
    /* cb flags without TLS mean nothing: no -PLUS offered, "y" is fine */
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_CB_EXPORTER, "SCRAM-SHA-1", SZ_HASH_SHA1, "y,,", NULL, 0,
                           "user", "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_SUCCESS);
    sz_sasl_free(s);
    /* SCRAM-SHA-1-PLUS not offered (tls.scram_sha1_plus off): the SHA-1
     * family has no binding, so "y" with SCRAM-SHA-1 is honest and
     * accepted; SHA-256 still has its -PLUS, so "y" there is refused. */
    unsigned no1 = TLS_CB | SZ_SASL_F_NO_SHA1_PLUS;
    SZ_CHECK(!(sz_sasl_mech_mask(no1) & (1u << SZ_SASL_SCRAM_SHA_1_PLUS)));
    SZ_CHECK(sz_sasl_mech_mask(no1) & (1u << SZ_SASL_SCRAM_SHA_256_PLUS));
    SZ_CHECK_INT(run_scram(&s, no1, "SCRAM-SHA-1", SZ_HASH_SHA1, "y,,", NULL, 0, "user", "pencil",
                           SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_SUCCESS);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, no1, "SCRAM-SHA-256", SZ_HASH_SHA256, "y,,", NULL, 0, "user",
                           "pencil", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_STR(out.text, "server-does-support-channel-binding");
    sz_sasl_free(s);
    o = opts_for(no1);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1-PLUS", "p=tls-exporter,,n=user,r=abc", &out),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_INVALID_MECHANISM);
    sz_sasl_free(s);
}

SZ_TEST(no_initial_response)
{
    sz_sasl_opts_t o = opts_for(TLS_CB);
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    struct client c = {.h = SZ_HASH_SHA512, .password = "pencil"};
    SZ_CHECK_INT(sz_sasl_start(s, "SCRAM-SHA-512", 13, NULL, 0, &out), SZ_SASL_CONTINUE);
    SZ_CHECK_INT(out.len, 0);
    char cf[256];
    c_first(&c, "n,,", "USER", "abc", cf);
    SZ_CHECK_INT(step_s(s, cf, &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_STR(out.user, "user"); /* UsernameCaseMapped */
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &creds_pencil, &out), SZ_SASL_CONTINUE);
    /* server nonce: client nonce + 32 base64 characters (24 bytes) */
    SZ_CHECK(out.len > 7 && memcmp(out.data, "r=abc", 5) == 0);
    const char *comma = memchr(out.data, ',', out.len);
    SZ_CHECK(comma && comma - (const char *)out.data == 2 + 3 + 32);
    c_final(&c, out.data, out.len, ",x=ignored-extension");
    SZ_CHECK_INT(step_s(s, c.final, &out), SZ_SASL_SUCCESS);
    SZ_CHECK(out_eq(&out, c.expect_v));
    sz_sasl_free(s);
}

SZ_TEST(username_escapes)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_out_t out;
    static const struct {
        const char *msg;
        const char *user; /* NULL: fails */
        enum sz_sasl_err err;
    } t[] = {
        {"n,,n=a=2Cb,r=x", "a,b", 0},
        {"n,,n=a=3Db,r=x", "a=b", 0},
        {"n,,n==3D=2C,r=x", "=,", 0},
        {"n,,n=J\xc3\x9cRGEN,r=x", "j\xc3\xbcrgen", 0},
        {"n,,n=\uff21b,r=x", "ab", 0}, /* FULLWIDTH A: width-mapped, lowercased */
        {"n,,n=a=2cb,r=x", NULL, SZ_SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=a=2,r=x", NULL, SZ_SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=a=,r=x", NULL, SZ_SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=a=41,r=x", NULL, SZ_SASL_ERR_MALFORMED_REQUEST},
        {"n,,n==,r=x", NULL, SZ_SASL_ERR_MALFORMED_REQUEST},
        /* not a localpart: no account can have it */
        {"n,,n=user@example.com,r=x", NULL, SZ_SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=a b,r=x", NULL, SZ_SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=\xff,r=x", NULL, SZ_SASL_ERR_NOT_AUTHORIZED},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sz_sasl_t *s = sz_sasl_new(&o);
        enum sz_sasl_result r = start_s(s, "SCRAM-SHA-256", t[i].msg, &out);
        if (t[i].user) {
            SZ_CHECK_INT(r, SZ_SASL_NEED_CREDS);
            SZ_CHECK_STR(out.user, t[i].user);
        } else {
            if (r != SZ_SASL_FAILURE || out.err != t[i].err)
                printf("# case %zu\n", i);
            SZ_CHECK_INT(r, SZ_SASL_FAILURE);
            SZ_CHECK_INT(out.err, t[i].err);
        }
        sz_sasl_free(s);
    }
}

SZ_TEST(authzid)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_out_t out;
    static const struct {
        const char *msg;
        enum sz_sasl_err err;
    } t[] = {
        {"n,a=user@example.com,n=user,r=x", SZ_SASL_ERR_NONE},
        {"n,a=User@Example.COM,n=USER,r=x", SZ_SASL_ERR_NONE},
        {"n,a=other@example.com,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=user@example.org,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=user@example.com/res,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=example.com,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=user,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=@@,n=user,r=x", SZ_SASL_ERR_INVALID_AUTHZID},
        {"n,a=us=3Der@example.com,n=us=3Der,r=x", SZ_SASL_ERR_NONE},
        {"n,a=us=3er@example.com,n=user,r=x", SZ_SASL_ERR_MALFORMED_REQUEST},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sz_sasl_t *s = sz_sasl_new(&o);
        enum sz_sasl_result r = start_s(s, "SCRAM-SHA-1", t[i].msg, &out);
        if (t[i].err == SZ_SASL_ERR_NONE) {
            SZ_CHECK_INT(r, SZ_SASL_NEED_CREDS);
        } else {
            if (r != SZ_SASL_FAILURE || out.err != t[i].err)
                printf("# case %zu\n", i);
            SZ_CHECK_INT(r, SZ_SASL_FAILURE);
            SZ_CHECK_INT(out.err, t[i].err);
        }
        sz_sasl_free(s);
    }
}

/* client-first messages that fail with malformed-request */
SZ_TEST(malformed_first)
{
    static const struct {
        const char *mech, *msg;
    } t[] = {
        {"SCRAM-SHA-256", ""},
        {"SCRAM-SHA-256", "n"},
        {"SCRAM-SHA-256", "n,"},
        {"SCRAM-SHA-256", "n,,"},
        {"SCRAM-SHA-256", "x,,n=user,r=abc"},
        {"SCRAM-SHA-256", "N,,n=user,r=abc"},
        {"SCRAM-SHA-256", "F,n,,n=user,r=abc"},
        {"SCRAM-SHA-256", "n,n=user,r=abc"},
        {"SCRAM-SHA-256", "n,,r=abc,n=user"},
        {"SCRAM-SHA-256", "n,,n=user"},
        {"SCRAM-SHA-256", "n,,n=user,"},
        {"SCRAM-SHA-256", "n,,n=user,r="},
        {"SCRAM-SHA-256", "n,,n=,r=abc"},
        {"SCRAM-SHA-256", "n,,n=user,r=abc,"},
        {"SCRAM-SHA-256", "n,,n=user,r=abc,x"},
        {"SCRAM-SHA-256", "n,,n=user,r=abc,=x"},
        {"SCRAM-SHA-256", "n,,n=user,r=ab c"},
        {"SCRAM-SHA-256", "n,,n=user,r=ab\x7f"},
        {"SCRAM-SHA-256", "n,,n=user,r=\xc3\xa9"},
        {"SCRAM-SHA-256", "n,,m=ext,n=user,r=abc"}, /* reserved-mext */
        {"SCRAM-SHA-256", "n,,n=user,r=abc,m=ext"},
        {"SCRAM-SHA-256", "n,a=,n=user,r=abc"},
        {"SCRAM-SHA-256", "n,a=user@example.com"},
        {"SCRAM-SHA-256", "p=tls-exporter,,n=user,r=abc"}, /* p without -PLUS */
        {"SCRAM-SHA-256-PLUS", "n,,n=user,r=abc"},         /* -PLUS without p */
        {"SCRAM-SHA-256-PLUS", "y,,n=user,r=abc"},
        {"SCRAM-SHA-256-PLUS", "p=,,n=user,r=abc"},
        {"SCRAM-SHA-256-PLUS", "p=tls_exporter,,n=user,r=abc"},
        {"SCRAM-SHA-256-PLUS", "p,,n=user,r=abc"},
        {"PLAIN", ""},
        {"PLAIN", "user"},
        {"PLAIN", "\0user"},
    };
    sz_sasl_opts_t o = opts_for(TLS_CB);
    sz_sasl_out_t out;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sz_sasl_t *s = sz_sasl_new(&o);
        size_t len = strlen(t[i].msg);
        if (i == sizeof t / sizeof t[0] - 1)
            len = 5;
        enum sz_sasl_result r =
            sz_sasl_start(s, t[i].mech, strlen(t[i].mech), (const uint8_t *)t[i].msg, len, &out);
        if (r != SZ_SASL_FAILURE || out.err != SZ_SASL_ERR_MALFORMED_REQUEST)
            printf("# case %zu: %s\n", i, t[i].msg);
        SZ_CHECK_INT(r, SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
        SZ_CHECK_STR(sz_sasl_err_name(out.err), "malformed-request");
        sz_sasl_free(s);
    }
    /* NUL inside a SCRAM message; oversized message */
    sz_sasl_t *s = sz_sasl_new(&o);
    SZ_CHECK_INT(sz_sasl_start(s, "SCRAM-SHA-1", 11, (const uint8_t *)"n,,n=us\0r,r=abc", 15, &out),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    static char big[SZ_SASL_MSG_MAX_BYTES + 16];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "n,,n=user,r=", 12);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", big, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    /* nonce longer than SZ_SASL_NONCE_MAX */
    big[12 + SZ_SASL_NONCE_MAX + 1] = '\0';
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", big, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    big[12 + SZ_SASL_NONCE_MAX] = '\0';
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", big, &out), SZ_SASL_NEED_CREDS);
    sz_sasl_free(s);
}

/* Sets up an exchange waiting for client-final; returns it with the client
 * state in *<c>. */
static sz_sasl_t *at_final(struct client *c, unsigned flags, const char *mech, enum sz_hash h,
                           const char *gs2, const uint8_t *cb, size_t cb_len)
{
    sz_sasl_opts_t o = opts_for(flags);
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    *c = (struct client){.h = h, .password = "pencil", .cb = cb, .cb_len = cb_len};
    char cf[256];
    c_first(c, gs2, "user", "nonce", cf);
    start_s(s, mech, cf, &out);
    sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &creds_pencil, &out);
    c_final(c, out.data, out.len, NULL);
    return s;
}

SZ_TEST(malformed_final)
{
    struct client c;
    sz_sasl_out_t out;
    char msg[2200];
    /* edits of a valid client-final, each expected to fail as given */
    for (int k = 0; k < 14; k++) {
        sz_sasl_t *s = at_final(&c, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0);
        char *p = strstr(c.final, ",p=");
        char *r = strstr(c.final, ",r=");
        enum sz_sasl_err want = SZ_SASL_ERR_MALFORMED_REQUEST;
        switch (k) {
        case 0: /* proof not last */
            snprintf(msg, sizeof msg, "%s,x=1", c.final);
            break;
        case 1: /* no proof */
            snprintf(msg, sizeof msg, "%.*s", (int)(p - c.final), c.final);
            break;
        case 2: /* proof too short */
            snprintf(msg, sizeof msg, "%.*s,p=AAAA", (int)(p - c.final), c.final);
            break;
        case 3: /* proof not base64 */
            snprintf(msg, sizeof msg, "%.*s,p=!!!!", (int)(p - c.final), c.final);
            break;
        case 4: /* c= not base64 */
            snprintf(msg, sizeof msg, "c=biw%s", r);
            break;
        case 5: /* attributes out of order */
            snprintf(msg, sizeof msg, "%s,%.*s", r + 1, (int)(r - c.final), c.final);
            break;
        case 6: /* m= extension */
            snprintf(msg, sizeof msg, "%.*s,m=1%s", (int)(p - c.final), c.final, p);
            break;
        case 7: /* empty */
            msg[0] = '\0';
            break;
        case 8: /* c= for another gs2 header ("y,,") */
            snprintf(msg, sizeof msg, "c=eSws%s", r);
            want = SZ_SASL_ERR_NOT_AUTHORIZED;
            break;
        case 9: /* nonce changed */
            snprintf(msg, sizeof msg, "%.*s,r=nonceX%s", (int)(r - c.final), c.final, p);
            want = SZ_SASL_ERR_NOT_AUTHORIZED;
            break;
        case 10: /* nonce: only the client part */
            snprintf(msg, sizeof msg, "%.*s,r=nonce%s", (int)(r - c.final), c.final, p);
            want = SZ_SASL_ERR_NOT_AUTHORIZED;
            break;
        case 11: /* proof bit flipped */
            snprintf(msg, sizeof msg, "%s", c.final);
            msg[strlen(msg) - 5] = msg[strlen(msg) - 5] == 'A' ? 'B' : 'A';
            want = SZ_SASL_ERR_NOT_AUTHORIZED;
            break;
        case 12: /* trailing comma */
            snprintf(msg, sizeof msg, "%s,", c.final);
            break;
        case 13: /* two proofs */
            snprintf(msg, sizeof msg, "%s%s", c.final, p);
            break;
        }
        SZ_CHECK_INT(step_s(s, msg, &out), SZ_SASL_FAILURE);
        if (out.err != want)
            printf("# case %d: %s\n", k, msg);
        SZ_CHECK_INT(out.err, want);
        sz_sasl_free(s);
    }
    /* -PLUS: c= without the binding data */
    sz_sasl_t *s =
        at_final(&c, TLS_CB, "SCRAM-SHA-1-PLUS", SZ_HASH_SHA1, "p=tls-exporter,,", exporter, 31);
    SZ_CHECK_INT(step_s(s, c.final, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    s = at_final(&c, TLS_CB, "SCRAM-SHA-1-PLUS", SZ_HASH_SHA1, "p=tls-exporter,,", exporter, 32);
    SZ_CHECK_INT(step_s(s, c.final, &out), SZ_SASL_SUCCESS);
    sz_sasl_free(s);
}

/* ------------------------------------------------------------------------ */
/* Mechanism selection                                                      */

SZ_TEST(mechanism_errors)
{
    sz_sasl_out_t out;
    static const struct {
        unsigned flags;
        const char *mech;
        enum sz_sasl_err err;
    } t[] = {
        {TLS_CB, "DIGEST-MD5", SZ_SASL_ERR_INVALID_MECHANISM},
        {TLS_CB, "scram-sha-1", SZ_SASL_ERR_INVALID_MECHANISM},
        {TLS_CB, "SCRAM-SHA-1 ", SZ_SASL_ERR_INVALID_MECHANISM},
        {TLS_CB, "", SZ_SASL_ERR_INVALID_MECHANISM},
        {SZ_SASL_F_TLS, "SCRAM-SHA-256-PLUS", SZ_SASL_ERR_INVALID_MECHANISM},
        {SZ_SASL_F_CB_EXPORTER, "SCRAM-SHA-256-PLUS", SZ_SASL_ERR_INVALID_MECHANISM},
        {0, "PLAIN", SZ_SASL_ERR_ENCRYPTION_REQUIRED},
        {SZ_SASL_F_TLS | SZ_SASL_F_NO_SHA1, "SCRAM-SHA-1", SZ_SASL_ERR_MECHANISM_TOO_WEAK},
        {TLS_CB | SZ_SASL_F_NO_SHA1, "SCRAM-SHA-1-PLUS", SZ_SASL_ERR_MECHANISM_TOO_WEAK},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sz_sasl_opts_t o = opts_for(t[i].flags);
        sz_sasl_t *s = sz_sasl_new(&o);
        SZ_CHECK_INT(start_s(s, t[i].mech, "n,,n=user,r=abc", &out), SZ_SASL_FAILURE);
        if (out.err != t[i].err)
            printf("# case %zu\n", i);
        SZ_CHECK_INT(out.err, t[i].err);
        SZ_CHECK_INT(sz_sasl_mech(s), SZ_SASL_MECH_COUNT);
        sz_sasl_free(s);
    }
    /* started twice */
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_t *s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", "n,,n=user,r=abc", &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", "n,,n=user,r=abc", &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    /* a response while the credentials are pending (client out of turn),
     * and credentials nobody asked for */
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-1", "n,,n=user,r=abc", &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_INT(step_s(s, "c=biws", &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &creds_pencil, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    SZ_CHECK_INT(step_s(s, "x", &out), SZ_SASL_FAILURE);
    sz_sasl_free(s);
    /* an empty initial response ("=") is a message, and an invalid one */
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(sz_sasl_start(s, "SCRAM-SHA-1", 11, (const uint8_t *)"", 0, &out),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
}

SZ_TEST(abort_and_caller_conditions)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_out_t out;
    sz_sasl_t *s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", NULL, &out), SZ_SASL_CONTINUE);
    SZ_CHECK_INT(sz_sasl_fail(s, SZ_SASL_ERR_ABORTED, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_ABORTED);
    SZ_CHECK_STR(sz_sasl_err_name(out.err), "aborted");
    SZ_CHECK_INT(step_s(s, "n,,n=user,r=abc", &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    sz_sasl_free(s);
    /* a <response> that is not base64 */
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", NULL, &out), SZ_SASL_CONTINUE);
    uint8_t buf[16];
    SZ_CHECK_INT(sz_sasl_text_decode("bi,,", 4, buf, sizeof buf), -EINVAL);
    SZ_CHECK_INT(sz_sasl_fail(s, SZ_SASL_ERR_INCORRECT_ENCODING, &out), SZ_SASL_FAILURE);
    SZ_CHECK_STR(sz_sasl_err_name(out.err), "incorrect-encoding");
    sz_sasl_free(s);
}

SZ_TEST(err_names)
{
    static const char *const want[] = {"",
                                       "aborted",
                                       "account-disabled",
                                       "credentials-expired",
                                       "encryption-required",
                                       "incorrect-encoding",
                                       "invalid-authzid",
                                       "invalid-mechanism",
                                       "malformed-request",
                                       "mechanism-too-weak",
                                       "not-authorized",
                                       "temporary-auth-failure"};
    SZ_CHECK_INT(sizeof want / sizeof want[0], SZ_SASL_ERR_COUNT);
    for (int e = 0; e < SZ_SASL_ERR_COUNT; e++)
        SZ_CHECK_STR(sz_sasl_err_name((enum sz_sasl_err)e), want[e]);
    SZ_CHECK_STR(sz_sasl_err_name(SZ_SASL_ERR_COUNT), "");
    SZ_CHECK_STR(sz_sasl_mech_name(SZ_SASL_SCRAM_SHA_256_PLUS), "SCRAM-SHA-256-PLUS");
    SZ_CHECK(sz_sasl_mech_name(SZ_SASL_MECH_COUNT) == NULL);
}

/* ------------------------------------------------------------------------ */
/* Account states, unknown users                                            */

SZ_TEST(account_states)
{
    sz_sasl_t *s;
    sz_sasl_out_t out;
    struct client c;
    /* disabled / expired are told only to whoever proved the password */
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0,
                           "user", "pencil", SZ_SASL_CREDS_DISABLED, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_ACCOUNT_DISABLED);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0,
                           "user", "wrong", SZ_SASL_CREDS_DISABLED, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-512", SZ_HASH_SHA512, "n,,", NULL, 0,
                           "user", "pencil", SZ_SASL_CREDS_EXPIRED, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_CREDENTIALS_EXPIRED);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-512", SZ_HASH_SHA512, "n,,", NULL, 0,
                           "user", "wrong", SZ_SASL_CREDS_EXPIRED, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);
    /* storage failure */
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-1", SZ_HASH_SHA1, "n,,", NULL, 0, "user",
                           "pencil", SZ_SASL_CREDS_UNAVAILABLE, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE);
    sz_sasl_free(s);
}

/* server-first for <user> when the account does not exist */
static void unknown_first(const char *user, const uint8_t *sec, size_t seclen, uint32_t fake_iter,
                          char *sfirst, size_t cap, enum sz_sasl_result *final)
{
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    o.secret = sec;
    o.secret_len = seclen;
    o.fake_iterations = fake_iter;
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_test_set_nonce(s, "SERVER");
    sz_sasl_out_t out;
    struct client c = {.h = SZ_HASH_SHA256, .password = "pencil"};
    char cf[256];
    c_first(&c, "n,,", user, "abc", cf);
    *final = start_s(s, "SCRAM-SHA-256", cf, &out);
    if (*final == SZ_SASL_NEED_CREDS)
        *final = sz_sasl_creds(s, SZ_SASL_CREDS_NOT_FOUND, NULL, &out);
    snprintf(sfirst, cap, "%.*s", (int)out.len, (const char *)out.data);
    if (*final == SZ_SASL_CONTINUE) {
        c_final(&c, out.data, out.len, NULL);
        *final = step_s(s, c.final, &out);
        if (*final == SZ_SASL_FAILURE && out.err != SZ_SASL_ERR_NOT_AUTHORIZED)
            *final = SZ_SASL_CONTINUE; /* flag a wrong condition */
    }
    sz_sasl_free(s);
}

SZ_TEST(unknown_user)
{
    char a[256], b[256], d[256], e[256];
    enum sz_sasl_result ra, rb, rd, re;
    unknown_first("ghost", secret, sizeof secret - 1, 4096, a, sizeof a, &ra);
    unknown_first("Ghost", secret, sizeof secret - 1, 4096, b, sizeof b, &rb);
    unknown_first("phantom", secret, sizeof secret - 1, 4096, d, sizeof d, &rd);
    unknown_first("ghost", (const uint8_t *)"other", 5, 10000, e, sizeof e, &re);
    /* the same exchange as a wrong password: server-first, then
     * not-authorized after the proof */
    SZ_CHECK_INT(ra, SZ_SASL_FAILURE);
    SZ_CHECK_INT(rb, SZ_SASL_FAILURE);
    SZ_CHECK_INT(rd, SZ_SASL_FAILURE);
    SZ_CHECK_INT(re, SZ_SASL_FAILURE);
    /* stable salt per (secret, normalized user), like a real account */
    SZ_CHECK_STR(a, b);
    SZ_CHECK(strstr(a, "r=abcSERVER,s=") == a);
    SZ_CHECK(strstr(a, ",i=4096") != NULL);
    /* 16-byte salt: 24 base64 characters */
    SZ_CHECK(strlen(a) == strlen("r=abcSERVER,s=,i=4096") + 24);
    SZ_CHECK(strcmp(a, d) != 0);
    SZ_CHECK(strcmp(a, e) != 0);
    SZ_CHECK(strstr(e, ",i=10000") != NULL);

    /* The same shape for an account that lacks credentials for this hash,
     * and for a known user with a wrong password. */
    sz_scram_creds_t partial = creds_pencil;
    memset(&partial.h[SZ_HASH_SHA256], 0, sizeof partial.h[0]);
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    struct client c = {.h = SZ_HASH_SHA256, .password = "pencil"};
    char cf[256];
    c_first(&c, "n,,", "user", "abc", cf);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", cf, &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &partial, &out), SZ_SASL_CONTINUE);
    c_final(&c, out.data, out.len, NULL);
    SZ_CHECK_INT(step_s(s, c.final, &out), SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    sz_sasl_free(s);

    /* Default (per-process) secret: still stable within the process. */
    unknown_first("ghost", NULL, 0, 0, a, sizeof a, &ra);
    unknown_first("ghost", NULL, 0, 0, b, sizeof b, &rb);
    SZ_CHECK_STR(a, b);
    SZ_CHECK(strstr(a, ",i=4096") != NULL);
    SZ_CHECK_INT(ra, SZ_SASL_FAILURE);
}

/* ------------------------------------------------------------------------ */
/* PLAIN                                                                    */

static enum sz_sasl_result plain(unsigned flags, const char *msg, size_t len,
                                 enum sz_sasl_creds_status st, const sz_scram_creds_t *cr,
                                 sz_sasl_out_t *out, char *user)
{
    sz_sasl_opts_t o = opts_for(flags);
    sz_sasl_t *s = sz_sasl_new(&o);
    enum sz_sasl_result r = sz_sasl_start(s, "PLAIN", 5, (const uint8_t *)msg, len, out);
    if (r == SZ_SASL_NEED_CREDS) {
        if (user)
            strcpy(user, out->user);
        r = sz_sasl_creds(s, st, cr, out);
    }
    if (r == SZ_SASL_SUCCESS && user)
        strcpy(user, out->user);
    sz_sasl_free(s);
    return r;
}

#define P(lit) lit, sizeof(lit) - 1

SZ_TEST(plain)
{
    sz_sasl_out_t out;
    char user[64] = "";
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pencil"), SZ_SASL_CREDS_FOUND, &creds_pencil, &out, user),
        SZ_SASL_SUCCESS);
    SZ_CHECK_INT(out.len, 0);
    SZ_CHECK_STR(user, "user");
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("user@example.com\0USER\0pencil"), SZ_SASL_CREDS_FOUND,
                       &creds_pencil, &out, user),
                 SZ_SASL_SUCCESS);
    SZ_CHECK_STR(user, "user");
    /* wrong password, unknown user: the same answer */
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pencil "), SZ_SASL_CREDS_FOUND, &creds_pencil, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0ghost\0pencil"), SZ_SASL_CREDS_NOT_FOUND, NULL, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    /* a password that is no OpaqueString can match nothing */
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pen\tcil"), SZ_SASL_CREDS_FOUND, &creds_pencil, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    /* account states */
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("\0user\0pencil"), SZ_SASL_CREDS_DISABLED, &creds_pencil,
                       &out, NULL),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_ACCOUNT_DISABLED);
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pencil"), SZ_SASL_CREDS_EXPIRED, &creds_pencil, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_CREDENTIALS_EXPIRED);
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0wrong"), SZ_SASL_CREDS_EXPIRED, &creds_pencil, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pencil"), SZ_SASL_CREDS_UNAVAILABLE, NULL, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE);
    /* authzid */
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("admin@example.com\0user\0pencil"), SZ_SASL_CREDS_FOUND,
                       &creds_pencil, &out, NULL),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_INVALID_AUTHZID);
    /* malformed */
    static const struct {
        const char *m;
        size_t n;
    } bad[] = {{P("\0user\0")},
               {P("\0\0pencil")},
               {P("user\0pencil")},
               {P("\0user\0pen\0cil")},
               {P("\0user\0pencil\0")}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        SZ_CHECK_INT(plain(SZ_SASL_F_TLS, bad[i].m, bad[i].n, SZ_SASL_CREDS_FOUND, &creds_pencil,
                           &out, NULL),
                     SZ_SASL_FAILURE);
        SZ_CHECK_INT(out.err, SZ_SASL_ERR_MALFORMED_REQUEST);
    }
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0us/er\0pencil"), SZ_SASL_CREDS_FOUND, &creds_pencil, &out, NULL),
        SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
}

SZ_TEST(plain_policy_and_prep)
{
    sz_sasl_out_t out;
    /* refused without TLS unless allowed */
    SZ_CHECK_INT(plain(0, P("\0user\0pencil"), SZ_SASL_CREDS_FOUND, &creds_pencil, &out, NULL),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_ENCRYPTION_REQUIRED);
    SZ_CHECK_INT(plain(SZ_SASL_F_PLAIN_NO_TLS, P("\0user\0pencil"), SZ_SASL_CREDS_FOUND,
                       &creds_pencil, &out, NULL),
                 SZ_SASL_SUCCESS);
    /* no initial response: empty challenge, then the message */
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    sz_sasl_t *s = sz_sasl_new(&o);
    SZ_CHECK_INT(sz_sasl_start(s, "PLAIN", 5, NULL, 0, &out), SZ_SASL_CONTINUE);
    SZ_CHECK_INT(out.len, 0);
    SZ_CHECK_INT(sz_sasl_step(s, (const uint8_t *)"\0user\0pencil", 12, &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_FOUND, &creds_pencil, &out), SZ_SASL_SUCCESS);
    sz_sasl_free(s);

    /* Stored "pen cil"; typed with a NO-BREAK SPACE, or decomposed. */
    sz_scram_creds_t cr;
    SZ_CHECK_INT(sz_scram_derive_all("pen cil caf\xc3\xa9", 13, 16, &cr), 0);
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("\0user\0pen\u00a0cil cafe\u0301"), SZ_SASL_CREDS_FOUND,
                       &cr, &out, NULL),
                 SZ_SASL_SUCCESS);
    SZ_CHECK_INT(
        plain(SZ_SASL_F_TLS, P("\0user\0pen cil cafe"), SZ_SASL_CREDS_FOUND, &cr, &out, NULL),
        SZ_SASL_FAILURE);
    /* only SHA-1 (or only SHA-512) stored: still verifiable */
    sz_scram_creds_t only = cr;
    memset(&only.h[SZ_HASH_SHA256], 0, sizeof only.h[0]);
    memset(&only.h[SZ_HASH_SHA512], 0, sizeof only.h[0]);
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("\0user\0pen cil caf\xc3\xa9"), SZ_SASL_CREDS_FOUND, &only,
                       &out, NULL),
                 SZ_SASL_SUCCESS);
    only = cr;
    memset(&only.h[SZ_HASH_SHA256], 0, sizeof only.h[0]);
    memset(&only.h[SZ_HASH_SHA1], 0, sizeof only.h[0]);
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("\0user\0pen cil caf\xc3\xa9"), SZ_SASL_CREDS_FOUND, &only,
                       &out, NULL),
                 SZ_SASL_SUCCESS);
    /* no usable credentials at all: like an unknown user */
    memset(&only, 0, sizeof only);
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, P("\0user\0pen cil caf\xc3\xa9"), SZ_SASL_CREDS_FOUND, &only,
                       &out, NULL),
                 SZ_SASL_FAILURE);
    SZ_CHECK_INT(out.err, SZ_SASL_ERR_NOT_AUTHORIZED);
}

/* ------------------------------------------------------------------------ */
/* Feature lists                                                            */

/* Which failures use up the retry budget (sz_sasl_out_t.counts): only
 * those about the credentials. */
SZ_TEST(failure_kinds)
{
    sz_sasl_t *s;
    sz_sasl_out_t out;
    struct client c;
    char user[64];

    /* wrong password, SCRAM and PLAIN; an unknown user; a disabled
     * account (after the proof): count */
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0,
                           "user", "wrong", SZ_SASL_CREDS_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK(out.counts && out.err == SZ_SASL_ERR_NOT_AUTHORIZED && !out.scram_error);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0,
                           "nobody", "pencil", SZ_SASL_CREDS_NOT_FOUND, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK(out.counts);
    sz_sasl_free(s);
    SZ_CHECK_INT(run_scram(&s, SZ_SASL_F_TLS, "SCRAM-SHA-256", SZ_HASH_SHA256, "n,,", NULL, 0,
                           "user", "pencil", SZ_SASL_CREDS_DISABLED, &out, &c),
                 SZ_SASL_FAILURE);
    SZ_CHECK(out.counts && out.err == SZ_SASL_ERR_ACCOUNT_DISABLED);
    sz_sasl_free(s);
    SZ_CHECK_INT(plain(SZ_SASL_F_TLS, "\0user\0wrong", 11, SZ_SASL_CREDS_FOUND, &creds_pencil,
                       &out, user),
                 SZ_SASL_FAILURE);
    SZ_CHECK(out.counts && out.err == SZ_SASL_ERR_NOT_AUTHORIZED);
    /* negotiation: the mechanism, TLS policy, channel binding; syntax,
     * abort, storage: do not count */
    static const struct {
        unsigned flags;
        const char *mech, *ir;
        enum sz_sasl_err err;
        const char *e;
    } t[] = {
        {TLS_CB, "DIGEST-MD5", "n,,n=user,r=abc", SZ_SASL_ERR_INVALID_MECHANISM, NULL},
        {0, "PLAIN", "\0user\0pencil", SZ_SASL_ERR_ENCRYPTION_REQUIRED, NULL},
        {SZ_SASL_F_TLS | SZ_SASL_F_NO_SHA1, "SCRAM-SHA-1", "n,,n=user,r=abc",
         SZ_SASL_ERR_MECHANISM_TOO_WEAK, NULL},
        {TLS_CB, "SCRAM-SHA-256", "y,,n=user,r=abc", SZ_SASL_ERR_NOT_AUTHORIZED,
         "e=server-does-support-channel-binding"},
        {SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT, "SCRAM-SHA-256-PLUS",
         "p=tls-exporter,,n=user,r=abc", SZ_SASL_ERR_NOT_AUTHORIZED,
         "e=unsupported-channel-binding-type"},
        {TLS_CB, "SCRAM-SHA-256-PLUS", "n,,n=user,r=abc", SZ_SASL_ERR_MALFORMED_REQUEST, NULL},
        {TLS_CB, "SCRAM-SHA-256", "p=tls-exporter,,n=user,r=abc", SZ_SASL_ERR_MALFORMED_REQUEST,
         NULL},
        {TLS_CB, "SCRAM-SHA-256", "n,a=other@example.com,n=user,r=abc",
         SZ_SASL_ERR_INVALID_AUTHZID, NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sz_sasl_opts_t o = opts_for(t[i].flags);
        s = sz_sasl_new(&o);
        size_t len = t[i].ir[0] ? strlen(t[i].ir) : 1 + strlen(t[i].ir + 1) + 1 + 6;
        SZ_CHECK_INT(sz_sasl_start(s, t[i].mech, strlen(t[i].mech), (const uint8_t *)t[i].ir, len,
                                   &out),
                     SZ_SASL_FAILURE);
        if (out.err != t[i].err || out.counts)
            printf("# case %zu\n", i);
        SZ_CHECK_INT(out.err, t[i].err);
        SZ_CHECK(!out.counts);
        if (t[i].e)
            SZ_CHECK_STR(out.scram_error, t[i].e);
        else
            SZ_CHECK(out.scram_error == NULL);
        sz_sasl_free(s);
    }
    sz_sasl_opts_t o = opts_for(SZ_SASL_F_TLS);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", NULL, &out), SZ_SASL_CONTINUE);
    SZ_CHECK_INT(sz_sasl_fail(s, SZ_SASL_ERR_ABORTED, &out), SZ_SASL_FAILURE);
    SZ_CHECK(!out.counts);
    sz_sasl_free(s);
    s = sz_sasl_new(&o);
    SZ_CHECK_INT(start_s(s, "SCRAM-SHA-256", "n,,n=user,r=abc", &out), SZ_SASL_NEED_CREDS);
    SZ_CHECK_INT(sz_sasl_creds(s, SZ_SASL_CREDS_UNAVAILABLE, NULL, &out), SZ_SASL_FAILURE);
    SZ_CHECK(!out.counts && out.err == SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE);
    sz_sasl_free(s);
}

SZ_TEST(mechs)
{
    char buf[SZ_SASL_MECHS_XML_MAX];
    size_t n;
    const char *all = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                      "<mechanism>SCRAM-SHA-512-PLUS</mechanism>"
                      "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                      "<mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                      "<mechanism>SCRAM-SHA-512</mechanism>"
                      "<mechanism>SCRAM-SHA-256</mechanism>"
                      "<mechanism>SCRAM-SHA-1</mechanism>"
                      "<mechanism>PLAIN</mechanism></mechanisms>";
    n = sz_sasl_mechs(TLS_CB, buf, sizeof buf);
    SZ_CHECK_STR(buf, all);
    SZ_CHECK_INT(n, strlen(all));
    SZ_CHECK(n < SZ_SASL_MECHS_XML_MAX);
    sz_sasl_mechs(SZ_SASL_F_TLS | SZ_SASL_F_CB_EXPORTER, buf, sizeof buf);
    SZ_CHECK_STR(buf, all);
    /* TLS, no binding: no -PLUS */
    sz_sasl_mechs(SZ_SASL_F_TLS, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                      "<mechanism>SCRAM-SHA-512</mechanism>"
                      "<mechanism>SCRAM-SHA-256</mechanism>"
                      "<mechanism>SCRAM-SHA-1</mechanism>"
                      "<mechanism>PLAIN</mechanism></mechanisms>");
    /* plaintext: no PLAIN, no -PLUS even if cb flags are (wrongly) set */
    sz_sasl_mechs(SZ_SASL_F_CB_EXPORTER, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                      "<mechanism>SCRAM-SHA-512</mechanism>"
                      "<mechanism>SCRAM-SHA-256</mechanism>"
                      "<mechanism>SCRAM-SHA-1</mechanism></mechanisms>");
    SZ_CHECK_INT(sz_sasl_mech_mask(SZ_SASL_F_PLAIN_NO_TLS) & (1u << SZ_SASL_PLAIN),
                 1u << SZ_SASL_PLAIN);
    SZ_CHECK_INT(sz_sasl_mech_mask(TLS_CB | SZ_SASL_F_NO_SHA1),
                 (1u << SZ_SASL_SCRAM_SHA_512_PLUS) | (1u << SZ_SASL_SCRAM_SHA_256_PLUS) |
                     (1u << SZ_SASL_SCRAM_SHA_512) | (1u << SZ_SASL_SCRAM_SHA_256) |
                     (1u << SZ_SASL_PLAIN));
    /* truncation, snprintf-style */
    char small[20];
    n = sz_sasl_mechs(TLS_CB, small, sizeof small);
    SZ_CHECK_INT(n, strlen(all));
    SZ_CHECK_INT(strlen(small), sizeof small - 1);
    SZ_CHECK(memcmp(small, all, sizeof small - 1) == 0);
    SZ_CHECK_INT(sz_sasl_mechs(TLS_CB, NULL, 0), strlen(all));

    /* XEP-0440 */
    n = sz_sasl_cb_types(TLS_CB, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                      "<channel-binding type='tls-exporter'/>"
                      "<channel-binding type='tls-server-end-point'/>"
                      "</sasl-channel-binding>");
    SZ_CHECK(n < SZ_SASL_CB_XML_MAX);
    sz_sasl_cb_types(SZ_SASL_F_TLS | SZ_SASL_F_CB_ENDPOINT, buf, sizeof buf);
    SZ_CHECK_STR(buf, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                      "<channel-binding type='tls-server-end-point'/>"
                      "</sasl-channel-binding>");
    SZ_CHECK_INT(sz_sasl_cb_types(SZ_SASL_F_TLS, buf, sizeof buf), 0);
    SZ_CHECK_STR(buf, "");
    SZ_CHECK_INT(sz_sasl_cb_types(SZ_SASL_F_CB_EXPORTER, buf, sizeof buf), 0);
}

SZ_TEST(failure_counter)
{
    uint8_t f = 0;
    SZ_CHECK(!sz_sasl_count_failure(&f, SZ_SASL_RETRIES_DEFAULT + 1));
    SZ_CHECK(!sz_sasl_count_failure(&f, SZ_SASL_RETRIES_DEFAULT + 1));
    SZ_CHECK(!sz_sasl_count_failure(&f, SZ_SASL_RETRIES_DEFAULT + 1));
    SZ_CHECK(sz_sasl_count_failure(&f, SZ_SASL_RETRIES_DEFAULT + 1));
    f = UINT8_MAX;
    SZ_CHECK(sz_sasl_count_failure(&f, UINT8_MAX));
    SZ_CHECK_INT(f, UINT8_MAX);
}

/* ------------------------------------------------------------------------ */
/* Base64                                                                   */

SZ_TEST(base64)
{
    uint8_t b[64];
    char t[64];
    static const struct {
        const char *text, *bin;
    } ok[] = {{"", ""},
              {"Zg==", "f"},
              {"Zm8=", "fo"},
              {"Zm9v", "foo"},
              {"Zm9vYg==", "foob"},
              {"Zm9vYmE=", "fooba"},
              {"Zm9vYmFy", "foobar"},
              {"biws", "n,,"},
              {"+/+/", "\xfb\xff\xbf"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t tl = strlen(ok[i].text), bl = strlen(ok[i].bin);
        SZ_CHECK_INT(sz_sasl_b64_decode(ok[i].text, tl, b, sizeof b), bl);
        SZ_CHECK(memcmp(b, ok[i].bin, bl) == 0);
        SZ_CHECK_INT(sz_sasl_b64_encode((const uint8_t *)ok[i].bin, bl, t), tl);
        SZ_CHECK_STR(t, ok[i].text);
        SZ_CHECK_INT(sz_sasl_b64_encoded_len(bl), tl);
        SZ_CHECK(sz_sasl_b64_decoded_max(tl) >= bl);
    }
    static const char *const bad[] = {
        "Zg=",  "Zg",     "Z",    "Z===", "====", "=Zg=", "Zm=v",    "Zg==Zg==", "Zm9v====",
        "Zh==", /* non-zero bits under the padding */
        "Zm9=", "Zm9v\n", " Zm9", "Zm 9", "Zm9-", "Zm9_", "Zm9\x80", "Zm9v=",    "Zg\0=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i == sizeof bad / sizeof bad[0] - 1 ? 4 : strlen(bad[i]);
        if (sz_sasl_b64_decode(bad[i], len, b, sizeof b) != -EINVAL)
            printf("# bad case %zu\n", i);
        SZ_CHECK_INT(sz_sasl_b64_decode(bad[i], len, b, sizeof b), -EINVAL);
    }
    SZ_CHECK_INT(sz_sasl_b64_decode("Zm9v", 4, b, 2), -ENOBUFS);
    SZ_CHECK_INT(sz_sasl_b64_decode("Zm8=", 4, b, 2), 2);
    /* XML text: "=" is the empty response (RFC 6120 §6.4.2) */
    SZ_CHECK_INT(sz_sasl_text_decode("=", 1, b, sizeof b), 0);
    SZ_CHECK_INT(sz_sasl_text_decode("", 0, b, sizeof b), 0);
    SZ_CHECK_INT(sz_sasl_text_decode("==", 2, b, sizeof b), -EINVAL);
    SZ_CHECK_INT(sz_sasl_text_decode("biws", 4, b, sizeof b), 3);
    SZ_CHECK_INT(sz_sasl_text_encode(NULL, 0, t), 1);
    SZ_CHECK_STR(t, "=");
    SZ_CHECK_INT(sz_sasl_text_encode((const uint8_t *)"n,,", 3, t), 4);
    SZ_CHECK_STR(t, "biws");
    /* every byte value and length round-trips */
    uint8_t all[256], back[256];
    char enc[400];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t n = 0; n < 40; n++) {
        size_t el = sz_sasl_b64_encode(all + 200, n, enc);
        SZ_CHECK_INT(sz_sasl_b64_decode(enc, el, back, sizeof back), n);
        SZ_CHECK(memcmp(back, all + 200, n) == 0);
    }
    size_t el = sz_sasl_b64_encode(all, 256, enc);
    SZ_CHECK_INT(el, sz_sasl_b64_encoded_len(256));
    SZ_CHECK_INT(sz_sasl_b64_decode(enc, el, back, sizeof back), 256);
    SZ_CHECK(memcmp(back, all, 256) == 0);
}

int main(void)
{
    make_creds();
    SZ_RUN(rfc5802_sha1);
    SZ_RUN(rfc7677_sha256);
    SZ_RUN(scram_all_hashes);
    SZ_RUN(scram_plus);
    SZ_RUN(tls_unique);
    SZ_RUN(failure_kinds);
    SZ_RUN(downgrade);
    SZ_RUN(no_initial_response);
    SZ_RUN(username_escapes);
    SZ_RUN(authzid);
    SZ_RUN(malformed_first);
    SZ_RUN(malformed_final);
    SZ_RUN(mechanism_errors);
    SZ_RUN(abort_and_caller_conditions);
    SZ_RUN(err_names);
    SZ_RUN(account_states);
    SZ_RUN(unknown_user);
    SZ_RUN(plain);
    SZ_RUN(plain_policy_and_prep);
    SZ_RUN(mechs);
    SZ_RUN(failure_counter);
    SZ_RUN(base64);
    return sz_test_done();
}
