/*
 * Tree builder: a second, simple parser over a span the streaming parser
 * has already validated. It still bounds-checks every step and returns
 * NULL on anything unexpected instead of trusting its input. Everything
 * (nodes, attributes, decoded strings) comes from one arena per tree, in
 * chunks, so building costs a few mallocs and freeing is a list walk.
 */
#include "core/xml/tree.h"

#include <string.h>

#include "core/mem.h"

struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

struct sz_xml_tree {
    struct chunk *chunks;
    const sz_xml_node_t *root;
    size_t bytes;
    size_t next_cap; /* size of the next arena chunk */
};

#define CHUNK_MAX 4000

/* The first chunk is sized from the element, so the tree of a small stanza
 * that is kept (a session's last presence) costs a few hundred bytes, not
 * a full chunk; later chunks are full size. */
static size_t first_chunk(size_t raw_len)
{
    size_t cap = raw_len * 2 + 256;
    return cap < CHUNK_MAX ? cap : CHUNK_MAX;
}

static void *arena_alloc(sz_xml_tree_t *t, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct chunk *c = t->chunks;
    if (!c || c->cap - c->used < n) {
        size_t want = t->next_cap ? t->next_cap : CHUNK_MAX;
        size_t cap = n > want ? n : want;
        t->next_cap = CHUNK_MAX;
        c = sz_malloc(sizeof *c + cap);
        c->next = t->chunks;
        c->used = 0;
        c->cap = cap;
        t->chunks = c;
        t->bytes += sizeof *c + cap;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static char *arena_str(sz_xml_tree_t *t, const char *s, size_t n)
{
    char *d = arena_alloc(t, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Namespace binding while building: prefix in the raw bytes, name decoded
 * in the arena. */
struct tbind {
    const char *pfx;
    uint32_t plen, ulen;
    const char *uri; /* NULL: undeclared default namespace */
};

struct tattr {
    const char *q;
    uint32_t qlen, colon; /* colon: offset of ':' within q, 0: none */
    const char *v;
    uint32_t vlen;
};

struct builder {
    sz_xml_tree_t *t;
    const sz_xml_scope_t *scope;
    struct tbind *bd;
    uint32_t nbd, cbd;
    struct tattr *at;
    uint32_t nat, cat;
    char *txt; /* text run being merged */
    size_t ntxt, ctxt;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool resolve(const struct builder *b, const char *pfx, uint32_t plen, const char **uri,
                    uint32_t *ulen)
{
    for (uint32_t i = b->nbd; i-- > 0;) {
        if (b->bd[i].plen == plen && memcmp(b->bd[i].pfx, pfx, plen) == 0) {
            *uri = b->bd[i].uri;
            *ulen = b->bd[i].ulen;
            return true;
        }
    }
    size_t l = 0;
    const sz_xml_scope_t *s = b->scope;
    if (plen == 0) {
        *uri = s ? sz_xml_ns_uri((enum sz_xml_ns)s->dflt, &l) : NULL;
    } else if (plen == 3 && memcmp(pfx, "xml", 3) == 0) {
        *uri = sz_xml_ns_uri(SZ_XML_NS_XML, &l);
    } else if (s && s->plen[0] == plen && memcmp(s->pfx, pfx, plen) == 0) {
        *uri = sz_xml_ns_uri(SZ_XML_NS_STREAMS, &l);
    } else if (s && s->plen[1] == plen && memcmp(s->pfx + s->plen[0], pfx, plen) == 0) {
        *uri = sz_xml_ns_uri(SZ_XML_NS_DIALBACK, &l);
    } else {
        return false;
    }
    *ulen = (uint32_t)l;
    return true;
}

static void text_add(struct builder *b, const char *s, size_t n, bool raw)
{
    if (b->ntxt + n + 1 > b->ctxt) {
        b->ctxt = (b->ntxt + n + 1) * 2;
        b->txt = sz_realloc(b->txt, b->ctxt);
    }
    if (raw) {
        memcpy(b->txt + b->ntxt, s, n);
        b->ntxt += n;
    } else {
        ssize_t r = sz_xml_unescape(s, n, b->txt + b->ntxt, n + 1, false);
        b->ntxt += r > 0 ? (size_t)r : 0;
    }
}

/* Ends the current text run: one TEXT node under <parent>. */
static void text_flush(struct builder *b, sz_xml_node_t *parent, sz_xml_node_t **last)
{
    if (!b->ntxt || !parent)
        return;
    sz_xml_node_t *n = arena_alloc(b->t, sizeof *n);
    memset(n, 0, sizeof *n);
    n->kind = SZ_XML_TEXT;
    n->parent = parent;
    n->text = arena_str(b->t, b->txt, b->ntxt);
    n->text_len = (uint32_t)b->ntxt;
    if (*last)
        (*last)->next = n;
    else
        parent->children = n;
    *last = n;
    b->ntxt = 0;
}

/* CDATA keeps its bytes except line ends (XML 1.0 §2.11). */
static void cdata_add(struct builder *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\r') {
            size_t j = i;
            while (j < n && s[j] != '\r')
                j++;
            text_add(b, s + i, j - i, true);
            i = j - 1;
            continue;
        }
        text_add(b, "\n", 1, true);
        if (i + 1 < n && s[i + 1] == '\n')
            i++;
    }
}

/* Concatenated direct text, computed once per element at its end. */
static void elem_text(sz_xml_tree_t *t, sz_xml_node_t *e)
{
    size_t n = 0;
    const sz_xml_node_t *c;
    for (c = e->children; c; c = c->next)
        if (c->kind == SZ_XML_TEXT)
            n += c->text_len;
    char *s = arena_alloc(t, n + 1);
    n = 0;
    for (c = e->children; c; c = c->next) {
        if (c->kind == SZ_XML_TEXT) {
            memcpy(s + n, c->text, c->text_len);
            n += c->text_len;
        }
    }
    s[n] = '\0';
    e->text = s;
    e->text_len = (uint32_t)n;
}

#define MAX_DEPTH 1024u

sz_xml_tree_t *sz_xml_tree_parse(const char *raw, size_t len, const sz_xml_scope_t *scope)
{
    sz_xml_tree_t *t = sz_calloc(1, sizeof *t);
    t->next_cap = first_chunk(len);
    struct builder b = {.t = t, .scope = scope};
    sz_xml_node_t *stack[MAX_DEPTH], *last[MAX_DEPTH];
    uint32_t nbind[MAX_DEPTH];
    int depth = 0;
    size_t i = 0;
    bool done = false;
    while (i < len && !done) {
        if (raw[i] != '<') {
            size_t j = i;
            while (j < len && raw[j] != '<')
                j++;
            if (depth == 0)
                goto fail;
            text_add(&b, raw + i, j - i, false);
            i = j;
            continue;
        }
        if (len - i >= 9 && memcmp(raw + i, "<![CDATA[", 9) == 0) {
            const char *e = memmem(raw + i + 9, len - i - 9, "]]>", 3);
            if (!e || depth == 0)
                goto fail;
            cdata_add(&b, raw + i + 9, (size_t)(e - raw - i - 9));
            i = (size_t)(e - raw) + 3;
            continue;
        }
        if (i + 1 >= len || raw[i + 1] == '!' || raw[i + 1] == '?')
            goto fail;
        if (raw[i + 1] == '/') {
            const char *e = memchr(raw + i, '>', len - i);
            if (!e || depth == 0)
                goto fail;
            sz_xml_node_t *n = stack[depth - 1];
            text_flush(&b, n, &last[depth - 1]);
            elem_text(t, n);
            b.nbd = nbind[depth - 1];
            depth--;
            i = (size_t)(e - raw) + 1;
            done = depth == 0;
            continue;
        }
        /* start tag: name, attributes */
        if (depth >= (int)MAX_DEPTH)
            goto fail;
        size_t q = ++i;
        while (i < len && !is_ws(raw[i]) && raw[i] != '/' && raw[i] != '>')
            i++;
        const char *qn = raw + q;
        uint32_t qlen = (uint32_t)(i - q);
        b.nat = 0;
        bool empty = false;
        for (;;) {
            while (i < len && is_ws(raw[i]))
                i++;
            if (i >= len)
                goto fail;
            if (raw[i] == '>') {
                i++;
                break;
            }
            if (raw[i] == '/') {
                if (i + 1 >= len || raw[i + 1] != '>')
                    goto fail;
                i += 2;
                empty = true;
                break;
            }
            size_t a = i;
            while (i < len && !is_ws(raw[i]) && raw[i] != '=')
                i++;
            size_t aend = i;
            while (i < len && is_ws(raw[i]))
                i++;
            if (i >= len || raw[i] != '=')
                goto fail;
            i++;
            while (i < len && is_ws(raw[i]))
                i++;
            if (i >= len || (raw[i] != '\'' && raw[i] != '"'))
                goto fail;
            const char *v = raw + i + 1;
            const char *ve = memchr(v, raw[i], len - i - 1);
            if (!ve)
                goto fail;
            i = (size_t)(ve - raw) + 1;
            if (b.nat == b.cat) {
                b.cat = b.cat ? b.cat * 2 : 8;
                b.at = sz_realloc(b.at, b.cat * sizeof *b.at);
            }
            const char *c = memchr(raw + a, ':', aend - a);
            b.at[b.nat++] = (struct tattr){raw + a, (uint32_t)(aend - a),
                                           c ? (uint32_t)(c - raw - a) : 0, v,
                                           (uint32_t)(ve - v)};
        }
        /* declarations first: they bind names on this very tag */
        nbind[depth] = b.nbd;
        for (uint32_t k = 0; k < b.nat; k++) {
            const struct tattr *a = &b.at[k];
            bool dflt = a->qlen == 5 && memcmp(a->q, "xmlns", 5) == 0;
            if (!dflt && !(a->colon == 5 && memcmp(a->q, "xmlns", 5) == 0))
                continue;
            if (b.nbd == b.cbd) {
                b.cbd = b.cbd ? b.cbd * 2 : 8;
                b.bd = sz_realloc(b.bd, b.cbd * sizeof *b.bd);
            }
            char *u = arena_alloc(t, a->vlen + 1);
            ssize_t ul = sz_xml_unescape(a->v, a->vlen, u, a->vlen + 1, true);
            if (ul < 0)
                goto fail;
            b.bd[b.nbd++] = (struct tbind){dflt ? "" : a->q + 6, dflt ? 0 : a->qlen - 6,
                                           (uint32_t)ul, ul ? u : NULL};
        }
        sz_xml_node_t *n = arena_alloc(t, sizeof *n);
        memset(n, 0, sizeof *n);
        n->kind = SZ_XML_ELEM;
        const char *colon = memchr(qn, ':', qlen);
        uint32_t plen = colon ? (uint32_t)(colon - qn) : 0;
        const char *uri;
        uint32_t ulen;
        if (!resolve(&b, qn, plen, &uri, &ulen))
            goto fail;
        n->name = arena_str(t, colon ? colon + 1 : qn, colon ? qlen - plen - 1 : qlen);
        n->name_len = colon ? qlen - plen - 1 : qlen;
        n->ns = uri ? arena_str(t, uri, ulen) : NULL;
        n->ns_len = uri ? ulen : 0;
        sz_xml_attr_t *attrs = arena_alloc(t, (b.nat ? b.nat : 1) * sizeof *attrs);
        for (uint32_t k = 0; k < b.nat; k++) {
            const struct tattr *a = &b.at[k];
            if ((a->qlen == 5 && memcmp(a->q, "xmlns", 5) == 0) ||
                (a->colon == 5 && memcmp(a->q, "xmlns", 5) == 0))
                continue;
            sz_xml_attr_t *x = &attrs[n->nattrs++];
            memset(x, 0, sizeof *x);
            if (a->colon) {
                if (!resolve(&b, a->q, a->colon, &uri, &ulen) || !uri)
                    goto fail;
                x->ns = arena_str(t, uri, ulen);
                x->ns_len = ulen;
            }
            uint32_t ls = a->colon ? a->colon + 1 : 0;
            x->name = arena_str(t, a->q + ls, a->qlen - ls);
            x->name_len = a->qlen - ls;
            char *v = arena_alloc(t, a->vlen + 1);
            ssize_t vl = sz_xml_unescape(a->v, a->vlen, v, a->vlen + 1, true);
            if (vl < 0)
                goto fail;
            x->value = v;
            x->value_len = (uint32_t)vl;
        }
        n->attrs = attrs;
        /* link under the parent, after its pending text */
        if (depth > 0) {
            sz_xml_node_t *parent = stack[depth - 1];
            text_flush(&b, parent, &last[depth - 1]);
            n->parent = parent;
            if (last[depth - 1])
                last[depth - 1]->next = n;
            else
                parent->children = n;
            last[depth - 1] = n;
        } else if (t->root) {
            goto fail;
        } else {
            t->root = n;
        }
        if (empty) {
            elem_text(t, n);
            b.nbd = nbind[depth];
            done = depth == 0;
        } else {
            stack[depth] = n;
            last[depth] = NULL;
            depth++;
        }
    }
    if (!done || depth != 0 || !t->root)
        goto fail;
    while (i < len && is_ws(raw[i]))
        i++;
    if (i != len)
        goto fail;
    sz_free(b.bd);
    sz_free(b.at);
    sz_free(b.txt);
    return t;
fail:
    sz_free(b.bd);
    sz_free(b.at);
    sz_free(b.txt);
    sz_xml_tree_free(t);
    return NULL;
}

void sz_xml_tree_free(sz_xml_tree_t *t)
{
    if (!t)
        return;
    struct chunk *c = t->chunks;
    while (c) {
        struct chunk *n = c->next;
        sz_free(c);
        c = n;
    }
    sz_free(t);
}

const sz_xml_node_t *sz_xml_tree_root(const sz_xml_tree_t *t)
{
    return t->root;
}

size_t sz_xml_tree_bytes(const sz_xml_tree_t *t)
{
    return t ? t->bytes + sizeof *t : 0;
}

static bool match(const sz_xml_node_t *c, const char *name, const char *ns)
{
    if (c->kind != SZ_XML_ELEM)
        return false;
    if (name && strcmp(c->name, name) != 0)
        return false;
    if (ns && strcmp(c->ns ? c->ns : "", ns) != 0)
        return false;
    return true;
}

const sz_xml_node_t *sz_xml_child(const sz_xml_node_t *n, const char *name, const char *ns)
{
    for (const sz_xml_node_t *c = n->children; c; c = c->next)
        if (match(c, name, ns))
            return c;
    return NULL;
}

const sz_xml_node_t *sz_xml_next(const sz_xml_node_t *prev, const char *name, const char *ns)
{
    for (const sz_xml_node_t *c = prev->next; c; c = c->next)
        if (match(c, name, ns))
            return c;
    return NULL;
}

const char *sz_xml_attr(const sz_xml_node_t *n, const char *name, const char *ns, size_t *len)
{
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const sz_xml_attr_t *a = &n->attrs[i];
        if (strcmp(a->name, name) != 0)
            continue;
        if (ns ? (!a->ns || strcmp(a->ns, ns) != 0) : a->ns != NULL)
            continue;
        if (len)
            *len = a->value_len;
        return a->value;
    }
    return NULL;
}

bool sz_xml_attr_u32(const sz_xml_node_t *n, const char *name, uint32_t *out)
{
    size_t len = 0;
    const char *s = sz_xml_attr(n, name, NULL, &len);
    if (!s || len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

const char *sz_xml_text(const sz_xml_node_t *n, size_t *len)
{
    if (len)
        *len = n->text_len;
    return n->text ? n->text : "";
}
