/*
 * Stanza objects: header struct and raw bytes in one allocation, refcounted
 * atomically for fan-out across cores; the lazy tree is a second
 * allocation published with a compare-and-swap. Rewrites splice attribute
 * values into a fresh copy and shift the recorded offsets.
 */
#include "core/stanza.h"

#include <errno.h>
#include <string.h>

#include "core/mem.h"

#define NATTR 5 /* to, from, id, type, xml:lang */

struct sz_stanza {
    uint32_t refs;
    uint32_t len;
    sz_xml_tree_t *tree; /* built on demand; CAS-published */
    sz_xml_str_t name;
    sz_xml_str_t attr[NATTR];
    uint32_t ns_off, ns_len; /* ns_off: into raw[] past the element (OTHER ns) */
    uint8_t kind, ns_id, esc;
    sz_xml_scope_t scope; /* stream-level bindings, for the tree */
    char raw[];           /* len bytes, NUL, then the namespace name if kept */
};

static enum sz_stanza_kind kind_of(const char *name, uint32_t len, uint8_t ns_id)
{
    if (ns_id != SZ_XML_NS_CLIENT && ns_id != SZ_XML_NS_SERVER && ns_id != SZ_XML_NS_COMPONENT)
        return SZ_STANZA_OTHER;
    if (len == 7 && memcmp(name, "message", 7) == 0)
        return SZ_STANZA_MESSAGE;
    if (len == 8 && memcmp(name, "presence", 8) == 0)
        return SZ_STANZA_PRESENCE;
    if (len == 2 && memcmp(name, "iq", 2) == 0)
        return SZ_STANZA_IQ;
    return SZ_STANZA_OTHER;
}

/* Allocates a stanza for <len> raw bytes; the namespace name is stored
 * only when it is not one of the known ones. */
static sz_stanza_t *alloc(size_t len, uint8_t ns_id, const char *ns, uint32_t ns_len)
{
    size_t extra = ns_id == SZ_XML_NS_OTHER ? ns_len + 1 : 0;
    sz_stanza_t *st = sz_malloc(sizeof *st + len + 1 + extra);
    memset(st, 0, sizeof *st);
    st->refs = 1;
    st->len = (uint32_t)len;
    st->ns_id = ns_id;
    st->ns_len = ns_len;
    st->raw[len] = '\0';
    if (extra) {
        st->ns_off = (uint32_t)len + 1;
        memcpy(st->raw + st->ns_off, ns, ns_len);
        st->raw[st->ns_off + ns_len] = '\0';
    }
    return st;
}

sz_stanza_t *sz_stanza_new(const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_stanza_t *st = alloc(len, h->ns_id, h->ns, h->ns_len);
    memcpy(st->raw, span, len);
    st->name = h->name;
    for (int i = 0; i < NATTR; i++)
        st->attr[i] = h->attr[i];
    st->esc = h->esc & ((1u << NATTR) - 1);
    if (h->scope)
        st->scope = *h->scope;
    st->kind = (uint8_t)kind_of(span + h->name.off, h->name.len, h->ns_id);
    return st;
}

sz_stanza_t *sz_stanza_ref(sz_stanza_t *st)
{
    __atomic_add_fetch(&st->refs, 1, __ATOMIC_RELAXED);
    return st;
}

