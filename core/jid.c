/*
 * JIDs (RFC 7622): split, prepare each part, store the canonical string.
 *
 * Owns: the PRECIS profiles the JID parts use (UsernameCaseMapped for the
 * localpart, OpaqueString for the resourcepart, RFC 8265), the IDNA2008
 * checks of the domainpart (RFC 5890-5893), Punycode (RFC 3492) for
 * A-labels, and the bare-JID hash. Pure functions: any thread.
 *
 * Invariants: a sz_jid_t only ever holds an enforced JID, stored once as
 * "local@domain/resource\0"; equal JIDs have equal bytes. ASCII parts (the
 * common case) take a byte-level fast path that must agree with the Unicode
 * path; the fuzz target checks that parse(format(parse(x))) is stable.
 *
 * Unicode data comes from libutf8proc (its Unicode version, 15.0 for 2.8).
 * Where utf8proc lacks a property the RFCs use, the approximation is
 * written next to the code that makes it; search for "Approximation".
 *
 * Size: this file is past the 1,500-line mark because the PRECIS/IDNA
 * machinery has no other user yet; when one appears (SASL SCRAM usernames
 * through sz_jid_prep() is the first candidate), move everything above
 * "Localpart and resourcepart" to core/precis.c.
 */
#include "core/jid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <utf8proc.h>

#include "core/mem.h"

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

/* Per-part error codes, so the shared helpers can report for any part. */
struct part_errs {
    enum sz_jid_err empty, too_long, chr, context, bidi;
};
static const struct part_errs errs_local = {SZ_JID_ERR_LOCAL_EMPTY, SZ_JID_ERR_LOCAL_TOO_LONG,
                                            SZ_JID_ERR_LOCAL_CHAR, SZ_JID_ERR_LOCAL_CONTEXT,
                                            SZ_JID_ERR_LOCAL_BIDI};
static const struct part_errs errs_domain = {SZ_JID_ERR_DOMAIN_EMPTY, SZ_JID_ERR_DOMAIN_TOO_LONG,
                                             SZ_JID_ERR_DOMAIN_CHAR, SZ_JID_ERR_DOMAIN_CONTEXT,
                                             SZ_JID_ERR_DOMAIN_BIDI};
static const struct part_errs errs_res = {SZ_JID_ERR_RESOURCE_EMPTY, SZ_JID_ERR_RESOURCE_TOO_LONG,
                                          SZ_JID_ERR_RESOURCE_CHAR, SZ_JID_ERR_RESOURCE_CONTEXT,
                                          SZ_JID_ERR_RESOURCE_CHAR};

static const struct part_errs *part_errs(enum sz_jid_part p)
{
    return p == SZ_JID_PART_LOCAL    ? &errs_local
           : p == SZ_JID_PART_DOMAIN ? &errs_domain
                                     : &errs_res;
}

/* ------------------------------------------------------------------------ */
/* Scratch memory for the Unicode path: a stack arena, heap beyond it.      */

struct scratch_blk {
    struct scratch_blk *next;
    uint64_t data[];
};

struct scratch {
    union {
        uint64_t align;
        char b[8192];
    } stk;
    size_t used;
    struct scratch_blk *heap; /* blocks beyond the stack arena, freed at release */
};

static void scratch_init(struct scratch *sc)
{
    sc->used = 0;
    sc->heap = NULL;
}

static void *scratch_get(struct scratch *sc, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n <= sizeof sc->stk.b - sc->used) {
        void *p = sc->stk.b + sc->used;
        sc->used += n;
        return p;
    }
    struct scratch_blk *b = sz_malloc(sizeof *b + n);
    b->next = sc->heap;
    sc->heap = b;
    return b->data;
}

