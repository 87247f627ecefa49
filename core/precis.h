/*
 * PRECIS string preparation (RFC 8264, RFC 8265) for the JID parts, and the
 * Unicode machinery it shares with the IDNA2008 domain checks
 * (core/jid_domain.c): UTF-8 over code point arrays, the derived-property
 * tables, contextual rules, the Bidi Rule, the mapping rules and NFC.
 *
 * Private to core/jid.c and core/jid_domain.c; other code prepares strings
 * through sz_jid_prep() (core/jid.h). Every function is pure apart from the
 * scratch arena the caller passes in: any thread may call them.
 */
#ifndef SZ_CORE_PRECIS_H
#define SZ_CORE_PRECIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"

/* The error each check reports, per part, so the shared helpers can speak
 * for the localpart, domainpart or resourcepart. */
struct sz_precis_errs {
    enum sz_jid_err empty, too_long, chr, context, bidi;
};

/** Any thread. The static error set of <p>; never NULL. */
const struct sz_precis_errs *sz_precis_errs(enum sz_jid_part p);

/*
 * Scratch memory for the Unicode path: an 8 KiB arena that lives in the
 * caller's frame (declare one as a local), with heap blocks beyond it.
 * Fields are private.
 */
struct sz_precis_scratch_blk;
struct sz_precis_scratch {
    union {
        uint64_t align;
        char b[8192];
    } _stk;
    size_t _used;
    struct sz_precis_scratch_blk *_heap; /* blocks beyond the stack arena, freed at release */
};

/** Any thread. Make <sc> empty; call once before sz_precis_scratch_get(). */
void sz_precis_scratch_init(struct sz_precis_scratch *sc);

/**
 * Any thread. <n> bytes, 8-byte aligned, from <sc>'s arena or, when that is
 * full, from the heap (sz_malloc(): never NULL). The memory belongs to <sc>
 * and lives until sz_precis_scratch_release().
 */
void *sz_precis_scratch_get(struct sz_precis_scratch *sc, size_t n);

/** Any thread. Free every block <sc> took from the heap and empty it; <sc>
 *  may be reused. */
void sz_precis_scratch_release(struct sz_precis_scratch *sc);

/**
 * Any thread. Strict RFC 3629 decoding of <s>/<len> (only read): rejects
 * overlong forms, surrogates, values above U+10FFFF and truncated
 * sequences. <out> (caller's) has room for <len> code points.
 * Returns the number of code points written, or -1.
 */
ptrdiff_t sz_precis_utf8_decode(const uint8_t *s, size_t len, int32_t *out);

/* The rule set sz_precis_check() applies: the two PRECIS string classes
 * (RFC 8264 §4) and the IDNA2008 derived property (RFC 5892 §3), which
 * share most of their tables. */
enum sz_precis_class { SZ_PRECIS_IDENTIFIER, SZ_PRECIS_FREEFORM, SZ_PRECIS_IDNA2008 };

/**
 * Any thread. Apply <part>'s mapping rules (width, case, spaces, label
 * separators; see precis.c) to <a>/<n> and write the result to the
 * caller's <m>, which has room for 2 * <n> code points.
 * Returns the mapped length.
 */
size_t sz_precis_map(enum sz_jid_part part, const int32_t *a, size_t n, int32_t *m);

/**
 * Any thread. NFC of <a>/<n> (only read). The result lives in <sc> (valid
 * until its release); its length goes to *<outn>.
 * Returns the code points, or NULL if utf8proc fails (it cannot on valid
 * input).
 */
int32_t *sz_precis_nfc(struct sz_precis_scratch *sc, const int32_t *a, size_t n, size_t *outn);

/**
 * Any thread. The behavioral rules over the prepared <a>/<n>: every code
 * point PVALID in class <c>, or CONTEXTJ/CONTEXTO with its RFC 5892
 * Appendix A rule satisfied; with <is_local>, also none of the characters
 * RFC 7622 §3.3.1 bars from localparts.
 * Returns SZ_JID_OK, <pe>->chr or <pe>->context.
 */
enum sz_jid_err sz_precis_check(enum sz_precis_class c, const int32_t *a, size_t n,
                                const struct sz_precis_errs *pe, bool is_local);

/** Any thread. True when <a>/<n> holds a code point of bidi class R, AL or
 *  AN (an "RTL label", RFC 5893 §1.4). */
bool sz_precis_has_rtl(const int32_t *a, size_t n);

/** Any thread. True when <a>/<n> satisfies the Bidi Rule (RFC 5893 §2);
 *  an empty string does. */
bool sz_precis_bidi_rule(const int32_t *a, size_t n);

/**
 * Any thread. Write <a>/<n> as UTF-8 to the caller's <out> (<cap> bytes,
 * no NUL) after the 1..SZ_JID_PART_MAX_BYTES length check.
 * Returns 0 with the length in *<outlen>, -EINVAL (*<why> is <pe>->empty
 * or <pe>->too_long) or -ENOBUFS (*<why> is SZ_JID_ERR_NOBUFS).
 */
int sz_precis_emit(const int32_t *a, size_t n, const struct sz_precis_errs *pe, char *out,
                   size_t cap, size_t *outlen, enum sz_jid_err *why);

/** Any thread. True when every byte of <s>/<len> is below 0x80. */
bool sz_precis_ascii_only(const uint8_t *s, size_t len);

/**
 * Any thread. Enforce the localpart (UsernameCaseMapped, RFC 8265 §3.3,
 * plus RFC 7622 §3.3.1) or the resourcepart (OpaqueString, RFC 8265 §4.2)
 * profile, by <part> (not SZ_JID_PART_DOMAIN), on the raw <s>/<len> (only
 * read; up to SZ_JID_INPUT_PART_MAX_BYTES). Writes the enforced form to
 * the caller's <out> (<cap> bytes, no NUL). ASCII input never allocates;
 * the Unicode path frees what it took before it returns.
 * Returns 0 with the length in *<outlen>, -EINVAL (*<why> says why) or
 * -ENOBUFS (*<why> is SZ_JID_ERR_NOBUFS). <why> must not be NULL.
 */
int sz_precis_prep_text(enum sz_jid_part part, const uint8_t *s, size_t len, char *out,
                        size_t cap, size_t *outlen, enum sz_jid_err *why);

#endif
