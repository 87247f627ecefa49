/*
 * SQLite backend, roster operations (storage/roster.h) on the tables of
 * migration 2 (sqlite.c): roster_version, roster_items, roster_pending.
 * Worker threads only, each on its own connection (sqlite_int.h).
 *
 * Writes that read first (put: the limit; remove: the version) run in one
 * BEGIN IMMEDIATE transaction, so the version bump and the item change
 * commit together and no other process can slip between the check and the
 * write. Reads of more than one table run in one deferred transaction,
 * which in WAL mode is a snapshot: the version read always matches the
 * items read with it. Single-statement writes (pending) are atomic alone.
 *
 * Rows need the owner's account (foreign keys, cascade on delete): a write
 * for an owner without one is -ENOENT, checked first so that the answer
 * does not depend on how SQLite reports the foreign key.
 */
#include <errno.h>
#include <time.h>

#include <sqlite3.h>

#include "core/log.h"
#include "storage/sqlite_int.h"

enum rstmt {
    R_BEGIN_WRITE,
    R_BEGIN_READ,
    R_COMMIT,
    R_ROLLBACK,
    R_ACCT_EXISTS,
    R_VER_GET,
    R_VER_BUMP,
    R_ITEM_EXISTS,
    R_ITEM_COUNT,
    R_ITEM_PUT,
    R_ITEM_DELETE,
    R_ITEM_GET,
    R_ITEMS,
    R_PEND_PUT,
    R_PEND_DELETE,
    R_PEND_LIST,
    R_COUNT
};

_Static_assert(R_COUNT <= SZ_SQLITE_ROSTER_STMTS, "raise SZ_SQLITE_ROSTER_STMTS");

#define ITEM_COLS "contact, name, subscription, ask, approved, group_names, version"
#define OWNER     "domain = ?1 AND localpart = ?2"

/* ?1 domain, ?2 localpart (the owner) in every statement. */
static const char *const rsql[R_COUNT] = {
    [R_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [R_BEGIN_READ] = "BEGIN",
    [R_COMMIT] = "COMMIT",
    [R_ROLLBACK] = "ROLLBACK",
    [R_ACCT_EXISTS] = "SELECT 1 FROM accounts WHERE " OWNER,
    [R_VER_GET] = "SELECT version FROM roster_version WHERE " OWNER,
    [R_VER_BUMP] = ("INSERT INTO roster_version (domain, localpart, version) VALUES (?1, ?2, 1)"
                    " ON CONFLICT (domain, localpart) DO UPDATE SET version = version + 1"
                    " RETURNING version"),
    /* ?3 contact */
    [R_ITEM_EXISTS] = "SELECT 1 FROM roster_items WHERE " OWNER " AND contact = ?3",
    [R_ITEM_COUNT] = "SELECT count(*) FROM roster_items WHERE " OWNER,
    /* ?3 contact ?4 name ?5 subscription ?6 ask ?7 approved ?8 groups ?9 version */
    [R_ITEM_PUT] = ("INSERT INTO roster_items (domain, localpart, " ITEM_COLS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    " ON CONFLICT (domain, localpart, contact) DO UPDATE SET"
                    " name = excluded.name, subscription = excluded.subscription,"
                    " ask = excluded.ask, approved = excluded.approved,"
                    " group_names = excluded.group_names, version = excluded.version"),
    [R_ITEM_DELETE] = "DELETE FROM roster_items WHERE " OWNER " AND contact = ?3",
    [R_ITEM_GET] = "SELECT " ITEM_COLS " FROM roster_items WHERE " OWNER " AND contact = ?3",
    [R_ITEMS] = "SELECT " ITEM_COLS " FROM roster_items WHERE " OWNER,
    /* ?3 requester ?4 stanza ?5 received. A replaced request moves to the
     * end: it is the latest one. */
    [R_PEND_PUT] = ("INSERT INTO roster_pending (domain, localpart, contact, stanza, received, seq)"
                    " VALUES (?1, ?2, ?3, ?4, ?5,"
                    " (SELECT coalesce(max(seq), 0) + 1 FROM roster_pending WHERE " OWNER "))"
                    " ON CONFLICT (domain, localpart, contact) DO UPDATE SET"
                    " stanza = excluded.stanza, received = excluded.received,"
                    " seq = excluded.seq"),
    [R_PEND_DELETE] = "DELETE FROM roster_pending WHERE " OWNER " AND contact = ?3",
    [R_PEND_LIST] = "SELECT contact, stanza FROM roster_pending WHERE " OWNER " ORDER BY seq",
};

/* Statement <i>, reset, with the owner of <q> (and its contact, for the
 * statements that take one) bound. */
static sqlite3_stmt *rstmt(struct sz_sqlite_conn *c, enum rstmt i, const sz_store_req_t *q)
{
    sqlite3_stmt *s = sz_sqlite_owner_stmt(c, &c->roster[i], rsql[i], q);
    if (!s || !q)
        return s;
    if (sqlite3_bind_parameter_count(s) >= 3 && q->u.roster.contact.p)
        sqlite3_bind_text(s, 3, q->u.roster.contact.p, (int)q->u.roster.contact.len,
                          SQLITE_STATIC);
    return s;
}

/* Runs statement <i> that returns no rows; 0 or -errno. */
static int rrun(struct sz_sqlite_conn *c, enum rstmt i, const sz_store_req_t *q, const char *what)
{
    sqlite3_stmt *s = rstmt(c, i, q);
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, what, rc);
}

