/*
 * The roster cache and per-user job queue (core/mod/roster.c) that
 * mod_roster.c, mod_subscription.c and mod_presence.c share (RFC 6121
 * §2-§4). Internal to core/mod/: nothing outside this folder includes it.
 *
 * Each user that has work or a bound resource has one roster entry on its
 * home reactor: the committed subscription state of every contact (bare
 * JID plus a few bits, one compact allocation; names and groups stay in
 * storage) and a FIFO of jobs. Jobs run one at a time, only once the cache
 * is loaded, and a job that writes keeps the queue until storage has
 * committed, so every job sees the state every earlier job left and the
 * cache is always what storage holds. An online user's entry hangs off
 * its user slot; an offline user's (a subscription request to someone not
 * logged in) lives in a reactor-local list until its queue drains.
 *
 * Threads: everything on the user's home reactor; no locks.
 */
#ifndef SZ_CORE_MOD_ROSTER_H
#define SZ_CORE_MOD_ROSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hooks.h"
#include "core/mod/modules.h"
#include "storage/roster.h"

/* Subscription state of one contact in the cache (RFC 6121 Appendix A:
 * the four states plus "Pending Out"/"Pending In", and §3.4 pre-approval). */
#define SZ_RC_TO        0x01u /* the user sees the contact's presence */
#define SZ_RC_FROM      0x02u /* the contact sees the user's presence */
#define SZ_RC_ASK       0x04u /* Pending Out: ask='subscribe' */
#define SZ_RC_APPROVED  0x08u /* pre-approved (approved='true') */
#define SZ_RC_PEND_IN   0x10u /* Pending In: an unanswered request is stored */
#define SZ_RC_ITEM      0x20u /* a roster item exists (else only Pending In) */
#define SZ_RC_ITEM_BITS (SZ_RC_TO | SZ_RC_FROM | SZ_RC_ASK | SZ_RC_APPROVED | SZ_RC_ITEM)

/* The roster size without a configuration (limits.max_roster_items has
 * the same default). */
#define SZ_ROSTER_MAX_ITEMS_DEFAULT 1000

/* Per-session flags (the roster's session slot). */
#define SZ_RS_INTERESTED 0x1u /* requested the roster: gets pushes (RFC 6121 §2.1.6) */
#define SZ_RS_VER        0x2u /* asked with 'ver' (XEP-0237): results and pushes carry it */
#define SZ_RS_AVAILABLE  0x4u /* initial presence seen by the modules, not unavailable since */

typedef struct sz_roster sz_roster_t;
typedef struct sz_roster_job sz_roster_job_t;

/**
 * A job's body, run on the home reactor when its turn comes. <res> is 0
 * when the cache is loaded, or -errno when loading failed (then the job
 * only cleans up: answer an error, drop). Returns true when finished, or
 * false when it continues asynchronously and will call
 * sz_roster_job_done() exactly once.
 */
typedef bool (*sz_roster_job_fn)(sz_roster_t *ro, sz_roster_job_t *job, int res);

struct sz_roster_job {
    sz_roster_job_t *next;
    sz_roster_job_fn fn;
    sz_reactor_t *r;
    sz_stanza_t *st; /* the held stanza (one reference), or NULL */
    void *data;      /* the job's own heap block (sz_free'd with the job), or NULL */
    uint32_t aux;    /* the job's own small value */
    bool finished;   /* private */
};

/* ---- entries and jobs ----------------------------------------------------- */

/** Main thread, at registration (mod_roster.c): the store, the slots and
 *  the session events the cache needs. */
void sz_roster_setup(const sz_mod_env_t *env);

/** The store the modules use (set by sz_mod_roster_register). */
sz_store_t *sz_roster_store(void);

/** The roster size limit: limits.max_roster_items (0: none). */
unsigned sz_roster_max_items(void);

/**
 * Home reactor of <owner>. The roster entry of <owner> (bare JID, only
 * read), created when there is none; <u> is the user's entry when online,
 * else NULL. The caller submits a job to it before returning to the loop
 * (an entry with nothing to do is freed then).
 */
sz_roster_t *sz_roster_of(sz_reactor_t *r, sz_user_t *u, const sz_jid_t *owner);

/** The existing roster entry of an online user, or NULL. */
sz_roster_t *sz_roster_find(const sz_user_t *u);

/** The existing entry of <owner> (bare), online or not, or NULL. */
sz_roster_t *sz_roster_find_owner(const sz_user_t *u, const sz_jid_t *owner);

/** Main thread, before reactors start: the roster size limit when the
 *  modules run without a configuration (tests; 0: none). */
void sz_mod_roster_set_max_items(unsigned n);

/** Whether <ro> is loaded and idle: a job submitted now runs at once. */
bool sz_roster_ready(const sz_roster_t *ro);

/**
 * A new job running <fn> with a reference to <st> (may be NULL). Counts
 * in sz_hooks_hold() until freed.
 */
sz_roster_job_t *sz_roster_job_new(sz_reactor_t *r, sz_roster_job_fn fn, sz_stanza_t *st);

/** Queues <job> on <ro>; it runs now (before return) when <ro> is ready
 *  and idle, else later. Loads the cache when needed. */
void sz_roster_submit(sz_roster_t *ro, sz_roster_job_t *job);

/** An asynchronous job is finished: frees it and runs the next. */
void sz_roster_job_done(sz_roster_t *ro, sz_roster_job_t *job);

/** The user entry (NULL while offline) and the owner's bare JID. */
sz_user_t *sz_roster_user(const sz_roster_t *ro);
const sz_jid_t *sz_roster_owner(const sz_roster_t *ro);