void sz_stanza_unref(sz_stanza_t *st)
{
    if (!st || __atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    sz_xml_tree_free(st->tree);
    sz_free(st);
}

const char *sz_stanza_raw(const sz_stanza_t *st, size_t *len)
{
    if (len)
        *len = st->len;
    return st->raw;
}

enum sz_stanza_kind sz_stanza_kind(const sz_stanza_t *st)
{
    return (enum sz_stanza_kind)st->kind;
}

const char *sz_stanza_name(const sz_stanza_t *st, size_t *len)
{
    if (len)
        *len = st->name.len;
    return st->raw + st->name.off;
}

const char *sz_stanza_ns(const sz_stanza_t *st, size_t *len)
{
    if (st->ns_id == SZ_XML_NS_OTHER) {
        if (len)
            *len = st->ns_len;
        return st->raw + st->ns_off;
    }
    return sz_xml_ns_uri((enum sz_xml_ns)st->ns_id, len);
}

enum sz_xml_ns sz_stanza_ns_id(const sz_stanza_t *st)
{
    return (enum sz_xml_ns)st->ns_id;
}

const char *sz_stanza_attr_raw(const sz_stanza_t *st, enum sz_xml_attr_idx which, size_t *len,
                               bool *esc)
{
    if ((unsigned)which >= NATTR || !st->attr[which].off)
        return NULL;
    if (len)
        *len = st->attr[which].len;
    if (esc)
        *esc = (st->esc >> which) & 1;
    return st->raw + st->attr[which].off;
}

ssize_t sz_stanza_attr(const sz_stanza_t *st, enum sz_xml_attr_idx which, char *dst, size_t cap)
{
    size_t n;
    bool esc;
    const char *v = sz_stanza_attr_raw(st, which, &n, &esc);
    if (!v)
        return -ENOENT;
    if (!esc) {
        if (n > cap)
            return -ENOSPC;
        memcpy(dst, v, n);
        if (n < cap)
            dst[n] = '\0';
        return (ssize_t)n;
    }
    return sz_xml_unescape(v, n, dst, cap, true);
}

const sz_xml_node_t *sz_stanza_tree(sz_stanza_t *st)
{
    sz_xml_tree_t *t = __atomic_load_n(&st->tree, __ATOMIC_ACQUIRE);
    if (t)
        return sz_xml_tree_root(t);
    t = sz_xml_tree_parse(st->raw, st->len, &st->scope);
    if (!t)
        return NULL;
    sz_xml_tree_t *expected = NULL;
    if (!__atomic_compare_exchange_n(&st->tree, &expected, t, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        sz_xml_tree_free(t);
        t = expected;
    }
    return sz_xml_tree_root(t);
}

/* ---- rewrite ----------------------------------------------------------- */

/* Escaped form of <s>: safe inside either quote, and with tab/CR/LF as
 * references so that attribute-value normalisation keeps them. */
static size_t esc_len(const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': o += 5; break;
        case '<': case '>': o += 4; break;
        case '\'': case '"': o += 6; break;
        case '\t': o += 4; break; /* &#9; */
        case '\n': case '\r': o += 5; break; /* &#10; &#13; */
        default: o += 1;
        }
    }
    return o;
}

static size_t esc_write(char *d, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *r = NULL;
        switch (s[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '\'': r = "&apos;"; break;
        case '"': r = "&quot;"; break;
        case '\t': r = "&#9;"; break;
        case '\n': r = "&#10;"; break;
        case '\r': r = "&#13;"; break;
        default: d[o++] = s[i]; continue;
        }
        size_t rl = strlen(r);
        memcpy(d + o, r, rl);
        o += rl;
    }
    return o;
}

struct edit {
    uint32_t pos, cut; /* replace raw[pos, pos + cut) */
    int which;         /* attribute index */
    const char *v;
    size_t vlen, elen; /* value, its escaped length */
    bool insert;       /* add " name='value'" */
};

