/*
 * Server side of SASL for XMPP streams (RFC 6120 §6, RFC 4422): the
 * mechanism list, and one exchange object per authentication attempt
 * running SCRAM-SHA-1/256/512 (RFC 5802, RFC 7677), their -PLUS variants
 * with channel binding (tls-exporter, RFC 9266; tls-server-end-point and
 * tls-unique, RFC 5929) and PLAIN (RFC 4616), against stored SCRAM
 * credentials only.
 *
 * An exchange exists only while an attempt runs: c2s creates it on <auth>,
 * frees it on success or failure, so idle sessions hold nothing. It belongs
 * to the reactor that created it and is never shared; all functions below
 * that take an sz_sasl_t run on that thread. None of them blocks or calls
 * back: the credential lookup is the caller's (asynchronous) business.
 *
 * The call sequence of a c2s stream machine:
 *
 *   features:  sz_sasl_mechs(flags, ...)  (and sz_sasl_cb_types(flags, ...))
 *   <auth mechanism='M'>T</auth>:
 *       decode T with sz_sasl_text_decode() (failure: send
 *       <failure><incorrect-encoding/></failure>, no exchange needed);
 *       s = sz_sasl_new(&opts);  r = sz_sasl_start(s, "M", ir, irlen, &out);
 *   loop on r:
 *     SZ_SASL_CONTINUE   send <challenge>sz_sasl_b64_encode(out.data)
 *                        </challenge> (no text when out.len is 0) and
 *                        wait; on <response>T</response>, decode T, then
 *                        r = sz_sasl_step(s, resp, len, &out); on <abort/>,
 *                        r = sz_sasl_fail(s, SZ_SASL_ERR_ABORTED, &out)
 *     SZ_SASL_NEED_CREDS look up the account of out.user (the normalized
 *                        localpart) in storage; when it answers,
 *                        r = sz_sasl_creds(s, status, creds_or_NULL, &out).
 *                        Input that arrives meanwhile goes to sz_sasl_step(),
 *                        which fails the exchange (the client spoke out of
 *                        turn); a late storage answer must then be dropped.
 *     SZ_SASL_SUCCESS    send <success>, with sz_sasl_b64_encode(out.data)
 *                        as text when out.len > 0 (SCRAM's "v="), else an
 *                        empty element; copy out.user (the authenticated
 *                        localpart), sz_sasl_free(s), restart the stream.
 *     SZ_SASL_FAILURE    send <failure><sz_sasl_err_name(out.err)/></failure>
 *                        with out.scram_error, when set, in <text/> (see
 *                        sz_sasl_out_t), sz_sasl_free(s); count the failure
 *                        against the retry budget only when out.counts.
 *
 * User existence is never revealed: an unknown user gets a complete SCRAM
 * exchange with fake credentials derived from a server secret (same salt on
 * every attempt, same iteration count as new accounts), and PLAIN spends
 * the same PBKDF2 work; both end in <not-authorized/>, as a wrong password
 * does. account-disabled and credentials-expired are reported only after
 * the password was proven.
 */
#ifndef SZ_NET_SASL_H
#define SZ_NET_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/scram.h"

/* Mechanisms, in the order they are advertised (strongest first). */
enum sz_sasl_mech {
    SZ_SASL_SCRAM_SHA_512_PLUS = 0,
    SZ_SASL_SCRAM_SHA_256_PLUS,
    SZ_SASL_SCRAM_SHA_1_PLUS,
    SZ_SASL_SCRAM_SHA_512,
    SZ_SASL_SCRAM_SHA_256,
    SZ_SASL_SCRAM_SHA_1,
    SZ_SASL_PLAIN,
    SZ_SASL_MECH_COUNT
};

/*
 * What the stream offers, as flags. The same value must go to
 * sz_sasl_mechs() when advertising and to sz_sasl_new() for the exchange,
 * because what was advertised decides the downgrade check (RFC 5802 §6).
 */
#define SZ_SASL_F_TLS          0x01u /* the stream is TLS-protected */
#define SZ_SASL_F_CB_EXPORTER  0x02u /* tls-exporter data available (TLS 1.3 only) */
#define SZ_SASL_F_CB_ENDPOINT  0x04u /* tls-server-end-point hash available */
#define SZ_SASL_F_PLAIN_NO_TLS 0x08u /* config: PLAIN allowed without TLS */
#define SZ_SASL_F_NO_SHA1      0x10u /* config: SCRAM-SHA-1(-PLUS) below policy */
#define SZ_SASL_F_CB_UNIQUE    0x20u /* tls-unique data available (TLS 1.2; TLS 1.3: below) */
#define SZ_SASL_F_CB_UNLISTED  0x40u /* with F_CB_UNIQUE: accept tls-unique but leave it
                                      * out of the XEP-0440 list (TLS 1.3, where RFC 9266
                                      * says it is not defined) */
