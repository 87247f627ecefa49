/*
 * Last activity of each account (XEP-0012 §3): when its last session
 * ended and the status text of its last unavailable presence. One small
 * record per account, replaced at every logout and deleted with the
 * account. Backend-neutral.
 *
 * The storage/store.h contracts hold: asynchronous on a reactor (callback
 * later on that reactor), blocking elsewhere; 0 from a submit means the
 * callback runs exactly once, -EINVAL / -ESHUTDOWN that it never does.
 * Arguments are copied before return; results live during the callback.
 * Owner: an account JID (bare part), also the ordering key. Common
 * results: -EBUSY, -EIO.
 */
#ifndef SZ_STORAGE_LAST_H
#define SZ_STORAGE_LAST_H

#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "storage/store.h"

/* Longest status text accepted (bytes; -EINVAL past it). */
#define SZ_STORE_LAST_STATUS_MAX 4096

/** Read result: <when> (unix seconds) and <status> (NUL-terminated, NULL
 * when none was recorded) are valid during the call when <res> is 0. */
typedef void (*sz_store_last_fn)(void *arg, int res, int64_t when, const char *status);

/**
 * Records that <owner>'s last session ended at <when> (unix seconds) with
 * status text <status> (NUL-terminated UTF-8, or NULL for none), replacing
 * the previous record. Result: 0, -ENOENT (no such account), -EBUSY, -EIO.
 */
int sz_store_last_set(sz_store_t *s, const sz_jid_t *owner, int64_t when, const char *status,
                      sz_store_done_fn cb, void *arg);

/** Reads <owner>'s record. Result: 0, -ENOENT (none), -EBUSY, -EIO. */
int sz_store_last_get(sz_store_t *s, const sz_jid_t *owner, sz_store_last_fn cb, void *arg);

#endif
