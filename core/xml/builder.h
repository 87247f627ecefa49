/*
 * XML builder for the stanzas the server writes itself (stream and stanza
 * errors, roster pushes, presence, iq results): a growable buffer plus the
 * stack of open elements, so that escaping and closing are never done by
 * hand. Output is XML 1.0 as RFC 6120 §11 restricts it: no declaration, no
 * comments, no PIs; attribute values in double quotes.
 *
 * Threads: a builder belongs to the thread using it; no locks.
 *
 * Errors are sticky: a call that fails (bad name, a character XML 1.0 does
 * not allow, an attribute after content...) returns -EINVAL, records it and
 * turns every later call into a no-op returning the same error, so a
 * sequence of calls can be checked once, at sz_xb_finish().
 *
 *   sz_xb_t xb;
 *   sz_xb_init(&xb, 256);
 *   sz_xb_start(&xb, "iq", NULL);
 *   sz_xb_attr(&xb, "type", "result");
 *   sz_xb_attr_n(&xb, "to", jid, jid_len);
 *   sz_xb_start(&xb, "query", "jabber:iq:roster");
 *   sz_xb_end(&xb);                    (writes <query xmlns="jabber:iq:roster"/>)
 *   sz_xb_end(&xb);
 *   if (sz_xb_finish(&xb, &bytes, &len) < 0) ...
 */
#ifndef SZ_CORE_XML_BUILDER_H
#define SZ_CORE_XML_BUILDER_H

#include <stddef.h>
#include <stdint.h>

/* One open element: its name, as written in the output buffer. */
struct sz_xb_open {
    uint32_t off; /* offset of the name in _buf */
    uint32_t len;
};

/* Lives wherever the caller likes (usually the stack); fields are private. */
typedef struct sz_xb {
    char *_buf; /* output, heap, grows by doubling */
    size_t _len, _cap;
    struct sz_xb_open *_open; /* stack of open elements */
    uint32_t _depth, _open_cap;
    size_t _tag; /* offset of the start tag still taking attributes,
                    or SIZE_MAX once its '>' is written */
    int _err;    /* first error, or 0 */
} sz_xb_t;

/** Any thread. Prepare <xb>, reserving <hint> bytes (0 for a default). */
void sz_xb_init(sz_xb_t *xb, size_t hint);

/** Any thread. Release <xb>'s memory without producing output; <xb> may
 *  then be initialized again. Safe after sz_xb_finish(). */
void sz_xb_free(sz_xb_t *xb);

/**
 * Open element <name> (NUL-terminated; letters, digits, '_', '-', '.', ':'
 * or non-ASCII, not starting with a digit, '-' or '.'). With <xmlns> not
 * NULL, also writes xmlns="<xmlns>". Both strings are copied. Closes the
 * parent's start tag if it was still open.
 * Returns 0 or -EINVAL (bad name or namespace, or an earlier error).
 */
int sz_xb_start(sz_xb_t *xb, const char *name, const char *xmlns);

/**
 * Add attribute <name>=<value> to the element just opened: only valid
 * before any child, text or raw bytes. <value> is escaped (& < > " ' and
 * tab/CR/LF as character references, so they survive attribute-value
 * normalization); it must be UTF-8 made of XML 1.0 Chars (§2.2), else
 * -EINVAL. A name given twice on one element is -EINVAL too.
 */
int sz_xb_attr(sz_xb_t *xb, const char *name, const char *value);
/** Same with a value of <len> bytes (not NUL-terminated, e.g. a JID slice). */
int sz_xb_attr_n(sz_xb_t *xb, const char *name, const char *value, size_t len);

/**
 * Character data: <len> bytes of UTF-8 at <s>, escaped (& < > and CR).
 * Characters outside XML 1.0 Char (controls, U+FFFE, U+FFFF, malformed
 * UTF-8) make it -EINVAL, since XML has no way to carry them.
 */
int sz_xb_text(sz_xb_t *xb, const char *s, size_t len);

/**
 * Append <len> bytes of trusted, already serialized XML (e.g. a stanza
 * received and parsed earlier) unchanged, as content of the current element
 * (or at top level). The caller vouches for it being well-formed.
 */
int sz_xb_raw(sz_xb_t *xb, const char *s, size_t len);

/** Close the innermost open element: "<a/>" if it has no content, else
 *  "</a>". -EINVAL when no element is open. */
int sz_xb_end(sz_xb_t *xb);

/** Convenience: an empty element <name xmlns="<xmlns>"/> (xmlns may be NULL). */
int sz_xb_empty(sz_xb_t *xb, const char *name, const char *xmlns);

/** Convenience: <name xmlns="<xmlns>">text</name> (xmlns may be NULL). */
int sz_xb_leaf(sz_xb_t *xb, const char *name, const char *xmlns, const char *text, size_t len);

/** Bytes written so far (a still-open start tag counts without its '>'). */
size_t sz_xb_len(const sz_xb_t *xb);
/** Number of open elements. */
unsigned sz_xb_depth(const sz_xb_t *xb);

/**
 * Take the output. Every element must be closed. On success *<out> is a
 * NUL-terminated heap buffer of *<len> bytes (NUL not counted) that the
 * caller owns (sz_free()). On failure *<out> is NULL. Either way <xb> is
 * reset to empty and owns nothing (sz_xb_free() is optional).
 * Returns 0, the first recorded error, or -EINVAL if elements are open.
 */
int sz_xb_finish(sz_xb_t *xb, char **out, size_t *len);

/**
 * Like sz_xb_finish() but open elements are allowed and stay unclosed, a
 * pending start tag ending with '>' (e.g. a <stream:stream> header, closed
 * much later by writing "</stream:stream>" raw).
 */
int sz_xb_finish_open(sz_xb_t *xb, char **out, size_t *len);

#endif
