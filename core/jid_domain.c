/*
 * Domainparts of JIDs (RFC 7622 §3.2): IPv4 and IPv6 literals, NR-LDH
 * labels on the ASCII fast path, and IDNA2008 (RFC 5890-5893) for the
 * rest: A-labels through Punycode (RFC 3492), U-label checks on the shared
 * tables in precis.c, and the Bidi Rule over a bidi domain name.
 * Pure functions: any thread.
 * Invariants: the stored form is lowercase with U-labels (an A-label is
 * decoded and must round-trip exactly), and the ASCII fast path agrees with
 * the Unicode path.
 */
#include "core/jid_domain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <utf8proc.h>

#include "core/precis.h"

/* ------------------------------------------------------------------------ */
/* Punycode (RFC 3492 §6), for A-labels                                     */

enum {
    PC_BASE = 36,
    PC_TMIN = 1,
    PC_TMAX = 26,
    PC_SKEW = 38,
    PC_DAMP = 700,
    PC_BIAS = 72,
    PC_N = 128
};

static uint32_t pc_adapt(uint32_t delta, uint32_t points, bool first)
{
    uint32_t k = 0;
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / points;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static uint32_t pc_t(uint32_t k, uint32_t bias)
{
    return k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
}

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* Encode <a>/<n> into <o> (room for <cap> chars). Returns the length, or
 * -1 when it does not fit or overflows. */
static ptrdiff_t punycode_encode(const int32_t *a, size_t n, char *o, size_t cap)
{
    size_t out = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0x80) {
            if (out >= cap)
                return -1;
            o[out++] = (char)a[i];
            b++;
        }
    }
    if (b > 0) {
        if (out >= cap)
            return -1;
        o[out++] = '-';
    }
    uint32_t cpn = PC_N, delta = 0, bias = PC_BIAS;
    for (size_t h = b; h < n;) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if ((uint32_t)a[i] >= cpn && (uint32_t)a[i] < m)
                m = (uint32_t)a[i];
        if ((uint64_t)(m - cpn) * (h + 1) + delta > UINT32_MAX)
            return -1;
        delta += (m - cpn) * (uint32_t)(h + 1);
        cpn = m;
        for (size_t i = 0; i < n; i++) {
            if ((uint32_t)a[i] < cpn && ++delta == 0)
                return -1;
            if ((uint32_t)a[i] != cpn)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PC_BASE;; k += PC_BASE) {
                uint32_t t = pc_t(k, bias);
                if (q < t)
                    break;
                if (out >= cap)
                    return -1;
                o[out++] = pc_digit(t + (q - t) % (PC_BASE - t));
                q = (q - t) / (PC_BASE - t);
            }
            if (out >= cap)
                return -1;
            o[out++] = pc_digit(q);
            bias = pc_adapt(delta, (uint32_t)h + 1, h == b);
            delta = 0;
            h++;
        }
        delta++;
        cpn++;
    }
    return (ptrdiff_t)out;
}

/* Decode the lowercase Punycode <s>/<len> into <o> (room for <cap> code
 * points). Returns the count, or -1 on bad input. */
static ptrdiff_t punycode_decode(const char *s, size_t len, int32_t *o, size_t cap)
{
    size_t b = 0, out = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '-')
            b = i;
    if (b > cap)
        return -1;
    for (size_t i = 0; i < b; i++)
        o[out++] = (unsigned char)s[i];
    uint32_t cpn = PC_N, i = 0, bias = PC_BIAS;
    for (size_t in = b > 0 ? b + 1 : 0; in < len;) {
        uint32_t oldi = i, w = 1;
        for (uint32_t k = PC_BASE;; k += PC_BASE) {
            if (in >= len)
                return -1;
            char c = s[in++];
            uint32_t d = (c >= 'a' && c <= 'z')   ? (uint32_t)(c - 'a')
                         : (c >= '0' && c <= '9') ? (uint32_t)(c - '0' + 26)
                                                  : PC_BASE;
            if (d >= PC_BASE || d > (UINT32_MAX - i) / w)
                return -1;
            i += d * w;
            uint32_t t = pc_t(k, bias);
            if (d < t)
                break;
            if (w > UINT32_MAX / (PC_BASE - t))
                return -1;
            w *= PC_BASE - t;
        }
        if (out >= cap)
            return -1;
        bias = pc_adapt(i - oldi, (uint32_t)out + 1, oldi == 0);
        if (i / (out + 1) > 0x10FFFF - cpn)
            return -1;
        cpn += i / (uint32_t)(out + 1);
        i %= (uint32_t)(out + 1);
        if (cpn < 0x80 || (cpn >= 0xD800 && cpn <= 0xDFFF))
            return -1;
        memmove(o + i + 1, o + i, (out - i) * sizeof *o);
        o[i++] = (int32_t)cpn;
        out++;
    }
    return (ptrdiff_t)out;
}

