/*
 * net/scram: credential derivation against the published SCRAM examples
 * (RFC 5802 §5, RFC 7677 §3) and independently computed SHA-512 values,
 * parameter bounds, and the OpaqueString preparation of passwords.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/sasl.h"
#include "net/scram.h"
#include "sz_test.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

/* Derives and returns 0, writing the hex keys to <sk>/<svk>. */
static int derive_hex(enum sz_hash h, const char *pw, const uint8_t *salt, size_t sl, uint32_t it,
                      char *sk, char *svk)
{
    sz_scram_cred_t c;
    int rc = sz_scram_derive(h, pw, strlen(pw), salt, sl, it, &c);
    if (rc == 0) {
        hex(c.stored_key, c.key_len, sk);
        hex(c.server_key, c.key_len, svk);
    }
    return rc;
}

static size_t b64d(const char *s, uint8_t *out)
{
    ptrdiff_t n = sz_sasl_b64_decode(s, strlen(s), out, 64);
    return n < 0 ? 0 : (size_t)n;
}

SZ_TEST(names)
{
    SZ_CHECK_INT(sz_hash_len(SZ_HASH_SHA1), 20);
    SZ_CHECK_INT(sz_hash_len(SZ_HASH_SHA256), 32);
    SZ_CHECK_INT(sz_hash_len(SZ_HASH_SHA512), 64);
    SZ_CHECK_INT(sz_hash_len(SZ_HASH_COUNT), 0);
    SZ_CHECK_STR(sz_scram_mech_name(SZ_HASH_SHA1), "SCRAM-SHA-1");
    SZ_CHECK_STR(sz_scram_mech_name(SZ_HASH_SHA256), "SCRAM-SHA-256");
    SZ_CHECK_STR(sz_scram_mech_name(SZ_HASH_SHA512), "SCRAM-SHA-512");
    SZ_CHECK(sz_scram_mech_name(SZ_HASH_COUNT) == NULL);
}

SZ_TEST(rfc5802_sha1)
{
    uint8_t salt[64];
    size_t sl = b64d("QSXCR+Q6sek8bf92", salt);
    char sk[129], svk[129];
    SZ_CHECK_INT(derive_hex(SZ_HASH_SHA1, "pencil", salt, sl, 4096, sk, svk), 0);
    SZ_CHECK_STR(sk, "e9d94660c39d65c38fbad91c358f14da0eef2bd6");
    SZ_CHECK_STR(svk, "0fe09258b3ac852ba502cc62ba903eaacdbf7d31");
    sz_scram_cred_t c;
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "pencil", 6, salt, sl, 4096, &c), 0);
    SZ_CHECK_INT(c.iterations, 4096);
    SZ_CHECK_INT(c.key_len, 20);
    SZ_CHECK_INT(c.salt_len, sl);
    SZ_CHECK(memcmp(c.salt, salt, sl) == 0);
}

SZ_TEST(rfc7677_sha256)
{
    uint8_t salt[64];
    size_t sl = b64d("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    char sk[129], svk[129];
    SZ_CHECK_INT(derive_hex(SZ_HASH_SHA256, "pencil", salt, sl, 4096, sk, svk), 0);
    SZ_CHECK_STR(sk, "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6");
    SZ_CHECK_STR(svk, "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5");
}

SZ_TEST(sha512)
{
    char sk[129], svk[129];
    SZ_CHECK_INT(derive_hex(SZ_HASH_SHA512, "pencil", (const uint8_t *)"0123456789abcdef", 16, 4096,
                            sk, svk),
                 0);
    SZ_CHECK_STR(sk, "e74abedfb407f17a5a3643718e0046931a979285d51f62e1de51c9d3b83b00e1"
                     "95954e0570e8bec2329073cd0597655e4b0fd29e22943dc2628188cb93a63fdb");
    SZ_CHECK_STR(svk, "7e08867d50dfef4efa6f79957467f871e7786d4c58e0bf008e91ec0fc291cdb1"
                      "8eba390b4a98f8d25adc6fd22f1aa27852fddd062c83814828427a156a6b9ad9");
}

SZ_TEST(bounds)
{
    uint8_t salt[SZ_SCRAM_SALT_MAX + 1] = {1};
    sz_scram_cred_t c;
    /* iterations 1..10,000,000 */
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, 16, 0, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, 16, 10000001, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, 16, 1, &c), 0);
    SZ_CHECK_INT(c.iterations, 1);
    /* salt 1..SZ_SCRAM_SALT_MAX */
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, 0, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, NULL, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, SZ_SCRAM_SALT_MAX + 1, 1, &c),
                 -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA256, "pw", 2, salt, SZ_SCRAM_SALT_MAX, 1, &c), 0);
    SZ_CHECK_INT(c.salt_len, SZ_SCRAM_SALT_MAX);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_COUNT, "pw", 2, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive((enum sz_hash)99, "pw", 2, salt, 16, 1, &c), -EINVAL);
}

