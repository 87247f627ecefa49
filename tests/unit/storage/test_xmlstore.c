/*
 * Tests for storage/xmlstore.c, storage/last.c and their SQLite side:
 * documents kept byte for byte per (owner, family, name), removal by an
 * empty document, the per-family byte bound (nothing written past it),
 * writes for an owner without an account, the cascade on account
 * deletion, and last-activity records. Blocking use from the main thread.
 */
#include "storage/xmlstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/last.h"
#include "storage/store.h"
#include "sz_test.h"

static char tmpdir[256];
static char dbpath[512];
static sz_store_t *st;

static sz_jid_t *jid(const char *s)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse(s, strlen(s), &j) < 0)
        return NULL;
    return j;
}

static void on_done(void *arg, int res)
{
    *(int *)arg = res;
}

static int create_account(const char *j)
{
    sz_scram_creds_t c;
    memset(&c, 0, sizeof(c));
    sz_jid_t *jj = jid(j);
    int res = -999;
    int ret = sz_store_account_create(st, jj, &c, on_done, &res);
    sz_jid_free(jj);
    return ret < 0 ? ret : res;
}

struct got {
    int res;
    char buf[256];
    size_t len;
    int64_t when;
    bool has_status;
};

static void on_xml(void *arg, int res, const char *xml, size_t len)
{
    struct got *g = arg;
    g->res = res;
    g->len = len;
    snprintf(g->buf, sizeof(g->buf), "%s", res == 0 ? xml : "");
}

static struct got get(const char *owner, enum sz_store_xml_kind k, const char *name)
{
    struct got g = {.res = -999};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_xml_get(st, o, k, name, on_xml, &g);
    if (ret < 0)
        g.res = ret;
    sz_jid_free(o);
    return g;
}

static int put(const char *owner, enum sz_store_xml_kind k, const sz_store_xml_doc_t *d, size_t n,
               uint64_t max)
{
    int res = -999;
    sz_jid_t *o = jid(owner);
    int ret = sz_store_xml_put(st, o, k, d, n, max, on_done, &res);
    sz_jid_free(o);
    return ret < 0 ? ret : res;
}

SZ_TEST(documents)
{
    SZ_CHECK_INT(create_account("ann@example.org"), 0);
    SZ_CHECK_INT(get("ann@example.org", SZ_STORE_XML_VCARD, "").res, -ENOENT);
    const char *v = "<vCard xmlns=\"vcard-temp\"><FN>Ann &amp; co</FN></vCard>";
    sz_store_xml_doc_t d = {"", v, strlen(v)};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_VCARD, &d, 1, 0), 0);
    struct got g = get("ann@example.org", SZ_STORE_XML_VCARD, "");
    SZ_CHECK_INT(g.res, 0);
    SZ_CHECK_STR(g.buf, v);
    SZ_CHECK_INT(g.len, strlen(v));
    /* Families and names are separate keys. */
    SZ_CHECK_INT(get("ann@example.org", SZ_STORE_XML_PRIVATE, "").res, -ENOENT);
    sz_store_xml_doc_t two[2] = {{"a:ns", "<x xmlns=\"a:ns\"/>", 17},
                                  {"b:ns", "<y xmlns=\"b:ns\"/>", 17}};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_PRIVATE, two, 2, 0), 0);
    SZ_CHECK_STR(get("ann@example.org", SZ_STORE_XML_PRIVATE, "b:ns").buf, "<y xmlns=\"b:ns\"/>");
    SZ_CHECK_STR(get("ann@example.org", SZ_STORE_XML_PRIVATE, "a:ns").buf, "<x xmlns=\"a:ns\"/>");
    /* Replace, then remove with an empty document. */
    sz_store_xml_doc_t r = {"a:ns", "<x xmlns=\"a:ns\">2</x>", 21};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_PRIVATE, &r, 1, 0), 0);
    SZ_CHECK_STR(get("ann@example.org", SZ_STORE_XML_PRIVATE, "a:ns").buf, "<x xmlns=\"a:ns\">2</x>");
    sz_store_xml_doc_t rm = {"a:ns", NULL, 0};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_PRIVATE, &rm, 1, 0), 0);
    SZ_CHECK_INT(get("ann@example.org", SZ_STORE_XML_PRIVATE, "a:ns").res, -ENOENT);
    /* Other owners see nothing; an owner without account cannot write. */
    SZ_CHECK_INT(get("bob@example.org", SZ_STORE_XML_VCARD, "").res, -ENOENT);
    SZ_CHECK_INT(put("bob@example.org", SZ_STORE_XML_VCARD, &d, 1, 0), -ENOENT);
    /* Bad arguments. */
    sz_store_xml_doc_t dup[2] = {{"n", "<a/>", 4}, {"n", "<b/>", 4}};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_PRIVATE, dup, 2, 0), -EINVAL);
    SZ_CHECK_INT(put("ann@example.org", 7, &d, 1, 0), -EINVAL);
    sz_store_xml_doc_t nul = {"n", "<a>\0</a>", 8};
    SZ_CHECK_INT(put("ann@example.org", SZ_STORE_XML_PRIVATE, &nul, 1, 0), -EINVAL);
}

