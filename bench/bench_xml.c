/*
 * XML parser throughput and memory, against expat in the same run.
 *
 * Input: about 50 MB of client traffic built in memory from the fixtures
 * (tests/fixtures/xml: messages with bodies, presence with entity caps,
 * roster results), repeated with fresh ids, fed in 4 KiB chunks.
 *   - stanzad: sz_xml_parser_feed(), one callback per top-level element;
 *     every byte is still checked (UTF-8, names, references, namespaces).
 *   - stanzad + tree: the same, plus the element tree of every stanza
 *     (what the server pays for stanzas it handles itself).
 *   - expat: XML_ParserCreateNS with start/end/character-data handlers
 *     that count, the cheapest way expat does the same checks.
 * Then the bytes an idle parser holds between stanzas, and the peak heap
 * while a 200 KiB stanza arrives in 4 KiB chunks (both parsers' own
 * allocations, counted through expat's memory-handling suite).
 *
 * Usage: bench_xml [fixtures-dir] (default tests/fixtures/xml, from the
 * repository root). Single thread; prints one line per figure.
 */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/stanza.h"
#include "core/xml/parser.h"
#include "core/xml/tree.h"

#define CHUNK 4096
#define TARGET_BYTES (50u << 20)

#define HDR                                                                                      \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                 \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

struct buf {
    char *s;
    size_t len, cap;
};

static void add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->s = sz_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

/* The stanzas of a fixture stream: what lies between the header and the
 * closing tag. */
static char *stanzas_of(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (run from the repository root, or pass the fixtures dir)\n",
                path);
        exit(1);
    }
    static char tmp[1 << 16];
    size_t n = fread(tmp, 1, sizeof tmp - 1, f);
    fclose(f);
    tmp[n] = '\0';
    char *s = strstr(tmp, "<stream:stream");
    s = s ? strchr(s, '>') + 1 : tmp;
    char *e = strstr(s, "</stream:stream>");
    *len = e ? (size_t)(e - s) : strlen(s);
    return sz_strndup(s, *len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- stanzad ---------------------------------------------------------- */

struct count {
    size_t elems, attrs, tree_nodes;
    int tree;
};

static size_t count_nodes(const sz_xml_node_t *n)
{
    size_t c = 1;
    for (const sz_xml_node_t *k = n->children; k; k = k->next)
        c += k->kind == SZ_XML_ELEM ? count_nodes(k) : 1;
    return c;
}

static int on_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct count *c = ud;
    c->elems++;
    c->attrs += h->nattrs;
    if (c->tree) {
        sz_stanza_t *st = sz_stanza_new(span, len, h);
        c->tree_nodes += count_nodes(sz_stanza_tree(st));
        sz_stanza_unref(st);
    }
    return 0;
}

static const sz_xml_ops_t ops = {NULL, on_elem, NULL};

static double run_ours(const char *in, size_t len, int tree, struct count *c)
{
    memset(c, 0, sizeof *c);
    c->tree = tree;
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, c);
    double t0 = now();
    for (size_t i = 0; i < len; i += CHUNK) {
        size_t n = len - i < CHUNK ? len - i : CHUNK;
        if (sz_xml_parser_feed(&p, in + i, n) < 0) {
            fprintf(stderr, "stanzad parser: %s\n", sz_stream_err_name(sz_xml_parser_error(&p)));
            exit(1);
        }
    }
    double t = now() - t0;
    sz_xml_parser_free(&p);
    return t;
}

/* ---- expat ------------------------------------------------------------ */

static size_t xp_live, xp_peak;

static void *xp_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    *p = n;
    xp_live += n;
    xp_peak = xp_live > xp_peak ? xp_live : xp_peak;
    return (char *)p + 16;
}

static void xp_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)((char *)q - 16);
    xp_live -= *p;
    free(p);
}

static void *xp_realloc(void *q, size_t n)
{
    if (!q)
        return xp_malloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = *p;
    p = realloc(p, n + 16);
    if (!p)
        return NULL;
    *p = n;
    xp_live = xp_live - old + n;
    xp_peak = xp_live > xp_peak ? xp_live : xp_peak;
    return (char *)p + 16;
}

static const XML_Memory_Handling_Suite xp_mm = {xp_malloc, xp_realloc, xp_free};

struct xcount {
    size_t starts, ends, chars, attrs;
};

static void XMLCALL x_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xcount *c = ud;
    (void)name;
    c->starts++;
    while (*atts) {
        c->attrs++;
        atts += 2;
    }
}

static void XMLCALL x_end(void *ud, const XML_Char *name)
{
    struct xcount *c = ud;
    (void)name;
    c->ends++;
}

static void XMLCALL x_chars(void *ud, const XML_Char *s, int len)
{
    struct xcount *c = ud;
    (void)s;
    c->chars += (size_t)len;
}

static XML_Parser expat_new(struct xcount *c)
{
    XML_Parser xp = XML_ParserCreate_MM("UTF-8", &xp_mm, "\x01");
    XML_SetUserData(xp, c);
    XML_SetElementHandler(xp, x_start, x_end);
    XML_SetCharacterDataHandler(xp, x_chars);
    return xp;
}

