/*
 * XEP-0092 Software Version of the server itself. Stateless.
 */
#include "core/hooks.h"
#include "core/mod/modules.h"

#define NS_VERSION "jabber:iq:version"

static int on_version(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    static const char ver[] = "<query xmlns='" NS_VERSION "'><name>" SZ_PRODUCT_NAME
                              "</name><version>" SZ_PRODUCT_VERSION "</version></query>";
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    sz_router_iq_result(ctx->r, ctx->st, ver, sizeof(ver) - 1);
    return SZ_HANDLED;
}

void sz_mod_version_register(const sz_mod_env_t *env)
{
    (void)env;
    sz_hooks_iq("query", NS_VERSION, SZ_IQ_SERVER, on_version);
    sz_hooks_disco_feature(NS_VERSION, SZ_IQ_SERVER, NULL);
}
