/*
 * Scenario file parser (scenario.h). The file is one flat mapping of keys
 * to single values, read with libyaml's event API in one pass like
 * core/conf.c: each key is a table row (name, type, range, scenarios it
 * applies to), so every key is checked in one place, and the first
 * problem ends the parse with one "<file>:<line>: <key>: <message>" line.
 * Checks that need the whole file (required keys, keys of another
 * scenario, contacts < users) run after the mapping, on the lines that
 * were recorded for each key. Anchors and aliases are refused. Main
 * thread only.
 */
#include "bench/stanza_bench/scenario.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include <unistd.h>

#include <yaml.h>

static const char *const scn_names[] = {"connect", "one2one", "roster-presence"};

const char *sb_scenario_name(enum sb_scenario sc)
{
    return (unsigned)sc < 3 ? scn_names[sc] : "?";
}

int sb_scenario_parse_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, scn_names[i]) == 0)
            return i;
    return -1;
}

enum type {
    T_SCENARIO, /* enum sb_scenario */
    T_U32,      /* uint32_t in [min, max] */
    T_DBL,      /* double in [min, max] */
    T_US,       /* tick: microseconds in [min, max], stored as uint64_t ns */
    T_STR,      /* const char *, non-empty */
    T_MECH,     /* enum sb_mech */
    T_IP4,      /* server.sin_addr */
    T_PORT,     /* server.sin_port */
    T_SRC,      /* src_lo, src_hi: "A" or "A-B" */
    T_TLS,      /* tls mode: none, starttls or direct */
    T_PROCS,    /* *procs, in [min, max] */
    T_TEXT,     /* description: any string, ignored */
    T_BOOL,     /* bool: true, false, yes or no (as core/conf.c) */
};

/* Which scenarios a key applies to (bit = 1 << enum sb_scenario). */
#define S_ALL  0x7u
#define S_O2O  (1u << SB_SC_ONE2ONE)
#define S_RP   (1u << SB_SC_ROSTER)
#define S_MSGS (S_O2O | S_RP)

#define F_REQ  0x01u /* must be present */
#define F_POW2 0x02u /* a power of two */

struct row {
    const char *name;
    enum type type;
    unsigned flags;
    unsigned scenarios; /* S_*: where the key means something */
    unsigned req_in;    /* S_*: required in these scenarios */
    double min, max;
    size_t off; /* into sb_conf_t, for the types that use it */
};

#define C(f) offsetof(sb_conf_t, f)
static const struct row rows[] = {
    {"scenario", T_SCENARIO, F_REQ, S_ALL, S_ALL, 0, 0, C(scenario)},
    {"description", T_TEXT, 0, S_ALL, 0, 0, 0, 0},
    /* target */
    {"server", T_IP4, 0, S_ALL, 0, 0, 0, 0},
    {"port", T_PORT, 0, S_ALL, 0, 1, 65535, 0},
    {"domain", T_STR, 0, S_ALL, 0, 0, 0, C(domain)},
    {"tls", T_TLS, 0, S_ALL, 0, 0, 0, 0},
    /* accounts */
    {"users", T_U32, F_REQ, S_ALL, S_ALL, 1, 10000000, C(users)},
    {"first", T_U32, 0, S_ALL, 0, 0, 1e9, C(first)},
    {"user_pattern", T_STR, 0, S_ALL, 0, 0, 0, C(user_pattern)},
    {"pass_pattern", T_STR, 0, S_ALL, 0, 0, 0, C(pass_pattern)},
    {"resource", T_STR, 0, S_ALL, 0, 0, 0, C(resource)},
    {"mechanism", T_MECH, 0, S_ALL, 0, 0, 0, C(mech)},
    {"sm", T_BOOL, 0, S_ALL, 0, 0, 0, C(sm)},
    /* load */
    {"login_rate", T_DBL, 0, S_ALL, 0, 0.001, 1e7, C(login_rate)},
    {"login_timeout", T_DBL, 0, S_ALL, 0, 0.1, 3600, C(login_timeout)},
    {"duration", T_DBL, F_REQ, S_ALL, S_ALL, 0, 86400, C(duration)},
    {"msg_rate", T_DBL, 0, S_O2O, S_O2O, 0.001, 1e8, C(msg_rate)},
    {"msg_size", T_U32, 0, S_O2O, 0, 0, 65536, C(msg_size)},
    {"resources", T_U32, 0, S_O2O, 0, 1, 16, C(resources)},
    {"carbons", T_BOOL, 0, S_O2O, 0, 0, 0, C(carbons)},
    {"contacts", T_U32, 0, S_RP, S_RP, 1, 1000, C(contacts)},
    {"presence_rate", T_DBL, 0, S_RP, S_RP, 0.001, 1e7, C(msg_rate)},
    {"broadcast", T_BOOL, 0, S_RP, 0, 0, 0, C(broadcast)},
    {"loss_timeout", T_DBL, 0, S_MSGS, 0, 0.01, 3600, C(loss_timeout)},
    /* engine */
    {"threads", T_U32, 0, S_ALL, 0, 1, 256, C(threads)},
    {"procs", T_PROCS, 0, S_ALL, 0, 1, 64, 0},
    {"src", T_SRC, 0, S_ALL, 0, 0, 0, 0},
    {"bufs", T_U32, F_POW2, S_ALL, 0, 1, 32768, C(bufs)},
    {"buf_size", T_U32, 0, S_ALL, 0, 256, 1 << 20, C(buf_size)},
    {"tick_us", T_US, 0, S_ALL, 0, 0, 1e6, C(tick_ns)},
    {"lazy_recv", T_BOOL, 0, S_ALL, 0, 0, 0, C(lazy_recv)},
};
#undef C