SZ_TEST(byte_bound)
{
    SZ_CHECK_INT(create_account("cap@example.org"), 0);
    char big[101];
    memset(big, 'a', 100);
    big[100] = '\0';
    sz_store_xml_doc_t a = {"one", big, 60}, b = {"two", big, 41};
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_PRIVATE, &a, 1, 100), 0);
    /* 60 + 41 > 100: refused, and nothing of it is written. */
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_PRIVATE, &b, 1, 100), -ENOSPC);
    SZ_CHECK_INT(get("cap@example.org", SZ_STORE_XML_PRIVATE, "two").res, -ENOENT);
    b.len = 40;
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_PRIVATE, &b, 1, 100), 0);
    /* Replacing counts the new size, not the old one twice. */
    a.len = 55;
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_PRIVATE, &a, 1, 100), 0);
    /* The bound is per family: the vCard has its own. */
    sz_store_xml_doc_t v = {"", big, 100};
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_VCARD, &v, 1, 100), 0);
    v.len = 101 - 1;
    SZ_CHECK_INT(put("cap@example.org", SZ_STORE_XML_VCARD, &v, 1, 99), -ENOSPC);
    SZ_CHECK_INT(get("cap@example.org", SZ_STORE_XML_VCARD, "").len, 100);
}

static void on_last(void *arg, int res, int64_t when, const char *status)
{
    struct got *g = arg;
    g->res = res;
    g->when = when;
    g->has_status = status != NULL;
    snprintf(g->buf, sizeof(g->buf), "%s", status ? status : "");
}

static struct got last_get(const char *owner)
{
    struct got g = {.res = -999};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_last_get(st, o, on_last, &g);
    if (ret < 0)
        g.res = ret;
    sz_jid_free(o);
    return g;
}

static int last_set(const char *owner, int64_t when, const char *status)
{
    int res = -999;
    sz_jid_t *o = jid(owner);
    int ret = sz_store_last_set(st, o, when, status, on_done, &res);
    sz_jid_free(o);
    return ret < 0 ? ret : res;
}

SZ_TEST(last_activity)
{
    SZ_CHECK_INT(create_account("lee@example.org"), 0);
    SZ_CHECK_INT(last_get("lee@example.org").res, -ENOENT);
    SZ_CHECK_INT(last_set("lee@example.org", 1700000000, "Heading Home"), 0);
    struct got g = last_get("lee@example.org");
    SZ_CHECK_INT(g.res, 0);
    SZ_CHECK_INT(g.when, 1700000000);
    SZ_CHECK_STR(g.buf, "Heading Home");
    SZ_CHECK_INT(last_set("lee@example.org", 1700000100, NULL), 0);
    g = last_get("lee@example.org");
    SZ_CHECK_INT(g.when, 1700000100);
    SZ_CHECK(!g.has_status);
    SZ_CHECK_INT(last_set("nobody@example.org", 1, "x"), -ENOENT);
    SZ_CHECK_INT(last_get("nobody@example.org").res, -ENOENT);
}

SZ_TEST(account_delete_cascades)
{
    SZ_CHECK_INT(create_account("gone@example.org"), 0);
    sz_store_xml_doc_t d = {"", "<vCard xmlns=\"vcard-temp\"/>", 27};
    SZ_CHECK_INT(put("gone@example.org", SZ_STORE_XML_VCARD, &d, 1, 0), 0);
    SZ_CHECK_INT(last_set("gone@example.org", 5, "bye"), 0);
    sz_jid_t *o = jid("gone@example.org");
    int res = -999;
    SZ_CHECK_INT(sz_store_account_delete(st, o, on_done, &res), 0);
    SZ_CHECK_INT(res, 0);
    sz_jid_free(o);
    SZ_CHECK_INT(create_account("gone@example.org"), 0);
    SZ_CHECK_INT(get("gone@example.org", SZ_STORE_XML_VCARD, "").res, -ENOENT);
    SZ_CHECK_INT(last_get("gone@example.org").res, -ENOENT);
}

int main(void)
{
    sz_log_set_level(SZ_LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_xmlstore_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof(dbpath), "%s/x.db", tmpdir);
    char err[512] = "";
    sz_store_opts_t o = {.path = dbpath, .workers = 2};
    if (sz_store_open(&o, &st, err, sizeof(err)) < 0) {
        printf("# open: %s\n1..0\n", err);
        return 1;
    }
    SZ_RUN(documents);
    SZ_RUN(byte_bound);
    SZ_RUN(last_activity);
    SZ_RUN(account_delete_cascades);
    sz_store_close(st);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# cleanup of %s failed\n", tmpdir);
    return sz_test_done();
}
