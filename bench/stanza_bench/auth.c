/*
 * SASL client mechanisms (see auth.h). SCRAM follows RFC 5802 §3 and §5:
 *   client-first  = "n,," "n=" saslname ",r=" cnonce
 *   server-first  = "r=" cnonce snonce ",s=" salt ",i=" iterations
 *   client-final  = "c=biws,r=" nonce ",p=" base64(ClientKey XOR
 *                   HMAC(StoredKey, AuthMessage))
 *   server-final  = "v=" base64(HMAC(ServerKey, AuthMessage))
 * where "biws" is base64("n,,"). The -PLUS variants send the gs2 header
 * "p=tls-exporter,," instead of "n,,", and c= is then base64 of that
 * header followed by the 32-byte tls-exporter value (RFC 9266). The password is used as given: the
 * accounts of a benchmark are ASCII, for which PRECIS OpaqueString is the
 * identity. Any thread; the state belongs to one exchange.
 */
#include "bench/stanza_bench/auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#define NAME_MAX_BYTES 128 /* username and password, each */
#define MSG_MAX_BYTES  384 /* client-first-bare, server-first */
#define KEY_MAX_BYTES  32  /* SHA-256 */

struct sb_auth {
    enum sb_mech mech;
    char pass[NAME_MAX_BYTES + 1];
    char cfirst[MSG_MAX_BYTES + 1]; /* client-first-message-bare */
    size_t cfirst_len;
    size_t cnonce_len;              /* the nonce starts at cfirst + cnonce_off */
    size_t cnonce_off;
    char cbind[96];                 /* c= value: base64(gs2 header [cb data]) */
    uint8_t server_sig[KEY_MAX_BYTES];
    int step; /* 0: client-first sent, 1: client-final sent */
};

static const char *const mech_names[SB_MECH_COUNT] = {
    "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"};

#define GS2_PLUS "p=tls-exporter,,"

const char *sb_mech_name(enum sb_mech m)
{
    return (unsigned)m < SB_MECH_COUNT ? mech_names[m] : "?";
}

int sb_mech_parse(const char *name)
{
    for (int i = 0; i < SB_MECH_COUNT; i++)
        if (strcmp(name, mech_names[i]) == 0)
            return i;
    return -1;
}

static const EVP_MD *md_of(enum sb_mech m)
{
    return m == SB_MECH_SCRAM_SHA1 || m == SB_MECH_SCRAM_SHA1_PLUS ? EVP_sha1() : EVP_sha256();
}

/* Base64 of <n> bytes into <out> (NUL-terminated); false when it would not
 * fit in SB_AUTH_OUT_MAX. */
static int b64_out(const void *p, size_t n, char *out)
{
    if ((n + 2) / 3 * 4 + 1 > SB_AUTH_OUT_MAX)
        return -1;
    EVP_EncodeBlock((uint8_t *)out, p, n);
    return 0;
}

/* Decodes base64 <in> into <out> (cap bytes, NUL added); returns the
 * length or -1. A lone "=" is the empty payload (RFC 6120 §6.4.2). */
static long b64_in(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 1 && in[0] == '=')
        len = 0;
    size_t max;
    if (!EVP_DecodedLength(&max, len) || max + 1 > cap)
        return -1;
    size_t n = 0;
    if (len && !EVP_DecodeBase64((uint8_t *)out, &n, cap - 1, (const uint8_t *)in, len))
        return -1;
    out[n] = '\0';
    return (long)n;
}

sb_auth_t *sb_auth_start(enum sb_mech m, const char *user, const char *pass, const char *nonce,
                         char *out)
{
    return sb_auth_start_cb(m, user, pass, nonce, NULL, out);
}

