/*
 * YAML config loader. One table row per scalar key (name, type, range,
 * default, reloadable) drives defaults, parsing and validation, so each key
 * is checked in exactly one place (Redis static_configs[]). The file is read
 * with libyaml's event API in one pass: the layout is fixed and shallow
 * (sections, then scalars or lists of flat mappings), so anything that does
 * not fit is an error on the spot and nothing is buffered but the result.
 * Anchors and aliases are refused, which keeps the work linear in the input,
 * and the input is capped at SZ_CONF_MAX_BYTES. Any thread; no global state.
 */
#include "core/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "core/jid.h"
#include "core/log.h"
#include "core/mem.h"

enum type {
    T_U32,    /* uint32_t in [min, max] */
    T_U16,    /* uint16_t in [min, max] */
    T_BOOL,   /* true/false/yes/no */
    T_ENUM,   /* int, from <parse> */
    T_STRSET, /* char *, one of the words <parse> accepts */
    T_STR,    /* char *, non-empty */
    T_DOMAIN, /* char *, a JID domainpart in its prepared form (RFC 7622) */
    T_ADDR,   /* char *, IPv4 or IPv6 literal */
};

#define F_RELOAD 0x01u /* takes effect on SIGHUP (sz_conf_apply_reload) */
#define F_AUTO   0x02u /* "auto" is accepted and stored as 0 */
#define F_POW2   0x04u /* must be a power of two */
#define F_REQ    0x08u /* list items: the key must be present */
#define F_NULL   0x10u /* strings: null, ~ or nothing gives NULL */
#define F_C2S    0x20u /* listen items: only valid with kind c2s */

struct row {
    const char *name; /* dotted for sections ("node.reactors"), bare in list items */
    enum type type;
    unsigned flags;
    uint32_t min, max, def;     /* def: numbers, bools, enums */
    const char *def_str;        /* def: strings */
    size_t off;                 /* into sz_conf_t, sz_conf_host_t or sz_conf_listen_t */
    int (*parse)(const char *); /* T_ENUM, T_STRSET: word -> value, or -1 */
    const char *choices;        /* T_ENUM, T_STRSET: words, for messages */
};

static const char *const kind_names[] = {"c2s", "c2s-tls", "admin", "echo"};
static const char *const tls_names[] = {"starttls-required", "starttls-optional", "none"};

static int word_index(const char *s, const char *const *words, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    return -1;
}

static int parse_kind(const char *s)
{
    return word_index(s, kind_names, 4);
}

static int parse_tls(const char *s)
{
    return word_index(s, tls_names, 3);
}

static const char *const handoff_names[] = {"install", "send_fd"};

static int parse_handoff(const char *s)
{
    return word_index(s, handoff_names, 2);
}

static int parse_backend(const char *s)
{
    return strcmp(s, "sqlite") == 0 ? 0 : -1;
}

