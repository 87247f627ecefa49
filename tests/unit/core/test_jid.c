/*
 * Unit tests for core/jid.c: RFC 7622 §3.5/§3.6 examples, PRECIS mappings,
 * IDNA domainparts, length limits, comparisons, the pinned bare-JID hash
 * and UTF-8 rejection.
 */
#include <errno.h>
#include <string.h>

#include "sz_test.h"

#include "core/jid.h"
#include "core/mem.h"

/* Parse <in>; expect success and the normalized full JID <full>. */
static int ok_as(const char *in, const char *full)
{
    sz_jid_t *j = NULL;
    enum sz_jid_err e;
    int rc = sz_jid_parse_err(in, strlen(in), &j, &e);
    if (rc != 0) {
        printf("# '%s': rejected (%s)\n", in, sz_jid_strerror(e));
        return 0;
    }
    int good = strcmp(sz_jid_full(j, NULL), full) == 0;
    if (!good)
        printf("# '%s': got '%s', expected '%s'\n", in, sz_jid_full(j, NULL), full);
    sz_jid_free(j);
    return good;
}

/* Parse <in>/<len>; expect -EINVAL with reason <want>. */
static int bad_n(const char *in, size_t len, enum sz_jid_err want)
{
    sz_jid_t *j = NULL;
    enum sz_jid_err e = SZ_JID_OK;
    int rc = sz_jid_parse_err(in, len, &j, &e);
    if (rc == 0) {
        printf("# '%.*s': accepted as '%s'\n", (int)len, in, sz_jid_full(j, NULL));
        sz_jid_free(j);
        return 0;
    }
    if (rc != -EINVAL || e != want) {
        printf("# '%.*s': rc %d reason %s, expected %s\n", (int)len, in, rc, sz_jid_strerror(e),
               sz_jid_strerror(want));
        return 0;
    }
    return 1;
}

static int bad(const char *in, enum sz_jid_err want)
{
    return bad_n(in, strlen(in), want);
}

/* RFC 7622 §3.5, Table 1: every example of a valid JID. */
SZ_TEST(rfc7622_valid)
{
    SZ_CHECK(ok_as("juliet@example.com", "juliet@example.com"));
    SZ_CHECK(ok_as("juliet@example.com/foo", "juliet@example.com/foo"));
    SZ_CHECK(ok_as("juliet@example.com/foo bar", "juliet@example.com/foo bar"));
    SZ_CHECK(ok_as("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"));
    SZ_CHECK(ok_as("foo\\20bar@example.com", "foo\\20bar@example.com"));
    SZ_CHECK(ok_as("fussball@example.com", "fussball@example.com"));
    SZ_CHECK(ok_as("fu\xc3\x9f"
                   "ball@example.com",
                   "fu\xc3\x9f"
                   "ball@example.com"));
    SZ_CHECK(ok_as("\xcf\x80@example.com", "\xcf\x80@example.com"));         /* π */
    SZ_CHECK(ok_as("\xce\xa3@example.com/foo", "\xcf\x83@example.com/foo")); /* Σ -> σ */
    SZ_CHECK(ok_as("\xcf\x83@example.com/foo", "\xcf\x83@example.com/foo")); /* σ */
    SZ_CHECK(ok_as("\xcf\x82@example.com/foo", "\xcf\x82@example.com/foo")); /* ς stays */
    SZ_CHECK(ok_as("king@example.com/\xe2\x99\x9a", "king@example.com/\xe2\x99\x9a")); /* ♚ */
    SZ_CHECK(ok_as("example.com", "example.com"));
    SZ_CHECK(ok_as("example.com/foobar", "example.com/foobar"));
    SZ_CHECK(ok_as("a.example.com/b@example.net", "a.example.com/b@example.net"));
    /* Table 2 lists "juliet@example.com/ foo" (leading space) as invalid,
     * but OpaqueString allows U+0020 anywhere: RFC errata 4560. */
    SZ_CHECK(ok_as("juliet@example.com/ foo", "juliet@example.com/ foo"));
    /* '@' and '/' after the first '/' belong to the resource */
    SZ_CHECK(ok_as("server/resource@foo/bar", "server/resource@foo/bar"));
}

