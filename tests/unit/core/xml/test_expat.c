/*
 * Differential test against expat (namespace processing on): for the
 * fixture streams and for generated random well-formed streams, both must
 * see the same elements ({namespace}local), the same attributes after
 * namespace resolution and decoding, and the same text. Then mutated
 * streams: whatever this parser accepts, expat must accept too (the
 * converse does not hold: RFC 6120 restricts XML further).
 */
#include "core/xml/parser.h"

#include <dirent.h>
#include <expat.h>

#include "core/mem.h"
#include "core/stanza.h"
#include "core/xml/tree.h"
#include "sz_test.h"

#define FIXTURES SZ_SOURCE_ROOT "/tests/fixtures/xml"

/* ---- event logs ------------------------------------------------------ */

struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = sz_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "{ns}local" with \x01 as expat's separator. */
static char *qname(const char *ns, const char *local)
{
    size_t n = (ns ? strlen(ns) : 0) + strlen(local) + 4;
    char *s = sz_malloc(n);
    snprintf(s, n, "{%s}%s", ns ? ns : "", local);
    return s;
}

static void log_start(struct sbuf *b, char *name, char **attrs, size_t nattrs)
{
    qsort(attrs, nattrs, sizeof *attrs, cmp_str);
    sb_str(b, "S ");
    sb_str(b, name);
    for (size_t i = 0; i < nattrs; i++) {
        sb_str(b, " ");
        sb_str(b, attrs[i]);
        free(attrs[i]);
    }
    sb_str(b, "\n");
    free(name);
}

/* ---- expat side ------------------------------------------------------- */

struct xp {
    struct sbuf log, text;
    int depth;
};

static char *xp_name(const char *n)
{
    const char *sep = strchr(n, '\x01');
    if (!sep)
        return qname(NULL, n);
    char *ns = sz_strndup(n, (size_t)(sep - n));
    char *q = qname(ns, sep + 1);
    free(ns);
    return q;
}

static void xp_flush(struct xp *x)
{
    if (x->text.len && x->depth >= 2) {
        sb_str(&x->log, "T ");
        sb_add(&x->log, x->text.s, x->text.len);
        sb_str(&x->log, "\n");
    }
    x->text.len = 0;
}

static void XMLCALL xp_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xp *x = ud;
    xp_flush(x);
    x->depth++;
    if (x->depth < 2)
        return;
    size_t n = 0;
    while (atts[2 * n])
        n++;
    char **a = sz_malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) {
        char *q = xp_name(atts[2 * i]);
        size_t l = strlen(q) + strlen(atts[2 * i + 1]) + 4;
        a[i] = sz_malloc(l);
        snprintf(a[i], l, "%s=[%s]", q, atts[2 * i + 1]);
        free(q);
    }
    log_start(&x->log, xp_name(name), a, n);
    free(a);
}

static void XMLCALL xp_end(void *ud, const XML_Char *name)
{
    struct xp *x = ud;
    (void)name;
    xp_flush(x);
    if (x->depth >= 2)
        sb_str(&x->log, "E\n");
    x->depth--;
}

static void XMLCALL xp_text(void *ud, const XML_Char *s, int len)
{
    struct xp *x = ud;
    sb_add(&x->text, s, (size_t)len);
}

