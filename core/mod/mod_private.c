/*
 * XEP-0049 Private XML Storage (jabber:iq:private): an account stores
 * XML fragments on the server and reads them back, one document per
 * namespace (the key the XEP retrieves by: "a child element scoped by the
 * namespace used for storage"). Only the account's own resources may do
 * either. Documents live in the account's XML documents
 * (storage/xmlstore.h), at most limits.max_private_bytes per account,
 * all namespaces together.
 *
 * Requests, by XEP-0049 §2.3 and §3:
 * - a <query/> without a child element: <not-acceptable/> (the MUST of
 *   §2.3 and the example there; the SHOULD "Bad Format" of §2.3 names no
 *   RFC 6120 stanza condition);
 * - to another account: <forbidden/> (the preferred of the two the XEP
 *   allows);
 * - a fragment in a reserved namespace (one starting with 'jabber:' or
 *   'http://jabber.org/', or 'vcard-temp'), which includes a child that
 *   has no namespace of its own: <not-acceptable/> (§2.3's optional
 *   error);
 * - a get naming more than one namespace ("a client MUST NOT query for
 *   more than one namespace"): <bad-request/> (RFC 6120 §8.3.3.1);
 * - a set: every namespace it carries is replaced by its elements (a set
 *   "MAY contain multiple elements qualified by the same namespace"), all
 *   in one transaction; past the byte limit nothing is stored and the
 *   answer is <not-acceptable/> (RFC 6120 §8.3.3.9: a criterion of this
 *   server);
 * - a get of a namespace with nothing stored: the query as asked, with
 *   its empty child (§2.3's "blank query" answered as common servers do).
 *
 * Threads: the account's home reactor; storage answers there.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/account_iq.h"
#include "core/mod/modules.h"
#include "core/xml/write.h"
#include "storage/xmlstore.h"

#define NS_PRIVATE "jabber:iq:private"

/* limits.max_private_bytes without a configuration (tests). */
#define PRIVATE_MAX_BYTES_DEFAULT 262144

static sz_store_t *store;
static const sz_conf_t *conf;

static uint32_t max_bytes(void)
{
    return conf ? SZ_CONF_LIMIT(conf, max_private_bytes) : PRIVATE_MAX_BYTES_DEFAULT;
}

static bool prefixed(const char *s, size_t len, const char *p)
{
    size_t pl = strlen(p);
    return len >= pl && memcmp(s, p, pl) == 0;
}

/* XEP-0049 §2.3: namespaces reserved to the protocol itself. */
static bool reserved(const sz_xml_node_t *e)
{
    if (!e->ns || e->ns_len == 0)
        return true;
    return prefixed(e->ns, e->ns_len, "jabber:") ||
           prefixed(e->ns, e->ns_len, "http://jabber.org/") ||
           (e->ns_len == 10 && memcmp(e->ns, "vcard-temp", 10) == 0);
}

static bool same_ns(const sz_xml_node_t *a, const sz_xml_node_t *b)
{
    return a->ns_len == b->ns_len && memcmp(a->ns, b->ns, a->ns_len) == 0;
}

/* <query xmlns='jabber:iq:private'> around <inner>, serialized (caller
 * frees) into *<out>; or around the elements of <q> in namespace of <e>
 * when <inner> is NULL. */
static int wrap(const char *inner, size_t len, const sz_xml_node_t *q, const sz_xml_node_t *e,
                char **out, size_t *olen)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 256 + len);
    sz_xb_start(&xb, "query", NS_PRIVATE);
    if (inner) {
        sz_xb_raw(&xb, inner, len);
    } else {
        for (const sz_xml_node_t *c = q->children; c; c = c->next)
            if (c->kind == SZ_XML_ELEM && same_ns(c, e))
                sz_xml_write(&xb, c, NS_PRIVATE);
    }
    sz_xb_end(&xb);
    return sz_xb_finish(&xb, out, olen);
}

