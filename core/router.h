/*
 * Local routing (RFC 6120 §10, RFC 6121 §8.5). Every bare JID has a home
 * reactor, hash(bare) % reactors; all sessions of a user are bound on their
 * home reactor, so each reactor's user table is private to it and needs no
 * lock. A stanza for a user homed elsewhere crosses once through the
 * cross-reactor ring, as a reference to the same refcounted stanza.
 *
 * Sessions are owned by the connection layer; the router only links them
 * into its table and delivers through their ops. Everything here runs on
 * the reactor named in each contract.
 */
#ifndef SZ_CORE_ROUTER_H
#define SZ_CORE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/jid.h"
#include "core/reactor.h"
#include "core/stanza.h"
#include "core/xml/errors.h"

typedef struct sz_session sz_session_t;
typedef struct sz_user sz_user_t;

typedef struct sz_session_ops {
    /* Write <st> to the session's client. Consumes one reference. */
    void (*deliver)(sz_session_t *s, sz_stanza_t *st);
    /* End the session with stream error <cond> (e.g. SZ_STREAM_CONFLICT). */
    void (*kick)(sz_session_t *s, enum sz_stream_err cond);
} sz_session_ops_t;

/* Per-user and per-session pointers for feature modules (core/hooks.h
 * hands out the indexes at start). */
#define SZ_USER_SLOTS 4
#define SZ_SESS_SLOTS 4

/* One bound resource. 80 bytes; embedded in the connection's state. */
struct sz_session {
    sz_jid_t *jid;               /* full JID, owned by the session's owner */
    sz_user_t *user;             /* set while bound */
    sz_session_t *next;          /* in user->sessions */
    const sz_session_ops_t *ops;
    sz_stanza_t *presence;       /* last available presence broadcast, or NULL */
    void *slot[SZ_SESS_SLOTS];   /* module state (core/hooks.h), freed by its module */
    int8_t priority;
    bool available;              /* initial presence sent, not unavailable since */
};

/* A user with at least one bound resource, on its home reactor. */
struct sz_user {
    sz_user_t *_hnext;           /* router's table */
    uint64_t _hash;
    sz_jid_t *bare;              /* owned by the router */
    sz_session_t *sessions;      /* bound resources, newest first */
    void *slot[SZ_USER_SLOTS];   /* module state (core/hooks.h); freed on SZ_EV_USER_GONE */
};

/** Home reactor of a bare JID: hash(bare) % <n>. Any thread. */
unsigned sz_router_home(const sz_jid_t *j, unsigned n);

/** Reactor thread, at start. Creates this reactor's user table. */
void sz_router_init(sz_reactor_t *r);

/** Reactor thread, at exit (all sessions unbound). */
void sz_router_destroy(sz_reactor_t *r);

/**
 * Home reactor of s->jid. Links <s>. When a session with the same full JID
 * is bound already, it is unlinked and returned (the caller kicks it with
 * <conflict/>, RFC 6120 §7.7.2.2), else NULL.
 */
sz_session_t *sz_router_bind(sz_reactor_t *r, sz_session_t *s);

/**
 * Home reactor. Unlinks <s>. If it was available, broadcasts unavailable
 * presence to the user's other available resources (RFC 6121 §4.5.2).
 */
void sz_router_unbind(sz_reactor_t *r, sz_session_t *s);

/**
 * Home reactor of old->jid. Session <s> (not bound) takes the place of
 * bound session <old> (XEP-0198 §5 resumption): the same full JID, user,
 * presence, priority and module slots, moved without any event or
 * presence. <s> keeps its own ops; <old> is left zeroed (its JID and
 * presence now belong to <s>).
 */
void sz_router_takeover(sz_reactor_t *r, sz_session_t *old, sz_session_t *s);

/**
 * Home reactor of <from>. Routes <st>, a stanza from the client of <from>
 * whose 'from' is already stamped with from's full JID. <to> is the parsed
 * 'to' (NULL when absent). Consumes <st>.
 */
void sz_router_from_client(sz_reactor_t *r, sz_session_t *from, sz_stanza_t *st,
                           const sz_jid_t *to);

