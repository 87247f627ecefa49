/*
 * SQLite backend. One connection per storage worker (opened on the thread
 * that opens the store, then used by that worker only: SQLITE_OPEN_NOMUTEX),
 * each with its prepared statements cached for the life of the connection.
 *
 * Durability and concurrency: WAL journal with synchronous=NORMAL (a
 * committed write survives a crash of the process; a power loss may lose
 * the last transactions, never corrupt the file), foreign keys on, and a
 * busy timeout so that stanzactl and stanzad can write the same file at the
 * same time: writers queue on SQLite's lock instead of failing. Writes that
 * span statements start with BEGIN IMMEDIATE, so they take the write lock
 * (through the busy handler) before reading anything and never hit the
 * deferred-upgrade deadlock.
 *
 * Schema: table schema_version holds one row per applied migration; the
 * migrations below run in order, once, inside one write transaction at
 * open, so two processes opening a new file at once cannot both apply them.
 *
 * This file holds open, schema and accounts; the roster operations are in
 * sqlite_roster.c (shared internals: sqlite_int.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/mem.h"
#include "storage/backend.h"
#include "storage/sqlite_int.h"

/* ---- schema ---------------------------------------------------------------- */

/* Migration i (1-based) is migrations[i - 1]. Never edit a released one:
 * add the next. Account keys are the normalized JID parts (core/jid). */
static const char *const migrations[] = {
    /* 1: accounts, with SCRAM credentials per hash (NULL = none stored) */
    "CREATE TABLE accounts ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " created INTEGER NOT NULL," /* unix seconds */
    " sha1_salt BLOB, sha1_iterations INTEGER, sha1_stored_key BLOB, sha1_server_key BLOB,"
    " sha256_salt BLOB, sha256_iterations INTEGER, sha256_stored_key BLOB,"
    " sha256_server_key BLOB,"
    " sha512_salt BLOB, sha512_iterations INTEGER, sha512_stored_key BLOB,"
    " sha512_server_key BLOB,"
    " PRIMARY KEY (domain, localpart)"
    ");",
    /* 2: rosters (RFC 6121 §2, XEP-0237 versions) and pending inbound
     * subscription requests (§3.1.3). Keyed by the owner's account first,
     * so a user's rows are one range of each primary key (no scan of other
     * users), and deleted with the account by the cascade, in the DELETE's
     * own transaction: no row outlives its account. */
    "CREATE TABLE roster_version ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " version INTEGER NOT NULL," /* bumped by every item change */
    " PRIMARY KEY (domain, localpart),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster_items ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " contact TEXT NOT NULL," /* normalized bare JID */
    " name TEXT,"             /* NULL: no name attribute */
    " subscription INTEGER NOT NULL CHECK (subscription BETWEEN 0 AND 3),"
    " ask INTEGER NOT NULL,"
    " approved INTEGER NOT NULL,"
    " group_names BLOB NOT NULL," /* in order, each followed by a NUL byte */
    " version INTEGER NOT NULL," /* roster version of the last change */
    " PRIMARY KEY (domain, localpart, contact),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster_pending ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " contact TEXT NOT NULL," /* requester's bare JID */
    " stanza TEXT NOT NULL,"
    " received INTEGER NOT NULL," /* unix seconds */
    " seq INTEGER NOT NULL,"      /* per owner, order of arrival */
    " PRIMARY KEY (domain, localpart, contact),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ") WITHOUT ROWID;",
    /* vCards (XEP-0054) and private XML (XEP-0049): opaque documents per
     * account, family and name (storage/xmlstore.h); a rowid table, as
     * documents may be tens of KiB. Last activity (XEP-0012): one record
     * per account (storage/last.h). Both go with their account. */
    "CREATE TABLE xml_docs ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " kind INTEGER NOT NULL," /* enum sz_store_xml_kind */
    " name TEXT NOT NULL,"    /* "" for the vCard, the namespace for private XML */
    " data BLOB NOT NULL,"    /* serialized XML, exactly as written */
    " PRIMARY KEY (domain, localpart, kind, name),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ");"
    "CREATE TABLE last_activity ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " logout INTEGER NOT NULL," /* unix seconds */
    " status TEXT,"             /* NULL: none */
    " PRIMARY KEY (domain, localpart),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ") WITHOUT ROWID;",
    /* 4: blocklists (XEP-0191): the JIDs each account blocks, keyed by the
     * owner's account first and deleted with it by the cascade. */
    "CREATE TABLE blocklist ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " jid TEXT NOT NULL," /* domain, bare or full JID, normalized */
    " PRIMARY KEY (domain, localpart, jid),"
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ") WITHOUT ROWID;",
    /* 5: offline messages (XEP-0160, storage/offline.h): the queue of each
     * account in order of arrival. 'id' never repeats (AUTOINCREMENT), so
     * deleting "up to the last one read" cannot take a message stored
     * after the read; the index keys every access by the owner first.
     * They go with their account. */
    "CREATE TABLE offline_messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " stanza BLOB NOT NULL," /* the message with its <delay/>, self-contained XML */
    " FOREIGN KEY (domain, localpart) REFERENCES accounts (domain, localpart)"
    "  ON DELETE CASCADE"
    ");"
    "CREATE INDEX offline_messages_owner ON offline_messages (domain, localpart, id);",
};