static double run_expat(const char *in, size_t len, struct xcount *c)
{
    memset(c, 0, sizeof *c);
    XML_Parser xp = expat_new(c);
    double t0 = now();
    for (size_t i = 0; i < len; i += CHUNK) {
        size_t n = len - i < CHUNK ? len - i : CHUNK;
        if (XML_Parse(xp, in + i, (int)n, 0) != XML_STATUS_OK) {
            fprintf(stderr, "expat: %s\n", XML_ErrorString(XML_GetErrorCode(xp)));
            exit(1);
        }
    }
    double t = now() - t0;
    XML_ParserFree(xp);
    return t;
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/xml";
    static const char *const files[] = {"03-messages.xml", "04-presence-caps.xml",
                                        "05-roster.xml"};
    char *parts[3];
    size_t plen[3];
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        parts[i] = stanzas_of(path, &plen[i]);
    }
    /* Mix: messages twice as often as presence, a roster result every
     * fourth round; each round starts with a small message carrying the
     * round number, then a whitespace keepalive. */
    struct buf in = {0};
    add(&in, HDR, strlen(HDR));
    unsigned round = 0;
    while (in.len < TARGET_BYTES) {
        char marker[96];
        int n = snprintf(marker, sizeof marker, "<message id='round-%u' to='bench@example.com'>"
                                                "<body>%u</body></message>\n ",
                         round, round);
        add(&in, marker, (size_t)n);
        add(&in, parts[0], plen[0]);
        add(&in, parts[1], plen[1]);
        add(&in, parts[0], plen[0]);
        if (round % 4 == 0)
            add(&in, parts[2], plen[2]);
        round++;
    }
    add(&in, "</stream:stream>", 16);
    double mb = (double)in.len / 1e6;
    printf("input: %.1f MB of c2s traffic (%u rounds of fixtures 03/04/05), %d-byte chunks\n", mb,
           round, CHUNK);

    /* best of 5 for each, interleaved */
    double best_o = 1e9, best_t = 1e9, best_x = 1e9;
    struct count c, ct;
    struct xcount xc;
    for (int r = 0; r < 5; r++) {
        double t = run_ours(in.s, in.len, 0, &c);
        best_o = t < best_o ? t : best_o;
        t = run_ours(in.s, in.len, 1, &ct);
        best_t = t < best_t ? t : best_t;
        t = run_expat(in.s, in.len, &xc);
        best_x = t < best_x ? t : best_x;
    }
    printf("stanzad parser:        %8.1f MB/s  (%zu top-level elements)\n", mb / best_o, c.elems);
    printf("stanzad parser + tree: %8.1f MB/s  (%zu tree nodes)\n", mb / best_t, ct.tree_nodes);
    printf("expat 2.x, namespaces: %8.1f MB/s  (%zu starts, %zu ends, %zu char bytes)\n",
           mb / best_x, xc.starts, xc.ends, xc.chars);
    printf("ratio parser/expat:    %8.2fx\n", best_x / best_o);
    printf("ratio parser+tree/expat: %6.2fx\n", best_x / best_t);

    /* idle state: after a header and some stanzas, between stanzas */
    const char *warm = HDR "<presence/><message to='a@b'><body>hi</body></message>";
    sz_xml_parser_t p;
    memset(&c, 0, sizeof c);
    sz_xml_parser_init(&p, NULL, &ops, &c);
    sz_xml_parser_feed(&p, warm, strlen(warm));
    printf("idle parser state:     %zu bytes struct + %zu bytes heap (stanzad)\n", sizeof p,
           sz_xml_parser_heap_bytes(&p));
    sz_xml_parser_free(&p);
    xp_live = xp_peak = 0;
    XML_Parser xp = expat_new(&xc);
    XML_Parse(xp, warm, (int)strlen(warm), 0);
    printf("idle parser state:     %zu bytes heap (expat, same point of the stream)\n", xp_live);
    XML_ParserFree(xp);

    /* a 200 KiB stanza in 4 KiB chunks */
    struct buf big = {0};
    add(&big, HDR, strlen(HDR));
    const char *open = "<message to='juliet@example.com' id='big'><body>";
    add(&big, open, strlen(open));
    size_t body = 200 * 1024 - strlen(open) - 17;
    for (size_t i = 0; i < body; i++)
        add(&big, &"Wherefore art thou Romeo? "[i % 26], 1);
    add(&big, "</body></message>", 17);
    sz_xml_scratch_free();
    size_t peak = 0, peak_scratch = 0;
    memset(&c, 0, sizeof c);
    sz_xml_parser_init(&p, NULL, &ops, &c);
    for (size_t i = 0; i < big.len; i += CHUNK) {
        size_t n = big.len - i < CHUNK ? big.len - i : CHUNK;
        sz_xml_parser_feed(&p, big.s + i, n);
        size_t h = sz_xml_parser_heap_bytes(&p), s = sz_xml_scratch_bytes();
        peak = h > peak ? h : peak;
        peak_scratch = s > peak_scratch ? s : peak_scratch;
    }
    printf("200 KiB stanza:        peak %zu bytes parser heap + %zu bytes thread scratch "
           "(stanzad), %zu after\n",
           peak, peak_scratch, sz_xml_parser_heap_bytes(&p));
    sz_xml_parser_free(&p);
    xp_live = xp_peak = 0;
    xp = expat_new(&xc);
    for (size_t i = 0; i < big.len; i += CHUNK) {
        size_t n = big.len - i < CHUNK ? big.len - i : CHUNK;
        XML_Parse(xp, big.s + i, (int)n, 0);
    }
    printf("200 KiB stanza:        peak %zu bytes heap (expat)\n", xp_peak);
    XML_ParserFree(xp);

    sz_xml_scratch_free();
    free(big.s);
    free(in.s);
    for (int i = 0; i < 3; i++)
        free(parts[i]);
    return 0;
}
