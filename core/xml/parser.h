/*
 * Incremental parser for one XMPP stream (RFC 6120 §4, restricted XML of
 * §11). Bytes are fed in chunks split anywhere; the parser reports the
 * stream header, each complete top-level element (stanza or nonza) and the
 * stream end through callbacks. It never builds a tree: a top-level element
 * is reported as its raw byte span plus a small parsed header (name,
 * namespace, to/from/id/type/xml:lang as offsets into the span).
 *
 * Memory: the parser struct is 64 bytes and owns no heap memory between
 * top-level elements. Only an element that is still incomplete when a
 * chunk ends is copied (once) into a growable buffer, freed when the
 * element completes. An element that lies wholly in one chunk is reported
 * in place, as a pointer into the caller's chunk (zero copy).
 *
 * Threads: a parser belongs to the core of its connection; all calls on one
 * parser come from that core. Parsers on one thread share a thread-local
 * scratch area (element stack, namespace bindings), bounded by the limits.
 */
#ifndef SZ_CORE_XML_PARSER_H
#define SZ_CORE_XML_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/xml/errors.h"

/* Namespaces the parser recognises by value; others are SZ_XML_NS_OTHER. */
enum sz_xml_ns {
    SZ_XML_NS_NONE = 0,  /* no namespace */
    SZ_XML_NS_OTHER,     /* a namespace not in this list */
    SZ_XML_NS_CLIENT,    /* jabber:client */
    SZ_XML_NS_SERVER,    /* jabber:server */
    SZ_XML_NS_COMPONENT, /* jabber:component:accept (XEP-0114) */
    SZ_XML_NS_STREAMS,   /* http://etherx.jabber.org/streams */
    SZ_XML_NS_DIALBACK,  /* jabber:server:dialback (XEP-0220) */
    SZ_XML_NS_TLS,       /* urn:ietf:params:xml:ns:xmpp-tls */
    SZ_XML_NS_SASL,      /* urn:ietf:params:xml:ns:xmpp-sasl */
    SZ_XML_NS_SM,        /* urn:xmpp:sm:3 (XEP-0198) */
    SZ_XML_NS_CSI,       /* urn:xmpp:csi:0 (XEP-0352) */
    SZ_XML_NS_XML,       /* http://www.w3.org/XML/1998/namespace */
    SZ_XML_NS_COUNT
};

/* Content namespaces a stream header may declare as its default namespace
 * (bit (1 << SZ_XML_NS_*)); see sz_xml_parser_set_content_ns(). */
#define SZ_XML_CONTENT_ALL                                                                   \
    ((1u << SZ_XML_NS_CLIENT) | (1u << SZ_XML_NS_SERVER) | (1u << SZ_XML_NS_COMPONENT))

/* Limits, applied to every top-level element (and to the stream header).
 * Defaults (SZ_XML_LIMITS_DEFAULT) match the config defaults of conf.h. */
typedef struct sz_xml_limits {
    uint32_t max_stanza_bytes; /* bytes of one top-level element, 1..16 MiB */
    uint16_t max_depth;        /* nesting, the top-level element is depth 1 */
    uint16_t max_attrs;        /* attributes of one tag, xmlns ones included; also
                                * namespace declarations in scope at once */
} sz_xml_limits_t;

#define SZ_XML_LIMITS_DEFAULT ((sz_xml_limits_t){262144, 64, 64})
#define SZ_XML_MAX_STANZA_BYTES (16u << 20)

/* A value inside a span: byte offset and length. off == 0 means absent (no
 * attribute value can start at offset 0, which holds the '<'). */
typedef struct sz_xml_str {
    uint32_t off, len;
} sz_xml_str_t;

/* Indexes of the attributes the header records (unprefixed names, and
 * xml:lang). Bit (1 << i) of sz_xml_head_t.esc is set when the raw value
 * holds a reference or a literal tab/CR/LF, so that it differs from its
 * value: decode it with sz_xml_unescape(). */
