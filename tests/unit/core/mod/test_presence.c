/*
 * Tests for core/mod/mod_presence.c through the router: broadcast only to
 * contacts with From or Both (RFC 6121 §4.2.2, §4.4.2), never to others;
 * probes at initial presence and their answers (§4.3), for online and
 * offline contacts and unauthorised probers; unavailable to contacts
 * when the user says so and when the session ends (§4.5); directed
 * presence and the unavailable it is owed (§4.6.3).
 */
#include "im_test.h"

#define A  "alice@" IM_DOMAIN
#define B  "bob@" IM_DOMAIN
#define M  "mallory@" IM_DOMAIN
#define NS "xmlns=\"jabber:iq:roster\""

static fs_t a1, b1, b2, m1;

/* Alice and Bob: Both. Mallory has asked Alice (Pending In for Alice,
 * unanswered) and has Alice in her roster with none. */
SZ_TEST(setup)
{
    fs_bind(&a1, A "/pc");
    fs_bind(&b1, B "/pc");
    fs_bind(&m1, M "/pc");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribe'/>");
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribed'/>");
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribe'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribed'/>");
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='subscribe'/>");
    fs_send(&a1, "<iq from='" A "/pc' type='get' id='g'><query " NS "/></iq>");
    CHECK_GOT(&a1, "id=\"g\"", "jid=\"" B "\"", "subscription=\"both\"");
    CHECK_NOT(&a1, "jid=\"" M "\"");
    fs_send(&m1, "<iq from='" M "/pc' type='get' id='g'><query " NS "/></iq>");
    CHECK_GOT(&m1, "id=\"g\"", "jid=\"" A "\"", "subscription=\"none\"", "ask=\"subscribe\"");
    fs_unbind(&m1);
    fs_unbind(&b1);
    fs_unbind(&a1);
}

SZ_TEST(initial_presence_and_probes)
{
    /* Bob is online and available. */
    fs_bind(&b1, B "/pc");
    fs_send(&b1, "<presence from='" B "/pc'><status>here</status></presence>");
    fs_bind(&m1, M "/pc");
    fs_send(&m1, "<presence from='" M "/pc'/>");
    fs_clear(&b1);
    fs_clear(&m1);
    /* Alice comes online: Bob (Both) gets her presence, and her probe is
     * answered with Bob's last presence (§4.2.2, §4.3). */
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'><priority>5</priority></presence>");
    CHECK_GOT(&b1, "from=\"" A "/pc\"", "<priority>5</priority>");
    CHECK_GOT(&a1, "<presence", "from=\"" B "/pc\"", "<status>here</status>");
    /* The probe itself is the server's business: Bob's client never
     * sees it. */
    CHECK_NOT(&b1, "type=\"probe\"");
    /* Mallory (no subscription) gets nothing. */
    CHECK_NOT(&m1, "from=\"" A);
    /* Her pending request is delivered to Alice after initial presence. */
    CHECK_GOT(&a1, "type=\"subscribe\"", "from=\"" M "\"");
    /* Updates go the same way; Mallory still gets nothing. */
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc'><show>away</show></presence>");
    CHECK_GOT(&b1, "from=\"" A "/pc\"", "<show>away</show>");
    CHECK_NOT(&m1, "from=\"" A);
    /* Bob's second resource arrives: Alice sees it, and the probe answer
     * (to Bob's bare JID) reaches his resources. */
    fs_clear(&a1);
    fs_bind(&b2, B "/phone");
    fs_send(&b2, "<presence from='" B "/phone'/>");
    CHECK_GOT(&a1, "from=\"" B "/phone\"");
    CHECK_GOT(&b2, "from=\"" A "/pc\"", "<show>away</show>");
    /* §4.5: Alice goes unavailable: Bob is told, Mallory is not. */
    fs_clear(&b1);
    fs_clear(&m1);
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'/>");
    CHECK_GOT(&b1, "type=\"unavailable\"", "from=\"" A "/pc\"");
    CHECK_NOT(&m1, "from=\"" A);
    /* Bob's session ends without a word: Alice (available again) is told. */
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_clear(&a1);
    fs_unbind(&b2);
    CHECK_GOT(&a1, "type=\"unavailable\"", "from=\"" B "/phone\"");
    fs_unbind(&b1);
    fs_unbind(&m1);
    fs_unbind(&a1);
}

SZ_TEST(probe_answers)
{
    /* A probe to an offline contact with From: unavailable from the bare
     * JID (§4.3.2). */
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    CHECK_GOT(&a1, "type=\"unavailable\"", "from=\"" B "\"");
    fs_unbind(&a1);
    /* Mallory probes Alice, online, who does not let her: no presence,
     * only unsubscribed. */
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'><status>secret</status></presence>");
    fs_bind(&m1, M "/pc");
    fs_send(&m1, "<presence from='" M "/pc'/>");
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='probe'/>");
    CHECK_NOT(&m1, "secret");
    CHECK_NOT(&m1, "from=\"" A "/pc\"");
    /* The answer is processed as a subscription stanza by Mallory's side
     * (A.3.4: her Pending Out ends) and delivered since it changed her
     * state. */
    CHECK_GOT(&m1, "type=\"unsubscribed\"", "from=\"" A "\"");
    /* And nothing either while Alice is offline. */
    fs_unbind(&a1);
    fs_clear(&m1);
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='probe'/>");
    CHECK_NOT(&m1, "from=\"" A);
    fs_unbind(&m1);
}

SZ_TEST(directed_presence)
{
    fs_bind(&a1, A "/pc");
    fs_bind(&m1, M "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&m1, "<presence from='" M "/pc'/>");
    fs_clear(&m1);
    /* §4.6: Alice sends Mallory directed presence; it is delivered. */
    fs_send(&a1, "<presence from='" A "/pc' to='" M "/pc'><show>chat</show></presence>");
    CHECK_GOT(&m1, "from=\"" A "/pc\"", "<show>chat</show>");
    /* Broadcasts still do not reach her. */
    fs_clear(&m1);
    fs_send(&a1, "<presence from='" A "/pc'><show>dnd</show></presence>");
    CHECK_NOT(&m1, "<show>dnd</show>");
    /* §4.6.3: when Alice's session ends, Mallory gets unavailable. */
    fs_unbind(&a1);
    CHECK_GOT(&m1, "type=\"unavailable\"", "from=\"" A "/pc\"");
    /* Directed unavailable first: nothing more owed. */
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" M "'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" M "' type='unavailable'/>");
    fs_clear(&m1);
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'/>");
    CHECK_NOT(&m1, "type=\"unavailable\"");
    /* Broadcast unavailable also settles directed presence (§4.6.3). */
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" M "'/>");
    fs_clear(&m1);
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'/>");
    CHECK_GOT(&m1, "type=\"unavailable\"", "from=\"" A "/pc\"");
    /* ...once: the session's end owes nothing more. */
    fs_clear(&m1);
    fs_unbind(&a1);
    CHECK_NOT(&m1, "from=\"" A);
    fs_unbind(&m1);
}

static void body(void)
{
    SZ_RUN(setup);
    SZ_RUN(initial_presence_and_probes);
    SZ_RUN(probe_answers);
    SZ_RUN(directed_presence);
}

int main(void)
{
    static const char *const users[] = {A, B, M, NULL};
    return im_main("presence", users, body);
}
