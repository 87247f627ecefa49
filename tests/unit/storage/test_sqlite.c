/*
 * Tests for the schema migrations of storage/sqlite.c on files an older
 * build wrote: a schema-1 file (accounts only) is upgraded in place to
 * the current schema, also when other processes open it at the same
 * moment; its accounts survive with their credentials, and the tables of
 * the new migrations work for them. (A new file and a file newer than the
 * build are in test_store.c.)
 *
 * Child mode: "test_storage_sqlite --child-open PATH GO" waits until the
 * file GO exists, then opens PATH (which migrates it) and closes it: the
 * other processes of the migration race.
 */
#include "storage/store.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "storage/roster.h"
#include "sz_test.h"

extern char **environ;

static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------ */

static sz_jid_t *jid(const char *s)
{
    sz_jid_t *j = NULL;
    if (sz_jid_parse(s, strlen(s), &j) < 0)
        return NULL;
    return j;
}

/* Credentials for SHA-256 only; <seed> makes them distinguishable. */
static void fake_creds(sz_scram_creds_t *c, uint8_t seed)
{
    memset(c, 0, sizeof(*c));
    sz_scram_cred_t *x = &c->h[SZ_HASH_SHA256];
    x->iterations = 4096;
    x->salt_len = 16;
    x->key_len = 32;
    for (int i = 0; i < 32; i++) {
        x->salt[i % 16] = (uint8_t)(seed + i);
        x->stored_key[i] = (uint8_t)(seed * 3 + i);
        x->server_key[i] = (uint8_t)(seed * 7 + i);
    }
}

static sz_store_t *open_at(const char *path, unsigned workers)
{
    char err[512] = "";
    sz_store_opts_t o = {.path = path, .workers = workers};
    sz_store_t *s = NULL;
    if (sz_store_open(&o, &s, err, sizeof(err)) < 0)
        printf("# open %s: %s\n", path, err);
    return s;
}

static void on_done(void *arg, int res)
{
    *(int *)arg = res;
}

static void on_ver(void *arg, int res, uint64_t ver)
{
    *(int64_t *)arg = res == 0 ? (int64_t)ver : res;
}

static void on_roster(void *arg, int res, const sz_store_roster_t *ro)
{
    *(int64_t *)arg = res == 0 ? (int64_t)ro->n : res;
}

/* Rows of <table> for owner <local>@<domain>, read with SQLite directly. */
static int rows_of(const char *path, const char *table, const char *local, const char *domain)
{
    sqlite3 *h = NULL;
    int n = -1;
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE localpart = ?1 AND domain = ?2", table);
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

/* ---- schema 1 ----------------------------------------------------------- */

/* Schema 1 exactly as the build before rosters created it (sqlite.c's
 * migration 1 and its schema_version table). */
static const char *const schema1 =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL);"
    "CREATE TABLE accounts ("
    " domain TEXT NOT NULL,"
    " localpart TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " sha1_salt BLOB, sha1_iterations INTEGER, sha1_stored_key BLOB, sha1_server_key BLOB,"
    " sha256_salt BLOB, sha256_iterations INTEGER, sha256_stored_key BLOB,"
    " sha256_server_key BLOB,"
    " sha512_salt BLOB, sha512_iterations INTEGER, sha512_stored_key BLOB,"
    " sha512_server_key BLOB,"
    " PRIMARY KEY (domain, localpart)"
    ");"
    "INSERT INTO schema_version VALUES (1, 1700000000);";

/* Writes a schema-1 file at <path> with <n> accounts old<i>@old.example,
 * credentials (SHA-256 only) from fake_creds(i + 1). */
