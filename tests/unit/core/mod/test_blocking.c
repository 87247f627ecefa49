/*
 * Tests for core/mod/mod_blocking.c through the router: the blocklist
 * get, block, unblock and unblock-all with their pushes (XEP-0191 §3.2 -
 * §3.5) to the resources that read the list; stanzas from a blocked
 * entity to the user online and offline, and from the user to one; the
 * size limit; presence cut on block and sent again on unblock.
 */
#include "im_test.h"

#include "core/mod/blocklist.h"

#define A  "alice@" IM_DOMAIN
#define B  "bob@" IM_DOMAIN
#define M  "mallory@" IM_DOMAIN
#define NB "xmlns='urn:xmpp:blocking'"

static fs_t a1, a2, b1, m1;

SZ_TEST(get_block_push_unblock)
{
    fs_bind(&a1, A "/pc");
    fs_bind(&a2, A "/phone");
    fs_send(&a1, "<iq from='" A "/pc' type='get' id='g1'><blocklist " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"g1\"", "type=\"result\"", "<blocklist xmlns=\"urn:xmpp:blocking\"/>");
    fs_send(&a2, "<iq from='" A "/phone' type='set' id='b1'><block " NB ">"
                 "<item jid='" M "'/><item jid='Spam.Example'/><item jid='" M "'/></block></iq>");
    CHECK_GOT(&a2, "id=\"b1\"", "type=\"result\"");
    /* §3.3: pushed to a1, which read the list; not to a2, which did not. */
    CHECK_GOT(&a1, "type=\"set\"", "<block xmlns=\"urn:xmpp:blocking\">",
              "jid=\"" M "\"", "jid=\"spam.example\"");
    CHECK_NOT(&a2, "<block ");
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/pc' type='get' id='g2'><blocklist " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"g2\"", "jid=\"" M "\"", "jid=\"spam.example\"");
    /* Unblock one, then all (§3.4, §3.5). */
    fs_clear(&a1);
    fs_send(&a2, "<iq from='" A "/phone' type='set' id='u1'><unblock " NB ">"
                 "<item jid='spam.example'/></unblock></iq>");
    CHECK_GOT(&a2, "id=\"u1\"", "type=\"result\"");
    CHECK_GOT(&a1, "<unblock xmlns=\"urn:xmpp:blocking\">", "jid=\"spam.example\"");
    fs_clear(&a1);
    fs_send(&a2, "<iq from='" A "/phone' type='set' id='u2'><unblock " NB "/></iq>");
    CHECK_GOT(&a1, "<unblock xmlns=\"urn:xmpp:blocking\"/>");
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/pc' type='get' id='g3'><blocklist " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"g3\"", "<blocklist xmlns=\"urn:xmpp:blocking\"/>");
    fs_unbind(&a2);
    fs_unbind(&a1);
}

SZ_TEST(errors_and_limit)
{
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='e1'><block " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"e1\"", "type=\"error\"", "<bad-request");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='e2'><block " NB "><item jid='a@@b'/>"
                 "</block></iq>");
    CHECK_GOT(&a1, "id=\"e2\"", "type=\"error\"", "<jid-malformed");
    fs_send(&a1, "<iq from='" A "/pc' type='get' id='e3'><unblock " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"e3\"", "type=\"error\"", "<bad-request");
    /* The limit (3, set in main): four JIDs at once, or one past it. */
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='l1'><block " NB "><item jid='a.example'/>"
                 "<item jid='b.example'/><item jid='c.example'/><item jid='d.example'/>"
                 "</block></iq>");
    CHECK_GOT(&a1, "id=\"l1\"", "type=\"error\"", "<not-allowed");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='l2'><block " NB "><item jid='a.example'/>"
                 "<item jid='b.example'/><item jid='c.example'/></block></iq>");
    CHECK_GOT(&a1, "id=\"l2\"", "type=\"result\"");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='l3'><block " NB "><item jid='d.example'/>"
                 "</block></iq>");
    CHECK_GOT(&a1, "id=\"l3\"", "type=\"error\"", "<not-allowed");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='l4'><unblock " NB "/></iq>");
    CHECK_GOT(&a1, "id=\"l4\"", "type=\"result\"");
    fs_unbind(&a1);
}

