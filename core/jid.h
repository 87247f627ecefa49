/*
 * XMPP addresses (JIDs) per RFC 7622: parsing, PRECIS/IDNA preparation of
 * the three parts, comparison, formatting and the bare-JID hash that picks
 * a user's home reactor.
 *
 * A parsed JID is immutable and stores only its normalized form, so equality
 * is a length check plus memcmp and the hash is over canonical bytes. All
 * functions are pure: any thread may call them on JIDs it owns, and a JID
 * may be read by several threads at once once built.
 */
#ifndef SZ_CORE_JID_H
#define SZ_CORE_JID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7622 §3.1: each part is 1..1023 octets (after preparation), so a full
 * JID with its two separators is at most 3071 octets. */
#define SZ_JID_PART_MAX_BYTES 1023
#define SZ_JID_MAX_BYTES      3071

/* Raw input bound, checked before any Unicode work so that hostile input
 * costs O(limit). Preparation can shrink a part (width mapping turns a
 * 3-byte fullwidth letter into 1 byte, NFC composes a 9-byte Hangul jamo
 * run into a 3-byte syllable), so a part may arrive larger than 1023 bytes
 * and still be valid: each raw part may be up to 4x the prepared limit. */
#define SZ_JID_INPUT_PART_MAX_BYTES (4 * SZ_JID_PART_MAX_BYTES)
#define SZ_JID_INPUT_MAX_BYTES      (3 * SZ_JID_INPUT_PART_MAX_BYTES + 2)

/* Storage for one JID in caller memory (sz_jid_parse_into()): an 8-byte
 * header plus the full JID and its NUL. */
#define SZ_JID_BUF_BYTES (8 + SZ_JID_MAX_BYTES + 1)

/* Opaque; one allocation holding the normalized "local@domain/resource". */
typedef struct sz_jid sz_jid_t;

/* Caller-side storage big enough and aligned for any JID. */
typedef union sz_jid_buf {
    uint64_t _align;
    char _bytes[SZ_JID_BUF_BYTES];
} sz_jid_buf_t;

/*
 * Why a JID was rejected. Every value other than SZ_JID_OK maps to the XMPP
 * condition <jid-malformed/> (RFC 6120 §8.3.3.8, §4.9.3.9 for stream
 * headers); the finer reason is for logs and tests.
 */
enum sz_jid_err {
    SZ_JID_OK = 0,
    SZ_JID_ERR_UTF8,            /* input is not well-formed UTF-8 (RFC 3629) */
    SZ_JID_ERR_TOO_LONG,        /* input above SZ_JID_INPUT_MAX_BYTES */
    SZ_JID_ERR_LOCAL_EMPTY,     /* '@' with nothing before it */
    SZ_JID_ERR_LOCAL_TOO_LONG,  /* localpart > 1023 bytes after preparation */
    SZ_JID_ERR_LOCAL_CHAR,      /* code point not allowed in a localpart */
    SZ_JID_ERR_LOCAL_CONTEXT,   /* CONTEXTJ/CONTEXTO rule failed (RFC 5892 App. A) */
    SZ_JID_ERR_LOCAL_BIDI,      /* Bidi Rule (RFC 5893 §2) failed */
    SZ_JID_ERR_DOMAIN_EMPTY,    /* no domainpart (also "." alone) */
    SZ_JID_ERR_DOMAIN_TOO_LONG, /* domainpart > 1023 bytes after preparation */
    SZ_JID_ERR_DOMAIN_LABEL,    /* empty label, label > 63 bytes, bad hyphens */
    SZ_JID_ERR_DOMAIN_CHAR,     /* code point not valid in IDNA2008 labels */
    SZ_JID_ERR_DOMAIN_CONTEXT,  /* CONTEXTJ/CONTEXTO rule failed */
    SZ_JID_ERR_DOMAIN_BIDI,     /* Bidi Rule failed in a bidi domain name */
    SZ_JID_ERR_DOMAIN_ALABEL,   /* "xn--" label that is not a valid A-label */
    SZ_JID_ERR_DOMAIN_IP,       /* malformed IPv4 address or IPv6 literal */
    SZ_JID_ERR_RESOURCE_EMPTY,  /* '/' with nothing after it */
    SZ_JID_ERR_RESOURCE_TOO_LONG,
    SZ_JID_ERR_RESOURCE_CHAR,
    SZ_JID_ERR_RESOURCE_CONTEXT,
    SZ_JID_ERR_NOBUFS, /* sz_jid_parse_into(): <cap> too small */
};

/** Any thread. Static string naming <e> ("local-char", ...); never NULL. */
const char *sz_jid_strerror(enum sz_jid_err e);

/**
 * Parse and normalize the <len> bytes at <s> (need not be NUL-terminated)
 * as a JID per RFC 7622. Any thread. <s> is only read. On success *<out> is
 * a new JID the caller owns (free with sz_jid_free()).
 * Returns 0, or -EINVAL when <s> is not a valid JID (*<out> untouched).
 */
int sz_jid_parse(const char *s, size_t len, sz_jid_t **out);

/**
 * Like sz_jid_parse() and also stores the reason in *<why> (may be NULL),
 * SZ_JID_OK on success.
 */
int sz_jid_parse_err(const char *s, size_t len, sz_jid_t **out, enum sz_jid_err *why);

