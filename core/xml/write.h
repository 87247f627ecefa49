/*
 * Serialization of a parsed element (core/xml/tree.h) back to XML that
 * stands on its own: the namespaces it uses are declared on it, whatever
 * prefixes and declarations the original bytes used on its ancestors, so
 * the output can be stored and later sent inside any other element (a
 * vCard or a private XML fragment kept across sessions). Text and
 * attribute values are re-escaped by the builder. Any thread.
 */
#ifndef SZ_CORE_XML_WRITE_H
#define SZ_CORE_XML_WRITE_H

#include "core/xml/builder.h"
#include "core/xml/tree.h"

/**
 * Appends element <n> and its subtree to <xb>, as content of whatever
 * <xb> has open. <scope_ns> is the default namespace in force where it is
 * written (NULL or "": none); the element declares its own when it
 * differs. Namespaced attributes keep their namespace (xml: as such,
 * others under generated prefixes declared on their element). Returns 0,
 * or the builder's sticky error.
 */
int sz_xml_write(sz_xb_t *xb, const sz_xml_node_t *n, const char *scope_ns);

#endif