static int make_v1(const char *path, int n)
{
    sqlite3 *h = NULL;
    if (sqlite3_open(path, &h) != SQLITE_OK)
        return -1;
    int ok = sqlite3_exec(h, schema1, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_stmt *st = NULL;
    ok = ok && sqlite3_prepare_v2(h,
                                  "INSERT INTO accounts (domain, localpart, created, sha256_salt,"
                                  " sha256_iterations, sha256_stored_key, sha256_server_key)"
                                  " VALUES ('old.example', ?1, 1700000000, ?2, ?3, ?4, ?5)",
                                  -1, &st, NULL) == SQLITE_OK;
    for (int i = 0; ok && i < n; i++) {
        char l[32];
        snprintf(l, sizeof(l), "old%d", i);
        sz_scram_creds_t c;
        fake_creds(&c, (uint8_t)(i + 1));
        const sz_scram_cred_t *x = &c.h[SZ_HASH_SHA256];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, l, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, x->salt, x->salt_len, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, (int)x->iterations);
        sqlite3_bind_blob(st, 4, x->stored_key, x->key_len, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 5, x->server_key, x->key_len, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return ok ? 0 : -1;
}

/* Whether the applied migrations <vs> are 1, 2 and then only later ones
 * (their number grows with the schema). */
static bool upgraded(const char *vs)
{
    return strncmp(vs, "1,2", 3) == 0 && (vs[3] == '\0' || vs[3] == ',');
}

/* The applied migrations of <path>, as a string "1,2". */
static void versions_of(const char *path, char *out, size_t cap)
{
    sqlite3 *h = NULL;
    out[0] = '\0';
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT version FROM schema_version ORDER BY version", -1, &st,
                               NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW) {
                size_t l = strlen(out);
                snprintf(out + l, cap - l, "%s%d", l ? "," : "", sqlite3_column_int(st, 0));
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
}

static void on_creds(void *arg, int res, const sz_scram_creds_t *c)
{
    sz_scram_creds_t *out = arg;
    memset(out, 0, sizeof(*out));
    if (res == 0 && c)
        *out = *c;
}

static void on_count(void *arg, int res, uint64_t n)
{
    *(int64_t *)arg = res == 0 ? (int64_t)n : res;
}

static pid_t spawn_open(const char *path, const char *go)
{
    char *argv[] = {(char *)"/proc/self/exe", (char *)"--child-open", (char *)path, (char *)go,
                    NULL};
    pid_t pid = -1;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        return -1;
    return pid;
}

SZ_TEST(migrate_from_schema1)
{
    enum { N = 50 };
    char p[600], vs[64];
    snprintf(p, sizeof(p), "%s/v1.db", tmpdir);
    SZ_CHECK_INT(make_v1(p, N), 0);
    versions_of(p, vs, sizeof(vs));
    SZ_CHECK_STR(vs, "1");

    /* Other processes open (and so migrate) the file at the same moment
     * as this one (they start when the file <go> appears): all succeed,
     * and exactly one of them applies migration 2. */
    enum { KIDS = 4 };
    char go[600];
    snprintf(go, sizeof(go), "%s/v1.go", tmpdir);
    pid_t kid[KIDS];
    for (int i = 0; i < KIDS; i++)
        kid[i] = spawn_open(p, go);
    usleep(300 * 1000); /* let them start and wait */
    FILE *f = fopen(go, "w");
    if (f)
        fclose(f);
    sz_store_t *s = open_at(p, 2);
    SZ_CHECK(s != NULL);
    for (int i = 0; i < KIDS; i++) {
        int st = -1;
        if (kid[i] > 0)
            waitpid(kid[i], &st, 0);
        SZ_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    if (!s)
        return;
    versions_of(p, vs, sizeof(vs));
    SZ_CHECK(upgraded(vs));

    /* The accounts survived, credentials intact. */
    int64_t n = -1;
    SZ_CHECK_INT(sz_store_account_count(s, "old.example", on_count, &n), 0);
    SZ_CHECK_INT(n, N);
    int same = 0;
    for (int i = 0; i < N; i++) {
        char j[64];
        snprintf(j, sizeof(j), "old%d@old.example", i);
        sz_jid_t *jj = jid(j);
        sz_scram_creds_t got, want;
        fake_creds(&want, (uint8_t)(i + 1));
        sz_store_account_get_creds(s, jj, on_creds, &got);
        sz_jid_free(jj);
        same += memcmp(&got.h[SZ_HASH_SHA256], &want.h[SZ_HASH_SHA256], sizeof(want.h[0])) == 0 &&
                got.h[SZ_HASH_SHA1].key_len == 0;
    }
    SZ_CHECK_INT(same, N);

    /* Rosters work on the upgraded file, for old accounts too, and go
     * with them. */
    sz_jid_t *o7 = jid("old7@old.example");
    sz_store_roster_item_t it = {.jid = "new@example.org"};
    int64_t v = -1;
    SZ_CHECK_INT(sz_store_roster_put(s, o7, &it, 0, on_ver, &v), 0);
    SZ_CHECK_INT(v, 1);
    v = -1;
    SZ_CHECK_INT(sz_store_roster_get(s, o7, on_roster, &v), 0);
    SZ_CHECK_INT(v, 1);
    int res = -999;
    SZ_CHECK_INT(sz_store_account_delete(s, o7, on_done, &res), 0);
    SZ_CHECK_INT(res, 0);
    SZ_CHECK_INT(rows_of(p, "roster_items", "old7", "old.example"), 0);
    SZ_CHECK_INT(rows_of(p, "roster_version", "old7", "old.example"), 0);
    SZ_CHECK_INT(rows_of(p, "accounts", "old6", "old.example"), 1);
    sz_jid_free(o7);
    sz_store_close(s);

    /* Reopening an up-to-date file applies nothing. */
    s = open_at(p, 1);
    SZ_CHECK(s != NULL);
    sz_store_close(s);
    versions_of(p, vs, sizeof(vs));
    SZ_CHECK(upgraded(vs));
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
    sz_log_set_level(SZ_LOG_WARN);
    if (argc == 4 && strcmp(argv[1], "--child-open") == 0) {
        for (int i = 0; i < 10000 && access(argv[3], F_OK) < 0; i++)
            usleep(100);
        sz_store_t *s = open_at(argv[2], 1);
        sz_store_close(s);
        return s ? 0 : 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz_sqlite_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    SZ_RUN(migrate_from_schema1);
    rm_rf(tmpdir);
    return sz_test_done();
}
