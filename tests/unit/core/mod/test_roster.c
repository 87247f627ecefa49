/*
 * Tests for core/mod/mod_roster.c through the router: roster get and set
 * with the RFC 6121 §2.1.5 / §2.3.3 / §2.5.3 error rules, who may touch a
 * roster, names and groups kept exactly, versioning (RFC 6121 §2.6,
 * XEP-0237), pushes to interested resources only, removal with its
 * unsubscribe/unsubscribed (§2.5.2), and the roster size limit.
 */
#include "im_test.h"

#define A  "alice@" IM_DOMAIN
#define B  "bob@" IM_DOMAIN
#define C  "carla.longername@" IM_DOMAIN
#define NS "xmlns=\"jabber:iq:roster\""

static fs_t a1, a2, b1;

SZ_TEST(get_empty)
{
    fs_bind(&a1, A "/one");
    fs_send(&a1, "<iq from='" A "/one' type='get' id='g1'><query " NS "/></iq>");
    CHECK_GOT(&a1, "type=\"result\"", "id=\"g1\"", "<query " NS "/>");
    /* Without 'ver' in the request, none in the answer. */
    CHECK_NOT(&a1, "ver=");
    fs_unbind(&a1);
}

SZ_TEST(set_errors)
{
    fs_bind(&a1, A "/one");
    /* §2.1.5, §2.3.3: exactly one item. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s1'><query " NS "><item jid='x@" IM_DOMAIN
                 "'/><item jid='y@" IM_DOMAIN "'/></query></iq>");
    CHECK_GOT(&a1, "id=\"s1\"", "type=\"error\"", "<bad-request");
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s2'><query " NS "/></iq>");
    CHECK_GOT(&a1, "id=\"s2\"", "type=\"error\"", "<bad-request");
    /* §2.3.3: the same group twice: bad-request. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s3'><query " NS "><item jid='x@" IM_DOMAIN
                 "'><group>G</group><group>G</group></item></query></iq>");
    CHECK_GOT(&a1, "id=\"s3\"", "type=\"error\"", "<bad-request");
    /* §2.3.3: an empty group: not-acceptable. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s4'><query " NS "><item jid='x@" IM_DOMAIN
                 "'><group></group></item></query></iq>");
    CHECK_GOT(&a1, "id=\"s4\"", "type=\"error\"", "<not-acceptable");
    /* The user's own JID: not-allowed. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s5'><query " NS "><item jid='" A
                 "'/></query></iq>");
    CHECK_GOT(&a1, "id=\"s5\"", "type=\"error\"", "<not-allowed");
    /* §2.5.3: removing an item that is not there: item-not-found. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s6'><query " NS
                 "><item jid='nobody@" IM_DOMAIN "' subscription='remove'/></query></iq>");
    CHECK_GOT(&a1, "id=\"s6\"", "type=\"error\"", "<item-not-found");
    /* A malformed JID. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s7'><query " NS "><item jid='@bad'/>"
                 "</query></iq>");
    CHECK_GOT(&a1, "id=\"s7\"", "type=\"error\"", "<jid-malformed");
    /* None of these changed the roster. */
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/one' type='get' id='g'><query " NS "/></iq>");
    CHECK_GOT(&a1, "id=\"g\"", "<query " NS "/>");
    fs_unbind(&a1);
}

SZ_TEST(only_own_resources)
{
    fs_bind(&a1, A "/one");
    fs_bind(&b1, B "/one");
    /* §2.1.3 / §2.1.5: someone else's roster is forbidden. */
    fs_send(&b1, "<iq from='" B "/one' to='" A "' type='get' id='x1'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"x1\"", "type=\"error\"", "<forbidden");
    CHECK_NOT(&a1, "x1");
    fs_send(&b1, "<iq from='" B "/one' to='" A "' type='set' id='x2'><query " NS
                 "><item jid='evil@" IM_DOMAIN "'/></query></iq>");
    CHECK_GOT(&b1, "id=\"x2\"", "type=\"error\"", "<forbidden");
    /* Also while the roster's owner is offline. */
    fs_unbind(&a1);
    fs_send(&b1, "<iq from='" B "/one' to='" A "' type='get' id='x4'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"x4\"", "type=\"error\"", "<forbidden");
    fs_bind(&a1, A "/one");
    /* The user's own bare JID as 'to' is the user's roster. */
    fs_send(&a1, "<iq from='" A "/one' to='" A "' type='get' id='x3'><query " NS "/></iq>");
    CHECK_GOT(&a1, "id=\"x3\"", "type=\"result\"", "<query " NS "/>");
    fs_unbind(&b1);
    fs_unbind(&a1);
}

