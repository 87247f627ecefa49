/*
 * Tests for storage/offline.c and its SQLite side: messages kept in order
 * of arrival per owner, a take that deletes exactly the ids up to the one
 * given (not a message stored after the read), the quota (nothing written
 * past it), puts for an owner without an account, and the cascade on
 * account deletion. Blocking use from the main thread.
 */
#include "storage/offline.h"

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

static int put(const char *owner, const char *xml, uint32_t max)
{
    int res = -999;
    sz_jid_t *o = jid(owner);
    int ret = sz_store_offline_put(st, o, xml, strlen(xml), max, on_done, &res);
    sz_jid_free(o);
    return ret < 0 ? ret : res;
}

/* What a take returned: the bodies joined by ',' and the ids. */
struct got {
    int res;
    size_t n;
    char text[512];
    uint64_t ids[16];
};

static void on_take(void *arg, int res, const sz_store_offline_msg_t *msgs, size_t n)
{
    struct got *g = arg;
    g->res = res;
    g->n = n;
    size_t off = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        g->ids[i] = msgs[i].id;
        SZ_CHECK_INT(strlen(msgs[i].xml), msgs[i].len);
        off += (size_t)snprintf(g->text + off, sizeof(g->text) - off, "%s%s", i ? "," : "",
                                msgs[i].xml);
    }
}

static struct got take(const char *owner, uint64_t upto, unsigned limit)
{
    struct got g = {.res = -999};
    sz_jid_t *o = jid(owner);
    int ret = sz_store_offline_take(st, o, upto, limit, on_take, &g);
    if (ret < 0)
        g.res = ret;
    sz_jid_free(o);
    return g;
}

static void on_count(void *arg, int res, uint64_t n)
{
    *(int64_t *)arg = res < 0 ? res : (int64_t)n;
}

static int64_t count(const char *owner)
{
    int64_t n = -999;
    sz_jid_t *o = jid(owner);
    int ret = sz_store_offline_count(st, o, on_count, &n);
    sz_jid_free(o);
    return ret < 0 ? ret : n;
}

SZ_TEST(order_and_take)
{
    SZ_CHECK_INT(create_account("ann@a.example"), 0);
    SZ_CHECK_INT(create_account("bob@a.example"), 0);
    SZ_CHECK_INT(put("ann@a.example", "<m>1</m>", 0), 0);
    SZ_CHECK_INT(put("bob@a.example", "<m>b</m>", 0), 0);
    SZ_CHECK_INT(put("ann@a.example/res", "<m>2</m>", 0), 0); /* the bare part is the owner */
    SZ_CHECK_INT(put("ann@a.example", "<m>3</m>", 0), 0);
    struct got g = take("ann@a.example", 0, 2);
    SZ_CHECK_INT(g.res, 0);
    SZ_CHECK_INT(g.n, 2);
    SZ_CHECK_STR(g.text, "<m>1</m>,<m>2</m>");
    SZ_CHECK(g.ids[0] < g.ids[1]);
    /* A message stored after the read is not deleted with what was read. */
    SZ_CHECK_INT(put("ann@a.example", "<m>4</m>", 0), 0);
    struct got g2 = take("ann@a.example", g.ids[1], 10);
    SZ_CHECK_INT(g2.res, 0);
    SZ_CHECK_STR(g2.text, "<m>3</m>,<m>4</m>");
    SZ_CHECK_INT(count("ann@a.example"), 2);
    /* Delete only (limit 0). */
    struct got g3 = take("ann@a.example", g2.ids[1], 0);
    SZ_CHECK_INT(g3.res, 0);
    SZ_CHECK_INT(g3.n, 0);
    SZ_CHECK_INT(count("ann@a.example"), 0);
    /* Ids keep growing after the queue was emptied. */
    SZ_CHECK_INT(put("ann@a.example", "<m>5</m>", 0), 0);
    struct got g4 = take("ann@a.example", 0, 10);
    SZ_CHECK_INT(g4.n, 1);
    SZ_CHECK(g4.ids[0] > g2.ids[1]);
    SZ_CHECK_INT(take("ann@a.example", g4.ids[0], 0).res, 0);
    /* bob's message was never touched. */
    SZ_CHECK_INT(count("bob@a.example"), 1);
}

SZ_TEST(quota_and_unknown)
{
    SZ_CHECK_INT(create_account("cat@a.example"), 0);
    for (int i = 0; i < 3; i++)
        SZ_CHECK_INT(put("cat@a.example", "<m/>", 3), 0);
    SZ_CHECK_INT(put("cat@a.example", "<m/>", 3), -EDQUOT);
    SZ_CHECK_INT(count("cat@a.example"), 3);
    SZ_CHECK_INT(put("cat@a.example", "<m/>", 4), 0);
    SZ_CHECK_INT(count("cat@a.example"), 4);
    SZ_CHECK_INT(put("nobody@a.example", "<m/>", 3), -ENOENT);
    SZ_CHECK_INT(count("nobody@a.example"), 0);
    /* Bad arguments never reach a worker. */
    sz_jid_t *o = jid("cat@a.example");
    int res = -999;
    SZ_CHECK_INT(sz_store_offline_put(st, o, "", 0, 0, on_done, &res), -EINVAL);
    SZ_CHECK_INT(sz_store_offline_take(st, o, 0, SZ_STORE_OFFLINE_TAKE_MAX + 1, on_take, &res),
                 -EINVAL);
    sz_jid_free(o);
    SZ_CHECK_INT(res, -999);
}

SZ_TEST(account_delete_cascades)
{
    SZ_CHECK_INT(create_account("dan@a.example"), 0);
    SZ_CHECK_INT(put("dan@a.example", "<m/>", 0), 0);
    sz_jid_t *o = jid("dan@a.example");
    int res = -999;
    SZ_CHECK_INT(sz_store_account_delete(st, o, on_done, &res), 0);
    SZ_CHECK_INT(res, 0);
    sz_jid_free(o);
    SZ_CHECK_INT(count("dan@a.example"), 0);
    /* Re-created: an empty queue, not the old messages. */
    SZ_CHECK_INT(create_account("dan@a.example"), 0);
    SZ_CHECK_INT(take("dan@a.example", 0, 10).n, 0);
}

int main(void)
{
    sz_log_set_level(SZ_LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_offline_XXXXXX");
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
    SZ_RUN(order_and_take);
    SZ_RUN(quota_and_unknown);
    SZ_RUN(account_delete_cascades);
    sz_store_close(st);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# cleanup of %s failed\n", tmpdir);
    return sz_test_done();
}