#define SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The credential columns, in enum sz_hash order, as used by every
 * statement below (4 per hash). */
#define CRED_COLS                                                                                  \
    "sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, "                               \
    "sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, "                       \
    "sha512_salt, sha512_iterations, sha512_stored_key, sha512_server_key"

enum stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_ACCT_INSERT,
    ST_ACCT_DELETE,
    ST_ACCT_UPDATE,
    ST_ACCT_GET,
    ST_ACCT_LIST,
    ST_ACCT_COUNT,
    ST_ACCT_COUNT_ALL,
    ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* ?1 domain ?2 localpart ?3 created ?4..?15 creds */
    [ST_ACCT_INSERT] = ("INSERT INTO accounts (domain, localpart, created, " CRED_COLS ")"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                        " ON CONFLICT (domain, localpart) DO NOTHING"),
    [ST_ACCT_DELETE] = "DELETE FROM accounts WHERE domain = ?1 AND localpart = ?2",
    [ST_ACCT_UPDATE] = ("UPDATE accounts SET"
                        " sha1_salt = ?4, sha1_iterations = ?5, sha1_stored_key = ?6,"
                        " sha1_server_key = ?7, sha256_salt = ?8, sha256_iterations = ?9,"
                        " sha256_stored_key = ?10, sha256_server_key = ?11, sha512_salt = ?12,"
                        " sha512_iterations = ?13, sha512_stored_key = ?14,"
                        " sha512_server_key = ?15"
                        " WHERE domain = ?1 AND localpart = ?2"),
    [ST_ACCT_GET] = "SELECT " CRED_COLS " FROM accounts WHERE domain = ?1 AND localpart = ?2",
    [ST_ACCT_LIST] = ("SELECT localpart FROM accounts WHERE domain = ?1 AND localpart > ?2"
                      " ORDER BY localpart LIMIT ?3"),
    [ST_ACCT_COUNT] = "SELECT count(*) FROM accounts WHERE domain = ?1",
    [ST_ACCT_COUNT_ALL] = "SELECT count(*) FROM accounts",
};

_Static_assert(ST_COUNT <= SZ_SQLITE_ACCT_STMTS, "raise SZ_SQLITE_ACCT_STMTS");

/* ---- helpers ------------------------------------------------------------- */

int sz_sqlite_map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

