/*
 * Front end of the per-account XML documents (storage/xmlstore.h): checks
 * and copies the arguments into one request on the submitting thread, and
 * turns the backend's result into the typed callback there. The document
 * read by a get is allocated by the backend on the worker and freed by
 * release() on the submitting thread.
 */
#include "storage/xmlstore.h"

#include <errno.h>
#include <string.h>

#include "core/mem.h"
#include "storage/backend.h"

static void release(sz_store_req_t *q)
{
    sz_free(q->u.xml.out);
    sz_free(q->u.xml.docs);
}

static void complete_get(sz_store_req_t *q)
{
    q->_cb.xml(q->_arg, q->res, q->res == 0 ? q->u.xml.out : NULL,
               q->res == 0 ? q->u.xml.out_len : 0);
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

static bool kind_ok(enum sz_store_xml_kind kind)
{
    return kind == SZ_STORE_XML_VCARD || kind == SZ_STORE_XML_PRIVATE;
}

int sz_store_xml_get(sz_store_t *s, const sz_jid_t *owner, enum sz_store_xml_kind kind,
                     const char *name, sz_store_xml_fn cb, void *arg)
{
    if (!cb || !name || !kind_ok(kind))
        return -EINVAL;
    size_t nl = strnlen(name, SZ_STORE_XML_NAME_MAX + 1);
    if (nl > SZ_STORE_XML_NAME_MAX)
        return -EINVAL;
    char *at;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_XML_GET, owner, nl + 1, &at);
    if (!q)
        return -EINVAL;
    q->_release = release;
    q->u.xml.kind = kind;
    q->u.xml.name = sz_store_put_str(&at, name, nl);
    q->_complete = complete_get;
    q->_cb.xml = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

int sz_store_xml_put(sz_store_t *s, const sz_jid_t *owner, enum sz_store_xml_kind kind,
                     const sz_store_xml_doc_t *docs, size_t n, uint64_t max_bytes,
                     sz_store_done_fn cb, void *arg)
{
    if (!cb || !docs || n == 0 || n > SZ_STORE_XML_PUT_MAX || !kind_ok(kind))
        return -EINVAL;
    size_t tail = 0;
    for (size_t i = 0; i < n; i++) {
        const sz_store_xml_doc_t *d = &docs[i];
        if (!d->name || (!d->xml && d->len) || (d->len && memchr(d->xml, '\0', d->len)))
            return -EINVAL;
        size_t nl = strnlen(d->name, SZ_STORE_XML_NAME_MAX + 1);
        if (nl > SZ_STORE_XML_NAME_MAX)
            return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(docs[k].name, d->name) == 0)
                return -EINVAL;
        tail += nl + 1 + d->len + 1;
    }
    char *at;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_XML_PUT, owner, tail, &at);
    if (!q)
        return -EINVAL;
    q->_release = release;
    q->u.xml.kind = kind;
    q->u.xml.docs = sz_calloc(2 * n, sizeof(*q->u.xml.docs));
    q->u.xml.n = n;
    for (size_t i = 0; i < n; i++) {
        q->u.xml.docs[2 * i] = sz_store_put_str(&at, docs[i].name, strlen(docs[i].name));
        sz_store_str_t x = sz_store_put_str(&at, docs[i].xml, docs[i].len);
        if (docs[i].len == 0)
            x.p = NULL; /* a removal */
        q->u.xml.docs[2 * i + 1] = x;
    }
    q->u.xml.max_bytes = max_bytes;
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}