#define C(f) offsetof(sz_conf_t, f)
static const struct row conf_rows[] = {
    {"node.reactors", T_U32, F_AUTO, 1, 1024, 0, NULL, C(node.reactors), NULL, NULL},
    {"node.log_level", T_ENUM, F_RELOAD, 0, 0, SZ_LOG_INFO, NULL, C(node.log_level),
     sz_log_parse_level, "debug, info, warn or error"},
    {"node.log_file", T_STR, F_RELOAD | F_NULL, 0, 0, 0, NULL, C(node.log_file), NULL, NULL},
    {"node.max_conns_per_reactor", T_U32, F_AUTO, 16, 1u << 20, 0, NULL,
     C(node.max_conns_per_reactor), NULL, NULL},
    {"node.recv_buffers", T_U32, F_POW2, 16, 32768, 512, NULL, C(node.recv_buffers), NULL, NULL},
    {"node.recv_buffer_bytes", T_U32, 0, 512, 65536, 4096, NULL, C(node.recv_buffer_bytes), NULL,
     NULL},
    {"node.queue_entries", T_U32, F_POW2, 16, 1u << 20, 4096, NULL, C(node.queue_entries), NULL,
     NULL},
    {"node.batch_wait_us", T_U32, 0, 0, 100000, 2000, NULL, C(node.batch_wait_us), NULL, NULL},
    {"node.pin_threads", T_BOOL, 0, 0, 0, 0, NULL, C(node.pin_threads), NULL, NULL},
    {"node.handoff", T_ENUM, 0, 0, 0, SZ_HANDOFF_INSTALL, NULL, C(node.handoff), parse_handoff,
     "install or send_fd"},
    {"node.secret", T_STR, F_NULL, 0, 0, 0, NULL, C(node.secret), NULL, NULL},
    {"storage.backend", T_STRSET, 0, 0, 0, 0, "sqlite", C(storage.backend), parse_backend,
     "sqlite"},
    {"storage.path", T_STR, 0, 0, 0, 0, "var/data/stanzad.db", C(storage.path), NULL, NULL},
    {"limits.max_stanza_bytes", T_U32, F_RELOAD, 1024, 16777216, 262144, NULL,
     C(limits.max_stanza_bytes), NULL, NULL},
    {"limits.max_depth", T_U32, F_RELOAD, 4, 1024, 64, NULL, C(limits.max_depth), NULL, NULL},
    {"limits.max_attrs", T_U32, F_RELOAD, 1, 1024, 64, NULL, C(limits.max_attrs), NULL, NULL},
    {"limits.max_output_bytes", T_U32, F_RELOAD, 4096, 1073741824, 1048576, NULL,
     C(limits.max_output_bytes), NULL, NULL},
    {"limits.admin_timeout_ms", T_U32, F_RELOAD, 100, 600000, 10000, NULL,
     C(limits.admin_timeout_ms), NULL, NULL},
    {"limits.max_unauth_per_source", T_U32, F_RELOAD, 1, 1000000, 2000, NULL,
     C(limits.max_unauth_per_source), NULL, NULL},
    {"limits.source_rate_per_sec", T_U32, F_RELOAD, 0, 1000000, 100, NULL,
     C(limits.source_rate_per_sec), NULL, NULL},
    {"limits.source_burst", T_U32, F_RELOAD, 1, 1000000, 1000, NULL, C(limits.source_burst), NULL,
     NULL},
    {"limits.handshake_timeout_ms", T_U32, F_RELOAD, 1000, 600000, 10000, NULL,
     C(limits.handshake_timeout_ms), NULL, NULL},
    {"limits.register_per_source_per_hour", T_U32, F_RELOAD, 0, 1000000, 5, NULL,
     C(limits.register_per_source_per_hour), NULL, NULL},
    {"limits.preauth_timeout_ms", T_U32, F_RELOAD, 1000, 600000, 60000, NULL,
     C(limits.preauth_timeout_ms), NULL, NULL},
    {"limits.max_unacked_stanzas", T_U32, F_RELOAD, 8, 1000000, 500, NULL,
     C(limits.max_unacked_stanzas), NULL, NULL},
    {"limits.sm_resume_timeout_s", T_U32, F_RELOAD, 0, 86400, 300, NULL,
     C(limits.sm_resume_timeout_s), NULL, NULL},
    {"limits.max_roster_items", T_U32, F_RELOAD, 1, 100000, 1000, NULL,
     C(limits.max_roster_items), NULL, NULL},
    {"limits.max_blocklist_items", T_U32, F_RELOAD, 1, 100000, 1000, NULL,
     C(limits.max_blocklist_items), NULL, NULL},
    {"limits.max_vcard_bytes", T_U32, F_RELOAD, 1024, 16777216, 65536, NULL,
     C(limits.max_vcard_bytes), NULL, NULL},
    {"limits.max_private_bytes", T_U32, F_RELOAD, 1024, 16777216, 262144, NULL,
     C(limits.max_private_bytes), NULL, NULL},
    {"limits.max_offline_messages", T_U32, F_RELOAD, 0, 1000000, 1000, NULL,
     C(limits.max_offline_messages), NULL, NULL},
    {"limits.idle_timeout_ms", T_U32, F_RELOAD, 0, 86400000, 600000, NULL,
     C(limits.idle_timeout_ms), NULL, NULL},
    {"limits.ping_timeout_ms", T_U32, F_RELOAD, 1000, 600000, 60000, NULL,
     C(limits.ping_timeout_ms), NULL, NULL},
    {"limits.csi_max_held", T_U32, F_RELOAD, 1, 100000, 256, NULL, C(limits.csi_max_held), NULL,
     NULL},
    {"limits.scram_iterations", T_U32, 0, 4096, 10000000, 4096, NULL,
     C(limits.scram_iterations), NULL, NULL},
    {"tls.unique_on_tls13", T_BOOL, 0, 0, 0, 1, NULL, C(tls.unique_on_tls13), NULL, NULL},
    {"tls.scram_sha1_plus", T_BOOL, 0, 0, 0, 0, NULL, C(tls.scram_sha1_plus), NULL, NULL},
};
#undef C

