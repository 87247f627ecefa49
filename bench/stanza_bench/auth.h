/*
 * Client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1 / SCRAM-SHA-256
 * (RFC 5802, RFC 7677) without channel binding (gs2 flag "n", also over
 * TLS: "y" would tell a server that offers -PLUS that we think it does
 * not, which it must refuse, RFC 5802 §6), and their -PLUS variants with
 * tls-exporter channel binding (RFC 9266), using BoringSSL's libcrypto. All payloads in and out are base64 text, as they
 * travel in <auth/>, <challenge/>, <response/> and <success/>.
 *
 * An exchange's state lives only while it runs (allocated by
 * sb_auth_start, freed by sb_auth_free), so an idle session holds none.
 * Pure code: any thread, one exchange per caller.
 */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include <stddef.h>
#include <stdint.h>

enum sb_mech {
    SB_MECH_PLAIN = 0,
    SB_MECH_SCRAM_SHA1,
    SB_MECH_SCRAM_SHA256,
    SB_MECH_SCRAM_SHA1_PLUS,   /* tls-exporter channel binding */
    SB_MECH_SCRAM_SHA256_PLUS, /* tls-exporter channel binding */
    SB_MECH_COUNT
};

/* tls-exporter channel binding data, bytes (RFC 9266). */
#define SB_AUTH_CB_BYTES 32

/** True for the -PLUS mechanisms (they need TLS 1.3). */
static inline int sb_mech_is_plus(enum sb_mech m)
{
    return m == SB_MECH_SCRAM_SHA1_PLUS || m == SB_MECH_SCRAM_SHA256_PLUS;
}

typedef struct sb_auth sb_auth_t;

/* Room for any base64 payload this code writes. */
#define SB_AUTH_OUT_MAX 512

/** The mechanism's SASL name ("SCRAM-SHA-256"). */
const char *sb_mech_name(enum sb_mech m);

/** Parses a SASL name; returns the mechanism or -1. */
int sb_mech_parse(const char *name);

/**
 * Starts an exchange for <user> (the SASL username: the JID's localpart)
 * and <pass>, both copied. Writes the base64 initial response to <out>
 * (NUL-terminated, at most SB_AUTH_OUT_MAX bytes). <nonce> (NULL: random)
 * fixes the SCRAM client nonce, for tests. Returns the state (caller owns
 * it) or NULL when the inputs are too long.
 */
sb_auth_t *sb_auth_start(enum sb_mech m, const char *user, const char *pass, const char *nonce,
                         char *out);

/**
 * sb_auth_start() for any mechanism: <cb> (SB_AUTH_CB_BYTES bytes, the
 * tls-exporter value of the connection) is required by the -PLUS
 * mechanisms and ignored by the others. NULL for a -PLUS one: NULL.
 */
sb_auth_t *sb_auth_start_cb(enum sb_mech m, const char *user, const char *pass,
                            const char *nonce, const uint8_t *cb, char *out);

/**
 * Answers the server's <challenge/> (base64 <b64>, <len> bytes): writes the
 * base64 response to <out>. Returns 0, or -1 with *<why> set to a static
 * reason ("bad-challenge", "nonce-mismatch", ...).
 */
int sb_auth_step(sb_auth_t *a, const char *b64, size_t len, char *out, const char **why);

/**
 * Checks <success/>'s additional data (base64, may be empty for PLAIN):
 * for SCRAM, the server signature must match (mutual authentication).
 * Returns 0, or -1 with *<why> set.
 */
int sb_auth_finish(sb_auth_t *a, const char *b64, size_t len, const char **why);

/** Frees <a> and wipes its keys. NULL is fine. */
void sb_auth_free(sb_auth_t *a);

#endif