SZ_TEST(bad_passwords)
{
    uint8_t salt[16] = {0};
    sz_scram_cred_t c;
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "", 0, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "a\tb", 3, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "a\0b", 3, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "a\x7f", 2, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "\xc3\x28", 2, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "\xed\xa0\x80", 3, salt, 16, 1, &c), -EINVAL);
    /* U+0085 (a C1 control) and U+FFFF (a noncharacter) are disallowed. */
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "x\xc2\x85", 3, salt, 16, 1, &c), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, "x\xef\xbf\xbf", 4, salt, 16, 1, &c), -EINVAL);
    /* Spaces (even leading, trailing, only) are FreeformClass. */
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, " ", 1, salt, 16, 1, &c), 0);
    /* Length: the prepared form is bounded at 1023 bytes. */
    char big[1025];
    memset(big, 'p', sizeof big);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, big, 1023, salt, 16, 1, &c), 0);
    SZ_CHECK_INT(sz_scram_derive(SZ_HASH_SHA1, big, 1024, salt, 16, 1, &c), -EINVAL);
}

/* Same stored key for <a> and <b> (or not, with <same> false). */
static bool same_key(const char *a, const char *b)
{
    static const uint8_t salt[] = "saltsalt";
    sz_scram_cred_t ca, cb;
    if (sz_scram_derive(SZ_HASH_SHA256, a, strlen(a), salt, 8, 1, &ca) ||
        sz_scram_derive(SZ_HASH_SHA256, b, strlen(b), salt, 8, 1, &cb))
        return false;
    return memcmp(ca.stored_key, cb.stored_key, 32) == 0 &&
           memcmp(ca.server_key, cb.server_key, 32) == 0;
}

SZ_TEST(opaque_string)
{
    /* RFC 8265 §4.2.1: non-ASCII spaces map to U+0020 ... */
    SZ_CHECK(same_key("pen\u00a0cil", "pen cil")); /* NO-BREAK SPACE */
    SZ_CHECK(same_key("pen\u3000cil", "pen cil")); /* IDEOGRAPHIC SPACE */
    SZ_CHECK(same_key("pen\u2003cil", "pen cil")); /* EM SPACE */
    /* ... NFC ... */
    SZ_CHECK(same_key("cafe\u0301 pw", "caf\u00e9 pw"));
    SZ_CHECK(same_key("\u212b", "\u00c5")); /* ANGSTROM SIGN -> A WITH RING ABOVE */
    /* ... and nothing else: no case mapping, no width mapping, no NFKC. */
    SZ_CHECK(!same_key("Pencil", "pencil"));
    SZ_CHECK(!same_key("\uff50encil", "pencil")); /* FULLWIDTH p */
    SZ_CHECK(!same_key("\ufb01", "fi"));          /* LIGATURE fi */
    SZ_CHECK(!same_key("pen cil", "pencil"));
    /* The prepared form is what PBKDF2 sees (value computed with Python's
     * hashlib over "café pw" in NFC). */
    char sk[129], svk[129];
    SZ_CHECK_INT(derive_hex(SZ_HASH_SHA256, "cafe\xcc\x81\xc2\xa0pw", (const uint8_t *)"saltsalt",
                            8, 1, sk, svk),
                 0);
    SZ_CHECK_STR(sk, "e3f1481c3f2222198336ec5350a9e24f9b37a770421fa5b86e321178ad6cd04b");
    SZ_CHECK_STR(svk, "21764b26e881198f20d5b8f89db2c3d9174595f5ae046d7d9b8610ecfb15f919");
}

SZ_TEST(derive_all)
{
    sz_scram_creds_t a, b;
    SZ_CHECK_INT(sz_scram_derive_all("pencil", 6, 64, &a), 0);
    SZ_CHECK_INT(sz_scram_derive_all("pencil", 6, 64, &b), 0);
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        const sz_scram_cred_t *c = &a.h[h];
        SZ_CHECK_INT(c->key_len, sz_hash_len((enum sz_hash)h));
        SZ_CHECK_INT(c->salt_len, SZ_SCRAM_SALT_BYTES);
        SZ_CHECK_INT(c->iterations, 64);
        /* fresh random salts */
        SZ_CHECK(memcmp(c->salt, b.h[h].salt, SZ_SCRAM_SALT_BYTES) != 0);
        /* the record re-derives from the password and its own salt */
        sz_scram_cred_t d;
        SZ_CHECK_INT(sz_scram_derive((enum sz_hash)h, "pencil", 6, c->salt, c->salt_len, 64, &d),
                     0);
        SZ_CHECK(memcmp(d.stored_key, c->stored_key, c->key_len) == 0);
        SZ_CHECK(memcmp(d.server_key, c->server_key, c->key_len) == 0);
    }
    SZ_CHECK(memcmp(a.h[0].salt, a.h[1].salt, SZ_SCRAM_SALT_BYTES) != 0);
    SZ_CHECK_INT(sz_scram_derive_all("", 0, 64, &a), -EINVAL);
    SZ_CHECK_INT(sz_scram_derive_all("pencil", 6, 0, &a), -EINVAL);
}

int main(void)
{
    SZ_RUN(names);
    SZ_RUN(rfc5802_sha1);
    SZ_RUN(rfc7677_sha256);
    SZ_RUN(sha512);
    SZ_RUN(bounds);
    SZ_RUN(bad_passwords);
    SZ_RUN(opaque_string);
    SZ_RUN(derive_all);
    return sz_test_done();
}
