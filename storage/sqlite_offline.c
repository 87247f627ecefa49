/*
 * SQLite backend, offline messages (storage/offline.h) on table
 * offline_messages (sqlite.c, migrations). Worker threads only.
 *
 * A put is one INSERT ... SELECT that inserts only where the account
 * exists and its queue is under the quota: the check and the write are
 * one statement, hence one transaction, and the callback's 0 means it is
 * committed. Only when nothing was inserted does a second read tell the
 * two refusals apart. A take deletes and reads in one write transaction.
 */
#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/sqlite_int.h"

enum ostmt { O_PUT, O_EXISTS, O_DELETE, O_READ, O_COUNT, O_BEGIN, O_COMMIT, O_ROLLBACK, O_N };

_Static_assert(O_N <= SZ_SQLITE_OFFLINE_STMTS, "raise SZ_SQLITE_OFFLINE_STMTS");

/* ?1 domain, ?2 localpart, then per statement. */
static const char *const osql[O_N] = {
    /* ?3 stanza, ?4 quota (0: none) */
    [O_PUT] = ("INSERT INTO offline_messages (domain, localpart, stanza)"
               " SELECT domain, localpart, ?3 FROM accounts"
               " WHERE domain = ?1 AND localpart = ?2 AND (?4 = 0 OR"
               "  (SELECT count(*) FROM offline_messages WHERE domain = ?1 AND localpart = ?2)"
               "  < ?4)"),
    [O_EXISTS] = "SELECT 1 FROM accounts WHERE domain = ?1 AND localpart = ?2",
    /* ?3 upto */
    [O_DELETE] = "DELETE FROM offline_messages WHERE domain = ?1 AND localpart = ?2 AND id <= ?3",
    /* ?3 limit */
    [O_READ] = ("SELECT id, stanza FROM offline_messages WHERE domain = ?1 AND localpart = ?2"
                " ORDER BY id LIMIT ?3"),
    [O_COUNT] = "SELECT count(*) FROM offline_messages WHERE domain = ?1 AND localpart = ?2",
    [O_BEGIN] = "BEGIN IMMEDIATE",
    [O_COMMIT] = "COMMIT",
    [O_ROLLBACK] = "ROLLBACK",
};

/* Statement <i>, with the owner bound when <q> is not NULL. */
static sqlite3_stmt *ostmt(struct sz_sqlite_conn *c, enum ostmt i, const sz_store_req_t *q)
{
    return sz_sqlite_owner_stmt(c, &c->offline[i], osql[i], q);
}

/* Steps <s> to its end; 0 or -errno. */
static int run(struct sz_sqlite_conn *c, sqlite3_stmt *s, const char *what)
{
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, what, rc);
}

/* One integer of statement <s>'s single row into *<v>: 1, 0 when no row,
 * or -errno. */
static int one(struct sz_sqlite_conn *c, sqlite3_stmt *s, const char *what, int64_t *v)
{
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(s, 0);
        ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = sz_sqlite_fail(c, what, rc);
    }
    sqlite3_reset(s);
    return ret;
}

static int offline_put(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = ostmt(c, O_PUT, q);
    if (!s)
        return -EIO;
    sqlite3_bind_blob(s, 3, q->u.offline.xml.p, (int)q->u.offline.xml.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, q->u.offline.max);
    int ret = run(c, s, "offline_put");
    if (ret < 0)
        return ret;
    if (sqlite3_changes(c->h) > 0)
        return 0;
    int64_t v;
    ret = one(c, ostmt(c, O_EXISTS, q), "offline_put", &v);
    if (ret < 0)
        return ret;
    return ret ? -EDQUOT : -ENOENT;
}

static int read_rows(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = ostmt(c, O_READ, q);
    if (!s)
        return -EIO;
    unsigned limit = q->u.offline.max;
    sqlite3_bind_int64(s, 3, limit);
    q->u.offline.msgs = sz_calloc(limit, sizeof(*q->u.offline.msgs));
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && q->u.offline.n < limit) {
        sz_store_offline_msg_t *m = &q->u.offline.msgs[q->u.offline.n++];
        m->id = (uint64_t)sqlite3_column_int64(s, 0);
        const char *x = sqlite3_column_blob(s, 1);
        m->len = (size_t)sqlite3_column_bytes(s, 1);
        m->xml = sz_strndup(x ? x : "", m->len);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = sz_sqlite_fail(c, "offline_take", rc);
    sqlite3_reset(s);
    return ret;
}

static int offline_take(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "offline_take";
    int ret = run(c, ostmt(c, O_BEGIN, NULL), what);
    if (ret < 0)
        return ret;
    if (q->u.offline.upto) {
        sqlite3_stmt *s = ostmt(c, O_DELETE, q);
        if (s)
            sqlite3_bind_int64(s, 3, (int64_t)q->u.offline.upto);
        ret = run(c, s, what);
    }
    if (ret == 0 && q->u.offline.max)
        ret = read_rows(c, q);
    if (ret == 0)
        ret = run(c, ostmt(c, O_COMMIT, NULL), what);
    if (ret < 0 && !sqlite3_get_autocommit(c->h))
        (void)run(c, ostmt(c, O_ROLLBACK, NULL), what);
    return ret;
}

static int offline_count(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    int64_t v = 0;
    int ret = one(c, ostmt(c, O_COUNT, q), "offline_count", &v);
    if (ret < 0)
        return ret;
    q->u.offline.upto = (uint64_t)v;
    return 0;
}

bool sz_sqlite_offline_exec(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    switch (q->op) {
    case SZ_STORE_OFFLINE_PUT:
        q->res = offline_put(c, q);
        return true;
    case SZ_STORE_OFFLINE_TAKE:
        q->res = offline_take(c, q);
        return true;
    case SZ_STORE_OFFLINE_COUNT:
        q->res = offline_count(c, q);
        return true;
    default:
        return false;
    }
}
