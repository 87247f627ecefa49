/*
 * PRECIS (RFC 8264) for JIDs: UsernameCaseMapped for the localpart and
 * OpaqueString for the resourcepart (RFC 8265, RFC 7622 §3.3-3.4), plus the
 * Unicode machinery that jid_domain.c's IDNA2008 checks share: UTF-8, the
 * derived-property tables (RFC 8264 §8, RFC 5892 §3), contextual rules, the
 * Bidi Rule, mapping and NFC. Pure functions: any thread.
 * Invariant: the ASCII fast path agrees with the Unicode path. Unicode data
 * is libutf8proc's (15.0 for 2.8); where it lacks a property the RFCs use,
 * the approximation sits next to the code: search for "Approximation".
 */
#include "core/precis.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <utf8proc.h>

#include "core/mem.h"

/* ------------------------------------------------------------------------ */
/* Per-part error codes                                                     */

static const struct sz_precis_errs errs_local = {SZ_JID_ERR_LOCAL_EMPTY, SZ_JID_ERR_LOCAL_TOO_LONG,
                                                 SZ_JID_ERR_LOCAL_CHAR, SZ_JID_ERR_LOCAL_CONTEXT,
                                                 SZ_JID_ERR_LOCAL_BIDI};
static const struct sz_precis_errs errs_domain = {
    SZ_JID_ERR_DOMAIN_EMPTY, SZ_JID_ERR_DOMAIN_TOO_LONG, SZ_JID_ERR_DOMAIN_CHAR,
    SZ_JID_ERR_DOMAIN_CONTEXT, SZ_JID_ERR_DOMAIN_BIDI};
static const struct sz_precis_errs errs_res = {
    SZ_JID_ERR_RESOURCE_EMPTY, SZ_JID_ERR_RESOURCE_TOO_LONG, SZ_JID_ERR_RESOURCE_CHAR,
    SZ_JID_ERR_RESOURCE_CONTEXT, SZ_JID_ERR_RESOURCE_CHAR};

const struct sz_precis_errs *sz_precis_errs(enum sz_jid_part p)
{
    return p == SZ_JID_PART_LOCAL    ? &errs_local
           : p == SZ_JID_PART_DOMAIN ? &errs_domain
                                     : &errs_res;
}

/* ------------------------------------------------------------------------ */
/* Scratch memory for the Unicode path: a stack arena, heap beyond it.      */

struct sz_precis_scratch_blk {
    struct sz_precis_scratch_blk *next;
    uint64_t data[];
};

void sz_precis_scratch_init(struct sz_precis_scratch *sc)
{
    sc->_used = 0;
    sc->_heap = NULL;
}

void *sz_precis_scratch_get(struct sz_precis_scratch *sc, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n <= sizeof sc->_stk.b - sc->_used) {
        void *p = sc->_stk.b + sc->_used;
        sc->_used += n;
        return p;
    }
    struct sz_precis_scratch_blk *b = sz_malloc(sizeof *b + n);
    b->next = sc->_heap;
    sc->_heap = b;
    return b->data;
}