static void scratch_release(struct scratch *sc)
{
    while (sc->heap) {
        struct scratch_blk *b = sc->heap;
        sc->heap = b->next;
        sz_free(b);
    }
    sc->used = 0;
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */

/* Strict RFC 3629 decoding: rejects overlong forms, surrogates, values
 * above U+10FFFF and truncated sequences. Returns the number of code
 * points written to <out> (room for <len>), or -1. */
static ptrdiff_t utf8_decode(const uint8_t *s, size_t len, int32_t *out)
{
    size_t i = 0, n = 0;
    while (i < len) {
        uint8_t c = s[i];
        int32_t cp, min;
        size_t k;
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return -1; /* continuation byte, C0/C1 overlong lead, F5..FF */
        }
        if (len - i - 1 < k)
            return -1;
        for (size_t j = 1; j <= k; j++) {
            uint8_t b = s[i + j];
            if ((b & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        out[n++] = cp;
        i += k + 1;
    }
    return (ptrdiff_t)n;
}

static size_t utf8_cplen(int32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t utf8_len(const int32_t *a, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += utf8_cplen(a[i]);
    return b;
}

static size_t utf8_put(char *o, int32_t cp)
{
    uint8_t *u = (uint8_t *)o;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (uint8_t)(0xF0 | (cp >> 18));
    u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static size_t utf8_encode(const int32_t *a, size_t n, char *o)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += utf8_put(o + b, a[i]);
    return b;
}

/* ------------------------------------------------------------------------ */
/* Unicode properties                                                       */

static inline const utf8proc_property_t *prop(int32_t cp)
{
    return utf8proc_get_property(cp);
}

static inline int category(int32_t cp)
{
    return prop(cp)->category;
}

static inline int bidi(int32_t cp)
{
    return prop(cp)->bidi_class;
}

static bool is_noncharacter(int32_t cp)
{
    return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* RFC 5892 §2.9 (I) OldHangulJamo: Hangul_Syllable_Type L, V or T. */
static bool is_old_hangul_jamo(int32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xA960 && cp <= 0xA97C) ||
           (cp >= 0xD7B0 && cp <= 0xD7C6) || (cp >= 0xD7CB && cp <= 0xD7FB);
}

/* RFC 8264 §9.1 / RFC 5892 §2.1 (A) LetterDigits. */
static bool is_letter_digit(int c)
{
    return c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LO ||
           c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_MN ||
           c == UTF8PROC_CATEGORY_MC;
}

/* Normalize the single code point <cp> with utf8proc <opts> and report
 * whether it changed. Used for HasCompat (NFKC) and IDNA Unstable
 * (NFKC + case fold). */
static bool changes_under(int32_t cp, utf8proc_option_t opts)
{
    char u[4];
    int32_t d[32];
    size_t ul = utf8_put(u, cp);
    utf8proc_ssize_t n = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul, d,
                                            32, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | opts);
    if (n < 0 || n > 32)
        return true;
    n = utf8proc_normalize_utf32(d, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    return !(n == 1 && d[0] == cp);
}

/* RFC 8264 §9.17 (Q) HasCompat: toNFKC(cp) != cp. */
static bool has_compat(int32_t cp, const utf8proc_property_t *p)
{
    if (p->decomp_seqindex == UINT16_MAX && !(cp >= 0xAC00 && cp <= 0xD7A3))
        return false; /* no decomposition at all: NFKC leaves it alone */
    return changes_under(cp, UTF8PROC_COMPAT);
}

/* RFC 5892 §2.2 (B) Unstable: toNFKC(toCaseFold(toNFKC(cp))) != cp.
 * Approximation: utf8proc applies the case fold during the compatibility
 * decomposition (NFKC(casefold(NFKD(cp)))), which gives the same answer
 * for every code point that can reach this check after our mappings. */
static bool is_unstable(int32_t cp, const utf8proc_property_t *p)
{
    if (p->decomp_seqindex == UINT16_MAX && p->casefold_seqindex == UINT16_MAX)
        return false;
    return changes_under(cp, UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
}

enum pv { PV_PVALID, PV_CONTEXTJ, PV_CONTEXTO, PV_DISALLOWED, PV_UNASSIGNED };
enum cls { CLS_IDENTIFIER, CLS_FREEFORM, CLS_IDNA };

/* RFC 5892 §2.6 (F) Exceptions, shared by IDNA2008 and PRECIS. */
static bool exception(int32_t cp, enum pv *out)
{
    switch (cp) {
    case 0x00DF:
    case 0x03C2:
    case 0x06FD:
    case 0x06FE:
    case 0x0F0B:
    case 0x3007:
        *out = PV_PVALID;
        return true;
    case 0x00B7:
    case 0x0375:
    case 0x05F3:
    case 0x05F4:
    case 0x30FB:
        *out = PV_CONTEXTO;
        return true;
    case 0x0640:
    case 0x07FA:
    case 0x302E:
    case 0x302F:
    case 0x303B:
        *out = PV_DISALLOWED;
        return true;
    }
    if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06F0 && cp <= 0x06F9)) {
        *out = PV_CONTEXTO;
        return true;
    }
    if (cp >= 0x3031 && cp <= 0x3035) {
        *out = PV_DISALLOWED;
        return true;
    }
    return false;
}

/*
 * Derived property of <cp> for string class <c>: RFC 8264 §8 for the PRECIS
 * classes (IdentifierClass, FreeformClass), RFC 5892 §3 for IDNA2008, in
 * the order those sections give. BackwardCompatible (G) is empty in both.
 * Unassigned (J) means General_Category Cn and not a noncharacter, per
 * utf8proc's Unicode version.
 */
static enum pv derive(int32_t cp, enum cls c)
{
    enum pv e;
    if (exception(cp, &e))
        return e;
    const utf8proc_property_t *p = prop(cp);
    int cat = p->category;
    if (cat == UTF8PROC_CATEGORY_CN && !is_noncharacter(cp))
        return PV_UNASSIGNED;
    if (c == CLS_IDNA) {
        if (cp < 0x80) /* LDH (K): only a-z 0-9 '-' once case-mapped */
            return ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == '-')
                       ? PV_PVALID
                       : PV_DISALLOWED;
        if (cp == 0x200C || cp == 0x200D) /* JoinControl (H) */
            return PV_CONTEXTJ;
        if (is_unstable(cp, p)) /* (B) */
            return PV_DISALLOWED;
        /* IgnorableProperties (C): Default_Ignorable_Code_Point (utf8proc's
         * "ignorable" bit), White_Space (all Zs/Zl/Zp or C0/C1 controls,
         * which LetterDigits excludes anyway) and noncharacters. */
        if (p->ignorable || is_noncharacter(cp))
            return PV_DISALLOWED;
        /* IgnorableBlocks (D) */
        if ((cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0x1D100 && cp <= 0x1D24F))
            return PV_DISALLOWED;
        if (is_old_hangul_jamo(cp)) /* (I) */
            return PV_DISALLOWED;
        return is_letter_digit(cat) ? PV_PVALID : PV_DISALLOWED;
    }
    if (cp >= 0x21 && cp <= 0x7E) /* ASCII7 (K), §9.11 */
        return PV_PVALID;
    if (cp == 0x200C || cp == 0x200D) /* JoinControl (H), §9.8 */
        return PV_CONTEXTJ;
    if (is_old_hangul_jamo(cp)) /* (I), §9.9 */
        return PV_DISALLOWED;
    if (p->ignorable || is_noncharacter(cp)) /* PrecisIgnorableProperties (M), §9.13 */
        return PV_DISALLOWED;
    if (cat == UTF8PROC_CATEGORY_CC) /* Controls (L), §9.12 */
        return PV_DISALLOWED;
    bool free = c == CLS_FREEFORM;
    if (has_compat(cp, p)) /* HasCompat (Q), §9.17 */
        return free ? PV_PVALID : PV_DISALLOWED;
    if (is_letter_digit(cat)) /* LetterDigits (A), §9.1 */
        return PV_PVALID;
    switch (cat) {
    /* OtherLetterDigits (R) §9.18, Spaces (N) §9.14, Symbols (O) §9.15,
     * Punctuation (P) §9.16: ID_DIS or FREE_PVAL */
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return free ? PV_PVALID : PV_DISALLOWED;
    }
    return PV_DISALLOWED; /* Zl, Zp, Cf, Co, Cs... */
}

/* ------------------------------------------------------------------------ */
/* Contextual rules (RFC 5892 Appendix A), applied within one label/part.   */

/* Approximation: utf8proc has no Script property; these block ranges stand
 * in for Script=Greek, Hebrew, Hiragana, Katakana and Han. */
static bool is_greek(int32_t cp)
{
    return (cp >= 0x0370 && cp <= 0x03FF) || (cp >= 0x1F00 && cp <= 0x1FFF);
}

static bool is_hebrew(int32_t cp)
{
    return (cp >= 0x0590 && cp <= 0x05FF) || (cp >= 0xFB1D && cp <= 0xFB4F);
}

static bool is_kana_han(int32_t cp)
{
    return (cp >= 0x3040 && cp <= 0x30FF && cp != 0x30FB) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0xFF66 && cp <= 0xFF9F) || (cp >= 0x2E80 && cp <= 0x2FDF) || cp == 0x3005 ||
           cp == 0x3007 || (cp >= 0x3021 && cp <= 0x3029) || (cp >= 0x3038 && cp <= 0x303B) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3FFFF) ||
           (cp >= 0x1B000 && cp <= 0x1B16F);
}