SZ_TEST(stanzas_both_ways)
{
    fs_bind(&a1, A "/pc");
    fs_bind(&m1, M "/pc");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='b'><block " NB "><item jid='" M "'/>"
                 "</block></iq>");
    fs_clear(&a1);
    /* From the blocked entity: message and iq get refused with
     * service-unavailable, presence dropped, nothing reaches Alice. */
    fs_send(&m1, "<message from='" M "/pc' to='" A "' id='m1'><body>x</body></message>");
    CHECK_GOT(&m1, "id=\"m1\"", "type=\"error\"", "<service-unavailable");
    fs_send(&m1, "<iq from='" M "/pc' to='" A "' type='get' id='i1'>"
                 "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK_GOT(&m1, "id=\"i1\"", "type=\"error\"", "<service-unavailable");
    fs_clear(&m1);
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='probe'/>");
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='subscribe'/>");
    CHECK_NOT(&m1, "from=\"" A);
    CHECK_NOT(&a1, "from=\"" M);
    /* From the user: not-acceptable with <blocked/>, delivered to her. */
    fs_send(&a1, "<message from='" A "/pc' to='" M "/pc' id='o1'><body>x</body></message>");
    CHECK_GOT(&a1, "id=\"o1\"", "type=\"error\"", "<not-acceptable",
              "<blocked xmlns=\"urn:xmpp:blocking:errors\"/>");
    CHECK_NOT(&m1, "id=\"o1\"");
    /* Its id comes back whole, however long (RFC 6120 §8.3.1). */
    char id[2001];
    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    fs_send(&a1, "<iq from='" A "/pc' to='" M "/pc' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/>"
                 "</iq>", id);
    CHECK_GOT(&a1, id, "type=\"error\"", "<not-acceptable");
    /* Offline, the list comes from storage: still refused. */
    fs_unbind(&a1);
    fs_clear(&m1);
    fs_send(&m1, "<message from='" M "/pc' to='" A "/gone' id='m2'><body>x</body></message>");
    CHECK_GOT(&m1, "id=\"m2\"", "type=\"error\"", "<service-unavailable");
    fs_send(&m1, "<presence from='" M "/pc' to='" A "' type='subscribe'/>");
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    CHECK_NOT(&a1, "type=\"subscribe\"");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='u'><unblock " NB "/></iq>");
    fs_unbind(&a1);
    fs_unbind(&m1);
}

SZ_TEST(presence_cut_and_restored)
{
    fs_bind(&a1, A "/pc");
    fs_bind(&b1, B "/pc");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribe'/>");
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribed'/>");
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribe'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribed'/>");
    fs_send(&a1, "<presence from='" A "/pc'><status>on</status></presence>");
    fs_send(&b1, "<presence from='" B "/pc'><status>bob</status></presence>");
    fs_clear(&a1);
    fs_clear(&b1);
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='b'><block " NB "><item jid='" B "'/>"
                 "</block></iq>");
    CHECK_GOT(&b1, "type=\"unavailable\"", "from=\"" A "/pc\"");
    fs_clear(&b1);
    fs_send(&a1, "<presence from='" A "/pc'><status>hidden</status></presence>");
    fs_send(&b1, "<presence from='" B "/pc'><status>bob2</status></presence>");
    CHECK_NOT(&b1, "hidden");
    CHECK_NOT(&a1, "bob2");
    fs_send(&a1, "<iq from='" A "/pc' type='set' id='u'><unblock " NB "><item jid='" B "'/>"
                 "</unblock></iq>");
    CHECK_GOT(&b1, "from=\"" A "/pc\"", "<status>hidden</status>");
    CHECK_GOT(&a1, "from=\"" B "/pc\"", "<status>bob2</status>");
    fs_unbind(&b1);
    fs_unbind(&a1);
}

static void body(void)
{
    SZ_RUN(get_block_push_unblock);
    SZ_RUN(errors_and_limit);
    SZ_RUN(stanzas_both_ways);
    SZ_RUN(presence_cut_and_restored);
}

int main(void)
{
    static const char *const users[] = {A, B, M, NULL};
    sz_mod_blocking_set_max_items(3);
    return im_main("blocking", users, body);
}
