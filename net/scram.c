/*
 * SCRAM credential derivation (RFC 5802 §3, RFC 7677): the password is
 * prepared with the PRECIS OpaqueString profile (RFC 8265 §4.2), stretched
 * with PBKDF2-HMAC into SaltedPassword, and reduced to StoredKey and
 * ServerKey, the only secrets an account record keeps.
 *
 * Pure functions: any thread. Intermediate secrets (the prepared password,
 * SaltedPassword, ClientKey) live on the stack and are wiped before return.
 *
 * OpaqueString is the JID resourcepart profile (RFC 7622 §3.4), so the
 * preparation is core/jid's sz_jid_prep(SZ_JID_PART_RESOURCE): width is left
 * alone, non-ASCII spaces become U+0020, NFC, FreeformClass. Its 1023-byte
 * bound on the prepared form becomes the password length limit.
 */
#include "net/scram.h"

#include <errno.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "core/jid.h"

#define ITER_MIN 1u
#define ITER_MAX 10000000u

static const char *const mech_names[SZ_HASH_COUNT] = {
    [SZ_HASH_SHA1] = "SCRAM-SHA-1",
    [SZ_HASH_SHA256] = "SCRAM-SHA-256",
    [SZ_HASH_SHA512] = "SCRAM-SHA-512",
};

static const EVP_MD *md_of(enum sz_hash h)
{
    switch (h) {
    case SZ_HASH_SHA1:
        return EVP_sha1();
    case SZ_HASH_SHA256:
        return EVP_sha256();
    case SZ_HASH_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

size_t sz_hash_len(enum sz_hash h)
{
    switch (h) {
    case SZ_HASH_SHA1:
        return 20;
    case SZ_HASH_SHA256:
        return 32;
    case SZ_HASH_SHA512:
        return 64;
    default:
        return 0;
    }
}

const char *sz_scram_mech_name(enum sz_hash h)
{
    if ((unsigned)h >= SZ_HASH_COUNT)
        return NULL;
    return mech_names[h];
}

int sz_scram_derive(enum sz_hash h, const char *password, size_t plen, const uint8_t *salt,
                    size_t salt_len, uint32_t iterations, sz_scram_cred_t *out)
{
    const EVP_MD *md = md_of(h);
    if (!md || !salt || salt_len == 0 || salt_len > SZ_SCRAM_SALT_MAX || iterations < ITER_MIN ||
        iterations > ITER_MAX)
        return -EINVAL;

    /* The prepared form is at most SZ_JID_PART_MAX_BYTES, plus the NUL. */
    char prep[SZ_JID_PART_MAX_BYTES + 1];
    size_t prep_len = 0;
    if (sz_jid_prep(SZ_JID_PART_RESOURCE, password, plen, prep, sizeof prep, &prep_len, NULL) < 0) {
        OPENSSL_cleanse(prep, sizeof prep);
        return -EINVAL;
    }

    size_t n = sz_hash_len(h);
    uint8_t salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    int rc = -EINVAL;
    if (!PKCS5_PBKDF2_HMAC(prep, prep_len, salt, salt_len, iterations, md, n, salted))
        goto out;

    memset(out, 0, sizeof *out);
    out->iterations = iterations;
    out->salt_len = (uint8_t)salt_len;
    out->key_len = (uint8_t)n;
    memcpy(out->salt, salt, salt_len);
    /* ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
     * ServerKey = HMAC(SaltedPassword, "Server Key") (RFC 5802 §3). */
    if (!HMAC(md, salted, n, (const uint8_t *)"Client Key", 10, client_key, &mlen) ||
        !EVP_Digest(client_key, n, out->stored_key, NULL, md, NULL) ||
        !HMAC(md, salted, n, (const uint8_t *)"Server Key", 10, out->server_key, &mlen)) {
        OPENSSL_cleanse(out, sizeof *out);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(prep, sizeof prep);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return rc;
}

int sz_scram_derive_all(const char *password, size_t plen, uint32_t iterations,
                        sz_scram_creds_t *out)
{
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        uint8_t salt[SZ_SCRAM_SALT_BYTES];
        /* BoringSSL's RAND_bytes() always returns 1 (it aborts the process
         * rather than hand out weak bytes), so there is no error path. */
        RAND_bytes(salt, sizeof salt);
        int rc = sz_scram_derive((enum sz_hash)h, password, plen, salt, sizeof salt, iterations,
                                 &out->h[h]);
        if (rc < 0) {
            OPENSSL_cleanse(out, sizeof *out);
            return rc;
        }
    }
    return 0;
}