void sz_precis_scratch_release(struct sz_precis_scratch *sc)
{
    while (sc->_heap) {
        struct sz_precis_scratch_blk *b = sc->_heap;
        sc->_heap = b->next;
        sz_free(b);
    }
    sc->_used = 0;
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */

ptrdiff_t sz_precis_utf8_decode(const uint8_t *s, size_t len, int32_t *out)
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
static enum pv derive(int32_t cp, enum sz_precis_class c)
{
    enum pv e;
    if (exception(cp, &e))
        return e;
    const utf8proc_property_t *p = prop(cp);
    int cat = p->category;
    if (cat == UTF8PROC_CATEGORY_CN && !is_noncharacter(cp))
        return PV_UNASSIGNED;
    if (c == SZ_PRECIS_IDNA2008) {
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
    bool free = c == SZ_PRECIS_FREEFORM;
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

bool sz_precis_has_rtl(const int32_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int b = bidi(a[i]);
        if (b == UTF8PROC_BIDI_CLASS_R || b == UTF8PROC_BIDI_CLASS_AL ||
            b == UTF8PROC_BIDI_CLASS_AN)
            return true;
    }
    return false;
}

bool sz_precis_bidi_rule(const int32_t *a, size_t n)
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
size_t sz_precis_map(enum sz_jid_part part, const int32_t *a, size_t n, int32_t *m)
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

/* utf8proc needs UTF-8 input to decompose and reorder. */
int32_t *sz_precis_nfc(struct sz_precis_scratch *sc, const int32_t *a, size_t n, size_t *outn)
{
    size_t ul = utf8_len(a, n);
    char *u = sz_precis_scratch_get(sc, ul + 1);
    utf8_encode(a, n, u);
    /* Canonical decomposition expands a code point into at most 4 (and a
     * UTF-8 byte into at most 2); try a usual size first. */
    size_t cap = n + 16;
    int32_t *d = sz_precis_scratch_get(sc, cap * sizeof *d);
    utf8proc_ssize_t r =
        utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul, d,
                           (utf8proc_ssize_t)cap, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    if (r > (utf8proc_ssize_t)cap) {
        cap = (size_t)r;
        d = sz_precis_scratch_get(sc, cap * sizeof *d);
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
/* Code point validation of a prepared part or label                        */

static bool local_forbidden(int32_t cp)
{
    /* RFC 7622 §3.3.1: characters IdentifierClass allows but localparts
     * must not contain (they clash with URIs, XML and JID syntax). */
    return cp == '"' || cp == '&' || cp == '\'' || cp == '/' || cp == ':' || cp == '<' ||
           cp == '>' || cp == '@';
}

enum sz_jid_err sz_precis_check(enum sz_precis_class c, const int32_t *a, size_t n,
                                const struct sz_precis_errs *pe, bool is_local)
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

int sz_precis_emit(const int32_t *a, size_t n, const struct sz_precis_errs *pe, char *out,
                   size_t cap, size_t *outlen, enum sz_jid_err *why)
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

bool sz_precis_ascii_only(const uint8_t *s, size_t len)
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
    const struct sz_precis_errs *pe = sz_precis_errs(part);
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
/* Kept out of line (like jid_domain.c's prep_domain_unicode()): its 8 KiB scratch frame
 * would otherwise cost the ASCII path a stack-clash probe per page. */
static __attribute__((noinline)) int prep_text_unicode(enum sz_jid_part part, const uint8_t *s,
                                                       size_t len, char *out, size_t cap,
                                                       size_t *outlen, enum sz_jid_err *why)
{
    const struct sz_precis_errs *pe = sz_precis_errs(part);
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
    size_t mn = sz_precis_map(part, a, (size_t)n, m);
    size_t cn;
    int32_t *c = sz_precis_nfc(&sc, m, mn, &cn);
    if (!c) {
        *why = pe->chr;
        goto out;
    }
    if (cn == 0) {
        *why = pe->empty;
        goto out;
    }
    bool local = part == SZ_JID_PART_LOCAL;
    enum sz_jid_err e =
        sz_precis_check(local ? SZ_PRECIS_IDENTIFIER : SZ_PRECIS_FREEFORM, c, cn, pe, local);
    /* RFC 8265 §3.3.1 rule 5 (UsernameCaseMapped only): the Bidi Rule
     * applies to strings with right-to-left code points. We count AN as
     * such too, as RFC 5893 §1.4 does for an "RTL label". */
    if (e == SZ_JID_OK && local && sz_precis_has_rtl(c, cn) && !sz_precis_bidi_rule(c, cn))
        e = pe->bidi;
    if (e != SZ_JID_OK) {
        *why = e;
        goto out;
    }
    rc = sz_precis_emit(c, cn, pe, out, cap, outlen, why);
out:
    sz_precis_scratch_release(&sc);
    return rc;
}

int sz_precis_prep_text(enum sz_jid_part part, const uint8_t *s, size_t len, char *out, size_t cap,
                        size_t *outlen, enum sz_jid_err *why)
{
    if (len > SZ_JID_INPUT_PART_MAX_BYTES) {
        *why = sz_precis_errs(part)->too_long;
        return -EINVAL;
    }
    if (sz_precis_ascii_only(s, len))
        return prep_ascii_text(part, s, len, out, cap, outlen, why);
    return prep_text_unicode(part, s, len, out, cap, outlen, why);
}
