/*
 * The router's hook table (DESIGN §3a): where feature modules (core/mod/)
 * plug into routing. The router knows the RFC 6121 §8.5 delivery rules and
 * nothing else; every feature is a module that registers, once at start
 * and before any reactor runs, stanza hooks at named points, IQ handlers
 * keyed by (element, namespace), and the disco and stream features it
 * contributes. After sz_hooks_freeze() the table is read-only, so every
 * reactor reads it without a lock.
 *
 * A hook answers SZ_PASS (go on with the next hook, then the router's own
 * rule), SZ_HANDLED (the hook took the stanza: the router does nothing
 * more with it) or -SZ_STANZA_ERR_<cond> (the router sends that stanza
 * error back to the sender, RFC 6120 §8.3, unless the stanza is itself an
 * error or an iq result, and stops). This is jabberd2's mod_ret_t idea.
 *
 * A hook that must wait for storage takes a reference to ctx->st, returns
 * SZ_HANDLED, and finishes on the same reactor when the answer arrives
 * (the pattern of the router's account lookup). It must count itself in
 * sz_hooks_hold()/sz_hooks_release() so the reactor does not exit with the
 * answer in flight.
 *
 * Threads: registration on the main thread before reactors start;
 * everything else on the reactor named by each contract (the home reactor
 * of the user concerned, where all of a user's state lives, DESIGN §2).
 */
#ifndef SZ_CORE_HOOKS_H
#define SZ_CORE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"
#include "core/reactor.h"
#include "core/router.h"
#include "core/stanza.h"
#include "core/xml/tree.h"

/* Hook results; a negative value is -enum sz_stanza_err. */
#define SZ_PASS    0
#define SZ_HANDLED 1

/* Named points of the stanza path. */
enum sz_hook_point {
    /* A stanza from a bound client, 'from' stamped with its full JID,
     * before any routing; on the sender's home reactor. ctx.from is the
     * sending session, ctx.to the parsed 'to' or NULL. */
    SZ_HOOK_FROM_CLIENT = 0,
    /* Presence without 'to' from a client (RFC 6121 §4.2, §4.4, §4.5),
     * after the router updated ctx.from's availability and priority and
     * delivered it to the user's own resources. Modules send it to
     * contacts. Return values other than SZ_PASS are ignored. */
    SZ_HOOK_PRESENCE_BROADCAST,
    /* A stanza to the bare JID of a local user, on its home reactor.
     * ctx.user is the user's entry, or NULL when no resource is bound. */
    SZ_HOOK_TO_BARE,
    /* A stanza to a bound full JID; ctx.sess is the session. */
    SZ_HOOK_TO_FULL,
    /* A stanza to a full JID of a local user that is not bound
     * (RFC 6121 §8.5.3.2); ctx.user as for TO_BARE. */
    SZ_HOOK_NO_RESOURCE,
    /* A stanza to a served domain, bare or with a resource (RFC 6120
     * §10.3, §8.5.1 of RFC 6121); on the reactor that routes it. */
    SZ_HOOK_TO_DOMAIN,
    /* A stanza to a domain this node does not serve. */
    SZ_HOOK_TO_REMOTE,
    /* A message was just delivered to a local user by the RFC 6121 §8.5
     * rules, on the user's home reactor: ctx.user is the user, ctx.sess
     * the one session it went to (to a full JID), or NULL when it went
     * to the bare JID, to the sessions for which
     * sz_router_gets_bare_message() holds. Not run when no session got it
     * (bounced, dropped, stored). Return values are ignored. */
    SZ_HOOK_DELIVERED,
    /* A stanza is about to be written to bound session ctx.sess by the
     * router (every delivery to a client goes through here, also
     * sz_router_deliver(), but not sz_router_write()); on the session's
     * home reactor. ctx.st, ctx.kind are set, ctx.type is NULL (read it
     * from the stanza when needed). SZ_HANDLED: the hook took its own
     * reference and writes it later with sz_router_write(), or drops it;
     * anything else: written now. Hooks here run for every delivery, so
     * they must answer SZ_PASS in a few instructions when they do not
     * care about ctx.sess. */
    SZ_HOOK_DELIVER,
    SZ_HOOK_POINT_COUNT
};

