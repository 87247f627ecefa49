/*
 * stanzactl: account administration on the node's store, safe to run while
 * stanzad runs on the same config (SQLite WAL plus a busy timeout: each
 * write waits for the other process's lock instead of failing).
 *
 * Single-threaded except import-users, which derives credentials on one
 * thread per CPU and writes them in batches of one transaction each, and
 * import-rosters, which writes its items from a few threads at once (one
 * transaction per item: storage/roster.h has no batch write). The
 * store is used from non-reactor threads only, so every store call blocks
 * and runs its callback before returning (storage/store.h).
 *
 * Passwords are read from a file, stdin or the terminal (without echo),
 * handed to the SCRAM derivation and wiped; they are never printed, logged
 * or stored. Exit status: 0 done, 1 error, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/jid.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/scram.h"
#include "storage/roster.h"
#include "storage/store.h"

#define EXIT_USAGE         2
#define PASSWORD_MAX       1024 /* buffer bytes; OpaqueString allows 1023 after preparation */
#define IMPORT_BATCH       1000 /* accounts per transaction */
#define IMPORT_THREADS_MAX 256
#define ITER_MAX           10000000u
#define ROSTER_THREADS     4 /* submitters: they overlap the hand-offs to the storage worker */

static const char *prog = "stanzactl";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stanzactl --config FILE [options] COMMAND [ARG]\n"
            "\n"
            "commands:\n"
            "  adduser JID          create an account\n"
            "  deluser JID          delete an account\n"
            "  passwd JID           set a new password for an account\n"
            "  list-users DOMAIN    print the accounts of DOMAIN, one JID per line, sorted\n"
            "  import-users FILE    create the accounts listed in FILE, one \"JID PASSWORD\"\n"
            "                       per line (the password is the rest of the line after the\n"
            "                       blank that follows the JID; empty lines and lines starting\n"
            "                       with '#' are skipped)\n"
            "  import-rosters FILE  write the roster items listed in FILE, one\n"
            "                       \"OWNER CONTACT [SUBSCRIPTION]\" per line (bare JIDs;\n"
            "                       SUBSCRIPTION none, to, from or both, default both; an\n"
            "                       item that exists is replaced; the owner's account must\n"
            "                       exist; limits.max_roster_items applies)\n"
            "\n"
            "options:\n"
            "  --config FILE        the node's config (storage.path and hosts); required\n"
            "  --password-file F    adduser/passwd: the password is the first line of F;\n"
            "                       without it the first line of stdin when stdin is not a\n"
            "                       terminal, else it is asked for twice, without echo\n"
            "  --iterations N       PBKDF2 iterations of new credentials (default %u).\n"
            "                       Fewer iterations are WEAKER than the default: a stolen\n"
            "                       database is cheaper to attack. Meant for bulk test\n"
            "                       accounts (--iterations 1)\n"
            "  --strict             import-users: check every line first and import nothing\n"
            "                       if any is bad (default: report bad lines with their line\n"
            "                       numbers, import the good ones, exit 1)\n"
            "  -h, --help           this text\n"
            "\n"
            "Safe while stanzad runs on the same config. Exit status: 0 ok, 1 error, 2 usage.\n",
            SZ_SCRAM_ITER_DEFAULT);
}

static void die_usage(const char *msg)
{
    fprintf(stderr, "%s: %s\n", prog, msg);
    fprintf(stderr, "try '%s --help'\n", prog);
    exit(EXIT_USAGE);
}

/* ---- context ------------------------------------------------------------- */

struct ctl {
    sz_conf_t *conf;
    sz_store_t *store;
    const char *password_file;
    uint32_t iterations;
    bool strict;
    char (*hosts)[SZ_JID_PART_MAX_BYTES + 1]; /* prepared host domains */
    size_t nhosts;
};

static int open_store(struct ctl *c)
{
    char err[1024];
    sz_store_opts_t o = {
        .backend = c->conf->storage.backend,
        .path = c->conf->storage.path,
        .workers = 1, /* SQLite writes one transaction at a time anyway */
    };
    int ret = sz_store_open(&o, &c->store, err, sizeof(err));
    if (ret < 0)
        fprintf(stderr, "%s: %s: %s\n", prog, c->conf->path, err);
    return ret;
}

