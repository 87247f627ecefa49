/*
 * Streaming XMPP parser: nginx-style resumable states with inline limits.
 *
 * One "machine" (run()) parses one top-level item (XML declaration, stream
 * header, stanza or nonza, stream end) over a contiguous span: the caller's
 * chunk when the item lies in it (zero copy), else the parser's own buffer,
 * which holds every byte of the item from its '<'. The machine keeps only
 * offsets into the span, so a suspended item resumes after the buffer grew
 * or moved. It stops ("more") only before a construct it cannot decide yet
 * (a UTF-8 sequence, a reference, "]]>", "<![CDATA[" cut by the chunk end)
 * or in the middle of a long run (text, value, name) whose state it saves,
 * so no byte is scanned more than a bounded number of times, and the
 * result never depends on where chunks were split.
 *
 * The element stack, namespace bindings and the current tag's attributes
 * live in a thread-local scratch area while a chunk is parsed, and are
 * copied to the heap only when an item stays incomplete at a chunk's end.
 * Owner core only; the scratch makes the parser non-reentrant per thread
 * while run() executes (callbacks are called after it returns).
 */
#include "core/xml/parser.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/mem.h"

static_assert(sizeof(sz_xml_parser_t) <= 64, "sz_xml_parser_t must stay within 64 bytes");

/* Stream position (sz_xml_parser_t._state). */
enum { PS_BEFORE_DECL = 0, PS_BEFORE_HEADER, PS_STREAM, PS_CLOSED };

/* Machine states. */
enum {
    M_LT,     /* at '<' */
    M_STAG,   /* in a start-tag name */
    M_TAGWS,  /* in a start tag, after the name or a value */
    M_ANAME,  /* in an attribute name */
    M_AEQ,    /* after an attribute name: S* '=' */
    M_AQ,     /* after '=': S* quote */
    M_AVAL,   /* in an attribute value */
    M_EMPTY,  /* after '/' in a start tag */
    M_ETAG,   /* in an end-tag name */
    M_ETAGWS, /* after an end-tag name: S* '>' */
    M_TEXT,   /* character data */
    M_CDATA,  /* in a CDATA section */
    M_DECL,   /* in the XML declaration */
};

/* What the item being parsed is. */
enum { K_NONE = 0, K_DECL, K_HEADER, K_ELEM, K_END };

/* Machine results besides -condition. */
enum { R_DONE = 1, R_MORE = 2, R_STOP = 3 };

#define F_SPACE 1u /* whitespace seen since the last name or value */
#define F_ESC 2u   /* current value holds a reference or a literal tab/CR/LF */

#define REF_MAX 32u   /* longest reference accepted, '&' to ';' included */
#define DECL_MAX 256u /* longest XML declaration accepted */
#define POOL_BIT 0x80000000u

#define NWF (-SZ_STREAM_NOT_WELL_FORMED)

/* ---- character classes ---------------------------------------------- */

#define C_WS 0x01     /* S */
#define C_TEXT 0x02   /* plain in character data */
#define C_AVAL 0x04   /* plain in an attribute value */
#define C_NAME 0x08   /* ASCII NameChar except ':' */
#define C_NSTART 0x10 /* ASCII NameStartChar except ':' */
#define C_CDATA 0x20  /* plain in a CDATA section */

#define PLAIN (C_TEXT | C_AVAL | C_CDATA)
static const uint8_t ctab[256] = {
    ['\t'] = C_WS | C_TEXT | C_CDATA,
    ['\n'] = C_WS | C_TEXT | C_CDATA,
    ['\r'] = C_WS | C_TEXT | C_CDATA,
    [' '] = C_WS | PLAIN,
    ['!'] = PLAIN,
    ['"'] = C_TEXT | C_CDATA,
    ['#'... '%'] = PLAIN,
    ['&'] = C_CDATA,
    ['\''] = C_TEXT | C_CDATA,
    ['('... ','] = PLAIN,
    ['-'] = PLAIN | C_NAME,
    ['.'] = PLAIN | C_NAME,
    ['/'] = PLAIN,
    ['0'... '9'] = PLAIN | C_NAME,
    [':'... ';'] = PLAIN,
    ['<'] = C_CDATA,
    ['='... '@'] = PLAIN,
    ['A'... 'Z'] = PLAIN | C_NAME | C_NSTART,
    ['['] = PLAIN,
    ['\\'] = PLAIN,
    [']'] = C_AVAL,
    ['^'] = PLAIN,
    ['_'] = PLAIN | C_NAME | C_NSTART,
    ['`'] = PLAIN,
    ['a'... 'z'] = PLAIN | C_NAME | C_NSTART,
    ['{'... 0x7f] = PLAIN,
};

/* XML 1.0 Char, for code points from references. */
static bool is_char(uint32_t v)
{
    return v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF) ||
           (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF);
}

static bool name_start_cp(uint32_t c)
{
    return (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) ||
           (c >= 0x370 && c <= 0x37D) || (c >= 0x37F && c <= 0x1FFF) ||
           (c >= 0x200C && c <= 0x200D) || (c >= 0x2070 && c <= 0x218F) ||
           (c >= 0x2C00 && c <= 0x2FEF) || (c >= 0x3001 && c <= 0xD7FF) ||
           (c >= 0xF900 && c <= 0xFDCF) || (c >= 0xFDF0 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0xEFFFF);
}

static bool name_cp(uint32_t c)
{
    return name_start_cp(c) || c == 0xB7 || (c >= 0x300 && c <= 0x36F) ||
           (c >= 0x203F && c <= 0x2040);
}

/*
 * One non-ASCII UTF-8 sequence at <s> that must encode an XML Char.
 * Returns its length (2..4) and the code point in *<cp>, 0 when fewer
 * than its length are available (decided once they are), -1 when invalid:
 * bad lead or continuation, overlong, surrogate, > U+10FFFF, U+FFFE/FFFF.
 */
static int utf8_char(const uint8_t *s, uint32_t avail, uint32_t *cp)
{
    uint32_t v, min;
    int n;
    uint8_t c = s[0];
    if (c < 0xC2)
        return -1;
    if (c < 0xE0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c < 0xF0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c < 0xF5) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (avail < (uint32_t)n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || v == 0xFFFE || v == 0xFFFF)
        return -1;
    *cp = v;
    return n;
}

/* ---- known namespaces ------------------------------------------------ */