/* Approximation of Joining_Type (not in utf8proc) for the ZWNJ rule:
 * Transparent (T) ~ Mn, Me or Cf; a joining letter (L, D or R) ~ a letter
 * of bidi class AL (Arabic, Syriac, Thaana...) or an N'Ko letter. This
 * accepts ZWNJ between any two such letters, including the few that do
 * not join (Joining_Type U), and rejects it in Mongolian and Phags-pa. */
static bool is_transparent(int32_t cp)
{
    int c = category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF;
}

static bool is_joining(int32_t cp)
{
    return (bidi(cp) == UTF8PROC_BIDI_CLASS_AL && category(cp) == UTF8PROC_CATEGORY_LO) ||
           (cp >= 0x07CA && cp <= 0x07EA);
}

static bool zwnj_joins(const int32_t *a, size_t n, size_t i)
{
    size_t k = i;
    while (k > 0 && is_transparent(a[k - 1]))
        k--;
    if (k == 0 || !is_joining(a[k - 1]))
        return false;
    k = i + 1;
    while (k < n && is_transparent(a[k]))
        k++;
    return k < n && is_joining(a[k]);
}

static bool context_ok(const int32_t *a, size_t n, size_t i)
{
    int32_t cp = a[i];
    switch (cp) {
    case 0x200C: /* ZERO WIDTH NON-JOINER: after a virama, or inside a joining run */
        if (i > 0 && prop(a[i - 1])->combining_class == 9)
            return true;
        return zwnj_joins(a, n, i);
    case 0x200D: /* ZERO WIDTH JOINER: after a virama */
        return i > 0 && prop(a[i - 1])->combining_class == 9;
    case 0x00B7: /* MIDDLE DOT: between two 'l' (Catalan) */
        return i > 0 && i + 1 < n && a[i - 1] == 'l' && a[i + 1] == 'l';
    case 0x0375: /* GREEK LOWER NUMERAL SIGN: followed by Greek */
        return i + 1 < n && is_greek(a[i + 1]);
    case 0x05F3:
    case 0x05F4: /* HEBREW GERESH/GERSHAYIM: preceded by Hebrew */
        return i > 0 && is_hebrew(a[i - 1]);
    case 0x30FB: /* KATAKANA MIDDLE DOT: some Hiragana, Katakana or Han in the label */
        for (size_t k = 0; k < n; k++)
            if (is_kana_han(a[k]))
                return true;
        return false;
    }
    /* ARABIC-INDIC DIGITS and EXTENDED ARABIC-INDIC DIGITS never mix */
    int32_t lo = (cp >= 0x0660 && cp <= 0x0669) ? 0x06F0 : 0x0660;
    for (size_t k = 0; k < n; k++)
        if (a[k] >= lo && a[k] <= lo + 9)
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Bidi Rule (RFC 5893 §2)                                                  */

static bool has_rtl(const int32_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int b = bidi(a[i]);
        if (b == UTF8PROC_BIDI_CLASS_R || b == UTF8PROC_BIDI_CLASS_AL ||
            b == UTF8PROC_BIDI_CLASS_AN)
            return true;
    }
    return false;
}

