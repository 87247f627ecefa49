/*
 * Element tree of one top-level element, built on demand from its raw
 * bytes (already checked by the parser) for the stanzas the server handles
 * itself: iq to the server, presence, roster... Routed stanzas never get
 * one. A tree is one arena: all nodes and strings, freed at once.
 *
 * Strings in nodes are decoded (references, line ends, attribute-value
 * normalisation) and NUL-terminated. A tree is immutable once built, so
 * any thread may read it while it is alive.
 */
#ifndef SZ_CORE_XML_TREE_H
#define SZ_CORE_XML_TREE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/xml/parser.h"

typedef struct sz_xml_attr {
    const char *name; /* local name */
    const char *ns;   /* namespace name, NULL: none (unprefixed attribute) */
    const char *value;
    uint32_t name_len, ns_len, value_len;
} sz_xml_attr_t;

enum sz_xml_node_kind { SZ_XML_ELEM = 0, SZ_XML_TEXT };

typedef struct sz_xml_node sz_xml_node_t;
struct sz_xml_node {
    const sz_xml_node_t *parent;
    const sz_xml_node_t *next;     /* next sibling, element or text */
    const sz_xml_node_t *children; /* first child (elements only) */
    const char *name;              /* local name (elements) */
    const char *ns;                /* namespace name, NULL: none (elements) */
    const sz_xml_attr_t *attrs;
    /* TEXT: the text (adjacent character data and CDATA merged);
     * ELEM: all direct text children concatenated ("" when none). */
    const char *text;
    uint32_t name_len, ns_len, nattrs, text_len;
    uint8_t kind; /* enum sz_xml_node_kind */
};

typedef struct sz_xml_tree sz_xml_tree_t;

/**
 * Any thread. Builds the tree of the element in <raw> (<len> bytes, one
 * complete element as reported by the parser; not kept), resolving
 * prefixes against the stream-level bindings <scope> (NULL: none).
 * Returns the tree (caller owns it; sz_xml_tree_free), or NULL when <raw>
 * is not one well-formed element.
 */
sz_xml_tree_t *sz_xml_tree_parse(const char *raw, size_t len, const sz_xml_scope_t *scope);

/** Any thread. Frees <t> and all its nodes. NULL is fine. */
void sz_xml_tree_free(sz_xml_tree_t *t);

/** The root element of <t>. */
const sz_xml_node_t *sz_xml_tree_root(const sz_xml_tree_t *t);

/** Heap bytes held by <t>. */
size_t sz_xml_tree_bytes(const sz_xml_tree_t *t);

/**
 * First child element of <n> with local name <name> and namespace <ns>.
 * NULL <name> or NULL <ns> match any; "" as <ns> matches no namespace.
 * Returns NULL when none. sz_xml_next() continues after <prev>.
 */
const sz_xml_node_t *sz_xml_child(const sz_xml_node_t *n, const char *name, const char *ns);
const sz_xml_node_t *sz_xml_next(const sz_xml_node_t *prev, const char *name, const char *ns);

/**
 * Value of <n>'s attribute with local name <name> in namespace <ns> (NULL:
 * an unprefixed attribute, the usual case), decoded; NULL when absent.
 * *<len> gets its length when <len> is not NULL.
 */
const char *sz_xml_attr(const sz_xml_node_t *n, const char *name, const char *ns, size_t *len);

/**
 * Unprefixed attribute <name> of <n> as an unsigned 32-bit number written
 * in decimal digits only (XML Schema unsignedInt without sign or spaces, as
 * XEP-0198 'h'). Returns false when it is absent, empty, not digits, or
 * 2^32 or more.
 */
bool sz_xml_attr_u32(const sz_xml_node_t *n, const char *name, uint32_t *out);

/** Concatenated direct text of element <n> ("" when none). */
const char *sz_xml_text(const sz_xml_node_t *n, size_t *len);

#endif