#define NROWS (sizeof(rows) / sizeof(rows[0]))
#define LINE(e) ((int)(e)->start_mark.line + 1)

/* One parse. */
struct ctx {
    yaml_parser_t p;
    yaml_event_t ev;
    bool have_ev;
    const char *name, *text;
    size_t len;
    char *err;
    size_t errlen;
    sb_conf_t *cf;
    unsigned *procs;
    int lines[NROWS]; /* line of each key present, 0 when absent */
};

/* "<file>:<line>: <key>: <message>", control bytes shown as '?' so that
 * the error stays one line whatever the file holds; returns -EINVAL. */
static int fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
{
    if (!x->err || !x->errlen)
        return -EINVAL;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(x->err, x->errlen, "%s:%d: %s: %s", x->name, line, key, msg);
    for (char *s = x->err; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    return -EINVAL;
}

static int yaml_fail(struct ctx *x)
{
    int line;
    if (x->p.error == YAML_READER_ERROR) {
        /* the reader gives a byte offset only (bad UTF-8, control bytes) */
        size_t end = x->p.problem_offset < x->len ? x->p.problem_offset : x->len;
        line = 1;
        for (size_t i = 0; i < end; i++)
            line += x->text[i] == '\n';
    } else {
        line = (int)x->p.problem_mark.line + 1;
    }
    const char *problem = x->p.problem ? x->p.problem : "cannot parse";
    if (x->p.context)
        return fail(x, line, "yaml", "%s (%s started on line %d)", problem, x->p.context,
                    (int)x->p.context_mark.line + 1);
    return fail(x, line, "yaml", "%s", problem);
}

static int next(struct ctx *x)
{
    if (x->have_ev)
        yaml_event_delete(&x->ev);
    x->have_ev = false;
    if (!yaml_parser_parse(&x->p, &x->ev))
        return yaml_fail(x);
    x->have_ev = true;
    if (x->ev.type == YAML_ALIAS_EVENT)
        return fail(x, LINE(&x->ev), "yaml", "aliases are not supported");
    return 0;
}

static const char *type_word(const yaml_event_t *e)
{
    return e->type == YAML_MAPPING_START_EVENT ? "a mapping" : "a list";
}

/* A decimal number, all of <s>, finite. */
static bool parse_num(const char *s, double *out)
{
    char *end;
    /* strtod would also take leading blanks, hex and "inf" */
    if (!*s || *s == '+' || *s == ' ' || strpbrk(s, "xXiInN"))
        return false;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || *end || !isfinite(d))
        return false;
    *out = d;
    return true;
}

static bool parse_ip4(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    *out = ntohl(a.s_addr);
    return true;
}

/* Digits, after an optional '-' (so that -1 is reported out of range). */
static bool is_int(const char *s)
{
    if (*s == '-')
        s++;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Stores the current event, the value of row <r>, into the result. */
/* Strings from a scenario file live as long as the process (the tool reads
 * its file once; sb_conf_t points at them like at argv). They are kept in
 * one registry, so they stay reachable rather than leak. */
static char **kept;
static size_t nkept, capkept;

static const char *keep(const char *s)
{
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 8;
        kept = realloc(kept, capkept * sizeof(*kept));
        if (!kept)
            abort();
    }
    char *d = strdup(s);
    if (!d)
        abort();
    kept[nkept++] = d;
    return d;
}