sz_stanza_t *sz_stanza_rewrite(const sz_stanza_t *st, const char *to, size_t to_len,
                               const char *from, size_t from_len)
{
    static const char *const names[2] = {"to", "from"};
    struct edit ed[2];
    int ne = 0;
    const char *vals[2] = {to, from};
    size_t lens[2] = {to_len, from_len};
    size_t len = st->len;
    for (int k = 0; k < 2; k++) {
        if (!vals[k])
            continue;
        struct edit *e = &ed[ne++];
        e->which = k == 0 ? SZ_XML_A_TO : SZ_XML_A_FROM;
        e->v = vals[k];
        e->vlen = lens[k];
        e->elen = esc_len(vals[k], lens[k]);
        e->insert = !st->attr[e->which].off;
        if (e->insert) {
            e->pos = st->name.off + st->name.len; /* right after the element name */
            e->cut = 0;
            len += 1 + strlen(names[k]) + 2 + e->elen + 1;
        } else {
            e->pos = st->attr[e->which].off;
            e->cut = st->attr[e->which].len;
            len = len - e->cut + e->elen;
        }
    }
    /* apply in raw order; two inserts share a position and keep to, from */
    if (ne == 2 && ed[1].pos < ed[0].pos) {
        struct edit t = ed[0];
        ed[0] = ed[1];
        ed[1] = t;
    }
    uint8_t ns_id = st->ns_id;
    sz_stanza_t *n = alloc(len, ns_id, st->raw + st->ns_off, st->ns_len);
    n->name = st->name;
    memcpy(n->attr, st->attr, sizeof n->attr);
    n->esc = st->esc;
    n->kind = st->kind;
    n->scope = st->scope;
    size_t o = 0, i = 0;
    int64_t shift[2] = {0, 0}; /* cumulative size change after edit k */
    for (int k = 0; k < ne; k++) {
        struct edit *e = &ed[k];
        memcpy(n->raw + o, st->raw + i, e->pos - i);
        o += e->pos - i;
        i = e->pos;
        uint32_t voff;
        if (e->insert) {
            const char *nm = names[e->which == SZ_XML_A_TO ? 0 : 1];
            n->raw[o++] = ' ';
            memcpy(n->raw + o, nm, strlen(nm));
            o += strlen(nm);
            n->raw[o++] = '=';
            n->raw[o++] = '\'';
            voff = (uint32_t)o;
            o += esc_write(n->raw + o, e->v, e->vlen);
            n->raw[o++] = '\'';
        } else {
            voff = (uint32_t)o;
            o += esc_write(n->raw + o, e->v, e->vlen);
            i += e->cut;
        }
        shift[k] = (int64_t)o - (int64_t)i;
        n->attr[e->which] = (sz_xml_str_t){voff, (uint32_t)e->elen};
        n->esc = (uint8_t)((n->esc & ~(1u << e->which)) |
                           ((e->elen != e->vlen) ? 1u << e->which : 0));
    }
    memcpy(n->raw + o, st->raw + i, st->len - i);
    /* shift every other recorded offset past the edits */
    for (int a = 0; a < NATTR; a++) {
        bool edited = false;
        for (int k = 0; k < ne; k++)
            edited |= ed[k].which == a;
        if (edited || !st->attr[a].off)
            continue;
        uint32_t off = st->attr[a].off;
        int64_t s = 0;
        for (int k = 0; k < ne; k++)
            if (ed[k].pos < off)
                s = shift[k];
        n->attr[a].off = (uint32_t)(off + s);
    }
    return n;
}

/* ---- stanza errors ----------------------------------------------------- */