sb_auth_t *sb_auth_start_cb(enum sb_mech m, const char *user, const char *pass,
                            const char *nonce, const uint8_t *cb, char *out)
{
    size_t ul = strlen(user), pl = strlen(pass);
    if (ul > NAME_MAX_BYTES || pl > NAME_MAX_BYTES || (unsigned)m >= SB_MECH_COUNT ||
        (sb_mech_is_plus(m) && !cb))
        return NULL;
    sb_auth_t *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    a->mech = m;
    memcpy(a->pass, pass, pl + 1);
    if (m == SB_MECH_PLAIN) {
        /* authzid (empty) NUL authcid NUL passwd */
        char msg[2 * NAME_MAX_BYTES + 2];
        msg[0] = '\0';
        memcpy(msg + 1, user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, pass, pl);
        b64_out(msg, ul + pl + 2, out);
        OPENSSL_cleanse(msg, sizeof(msg));
        return a;
    }
    /* saslname: ',' and '=' escaped as =2C and =3D (RFC 5802 §5.1) */
    char name[3 * NAME_MAX_BYTES + 1];
    size_t n = 0;
    for (size_t i = 0; i < ul; i++) {
        if (user[i] == ',' || user[i] == '=') {
            memcpy(name + n, user[i] == ',' ? "=2C" : "=3D", 3);
            n += 3;
        } else {
            name[n++] = user[i];
        }
    }
    name[n] = '\0';
    char cn[64];
    if (nonce) {
        snprintf(cn, sizeof(cn), "%s", nonce);
    } else {
        uint8_t rnd[18];
        RAND_bytes(rnd, sizeof(rnd));
        EVP_EncodeBlock((uint8_t *)cn, rnd, sizeof(rnd)); /* 24 chars, no ',' */
    }
    int k = snprintf(a->cfirst, sizeof(a->cfirst), "n=%s,r=%s", name, cn);
    if (k < 0 || (size_t)k >= sizeof(a->cfirst)) {
        sb_auth_free(a);
        return NULL;
    }
    a->cfirst_len = (size_t)k;
    a->cnonce_off = n + 5;
    a->cnonce_len = strlen(cn);
    const char *gs2 = sb_mech_is_plus(m) ? GS2_PLUS : "n,,";
    if (sb_mech_is_plus(m)) {
        uint8_t cdata[sizeof(GS2_PLUS) - 1 + SB_AUTH_CB_BYTES];
        memcpy(cdata, GS2_PLUS, sizeof(GS2_PLUS) - 1);
        memcpy(cdata + sizeof(GS2_PLUS) - 1, cb, SB_AUTH_CB_BYTES);
        EVP_EncodeBlock((uint8_t *)a->cbind, cdata, sizeof(cdata)); /* 64 chars */
    } else {
        memcpy(a->cbind, "biws", 5); /* base64("n,,") */
    }
    char first[MSG_MAX_BYTES + 24];
    int fl = snprintf(first, sizeof(first), "%s%s", gs2, a->cfirst);
    b64_out(first, (size_t)fl, out);
    return a;
}

/* Copies the value of attribute <c> ("r", "s", "i", "v") of the
 * comma-separated SCRAM message <msg> into <out> (<cap> bytes, NUL added);
 * returns <out>, or NULL when absent or too long. */
static char *scram_attr(const char *msg, char c, char *out, size_t cap)
{
    for (const char *p = msg; p && *p;) {
        const char *comma = strchr(p, ',');
        if (p[0] == c && p[1] == '=') {
            size_t n = comma ? (size_t)(comma - p - 2) : strlen(p + 2);
            if (n >= cap)
                return NULL;
            memcpy(out, p + 2, n);
            out[n] = '\0';
            return out;
        }
        p = comma ? comma + 1 : NULL;
    }
    return NULL;
}

