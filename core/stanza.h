/*
 * A stanza (or nonza) as the router moves it: ONE refcounted allocation
 * holding the raw bytes of the top-level element exactly as received and
 * its parsed header (kind, name, namespace, to/from/id/type/xml:lang as
 * offsets into the raw bytes). Routing needs nothing else; the element
 * tree is built lazily, only when asked for (sz_stanza_tree), and freed
 * with the stanza. Rewriting to/from splices the raw bytes into a new
 * stanza, never re-serialises.
 *
 * Threads: a stanza is immutable after creation (the lazy tree is published
 * atomically), so references may be handed to other cores through the
 * queues; ref/unref are atomic.
 */
#ifndef SZ_CORE_STANZA_H
#define SZ_CORE_STANZA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/xml/builder.h"
#include "core/xml/parser.h"
#include "core/xml/tree.h"

enum sz_stanza_kind {
    SZ_STANZA_MESSAGE = 0,
    SZ_STANZA_PRESENCE,
    SZ_STANZA_IQ,
    SZ_STANZA_OTHER, /* nonzas: stream features, SASL, SM, dialback... */
};

typedef struct sz_stanza sz_stanza_t;

/**
 * Any thread. Copies the <len> bytes of <span> (a top-level element as
 * reported by sz_xml_ops_t.on_element, with its header <h>) into a new
 * stanza with one reference; the caller owns that reference. The kind is
 * message/presence/iq for those names in a content namespace
 * (jabber:client, jabber:server, jabber:component:accept), else OTHER.
 * Never returns NULL (aborts on OOM).
 */
sz_stanza_t *sz_stanza_new(const char *span, size_t len, const sz_xml_head_t *h);

/** Any thread. Takes one more reference; returns <st>. */
/**
 * Any thread. A stanza from one complete jabber:client element the server
 * built itself (<xml>/<len>, e.g. from core/xml/builder): it is parsed under
 * the default limits exactly like client input. Returns NULL when <xml> is
 * not one well-formed element (a bug in the caller).
 */
sz_stanza_t *sz_stanza_from_xml(const char *xml, size_t len);

/**
 * Any thread. Finishes <xb> (which must hold one closed jabber:client
 * element) and returns it as a stanza (one reference, caller owns it), or
 * NULL when the builder recorded an error. <xb> is left empty either way.
 */
sz_stanza_t *sz_stanza_from_xb(sz_xb_t *xb);

sz_stanza_t *sz_stanza_ref(sz_stanza_t *st);

/** Any thread. Drops one reference; the last one frees the stanza and its
 * tree. NULL is fine. */
void sz_stanza_unref(sz_stanza_t *st);

/** The raw bytes (NUL-terminated for convenience) and their length. */
const char *sz_stanza_raw(const sz_stanza_t *st, size_t *len);

enum sz_stanza_kind sz_stanza_kind(const sz_stanza_t *st);

/** Local name of the element, and its namespace (NULL: none) with its id. */
const char *sz_stanza_name(const sz_stanza_t *st, size_t *len);
const char *sz_stanza_ns(const sz_stanza_t *st, size_t *len);
enum sz_xml_ns sz_stanza_ns_id(const sz_stanza_t *st);

/**
 * Raw value of attribute <which> (SZ_XML_A_TO, FROM, ID, TYPE, LANG), a
 * pointer into the raw bytes, not NUL-terminated; NULL when absent.
 * *<esc> (if not NULL) tells whether it holds references and must go
 * through sz_stanza_attr() to be read as text.
 */
const char *sz_stanza_attr_raw(const sz_stanza_t *st, enum sz_xml_attr_idx which, size_t *len,
                               bool *esc);

/**
 * Decoded value of attribute <which> into <dst> (<cap> bytes, NUL added
 * when room is left). Returns its length, -ENOENT when absent, -ENOSPC
 * when <cap> is too small.
 */
ssize_t sz_stanza_attr(const sz_stanza_t *st, enum sz_xml_attr_idx which, char *dst, size_t cap);

/**
 * Any thread. The element tree, built from the raw bytes on first call
 * and kept until the stanza is freed (two threads racing build two trees;
 * one wins, the other is freed). Valid while the caller holds a reference.
 */
const sz_xml_node_t *sz_stanza_tree(sz_stanza_t *st);

/**
 * Any thread. A new stanza (one reference, caller owns it) equal to <st>
 * with the attribute values of 'to' and 'from' replaced by <to> and <from>
 * (<to_len>, <from_len> bytes of text, escaped here), each added after the
 * element name when absent. A NULL value keeps that attribute as it is.
 * <st> is unchanged and keeps its references. Never returns NULL.
 */
