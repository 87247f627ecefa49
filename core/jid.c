/*
 * JIDs (RFC 7622): the JID object. Splits the input into its three parts,
 * has each prepared (localpart and resourcepart by the PRECIS profiles in
 * core/precis.c, domainpart by core/jid_domain.c), and stores, compares,
 * formats and hashes the result. Pure functions: any thread.
 * Invariants: a sz_jid_t only ever holds an enforced JID, stored once as
 * "local@domain/resource\0"; equal JIDs have equal bytes. ASCII parts (the
 * common case) take a byte-level fast path that must agree with the Unicode
 * path; the fuzz target checks that parse(format(parse(x))) is stable.
 */
#include "core/jid.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/jid_domain.h"
#include "core/mem.h"
#include "core/precis.h"

struct sz_jid {
    uint16_t local_len;  /* 0: no localpart (it is never empty when present) */
    uint16_t domain_len; /* >= 1 */
    uint16_t res_len;    /* 0: bare JID */
    uint16_t full_len;   /* strlen(s) */
    char s[];            /* "local@domain/resource\0", normalized */
};

_Static_assert(sizeof(struct sz_jid) == 8, "SZ_JID_BUF_BYTES assumes an 8-byte header");

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static const char *const err_names[] = {
    [SZ_JID_OK] = "ok",
    [SZ_JID_ERR_UTF8] = "utf8",
    [SZ_JID_ERR_TOO_LONG] = "too-long",
    [SZ_JID_ERR_LOCAL_EMPTY] = "local-empty",
    [SZ_JID_ERR_LOCAL_TOO_LONG] = "local-too-long",
    [SZ_JID_ERR_LOCAL_CHAR] = "local-char",
    [SZ_JID_ERR_LOCAL_CONTEXT] = "local-context",
    [SZ_JID_ERR_LOCAL_BIDI] = "local-bidi",
    [SZ_JID_ERR_DOMAIN_EMPTY] = "domain-empty",
    [SZ_JID_ERR_DOMAIN_TOO_LONG] = "domain-too-long",
    [SZ_JID_ERR_DOMAIN_LABEL] = "domain-label",
    [SZ_JID_ERR_DOMAIN_CHAR] = "domain-char",
    [SZ_JID_ERR_DOMAIN_CONTEXT] = "domain-context",
    [SZ_JID_ERR_DOMAIN_BIDI] = "domain-bidi",
    [SZ_JID_ERR_DOMAIN_ALABEL] = "domain-alabel",
    [SZ_JID_ERR_DOMAIN_IP] = "domain-ip",
    [SZ_JID_ERR_RESOURCE_EMPTY] = "resource-empty",
    [SZ_JID_ERR_RESOURCE_TOO_LONG] = "resource-too-long",
    [SZ_JID_ERR_RESOURCE_CHAR] = "resource-char",
    [SZ_JID_ERR_RESOURCE_CONTEXT] = "resource-context",
    [SZ_JID_ERR_NOBUFS] = "nobufs",
};

const char *sz_jid_strerror(enum sz_jid_err e)
{
    if ((unsigned)e >= sizeof err_names / sizeof err_names[0] || !err_names[e])
        return "unknown";
    return err_names[e];
}

static int prep_any(enum sz_jid_part part, const uint8_t *s, size_t len, char *out, size_t cap,
                    size_t *outlen, enum sz_jid_err *why)
{
    if (part == SZ_JID_PART_DOMAIN)
        return sz_jid_domain_prep(s, len, out, cap, outlen, why);
    return sz_precis_prep_text(part, s, len, out, cap, outlen, why);
}

