/*
 * Tests for the JID matching of core/mod/blocklist.c (XEP-0191 JID Matching, by the
 * XEP-0016 §2.1 rules): which entities an item of each of the four forms
 * blocks.
 */
#include "core/mod/blocklist.h"

#include <string.h>

#include "sz_test.h"

static bool m(const char *item, const char *who)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse(who, strlen(who), &j) < 0)
        return false;
    bool r = sz_blocklist_item_match(item, strlen(item), j);
    sz_jid_free(j);
    return r;
}

SZ_TEST(full_jid_item)
{
    SZ_CHECK(m("a@x.example/r", "a@x.example/r"));
    SZ_CHECK(!m("a@x.example/r", "a@x.example/other"));
    SZ_CHECK(!m("a@x.example/r", "a@x.example"));
    SZ_CHECK(!m("a@x.example/r", "b@x.example/r"));
}

SZ_TEST(bare_jid_item)
{
    SZ_CHECK(m("a@x.example", "a@x.example"));
    SZ_CHECK(m("a@x.example", "a@x.example/any"));
    SZ_CHECK(!m("a@x.example", "b@x.example"));
    SZ_CHECK(!m("a@x.example", "x.example"));
    SZ_CHECK(!m("a@x.example", "a@y.example"));
}

SZ_TEST(domain_resource_item)
{
    SZ_CHECK(m("x.example/r", "x.example/r"));
    SZ_CHECK(m("x.example/r", "a@x.example/r"));
    SZ_CHECK(!m("x.example/r", "x.example"));
    SZ_CHECK(!m("x.example/r", "a@x.example/s"));
}

SZ_TEST(domain_item)
{
    SZ_CHECK(m("x.example", "x.example"));
    SZ_CHECK(m("x.example", "a@x.example"));
    SZ_CHECK(m("x.example", "a@x.example/r"));
    SZ_CHECK(m("x.example", "x.example/r"));
    SZ_CHECK(!m("x.example", "a@sub.x.example"));
    SZ_CHECK(!m("x.example", "a@y.example"));
    SZ_CHECK(!m("not a jid@@", "a@x.example"));
}

int main(void)
{
    SZ_RUN(full_jid_item);
    SZ_RUN(bare_jid_item);
    SZ_RUN(domain_resource_item);
    SZ_RUN(domain_item);
    return sz_test_done();
}