/* Returns the log of the stanzas in <doc>, NULL when expat rejects it. */
static char *expat_log(const char *doc, size_t len)
{
    struct xp x = {0};
    XML_Parser xp = XML_ParserCreateNS("UTF-8", '\x01');
    XML_SetUserData(xp, &x);
    XML_SetElementHandler(xp, xp_start, xp_end);
    XML_SetCharacterDataHandler(xp, xp_text);
    int ok = XML_Parse(xp, doc, (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(xp);
    free(x.text.s);
    if (!ok) {
        free(x.log.s);
        return NULL;
    }
    if (!x.log.s)
        x.log.s = sz_strdup("");
    return x.log.s;
}

/* ---- our side: parser spans, then the lazy tree ------------------------ */

static void walk(struct sbuf *b, const sz_xml_node_t *n)
{
    char **a = sz_malloc((n->nattrs ? n->nattrs : 1) * sizeof *a);
    for (uint32_t i = 0; i < n->nattrs; i++) {
        char *q = qname(n->attrs[i].ns, n->attrs[i].name);
        size_t l = strlen(q) + n->attrs[i].value_len + 4;
        a[i] = sz_malloc(l);
        snprintf(a[i], l, "%s=[%s]", q, n->attrs[i].value);
        free(q);
    }
    log_start(b, qname(n->ns, n->name), a, n->nattrs);
    free(a);
    for (const sz_xml_node_t *c = n->children; c; c = c->next) {
        if (c->kind == SZ_XML_TEXT) {
            sb_str(b, "T ");
            sb_add(b, c->text, c->text_len);
            sb_str(b, "\n");
        } else {
            walk(b, c);
        }
    }
    sb_str(b, "E\n");
}

struct ours {
    struct sbuf log;
    int bad_tree;
};

static int our_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct ours *o = ud;
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    const sz_xml_node_t *root = sz_stanza_tree(st);
    if (root)
        walk(&o->log, root);
    else
        o->bad_tree = 1;
    sz_stanza_unref(st);
    return 0;
}

/* Returns our log, NULL when the parser rejects <doc> or leaves it open. */
static char *our_log(const char *doc, size_t len, size_t cut)
{
    static const sz_xml_ops_t ops = {NULL, our_elem, NULL};
    struct ours o = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &o);
    bool ok = true;
    if (cut && cut < len)
        ok = sz_xml_parser_feed(&p, doc, cut) >= 0;
    ok = ok && sz_xml_parser_feed(&p, doc + cut, len - cut) >= 0 && !sz_xml_parser_busy(&p);
    sz_xml_parser_free(&p);
    if (!ok || o.bad_tree) {
        free(o.log.s);
        return NULL;
    }
    if (!o.log.s)
        o.log.s = sz_strdup("");
    return o.log.s;
}

static bool same(const char *what, const char *doc, size_t len)
{
    char *a = expat_log(doc, len), *b = our_log(doc, len, len / 2);
    bool eq = a && b && strcmp(a, b) == 0;
    if (!eq) {
        printf("# %s differs\n# expat: %.400s\n# ours:  %.400s\n", what, a ? a : "(rejected)",
               b ? b : "(rejected)");
        if (a && b)
            for (size_t i = 0; a[i] || b[i]; i++)
                if (a[i] != b[i]) {
                    printf("# first difference at %zu: ...%.60s\n", i, a + (i > 20 ? i - 20 : 0));
                    break;
                }
    }
    free(a);
    free(b);
    return eq;
}

/* ---- random well-formed streams --------------------------------------- */

static unsigned seed = 4242;

static unsigned rnd(unsigned n)
{
    return (unsigned)rand_r(&seed) % n;
}

static void rand_chars(struct sbuf *b, bool attr, char quote)
{
    static const char *const pieces[] = {
        "a", "Romeo", " ", "42", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#65;", "&#x263A;",
        "&#10;", "&#9;", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x8C\xB9", "\t", "\n", "\r\n", "\r",
        "]", "]]", "-", "/", "=", "?", "@example.com", "\xD0\x96", "#"};
    unsigned n = rnd(8);
    for (unsigned i = 0; i < n; i++) {
        const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
        sb_str(b, p);
    }
    if (attr && rnd(2))
        sb_str(b, quote == '\'' ? "\"" : "'"); /* the other quote is plain */
    else if (!attr && rnd(4) == 0)
        sb_str(b, "<![CDATA[ <x> & ]] ]>\r\n]]>");
}