#define SZ_SASL_F_NO_SHA1_PLUS 0x80u /* config: SCRAM-SHA-1-PLUS not offered, so the SHA-1
                                      * family has no channel binding (tls.scram_sha1_plus) */

/* Size of a buffer that always holds sz_sasl_mechs() / sz_sasl_cb_types()
 * output, NUL included. */
#define SZ_SASL_MECHS_XML_MAX 512
#define SZ_SASL_CB_XML_MAX    192

/* Channel-binding data sizes (RFC 9266 §2: 32 bytes; RFC 5929 §4.1: the
 * certificate hash, at most SHA-512; RFC 5929 §3.1: a Finished
 * verify_data, 12 bytes in TLS 1.2, up to 48 in TLS 1.3). c2s gets the
 * data from sz_tls_cb_exporter(), sz_tls_cb_server_end_point() and
 * sz_tls_cb_unique() or sz_tls_io_t.finished (net/tls.h), which also say
 * when a binding is unavailable (not TLS 1.3; Ed25519 or RSA-PSS
 * certificate; TLS 1.2 without extended master secret): then leave its
 * flag unset. */
#define SZ_SASL_CB_EXPORTER_BYTES 32
#define SZ_SASL_CB_ENDPOINT_MAX   64
#define SZ_SASL_CB_UNIQUE_MAX     64

/* Bounds on the decoded client messages and on the username; larger input
 * fails with malformed-request before any work. */
#define SZ_SASL_MSG_MAX_BYTES 4096
#define SZ_SASL_NONCE_MAX     512

/* Failed attempts allowed per stream before it is closed: RFC 6120 §6.4.5
 * asks for a configurable number of retries, at least 2 and at most 5. */
#define SZ_SASL_RETRIES_DEFAULT 3

/* RFC 6120 §6.5 failure conditions; SZ_SASL_ERR_NONE is "no failure". */
enum sz_sasl_err {
    SZ_SASL_ERR_NONE = 0,
    SZ_SASL_ERR_ABORTED,
    SZ_SASL_ERR_ACCOUNT_DISABLED,
    SZ_SASL_ERR_CREDENTIALS_EXPIRED,
    SZ_SASL_ERR_ENCRYPTION_REQUIRED,
    SZ_SASL_ERR_INCORRECT_ENCODING,
    SZ_SASL_ERR_INVALID_AUTHZID,
    SZ_SASL_ERR_INVALID_MECHANISM,
    SZ_SASL_ERR_MALFORMED_REQUEST,
    SZ_SASL_ERR_MECHANISM_TOO_WEAK,
    SZ_SASL_ERR_NOT_AUTHORIZED,
    SZ_SASL_ERR_TEMPORARY_AUTH_FAILURE,
    SZ_SASL_ERR_COUNT
};

/* What the caller does next (see the sequence at the top). */
enum sz_sasl_result {
    SZ_SASL_CONTINUE = 1, /* send out.data as a <challenge/> */
    SZ_SASL_NEED_CREDS,   /* fetch the account of out.user, then sz_sasl_creds() */
    SZ_SASL_SUCCESS,      /* authenticated as out.user; out.data: additional data */
    SZ_SASL_FAILURE,      /* out.err says why; the exchange is over */
};

/* Answer of the account lookup, for sz_sasl_creds(). */
enum sz_sasl_creds_status {
    SZ_SASL_CREDS_FOUND = 0,   /* <creds> holds the account's credentials */
    SZ_SASL_CREDS_NOT_FOUND,   /* no such account (gets fake credentials) */
    SZ_SASL_CREDS_DISABLED,    /* account exists but is disabled */
    SZ_SASL_CREDS_EXPIRED,     /* account exists but must reset its password */
    SZ_SASL_CREDS_UNAVAILABLE, /* storage failed: temporary-auth-failure */
};

/*
 * One step's output. Pointers point into the exchange and stay valid until
 * the next call on it or sz_sasl_free(). data is raw: base64 it with
 * sz_sasl_b64_encode() for the XML element (no text when len is 0).
 */
typedef struct sz_sasl_out {
    const uint8_t *data; /* CONTINUE: challenge; SUCCESS: additional data */
    size_t len;          /* 0: none (SUCCESS) or an empty challenge */
    const char *user;    /* NEED_CREDS, SUCCESS: normalized localpart, NUL-terminated */
    size_t user_len;
    enum sz_sasl_err err; /* FAILURE: the condition; else SZ_SASL_ERR_NONE */
    const char *text;     /* FAILURE: static detail for logs, never secret;
                           * may be NULL */
    /* FAILURE: the SCRAM server-error message (RFC 5802 §7), e.g.
     * "e=unsupported-channel-binding-type", for the channel-binding
     * failures (the client's remedy is another binding or mechanism); NULL
     * otherwise. RFC 6120's <failure/> has no field for SASL additional
     * data, so it travels as the failure's <text/> (§6.4.5), after the
     * condition (not-authorized), where a SCRAM client can read it as the
     * server-final message. Static string. */
    const char *scram_error;
    /* FAILURE: true for a failure about the credentials (wrong password or
     * proof, unknown or invalid user, channel-binding data that does not
     * match, a disabled or expired account): it counts against the retry
     * budget of RFC 6120 §6.4.5. False for negotiation and protocol
     * failures (mechanism not offered, channel-binding type, encoding,
     * syntax, abort, storage trouble), which reveal nothing about the
     * password; the caller bounds those separately. */
    bool counts;
} sz_sasl_out_t;

