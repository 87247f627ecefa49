/*
 * The blocklist of each user (XEP-0191) as the modules share it: a cache
 * of the blocked JIDs with the XEP-0016 §2.1 matching rules, loaded from
 * storage asynchronously, and the per-user FIFO of jobs that waits for
 * the load and orders the changes (the roster's pattern, core/mod/roster.h).
 * Internal to core/mod/: mod_blocking.c is the protocol on top, and
 * mod_presence.c asks sz_blocking_blocks() before it sends presence.
 *
 * Each online user's entry hangs off a user slot and is loaded when a
 * resource binds; a stanza for an offline user from someone else loads a
 * short-lived entry in a reactor-local list, freed when its queue drains.
 * Jobs run one at a time, only once the cache is loaded; a job that writes
 * keeps the queue until storage has committed, so the cache is always
 * what storage holds.
 *
 * Threads: everything on the user's home reactor; no locks.
 */
#ifndef SZ_CORE_MOD_BLOCKLIST_H
#define SZ_CORE_MOD_BLOCKLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/durable.h"
#include "core/hooks.h"
#include "core/mod/modules.h"
#include "storage/blocklist.h"

/* The list size without a configuration (limits.max_blocklist_items has
 * the same default). */
#define SZ_BLOCKLIST_MAX_ITEMS_DEFAULT 1000

typedef struct sz_blocklist sz_blocklist_t;
typedef struct sz_blocklist_job sz_blocklist_job_t;

/**
 * A job's body, run when its turn comes. <res> is 0 when the cache is
 * loaded, or -errno when loading failed (then the job only cleans up).
 * Returns true when finished, or false when it continues asynchronously
 * and will call sz_blocklist_job_done() exactly once.
 */
typedef bool (*sz_blocklist_job_fn)(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res);

struct sz_blocklist_job {
    sz_blocklist_job_t *next;
    sz_blocklist_job_fn fn;
    sz_reactor_t *r;
    sz_stanza_t *st; /* the held stanza (one reference), or NULL */
    void *data;      /* the job's own heap block (sz_free'd with the job), or NULL */
    uint32_t aux;    /* the job's own small value */
    bool finished;   /* private */
    sz_durable_t dur; /* private: a held stanza counts as a write in flight (core/durable.h) */
};

/** Main thread, at registration (mod_blocking.c): the store, the slot and
 *  the session events the cache needs. */
void sz_blocklist_setup(const sz_mod_env_t *env);

/** The store (NULL: none, the module then does nothing). */
sz_store_t *sz_blocklist_store(void);

/** The list size limit: limits.max_blocklist_items. */
unsigned sz_blocklist_max_items(void);

/** Main thread, before reactors start: the limit without a configuration
 *  (tests). */
void sz_mod_blocking_set_max_items(unsigned n);

/**
 * Home reactor of <owner> (bare, only read): the entry of <owner>,
 * created when there is none; <u> the user's entry when online, else
 * NULL. The caller submits a job to it before returning to the loop.
 */
sz_blocklist_t *sz_blocklist_of(sz_user_t *u, const sz_jid_t *owner);

/** The existing entry of <owner> (online through <u>, or offline), or
 *  NULL. */
sz_blocklist_t *sz_blocklist_find(const sz_user_t *u, const sz_jid_t *owner);

/** Whether <bl> is loaded and idle: a job submitted now runs at once. */
bool sz_blocklist_ready(const sz_blocklist_t *bl);

/** A new job running <fn> with a reference to <st> (may be NULL). Counts
 *  in sz_hooks_hold() until freed. */
sz_blocklist_job_t *sz_blocklist_job_new(sz_reactor_t *r, sz_blocklist_job_fn fn,
                                         sz_stanza_t *st);

/** Queues <job> on <bl>; it runs now (before return) when <bl> is ready,
 *  else later. Loads the cache when needed. <bl> may be freed on return
 *  when its owner is offline and nothing is left to do. */
void sz_blocklist_submit(sz_blocklist_t *bl, sz_blocklist_job_t *job);

/** An asynchronous job is finished: frees it and runs the next. */
void sz_blocklist_job_done(sz_blocklist_t *bl, sz_blocklist_job_t *job);

/** The user entry (NULL while offline) and the owner's bare JID. */
sz_user_t *sz_blocklist_user(const sz_blocklist_t *bl);
const sz_jid_t *sz_blocklist_owner(const sz_blocklist_t *bl);

/* ---- the cache (loaded entries) ------------------------------------------ */

/** Number of blocked JIDs and the <i>th (normalized, NUL-terminated). */
size_t sz_blocklist_count(const sz_blocklist_t *bl);
const char *sz_blocklist_at(const sz_blocklist_t *bl, size_t i, size_t *len);

/** Whether <jid>/<len> (normalized) is an item of the list itself. */
bool sz_blocklist_has(const sz_blocklist_t *bl, const char *jid, size_t len);

/** From a running job, after storage committed: adds <jid>/<len> (a
 *  normalized JID) / removes it / empties the list. */
void sz_blocklist_add(sz_blocklist_t *bl, const char *jid, size_t len);
void sz_blocklist_del(sz_blocklist_t *bl, const char *jid, size_t len);
void sz_blocklist_clear(sz_blocklist_t *bl);

/**
 * Whether an item of <bl> blocks entity <j>, by the XEP-0016 §2.1 rules
 * XEP-0191 (JID Matching) refers to: an item user@domain/resource matches that full
 * JID only; user@domain every resource of it; domain/resource that
 * resource of the domain, whatever the localpart; domain the domain and
 * every JID at it.
 */
bool sz_blocklist_match(const sz_blocklist_t *bl, const sz_jid_t *j);

/** Whether the single item <item>/<len> (normalized) matches <j>, by the
 *  same rules. */
bool sz_blocklist_item_match(const char *item, size_t len, const sz_jid_t *j);

/**
 * The presence seam: whether online user <u> blocks <jid>/<len> (a
 * normalized bare or full JID). False when <u> has no loaded blocklist
 * (storage is off, or it is still loading: callers that must not miss a
 * block wait for the load, as mod_blocking holds a client's stanzas).
 */
bool sz_blocking_blocks(const sz_user_t *u, const char *jid, size_t len);

/* ---- pushes (XEP-0191 §3.3, §3.4) ------------------------------------------ */

/** Session <s> requested the blocklist: it gets the pushes from now on. */
void sz_blocklist_interest(sz_blocklist_t *bl, sz_session_t *s);

/** Sends iq set <payload>/<len> (serialized) to every interested resource
 *  of <bl>'s owner. */
void sz_blocklist_push(sz_blocklist_t *bl, const char *payload, size_t len);

#endif
