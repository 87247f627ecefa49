/*
 * Roster storage (RFC 6121 §2 rosters, §3 subscriptions, XEP-0237 roster
 * versioning): the items of each account's roster, the account's roster
 * version, and the inbound subscription requests it has not answered yet
 * (§3.1.3). Backend-neutral: SQLite now, Redis later, same contracts.
 *
 * Everything in storage/store.h holds here too: requests run on a storage
 * worker; submitted on a reactor, the callback runs later on that reactor
 * (never before the submitting call returns); submitted on any other
 * thread, the call blocks and runs the callback before it returns. Every
 * submit returns 0 (the callback then runs exactly once) or -EINVAL /
 * -ESHUTDOWN (and the callback never runs). Results given to a callback
 * (items, strings, arrays) live only during the call: copy what you keep.
 * Arguments are copied before the submit returns; the caller keeps
 * ownership of everything it passes.
 *
 * Owner: the account, a normalized JID with a localpart (the bare part is
 * used, the resource ignored), exactly as for the account operations. It is
 * the ordering key: requests about one owner run in submission order, so
 * a roster module may queue put, put, get and see its own writes.
 *
 * Contacts: bare JIDs as NUL-terminated strings of 1..SZ_JID_MAX_BYTES
 * bytes (else -EINVAL), already normalized by the caller (sz_jid_bare() of
 * a parsed JID); storage compares them bytewise.
 *
 * Versions: each owner has a roster version, a 64-bit counter that starts
 * at 0 (no change ever) and grows by one with every successful put or
 * remove; the changed item is stamped with the new value. Removed items
 * leave no tombstone, so a roster push diff for a removal cannot be built
 * from storage: a client whose cached version is older than the current one
 * gets the full roster (XEP-0237 §3 allows that). Every read returns the
 * current version. Deleting the account (sz_store_account_delete) deletes
 * its items, its version and its pending requests in the same transaction;
 * an account created again later starts at version 0.
 *
 * Writes need the owner's account: put, remove and pending_add on an owner
 * without an account fail with -ENOENT (nothing is stored, so no data
 * outlives its account). Reads of an owner without an account return an
 * empty roster at version 0.
 *
 * A write whose callback reported 0 is committed with the backend's
 * durability (store.h, DESIGN §5). Common results of every operation:
 * -EBUSY (lock wait expired, another process holds the database), -EIO.
 */
#ifndef SZ_STORAGE_ROSTER_H
#define SZ_STORAGE_ROSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "storage/store.h"

/* Groups of one item accepted by sz_store_roster_put (a sanity bound; the
 * roster module enforces its own, tighter, configured limits). */
#define SZ_STORE_ROSTER_GROUPS_MAX 1000

/* The 'subscription' attribute of an item (RFC 6121 §2.1.2.5). The numeric
 * values are stored: never renumber. */
enum sz_store_sub {
    SZ_STORE_SUB_NONE = 0,
    SZ_STORE_SUB_TO = 1,   /* the owner sees the contact's presence */
    SZ_STORE_SUB_FROM = 2, /* the contact sees the owner's presence */
    SZ_STORE_SUB_BOTH = 3,
};

/* One roster item. As an argument (put) every field but <ver> is read; as
 * a result every field is set and points into storage's memory (valid
 * during the callback only). */
typedef struct sz_store_roster_item {
    const char *jid;  /* contact bare JID, normalized, non-empty */
    const char *name; /* UTF-8 handle; NULL: no 'name' attribute, "": an empty one */
    enum sz_store_sub sub;
    bool ask;      /* outbound subscribe pending (ask='subscribe', §3.1.2) */
    bool approved; /* subscription pre-approved (approved='true', §3.4) */
    size_t ngroups;
    const char *const *groups; /* ngroups UTF-8 names, order and bytes kept exactly
                                * (the caller removes duplicates); may be NULL
                                * when ngroups is 0 */
    uint64_t ver; /* result only: the roster version at which this item last changed */
} sz_store_roster_item_t;

/* A whole roster: version and items (unordered). */
typedef struct sz_store_roster {
    uint64_t ver; /* current roster version, 0 when never changed */
    size_t n;
    const sz_store_roster_item_t *items; /* n items; NULL when n is 0 */
} sz_store_roster_t;

/* One pending inbound subscription request (§3.1.3). */
typedef struct sz_store_pending {
    const char *from;   /* requester's bare JID, as given to pending_add */
    const char *stanza; /* the stored presence stanza (raw XML, NUL-terminated;
                         * "" when none was given) */
    size_t stanza_len;  /* strlen(stanza) */
} sz_store_pending_t;

/* Pending requests of one owner, in the order of their last pending_add
 * (a replaced request moves to the end). */