/* Runs statement <i> that returns at most one row of one integer: 1 and
 * *<v> set when there was a row, 0 when none, or -errno. */
static int rone(struct sz_sqlite_conn *c, enum rstmt i, const sz_store_req_t *q, const char *what,
                int64_t *v)
{
    sqlite3_stmt *s = rstmt(c, i, q);
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(s, 0);
        ret = 1;
        rc = sqlite3_step(s); /* to the end: RETURNING writes complete there */
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = sz_sqlite_fail(c, what, rc);
    sqlite3_reset(s);
    return ret;
}

/* Ends the transaction of a failed operation, if one is open. */
static void rollback(struct sz_sqlite_conn *c, const char *what)
{
    if (!sqlite3_get_autocommit(c->h))
        (void)rrun(c, R_ROLLBACK, NULL, what);
}

/* Current roster version of <q>'s owner into q->u.roster.ver (0 when it
 * never changed). */
static int read_ver(struct sz_sqlite_conn *c, sz_store_req_t *q, const char *what)
{
    int64_t v = 0;
    int ret = rone(c, R_VER_GET, q, what, &v);
    if (ret < 0)
        return ret;
    q->u.roster.ver = ret ? (uint64_t)v : 0;
    return 0;
}

/* Appends the item of the current row of <s> to <q>'s results. */
static int read_item(struct sz_sqlite_conn *c, sqlite3_stmt *s, sz_store_req_t *q)
{
    const char *jid = (const char *)sqlite3_column_text(s, 0);
    size_t jl = (size_t)sqlite3_column_bytes(s, 0);
    const char *name = NULL;
    size_t nl = 0;
    if (sqlite3_column_type(s, 1) != SQLITE_NULL) {
        name = (const char *)sqlite3_column_text(s, 1);
        nl = (size_t)sqlite3_column_bytes(s, 1);
        if (!name)
            name = "";
    }
    sqlite3_int64 sub = sqlite3_column_int64(s, 2);
    bool ask = sqlite3_column_int(s, 3) != 0;
    bool approved = sqlite3_column_int(s, 4) != 0;
    const char *groups = sqlite3_column_blob(s, 5);
    size_t gl = (size_t)sqlite3_column_bytes(s, 5);
    uint64_t ver = (uint64_t)sqlite3_column_int64(s, 6);
    int ret = -EIO;
    if (jid && sub >= 0 && sub <= SZ_STORE_SUB_BOTH)
        ret = sz_store_roster_add_item(q, jid, jl, name, nl, (unsigned)sub, ask, approved,
                                       groups ? groups : "", groups ? gl : 0, ver);
    if (ret < 0)
        SZ_ERROR("msg=\"storage: malformed roster row\" path=\"%s\" domain=\"%s\"", c->db->path,
                 q->domain.p);
    return ret;
}

