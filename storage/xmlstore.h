/*
 * Per-account XML documents keyed by a name (DESIGN §5): the storage of
 * vCard-temp (XEP-0054, one document per account) and of Private XML
 * Storage (XEP-0049, one document per namespace). A document is opaque
 * serialized XML that the caller wrote and vouches for; storage keeps its
 * bytes exactly. Backend-neutral: SQLite now, Redis later, same contracts.
 *
 * Everything in storage/store.h holds here too: requests run on a storage
 * worker; submitted on a reactor, the callback runs later on that reactor
 * (never before the submitting call returns); submitted on any other
 * thread, the call blocks and runs the callback before it returns. Every
 * submit returns 0 (the callback then runs exactly once) or -EINVAL /
 * -ESHUTDOWN (and the callback never runs). Arguments are copied before
 * the submit returns; results live only during the callback.
 *
 * Owner: the account, a normalized JID with a localpart (its bare part is
 * used); it is the ordering key, so one owner's requests run in submission
 * order (a set then a get sees the set). Documents go with the account
 * (sz_store_account_delete, same transaction). Common results of every
 * operation: -EBUSY (lock wait expired), -EIO.
 */
#ifndef SZ_STORAGE_XMLSTORE_H
#define SZ_STORAGE_XMLSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "storage/store.h"

/* Document families. The values are stored: never renumber. */
enum sz_store_xml_kind {
    SZ_STORE_XML_VCARD = 1,   /* XEP-0054: one document, name "" */
    SZ_STORE_XML_PRIVATE = 2, /* XEP-0049: name = the namespace */
};

/* Bounds checked at submit (-EINVAL past them): a name is at most this
 * many bytes, a put carries at most this many documents. */
#define SZ_STORE_XML_NAME_MAX 3072
#define SZ_STORE_XML_PUT_MAX  64

/* One document of a put. <len> 0 removes the document <name>. */
typedef struct sz_store_xml_doc {
    const char *name; /* NUL-terminated, may be "" */
    const char *xml;  /* <len> bytes, no NUL byte; may be NULL when len is 0 */
    size_t len;
} sz_store_xml_doc_t;

/** Read result: <xml> (<len> bytes, NUL-terminated) is valid during the
 * call when <res> is 0. */
typedef void (*sz_store_xml_fn)(void *arg, int res, const char *xml, size_t len);

/**
 * Reads document <name> of family <kind> of <owner>. Result: 0, -ENOENT
 * (none stored, or no such account), -EBUSY, -EIO.
 */
int sz_store_xml_get(sz_store_t *s, const sz_jid_t *owner, enum sz_store_xml_kind kind,
                     const char *name, sz_store_xml_fn cb, void *arg);

/**
 * Writes (replaces) or removes the <n> documents <docs> (1..
 * SZ_STORE_XML_PUT_MAX, distinct names) of family <kind> of <owner>, all
 * in one transaction. <max_bytes> bounds the family: when the documents of
 * <kind> of <owner> would hold more than <max_bytes> bytes in all after
 * the write, nothing is written and the result is -ENOSPC (0: no bound).
 * Result: 0, -ENOSPC, -ENOENT (<owner> has no account), -EBUSY, -EIO.
 */
int sz_store_xml_put(sz_store_t *s, const sz_jid_t *owner, enum sz_store_xml_kind kind,
                     const sz_store_xml_doc_t *docs, size_t n, uint64_t max_bytes,
                     sz_store_done_fn cb, void *arg);

#endif