/** Heap bytes of <ro>'s entry and cache (for the memory budget, DESIGN §1). */
size_t sz_roster_mem(const sz_roster_t *ro);

/** Current roster version (what storage reported last). */
uint64_t sz_roster_ver(const sz_roster_t *ro);

/* ---- the cache (loaded entries only) -------------------------------------- */

/** Bits of contact <jid>/<len> (a normalized bare JID), 0 when unknown. */
unsigned sz_roster_bits(const sz_roster_t *ro, const char *jid, size_t len);

/** Number of contacts and the <i>th (NUL-terminated) with its bits. */
size_t sz_roster_count(const sz_roster_t *ro);
const char *sz_roster_at(const sz_roster_t *ro, size_t i, size_t *len, unsigned *bits);

/**
 * Called by sz_roster_update when the write is over: <res> 0 (committed,
 * cache updated, pushes sent) or -errno (nothing changed).
 */
typedef void (*sz_roster_upd_fn)(sz_roster_t *ro, sz_roster_job_t *job, int res);

/**
 * From a running job: gives contact <jid>/<len> the item bits <bits>
 * (SZ_RC_ITEM_BITS; without SZ_RC_ITEM the item is removed), keeping its
 * name and groups, and pushes the item to the interested resources
 * (RFC 6121 §2.1.6). New items count against the roster limit (-ENOSPC).
 * Returns 1 when a write is under way (<cb> runs later, once), 0 when
 * nothing had to be written (<cb> is not called), -errno when storage
 * refused the request (<cb> is not called).
 */
int sz_roster_update(sz_roster_t *ro, sz_roster_job_t *job, const char *jid, size_t len,
                     unsigned bits, sz_roster_upd_fn cb);

/**
 * From a running job: records (stores <st>'s raw XML) or forgets the
 * pending inbound request of <jid> (RFC 6121 §3.1.3). The cache changes
 * at once; the storage write is ordered after every earlier one.
 */
void sz_roster_pending_set(sz_roster_t *ro, const char *jid, size_t len, const sz_stanza_t *st);
void sz_roster_pending_clear(sz_roster_t *ro, const char *jid, size_t len);

/** During the first job after a load: the roster storage just returned
 *  (names and groups included), else NULL. */
const sz_store_roster_t *sz_roster_snapshot(const sz_roster_t *ro);

/** From a running job, after a write of contact <jid>/<len> committed at
 *  version <ver>: the cache takes <bits> (0: forgotten). */
void sz_roster_commit(sz_roster_t *ro, const char *jid, size_t len, unsigned bits, uint64_t ver);

/* ---- items and pushes (RFC 6121 §2.1.2, §2.1.6) -------------------------------- */

/** The 'subscription' of item bits <bits>. */
enum sz_store_sub sz_roster_sub(unsigned bits);

/** One <item/> into <xb>; <it> NULL: a removal (subscription='remove'). */
struct sz_xb;
void sz_roster_xb_item(struct sz_xb *xb, const char *jid, const sz_store_roster_item_t *it);

/** The same, serialized (caller frees), or NULL. */
char *sz_roster_item_xml(const char *jid, const sz_store_roster_item_t *it, size_t *len);

/** Pushes serialized <item>/<len> to every interested resource of <ro>'s
 *  owner, with the current version for those that use versioning. */
void sz_roster_push(sz_roster_t *ro, const char *item, size_t len);

/* ---- sessions --------------------------------------------------------------- */

/** SZ_RS_* flags of <s>, and changes to them. */
unsigned sz_roster_sflags(const sz_session_t *s);
void sz_roster_sflags_set(sz_session_t *s, unsigned set, unsigned clear);

/** mod_presence's per-session pointer (kept beside the flags; 8-byte
 *  aligned heap block or NULL). */
void *sz_roster_sdata(const sz_session_t *s);
void sz_roster_sdata_set(sz_session_t *s, void *p);

/** The session of <u> whose full JID is <st>'s 'from', or NULL. */
sz_session_t *sz_roster_session_of(const sz_user_t *u, const sz_stanza_t *st);

/* ---- stanzas ------------------------------------------------------------------ */

/** Delivers <st> to every available resource of <u> (NULL: nobody). */
void sz_roster_deliver_available(sz_user_t *u, sz_stanza_t *st);

/** Routes <presence type='<type>' from='<from>' to='<to>'/> (bare JIDs). */
void sz_roster_send(sz_reactor_t *r, const char *type, const char *from, size_t flen,
                    const char *to, size_t tlen);

/** Bare JID <b>/<len> parsed into <jb> (it must be normalized already);
 *  NULL when it is not a JID. */
sz_jid_t *sz_roster_jid(const char *b, size_t len, sz_jid_buf_t *jb);

/* ---- presence helpers (mod_presence.c) -------------------------------------- */

/** RFC 6121 §3.1.5: the last presence of each available resource of <u>,
 *  routed to contact <to>/<len>. */
void sz_presence_send_current(sz_reactor_t *r, sz_user_t *u, const char *to, size_t len);

/** RFC 6121 §3.2.2: unavailable presence from each available resource of
 *  <u>, routed to contact <to>/<len>. */
void sz_presence_send_unavailable(sz_reactor_t *r, sz_user_t *u, const char *to, size_t len);

/** XEP-0191 §3.3, from a running job of <ro>: each directed-presence
 *  target (§4.6) of the owner's sessions that the owner now blocks, and
 *  that is not a From/Both contact (those get theirs with the contacts),
 *  gets unavailable from that session and is forgotten. */
void sz_presence_cut_directed(sz_reactor_t *r, sz_roster_t *ro);

#endif
