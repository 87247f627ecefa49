/*
 * XEP-0199 XMPP Ping, answered by the server for itself and on behalf of
 * its accounts (RFC 6121 §8.5.2.1.3: the server answers iqs to a bare JID).
 * Stateless; runs on whichever reactor routes the iq.
 */
#include "core/hooks.h"
#include "core/mod/modules.h"

#define NS_PING "urn:xmpp:ping"

static int on_ping(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST; /* XEP-0199 §4: a ping is a get */
    sz_router_iq_result(ctx->r, ctx->st, NULL, 0);
    return SZ_HANDLED;
}

void sz_mod_ping_register(const sz_mod_env_t *env)
{
    (void)env;
    sz_hooks_iq("ping", NS_PING, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, on_ping);
    sz_hooks_disco_feature(NS_PING, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, NULL);
}
