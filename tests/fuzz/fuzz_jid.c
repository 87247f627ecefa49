/*
 * libFuzzer target for core/jid.c. Any input must parse or fail cleanly;
 * an accepted JID must be a fixed point: parse(format(parse(x))) gives the
 * same bytes, parts, hash and comparisons, through both the allocating and
 * the caller-buffer entry points. Each part's standalone preparation must
 * be idempotent too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jid.h"
#include "core/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_part(enum sz_jid_part part, const char *s, size_t len)
{
    static char a[SZ_JID_PART_MAX_BYTES + 1], b[SZ_JID_PART_MAX_BYTES + 1];
    size_t an, bn;
    enum sz_jid_err e;
    if (sz_jid_prep(part, s, len, a, sizeof a, &an, &e) != 0) {
        CHECK(e != SZ_JID_OK);
        return;
    }
    CHECK(an >= 1 && an <= SZ_JID_PART_MAX_BYTES && strlen(a) == an);
    CHECK(sz_jid_prep(part, a, an, b, sizeof b, &bn, &e) == 0);
    CHECK(bn == an && memcmp(a, b, an) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    sz_jid_t *j, *k, *bare;
    enum sz_jid_err e;

    /* Small inputs also exercise each part's preparation on its own. */
    if (size <= 4 * SZ_JID_PART_MAX_BYTES) {
        check_part(SZ_JID_PART_LOCAL, s, size);
        check_part(SZ_JID_PART_DOMAIN, s, size);
        check_part(SZ_JID_PART_RESOURCE, s, size);
    }

    int rc = sz_jid_parse_err(s, size, &j, &e);
    if (rc != 0) {
        CHECK(rc == -EINVAL && e != SZ_JID_OK && e != SZ_JID_ERR_NOBUFS);
        return 0;
    }
    size_t fl, bl;
    const char *full = sz_jid_full(j, &fl);
    sz_jid_bare(j, &bl);
    CHECK(fl <= SZ_JID_MAX_BYTES && strlen(full) == fl && bl <= fl);

    /* fixed point */
    CHECK(sz_jid_parse(full, fl, &k) == 0);
    size_t kl;
    CHECK(strcmp(sz_jid_full(k, &kl), full) == 0 && kl == fl);
    CHECK(sz_jid_full_eq(j, k) && sz_jid_bare_eq(j, k));
    CHECK(sz_jid_hash_bare(j) == sz_jid_hash_bare(k));
    size_t n1, n2;
    sz_jid_local(j, &n1), sz_jid_local(k, &n2);
    CHECK(n1 == n2);
    sz_jid_resource(j, &n1), sz_jid_resource(k, &n2);
    CHECK(n1 == n2);
    sz_jid_free(k);

    /* the caller-buffer variant agrees, and fails cleanly when short */
    static sz_jid_buf_t buf;
    CHECK(sz_jid_parse_into(s, size, &buf, sizeof buf, &k, &e) == 0);
    CHECK(sz_jid_full_eq(j, k));
    uint64_t small[4];
    rc = sz_jid_parse_into(s, size, small, sizeof small, &k, &e);
    CHECK(rc == 0 ? sz_jid_full_eq(j, k) : (rc == -ENOBUFS && e == SZ_JID_ERR_NOBUFS));

    /* the bare JID re-parses to the bare form */
    char *bs = sz_jid_to_str(j, true);
    CHECK(strlen(bs) == bl);
    CHECK(sz_jid_parse(bs, bl, &k) == 0);
    bare = sz_jid_bare_dup(j);
    CHECK(sz_jid_is_bare(k) && sz_jid_full_eq(k, bare) && sz_jid_bare_eq(k, j));
    CHECK(sz_jid_hash_bare(k) == sz_jid_hash_bytes(bs, bl));
    sz_jid_free(k);
    sz_free(bs);

    /* re-attaching the resource rebuilds the same JID */
    const char *res = sz_jid_resource(j, &n1);
    if (res) {
        CHECK(sz_jid_with_resource(bare, res, n1, &k) == 0);
        CHECK(sz_jid_full_eq(j, k));
        sz_jid_free(k);
    }
    sz_jid_free(bare);

    /* truncated formatting is NUL-terminated and reports the full length */
    char tb[8];
    CHECK(sz_jid_format(j, false, tb, sizeof tb) == fl && strlen(tb) == (fl < 7 ? fl : 7));
    sz_jid_free(j);
    return 0;
}