static bool bidi_rule(const int32_t *a, size_t n)
{
    if (n == 0)
        return true;
    int first = bidi(a[0]);
    size_t e = n;
    while (e > 0 && bidi(a[e - 1]) == UTF8PROC_BIDI_CLASS_NSM)
        e--;
    if (e == 0)
        return false;
    int last = bidi(a[e - 1]);
    if (first == UTF8PROC_BIDI_CLASS_R || first == UTF8PROC_BIDI_CLASS_AL) {
        bool en = false, an = false;
        for (size_t i = 0; i < n; i++) {
            switch (bidi(a[i])) { /* condition 2 */
            case UTF8PROC_BIDI_CLASS_EN:
                en = true;
                break;
            case UTF8PROC_BIDI_CLASS_AN:
                an = true;
                break;
            case UTF8PROC_BIDI_CLASS_R:
            case UTF8PROC_BIDI_CLASS_AL:
            case UTF8PROC_BIDI_CLASS_ES:
            case UTF8PROC_BIDI_CLASS_CS:
            case UTF8PROC_BIDI_CLASS_ET:
            case UTF8PROC_BIDI_CLASS_ON:
            case UTF8PROC_BIDI_CLASS_BN:
            case UTF8PROC_BIDI_CLASS_NSM:
                break;
            default:
                return false;
            }
        }
        if (en && an) /* condition 4 */
            return false;
        return last == UTF8PROC_BIDI_CLASS_R || last == UTF8PROC_BIDI_CLASS_AL ||
               last == UTF8PROC_BIDI_CLASS_EN || last == UTF8PROC_BIDI_CLASS_AN; /* 3 */
    }
    if (first != UTF8PROC_BIDI_CLASS_L) /* condition 1 */
        return false;
    for (size_t i = 0; i < n; i++) {
        switch (bidi(a[i])) { /* condition 5 */
        case UTF8PROC_BIDI_CLASS_L:
        case UTF8PROC_BIDI_CLASS_EN:
        case UTF8PROC_BIDI_CLASS_ES:
        case UTF8PROC_BIDI_CLASS_CS:
        case UTF8PROC_BIDI_CLASS_ET:
        case UTF8PROC_BIDI_CLASS_ON:
        case UTF8PROC_BIDI_CLASS_BN:
        case UTF8PROC_BIDI_CLASS_NSM:
            break;
        default:
            return false;
        }
    }
    return last == UTF8PROC_BIDI_CLASS_L || last == UTF8PROC_BIDI_CLASS_EN; /* 6 */
}

