/*
 * SCRAM (RFC 5802, RFC 7677) credential derivation and the account record
 * stored for each user. No plaintext password is ever stored: only, per
 * hash function, the salt, the iteration count, StoredKey and ServerKey.
 * Pure functions; any thread.
 */
#ifndef SZ_NET_SCRAM_H
#define SZ_NET_SCRAM_H

#include <stddef.h>
#include <stdint.h>

enum sz_hash { SZ_HASH_SHA1 = 0, SZ_HASH_SHA256, SZ_HASH_SHA512, SZ_HASH_COUNT };

#define SZ_SCRAM_SALT_MAX   64
#define SZ_SCRAM_KEY_MAX    64 /* SHA-512 */
#define SZ_SCRAM_SALT_BYTES 16 /* salt length used for new credentials */
#define SZ_SCRAM_ITER_DEFAULT 4096

/* Credentials for one hash function. */
typedef struct sz_scram_cred {
    uint32_t iterations;
    uint8_t salt_len;
    uint8_t key_len; /* digest size of the hash: 20, 32 or 64 */
    uint8_t salt[SZ_SCRAM_SALT_MAX];
    uint8_t stored_key[SZ_SCRAM_KEY_MAX];
    uint8_t server_key[SZ_SCRAM_KEY_MAX];
} sz_scram_cred_t;

/* What is stored per account: one credential per hash function. */
typedef struct sz_scram_creds {
    sz_scram_cred_t h[SZ_HASH_COUNT];
} sz_scram_creds_t;

/** Digest length of <h> in bytes (20, 32, 64). */
size_t sz_hash_len(enum sz_hash h);

/** SASL mechanism name of <h> ("SCRAM-SHA-1", ...), without "-PLUS". */
const char *sz_scram_mech_name(enum sz_hash h);

/**
 * Prepares <password> with the PRECIS OpaqueString profile (RFC 8265 §4.2,
 * as RFC 7677 requires) and derives the credentials for hash <h> with the
 * given <salt> and <iterations> (SaltedPassword = PBKDF2-HMAC-<h>; ClientKey
 * and ServerKey by HMAC; StoredKey = H(ClientKey)). Returns 0, or -EINVAL
 * when the password is not a valid OpaqueString (e.g. empty, control
 * characters, invalid UTF-8) or the parameters are out of range.
 */
int sz_scram_derive(enum sz_hash h, const char *password, size_t plen, const uint8_t *salt,
                    size_t salt_len, uint32_t iterations, sz_scram_cred_t *out);

/**
 * Derives credentials for every hash function from <password>, each with a
 * fresh random salt (SZ_SCRAM_SALT_BYTES) and <iterations>. Returns 0 or
 * -EINVAL as sz_scram_derive.
 */
int sz_scram_derive_all(const char *password, size_t plen, uint32_t iterations,
                        sz_scram_creds_t *out);

#endif