sqlite3_stmt *sz_sqlite_stmt(struct sz_sqlite_conn *c, sqlite3_stmt **slot, const char *text)
{
    sqlite3_stmt *s = *slot;
    if (!s) {
        int rc = sqlite3_prepare_v3(c->h, text, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK) {
            SZ_ERROR("msg=\"storage: cannot prepare statement\" path=\"%s\" err=\"%s\"",
                     c->db->path, sqlite3_errmsg(c->h));
            return NULL;
        }
        return *slot;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

sqlite3_stmt *sz_sqlite_owner_stmt(struct sz_sqlite_conn *c, sqlite3_stmt **slot, const char *text,
                                   const sz_store_req_t *q)
{
    sqlite3_stmt *s = sz_sqlite_stmt(c, slot, text);
    if (!s || !q)
        return s;
    sqlite3_bind_text(s, 1, q->domain.p, (int)q->domain.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, q->local.p, (int)q->local.len, SQLITE_STATIC);
    return s;
}

/* The cached account statement <i> of <c>. */
static sqlite3_stmt *stmt(struct sz_sqlite_conn *c, enum stmt i)
{
    return sz_sqlite_stmt(c, &c->acct[i], sql[i]);
}

int sz_sqlite_fail(struct sz_sqlite_conn *c, const char *what, int rc)
{
    int e = sz_sqlite_map_rc(rc);
    if (e == -EBUSY)
        SZ_WARN("msg=\"storage: database busy\" op=%s path=\"%s\"", what, c->db->path);
    else if (e != -EEXIST)
        SZ_ERROR("msg=\"storage: query failed\" op=%s path=\"%s\" err=\"%s\"", what, c->db->path,
                 sqlite3_errmsg(c->h));
    return e;
}

/* Runs a statement that returns no rows. */
static int run(struct sz_sqlite_conn *c, enum stmt i, const char *what)
{
    sqlite3_stmt *s = stmt(c, i);
    if (!s)
        return -EIO;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sz_sqlite_fail(c, what, rc);
}

static void bind_key(sqlite3_stmt *s, const sz_store_str_t *domain, const sz_store_str_t *local)
{
    sqlite3_bind_text(s, 1, domain->p, (int)domain->len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, local->p, (int)local->len, SQLITE_STATIC);
}

static void bind_creds(sqlite3_stmt *s, const sz_scram_creds_t *cr)
{
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        const sz_scram_cred_t *x = &cr->h[h];
        int col = 4 + 4 * h;
        if (x->key_len == 0)
            continue; /* unbound parameters are NULL: no credentials for this hash */
        sqlite3_bind_blob(s, col, x->salt, x->salt_len, SQLITE_STATIC);
        sqlite3_bind_int64(s, col + 1, x->iterations);
        sqlite3_bind_blob(s, col + 2, x->stored_key, x->key_len, SQLITE_STATIC);
        sqlite3_bind_blob(s, col + 3, x->server_key, x->key_len, SQLITE_STATIC);
    }
}

/* Reads the 12 credential columns of the current row. -EIO on a row that
 * does not fit sz_scram_cred_t (corrupt or foreign data). */
static int read_creds(sqlite3_stmt *s, sz_scram_creds_t *cr)
{
    memset(cr, 0, sizeof(*cr));
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        int col = 4 * h;
        if (sqlite3_column_type(s, col + 2) == SQLITE_NULL)
            continue;
        sz_scram_cred_t *x = &cr->h[h];
        int sl = sqlite3_column_bytes(s, col);
        int kl = sqlite3_column_bytes(s, col + 2);
        int vl = sqlite3_column_bytes(s, col + 3);
        sqlite3_int64 it = sqlite3_column_int64(s, col + 1);
        if (sl < 0 || sl > SZ_SCRAM_SALT_MAX || kl <= 0 || kl > SZ_SCRAM_KEY_MAX || vl != kl ||
            it <= 0 || it > UINT32_MAX)
            return -EIO;
        const void *salt = sqlite3_column_blob(s, col);
        if (sl)
            memcpy(x->salt, salt, (size_t)sl);
        memcpy(x->stored_key, sqlite3_column_blob(s, col + 2), (size_t)kl);
        memcpy(x->server_key, sqlite3_column_blob(s, col + 3), (size_t)kl);
        x->salt_len = (uint8_t)sl;
        x->key_len = (uint8_t)kl;
        x->iterations = (uint32_t)it;
    }
    return 0;
}

/* ---- account operations (worker thread) ---------------------------------- */

/* One INSERT; 0, -EEXIST or an error. */
static int insert_account(struct sz_sqlite_conn *c, const sz_store_str_t *domain, const sz_store_str_t *local,
                          const sz_scram_creds_t *cr, int64_t now)
{
    sqlite3_stmt *s = stmt(c, ST_ACCT_INSERT);
    if (!s)
        return -EIO;
    bind_key(s, domain, local);
    sqlite3_bind_int64(s, 3, now);
    bind_creds(s, cr);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sz_sqlite_fail(c, "account_create", rc);
    return sqlite3_changes(c->h) == 1 ? 0 : -EEXIST;
}