static void prep_hosts(struct ctl *c)
{
    c->hosts = sz_calloc(c->conf->nhosts ? c->conf->nhosts : 1, sizeof(*c->hosts));
    for (size_t i = 0; i < c->conf->nhosts; i++) {
        const char *d = c->conf->hosts[i].domain;
        size_t len = 0;
        if (sz_jid_prep(SZ_JID_PART_DOMAIN, d, strlen(d), c->hosts[c->nhosts], sizeof(c->hosts[0]),
                        &len, NULL) == 0)
            c->nhosts++;
    }
}

static bool served(const struct ctl *c, const char *domain, size_t len)
{
    for (size_t i = 0; i < c->nhosts; i++)
        if (strlen(c->hosts[i]) == len && memcmp(c->hosts[i], domain, len) == 0)
            return true;
    return false;
}

/* "hosts: a, b" for messages. */
static void hosts_list(const struct ctl *c, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->nhosts && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", c->hosts[i]);
    if (c->nhosts == 0)
        snprintf(buf, cap, "none");
}

/* Writes the reason <s> is not a usable account JID into <why>, or returns
 * the parsed bare JID (caller frees). */
static sz_jid_t *account_jid(const struct ctl *c, const char *s, char *why, size_t cap)
{
    sz_jid_t *j = NULL;
    enum sz_jid_err e = SZ_JID_OK;
    if (sz_jid_parse_err(s, strlen(s), &j, &e) < 0) {
        snprintf(why, cap, "bad JID '%s': jid-malformed (%s)", s, sz_jid_strerror(e));
        return NULL;
    }
    if (!sz_jid_has_local(j)) {
        snprintf(why, cap, "bad JID '%s': jid-malformed (an account JID needs a localpart)", s);
        sz_jid_free(j);
        return NULL;
    }
    if (!sz_jid_is_bare(j)) {
        snprintf(why, cap, "bad JID '%s': jid-malformed (an account JID has no resource)", s);
        sz_jid_free(j);
        return NULL;
    }
    size_t dl;
    const char *d = sz_jid_domain(j, &dl);
    if (!served(c, d, dl)) {
        char hl[512];
        hosts_list(c, hl, sizeof(hl));
        snprintf(why, cap, "domain %.*s is not served by this config (hosts: %s)", (int)dl, d, hl);
        sz_jid_free(j);
        return NULL;
    }
    return j;
}

/* ---- blocking store calls ------------------------------------------------ */

struct result {
    int res;
    uint64_t n;
};

static void on_done(void *arg, int res)
{
    ((struct result *)arg)->res = res;
}

static void on_creds(void *arg, int res, const sz_scram_creds_t *creds)
{
    ((struct result *)arg)->res = res;
}

/* 0 (exists), -ENOENT, or another error. */
static int account_exists(struct ctl *c, const sz_jid_t *j)
{
    struct result r = {-EIO, 0};
    int ret = sz_store_account_get_creds(c->store, j, on_creds, &r);
    return ret < 0 ? ret : r.res;
}

static const char *store_err(int e)
{
    if (e == -EBUSY)
        return "database busy (another process held its write lock too long), try again";
    return strerror(-e);
}

/* ---- passwords ----------------------------------------------------------- */

/* Reads one line from <f> into <buf> without its line end. Returns its
 * length, -ENAMETOOLONG when it does not fit, -ENODATA at end of input. */
static int read_line(FILE *f, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, f))
        return -ENODATA;
    size_t n = strlen(buf);
    bool nl = n > 0 && buf[n - 1] == '\n';
    if (!nl && !feof(f)) {
        explicit_bzero(buf, cap);
        return -ENAMETOOLONG;
    }
    if (nl)
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return (int)n;
}

/* Prompts on the terminal <f> without echo. */
static int prompt(FILE *f, const char *text, char *buf, size_t cap)
{
    struct termios old, quiet;
    int fd = fileno(f);
    fputs(text, stderr);
    fflush(stderr);
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    int n = read_line(f, buf, cap);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    return n;
}