static const struct {
    const char *uri;
    uint8_t len;
} ns_tab[SZ_XML_NS_COUNT] = {
#define NS(id, s) [id] = {s, sizeof(s) - 1}
    NS(SZ_XML_NS_CLIENT, "jabber:client"),
    NS(SZ_XML_NS_SERVER, "jabber:server"),
    NS(SZ_XML_NS_COMPONENT, "jabber:component:accept"),
    NS(SZ_XML_NS_STREAMS, "http://etherx.jabber.org/streams"),
    NS(SZ_XML_NS_DIALBACK, "jabber:server:dialback"),
    NS(SZ_XML_NS_TLS, "urn:ietf:params:xml:ns:xmpp-tls"),
    NS(SZ_XML_NS_SASL, "urn:ietf:params:xml:ns:xmpp-sasl"),
    NS(SZ_XML_NS_SM, "urn:xmpp:sm:3"),
    NS(SZ_XML_NS_CSI, "urn:xmpp:csi:0"),
    NS(SZ_XML_NS_XML, "http://www.w3.org/XML/1998/namespace"),
#undef NS
};

static const char xmlns_ns[] = "http://www.w3.org/2000/xmlns/";

const char *sz_xml_ns_uri(enum sz_xml_ns id, size_t *len)
{
    if ((unsigned)id >= SZ_XML_NS_COUNT || !ns_tab[id].uri) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = ns_tab[id].len;
    return ns_tab[id].uri;
}

enum sz_xml_ns sz_xml_ns_lookup(const char *uri, size_t len)
{
    if (len == 0)
        return SZ_XML_NS_NONE;
    for (int i = SZ_XML_NS_CLIENT; i < SZ_XML_NS_COUNT; i++)
        if (ns_tab[i].len == len && memcmp(ns_tab[i].uri, uri, len) == 0)
            return (enum sz_xml_ns)i;
    return SZ_XML_NS_OTHER;
}

/* ---- machine state --------------------------------------------------- */

struct elem {
    uint32_t qoff, qlen, colon, nbind; /* qname, its ':' (0: none), bindings below */
};

struct bind {
    uint32_t poff, plen; /* prefix in the span (plen 0: default namespace) */
    uint32_t uoff, ulen; /* namespace name: span offset, or pool offset | POOL_BIT */
};

struct attr {
    uint32_t qoff, qlen, colon, voff, vlen;
    uint8_t esc, decl;  /* value needs decoding; is a namespace declaration */
    uint32_t nsl;       /* resolved namespace, valid inside end_stag() only */
    const uint8_t *nsp;
};

/* Element stack, bindings in scope, attributes of the open tag, decoded
 * namespace names. Counts bounded by max_depth, max_attrs and the span. */
struct work {
    struct elem *el;
    struct bind *bd;
    struct attr *at;
    char *pool;
    uint32_t nel, cel, nbd, cbd, nat, cat, npool, cpool;
};

/* Where a resolved namespace name lives. */
enum { NSR_NONE = 0, NSR_SPAN, NSR_POOL, NSR_STATIC };

struct nsref {
    uint8_t src, id;
    uint32_t off, len;
};

struct mach {
    uint32_t pos;       /* next byte to look at */
    uint32_t tok;       /* start of the current name or value */
    uint32_t colon;     /* ':' of the current name, 0: none */
    uint32_t aq, aqlen, acolon; /* current attribute's name */
    uint8_t st, kind, quote, flags;
};

struct ctx {
    struct mach m;
    struct nsref ns; /* the top-level element's namespace */
    sz_xml_head_t h;
};

struct sz_xml_pend {
    struct ctx c;
    struct work w;
    uint8_t *buf;
    uint32_t len, cap;
};

static __thread struct work scratch;
static __thread uint32_t *htab; /* duplicate-attribute hash table */
static __thread uint32_t hcap;

static void grow(void **arr, uint32_t *cap, uint32_t need, size_t elsz)
{
    if (need <= *cap)
        return;
    uint32_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    *arr = sz_realloc(*arr, (size_t)n * elsz);
    *cap = n;
}

static void work_release(struct work *w)
{
    sz_free(w->el);
    sz_free(w->bd);
    sz_free(w->at);
    sz_free(w->pool);
    memset(w, 0, sizeof *w);
}

size_t sz_xml_scratch_bytes(void)
{
    return (size_t)scratch.cel * sizeof(struct elem) + (size_t)scratch.cbd * sizeof(struct bind) +
           (size_t)scratch.cat * sizeof(struct attr) + scratch.cpool + (size_t)hcap * 4;
}

void sz_xml_scratch_free(void)
{
    work_release(&scratch);
    sz_free(htab);
    htab = NULL;
    hcap = 0;
}

/* ---- names, references ---------------------------------------------- */

/*
 * Scans a (qualified) name from *<posp>; <tok> is its first byte and
 * *<colon> its ':' so far. Returns 1 with *<posp> at the first byte after
 * the name once the name is complete and valid (a QName: NCName or
 * NCName:NCName), 0 when <lim> came first (*<posp> is a resume point), or
 * -condition.
 */
static int scan_name(const uint8_t *b, uint32_t *posp, uint32_t lim, uint32_t tok,
                     uint32_t *colon)
{
    uint32_t pos = *posp, cp;
    for (;;) {
        while (pos < lim && (ctab[b[pos]] & C_NAME))
            pos++;
        if (pos >= lim) {
            *posp = pos;
            return 0;
        }
        uint8_t ch = b[pos];
        if (ch == ':') {
            if (*colon)
                return NWF;
            *colon = pos++;
            continue;
        }
        if (ch < 0x80)
            break;
        int n = utf8_char(b + pos, lim - pos, &cp);
        if (n == 0) {
            *posp = pos;
            return 0;
        }
        if (n < 0 || !name_cp(cp))
            return NWF;
        pos += (uint32_t)n;
    }
    *posp = pos;
    /* The name and its local part (after ':') start with a NameStartChar
     * other than ':'; neither part is empty. */
    uint32_t starts[2] = {tok, *colon ? *colon + 1 : tok};
    if (pos == tok || (*colon && (*colon == tok || *colon + 1 == pos)))
        return NWF;
    for (int i = 0; i < 2; i++) {
        uint8_t ch = b[starts[i]];
        if (ch < 0x80) {
            if (!(ctab[ch] & C_NSTART))
                return NWF;
        } else if (utf8_char(b + starts[i], pos - starts[i], &cp) <= 0 || !name_start_cp(cp)) {
            return NWF;
        }
    }
    return 1;
}

/*
 * A reference at b[pos] == '&'. Returns its length ('&' to ';'), 0 when
 * more bytes are needed to decide, or -condition: a malformed or invalid
 * character reference is not-well-formed; a name other than the five
 * predefined entities is an undeclared entity, restricted-xml. References
 * longer than REF_MAX bytes are refused (no real traffic pads them).
 */