#define H(f) offsetof(sz_conf_host_t, f)
static const struct row host_rows[] = {
    {"domain", T_DOMAIN, F_REQ, 0, 0, 0, NULL, H(domain), NULL, NULL},
    {"tls_cert", T_STR, F_NULL, 0, 0, 0, NULL, H(tls_cert), NULL, NULL},
    {"tls_key", T_STR, F_NULL, 0, 0, 0, NULL, H(tls_key), NULL, NULL},
    {"register", T_BOOL, 0, 0, 0, 0, NULL, H(register_enabled), NULL, NULL},
};
#undef H

#define L(f) offsetof(sz_conf_listen_t, f)
static const struct row listen_rows[] = {
    {"kind", T_ENUM, F_REQ, 0, 0, 0, NULL, L(kind), parse_kind, "c2s, c2s-tls, admin or echo"},
    {"address", T_ADDR, F_REQ, 0, 0, 0, NULL, L(address), NULL, NULL},
    {"port", T_U16, F_REQ, 1, 65535, 0, NULL, L(port), NULL, NULL},
    {"tls", T_ENUM, F_C2S, 0, 0, SZ_TLS_STARTTLS_REQUIRED, NULL, L(tls), parse_tls,
     "starttls-required, starttls-optional or none"},
    {"plain_without_tls", T_BOOL, F_C2S, 0, 0, 0, NULL, L(plain_without_tls), NULL, NULL},
};
#undef L

#define NROWS(t) (sizeof(t) / sizeof((t)[0]))

/* Seen-key sets are bitmasks (uint64_t) and per-item line arrays (int[8]). */
_Static_assert(NROWS(conf_rows) <= 64, "conf_rows: widen the seen mask");
_Static_assert(NROWS(host_rows) <= 8 && NROWS(listen_rows) <= 8, "item rows: widen lines[]");

/* Parse state of one sz_conf_parse call. */
struct ctx {
    yaml_parser_t p;
    yaml_event_t ev; /* current event; valid when <have_ev> */
    bool have_ev;
    const char *name;
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    sz_conf_t *c;
    int root_line;   /* line of the top-level mapping */
    int hosts_line;  /* line of the hosts value, 0 when absent */
    int listen_line; /* line of the listen value, 0 when absent */
};

#define LINE(e) ((int)(e)->start_mark.line + 1)

/* Writes one error line and returns -EINVAL. Control bytes (from quoted
 * keys or values) become '?', so the message stays on one line whatever the
 * input holds. */
static int report(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int report(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *s = err; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    return -EINVAL;
}

/* "<file>:<line>: <key>: <message>"; returns -EINVAL. */
static int fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return report(x->err, x->errlen, "%s:%d: %s: %s", x->name, line, key, msg);
}

static int yaml_fail(struct ctx *x)
{
    int line;
    if (x->p.error == YAML_READER_ERROR) {
        /* The reader reports a byte offset only (bad UTF-8, control bytes). */
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

/* Advances to the next event; an alias is refused here once for all. */
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

/* Plain null: nothing, "~" or "null" (YAML 1.1 spellings). */
static bool is_null(const yaml_event_t *e)
{
    if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)e->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *type_word(const yaml_event_t *e)
{
    return e->type == YAML_MAPPING_START_EVENT ? "a mapping" : "a list";
}

/* Returns 0 for a number, 1 for a number above UINT32_MAX, -1 otherwise.
 * Decimal digits only: no sign, no 0x, no exponent, no separators. */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            v = (uint64_t)UINT32_MAX + 1; /* saturate: keeps scanning for non-digits */
    }
    *out = (uint32_t)v;
    return v > UINT32_MAX ? 1 : 0;
}

/* A served domain must be a JID domainpart (RFC 7622 §3.2): the router
 * compares it with the domains of parsed JIDs, and c2s writes it as is
 * into stream headers and stanzas. Returns the prepared form (lower case,
 * IDNA-checked, a trailing dot removed; heap) or NULL when <s> is not one. */
static char *domain_prep(const char *s, size_t n)
{
    char out[1024];
    size_t len;
    if (sz_jid_prep(SZ_JID_PART_DOMAIN, s, n, out, sizeof(out), &len, NULL) < 0)
        return NULL;
    return sz_strndup(out, len);
}