/*
 * Parameters of an exchange. Everything is copied by sz_sasl_new(), except
 * <secret>, which must outlive the exchange (it is process-wide config).
 */
typedef struct sz_sasl_opts {
    unsigned flags;     /* SZ_SASL_F_*, as advertised */
    const char *domain; /* the stream's normalized domain, for the authzid check */
    size_t domain_len;
    /* Channel-binding data; required when the matching flag is set. */
    const uint8_t *cb_exporter; /* SZ_SASL_CB_EXPORTER_BYTES */
    const uint8_t *cb_endpoint; /* certificate hash, 1..SZ_SASL_CB_ENDPOINT_MAX bytes */
    size_t cb_endpoint_len;
    const uint8_t *cb_unique; /* Finished verify_data, 1..SZ_SASL_CB_UNIQUE_MAX bytes */
    size_t cb_unique_len;
    /* Secret keying the fake credentials of unknown users. It must be
     * stable across restarts and equal on all nodes, or the salt an unknown
     * user gets would change and give it away. NULL: a per-process random
     * secret (fine for tests and single runs). */
    const uint8_t *secret;
    size_t secret_len;
    /* Iteration count of the fake credentials: set it to the count new
     * accounts get. 0: SZ_SCRAM_ITER_DEFAULT. */
    uint32_t fake_iterations;
} sz_sasl_opts_t;

typedef struct sz_sasl sz_sasl_t;

/** Any thread. RFC 6120 §6.5 element name of <e> ("not-authorized"...);
 *  "" for SZ_SASL_ERR_NONE or an unknown value. */
const char *sz_sasl_err_name(enum sz_sasl_err e);

/** Any thread. Mechanism name ("SCRAM-SHA-256-PLUS"), NULL if out of range. */
const char *sz_sasl_mech_name(enum sz_sasl_mech m);

/** Any thread. Bit (1u << mech) set for each mechanism offered under
 *  <flags>: -PLUS only with a channel binding, PLAIN only over TLS or with
 *  SZ_SASL_F_PLAIN_NO_TLS, SHA-1 ones not with SZ_SASL_F_NO_SHA1. */
unsigned sz_sasl_mech_mask(unsigned flags);

/**
 * Any thread. Writes the stream feature
 * <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>...</mechanisms>
 * for <flags> into <buf> of <cap> bytes, NUL-terminated when <cap> > 0
 * (truncated like snprintf). Returns the length the element needs without
 * the NUL; SZ_SASL_MECHS_XML_MAX always suffices.
 */
size_t sz_sasl_mechs(unsigned flags, char *buf, size_t cap);

/**
 * Any thread. Writes the XEP-0440 feature
 * <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'> listing the channel
 * binding types available under <flags>, as sz_sasl_mechs() does. Writes
 * nothing and returns 0 when none is available (send no element then).
 */
size_t sz_sasl_cb_types(unsigned flags, char *buf, size_t cap);

/**
 * Owner reactor. New exchange for one attempt with the parameters <opts>
 * (only read). Never NULL. Free with sz_sasl_free().
 */
sz_sasl_t *sz_sasl_new(const sz_sasl_opts_t *opts);

/** Owner reactor. Frees <s>, wiping its secrets; NULL is fine. */
void sz_sasl_free(sz_sasl_t *s);

/**
 * Owner reactor. Starts the exchange with mechanism <mech>/<mech_len> (the
 * <auth mechanism=''> value) and the decoded initial response <ir>/<len>;
 * <ir> NULL means "no initial response" (empty <auth/>), a non-NULL <ir>
 * with <len> 0 is the empty response ("="). Only reads <ir>.
 * Returns CONTINUE, NEED_CREDS or FAILURE (invalid-mechanism: unknown or not
 * offered; encryption-required: PLAIN without TLS; mechanism-too-weak: SHA-1
 * below policy; malformed-request, invalid-authzid, not-authorized from the
 * message). Call once per exchange.
 */
enum sz_sasl_result sz_sasl_start(sz_sasl_t *s, const char *mech, size_t mech_len,
                                  const uint8_t *ir, size_t len, sz_sasl_out_t *out);