/**
 * Zero-allocation variant: builds the JID inside the caller's <buf> of
 * <cap> bytes (8-byte aligned; an sz_jid_buf_t always fits). *<out> points
 * into <buf> and lives as long as it; never sz_jid_free() it. Any thread.
 * ASCII input never touches the heap; the Unicode path works in an 8 KiB
 * stack scratch (about 400 input bytes per part) and beyond that takes a
 * temporary heap scratch, freed before return.
 * Returns 0, -EINVAL (invalid JID) or -ENOBUFS (<cap> too small; *<why> is
 * SZ_JID_ERR_NOBUFS). <why> may be NULL.
 */
int sz_jid_parse_into(const char *s, size_t len, void *buf, size_t cap, sz_jid_t **out,
                      enum sz_jid_err *why);

/**
 * Build a full JID from bare <j> and the raw resourcepart <res>/<len>
 * (prepared with OpaqueString; e.g. a resource bind request). <j>'s own
 * resource, if any, is replaced. Any thread; <j> is only read.
 * Returns 0 with a new JID in *<out> (caller owns), or -EINVAL.
 */
int sz_jid_with_resource(const sz_jid_t *j, const char *res, size_t len, sz_jid_t **out);

/** Any thread. New JID with <j>'s local and domain parts (caller owns). */
sz_jid_t *sz_jid_bare_dup(const sz_jid_t *j);
/** Any thread. Copy of <j> (caller owns). */
sz_jid_t *sz_jid_dup(const sz_jid_t *j);
/** Any thread. Frees a JID from sz_jid_parse() or a dup; NULL is fine. */
void sz_jid_free(sz_jid_t *j);

/*
 * Accessors. The returned pointers point into <j> and live as long as it.
 * Parts are NOT NUL-terminated (they are slices of the full string); their
 * length goes to *<len> (may be NULL). Absent local or resource parts give
 * NULL and length 0.
 */
const char *sz_jid_local(const sz_jid_t *j, size_t *len);
const char *sz_jid_domain(const sz_jid_t *j, size_t *len);
const char *sz_jid_resource(const sz_jid_t *j, size_t *len);
/** The full normalized JID, NUL-terminated. */
const char *sz_jid_full(const sz_jid_t *j, size_t *len);
/** The bare JID "local@domain": a prefix of sz_jid_full(), NUL-terminated
 *  only when <j> is bare. */
const char *sz_jid_bare(const sz_jid_t *j, size_t *len);

/** Any thread. True when <j> has no resourcepart. */
bool sz_jid_is_bare(const sz_jid_t *j);
/** Any thread. True when <j> has a localpart. */
bool sz_jid_has_local(const sz_jid_t *j);

/** Any thread. Equality of the normalized bare JIDs (resources ignored). */
bool sz_jid_bare_eq(const sz_jid_t *a, const sz_jid_t *b);
/** Any thread. Equality of the normalized full JIDs (bare == bare too). */
bool sz_jid_full_eq(const sz_jid_t *a, const sz_jid_t *b);

/**
 * Copy the normalized bare (<bare> true) or full JID into <buf> of <cap>
 * bytes, NUL-terminated when <cap> > 0 (truncated if too small, like
 * snprintf). Any thread. Returns the length the JID needs, excluding the
 * NUL: a result >= <cap> means truncation.
 */
size_t sz_jid_format(const sz_jid_t *j, bool bare, char *buf, size_t cap);

/** Any thread. The normalized bare or full JID as a new NUL-terminated
 *  string (caller owns, sz_free()). */
char *sz_jid_to_str(const sz_jid_t *j, bool bare);

/**
 * 64-bit hash of the normalized bare JID. It picks a user's home reactor
 * (home = hash % reactors) and is also used across nodes, so it is FIXED:
 * never depends on the process, platform or endianness, and any change is a
 * protocol change (tests pin known values).
 *
 * Algorithm "szh1" over the bytes b[0..n) of sz_jid_bare():
 *   P1 = 0x9E3779B97F4A7C15, P2 = 0xC2B2AE3D27D4EB4F
 *   h  = 0x736A6964686173ULL ^ (n * P1)
 *   for each 8-byte block, read little-endian as w:
 *       h = rotl64(h ^ (w * P2), 31) * P1
 *   if n % 8: the remaining bytes as a little-endian w (high bytes zero),
 *       h = rotl64(h ^ (w * P2), 31) * P1
 *   finalize (MurmurHash3 fmix64):
 *       h ^= h >> 33; h *= 0xFF51AFD7ED558CCD; h ^= h >> 33;
 *       h *= 0xC4CEB9FE1A85EC53; h ^= h >> 33
 * Any thread.
 */
uint64_t sz_jid_hash_bare(const sz_jid_t *j);

/** The same hash over <n> arbitrary bytes at <p> (already normalized). */
uint64_t sz_jid_hash_bytes(const void *p, size_t n);

/*
 * Standalone preparation of one part (e.g. a SASL username as a localpart,
 * RFC 8265 §3.3): writes the enforced form of <s>/<len> to <out> (<cap>
 * bytes, NUL-terminated), its length to *<outlen>. Any thread.
 * Returns 0, -EINVAL (*<why> says why; may be NULL) or -ENOBUFS.
 */
enum sz_jid_part { SZ_JID_PART_LOCAL, SZ_JID_PART_DOMAIN, SZ_JID_PART_RESOURCE };
int sz_jid_prep(enum sz_jid_part part, const char *s, size_t len, char *out, size_t cap,
                size_t *outlen, enum sz_jid_err *why);

#endif
