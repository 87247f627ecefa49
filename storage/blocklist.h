/*
 * Blocklist storage (XEP-0191 Blocking Command): the JIDs each account has
 * blocked. Backend-neutral: SQLite now, Redis later, same contracts.
 *
 * Everything in storage/store.h holds here too: requests run on a storage
 * worker; submitted on a reactor, the callback runs later on that reactor
 * (never before the submitting call returns); submitted on any other
 * thread, the call blocks and runs the callback before it returns. Every
 * submit returns 0 (the callback then runs exactly once) or -EINVAL /
 * -ESHUTDOWN (and the callback never runs). Results live only during the
 * callback. Arguments are copied before the submit returns.
 *
 * Owner: the account, a normalized JID with a localpart (bare part used),
 * and the ordering key: requests about one owner run in submission order.
 *
 * Items: JIDs as the blocking module normalized them (domain, bare or
 * full JIDs, XEP-0191 §3.3), NUL-terminated strings of
 * 1..SZ_JID_MAX_BYTES bytes (else -EINVAL); storage compares them
 * bytewise and keeps each at most once. Deleting the account deletes its
 * blocklist in the same transaction. Writes for an owner without an
 * account fail with -ENOENT; reads of one return an empty list.
 *
 * Common results of every operation: -EBUSY (lock wait expired), -EIO.
 */
#ifndef SZ_STORAGE_BLOCKLIST_H
#define SZ_STORAGE_BLOCKLIST_H

#include <stddef.h>

#include "core/jid.h"
#include "storage/store.h"

/* Items of one add or remove request (a sanity bound; the blocking
 * module enforces the configured list size, limits.max_blocklist_items). */
#define SZ_STORE_BLOCKLIST_BATCH_MAX 100000

/* A blocklist: <n> NUL-terminated JIDs, unordered. */
typedef struct sz_store_blocklist {
    size_t n;
    const char *const *items; /* NULL when n is 0 */
} sz_store_blocklist_t;

/** <bl> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_blocklist_fn)(void *arg, int res, const sz_store_blocklist_t *bl);

/** Reads the blocklist of <owner>. Result: 0 (n may be 0), -EBUSY, -EIO. */
int sz_store_blocklist_get(sz_store_t *s, const sz_jid_t *owner, sz_store_blocklist_fn cb,
                           void *arg);

/**
 * Adds the <n> JIDs of <items> (1..SZ_STORE_BLOCKLIST_BATCH_MAX) to the
 * blocklist of <owner> in one transaction; those already there stay.
 * <max_items> bounds the list after the add: past it the request fails
 * with -ENOSPC and changes nothing (0: no limit). Result: 0, -ENOSPC,
 * -ENOENT (no such account), -EBUSY, -EIO.
 */
int sz_store_blocklist_add(sz_store_t *s, const sz_jid_t *owner, const char *const *items,
                           size_t n, unsigned max_items, sz_store_done_fn cb, void *arg);

/**
 * Removes the <n> JIDs of <items> (0..SZ_STORE_BLOCKLIST_BATCH_MAX; JIDs
 * not in the list are ignored) from the blocklist of <owner>, in one
 * transaction; <n> 0 empties the list (XEP-0191 §3.5). Result: 0, -EBUSY,
 * -EIO.
 */
int sz_store_blocklist_remove(sz_store_t *s, const sz_jid_t *owner, const char *const *items,
                              size_t n, sz_store_done_fn cb, void *arg);

#endif