/**
 * Owner reactor. Feeds the decoded <response>/<len> (only read; NULL with 0
 * is the empty response). Returns CONTINUE, NEED_CREDS, SUCCESS or FAILURE.
 * A response when none is expected (while credentials are pending, or
 * after the end) fails with malformed-request.
 */
enum sz_sasl_result sz_sasl_step(sz_sasl_t *s, const uint8_t *response, size_t len,
                                 sz_sasl_out_t *out);

/**
 * Owner reactor. Delivers the account lookup asked for by NEED_CREDS:
 * <status>, and with SZ_SASL_CREDS_FOUND/DISABLED/EXPIRED the account's
 * <creds> (only read during the call; may be NULL otherwise). SCRAM then
 * returns CONTINUE (server-first); PLAIN derives from the password with the
 * stored salt and iterations (PBKDF2: the one costly call here) and returns
 * SUCCESS or FAILURE. UNAVAILABLE fails with temporary-auth-failure. A call
 * when no lookup is pending fails with malformed-request.
 */
enum sz_sasl_result sz_sasl_creds(sz_sasl_t *s, enum sz_sasl_creds_status status,
                                  const sz_scram_creds_t *creds, sz_sasl_out_t *out);

/**
 * Owner reactor. Ends the exchange with <err> (e.g. SZ_SASL_ERR_ABORTED on
 * <abort/>, or incorrect-encoding when a <response> did not decode).
 * Always returns FAILURE with out.err = <err>.
 */
enum sz_sasl_result sz_sasl_fail(sz_sasl_t *s, enum sz_sasl_err err, sz_sasl_out_t *out);

/** Owner reactor. The mechanism chosen by sz_sasl_start(), or
 *  SZ_SASL_MECH_COUNT before. */
enum sz_sasl_mech sz_sasl_mech(const sz_sasl_t *s);

/**
 * Any thread; for c2s, which keeps <*failures> in its pre-auth state.
 * Counts one failed exchange and returns true when <*failures> reached
 * <max_failures> (e.g. SZ_SASL_RETRIES_DEFAULT + 1): c2s then closes the
 * stream after the <failure/> (with a <policy-violation/> stream error).
 * Keep one counter for failures with out.counts and another, with a
 * larger bound, for the rest.
 */
static inline bool sz_sasl_count_failure(uint8_t *failures, unsigned max_failures)
{
    if (*failures < UINT8_MAX)
        (*failures)++;
    return *failures >= max_failures;
}

/*
 * Base64 (RFC 4648 §4, strict): the standard alphabet, padding required,
 * no whitespace, no characters after the padding, and the unused bits of
 * the last group must be zero (so every input has one decoding).
 */

/** Any thread. Decoded size bound for <len> input bytes. */
static inline size_t sz_sasl_b64_decoded_max(size_t len)
{
    return len / 4 * 3;
}
/** Any thread. Encoded size of <len> bytes, without a NUL. */
static inline size_t sz_sasl_b64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

/**
 * Any thread. Decodes <in>/<len> into <out> (<cap> bytes, may alias
 * nothing). Returns the decoded length, -EINVAL on any deviation from the
 * rules above, or -ENOBUFS when <cap> is too small.
 */
ptrdiff_t sz_sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/** Any thread. Encodes <in>/<len> into <out>, which must hold
 *  sz_sasl_b64_encoded_len(len) + 1 bytes; NUL-terminates. Returns the
 *  length without the NUL. */
size_t sz_sasl_b64_encode(const uint8_t *in, size_t len, char *out);

/**
 * Any thread. XML character data of <auth>/<response> to bytes (RFC 6120
 * §6.4.2): "=" is the empty response, other text is strict base64, and no
 * text is empty data too. (For <auth>, no text means "no initial response":
 * pass NULL to sz_sasl_start() instead of decoding.) Returns the length as
 * sz_sasl_b64_decode(); -EINVAL maps to the incorrect-encoding condition.
 */
ptrdiff_t sz_sasl_text_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/**
 * Any thread. The inverse of sz_sasl_text_decode() (an <auth>/<response>
 * text, for clients and tests): base64, "=" for an empty <in>. <out> holds
 * sz_sasl_b64_encoded_len(len) + 2 bytes. Returns the length without the
 * NUL. The server's <challenge/> and <success/> carry no text instead of
 * "=" when empty (RFC 6120 §6.4.3, §6.4.6).
 */
size_t sz_sasl_text_encode(const uint8_t *in, size_t len, char *out);

/**
 * Test hook, owner reactor, before sz_sasl_start(): makes the server nonce
 * part <nonce> (printable, no ',') instead of 24 random bytes in base64, to
 * replay published examples. Never called by the server.
 */
void sz_sasl_test_set_nonce(sz_sasl_t *s, const char *nonce);

#endif