sz_stanza_t *sz_stanza_rewrite(const sz_stanza_t *st, const char *to, size_t to_len,
                               const char *from, size_t from_len);

/* ---- stanza errors (RFC 6120 §8.3) ---------------------------------- */

/* Namespace of the stanza error conditions (RFC 6120 §8.3.3). */
#define SZ_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* Every defined condition of RFC 6120 §8.3.3, in the RFC's order. 0 is
 * "no error", so a condition can travel as a negative int return value. */
enum sz_stanza_err {
    SZ_STANZA_ERR_BAD_REQUEST = 1,          /* 8.3.3.1 */
    SZ_STANZA_ERR_CONFLICT,                 /* 8.3.3.2 */
    SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED,  /* 8.3.3.3 */
    SZ_STANZA_ERR_FORBIDDEN,                /* 8.3.3.4 */
    SZ_STANZA_ERR_GONE,                     /* 8.3.3.5 */
    SZ_STANZA_ERR_INTERNAL_SERVER_ERROR,    /* 8.3.3.6 */
    SZ_STANZA_ERR_ITEM_NOT_FOUND,           /* 8.3.3.7 */
    SZ_STANZA_ERR_JID_MALFORMED,            /* 8.3.3.8 */
    SZ_STANZA_ERR_NOT_ACCEPTABLE,           /* 8.3.3.9 */
    SZ_STANZA_ERR_NOT_ALLOWED,              /* 8.3.3.10 */
    SZ_STANZA_ERR_NOT_AUTHORIZED,           /* 8.3.3.11 */
    SZ_STANZA_ERR_POLICY_VIOLATION,         /* 8.3.3.12 */
    SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE,    /* 8.3.3.13 */
    SZ_STANZA_ERR_REDIRECT,                 /* 8.3.3.14 */
    SZ_STANZA_ERR_REGISTRATION_REQUIRED,    /* 8.3.3.15 */
    SZ_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,  /* 8.3.3.16 */
    SZ_STANZA_ERR_REMOTE_SERVER_TIMEOUT,    /* 8.3.3.17 */
    SZ_STANZA_ERR_RESOURCE_CONSTRAINT,      /* 8.3.3.18 */
    SZ_STANZA_ERR_SERVICE_UNAVAILABLE,      /* 8.3.3.19 */
    SZ_STANZA_ERR_SUBSCRIPTION_REQUIRED,    /* 8.3.3.20 */
    SZ_STANZA_ERR_UNDEFINED_CONDITION,      /* 8.3.3.21 */
    SZ_STANZA_ERR_UNEXPECTED_REQUEST,       /* 8.3.3.22 */
    SZ_STANZA_ERR_COUNT
};

/* Error types of RFC 6120 §8.3.2. */
enum sz_stanza_err_type {
    SZ_STANZA_ERRT_DEFAULT = -1, /* not a type: sz_stanza_err_default_type() */
    SZ_STANZA_ERRT_AUTH = 0,
    SZ_STANZA_ERRT_CANCEL,
    SZ_STANZA_ERRT_CONTINUE,
    SZ_STANZA_ERRT_MODIFY,
    SZ_STANZA_ERRT_WAIT,
};

/** Condition element name ("item-not-found"); "undefined-condition" for
 * out-of-range values. Static string, any thread. */
const char *sz_stanza_err_name(enum sz_stanza_err e);

/** The error type the RFC's examples pair with condition <e>. */
enum sz_stanza_err_type sz_stanza_err_default_type(enum sz_stanza_err e);

/** "auth", "cancel", "continue", "modify", "wait". */
const char *sz_stanza_err_type_name(enum sz_stanza_err_type t);

/**
 * Any thread. Appends the stanza error child of RFC 6120 §8.3.2 for
 * condition <e> to the element open in <xb>:
 *   <error type="<t>"><e xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>
 * <t> is written as given when it is one of the five types, else (e.g.
 * SZ_STANZA_ERRT_DEFAULT) as sz_stanza_err_default_type(<e>). A value of
 * <e> that is no RFC condition (0, SZ_STANZA_ERR_COUNT and above) is not
 * rejected: it is written as undefined-condition (type "modify" by
 * default), since an error must still be answered. Returns 0 or the
 * builder's sticky error (see core/xml/builder.h).
 */
int sz_stanza_err_build(sz_xb_t *xb, enum sz_stanza_err e, enum sz_stanza_err_type t);

#endif
