/*
 * Preparation of a JID's domainpart (RFC 7622 §3.2): IP literals, NR-LDH
 * labels and IDNA2008 U-labels and A-labels. Private to core/jid.c; other
 * code prepares a domain through sz_jid_prep(SZ_JID_PART_DOMAIN, ...)
 * (core/jid.h).
 */
#ifndef SZ_CORE_JID_DOMAIN_H
#define SZ_CORE_JID_DOMAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/jid.h"

/**
 * Any thread. Prepare the raw domainpart <s>/<len> (only read; one
 * trailing '.' is dropped; may be up to SZ_JID_INPUT_PART_MAX_BYTES
 * before that) and write its canonical form to the caller's <out> (<cap>
 * bytes, no NUL): lowercase, U-labels for A-labels, IPv6 hex digits
 * lowercased. ASCII names never allocate; the Unicode path frees what it
 * took before it returns.
 * Returns 0 with the length in *<outlen>, -EINVAL (*<why> says why) or
 * -ENOBUFS (*<why> is SZ_JID_ERR_NOBUFS). <why> must not be NULL.
 */
int sz_jid_domain_prep(const uint8_t *s, size_t len, char *out, size_t cap, size_t *outlen,
                       enum sz_jid_err *why);

#endif
