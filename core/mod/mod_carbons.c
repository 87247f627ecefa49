/*
 * XEP-0280 Message Carbons (urn:xmpp:carbons:2). A session that enabled
 * carbons (§4) gets a <sent/> copy of each eligible message (§6) another
 * resource of its user sends (§8, at SZ_HOOK_FROM_CLIENT), and a
 * <received/> copy of each eligible message delivered to other resources
 * of its user (§7, at SZ_HOOK_DELIVERED, after the router applied RFC 6121
 * §8.5, so the resources that got the original get no copy). A copy comes
 * from the user's bare JID to the resource's full JID, keeps the original's
 * type and wraps the original, bytes as received, in a XEP-0297
 * <forwarded/>.
 *
 * Per session: one bit (carbons enabled), in a session slot; no memory.
 * Threads: the user's home reactor, where all its sessions live.
 */
#include <string.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/xml/builder.h"

#define NS_CARBONS    "urn:xmpp:carbons:2"
#define NS_FORWARD    "urn:xmpp:forward:0"
#define NS_HINTS      "urn:xmpp:hints"                        /* XEP-0334 */
#define NS_MUC_USER   "http://jabber.org/protocol/muc#user"   /* XEP-0045 */
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates" /* XEP-0085 */
#define NS_RECEIPTS   "urn:xmpp:receipts"                     /* XEP-0184 */

static unsigned sslot;

static bool enabled(const sz_session_t *s)
{
    return s->slot[sslot] != NULL;
}

/* ---- enabling and disabling (§4, §5) -------------------------------------- */

static int toggle(sz_hook_ctx_t *ctx, bool set, bool on)
{
    if (!set)
        return -SZ_STANZA_ERR_BAD_REQUEST; /* §4, §5: an iq of type set */
    /* Only a resource of the account itself: §4.1 and §5.1 answer
     * not-allowed to anyone else. An iq that named the user's bare JID
     * explicitly arrives without ctx->from; its stamped 'from' names the
     * session then. */
    sz_session_t *s = ctx->from;
    if (!s && ctx->user)
        s = sz_roster_session_of(ctx->user, ctx->st);
    if (!s || !s->user || !ctx->to || !sz_jid_bare_eq(s->jid, ctx->to))
        return -SZ_STANZA_ERR_NOT_ALLOWED;
    /* §10.1: enabling twice, or disabling twice, is no error. */
    s->slot[sslot] = on ? (void *)1 : NULL;
    sz_router_iq_result(ctx->r, ctx->st, NULL, 0);
    return SZ_HANDLED;
}

static int on_enable(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    (void)payload;
    return toggle(ctx, set, true);
}

static int on_disable(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    (void)payload;
    return toggle(ctx, set, false);
}

/* ---- eligibility (§6, §9; XEP-0334 §4) ------------------------------------ */

static bool is(const sz_xml_node_t *c, const char *name, const char *ns)
{
    return c->kind == SZ_XML_ELEM && c->ns && strcmp(c->ns, ns) == 0 &&
           (!name || strcmp(c->name, name) == 0);
}

/*
 * Whether message <st> of type <type> (decoded, NULL when absent) is copied.
 * §6 leaves the rules to the server and suggests these, which are kept:
 * type chat; type normal with a <body/> (here also a XEP-0085 chat state
 * or a XEP-0184 receipt, which belong to the same conversation); nothing
 * from a MUC, private messages included (recognised by XEP-0045's
 * <x xmlns='…muc#user'/>); no groupchat or headline. Errors in reply to
 * an eligible message are not copied: that needs the correlation §6 calls
 * "unlikely to be generally appropriate". Never a message that carries
 * <private/> (§9) or the XEP-0334 <no-copy/> hint (§4 of that XEP names
 * carbons), nor one that is itself a carbon.
 */