/**
 * Any reactor. <st> was sent to a client whose stream ended before it
 * acknowledged it (XEP-0198 §4): treated as sent to an unavailable
 * resource (RFC 6121 §8.5.3.2.1). A normal, chat or headline message goes
 * on as if sent to the bare JID: the user's other available resources,
 * else the TO_BARE hooks with ctx.undelivered set (offline storage), else
 * the §8.5.2.2.1 default; a groupchat message or an iq request gets
 * recipient-unavailable back (RFC 6120 §8.3.3.13; never errors and
 * results); presence is dropped. Consumes <st>.
 */
void sz_router_undelivered(sz_reactor_t *r, sz_stanza_t *st);

/** Number of users / sessions bound on this reactor (for metrics). */
uint64_t sz_router_sessions(const sz_reactor_t *r);

/**
 * Main thread, before reactors start: the served domains (the router
 * answers for them and refuses others with remote-server-not-found) and
 * what the server identity advertises. <domains> must outlive the node.
 */
void sz_router_configure(const char *const *domains, unsigned n, const bool *register_enabled);

/**
 * Does local account <jid> (bare) exist? Must complete <cb>(<arg>, res) on
 * the calling reactor, later: res 1 (exists), 0 (no such account) or
 * -errno. Returns 0, or -errno (then <cb> is never called).
 */
typedef int (*sz_router_exists_fn)(void *ctx, const sz_jid_t *jid,
                                   void (*cb)(void *arg, int res), void *arg);

/** Main thread, before reactors start: how the router asks whether an
 *  account exists (for stanzas to users with no session). NULL: it
 *  cannot tell, and treats such users as unknown. */
void sz_router_set_exists(sz_router_exists_fn fn, void *ctx);

/** Reactor thread: account lookups in flight; the reactor must not exit
 *  before they complete. */
unsigned sz_router_pending(void);

/* ---- for feature modules (core/mod/), on the reactor named ---------------- */

/** Home reactor of <bare>: its user entry, or NULL when no resource is
 *  bound. */
sz_user_t *sz_router_user(sz_reactor_t *r, const sz_jid_t *bare);

/** Home reactor of <s>: writes <st> to the session's client. Takes its
 *  own reference; the caller keeps its own. */
void sz_router_deliver(sz_session_t *s, sz_stanza_t *st);

/** Home reactor of <s>: writes <st> to the session's client without
 *  running SZ_HOOK_DELIVER (for the module that held it there). Takes its
 *  own reference; the caller keeps its own. */
void sz_router_write(sz_session_t *s, sz_stanza_t *st);

/** Home reactor of <u>: whether session <s> of <u> gets a message (a
 *  headline when <headline>) sent to the bare JID, by RFC 6121
 *  §8.5.2.1.1 (the highest non-negative priority among the available
 *  resources; for headlines, every non-negative one). */
bool sz_router_gets_bare_message(const sz_user_t *u, const sz_session_t *s, bool headline);

/** Any reactor: routes <st>, a stanza the server made or accepted, by its
 *  'to' (local users, served domains, remote domains). Consumes <st>. */
void sz_router_route(sz_reactor_t *r, sz_stanza_t *st);

/** Any reactor: answers iq <st> with a result carrying <inner> (trusted
 *  serialized XML of <len> bytes, or NULL). Only reads <st>. */
void sz_router_iq_result(sz_reactor_t *r, const sz_stanza_t *st, const char *inner, size_t len);

/** Any reactor: sends stanza error <e> back to the sender of <st>, unless
 *  <st> is an error or an iq result (RFC 6120 §8.3.1). Only reads <st>. */
void sz_router_bounce(sz_reactor_t *r, const sz_stanza_t *st, enum sz_stanza_err e);

/** Any thread. <presence type='unavailable' from='<full>'/> (one
 *  reference, caller owns it), or NULL on a builder error. */
sz_stanza_t *sz_router_unavailable(const sz_jid_t *full);

/** Index of served domain <d>/<len>, or -1. Any thread. */
int sz_router_host(const char *d, size_t len);

/** Served domain <host> (NUL-terminated), or NULL. Any thread. */
const char *sz_router_host_name(int host);

/** Whether XEP-0077 registration is enabled on <host>. Any thread. */
bool sz_router_host_register(int host);

/** Product name and version answered to XEP-0092. */
#define SZ_PRODUCT_NAME    "stanzad"
#define SZ_PRODUCT_VERSION "0.1.0"

#endif