enum sz_xml_attr_idx {
    SZ_XML_A_TO = 0,
    SZ_XML_A_FROM,
    SZ_XML_A_ID,
    SZ_XML_A_TYPE,
    SZ_XML_A_LANG,    /* xml:lang */
    SZ_XML_A_VERSION, /* stream headers */
    SZ_XML_A_COUNT
};

/*
 * Namespace bindings in force at stream level, i.e. declared on the stream
 * header, which every top-level element inherits: the default (content)
 * namespace as an id, and at most two prefixes: the streams prefix (any
 * name, usually "stream") and a dialback prefix (s2s, usually "db"), stored
 * back to back in pfx[]. The stream layer needs no other header binding,
 * and keeping only these is what lets the parser stay at 64 bytes: a header
 * that binds another prefix (other than xml), or prefixes longer than 22
 * bytes in total, is refused with policy-violation.
 */
typedef struct sz_xml_scope {
    uint8_t dflt;    /* enum sz_xml_ns: SZ_XML_NS_NONE when no default ns */
    uint8_t plen[2]; /* [0] streams prefix, [1] dialback prefix (0 = none) */
    char pfx[22];    /* pfx[0..plen[0]) then pfx[plen[0]..plen[0]+plen[1]) */
} sz_xml_scope_t;

/* Parsed start tag of a top-level element or of the stream header.
 * Offsets are into the span passed with it. */
typedef struct sz_xml_head {
    sz_xml_str_t name;      /* local name */
    sz_xml_str_t prefix;    /* prefix (len 0: none) */
    const char *ns;         /* namespace name; valid during the callback; NULL: none */
    uint32_t ns_len;
    uint8_t ns_id;          /* enum sz_xml_ns of ns */
    uint8_t esc;            /* bit per enum sz_xml_attr_idx, see above */
    uint16_t nattrs;        /* attributes of the start tag, xmlns ones included */
    bool empty;             /* written as <name .../> */
    sz_xml_str_t attr[SZ_XML_A_COUNT]; /* raw values (between the quotes) */
    const sz_xml_scope_t *scope; /* stream-level bindings (in the parser) */
} sz_xml_head_t;

/*
 * Callbacks, called from inside sz_xml_parser_feed() on the feeding core.
 * Returning non-zero stops the feed right after the reported item (feed
 * returns the bytes consumed so far): use it when the rest of the chunk is
 * not XML for this parser (STARTTLS). A callback may call
 * sz_xml_parser_reset() (stream restart: parsing goes on with the remaining
 * bytes as a new stream) and sz_xml_parser_set_limits(); it must not feed
 * or free the same parser. <span> (and head->ns) are valid only during the
 * call: copy what must outlive it (sz_stanza_new).
 */
typedef struct sz_xml_ops {
    /** The stream header's start tag. NULL: ignored. */
    int (*on_header)(void *ud, const char *span, size_t len, const sz_xml_head_t *h);
    /** A complete top-level element. */
    int (*on_element)(void *ud, const char *span, size_t len, const sz_xml_head_t *h);
    /** </stream:stream> (or an empty stream header). NULL: ignored. */
    int (*on_end)(void *ud);
} sz_xml_ops_t;

/*
 * One stream's state; 64 bytes (static_assert in parser.c). Fields are
 * private. Between top-level elements _pend is NULL and nothing else
 * points to the heap.
 */
typedef struct sz_xml_parser {
    const sz_xml_ops_t *_ops;
    void *_ud;
    struct sz_xml_pend *_pend; /* element in progress across chunks, else NULL */
    sz_xml_limits_t _lim;
    uint32_t _ws;              /* whitespace bytes seen at stream level (saturates) */
    uint8_t _state;            /* stream position, see parser.c */
    uint8_t _err;              /* enum sz_stream_err once failed (sticky) */
    uint8_t _content;          /* allowed content namespaces (bit per id) */
    sz_xml_scope_t _scope;     /* stream-level bindings */
} sz_xml_parser_t;

