/*
 * Tests for storage/blocklist.c and storage/sqlite_blocklist.c: the
 * blocklist of an account read, added to (duplicates kept once), removed
 * from, emptied; the size limit that refuses a whole add; writes for an
 * account that does not exist; argument checks; the cascade on account
 * deletion. Blocking calls from the main thread (store.h).
 */
#include "storage/blocklist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/store.h"
#include "sz_test.h"

static char tmpdir[256];
static char dbpath[512];

static sz_jid_t *jid(const char *s)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse(s, strlen(s), &j) < 0)
        return NULL;
    return j;
}

static sz_store_t *open_at(const char *path)
{
    char err[512] = "";
    sz_store_opts_t o = {.path = path, .workers = 2};
    sz_store_t *s = NULL;
    if (sz_store_open(&o, &s, err, sizeof(err)) < 0)
        printf("# open %s: %s\n", path, err);
    return s;
}

static void on_done(void *arg, int res)
{
    *(int *)arg = res;
}

static int create_account(sz_store_t *s, const sz_jid_t *j)
{
    sz_scram_creds_t c;
    memset(&c, 0, sizeof(c));
    int res = -999;
    int ret = sz_store_account_create(s, j, &c, on_done, &res);
    return ret < 0 ? ret : res;
}

/* The list as one sorted, comma-separated string, or "E<errno>". */
struct got {
    char s[512];
};

static int cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_list(void *arg, int res, const sz_store_blocklist_t *bl)
{
    struct got *g = arg;
    if (res < 0) {
        snprintf(g->s, sizeof(g->s), "E%d", -res);
        return;
    }
    const char **v = sz_calloc(bl->n + 1, sizeof(*v));
    for (size_t i = 0; i < bl->n; i++)
        v[i] = bl->items[i];
    qsort(v, bl->n, sizeof(*v), cmp);
    g->s[0] = '\0';
    for (size_t i = 0; i < bl->n; i++) {
        size_t l = strlen(g->s);
        snprintf(g->s + l, sizeof(g->s) - l, "%s%s", i ? "," : "", v[i]);
    }
    sz_free(v);
}

static const char *list(sz_store_t *s, const sz_jid_t *o, struct got *g)
{
    snprintf(g->s, sizeof(g->s), "not called");
    if (sz_store_blocklist_get(s, o, on_list, g) < 0)
        snprintf(g->s, sizeof(g->s), "refused");
    return g->s;
}

static int add(sz_store_t *s, const sz_jid_t *o, const char *const *v, size_t n, unsigned max)
{
    int res = -999;
    int ret = sz_store_blocklist_add(s, o, v, n, max, on_done, &res);
    return ret < 0 ? ret : res;
}

static int del(sz_store_t *s, const sz_jid_t *o, const char *const *v, size_t n)
{
    int res = -999;
    int ret = sz_store_blocklist_remove(s, o, v, n, on_done, &res);
    return ret < 0 ? ret : res;
}

SZ_TEST(add_get_remove)
{
    sz_store_t *s = open_at(dbpath);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    sz_jid_t *o = jid("alice@example.org"), *other = jid("bob@example.org");
    SZ_CHECK_INT(create_account(s, o), 0);
    SZ_CHECK_INT(create_account(s, other), 0);
    struct got g;
    SZ_CHECK_STR(list(s, o, &g), "");
    const char *v1[] = {"spam.example", "eve@example.net", "x@y.example/r", "eve@example.net"};
    SZ_CHECK_INT(add(s, o, v1, 4, 0), 0);
    SZ_CHECK_STR(list(s, o, &g), "eve@example.net,spam.example,x@y.example/r");
    SZ_CHECK_STR(list(s, other, &g), ""); /* per owner */
    /* Again, plus one: those there stay once. */
    const char *v2[] = {"spam.example", "z.example"};
    SZ_CHECK_INT(add(s, o, v2, 2, 0), 0);
    SZ_CHECK_STR(list(s, o, &g), "eve@example.net,spam.example,x@y.example/r,z.example");
    /* Remove two, one of them not there. */
    const char *v3[] = {"spam.example", "nobody@example.net"};
    SZ_CHECK_INT(del(s, o, v3, 2), 0);
    SZ_CHECK_STR(list(s, o, &g), "eve@example.net,x@y.example/r,z.example");
    /* All (XEP-0191 §3.5). */
    SZ_CHECK_INT(add(s, other, v2, 1, 0), 0);
    SZ_CHECK_INT(del(s, o, NULL, 0), 0);
    SZ_CHECK_STR(list(s, o, &g), "");
    SZ_CHECK_STR(list(s, other, &g), "spam.example");
    sz_jid_free(o);
    sz_jid_free(other);
    sz_store_close(s);
}

SZ_TEST(limit_refuses_whole_add)
{
    sz_store_t *s = open_at(dbpath);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    sz_jid_t *o = jid("carl@example.org");
    SZ_CHECK_INT(create_account(s, o), 0);
    const char *v1[] = {"a.example", "b.example"};
    SZ_CHECK_INT(add(s, o, v1, 2, 3), 0);
    const char *v2[] = {"c.example", "d.example"};
    SZ_CHECK_INT(add(s, o, v2, 2, 3), -ENOSPC);
    struct got g;
    SZ_CHECK_STR(list(s, o, &g), "a.example,b.example");
    /* Counted after the add: one already there does not count twice. */
    const char *v3[] = {"a.example", "c.example"};
    SZ_CHECK_INT(add(s, o, v3, 2, 3), 0);
    SZ_CHECK_STR(list(s, o, &g), "a.example,b.example,c.example");
    sz_jid_free(o);
    sz_store_close(s);
}

SZ_TEST(account_rules)
{
    sz_store_t *s = open_at(dbpath);
    SZ_CHECK(s != NULL);
    if (!s)
        return;
    sz_jid_t *ghost = jid("ghost@example.org"), *dom = jid("example.org");
    const char *v[] = {"a.example"};
    struct got g;
    /* No account: writes refused, reads empty. */
    SZ_CHECK_INT(add(s, ghost, v, 1, 0), -ENOENT);
    SZ_CHECK_STR(list(s, ghost, &g), "");
    /* Arguments. */
    int res = 0;
    SZ_CHECK_INT(sz_store_blocklist_add(s, ghost, v, 0, 0, on_done, &res), -EINVAL);
    const char *empty[] = {""};
    SZ_CHECK_INT(sz_store_blocklist_add(s, ghost, empty, 1, 0, on_done, &res), -EINVAL);
    SZ_CHECK_INT(sz_store_blocklist_get(s, dom, on_list, &g), -EINVAL);
    /* The account's deletion takes its blocklist along. */
    sz_jid_t *o = jid("dave@example.org");
    SZ_CHECK_INT(create_account(s, o), 0);
    SZ_CHECK_INT(add(s, o, v, 1, 0), 0);
    res = -999;
    SZ_CHECK_INT(sz_store_account_delete(s, o, on_done, &res), 0);
    SZ_CHECK_INT(res, 0);
    SZ_CHECK_INT(create_account(s, o), 0);
    SZ_CHECK_STR(list(s, o, &g), "");
    sz_jid_free(o);
    sz_jid_free(ghost);
    sz_jid_free(dom);
    sz_store_close(s);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    sz_log_set_level(SZ_LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_blocklist_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof(dbpath), "%s/b.db", tmpdir);
    SZ_RUN(add_get_remove);
    SZ_RUN(limit_refuses_whole_add);
    SZ_RUN(account_rules);
    rm_rf(tmpdir);
    return sz_test_done();
}
