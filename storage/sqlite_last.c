/*
 * SQLite backend, last activity (storage/last.h) on table last_activity
 * (sqlite.c, migrations). Worker threads only. A set is one statement
 * that inserts only where the account exists, so no record outlives or
 * precedes its account and the write needs no explicit transaction.
 */
#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/sqlite_int.h"

enum lstmt { L_SET, L_GET, L_COUNT };

_Static_assert(L_COUNT <= SZ_SQLITE_LAST_STMTS, "raise SZ_SQLITE_LAST_STMTS");

/* ?1 domain, ?2 localpart, ?3 logout, ?4 status. The WHERE clause also
 * keeps the upsert's ON CONFLICT from parsing as a join constraint. */
static const char *const lsql[L_COUNT] = {
    [L_SET] = ("INSERT INTO last_activity (domain, localpart, logout, status)"
               " SELECT domain, localpart, ?3, ?4 FROM accounts"
               " WHERE domain = ?1 AND localpart = ?2"
               " ON CONFLICT (domain, localpart) DO UPDATE SET"
               " logout = excluded.logout, status = excluded.status"),
    [L_GET] = "SELECT logout, status FROM last_activity WHERE domain = ?1 AND localpart = ?2",
};

static sqlite3_stmt *lstmt(struct sz_sqlite_conn *c, enum lstmt i, const sz_store_req_t *q)
{
    return sz_sqlite_owner_stmt(c, &c->last[i], lsql[i], q);
}

static int last_set(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = lstmt(c, L_SET, q);
    if (!s)
        return -EIO;
    sqlite3_bind_int64(s, 3, q->u.last.when);
    if (q->u.last.status.p)
        sqlite3_bind_text(s, 4, q->u.last.status.p, (int)q->u.last.status.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sz_sqlite_fail(c, "last_set", rc);
    return sqlite3_changes(c->h) > 0 ? 0 : -ENOENT;
}

static int last_get(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = lstmt(c, L_GET, q);
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        q->u.last.when = sqlite3_column_int64(s, 0);
        if (sqlite3_column_type(s, 1) != SQLITE_NULL) {
            const char *t = (const char *)sqlite3_column_text(s, 1);
            int n = sqlite3_column_bytes(s, 1);
            q->u.last.out_status = sz_strndup(t ? t : "", (size_t)n);
        }
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = sz_sqlite_fail(c, "last_get", rc);
    }
    sqlite3_reset(s);
    return ret;
}

bool sz_sqlite_last_exec(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    switch (q->op) {
    case SZ_STORE_LAST_SET:
        q->res = last_set(c, q);
        return true;
    case SZ_STORE_LAST_GET:
        q->res = last_get(c, q);
        return true;
    default:
        return false;
    }
}
