/*
 * Server-side SASL exchanges: SCRAM-SHA-{1,256,512}[-PLUS] and PLAIN, the
 * mechanism and channel-binding feature lists, strict base64.
 *
 * An sz_sasl_t lives on the reactor that accepted the stream, from <auth>
 * to <success/> or <failure/>; nothing here blocks or touches shared state
 * except the per-process fake-credential secret, initialised once.
 *
 * Invariants: every path ends in exactly one terminal result (SUCCESS or
 * FAILURE) after which the object only answers malformed-request; only
 * failures about the credentials count against the retry budget
 * (fail_creds), the rest are fail() or fail_cb(); secrets
 * (the PLAIN password, the account keys) are wiped on free. Unknown users
 * and users without credentials for the chosen hash run on fake
 * credentials, so they fail where a wrong password fails, after the same
 * messages and (for PLAIN) the same PBKDF2 work.
 */
#include "net/sasl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "core/jid.h"
#include "core/mem.h"

/* Server nonce: 24 random bytes, 32 base64 characters. */
#define SNONCE_BYTES 24
#define SNONCE_CHARS 32

enum state {
    ST_INIT = 0,   /* sz_sasl_start() not called yet */
    ST_WANT_FIRST, /* empty challenge sent; the client's first message is due */
    ST_WANT_CREDS, /* NEED_CREDS returned; sz_sasl_creds() is due */
    ST_WANT_FINAL, /* SCRAM server-first sent; client-final is due */
    ST_DONE,       /* SUCCESS or FAILURE returned */
};

struct sz_sasl {
    uint8_t state;   /* enum state */
    uint8_t mech;    /* enum sz_sasl_mech; SZ_SASL_MECH_COUNT before start */
    uint8_t hash;    /* enum sz_hash of a SCRAM mechanism */
    bool plus;       /* -PLUS mechanism */
    bool fake;       /* running on fake credentials: never succeeds */
    uint8_t acct;    /* enum sz_sasl_creds_status of the looked-up account */
    uint8_t cb_have; /* SZ_SASL_F_CB_* whose data we hold */
    unsigned flags;  /* SZ_SASL_F_* as advertised */
    uint32_t fake_iter;
    const uint8_t *secret; /* fake-credential key (not owned) */
    size_t secret_len;
    char *domain; /* owned copy, NUL-terminated */
    size_t domain_len;
    uint8_t cb_exporter[SZ_SASL_CB_EXPORTER_BYTES];
    uint8_t cb_endpoint[SZ_SASL_CB_ENDPOINT_MAX];
    size_t cb_endpoint_len;
    uint8_t cb_unique[SZ_SASL_CB_UNIQUE_MAX];
    size_t cb_unique_len;
    const uint8_t *cb; /* the binding the client chose: one of the three above */
    size_t cb_len;
    /* SCRAM: the client-first message; [0, gs2_len) is the gs2 header, the
     * rest client-first-message-bare. */
    char *cfirst;
    size_t cfirst_len, gs2_len;
    char *nonce; /* client nonce followed by the server nonce */
    size_t nonce_len;
    char *sfirst; /* server-first message */
    size_t sfirst_len;
    char *test_nonce; /* sz_sasl_test_set_nonce() */
    /* PLAIN: the password until the credentials arrive. */
    char *pw;
    size_t pw_len;
    sz_scram_cred_t cred; /* credentials for <hash> (real or fake) */
    char sfinal[96];      /* "v=" + base64 of up to 64 bytes */
    size_t user_len;
    char user[SZ_JID_PART_MAX_BYTES + 1]; /* normalized localpart */
};

/* ------------------------------------------------------------------------ */
/* Names and feature lists                                                  */