/* Session events, on the user's home reactor. */
enum sz_hook_event {
    SZ_EV_BOUND = 0, /* a resource was bound (ctx.from is the session) */
    SZ_EV_UNBOUND,   /* a session ends (unbound or replaced): it is
                      * already unlinked from ctx.user's sessions, and its
                      * availability and last presence are still as they
                      * were; the user's own resources get its unavailable
                      * presence right after the hooks ran */
    SZ_EV_USER_GONE, /* the user's last session is gone and its entry is
                      * about to be freed: drop per-user state (ctx.user) */
    SZ_EV_COUNT
};

typedef struct sz_preauth sz_preauth_t;

/* What a hook sees. Everything is borrowed for the duration of the call. */
typedef struct sz_hook_ctx {
    sz_reactor_t *r;
    sz_stanza_t *st;        /* NULL for events */
    const sz_jid_t *to;     /* parsed 'to', or NULL */
    sz_session_t *from;     /* sending session (FROM_CLIENT, PRESENCE_BROADCAST, events) */
    sz_user_t *user;        /* the local user concerned, or NULL */
    sz_session_t *sess;     /* TO_FULL: the target session */
    int host;               /* index of the served domain concerned, or -1 */
    enum sz_stanza_kind kind;
    const char *type;       /* decoded 'type' attribute, or NULL when absent */
    const sz_preauth_t *pre; /* SZ_IQ_PREAUTH handlers: the stream (copy what you keep) */
    /* PRESENCE_BROADCAST of available presence: ctx.from's priority
     * before this presence, or SZ_PRIO_NONE when the session was not
     * available (this is its initial presence, RFC 6121 §4.2). The new
     * priority is ctx.from->priority. */
    int prev_priority;
    /* TO_BARE: the message was sent to a resource whose stream ended
     * before the client acknowledged it (XEP-0198 §4), and comes here as
     * RFC 6121 §8.5.3.2.1 says; it may carry the server's <delay/>
     * already. */
    bool undelivered;
} sz_hook_ctx_t;

/* prev_priority of a session that was not available. */
#define SZ_PRIO_NONE (-129)

typedef int (*sz_hook_fn)(sz_hook_ctx_t *ctx);
typedef void (*sz_event_fn)(sz_hook_ctx_t *ctx);

/**
 * A top-level element that is no stanza (a nonza, e.g. XEP-0352's
 * <inactive/>) on a bound client stream, in a namespace a module
 * registered with sz_hooks_nonza(). ctx.st is the element (kind
 * SZ_STANZA_OTHER; its tree on demand), ctx.from the stream's session,
 * ctx.user its user, ctx.host its domain; on the session's home reactor.
 * Nonzas are not stanzas: XEP-0198 does not count them, and they are
 * never routed. Returns 0, or a stream error (positive enum
 * sz_stream_err) that ends the stream.
 */
typedef int (*sz_nonza_fn)(sz_hook_ctx_t *ctx);

/* Where an IQ handler answers. */
#define SZ_IQ_SERVER  0x1u /* to a served domain (bare) */
#define SZ_IQ_ACCOUNT 0x2u /* to a local user's bare JID, or without 'to' (RFC 6120 §10.3.3) */
#define SZ_IQ_PREAUTH 0x4u /* on a client stream before authentication (XEP-0077):
                            * not routed; ctx.pre is the stream */

/*
 * A client stream before authentication, as an iq handler of scope
 * SZ_IQ_PREAUTH sees it. <p> is opaque to modules; they reach the stream
 * only through <ops>, on the stream's reactor.
 */
typedef struct sz_preauth_ops {
    /* Answers iq <id>/<idlen> (NULL: none) on the stream: a result with
     * <inner> (trusted XML or NULL) when <e> is 0, else stanza error <e>.
     * Does nothing when the stream has ended meanwhile. */
    void (*answer)(void *p, const char *id, size_t idlen, const char *inner,
                   enum sz_stanza_err e);
    /* Keeps the stream's state alive for an answer that comes later.
     * Returns false when a hold is already running (one at a time). */
    bool (*hold)(void *p);
    /* Ends the hold; afterwards <p> may be freed (stream gone). */
    void (*release)(void *p);
} sz_preauth_ops_t;