static bool eligible(sz_stanza_t *st, const char *type)
{
    bool chat = type && strcmp(type, "chat") == 0;
    if (!chat && type && strcmp(type, "normal") != 0)
        return false; /* error, groupchat, headline, anything unknown */
    /* A chat message none of whose bytes name a namespace that could
     * exclude it is eligible without building its tree (routed messages
     * have none). A namespace written with character references is caught
     * by the "&#" test and takes the tree. */
    size_t rl;
    const char *raw = sz_stanza_raw(st, &rl);
    if (chat && !memmem(raw, rl, NS_CARBONS, sizeof(NS_CARBONS) - 1) &&
        !memmem(raw, rl, NS_HINTS, sizeof(NS_HINTS) - 1) &&
        !memmem(raw, rl, NS_MUC_USER, sizeof(NS_MUC_USER) - 1) && !memmem(raw, rl, "&#", 2))
        return true;
    const sz_xml_node_t *root = sz_stanza_tree(st);
    if (!root)
        return false;
    bool content = chat;
    for (const sz_xml_node_t *c = root->children; c; c = c->next) {
        if (c->kind != SZ_XML_ELEM)
            continue;
        if (is(c, "private", NS_CARBONS) || is(c, "sent", NS_CARBONS) ||
            is(c, "received", NS_CARBONS) || is(c, "no-copy", NS_HINTS) ||
            is(c, "x", NS_MUC_USER))
            return false;
        if (is(c, "body", "jabber:client") || is(c, NULL, NS_CHATSTATES) ||
            is(c, "received", NS_RECEIPTS))
            content = true;
    }
    return content;
}

/* ---- the copies ----------------------------------------------------------- */

/* The end of the element name of the start tag in <raw> (one element as
 * the parser accepted it), and whether that tag declares a default
 * namespace. The tag is well-formed, so attribute values are quoted and
 * hold no '<'. */