static int set_value(struct ctx *x, const struct row *r)
{
    const yaml_event_t *e = &x->ev;
    int line = LINE(e);
    const char *key = r->name;
    if (e->type != YAML_SCALAR_EVENT)
        return fail(x, line, key, "must be a single value, not %s", type_word(e));
    const char *s = (const char *)e->data.scalar.value;
    if (strlen(s) != e->data.scalar.length)
        return fail(x, line, key, "must not contain NUL bytes");
    void *p = (char *)x->cf + r->off;
    switch (r->type) {
    case T_SCENARIO: {
        int v = sb_scenario_parse_name(s);
        if (v < 0)
            return fail(x, line, key,
                        "unknown scenario \"%.40s\" (expected connect, one2one or roster-presence)",
                        s);
        *(enum sb_scenario *)p = (enum sb_scenario)v;
        return 0;
    }
    case T_U32:
    case T_PORT:
    case T_PROCS:
    case T_DBL:
    case T_US: {
        double d;
        bool whole = r->type != T_DBL && r->type != T_US;
        if (!parse_num(s, &d) || (whole && !is_int(s)))
            return fail(x, line, key, "must be %s between %.15g and %.15g, not \"%.40s\"",
                        whole ? "a whole number" : "a number", r->min, r->max, s);
        if (d < r->min || d > r->max)
            return fail(x, line, key, "must be between %.15g and %.15g, not %s", r->min, r->max, s);
        if ((r->flags & F_POW2) && ((uint32_t)d & ((uint32_t)d - 1)))
            return fail(x, line, key, "must be a power of two, not %s", s);
        if (r->type == T_U32)
            *(uint32_t *)p = (uint32_t)d;
        else if (r->type == T_PORT)
            x->cf->server.sin_port = htons((uint16_t)d);
        else if (r->type == T_PROCS)
            *x->procs = (unsigned)d;
        else if (r->type == T_US)
            *(uint64_t *)p = (uint64_t)(d * 1e3);
        else
            *(double *)p = d;
        return 0;
    }
    case T_STR:
        if (!*s)
            return fail(x, line, key, "must not be empty");
        *(const char **)p = keep(s);
        return 0;
    case T_TEXT:
        return 0;
    case T_BOOL:
        if (sz_conf_parse_bool(s, (bool *)p) < 0)
            return fail(x, line, key, "must be true, false, yes or no, not \"%.40s\"", s);
        return 0;
    case T_MECH: {
        int m = sb_mech_parse(s);
        if (m < 0)
            return fail(x, line, key,
                        "unknown mechanism \"%.40s\" (expected PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 "
                        "or their -PLUS)", s);
        *(enum sb_mech *)p = (enum sb_mech)m;
        return 0;
    }
    case T_IP4: {
        uint32_t a;
        if (!parse_ip4(s, &a))
            return fail(x, line, key, "\"%.40s\" is not an IPv4 address", s);
        x->cf->server.sin_addr.s_addr = htonl(a);
        return 0;
    }
    case T_SRC: {
        char lo[64];
        const char *dash = strchr(s, '-');
        size_t n = dash ? (size_t)(dash - s) : strlen(s);
        uint32_t a, b;
        if (n >= sizeof(lo))
            return fail(x, line, key, "\"%.40s\" is not an IPv4 address or range A-B", s);
        memcpy(lo, s, n);
        lo[n] = '\0';
        if (!parse_ip4(lo, &a) || !parse_ip4(dash ? dash + 1 : lo, &b))
            return fail(x, line, key, "\"%.40s\" is not an IPv4 address or range A-B", s);
        if (b < a)
            return fail(x, line, key, "the range \"%.40s\" is reversed", s);
        x->cf->src_lo = a;
        x->cf->src_hi = b;
        return 0;
    }
    case T_TLS:
        if (strcmp(s, "none") == 0)
            x->cf->tls = SB_TLS_NONE;
        else if (strcmp(s, "starttls") == 0)
            x->cf->tls = SB_TLS_STARTTLS;
        else if (strcmp(s, "direct") == 0)
            x->cf->tls = SB_TLS_DIRECT;
        else
            return fail(x, line, key, "unknown mode \"%.40s\" (expected none, starttls or direct)",
                        s);
        return 0;
    }
    return 0;
}

static int find_row(const yaml_event_t *e)
{
    const char *k = (const char *)e->data.scalar.value;
    size_t kl = e->data.scalar.length;
    for (size_t i = 0; i < NROWS; i++)
        if (strlen(rows[i].name) == kl && memcmp(rows[i].name, k, kl) == 0)
            return (int)i;
    return -1;
}

