/*
 * Tests for core/mod/mod_subscription.c through the router: the RFC 6121
 * §3 handshake both ways between online users (bare JIDs stamped, pushes,
 * delivery, presence after approval), a request to an offline user kept
 * and delivered again after the next initial presence (§3.1.3), denial,
 * cancellation both ways, the auto-reply when subscribed already, inbound
 * stanzas the tables say to ignore, and pre-approval (§3.4).
 */
#include "im_test.h"

#define A  "alice@" IM_DOMAIN
#define B  "bob@" IM_DOMAIN
#define C  "carol@" IM_DOMAIN
#define D  "dave@" IM_DOMAIN
#define E  "erin@" IM_DOMAIN
#define F  "frank@" IM_DOMAIN
#define G  "grace@" IM_DOMAIN
#define NS "xmlns=\"jabber:iq:roster\""

static fs_t a1, b1, c1, d1, e1, f1, g1;

/* Binds, asks for the roster (to get pushes) and goes available. */
static void login(fs_t *f, const char *full)
{
    fs_bind(f, full);
    fs_send(f, "<iq from='%s' type='get' id='login'><query " NS "/></iq>", full);
    fs_send(f, "<presence from='%s'/>", full);
}

/* The subscription attribute of <jid> in <f>'s roster, read back. */
static bool roster_has(fs_t *f, const char *full, const char *item)
{
    fs_clear(f);
    fs_send(f, "<iq from='%s' type='get' id='rh'><query " NS "/></iq>", full);
    return fs_has(f, "id=\"rh\"", item);
}

SZ_TEST(handshake_online)
{
    login(&a1, A "/pc");
    login(&b1, B "/pc");
    fs_clear(&a1);
    fs_clear(&b1);
    /* §3.1.2: the request leaves with bare JIDs; Alice's item is
     * Pending Out. */
    fs_send(&a1, "<presence from='" A "/pc' to='" B "/phone' type='subscribe'><status>hi"
                 "</status></presence>");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" B "\"", "subscription=\"none\"", "ask=\"subscribe\"");
    /* §3.1.3: delivered to Bob, from Alice's bare JID. */
    CHECK_GOT(&b1, "type=\"subscribe\"", "from=\"" A "\"", "to=\"" B "\"", "<status>hi</status>");
    CHECK_NOT(&b1, "from=\"" A "/pc\"");
    /* Bob has no item for Alice yet. */
    CHECK_NOT(&b1, "jabber:iq:roster");
    fs_clear(&a1);
    fs_clear(&b1);
    /* §3.1.5: Bob approves: his item becomes From; Alice gets
     * subscribed, her item becomes To, and she gets Bob's presence. */
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribed'/>");
    CHECK_GOT(&b1, "type=\"set\"", "jid=\"" A "\"", "subscription=\"from\"");
    CHECK_GOT(&a1, "type=\"subscribed\"", "from=\"" B "\"");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" B "\"", "subscription=\"to\"");
    CHECK_NOT(&a1, "ask=\"subscribe\"");
    CHECK_GOT(&a1, "<presence", "from=\"" B "/pc\"");
    /* From now on Bob's presence reaches Alice, not the reverse. */
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&b1, "<presence from='" B "/pc'><show>away</show></presence>");
    CHECK_GOT(&a1, "from=\"" B "/pc\"", "<show>away</show>");
    fs_send(&a1, "<presence from='" A "/pc'><show>dnd</show></presence>");
    CHECK_NOT(&b1, "<show>dnd</show>");
    /* The reverse direction: Both. */
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribe'/>");
    CHECK_GOT(&a1, "type=\"subscribe\"", "from=\"" B "\"");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribed'/>");
    SZ_CHECK(roster_has(&a1, A "/pc", "subscription=\"both\""));
    SZ_CHECK(roster_has(&b1, B "/pc", "subscription=\"both\""));
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc'><show>chat</show></presence>");
    CHECK_GOT(&b1, "from=\"" A "/pc\"", "<show>chat</show>");
    /* Already subscribed: a repeated request is answered for Bob and not
     * delivered to him (§3.1.3); the answer changes nothing for Alice,
     * whose server drops it (A.3.3). */
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribe'/>");
    CHECK_NOT(&b1, "type=\"subscribe\"");
    CHECK_NOT(&a1, "type=\"subscribed\"");
    CHECK_NOT(&a1, "ask=");
    /* An unsolicited 'subscribed' changes nothing (A.3.3). */
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc' to='" C "' type='subscribed'/>");
    fs_unbind(&b1);
    fs_unbind(&a1);
}