int sb_auth_step(sb_auth_t *a, const char *b64, size_t len, char *out, const char **why)
{
    if (a->mech == SB_MECH_PLAIN || a->step != 0) {
        *why = "unexpected-challenge";
        return -1;
    }
    char sfirst[MSG_MAX_BYTES + 1];
    long sl = b64_in(b64, len, sfirst, sizeof(sfirst));
    if (sl <= 0 || strlen(sfirst) != (size_t)sl) {
        *why = "bad-challenge";
        return -1;
    }
    if (sfirst[0] == 'm') {
        *why = "mandatory-extension"; /* RFC 5802 §5.1: must fail */
        return -1;
    }
    char rb[MSG_MAX_BYTES + 1], sb[MSG_MAX_BYTES + 1], ib[16];
    char *r = scram_attr(sfirst, 'r', rb, sizeof(rb));
    char *s_ = scram_attr(sfirst, 's', sb, sizeof(sb));
    char *i_ = scram_attr(sfirst, 'i', ib, sizeof(ib));
    if (!r || !s_ || !i_) {
        *why = "bad-challenge";
        return -1;
    }
    /* The server's nonce must extend ours. */
    if (strlen(r) <= a->cnonce_len || memcmp(r, a->cfirst + a->cnonce_off, a->cnonce_len) != 0) {
        *why = "nonce-mismatch";
        return -1;
    }
    char *end;
    unsigned long iter = strtoul(i_, &end, 10);
    if (*end || iter == 0 || iter > 10000000) {
        *why = "bad-iteration-count";
        return -1;
    }
    uint8_t salt[128];
    size_t saltn = 0;
    if (!EVP_DecodeBase64(salt, &saltn, sizeof(salt), (const uint8_t *)s_, strlen(s_)) ||
        saltn == 0) {
        *why = "bad-salt";
        return -1;
    }
    const EVP_MD *md = md_of(a->mech);
    size_t hl = EVP_MD_size(md);
    uint8_t salted[KEY_MAX_BYTES], ckey[KEY_MAX_BYTES], skey[KEY_MAX_BYTES];
    uint8_t stored[KEY_MAX_BYTES], csig[KEY_MAX_BYTES], proof[KEY_MAX_BYTES];
    unsigned ol;
    PKCS5_PBKDF2_HMAC(a->pass, strlen(a->pass), salt, saltn, (unsigned)iter, md, hl, salted);
    HMAC(md, salted, hl, (const uint8_t *)"Client Key", 10, ckey, &ol);
    HMAC(md, salted, hl, (const uint8_t *)"Server Key", 10, skey, &ol);
    EVP_Digest(ckey, hl, stored, &ol, md, NULL);
    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    char final[MSG_MAX_BYTES + 160];
    int fl = snprintf(final, sizeof(final), "c=%s,r=%s", a->cbind, r);
    char am[3 * MSG_MAX_BYTES + 160];
    int al = snprintf(am, sizeof(am), "%s,%s,%s", a->cfirst, sfirst, final);
    if (fl < 0 || (size_t)fl >= sizeof(final) || al < 0 || (size_t)al >= sizeof(am)) {
        *why = "bad-challenge";
        return -1;
    }
    HMAC(md, stored, hl, (const uint8_t *)am, (size_t)al, csig, &ol);
    for (size_t i = 0; i < hl; i++)
        proof[i] = ckey[i] ^ csig[i];
    HMAC(md, skey, hl, (const uint8_t *)am, (size_t)al, a->server_sig, &ol);
    char p64[64];
    EVP_EncodeBlock((uint8_t *)p64, proof, hl);
    fl += snprintf(final + fl, sizeof(final) - (size_t)fl, ",p=%s", p64);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    OPENSSL_cleanse(skey, sizeof(skey));
    a->step = 1;
    if (b64_out(final, (size_t)fl, out) < 0) {
        *why = "bad-challenge";
        return -1;
    }
    return 0;
}

int sb_auth_finish(sb_auth_t *a, const char *b64, size_t len, const char **why)
{
    if (a->mech == SB_MECH_PLAIN)
        return 0;
    if (a->step != 1) {
        *why = "early-success"; /* success before our proof: not mutual */
        return -1;
    }
    char msg[MSG_MAX_BYTES + 1], vb[MSG_MAX_BYTES + 1];
    long n = b64_in(b64, len, msg, sizeof(msg));
    char *v = n > 0 ? scram_attr(msg, 'v', vb, sizeof(vb)) : NULL;
    uint8_t sig[64];
    size_t sn = 0;
    size_t hl = EVP_MD_size(md_of(a->mech));
    if (!v || !EVP_DecodeBase64(sig, &sn, sizeof(sig), (const uint8_t *)v, strlen(v)) ||
        sn != hl || CRYPTO_memcmp(sig, a->server_sig, hl) != 0) {
        *why = "bad-server-signature";
        return -1;
    }
    return 0;
}

void sb_auth_free(sb_auth_t *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a, sizeof(*a));
    free(a);
}