/* The new password into <buf>: --password-file, else stdin. Returns its
 * length or -1 after printing the error. */
static int get_password(const struct ctl *c, const char *jid, char *buf, size_t cap)
{
    int n;
    if (c->password_file) {
        FILE *f = fopen(c->password_file, "r");
        if (!f) {
            fprintf(stderr, "%s: cannot open password file %s: %s\n", prog, c->password_file,
                    strerror(errno));
            return -1;
        }
        n = read_line(f, buf, cap);
        fclose(f);
    } else if (!isatty(STDIN_FILENO)) {
        n = read_line(stdin, buf, cap);
    } else {
        char again[PASSWORD_MAX], text[1200];
        snprintf(text, sizeof(text), "Password for %s: ", jid);
        n = prompt(stdin, text, buf, cap);
        if (n >= 0) {
            int m = prompt(stdin, "Retype password: ", again, sizeof(again));
            bool same = m == n && memcmp(again, buf, (size_t)n) == 0;
            explicit_bzero(again, sizeof(again));
            if (!same) {
                explicit_bzero(buf, cap);
                fprintf(stderr, "%s: passwords do not match\n", prog);
                return -1;
            }
        }
    }
    if (n == -ENAMETOOLONG) {
        fprintf(stderr, "%s: password too long (at most %d bytes)\n", prog, PASSWORD_MAX - 2);
        return -1;
    }
    if (n <= 0) {
        fprintf(stderr, "%s: no password given\n", prog);
        return -1;
    }
    return n;
}

/* Derives credentials for the password read for <jid>. 0 or -1 (printed). */
static int new_creds(const struct ctl *c, const char *jid, sz_scram_creds_t *out)
{
    char pw[PASSWORD_MAX];
    int n = get_password(c, jid, pw, sizeof(pw));
    if (n < 0)
        return -1;
    int ret = sz_scram_derive_all(pw, (size_t)n, c->iterations, out);
    explicit_bzero(pw, sizeof(pw));
    if (ret < 0) {
        fprintf(stderr,
                "%s: the password is not valid (it must be UTF-8 without control characters, "
                "at most 1023 bytes)\n",
                prog);
        return -1;
    }
    return 0;
}

/* ---- single-account commands --------------------------------------------- */

/* adduser (<create>) and passwd: the same steps, on an account that must
 * not exist, or must. No password is asked for when that check fails. */
static int set_password(struct ctl *c, const char *arg, bool create)
{
    char why[1024];
    sz_jid_t *j = account_jid(c, arg, why, sizeof(why));
    if (!j) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return 1;
    }
    char *name = sz_jid_to_str(j, true);
    int rc = 1;
    sz_scram_creds_t cr;
    int ret = account_exists(c, j);
    if (create ? ret == 0 : ret == -ENOENT) {
        fprintf(stderr, create ? "%s: user %s already exists\n" : "%s: no such user %s\n", prog,
                name);
        goto out;
    }
    if (ret < 0 && ret != -ENOENT) {
        fprintf(stderr, "%s: cannot read account %s: %s\n", prog, name, store_err(ret));
        goto out;
    }
    if (new_creds(c, name, &cr) < 0)
        goto out;
    struct result r = {-EIO, 0};
    ret = create ? sz_store_account_create(c->store, j, &cr, on_done, &r)
                 : sz_store_account_set_creds(c->store, j, &cr, on_done, &r);
    explicit_bzero(&cr, sizeof(cr));
    ret = ret < 0 ? ret : r.res;
    if (create && ret == -EEXIST)
        fprintf(stderr, "%s: user %s already exists\n", prog, name);
    else if (!create && ret == -ENOENT)
        fprintf(stderr, "%s: no such user %s\n", prog, name);
    else if (ret < 0)
        fprintf(stderr, create ? "%s: cannot create %s: %s\n"
                               : "%s: cannot change the password of %s: %s\n",
                prog, name, store_err(ret));
    else {
        printf(create ? "created %s\n" : "password changed for %s\n", name);
        rc = 0;
    }
out:
    sz_free(name);
    sz_jid_free(j);
    return rc;
}

static int cmd_adduser(struct ctl *c, const char *arg)
{
    return set_password(c, arg, true);
}