/* ------------------------------------------------------------------------ */
/* Mapping rules                                                            */

/* RFC 8265 §3.3.1 rule 1: fullwidth and halfwidth code points map to their
 * decomposition mapping. Approximation: utf8proc only exposes the full
 * (recursive) decomposition, so a <wide>/<narrow> character whose full
 * decomposition is longer than one code point (e.g. U+FFE3 -> U+0020
 * U+0304) is left unmapped; its one-step mapping is HasCompat itself, so
 * both ways end in the same rejection. */
static int32_t width_map(int32_t cp)
{
    if (cp < 0x80)
        return cp;
    const utf8proc_property_t *p = prop(cp);
    if (p->decomp_type != UTF8PROC_DECOMP_TYPE_WIDE &&
        p->decomp_type != UTF8PROC_DECOMP_TYPE_NARROW)
        return cp;
    int32_t d[8];
    int lbc = 0;
    utf8proc_ssize_t r =
        utf8proc_decompose_char(cp, d, 8, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, &lbc);
    return r == 1 ? d[0] : cp;
}

/* Approximations of the Unicode "Cased" and "Case_Ignorable" properties
 * (not in utf8proc) for the Final_Sigma condition of toLowerCase():
 * Cased ~ Lu, Ll, Lt; Case_Ignorable ~ Mn, Me, Cf, Lm, Sk plus the
 * Word_Break MidLetter/MidNumLet/Single_Quote characters. */