static void acct_create_many(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    int ret = run(c, ST_BEGIN, "account_create_many");
    if (ret < 0) {
        q->res = ret;
        return;
    }
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < q->u.many.n; i++) {
        sz_store_new_account_t *it = &q->u.many.items[i];
        size_t ll, dl;
        sz_store_str_t local, domain;
        local.p = sz_jid_local(it->jid, &ll);
        local.len = ll;
        domain.p = sz_jid_domain(it->jid, &dl);
        domain.len = dl;
        ret = insert_account(c, &domain, &local, it->creds, now);
        if (ret < 0 && ret != -EEXIST)
            goto rollback;
        it->res = ret;
    }
    ret = run(c, ST_COMMIT, "account_create_many");
    if (ret == 0) {
        q->res = 0;
        return;
    }
rollback:
    /* Nothing of the batch was written: say so in every item. */
    (void)run(c, ST_ROLLBACK, "account_create_many");
    for (size_t i = 0; i < q->u.many.n; i++)
        q->u.many.items[i].res = ret;
    q->res = ret;
}

/* DELETE or UPDATE of one account: -ENOENT when no row matched. */
static int change_account(struct sz_sqlite_conn *c, enum stmt i, const sz_store_req_t *q, const char *what)
{
    sqlite3_stmt *s = stmt(c, i);
    if (!s)
        return -EIO;
    bind_key(s, &q->domain, &q->local);
    if (i == ST_ACCT_UPDATE)
        bind_creds(s, &q->u.acct.creds);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sz_sqlite_fail(c, what, rc);
    return sqlite3_changes(c->h) > 0 ? 0 : -ENOENT;
}

static int acct_get(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = stmt(c, ST_ACCT_GET);
    if (!s)
        return -EIO;
    bind_key(s, &q->domain, &q->local);
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_ROW) {
        ret = read_creds(s, &q->u.acct.creds);
        if (ret < 0)
            SZ_ERROR("msg=\"storage: malformed credentials row\" path=\"%s\" domain=\"%s\"",
                     c->db->path, q->domain.p);
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = sz_sqlite_fail(c, "account_get_creds", rc);
    }
    sqlite3_reset(s);
    return ret;
}

static int acct_list(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = stmt(c, ST_ACCT_LIST);
    if (!s)
        return -EIO;
    sqlite3_bind_text(s, 1, q->domain.p, (int)q->domain.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, q->u.list.after.p, (int)q->u.list.after.len, SQLITE_STATIC);
    /* One row more than asked tells whether another page follows. */
    sqlite3_bind_int64(s, 3, (sqlite3_int64)q->u.list.limit + 1);
    q->u.list.names = sz_calloc(q->u.list.limit, sizeof(char *));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (q->u.list.n == q->u.list.limit) {
            q->u.list.more = true;
            break;
        }
        const char *name = (const char *)sqlite3_column_text(s, 0);
        int len = sqlite3_column_bytes(s, 0);
        q->u.list.names[q->u.list.n++] = sz_strndup(name ? name : "", (size_t)len);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sz_sqlite_fail(c, "account_list", rc);
    return 0;
}

