/*
 * XEP-0030 Service Discovery: disco#info of the server (identity
 * server/im) and of each account (account/registered, answered by the
 * server on the account's behalf, XEP-0030 §3.1 and RFC 6121 §8.5), with
 * the features every module registered for that scope; disco#items is
 * empty (no components yet). Nodes are not supported: item-not-found.
 * Stateless.
 */
#include "core/hooks.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/xml/builder.h"

#define NS_INFO     "http://jabber.org/protocol/disco#info"
#define NS_ITEMS    "http://jabber.org/protocol/disco#items"

/* The scope an iq was addressed in: the account when it names a user. */
static unsigned scope_of(const sz_hook_ctx_t *ctx)
{
    return ctx->to && sz_jid_has_local(ctx->to) ? SZ_IQ_ACCOUNT : SZ_IQ_SERVER;
}

static int on_info(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    if (sz_xml_attr(payload, "node", NULL, NULL))
        return -SZ_STANZA_ERR_ITEM_NOT_FOUND;
    unsigned scope = scope_of(ctx);
    sz_xb_t xb;
    sz_xb_init(&xb, 1024);
    sz_xb_start(&xb, "query", NS_INFO);
    sz_xb_start(&xb, "identity", NULL);
    if (scope == SZ_IQ_ACCOUNT) {
        sz_xb_attr(&xb, "category", "account");
        sz_xb_attr(&xb, "type", "registered");
    } else {
        sz_xb_attr(&xb, "category", "server");
        sz_xb_attr(&xb, "type", "im");
        sz_xb_attr(&xb, "name", SZ_PRODUCT_NAME);
    }
    sz_xb_end(&xb);
    sz_hooks_disco_features(&xb, scope, ctx->host);
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0)
        return -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
    sz_router_iq_result(ctx->r, ctx->st, xml, len);
    sz_free(xml);
    return SZ_HANDLED;
}

static int on_items(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    static const char items[] = "<query xmlns='" NS_ITEMS "'/>";
    if (set)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    if (sz_xml_attr(payload, "node", NULL, NULL))
        return -SZ_STANZA_ERR_ITEM_NOT_FOUND;
    sz_router_iq_result(ctx->r, ctx->st, items, sizeof(items) - 1);
    return SZ_HANDLED;
}

void sz_mod_disco_register(const sz_mod_env_t *env)
{
    (void)env;
    sz_hooks_iq("query", NS_INFO, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, on_info);
    sz_hooks_iq("query", NS_ITEMS, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, on_items);
    sz_hooks_disco_feature(NS_INFO, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, NULL);
    sz_hooks_disco_feature(NS_ITEMS, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, NULL);
}
