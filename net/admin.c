/*
 * Admin HTTP endpoint: GET (or HEAD) /metrics in the Prometheus text
 * format and /healthz, one request per connection. Small and strict:
 * requests over 8 KiB, a malformed request line or header, a body, or a
 * request not complete within limits.admin_timeout_ms get an error status
 * (where one fits) and the connection is closed. Runs on any reactor; reads
 * the other reactors' counters with relaxed loads only.
 */
#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/node.h"
#include "net/proto.h"

#define REQ_MAX 8192

uint32_t sz_admin_timeout_ms = 10000;

/* Allocated on the first byte, freed when the connection closes. */
struct admin_req {
    uint32_t len;
    char buf[REQ_MAX];
};

/* Growable text buffer for the response body. */
struct text {
    char *p;
    size_t len, cap;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
        t->p = sz_realloc(t->p, t->cap);
    }
}

static void render_metrics(struct text *t)
{
    sz_node_t *node = sz_node_current();
    unsigned n = sz_node_nreactors(node);
    for (const sz_stat_desc_t *d = sz_stat_descs; d->metric; d++) {
        tprintf(t, "# HELP stanzad_%s %s\n# TYPE stanzad_%s %s\n", d->metric, d->help, d->metric,
                d->type);
        for (unsigned i = 0; i < n; i++)
            tprintf(t, "stanzad_%s{reactor=\"%u\"} %llu\n", d->metric, i,
                    (unsigned long long)sz_stat_read(&sz_node_reactor(node, i)->stats, d->offset));
    }
    tprintf(t, "# HELP stanzad_direct_slots_free Direct-descriptor slots free\n"
               "# TYPE stanzad_direct_slots_free gauge\n");
    for (unsigned i = 0; i < n; i++) {
        const sz_reactor_t *r = sz_node_reactor(node, i);
        uint64_t used = SZ_STAT_GET(&r->stats, slots_used);
        tprintf(t, "stanzad_direct_slots_free{reactor=\"%u\"} %llu\n", i,
                (unsigned long long)(r->direct_slots > used ? r->direct_slots - used : 0));
    }
    tprintf(t, "# HELP stanzad_direct_slots_total Direct-descriptor table size\n"
               "# TYPE stanzad_direct_slots_total gauge\n");
    for (unsigned i = 0; i < n; i++)
        tprintf(t, "stanzad_direct_slots_total{reactor=\"%u\"} %u\n", i,
                sz_node_reactor(node, i)->direct_slots);
    const sz_xq_t *q = sz_node_xq(node);
    tprintf(t, "# HELP stanzad_queue_depth Messages waiting in a cross-reactor queue\n"
               "# TYPE stanzad_queue_depth gauge\n");
    for (unsigned s = 0; s < n; s++)
        for (unsigned d = 0; d < n; d++)
            tprintf(t, "stanzad_queue_depth{from=\"%u\",to=\"%u\"} %u\n", s, d,
                    sz_xq_depth(q, s, d));
    tprintf(t, "# HELP stanzad_queue_full_total Pushes that found a cross-reactor queue full\n"
               "# TYPE stanzad_queue_full_total counter\n");
    for (unsigned s = 0; s < n; s++)
        for (unsigned d = 0; d < n; d++)
            tprintf(t, "stanzad_queue_full_total{from=\"%u\",to=\"%u\"} %llu\n", s, d,
                    (unsigned long long)sz_xq_full_events(q, s, d));
    tprintf(t, "# HELP stanzad_reactors Reactor threads\n# TYPE stanzad_reactors gauge\n"
               "stanzad_reactors %u\n",
            n);
    tprintf(t, "# HELP stanzad_uptime_seconds Seconds since the node started\n"
               "# TYPE stanzad_uptime_seconds gauge\nstanzad_uptime_seconds %.3f\n",
            (double)sz_node_uptime_ms(node) / 1000.0);
}

static void respond(sz_conn_t *c, int status, const char *reason, const char *extra,
                    const char *body, size_t blen, bool head)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                     status, reason, blen, extra ? extra : "");
    sz_conn_send(c, hdr, (size_t)n);
    if (!head && blen)
        sz_conn_send(c, body, blen);
    sz_conn_close(c, true);
}

static void reject(sz_conn_t *c, int status, const char *reason)
{
    sz_reactor_t *r = sz_conn_reactor(c);
    SZ_STAT_ADD(&r->stats, admin_bad, 1);
    respond(c, status, reason, NULL, reason, strlen(reason), false);
}

static bool is_tchar(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Validates the header block <p>[0..<len>) (lines after the request line,
 * CRLF-terminated, without the final empty line). Returns false when
 * malformed or when it announces a body. */
static bool headers_ok(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *eol = memmem(p + i, len - i, "\r\n", 2);
        if (!eol)
            return false;
        size_t ll = (size_t)(eol - (p + i));
        const char *line = p + i;
        size_t k = 0;
        while (k < ll && is_tchar(line[k]))
            k++;
        if (k == 0 || k >= ll || line[k] != ':')
            return false; /* also rejects obsolete line folding */
        for (size_t j = k + 1; j < ll; j++) {
            unsigned char ch = (unsigned char)line[j];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return false;
        }
        if ((k == 14 && strncasecmp(line, "Content-Length", 14) == 0) ||
            (k == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0)) {
            const char *v = line + k + 1;
            size_t vl = ll - k - 1;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            if (!(k == 14 && vl == 1 && *v == '0'))
                return false; /* GET with a body: not for us */
        }
        i += ll + 2;
    }
    return true;
}

