/*
 * Account provisioning through XEP-0077 in-band registration, for servers
 * without stanzactl (or any server that allows it). One plaintext stream
 * per account, one at a time, from the --src addresses in turn (servers
 * rate-limit registrations per source address).
 */
#ifndef SB_REGISTER_H
#define SB_REGISTER_H

#include "bench/stanza_bench/sb.h"

/**
 * Main thread. Registers users first..first+users-1 of <cf> (patterns,
 * domain, server, src range). Prints one summary line on stderr and, for
 * failures, the count per error condition. Returns 0 when every account
 * was created or already existed (conflict), else 1.
 */
int sb_register_accounts(const sb_conf_t *cf);

#endif