/* ------------------------------------------------------------------------ */
/* Domainpart (RFC 7622 §3.2)                                               */

static int domain_fail(enum sz_jid_err e, enum sz_jid_err *why)
{
    *why = e;
    return -EINVAL;
}

/* IPv6 literal "[...]": validated by inet_pton(), hex digits lowercased
 * (case mapping applies to the whole domainpart), otherwise kept as given.
 * IPvFuture ("[v1.x]") and zone identifiers are not accepted. */
static int prep_ipv6(const uint8_t *s, size_t len, char *out, size_t cap, size_t *outlen,
                     enum sz_jid_err *why)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof tmp)
        return domain_fail(SZ_JID_ERR_DOMAIN_IP, why);
    for (size_t i = 1; i < len - 1; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (uint8_t)(c + 32);
        /* inet_pton() would stop at a NUL and ignore what follows */
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
            return domain_fail(SZ_JID_ERR_DOMAIN_IP, why);
        tmp[i - 1] = (char)c;
    }
    tmp[len - 2] = '\0';
    if (inet_pton(AF_INET6, tmp, &a6) != 1)
        return domain_fail(SZ_JID_ERR_DOMAIN_IP, why);
    if (len > cap) {
        *why = SZ_JID_ERR_NOBUFS;
        return -ENOBUFS;
    }
    out[0] = '[';
    memcpy(out + 1, tmp, len - 2);
    out[len - 1] = ']';
    *outlen = len;
    return 0;
}

static bool ldh(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* NR-LDH label check (RFC 5890 §2.3.1) of the lowercase <l>/<n>: 1..63
 * letters, digits and hyphens, no hyphen at either end, and no "--" in
 * positions 3-4 (those are reserved, "xn--" ones being A-labels). */
static enum sz_jid_err ldh_label(const uint8_t *l, size_t n)
{
    if (n == 0 || n > 63)
        return SZ_JID_ERR_DOMAIN_LABEL;
    for (size_t i = 0; i < n; i++)
        if (!ldh(l[i]))
            return SZ_JID_ERR_DOMAIN_CHAR;
    if (l[0] == '-' || l[n - 1] == '-' || (n >= 4 && l[2] == '-' && l[3] == '-'))
        return SZ_JID_ERR_DOMAIN_LABEL;
    return SZ_JID_OK;
}

/* True when every byte is a digit or a dot: then it must be an IPv4
 * address. Approximation: an all-numeric name that is not a dotted quad is
 * rejected rather than treated as a DNS name (no TLD is all-numeric). */
static bool looks_ipv4(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return false;
    return true;
}

static int prep_ipv4(const uint8_t *s, size_t len, char *out, size_t cap, size_t *outlen,
                     enum sz_jid_err *why)
{
    char tmp[INET_ADDRSTRLEN + 1];
    struct in_addr a4;
    if (len >= sizeof tmp)
        return domain_fail(SZ_JID_ERR_DOMAIN_IP, why);
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* glibc inet_pton() takes exactly four decimal octets, no leading zeros */
    if (inet_pton(AF_INET, tmp, &a4) != 1)
        return domain_fail(SZ_JID_ERR_DOMAIN_IP, why);
    if (len > cap) {
        *why = SZ_JID_ERR_NOBUFS;
        return -ENOBUFS;
    }
    memcpy(out, s, len);
    *outlen = len;
    return 0;
}

static bool is_alabel_prefix(const int32_t *l, size_t n)
{
    return n >= 4 && l[0] == 'x' && l[1] == 'n' && l[2] == '-' && l[3] == '-';
}

/*
 * Convert the A-label <l>/<n> (lowercase ASCII, "xn--" included) into its
 * U-label, appended at <d>. Returns the number of code points, or -1 when
 * it is not a valid A-label: bad Punycode, all-ASCII result, a result that
 * is not itself a prepared U-label (not NFC), or one that does not encode
 * back to exactly <l> (RFC 5891 §5.4: the round trip must be exact).
 */
static ptrdiff_t alabel_decode(struct sz_precis_scratch *sc, const int32_t *l, size_t n, int32_t *d)
{
    char asc[64], re[64];
    if (n > 63)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!ldh((uint8_t)l[i]))
            return -1;
        asc[i] = (char)l[i];
    }
    ptrdiff_t dn = punycode_decode(asc + 4, n - 4, d, 63);
    if (dn <= 0)
        return -1;
    bool non_ascii = false;
    for (ptrdiff_t i = 0; i < dn; i++)
        non_ascii |= d[i] >= 0x80;
    if (!non_ascii)
        return -1;
    ptrdiff_t rn = punycode_encode(d, (size_t)dn, re, sizeof re);
    if (rn != (ptrdiff_t)n - 4 || memcmp(re, asc + 4, (size_t)rn) != 0)
        return -1;
    /* The U-label must already be in prepared form: unchanged by the
     * domain mappings (a decoded uppercase letter would be lowercased on
     * the next parse) and by NFC. */
    int32_t mapped[2 * 63];
    size_t mn = sz_precis_map(SZ_JID_PART_DOMAIN, d, (size_t)dn, mapped);
    if (mn != (size_t)dn || memcmp(mapped, d, mn * sizeof *d) != 0)
        return -1;
    size_t cn;
    int32_t *c = sz_precis_nfc(sc, d, (size_t)dn, &cn);
    if (!c || cn != (size_t)dn || memcmp(c, d, cn * sizeof *c) != 0)
        return -1;
    return dn;
}