static int acct_count(struct sz_sqlite_conn *c, sz_store_req_t *q)
{
    sqlite3_stmt *s = stmt(c, q->domain.p ? ST_ACCT_COUNT : ST_ACCT_COUNT_ALL);
    if (!s)
        return -EIO;
    if (q->domain.p)
        sqlite3_bind_text(s, 1, q->domain.p, (int)q->domain.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        q->u.count.n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sz_sqlite_fail(c, "account_count", rc);
}

static void exec(void *conn, sz_store_req_t *q)
{
    struct sz_sqlite_conn *c = conn;
    switch (q->op) {
    case SZ_STORE_ACCOUNT_CREATE:
        q->res = insert_account(c, &q->domain, &q->local, &q->u.acct.creds, (int64_t)time(NULL));
        break;
    case SZ_STORE_ACCOUNT_CREATE_MANY:
        acct_create_many(c, q);
        break;
    case SZ_STORE_ACCOUNT_DELETE:
        q->res = change_account(c, ST_ACCT_DELETE, q, "account_delete");
        break;
    case SZ_STORE_ACCOUNT_SET_CREDS:
        q->res = change_account(c, ST_ACCT_UPDATE, q, "account_set_creds");
        break;
    case SZ_STORE_ACCOUNT_GET_CREDS:
        q->res = acct_get(c, q);
        break;
    case SZ_STORE_ACCOUNT_LIST:
        q->res = acct_list(c, q);
        break;
    case SZ_STORE_ACCOUNT_COUNT:
        q->res = acct_count(c, q);
        break;
    default:
        if (!sz_sqlite_roster_exec(c, q) && !sz_sqlite_xml_exec(c, q) &&
            !sz_sqlite_last_exec(c, q) && !sz_sqlite_blocklist_exec(c, q) &&
            !sz_sqlite_offline_exec(c, q))
            q->res = -EOPNOTSUPP;
        break;
    }
}

/* ---- open, migrate --------------------------------------------------------- */

/* Checks <path> before SQLite does, to say which part of it is wrong:
 * SQLite's own "unable to open database file" names nothing. */
static int check_path(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        snprintf(err, errlen, "storage.path: empty");
        return -EINVAL;
    }
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "storage.path: directory %s %s (for %s)", dir,
                 e == ENOENT ? "does not exist" : strerror(e), path);
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "storage.path: %s is not a directory (for %s)", dir, path);
        return -ENOTDIR;
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "storage.path: %s is a directory, not a database file", path);
            return -EISDIR;
        }
        if (access(path, R_OK | W_OK) < 0) {
            int e = errno;
            snprintf(err, errlen, "storage.path: %s is not writable: %s", path, strerror(e));
            return -e;
        }
    }
    /* WAL keeps <path>-wal and <path>-shm beside the file. */
    if (access(dir, W_OK | X_OK) < 0) {
        int e = errno;
        snprintf(err, errlen,
                 "storage.path: directory %s is not writable (%s); the database %s and its "
                 "-wal and -shm files live there",
                 dir, strerror(e), path);
        return -e;
    }
    return 0;
}