static size_t scan_start_tag(const char *raw, size_t len, bool *has_default_ns)
{
    size_t i = 1;
    while (i < len && raw[i] != ' ' && raw[i] != '\t' && raw[i] != '\r' && raw[i] != '\n' &&
           raw[i] != '/' && raw[i] != '>')
        i++;
    size_t name_end = i;
    *has_default_ns = false;
    while (i < len && raw[i] != '>' && raw[i] != '/') {
        while (i < len && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n'))
            i++;
        size_t a = i;
        while (i < len && raw[i] != '=' && raw[i] != ' ' && raw[i] != '\t' && raw[i] != '\r' &&
               raw[i] != '\n' && raw[i] != '>' && raw[i] != '/')
            i++;
        if (i - a == 5 && memcmp(raw + a, "xmlns", 5) == 0)
            *has_default_ns = true;
        while (i < len && raw[i] != '\'' && raw[i] != '"' && raw[i] != '>' && raw[i] != '/')
            i++;
        if (i < len && (raw[i] == '\'' || raw[i] == '"')) {
            char q = raw[i++];
            while (i < len && raw[i] != q)
                i++;
            i++;
        }
    }
    return name_end;
}

/*
 * Writes a <which/> (sent or received) copy of <st> to session <s> of user
 * <u>: from the bare JID, to the full JID, of <st>'s type (§7, §8). The
 * original is embedded as received, with xmlns='jabber:client' added to
 * its start tag when it relied on the stream's default namespace, and the
 * result is parsed once more (sz_stanza_from_xb): an original that only
 * made sense inside its own stream (a prefix bound on its stream header)
 * or that would pass the size limit inside its wrapper gets no copy rather
 * than a broken one.
 */
static void send_copy(sz_session_t *s, const sz_user_t *u, sz_stanza_t *st, const char *type,
                      const char *which)
{
    size_t bl, fl, rl;
    const char *bare = sz_jid_bare(u->bare, &bl);
    const char *full = sz_jid_full(s->jid, &fl);
    const char *raw = sz_stanza_raw(st, &rl);
    bool has_ns;
    size_t name_end = scan_start_tag(raw, rl, &has_ns);
    sz_xb_t xb;
    sz_xb_init(&xb, rl + bl + fl + 256);
    sz_xb_start(&xb, "message", NULL);
    sz_xb_attr_n(&xb, "from", bare, bl);
    sz_xb_attr_n(&xb, "to", full, fl);
    if (type)
        sz_xb_attr(&xb, "type", type);
    sz_xb_start(&xb, which, NS_CARBONS);
    sz_xb_start(&xb, "forwarded", NS_FORWARD);
    sz_xb_raw(&xb, raw, name_end);
    if (!has_ns)
        sz_xb_raw(&xb, " xmlns='jabber:client'", 22);
    sz_xb_raw(&xb, raw + name_end, rl - name_end);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    sz_stanza_t *copy = sz_stanza_from_xb(&xb);
    if (!copy) {
        SZ_DEBUG("msg=\"carbon copy not made\" to=%.*s", (int)fl, full);
        return;
    }
    sz_router_deliver(s, copy);
    sz_stanza_unref(copy);
}

/* Whether <s> is the session that sent <st> (its stamped 'from', decoded:
 * a resource may hold characters that are escaped in the raw bytes). */
static bool is_sender(const sz_session_t *s, const sz_stanza_t *st)
{
    size_t fl;
    const char *full = sz_jid_full(s->jid, &fl);
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    return n >= 0 && (size_t)n == fl && memcmp(dec, full, fl) == 0;
}

/* §8: a message from one of the user's clients; copies to its other
 * carbons-enabled resources, never to the sender itself (whether it
 * enabled carbons or not). A message to the user's own JID is left to the
 * receiving side (§7), which copies it to the resources that did not get
 * it, so no resource sees it twice. */
static int on_from_client(sz_hook_ctx_t *ctx)
{
    sz_session_t *from = ctx->from;
    sz_user_t *u = from->user;
    if (ctx->kind != SZ_STANZA_MESSAGE || !u || !ctx->to ||
        (sz_jid_has_local(ctx->to) && sz_jid_bare_eq(ctx->to, u->bare)))
        return SZ_PASS;
    bool any = false;
    for (sz_session_t *s = u->sessions; s && !any; s = s->next)
        any = s != from && enabled(s);
    if (!any || !eligible(ctx->st, ctx->type))
        return SZ_PASS;
    for (sz_session_t *s = u->sessions; s; s = s->next)
        if (s != from && enabled(s))
            send_copy(s, u, ctx->st, ctx->type, "sent");
    return SZ_PASS;
}

/* §7: a message the router delivered to ctx->sess (full JID) or to the
 * bare JID's chosen resources; copies to the other carbons-enabled
 * resources, except the sender when it is one of them (a message to one's
 * own JID). */
static bool got_original(const sz_hook_ctx_t *ctx, const sz_session_t *s)
{
    return ctx->sess ? s == ctx->sess : sz_router_gets_bare_message(ctx->user, s, false);
}

static int on_delivered(sz_hook_ctx_t *ctx)
{
    sz_user_t *u = ctx->user;
    if (!u)
        return SZ_PASS;
    bool any = false;
    for (sz_session_t *s = u->sessions; s && !any; s = s->next)
        any = enabled(s) && !got_original(ctx, s);
    if (!any || !eligible(ctx->st, ctx->type))
        return SZ_PASS;
    for (sz_session_t *s = u->sessions; s; s = s->next)
        if (enabled(s) && !got_original(ctx, s) && !is_sender(s, ctx->st))
            send_copy(s, u, ctx->st, ctx->type, "received");
    return SZ_PASS;
}

static void on_unbound(sz_hook_ctx_t *ctx)
{
    ctx->from->slot[sslot] = NULL;
}

void sz_mod_carbons_register(const sz_mod_env_t *env)
{
    (void)env;
    sslot = sz_hooks_sess_slot();
    sz_hooks_iq("enable", NS_CARBONS, SZ_IQ_ACCOUNT, on_enable);
    sz_hooks_iq("disable", NS_CARBONS, SZ_IQ_ACCOUNT, on_disable);
    sz_hooks_add(SZ_HOOK_FROM_CLIENT, on_from_client);
    sz_hooks_add(SZ_HOOK_DELIVERED, on_delivered);
    sz_hooks_on(SZ_EV_UNBOUND, on_unbound);
    /* §3: the server says so in its own disco#info. */
    sz_hooks_disco_feature(NS_CARBONS, SZ_IQ_SERVER, NULL);
}