SZ_TEST(set_get_push_versioning)
{
    fs_bind(&a1, A "/one");
    fs_bind(&a2, A "/two");
    /* a1 asks for the roster with versioning; a2 never asks. */
    fs_send(&a1, "<iq from='" A "/one' type='get' id='g1'><query " NS " ver=''/></iq>");
    CHECK_GOT(&a1, "id=\"g1\"", "type=\"result\"", "ver=\"0\"");
    fs_clear(&a1);
    /* §2.3: add, with a UTF-8 name and groups kept exactly; a
     * subscription value other than "remove" is ignored (§2.1.5). */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s1'><query " NS "><item jid='carol@" IM_DOMAIN
                 "' name='Carol \xc3\xa9\xe2\x82\xac' subscription='both'>"
                 "<group>Friends</group><group>\xe5\x8f\x8b</group></item></query></iq>");
    int res = fs_find(&a1, "id=\"s1\"", "type=\"result\"");
    int push = fs_find(&a1, "type=\"set\"", "jid=\"carol@" IM_DOMAIN "\"", "ver=\"1\"",
                       "subscription=\"none\"", "name=\"Carol \xc3\xa9\xe2\x82\xac\"",
                       "<group>Friends</group><group>\xe5\x8f\x8b</group>");
    SZ_CHECK(res >= 0);
    SZ_CHECK(push >= 0);
    SZ_CHECK(res < push); /* §2.3.2: the result, then the push */
    if (res < 0 || push < 0)
        fs_dump(&a1);
    /* §2.1.6: only interested resources get pushes. */
    CHECK_NOT(&a2, "jabber:iq:roster");
    /* Update (§2.4): name and groups replaced as given. */
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s2'><query " NS "><item jid='carol@" IM_DOMAIN
                 "'><group>Work</group></item></query></iq>");
    CHECK_GOT(&a1, "id=\"s2\"", "type=\"result\"");
    CHECK_GOT(&a1, "type=\"set\"", "ver=\"2\"", "<group>Work</group>");
    CHECK_NOT(&a1, "name=\"Carol");
    /* §2.6.3: the client's version is current: an empty result. */
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/one' type='get' id='g2'><query " NS " ver='2'/></iq>");
    CHECK_GOT(&a1, "id=\"g2\"", "type=\"result\"");
    CHECK_NOT(&a1, "<query");
    /* An older version: the whole roster, with the current version. */
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/one' type='get' id='g3'><query " NS " ver='1'/></iq>");
    CHECK_GOT(&a1, "id=\"g3\"", "ver=\"2\"", "jid=\"carol@" IM_DOMAIN "\"", "<group>Work</group>");
    /* A get without 'ver' after versioned ones: no 'ver' in the answer. */
    fs_clear(&a2);
    fs_send(&a2, "<iq from='" A "/two' type='get' id='g4'><query " NS "/></iq>");
    CHECK_GOT(&a2, "id=\"g4\"", "jid=\"carol@" IM_DOMAIN "\"");
    CHECK_NOT(&a2, "ver=");
    /* Both are interested now; a2 gets pushes without 'ver'. */
    fs_clear(&a1);
    fs_clear(&a2);
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s3'><query " NS "><item jid='dave@" IM_DOMAIN
                 "'/></query></iq>");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"dave@" IM_DOMAIN "\"", "ver=\"3\"");
    CHECK_GOT(&a2, "type=\"set\"", "jid=\"dave@" IM_DOMAIN "\"");
    CHECK_NOT(&a2, "ver=");
    /* Remove (§2.5): result, push with subscription='remove'. */
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/one' type='set' id='s4'><query " NS "><item jid='dave@" IM_DOMAIN
                 "' subscription='remove'/></query></iq>");
    CHECK_GOT(&a1, "id=\"s4\"", "type=\"result\"");
    CHECK_GOT(&a1, "type=\"set\"", "jid=\"dave@" IM_DOMAIN "\"", "subscription=\"remove\"",
              "ver=\"4\"");
    fs_unbind(&a2);
    fs_unbind(&a1);
    /* The next login reads what was committed. */
    fs_bind(&a1, A "/three");
    fs_send(&a1, "<iq from='" A "/three' type='get' id='g5'><query " NS " ver='4'/></iq>");
    CHECK_GOT(&a1, "id=\"g5\"", "type=\"result\"");
    CHECK_NOT(&a1, "<query");
    fs_clear(&a1);
    fs_send(&a1, "<iq from='" A "/three' type='get' id='g6'><query " NS "/></iq>");
    CHECK_GOT(&a1, "id=\"g6\"", "jid=\"carol@" IM_DOMAIN "\"");
    CHECK_NOT(&a1, "dave@");
    fs_unbind(&a1);
}