static int cmd_passwd(struct ctl *c, const char *arg)
{
    return set_password(c, arg, false);
}

static int cmd_deluser(struct ctl *c, const char *arg)
{
    char why[1024];
    sz_jid_t *j = account_jid(c, arg, why, sizeof(why));
    if (!j) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return 1;
    }
    char *name = sz_jid_to_str(j, true);
    struct result r = {-EIO, 0};
    int ret = sz_store_account_delete(c->store, j, on_done, &r);
    ret = ret < 0 ? ret : r.res;
    int rc = 1;
    if (ret == -ENOENT)
        fprintf(stderr, "%s: no such user %s\n", prog, name);
    else if (ret < 0)
        fprintf(stderr, "%s: cannot delete %s: %s\n", prog, name, store_err(ret));
    else {
        printf("deleted %s\n", name);
        rc = 0;
    }
    sz_free(name);
    sz_jid_free(j);
    return rc;
}

struct page {
    int res;
    const char *domain;
    char *last; /* cursor: the last name printed */
    bool more;
};

static void on_page(void *arg, int res, const sz_store_names_t *p)
{
    struct page *pg = arg;
    pg->res = res;
    pg->more = false;
    if (res < 0)
        return;
    for (size_t i = 0; i < p->n; i++)
        printf("%s@%s\n", p->names[i], pg->domain);
    if (p->n) {
        sz_free(pg->last);
        pg->last = sz_strdup(p->names[p->n - 1]);
    }
    pg->more = p->more;
}

