/*
 * Test helper shared by the XML tests and fuzzers: feeds a byte string to a
 * parser in chunks and records every callback as one text line, so that two
 * runs (whole and split) can be compared with strcmp. Single thread.
 */
#ifndef SZ_TESTS_XML_REC_H
#define SZ_TESTS_XML_REC_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/xml/parser.h"

typedef struct xml_rec {
    char *log;
    size_t len, cap;
    unsigned headers, elements, ends;
    /* bounds of the chunk being fed, to tell zero-copy spans apart */
    const char *chunk;
    size_t chunk_len;
    unsigned in_place, copied;
    int stop_on_element; /* callback returns non-zero for element N (1-based) */
} xml_rec_t;

static void rec_printf(xml_rec_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_printf(xml_rec_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (r->len + (size_t)n + 1 > r->cap) {
        r->cap = (r->len + (size_t)n + 1) * 2;
        r->log = sz_realloc(r->log, r->cap);
    }
    va_start(ap, fmt);
    vsnprintf(r->log + r->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->len += (size_t)n;
}

static void rec_bytes(xml_rec_t *r, const char *s, size_t n)
{
    rec_printf(r, "%.*s", (int)n, s);
}

static void rec_head(xml_rec_t *r, const char *span, size_t len, const sz_xml_head_t *h)
{
    static const char *const an[SZ_XML_A_COUNT] = {"to", "from", "id", "type", "lang", "version"};
    rec_printf(r, "name=%.*s prefix=%.*s ns=", (int)h->name.len, span + h->name.off,
               (int)h->prefix.len, span + h->prefix.off);
    if (h->ns)
        rec_bytes(r, h->ns, h->ns_len);
    else
        rec_printf(r, "(none)");
    rec_printf(r, " ns_id=%u nattrs=%u empty=%d esc=%x", h->ns_id, h->nattrs, h->empty, h->esc);
    for (int i = 0; i < SZ_XML_A_COUNT; i++) {
        if (!h->attr[i].off)
            continue;
        rec_printf(r, " %s=[", an[i]);
        rec_bytes(r, span + h->attr[i].off, h->attr[i].len);
        rec_printf(r, "]");
    }
    rec_printf(r, " span=[");
    rec_bytes(r, span, len);
    rec_printf(r, "]\n");
    if (r->chunk && span >= r->chunk && span + len <= r->chunk + r->chunk_len)
        r->in_place++;
    else
        r->copied++;
}

static int rec_on_header(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    xml_rec_t *r = ud;
    r->headers++;
    rec_printf(r, "HEADER dflt=%u spfx=%.*s dbpfx=%.*s ", h->scope->dflt, h->scope->plen[0],
               h->scope->pfx, h->scope->plen[1], h->scope->pfx + h->scope->plen[0]);
    rec_head(r, span, len, h);
    return 0;
}

static int rec_on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    xml_rec_t *r = ud;
    r->elements++;
    rec_printf(r, "ELEM ");
    rec_head(r, span, len, h);
    return r->stop_on_element && (int)r->elements == r->stop_on_element;
}

static int rec_on_end(void *ud)
{
    xml_rec_t *r = ud;
    r->ends++;
    rec_printf(r, "END\n");
    return 0;
}

static const sz_xml_ops_t rec_ops = {rec_on_header, rec_on_element, rec_on_end};

/* Feeds <data> in pieces cut at the sorted offsets <cuts> (n of them) and
 * appends the result ("ERR <cond>" or "OK busy=<0|1>") to the log. */
static ssize_t rec_feed(sz_xml_parser_t *p, xml_rec_t *r, const char *data, size_t len,
                        const size_t *cuts, size_t ncuts)
{
    size_t start = 0;
    ssize_t res = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        if (end < start || end > len)
            continue;
        r->chunk = data + start;
        r->chunk_len = end - start;
        res = sz_xml_parser_feed(p, data + start, end - start);
        if (res < 0)
            break;
        start = end;
    }
    if (res < 0)
        rec_printf(r, "ERR %s\n", sz_stream_err_name((enum sz_stream_err)-res));
    else
        rec_printf(r, "OK busy=%d ws=%u\n", sz_xml_parser_busy(p), sz_xml_parser_ws_bytes(p));
    return res;
}

/* Parses <data> split at <cuts> with a fresh parser; returns the log
 * (caller frees). */
static char *rec_parse(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                       const sz_xml_limits_t *lim)
{
    xml_rec_t r;
    memset(&r, 0, sizeof r);
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, lim, &rec_ops, &r);
    rec_feed(&p, &r, data, len, cuts, ncuts);
    sz_xml_parser_free(&p);
    if (!r.log)
        r.log = sz_strdup("");
    return r.log;
}

#endif