static void handle(sz_conn_t *c, struct admin_req *q, size_t hdr_end)
{
    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
    const char *p = q->buf;
    const char *eol = memmem(p, hdr_end, "\r\n", 2);
    size_t ll = (size_t)(eol - p);
    size_t m = 0;
    while (m < ll && p[m] >= 'A' && p[m] <= 'Z')
        m++;
    if (m == 0 || m >= ll || p[m] != ' ')
        return reject(c, 400, "Bad Request");
    const char *target = p + m + 1;
    const char *sp = memchr(target, ' ', ll - m - 1);
    if (!sp || *target != '/')
        return reject(c, 400, "Bad Request");
    size_t tl = (size_t)(sp - target);
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            return reject(c, 400, "Bad Request");
    size_t vl = ll - (size_t)(sp + 1 - p);
    if (vl != 8 || (memcmp(sp + 1, "HTTP/1.1", 8) != 0 && memcmp(sp + 1, "HTTP/1.0", 8) != 0))
        return reject(c, 400, "Bad Request");
    if (!headers_ok(eol + 2, hdr_end - ll - 2))
        return reject(c, 400, "Bad Request");

    bool head = m == 4 && memcmp(p, "HEAD", 4) == 0;
    if (!head && !(m == 3 && memcmp(p, "GET", 3) == 0)) {
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, admin_bad, 1);
        return respond(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                       "Method Not Allowed", 18, false);
    }
    /* The query string, if any, is ignored. */
    const char *qm = memchr(target, '?', tl);
    size_t pl = qm ? (size_t)(qm - target) : tl;
    sz_reactor_t *r = sz_conn_reactor(c);
    if (pl == 8 && memcmp(target, "/metrics", 8) == 0) {
        struct text t = {sz_malloc(16384), 0, 16384};
        render_metrics(&t);
        SZ_STAT_ADD(&r->stats, admin_requests, 1);
        respond(c, 200, "OK", NULL, t.p, t.len, head);
        sz_free(t.p);
    } else if (pl == 8 && memcmp(target, "/healthz", 8) == 0) {
        SZ_STAT_ADD(&r->stats, admin_requests, 1);
        if (sz_node_stopping(sz_node_current()) || r->stopping)
            respond(c, 503, "Service Unavailable", NULL, "stopping\n", 9, head);
        else
            respond(c, 200, "OK", NULL, "ok\n", 3, head);
    } else {
        SZ_STAT_ADD(&r->stats, admin_bad, 1);
        respond(c, 404, "Not Found", NULL, "Not Found", 9, head);
    }
}

static void admin_open(sz_conn_t *c)
{
    sz_conn_set_timer(c, __atomic_load_n(&sz_admin_timeout_ms, __ATOMIC_RELAXED));
}

static void admin_data(sz_conn_t *c, const char *p, size_t n)
{
    struct admin_req *q = c->pstate;
    if (!q) {
        q = sz_malloc(sizeof(*q));
        q->len = 0;
        c->pstate = q;
    }
    if (q->len == UINT32_MAX)
        return; /* answered; ignore anything pipelined after */
    if (n > REQ_MAX - q->len) {
        q->len = UINT32_MAX;
        return reject(c, 431, "Request Header Fields Too Large");
    }
    size_t scan_from = q->len > 3 ? q->len - 3 : 0;
    memcpy(q->buf + q->len, p, n);
    q->len += (uint32_t)n;
    /* Bytes that cannot be in an HTTP/1 head end the request early. */
    for (size_t i = scan_from; i < q->len; i++) {
        unsigned char ch = (unsigned char)q->buf[i];
        if (ch == 0 || ch >= 0x80) {
            q->len = UINT32_MAX;
            return reject(c, 400, "Bad Request");
        }
    }
    const char *end = memmem(q->buf + scan_from, q->len - scan_from, "\r\n\r\n", 4);
    if (!end)
        return;
    size_t hdr_end = (size_t)(end - q->buf) + 2; /* keep the last header's CRLF */
    sz_conn_cancel_timer(c);
    handle(c, q, hdr_end);
    q->len = UINT32_MAX;
}

static void admin_timer(sz_conn_t *c)
{
    SZ_STAT_ADD(&sz_conn_reactor(c)->stats, admin_bad, 1);
    sz_conn_close(c, false);
}

static void admin_close(sz_conn_t *c)
{
    sz_free(c->pstate);
    c->pstate = NULL;
}

const sz_proto_t sz_proto_admin = {
    .name = "admin",
    .uncapped = true, /* one bounded response per connection */
    .on_open = admin_open,
    .on_data = admin_data,
    .on_timer = admin_timer,
    .on_close = admin_close,
};