static bool is_cased(int32_t cp)
{
    int c = category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static bool is_case_ignorable(int32_t cp)
{
    switch (cp) {
    case 0x0027:
    case 0x002E:
    case 0x003A:
    case 0x00B7:
    case 0x0387:
    case 0x05F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
        return true;
    }
    int c = category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

/* Unicode §3.13 Final_Sigma: preceded by a cased letter (skipping case-
 * ignorables) and not followed by one. */
static bool final_sigma(const int32_t *a, size_t n, size_t i)
{
    size_t k = i;
    bool before = false;
    while (k > 0) {
        k--;
        if (is_case_ignorable(a[k]))
            continue;
        before = is_cased(a[k]);
        break;
    }
    if (!before)
        return false;
    for (k = i + 1; k < n; k++) {
        if (is_case_ignorable(a[k]))
            continue;
        return !is_cased(a[k]);
    }
    return true;
}

/*
 * Apply the part's mapping rules to the decoded <a>/<n> into <m> (room for
 * 2n code points); returns the mapped length.
 *  - local (RFC 8265 §3.3.1): width mapping, then toLowerCase(). utf8proc's
 *    simple lowercase mapping plus the two full-mapping cases that differ
 *    from it without a language tag: U+0130 -> "i" U+0307 and Final_Sigma.
 *    Not case folding: "fußball" and "fussball" stay distinct (RFC 7622
 *    §3.5 lists both as different valid JIDs).
 *  - domain (RFC 7622 §3.2.2, RFC 5895 §2): width mapping, lowercase, and
 *    the ideographic full stop U+3002 (and, through width mapping, U+FF0E
 *    and U+FF61) to '.'.
 *  - resource (RFC 8265 §4.2.1): non-ASCII spaces (Zs) to U+0020.
 */
static size_t map_part(enum sz_jid_part part, const int32_t *a, size_t n, int32_t *m)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t cp = a[i];
        if (part == SZ_JID_PART_RESOURCE) {
            if (cp >= 0x80 && category(cp) == UTF8PROC_CATEGORY_ZS)
                cp = 0x20;
            m[o++] = cp;
            continue;
        }
        cp = width_map(cp);
        if (cp == 0x0130) {
            m[o++] = 'i';
            m[o++] = 0x0307;
            continue;
        }
        if (cp == 0x03A3)
            cp = final_sigma(a, n, i) ? 0x03C2 : 0x03C3;
        else
            cp = utf8proc_tolower(cp);
        if (part == SZ_JID_PART_DOMAIN && cp == 0x3002)
            cp = '.';
        m[o++] = cp;
    }
    return o;
}

/*
 * NFC of <a>/<n> (utf8proc needs UTF-8 input to decompose and reorder).
 * Returns the normalized code points in scratch memory, length in *<outn>,
 * or NULL if utf8proc fails (it cannot on valid input).
 */
static int32_t *nfc(struct scratch *sc, const int32_t *a, size_t n, size_t *outn)
{
    size_t ul = utf8_len(a, n);
    char *u = scratch_get(sc, ul + 1);
    utf8_encode(a, n, u);
    /* Canonical decomposition expands a code point into at most 4 (and a
     * UTF-8 byte into at most 2); try a usual size first. */
    size_t cap = n + 16;
    int32_t *d = scratch_get(sc, cap * sizeof *d);
    utf8proc_ssize_t r =
        utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul, d,
                           (utf8proc_ssize_t)cap, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    if (r > (utf8proc_ssize_t)cap) {
        cap = (size_t)r;
        d = scratch_get(sc, cap * sizeof *d);
        r = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul, d,
                               (utf8proc_ssize_t)cap, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    }
    if (r < 0)
        return NULL;
    r = utf8proc_normalize_utf32(d, r, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0)
        return NULL;
    *outn = (size_t)r;
    return d;
}

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
/* Code point validation of a prepared part or label                        */

static bool local_forbidden(int32_t cp)
{
    /* RFC 7622 §3.3.1: characters IdentifierClass allows but localparts
     * must not contain (they clash with URIs, XML and JID syntax). */
    return cp == '"' || cp == '&' || cp == '\'' || cp == '/' || cp == ':' || cp == '<' ||
           cp == '>' || cp == '@';
}

