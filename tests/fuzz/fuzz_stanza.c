/*
 * libFuzzer target for core/stanza.c and core/xml/tree.c. The input is
 * parsed as stanzas inside a stream (a header is prepended); each element
 * becomes a stanza whose header values decode, whose tree builds and is
 * walked, and which is rewritten with to/from taken from the input. The
 * rewrite must re-parse as one element with exactly those values.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/stanza.h"
#include "core/xml/parser.h"
#include "core/xml/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR                                                                                      \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "     \
    "to='example.com' version='1.0'>"

struct ctx {
    const uint8_t *data;
    size_t size;
    sz_stanza_t *again; /* re-parse result */
};

static size_t walk(const sz_xml_node_t *n, int depth)
{
    size_t sum = n->text_len;
    for (uint32_t i = 0; i < n->nattrs; i++) {
        size_t l;
        if (!sz_xml_attr(n, n->attrs[i].name, n->attrs[i].ns, &l))
            abort();
        sum += l;
    }
    for (const sz_xml_node_t *c = n->children; c; c = c->next) {
        if (c->parent != n)
            abort();
        if (c->kind == SZ_XML_ELEM)
            sum += walk(c, depth + 1);
    }
    if (n->children && !sz_xml_child(n, NULL, NULL) && n->children->kind == SZ_XML_ELEM)
        abort();
    return sum;
}

static int grab(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct ctx *c = ud;
    if (!c->again)
        c->again = sz_stanza_new(span, len, h);
    return 0;
}

/* Text values for the rewrite: printable ASCII, markup characters
 * included, plus one multibyte character, taken from the input. */
static size_t make_value(const uint8_t *d, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < 60; i++) {
        uint8_t ch = d[i];
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else if (ch == 0x80) {
            memcpy(out + o, "\xC3\xA9", 2);
            o += 2;
        } else if (ch == '\t' || ch == '\n')
            out[o++] = (char)ch;
    }
    return o;
}

static int on_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct ctx *c = ud;
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    char buf[1024];
    for (int a = SZ_XML_A_TO; a <= SZ_XML_A_LANG; a++) {
        ssize_t r = sz_stanza_attr(st, (enum sz_xml_attr_idx)a, buf, sizeof buf);
        if (r < 0 && r != -ENOENT && r != -ENOSPC)
            abort();
    }
    const sz_xml_node_t *root = sz_stanza_tree(st);
    if (!root)
        abort();
    walk(root, 0);

    char to[128], from[128];
    size_t tl = make_value(c->data, c->size / 2, to);
    size_t fl = make_value(c->data + c->size / 2, c->size - c->size / 2, from);
    sz_stanza_t *rw = sz_stanza_rewrite(st, (c->size & 1) ? NULL : to, tl, from, fl);

    /* the rewrite is one well-formed element carrying exactly those values */
    static const sz_xml_ops_t ops = {NULL, grab, NULL};
    struct ctx c2 = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &c2);
    /* same stream header as the original, so the same bindings apply */
    if (sz_xml_parser_feed(&p, HDR, strlen(HDR)) < 0)
        abort();
    size_t rl;
    const char *raw = sz_stanza_raw(rw, &rl);
    if (sz_xml_parser_feed(&p, raw, rl) != (ssize_t)rl || !c2.again)
        abort();
    ssize_t n = sz_stanza_attr(c2.again, SZ_XML_A_FROM, buf, sizeof buf);
    if (n != (ssize_t)fl || memcmp(buf, from, fl) != 0)
        abort();
    n = sz_stanza_attr(rw, SZ_XML_A_FROM, buf, sizeof buf);
    if (n != (ssize_t)fl || memcmp(buf, from, fl) != 0)
        abort();
    if (!(c->size & 1)) {
        n = sz_stanza_attr(rw, SZ_XML_A_TO, buf, sizeof buf);
        if (n != (ssize_t)tl || memcmp(buf, to, tl) != 0)
            abort();
    }
    for (int a = SZ_XML_A_ID; a <= SZ_XML_A_LANG; a++) {
        char x[1024], y[1024];
        ssize_t r1 = sz_stanza_attr(st, (enum sz_xml_attr_idx)a, x, sizeof x);
        ssize_t r2 = sz_stanza_attr(c2.again, (enum sz_xml_attr_idx)a, y, sizeof y);
        ssize_t r3 = sz_stanza_attr(rw, (enum sz_xml_attr_idx)a, y, sizeof y);
        if (r1 != r2 || r1 != r3 || (r1 > 0 && memcmp(x, y, (size_t)r1) != 0))
            abort();
    }
    if (sz_stanza_kind(c2.again) != sz_stanza_kind(st) || !sz_stanza_tree(rw))
        abort();
    sz_xml_parser_free(&p);
    sz_stanza_unref(c2.again);
    sz_stanza_unref(rw);
    sz_stanza_unref(st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctx c = {data, size, NULL};
    static const sz_xml_ops_t ops = {NULL, on_elem, NULL};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &c);
    sz_xml_parser_feed(&p, HDR, strlen(HDR));
    sz_xml_parser_feed(&p, (const char *)data, size);
    sz_xml_parser_free(&p);
    return 0;
}