/* Appends every row of <i> (R_ITEMS or R_ITEM_GET) to <q>'s results. */
static int read_items(struct sz_sqlite_conn *c, enum rstmt i, sz_store_req_t *q)
{
    sqlite3_stmt *s = rstmt(c, i, q);
    if (!s)
        return -EIO;
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
        ret = read_item(c, s, q);
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sz_sqlite_fail(c, "roster_get", rc);
    sqlite3_reset(s);
    return ret;
}

static int read_pending(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = rstmt(c, R_PEND_LIST, q);
    if (!s)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *from = (const char *)sqlite3_column_text(s, 0);
        size_t fl = (size_t)sqlite3_column_bytes(s, 0);
        const char *st = (const char *)sqlite3_column_text(s, 1);
        size_t sl = (size_t)sqlite3_column_bytes(s, 1);
        sz_store_roster_add_pending(q, from ? from : "", from ? fl : 0, st ? st : "", st ? sl : 0);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, "pending_list", rc);
}

/* The reads: version and items (get, get_item, login) and pending (list,
 * login) in one snapshot. */
static int roster_read(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "roster_get";
    int ret = rrun(c, R_BEGIN_READ, NULL, what);
    if (ret < 0)
        return ret;
    if (q->op != SZ_STORE_PENDING_LIST)
        ret = read_ver(c, q, what);
    if (ret == 0 && (q->op == SZ_STORE_ROSTER_GET || q->op == SZ_STORE_ROSTER_LOGIN))
        ret = read_items(c, R_ITEMS, q);
    if (ret == 0 && q->op == SZ_STORE_ROSTER_GET_ITEM) {
        ret = read_items(c, R_ITEM_GET, q);
        if (ret == 0 && q->u.roster.n == 0)
            ret = -ENOENT;
    }
    if (ret == 0 && (q->op == SZ_STORE_PENDING_LIST || q->op == SZ_STORE_ROSTER_LOGIN))
        ret = read_pending(c, q);
    /* Ending a read transaction cannot lose anything: just end it. */
    rollback(c, what);
    return ret;
}

/* Bumps the owner's version into q->u.roster.ver (inside a transaction). */
static int bump_ver(struct sz_sqlite_conn *c, sz_store_req_t *q, const char *what)
{
    int64_t v = 0;
    int ret = rone(c, R_VER_BUMP, q, what, &v);
    if (ret == 0)
        ret = -EIO; /* RETURNING always yields the row */
    if (ret < 0)
        return ret;
    q->u.roster.ver = (uint64_t)v;
    return 0;
}

/* Opens the write transaction of a write that needs the owner's account
 * (roster.h: no data outlives its account). Returns 0 inside the
 * transaction, or -errno with the transaction rolled back (-ENOENT: no
 * such account). */
static int begin_owned(struct sz_sqlite_conn *c, const sz_store_req_t *q, const char *what)
{
    int64_t v;
    int ret = rrun(c, R_BEGIN_WRITE, NULL, what);
    if (ret < 0)
        return ret;
    ret = rone(c, R_ACCT_EXISTS, q, what, &v);
    if (ret > 0)
        return 0;
    rollback(c, what);
    return ret == 0 ? -ENOENT : ret;
}

