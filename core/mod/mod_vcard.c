/*
 * XEP-0054 vcard-temp: an account sets and reads its own vCard, and anyone
 * reads another account's, answered by the server on the account's behalf
 * whether it is online or not (XEP-0054 §3.3, RFC 6121 §8.5.2.1.3). The
 * vCard is stored as the serialized <vCard/> element (core/xml/write.h:
 * self-contained whatever prefixes the client used) in the account's XML
 * documents (storage/xmlstore.h), at most limits.max_vcard_bytes.
 *
 * Answers, by the XEP's section:
 * - §3.1 own vCard, none stored: a result with an empty <vCard/>;
 * - §3.2 a set on another entity's vCard: <forbidden/>; an empty <vCard/>
 *   removes the stored one;
 * - §3.3 another account without a vCard: <service-unavailable/>, the
 *   condition the router gives for an account that does not exist
 *   (RFC 6121 §8.5.1), so the answer does not tell the two apart (the
 *   XEP asks for the same condition in both cases);
 * - the server's own vCard (§3.3 note): none is configured, so a get to
 *   the domain is <item-not-found/> and a set <forbidden/>.
 *
 * Threads: the reactor that runs the handler (the account's home reactor
 * for SZ_IQ_ACCOUNT); storage answers there.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/account_iq.h"
#include "core/mod/modules.h"
#include "core/xml/write.h"
#include "storage/xmlstore.h"

#define NS_VCARD "vcard-temp"

/* limits.max_vcard_bytes without a configuration (tests). */
#define VCARD_MAX_BYTES_DEFAULT 65536

#define F_OWN 0x1u /* the requester is the account itself */

static sz_store_t *store;
static const sz_conf_t *conf;

static uint32_t max_bytes(void)
{
    /* Reloadable: read at each use. */
    return conf ? SZ_CONF_LIMIT(conf, max_vcard_bytes) : VCARD_MAX_BYTES_DEFAULT;
}

static void on_read(void *arg, int res, const char *xml, size_t len)
{
    sz_mod_held_t *h = arg;
    static const char empty[] = "<vCard xmlns='" NS_VCARD "'/>";
    if (res == 0)
        sz_mod_held_answer(h, xml, len, 0);
    else if (res == -ENOENT && (h->flags & F_OWN))
        sz_mod_held_answer(h, empty, sizeof(empty) - 1, 0); /* §3.1 */
    else if (res == -ENOENT)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_SERVICE_UNAVAILABLE); /* §3.3 */
    else
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

static void on_written(void *arg, int res)
{
    sz_mod_held_t *h = arg;
    if (res == -ENOSPC)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_NOT_ACCEPTABLE); /* see on_vcard() */
    else if (res < 0)
        sz_mod_held_answer(h, NULL, 0, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
    else
        sz_mod_held_answer(h, NULL, 0, 0); /* §3.2: an empty result */
}

/* The vCard of a set, serialized (caller frees), into *<xml> and *<len>;
 * *<len> 0 (and *<xml> NULL) for an empty <vCard/>, which removes. */
static int serialize(const sz_xml_node_t *vcard, char **xml, size_t *len)
{
    *xml = NULL;
    *len = 0;
    if (!vcard->children && vcard->nattrs == 0)
        return 0;
    sz_xb_t xb;
    sz_xb_init(&xb, 1024);
    sz_xml_write(&xb, vcard, NULL);
    return sz_xb_finish(&xb, xml, len);
}

static int on_vcard(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    bool own = sz_mod_from_owner(ctx);
    if (set && !own)
        return -SZ_STANZA_ERR_FORBIDDEN; /* §3.2 (RFC 6120 §8.3.3.4) */
    if (!store)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    if (!set) {
        sz_mod_held_t *h = sz_mod_hold(ctx, own ? F_OWN : 0);
        if (sz_store_xml_get(store, ctx->to, SZ_STORE_XML_VCARD, "", on_read, h) < 0) {
            sz_mod_unhold(h);
            return -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
        }
        return SZ_HANDLED;
    }
    char *xml;
    size_t len;
    if (serialize(payload, &xml, &len) < 0)
        return -SZ_STANZA_ERR_BAD_REQUEST;
    /* The size limit is a criterion of this server that the request does
     * not meet: not-acceptable (RFC 6120 §8.3.3.9), as RFC 6121 §2.3.3
     * answers a roster item past the server's limits. The stored vCard
     * stays as it was. */
    uint32_t max = max_bytes();
    if (len > max) {
        SZ_DEBUG("msg=\"vcard refused\" bytes=%zu limit=%u", len, max);
        sz_free(xml);
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    }
    sz_mod_held_t *h = sz_mod_hold(ctx, F_OWN);
    sz_store_xml_doc_t doc = {.name = "", .xml = xml, .len = len};
    int ret = sz_store_xml_put(store, ctx->to, SZ_STORE_XML_VCARD, &doc, 1, max, on_written, h);
    sz_free(xml);
    if (ret < 0) {
        sz_mod_unhold(h);
        return -SZ_STANZA_ERR_INTERNAL_SERVER_ERROR;
    }
    return SZ_HANDLED;
}

/* The server's own vCard (XEP-0054 §3.3 note): none is configured. */
static int on_server_vcard(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    (void)ctx;
    (void)payload;
    return set ? -SZ_STANZA_ERR_FORBIDDEN : -SZ_STANZA_ERR_ITEM_NOT_FOUND;
}

void sz_mod_vcard_register(const sz_mod_env_t *env)
{
    store = env->store;
    conf = env->conf;
    sz_hooks_iq("vCard", NS_VCARD, SZ_IQ_ACCOUNT, on_vcard);
    sz_hooks_iq("vCard", NS_VCARD, SZ_IQ_SERVER, on_server_vcard);
    /* XEP-0054 §4: support is advertised on the server and the account. */
    sz_hooks_disco_feature(NS_VCARD, SZ_IQ_SERVER | SZ_IQ_ACCOUNT, NULL);
}