SZ_TEST(cancel_both_ways)
{
    login(&a1, A "/pc");
    login(&b1, B "/pc");
    fs_clear(&a1);
    fs_clear(&b1);
    /* §3.3: Alice unsubscribes from Bob: both items lose that direction
     * (Alice: both → from; Bob: both → to) and Bob is told. */
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='unsubscribe'/>");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" B "\"", "subscription=\"from\"");
    CHECK_GOT(&b1, "type=\"unsubscribe\"", "from=\"" A "\"");
    CHECK_GOT(&b1, "type=\"set\"", "jid=\"" A "\"", "subscription=\"to\"");
    /* §3.2: Alice cancels Bob's subscription to her with unsubscribed;
     * Bob sees her go unavailable. */
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='unsubscribed'/>");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" B "\"", "subscription=\"none\"");
    CHECK_GOT(&b1, "type=\"unsubscribed\"", "from=\"" A "\"");
    CHECK_GOT(&b1, "type=\"unavailable\"", "from=\"" A "/pc\"");
    CHECK_GOT(&b1, "type=\"set\"", "jid=\"" A "\"", "subscription=\"none\"");
    /* Nobody sees anybody now. */
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc'><show>xa</show></presence>");
    fs_send(&b1, "<presence from='" B "/pc'><show>xa</show></presence>");
    CHECK_NOT(&a1, "from=\"" B "/pc\"");
    CHECK_NOT(&b1, "from=\"" A "/pc\"");
    fs_unbind(&b1);
    fs_unbind(&a1);
}

SZ_TEST(offline_request_and_denial)
{
    login(&a1, A "/pc");
    fs_clear(&a1);
    /* Carol is offline: the request is stored for her (§3.1.3). */
    fs_send(&a1, "<presence from='" A "/pc' to='" C "' type='subscribe'><status>it is me"
                 "</status></presence>");
    CHECK_GOT(&a1, "jid=\"" C "\"", "ask=\"subscribe\"");
    /* She logs in: after her initial presence the request comes again. */
    fs_bind(&c1, C "/tab");
    SZ_CHECK(c1.n == 0);
    fs_send(&c1, "<presence from='" C "/tab'/>");
    CHECK_GOT(&c1, "type=\"subscribe\"", "from=\"" A "\"", "<status>it is me</status>");
    /* Unanswered, it comes at every login. */
    fs_unbind(&c1);
    fs_bind(&c1, C "/tab");
    fs_send(&c1, "<presence from='" C "/tab'/>");
    CHECK_GOT(&c1, "type=\"subscribe\"", "from=\"" A "\"");
    /* §3.2.1 / A.2.4: denial: routed, Alice's request ends. */
    fs_clear(&a1);
    fs_send(&c1, "<presence from='" C "/tab' to='" A "' type='unsubscribed'/>");
    CHECK_GOT(&a1, "type=\"unsubscribed\"", "from=\"" C "\"");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" C "\"", "subscription=\"none\"");
    CHECK_NOT(&a1, "ask=");
    /* Answered: not delivered again. */
    fs_unbind(&c1);
    fs_bind(&c1, C "/tab");
    fs_send(&c1, "<presence from='" C "/tab'/>");
    CHECK_NOT(&c1, "type=\"subscribe\"");
    fs_unbind(&c1);
    /* A request to Carol while she is offline, approved at her next
     * login, gives Alice To. */
    fs_send(&a1, "<presence from='" A "/pc' to='" C "' type='subscribe'/>");
    fs_bind(&c1, C "/tab");
    fs_send(&c1, "<presence from='" C "/tab'/>");
    CHECK_GOT(&c1, "type=\"subscribe\"", "from=\"" A "\"");
    fs_clear(&a1);
    fs_send(&c1, "<presence from='" C "/tab' to='" A "' type='subscribed'/>");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"" C "\"", "subscription=\"to\"");
    CHECK_GOT(&a1, "from=\"" C "/tab\"");
    fs_unbind(&c1);
    fs_unbind(&a1);
}