static int scan_ref(const uint8_t *b, uint32_t pos, uint32_t lim)
{
    uint32_t end = lim - pos > REF_MAX ? pos + REF_MAX : lim, i = pos + 1;
    bool cut = end == lim && lim - pos < REF_MAX; /* ran out of bytes, not of room */
    if (i < end && b[i] == '#') {
        uint32_t v = 0, digits = 0, base = 10;
        if (++i < end && b[i] == 'x')
            base = 16, i++;
        for (; i < end && b[i] != ';'; i++, digits++) {
            uint8_t ch = b[i];
            uint32_t d;
            if (ch >= '0' && ch <= '9')
                d = ch - '0';
            else if (base == 16 && (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
                d = (ch | 0x20) - 'a' + 10;
            else
                return NWF;
            v = v * base + d;
            if (v > 0x10FFFF)
                return NWF;
        }
        if (i >= end)
            return cut ? 0 : NWF;
        if (!digits || !is_char(v))
            return NWF;
        return (int)(i + 1 - pos);
    }
    for (; i < end && b[i] != ';'; i++)
        if (b[i] < 0x80 && !(ctab[b[i]] & C_NAME) && b[i] != ':')
            return NWF;
    if (i >= end)
        return cut ? 0 : -SZ_STREAM_RESTRICTED_XML;
    uint32_t n = i - pos - 1;
    const uint8_t *s = b + pos + 1;
    if (n == 0 || (s[0] < 0x80 && !(ctab[s[0]] & C_NSTART) && s[0] != ':'))
        return NWF;
    if ((n == 2 && (memcmp(s, "lt", 2) == 0 || memcmp(s, "gt", 2) == 0)) ||
        (n == 3 && memcmp(s, "amp", 3) == 0) ||
        (n == 4 && (memcmp(s, "apos", 4) == 0 || memcmp(s, "quot", 4) == 0)))
        return (int)(n + 2);
    return -SZ_STREAM_RESTRICTED_XML;
}

/* ---- namespaces, attributes ------------------------------------------ */

static const uint8_t *nsref_ptr(const struct nsref *r, const struct work *w, const uint8_t *b)
{
    switch (r->src) {
    case NSR_SPAN:
        return b + r->off;
    case NSR_POOL:
        return (const uint8_t *)w->pool + r->off;
    case NSR_STATIC:
        return (const uint8_t *)ns_tab[r->id].uri;
    default:
        return (const uint8_t *)"";
    }
}

static void nsref_static(struct nsref *r, uint8_t id)
{
    r->src = id ? NSR_STATIC : NSR_NONE;
    r->id = id;
    r->off = 0;
    r->len = id ? ns_tab[id].len : 0;
}

/*
 * Resolves prefix <pfx> (<plen> bytes, 0: the default namespace) against
 * the bindings in scope, then the stream-level ones (top-level elements
 * only) and the implicit xml prefix. An unbound prefix is not-well-formed.
 */
static int resolve(const struct ctx *c, const struct work *w, const sz_xml_parser_t *p,
                   const uint8_t *b, const uint8_t *pfx, uint32_t plen, struct nsref *out)
{
    for (uint32_t i = w->nbd; i-- > 0;) {
        const struct bind *bd = &w->bd[i];
        if (bd->plen != plen || memcmp(b + bd->poff, pfx, plen) != 0)
            continue;
        out->src = bd->ulen == 0 ? NSR_NONE : (bd->uoff & POOL_BIT) ? NSR_POOL : NSR_SPAN;
        out->id = 0;
        out->off = bd->uoff & ~POOL_BIT;
        out->len = bd->ulen;
        return 0;
    }
    bool in_stream = c->m.kind == K_ELEM;
    if (plen == 0) {
        nsref_static(out, in_stream ? p->_scope.dflt : SZ_XML_NS_NONE);
        return 0;
    }
    if (plen == 3 && memcmp(pfx, "xml", 3) == 0) {
        nsref_static(out, SZ_XML_NS_XML);
        return 0;
    }
    if (in_stream) {
        const sz_xml_scope_t *s = &p->_scope;
        if (s->plen[0] == plen && memcmp(s->pfx, pfx, plen) == 0) {
            nsref_static(out, SZ_XML_NS_STREAMS);
            return 0;
        }
        if (s->plen[1] == plen && memcmp(s->pfx + s->plen[0], pfx, plen) == 0) {
            nsref_static(out, SZ_XML_NS_DIALBACK);
            return 0;
        }
    }
    return NWF;
}

/*
 * A namespace declaration (xmlns or xmlns:p) whose value just ended. At
 * most <max> declarations may be in scope at once (max_attrs): every name
 * lookup walks them, so this bounds the work per element.
 */
static int add_binding(struct work *w, const uint8_t *b, const struct attr *a, uint32_t max)
{
    struct bind nb;
    if (w->nbd >= max)
        return -SZ_STREAM_POLICY_VIOLATION;
    if (a->colon) {
        nb.poff = a->colon + 1;
        nb.plen = a->qoff + a->qlen - nb.poff;
    } else {
        nb.poff = 0;
        nb.plen = 0;
    }
    const uint8_t *uri = b + a->voff;
    nb.uoff = a->voff;
    nb.ulen = a->vlen;
    if (a->esc) {
        /* Decoded names go to the pool; decoding never lengthens. */
        grow((void **)&w->pool, &w->cpool, w->npool + a->vlen + 1, 1);
        ssize_t n = sz_xml_unescape((const char *)uri, a->vlen, w->pool + w->npool, a->vlen + 1,
                                    true);
        if (n < 0)
            return NWF;
        uri = (const uint8_t *)w->pool + w->npool;
        nb.uoff = w->npool | POOL_BIT;
        nb.ulen = (uint32_t)n;
        w->npool += (uint32_t)n;
    }
    const uint8_t *pfx = b + nb.poff;
    size_t xl = ns_tab[SZ_XML_NS_XML].len;
    bool is_xml_pfx = nb.plen == 3 && memcmp(pfx, "xml", 3) == 0;
    bool is_xml_uri = nb.ulen == xl && memcmp(uri, ns_tab[SZ_XML_NS_XML].uri, xl) == 0;
    /* Namespaces in XML 1.0 §3: no undeclaring a prefix, xmlns is never
     * declared, xml only to its own name, which no other prefix takes. */
    if (nb.plen && nb.ulen == 0)
        return NWF;
    if (nb.plen == 5 && memcmp(pfx, "xmlns", 5) == 0)
        return NWF;
    if (nb.ulen == sizeof(xmlns_ns) - 1 && memcmp(uri, xmlns_ns, nb.ulen) == 0)
        return NWF;
    if (is_xml_pfx != is_xml_uri)
        return NWF;
    /* The same prefix twice on one tag is a duplicate attribute. */
    for (uint32_t i = w->el[w->nel - 1].nbind; i < w->nbd; i++)
        if (w->bd[i].plen == nb.plen && memcmp(b + w->bd[i].poff, pfx, nb.plen) == 0)
            return NWF;
    grow((void **)&w->bd, &w->cbd, w->nbd + 1, sizeof *w->bd);
    w->bd[w->nbd++] = nb;
    return 0;
}

/* The attribute whose value just ended at <vend>. */
static int add_attr(struct ctx *c, struct work *w, const sz_xml_parser_t *p, const uint8_t *b,
                    uint32_t vend)
{
    const struct mach *m = &c->m;
    grow((void **)&w->at, &w->cat, w->nat + 1, sizeof *w->at);
    struct attr *a = &w->at[w->nat++];
    a->qoff = m->aq;
    a->qlen = m->aqlen;
    a->colon = m->acolon;
    a->voff = m->tok;
    a->vlen = vend - m->tok;
    a->esc = (m->flags & F_ESC) != 0;
    a->decl = (!a->colon && a->qlen == 5 && memcmp(b + a->qoff, "xmlns", 5) == 0) ||
              (a->colon == a->qoff + 5 && memcmp(b + a->qoff, "xmlns", 5) == 0);
    return a->decl ? add_binding(w, b, a, p->_lim.max_attrs) : 0;
}

static uint32_t hash_attr(const struct attr *a, const uint8_t *local, uint32_t llen)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < a->nsl; i++)
        h = (h ^ a->nsp[i]) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (uint32_t i = 0; i < llen; i++)
        h = (h ^ local[i]) * 16777619u;
    return h;
}

