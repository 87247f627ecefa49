/*
 * Element tree back to self-contained XML (core/xml/write.h). Elements are
 * written unprefixed, with xmlns="..." wherever their namespace differs
 * from the one in force; namespaced attributes other than xml:* get a
 * prefix n0, n1... declared on the element that carries them. Recursion
 * depth is the tree's, which the parser bounds (limits.max_depth).
 */
#include "core/xml/write.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define NS_XML "http://www.w3.org/XML/1998/namespace"

/* "<pfx>:<name>" into <buf> (heap when it does not fit; caller frees
 * *<heap>). */
static const char *qname(char *buf, size_t cap, const char *pfx, const char *name, char **heap)
{
    size_t need = strlen(pfx) + 1 + strlen(name) + 1;
    char *d = buf;
    *heap = NULL;
    if (need > cap)
        d = *heap = sz_malloc(need);
    snprintf(d, need, "%s:%s", pfx, name);
    return d;
}

static int write_attrs(sz_xb_t *xb, const sz_xml_node_t *n)
{
    unsigned gen = 0;
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const sz_xml_attr_t *a = &n->attrs[i];
        char buf[128], *heap;
        if (!a->ns) {
            sz_xb_attr_n(xb, a->name, a->value, a->value_len);
            continue;
        }
        if (a->ns_len == sizeof(NS_XML) - 1 && memcmp(a->ns, NS_XML, a->ns_len) == 0) {
            sz_xb_attr_n(xb, qname(buf, sizeof(buf), "xml", a->name, &heap), a->value,
                         a->value_len);
            sz_free(heap);
            continue;
        }
        char pfx[16], decl[24];
        snprintf(pfx, sizeof(pfx), "n%u", gen);
        snprintf(decl, sizeof(decl), "xmlns:n%u", gen++);
        sz_xb_attr_n(xb, decl, a->ns, a->ns_len);
        sz_xb_attr_n(xb, qname(buf, sizeof(buf), pfx, a->name, &heap), a->value, a->value_len);
        sz_free(heap);
    }
    return 0;
}

int sz_xml_write(sz_xb_t *xb, const sz_xml_node_t *n, const char *scope_ns)
{
    if (n->kind == SZ_XML_TEXT)
        return sz_xb_text(xb, n->text, n->text_len);
    const char *ns = n->ns ? n->ns : "";
    const char *in = scope_ns ? scope_ns : "";
    sz_xb_start(xb, n->name, strcmp(ns, in) != 0 ? ns : NULL);
    write_attrs(xb, n);
    for (const sz_xml_node_t *c = n->children; c; c = c->next)
        sz_xml_write(xb, c, ns);
    return sz_xb_end(xb);
}