SZ_TEST(remove_cancels_subscriptions)
{
    /* Alice and Bob subscribe to each other. */
    fs_bind(&a1, A "/one");
    fs_bind(&b1, B "/one");
    fs_send(&a1, "<presence from='" A "/one'/>");
    fs_send(&b1, "<presence from='" B "/one'/>");
    fs_send(&a1, "<presence from='" A "/one' to='" B "' type='subscribe'/>");
    fs_send(&b1, "<presence from='" B "/one' to='" A "' type='subscribed'/>");
    fs_send(&b1, "<presence from='" B "/one' to='" A "' type='subscribe'/>");
    fs_send(&a1, "<presence from='" A "/one' to='" B "' type='subscribed'/>");
    fs_send(&b1, "<iq from='" B "/one' type='get' id='bg'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"bg\"", "jid=\"alice@" IM_DOMAIN "\"", "subscription=\"both\"");
    fs_clear(&a1);
    fs_clear(&b1);
    /* §2.5.2: Alice removes Bob: Bob gets unsubscribe and unsubscribed,
     * and his item for Alice goes to none. */
    fs_send(&a1, "<iq from='" A "/one' type='set' id='rm'><query " NS "><item jid='" B
                 "' subscription='remove'/></query></iq>");
    CHECK_GOT(&a1, "id=\"rm\"", "type=\"result\"");
    CHECK_GOT(&b1, "type=\"unsubscribe\"", "from=\"" A "\"");
    CHECK_GOT(&b1, "type=\"unsubscribed\"", "from=\"" A "\"");
    CHECK_GOT(&b1, "type=\"unavailable\"", "from=\"" A "/one\"");
    CHECK_GOT(&b1, "type=\"set\"", "jid=\"alice@" IM_DOMAIN "\"", "subscription=\"none\"");
    fs_unbind(&b1);
    fs_unbind(&a1);
}

SZ_TEST(limit)
{
    sz_mod_roster_set_max_items(2);
    fs_bind(&b1, B "/lim");
    /* Bob has Alice already (above): one more fits, the next does not. */
    fs_send(&b1, "<iq from='" B "/lim' type='set' id='l1'><query " NS "><item jid='x1@" IM_DOMAIN
                 "'/></query></iq>");
    CHECK_GOT(&b1, "id=\"l1\"", "type=\"result\"");
    fs_send(&b1, "<iq from='" B "/lim' type='set' id='l2'><query " NS "><item jid='x2@" IM_DOMAIN
                 "'/></query></iq>");
    CHECK_GOT(&b1, "id=\"l2\"", "type=\"error\"", "<not-allowed");
    /* Changing an existing item is still fine. */
    fs_send(&b1, "<iq from='" B "/lim' type='set' id='l3'><query " NS "><item jid='x1@" IM_DOMAIN
                 "' name='X'/></query></iq>");
    CHECK_GOT(&b1, "id=\"l3\"", "type=\"result\"");
    /* A subscription request would add an item too: refused, the
     * resource is told, nothing is routed. */
    fs_clear(&b1);
    fs_send(&b1, "<presence from='" B "/lim' to='x3@" IM_DOMAIN "' type='subscribe'/>");
    CHECK_GOT(&b1, "<presence", "type=\"error\"", "<not-allowed");
    CHECK_NOT(&b1, "jid=\"x3@");
    fs_unbind(&b1);
    sz_mod_roster_set_max_items(SZ_ROSTER_MAX_ITEMS_DEFAULT);
}

SZ_TEST(stream_features)
{
    char buf[512];
    sz_hooks_stream_features(true, 0, buf, sizeof(buf));
    SZ_CHECK(strstr(buf, "<ver xmlns='urn:xmpp:features:rosterver'/>") != NULL);
    SZ_CHECK(strstr(buf, "<sub xmlns='urn:xmpp:features:pre-approval'/>") != NULL);
}

/* DESIGN §1 budget: an idle session with a 20-contact roster. The
 * modules' share is the user's entry and cache (sessions cost nothing
 * extra: their flags live in the slot pointer). */
SZ_TEST(cache_memory)
{
    fs_bind(&a1, C "/m");
    for (int i = 0; i < 20; i++)
        fs_send(&a1,
                "<iq from='" C "/m' type='set' id='m%d'><query " NS "><item "
                "jid='contact%02d@" IM_DOMAIN "' name='Contact %d'><group>G</group></item>"
                "</query></iq>",
                i, i, i);
    fs_unbind(&a1);
    fs_bind(&a1, C "/m");
    fs_send(&a1, "<iq from='" C "/m' type='get' id='v'><query " NS " ver='20'/></iq>");
    CHECK_GOT(&a1, "id=\"v\"", "type=\"result\"");
    sz_roster_t *ro = sz_roster_find(a1.s.user);
    SZ_CHECK(ro != NULL);
    SZ_CHECK_INT(ro ? sz_roster_count(ro) : 0, 20);
    size_t mem = ro ? sz_roster_mem(ro) : 0;
    printf("# roster entry and cache, 20 contacts: %zu bytes\n", mem);
    SZ_CHECK(mem > 0 && mem <= 1024);
    SZ_CHECK(sz_roster_sdata(&a1.s) == NULL);
    fs_unbind(&a1);
}

static void body(void)
{
    SZ_RUN(get_empty);
    SZ_RUN(set_errors);
    SZ_RUN(only_own_resources);
    SZ_RUN(set_get_push_versioning);
    SZ_RUN(remove_cancels_subscriptions);
    SZ_RUN(limit);
    SZ_RUN(stream_features);
    SZ_RUN(cache_memory);
}

int main(void)
{
    static const char *const users[] = {A, B, C, NULL};
    return im_main("roster", users, body);
}