/**
 * Owner core. Initialises <p> (caller owns the memory) for a new stream.
 * <ops> must outlive the parser; <ud> is passed to the callbacks. <lim>
 * is copied; NULL gives SZ_XML_LIMITS_DEFAULT. Allocates nothing.
 */
void sz_xml_parser_init(sz_xml_parser_t *p, const sz_xml_limits_t *lim, const sz_xml_ops_t *ops,
                        void *ud);

/**
 * Owner core. Feeds <len> bytes of <data> (caller keeps ownership; the
 * parser copies what it needs past the call). Calls back for each item
 * completed by these bytes, before returning.
 * Returns the bytes consumed (== <len> unless a callback returned non-zero),
 * or -condition (enum sz_stream_err) once the stream is rejected; the error
 * is sticky until sz_xml_parser_reset().
 */
ssize_t sz_xml_parser_feed(sz_xml_parser_t *p, const char *data, size_t len);

/**
 * Owner core. Stream restart (after STARTTLS or SASL success, RFC 6120
 * §5.4.3.3, §6.4.6): forgets the header's bindings, any element in
 * progress and any error; keeps limits, callbacks and the content
 * namespace mask. An XML declaration is accepted again. Safe inside a
 * callback.
 */
void sz_xml_parser_reset(sz_xml_parser_t *p);

/** Owner core. Frees what the parser holds (an element in progress). */
void sz_xml_parser_free(sz_xml_parser_t *p);

/**
 * Owner core. New limits (copied), applied to bytes fed from now on; meant
 * to be called between elements (e.g. tighter before authentication).
 */
void sz_xml_parser_set_limits(sz_xml_parser_t *p, const sz_xml_limits_t *lim);

/**
 * Owner core. Content namespaces accepted as the header's default
 * namespace: a mask of (1 << SZ_XML_NS_CLIENT|SERVER|COMPONENT); a c2s
 * listener passes only jabber:client. Default SZ_XML_CONTENT_ALL. Another
 * default namespace gives invalid-namespace.
 */
void sz_xml_parser_set_content_ns(sz_xml_parser_t *p, unsigned mask);

/** The sticky error, SZ_STREAM_OK while the stream is fine. */
enum sz_stream_err sz_xml_parser_error(const sz_xml_parser_t *p);

/** Whitespace bytes seen between top-level elements (keepalives). */
uint32_t sz_xml_parser_ws_bytes(const sz_xml_parser_t *p);

/** True while a top-level item is incomplete (the parser holds heap memory). */
bool sz_xml_parser_busy(const sz_xml_parser_t *p);

/** Heap bytes the parser itself holds now (buffer and saved stack). */
size_t sz_xml_parser_heap_bytes(const sz_xml_parser_t *p);

/**
 * Calling thread. Heap bytes of this thread's scratch area, and a function
 * to free it (at thread exit; no parser of the thread may be mid-feed).
 */
size_t sz_xml_scratch_bytes(void);
void sz_xml_scratch_free(void);

/** Any thread. The URI of a known namespace (static), NULL for NONE/OTHER. */
const char *sz_xml_ns_uri(enum sz_xml_ns id, size_t *len);

/** Any thread. The id of namespace name <uri> (<len> bytes). */
enum sz_xml_ns sz_xml_ns_lookup(const char *uri, size_t len);

/**
 * Any thread. Decodes <len> bytes of well-formed raw character data or
 * attribute value <src> (as checked by the parser): the five predefined
 * entities, character references, CRLF/CR to LF, and with <attr> the
 * attribute-value normalisation (literal tab, LF to space). Writes at most
 * <cap> bytes to <dst> plus a NUL when room is left. The result is never
 * longer than <len>.
 * Returns the decoded length, or -ENOSPC when <cap> is too small, or
 * -EINVAL on a malformed reference.
 */
ssize_t sz_xml_unescape(const char *src, size_t len, char *dst, size_t cap, bool attr);

#endif
