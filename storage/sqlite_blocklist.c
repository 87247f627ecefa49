/*
 * SQLite backend, blocklist operations (storage/blocklist.h) on the table
 * of the blocklist migration (sqlite.c). Worker threads only, each on its
 * own connection (sqlite_int.h).
 *
 * An add runs in one BEGIN IMMEDIATE transaction: the account check, the
 * inserts and the size check commit together or not at all, so a refused
 * add (-ENOSPC) leaves the list as it was. A remove of several JIDs is one
 * transaction too.
 */
#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "storage/sqlite_int.h"

enum bstmt {
    B_BEGIN_WRITE,
    B_COMMIT,
    B_ROLLBACK,
    B_ACCT_EXISTS,
    B_PUT,
    B_COUNT,
    B_DELETE,
    B_DELETE_ALL,
    B_LIST,
    B_NSTMTS
};

_Static_assert(B_NSTMTS <= SZ_SQLITE_BLOCKLIST_STMTS, "raise SZ_SQLITE_BLOCKLIST_STMTS");

#define OWNER "domain = ?1 AND localpart = ?2"

/* ?1 domain, ?2 localpart (the owner); ?3 a JID. */
static const char *const bsql[B_NSTMTS] = {
    [B_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [B_COMMIT] = "COMMIT",
    [B_ROLLBACK] = "ROLLBACK",
    [B_ACCT_EXISTS] = "SELECT 1 FROM accounts WHERE " OWNER,
    [B_PUT] = "INSERT OR IGNORE INTO blocklist (domain, localpart, jid) VALUES (?1, ?2, ?3)",
    [B_COUNT] = "SELECT count(*) FROM blocklist WHERE " OWNER,
    [B_DELETE] = "DELETE FROM blocklist WHERE " OWNER " AND jid = ?3",
    [B_DELETE_ALL] = "DELETE FROM blocklist WHERE " OWNER,
    [B_LIST] = "SELECT jid FROM blocklist WHERE " OWNER,
};

/* Statement <i>, reset, with the owner of <q> bound (when <q> is set). */
static sqlite3_stmt *bstmt(struct sz_sqlite_conn *c, enum bstmt i, const sz_store_req_t *q)
{
    return sz_sqlite_owner_stmt(c, &c->blocklist[i], bsql[i], q);
}

/* Runs statement <i>, with JID <jid>/<len> as ?3 when <jid> is set, to
 * its end. Returns 1 when it yielded a row (its first integer column in
 * *<v> when <v> is set), 0 when none, or -errno. */
static int brun(struct sz_sqlite_conn *c, enum bstmt i, const sz_store_req_t *q,
                const char *jid, size_t len, int64_t *v, const char *what)
{
    sqlite3_stmt *s = bstmt(c, i, q);
    if (!s)
        return -EIO;
    if (jid)
        sqlite3_bind_text(s, 3, jid, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        if (v)
            *v = sqlite3_column_int64(s, 0);
        ret = 1;
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = sz_sqlite_fail(c, what, rc);
    sqlite3_reset(s);
    return ret;
}

static void rollback(struct sz_sqlite_conn *c, const char *what)
{
    if (!sqlite3_get_autocommit(c->h))
        (void)brun(c, B_ROLLBACK, NULL, NULL, 0, NULL, what);
}

static int list(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = bstmt(c, B_LIST, q);
    if (!s)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *j = (const char *)sqlite3_column_text(s, 0);
        size_t jl = (size_t)sqlite3_column_bytes(s, 0);
        if (j && jl)
            sz_store_blocklist_add_result(q, j, jl);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, "blocklist_get", rc);
}

/* Runs <i> once for each packed JID of <q>; stops at the first failure. */
static int each_item(struct sz_sqlite_conn *c, enum bstmt i, sz_store_req_t *q, const char *what)
{
    const char *p = q->u.block.items.p;
    for (size_t k = 0; k < q->u.block.n; k++) {
        size_t l = strlen(p);
        int ret = brun(c, i, q, p, l, NULL, what);
        if (ret < 0)
            return ret;
        p += l + 1;
    }
    return 0;
}

static int add(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "blocklist_add";
    int64_t v = 0;
    int ret = brun(c, B_BEGIN_WRITE, NULL, NULL, 0, NULL, what);
    if (ret < 0)
        return ret;
    /* No row outlives its account: check it before writing, so the answer
     * does not depend on how SQLite reports the foreign key. */
    ret = brun(c, B_ACCT_EXISTS, q, NULL, 0, NULL, what);
    if (ret == 0)
        ret = -ENOENT;
    if (ret > 0)
        ret = each_item(c, B_PUT, q, what);
    if (ret == 0 && q->u.block.max_items) {
        ret = brun(c, B_COUNT, q, NULL, 0, &v, what);
        if (ret > 0)
            ret = v > (int64_t)q->u.block.max_items ? -ENOSPC : 0;
        else if (ret == 0)
            ret = -EIO; /* count(*) always yields a row */
    }
    if (ret == 0)
        ret = brun(c, B_COMMIT, NULL, NULL, 0, NULL, what);
    if (ret < 0)
        rollback(c, what);
    return ret < 0 ? ret : 0;
}

static int remove_items(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "blocklist_remove";
    if (q->u.block.n == 0) {
        int ret = brun(c, B_DELETE_ALL, q, NULL, 0, NULL, what);
        return ret < 0 ? ret : 0;
    }
    int ret = brun(c, B_BEGIN_WRITE, NULL, NULL, 0, NULL, what);
    if (ret < 0)
        return ret;
    ret = each_item(c, B_DELETE, q, what);
    if (ret == 0)
        ret = brun(c, B_COMMIT, NULL, NULL, 0, NULL, what);
    if (ret < 0)
        rollback(c, what);
    return ret < 0 ? ret : 0;
}

bool sz_sqlite_blocklist_exec(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    switch (q->op) {
    case SZ_STORE_BLOCKLIST_GET:
        q->res = list(c, q);
        return true;
    case SZ_STORE_BLOCKLIST_ADD:
        q->res = add(c, q);
        return true;
    case SZ_STORE_BLOCKLIST_REMOVE:
        q->res = remove_items(c, q);
        return true;
    default:
        return false;
    }
}
