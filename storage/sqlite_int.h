/*
 * Internals shared by the files of the SQLite backend (sqlite.c: open,
 * schema, accounts; sqlite_roster.c: rosters). Private to storage/.
 * A connection belongs to one worker thread between conn_open and
 * conn_close; every function here runs on that thread.
 */
#ifndef SZ_STORAGE_SQLITE_INT_H
#define SZ_STORAGE_SQLITE_INT_H

#include <sqlite3.h>

#include "storage/backend.h"

/* Cached statement slots per connection, per file (each file checks its
 * own count against these). */
#define SZ_SQLITE_ACCT_STMTS   16
#define SZ_SQLITE_ROSTER_STMTS 24
#define SZ_SQLITE_BLOCKLIST_STMTS 12
#define SZ_SQLITE_XML_STMTS    8
#define SZ_SQLITE_LAST_STMTS   4
#define SZ_SQLITE_OFFLINE_STMTS 8

struct sz_sqlite_db {
    char *path;
    unsigned busy_ms;
};

struct sz_sqlite_conn {
    sqlite3 *h;
    struct sz_sqlite_db *db;
    sqlite3_stmt *acct[SZ_SQLITE_ACCT_STMTS];     /* sqlite.c's, prepared on first use */
    sqlite3_stmt *roster[SZ_SQLITE_ROSTER_STMTS]; /* sqlite_roster.c's */
    sqlite3_stmt *blocklist[SZ_SQLITE_BLOCKLIST_STMTS]; /* sqlite_blocklist.c's */
    sqlite3_stmt *xml[SZ_SQLITE_XML_STMTS];       /* sqlite_xmlstore.c's */
    sqlite3_stmt *last[SZ_SQLITE_LAST_STMTS];     /* sqlite_last.c's */
    sqlite3_stmt *offline[SZ_SQLITE_OFFLINE_STMTS]; /* sqlite_offline.c's */
};

/* Maps an SQLite result code to 0 or -errno. */
int sz_sqlite_map_rc(int rc);

/* The statement cached in *<slot> (prepared from <text> on first use),
 * reset and unbound; NULL on a prepare failure (logged). */
sqlite3_stmt *sz_sqlite_stmt(struct sz_sqlite_conn *c, sqlite3_stmt **slot, const char *text);

/* sz_sqlite_stmt(), then the owner account of <q> bound as ?1 (domain)
 * and ?2 (localpart) when <q> is not NULL: every per-account statement
 * of the backend files starts "WHERE domain = ?1 AND localpart = ?2". */
sqlite3_stmt *sz_sqlite_owner_stmt(struct sz_sqlite_conn *c, sqlite3_stmt **slot, const char *text,
                                   const sz_store_req_t *q);

/* Logs a failed step of operation <what> (busy is expected under load:
 * a warning) and maps <rc>. */
int sz_sqlite_fail(struct sz_sqlite_conn *c, const char *what, int rc);

/* Runs a request of the roster family (storage/roster.h ops); returns
 * false when <q> is not one. */
bool sz_sqlite_roster_exec(struct sz_sqlite_conn *c, sz_store_req_t *q);

/* Runs a request of the blocklist family (storage/blocklist.h ops);
 * returns false when <q> is not one. */
bool sz_sqlite_blocklist_exec(struct sz_sqlite_conn *c, sz_store_req_t *q);
/* The same for storage/xmlstore.h and storage/last.h requests. */
bool sz_sqlite_xml_exec(struct sz_sqlite_conn *c, sz_store_req_t *q);
bool sz_sqlite_last_exec(struct sz_sqlite_conn *c, sz_store_req_t *q);
bool sz_sqlite_offline_exec(struct sz_sqlite_conn *c, sz_store_req_t *q);

#endif