static void on_read(void *arg, int res, const char *xml, size_t len)
{
    sz_mod_held_t *h = arg;
    if (res < 0 && res != -ENOENT) {
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    const sz_xml_node_t *root = sz_stanza_tree(h->st);
    const sz_xml_node_t *q = root ? sz_xml_child(root, "query", NS_PRIVATE) : NULL;
    const sz_xml_node_t *e = q ? sz_xml_child(q, NULL, NULL) : NULL;
    char *out = NULL;
    size_t olen = 0;
    if (!e || wrap(res == 0 ? xml : NULL, len, q, e, &out, &olen) < 0) {
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    sz_mod_held_answer(h, out, olen, 0);
    sz_free(out);
}

static void on_written(void *arg, int res)
{
    sz_mod_held_t *h = arg;
    if (res == -ENOSPC)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_NOT_ACCEPTABLE);
    else if (res < 0)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
    else
        sz_mod_held_answer(h, NULL, 0, 0);
}

/* A set: one document per namespace, the elements of that namespace in
 * their order. */
static int set_private(sz_hook_ctx_t *ctx, const sz_xml_node_t *q)
{
    sz_store_xml_doc_t docs[SZ_STORE_XML_PUT_MAX];
    const sz_xml_node_t *first[SZ_STORE_XML_PUT_MAX];
    size_t n = 0, total = 0;
    int ret = 0;
    for (const sz_xml_node_t *c = q->children; c && ret == 0; c = c->next) {
        if (c->kind != SZ_XML_ELEM)
            continue;
        size_t k = 0;
        while (k < n && !same_ns(first[k], c))
            k++;
        if (k < n)
            continue; /* written with the first element of its namespace */
        if (n == SZ_STORE_XML_PUT_MAX || c->ns_len > SZ_STORE_XML_NAME_MAX) {
            ret = -SZ_STANZA_ERR_NOT_ACCEPTABLE;
            break;
        }
        sz_xb_t xb;
        sz_xb_init(&xb, 256);
        for (const sz_xml_node_t *d = c; d; d = d->next)
            if (d->kind == SZ_XML_ELEM && same_ns(d, c))
                sz_xml_write(&xb, d, NS_PRIVATE);
        char *xml;
        size_t len;
        if (sz_xb_finish(&xb, &xml, &len) < 0) {
            ret = -SZ_STANZA_ERR_BAD_REQUEST;
            break;
        }
        first[n] = c;
        docs[n++] = (sz_store_xml_doc_t){.name = c->ns, .xml = xml, .len = len};
        total += len;
    }
    uint32_t max = max_bytes();
    if (ret == 0 && total > max) {
        SZ_DEBUG("msg=\"private xml refused\" bytes=%zu limit=%u", total, max);
        ret = -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    }
    if (ret == 0) {
        sz_mod_held_t *h = sz_mod_hold(ctx, 0);
        if (sz_store_xml_put(store, ctx->to, SZ_STORE_XML_PRIVATE, docs, n, max, on_written, h) <
            0) {
            sz_mod_unhold(h);
            ret = -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
        } else {
            ret = SZ_HANDLED;
        }
    }
    for (size_t i = 0; i < n; i++)
        sz_free((void *)docs[i].xml);
    return ret;
}

static int on_private(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    if (!sz_mod_from_owner(ctx))
        return -SZ_STANZA_ERR_FORBIDDEN;
    const sz_xml_node_t *e = NULL;
    for (const sz_xml_node_t *c = payload->children; c; c = c->next) {
        if (c->kind != SZ_XML_ELEM)
            continue;
        if (reserved(c))
            return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
        if (!e)
            e = c;
        else if (!set && !same_ns(e, c))
            return -SZ_STANZA_ERR_BAD_REQUEST;
    }
    if (!e)
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    if (!store)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    if (set)
        return set_private(ctx, payload);
    if (e->ns_len > SZ_STORE_XML_NAME_MAX)
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    sz_mod_held_t *h = sz_mod_hold(ctx, 0);
    if (sz_store_xml_get(store, ctx->to, SZ_STORE_XML_PRIVATE, e->ns, on_read, h) < 0) {
        sz_mod_unhold(h);
        return -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
    }
    return SZ_HANDLED;
}

void sz_mod_private_register(const sz_mod_env_t *env)
{
    store = env->store;
    conf = env->conf;
    sz_hooks_iq("query", NS_PRIVATE, SZ_IQ_ACCOUNT, on_private);
    /* A feature of the account it stores for. */
    sz_hooks_disco_feature(NS_PRIVATE, SZ_IQ_ACCOUNT, NULL);
}