static int cmd_list(struct ctl *c, const char *arg)
{
    char d[SZ_JID_PART_MAX_BYTES + 1];
    size_t dl = 0;
    enum sz_jid_err e = SZ_JID_OK;
    if (sz_jid_prep(SZ_JID_PART_DOMAIN, arg, strlen(arg), d, sizeof(d), &dl, &e) < 0) {
        fprintf(stderr, "%s: bad domain '%s': jid-malformed (%s)\n", prog, arg, sz_jid_strerror(e));
        return 1;
    }
    if (!served(c, d, dl)) {
        char hl[512];
        hosts_list(c, hl, sizeof(hl));
        fprintf(stderr, "%s: domain %s is not served by this config (hosts: %s)\n", prog, d, hl);
        return 1;
    }
    struct page pg = {.domain = d, .more = true};
    while (pg.more) {
        int ret = sz_store_account_list(c->store, d, pg.last, SZ_STORE_LIST_MAX, on_page, &pg);
        ret = ret < 0 ? ret : pg.res;
        if (ret < 0) {
            fprintf(stderr, "%s: cannot list %s: %s\n", prog, d, store_err(ret));
            sz_free(pg.last);
            return 1;
        }
    }
    sz_free(pg.last);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- import-users -------------------------------------------------------- */

enum line_err {
    LE_OK = 0,
    LE_MSG,      /* message in <msg> (JID, domain, syntax) */
    LE_PASSWORD, /* not a valid OpaqueString */
    LE_EXISTS,   /* account already there (or earlier in the file) */
    LE_STORE,    /* its batch failed */
};

struct entry {
    unsigned line;
    enum line_err err;
    int store_res;
    sz_jid_t *jid;
    char *pw; /* points into the file buffer; wiped at the end */
    size_t plen;
    char *msg;
    bool done; /* created */
};

struct import {
    struct ctl *c;
    struct entry **todo; /* entries with a JID to import */
    size_t ntodo;
    size_t next;    /* next batch start (atomic) */
    bool failed;    /* a batch failed: stop (atomic) */
    int fail_res;   /* its error (written before <failed>) */
    size_t created; /* atomic */
};

static void *import_thread(void *arg)
{
    struct import *im = arg;
    sz_scram_creds_t *creds = sz_calloc(IMPORT_BATCH, sizeof(*creds));
    sz_store_new_account_t *items = sz_calloc(IMPORT_BATCH, sizeof(*items));
    struct entry **who = sz_calloc(IMPORT_BATCH, sizeof(*who));
    for (;;) {
        if (__atomic_load_n(&im->failed, __ATOMIC_ACQUIRE))
            break;
        size_t start = __atomic_fetch_add(&im->next, IMPORT_BATCH, __ATOMIC_RELAXED);
        if (start >= im->ntodo)
            break;
        size_t end = start + IMPORT_BATCH < im->ntodo ? start + IMPORT_BATCH : im->ntodo;
        size_t n = 0;
        for (size_t i = start; i < end; i++) {
            struct entry *e = im->todo[i];
            if (sz_scram_derive_all(e->pw, e->plen, im->c->iterations, &creds[n]) < 0) {
                e->err = LE_PASSWORD;
                continue;
            }
            items[n] = (sz_store_new_account_t){.jid = e->jid, .creds = &creds[n]};
            who[n++] = e;
        }
        if (n == 0)
            continue;
        struct result r = {-EIO, 0};
        int ret = sz_store_account_create_many(im->c->store, items, n, on_done, &r);
        ret = ret < 0 ? ret : r.res;
        size_t made = 0;
        for (size_t i = 0; i < n; i++) {
            if (ret < 0) {
                who[i]->err = LE_STORE;
                who[i]->store_res = ret;
            } else if (items[i].res == -EEXIST) {
                who[i]->err = LE_EXISTS;
            } else if (items[i].res == 0) {
                who[i]->done = true;
                made++;
            }
        }
        explicit_bzero(creds, n * sizeof(*creds));
        __atomic_fetch_add(&im->created, made, __ATOMIC_RELAXED);
        if (ret < 0) {
            __atomic_store_n(&im->fail_res, ret, __ATOMIC_RELAXED); /* any failure will do */
            __atomic_store_n(&im->failed, true, __ATOMIC_RELEASE);
        }
    }
    sz_free(who);
    sz_free(items);
    sz_free(creds);
    return NULL;
}

/* Reads all of <path>; NULL after printing the error. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = sz_malloc(cap);
    for (;;) {
        if (cap - n < 2) {
            char *bigger = sz_malloc(cap * 2);
            memcpy(bigger, buf, n);
            explicit_bzero(buf, cap); /* it holds passwords */
            sz_free(buf);
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read %s\n", prog, path);
        explicit_bzero(buf, cap);
        sz_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Splits the file into entries, checking JIDs and domains. */
static struct entry *parse_lines(struct ctl *c, char *buf, size_t len, size_t *nout)
{
    size_t cap = 1024, n = 0;
    struct entry *es = sz_malloc(cap * sizeof(*es));
    unsigned lineno = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        lineno++;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        if (!eol)
            eol = end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        *eol = '\0';
        char *s = p;
        p = next;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        if (n == cap) {
            cap *= 2;
            es = sz_realloc(es, cap * sizeof(*es));
        }
        struct entry *e = &es[n++];
        memset(e, 0, sizeof(*e));
        e->line = lineno;
        char *sep = s + strcspn(s, " \t");
        char *pw = sep;
        while (*pw == ' ' || *pw == '\t')
            pw++;
        if (*sep == '\0' || *pw == '\0') {
            *sep = '\0';
            char m[1200];
            snprintf(m, sizeof(m), "missing password after '%s'", s);
            e->err = LE_MSG;
            e->msg = sz_strdup(m);
            continue;
        }
        *sep = '\0';
        char why[1024];
        e->jid = account_jid(c, s, why, sizeof(why));
        if (!e->jid) {
            e->err = LE_MSG;
            e->msg = sz_strdup(why);
            continue;
        }
        e->pw = pw;
        e->plen = strlen(pw);
        if (c->strict) {
            /* Validate the password now (OpaqueString preparation, one
             * cheap iteration), so that a bad one stops the import before
             * anything is written. */
            static const uint8_t salt[1] = {0};
            sz_scram_cred_t tmp;
            if (sz_scram_derive(SZ_HASH_SHA256, pw, e->plen, salt, 1, 1, &tmp) < 0)
                e->err = LE_PASSWORD;
            explicit_bzero(&tmp, sizeof(tmp));
        }
    }
    *nout = n;
    return es;
}

