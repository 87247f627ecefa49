/*
 * Offline message queue of each account (XEP-0160, RFC 6121 §8.5.2.2):
 * messages that reached an account with no available resource, kept in
 * order of arrival until the account next becomes available. Each message
 * is stored as one self-contained XML element (the caller adds the
 * XEP-0203 <delay/> before storing) with a number that grows with every
 * message ever stored, on every account, so a reader can delete exactly
 * the messages it read and none that arrived after. Backend-neutral.
 *
 * The storage/store.h contracts hold: asynchronous on a reactor (callback
 * later on that reactor), blocking elsewhere; 0 from a submit means the
 * callback runs exactly once, -EINVAL / -ESHUTDOWN that it never does.
 * Arguments are copied before return; results live during the callback.
 * Owner: an account JID (bare part), also the ordering key, so a put and
 * a later take of the same account run in submission order. Common
 * results: -EBUSY, -EIO.
 */
#ifndef SZ_STORAGE_OFFLINE_H
#define SZ_STORAGE_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "storage/store.h"

/* Largest stored message (bytes; -EINVAL past it). A stanza is at most
 * limits.max_stanza_bytes; this leaves room for the <delay/>. */
#define SZ_STORE_OFFLINE_MSG_MAX (1u << 20)

/* Most messages one take returns. */
#define SZ_STORE_OFFLINE_TAKE_MAX 1000

/* One stored message, valid during the callback. */
typedef struct sz_store_offline_msg {
    uint64_t id;     /* order of arrival; > 0 */
    const char *xml; /* NUL-terminated */
    size_t len;
} sz_store_offline_msg_t;

/** Take result: <n> messages in order of arrival when <res> is 0. */
typedef void (*sz_store_offline_fn)(void *arg, int res, const sz_store_offline_msg_t *msgs,
                                    size_t n);

/**
 * Appends message <xml>/<len> to <owner>'s queue. The account's
 * existence, the quota and the insert are one atomic write, durable
 * (committed to the database) when the callback sees 0. <max> is the
 * quota: the put fails when the queue already holds that many (0: no
 * quota). Result: 0, -ENOENT (no such account), -EDQUOT (queue full),
 * -EBUSY, -EIO.
 */
int sz_store_offline_put(sz_store_t *s, const sz_jid_t *owner, const char *xml, size_t len,
                         uint32_t max, sz_store_done_fn cb, void *arg);

/**
 * Deletes <owner>'s messages with id <= <upto> (0: none), then reads up to
 * <limit> (<= SZ_STORE_OFFLINE_TAKE_MAX; 0: read nothing) of the messages
 * left, oldest first; one transaction. Result: 0 (also when there are
 * none), -EBUSY, -EIO.
 */
int sz_store_offline_take(sz_store_t *s, const sz_jid_t *owner, uint64_t upto, unsigned limit,
                          sz_store_offline_fn cb, void *arg);

/** Counts <owner>'s stored messages (tests, stanzactl). Result: 0, -EIO. */
int sz_store_offline_count(sz_store_t *s, const sz_jid_t *owner, sz_store_count_fn cb,
                           void *arg);

#endif