static const char *const err_names[SZ_SASL_ERR_COUNT] = {
    [SZ_SASL_ERR_NONE] = "",
    [SZ_SASL_ERR_ABORTED] = "aborted",
    [SZ_SASL_ERR_ACCOUNT_DISABLED] = "account-disabled",
    [SZ_SASL_ERR_CREDENTIALS_EXPIRED] = "credentials-expired",
    [SZ_SASL_ERR_ENCRYPTION_REQUIRED] = "encryption-required",
    [SZ_SASL_ERR_INCORRECT_ENCODING] = "incorrect-encoding",
    [SZ_SASL_ERR_INVALID_AUTHZID] = "invalid-authzid",
    [SZ_SASL_ERR_INVALID_MECHANISM] = "invalid-mechanism",
    [SZ_SASL_ERR_MALFORMED_REQUEST] = "malformed-request",
    [SZ_SASL_ERR_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
    [SZ_SASL_ERR_NOT_AUTHORIZED] = "not-authorized",
    [SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
};

static const char *const mech_names[SZ_SASL_MECH_COUNT] = {
    [SZ_SASL_SCRAM_SHA_512_PLUS] = "SCRAM-SHA-512-PLUS",
    [SZ_SASL_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
    [SZ_SASL_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
    [SZ_SASL_SCRAM_SHA_512] = "SCRAM-SHA-512",
    [SZ_SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SZ_SASL_SCRAM_SHA_1] = "SCRAM-SHA-1",
    [SZ_SASL_PLAIN] = "PLAIN",
};

static const uint8_t mech_hash[SZ_SASL_MECH_COUNT] = {
    [SZ_SASL_SCRAM_SHA_512_PLUS] = SZ_HASH_SHA512, [SZ_SASL_SCRAM_SHA_256_PLUS] = SZ_HASH_SHA256,
    [SZ_SASL_SCRAM_SHA_1_PLUS] = SZ_HASH_SHA1,     [SZ_SASL_SCRAM_SHA_512] = SZ_HASH_SHA512,
    [SZ_SASL_SCRAM_SHA_256] = SZ_HASH_SHA256,      [SZ_SASL_SCRAM_SHA_1] = SZ_HASH_SHA1,
};

static bool is_plus(enum sz_sasl_mech m)
{
    return m <= SZ_SASL_SCRAM_SHA_1_PLUS;
}

static bool has_cb(unsigned flags)
{
    /* Channel binding needs TLS; flags without it are ignored. */
    return (flags & SZ_SASL_F_TLS) &&
           (flags & (SZ_SASL_F_CB_EXPORTER | SZ_SASL_F_CB_ENDPOINT | SZ_SASL_F_CB_UNIQUE));
}

/* Whether the -PLUS variant of the SCRAM family of <hash> is offered
 * under <flags>: what "the server supports channel binding" means for the
 * gs2 flag "y" check (RFC 5802 §6), judged per family as advertised. */
static bool plus_offered(unsigned flags, int hash)
{
    unsigned mask = sz_sasl_mech_mask(flags);
    for (int m = 0; m < SZ_SASL_MECH_COUNT; m++)
        if (is_plus((enum sz_sasl_mech)m) && mech_hash[m] == hash && (mask & (1u << m)))
            return true;
    return false;
}

const char *sz_sasl_err_name(enum sz_sasl_err e)
{
    if ((unsigned)e >= SZ_SASL_ERR_COUNT)
        return "";
    return err_names[e];
}

const char *sz_sasl_mech_name(enum sz_sasl_mech m)
{
    if ((unsigned)m >= SZ_SASL_MECH_COUNT)
        return NULL;
    return mech_names[m];
}

unsigned sz_sasl_mech_mask(unsigned flags)
{
    unsigned mask = 0;
    for (int m = 0; m < SZ_SASL_MECH_COUNT; m++) {
        if (m == SZ_SASL_PLAIN) {
            if ((flags & SZ_SASL_F_TLS) || (flags & SZ_SASL_F_PLAIN_NO_TLS))
                mask |= 1u << m;
            continue;
        }
        if (is_plus((enum sz_sasl_mech)m) && !has_cb(flags))
            continue;
        if (m == SZ_SASL_SCRAM_SHA_1_PLUS && (flags & SZ_SASL_F_NO_SHA1_PLUS))
            continue;
        if (mech_hash[m] == SZ_HASH_SHA1 && (flags & SZ_SASL_F_NO_SHA1))
            continue;
        mask |= 1u << m;
    }
    return mask;
}

/* Appends <str> to <buf>/<cap> at *<len>, snprintf-style: counts always,
 * writes what fits, keeps the buffer NUL-terminated. */
static void put(char *buf, size_t cap, size_t *len, const char *str)
{
    size_t n = strlen(str);
    if (*len < cap) {
        size_t room = cap - *len - 1;
        size_t w = n < room ? n : room;
        memcpy(buf + *len, str, w);
        buf[*len + w] = '\0';
    }
    *len += n;
}

size_t sz_sasl_mechs(unsigned flags, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    unsigned mask = sz_sasl_mech_mask(flags);
    put(buf, cap, &len, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
    for (int m = 0; m < SZ_SASL_MECH_COUNT; m++) {
        if (!(mask & (1u << m)))
            continue;
        put(buf, cap, &len, "<mechanism>");
        put(buf, cap, &len, mech_names[m]);
        put(buf, cap, &len, "</mechanism>");
    }
    put(buf, cap, &len, "</mechanisms>");
    return len;
}

size_t sz_sasl_cb_types(unsigned flags, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    if (!has_cb(flags))
        return 0;
    put(buf, cap, &len, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>");
    if (flags & SZ_SASL_F_CB_EXPORTER)
        put(buf, cap, &len, "<channel-binding type='tls-exporter'/>");
    if (flags & SZ_SASL_F_CB_ENDPOINT)
        put(buf, cap, &len, "<channel-binding type='tls-server-end-point'/>");
    /* tls-unique is listed where it is defined (TLS 1.2, RFC 5929 §3) and
     * only accepted on TLS 1.3, for OpenSSL-based clients that use it there
     * (RFC 9266 §1 says it is not defined for TLS 1.3). */
    if ((flags & SZ_SASL_F_CB_UNIQUE) && !(flags & SZ_SASL_F_CB_UNLISTED))
        put(buf, cap, &len, "<channel-binding type='tls-unique'/>");
    put(buf, cap, &len, "</sasl-channel-binding>");
    return len;
}

/* ------------------------------------------------------------------------ */
/* Base64 (RFC 4648 §4)                                                     */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value + 1 of each base64 digit; 0 for every other byte. */
static const uint8_t b64_dec[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

ptrdiff_t sz_sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4)
        return -EINVAL;
    if (len == 0)
        return 0;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t n = len / 4 * 3 - pad;
    if (n > cap)
        return -ENOBUFS;
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0, full = pad ? len - 4 : len;
    for (size_t i = 0; i < full; i += 4) {
        unsigned a = b64_dec[p[i]], b = b64_dec[p[i + 1]], c = b64_dec[p[i + 2]],
                 d = b64_dec[p[i + 3]];
        if (!a || !b || !c || !d)
            return -EINVAL;
        uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o++] = (uint8_t)(w >> 16);
        out[o++] = (uint8_t)(w >> 8);
        out[o++] = (uint8_t)w;
    }
    if (pad) {
        p += full;
        unsigned a = b64_dec[p[0]], b = b64_dec[p[1]], c = pad == 1 ? b64_dec[p[2]] : 1;
        if (!a || !b || !c)
            return -EINVAL;
        /* Non-canonical encodings (set bits under the padding) would give
         * two texts for one value: reject them. */
        if ((pad == 1 && ((c - 1) & 0x3)) || (pad == 2 && ((b - 1) & 0xF)))
            return -EINVAL;
        uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6;
        out[o++] = (uint8_t)(w >> 16);
        if (pad == 1)
            out[o++] = (uint8_t)(w >> 8);
    }
    return (ptrdiff_t)o;
}

size_t sz_sasl_b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_chars[w >> 18];
        out[o++] = b64_chars[(w >> 12) & 63];
        out[o++] = b64_chars[(w >> 6) & 63];
        out[o++] = b64_chars[w & 63];
    }
    if (i < len) {
        uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64_chars[w >> 18];
        out[o++] = b64_chars[(w >> 12) & 63];
        out[o++] = i + 1 < len ? b64_chars[(w >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

ptrdiff_t sz_sasl_text_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len == 1 && in[0] == '=')
        return 0;
    return sz_sasl_b64_decode(in, len, out, cap);
}

size_t sz_sasl_text_encode(const uint8_t *in, size_t len, char *out)
{
    if (len == 0) {
        out[0] = '=';
        out[1] = '\0';
        return 1;
    }
    return sz_sasl_b64_encode(in, len, out);
}

/* ------------------------------------------------------------------------ */
/* Exchange object                                                          */

/* Per-process fake-credential key, for callers without a configured one. */
static uint8_t proc_secret[32];
static pthread_once_t proc_secret_once = PTHREAD_ONCE_INIT;

static void proc_secret_init(void)
{
    RAND_bytes(proc_secret, sizeof proc_secret);
}

sz_sasl_t *sz_sasl_new(const sz_sasl_opts_t *opts)
{
    sz_sasl_t *s = sz_calloc(1, sizeof *s);
    s->mech = SZ_SASL_MECH_COUNT;
    s->flags = opts->flags;
    s->domain = sz_strndup(opts->domain ? opts->domain : "", opts->domain ? opts->domain_len : 0);
    s->domain_len = opts->domain ? opts->domain_len : 0;
    /* <flags> stay as advertised (the downgrade check needs that); a
     * binding whose data is missing just cannot be chosen. */
    if ((opts->flags & SZ_SASL_F_CB_EXPORTER) && opts->cb_exporter) {
        memcpy(s->cb_exporter, opts->cb_exporter, sizeof s->cb_exporter);
        s->cb_have |= SZ_SASL_F_CB_EXPORTER;
    }
    if ((opts->flags & SZ_SASL_F_CB_ENDPOINT) && opts->cb_endpoint && opts->cb_endpoint_len &&
        opts->cb_endpoint_len <= SZ_SASL_CB_ENDPOINT_MAX) {
        memcpy(s->cb_endpoint, opts->cb_endpoint, opts->cb_endpoint_len);
        s->cb_endpoint_len = opts->cb_endpoint_len;
        s->cb_have |= SZ_SASL_F_CB_ENDPOINT;
    }
    if ((opts->flags & SZ_SASL_F_CB_UNIQUE) && opts->cb_unique && opts->cb_unique_len &&
        opts->cb_unique_len <= SZ_SASL_CB_UNIQUE_MAX) {
        memcpy(s->cb_unique, opts->cb_unique, opts->cb_unique_len);
        s->cb_unique_len = opts->cb_unique_len;
        s->cb_have |= SZ_SASL_F_CB_UNIQUE;
    }
    if (opts->secret && opts->secret_len) {
        s->secret = opts->secret;
        s->secret_len = opts->secret_len;
    } else {
        pthread_once(&proc_secret_once, proc_secret_init);
        s->secret = proc_secret;
        s->secret_len = sizeof proc_secret;
    }
    s->fake_iter = opts->fake_iterations ? opts->fake_iterations : SZ_SCRAM_ITER_DEFAULT;
    return s;
}

static void free_secret(char **p, size_t len)
{
    if (*p) {
        OPENSSL_cleanse(*p, len);
        sz_free(*p);
        *p = NULL;
    }
}

void sz_sasl_free(sz_sasl_t *s)
{
    if (!s)
        return;
    sz_free(s->domain);
    free_secret(&s->cfirst, s->cfirst_len);
    free_secret(&s->nonce, s->nonce_len);
    free_secret(&s->sfirst, s->sfirst_len);
    free_secret(&s->pw, s->pw_len);
    sz_free(s->test_nonce);
    OPENSSL_cleanse(s, sizeof *s);
    sz_free(s);
}

void sz_sasl_test_set_nonce(sz_sasl_t *s, const char *nonce)
{
    sz_free(s->test_nonce);
    s->test_nonce = sz_strdup(nonce);
}

enum sz_sasl_mech sz_sasl_mech(const sz_sasl_t *s)
{
    return (enum sz_sasl_mech)s->mech;
}

/* A failure that does not count against the retry budget (see
 * sz_sasl_out_t.counts): negotiation, syntax, abort, storage. */
static enum sz_sasl_result fail(sz_sasl_t *s, enum sz_sasl_err err, const char *text,
                                sz_sasl_out_t *out)
{
    s->state = ST_DONE;
    /* The PLAIN password is not needed past the end of the exchange. */
    free_secret(&s->pw, s->pw_len);
    memset(out, 0, sizeof *out);
    out->err = err;
    out->text = text;
    return SZ_SASL_FAILURE;
}

/* A failure about the credentials: counts against the retry budget. */
static enum sz_sasl_result fail_creds(sz_sasl_t *s, enum sz_sasl_err err, const char *text,
                                      sz_sasl_out_t *out)
{
    fail(s, err, text, out);
    out->counts = true;
    return SZ_SASL_FAILURE;
}

/* A channel-binding failure: not-authorized (RFC 5802 §6, §7: the server
 * "MUST fail the authentication"), with the SCRAM server-error <e> ("e=..."). */
static enum sz_sasl_result fail_cb(sz_sasl_t *s, const char *e, sz_sasl_out_t *out)
{
    fail(s, SZ_SASL_ERR_NOT_AUTHORIZED, e + 2, out);
    out->scram_error = e;
    return SZ_SASL_FAILURE;
}

enum sz_sasl_result sz_sasl_fail(sz_sasl_t *s, enum sz_sasl_err err, sz_sasl_out_t *out)
{
    return fail(s, err, NULL, out);
}

static enum sz_sasl_result need_creds(sz_sasl_t *s, sz_sasl_out_t *out)
{
    s->state = ST_WANT_CREDS;
    memset(out, 0, sizeof *out);
    out->user = s->user;
    out->user_len = s->user_len;
    return SZ_SASL_NEED_CREDS;
}

static enum sz_sasl_result success(sz_sasl_t *s, const void *data, size_t len, sz_sasl_out_t *out)
{
    s->state = ST_DONE;
    memset(out, 0, sizeof *out);
    out->data = data;
    out->len = len;
    out->user = s->user;
    out->user_len = s->user_len;
    return SZ_SASL_SUCCESS;
}

/* Fake credentials of an unknown user for hash <h>: deterministic in
 * (secret, h, username), so retries see the same salt, and unrelated to any
 * password, so no proof can match (and <fake> forbids success anyway). */
static void fake_cred(sz_sasl_t *s, enum sz_hash h, sz_scram_cred_t *c)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t kl = sz_hash_len(h);
    memset(c, 0, sizeof *c);
    c->iterations = s->fake_iter;
    c->salt_len = SZ_SCRAM_SALT_BYTES;
    c->key_len = (uint8_t)kl;
    static const char *const what[3] = {"salt", "stored-key", "server-key"};
    uint8_t *dst[3] = {c->salt, c->stored_key, c->server_key};
    size_t dlen[3] = {SZ_SCRAM_SALT_BYTES, kl, kl};
    for (int i = 0; i < 3; i++) {
        HMAC_CTX ctx;
        HMAC_CTX_init(&ctx);
        uint8_t hb = (uint8_t)h;
        /* "stanzad-fake" NUL what NUL hash user: unambiguous framing. */
        HMAC_Init_ex(&ctx, s->secret, s->secret_len, EVP_sha512(), NULL);
        HMAC_Update(&ctx, (const uint8_t *)"stanzad-fake", 13);
        HMAC_Update(&ctx, (const uint8_t *)what[i], strlen(what[i]) + 1);
        HMAC_Update(&ctx, &hb, 1);
        HMAC_Update(&ctx, (const uint8_t *)s->user, s->user_len);
        HMAC_Final(&ctx, mac, &n);
        HMAC_CTX_cleanup(&ctx);
        memcpy(dst[i], mac, dlen[i]);
    }
    s->fake = true;
}

/* Whether <c> is usable as credentials for hash <h>. */
static bool cred_ok(const sz_scram_cred_t *c, enum sz_hash h)
{
    return c->key_len == sz_hash_len(h) && c->salt_len > 0 && c->salt_len <= SZ_SCRAM_SALT_MAX &&
           c->iterations >= 1 && c->iterations <= 10000000u;
}

/* ------------------------------------------------------------------------ */
/* Shared parsing                                                           */

/*
 * Decodes a saslname (RFC 5802 §5.1: "=2C" is ',', "=3D" is '=', any other
 * '=' is an error) from <p>/<n> into <dst> (<cap> bytes, >= n + 1, NUL-
 * terminated). Returns its length, or -1 on a bad escape, an empty name or
 * a NUL.
 */
static ptrdiff_t saslname_decode(const char *p, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    if (n == 0 || cap < n + 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\0' || c == ',')
            return -1;
        if (c == '=') {
            if (n - i < 3)
                return -1;
            if (p[i + 1] == '2' && p[i + 2] == 'C')
                c = ',';
            else if (p[i + 1] == '3' && p[i + 2] == 'D')
                c = '=';
            else
                return -1;
            i += 2;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (ptrdiff_t)o;
}

/*
 * Sets s->user from the raw (unescaped) username <u>/<n>: UsernameCaseMapped
 * with the localpart rules (RFC 7622 §3.3), so the result is the JID
 * localpart. Returns false when it is no valid localpart (no account can
 * have it).
 */
static bool set_user(sz_sasl_t *s, const char *u, size_t n)
{
    return sz_jid_prep(SZ_JID_PART_LOCAL, u, n, s->user, sizeof s->user, &s->user_len, NULL) == 0;
}

/* RFC 6120 §6.3.8: an authzid, if given, must be the bare JID the user
 * authenticates as (we do not let one user act for another). */
static bool authzid_ok(const sz_sasl_t *s, const char *a, size_t n)
{
    sz_jid_buf_t buf;
    sz_jid_t *j;
    if (sz_jid_parse_into(a, n, &buf, sizeof buf, &j, NULL) < 0 || !sz_jid_is_bare(j))
        return false;
    size_t ll, dl;
    const char *l = sz_jid_local(j, &ll);
    const char *d = sz_jid_domain(j, &dl);
    return l && ll == s->user_len && memcmp(l, s->user, ll) == 0 && dl == s->domain_len &&
           memcmp(d, s->domain, dl) == 0;
}

/* One "x=value" attribute of a SCRAM message (RFC 5802 §7). */
struct attr {
    char name;
    size_t start; /* offset of the name */
    const char *v;
    size_t vlen;
};

/*
 * Reads the attribute at *<pos> of <m>/<len>: a letter, '=', a non-empty
 * value up to the next ',' or the end; *<pos> moves past the ','.
 * Returns 1, 0 at the end, -1 on a syntax error (including a trailing ',').
 */
static int next_attr(const char *m, size_t len, size_t *pos, struct attr *a)
{
    size_t i = *pos;
    if (i >= len)
        return 0;
    char c = m[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || i + 1 >= len || m[i + 1] != '=')
        return -1;
    a->name = c;
    a->start = i;
    a->v = m + i + 2;
    const char *comma = memchr(a->v, ',', len - (i + 2));
    a->vlen = comma ? (size_t)(comma - a->v) : len - (i + 2);
    if (a->vlen == 0)
        return -1;
    *pos = i + 2 + a->vlen;
    if (comma) {
        (*pos)++;
        if (*pos == len)
            return -1;
    }
    return 1;
}

static bool printable_nonce(const char *p, size_t n)
{
    /* RFC 5802 §7: printable = %x21-2B / %x2D-7E (no ',') */
    if (n == 0 || n > SZ_SASL_NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7E || c == ',')
            return false;
    }
    return true;
}

static bool cb_name_is(const char *p, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(p, name, n) == 0;
}

static enum sz_sasl_result malformed(sz_sasl_t *s, const char *why, sz_sasl_out_t *out)
{
    return fail(s, SZ_SASL_ERR_MALFORMED_REQUEST, why, out);
}

/* ------------------------------------------------------------------------ */
/* SCRAM (RFC 5802 §5, §7)                                                  */

static enum sz_sasl_result scram_first(sz_sasl_t *s, const char *m, size_t len, sz_sasl_out_t *out)
{
    if (len == 0 || len > SZ_SASL_MSG_MAX_BYTES || memchr(m, '\0', len))
        return malformed(s, "bad client-first-message", out);

    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    size_t i;
    char flag = m[0];
    const char *cbname = NULL;
    size_t cbname_len = 0;
    if (flag == 'n' || flag == 'y') {
        i = 1;
    } else if (flag == 'p' && len > 1 && m[1] == '=') {
        /* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
        for (i = 2; i < len && m[i] != ','; i++) {
            char c = m[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-'))
                return malformed(s, "bad cb-name", out);
        }
        cbname = m + 2;
        cbname_len = i - 2;
        if (cbname_len == 0)
            return malformed(s, "bad cb-name", out);
    } else {
        return malformed(s, "bad gs2-cbind-flag", out);
    }
    if (i >= len || m[i] != ',')
        return malformed(s, "bad gs2-header", out);
    i++;
    const char *az = NULL;
    size_t az_len = 0;
    if (i + 1 < len && m[i] == 'a' && m[i + 1] == '=') {
        az = m + i + 2;
        const char *comma = memchr(az, ',', len - (i + 2));
        if (!comma)
            return malformed(s, "bad gs2-header", out);
        az_len = (size_t)(comma - az);
        i = (size_t)(comma - m);
    }
    if (i >= len || m[i] != ',')
        return malformed(s, "bad gs2-header", out);
    size_t gs2_len = ++i;

    /* client-first-message-bare = [reserved-mext ","] username "," nonce
     * ["," extensions]. "m=" must fail (RFC 5802 §5.1); other extensions
     * are ignored, as the RFC requires. */
    struct attr user, nonce, ext;
    if (next_attr(m, len, &i, &user) != 1)
        return malformed(s, "bad client-first-message-bare", out);
    if (user.name == 'm')
        return malformed(s, "unsupported mandatory extension", out);
    if (user.name != 'n' || next_attr(m, len, &i, &nonce) != 1 || nonce.name != 'r')
        return malformed(s, "bad client-first-message-bare", out);
    if (!printable_nonce(nonce.v, nonce.vlen))
        return malformed(s, "bad client nonce", out);
    int r;
    while ((r = next_attr(m, len, &i, &ext)) == 1) {
        if (ext.name == 'm')
            return malformed(s, "unsupported mandatory extension", out);
    }
    if (r < 0)
        return malformed(s, "bad extension", out);

    /* Channel binding: -PLUS requires "p=", the others refuse it, and "y"
     * (client could bind, thinks we cannot) is a downgrade when the -PLUS
     * variant of the mechanism used was offered (RFC 5802 §6). */
    if (s->plus) {
        if (flag != 'p')
            return malformed(s, "-PLUS without channel binding", out);
        if (cb_name_is(cbname, cbname_len, "tls-exporter") &&
            (s->cb_have & SZ_SASL_F_CB_EXPORTER)) {
            s->cb = s->cb_exporter;
            s->cb_len = sizeof s->cb_exporter;
        } else if (cb_name_is(cbname, cbname_len, "tls-server-end-point") &&
                   (s->cb_have & SZ_SASL_F_CB_ENDPOINT)) {
            s->cb = s->cb_endpoint;
            s->cb_len = s->cb_endpoint_len;
        } else if (cb_name_is(cbname, cbname_len, "tls-unique") &&
                   (s->cb_have & SZ_SASL_F_CB_UNIQUE)) {
            s->cb = s->cb_unique;
            s->cb_len = s->cb_unique_len;
        } else {
            /* Unknown, or not usable on this connection (tls-exporter on
             * TLS 1.2, tls-unique on TLS 1.3 when turned off): the client
             * may try another type or mechanism. */
            return fail_cb(s, "e=unsupported-channel-binding-type", out);
        }
    } else if (flag == 'p') {
        return malformed(s, "channel binding with a non-PLUS mechanism", out);
    } else if (flag == 'y' && plus_offered(s->flags, s->hash)) {
        return fail_cb(s, "e=server-does-support-channel-binding", out);
    }

    /* username and authzid: unescape, then prepare as a JID localpart. */
    char *tmp = sz_malloc(len + 1);
    enum sz_sasl_err err = SZ_SASL_ERR_NONE;
    const char *why = NULL;
    ptrdiff_t n = saslname_decode(user.v, user.vlen, tmp, len + 1);
    if (n < 0) {
        err = SZ_SASL_ERR_MALFORMED_REQUEST;
        why = "bad username escape";
    } else if (!set_user(s, tmp, (size_t)n)) {
        err = SZ_SASL_ERR_NOT_AUTHORIZED; /* like an unknown user: counts */
        why = "invalid username";
    } else if (az) {
        n = saslname_decode(az, az_len, tmp, len + 1);
        if (n < 0) {
            err = SZ_SASL_ERR_MALFORMED_REQUEST;
            why = "bad authzid escape";
        } else if (!authzid_ok(s, tmp, (size_t)n)) {
            err = SZ_SASL_ERR_INVALID_AUTHZID;
        }
    }
    sz_free(tmp);
    if (err == SZ_SASL_ERR_NOT_AUTHORIZED)
        return fail_creds(s, err, why, out);
    if (err != SZ_SASL_ERR_NONE)
        return fail(s, err, why, out);

    s->cfirst = sz_malloc(len);
    memcpy(s->cfirst, m, len);
    s->cfirst_len = len;
    s->gs2_len = gs2_len;

    /* nonce = client nonce + server nonce */
    char snonce[SNONCE_CHARS + 1];
    const char *sn = s->test_nonce;
    if (!sn) {
        uint8_t rnd[SNONCE_BYTES];
        RAND_bytes(rnd, sizeof rnd);
        sz_sasl_b64_encode(rnd, sizeof rnd, snonce);
        sn = snonce;
    }
    size_t snl = strlen(sn);
    s->nonce_len = nonce.vlen + snl;
    s->nonce = sz_malloc(s->nonce_len);
    memcpy(s->nonce, nonce.v, nonce.vlen);
    memcpy(s->nonce + nonce.vlen, sn, snl);
    return need_creds(s, out);
}

static enum sz_sasl_result scram_creds(sz_sasl_t *s, enum sz_sasl_creds_status st,
                                       const sz_scram_creds_t *creds, sz_sasl_out_t *out)
{
    enum sz_hash h = (enum sz_hash)s->hash;
    const sz_scram_cred_t *c = creds ? &creds->h[h] : NULL;
    if (st == SZ_SASL_CREDS_NOT_FOUND || !c || !cred_ok(c, h)) {
        /* An account without credentials for this hash looks like an
         * unknown one: it can only fail, and must not say why. */
        fake_cred(s, h, &s->cred);
    } else {
        s->cred = *c;
        s->acct = (uint8_t)st;
    }

    /* server-first-message = nonce "," salt "," iteration-count */
    char salt[SZ_SCRAM_SALT_MAX / 3 * 4 + 8];
    sz_sasl_b64_encode(s->cred.salt, s->cred.salt_len, salt);
    size_t cap = s->nonce_len + strlen(salt) + 32;
    s->sfirst = sz_malloc(cap);
    int n = snprintf(s->sfirst, cap, "r=%.*s,s=%s,i=%u", (int)s->nonce_len, s->nonce, salt,
                     (unsigned)s->cred.iterations);
    s->sfirst_len = (size_t)n;
    s->state = ST_WANT_FINAL;
    memset(out, 0, sizeof *out);
    out->data = (const uint8_t *)s->sfirst;
    out->len = s->sfirst_len;
    return SZ_SASL_CONTINUE;
}

/* HMAC(<key>, AuthMessage) where AuthMessage = client-first-message-bare ","
 * server-first-message "," client-final-message-without-proof. */
static void auth_hmac(const sz_sasl_t *s, const uint8_t *key, const char *cfinal, size_t cflen,
                      uint8_t *mac)
{
    const EVP_MD *md = s->hash == SZ_HASH_SHA1     ? EVP_sha1()
                       : s->hash == SZ_HASH_SHA256 ? EVP_sha256()
                                                   : EVP_sha512();
    HMAC_CTX ctx;
    unsigned int n = 0;
    HMAC_CTX_init(&ctx);
    HMAC_Init_ex(&ctx, key, s->cred.key_len, md, NULL);
    HMAC_Update(&ctx, (const uint8_t *)s->cfirst + s->gs2_len, s->cfirst_len - s->gs2_len);
    HMAC_Update(&ctx, (const uint8_t *)",", 1);
    HMAC_Update(&ctx, (const uint8_t *)s->sfirst, s->sfirst_len);
    HMAC_Update(&ctx, (const uint8_t *)",", 1);
    HMAC_Update(&ctx, (const uint8_t *)cfinal, cflen);
    HMAC_Final(&ctx, mac, &n);
    HMAC_CTX_cleanup(&ctx);
}

static enum sz_sasl_result scram_final(sz_sasl_t *s, const char *m, size_t len, sz_sasl_out_t *out)
{
    if (len == 0 || len > SZ_SASL_MSG_MAX_BYTES || memchr(m, '\0', len))
        return malformed(s, "bad client-final-message", out);

    /* client-final-message = channel-binding "," nonce ["," extensions]
     * "," proof, the proof last. */
    size_t i = 0;
    struct attr cb, nonce, a;
    if (next_attr(m, len, &i, &cb) != 1 || cb.name != 'c' || next_attr(m, len, &i, &nonce) != 1 ||
        nonce.name != 'r')
        return malformed(s, "bad client-final-message", out);
    int r;
    while ((r = next_attr(m, len, &i, &a)) == 1) {
        if (a.name == 'p')
            break;
        if (a.name == 'm')
            return malformed(s, "unsupported mandatory extension", out);
    }
    if (r != 1 || i != len)
        return malformed(s, "proof missing or not last", out);
    size_t without_proof = a.start - 1;

    /* c= is base64(gs2-header [cb-data]); compared in constant time, since
     * the cb data is a secret of the TLS session. */
    size_t want_len = s->gs2_len + s->cb_len;
    uint8_t *got = sz_malloc(sz_sasl_b64_decoded_max(cb.vlen) + 1);
    ptrdiff_t gl = sz_sasl_b64_decode(cb.v, cb.vlen, got, sz_sasl_b64_decoded_max(cb.vlen));
    bool cb_ok = false;
    if (gl >= 0 && (size_t)gl == want_len) {
        cb_ok = memcmp(got, s->cfirst, s->gs2_len) == 0 &&
                CRYPTO_memcmp(got + s->gs2_len, s->cb, s->cb_len) == 0;
    }
    sz_free(got);
    if (gl < 0)
        return malformed(s, "bad channel-binding encoding", out);
    /* Checked before the proof, so a mismatch says nothing about the
     * password: it does not count (a client whose binding data differs
     * from ours may still log in another way). */
    if (!cb_ok)
        return fail_cb(s, "e=channel-bindings-dont-match", out);

    if (nonce.vlen != s->nonce_len || memcmp(nonce.v, s->nonce, s->nonce_len) != 0)
        return fail(s, SZ_SASL_ERR_NOT_AUTHORIZED, "nonce mismatch", out);

    uint8_t proof[SZ_SCRAM_KEY_MAX], sig[EVP_MAX_MD_SIZE], key[EVP_MAX_MD_SIZE];
    size_t kl = s->cred.key_len;
    if (a.vlen > sz_sasl_b64_encoded_len(SZ_SCRAM_KEY_MAX) ||
        sz_sasl_b64_decode(a.v, a.vlen, proof, sizeof proof) != (ptrdiff_t)kl)
        return malformed(s, "bad proof", out);

    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
     * holds when H(ClientKey) == StoredKey. */
    auth_hmac(s, s->cred.stored_key, m, without_proof, sig);
    for (size_t k = 0; k < kl; k++)
        key[k] = proof[k] ^ sig[k];
    const EVP_MD *md = s->hash == SZ_HASH_SHA1     ? EVP_sha1()
                       : s->hash == SZ_HASH_SHA256 ? EVP_sha256()
                                                   : EVP_sha512();
    EVP_Digest(key, kl, sig, NULL, md, NULL);
    bool ok = CRYPTO_memcmp(sig, s->cred.stored_key, kl) == 0 && !s->fake;
    OPENSSL_cleanse(key, sizeof key);
    if (!ok)
        return fail_creds(s, SZ_SASL_ERR_NOT_AUTHORIZED, "invalid-proof", out);
    /* Only a client that proved the password learns the account state. */
    if (s->acct == SZ_SASL_CREDS_DISABLED)
        return fail_creds(s, SZ_SASL_ERR_ACCOUNT_DISABLED, NULL, out);
    if (s->acct == SZ_SASL_CREDS_EXPIRED)
        return fail_creds(s, SZ_SASL_ERR_CREDENTIALS_EXPIRED, NULL, out);

    /* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
    auth_hmac(s, s->cred.server_key, m, without_proof, sig);
    s->sfinal[0] = 'v';
    s->sfinal[1] = '=';
    size_t n = 2 + sz_sasl_b64_encode(sig, kl, s->sfinal + 2);
    return success(s, s->sfinal, n, out);
}

/* ------------------------------------------------------------------------ */
/* PLAIN (RFC 4616)                                                         */

static enum sz_sasl_result plain_msg(sz_sasl_t *s, const char *m, size_t len, sz_sasl_out_t *out)
{
    /* message = [authzid] NUL authcid NUL passwd, none of them with NUL */
    if (len == 0 || len > SZ_SASL_MSG_MAX_BYTES)
        return malformed(s, "bad PLAIN message", out);
    const char *n1 = memchr(m, '\0', len);
    const char *n2 = n1 ? memchr(n1 + 1, '\0', len - (size_t)(n1 + 1 - m)) : NULL;
    if (!n2 || memchr(n2 + 1, '\0', len - (size_t)(n2 + 1 - m)))
        return malformed(s, "bad PLAIN message", out);
    size_t az_len = (size_t)(n1 - m);
    const char *cid = n1 + 1, *pw = n2 + 1;
    size_t cid_len = (size_t)(n2 - cid), pw_len = len - (size_t)(pw - m);
    if (cid_len == 0 || pw_len == 0)
        return malformed(s, "empty authcid or password", out);
    if (!set_user(s, cid, cid_len))
        return fail_creds(s, SZ_SASL_ERR_NOT_AUTHORIZED, "invalid username", out);
    if (az_len && !authzid_ok(s, m, az_len))
        return fail(s, SZ_SASL_ERR_INVALID_AUTHZID, NULL, out);
    s->pw = sz_malloc(pw_len);
    memcpy(s->pw, pw, pw_len);
    s->pw_len = pw_len;
    return need_creds(s, out);
}

static enum sz_sasl_result plain_creds(sz_sasl_t *s, enum sz_sasl_creds_status st,
                                       const sz_scram_creds_t *creds, sz_sasl_out_t *out)
{
    /* Verify against the strongest-but-common hash stored; all give the
     * same answer for a consistent account record. */
    static const enum sz_hash order[] = {SZ_HASH_SHA256, SZ_HASH_SHA512, SZ_HASH_SHA1};
    enum sz_hash h = SZ_HASH_SHA256;
    bool found = false;
    if (st != SZ_SASL_CREDS_NOT_FOUND && creds) {
        for (size_t k = 0; k < sizeof order / sizeof order[0] && !found; k++) {
            if (cred_ok(&creds->h[order[k]], order[k])) {
                h = order[k];
                found = true;
            }
        }
    }
    if (found) {
        s->cred = creds->h[h];
        s->acct = (uint8_t)st;
    } else {
        /* Spend the same PBKDF2 work as for a real account. */
        fake_cred(s, h, &s->cred);
    }
    s->hash = (uint8_t)h;

    sz_scram_cred_t d;
    int rc = sz_scram_derive(h, s->pw, s->pw_len, s->cred.salt, s->cred.salt_len,
                             s->cred.iterations, &d);
    size_t kl = s->cred.key_len;
    /* Both keys, compared without early exit. */
    bool ok = rc == 0 && (CRYPTO_memcmp(d.stored_key, s->cred.stored_key, kl) |
                          CRYPTO_memcmp(d.server_key, s->cred.server_key, kl)) == 0;
    ok = ok && !s->fake;
    OPENSSL_cleanse(&d, sizeof d);
    free_secret(&s->pw, s->pw_len);
    if (!ok)
        return fail_creds(s, SZ_SASL_ERR_NOT_AUTHORIZED, "invalid credentials", out);
    if (s->acct == SZ_SASL_CREDS_DISABLED)
        return fail_creds(s, SZ_SASL_ERR_ACCOUNT_DISABLED, NULL, out);
    if (s->acct == SZ_SASL_CREDS_EXPIRED)
        return fail_creds(s, SZ_SASL_ERR_CREDENTIALS_EXPIRED, NULL, out);
    return success(s, NULL, 0, out);
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */

static enum sz_sasl_result first_msg(sz_sasl_t *s, const uint8_t *msg, size_t len,
                                     sz_sasl_out_t *out)
{
    const char *m = msg ? (const char *)msg : "";
    if (s->mech == SZ_SASL_PLAIN)
        return plain_msg(s, m, len, out);
    return scram_first(s, m, len, out);
}

enum sz_sasl_result sz_sasl_start(sz_sasl_t *s, const char *mech, size_t mech_len,
                                  const uint8_t *ir, size_t len, sz_sasl_out_t *out)
{
    if (s->state != ST_INIT)
        return malformed(s, "exchange already started", out);
    int m = 0;
    while (m < SZ_SASL_MECH_COUNT &&
           !(mech_len == strlen(mech_names[m]) && memcmp(mech, mech_names[m], mech_len) == 0))
        m++;
    if (m == SZ_SASL_MECH_COUNT)
        return fail(s, SZ_SASL_ERR_INVALID_MECHANISM, NULL, out);
    if (!(sz_sasl_mech_mask(s->flags) & (1u << m))) {
        /* Not offered: say why when the reason is a policy the client can
         * act on (RFC 6120 §6.5.4, §6.5.8). */
        if (m == SZ_SASL_PLAIN)
            return fail(s, SZ_SASL_ERR_ENCRYPTION_REQUIRED, NULL, out);
        if (mech_hash[m] == SZ_HASH_SHA1 && (s->flags & SZ_SASL_F_NO_SHA1))
            return fail(s, SZ_SASL_ERR_MECHANISM_TOO_WEAK, NULL, out);
        return fail(s, SZ_SASL_ERR_INVALID_MECHANISM, NULL, out);
    }
    s->mech = (uint8_t)m;
    s->hash = mech_hash[m];
    s->plus = is_plus((enum sz_sasl_mech)m);
    if (!ir) {
        /* No initial response: both mechanisms are client-first, so the
         * first challenge is empty (RFC 4422 §5 step 3). */
        s->state = ST_WANT_FIRST;
        memset(out, 0, sizeof *out);
        return SZ_SASL_CONTINUE;
    }
    return first_msg(s, ir, len, out);
}

enum sz_sasl_result sz_sasl_step(sz_sasl_t *s, const uint8_t *response, size_t len,
                                 sz_sasl_out_t *out)
{
    switch (s->state) {
    case ST_WANT_FIRST:
        return first_msg(s, response, len, out);
    case ST_WANT_FINAL:
        return scram_final(s, response ? (const char *)response : "", len, out);
    default:
        return malformed(s, "unexpected response", out);
    }
}

enum sz_sasl_result sz_sasl_creds(sz_sasl_t *s, enum sz_sasl_creds_status status,
                                  const sz_scram_creds_t *creds, sz_sasl_out_t *out)
{
    if (s->state != ST_WANT_CREDS)
        return malformed(s, "no credentials pending", out);
    if (status != SZ_SASL_CREDS_FOUND && status != SZ_SASL_CREDS_NOT_FOUND &&
        status != SZ_SASL_CREDS_DISABLED && status != SZ_SASL_CREDS_EXPIRED)
        return fail(s, SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE, NULL, out);
    if (s->mech == SZ_SASL_PLAIN)
        return plain_creds(s, status, creds, out);
    return scram_creds(s, status, creds, out);
}