static void rand_elem(struct sbuf *b, int depth, int nbound)
{
    static const char *const names[] = {"message", "body", "x", "item", "query", "a-b", "_c",
                                        "d.e", "f9", "\xC3\xA9l\xC3\xA9ment", "group", "c"};
    const char *name = names[rnd(sizeof names / sizeof *names)];
    int pfx = nbound && rnd(3) == 0 ? (int)rnd((unsigned)nbound) : -1;
    char tag[64];
    if (pfx >= 0)
        snprintf(tag, sizeof tag, "p%d:%s", pfx, name);
    else
        snprintf(tag, sizeof tag, "%s", name);
    sb_str(b, "<");
    sb_str(b, tag);
    /* new bindings on this element */
    int nb = nbound;
    if (rnd(3) == 0) {
        char d[64];
        snprintf(d, sizeof d, " xmlns='urn:default:%u'", rnd(3));
        sb_str(b, d);
    }
    if (rnd(3) == 0 && nb < 6) {
        char d[64];
        snprintf(d, sizeof d, " xmlns:p%d=\"urn:p:%u\"", nb, rnd(4));
        sb_str(b, d);
        nb++;
    }
    unsigned na = rnd(5);
    for (unsigned i = 0; i < na; i++) {
        char a[64];
        /* distinct local names per element: no duplicates after resolution */
        if (nb && rnd(2))
            snprintf(a, sizeof a, "%sp%u:k%u=", rnd(2) ? " " : "\n  ", rnd((unsigned)nb), i);
        else
            snprintf(a, sizeof a, " k%u =", i);
        sb_str(b, a);
        char q = rnd(2) ? '\'' : '"';
        sb_add(b, &q, 1);
        rand_chars(b, true, q);
        sb_add(b, &q, 1);
    }
    if (depth > 4 || rnd(4) == 0) {
        sb_str(b, rnd(2) ? "/>" : " />");
        return;
    }
    sb_str(b, ">");
    unsigned nc = rnd(4);
    for (unsigned i = 0; i < nc; i++) {
        if (rnd(2))
            rand_chars(b, false, 0);
        else
            rand_elem(b, depth + 1, nb);
    }
    sb_str(b, "</");
    sb_str(b, tag);
    sb_str(b, rnd(4) ? ">" : " >");
}

static char *rand_stream(size_t *len)
{
    struct sbuf b = {0};
    sb_str(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' to='example.com'>");
    unsigned n = 1 + rnd(6);
    for (unsigned i = 0; i < n; i++) {
        if (rnd(2))
            sb_str(&b, rnd(2) ? "\n" : " \t ");
        rand_elem(&b, 1, 0);
    }
    sb_str(&b, "</stream:stream>");
    *len = b.len;
    return b.s;
}

/* ---- tests ------------------------------------------------------------- */

SZ_TEST(fixtures)
{
    DIR *d = opendir(FIXTURES);
    SZ_CHECK(d != NULL);
    if (!d)
        return;
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".xml") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        SZ_CHECK(same(e->d_name, buf, n));
        files++;
    }
    closedir(d);
    SZ_CHECK(files >= 10);
}

SZ_TEST(random_streams)
{
    int bad = 0;
    for (int i = 0; i < 2000 && bad < 3; i++) {
        size_t len;
        char *doc = rand_stream(&len);
        char what[32];
        snprintf(what, sizeof what, "random stream %d", i);
        if (!same(what, doc, len)) {
            printf("# doc: %s\n", doc);
            bad++;
        }
        free(doc);
    }
    SZ_CHECK_INT(bad, 0);
}

SZ_TEST(mutations_accepted_by_expat)
{
    /* Single-byte mutations of random streams: whatever we accept (the
     * whole stream, closed) expat must accept too. */
    static const char subst[] = "<>&;'\"=/ :x#!?-]\x01";
    int bad = 0, accepted = 0;
    for (int i = 0; i < 3000 && bad < 3; i++) {
        size_t len;
        char *doc = rand_stream(&len);
        for (int k = 0; k < 1 + (int)rnd(2); k++)
            doc[rnd((unsigned)len)] = subst[rnd(sizeof subst - 1)];
        char *ours = our_log(doc, len, rnd((unsigned)len));
        if (ours) {
            accepted++;
            char *ex = expat_log(doc, len);
            if (!ex || strcmp(ex, ours) != 0) {
                printf("# accepted by us, %s by expat: %s\n", ex ? "read differently" : "rejected",
                       doc);
                bad++;
            }
            free(ex);
        }
        free(ours);
        free(doc);
    }
    printf("# %d mutated streams still accepted\n", accepted);
    SZ_CHECK_INT(bad, 0);
}

int main(void)
{
    SZ_RUN(fixtures);
    SZ_RUN(random_streams);
    SZ_RUN(mutations_accepted_by_expat);
    sz_xml_scratch_free();
    return sz_test_done();
}