typedef struct sz_store_pendings {
    size_t n;
    const sz_store_pending_t *items; /* NULL when n is 0 */
} sz_store_pendings_t;

/* ---- callbacks ----------------------------------------------------------- */

/** <roster> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_roster_fn)(void *arg, int res, const sz_store_roster_t *roster);

/** Single-item read: <ver> is the current roster version when <res> is 0
 * or -ENOENT; <item> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_roster_item_fn)(void *arg, int res, uint64_t ver,
                                        const sz_store_roster_item_t *item);

/** Writes: <ver> is the roster version after the call when <res> is 0
 * (the new one) or -ENOENT from remove (the current one, unchanged);
 * otherwise 0. */
typedef void (*sz_store_roster_ver_fn)(void *arg, int res, uint64_t ver);

/** <p> is valid (only during the call) when <res> is 0. */
typedef void (*sz_store_pending_fn)(void *arg, int res, const sz_store_pendings_t *p);

/** Login read: <roster> and <p> are valid (only during the call) when
 * <res> is 0, and were read in one snapshot. */
typedef void (*sz_store_roster_login_fn)(void *arg, int res, const sz_store_roster_t *roster,
                                         const sz_store_pendings_t *p);

/* ---- roster -------------------------------------------------------------- */

/**
 * Reads the whole roster of <owner>: its version and every item, in one
 * snapshot. Result: 0 (an empty roster is 0 with n == 0, ver 0 if it never
 * changed), -EBUSY, -EIO.
 */
int sz_store_roster_get(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_fn cb, void *arg);

/**
 * Reads the item of <contact> (NUL-terminated normalized bare JID) in the
 * roster of <owner>, with the current version. Result: 0, -ENOENT (no such
 * item; <ver> still set), -EBUSY, -EIO.
 */
int sz_store_roster_get_item(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                             sz_store_roster_item_fn cb, void *arg);

/**
 * Writes <item> (insert, or replace every field of the item with the same
 * jid) into the roster of <owner>, bumps the roster version and stamps the
 * item with it; all in one transaction. <item> and what it points to are
 * copied before return; item->ver is ignored. <max_items> bounds the
 * roster: inserting a NEW contact into a roster that already has
 * <max_items> items fails with -ENOSPC and changes nothing; replacing an
 * existing item always works. 0 means no limit. Arguments: -EINVAL when
 * item->jid is NULL or empty, item->sub is out of range, ngroups exceeds
 * SZ_STORE_ROSTER_GROUPS_MAX, or a group pointer is NULL. Result: 0 with
 * the new version, -ENOSPC, -ENOENT (<owner> has no account), -EBUSY,
 * -EIO.
 */
int sz_store_roster_put(sz_store_t *s, const sz_jid_t *owner, const sz_store_roster_item_t *item,
                        unsigned max_items, sz_store_roster_ver_fn cb, void *arg);

/**
 * Removes the item of <contact> from the roster of <owner> and bumps the
 * version, in one transaction. Result: 0 with the new version, -ENOENT
 * when there is no such item (nothing changed; <ver> is the current
 * version), -EBUSY, -EIO.
 */
int sz_store_roster_remove(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                           sz_store_roster_ver_fn cb, void *arg);

/* ---- pending inbound subscription requests ------------------------------- */

/**
 * Stores the subscription request of <from> (normalized bare JID) to
 * <owner>, replacing the one stored for the same <from>. <stanza> is the
 * presence stanza to deliver again at every login until answered (raw
 * XML, <stanza_len> bytes, may hold only a <status/>, may be NULL with
 * length 0); it must not contain NUL bytes (XML cannot). Copied before
 * return. Does not change the roster version. Result: 0, -ENOENT (<owner>
 * has no account), -EBUSY, -EIO.
 */
int sz_store_pending_add(sz_store_t *s, const sz_jid_t *owner, const char *from,
                         const char *stanza, size_t stanza_len, sz_store_done_fn cb, void *arg);

/**
 * Removes the pending request of <from> to <owner> (answered: approved or
 * denied). Result: 0, -ENOENT (none stored), -EBUSY, -EIO.
 */
int sz_store_pending_remove(sz_store_t *s, const sz_jid_t *owner, const char *from,
                            sz_store_done_fn cb, void *arg);

/** Lists the pending requests to <owner>. Result: 0, -EBUSY, -EIO. */
int sz_store_pending_list(sz_store_t *s, const sz_jid_t *owner, sz_store_pending_fn cb, void *arg);

/**
 * Login read: sz_store_roster_get and sz_store_pending_list of <owner> in
 * one request and one snapshot (one round trip when a session starts).
 * Result: 0, -EBUSY, -EIO.
 */
int sz_store_roster_login(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_login_fn cb,
                          void *arg);

#endif