static bool same_attr(const struct attr *x, const struct attr *y, const uint8_t *b)
{
    uint32_t xs = x->colon ? x->colon + 1 : x->qoff, ys = y->colon ? y->colon + 1 : y->qoff;
    uint32_t xl = x->qoff + x->qlen - xs, yl = y->qoff + y->qlen - ys;
    return xl == yl && x->nsl == y->nsl && memcmp(b + xs, b + ys, xl) == 0 &&
           memcmp(x->nsp, y->nsp, x->nsl) == 0;
}

/*
 * Resolves the attributes' prefixes and refuses two attributes with the
 * same {namespace, local name} (Namespaces in XML §6.3). Few attributes
 * are compared pairwise; many go through a hash table, so that a tag with
 * max_attrs attributes costs O(n), not O(n^2).
 */
static int check_attrs(const struct ctx *c, struct work *w, const sz_xml_parser_t *p,
                       const uint8_t *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->nat; i++) {
        struct attr *a = &w->at[i];
        if (a->decl)
            continue;
        struct nsref r = {0};
        if (a->colon) {
            int e = resolve(c, w, p, b, b + a->qoff, a->colon - a->qoff, &r);
            if (e < 0)
                return e;
        }
        a->nsp = nsref_ptr(&r, w, b);
        a->nsl = r.len;
        w->at[n++] = *a; /* compact: non-declarations first */
    }
    if (n <= 8) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (same_attr(&w->at[i], &w->at[j], b))
                    return NWF;
        return (int)n;
    }
    uint32_t size = 16;
    while (size < 2 * n)
        size *= 2;
    if (hcap < size) {
        sz_free(htab);
        htab = sz_malloc(size * sizeof *htab);
        hcap = size;
    }
    memset(htab, 0xff, size * sizeof *htab);
    for (uint32_t i = 0; i < n; i++) {
        const struct attr *a = &w->at[i];
        uint32_t ls = a->colon ? a->colon + 1 : a->qoff;
        uint32_t h = hash_attr(a, b + ls, a->qoff + a->qlen - ls) & (size - 1);
        while (htab[h] != UINT32_MAX) {
            if (same_attr(a, &w->at[htab[h]], b))
                return NWF;
            h = (h + 1) & (size - 1);
        }
        htab[h] = i;
    }
    return (int)n;
}

/* The stream header's own checks; fills the parser's stream-level scope. */
static int check_header(struct ctx *c, struct work *w, sz_xml_parser_t *p, const uint8_t *b)
{
    const struct elem *e = &w->el[0];
    const sz_xml_head_t *h = &c->h;
    if (h->ns_id != SZ_XML_NS_STREAMS || h->prefix.len == 0)
        return -SZ_STREAM_INVALID_NAMESPACE;
    if (h->name.len != 6 || memcmp(b + h->name.off, "stream", 6) != 0)
        return -SZ_STREAM_BAD_FORMAT;
    sz_xml_scope_t s;
    memset(&s, 0, sizeof s);
    uint32_t db_off = 0, db_len = 0;
    for (uint32_t i = e->nbind; i < w->nbd; i++) {
        const struct bind *bd = &w->bd[i];
        const uint8_t *uri = (bd->uoff & POOL_BIT) ? (const uint8_t *)w->pool +
                                                         (bd->uoff & ~POOL_BIT)
                                                   : b + bd->uoff;
        enum sz_xml_ns id = sz_xml_ns_lookup((const char *)uri, bd->ulen);
        if (bd->plen == 0) {
            if (id != SZ_XML_NS_NONE && !(p->_content & (1u << id)))
                return -SZ_STREAM_INVALID_NAMESPACE;
            s.dflt = (uint8_t)id;
        } else if (id == SZ_XML_NS_STREAMS && bd->plen == h->prefix.len &&
                   memcmp(b + bd->poff, b + h->prefix.off, bd->plen) == 0) {
            /* the streams prefix itself */
        } else if (id == SZ_XML_NS_DIALBACK && !db_len) {
            db_off = bd->poff, db_len = bd->plen;
        } else if (id != SZ_XML_NS_XML) {
            /* Not representable in the 64-byte parser (see sz_xml_scope_t). */
            return -SZ_STREAM_POLICY_VIOLATION;
        }
    }
    if (h->prefix.len + db_len > sizeof s.pfx)
        return -SZ_STREAM_POLICY_VIOLATION;
    s.plen[0] = (uint8_t)h->prefix.len;
    s.plen[1] = (uint8_t)db_len;
    memcpy(s.pfx, b + h->prefix.off, h->prefix.len);
    memcpy(s.pfx + h->prefix.len, b + db_off, db_len);
    p->_scope = s;
    return 0;
}

/* The top-level element's header, from its start tag. */
static void fill_head(struct ctx *c, const struct work *w, const uint8_t *b, uint32_t nplain,
                      bool empty)
{
    const struct elem *e = &w->el[0];
    sz_xml_head_t *h = &c->h;
    memset(h, 0, sizeof *h);
    uint32_t plen = e->colon ? e->colon - e->qoff : 0;
    if (plen)
        h->prefix = (sz_xml_str_t){e->qoff, plen};
    h->name.off = plen ? e->colon + 1 : e->qoff;
    h->name.len = e->qoff + e->qlen - h->name.off;
    h->ns_id = c->ns.src == NSR_STATIC ? c->ns.id
               : c->ns.src == NSR_NONE ? SZ_XML_NS_NONE
                                       : (uint8_t)sz_xml_ns_lookup(
                                             (const char *)nsref_ptr(&c->ns, w, b), c->ns.len);
    h->ns_len = c->ns.len;
    h->nattrs = (uint16_t)w->nat; /* still counts the declarations: see below */
    h->empty = empty;
    for (uint32_t i = 0; i < nplain; i++) {
        const struct attr *a = &w->at[i];
        const uint8_t *q = b + a->qoff;
        int idx = -1;
        if (!a->colon) {
            if (a->qlen == 2 && q[0] == 't' && q[1] == 'o')
                idx = SZ_XML_A_TO;
            else if (a->qlen == 2 && q[0] == 'i' && q[1] == 'd')
                idx = SZ_XML_A_ID;
            else if (a->qlen == 4 && memcmp(q, "from", 4) == 0)
                idx = SZ_XML_A_FROM;
            else if (a->qlen == 4 && memcmp(q, "type", 4) == 0)
                idx = SZ_XML_A_TYPE;
            else if (a->qlen == 7 && memcmp(q, "version", 7) == 0)
                idx = SZ_XML_A_VERSION;
        } else if (a->qlen == 8 && memcmp(q, "xml:lang", 8) == 0) {
            idx = SZ_XML_A_LANG;
        }
        if (idx >= 0) {
            h->attr[idx] = (sz_xml_str_t){a->voff, a->vlen};
            if (a->esc)
                h->esc |= (uint8_t)(1u << idx);
        }
    }
}