static bool addr_ok(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Stores the current event (a value) into <base>+<r->off>, after checking it
 * against <r>. <key> is the dotted key for messages. */
static int set_value(struct ctx *x, const struct row *r, void *base, const char *key)
{
    const yaml_event_t *e = &x->ev;
    int line = LINE(e);
    if (e->type != YAML_SCALAR_EVENT)
        return fail(x, line, key, "must be a single value, not %s", type_word(e));
    const char *s = (const char *)e->data.scalar.value;
    size_t n = e->data.scalar.length;
    void *p = (char *)base + r->off;
    if (strlen(s) != n)
        return fail(x, line, key, "must not contain NUL bytes");

    switch (r->type) {
    case T_U32:
    case T_U16: {
        uint32_t v = 0;
        bool is_auto = (r->flags & F_AUTO) && !strcmp(s, "auto");
        int rc = is_auto ? 0 : parse_u32(s, &v);
        if (rc < 0)
            return fail(x, line, key, "must be %sa number between %u and %u, not \"%.40s\"",
                        (r->flags & F_AUTO) ? "auto or " : "", r->min, r->max, s);
        if (!is_auto && (rc > 0 || v < r->min || v > r->max))
            return fail(x, line, key, "must be between %u and %u", r->min, r->max);
        if (!is_auto && (r->flags & F_POW2) && (v & (v - 1)))
            return fail(x, line, key, "must be a power of two");
        if (r->type == T_U16)
            *(uint16_t *)p = (uint16_t)v;
        else
            *(uint32_t *)p = v;
        return 0;
    }
    case T_BOOL:
        if (sz_conf_parse_bool(s, (bool *)p) < 0)
            return fail(x, line, key, "must be true, false, yes or no, not \"%.40s\"", s);
        return 0;
    case T_ENUM:
    case T_STRSET: {
        int v = r->parse(s);
        if (v < 0)
            return fail(x, line, key, "unknown value \"%.40s\" (expected %s)", s, r->choices);
        if (r->type == T_ENUM) {
            *(int *)p = v;
            return 0;
        }
        break; /* T_STRSET stores the word itself, below */
    }
    case T_STR:
        if ((r->flags & F_NULL) && is_null(e)) {
            sz_free(*(char **)p);
            *(char **)p = NULL;
            return 0;
        }
        if (n == 0)
            return fail(x, line, key, "must not be empty");
        break;
    case T_DOMAIN:
        /* Checked on a copy so that a bad value is quoted as written. */
        break;
    case T_ADDR:
        if (!addr_ok(s))
            return fail(x, line, key, "\"%.60s\" is not an IPv4 or IPv6 address", s);
        break;
    }

    char *copy = r->type == T_DOMAIN ? domain_prep(s, n) : sz_strndup(s, n);
    if (!copy)
        return fail(x, line, key, "\"%.60s\" is not a valid domain name", s);
    sz_free(*(char **)p);
    *(char **)p = copy;
    return 0;
}

static void set_defaults(const struct row *rows, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        void *p = (char *)base + rows[i].off;
        switch (rows[i].type) {
        case T_U32:
            *(uint32_t *)p = rows[i].def;
            break;
        case T_U16:
            *(uint16_t *)p = (uint16_t)rows[i].def;
            break;
        case T_BOOL:
            *(bool *)p = rows[i].def != 0;
            break;
        case T_ENUM:
            *(int *)p = (int)rows[i].def;
            break;
        default:
            *(char **)p = sz_strdup(rows[i].def_str);
            break;
        }
    }
}

/* Current event is a mapping key; returns it as "<prefix>.<key>" in <out>
 * (the key cut at 64 bytes, for messages), or fails when it is not a scalar. */
static int key_name(struct ctx *x, const char *prefix, char *out, size_t outlen)
{
    const yaml_event_t *e = &x->ev;
    if (e->type != YAML_SCALAR_EVENT)
        return fail(x, LINE(e), *prefix ? prefix : "yaml", "keys must be plain words, not %s",
                    type_word(e));
    int n = e->data.scalar.length > 64 ? 64 : (int)e->data.scalar.length;
    snprintf(out, outlen, "%s%s%.*s", prefix, *prefix ? "." : "", n,
             (const char *)e->data.scalar.value);
    return 0;
}

/* Finds the row called <key> (length-checked, so a key holding a NUL byte
 * matches nothing). */
static int find_row(const struct row *rows, size_t n, const char *prefix, const yaml_event_t *e)
{
    const char *k = (const char *)e->data.scalar.value;
    size_t kl = e->data.scalar.length, pl = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        const char *name = rows[i].name;
        if (pl) {
            if (strncmp(name, prefix, pl) != 0 || name[pl] != '.')
                continue;
            name += pl + 1;
        }
        if (strlen(name) == kl && memcmp(name, k, kl) == 0)
            return (int)i;
    }
    return -1;
}