static void print_line_errors(const char *path, struct entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &es[i];
        char *name = e->jid ? sz_jid_to_str(e->jid, true) : NULL;
        switch (e->err) {
        case LE_OK:
            break;
        case LE_MSG:
            fprintf(stderr, "%s:%u: %s\n", path, e->line, e->msg);
            break;
        case LE_PASSWORD:
            fprintf(stderr,
                    "%s:%u: invalid password for %s (it must be UTF-8 without control "
                    "characters, at most 1023 bytes)\n",
                    path, e->line, name);
            break;
        case LE_EXISTS:
            fprintf(stderr, "%s:%u: user %s already exists\n", path, e->line, name);
            break;
        case LE_STORE:
            fprintf(stderr, "%s:%u: %s not imported: %s\n", path, e->line, name,
                    store_err(e->store_res));
            break;
        }
        sz_free(name);
    }
}

static int cmd_import(struct ctl *c, const char *path)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len = 0;
    char *buf = slurp(path, &len);
    if (!buf)
        return 1;
    size_t n = 0;
    struct entry *es = parse_lines(c, buf, len, &n);

    size_t bad = 0;
    struct import im = {.c = c};
    im.todo = sz_calloc(n ? n : 1, sizeof(*im.todo));
    for (size_t i = 0; i < n; i++) {
        if (es[i].err != LE_OK)
            bad++;
        else
            im.todo[im.ntodo++] = &es[i];
    }
    int rc = 0;
    if (c->strict && bad) {
        print_line_errors(path, es, n);
        fprintf(stderr, "%s: %s: %zu bad line%s, nothing imported (--strict)\n", prog, path, bad,
                bad == 1 ? "" : "s");
        rc = 1;
        goto out;
    }

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = cpus > 0 ? (size_t)cpus : 1;
    if (nt > IMPORT_THREADS_MAX)
        nt = IMPORT_THREADS_MAX;
    size_t batches = (im.ntodo + IMPORT_BATCH - 1) / IMPORT_BATCH;
    if (nt > batches)
        nt = batches ? batches : 1;
    pthread_t th[IMPORT_THREADS_MAX];
    size_t started = 0;
    for (size_t i = 0; i < nt; i++) {
        if (pthread_create(&th[i], NULL, import_thread, &im) != 0)
            break;
        started++;
    }
    if (started == 0)
        import_thread(&im); /* no thread available: derive on this one */
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);

    if (im.failed) {
        /* Lines of batches that never ran after a storage failure. */
        for (size_t i = 0; i < im.ntodo; i++) {
            if (im.todo[i]->err == LE_OK && !im.todo[i]->done) {
                im.todo[i]->err = LE_STORE;
                im.todo[i]->store_res = im.fail_res;
            }
        }
    }
    print_line_errors(path, es, n);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += es[i].err != LE_OK;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("imported %zu of %zu accounts from %s in %.2f s (%zu line%s with errors)\n", im.created,
           n, path, secs, bad, bad == 1 ? "" : "s");
    rc = bad || im.failed ? 1 : 0;
out:
    for (size_t i = 0; i < n; i++) {
        sz_jid_free(es[i].jid);
        sz_free(es[i].msg);
    }
    sz_free(es);
    sz_free(im.todo);
    explicit_bzero(buf, len);
    sz_free(buf);
    return rc;
}

/* ---- import-rosters ------------------------------------------------------ */

/* One line of a roster file: the item <contact> (with <sub>) in the roster
 * of <owner>. */
struct ritem {
    unsigned line;
    sz_jid_t *owner; /* NULL: the line is bad (<msg>) */
    char *contact;   /* normalized bare JID */
    enum sz_store_sub sub;
    char *msg; /* why the line is bad, or why its write failed */
    int res;   /* store result of its put */
};

struct rimport {
    struct ctl *c;
    struct ritem *items;
    size_t n;
    size_t next;    /* next chunk start (atomic) */
    size_t written; /* atomic */
};

#define ROSTER_CHUNK 256 /* lines a submitter takes at a time */

static void on_ver(void *arg, int res, uint64_t ver)
{
    (void)ver;
    ((struct result *)arg)->res = res;
}