static enum sz_jid_err check_cps(enum cls c, const int32_t *a, size_t n, const struct part_errs *pe,
                                 bool is_local)
{
    for (size_t i = 0; i < n; i++) {
        switch (derive(a[i], c)) {
        case PV_PVALID:
            break;
        case PV_CONTEXTJ:
        case PV_CONTEXTO:
            if (!context_ok(a, n, i))
                return pe->context;
            break;
        default:
            return pe->chr;
        }
        if (is_local && local_forbidden(a[i]))
            return pe->chr;
    }
    return SZ_JID_OK;
}

/* ------------------------------------------------------------------------ */
/* Output helper                                                            */

/* Writes <a>/<n> as UTF-8 to <out>/<cap> after the 1..1023 length check. */
static int emit(const int32_t *a, size_t n, const struct part_errs *pe, char *out, size_t cap,
                size_t *outlen, enum sz_jid_err *why)
{
    size_t b = utf8_len(a, n);
    if (b == 0) {
        *why = pe->empty;
        return -EINVAL;
    }
    if (b > SZ_JID_PART_MAX_BYTES) {
        *why = pe->too_long;
        return -EINVAL;
    }
    if (b > cap) {
        *why = SZ_JID_ERR_NOBUFS;
        return -ENOBUFS;
    }
    utf8_encode(a, n, out);
    *outlen = b;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Localpart and resourcepart                                               */

static bool ascii_only(const uint8_t *s, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= s[i];
    return acc < 0x80;
}

/* Fast path, equivalent to the Unicode path on ASCII input: ASCII is NFC,
 * width mapping leaves it alone, and it has no RTL characters. */
static int prep_ascii_text(enum sz_jid_part part, const uint8_t *s, size_t len, char *out,
                           size_t cap, size_t *outlen, enum sz_jid_err *why)
{
    const struct part_errs *pe = part_errs(part);
    if (len == 0) {
        *why = pe->empty;
        return -EINVAL;
    }
    if (len > SZ_JID_PART_MAX_BYTES) {
        *why = pe->too_long;
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        /* Controls are disallowed in both classes; the space is Spaces
         * (N): FreeformClass only. */
        if (c < 0x20 || c == 0x7F || (c == 0x20 && part == SZ_JID_PART_LOCAL) ||
            (part == SZ_JID_PART_LOCAL && local_forbidden(c))) {
            *why = pe->chr;
            return -EINVAL;
        }
    }
    if (len > cap) {
        *why = SZ_JID_ERR_NOBUFS;
        return -ENOBUFS;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (part == SZ_JID_PART_LOCAL && c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        out[i] = (char)c;
    }
    *outlen = len;
    return 0;
}

/* PRECIS enforcement (RFC 8264 §7): mapping rules, NFC, then the behavioral
 * rules (code point classes, contexts) and, for the UsernameCaseMapped
 * localpart, the Bidi Rule. */
/* Kept out of line (like prep_domain_unicode()): its 8 KiB scratch frame
 * would otherwise cost the ASCII path a stack-clash probe per page. */
static __attribute__((noinline)) int prep_text_unicode(enum sz_jid_part part, const uint8_t *s,
                                                       size_t len, char *out, size_t cap,
                                                       size_t *outlen, enum sz_jid_err *why)
{
    const struct part_errs *pe = part_errs(part);
    struct scratch sc;
    scratch_init(&sc);
    int rc = -EINVAL;
    int32_t *a = scratch_get(&sc, len * sizeof *a);
    ptrdiff_t n = utf8_decode(s, len, a);
    if (n < 0) {
        *why = SZ_JID_ERR_UTF8;
        goto out;
    }
    int32_t *m = scratch_get(&sc, 2 * (size_t)n * sizeof *m);
    size_t mn = map_part(part, a, (size_t)n, m);
    size_t cn;
    int32_t *c = nfc(&sc, m, mn, &cn);
    if (!c) {
        *why = pe->chr;
        goto out;
    }
    if (cn == 0) {
        *why = pe->empty;
        goto out;
    }
    bool local = part == SZ_JID_PART_LOCAL;
    enum sz_jid_err e = check_cps(local ? CLS_IDENTIFIER : CLS_FREEFORM, c, cn, pe, local);
    /* RFC 8265 §3.3.1 rule 5 (UsernameCaseMapped only): the Bidi Rule
     * applies to strings with right-to-left code points. We count AN as
     * such too, as RFC 5893 §1.4 does for an "RTL label". */
    if (e == SZ_JID_OK && local && has_rtl(c, cn) && !bidi_rule(c, cn))
        e = pe->bidi;
    if (e != SZ_JID_OK) {
        *why = e;
        goto out;
    }
    rc = emit(c, cn, pe, out, cap, outlen, why);
out:
    scratch_release(&sc);
    return rc;
}

static int prep_text(enum sz_jid_part part, const uint8_t *s, size_t len, char *out, size_t cap,
                     size_t *outlen, enum sz_jid_err *why)
{
    if (len > SZ_JID_INPUT_PART_MAX_BYTES) {
        *why = part_errs(part)->too_long;
        return -EINVAL;
    }
    if (ascii_only(s, len))
        return prep_ascii_text(part, s, len, out, cap, outlen, why);
    return prep_text_unicode(part, s, len, out, cap, outlen, why);
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
static ptrdiff_t alabel_decode(struct scratch *sc, const int32_t *l, size_t n, int32_t *d)
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
    size_t mn = map_part(SZ_JID_PART_DOMAIN, d, (size_t)dn, mapped);
    if (mn != (size_t)dn || memcmp(mapped, d, mn * sizeof *d) != 0)
        return -1;
    size_t cn;
    int32_t *c = nfc(sc, d, (size_t)dn, &cn);
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
    int c0 = category(l[0]);
    if (c0 == UTF8PROC_CATEGORY_MN || c0 == UTF8PROC_CATEGORY_MC || c0 == UTF8PROC_CATEGORY_ME)
        return SZ_JID_ERR_DOMAIN_CHAR;
    enum sz_jid_err e = check_cps(CLS_IDNA, l, n, &errs_domain, false);
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
    struct scratch sc;
    scratch_init(&sc);
    int rc = -EINVAL;
    int32_t *a = scratch_get(&sc, len * sizeof *a);
    ptrdiff_t n = utf8_decode(s, len, a);
    if (n < 0) {
        *why = SZ_JID_ERR_UTF8;
        goto out;
    }
    int32_t *m = scratch_get(&sc, 2 * (size_t)n * sizeof *m);
    size_t mn = map_part(SZ_JID_PART_DOMAIN, a, (size_t)n, m);
    size_t cn;
    int32_t *c = nfc(&sc, m, mn, &cn);
    if (!c) {
        *why = SZ_JID_ERR_DOMAIN_CHAR;
        goto out;
    }
    /* A-label conversion: a label of up to 63 chars decodes into at most 63
     * code points, so <d> never needs more than <cn> slots. */
    int32_t *d = scratch_get(&sc, (cn + 1) * sizeof *d);
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
            bidi_name |= has_rtl(d + at, dn - at);
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
            if (!bidi_rule(d + i, j - i)) {
                *why = SZ_JID_ERR_DOMAIN_BIDI;
                goto out;
            }
            i = j + 1;
        }
    }
    rc = emit(d, dn, &errs_domain, out, cap, outlen, why);
out:
    scratch_release(&sc);
    return rc;
}

static int prep_domain(const uint8_t *s, size_t len, char *out, size_t cap, size_t *outlen,
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
    if (!ascii_only(s, len))
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

static int prep_any(enum sz_jid_part part, const uint8_t *s, size_t len, char *out, size_t cap,
                    size_t *outlen, enum sz_jid_err *why)
{
    if (part == SZ_JID_PART_DOMAIN)
        return prep_domain(s, len, out, cap, outlen, why);
    return prep_text(part, s, len, out, cap, outlen, why);
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
        rc = prep_text(SZ_JID_PART_LOCAL, u, (size_t)(at - u), o, room, &n, &e);
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
    rc = prep_domain(dom, dom_len, o, room, &n, &e);
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
        rc = prep_text(SZ_JID_PART_RESOURCE, slash + 1, len - pre - 1, o, room, &n, &e);
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
    int rc = prep_text(SZ_JID_PART_RESOURCE, (const uint8_t *)res, len, tmp, sizeof tmp, &n, &e);
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