static int roster_put(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "roster_put";
    sqlite3_stmt *s;
    int64_t v;
    int rc;
    int ret = begin_owned(c, q, what);
    if (ret < 0)
        return ret;
    /* The limit counts the items there before this put, and only a new
     * contact can cross it. */
    if (q->u.roster.max_items) {
        ret = rone(c, R_ITEM_EXISTS, q, what, &v);
        if (ret == 0) {
            int64_t n = 0;
            ret = rone(c, R_ITEM_COUNT, q, what, &n);
            if (ret >= 0 && n >= (int64_t)q->u.roster.max_items)
                ret = -ENOSPC;
        }
        if (ret < 0)
            goto fail;
    }
    ret = bump_ver(c, q, what);
    if (ret < 0)
        goto fail;
    s = rstmt(c, R_ITEM_PUT, q);
    if (!s) {
        ret = -EIO;
        goto fail;
    }
    if (q->u.roster.name.p)
        sqlite3_bind_text(s, 4, q->u.roster.name.p, (int)q->u.roster.name.len, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, (int)q->u.roster.sub);
    sqlite3_bind_int(s, 6, q->u.roster.ask);
    sqlite3_bind_int(s, 7, q->u.roster.approved);
    /* A zero-length blob, not NULL, for no groups. */
    sqlite3_bind_blob(s, 8, q->u.roster.groups.p, (int)q->u.roster.groups.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, (sqlite3_int64)q->u.roster.ver);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ret = sz_sqlite_fail(c, what, rc);
        goto fail;
    }
    ret = rrun(c, R_COMMIT, NULL, what);
    if (ret == 0)
        return 0;
fail:
    rollback(c, what);
    return ret;
}

static int roster_remove(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "roster_remove";
    int ret = rrun(c, R_BEGIN_WRITE, NULL, what);
    if (ret < 0)
        return ret;
    ret = rrun(c, R_ITEM_DELETE, q, what);
    if (ret == 0 && sqlite3_changes(c->h) == 0) {
        /* Nothing removed, nothing bumped: report the current version. */
        ret = read_ver(c, q, what);
        if (ret == 0)
            ret = -ENOENT;
        goto fail;
    }
    if (ret == 0)
        ret = bump_ver(c, q, what);
    if (ret == 0)
        ret = rrun(c, R_COMMIT, NULL, what);
    if (ret == 0)
        return 0;
fail:
    rollback(c, what);
    return ret;
}

static int pending_add(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    const char *what = "pending_add";
    sqlite3_stmt *s;
    int rc;
    int ret = begin_owned(c, q, what);
    if (ret < 0)
        return ret;
    s = rstmt(c, R_PEND_PUT, q);
    if (!s) {
        ret = -EIO;
        goto fail;
    }
    sqlite3_bind_text(s, 4, q->u.roster.stanza.p, (int)q->u.roster.stanza.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    ret = rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, what, rc);
    if (ret == 0)
        ret = rrun(c, R_COMMIT, NULL, what);
    if (ret == 0)
        return 0;
fail:
    rollback(c, what);
    return ret;
}

static int pending_remove(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    int ret = rrun(c, R_PEND_DELETE, q, "pending_remove");
    if (ret == 0 && sqlite3_changes(c->h) == 0)
        ret = -ENOENT;
    return ret;
}

bool sz_sqlite_roster_exec(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    switch (q->op) {
    case SZ_STORE_ROSTER_GET:
    case SZ_STORE_ROSTER_GET_ITEM:
    case SZ_STORE_PENDING_LIST:
    case SZ_STORE_ROSTER_LOGIN:
        q->res = roster_read(c, q);
        return true;
    case SZ_STORE_ROSTER_PUT:
        q->res = roster_put(c, q);
        return true;
    case SZ_STORE_ROSTER_REMOVE:
        q->res = roster_remove(c, q);
        return true;
    case SZ_STORE_PENDING_ADD:
        q->res = pending_add(c, q);
        return true;
    case SZ_STORE_PENDING_REMOVE:
        q->res = pending_remove(c, q);
        return true;
    default:
        return false;
    }
}