struct sz_preauth {
    void *p;
    const sz_preauth_ops_t *ops;
    uint32_t source; /* 1 + a hash slot of the peer address, 0 when unknown */
    bool secure;     /* TLS, or a listener that does not require it */
};

/**
 * An iq get/set handler. <payload> is the one child element (RFC 6120
 * §8.2.3; the router refuses other counts with bad-request), <set> tells
 * the type. ctx.to is the addressee as routed (the user's bare JID for
 * SZ_IQ_ACCOUNT; the sender's bare JID when the iq had no 'to'), ctx.user
 * the addressee's entry when online, ctx.from the sending session when the
 * iq came from the addressee's own client on this reactor (else NULL).
 * Returns SZ_HANDLED (answered or held) or -SZ_STANZA_ERR_*.
 */
typedef int (*sz_iq_fn)(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set);

/* ---- registration (main thread, before reactors start) ------------------- */

/** Adds <fn> at <point>; hooks run in registration order. */
void sz_hooks_add(enum sz_hook_point point, sz_hook_fn fn);

/** Adds <fn> for session event <ev>. */
void sz_hooks_on(enum sz_hook_event ev, sz_event_fn fn);

/**
 * Handles iq get/set with payload <name> in <ns> (static strings) for the
 * scopes <scope> (SZ_IQ_* mask). One handler per (name, ns, scope bit).
 */
void sz_hooks_iq(const char *name, const char *ns, unsigned scope, sz_iq_fn fn);

/** Handles the nonzas in namespace <ns> (static string) on bound client
 *  streams. One handler per namespace. */
void sz_hooks_nonza(const char *ns, sz_nonza_fn fn);

/** A per-host condition for a feature (NULL: every host). Any thread. */
typedef bool (*sz_host_pred_fn)(int host);

/** XEP-0030 feature <var> (static) listed for <scope> (SZ_IQ_* mask) on
 *  the hosts where <when> holds. */
void sz_hooks_disco_feature(const char *var, unsigned scope, sz_host_pred_fn when);

/**
 * Stream feature <xml> (static, serialized) offered after authentication
 * (<authed> true: with <bind/>) or before it, on the hosts where <when>
 * holds.
 */
void sz_hooks_stream_feature(const char *xml, bool authed, sz_host_pred_fn when);

/** A per-user / per-session slot for module state: returns its index.
 *  At most SZ_USER_SLOTS / SZ_SESS_SLOTS in all. */
unsigned sz_hooks_user_slot(void);
unsigned sz_hooks_sess_slot(void);

/** Ends registration: the table is read-only from here on. */
void sz_hooks_freeze(void);

/** Main thread, at exit (tests): empties the table. */
void sz_hooks_reset(void);

/* ---- running (reactor threads) ------------------------------------------- */

/** Runs the hooks of <point> on <ctx> until one does not pass; returns
 *  that result, or SZ_PASS. */
int sz_hooks_run(enum sz_hook_point point, sz_hook_ctx_t *ctx);

/** The nonza handler registered for namespace <ns>/<len>, or NULL. */
sz_nonza_fn sz_hooks_nonza_find(const char *ns, size_t len);

/** Runs every handler of event <ev>. */
void sz_hooks_event(enum sz_hook_event ev, sz_hook_ctx_t *ctx);

/** The handler for iq payload <name>/<ns> in scope <scope> (one SZ_IQ_*
 *  bit), or NULL. */
sz_iq_fn sz_hooks_iq_find(const sz_xml_node_t *payload, unsigned scope);

/** The disco features of <scope> on <host>, in registration order, as
 *  <feature var='…'/> elements appended to <xb>. */
struct sz_xb;
void sz_hooks_disco_features(struct sz_xb *xb, unsigned scope, int host);

/** The stream features registered for <authed> on <host>, concatenated,
 *  into <buf> of <cap> bytes (truncated like snprintf); returns the
 *  length. */
size_t sz_hooks_stream_features(bool authed, int host, char *buf, size_t cap);

/** Reactor thread: a module holds a stanza until storage answers (one
 *  more / one fewer). sz_hooks_pending() is this reactor's count; the
 *  reactor does not exit while it is non-zero. */
void sz_hooks_hold(void);
void sz_hooks_release(void);
unsigned sz_hooks_pending(void);

#endif