static void *roster_thread(void *arg)
{
    struct rimport *im = arg;
    unsigned max = im->c->conf->limits.max_roster_items;
    for (;;) {
        size_t start = __atomic_fetch_add(&im->next, ROSTER_CHUNK, __ATOMIC_RELAXED);
        if (start >= im->n)
            break;
        size_t end = start + ROSTER_CHUNK < im->n ? start + ROSTER_CHUNK : im->n;
        size_t made = 0;
        for (size_t i = start; i < end; i++) {
            struct ritem *e = &im->items[i];
            if (!e->owner)
                continue;
            sz_store_roster_item_t it = {.jid = e->contact, .sub = e->sub};
            struct result r = {-EIO, 0};
            int ret = sz_store_roster_put(im->c->store, e->owner, &it, max, on_ver, &r);
            e->res = ret < 0 ? ret : r.res;
            made += e->res == 0;
        }
        __atomic_fetch_add(&im->written, made, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int parse_sub(const char *s, enum sz_store_sub *out)
{
    static const char *const words[] = {"none", "to", "from", "both"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, words[i]) == 0) {
            *out = (enum sz_store_sub)i; /* the enum follows RFC 6121's order */
            return 0;
        }
    return -EINVAL;
}

/* Parses one non-empty line <s> into <e>. Consecutive lines of the same
 * owner share the owner's parsed JID through <last>, so a file sorted by
 * owner parses each owner once. */
static void parse_ritem(struct ctl *c, char *s, struct ritem *e, struct ritem *last)
{
    char *f[4] = {NULL};
    int nf = 0;
    for (char *tok = strtok(s, " \t"); tok; tok = strtok(NULL, " \t"))
        f[nf < 4 ? nf++ : 3] = tok;
    char m[1200];
    if (nf < 2 || nf > 3) {
        e->msg = sz_strdup("expected \"OWNER CONTACT [SUBSCRIPTION]\"");
        return;
    }
    if (parse_sub(nf == 3 ? f[2] : "both", &e->sub) < 0) {
        snprintf(m, sizeof(m), "unknown subscription '%.100s' (none, to, from or both)", f[2]);
        e->msg = sz_strdup(m);
        return;
    }
    sz_jid_t *ct = NULL;
    enum sz_jid_err why = SZ_JID_OK;
    if (sz_jid_parse_err(f[1], strlen(f[1]), &ct, &why) < 0 || !sz_jid_is_bare(ct)) {
        snprintf(m, sizeof(m), "bad contact '%.100s': %s", f[1],
                 ct ? "a roster item is a bare JID" : sz_jid_strerror(why));
        e->msg = sz_strdup(m);
        sz_jid_free(ct);
        return;
    }
    e->contact = sz_jid_to_str(ct, true);
    sz_jid_free(ct);
    if (last && last->owner) {
        char *prev = sz_jid_to_str(last->owner, true);
        bool same = strcmp(prev, f[0]) == 0;
        sz_free(prev);
        if (same) {
            e->owner = last->owner;
            return;
        }
    }
    e->owner = account_jid(c, f[0], m, sizeof(m));
    if (!e->owner)
        e->msg = sz_strdup(m);
}

static int cmd_import_rosters(struct ctl *c, const char *path)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len = 0;
    char *buf = slurp(path, &len);
    if (!buf)
        return 1;
    size_t cap = 1024, n = 0;
    struct ritem *its = sz_malloc(cap * sizeof(*its));
    unsigned lineno = 0;
    for (char *p = buf, *end = buf + len; p < end;) {
        lineno++;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *s = p;
        p = eol ? eol + 1 : end;
        if (eol)
            *eol = '\0';
        s[strcspn(s, "\r")] = '\0';
        s += strspn(s, " \t");
        if (*s == '\0' || *s == '#')
            continue;
        if (n == cap) {
            cap *= 2;
            its = sz_realloc(its, cap * sizeof(*its));
        }
        struct ritem *e = &its[n];
        memset(e, 0, sizeof(*e));
        e->line = lineno;
        parse_ritem(c, s, e, n ? &its[n - 1] : NULL);
        n++;
    }

    struct rimport im = {.c = c, .items = its, .n = n};
    pthread_t th[ROSTER_THREADS];
    size_t started = 0;
    for (size_t i = 0; i < ROSTER_THREADS && i * ROSTER_CHUNK < n; i++)
        if (pthread_create(&th[started], NULL, roster_thread, &im) == 0)
            started++;
    if (started == 0)
        roster_thread(&im);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);

    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct ritem *e = &its[i];
        char *owner = e->owner ? sz_jid_to_str(e->owner, true) : NULL;
        if (e->msg)
            fprintf(stderr, "%s:%u: %s\n", path, e->line, e->msg);
        else if (e->res == -ENOENT)
            fprintf(stderr, "%s:%u: no such user %s\n", path, e->line, owner);
        else if (e->res == -ENOSPC)
            fprintf(stderr, "%s:%u: the roster of %s is full (limits.max_roster_items %u)\n", path,
                    e->line, owner, c->conf->limits.max_roster_items);
        else if (e->res < 0)
            fprintf(stderr, "%s:%u: %s not written: %s\n", path, e->line, e->contact,
                    store_err(e->res));
        bad += e->msg || e->res < 0;
        sz_free(owner);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("imported %zu of %zu roster items from %s in %.2f s (%zu line%s with errors)\n",
           im.written, n, path, secs, bad, bad == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        /* an owner JID is shared by the run of lines that parsed it */
        if (its[i].owner && (i + 1 == n || its[i + 1].owner != its[i].owner))
            sz_jid_free(its[i].owner);
        sz_free(its[i].contact);
        sz_free(its[i].msg);
    }
    sz_free(its);
    sz_free(buf);
    return bad ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"password-file", required_argument, NULL, 'p'},
        {"iterations", required_argument, NULL, 'i'},
        {"strict", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctl c = {.iterations = SZ_SCRAM_ITER_DEFAULT};
    const char *config = NULL;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            c.password_file = optarg;
            break;
        case 'i': {
            char *endp = NULL;
            errno = 0;
            unsigned long v = strtoul(optarg, &endp, 10);
            if (errno || !endp || *endp || optarg[0] == '-' || v < 1 || v > ITER_MAX) {
                char m[128];
                snprintf(m, sizeof(m), "--iterations: must be a number between 1 and %u", ITER_MAX);
                die_usage(m);
            }
            c.iterations = (uint32_t)v;
            break;
        }
        case 's':
            c.strict = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: {
            char m[256];
            if (optopt)
                snprintf(m, sizeof(m), "option -%c needs an argument or is unknown", optopt);
            else
                snprintf(m, sizeof(m), "unknown option or missing argument: %s", argv[optind - 1]);
            die_usage(m);
        }
        }
    }
    if (optind >= argc)
        die_usage("no command given");
    const char *cmd = argv[optind];
    int (*fn)(struct ctl *, const char *) = NULL;
    if (strcmp(cmd, "adduser") == 0)
        fn = cmd_adduser;
    else if (strcmp(cmd, "deluser") == 0)
        fn = cmd_deluser;
    else if (strcmp(cmd, "passwd") == 0)
        fn = cmd_passwd;
    else if (strcmp(cmd, "list-users") == 0)
        fn = cmd_list;
    else if (strcmp(cmd, "import-users") == 0)
        fn = cmd_import;
    else if (strcmp(cmd, "import-rosters") == 0)
        fn = cmd_import_rosters;
    else if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    } else {
        char m[256];
        snprintf(m, sizeof(m), "unknown command '%s'", cmd);
        die_usage(m);
    }
    if (argc - optind != 2) {
        char m[256];
        snprintf(m, sizeof(m), "%s takes exactly one argument", cmd);
        die_usage(m);
    }
    if (!config)
        die_usage("--config FILE is required");

    /* Only problems are worth a line; progress goes to stdout. */
    sz_log_set_level(SZ_LOG_WARN);
    char err[1024];
    if (sz_conf_load(config, &c.conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    prep_hosts(&c);
    int rc = 1;
    if (open_store(&c) == 0) {
        rc = fn(&c, argv[optind + 1]);
        sz_store_close(c.store);
    }
    sz_free(c.hosts);
    sz_conf_free(c.conf);
    return rc;
}