static const struct {
    const char *name;
    uint8_t type;
} errs[SZ_STANZA_ERR_COUNT] = {
    [SZ_STANZA_ERR_BAD_REQUEST] = {"bad-request", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_CONFLICT] = {"conflict", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_FORBIDDEN] = {"forbidden", SZ_STANZA_ERRT_AUTH},
    [SZ_STANZA_ERR_GONE] = {"gone", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_INTERNAL_SERVER_ERROR] = {"internal-server-error", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_ITEM_NOT_FOUND] = {"item-not-found", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_JID_MALFORMED] = {"jid-malformed", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_NOT_ACCEPTABLE] = {"not-acceptable", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_NOT_ALLOWED] = {"not-allowed", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_NOT_AUTHORIZED] = {"not-authorized", SZ_STANZA_ERRT_AUTH},
    [SZ_STANZA_ERR_POLICY_VIOLATION] = {"policy-violation", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", SZ_STANZA_ERRT_WAIT},
    [SZ_STANZA_ERR_REDIRECT] = {"redirect", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_REGISTRATION_REQUIRED] = {"registration-required", SZ_STANZA_ERRT_AUTH},
    [SZ_STANZA_ERR_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", SZ_STANZA_ERRT_WAIT},
    [SZ_STANZA_ERR_RESOURCE_CONSTRAINT] = {"resource-constraint", SZ_STANZA_ERRT_WAIT},
    [SZ_STANZA_ERR_SERVICE_UNAVAILABLE] = {"service-unavailable", SZ_STANZA_ERRT_CANCEL},
    [SZ_STANZA_ERR_SUBSCRIPTION_REQUIRED] = {"subscription-required", SZ_STANZA_ERRT_AUTH},
    [SZ_STANZA_ERR_UNDEFINED_CONDITION] = {"undefined-condition", SZ_STANZA_ERRT_MODIFY},
    [SZ_STANZA_ERR_UNEXPECTED_REQUEST] = {"unexpected-request", SZ_STANZA_ERRT_WAIT},
};

const char *sz_stanza_err_name(enum sz_stanza_err e)
{
    if ((unsigned)e >= SZ_STANZA_ERR_COUNT || !errs[e].name)
        e = SZ_STANZA_ERR_UNDEFINED_CONDITION;
    return errs[e].name;
}

enum sz_stanza_err_type sz_stanza_err_default_type(enum sz_stanza_err e)
{
    if ((unsigned)e >= SZ_STANZA_ERR_COUNT || !errs[e].name)
        e = SZ_STANZA_ERR_UNDEFINED_CONDITION;
    return (enum sz_stanza_err_type)errs[e].type;
}

const char *sz_stanza_err_type_name(enum sz_stanza_err_type t)
{
    static const char *const n[] = {"auth", "cancel", "continue", "modify", "wait"};
    return (unsigned)t < 5 ? n[t] : "cancel";
}

int sz_stanza_err_build(sz_xb_t *xb, enum sz_stanza_err e, enum sz_stanza_err_type t)
{
    if ((unsigned)t > SZ_STANZA_ERRT_WAIT)
        t = sz_stanza_err_default_type(e);
    sz_xb_start(xb, "error", NULL);
    sz_xb_attr(xb, "type", sz_stanza_err_type_name(t));
    sz_xb_empty(xb, sz_stanza_err_name(e), SZ_NS_STANZAS);
    return sz_xb_end(xb);
}

/* ---- stanzas built by the server ---------------------------------------- */

struct from_xml {
    sz_stanza_t *st;
    unsigned n;
};

static int from_xml_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct from_xml *fx = ud;
    if (fx->n++ == 0)
        fx->st = sz_stanza_new(span, len, h);
    return 0;
}

sz_stanza_t *sz_stanza_from_xml(const char *xml, size_t len)
{
    static const char hdr[] = "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const sz_xml_ops_t ops = {NULL, from_xml_element, NULL};
    struct from_xml fx = {NULL, 0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &fx);
    bool ok = sz_xml_parser_feed(&p, hdr, sizeof(hdr) - 1) == (ssize_t)(sizeof(hdr) - 1) &&
              sz_xml_parser_feed(&p, xml, len) == (ssize_t)len && fx.n == 1 &&
              !sz_xml_parser_busy(&p);
    sz_xml_parser_free(&p);
    if (!ok && fx.st) {
        sz_stanza_unref(fx.st);
        fx.st = NULL;
    }
    return fx.st;
}

sz_stanza_t *sz_stanza_from_xb(sz_xb_t *xb)
{
    char *xml;
    size_t len;
    if (sz_xb_finish(xb, &xml, &len) < 0)
        return NULL;
    sz_stanza_t *st = sz_stanza_from_xml(xml, len);
    sz_free(xml);
    return st;
}