/* Runs <text> (no results wanted) on <h>; on failure writes the message. */
static int exec_sql(sqlite3 *h, const char *path, const char *text, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(h, text, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    if ((rc & 0xff) == SQLITE_NOTADB)
        snprintf(err, errlen, "storage.path: %s is not an SQLite database", path);
    else
        snprintf(err, errlen, "storage: %s: %s", path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return sz_sqlite_map_rc(rc) ? sz_sqlite_map_rc(rc) : -EIO;
}

/* Opens a connection with the per-connection settings. */
static int open_conn(struct sz_sqlite_db *db, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *h = NULL;
    int rc = sqlite3_open_v2(
        db->path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "storage.path: cannot open %s: %s", db->path,
                 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        sqlite3_close(h);
        return sz_sqlite_map_rc(rc) ? sz_sqlite_map_rc(rc) : -EIO;
    }
    sqlite3_extended_result_codes(h, 1);
    sqlite3_busy_timeout(h, (int)db->busy_ms);
    /* journal_mode is stored in the file; the others are per connection. */
    int ret = exec_sql(h, db->path,
                       "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                       " PRAGMA foreign_keys = ON;",
                       err, errlen);
    if (ret == 0) {
        sqlite3_stmt *s = NULL;
        bool wal = false;
        if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            wal = strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
        sqlite3_finalize(s);
        if (!wal) {
            snprintf(err, errlen, "storage.path: %s: cannot switch to WAL journal mode", db->path);
            ret = -EIO;
        }
    }
    if (ret < 0) {
        sqlite3_close(h);
        return ret;
    }
    *out = h;
    return 0;
}

static int schema_version(sqlite3 *h, int *v)
{
    sqlite3_stmt *s = NULL;
    int rc =
        sqlite3_prepare_v2(h, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        *v = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Brings the schema to SCHEMA_LATEST in one write transaction. */
static int migrate(struct sz_sqlite_db *db, sqlite3 *h, char *err, size_t errlen)
{
    int ret = exec_sql(h, db->path, "BEGIN IMMEDIATE", err, errlen);
    if (ret < 0)
        return ret;
    ret = exec_sql(h, db->path,
                   "CREATE TABLE IF NOT EXISTS schema_version ("
                   " version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
                   err, errlen);
    int v = 0;
    if (ret == 0 && schema_version(h, &v) != SQLITE_OK) {
        snprintf(err, errlen, "storage: %s: cannot read schema_version: %s", db->path,
                 sqlite3_errmsg(h));
        ret = -EIO;
    }
    if (ret == 0 && v > SCHEMA_LATEST) {
        snprintf(err, errlen,
                 "storage: %s has schema version %d, newer than this build knows (%d): "
                 "upgrade stanzad",
                 db->path, v, SCHEMA_LATEST);
        ret = -EPROTO;
    }
    for (int i = v; ret == 0 && i < SCHEMA_LATEST; i++) {
        ret = exec_sql(h, db->path, migrations[i], err, errlen);
        if (ret < 0)
            break;
        char ins[128];
        snprintf(ins, sizeof(ins), "INSERT INTO schema_version VALUES (%d, %lld)", i + 1,
                 (long long)time(NULL));
        ret = exec_sql(h, db->path, ins, err, errlen);
        if (ret == 0)
            SZ_INFO("msg=\"storage: schema migrated\" path=\"%s\" version=%d", db->path, i + 1);
    }
    if (ret == 0)
        ret = exec_sql(h, db->path, "COMMIT", err, errlen);
    if (ret < 0)
        (void)sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

static void db_close(void *p)
{
    struct sz_sqlite_db *db = p;
    if (!db)
        return;
    sz_free(db->path);
    sz_free(db);
}

static int db_open(const sz_store_opts_t *o, void **out, char *err, size_t errlen)
{
    int ret = check_path(o->path, err, errlen);
    if (ret < 0)
        return ret;
    struct sz_sqlite_db *db = sz_calloc(1, sizeof(*db));
    db->path = sz_strdup(o->path);
    db->busy_ms = o->busy_ms ? o->busy_ms : SZ_STORE_BUSY_MS_DEFAULT;
    sqlite3 *h = NULL;
    ret = open_conn(db, &h, err, errlen);
    if (ret == 0)
        ret = migrate(db, h, err, errlen);
    sqlite3_close(h);
    if (ret < 0) {
        db_close(db);
        return ret;
    }
    *out = db;
    return 0;
}

static int conn_open(void *p, void **out, char *err, size_t errlen)
{
    struct sz_sqlite_db *db = p;
    struct sz_sqlite_conn *c = sz_calloc(1, sizeof(*c));
    c->db = db;
    int ret = open_conn(db, &c->h, err, errlen);
    if (ret < 0) {
        sz_free(c);
        return ret;
    }
    *out = c;
    return 0;
}

static void conn_close(void *p)
{
    struct sz_sqlite_conn *c = p;
    for (int i = 0; i < SZ_SQLITE_ACCT_STMTS; i++)
        sqlite3_finalize(c->acct[i]);
    for (int i = 0; i < SZ_SQLITE_ROSTER_STMTS; i++)
        sqlite3_finalize(c->roster[i]);
    for (int i = 0; i < SZ_SQLITE_BLOCKLIST_STMTS; i++)
        sqlite3_finalize(c->blocklist[i]);
    for (int i = 0; i < SZ_SQLITE_XML_STMTS; i++)
        sqlite3_finalize(c->xml[i]);
    for (int i = 0; i < SZ_SQLITE_LAST_STMTS; i++)
        sqlite3_finalize(c->last[i]);
    for (int i = 0; i < SZ_SQLITE_OFFLINE_STMTS; i++)
        sqlite3_finalize(c->offline[i]);
    /* The last connection to close checkpoints the WAL into the file. */
    sqlite3_close(c->h);
    sz_free(c);
}

const sz_store_backend_t sz_store_sqlite = {
    .name = "sqlite",
    .open = db_open,
    .close = db_close,
    .conn_open = conn_open,
    .conn_close = conn_close,
    .exec = exec,
};