/* U-label checks (RFC 5891 §4.2.3, RFC 5892): hyphen placement, no leading
 * combining mark, every code point PVALID or allowed by its context rule,
 * and an A-label form of at most 63 octets. */
static enum sz_jid_err ulabel_check(const int32_t *l, size_t n)
{
    char tmp[64];
    if (n == 0)
        return SZ_JID_ERR_DOMAIN_LABEL;
    if (l[0] == '-' || l[n - 1] == '-' || (n >= 4 && l[2] == '-' && l[3] == '-'))
        return SZ_JID_ERR_DOMAIN_LABEL;
    int c0 = utf8proc_get_property(l[0])->category;
    if (c0 == UTF8PROC_CATEGORY_MN || c0 == UTF8PROC_CATEGORY_MC || c0 == UTF8PROC_CATEGORY_ME)
        return SZ_JID_ERR_DOMAIN_CHAR;
    enum sz_jid_err e =
        sz_precis_check(SZ_PRECIS_IDNA2008, l, n, sz_precis_errs(SZ_JID_PART_DOMAIN), false);
    if (e != SZ_JID_OK)
        return e;
    if (punycode_encode(l, n, tmp, 63 - 4) < 0)
        return SZ_JID_ERR_DOMAIN_LABEL;
    return SZ_JID_OK;
}

/* Unicode path: map, NFC, convert A-labels, check each label, then the
 * Bidi Rule over all labels of a bidi domain name (RFC 5893 §2). */