/* RFC 7622 §3.6, Table 2: every example of an invalid JID. */
SZ_TEST(rfc7622_invalid)
{
    SZ_CHECK(bad("\"juliet\"@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("foo bar@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("@example.com/", SZ_JID_ERR_LOCAL_EMPTY));
    SZ_CHECK(bad("henry\xe2\x85\xa3@example.com", SZ_JID_ERR_LOCAL_CHAR)); /* ROMAN NUMERAL FOUR */
    SZ_CHECK(bad("\xe2\x99\x9a@example.com", SZ_JID_ERR_LOCAL_CHAR));      /* BLACK CHESS KING */
    SZ_CHECK(bad("juliet@", SZ_JID_ERR_DOMAIN_EMPTY));
    SZ_CHECK(bad("/foobar", SZ_JID_ERR_DOMAIN_EMPTY));
    /* and the obvious degenerate ones */
    SZ_CHECK(bad("", SZ_JID_ERR_DOMAIN_EMPTY));
    SZ_CHECK(bad("@", SZ_JID_ERR_LOCAL_EMPTY));
    SZ_CHECK(bad("/", SZ_JID_ERR_DOMAIN_EMPTY));
    SZ_CHECK(bad(".", SZ_JID_ERR_DOMAIN_EMPTY));
    SZ_CHECK(bad("@example.com", SZ_JID_ERR_LOCAL_EMPTY));
    SZ_CHECK(bad("juliet@example.com/", SZ_JID_ERR_RESOURCE_EMPTY));
    SZ_CHECK(bad("node@/server", SZ_JID_ERR_DOMAIN_EMPTY));
    SZ_CHECK(bad("user@@host", SZ_JID_ERR_DOMAIN_CHAR)); /* split at the first '@' */
    SZ_CHECK(bad("user@@host/", SZ_JID_ERR_DOMAIN_CHAR));
    /* RFC 7622 §3.3.1 extra localpart exclusions */
    SZ_CHECK(bad("a&b@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("a'b@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("a:b@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("a<b@example.com", SZ_JID_ERR_LOCAL_CHAR));
    SZ_CHECK(bad("a>b@example.com", SZ_JID_ERR_LOCAL_CHAR));
    /* fullwidth '@' is not a separator; width-mapped it is a forbidden '@' */
    SZ_CHECK(bad("a\xef\xbc\xa0"
                 "b@example.com",
                 SZ_JID_ERR_LOCAL_CHAR));
}

SZ_TEST(case_width_nfc)
{
    /* localpart: toLowerCase; resourcepart: case preserved */
    SZ_CHECK(ok_as("JuLiEt@Example.COM/Balcony", "juliet@example.com/Balcony"));
    /* width mapping: fullwidth JULIET */
    SZ_CHECK(ok_as("\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4@x.org",
                   "juliet@x.org"));
    /* halfwidth katakana KA + voiced mark -> GA (width map, then NFC) */
    SZ_CHECK(ok_as("\xef\xbd\xb6\xef\xbe\x9e@x.org", "\xe3\x82\xac@x.org"));
    /* NFC: e + COMBINING ACUTE -> é, in localpart and resourcepart */
    SZ_CHECK(
        ok_as("re\xcc\x81sume\xcc\x81@x.org/e\xcc\x81", "r\xc3\xa9sum\xc3\xa9@x.org/\xc3\xa9"));
    /* uppercase composed and decomposed agree */
    SZ_CHECK(ok_as("\xc3\x89@x.org", "\xc3\xa9@x.org"));
    SZ_CHECK(ok_as("E\xcc\x81@x.org", "\xc3\xa9@x.org"));
    /* U+0130 full lowercase mapping: i + COMBINING DOT ABOVE */
    SZ_CHECK(ok_as("\xc4\xb0@x.org", "i\xcc\x87@x.org"));
    /* Final_Sigma: ΟΔΟΣ -> οδος with final ς */
    SZ_CHECK(
        ok_as("\xce\x9f\xce\x94\xce\x9f\xce\xa3@x.org", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82@x.org"));
    /* ß is not case folded to ss */
    SZ_CHECK(ok_as("FU\xc3\x9f"
                   "BALL@x.org",
                   "fu\xc3\x9f"
                   "ball@x.org"));
    /* resourcepart: non-ASCII spaces map to U+0020, fullwidth is kept */
    SZ_CHECK(ok_as("a@x.org/foo\xc2\xa0"
                   "bar",
                   "a@x.org/foo bar"));
    SZ_CHECK(ok_as("a@x.org/foo\xe3\x80\x80"
                   "bar",
                   "a@x.org/foo bar"));
    SZ_CHECK(ok_as("a@x.org/\xef\xbc\xa1", "a@x.org/\xef\xbc\xa1"));
    /* domain: lowercase, trailing dot, U-labels, A-labels to U-labels */
    SZ_CHECK(ok_as("a@EXAMPLE.Com.", "a@example.com"));
    SZ_CHECK(ok_as("B\xc3\x9c"
                   "CHER.example",
                   "b\xc3\xbc"
                   "cher.example"));
    SZ_CHECK(ok_as("xn--bcher-kva.example", "b\xc3\xbc"
                                            "cher.example"));
    SZ_CHECK(ok_as("XN--BCHER-KVA.example/r", "b\xc3\xbc"
                                              "cher.example/r"));
    SZ_CHECK(ok_as("\xe4\xbe\x8b\xe3\x80\x82\xe4\xb8\xad\xe5\x9b\xbd", /* 例。中国 */
                   "\xe4\xbe\x8b.\xe4\xb8\xad\xe5\x9b\xbd"));
    SZ_CHECK(ok_as("\xef\xbd\x85\xef\xbd\x98.com", "ex.com")); /* fullwidth ex */
    /* IP literals */
    SZ_CHECK(ok_as("a@127.0.0.1/r", "a@127.0.0.1/r"));
    SZ_CHECK(ok_as("a@[::1]", "a@[::1]"));
    SZ_CHECK(ok_as("[2001:DB8::A]/r", "[2001:db8::a]/r"));
}

SZ_TEST(disallowed)
{
    SZ_CHECK(bad("foo\xc2\xa0"
                 "bar@x.org",
                 SZ_JID_ERR_LOCAL_CHAR)); /* NBSP (Zs) */
    SZ_CHECK(bad("foo\xe2\x80\x8b"
                 "bar@x.org",
                 SZ_JID_ERR_LOCAL_CHAR));                        /* ZWSP (ignorable) */
    SZ_CHECK(bad("\xee\x80\x80@x.org", SZ_JID_ERR_LOCAL_CHAR));  /* private use */
    SZ_CHECK(bad("\xcd\xb8@x.org", SZ_JID_ERR_LOCAL_CHAR));      /* U+0378 unassigned */
    SZ_CHECK(bad("\xef\xb7\x90@x.org", SZ_JID_ERR_LOCAL_CHAR));  /* U+FDD0 noncharacter */
    SZ_CHECK(bad("a\xe2\x84\xa2@x.org", SZ_JID_ERR_LOCAL_CHAR)); /* ™ (HasCompat) */
    SZ_CHECK(bad("a@x.org/a\x01", SZ_JID_ERR_RESOURCE_CHAR));
    SZ_CHECK(bad("a@x.org/a\x7f", SZ_JID_ERR_RESOURCE_CHAR));
    SZ_CHECK(bad("a@x.org/a\xc2\x85", SZ_JID_ERR_RESOURCE_CHAR)); /* NEL (Cc) */
    SZ_CHECK(bad("a@x.org/\xee\x80\x80", SZ_JID_ERR_RESOURCE_CHAR));
    SZ_CHECK(bad("a@x.org/\xe2\x80\x8b", SZ_JID_ERR_RESOURCE_CHAR));
    SZ_CHECK(bad_n("a@x.org/a\0b", 11, SZ_JID_ERR_RESOURCE_CHAR));
    SZ_CHECK(bad_n("a\0b@x.org", 9, SZ_JID_ERR_LOCAL_CHAR));
    /* FreeformClass allows what IdentifierClass refuses */
    SZ_CHECK(ok_as("a@x.org/\xe2\x84\xa2 \xe2\x85\xa3", "a@x.org/\xe2\x84\xa2 \xe2\x85\xa3"));
    /* contextual rules */
    SZ_CHECK(ok_as("col\xc2\xb7lecci\xc3\xb3@x.org", "col\xc2\xb7lecci\xc3\xb3@x.org"));
    SZ_CHECK(bad("a\xc2\xb7"
                 "b@x.org",
                 SZ_JID_ERR_LOCAL_CONTEXT));
    SZ_CHECK(bad("a\xe2\x80\x8d"
                 "b@x.org",
                 SZ_JID_ERR_LOCAL_CONTEXT));                           /* ZWJ after a Latin */
    SZ_CHECK(bad("\xd9\xa1\xdb\xb1@x.org", SZ_JID_ERR_LOCAL_CONTEXT)); /* ١۱ mixed digits */
    /* domains */
    SZ_CHECK(bad("a@exa_mple.com", SZ_JID_ERR_DOMAIN_CHAR));
    SZ_CHECK(bad("a@-example.com", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@example-.com", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@ab--cd.com", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@example..com", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@example.com..", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@.example.com", SZ_JID_ERR_DOMAIN_LABEL));
    SZ_CHECK(bad("a@ex ample.com", SZ_JID_ERR_DOMAIN_CHAR));
    SZ_CHECK(bad("a@\xe2\x99\x9a.com", SZ_JID_ERR_DOMAIN_CHAR));
    SZ_CHECK(bad("a@\xcc\x81"
                 "a.com",
                 SZ_JID_ERR_DOMAIN_CHAR)); /* leading combining mark */
    /* well-formed Punycode for a U-label with a disallowed code point */
    SZ_CHECK(bad("a@xn--abc.com", SZ_JID_ERR_DOMAIN_CHAR));
    SZ_CHECK(bad("a@xn--bcher-kva9.com", SZ_JID_ERR_DOMAIN_ALABEL));
    SZ_CHECK(bad("a@xn--a\xc3\xa9.com", SZ_JID_ERR_DOMAIN_LABEL)); /* "--" in a U-label */
    SZ_CHECK(bad("a@xn--.com", SZ_JID_ERR_DOMAIN_ALABEL));
    SZ_CHECK(bad("a@xn--ab-.com", SZ_JID_ERR_DOMAIN_ALABEL));
    SZ_CHECK(bad("a@[::1", SZ_JID_ERR_DOMAIN_IP));
    SZ_CHECK(bad("a@[::g]", SZ_JID_ERR_DOMAIN_IP));
    SZ_CHECK(bad("a@[v1.x]", SZ_JID_ERR_DOMAIN_IP));
    SZ_CHECK(bad("a@1.2.3", SZ_JID_ERR_DOMAIN_IP));
    SZ_CHECK(bad("a@256.1.1.1", SZ_JID_ERR_DOMAIN_IP));
    SZ_CHECK(bad("a@01.1.1.1", SZ_JID_ERR_DOMAIN_IP));
    /* found by fuzzing: each must fail or be stable under re-parsing */
    SZ_CHECK(bad_n("a@[::ffff\0\x15ppp.2.6.4]", 21, SZ_JID_ERR_DOMAIN_IP)); /* NUL in literal */
    SZ_CHECK(bad("xn--gce", SZ_JID_ERR_DOMAIN_ALABEL));    /* decodes to uppercase U+13F0 */
    SZ_CHECK(bad("\xef\xbc\x94/r", SZ_JID_ERR_DOMAIN_IP)); /* fullwidth "4" maps to "4" */
    SZ_CHECK(ok_as("\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.0.0.1", "127.0.0.1"));
}

SZ_TEST(bidi)
{
    /* Hebrew localpart (RTL, all R) */
    SZ_CHECK(
        ok_as("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@x.org", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@x.org"));
    /* LTR first with an R inside: condition 5 */
    SZ_CHECK(bad("a\xd7\xa9@x.org", SZ_JID_ERR_LOCAL_BIDI));
    /* RTL first with an L inside: condition 2 */
    SZ_CHECK(bad("\xd7\xa9"
                 "a@x.org",
                 SZ_JID_ERR_LOCAL_BIDI));
    /* RTL label then a digit at the end is fine (condition 3 allows EN) */
    SZ_CHECK(ok_as("\xd7\xa9"
                   "1@x.org",
                   "\xd7\xa9"
                   "1@x.org"));
    /* Arabic domain label next to an LTR one */
    SZ_CHECK(ok_as("a@\xd9\x85\xd8\xab\xd8\xa7\xd9\x84.example",
                   "a@\xd9\x85\xd8\xab\xd8\xa7\xd9\x84.example"));
    /* in a bidi domain name every label must pass: "1abc" starts with EN */
    SZ_CHECK(bad("a@\xd9\x85\xd8\xab\xd8\xa7\xd9\x84.1abc", SZ_JID_ERR_DOMAIN_BIDI));
    /* the resourcepart (OpaqueString) has no directionality rule */
    SZ_CHECK(ok_as("a@x.org/a\xd7\xa9", "a@x.org/a\xd7\xa9"));
}

static char *rep(char c, size_t n)
{
    char *s = sz_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Returns a domain of exactly <n> bytes made of LDH labels (n >= 1). */
static char *domain_of(size_t n)
{
    char *s = rep('a', n);
    for (size_t i = 50; i < n - 1; i += 51)
        s[i] = '.';
    return s;
}

SZ_TEST(length_limits)
{
    char buf[4 * 1024 + 64], *p;
    sz_jid_t *j;
    size_t n;

    char *l1023 = rep('a', 1023), *l1024 = rep('a', 1024);
    snprintf(buf, sizeof buf, "%s@x.org", l1023);
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_free(j);
    snprintf(buf, sizeof buf, "%s@x.org", l1024);
    SZ_CHECK(bad(buf, SZ_JID_ERR_LOCAL_TOO_LONG));

    snprintf(buf, sizeof buf, "x.org/%s", l1023);
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_free(j);
    snprintf(buf, sizeof buf, "x.org/%s", l1024);
    SZ_CHECK(bad(buf, SZ_JID_ERR_RESOURCE_TOO_LONG));

    char *d1023 = domain_of(1023), *d1024 = domain_of(1024);
    SZ_CHECK_INT(strlen(d1023), 1023);
    SZ_CHECK_INT(sz_jid_parse(d1023, 1023, &j), 0);
    sz_jid_free(j);
    SZ_CHECK(bad(d1024, SZ_JID_ERR_DOMAIN_TOO_LONG));
    snprintf(buf, sizeof buf, "%s.", d1023); /* trailing dot does not count */
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_free(j);
    /* the longest JID: 1023 + '@' + 1023 + '/' + 1023 = 3071 */
    snprintf(buf, sizeof buf, "%s@%s/%s", l1023, d1023, l1023);
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_full(j, &n);
    SZ_CHECK_INT(n, SZ_JID_MAX_BYTES);
    sz_jid_free(j);
    /* 80 A-labels: 1119 bytes as given, 639 once stored as U-labels */
    p = buf;
    for (int i = 0; i < 80; i++)
        p += sprintf(p, "%sxn--bcher-kva", i ? "." : "");
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_domain(j, &n);
    SZ_CHECK_INT(n, 639);
    sz_jid_free(j);
    /* labels: 63 bytes fine, 64 not */
    char *lab = rep('b', 64);
    SZ_CHECK(bad(lab, SZ_JID_ERR_DOMAIN_LABEL));
    lab[63] = '\0';
    SZ_CHECK(ok_as(lab, lab));

    /* Limits apply after preparation: 1023 fullwidth letters (3069 raw
     * bytes) width-map to 1023 bytes; 512 'é' are 1024 bytes. */
    p = buf;
    for (int i = 0; i < 1023; i++)
        p += sprintf(p, "\xef\xbd\x81"); /* FULLWIDTH a */
    sprintf(p, "@x.org");
    SZ_CHECK_INT(sz_jid_parse(buf, strlen(buf), &j), 0);
    sz_jid_local(j, &n);
    SZ_CHECK_INT(n, 1023);
    sz_jid_free(j);
    p = buf;
    for (int i = 0; i < 512; i++)
        p += sprintf(p, "\xc3\xa9");
    sprintf(p, "@x.org");
    SZ_CHECK(bad(buf, SZ_JID_ERR_LOCAL_TOO_LONG));
    /* and the raw input bound */
    char *huge = rep('a', SZ_JID_INPUT_MAX_BYTES + 1);
    SZ_CHECK(bad(huge, SZ_JID_ERR_TOO_LONG));
    sz_free(huge);
    sz_free(l1023), sz_free(l1024), sz_free(d1023), sz_free(d1024), sz_free(lab);
}

SZ_TEST(utf8)
{
    SZ_CHECK(bad("\xc0\xaf@x.org", SZ_JID_ERR_UTF8));         /* overlong '/' */
    SZ_CHECK(bad("\xc1\x81@x.org", SZ_JID_ERR_UTF8));         /* overlong 'A' */
    SZ_CHECK(bad("\xe0\x80\xaf@x.org", SZ_JID_ERR_UTF8));     /* 3-byte overlong */
    SZ_CHECK(bad("\xf0\x80\x80\xaf@x.org", SZ_JID_ERR_UTF8)); /* 4-byte overlong */
    SZ_CHECK(bad("\xed\xa0\x80@x.org", SZ_JID_ERR_UTF8));     /* U+D800 */
    SZ_CHECK(bad("a@x.org/\xed\xbf\xbf", SZ_JID_ERR_UTF8));   /* U+DFFF */
    SZ_CHECK(bad("a@\xed\xa0\x80.org", SZ_JID_ERR_UTF8));
    SZ_CHECK(bad("\xf4\x90\x80\x80@x.org", SZ_JID_ERR_UTF8)); /* > U+10FFFF */
    SZ_CHECK(bad("\xf5\x80\x80\x80@x.org", SZ_JID_ERR_UTF8));
    SZ_CHECK(bad("a\xc3@x.org", SZ_JID_ERR_UTF8)); /* truncated */
    SZ_CHECK(bad("a@x.org/a\xe2\x82", SZ_JID_ERR_UTF8));
    SZ_CHECK(bad("\x80@x.org", SZ_JID_ERR_UTF8)); /* lone continuation */
    SZ_CHECK(bad("\xff@x.org", SZ_JID_ERR_UTF8));
}

SZ_TEST(compare)
{
    sz_jid_t *a, *b, *c, *d, *e;
    SZ_CHECK_INT(sz_jid_parse("Juliet@Example.com/Balcony", 26, &a), 0);
    SZ_CHECK_INT(sz_jid_parse("juliet@example.com./Chamber", 27, &b), 0);
    SZ_CHECK_INT(sz_jid_parse("juliet@EXAMPLE.com/Balcony", 26, &c), 0);
    SZ_CHECK_INT(sz_jid_parse("julie@texample.com", 18, &d), 0);
    SZ_CHECK_INT(sz_jid_parse("juliet@example.com", 18, &e), 0);
    SZ_CHECK(sz_jid_bare_eq(a, b));
    SZ_CHECK(!sz_jid_full_eq(a, b));
    SZ_CHECK(sz_jid_full_eq(a, c));
    SZ_CHECK(!sz_jid_bare_eq(a, d));
    SZ_CHECK(sz_jid_bare_eq(a, e));
    SZ_CHECK(!sz_jid_full_eq(a, e));
    SZ_CHECK(!sz_jid_is_bare(a));
    SZ_CHECK(sz_jid_is_bare(e));
    SZ_CHECK(sz_jid_has_local(a));
    SZ_CHECK(sz_jid_hash_bare(a) == sz_jid_hash_bare(b));
    SZ_CHECK(sz_jid_hash_bare(a) == sz_jid_hash_bare(e));
    SZ_CHECK(sz_jid_hash_bare(a) != sz_jid_hash_bare(d));

    size_t n;
    const char *p = sz_jid_local(a, &n);
    SZ_CHECK(n == 6 && memcmp(p, "juliet", 6) == 0);
    p = sz_jid_domain(a, &n);
    SZ_CHECK(n == 11 && memcmp(p, "example.com", 11) == 0);
    p = sz_jid_resource(a, &n);
    SZ_CHECK(n == 7 && memcmp(p, "Balcony", 7) == 0);
    p = sz_jid_bare(a, &n);
    SZ_CHECK(n == 18 && memcmp(p, "juliet@example.com", 18) == 0);
    SZ_CHECK(sz_jid_resource(e, &n) == NULL && n == 0);

    /* formatting */
    char buf[64];
    SZ_CHECK_INT(sz_jid_format(a, true, buf, sizeof buf), 18);
    SZ_CHECK_STR(buf, "juliet@example.com");
    SZ_CHECK_INT(sz_jid_format(a, false, buf, sizeof buf), 26);
    SZ_CHECK_STR(buf, "juliet@example.com/Balcony");
    SZ_CHECK_INT(sz_jid_format(a, false, buf, 7), 26); /* truncated */
    SZ_CHECK_STR(buf, "juliet");
    char *s = sz_jid_to_str(a, true);
    SZ_CHECK_STR(s, "juliet@example.com");
    sz_free(s);

    /* derived JIDs */
    sz_jid_t *bare = sz_jid_bare_dup(a), *full, *dup = sz_jid_dup(a);
    SZ_CHECK(sz_jid_is_bare(bare) && sz_jid_full_eq(bare, e));
    SZ_CHECK(sz_jid_full_eq(dup, a));
    SZ_CHECK_INT(sz_jid_with_resource(e, "Balcony", 7, &full), 0);
    SZ_CHECK(sz_jid_full_eq(full, a));
    sz_jid_free(full);
    SZ_CHECK_INT(sz_jid_with_resource(a, "e\xcc\x81\xc2\xa0x", 6, &full), 0); /* prepared */
    SZ_CHECK_STR(sz_jid_full(full, NULL), "juliet@example.com/\xc3\xa9 x");
    sz_jid_free(full);
    SZ_CHECK_INT(sz_jid_with_resource(a, "", 0, &full), -EINVAL);
    SZ_CHECK_INT(sz_jid_with_resource(a, "\x01", 1, &full), -EINVAL);
    sz_jid_free(bare), sz_jid_free(dup);
    sz_jid_free(a), sz_jid_free(b), sz_jid_free(c), sz_jid_free(d), sz_jid_free(e);
}

SZ_TEST(hash_pinned)
{
    /* These values are part of the cluster protocol (home reactor choice):
     * if this test fails, the hash changed. Do not update the constants
     * unless every node of a cluster changes at the same time. */
    sz_jid_t *j;
    SZ_CHECK_INT(sz_jid_parse("Juliet@Example.com/Balcony", 26, &j), 0);
    SZ_CHECK(sz_jid_hash_bare(j) == 0x6c4ba2cd072b5740ULL); /* juliet@example.com */
    sz_jid_free(j);
    SZ_CHECK(sz_jid_hash_bytes("", 0) == 0xaf28ed5ae854e4aeULL);
    SZ_CHECK(sz_jid_hash_bytes("example.com", 11) == 0x69fa7a82417a95c5ULL);
    SZ_CHECK(sz_jid_hash_bytes("romeo@montague.lit", 18) == 0x96743fc5e0445c85ULL);
    /* distribution sanity: 10000 users over 7 reactors, each within 15% */
    int count[7] = {0};
    char buf[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(buf, sizeof buf, "user%d@example.com", i);
        count[sz_jid_hash_bytes(buf, (size_t)n) % 7]++;
    }
    for (int i = 0; i < 7; i++)
        SZ_CHECK(count[i] > 1214 && count[i] < 1643);
}

SZ_TEST(zero_alloc)
{
    sz_jid_buf_t b;
    sz_jid_t *j;
    enum sz_jid_err e;
    SZ_CHECK_INT(sz_jid_parse_into("A@B.c/R", 7, &b, sizeof b, &j, &e), 0);
    SZ_CHECK_INT(e, SZ_JID_OK);
    SZ_CHECK_STR(sz_jid_full(j, NULL), "a@b.c/R");
    SZ_CHECK((void *)j == (void *)&b);
    /* exact fit: 8-byte header + 7 bytes + NUL */
    uint64_t small[2];
    SZ_CHECK_INT(sz_jid_parse_into("a@b.c/R", 7, small, 16, &j, &e), 0);
    SZ_CHECK_INT(sz_jid_parse_into("a@b.c/RR", 8, small, 16, &j, &e), -ENOBUFS);
    SZ_CHECK_INT(e, SZ_JID_ERR_NOBUFS);
    SZ_CHECK_INT(sz_jid_parse_into("a@b.c/", 6, small, 16, &j, &e), -EINVAL);

    /* standalone preparation (e.g. a SASL username) */
    char out[16];
    size_t n;
    SZ_CHECK_INT(sz_jid_prep(SZ_JID_PART_LOCAL, "\xc3\x89LODIE", 7, out, sizeof out, &n, &e), 0);
    SZ_CHECK_STR(out, "\xc3\xa9lodie");
    SZ_CHECK_INT(n, 7);
    SZ_CHECK_INT(sz_jid_prep(SZ_JID_PART_LOCAL, "a b", 3, out, sizeof out, &n, &e), -EINVAL);
    SZ_CHECK_INT(e, SZ_JID_ERR_LOCAL_CHAR);
    SZ_CHECK_INT(sz_jid_prep(SZ_JID_PART_DOMAIN, "EXAMPLE.COM", 11, out, 8, &n, &e), -ENOBUFS);
    for (int i = SZ_JID_OK; i <= SZ_JID_ERR_NOBUFS; i++)
        SZ_CHECK(strcmp(sz_jid_strerror((enum sz_jid_err)i), "unknown") != 0);
}

int main(void)
{
    SZ_RUN(rfc7622_valid);
    SZ_RUN(rfc7622_invalid);
    SZ_RUN(case_width_nfc);
    SZ_RUN(disallowed);
    SZ_RUN(bidi);
    SZ_RUN(length_limits);
    SZ_RUN(utf8);
    SZ_RUN(compare);
    SZ_RUN(hash_pinned);
    SZ_RUN(zero_alloc);
    return sz_test_done();
}
