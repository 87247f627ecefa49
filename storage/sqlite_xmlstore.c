/*
 * SQLite backend, per-account XML documents (storage/xmlstore.h) on table
 * xml_docs (sqlite.c, migrations). Worker threads only, each on its own
 * connection (sqlite_int.h).
 *
 * A put runs in one BEGIN IMMEDIATE transaction: the account check, every
 * write or removal, then the family's byte total against the bound; past
 * the bound it rolls back, so the bound holds whatever other process
 * writes the file. length() of a BLOB comes from the record header, so
 * the total reads no document bytes.
 */
#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/sqlite_int.h"

enum xstmt { X_BEGIN, X_COMMIT, X_ROLLBACK, X_ACCT, X_GET, X_PUT, X_DEL, X_TOTAL, X_COUNT };

_Static_assert(X_COUNT <= SZ_SQLITE_XML_STMTS, "raise SZ_SQLITE_XML_STMTS");

#define OWNER "domain = ?1 AND localpart = ?2"

/* ?1 domain, ?2 localpart, ?3 kind, ?4 name, ?5 data */
static const char *const xsql[X_COUNT] = {
    [X_BEGIN] = "BEGIN IMMEDIATE",
    [X_COMMIT] = "COMMIT",
    [X_ROLLBACK] = "ROLLBACK",
    [X_ACCT] = "SELECT 1 FROM accounts WHERE " OWNER,
    [X_GET] = "SELECT data FROM xml_docs WHERE " OWNER " AND kind = ?3 AND name = ?4",
    [X_PUT] = ("INSERT INTO xml_docs (domain, localpart, kind, name, data)"
               " VALUES (?1, ?2, ?3, ?4, ?5)"
               " ON CONFLICT (domain, localpart, kind, name) DO UPDATE SET data = excluded.data"),
    [X_DEL] = "DELETE FROM xml_docs WHERE " OWNER " AND kind = ?3 AND name = ?4",
    [X_TOTAL] = "SELECT coalesce(sum(length(data)), 0) FROM xml_docs WHERE " OWNER " AND kind = ?3",
};

/* Statement <i>, reset, with <q>'s owner and family bound. */
static sqlite3_stmt *xstmt(struct sz_sqlite_conn *c, enum xstmt i, const sz_store_req_t *q)
{
    sqlite3_stmt *s = sz_sqlite_owner_stmt(c, &c->xml[i], xsql[i], q);
    if (!s || !q)
        return s;
    if (sqlite3_bind_parameter_count(s) >= 3)
        sqlite3_bind_int(s, 3, (int)q->u.xml.kind);
    return s;
}

/* Steps <s> to its end; 0 or -errno. A first row, if any, is left in
 * *<v> (integer column 0) and flagged in *<row>. */
static int xstep(struct sz_sqlite_conn *c, sqlite3_stmt *s, const char *what, int64_t *v,
                 bool *row)
{
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s);
    if (row)
        *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW && v)
        *v = sqlite3_column_int64(s, 0);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, what, rc);
}

static int xml_get(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = xstmt(c, X_GET, q);
    if (!s)
        return -EIO;
    sqlite3_bind_text(s, 4, q->u.xml.name.p, (int)q->u.xml.name.len, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        const void *d = sqlite3_column_blob(s, 0);
        int n = sqlite3_column_bytes(s, 0);
        q->u.xml.out = sz_malloc((size_t)n + 1);
        if (n > 0)
            memcpy(q->u.xml.out, d, (size_t)n);
        q->u.xml.out[n] = '\0';
        q->u.xml.out_len = (size_t)n;
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = sz_sqlite_fail(c, "xml_get", rc);
    }
    sqlite3_reset(s);
    return ret;
}

static int xml_put(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    int ret = xstep(c, xstmt(c, X_BEGIN, NULL), "xml_put", NULL, NULL);
    if (ret < 0)
        return ret;
    bool row = false;
    ret = xstep(c, xstmt(c, X_ACCT, q), "xml_put", NULL, &row);
    if (ret == 0 && !row)
        ret = -ENOENT;
    for (size_t i = 0; ret == 0 && i < q->u.xml.n; i++) {
        const sz_store_str_t *name = &q->u.xml.docs[2 * i], *x = &q->u.xml.docs[2 * i + 1];
        sqlite3_stmt *s = xstmt(c, x->p ? X_PUT : X_DEL, q);
        if (!s) {
            ret = -EIO;
            break;
        }
        sqlite3_bind_text(s, 4, name->p, (int)name->len, SQLITE_STATIC);
        if (x->p)
            sqlite3_bind_blob(s, 5, x->p, (int)x->len, SQLITE_STATIC);
        ret = xstep(c, s, "xml_put", NULL, NULL);
    }
    if (ret == 0 && q->u.xml.max_bytes) {
        int64_t total = 0;
        ret = xstep(c, xstmt(c, X_TOTAL, q), "xml_put", &total, NULL);
        if (ret == 0 && (uint64_t)total > q->u.xml.max_bytes)
            ret = -ENOSPC;
    }
    if (ret == 0)
        ret = xstep(c, xstmt(c, X_COMMIT, NULL), "xml_put", NULL, NULL);
    if (ret < 0 && !sqlite3_get_autocommit(c->h))
        (void)xstep(c, xstmt(c, X_ROLLBACK, NULL), "xml_put", NULL, NULL);
    return ret;
}

bool sz_sqlite_xml_exec(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    switch (q->op) {
    case SZ_STORE_XML_GET:
        q->res = xml_get(c, q);
        return true;
    case SZ_STORE_XML_PUT:
        q->res = xml_put(c, q);
        return true;
    default:
        return false;
    }
}