int sz_jid_prep(enum sz_jid_part part, const char *s, size_t len, char *out, size_t cap,
                size_t *outlen, enum sz_jid_err *why)
{
    enum sz_jid_err e = SZ_JID_OK;
    size_t n = 0;
    if (cap == 0) {
        e = SZ_JID_ERR_NOBUFS;
        if (why)
            *why = e;
        return -ENOBUFS;
    }
    int rc = prep_any(part, (const uint8_t *)s, len, out, cap - 1, &n, &e);
    if (why)
        *why = rc ? e : SZ_JID_OK;
    if (rc)
        return rc;
    out[n] = '\0';
    *outlen = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing and construction                                                 */

int sz_jid_parse_into(const char *s, size_t len, void *buf, size_t cap, sz_jid_t **out,
                      enum sz_jid_err *why)
{
    enum sz_jid_err e = SZ_JID_OK;
    int rc = -EINVAL;
    const uint8_t *u = (const uint8_t *)s;
    if (len > SZ_JID_INPUT_MAX_BYTES) {
        e = SZ_JID_ERR_TOO_LONG;
        goto fail;
    }
    if (cap < sizeof(struct sz_jid) + 2) {
        e = SZ_JID_ERR_NOBUFS;
        rc = -ENOBUFS;
        goto fail;
    }
    /* RFC 7622 §3.2 steps: the domainpart is what remains after removing
     * everything from the first '/' on, then everything up to and including
     * the first '@'. Separators are found before any mapping, so a fullwidth
     * '@' or '/' is never a separator. */
    const uint8_t *slash = memchr(u, '/', len);
    size_t pre = slash ? (size_t)(slash - u) : len;
    const uint8_t *at = memchr(u, '@', pre);
    const uint8_t *dom = at ? at + 1 : u;
    size_t dom_len = pre - (size_t)(dom - u);

    struct sz_jid *j = buf;
    char *o = j->s;
    size_t room = cap - sizeof *j - 1; /* keep one byte for the NUL */
    size_t n;
    j->local_len = 0;
    j->res_len = 0;
    if (at) {
        if (at == u) {
            e = SZ_JID_ERR_LOCAL_EMPTY;
            goto fail;
        }
        rc = sz_precis_prep_text(SZ_JID_PART_LOCAL, u, (size_t)(at - u), o, room, &n, &e);
        if (rc)
            goto fail;
        j->local_len = (uint16_t)n;
        o += n;
        room -= n;
        if (room == 0) {
            e = SZ_JID_ERR_NOBUFS;
            rc = -ENOBUFS;
            goto fail;
        }
        *o++ = '@';
        room--;
    }
    rc = sz_jid_domain_prep(dom, dom_len, o, room, &n, &e);
    if (rc)
        goto fail;
    j->domain_len = (uint16_t)n;
    o += n;
    room -= n;
    if (slash) {
        if (room == 0) {
            e = SZ_JID_ERR_NOBUFS;
            rc = -ENOBUFS;
            goto fail;
        }
        *o++ = '/';
        room--;
        if (len - pre - 1 == 0) {
            e = SZ_JID_ERR_RESOURCE_EMPTY;
            rc = -EINVAL;
            goto fail;
        }
        rc = sz_precis_prep_text(SZ_JID_PART_RESOURCE, slash + 1, len - pre - 1, o, room, &n, &e);
        if (rc)
            goto fail;
        j->res_len = (uint16_t)n;
        o += n;
    }
    *o = '\0';
    j->full_len = (uint16_t)(o - j->s);
    *out = j;
    if (why)
        *why = SZ_JID_OK;
    return 0;
fail:
    if (why)
        *why = e;
    return rc;
}

static sz_jid_t *jid_copy(const struct sz_jid *src)
{
    size_t n = sizeof *src + src->full_len + 1;
    struct sz_jid *j = sz_malloc(n);
    memcpy(j, src, n);
    return j;
}

int sz_jid_parse_err(const char *s, size_t len, sz_jid_t **out, enum sz_jid_err *why)
{
    sz_jid_buf_t b;
    sz_jid_t *j;
    int rc = sz_jid_parse_into(s, len, &b, sizeof b, &j, why);
    if (rc)
        return rc; /* -ENOBUFS cannot happen: every valid JID fits */
    *out = jid_copy(j);
    return 0;
}

int sz_jid_parse(const char *s, size_t len, sz_jid_t **out)
{
    return sz_jid_parse_err(s, len, out, NULL);
}

static size_t bare_len(const struct sz_jid *j)
{
    return (j->local_len ? j->local_len + 1u : 0u) + j->domain_len;
}

sz_jid_t *sz_jid_dup(const sz_jid_t *j)
{
    return jid_copy(j);
}

sz_jid_t *sz_jid_bare_dup(const sz_jid_t *j)
{
    size_t bl = bare_len(j);
    struct sz_jid *b = sz_malloc(sizeof *b + bl + 1);
    *b = *j;
    b->res_len = 0;
    b->full_len = (uint16_t)bl;
    memcpy(b->s, j->s, bl);
    b->s[bl] = '\0';
    return b;
}

int sz_jid_with_resource(const sz_jid_t *j, const char *res, size_t len, sz_jid_t **out)
{
    char tmp[SZ_JID_PART_MAX_BYTES];
    size_t n;
    enum sz_jid_err e;
    if (len == 0)
        return -EINVAL;
    int rc = sz_precis_prep_text(SZ_JID_PART_RESOURCE, (const uint8_t *)res, len, tmp, sizeof tmp,
                                 &n, &e);
    if (rc)
        return -EINVAL; /* a prepared resource always fits in tmp */
    size_t bl = bare_len(j);
    struct sz_jid *f = sz_malloc(sizeof *f + bl + 1 + n + 1);
    *f = *j;
    memcpy(f->s, j->s, bl);
    f->s[bl] = '/';
    memcpy(f->s + bl + 1, tmp, n);
    f->s[bl + 1 + n] = '\0';
    f->res_len = (uint16_t)n;
    f->full_len = (uint16_t)(bl + 1 + n);
    *out = f;
    return 0;
}

void sz_jid_free(sz_jid_t *j)
{
    sz_free(j);
}

/* ------------------------------------------------------------------------ */
/* Accessors, comparison, formatting                                        */

const char *sz_jid_local(const sz_jid_t *j, size_t *len)
{
    if (len)
        *len = j->local_len;
    return j->local_len ? j->s : NULL;
}

const char *sz_jid_domain(const sz_jid_t *j, size_t *len)
{
    if (len)
        *len = j->domain_len;
    return j->s + (j->local_len ? j->local_len + 1 : 0);
}

const char *sz_jid_resource(const sz_jid_t *j, size_t *len)
{
    if (len)
        *len = j->res_len;
    return j->res_len ? j->s + bare_len(j) + 1 : NULL;
}

const char *sz_jid_full(const sz_jid_t *j, size_t *len)
{
    if (len)
        *len = j->full_len;
    return j->s;
}

const char *sz_jid_bare(const sz_jid_t *j, size_t *len)
{
    if (len)
        *len = bare_len(j);
    return j->s;
}

bool sz_jid_is_bare(const sz_jid_t *j)
{
    return j->res_len == 0;
}

bool sz_jid_has_local(const sz_jid_t *j)
{
    return j->local_len != 0;
}

bool sz_jid_bare_eq(const sz_jid_t *a, const sz_jid_t *b)
{
    /* Equal part lengths rule out "a@b.c" vs a domain-only "ab.c"-style
     * overlaps; then the bytes decide. */
    return a->local_len == b->local_len && a->domain_len == b->domain_len &&
           memcmp(a->s, b->s, bare_len(a)) == 0;
}

bool sz_jid_full_eq(const sz_jid_t *a, const sz_jid_t *b)
{
    return a->local_len == b->local_len && a->domain_len == b->domain_len &&
           a->res_len == b->res_len && memcmp(a->s, b->s, a->full_len) == 0;
}

size_t sz_jid_format(const sz_jid_t *j, bool bare, char *buf, size_t cap)
{
    size_t n = bare ? bare_len(j) : j->full_len;
    if (cap > 0) {
        size_t c = n < cap - 1 ? n : cap - 1;
        memcpy(buf, j->s, c);
        buf[c] = '\0';
    }
    return n;
}

char *sz_jid_to_str(const sz_jid_t *j, bool bare)
{
    return sz_strndup(j->s, bare ? bare_len(j) : j->full_len);
}

/* ------------------------------------------------------------------------ */
/* Hash ("szh1", specified in jid.h; changing it moves users between        */
/* reactors and must be coordinated across a cluster)                       */

#define H_P1 0x9E3779B97F4A7C15ULL
#define H_P2 0xC2B2AE3D27D4EB4FULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t w = 0;
    if (n == 8) {
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        return w;
    }
    for (size_t i = n; i-- > 0;)
        w = (w << 8) | p[i];
    return w;
}

uint64_t sz_jid_hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0x736A6964686173ULL ^ ((uint64_t)n * H_P1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = rotl64(h ^ (load_le(b + i, 8) * H_P2), 31) * H_P1;
    if (i < n)
        h = rotl64(h ^ (load_le(b + i, n - i) * H_P2), 31) * H_P1;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t sz_jid_hash_bare(const sz_jid_t *j)
{
    return sz_jid_hash_bytes(j->s, bare_len(j));
}