static __attribute__((noinline)) int prep_domain_unicode(const uint8_t *s, size_t len, char *out,
                                                         size_t cap, size_t *outlen,
                                                         enum sz_jid_err *why)
{
    struct sz_precis_scratch sc;
    sz_precis_scratch_init(&sc);
    int rc = -EINVAL;
    int32_t *a = sz_precis_scratch_get(&sc, len * sizeof *a);
    ptrdiff_t n = sz_precis_utf8_decode(s, len, a);
    if (n < 0) {
        *why = SZ_JID_ERR_UTF8;
        goto out;
    }
    int32_t *m = sz_precis_scratch_get(&sc, 2 * (size_t)n * sizeof *m);
    size_t mn = sz_precis_map(SZ_JID_PART_DOMAIN, a, (size_t)n, m);
    size_t cn;
    int32_t *c = sz_precis_nfc(&sc, m, mn, &cn);
    if (!c) {
        *why = SZ_JID_ERR_DOMAIN_CHAR;
        goto out;
    }
    /* A-label conversion: a label of up to 63 chars decodes into at most 63
     * code points, so <d> never needs more than <cn> slots. */
    int32_t *d = sz_precis_scratch_get(&sc, (cn + 1) * sizeof *d);
    size_t dn = 0;
    bool bidi_name = false;
    for (size_t i = 0; i <= cn;) {
        size_t j = i;
        while (j < cn && c[j] != '.')
            j++;
        size_t ln = j - i;
        size_t at = dn;
        enum sz_jid_err e = SZ_JID_OK;
        bool ascii = true;
        for (size_t k = i; k < j; k++)
            ascii &= c[k] < 0x80;
        if (ln == 0) {
            e = SZ_JID_ERR_DOMAIN_LABEL;
        } else if (ascii && is_alabel_prefix(c + i, ln)) {
            ptrdiff_t r = alabel_decode(&sc, c + i, ln, d + dn);
            if (r < 0)
                e = SZ_JID_ERR_DOMAIN_ALABEL;
            else
                dn += (size_t)r;
        } else {
            memcpy(d + dn, c + i, ln * sizeof *d);
            dn += ln;
        }
        if (e == SZ_JID_OK && dn - at > 0) {
            bool u = false;
            for (size_t k = at; k < dn; k++)
                u |= d[k] >= 0x80;
            if (u) {
                e = ulabel_check(d + at, dn - at);
            } else {
                uint8_t tmp[64];
                if (dn - at > 63) {
                    e = SZ_JID_ERR_DOMAIN_LABEL;
                } else {
                    for (size_t k = at; k < dn; k++)
                        tmp[k - at] = (uint8_t)d[k];
                    e = ldh_label(tmp, dn - at);
                }
            }
            bidi_name |= sz_precis_has_rtl(d + at, dn - at);
        }
        if (e != SZ_JID_OK) {
            *why = e;
            goto out;
        }
        if (j < cn)
            d[dn++] = '.';
        i = j + 1;
    }
    /* Mapping can turn a name into digits and dots (fullwidth digits):
     * then it is an IPv4 address, as on the ASCII path. */
    bool numeric = true;
    for (size_t i = 0; i < dn && numeric; i++)
        numeric = (d[i] >= '0' && d[i] <= '9') || d[i] == '.';
    if (numeric) {
        uint8_t tmp[INET_ADDRSTRLEN + 1];
        if (dn >= sizeof tmp) {
            *why = SZ_JID_ERR_DOMAIN_IP;
            goto out;
        }
        for (size_t i = 0; i < dn; i++)
            tmp[i] = (uint8_t)d[i];
        rc = prep_ipv4(tmp, dn, out, cap, outlen, why);
        goto out;
    }
    if (bidi_name) {
        for (size_t i = 0; i < dn;) {
            size_t j = i;
            while (j < dn && d[j] != '.')
                j++;
            if (!sz_precis_bidi_rule(d + i, j - i)) {
                *why = SZ_JID_ERR_DOMAIN_BIDI;
                goto out;
            }
            i = j + 1;
        }
    }
    rc = sz_precis_emit(d, dn, sz_precis_errs(SZ_JID_PART_DOMAIN), out, cap, outlen, why);
out:
    sz_precis_scratch_release(&sc);
    return rc;
}

int sz_jid_domain_prep(const uint8_t *s, size_t len, char *out, size_t cap, size_t *outlen,
                       enum sz_jid_err *why)
{
    /* RFC 7622 §3.2: a trailing label separator is stripped before any
     * other canonicalization. Only one: "example.com.." keeps an empty
     * label and fails. */
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0)
        return domain_fail(SZ_JID_ERR_DOMAIN_EMPTY, why);
    if (len > SZ_JID_INPUT_PART_MAX_BYTES)
        return domain_fail(SZ_JID_ERR_DOMAIN_TOO_LONG, why);
    if (s[0] == '[')
        return prep_ipv6(s, len, out, cap, outlen, why);
    if (looks_ipv4(s, len))
        return prep_ipv4(s, len, out, cap, outlen, why);
    if (!sz_precis_ascii_only(s, len))
        return prep_domain_unicode(s, len, out, cap, outlen, why);

    /* ASCII fast path: lowercase and check NR-LDH labels. A-labels go the
     * Unicode way, since they are stored as U-labels; so does a name too
     * long for <low>, which may still shrink below the limit if it holds
     * A-labels (and fails there otherwise). */
    if (len > SZ_JID_PART_MAX_BYTES)
        return prep_domain_unicode(s, len, out, cap, outlen, why);
    uint8_t low[SZ_JID_PART_MAX_BYTES];
    for (size_t i = 0; i < len; i++)
        low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (uint8_t)(s[i] + 32) : s[i];
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && low[j] != '.')
            j++;
        if (j - i >= 4 && memcmp(low + i, "xn--", 4) == 0)
            return prep_domain_unicode(s, len, out, cap, outlen, why);
        enum sz_jid_err e = ldh_label(low + i, j - i);
        if (e != SZ_JID_OK)
            return domain_fail(e, why);
        i = j + 1;
    }
    if (len > cap) {
        *why = SZ_JID_ERR_NOBUFS;
        return -ENOBUFS;
    }
    memcpy(out, low, len);
    *outlen = len;
    return 0;
}