SZ_TEST(inbound_to_offline_user_changes_roster)
{
    /* Alice has To on Carol; Carol, offline, is unsubscribed by Alice:
     * Carol's item changes in storage without her being online. */
    login(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc' to='" C "' type='unsubscribe'/>");
    fs_unbind(&a1);
    login(&c1, C "/tab");
    SZ_CHECK(roster_has(&c1, C "/tab", "subscription=\"none\""));
    SZ_CHECK(!roster_has(&c1, C "/tab", "subscription=\"from\""));
    fs_unbind(&c1);
}

SZ_TEST(pre_approval)
{
    login(&d1, D "/pc");
    fs_clear(&d1);
    /* §3.4: Dave approves Erin before she asks: a pre-approval, not
     * routed. */
    fs_send(&d1, "<presence from='" D "/pc' to='" E "' type='subscribed'/>");
    CHECK_GOT(&d1, "type=\"set\"", "jid=\"" E "\"", "subscription=\"none\"", "approved=\"true\"");
    login(&e1, E "/pc");
    CHECK_NOT(&e1, "type=\"subscribed\"");
    fs_clear(&d1);
    fs_clear(&e1);
    /* Her request is approved at once: not delivered to Dave, answered,
     * and she gets his presence. */
    fs_send(&e1, "<presence from='" E "/pc' to='" D "' type='subscribe'/>");
    CHECK_NOT(&d1, "type=\"subscribe\"");
    CHECK_GOT(&d1, "type=\"set\"", "jid=\"" E "\"", "subscription=\"from\"");
    CHECK_NOT(&d1, "approved=");
    CHECK_GOT(&e1, "type=\"subscribed\"", "from=\"" D "\"");
    CHECK_GOT(&e1, "type=\"set\"", "jid=\"" D "\"", "subscription=\"to\"");
    CHECK_GOT(&e1, "<presence", "from=\"" D "/pc\"");
    /* A pre-approval cancelled with unsubscribed is gone (§3.4). */
    fs_clear(&d1);
    fs_send(&d1, "<presence from='" D "/pc' to='" A "' type='subscribed'/>");
    CHECK_GOT(&d1, "jid=\"" A "\"", "approved=\"true\"");
    fs_clear(&d1);
    fs_send(&d1, "<presence from='" D "/pc' to='" A "' type='unsubscribed'/>");
    CHECK_GOT(&d1, "type=\"set\"", "jid=\"" A "\"", "subscription=\"none\"");
    CHECK_NOT(&d1, "approved=");
    fs_unbind(&e1);
    fs_unbind(&d1);
}

static void on_put(void *arg, int res, uint64_t ver)
{
    (void)ver;
    *(int *)arg = res;
}

SZ_TEST(auto_reply)
{
    /* Frank gets To on Grace. */
    login(&f1, F "/pc");
    login(&g1, G "/pc");
    fs_send(&f1, "<presence from='" F "/pc' to='" G "' type='subscribe'/>");
    fs_send(&g1, "<presence from='" G "/pc' to='" F "' type='subscribed'/>");
    fs_unbind(&f1);
    /* Frank's server loses his state (None + Pending Out again). */
    sz_jid_t *owner = NULL;
    SZ_ASSERT(sz_jid_parse(F, strlen(F), &owner) == 0);
    sz_store_roster_item_t it = {.jid = G, .sub = SZ_STORE_SUB_NONE, .ask = true};
    int res = 1;
    SZ_CHECK_INT(sz_store_roster_put(im_store, owner, &it, 0, on_put, &res), 0);
    settle();
    SZ_CHECK_INT(res, 0);
    sz_jid_free(owner);
    /* He asks again: Grace, subscribed already, is not asked; her server
     * answers for her (§3.1.3) and Frank's state heals (A.3.3). */
    login(&f1, F "/pc");
    fs_clear(&f1);
    fs_clear(&g1);
    fs_send(&f1, "<presence from='" F "/pc' to='" G "' type='subscribe'/>");
    CHECK_NOT(&g1, "type=\"subscribe\"");
    CHECK_GOT(&f1, "type=\"subscribed\"", "from=\"" G "\"");
    CHECK_GOT(&f1, "type=\"set\"", "jid=\"" G "\"", "subscription=\"to\"");
    fs_unbind(&g1);
    fs_unbind(&f1);
}

static void body(void)
{
    SZ_RUN(handshake_online);
    SZ_RUN(cancel_both_ways);
    SZ_RUN(offline_request_and_denial);
    SZ_RUN(inbound_to_offline_user_changes_roster);
    SZ_RUN(pre_approval);
    SZ_RUN(auto_reply);
}

int main(void)
{
    static const char *const users[] = {A, B, C, D, E, F, G, NULL};
    return im_main("subscription", users, body);
}