static int row_index(const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Whole-file checks, once every key was read: scenario-specific keys and
 * the relations between values. Errors point at the key's line, or at the
 * scenario's line for a key that is missing. */
static int check(struct ctx *x, int root_line)
{
    for (size_t i = 0; i < NROWS; i++)
        if ((rows[i].flags & F_REQ) && !x->lines[i])
            return fail(x, root_line, rows[i].name, "required key is missing");
    unsigned sc = 1u << x->cf->scenario;
    int sline = x->lines[row_index("scenario")];
    const char *sname = sb_scenario_name(x->cf->scenario);
    for (size_t i = 0; i < NROWS; i++) {
        if (x->lines[i] && !(rows[i].scenarios & sc))
            return fail(x, x->lines[i], rows[i].name, "not a key of scenario %s (line %d)", sname,
                        sline);
        if (!x->lines[i] && (rows[i].req_in & sc))
            return fail(x, sline, rows[i].name, "required key is missing for scenario %s", sname);
    }
    int ul = x->lines[row_index("users")];
    if (x->cf->scenario == SB_SC_ONE2ONE && x->cf->users < 2)
        return fail(x, ul, "users", "one2one needs at least 2 users");
    if (x->cf->scenario == SB_SC_ROSTER && x->cf->contacts >= x->cf->users)
        return fail(x, x->lines[row_index("contacts")], "contacts",
                    "must be less than users (%u): a user's contacts are other users",
                    x->cf->users);
    int bl = x->lines[row_index("broadcast")];
    if (bl && x->cf->broadcast && *x->procs > 1)
        return fail(x, bl, "broadcast",
                    "needs procs 1 (line %d): the server's fan-out would cross processes",
                    x->lines[row_index("procs")]);
    return 0;
}

static int parse_root(struct ctx *x)
{
    int rc;
    if ((rc = next(x)) < 0 || (rc = next(x)) < 0) /* stream start, document start */
        return rc;
    if (x->ev.type == YAML_STREAM_END_EVENT)
        return fail(x, 1, "yaml", "file is empty");
    if ((rc = next(x)) < 0)
        return rc;
    int root_line = LINE(&x->ev);
    if (x->ev.type == YAML_SCALAR_EVENT && x->ev.data.scalar.length == 0)
        return fail(x, 1, "yaml", "file is empty");
    if (x->ev.type != YAML_MAPPING_START_EVENT)
        return fail(x, root_line, "yaml", "the file must be a mapping of keys to values, not %s",
                    x->ev.type == YAML_SCALAR_EVENT ? "a single value" : type_word(&x->ev));
    for (;;) {
        if ((rc = next(x)) < 0)
            return rc;
        if (x->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if (x->ev.type != YAML_SCALAR_EVENT)
            return fail(x, LINE(&x->ev), "yaml", "keys must be plain words, not %s",
                        type_word(&x->ev));
        char key[72];
        int kn = x->ev.data.scalar.length > 64 ? 64 : (int)x->ev.data.scalar.length;
        snprintf(key, sizeof(key), "%.*s", kn, (const char *)x->ev.data.scalar.value);
        int i = find_row(&x->ev);
        if (i < 0)
            return fail(x, LINE(&x->ev), key, "unknown key");
        if (x->lines[i])
            return fail(x, LINE(&x->ev), key, "duplicate key (first on line %d)", x->lines[i]);
        x->lines[i] = LINE(&x->ev);
        if ((rc = next(x)) < 0 || (rc = set_value(x, &rows[i])) < 0)
            return rc;
    }
    if ((rc = next(x)) < 0 || (rc = next(x)) < 0) /* document end, then stream end */
        return rc;
    if (x->ev.type != YAML_STREAM_END_EVENT)
        return fail(x, LINE(&x->ev), "yaml", "only one document is allowed");
    return check(x, root_line);
}

int sb_scenario_parse(const char *name, const char *text, size_t len, sb_conf_t *cf,
                      unsigned *procs, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    struct ctx x = {.name = name, .text = text, .len = len, .err = err, .errlen = errlen,
                    .cf = cf, .procs = procs};
    if (len > SB_SCENARIO_MAX_BYTES)
        return fail(&x, 1, "yaml", "larger than %d bytes, the limit for a scenario file",
                    SB_SCENARIO_MAX_BYTES);
    if (!yaml_parser_initialize(&x.p))
        abort();
    yaml_parser_set_input_string(&x.p, (const unsigned char *)text, len);
    int rc = parse_root(&x);
    if (x.have_ev)
        yaml_event_delete(&x.ev);
    yaml_parser_delete(&x.p);
    return rc;
}

int sb_scenario_load(const char *path, sb_conf_t *cf, unsigned *procs, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    /* one byte past the cap is enough to know the file is too large */
    char *buf = malloc(SB_SCENARIO_MAX_BYTES + 1);
    if (!buf)
        abort();
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, SB_SCENARIO_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
            close(fd);
            free(buf);
            return -e;
        }
        if (n == 0 || (len += (size_t)n) == SB_SCENARIO_MAX_BYTES + 1)
            break;
    }
    close(fd);
    int rc = sb_scenario_parse(path, buf, len, cf, procs, err, errlen);
    free(buf);
    return rc;
}