/* node, storage, limits, tls: the current event is the section's value. */
static int parse_section(struct ctx *x, const char *sec)
{
    if (is_null(&x->ev))
        return 0; /* "limits:" with every key commented out: all defaults */
    if (x->ev.type != YAML_MAPPING_START_EVENT)
        return fail(x, LINE(&x->ev), sec, "must be a mapping of keys, not %s",
                    x->ev.type == YAML_SCALAR_EVENT ? "a single value" : "a list");
    uint64_t seen = 0;
    char key[160];
    int rc;
    for (;;) {
        if ((rc = next(x)) < 0)
            return rc;
        if (x->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if ((rc = key_name(x, sec, key, sizeof(key))) < 0)
            return rc;
        int i = find_row(conf_rows, NROWS(conf_rows), sec, &x->ev);
        if (i < 0)
            return fail(x, LINE(&x->ev), key, "unknown key");
        if (seen & (1ull << i))
            return fail(x, LINE(&x->ev), key, "duplicate key");
        seen |= 1ull << i;
        if ((rc = next(x)) < 0 || (rc = set_value(x, &conf_rows[i], x->c, key)) < 0)
            return rc;
    }
}

/* One item of hosts or listen: a flat mapping at the current event.
 * <lines>[i] receives the line of key i (0 when absent). */
static int parse_item(struct ctx *x, const struct row *rows, size_t nrows, void *item,
                      const char *prefix, int *lines)
{
    char key[160];
    int rc;
    for (;;) {
        if ((rc = next(x)) < 0)
            return rc;
        if (x->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if ((rc = key_name(x, prefix, key, sizeof(key))) < 0)
            return rc;
        int i = find_row(rows, nrows, "", &x->ev);
        if (i < 0)
            return fail(x, LINE(&x->ev), key, "unknown key");
        if (lines[i])
            return fail(x, LINE(&x->ev), key, "duplicate key");
        lines[i] = LINE(&x->ev);
        if ((rc = next(x)) < 0 || (rc = set_value(x, &rows[i], item, key)) < 0)
            return rc;
    }
    return 0;
}

/* hosts or listen: the current event is the value of the key. */
static int parse_list(struct ctx *x, bool is_listen)
{
    const char *sec = is_listen ? "listen" : "hosts";
    const struct row *rows = is_listen ? listen_rows : host_rows;
    size_t nrows = is_listen ? NROWS(listen_rows) : NROWS(host_rows);
    size_t size = is_listen ? sizeof(sz_conf_listen_t) : sizeof(sz_conf_host_t);
    void **arr = is_listen ? (void **)&x->c->listens : (void **)&x->c->hosts;
    size_t *count = is_listen ? &x->c->nlistens : &x->c->nhosts;
    size_t cap = 0;
    int rc;

    if (is_listen)
        x->listen_line = LINE(&x->ev);
    else
        x->hosts_line = LINE(&x->ev);
    if (is_null(&x->ev))
        return 0;
    if (x->ev.type != YAML_SEQUENCE_START_EVENT)
        return fail(x, LINE(&x->ev), sec, "must be a list, not %s",
                    x->ev.type == YAML_SCALAR_EVENT ? "a single value" : "a mapping");
    for (;;) {
        if ((rc = next(x)) < 0)
            return rc;
        if (x->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        char prefix[48];
        snprintf(prefix, sizeof(prefix), "%s[%zu]", sec, *count);
        if (x->ev.type != YAML_MAPPING_START_EVENT)
            return fail(x, LINE(&x->ev), prefix, "must be a mapping of keys, not %s",
                        x->ev.type == YAML_SCALAR_EVENT ? "a single value" : "a list");
        int item_line = LINE(&x->ev);
        /* Grow by doubling; the count stays bounded by the 1 MiB input. */
        if (*count == cap) {
            cap = cap ? cap * 2 : 4;
            *arr = sz_realloc(*arr, cap * size);
        }
        void *item = (char *)*arr + *count * size;
        memset(item, 0, size);
        (*count)++; /* counted now, so sz_conf_free sees a half-parsed item */
        set_defaults(rows, nrows, item);
        int lines[8] = {0};
        if ((rc = parse_item(x, rows, nrows, item, prefix, lines)) < 0)
            return rc;
        char key[160];
        for (size_t i = 0; i < nrows; i++) {
            if ((rows[i].flags & F_REQ) && !lines[i]) {
                snprintf(key, sizeof(key), "%s.%s", prefix, rows[i].name);
                return fail(x, item_line, key, "required key is missing");
            }
        }
        if (is_listen) {
            sz_conf_listen_t *l = item;
            l->line = item_line;
            /* tls and plain_without_tls describe STARTTLS; c2s-tls is TLS
             * from the first byte, admin and echo never speak XMPP. */
            for (size_t i = 0; i < nrows; i++) {
                if ((rows[i].flags & F_C2S) && lines[i] && l->kind != SZ_LISTEN_C2S) {
                    snprintf(key, sizeof(key), "%s.%s", prefix, rows[i].name);
                    return fail(x, lines[i], key, "only for c2s listeners");
                }
            }
        } else {
            ((sz_conf_host_t *)item)->line = item_line;
        }
    }
}

static int parse_root(struct ctx *x)
{
    static const char *const sections[] = {"node", "hosts", "listen", "storage", "limits", "tls"};
    uint32_t seen = 0;
    char key[160];
    int rc;

    if ((rc = next(x)) < 0 || (rc = next(x)) < 0) /* STREAM_START, then the first document */
        return rc;
    if (x->ev.type == YAML_STREAM_END_EVENT)
        return fail(x, 1, "yaml", "file is empty");
    if ((rc = next(x)) < 0) /* past DOCUMENT_START */
        return rc;
    x->root_line = LINE(&x->ev);
    if (is_null(&x->ev)) /* "---" and nothing else */
        return fail(x, 1, "yaml", "file is empty");
    if (x->ev.type != YAML_MAPPING_START_EVENT)
        return fail(x, x->root_line, "yaml", "top level must be a mapping of sections, not %s",
                    x->ev.type == YAML_SCALAR_EVENT ? "a single value" : "a list");
    for (;;) {
        if ((rc = next(x)) < 0)
            return rc;
        if (x->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if ((rc = key_name(x, "", key, sizeof(key))) < 0)
            return rc;
        int i = -1;
        if (strlen((const char *)x->ev.data.scalar.value) == x->ev.data.scalar.length)
            i = word_index((const char *)x->ev.data.scalar.value, sections, 6);
        if (i < 0)
            return fail(x, LINE(&x->ev), key, "unknown section");
        if (seen & (1u << i))
            return fail(x, LINE(&x->ev), key, "duplicate key");
        seen |= 1u << i;
        if ((rc = next(x)) < 0)
            return rc;
        rc = (i == 1 || i == 2) ? parse_list(x, i == 2) : parse_section(x, sections[i]);
        if (rc < 0)
            return rc;
    }
    if ((rc = next(x)) < 0) /* DOCUMENT_END */
        return rc;
    if ((rc = next(x)) < 0)
        return rc;
    if (x->ev.type == YAML_DOCUMENT_START_EVENT)
        return fail(x, LINE(&x->ev), "yaml", "only one document is allowed");
    return 0;
}

/* Keys for the duplicate checks. Each starts with the item's index, which
 * find_dup() reads through a size_t pointer. The listener key holds the
 * binary address, so that "::1" and "0:0:0:0:0:0:0:1" are one listener. */
struct lkey {
    size_t idx;
    int fam;
    unsigned char addr[sizeof(struct in6_addr)];
    uint16_t port;
};

struct dkey {
    size_t idx;
    const char *domain;
};

static int lkey_val(const void *pa, const void *pb)
{
    const struct lkey *a = pa, *b = pb;
    if (a->fam != b->fam)
        return a->fam < b->fam ? -1 : 1;
    int d = memcmp(a->addr, b->addr, sizeof(a->addr));
    if (d)
        return d;
    return a->port < b->port ? -1 : a->port > b->port;
}

static int dkey_val(const void *pa, const void *pb)
{
    return strcmp(((const struct dkey *)pa)->domain, ((const struct dkey *)pb)->domain);
}

static int cmp_idx(const void *a, const void *b)
{
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    return ia < ib ? -1 : ia > ib;
}

static int cmp_lkey(const void *a, const void *b)
{
    int d = lkey_val(a, b);
    return d ? d : cmp_idx(a, b);
}

static int cmp_dkey(const void *a, const void *b)
{
    int d = dkey_val(a, b);
    return d ? d : cmp_idx(a, b);
}

/* Duplicates are found by sorting (n log n: a 1 MiB file may list tens of
 * thousands of items). Finds the lowest index that repeats an earlier item
 * and the first item it repeats. Returns false when all items differ. */
static bool find_dup(void *keys, size_t n, size_t size, int (*cmp)(const void *, const void *),
                     int (*val)(const void *, const void *), size_t *dup, size_t *orig)
{
    qsort(keys, n, size, cmp);
    *dup = SIZE_MAX;
    const char *first = keys; /* first key of the current run of equal values */
    for (size_t i = 1; i < n; i++) {
        const char *prev = (const char *)keys + (i - 1) * size, *cur = prev + size;
        if (val(prev, cur) != 0) {
            first = cur;
            continue;
        }
        if (*(const size_t *)cur < *dup) {
            *dup = *(const size_t *)cur;
            *orig = *(const size_t *)first;
        }
    }
    return *dup != SIZE_MAX;
}

static int check_listeners(struct ctx *x)
{
    sz_conf_t *c = x->c;
    if (c->nlistens == 0)
        return fail(x, x->listen_line ? x->listen_line : x->root_line, "listen",
                    "at least one listener is required");
    struct lkey *k = sz_calloc(c->nlistens, sizeof(*k));
    for (size_t i = 0; i < c->nlistens; i++) {
        k[i].fam = inet_pton(AF_INET, c->listens[i].address, k[i].addr) == 1 ? AF_INET : AF_INET6;
        if (k[i].fam == AF_INET6)
            inet_pton(AF_INET6, c->listens[i].address, k[i].addr); /* checked when parsed */
        k[i].port = c->listens[i].port;
        k[i].idx = i;
    }
    size_t dup, orig;
    bool found = find_dup(k, c->nlistens, sizeof(*k), cmp_lkey, lkey_val, &dup, &orig);
    sz_free(k);
    if (found) {
        char key[48];
        snprintf(key, sizeof(key), "listen[%zu]", dup);
        return fail(x, c->listens[dup].line, key, "same address and port as listen[%zu] (line %d)",
                    orig, c->listens[orig].line);
    }
    return 0;
}

static int check_hosts(struct ctx *x)
{
    sz_conf_t *c = x->c;
    char key[48];

    if (c->nhosts) {
        struct dkey *k = sz_calloc(c->nhosts, sizeof(*k));
        for (size_t i = 0; i < c->nhosts; i++)
            k[i] = (struct dkey){i, c->hosts[i].domain};
        size_t dup, orig;
        bool found = find_dup(k, c->nhosts, sizeof(*k), cmp_dkey, dkey_val, &dup, &orig);
        sz_free(k);
        if (found) {
            snprintf(key, sizeof(key), "hosts[%zu].domain", dup);
            return fail(x, c->hosts[dup].line, key, "same domain as hosts[%zu] (line %d)", orig,
                        c->hosts[orig].line);
        }
    }
    for (size_t i = 0; i < c->nhosts; i++) {
        if (!c->hosts[i].tls_cert != !c->hosts[i].tls_key) {
            snprintf(key, sizeof(key), "hosts[%zu]", i);
            return fail(x, c->hosts[i].line, key, "tls_cert and tls_key must be given together");
        }
    }

    /* The first listener of each kind that needs hosts, for the messages. */
    size_t c2s = SIZE_MAX, c2s_tls = SIZE_MAX;
    for (size_t i = c->nlistens; i-- > 0;) {
        if (c->listens[i].kind == SZ_LISTEN_C2S)
            c2s = i;
        else if (c->listens[i].kind == SZ_LISTEN_C2S_TLS)
            c2s_tls = i;
    }
    size_t xmpp = c2s < c2s_tls ? c2s : c2s_tls;
    if (xmpp != SIZE_MAX && c->nhosts == 0)
        return fail(x, x->hosts_line ? x->hosts_line : c->listens[xmpp].line, "hosts",
                    "at least one host is required by the %s listener listen[%zu]",
                    sz_conf_kind_name(c->listens[xmpp].kind), xmpp);
    if (c2s_tls == SIZE_MAX)
        return 0;
    /* Direct TLS offers no plaintext fallback: every host it may be asked
     * for (by SNI or stream to=) needs a certificate. */
    for (size_t i = 0; i < c->nhosts; i++) {
        if (!c->hosts[i].tls_cert) {
            snprintf(key, sizeof(key), "hosts[%zu]", i);
            return fail(x, c->hosts[i].line, key,
                        "tls_cert and tls_key are required by the c2s-tls listener listen[%zu] "
                        "(line %d)",
                        c2s_tls, c->listens[c2s_tls].line);
        }
    }
    return 0;
}

int sz_conf_parse(const char *name, const char *text, size_t len, sz_conf_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (len > SZ_CONF_MAX_BYTES)
        return report(err, errlen, "%s: larger than %u bytes, the limit for a config file", name,
                      SZ_CONF_MAX_BYTES);

    struct ctx x = {
        .name = name, .text = text ? text : "", .len = len, .err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&x.p))
        return report(err, errlen, "%s: out of memory", name);
    yaml_parser_set_input_string(&x.p, (const unsigned char *)x.text, len);

    sz_conf_t *c = sz_calloc(1, sizeof(*c));
    c->path = sz_strdup(name);
    set_defaults(conf_rows, NROWS(conf_rows), c);
    x.c = c;

    int rc = parse_root(&x);
    if (rc == 0)
        rc = check_listeners(&x);
    if (rc == 0)
        rc = check_hosts(&x);

    if (x.have_ev)
        yaml_event_delete(&x.ev);
    yaml_parser_delete(&x.p);
    if (rc < 0) {
        sz_conf_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int sz_conf_load(const char *path, sz_conf_t **out, char *err, size_t errlen)
{
    char eb[128];
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        report(err, errlen, "%s: cannot open: %s", path, strerror_r(e, eb, sizeof(eb)));
        return -e;
    }
    /* Read at most one byte past the cap, whatever kind of file this is
     * (st_size says nothing for a pipe), so a huge file costs 1 MiB. */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap == SZ_CONF_MAX_BYTES + 1)
                break;
            cap = cap ? cap * 2 : 16384;
            if (cap > SZ_CONF_MAX_BYTES + 1)
                cap = SZ_CONF_MAX_BYTES + 1;
            buf = sz_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            sz_free(buf);
            report(err, errlen, "%s: cannot read: %s", path, strerror_r(e, eb, sizeof(eb)));
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    int rc = sz_conf_parse(path, buf, len, out, err, errlen);
    sz_free(buf);
    return rc;
}

static bool is_string(const struct row *r)
{
    return r->type == T_STRSET || r->type == T_STR || r->type == T_DOMAIN || r->type == T_ADDR;
}

static void free_strings(const struct row *rows, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        if (is_string(&rows[i]))
            sz_free(*(char **)((char *)base + rows[i].off));
}

void sz_conf_free(sz_conf_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nhosts; i++)
        free_strings(host_rows, NROWS(host_rows), &c->hosts[i]);
    for (size_t i = 0; i < c->nlistens; i++)
        free_strings(listen_rows, NROWS(listen_rows), &c->listens[i]);
    free_strings(conf_rows, NROWS(conf_rows), c);
    sz_free(c->hosts);
    sz_free(c->listens);
    sz_free(c->path);
    sz_free(c);
}

const char *sz_conf_kind_name(enum sz_listen_kind k)
{
    return (unsigned)k < 4 ? kind_names[k] : "unknown";
}

static size_t value_size(const struct row *r)
{
    switch (r->type) {
    case T_U32:
        return sizeof(uint32_t);
    case T_U16:
        return sizeof(uint16_t);
    case T_BOOL:
        return sizeof(bool);
    case T_ENUM:
        return sizeof(int);
    default:
        return sizeof(char *);
    }
}

int sz_conf_apply_reload(sz_conf_t *cur, sz_conf_t *next, char *note, size_t notelen)
{
    int kept = 0;
    size_t used = 0;
    if (note && notelen)
        note[0] = '\0';
    for (size_t i = 0; i < NROWS(conf_rows); i++) {
        const struct row *r = &conf_rows[i];
        char *a = (char *)cur + r->off, *b = (char *)next + r->off;
        size_t sz = value_size(r);
        bool same;
        if (is_string(r)) {
            const char *sa = *(char **)a, *sb = *(char **)b;
            same = sa == sb || (sa && sb && !strcmp(sa, sb));
        } else {
            same = memcmp(a, b, sz) == 0;
        }
        if (same)
            continue;
        if (r->flags & F_RELOAD) {
            if (sz == sizeof(uint32_t) && !is_string(r)) {
                /* Reactors read these while the node runs: one atomic
                 * store each (readers use relaxed atomic loads). */
                uint32_t v, old;
                memcpy(&v, b, sizeof(v));
                old = __atomic_exchange_n((uint32_t *)(void *)a, v, __ATOMIC_RELAXED);
                memcpy(b, &old, sizeof(old));
                continue;
            }
            /* Swap, so <next> owns the old strings and frees them. Strings
             * are read by the main thread only. */
            unsigned char tmp[sizeof(char *) > sizeof(uint32_t) ? sizeof(char *) : 4];
            memcpy(tmp, a, sz);
            memcpy(a, b, sz);
            memcpy(b, tmp, sz);
            continue;
        }
        kept++;
        if (note && used < notelen) {
            int n = snprintf(note + used, notelen - used, "%s%s", kept > 1 ? ", " : "", r->name);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    return kept;
}

int sz_conf_parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "no"))
        *out = false;
    else
        return -1;
    return 0;
}