/* A start tag ended ('>' or '/>'): resolve, check, record the header. */
static int end_stag(struct ctx *c, struct work *w, sz_xml_parser_t *p, const uint8_t *b,
                    bool empty)
{
    struct elem *e = &w->el[w->nel - 1];
    uint32_t plen = e->colon ? e->colon - e->qoff : 0;
    struct nsref ens;
    if (plen == 5 && memcmp(b + e->qoff, "xmlns", 5) == 0)
        return NWF;
    uint32_t nat = w->nat;
    int r = resolve(c, w, p, b, b + e->qoff, plen, &ens);
    if (r < 0)
        return r;
    r = check_attrs(c, w, p, b);
    if (r < 0)
        return r;
    if (w->nel == 1) {
        c->ns = ens;
        fill_head(c, w, b, (uint32_t)r, empty);
        c->h.nattrs = (uint16_t)nat;
        if (c->m.kind == K_HEADER && (r = check_header(c, w, p, b)) < 0)
            return r;
    }
    w->nat = 0;
    if (empty) {
        w->nbd = e->nbind;
        w->nel--;
    }
    return 0;
}

/* <?xml version='1.x' (encoding='UTF-8')? (standalone='yes|no')? ?> */
static int check_decl(const uint8_t *b, uint32_t len)
{
    static const char *const names[3] = {"version", "encoding", "standalone"};
    uint32_t i = 5; /* after "<?xml" */
    int seen = 0;
    for (;;) {
        uint32_t ws = i;
        while (i < len && (ctab[b[i]] & C_WS))
            i++;
        if (b[i] == '?')
            break;
        if (i == ws)
            return NWF;
        int k = -1;
        for (int j = seen; j < 3 && k < 0; j++) {
            size_t nl = strlen(names[j]);
            if (len - i > nl && memcmp(b + i, names[j], nl) == 0)
                k = j, i += (uint32_t)nl;
        }
        if (k < 0 || (k > 0 && seen == 0))
            return NWF;
        seen = k + 1;
        while (i < len && (ctab[b[i]] & C_WS))
            i++;
        if (b[i++] != '=')
            return NWF;
        while (i < len && (ctab[b[i]] & C_WS))
            i++;
        uint8_t q = b[i++];
        if (q != '\'' && q != '"')
            return NWF;
        uint32_t v = i;
        while (i < len && b[i] != q)
            i++;
        if (i >= len - 2)
            return NWF;
        uint32_t vl = i++ - v;
        const uint8_t *s = b + v;
        if (k == 0) {
            if (vl < 3 || s[0] != '1' || s[1] != '.')
                return NWF;
            for (uint32_t j = 2; j < vl; j++)
                if (s[j] < '0' || s[j] > '9')
                    return NWF;
        } else if (k == 1) {
            if (vl == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
                return NWF;
            for (uint32_t j = 1; j < vl; j++)
                if (!(ctab[s[j]] & C_NAME))
                    return NWF;
            if (vl != 5 || (s[0] | 0x20) != 'u' || (s[1] | 0x20) != 't' ||
                (s[2] | 0x20) != 'f' || s[3] != '-' || s[4] != '8')
                return -SZ_STREAM_UNSUPPORTED_ENCODING;
        } else if (!(vl == 3 && memcmp(s, "yes", 3) == 0) && !(vl == 2 && memcmp(s, "no", 2) == 0)) {
            return NWF;
        }
    }
    return seen && i + 2 == len ? 0 : NWF;
}

/* ---- the machine ------------------------------------------------------ */

#define SKIP_WS()                                                                                \
    do {                                                                                         \
        while (pos < lim && (ctab[b[pos]] & C_WS))                                               \
            pos++;                                                                               \
        if (pos >= lim)                                                                          \
            goto more;                                                                           \
    } while (0)

/*
 * Parses the item in span <b> from c->m.pos up to <lim>. Returns R_DONE
 * with c->m.pos just after the item, R_MORE when bytes past <lim> are
 * needed, or -condition.
 */
static int run(struct ctx *c, struct work *w, sz_xml_parser_t *p, const uint8_t *b, uint32_t lim)
{
    struct mach *m = &c->m;
    uint32_t pos = m->pos, cp;
    int r;
    uint8_t ch;
    for (;;) {
        switch (m->st) {
        case M_TEXT:
            for (;;) {
                while (pos < lim && (ctab[b[pos]] & C_TEXT))
                    pos++;
                if (pos >= lim)
                    goto more;
                ch = b[pos];
                if (ch == '<')
                    break;
                if (ch == '&') {
                    if ((r = scan_ref(b, pos, lim)) <= 0)
                        goto ref_fail;
                    pos += (uint32_t)r;
                } else if (ch == ']') {
                    /* "]]>" may not appear in character data. */
                    if (lim - pos < 3)
                        goto more;
                    if (b[pos + 1] == ']' && b[pos + 2] == '>')
                        goto nwf;
                    pos++;
                } else if (ch >= 0x80) {
                    if ((r = utf8_char(b + pos, lim - pos, &cp)) <= 0)
                        goto utf8_fail;
                    pos += (uint32_t)r;
                } else {
                    goto nwf; /* a control character */
                }
            }
            m->st = M_LT;
            /* fall through */
        case M_LT:
            if (lim - pos < 2)
                goto more;
            ch = b[pos + 1];
            if (w->nel == 0) {
                /* A top-level item: the state of the stream decides. */
                if (ch == '?') {
                    if (p->_state != PS_BEFORE_DECL)
                        goto restricted;
                    if (lim - pos < 6)
                        goto more;
                    if (memcmp(b + pos, "<?xml", 5) != 0 || !(ctab[b[pos + 5]] & C_WS))
                        goto restricted;
                    m->kind = K_DECL;
                    m->st = M_DECL;
                    pos += 5;
                    continue;
                }
                if (ch == '!')
                    goto restricted; /* DOCTYPE, comment, CDATA at stream level */
                if (ch == '/') {
                    if (p->_state != PS_STREAM)
                        goto nwf;
                    m->kind = K_END;
                    pos += 2;
                    m->tok = pos;
                    m->colon = 0;
                    m->st = M_ETAG;
                    continue;
                }
                m->kind = p->_state == PS_STREAM ? K_ELEM : K_HEADER;
            } else if (ch == '!') {
                static const char cdata[9] = "<![CDATA[";
                uint32_t n = lim - pos < 9 ? lim - pos : 9;
                if (memcmp(b + pos, cdata, n) != 0)
                    goto restricted; /* comment, DOCTYPE, declarations */
                if (n < 9)
                    goto more;
                pos += 9;
                m->st = M_CDATA;
                continue;
            } else if (ch == '?') {
                goto restricted; /* processing instruction */
            } else if (ch == '/') {
                pos += 2;
                m->tok = pos;
                m->colon = 0;
                m->st = M_ETAG;
                continue;
            }
            pos++;
            m->tok = pos;
            m->colon = 0;
            m->st = M_STAG;
            /* fall through */
        case M_STAG:
            if ((r = scan_name(b, &pos, lim, m->tok, &m->colon)) <= 0)
                goto name_fail;
            if (w->nel >= p->_lim.max_depth)
                goto policy;
            grow((void **)&w->el, &w->cel, w->nel + 1, sizeof *w->el);
            w->el[w->nel++] = (struct elem){m->tok, pos - m->tok, m->colon, w->nbd};
            w->nat = 0;
            m->flags = 0;
            m->st = M_TAGWS;
            /* fall through */
        case M_TAGWS:
            while (pos < lim && (ctab[b[pos]] & C_WS)) {
                pos++;
                m->flags |= F_SPACE;
            }
            if (pos >= lim)
                goto more;
            ch = b[pos];
            if (ch == '>') {
                pos++;
                if ((r = end_stag(c, w, p, b, false)) < 0)
                    goto fail;
                if (m->kind == K_HEADER)
                    goto done;
                m->st = M_TEXT;
                continue;
            }
            if (ch == '/') {
                pos++;
                m->st = M_EMPTY;
                continue;
            }
            if (!(m->flags & F_SPACE))
                goto nwf;
            if (w->nat >= p->_lim.max_attrs)
                goto policy;
            m->tok = pos;
            m->colon = 0;
            m->st = M_ANAME;
            /* fall through */
        case M_ANAME:
            if ((r = scan_name(b, &pos, lim, m->tok, &m->colon)) <= 0)
                goto name_fail;
            m->aq = m->tok;
            m->aqlen = pos - m->tok;
            m->acolon = m->colon;
            m->st = M_AEQ;
            /* fall through */
        case M_AEQ:
            SKIP_WS();
            if (b[pos] != '=')
                goto nwf;
            pos++;
            m->st = M_AQ;
            /* fall through */
        case M_AQ:
            SKIP_WS();
            ch = b[pos];
            if (ch != '\'' && ch != '"')
                goto nwf;
            m->quote = ch;
            m->tok = ++pos;
            m->flags = 0;
            m->st = M_AVAL;
            /* fall through */
        case M_AVAL:
            for (;;) {
                while (pos < lim && (ctab[b[pos]] & C_AVAL))
                    pos++;
                if (pos >= lim)
                    goto more;
                ch = b[pos];
                if (ch == m->quote)
                    break;
                if (ch == '\'' || ch == '"') {
                    pos++;
                } else if (ch == '&') {
                    if ((r = scan_ref(b, pos, lim)) <= 0)
                        goto ref_fail;
                    pos += (uint32_t)r;
                    m->flags |= F_ESC;
                } else if (ch == '\t' || ch == '\n' || ch == '\r') {
                    pos++;
                    m->flags |= F_ESC; /* normalised to a space */
                } else if (ch >= 0x80) {
                    if ((r = utf8_char(b + pos, lim - pos, &cp)) <= 0)
                        goto utf8_fail;
                    pos += (uint32_t)r;
                } else {
                    goto nwf; /* '<' or a control character */
                }
            }
            if ((r = add_attr(c, w, p, b, pos)) < 0)
                goto fail;
            pos++;
            m->flags = 0;
            m->st = M_TAGWS;
            continue;
        case M_EMPTY:
            if (pos >= lim)
                goto more;
            if (b[pos] != '>')
                goto nwf;
            pos++;
            if ((r = end_stag(c, w, p, b, true)) < 0)
                goto fail;
            if (m->kind == K_HEADER || w->nel == 0)
                goto done;
            m->st = M_TEXT;
            continue;
        case M_ETAG: {
            if ((r = scan_name(b, &pos, lim, m->tok, &m->colon)) <= 0)
                goto name_fail;
            uint32_t qlen = pos - m->tok;
            const uint8_t *q = b + m->tok;
            if (m->kind == K_END) {
                const sz_xml_scope_t *s = &p->_scope;
                if (qlen != s->plen[0] + 7u || memcmp(q, s->pfx, s->plen[0]) != 0 ||
                    memcmp(q + s->plen[0], ":stream", 7) != 0)
                    goto nwf;
            } else {
                const struct elem *e = &w->el[w->nel - 1];
                if (e->qlen != qlen || memcmp(b + e->qoff, q, qlen) != 0)
                    goto nwf; /* mismatched end tag */
            }
            m->st = M_ETAGWS;
        }
            /* fall through */
        case M_ETAGWS:
            SKIP_WS();
            if (b[pos] != '>')
                goto nwf;
            pos++;
            if (m->kind == K_END)
                goto done;
            w->nbd = w->el[w->nel - 1].nbind;
            if (--w->nel == 0)
                goto done;
            m->st = M_TEXT;
            continue;
        case M_CDATA:
            for (;;) {
                while (pos < lim && (ctab[b[pos]] & C_CDATA))
                    pos++;
                if (pos >= lim)
                    goto more;
                ch = b[pos];
                if (ch == ']') {
                    if (lim - pos < 3)
                        goto more;
                    if (b[pos + 1] == ']' && b[pos + 2] == '>') {
                        pos += 3;
                        break;
                    }
                    pos++;
                } else if (ch >= 0x80) {
                    if ((r = utf8_char(b + pos, lim - pos, &cp)) <= 0)
                        goto utf8_fail;
                    pos += (uint32_t)r;
                } else {
                    goto nwf;
                }
            }
            m->st = M_TEXT;
            continue;
        case M_DECL:
            for (; pos < lim && pos < DECL_MAX; pos++) {
                if (b[pos] != '?')
                    continue;
                if (pos + 1 >= lim)
                    goto more;
                if (b[pos + 1] == '>') {
                    pos += 2;
                    if ((r = check_decl(b, pos)) < 0)
                        goto fail;
                    goto done;
                }
            }
            if (pos >= DECL_MAX)
                goto nwf;
            goto more;
        default:
            goto nwf;
        }
    }
utf8_fail:
    /* 0: the sequence continues past <lim>; -1: invalid. */
    if (r == 0)
        goto more;
    goto nwf;
ref_fail:
name_fail:
    /* 0: the construct continues past <lim>; else -condition. */
    if (r == 0)
        goto more;
    goto fail;
done:
    m->pos = pos;
    return R_DONE;
more:
    m->pos = pos;
    return R_MORE;
restricted:
    r = -SZ_STREAM_RESTRICTED_XML;
    goto fail;
policy:
    r = -SZ_STREAM_POLICY_VIOLATION;
    goto fail;
nwf:
    r = NWF;
fail:
    m->pos = pos;
    return r;
}

/* ---- feeding ---------------------------------------------------------- */

static ssize_t fail(sz_xml_parser_t *p, int err)
{
    p->_err = (uint8_t)-err;
    if (p->_pend) {
        work_release(&p->_pend->w);
        sz_free(p->_pend->buf);
        sz_free(p->_pend);
        p->_pend = NULL;
    }
    return err;
}

/*
 * Reports a completed item in span <b> (<n> bytes). Stream state changes
 * before the callbacks, so that a callback's reset() wins. Returns 0,
 * R_STOP when a callback asked to stop.
 */
static int deliver(sz_xml_parser_t *p, struct ctx *c, const struct work *w, const uint8_t *b,
                   uint32_t n)
{
    const sz_xml_ops_t *ops = p->_ops;
    char *tmp = NULL;
    int r = 0;
    switch (c->m.kind) {
    case K_DECL:
        p->_state = PS_BEFORE_HEADER;
        return 0;
    case K_END:
        p->_state = PS_CLOSED;
        return ops->on_end && ops->on_end(p->_ud) ? R_STOP : 0;
    default:
        break;
    }
    c->h.scope = &p->_scope;
    c->h.ns = c->ns.src == NSR_NONE ? NULL : (const char *)nsref_ptr(&c->ns, w, b);
    if (c->ns.src == NSR_POOL) {
        /* Decoded namespace names live in scratch memory that the callback
         * could reuse by feeding another parser: give it a private copy. */
        tmp = sz_strndup(c->h.ns, c->h.ns_len);
        c->h.ns = tmp;
    }
    if (c->m.kind == K_HEADER) {
        p->_state = c->h.empty ? PS_CLOSED : PS_STREAM;
        if (ops->on_header && ops->on_header(p->_ud, (const char *)b, n, &c->h))
            r = R_STOP;
        else if (c->h.empty && ops->on_end && ops->on_end(p->_ud))
            r = R_STOP;
    } else if (ops->on_element && ops->on_element(p->_ud, (const char *)b, n, &c->h)) {
        r = R_STOP;
    }
    sz_free(tmp);
    return r;
}

/* Copies the scratch work of an incomplete item into a new pending item. */
static void suspend(sz_xml_parser_t *p, const struct ctx *c, const struct work *w,
                    const uint8_t *b, uint32_t n)
{
    struct sz_xml_pend *pd = sz_calloc(1, sizeof *pd);
    pd->c = *c;
    pd->w.nel = pd->w.cel = w->nel;
    pd->w.nbd = pd->w.cbd = w->nbd;
    pd->w.nat = pd->w.cat = w->nat;
    pd->w.npool = pd->w.cpool = w->npool;
    if (w->nel) {
        pd->w.el = sz_malloc(w->nel * sizeof *w->el);
        memcpy(pd->w.el, w->el, w->nel * sizeof *w->el);
    }
    if (w->nbd) {
        pd->w.bd = sz_malloc(w->nbd * sizeof *w->bd);
        memcpy(pd->w.bd, w->bd, w->nbd * sizeof *w->bd);
    }
    if (w->nat) {
        pd->w.at = sz_malloc(w->nat * sizeof *w->at);
        memcpy(pd->w.at, w->at, w->nat * sizeof *w->at);
    }
    if (w->npool) {
        pd->w.pool = sz_malloc(w->npool);
        memcpy(pd->w.pool, w->pool, w->npool);
    }
    pd->buf = sz_malloc(n);
    pd->cap = pd->len = n;
    memcpy(pd->buf, b, n);
    p->_pend = pd;
}

/*
 * Continues the pending item with <len> bytes of <d>. Returns 0 or R_STOP
 * with *<used> set to the bytes of <d> that belong to the item (or all of
 * them while it is still incomplete), or -condition.
 */
static int resume(sz_xml_parser_t *p, const uint8_t *d, size_t len, size_t *used)
{
    struct sz_xml_pend *pd = p->_pend;
    uint32_t max = p->_lim.max_stanza_bytes;
    if (pd->len >= max)
        return -SZ_STREAM_POLICY_VIOLATION;
    uint32_t take = len < max - pd->len ? (uint32_t)len : max - pd->len;
    uint32_t old = pd->len, need = old + take;
    if (need > pd->cap) {
        /* Grow by half, never past the limit: the buffer tracks the item. */
        uint32_t cap = pd->cap + pd->cap / 2;
        cap = cap < need ? need : cap > max ? max : cap;
        pd->buf = sz_realloc(pd->buf, cap);
        pd->cap = cap;
    }
    memcpy(pd->buf + old, d, take);
    pd->len = need;
    int r = run(&pd->c, &pd->w, p, pd->buf, pd->len);
    if (r == R_MORE) {
        if (pd->len >= max)
            return -SZ_STREAM_POLICY_VIOLATION;
        *used = len;
        return 0;
    }
    if (r < 0)
        return r;
    uint32_t n = pd->c.m.pos;
    *used = n - old;
    /* Detach first: the callback may reset the parser. */
    p->_pend = NULL;
    r = deliver(p, &pd->c, &pd->w, pd->buf, n);
    work_release(&pd->w);
    sz_free(pd->buf);
    sz_free(pd);
    return r;
}

ssize_t sz_xml_parser_feed(sz_xml_parser_t *p, const char *data, size_t len)
{
    const uint8_t *d = (const uint8_t *)data;
    size_t i = 0;
    int r;
    if (p->_err)
        return -(ssize_t)p->_err;
    if (p->_pend) {
        if ((r = resume(p, d, len, &i)) < 0)
            return fail(p, r);
        if (r == R_STOP || p->_pend)
            return (ssize_t)i;
    }
    while (i < len) {
        if (d[i] != '<') {
            size_t j = i;
            while (j < len && (ctab[d[j]] & C_WS))
                j++;
            if (j == i) {
                /* Character data outside any stanza: XML allows it inside
                 * the stream element, XMPP does not (RFC 6120 §11.7 allows
                 * whitespace only), so it is a format error there. */
                return fail(p, p->_state == PS_STREAM ? -SZ_STREAM_BAD_FORMAT : NWF);
            }
            uint64_t ws = (uint64_t)p->_ws + (j - i);
            p->_ws = ws > UINT32_MAX ? UINT32_MAX : (uint32_t)ws;
            if (p->_state == PS_BEFORE_DECL)
                p->_state = PS_BEFORE_HEADER;
            i = j;
            continue;
        }
        if (p->_state == PS_CLOSED)
            return fail(p, NWF);
        struct ctx c;
        memset(&c.m, 0, sizeof c.m);
        c.m.st = M_LT;
        struct work *w = &scratch;
        w->nel = w->nbd = w->nat = w->npool = 0;
        size_t avail = len - i;
        uint32_t max = p->_lim.max_stanza_bytes;
        uint32_t lim = avail < max ? (uint32_t)avail : max;
        r = run(&c, w, p, d + i, lim);
        if (r == R_DONE) {
            uint32_t n = c.m.pos;
            i += n;
            r = deliver(p, &c, w, d + i - n, n);
            if (r == R_STOP)
                return (ssize_t)i;
            continue;
        }
        if (r == R_MORE) {
            if (lim == max)
                return fail(p, -SZ_STREAM_POLICY_VIOLATION);
            suspend(p, &c, w, d + i, lim);
            return (ssize_t)len;
        }
        return fail(p, r);
    }
    return (ssize_t)i;
}

/* ---- lifecycle -------------------------------------------------------- */

void sz_xml_parser_set_limits(sz_xml_parser_t *p, const sz_xml_limits_t *lim)
{
    sz_xml_limits_t l = lim ? *lim : SZ_XML_LIMITS_DEFAULT;
    if (l.max_stanza_bytes < 16)
        l.max_stanza_bytes = 16;
    if (l.max_stanza_bytes > SZ_XML_MAX_STANZA_BYTES)
        l.max_stanza_bytes = SZ_XML_MAX_STANZA_BYTES;
    if (l.max_depth < 1)
        l.max_depth = 1;
    if (l.max_attrs < 1)
        l.max_attrs = 1;
    p->_lim = l;
}

void sz_xml_parser_init(sz_xml_parser_t *p, const sz_xml_limits_t *lim, const sz_xml_ops_t *ops,
                        void *ud)
{
    memset(p, 0, sizeof *p);
    p->_ops = ops;
    p->_ud = ud;
    p->_content = SZ_XML_CONTENT_ALL;
    sz_xml_parser_set_limits(p, lim);
}

void sz_xml_parser_free(sz_xml_parser_t *p)
{
    if (p->_pend) {
        work_release(&p->_pend->w);
        sz_free(p->_pend->buf);
        sz_free(p->_pend);
        p->_pend = NULL;
    }
}

void sz_xml_parser_reset(sz_xml_parser_t *p)
{
    sz_xml_parser_free(p);
    p->_state = PS_BEFORE_DECL;
    p->_err = 0;
    memset(&p->_scope, 0, sizeof p->_scope);
}

void sz_xml_parser_set_content_ns(sz_xml_parser_t *p, unsigned mask)
{
    p->_content = (uint8_t)(mask & SZ_XML_CONTENT_ALL);
}

enum sz_stream_err sz_xml_parser_error(const sz_xml_parser_t *p)
{
    return (enum sz_stream_err)p->_err;
}

uint32_t sz_xml_parser_ws_bytes(const sz_xml_parser_t *p)
{
    return p->_ws;
}

bool sz_xml_parser_busy(const sz_xml_parser_t *p)
{
    return p->_pend != NULL;
}

size_t sz_xml_parser_heap_bytes(const sz_xml_parser_t *p)
{
    const struct sz_xml_pend *pd = p->_pend;
    if (!pd)
        return 0;
    return sizeof *pd + pd->cap + (size_t)pd->w.cel * sizeof(struct elem) +
           (size_t)pd->w.cbd * sizeof(struct bind) + (size_t)pd->w.cat * sizeof(struct attr) +
           pd->w.cpool;
}

/* ---- decoding --------------------------------------------------------- */

static size_t put_utf8(char *o, uint32_t v)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xC0 | (v >> 6));
        o[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xE0 | (v >> 12));
        o[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        o[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (v >> 18));
    o[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((v >> 6) & 0x3F));
    o[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

ssize_t sz_xml_unescape(const char *src, size_t len, char *dst, size_t cap, bool attr)
{
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0, i = 0;
    while (i < len) {
        /* Copy the run up to the next byte that needs work. */
        size_t j = i;
        while (j < len && s[j] != '&' && s[j] != '\r' && !(attr && (s[j] == '\t' || s[j] == '\n')))
            j++;
        if (j > i) {
            if (o + (j - i) > cap)
                return -ENOSPC;
            memcpy(dst + o, s + i, j - i);
            o += j - i;
            i = j;
            continue;
        }
        char buf[4];
        size_t n = 1;
        uint8_t ch = s[i];
        if (ch == '\r') {
            buf[0] = attr ? ' ' : '\n';
            i += (i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
        } else if (ch != '&') {
            buf[0] = ' ';
            i++;
        } else {
            size_t k = i + 1;
            while (k < len && s[k] != ';' && k - i < REF_MAX)
                k++;
            if (k >= len || s[k] != ';' || k == i + 1)
                return -EINVAL;
            const uint8_t *e = s + i + 1;
            size_t el = k - i - 1;
            if (e[0] == '#') {
                uint32_t v = 0, base = 10;
                size_t q = 1;
                if (el > 1 && e[1] == 'x')
                    base = 16, q = 2;
                if (q >= el)
                    return -EINVAL;
                for (; q < el; q++) {
                    uint8_t c = e[q];
                    uint32_t dgt;
                    if (c >= '0' && c <= '9')
                        dgt = c - '0';
                    else if (base == 16 && (c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                        dgt = (c | 0x20) - 'a' + 10;
                    else
                        return -EINVAL;
                    v = v * base + dgt;
                    if (v > 0x10FFFF)
                        return -EINVAL;
                }
                if (!is_char(v))
                    return -EINVAL;
                n = put_utf8(buf, v);
            } else if (el == 2 && e[0] == 'l' && e[1] == 't') {
                buf[0] = '<';
            } else if (el == 2 && e[0] == 'g' && e[1] == 't') {
                buf[0] = '>';
            } else if (el == 3 && memcmp(e, "amp", 3) == 0) {
                buf[0] = '&';
            } else if (el == 4 && memcmp(e, "apos", 4) == 0) {
                buf[0] = '\'';
            } else if (el == 4 && memcmp(e, "quot", 4) == 0) {
                buf[0] = '"';
            } else {
                return -EINVAL;
            }
            i = k + 1;
        }
        if (o + n > cap)
            return -ENOSPC;
        memcpy(dst + o, buf, n);
        o += n;
    }
    if (o < cap)
        dst[o] = '\0';
    return (ssize_t)o;
}
